"""Outputs are checked before any work, and never replace an input (issue 21, cases 9 and 12)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mmbalance.cli import app
from mmbalance.data import save_tensor_dataset
from mmbalance.demo import run_demo
from mmbalance.errors import OutputError


def _cli(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "300", "NO_COLOR": "1"})


def _one_error_line(res) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    return lines[0]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    g = torch.Generator().manual_seed(0)
    return save_tensor_dataset(tmp_path / "d.pt", {"audio": torch.randn(6, 1, 8, 8, generator=g),
                                                   "visual": torch.randn(6, 3, 2, 8, 8, generator=g)},
                               torch.tensor([0, 1, 2, 0, 1, 2]))


def test_audit_never_replaces_its_dataset(data):
    before = data.read_bytes()
    res = _cli("audit", "-m", "av-tiny", "-d", data, "-o", data, "-q", "--device", "cpu")
    assert res.exit_code == 2, res.output
    assert "same file as --data" in _one_error_line(res)
    assert data.read_bytes() == before
    link = data.parent / "link.json"
    link.symlink_to(data)
    res = _cli("audit", "-m", "av-tiny", "-d", data, "-o", link, "-q", "--device", "cpu")
    assert res.exit_code == 2 and data.read_bytes() == before


def test_out_and_per_sample_naming_one_file_are_refused(data, tmp_path):
    target = tmp_path / "both.json"
    res = _cli("audit", "-m", "av-tiny", "-d", data, "-o", target, "--per-sample", target, "-q", "--device", "cpu")
    assert res.exit_code == 2, res.output
    assert "--per-sample" in _one_error_line(res)
    assert not target.exists()


def test_a_name_too_long_for_the_file_system_fails_before_the_audit(data, tmp_path):
    res = _cli("audit", "-m", "av-tiny", "-d", data, "-o", tmp_path / ("a" * 300 + ".json"), "-q", "--device", "cpu")
    assert res.exit_code == 2, res.output
    assert "300" in _one_error_line(res) or "long" in _one_error_line(res)


def test_demo_checks_its_report_directory_before_training(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "report").write_text("a file, not a directory")
    with pytest.raises(OutputError, match="report"):
        run_demo(out, epochs=1, finetune_epochs=1, steps=2, progress=False, device="cpu",
                 data_sizes={"n_train": 8, "n_val": 8, "n_test": 8})
    assert not (out / "data").exists() and not (out / "plain").exists()
