"""On a CUDA machine: --deterministic is bit-identical, --amp trains, nccl runs with one process.

Skipped without a GPU (``pytest -m cuda`` selects these on a GPU machine).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmbalance.models import load_state_dict
from mmbalance.training import TrainConfig, TrainingInterrupted, finetune

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

TINY = "synthetic:av-dominance?n_train=64&n_val=32&n_test=32"


def _cfg(out: Path, **kw) -> TrainConfig:
    base = dict(model="av-tiny", data=TINY, out=str(out), epochs=2, batch_size=16, lr=2e-3, seed=3, device="cuda",
                regularizer="attribution")
    base.update(kw)
    return TrainConfig(**base)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_state_dict(path)


def _identical(a: Path, b: Path) -> bool:
    sa, sb = _weights(a), _weights(b)
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_deterministic_runs_are_bit_identical(tmp_path):
    a = finetune(_cfg(tmp_path / "a", deterministic=True), progress=False)
    b = finetune(_cfg(tmp_path / "b", deterministic=True), progress=False)
    assert _identical(a.last_path, b.last_path)


def test_deterministic_resume_equals_an_uninterrupted_run(tmp_path):
    full = finetune(_cfg(tmp_path / "full", epochs=3, deterministic=True), progress=False)

    def stop(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        finetune(_cfg(tmp_path / "cut", epochs=3, deterministic=True), progress=False, on_epoch_end=stop)
    resumed = finetune(resume=tmp_path / "cut", progress=False)
    assert _identical(resumed.last_path, full.last_path)


def test_without_deterministic_runs_agree_to_a_tolerance(tmp_path):
    a = finetune(_cfg(tmp_path / "a"), progress=False)
    b = finetune(_cfg(tmp_path / "b"), progress=False)
    sa, sb = _weights(a.last_path), _weights(b.last_path)
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=1e-3, atol=1e-4)


def test_amp_trains_on_cuda(tmp_path):
    result = finetune(_cfg(tmp_path / "amp", amp=True, regularizer="none"), progress=False)
    assert all(torch.isfinite(v).all() for v in _weights(result.last_path).values())


def test_nccl_with_one_process(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", NO_COLOR="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m", "mmbalance",
           "finetune", "-m", "av-tiny", "-d", TINY, "-o", str(tmp_path / "ddp"), "--epochs", "1", "--device", "cuda",
           "-q"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "ddp" / "best.pt").is_file()


def test_more_processes_than_gpus_exits_2_before_any_work(tmp_path):
    n = torch.cuda.device_count() + 1
    env = dict(os.environ, OMP_NUM_THREADS="1", NO_COLOR="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n), "-m",
           "mmbalance", "finetune", "-m", "av-tiny", "-d", TINY, "-o", str(tmp_path / "ddp"), "--epochs", "1",
           "--device", "cuda", "-q"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert f"only {n - 1} GPU(s) are visible" in proc.stderr and "internal error" not in proc.stderr
    assert not (tmp_path / "ddp" / "best.pt").exists()
