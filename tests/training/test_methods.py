"""The methods of issue 14: unimodal baselines, the unimodal ensemble, Gradient-Blending, OGM-GE's optimizer
and schedule, and auxiliary heads."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mmbalance.audit import audit
from mmbalance.errors import UsageError
from mmbalance.models import create_model, load_model
from mmbalance.training import TrainConfig, TrainingInterrupted, finetune
from mmbalance.training.loop import _make_optimizers
from mmbalance.training.regularizers import build_regularizer
from mmbalance.data import load_dataset
from mmbalance.data.splits import dataset_labels
from mmbalance.training.regularizers.gblend import GradientBlending, blend_update, gblend_weights


def _cfg(data: str, out: Path, **kw) -> TrainConfig:
    base = dict(model="av-tiny", data=data, out=str(out), epochs=1, batch_size=16, lr=2e-3, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _batch(n: int = 4, seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return ({"audio": torch.randn(n, 1, 16, 16, generator=g), "visual": torch.randn(n, 3, 2, 16, 16, generator=g)},
            torch.arange(n) % 3)


# -- unimodal baselines ---------------------------------------------------------------------------------------

def test_unimodal_run_sees_one_input_only_and_audits(tiny_data, tmp_path):
    result = finetune(_cfg(tiny_data, tmp_path / "a", unimodal="audio"), progress=False)
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["modalities"] == ["audio"] and run["config"]["unimodal"] == "audio"
    args = {"base": "av-tiny", "modality": "audio", "base_args": {}}
    model = load_model("unimodal", checkpoint=str(result.best_path), model_args=args, num_classes=4)
    assert model.modalities == ("audio",)
    assert not any(k.startswith("encoders.visual") for k in model.model.state_dict())
    inputs, _ = _batch()
    with torch.no_grad():
        clean = model(inputs)
        garbage = model({"audio": inputs["audio"], "visual": torch.full_like(inputs["visual"], math.nan)})
        no_visual = model({"audio": inputs["audio"]})
    assert torch.isfinite(clean).all()
    assert torch.equal(clean, garbage) and torch.equal(clean, no_visual)
    report = audit("unimodal", tiny_data, checkpoint=str(result.best_path), model_args=args, modalities=["audio"],
                   steps=4, progress=False, bootstrap=0, methods=["ig"])
    assert report.shares == {"audio": pytest.approx(1.0)}


def test_unimodal_changes_the_model_not_the_fused_one_with_a_zeroed_input(tiny_data, tmp_path):
    finetune(_cfg(tiny_data, tmp_path / "v", unimodal="visual"), progress=False)
    keys = torch.load(tmp_path / "v" / "best.pt", weights_only=True).keys()
    assert any(k.startswith("encoders.visual") for k in keys) and not any("audio" in k for k in keys)
    assert torch.load(tmp_path / "v" / "best.pt", weights_only=True)["fusion.fc.weight"].shape[1] == 32


@pytest.mark.parametrize("bad", [dict(unimodal="audio", regularizer="ogm-ge"), dict(unimodal="smell"),
                                 dict(optimizer="rmsprop"), dict(momentum=1.0), dict(scheduler="step", step_size=0),
                                 dict(aux_heads=True, regularizer="ogm-ge"), dict(gblend_every=0),
                                 dict(gblend_holdout=1.0), dict(gblend_floor=0.4), dict(gblend_smoothing=1.0),
                                 dict(modulation_start=3, modulation_end=2)])
def test_bad_method_settings_are_usage_errors(bad, tmp_path):
    with pytest.raises(UsageError):
        TrainConfig(model="av-tiny", data="d", out=str(tmp_path), **bad).validate(["audio", "visual"])


# -- unimodal ensemble ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("combine", ["softmax", "logits"])
def test_ensemble_is_the_average_of_its_members(combine):
    torch.manual_seed(0)
    ens = create_model("ensemble", num_classes=3, model_args={
        "members": [{"modality": "audio"}, {"modality": "visual"}], "combine": combine}).eval()
    inputs, _ = _batch()
    with torch.no_grad():
        out = ens(inputs["audio"], inputs["visual"])
        za, zv = ens.members[0](inputs["audio"]), ens.members[1](inputs["visual"])
    if combine == "softmax":
        assert torch.allclose(out.exp(), (F.softmax(za, 1) + F.softmax(zv, 1)) / 2, atol=1e-6)
    else:
        assert torch.allclose(out, (za + zv) / 2, atol=1e-6)
    assert not torch.allclose(out, za)


# -- Gradient-Blending ----------------------------------------------------------------------------------------

def test_gblend_weights_follow_a_planted_overfitting_gap():
    # both heads gain the same on validation; "visual" overfits four times as much, so it gets 16x less weight
    prev = {"audio": (1.0, 1.0), "visual": (1.0, 1.0), "fused": (1.0, 1.0)}
    now = {"audio": (0.7, 0.8), "visual": (0.4, 0.8), "fused": (0.9, 1.1)}  # fused: validation got worse
    w = gblend_weights(prev, now)
    assert w is not None
    assert w["fused"] == 0.0
    assert w["audio"] / w["visual"] == pytest.approx(16.0)
    assert sum(w.values()) == pytest.approx(1.0)
    # no head generalized: no new weights
    assert gblend_weights(prev, {k: (0.5, 1.2) for k in prev}) is None


def test_gblend_aux_heads_get_gradients_and_weights_scale_the_losses(tmp_path):
    cfg = TrainConfig(model="av-tiny", data="d", out=str(tmp_path), regularizer="gblend")
    reg = build_regularizer(cfg, ["audio", "visual"])
    adapter = load_model("av-tiny", num_classes=3)
    adapter.train()
    reg.check(adapter)
    inputs, labels = _batch()
    reg.begin_epoch(1)
    reg.weights = {"audio": 1.0, "visual": 0.0, "fused": 0.0}
    out = reg.step(adapter, inputs, labels)
    out.loss.backward()
    heads = reg.extra_modules().heads
    assert heads["audio"].weight.grad.abs().sum() > 0
    assert heads["visual"].weight.grad is None or heads["visual"].weight.grad.abs().sum() == 0
    enc = adapter.model.encoders
    assert enc["audio"].proj.weight.grad.abs().sum() > 0
    assert enc["visual"].proj.weight.grad is None or enc["visual"].proj.weight.grad.abs().sum() == 0
    logits = reg.head_logits(adapter, inputs)
    assert out.loss.item() == pytest.approx(F.cross_entropy(logits["audio"], labels).item(), rel=1e-5)


def test_gblend_run_logs_weights_and_resumes_exactly(tiny_data, tmp_path):
    cfg = dict(regularizer="gblend", epochs=2)
    full = finetune(_cfg(tiny_data, tmp_path / "full", **cfg), progress=False)
    rows = list(csv.DictReader(open(full.metrics_path)))
    for row in rows:
        assert sum(float(row[f"w_{k}"]) for k in ("audio", "visual", "fused")) == pytest.approx(1.0, abs=1e-5)
    assert rows[0]["w_audio"] != rows[1]["w_audio"] or rows[0]["w_fused"] != str(1 / 3)  # re-estimated

    def stop(row):
        raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        finetune(_cfg(tiny_data, tmp_path / "cut", **cfg), progress=False, on_epoch_end=stop)
    resumed = finetune(resume=tmp_path / "cut", progress=False)
    a, b = torch.load(resumed.last_path, weights_only=True), torch.load(full.last_path, weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not any(k.startswith("aux") for k in a)  # best.pt/last.pt stay the plain model


def _one_hot_swings(epochs: int) -> list[dict[str, tuple[float, float]]]:
    """Losses whose raw G-Blend estimate is a different one-hot every epoch (the issue's swings)."""
    heads = ("audio", "visual", "fused")
    obs = [{k: (1.0, 1.0) for k in heads}]
    for e in range(epochs):
        winner = heads[e % 2]  # audio, visual, audio, ...: the fused head never wins
        obs.append({k: (obs[-1][k][0] - 0.1, obs[-1][k][1] - (0.1 if k == winner else -0.05)) for k in heads})
    return obs


def test_gblend_raw_estimate_swings_between_one_hots_and_the_published_update_does_not():
    obs = _one_hot_swings(8)
    raws = [gblend_weights(a, b) for a, b in zip(obs, obs[1:])]
    assert all(r is not None and max(r.values()) == 1.0 and r["fused"] == 0.0 for r in raws)  # what users saw
    smoothing, floor = 0.5, 0.05
    w = {k: 1 / 3 for k in obs[0]}
    bound = (1 - smoothing) * (1 - 3 * floor)
    for prev, now in zip(obs, obs[1:]):
        new = blend_update(w, prev, now, smoothing=smoothing, floor=floor)
        assert sum(new.values()) == pytest.approx(1.0)
        assert min(new.values()) >= floor  # the fused head always keeps a share of the loss
        assert max(abs(new[k] - w[k]) for k in w) <= bound + 1e-12  # smooth: one step moves a weight this little
        assert max(new.values()) < 1 - 2 * floor
        w = new
    # with no smoothing the floor alone still keeps every head alive, and no generalization keeps the weights
    assert min(blend_update(w, obs[0], obs[1], smoothing=0.0, floor=floor).values()) == pytest.approx(floor)
    worse = {k: (t - 0.1, v + 0.1) for k, (t, v) in obs[-1].items()}
    assert blend_update(w, obs[-1], worse, smoothing=0.5, floor=floor) == w


def test_gblend_holds_out_a_stratified_part_of_the_training_data_and_never_trains_on_it(tiny_data, tmp_path,
                                                                                          monkeypatch):
    import mmbalance.training.loop as loop

    seen: list[int] = []
    original = loop.make_loader

    def recording(dataset, **kw):
        if kw.get("sampler") is not None and getattr(dataset, "indices", None) is not None:
            kw["sampler"] = list(kw["sampler"])
            seen.extend(dataset.indices[i] for i in kw["sampler"])
        return original(dataset, **kw)

    monkeypatch.setattr(loop, "make_loader", recording)
    grads: list[float] = []

    def after_backward(self, adapter):
        grads.append(float(adapter.model.fusion.fc.weight.grad.abs().sum()))

    monkeypatch.setattr(GradientBlending, "after_backward", after_backward)
    finetune(_cfg(tiny_data, tmp_path / "g", regularizer="gblend", epochs=2, gblend_holdout=0.25), progress=False)
    train = load_dataset(tiny_data, split="train")
    reg = build_regularizer(_cfg(tiny_data, tmp_path / "x", regularizer="gblend", gblend_holdout=0.25),
                            ["audio", "visual"])
    keep = reg.training_indices(train)
    held = sorted(set(range(len(train))) - set(keep))
    labels = dataset_labels(train)
    for c in set(labels):  # a quarter of every class, rounded
        n_c = labels.count(c)
        assert sum(labels[i] == c for i in held) == max(1, min(n_c - 1, round(n_c * 0.25)))
    assert seen and set(seen) == set(keep) and not set(seen) & set(held)  # trained on the rest, every epoch
    assert grads and min(grads) > 0  # the fused head had gradient at every step


# -- OGM-GE as published: optimizer and schedule ----------------------------------------------------------------

def test_ogm_ge_with_sgd_uses_momentum_and_a_step_schedule():
    cfg = TrainConfig(model="av-tiny", data="d", out="o", regularizer="ogm-ge", optimizer="sgd", lr=1e-3,
                      weight_decay=1e-4, scheduler="step", step_size=2, gamma=0.1, epochs=5)
    adapter = load_model("av-tiny", num_classes=3)
    opts, schs = _make_optimizers(cfg, adapter, build_regularizer(cfg, ["audio", "visual"]))
    assert [type(o).__name__ for o in opts] == ["SGD"]
    group = opts[0].param_groups[0]
    assert group["momentum"] == 0.9 and group["weight_decay"] == 1e-4
    lrs = []
    for _ in range(4):
        lrs.append(opts[0].param_groups[0]["lr"])
        opts[0].step()
        schs[0].step()
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])
    default = TrainConfig(model="av-tiny", data="d", out="o")
    assert type(_make_optimizers(default, adapter, build_regularizer(default, ["audio", "visual"]))[0][0]).__name__ \
        == "Adam"


def test_ogm_ge_modulates_only_inside_its_window():
    cfg = TrainConfig(model="av-tiny", data="d", out="o", regularizer="ogm-ge", modulation_start=2,
                      modulation_end=3)
    reg = build_regularizer(cfg, ["audio", "visual"])
    adapter = load_model("av-tiny", num_classes=3)
    adapter.train()
    inputs, labels = _batch()
    changed = {}
    for epoch in (1, 2, 4):
        reg.begin_epoch(epoch)
        adapter.zero_grad()
        reg.step(adapter, inputs, labels).loss.backward()
        before = adapter.model.encoders["audio"].proj.weight.grad.clone()
        reg.after_backward(adapter)
        changed[epoch] = not torch.equal(before, adapter.model.encoders["audio"].proj.weight.grad)
    assert changed == {1: False, 2: True, 4: False}


# -- attribution with auxiliary heads --------------------------------------------------------------------------

def test_aux_heads_give_the_encoders_their_own_loss():
    adapter = load_model("av-tiny", num_classes=3)
    adapter.train()
    inputs, labels = _batch()
    grads = {}
    for aux in (False, True):
        cfg = TrainConfig(model="av-tiny", data="d", out="o", regularizer="attribution", scope="fusion",
                          aux_heads=aux, aux_weight=1.0)
        reg = build_regularizer(cfg, ["audio", "visual"])
        reg.check(adapter)
        reg.begin_epoch(1)
        torch.manual_seed(0)
        adapter.zero_grad()
        out = reg.step(adapter, inputs, labels)
        out.loss.backward()
        grads[aux] = adapter.model.encoders["visual"].proj.weight.grad.clone()
        if aux:
            assert reg.extra_modules().heads["visual"].weight.grad.abs().sum() > 0
    assert not torch.allclose(grads[False], grads[True])


# -- the finetune flags ------------------------------------------------------------------------------------------

def test_finetune_cli_takes_the_method_flags(tiny_data, tmp_path):
    from typer.testing import CliRunner

    from mmbalance.cli import app
    runner = CliRunner()
    res = runner.invoke(app, ["finetune", "-m", "av-tiny", "-d", tiny_data, "-o", str(tmp_path / "r"), "--epochs", "1",
                              "-b", "16", "--unimodal", "visual", "--optimizer", "sgd", "--momentum", "0.5",
                              "--scheduler", "step", "--step-size", "1", "-q"])
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "r" / "run.json").read_text())["config"]
    assert (cfg["unimodal"], cfg["optimizer"], cfg["momentum"], cfg["scheduler"]) == ("visual", "sgd", 0.5, "step")
    bad = runner.invoke(app, ["finetune", "-m", "av-tiny", "-d", tiny_data, "-o", str(tmp_path / "b"),
                              "--optimizer", "rmsprop"])
    assert bad.exit_code == 2 and "unknown --optimizer" in bad.output and "Traceback" not in bad.output
