"""Shared helpers for tests that drive ``mmbalance finetune`` through the CLI and read its one error line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mmbalance.cli import app


def invoke_finetune(*args: object):
    """``mmbalance finetune ARGS`` in a CliRunner, wide and without colour."""
    return CliRunner().invoke(app, ["finetune", *[str(a) for a in args]], env={"COLUMNS": "300", "NO_COLOR": "1"})


def base_args(data: str, out: Path) -> list[str]:
    """A one-epoch, quiet, CPU av-tiny run of ``data`` into ``out``."""
    return ["--model", "av-tiny", "--data", data, "--out", str(out), "--epochs", "1", "--batch-size", "16", "-q",
            "--device", "cpu"]


def one_error_line(res) -> str:
    """The single ``error:`` line on stderr (asserts there is exactly one), whitespace-normalised."""
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    return " ".join(lines[0].split())
