"""Renderers: JUnit XML parsed back, Markdown summary, GitHub annotations, the terminal table."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable

import pytest
from rich.console import Console

from mmbalance.check import CheckReport, Rule, check, to_annotations, to_markdown, to_table, write_junit
from mmbalance.results import AuditResult


@pytest.fixture
def report(make_audit: Callable[..., AuditResult]) -> CheckReport:
    audit = make_audit({"audio": 0.81, "visual": 0.19}, accuracy=0.9)
    return check(audit, [Rule("max_share", 0.7), Rule("min_share", 0.25, modality="visual", level="warn"),
                         Rule("min_accuracy", 0.6)])


def test_junit_structure(report: CheckReport, tmp_path: Path) -> None:
    path = write_junit(report, tmp_path / "out" / "junit.xml")
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    for element in (root, suite):
        assert element.get("tests") == "3" and element.get("failures") == "1"
        assert element.get("errors") == "0" and element.get("skipped") == "0"
    assert suite.get("name", "").startswith("mmbalance check: av-tiny") and suite.get("timestamp")
    props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert props["model"] == "av-tiny" and props["method"] == "ig" and props["checkpoint"] == "run/best.pt"

    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["max_share", "min_share[visual]", "min_accuracy"]
    assert all(c.get("classname") == "mmbalance.check" and c.get("time") == "0" for c in cases)
    failed, warned, passed = cases
    failure = failed.find("failure")
    assert failure is not None and failure.get("type") == "max_share"
    assert failure.get("message") == "share of audio is 81.0%, above the 70.0% limit"
    assert "measured: 81.0% (audio)" in (failure.text or "") and "limit: 70.0%" in (failure.text or "")
    assert warned.find("failure") is None and "WARNING" in (warned.findtext("system-out") or "")
    assert passed.find("failure") is None and "verdict: PASS" in (passed.findtext("system-out") or "")


def test_junit_of_a_passing_check_has_no_failures(make_audit: Callable[..., AuditResult], tmp_path: Path) -> None:
    root = ET.parse(write_junit(check(make_audit(), [Rule("max_share", 0.7)]), tmp_path / "j.xml")).getroot()
    assert root.get("failures") == "0" and root.find("testsuite/testcase/failure") is None


def test_junit_drops_characters_xml_forbids(make_audit: Callable[..., AuditResult], tmp_path: Path) -> None:
    report = check(make_audit(model="bad\x01name<&>"), [Rule("max_share", 0.7)])
    root = ET.parse(write_junit(report, tmp_path / "j.xml")).getroot()
    assert "bad?name<&>" in root.find("testsuite").get("name", "")  # type: ignore[union-attr]


def test_markdown_summary(report: CheckReport) -> None:
    text = to_markdown(report)
    lines = text.splitlines()
    assert lines[0] == "### ❌ mmbalance check failed: 1 of 3 rules failed, 1 warning"
    assert "| rule | demands | measured | limit | verdict |" in lines
    assert any(line.startswith("| `max_share` |") and "81.0% (audio)" in line and "❌ FAIL" in line for line in lines)
    assert "- **FAIL** `max_share`: share of audio is 81.0%, above the 70.0% limit" in lines
    assert "- **WARN** `min_share[visual]`: share of visual is 19.0%, below the 25.0% minimum" in lines


def test_annotations_escape_percent_and_colons(report: CheckReport) -> None:
    assert to_annotations(report) == [
        "::error title=mmbalance check%3A max_share::share of audio is 81.0%25, above the 70.0%25 limit",
        "::warning title=mmbalance check%3A min_share[visual]::share of visual is 19.0%25, below the 25.0%25 minimum",
    ]


def test_table_shows_every_rule_with_brackets_intact(report: CheckReport) -> None:
    console = Console(record=True, width=160)
    console.print(to_table(report))
    text = console.export_text()
    for needle in ("max_share", "min_share[visual]", "min_accuracy", "81.0% (audio)", "FAIL", "WARN", "PASS",
                   "failed: 1 of 3 rules failed, 1 warning"):
        assert needle in text
