"""``--deterministic``: the switch, its restoration, its error line, and its use by finetune and audit."""

from __future__ import annotations

import json
import os

import pytest
import torch
from typer.testing import CliRunner

from mmbalance.cli import app
from mmbalance.errors import UsageError
from mmbalance.reproducibility import CUBLAS_WORKSPACE, deterministic_mode, nondeterministic_operation
from mmbalance.training import TrainConfig, finetune

TINY = "synthetic:av-dominance?n_train=32&n_val=16&n_test=16"


def test_mode_turns_everything_on_and_restores_it(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
              torch.backends.cudnn.benchmark)
    with deterministic_mode(True):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
            torch.backends.cudnn.benchmark) == before
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ


def test_a_users_cublas_setting_is_kept(monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    with deterministic_mode(True):
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_disabled_mode_changes_nothing():
    with deterministic_mode(False):
        assert not torch.are_deterministic_algorithms_enabled()


def test_an_operation_without_a_deterministic_kernel_is_one_usage_error():
    message = ("scatter_add_cuda_kernel does not have a deterministic implementation, but you set "
               "'torch.use_deterministic_algorithms(True)'. You can turn off ...")
    assert nondeterministic_operation(RuntimeError(message)) == "scatter_add_cuda_kernel"
    assert nondeterministic_operation(RuntimeError("shapes do not match")) is None
    with pytest.raises(UsageError, match="scatter_add_cuda_kernel has no deterministic CUDA kernel"):
        with deterministic_mode(True):
            raise RuntimeError(message)
    with pytest.raises(RuntimeError, match="shapes"):  # other errors pass unchanged
        with deterministic_mode(True):
            raise RuntimeError("shapes do not match")
    assert not torch.are_deterministic_algorithms_enabled()


def test_finetune_records_it_and_gives_the_weights_of_a_plain_cpu_run(tmp_path):
    def run(name: str, deterministic: bool):
        cfg = TrainConfig(model="av-tiny", data=TINY, out=str(tmp_path / name), epochs=1, batch_size=16,
                          device="cpu", deterministic=deterministic)
        return finetune(cfg, progress=False)

    a, b = run("a", True), run("b", False)
    assert json.loads((tmp_path / "a" / "run.json").read_text())["config"]["deterministic"] is True
    sa, sb = torch.load(a.last_path, weights_only=True), torch.load(b.last_path, weights_only=True)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # CPU kernels are deterministic already
    assert not torch.are_deterministic_algorithms_enabled()


def test_cli_flags_reach_audit_and_finetune(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["finetune", "-m", "av-tiny", "-d", TINY, "-o", str(tmp_path / "r"), "--epochs", "1",
                              "--device", "cpu", "--deterministic", "-q"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r" / "run.json").read_text())["config"]["deterministic"] is True
    res = runner.invoke(app, ["audit", "-m", "av-tiny", "-d", TINY, "--device", "cpu", "--deterministic",
                              "--steps", "4", "--bootstrap", "0", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n_samples"] == 16
