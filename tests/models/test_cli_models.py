"""``mmbalance models`` through the typer app."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmbalance.cli import app


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_models_json_lists_builtins(runner: CliRunner) -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert {"av-tiny", "av-resnet18"} <= set(rows)
    assert rows["av-tiny"]["source"] == "builtin"
    assert rows["av-tiny"]["description"].startswith("Tiny")
    assert rows["av-tiny"]["target"] == "mmbalance.models.av_tiny:av_tiny"


def test_models_pattern_and_table(runner: CliRunner) -> None:
    result = runner.invoke(app, ["models", "tiny"])
    assert result.exit_code == 0, result.output
    assert "av-tiny" in result.stdout and "av-resnet18" not in result.stdout
    assert "builtin" in result.stdout


def test_models_no_match(runner: CliRunner) -> None:
    result = runner.invoke(app, ["models", "zzz*", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    result = runner.invoke(app, ["models", "zzz*"])
    assert result.exit_code == 0 and "no models match" in result.output


def test_models_lists_entry_point_plugins(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mmb_cli_ep_pkg.py").write_text(textwrap.dedent('''
        def build(num_classes):
            """A CLI-listed plug-in."""
    '''))
    dist = tmp_path / "mmb_cli_ep_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mmb-cli-ep-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mmbalance.models]\ncli-ep = mmb_cli_ep_pkg:build\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["cli-ep"] == {"name": "cli-ep", "source": "entry-point", "description": "A CLI-listed plug-in.",
                              "target": "mmb_cli_ep_pkg:build"}
