"""The encoder probe: a linear classifier on each modality's frozen embedding, and the check rule on its gap."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from mmbalance.cli import app
from mmbalance.probe import linear_probe, probe_lines
from mmbalance.training import TrainConfig, finetune

DATA = "synthetic:av-dominance?n_train=64&n_val=32&n_test=32"
runner = CliRunner()


def test_probe_reads_a_linear_signal_and_not_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(800, 6, generator=g)
    y = (x @ torch.randn(6, 4, generator=g)).argmax(1)  # linearly separable, 4 classes
    assert linear_probe(x[:400], y[:400], x[400:], y[400:], num_classes=4, l2=0.0) >= 0.95
    noise = torch.randint(0, 4, (800,), generator=g)  # labels independent of x: chance is 25%
    # 400 test samples: the accuracy's standard deviation at chance is sqrt(.25 * .75 / 400) = 2.2 points
    assert linear_probe(x[:400], noise[:400], x[400:], noise[400:], num_classes=4) < 0.25 + 5 * 0.022


def test_probe_lines():
    rows = {"audio": {"accuracy": 0.5, "unimodal_accuracy": None, "gap": None},
            "visual": {"accuracy": 0.41, "unimodal_accuracy": 0.483, "gap": -0.073}}
    assert probe_lines(rows) == ["probe: the audio encoder reads 50.0%",
                                 "probe: the visual encoder reads 41.0% (its unimodal counterpart 48.3%): "
                                 "7.3 points below it"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    base = dict(model="av-tiny", data=DATA, epochs=1, batch_size=16, seed=0, device="cpu")
    finetune(TrainConfig(out=str(root / "plain"), **base), progress=False)
    finetune(TrainConfig(out=str(root / "v"), unimodal="visual", **base), progress=False)
    return root


def test_audit_probe_and_the_check_rule(runs, tmp_path):
    out = tmp_path / "a.json"
    res = runner.invoke(app, ["audit", "-m", "av-tiny", "-c", str(runs / "plain" / "best.pt"), "-d", DATA, "--method",
                              "ig", "--steps", "2", "--bootstrap", "0", "--device", "cpu", "--probe",
                              "--probe-unimodal", f"visual={runs / 'v' / 'best.pt'}", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "probe: the visual encoder reads" in res.output and "unimodal counterpart" in res.output
    probe = json.loads(out.read_text())["extra"]["probe"]
    assert set(probe) == {"audio", "visual"} and probe["audio"]["gap"] is None
    v = probe["visual"]
    assert 0 <= v["accuracy"] <= 1 and 0 <= v["unimodal_accuracy"] <= 1
    assert v["gap"] == pytest.approx(v["accuracy"] - v["unimodal_accuracy"], abs=1e-12)
    gap = v["gap"]
    passed = runner.invoke(app, ["check", "-a", str(out), "--min-probe-gap", f"{max(gap - 0.01, -1):.4f}"])
    assert passed.exit_code == 0, passed.output
    failed = runner.invoke(app, ["check", "-a", str(out), "--min-probe-gap", f"visual={min(gap + 0.01, 1):.4f}"])
    assert failed.exit_code == 1, failed.output
    missing = runner.invoke(app, ["check", "-a", str(out), "--min-probe-gap", "audio=-0.1"])
    assert missing.exit_code == 2 and "--probe-unimodal" in missing.output


def test_probe_needs_splits_and_a_well_formed_reference(runs, tmp_path):
    torch.save({"inputs": {"audio": torch.randn(8, 1, 8, 8), "visual": torch.randn(8, 3, 2, 8, 8)},
                "labels": torch.arange(8) % 2, "classes": ["a", "b"]}, tmp_path / "one.pt")
    args = ["audit", "-m", "av-tiny", "--method", "ig", "--steps", "2", "--bootstrap", "0", "--device", "cpu", "-q"]
    res = runner.invoke(app, [*args, "-d", str(tmp_path / "one.pt"), "--probe"])
    assert res.exit_code == 2 and "test split" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, [*args, "-d", DATA, "--probe", "--probe-unimodal", "visual"])
    assert res.exit_code == 2 and "malformed --probe-unimodal" in res.output
