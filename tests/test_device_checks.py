"""Device errors before any work: --device cuda without a GPU, torchrun with more processes than GPUs."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from mmbalance import distributed
from mmbalance.cli import app
from mmbalance.errors import UsageError

TINY = "synthetic:av-dominance?n_train=32&n_val=16&n_test=16"


@pytest.mark.parametrize("visible,local_rank,per_node,ok", [
    (1, 0, 1, True), (2, 1, 2, True), (1, 0, 2, False), (1, 1, 2, False), (0, 0, 1, False),
])
def test_more_processes_than_gpus_is_refused_before_cuda_is_touched(monkeypatch, visible, local_rank, per_node, ok):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    monkeypatch.setenv("LOCAL_RANK", str(local_rank))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(per_node))
    if ok:
        assert distributed._local_gpu() == local_rank
        return
    with pytest.raises(UsageError, match=f"started {per_node} processes on this node but only {visible} GPU") as err:
        distributed._local_gpu()
    assert ("--nproc_per_node" in str(err.value)) == (visible > 0) and "--device cpu" in str(err.value)


def test_init_distributed_checks_before_joining(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda *_: pytest.fail("set_device must not be reached"))
    monkeypatch.setattr(distributed.dist, "init_process_group",
                        lambda *a, **k: pytest.fail("the process group must not be joined"))
    for key, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(UsageError, match="only 1 GPU"):
        distributed.init_distributed("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", [
    ["audit", "-m", "av-tiny", "-d", TINY, "--device", "cuda"],
    ["finetune", "-m", "av-tiny", "-d", TINY, "--device", "cuda", "--epochs", "1"],
])
def test_device_cuda_without_a_gpu_is_one_line_and_exit_2(tmp_path, command):
    if command[0] == "finetune":
        command = [*command, "-o", str(tmp_path / "run")]
    res = CliRunner().invoke(app, command)
    assert res.exit_code == 2
    assert "no CUDA device is available" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "run" / "best.pt").exists()
