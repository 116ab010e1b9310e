"""bench/bench_gpu.py end to end on a CPU at toy sizes, and its clear exit when something is missing."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_gpu.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = module
    spec.loader.exec_module(module)
    # the smallest case of each kind: the code paths of the real run, in a few seconds
    module.QUICK_CASES = [module.Case("av-tiny", 2, (1, 8, 8), (3, 2, 8, 8))]
    module.TRAIN_QUICK = module.Case("av-tiny", 2, (1, 8, 8), (3, 2, 8, 8))
    yield module
    sys.modules.pop("bench_gpu", None)


def test_cpu_quick_prints_the_table_and_writes_json(bench, tmp_path, capsys):
    out = tmp_path / "gpu.json"
    assert bench.main(["--cpu", "--quick", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Smoke test" in text and "captum fp32, best `internal_batch_size`" in text
    doc = json.loads(out.read_text())
    rows = doc["attribution"]
    assert [r["precision"] for r in rows] == ["fp32", "bf16"]
    fp32 = rows[0]
    assert fp32["share_gap_vs_captum"] < 1e-4  # exact IG agrees with captum
    assert rows[1]["share_gap_vs_captum"] < 0.05
    assert all(t is not None and t > 0 for t in (fp32["captum_best_s"], fp32["ours_default_s"],
                                                 fp32["forward_backward_s"]))
    assert {r["loop"] for r in doc["training"]} == {"hand-written loop", "mmbalance step (plain)",
                                                    "mmbalance step (attribution, embedding level)"}
    assert all(r["samples_per_s"] > 0 for r in doc["training"])


def test_says_what_is_missing_and_exits_0(bench, monkeypatch, capsys):
    if not torch.cuda.is_available():
        assert bench.main([]) == 0
        assert "no CUDA device" in capsys.readouterr().out
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "captum" else real(name, *a))
    assert bench.main(["--cpu", "--quick"]) == 0
    assert "captum is not installed" in capsys.readouterr().out
