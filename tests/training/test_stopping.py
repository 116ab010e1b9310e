"""Early stopping on validation accuracy (--patience) and the "still at chance" warning."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mmbalance.cli.app import app
from mmbalance.data import save_tensor_dataset
from mmbalance.errors import UsageError
from mmbalance.models import load_state_dict
from mmbalance.training import TrainConfig, TrainingInterrupted, TrainingWarning, finetune
from mmbalance.training import loop
from mmbalance.training.stopping import chance_accuracy, chance_check_epoch, chance_warning, should_stop


def _cfg(data: str, out: Path, **kw) -> TrainConfig:
    base = dict(model="av-tiny", data=data, out=str(out), epochs=10, batch_size=32, lr=2e-3, seed=3)
    base.update(kw)
    return TrainConfig(**base)


_EVALUATE = loop.evaluate


class _Planted:
    """Replaces the validation accuracy of epoch e (1-based) by ``accuracies[e - 1]``."""

    def __init__(self, accuracies: list[float], done: int = 0) -> None:
        self.accuracies, self.epoch = accuracies, done

    def __call__(self, *args, **kwargs):
        out = _EVALUATE(*args, **kwargs)
        self.epoch += 1
        out["accuracy"] = self.accuracies[self.epoch - 1]
        return out


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return [{k: v for k, v in row.items() if not k.endswith("_seconds")} for row in csv.DictReader(fh)]


PLATEAU = [0.3, 0.5, 0.4, 0.5, 0.45, 0.9, 0.9, 0.9, 0.9, 0.9]  # best at epoch 2; a tie is no improvement


def test_early_stop_fires_after_patience_epochs_without_improvement(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "evaluate", _Planted(PLATEAU))
    kept: dict[int, dict[str, torch.Tensor]] = {}
    run = tmp_path / "run"
    result = finetune(_cfg(tiny_data, run, patience=3), progress=False,
                      on_epoch_end=lambda row: kept.__setitem__(row["epoch"], load_state_dict(run / "last.pt")))
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4, 5]  # epoch 6 (0.9) is never reached
    assert result.stopped_early and result.stopped_epoch == 5
    assert result.best_epoch == 2 and result.best_val_accuracy == 0.5
    best = load_state_dict(result.best_path)
    assert all(torch.equal(best[k], kept[2][k]) for k in best)  # best.pt is the best validation epoch
    assert not all(torch.equal(best[k], kept[5][k]) for k in best)
    rows = _rows(result.metrics_path)
    assert [int(r["epochs_since_best"]) for r in rows] == [0, 0, 1, 2, 3]
    assert [int(r["stopped_early"]) for r in rows] == [0, 0, 0, 0, 1]
    info = json.loads((run / "run.json").read_text())
    assert info["stopped_epoch"] == 5 and info["best_epoch"] == 2 and info["epochs_done"] == 5


def test_no_stop_while_improving_or_with_patience_0(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "evaluate", _Planted([0.4, 0.5, 0.6, 0.7]))
    rising = finetune(_cfg(tiny_data, tmp_path / "rising", epochs=4, patience=1), progress=False)
    assert len(rising.history) == 4 and not rising.stopped_early and rising.best_epoch == 4
    monkeypatch.setattr(loop, "evaluate", _Planted([0.5, 0.4, 0.4, 0.4]))
    off = finetune(_cfg(tiny_data, tmp_path / "off", epochs=4, patience=0), progress=False)
    assert len(off.history) == 4 and not off.stopped_early and off.best_epoch == 1
    # patience running out exactly at the cap is not an early stop
    monkeypatch.setattr(loop, "evaluate", _Planted([0.5, 0.4, 0.4]))
    cap = finetune(_cfg(tiny_data, tmp_path / "cap", epochs=3, patience=2), progress=False)
    assert len(cap.history) == 3 and not cap.stopped_early


def test_resume_keeps_the_patience_counter(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "evaluate", _Planted(PLATEAU))
    whole = finetune(_cfg(tiny_data, tmp_path / "whole", patience=3), progress=False)

    def interrupt(row):
        if row["epoch"] == 4:  # two epochs of patience used up
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "evaluate", _Planted(PLATEAU))
    with pytest.raises(TrainingInterrupted):
        finetune(_cfg(tiny_data, tmp_path / "cut", patience=3), progress=False, on_epoch_end=interrupt)
    monkeypatch.setattr(loop, "evaluate", _Planted(PLATEAU, done=4))
    resumed = finetune(resume=tmp_path / "cut", progress=False)
    assert resumed.resumed_from == 4 and resumed.stopped_epoch == whole.stopped_epoch == 5
    assert _rows(resumed.metrics_path) == _rows(whole.metrics_path)
    # a run that stopped early is finished: resuming it trains nothing
    again = finetune(resume=tmp_path / "cut", progress=False)
    assert len(again.history) == 5 and again.resumed_from == 5 and again.stopped_epoch == 5


@pytest.fixture
def blank_data(tmp_path) -> str:
    """Inputs that carry nothing (all zeros), balanced labels: no model can beat chance (25%)."""
    root = tmp_path / "blank"
    for split, n in (("train", 32), ("val", 16)):
        save_tensor_dataset(root / f"{split}.pt", {"audio": torch.zeros(n, 1, 8, 8),
                                                   "visual": torch.zeros(n, 3, 2, 8, 8)}, torch.arange(n) % 4)
    return str(root)


def test_chance_warning_fires_when_the_model_cannot_learn(blank_data, tmp_path):
    with pytest.warns(TrainingWarning, match=r"at chance after 1 of 3 epochs .*--lr") as caught:
        result = finetune(_cfg(blank_data, tmp_path / "cap", epochs=3, patience=0), progress=False)
    assert len([w for w in caught if w.category is TrainingWarning]) == 1  # once, after a third of the cap
    assert result.best_val_accuracy == pytest.approx(0.25) and len(result.warnings) == 1
    assert json.loads((tmp_path / "cap" / "run.json").read_text())["warnings"] == result.warnings
    # early stopping before a third of the cap: the check runs when the run stops
    with pytest.warns(TrainingWarning, match=r"at chance after 3 of 30 epochs"):
        stopped = finetune(_cfg(blank_data, tmp_path / "early", epochs=30, patience=2), progress=False)
    assert stopped.stopped_epoch == 3


def test_no_chance_warning_for_av_tiny_on_the_synthetic_data(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingWarning)
        result = finetune(_cfg("synthetic:av-dominance?n_train=512&n_val=128&n_test=8", tmp_path / "ok",
                               epochs=3, patience=0), progress=False)
    assert result.warnings == [] and result.best_val_accuracy > 0.25 + 0.02


def test_stopping_helpers():
    assert [should_stop(e, 2, 3) for e in (3, 4, 5)] == [False, False, True]
    assert not should_stop(100, 1, 0)  # patience 0: never
    assert [chance_check_epoch(n) for n in (1, 3, 4, 50)] == [1, 1, 2, 17]
    assert chance_warning(0.27, 0.25, 5, 15) is not None and chance_warning(0.28, 0.25, 5, 15) is None

    class Skewed:
        labels, num_classes = torch.tensor([1, 1, 1, 0, 2]), 4
    assert chance_accuracy(Skewed()) == pytest.approx(0.6)
    with pytest.raises(UsageError, match="--patience"):
        TrainConfig(model="av-tiny", data="d", out="o", patience=-1).validate()


def test_cli_reports_early_stop_and_prints_the_warning_once(blank_data, tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["finetune", "-m", "av-tiny", "-d", blank_data, "-o", str(out), "--epochs", "30",
                                      "--patience", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("warning: validation accuracy is still at chance after 3 of 30 epochs") == 1
    loud = CliRunner().invoke(app, ["finetune", "-m", "av-tiny", "-d", blank_data, "-o", str(tmp_path / "v"),
                                    "--epochs", "30", "--patience", "2"])
    assert "stopped early at epoch 3" in loud.stdout
    bad = CliRunner().invoke(app, ["finetune", "-m", "av-tiny", "-d", blank_data, "-o", str(tmp_path / "b"),
                                   "--patience", "-1"])
    assert bad.exit_code == 2
