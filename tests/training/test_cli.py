"""``mmbalance finetune`` on the command line: options, bad input (exit 2), resume, interruption."""

from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

from mmbalance.cli import app
from mmbalance.training.regularizers import PlainTraining

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, ["finetune", *args])


def _base(data: str, out) -> list[str]:
    return ["--model", "av-tiny", "--data", data, "--out", str(out), "--epochs", "1", "--batch-size", "16", "-q"]


def test_attribution_run_from_the_command_line(tiny_data, tmp_path):
    out = tmp_path / "run"
    res = _invoke(*_base(tiny_data, out), "--regularizer", "attribution", "--lambda", "0.5", "--attribution", "ig",
                  "--attr-steps", "2", "--pool", "l2", "--penalty", "kl", "--target", "audio=0.4,visual=0.6",
                  "--scope", "fusion", "--lambda-warmup", "0")
    assert res.exit_code == 0, res.output
    row = next(csv.DictReader(open(out / "metrics.csv")))
    assert float(row["lambda"]) == 0.5 and row["penalty"] != ""
    import json

    saved = json.loads((out / "run.json").read_text())["config"]
    assert saved["attribution"] == "ig" and saved["scope"] == "fusion" and saved["target"] == "audio=0.4,visual=0.6"


@pytest.mark.parametrize("args,message", [
    (["--regularizer", "attribution", "--lambda", "-1"], "--lambda"),
    (["--target", "audio=0.5,visual=0.6"], "sum to 1.1"),
    (["--target", "audio=0.5,speech=0.5"], "unknown modality speech"),
    (["--target", "audio=0.5"], "sum to 0.5"),
    (["--target", "audio=half,visual=0.5"], "malformed --target"),
    (["--regularizer", "dropout"], "unknown --regularizer"),
    (["--pool", "l3"], "unknown --pool"),
    (["--penalty", "huber"], "unknown --penalty"),
    (["--scope", "encoders"], "unknown --scope"),
    (["--level", "logits"], "unknown --level"),
    (["--attribution", "shap"], "unknown --attribution"),
    (["--attr-steps", "0"], "--attr-steps"),
    (["--lambda-warmup", "-2"], "--lambda-warmup"),
    (["--p", "1.5"], "--p"),
    (["--zero-modality", "speech"], "unknown modality speech"),
])
def test_bad_options_exit_2(tiny_data, tmp_path, args, message):
    res = _invoke(*_base(tiny_data, tmp_path / "bad"), *args)
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())
    assert not (tmp_path / "bad" / "best.pt").exists()


@pytest.mark.parametrize("setup,message", [
    (lambda p: None, "no such directory"),
    (lambda p: p.mkdir(), "holds no run"),
    (lambda p: (p.mkdir(), (p / "run.json").write_text("{not json")), "unreadable"),
])
def test_bad_resume_directory_exits_2(tmp_path, setup, message):
    target = tmp_path / "r"
    setup(target)
    res = _invoke("--resume", str(target))
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())


def test_resume_takes_no_other_settings(tiny_data, tmp_path):
    res = _invoke("--resume", str(tmp_path), "--lr", "0.1")
    assert res.exit_code == 2 and "--lr" in res.output


def test_missing_model_without_resume_exits_2(tmp_path):
    res = _invoke("--data", "x", "--out", str(tmp_path))
    assert res.exit_code == 2 and "--model" in res.output


def test_ctrl_c_then_resume_on_the_command_line(tiny_data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    original = PlainTraining.step

    def interrupt_in_epoch_2(self, adapter, inputs, labels):
        if self.epoch == 2:
            raise KeyboardInterrupt
        return original(self, adapter, inputs, labels)

    monkeypatch.setattr(PlainTraining, "step", interrupt_in_epoch_2)
    args = _base(tiny_data, out)
    args[args.index("--epochs") + 1] = "2"
    res = _invoke(*args)
    assert res.exit_code == 130
    assert "--resume" in res.output
    assert len(list(csv.DictReader(open(out / "metrics.csv")))) == 1
    monkeypatch.setattr(PlainTraining, "step", original)
    res = _invoke("--resume", str(out), "--device", "cpu")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]


def test_nan_loss_exits_2_with_a_clear_message(tiny_data, tmp_path, monkeypatch):
    original = PlainTraining.step

    def poisoned(self, adapter, inputs, labels):
        out = original(self, adapter, inputs, labels)
        out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(PlainTraining, "step", poisoned)
    res = _invoke(*_base(tiny_data, tmp_path / "nan"))
    assert res.exit_code == 2
    assert "loss became nan in epoch 1" in " ".join(res.output.split())


def test_val_fraction_holds_out_a_stratified_seeded_part_when_the_data_has_no_val_split(tmp_path):
    import json

    import torch

    from mmbalance.data import write_synthetic

    paths = write_synthetic(tmp_path / "d", n_train=40, n_val=8, n_test=8, seed=1)
    paths["val"].unlink()  # a layout with train and test only
    data = str(tmp_path / "d")
    res = _invoke(*_base(data, tmp_path / "no-val"))
    assert res.exit_code == 2 and "val" in res.output  # the default --val-split is not there
    res = _invoke(*_base(data, tmp_path / "named"), "--val-split", "test")
    assert res.exit_code == 0, res.output
    for name in ("a", "b"):
        res = _invoke(*_base(data, tmp_path / name), "--val-fraction", "0.25", "--seed", "4")
        assert res.exit_code == 0, res.output
    a, b = (next(csv.DictReader(open(tmp_path / n / "metrics.csv"))) for n in ("a", "b"))
    assert a["val_loss"] == b["val_loss"]  # seeded: the same held-out samples
    assert json.loads((tmp_path / "a" / "run.json").read_text())["config"]["val_fraction"] == 0.25
    from mmbalance.data import load_dataset, split_dataset

    train, val = split_dataset(load_dataset(data, split="train"), 0.25, seed=4)
    labels = torch.load(paths["train"], weights_only=True)["labels"]
    for c in labels.unique():  # a quarter of every class, rounded half up
        assert int((val.labels == c).sum()) == int(int((labels == c).sum()) * 0.25 + 0.5)
    assert not set(train.indices) & set(val.indices) and len(train) + len(val) == 40
    res = _invoke(*_base(data, tmp_path / "bad"), "--val-fraction", "1.5")
    assert res.exit_code == 2 and "--val-fraction" in res.output
