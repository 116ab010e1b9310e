"""``finetune --resume DIR`` is a trust boundary: nothing named in a run directory is imported or
called unless ``--trust-checkpoint`` says so, and ``resume.pt`` is read with the safe loader."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mmbalance.cli import app
from mmbalance.errors import CheckpointError
from mmbalance.training import TrainConfig, finetune
from mmbalance.training.resume import load_resume


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trust") / "run"
    finetune(TrainConfig(model="av-tiny", data="synthetic:av-dominance?n_train=32&n_val=16&n_test=16", out=str(out),
                         epochs=1, batch_size=16, device="cpu"), progress=False)
    return out


def _plant(run: Path, dest: Path, **changes: object) -> Path:
    """A copy of ``run`` whose run.json and resume.pt both record ``changes`` in their configuration."""
    shutil.copytree(run, dest)
    info = json.loads((dest / "run.json").read_text())
    info["config"].update(changes)
    (dest / "run.json").write_text(json.dumps(info))
    state = torch.load(dest / "resume.pt", weights_only=True)
    state["config"].update(changes)
    torch.save(state, dest / "resume.pt")
    return dest


def _resume(run: Path, *extra: str):
    return CliRunner().invoke(app, ["finetune", "--resume", str(run), "--device", "cpu", "-q", *extra],
                              env={"COLUMNS": "300", "NO_COLOR": "1"})


def _one_error_line(res) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    return " ".join(lines[0].split())


def test_a_planted_module_factory_is_refused_before_it_runs(finished_run, tmp_path):
    marker = tmp_path / "pwned"
    run = _plant(finished_run, tmp_path / "planted", model="subprocess:getoutput",
                 model_args={"cmd": f"touch {marker}"})
    res = _resume(run)
    assert res.exit_code == 2, res.output
    line = _one_error_line(res)
    assert "'subprocess:getoutput'" in line and "--trust-checkpoint" in line
    assert not marker.exists()

    # the planted run is live: trusting it does run the command (then fails: a str is no model)
    res = _resume(run, "--trust-checkpoint")
    assert marker.exists()
    assert res.exit_code == 2 and "not a torch.nn.Module" in _one_error_line(res)


def test_a_planted_file_factory_is_not_even_imported(finished_run, tmp_path):
    marker = tmp_path / "imported"
    plugin = tmp_path / "evil_plugin.py"
    plugin.write_text(f"open({str(marker)!r}, 'w').write('ran')\n\ndef factory(num_classes):\n    raise RuntimeError('never built')\n")
    spec = f"{plugin}:factory"
    run = _plant(finished_run, tmp_path / "planted", model=spec)
    modules_before = set(sys.modules)
    res = _resume(run)
    assert res.exit_code == 2 and spec in _one_error_line(res)
    assert not marker.exists()
    assert not [m for m in set(sys.modules) - modules_before if "evil_plugin" in m]


def test_the_library_refuses_too_and_imports_nothing(finished_run, tmp_path):
    run = _plant(finished_run, tmp_path / "planted", model="os:system", model_args={"command": "false"})
    with pytest.raises(CheckpointError, match="'os:system'.*not a registered model"):
        load_resume(run)
    with pytest.raises(CheckpointError, match="os:system"):
        finetune(resume=run, progress=False)
    config, state = load_resume(run, trust=True)  # the decision is the caller's
    assert config.model == "os:system" and state["epoch"] == 1


def test_a_registered_model_resumes_without_trust(finished_run, tmp_path):
    run = shutil.copytree(finished_run, tmp_path / "copy")
    info = json.loads((run / "run.json").read_text())
    info["config"]["epochs"] = 2
    state = torch.load(run / "resume.pt", weights_only=True)
    state["config"]["epochs"] = 2
    torch.save(state, run / "resume.pt")
    (run / "run.json").write_text(json.dumps(info))
    res = _resume(run)
    assert res.exit_code == 0, res.output
    assert len((run / "metrics.csv").read_text().splitlines()) == 3  # header + epochs 1 and 2


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch /nonexistent-dir/never",))


def test_resume_pt_is_read_with_the_safe_loader(finished_run, tmp_path):
    run = shutil.copytree(finished_run, tmp_path / "copy")
    state = torch.load(run / "resume.pt", weights_only=True)
    state["history"] = [_Payload()]
    torch.save(state, run / "resume.pt")
    res = _resume(run)
    assert res.exit_code == 2
    line = _one_error_line(res)
    assert "refused as unsafe" in line and "system" in line
