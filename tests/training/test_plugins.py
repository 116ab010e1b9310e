"""Plug-in models without encode/fuse in ``finetune``: ``--embedding-layer`` through forward hooks.

The toys (``tests/models/toy_plugins.py``) have per-modality encoders ``audio_net``/``visual_net``
and a head that mixes them (``TwoBranchNet``: tanh MLP; ``AttentionNet``: one
``F.scaled_dot_product_attention`` layer over both modalities' tokens).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from mmbalance.cli import app
from mmbalance.data import load_dataset
from mmbalance.models import load_model
from mmbalance.training import TrainConfig, TrainingInterrupted, finetune
from mmbalance.training.differentiable import AttributionSpec, double_backward_attention, modality_scores
from mmbalance.training.embeddings import branch_logits, training_view
from mmbalance.training.regularizers import build_regularizer, encoder_parameters, fusion_parameters

TOYS = Path(__file__).resolve().parents[1] / "models" / "toy_plugins.py"
LAYERS = "audio=audio_net,visual=visual_net"
MODS = ("audio", "visual")
runner = CliRunner()


def _spec(name: str) -> str:
    return f"{TOYS}:build_{name}"


def _adapter(name: str, classes: int = 4):
    torch.manual_seed(0)
    return load_model(_spec(name), num_classes=classes, modalities=list(MODS))


def _batch(n: int = 6, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    inputs = {"audio": torch.randn(n, 1, 8, 8, generator=g), "visual": torch.randn(n, 3, 2, 8, 8, generator=g)}
    return inputs, torch.arange(n) % 4


def _reg(adapter, layers=LAYERS, **settings):
    cfg = TrainConfig(model="x", data="d", out="o", embedding_layers=layers, **settings)
    reg = build_regularizer(cfg, MODS)
    reg.check(adapter, training_view(adapter, cfg.embedding_layers, needed_by=reg.needs_embeddings()))
    reg.begin_epoch(1)
    return reg


def _grads(adapter, loss) -> dict[str, torch.Tensor]:
    adapter.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in adapter.named_parameters() if p.grad is not None}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return [{k: v for k, v in row.items() if not k.endswith("_seconds")} for row in csv.DictReader(fh)]


# -- the command line: one epoch of each plug-in with each regularizer ----------------------------------


@pytest.mark.parametrize("model", ["two_branch", "attention"])
@pytest.mark.parametrize("extra", [["-r", "attribution", "--lambda", "2"],
                                   ["-r", "attribution", "--attribution", "ig", "--attr-steps", "2", "--scope", "all"],
                                   ["-r", "ogm-ge"], ["-r", "modality-dropout"], ["-r", "gblend"],
                                   ["--aux-heads"], ["-r", "attribution", "--aux-heads"]],
                         ids=["attribution", "attribution-ig-all", "ogm-ge", "modality-dropout", "gblend",
                              "aux-heads", "attribution-aux"])
def test_plugin_finetunes_one_epoch_with_embedding_layers(tiny_data, tmp_path, model, extra):
    out = tmp_path / "run"
    res = runner.invoke(app, ["finetune", "-m", _spec(model), "-d", tiny_data, "-o", str(out), "--epochs", "1",
                              "--batch-size", "16", "-q", "--embedding-layer", LAYERS, *extra])
    assert res.exit_code == 0, res.output
    row = _rows(out / "metrics.csv")[0]
    for key in ("train_loss", "val_loss", "val_accuracy", "share_audio", "share_visual"):
        assert math.isfinite(float(row[key])), (key, row)
    assert float(row["share_audio"]) + float(row["share_visual"]) == pytest.approx(1.0, abs=1e-6)
    if "attribution" in extra:
        assert float(row["penalty"]) > 0 and float(row["lambda"]) > 0
    if "gblend" in extra:  # the blend weights of the fused head and both auxiliary heads
        assert sum(float(row[f"w_{k}"]) for k in ("audio", "visual", "fused")) == pytest.approx(1.0, abs=1e-5)
    saved = json.loads((out / "run.json").read_text())["config"]
    assert saved["embedding_layers"] == {"audio": "audio_net", "visual": "visual_net"}


def test_sdpa_model_at_the_input_level(tiny_data, tmp_path):
    out = tmp_path / "in"
    res = runner.invoke(app, ["finetune", "-m", _spec("attention"), "-d", tiny_data, "-o", str(out), "--epochs", "1",
                              "--batch-size", "16", "-q", "-r", "attribution", "--level", "input", "--scope", "all"])
    assert res.exit_code == 0, res.output
    row = _rows(out / "metrics.csv")[0]
    assert float(row["penalty"]) > 0 and math.isfinite(float(row["share_audio"]))


@pytest.mark.parametrize("extra,needs", [(["-r", "ogm-ge"], "-r ogm-ge"),
                                         (["-r", "attribution"], "-r attribution at --level embedding"),
                                         (["-r", "gblend"], "-r gblend"), (["--aux-heads"], "--aux-heads")])
def test_no_embedding_layer_is_one_clear_line(tiny_data, tmp_path, extra, needs):
    res = runner.invoke(app, ["finetune", "-m", _spec("two_branch"), "-d", tiny_data, "-o", str(tmp_path / "x"),
                              "--epochs", "1", "-q", *extra])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert needs in text and "--embedding-layer audio=" in text and "Traceback" not in text


@pytest.mark.parametrize("layers,message", [
    ("audio=audio_net,visual=visual_nett", "has no module 'visual_nett'"),
    ("audio=audio_net", "names no module for visual"),
    ("audio=audio_net,speech=visual_net", "unknown modality speech"),
    ("audio", "malformed --embedding-layer"),
])
def test_bad_embedding_layers_exit_2(tiny_data, tmp_path, layers, message):
    res = runner.invoke(app, ["finetune", "-m", _spec("two_branch"), "-d", tiny_data, "-o", str(tmp_path / "x"),
                              "--epochs", "1", "-q", "-r", "ogm-ge", "--embedding-layer", layers])
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())


def test_resume_of_a_plugin_run_keeps_its_embedding_layers(tiny_data, tmp_path):
    def cfg(out: Path) -> TrainConfig:
        return TrainConfig(model=_spec("two_branch"), data=tiny_data, out=str(out), epochs=2, batch_size=16,
                           regularizer="ogm-ge", embedding_layers={"audio": "audio_net", "visual": "visual_net"},
                           scheduler="constant")

    def stop_after_first(row: dict) -> None:
        raise KeyboardInterrupt

    full = finetune(cfg(tmp_path / "full"), progress=False)
    with pytest.raises(TrainingInterrupted):
        finetune(cfg(tmp_path / "cut"), progress=False, on_epoch_end=stop_after_first)
    res = runner.invoke(app, ["finetune", "--resume", str(tmp_path / "cut"), "--trust-checkpoint", "-q"])
    assert res.exit_code == 0, res.output
    assert _rows(tmp_path / "cut" / "metrics.csv") == _rows(full.metrics_path)
    a = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    b = torch.load(full.last_path, weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- the regularizers act through the hooks ---------------------------------------------------------------


@pytest.mark.parametrize("model", ["two_branch", "attention"])
@pytest.mark.parametrize("scope", ["fusion", "all"])
def test_attribution_penalty_changes_the_gradients(model, scope):
    adapter = _adapter(model)
    inputs, labels = _batch()
    plain = _grads(adapter, F.cross_entropy(adapter(inputs), labels))
    reg = _reg(adapter, regularizer="attribution", lambda_=1.0, scope=scope, target="audio=0.9,visual=0.1")
    out = reg.step(adapter, inputs, labels)
    assert float(out.penalty) > 0
    assert torch.allclose(out.task_loss, F.cross_entropy(adapter(inputs), labels))  # the same forward
    grads = _grads(adapter, out.loss)
    head = {id(p) for p in fusion_parameters(adapter, reg.view)}
    encoders = {id(p) for ps in encoder_parameters(adapter, reg.view).values() for p in ps}
    assert head and encoders and not head & encoders
    changed = {n for n, p in adapter.named_parameters() if not torch.allclose(grads[n], plain[n], atol=1e-7)}
    params = dict(adapter.named_parameters())
    assert any(id(params[n]) in head for n in changed)  # the penalty reaches the head
    reaches_encoders = any(id(params[n]) in encoders for n in changed)
    assert reaches_encoders == (scope == "all")  # ... and the encoders only with --scope all
    zero = _reg(adapter, regularizer="attribution", lambda_=0.0, scope=scope)
    assert all(torch.allclose(g, plain[n]) for n, g in _grads(adapter, zero.step(adapter, inputs, labels).loss).items())


def test_hooks_on_a_builtin_equal_its_encode_fuse():
    adapter = load_model("av-tiny", num_classes=4)
    inputs = {"audio": torch.randn(5, 1, 16, 16), "visual": torch.randn(5, 3, 2, 16, 16)}
    labels = torch.arange(5) % 4
    results = []
    for layers in (None, "audio=encoders.audio,visual=encoders.visual"):
        reg = _reg(adapter, layers=layers, regularizer="attribution", attribution="ig", attr_steps=3, scope="fusion")
        assert type(reg.view).__name__ == ("EncodeFuseView" if layers is None else "HookView")
        out = reg.step(adapter, inputs, labels)
        results.append((out.loss.detach(), out.penalty, _grads(adapter, out.loss)))
    (loss_a, pen_a, g_a), (loss_b, pen_b, g_b) = results
    assert torch.allclose(loss_a, loss_b) and torch.allclose(pen_a, pen_b)
    assert g_a.keys() == g_b.keys() and all(torch.allclose(g_a[n], g_b[n], atol=1e-6) for n in g_a)


def test_ogm_ge_coefficients_come_from_the_hooked_encoders():
    adapter = _adapter("two_branch")
    with torch.no_grad():  # make audio decisive: the visual encoder's output is ~0
        adapter.model.visual_net[-1].weight.mul_(1e-3)
        adapter.model.visual_net[-1].bias.zero_()
        adapter.model.audio_net[-1].weight.mul_(5.0)
    inputs, _ = _batch(n=12)
    with torch.no_grad():
        labels = adapter(inputs).argmax(1)  # audio alone gets them right, so audio is the confident one
    reg = _reg(adapter, regularizer="ogm-ge", alpha=1.0)
    view = reg.view
    emb = view.encode(inputs)
    parts = branch_logits(adapter, view, inputs, emb)
    zero_visual = adapter.model.head(torch.cat([emb["audio"], torch.zeros_like(emb["visual"])], 1))
    assert torch.allclose(parts["audio"], zero_visual, atol=1e-6)  # the other embedding at its zero baseline
    out = reg.step(adapter, inputs, labels)
    assert reg.coeffs["audio"] < 1.0 and reg.coeffs["visual"] == 1.0
    enc = encoder_parameters(adapter, view)
    assert {id(p) for p in enc["audio"]} == {id(p) for p in adapter.model.audio_net.parameters()}
    before = _grads(adapter, out.loss)
    reg.after_backward(adapter)
    for name, p in adapter.named_parameters():
        if any(p is q for q in enc["audio"]) and p.dim() >= 2:
            assert not torch.allclose(p.grad, before[name])  # modulated, plus noise
        elif name.startswith("model.head"):
            assert torch.equal(p.grad, before[name])  # the head is left alone


def test_sdpa_double_backward_needs_the_math_kernel():
    adapter = _adapter("attention")
    inputs, labels = _batch()
    spec = AttributionSpec(method="gradxinput", level="input")  # differentiated twice (Shapley values are not)
    with double_backward_attention(False):  # the fused CPU kernel has no double backward
        scores = modality_scores(adapter, inputs, labels, spec, create_graph=True)
    with pytest.raises(RuntimeError, match="not implemented"):
        scores.sum().backward()
    adapter.zero_grad()
    with double_backward_attention():
        scores = modality_scores(adapter, inputs, labels, spec, create_graph=True)
    scores.sum().backward()
    grad = adapter.model.qkv.weight.grad  # through the attention's backward, differentiated again
    assert grad is not None and bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0
    assert torch.backends.cuda.flash_sdp_enabled()  # the switch is undone after the block


def test_evaluation_shares_use_the_hooks(tiny_data):
    from mmbalance.training.loop import evaluate

    adapter = _adapter("two_branch")
    val = load_dataset(tiny_data, split="val")
    view = training_view(adapter, LAYERS)
    spec = AttributionSpec(method="gradxinput")  # Shapley values agree at both levels by design; this one does not
    hooked = evaluate(adapter, val, batch_size=16, device=torch.device("cpu"), spec=spec, view=view)
    inputs = evaluate(adapter, val, batch_size=16, device=torch.device("cpu"), spec=spec)
    assert hooked["shares"] != pytest.approx(inputs["shares"])  # embedding level, not the input fallback
    assert sum(hooked["shares"].values()) == pytest.approx(1.0)


def test_extra_inputs_pass_through_the_input_level_untouched():
    seen = []

    class WithMask(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)

        def forward(self, audio, visual, mask):
            seen.append(mask)
            return self.lin(audio * mask + visual)

    from mmbalance.models import ModelAdapter

    adapter = ModelAdapter(WithMask(), ["audio", "visual"])
    mask = torch.tensor([[1, 1, 0, 0]] * 3)
    inputs = {"audio": torch.randn(3, 4), "visual": torch.randn(3, 4), "mask": mask}
    forward = lambda x: adapter.model(x["audio"], x["visual"], x["mask"])  # noqa: E731
    scores = modality_scores(adapter, inputs, torch.tensor([0, 1, 2]), AttributionSpec(method="ig", level="input",
                                                                                          steps=2),
                             forward=forward)
    assert scores.shape == (3, 2)
    assert all(m.dtype == torch.int64 and torch.equal(m, mask.repeat(m.shape[0] // 3, 1)) for m in seen)


def test_in_place_operations_after_the_named_module_do_not_double_count():
    class InPlace(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.audio_net = torch.nn.Linear(4, 3)
            self.visual_net = torch.nn.Linear(4, 3)
            self.head = torch.nn.Linear(6, 2)

        def forward(self, audio, visual):
            a = self.audio_net(audio)
            a.mul_(2.0)  # in place, after the hooked module
            return self.head(torch.tanh(torch.cat([a, self.visual_net(visual)], 1)))

    from mmbalance.models import ModelAdapter

    torch.manual_seed(0)
    adapter = ModelAdapter(InPlace(), ["audio", "visual"])
    inputs = {"audio": torch.randn(3, 4), "visual": torch.randn(3, 4)}
    view = training_view(adapter, LAYERS)
    emb, logits = view.encode_with_logits(inputs, grad=True)
    assert torch.allclose(emb["audio"], adapter.model.audio_net(inputs["audio"]))  # the module's own output
    assert torch.allclose(view.bind(inputs)(emb), logits)  # substituting it reproduces the model
    leaf = {m: e.detach().requires_grad_(True) for m, e in emb.items()}
    view.bind(inputs)(leaf).sum().backward()  # in place on a leaf that requires grad: no error
    assert leaf["audio"].grad is not None
