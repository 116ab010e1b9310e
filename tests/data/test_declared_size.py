"""Tensors that declare more memory than they store are refused before allocation (issue 21, case 7)."""

from __future__ import annotations

import os

import pytest
import torch
from typer.testing import CliRunner

from mmbalance.cli import app
from mmbalance.data import load_dataset
from mmbalance.data.tensor_format import check_declared_sizes
from mmbalance.errors import DataError

N = 100_000_000  # 80 GB of float32 audio (1, 8, 25) per sample, stored in a few hundred bytes


def _save(path, *, in_extra: bool = False):
    small = torch.zeros(8, 1, 8, 25)
    huge = torch.zeros(1, 1, 8, 25).expand(N, 1, 8, 25)
    inputs = {"audio": small, "visual": torch.zeros(8, 3, 2, 8, 8)}
    labels = torch.zeros(8, dtype=torch.long)
    extra = {}
    if in_extra:
        extra["lengths"] = torch.zeros(1, 4096).expand(N // 100, 4096)  # 16 GB of float32
    else:
        inputs["audio"] = huge
        labels = torch.zeros(1, dtype=torch.long).expand(N)
    torch.save({"inputs": inputs, "labels": labels, "classes": ["a"], **({"extra": extra} if extra else {})}, path)
    assert os.path.getsize(path) < 400_000
    return path


@pytest.mark.parametrize("in_extra", [False, True])
def test_a_huge_expanded_tensor_is_refused_with_its_declared_size(tmp_path, in_extra):
    path = _save(tmp_path / "test.pt", in_extra=in_extra)
    with pytest.raises(DataError, match=r"declares (80\.0|16\.4) GB"):
        load_dataset(str(path))
    res = CliRunner().invoke(app, ["audit", "-m", "av-tiny", "-d", str(path), "-q", "--device", "cpu"])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "declares" in lines[0] and "GB" in lines[0]


def test_the_budget_is_what_decides():
    view = torch.zeros(1, 16).expand(1000, 16)  # 64 kB declared over 64 bytes stored
    check_declared_sizes({"x": view}, "d.pt")  # small: fine
    with pytest.raises(DataError, match="more than the"):
        check_declared_sizes({"x": view}, "d.pt", limit=1000)
    check_declared_sizes({"x": torch.zeros(1000, 16)}, "d.pt", limit=1000)  # stored bytes: never refused
