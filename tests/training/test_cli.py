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
