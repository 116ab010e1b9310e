"""``mmbalance report`` and ``mmbalance compare`` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmbalance.cli import cmd_report  # noqa: F401  (registers the commands)
from mmbalance.cli.app import app

from .fixtures import METRICS_CSV, make_audit

ENV = {"COLUMNS": "300", "NO_COLOR": "1"}


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


@pytest.fixture
def audits(tmp_path: Path) -> tuple[Path, Path]:
    return (make_audit(0.81).save(tmp_path / "plain.json"),
            make_audit(0.56, accuracy=0.61, ablation_audio=0.6).save(tmp_path / "balanced.json"))


@pytest.fixture
def metrics(tmp_path: Path) -> Path:
    path = tmp_path / "metrics.csv"
    path.write_text(METRICS_CSV)
    return path


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    return lines[0]


def test_report(audits, metrics, tmp_path):
    out = tmp_path / "report"
    result = run("report", *audits, "--metrics", metrics, "--out", out, "--format", "html,md")
    assert result.exit_code == 0, result.output
    assert "balanced: the largest share is audio with 56%" in result.stdout
    assert f"wrote {out / 'report.html'}" in result.stdout
    assert (out / "report.html").is_file() and (out / "report.md").is_file() and (out / "comparison.png").is_file()
    md = (out / "report.md").read_text()
    # the balanced run has a largest share (audio), not a "dominant modality"
    assert "| largest share | audio | audio | same |" in md and "| balanced | no | yes |  |" in md
    html = (out / "report.html").read_text()
    assert "plain → balanced" in html and "Training" in html


def test_report_json_and_quiet(audits, tmp_path):
    result = run("report", audits[0], "--out", tmp_path / "r", "--format", "html", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert Path(data["html"]).is_file() and data["images"] == [] and data["balanced"] is False
    quiet = run("report", audits[0], "--out", tmp_path / "q", "--quiet")
    assert quiet.exit_code == 0 and quiet.stdout == "" and (tmp_path / "q" / "report.html").is_file()


def test_compare_table(audits):
    result = run("compare", *audits)
    assert result.exit_code == 0, result.output
    for text in ("plain", "balanced", "audio share (ig)", "81.0%", "56.0%", "−25.0 pp", "+9.0 pp", "entropy"):
        assert text in result.stdout


def test_compare_json(audits):
    result = run("compare", *audits, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["before"] == "plain" and data["after"] == "balanced"
    assert data["shares"]["ig"]["audio"]["delta"] == pytest.approx(-0.25)
    assert data["accuracy"]["delta"] == pytest.approx(0.09)
    assert run("compare", *audits, "--quiet").stdout == ""


def test_same_file_names_get_folder_labels(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    paths = [make_audit(0.8).save(tmp_path / "a" / "audit.json"), make_audit(0.6).save(tmp_path / "b" / "audit.json")]
    data = json.loads(run("compare", *paths, "--json").stdout)
    assert (data["before"], data["after"]) == ("a/audit", "b/audit")


# -- bad input: one line, exit 2, nothing written --------------------------------------
def test_foreign_schema(audits, tmp_path):
    doc = json.loads(audits[0].read_text())
    doc["schema"] = "mmbalance.audit/99"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(doc))
    out = tmp_path / "out"
    for args in (("report", other, "--out", out), ("compare", other, audits[1])):
        result = run(*args)
        assert result.exit_code == 2
        assert "mmbalance.audit/99" in one_error_line(result)
    assert not out.exists()


def test_truncated_audit(audits, tmp_path):
    text = audits[0].read_text()
    cut = tmp_path / "cut.json"
    cut.write_text(text[: len(text) // 2])
    out = tmp_path / "out"
    result = run("report", audits[1], cut, "--out", out)
    assert result.exit_code == 2 and "truncated" in one_error_line(result)
    assert not out.exists()


def test_missing_audit(tmp_path):
    result = run("compare", tmp_path / "nope.json", tmp_path / "nope2.json")
    assert result.exit_code == 2 and "does not exist" in one_error_line(result)


def test_metrics_missing_columns(audits, tmp_path):
    bad = tmp_path / "metrics.csv"
    bad.write_text("epoch,train_loss\n1,0.3\n")
    out = tmp_path / "out"
    result = run("report", audits[0], "--metrics", bad, "--out", out)
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "val_accuracy" in line and str(bad) in line
    assert not out.exists()


def test_out_dir_under_a_file(audits, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    result = run("report", audits[0], "--out", blocker / "report")
    assert result.exit_code == 2 and "not a directory" in one_error_line(result)
    assert blocker.read_text() == ""


def test_unknown_format(audits, tmp_path):
    result = run("report", audits[0], "--out", tmp_path / "out", "--format", "html,pdf")
    assert result.exit_code == 2 and "pdf" in one_error_line(result)
    assert not (tmp_path / "out").exists()
