"""The training loop: metrics, determinism, resume after interruption, non-finite losses."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from mmbalance.errors import TrainingError, UsageError
from mmbalance.models import load_state_dict
from mmbalance.training import TrainConfig, TrainingInterrupted, finetune, load_resume
from mmbalance.training.regularizers import PlainTraining


def _cfg(data: str, out: Path, **kw) -> TrainConfig:
    base = dict(model="av-tiny", data=data, out=str(out), epochs=2, batch_size=16, lr=2e-3, seed=3, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return [{k: v for k, v in row.items() if not k.endswith("_seconds")} for row in csv.DictReader(fh)]


def _same_weights(a: Path, b: Path) -> bool:
    sa, sb = load_state_dict(a), load_state_dict(b)
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_metrics_have_penalty_lambda_and_share_columns(tiny_data, tmp_path):
    result = finetune(_cfg(tiny_data, tmp_path / "a", regularizer="attribution", lambda_=0.5, lambda_warmup=1),
                      progress=False)
    rows = list(csv.DictReader(open(result.metrics_path)))
    assert list(rows[0])[:9] == ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr",
                                 "epoch_seconds", "penalty", "lambda"]
    assert {"share_audio", "share_visual", "val_penalty"} <= set(rows[0])
    assert [float(r["lambda"]) for r in rows] == [0.0, 0.5]
    assert all(float(r["penalty"]) >= 0 for r in rows)
    for r in rows:
        assert float(r["share_audio"]) + float(r["share_visual"]) == pytest.approx(1.0)
    assert result.best_path.is_file() and result.last_path.is_file() and result.resume_path.is_file()
    assert set(load_state_dict(result.best_path)) == set(load_state_dict(result.last_path))  # plain state dicts


def test_plain_runs_leave_penalty_and_lambda_empty(tiny_data, tmp_path):
    result = finetune(_cfg(tiny_data, tmp_path / "p", epochs=1), progress=False)
    row = next(csv.DictReader(open(result.metrics_path)))
    assert row["penalty"] == "" and row["lambda"] == ""
    assert float(row["share_audio"]) > 0


@pytest.mark.parametrize("regularizer", ["attribution", "modality-dropout"])
def test_same_seed_same_weights(tiny_data, tmp_path, regularizer):
    a = finetune(_cfg(tiny_data, tmp_path / "a", regularizer=regularizer, epochs=1), progress=False)
    b = finetune(_cfg(tiny_data, tmp_path / "b", regularizer=regularizer, epochs=1), progress=False)
    assert _same_weights(a.last_path, b.last_path)
    c = finetune(_cfg(tiny_data, tmp_path / "c", regularizer=regularizer, epochs=1, seed=4), progress=False)
    assert not _same_weights(a.last_path, c.last_path)


@pytest.mark.parametrize("regularizer,extra", [
    ("attribution", {"lambda_warmup": 2, "scope": "fusion"}),
    ("ogm-ge", {}),
])
def test_resume_after_interruption_equals_an_uninterrupted_run(tiny_data, tmp_path, regularizer, extra):
    cfg = dict(regularizer=regularizer, epochs=3, **extra)
    full = finetune(_cfg(tiny_data, tmp_path / "full", **cfg), progress=False)

    def stop_after_first(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted) as info:
        finetune(_cfg(tiny_data, tmp_path / "cut", **cfg), progress=False, on_epoch_end=stop_after_first)
    assert info.value.epochs_done == 1
    assert len(_rows(tmp_path / "cut" / "metrics.csv")) == 1
    resumed = finetune(resume=tmp_path / "cut", progress=False)
    assert resumed.resumed_from == 1
    assert _rows(resumed.metrics_path) == _rows(full.metrics_path)  # each epoch logged once, same numbers
    assert _same_weights(resumed.last_path, full.last_path)
    assert _same_weights(resumed.best_path, full.best_path)
    again = finetune(resume=tmp_path / "cut", progress=False, device="cpu")  # finished: nothing left to do
    assert len(again.history) == 3 and again.resumed_from == 3


def test_resume_twice_with_another_device(tiny_data, tmp_path):
    def stop_at(epoch):
        def callback(row):
            if row["epoch"] == epoch:
                raise KeyboardInterrupt
        return callback

    out = tmp_path / "twice"
    with pytest.raises(TrainingInterrupted):
        finetune(_cfg(tiny_data, out, epochs=3, device="auto"), progress=False, on_epoch_end=stop_at(1))
    with pytest.raises(TrainingInterrupted):
        finetune(resume=out, device="cpu", progress=False, on_epoch_end=stop_at(2))
    result = finetune(resume=out, progress=False)
    assert [row["epoch"] for row in result.history] == [1, 2, 3]


def test_interrupt_before_the_first_epoch_is_resumable(tiny_data, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = PlainTraining.step

    def flaky(self, adapter, inputs, labels):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, adapter, inputs, labels)

    monkeypatch.setattr(PlainTraining, "step", flaky)
    with pytest.raises(TrainingInterrupted) as info:
        finetune(_cfg(tiny_data, tmp_path / "r", epochs=1), progress=False)
    assert info.value.epochs_done == 0
    config, state = load_resume(tmp_path / "r")
    assert state["epoch"] == 0 and config.epochs == 1
    monkeypatch.setattr(PlainTraining, "step", original)
    assert len(finetune(resume=tmp_path / "r", progress=False).history) == 1


def test_nan_loss_stops_and_keeps_the_last_good_epoch(tiny_data, tmp_path, monkeypatch):
    original = PlainTraining.step

    def poisoned(self, adapter, inputs, labels):
        out = original(self, adapter, inputs, labels)
        if self.epoch == 2:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(PlainTraining, "step", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(TrainingError, match="loss became nan in epoch 2") as info:
        finetune(_cfg(tiny_data, out, epochs=3), progress=False)
    assert "resume" in str(info.value)
    assert len(_rows(out / "metrics.csv")) == 1
    _, state = load_resume(out)
    assert state["epoch"] == 1
    weights = load_state_dict(out / "last.pt")
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    assert all(torch.equal(weights[k], state["model"][k]) for k in weights)


def test_bad_resume_directories(tmp_path, tiny_data):
    with pytest.raises(TrainingError, match="no such directory"):
        finetune(resume=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingError, match="holds no run"):
        finetune(resume=tmp_path / "empty")
    run = finetune(_cfg(tiny_data, tmp_path / "ok", epochs=1), progress=False)
    (run.out_dir / "resume.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="unreadable"):
        finetune(resume=run.out_dir)
    with pytest.raises(UsageError):
        finetune(_cfg(tiny_data, tmp_path / "x"), resume=run.out_dir)


def test_resume_of_an_incompatible_run(tmp_path, tiny_data):
    a = finetune(_cfg(tiny_data, tmp_path / "a", epochs=2), progress=False)
    b = finetune(_cfg(tiny_data, tmp_path / "b", epochs=1, model_args={"embedding_dim": 8}), progress=False)
    (a.out_dir / "resume.pt").write_bytes((b.out_dir / "resume.pt").read_bytes())  # another run's state
    with pytest.raises(TrainingError, match="another configuration"):
        finetune(resume=a.out_dir)


def test_zero_modality_trains_a_unimodal_baseline(tiny_data, tmp_path):
    result = finetune(_cfg(tiny_data, tmp_path / "v", epochs=1, zero_modalities=["audio"], level="input"),
                      progress=False)
    row = result.history[-1]
    assert row["share_audio"] == pytest.approx(0.0, abs=1e-6)  # a zero input has zero input attribution


def test_amp_needs_cuda(tiny_data, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(UsageError, match="CUDA"):
        finetune(_cfg(tiny_data, tmp_path / "amp", amp=True, device="cpu"), progress=False)
