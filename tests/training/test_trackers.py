"""``finetune --log tensorboard``: event files that TensorBoard reads back with metrics.csv's numbers."""

from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

from mmbalance.cli import app

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

runner = CliRunner()


def test_tensorboard_events_hold_the_metric_rows(tiny_data, tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(app, ["finetune", "-m", "av-tiny", "-d", tiny_data, "-o", str(out), "--epochs", "2",
                              "--patience", "0", "--batch-size", "16", "-q", "-r", "attribution",
                              "--lambda-warmup", "1", "--log", "tensorboard"])
    assert res.exit_code == 0, res.output
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "penalty", "lambda", "share_audio",
                "share_visual"):
        assert key in tags, key
        scalars = events.Scalars(key)
        assert [s.step for s in scalars] == [1, 2]
        for s, row in zip(scalars, rows):
            assert s.value == pytest.approx(float(row[key]), rel=1e-6, abs=1e-7), (key, s.step)  # float32 events
    assert [s.value for s in events.Scalars("lambda")] == [0.0, 1.0]  # the warm-up ramp


def test_an_unknown_tracker_exits_2(tiny_data, tmp_path):
    res = runner.invoke(app, ["finetune", "-m", "av-tiny", "-d", tiny_data, "-o", str(tmp_path / "x"), "--epochs",
                              "1", "-q", "--log", "wandb"])
    assert res.exit_code == 2 and "unknown --log 'wandb'" in res.output
