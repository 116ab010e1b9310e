"""``mmbalance demo``: plain training, audit, fine-tuning with the regularizer, audit, comparison."""

from __future__ import annotations

import functools
import json

from typer.testing import CliRunner

from mmbalance.cli import app
from mmbalance.demo import run_demo

SMALL = {"n_train": 96, "n_val": 32, "n_test": 40}


def test_run_demo_tells_the_whole_story(tmp_path):
    result = run_demo(tmp_path / "demo", epochs=1, finetune_epochs=1, steps=2, device="cpu", progress=False,
                      data_sizes=SMALL)
    for name in ("train.pt", "val.pt", "test.pt"):
        assert (result.data_dir / name).is_file()
    assert result.plain.best_path.is_file() and result.balanced.best_path.is_file()
    assert result.audit_path.is_file() and result.balanced_audit_path.is_file()
    balanced = json.loads((result.balanced.out_dir / "run.json").read_text())["config"]
    assert balanced["regularizer"] == "attribution"
    assert balanced["checkpoint"] == str(result.plain.best_path)  # fine-tuned from the plain model
    assert result.audit.n_samples == result.balanced_audit.n_samples == 40
    assert set(result.unimodal) == {"plain", "balanced"}
    assert set(result.unimodal["plain"]) == {"audio", "visual"}
    for key in ("accuracy", "share_variance", "dominant", "share_audio", "share_visual", "alone_audio"):
        assert len(result.comparison[key]) == 2
    assert result.comparison["accuracy"] == (result.audit.accuracy, result.balanced_audit.accuracy)


def test_demo_command_prints_before_and_after(tmp_path, monkeypatch):
    import mmbalance.demo as demo  # the CLI imports run_demo when the command runs

    monkeypatch.setattr(demo, "run_demo", functools.partial(run_demo, data_sizes=SMALL, steps=2))
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d"), "--epochs", "1", "--finetune-epochs", "1",
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "plainly trained model" in text
    assert "Before → after" in text and "share variance" in text and "test accuracy" in text
    assert "audit-balanced.json" in "".join(res.output.split())  # (rich wraps long paths)
