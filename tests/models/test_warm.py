"""Warm starts: the merged model's logits start as the sum of the unimodal runs' logits."""

from __future__ import annotations

import pytest
import torch

from mmbalance.errors import ModelError, UsageError
from mmbalance.models import create_model, save_state_dict
from mmbalance.models.unimodal import unimodal
from mmbalance.models.warm import parse_init, warm_start


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(5, 1, 16, 24, generator=g, dtype=torch.float64),
            torch.randn(5, 3, 2, 16, 16, generator=g, dtype=torch.float64))


def _trained_like(modality: str, seed: int, model: str = "av-small") -> torch.nn.Module:
    torch.manual_seed(seed)
    m = unimodal(4, base=model, modality=modality).double()
    with torch.no_grad():  # non-default BatchNorm statistics and a non-zero bias, as after training
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
        for name, b in m.named_buffers():
            if name.endswith("running_mean") or name.endswith("running_var"):
                b.copy_(0.5 + torch.rand_like(b))
    return m.eval()


@pytest.mark.parametrize("fusion", ["concat", "sum"])
def test_fused_logits_start_as_the_sum_of_unimodal_logits(fusion, tmp_path):
    a, v = _trained_like("audio", 1), _trained_like("visual", 2)
    save_state_dict(a, tmp_path / "a.pt")
    save_state_dict(v, tmp_path / "v.pt")
    fused = create_model("av-small", num_classes=4, model_args={"fusion": fusion}).double()
    warm_start(fused, {"audio": str(tmp_path / "a.pt"), "visual": str(tmp_path / "v.pt")})
    fused.eval()
    x, y = _inputs()
    with torch.no_grad():
        want = a(x) + v(y)
        got = fused(x, y)
        emb = fused.encode({"audio": x, "visual": y})
    # the encoders are copies: their embeddings are bit-identical
    assert torch.equal(emb["audio"], a.encode({"audio": x})["audio"])
    assert torch.equal(emb["visual"], v.encode({"visual": y})["visual"])
    # the logits differ only by float64 rounding of one extra addition (|logits| ~ 10)
    assert torch.allclose(got, want, rtol=0, atol=1e-12 * float(want.abs().max() + 1))
    parts = fused.branch_logits(emb)
    if fusion == "sum":  # each modality's own logits are exactly its unimodal model's
        assert torch.equal(parts["audio"], a(x)) and torch.equal(parts["visual"], v(y))


def test_a_modality_without_a_run_starts_at_zero_logits():
    a = _trained_like("audio", 3, model="av-tiny")
    fused = create_model("av-tiny", num_classes=4).double()
    warm_start(fused, {"audio": a.state_dict()})
    fused.eval()
    x, y = _inputs(1)
    with torch.no_grad():
        assert torch.allclose(fused(x, y), a(x), rtol=0, atol=1e-12 * float(a(x).abs().max() + 1))
        assert torch.equal(fused.branch_logits(fused.encode({"audio": x, "visual": y}))["visual"],
                           torch.zeros(5, 4, dtype=torch.float64) + fused.fusion.fc.bias / 2)


def test_refusals():
    a = _trained_like("audio", 1)
    with pytest.raises(ModelError, match="concat or sum"):
        warm_start(create_model("av-small", num_classes=4, model_args={"fusion": "film"}), {"audio": a.state_dict()})
    with pytest.raises(ModelError, match="not a unimodal visual run"):
        warm_start(create_model("av-small", num_classes=4), {"visual": a.state_dict()})
    with pytest.raises(ModelError, match="does not fit"):  # an av-small run into av-tiny
        warm_start(create_model("av-tiny", num_classes=4), {"audio": a.state_dict()})
    with pytest.raises(ModelError, match="shape"):  # other number of classes
        warm_start(create_model("av-small", num_classes=3), {"audio": a.state_dict()})
    with pytest.raises(UsageError, match="unknown modality"):
        warm_start(create_model("av-small", num_classes=4), {"text": a.state_dict()})


def test_parse_init():
    assert parse_init("audio=a.pt,visual=v.pt") == {"audio": "a.pt", "visual": "v.pt"}
    assert parse_init(None) is None
    for bad in ("audio", "audio=", "=a.pt", "", "audio=a,audio=b"):
        with pytest.raises(UsageError):
            parse_init(bad)


@pytest.mark.parametrize("name", ["mmbalance.models.warm", "mmbalance.models.logit_scales", "mmbalance.models.av_small",
                                  "mmbalance.benchmark.robustness"])
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize("fusion", ["concat", "sum"])
def test_calibrated_start_is_the_scaled_sum_of_unimodal_logits(fusion):
    from mmbalance.data.dataset import Batch
    from mmbalance.models.logit_scales import fit_logit_scales

    a, v = _trained_like("audio", 4), _trained_like("visual", 5)
    fused = create_model("av-small", num_classes=4, model_args={"fusion": fusion}).double().train()
    x, y = _inputs(2)
    labels = torch.tensor([0, 1, 2, 3, 0])
    scales = warm_start(fused, {"audio": a.state_dict(), "visual": v.state_dict()},
                        calibrate_on=[Batch({"audio": x, "visual": y}, labels, torch.arange(5))])
    assert fused.training  # calibration ran in eval mode and gave the mode back
    with torch.no_grad():
        want = fit_logit_scales({"audio": a(x), "visual": v(y)}, labels)
        assert scales == pytest.approx(want, rel=1e-6)
        assert scales != pytest.approx({"audio": 1.0, "visual": 1.0}, rel=1e-3)  # the scales did something
        fused.eval()
        expected = scales["audio"] * a(x) + scales["visual"] * v(y)
        assert torch.allclose(fused(x, y), expected, rtol=0, atol=1e-12 * float(expected.abs().max() + 1))


def test_uncalibrated_start_reports_unit_scales():
    a = _trained_like("audio", 1)
    assert warm_start(create_model("av-small", num_classes=4).double(), {"audio": a.state_dict()}) == {"audio": 1.0}
