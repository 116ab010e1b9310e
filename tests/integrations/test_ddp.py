"""``AttributionPenalty`` on a DistributedDataParallel model (torchrun, 2 CPU processes, gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("ddp_penalty_script.py")
ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    res = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]


@pytest.mark.parametrize("scope", ["fusion"])  # the default; the extra pass of the head runs through DDP too
def test_ddp_steps_equal_the_average_of_the_ranks_halves(tmp_path, scope):
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    _run([sys.executable, str(SCRIPT), scope, str(one)], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          str(SCRIPT), scope, str(two)], tmp_path)
    a, b = torch.load(one), torch.load(two)
    for name in a:  # fp32 sums of two halves in another order: a few ulps after 3 SGD steps
        assert torch.allclose(a[name], b[name], rtol=0, atol=1e-6), name
