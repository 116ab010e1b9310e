"""A gate's exit code is its verdict, whatever happens to stdout; usage errors are one line (issue 21, 3, 8, 13, 14)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import mmbalance
from mmbalance.cli import app
from mmbalance.results import AuditResult, MethodResult

REPO = Path(mmbalance.__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", "COLUMNS": "200"}
CLI = [sys.executable, "-m", "mmbalance"]


def _audit(path: Path, shares: dict[str, float]) -> Path:
    AuditResult(model="av-tiny", data="synthetic:av-dominance", n_samples=40, modalities=list(shares), accuracy=0.9,
                methods={"ig": MethodResult(name="ig", shares=dict(shares), scores={m: 10 * s for m, s in shares.items()})},
                primary_method="ig", split="test").save(path)
    return path


@pytest.fixture(scope="module")
def skewed(tmp_path_factory) -> Path:
    return _audit(tmp_path_factory.mktemp("gate") / "skewed.json", {"audio": 0.15, "visual": 0.85})


def _run_shell(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=ENV, timeout=120)


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    return lines[0]


def test_a_failed_check_exits_1_when_its_reader_is_gone(skewed):
    proc = subprocess.Popen([*CLI, "check", "--audit", str(skewed), "--max-share", "0.7"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # `| head -0`: the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1, err
    assert "Traceback" not in err


def test_a_failed_check_exits_1_when_printing_breaks_mid_table(skewed, monkeypatch):
    import importlib

    check_module = importlib.import_module("mmbalance.check")  # the package; `mmbalance.check` is the function

    def broken(*args, **kwargs):
        raise BrokenPipeError

    monkeypatch.setattr(check_module, "to_table", broken)  # cmd_check imports it when the command runs
    res = CliRunner().invoke(app, ["check", "--audit", str(skewed), "--max-share", "0.7"])
    assert res.exit_code == 1, res.output


@pytest.mark.parametrize("redirect", [">&-", ">/dev/full"])
def test_check_keeps_its_verdict_on_a_closed_or_full_stdout(skewed, redirect):
    cmd = " ".join([*CLI, "check", "--audit", str(skewed), "--max-share", "0.7"])
    proc = _run_shell(f"{cmd} {redirect}")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("redirect", [">&-", ">/dev/full"])
def test_a_closed_or_full_stdout_is_one_line_and_exit_2(skewed, redirect):
    proc = _run_shell(f"{' '.join([*CLI, 'models'])} {redirect}")
    assert proc.returncode == 2, proc.stderr
    assert "standard output" in _one_error_line(proc.stderr)


def test_a_plug_in_calling_sys_exit_is_not_a_success(tmp_path):
    plugin = tmp_path / "quitter.py"
    plugin.write_text(
        "import sys, torch\nfrom torch import nn\n"
        "class Q(nn.Module):\n"
        "    def __init__(self):\n        super().__init__(); self.l = nn.Linear(4, 2)\n"
        "    def forward(self, audio, visual):\n        sys.exit(0)\n"
        "def build(num_classes=2):\n    return Q()\n")
    res = CliRunner().invoke(app, ["audit", "-m", f"{plugin}:build", "-d",
                                   "synthetic:av-dominance?n_train=8&n_val=8&n_test=8", "--modalities",
                                   "audio,visual", "-q", "--bootstrap", "0"])
    assert res.exit_code == 2, res.output
    assert "sys.exit" in _one_error_line(res.stderr)


@pytest.mark.parametrize("args", [
    ["bench", "-m", "av-tiny", "-d", "x", "-o", "o", "--seeds", "0"],
    ["audit", "-m", "av-tiny", "-d", "x", "--pad-id", "-1"],
    ["audit", "-m", "av-tiny", "-d", "x", "--batch-size", "0"],
    ["audit", "--no-such-option"],
    ["no-such-command"],
    ["--no-such-root-option"],
])
def test_usage_errors_are_one_line_not_a_panel(args):
    res = CliRunner().invoke(app, args, env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert res.exit_code == 2, res.output
    line = _one_error_line(res.stderr)
    assert "--help" in line
    assert "╭" not in res.output and "╭" not in res.stderr


def test_every_subcommand_takes_quiet():
    import typer.main

    group = typer.main.get_command(app)
    missing = []
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        subs = getattr(cmd, "commands", None)
        for sub_name, sub in (subs.items() if subs else [(None, cmd)]):
            opts = {o for p in sub.params for o in getattr(p, "opts", [])}
            if "-q" not in opts or "--quiet" not in opts:
                missing.append(f"{name} {sub_name or ''}".strip())
    assert not missing, missing
