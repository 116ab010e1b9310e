"""``late-fusion``: a plug-in's warm start fuses its encoder modules; its logits start as the unimodal runs' sum."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest
import torch

import mmbalance.models.late_fusion as late_fusion_module
from mmbalance.data.dataset import Batch
from mmbalance.errors import ModelError
from mmbalance.models import create_model
from mmbalance.models.late_fusion import late_fusion
from mmbalance.models.logit_scales import fit_logit_scales
from mmbalance.models.unimodal import unimodal
from mmbalance.models.warm import init_dims, warm_start

TOYS = Path(__file__).resolve().parent / "toy_plugins.py"


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(6, 1, 8, 8, generator=g, dtype=torch.float64),
            torch.randn(6, 3, 2, 8, 8, generator=g, dtype=torch.float64))


def _runs(spec: str, layers: dict[str, str]) -> dict[str, torch.nn.Module]:
    """Unimodal runs of the plug-in's encoders (as ``--unimodal M --embedding-layer``), sized by one forward."""
    x = dict(zip(("audio", "visual"), _inputs(9)))
    runs = {}
    for seed, (m, layer) in enumerate(layers.items()):
        torch.manual_seed(seed)
        run = unimodal(4, base=spec, modality=m, layer=layer).double()
        run(x[m])  # sizes the lazy classifier
        with torch.no_grad():
            for p in run.parameters():
                p.add_(0.1 * torch.randn_like(p))
        runs[m] = run.eval()
    return runs


@pytest.mark.parametrize("factory,layers", [
    ("build_two_branch", {"audio": "audio_net", "visual": "visual_net"}),
    ("build_attention", {"audio": "audio_net", "visual": "visual_net"}),  # token outputs (B, T, D): flattened
])
@pytest.mark.parametrize("fusion", ["concat", "sum"])
def test_plugin_warm_start_is_the_sum_of_its_unimodal_runs(factory, layers, fusion):
    spec = f"{TOYS}:{factory}"
    runs = _runs(spec, layers)
    states = {m: r.state_dict() for m, r in runs.items()}
    dims = init_dims(states)
    fused = late_fusion(4, base=spec, layers=layers, dims=dims, fusion=fusion).double()
    x, y = _inputs(1)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    scales = warm_start(fused, states, calibrate_on=[Batch({"audio": x, "visual": y}, labels, torch.arange(6))])
    fused.eval()
    with torch.no_grad():
        a, v = runs["audio"](x), runs["visual"](y)
        assert scales == pytest.approx(fit_logit_scales({"audio": a, "visual": v}, labels), rel=1e-6)
        want = scales["audio"] * a + scales["visual"] * v
        got = fused(x, y)
    assert torch.allclose(got, want, rtol=0, atol=1e-12 * float(want.abs().max() + 1))


def test_state_dict_round_trip_through_the_registry():
    spec = f"{TOYS}:build_two_branch"
    layers = {"audio": "audio_net", "visual": "visual_net"}
    fused = late_fusion(4, base=spec, layers=layers, dims={"audio": 6, "visual": 6})
    again = create_model("late-fusion", num_classes=4, model_args={"base": spec, "layers": layers,
                                                                    "dims": {"audio": 6, "visual": 6}})
    again.load_state_dict(fused.state_dict())  # same keys and shapes: a saved run audits with its run.json args
    assert again.modalities == ("audio", "visual")


@pytest.mark.parametrize("kw,message", [
    ({"fusion": "film"}, "concat or fusion=sum"),
    ({"dims": {"audio": 6}}, "dims for exactly"),
    ({"dims": {"audio": 6, "visual": 0}}, "positive integers"),
    ({"layers": {}}, "needs layers"),
])
def test_refusals(kw, message):
    args = {"base": f"{TOYS}:build_two_branch", "layers": {"audio": "audio_net", "visual": "visual_net"},
            "dims": {"audio": 6, "visual": 6}, **kw}
    with pytest.raises(ModelError, match=message):
        late_fusion(4, **args)


def test_wrong_number_of_inputs_is_one_line():
    fused = late_fusion(4, base=f"{TOYS}:build_two_branch", layers={"audio": "audio_net", "visual": "visual_net"},
                        dims={"audio": 6, "visual": 6})
    with pytest.raises(ModelError, match="takes 2 inputs"):
        fused(torch.zeros(1, 1, 8, 8))


def test_docstring_example():
    result = doctest.testmod(late_fusion_module)
    assert result.failed == 0 and result.attempted > 0
