"""``check`` never passes a broken audit: NaN or missing results, unaudited model inputs, and the
``max_completeness_error`` rule (library, CLI flag, policy key, JUnit)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable

import pytest

from mmbalance.check import Rule, Verdict, check, parse_policy, parse_rule_option
from mmbalance.errors import UsageError
from mmbalance.results import AuditResult

Invoke = Callable[..., Any]
MakeAudit = Callable[..., AuditResult]

EVEN = {"audio": 0.55, "visual": 0.45}


def _with_completeness(audit: AuditResult, error: float, change: float = 1.0) -> AuditResult:
    audit.methods["ig"].extra.update({"completeness_error": {"mean": error, "max": error},
                                      "output_change": {"mean": change, "max": change}})
    return audit


def _hand_written(tmp_path: Path, make_audit: MakeAudit, edit: Callable[[dict[str, Any]], None],
                  *, raw: str | None = None) -> Path:
    """An audit JSON edited by hand (``raw`` replaces a marker with text json.dumps cannot write, e.g. NaN)."""
    document = make_audit(EVEN).to_dict()
    edit(document)
    text = json.dumps(document, indent=2)
    if raw is not None:
        text = text.replace('"@RAW@"', raw)
    path = tmp_path / "hand.json"
    path.write_text(text)
    return path


# -- NaN and missing results ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["null", "NaN"])
def test_nan_share_fails_even_a_rule_that_does_not_look_at_shares(cli: Invoke, make_audit: MakeAudit,
                                                                    tmp_path: Path, value: str) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["methods"]["ig"]["shares"]["visual"] = "@RAW@"

    path = _hand_written(tmp_path, make_audit, edit, raw=value)
    junit = tmp_path / "junit.xml"
    result = cli("check", "--audit", str(path), "--min-accuracy", "0.5", "--junit", str(junit))
    assert result.exit_code == 1, result.output
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.find("testcase[@name='finite_results']/failure") is not None
    text = " ".join(result.stdout.split())
    state = "missing" if value == "null" else "NaN"
    assert "finite_results" in text and "FAIL" in text and f"the ig share of visual ({state})" in text


def test_nan_scores_and_missing_modality_fail(make_audit: MakeAudit) -> None:
    audit = make_audit(EVEN)
    audit.methods["ig"].scores["audio"] = float("nan")
    del audit.methods["ig"].shares["visual"]
    report = check(audit, [Rule("max_share", 0.9)])
    first = report.outcomes[0]
    assert first.rule == "finite_results" and first.verdict is Verdict.FAIL and first.measured == 2
    assert "ig score of audio" in first.message and "ig share of visual" in first.message
    assert {o.rule: o.verdict for o in report.outcomes}["max_share"] is Verdict.FAIL  # no value: never a pass


def test_nan_accuracy_fails(make_audit: MakeAudit) -> None:
    report = check(make_audit(EVEN, accuracy=float("nan")), [Rule("max_share", 0.9)])
    assert not report.passed and "accuracy" in report.outcomes[0].message


def test_sound_audit_gets_no_integrity_outcomes(make_audit: MakeAudit) -> None:
    report = check(make_audit(EVEN), [Rule("max_share", 0.9)])
    assert report.passed and [o.rule for o in report.outcomes] == ["max_share"]


# -- every modality the model takes -----------------------------------------------------------------


def test_unaudited_model_input_fails_from_json(cli: Invoke, make_audit: MakeAudit, tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["model_inputs"] = ["audio", "visual", "text"]

    result = cli("check", "--audit", str(_hand_written(tmp_path, make_audit, edit)), "--max-share", "0.9")
    assert result.exit_code == 1, result.output
    assert "all_model_inputs" in result.stdout and "the model takes text" in " ".join(result.stdout.split())


def test_model_inputs_all_audited_pass(cli: Invoke, make_audit: MakeAudit, tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["model_inputs"] = None

    result = cli("check", "--audit", str(_hand_written(tmp_path, make_audit, edit)), "--max-share", "0.9")
    assert result.exit_code == 0, result.output


# -- max_completeness_error --------------------------------------------------------------------------


def test_completeness_rule_fails_above_and_passes_below(make_audit: MakeAudit) -> None:
    rule = parse_rule_option("max_completeness_error", "0.05")
    bad = check(_with_completeness(make_audit(EVEN), 0.2, 2.0), [rule])  # 10% of |F(x) - F(b)|
    assert not bad.passed and bad.outcomes[0].measured == pytest.approx(0.1)
    assert bad.outcomes[0].message == "completeness error of ig is 10.0%, above the 5.0% limit"
    good = check(_with_completeness(make_audit(EVEN), 0.01, 2.0), [rule])
    assert good.passed and good.outcomes[0].measured == pytest.approx(0.005)


def test_completeness_rule_needs_ig(make_audit: MakeAudit) -> None:
    with pytest.raises(UsageError, match="completeness error of Integrated Gradients"):
        check(make_audit(EVEN), [Rule("max_completeness_error", 0.05)])


def test_completeness_rule_from_policy() -> None:
    policy = parse_policy({"max_completeness_error": {"limit": 0.05, "level": "warn"}})
    assert policy.rules == (Rule("max_completeness_error", 0.05, level="warn"),)
    with pytest.raises(UsageError, match="does not take a modality|takes no per-modality"):
        parse_policy({"max_completeness_error": {"audio": 0.05}})


def test_completeness_rule_cli_and_junit(cli: Invoke, make_audit: MakeAudit, write_audit: Callable[..., Path],
                                         tmp_path: Path) -> None:
    path = str(write_audit(_with_completeness(make_audit(EVEN), 0.3)))
    junit = tmp_path / "junit.xml"
    result = cli("check", "--audit", path, "--max-completeness-error", "0.05", "--junit", str(junit))
    assert result.exit_code == 1, result.output
    assert "completeness error of ig is 30.0%, above the 5.0% limit" in " ".join(result.stdout.split())
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert suite.find("testcase[@name='max_completeness_error']/failure") is not None
    assert cli("check", "--audit", path, "--max-completeness-error", "0.5").exit_code == 0


def test_check_repeats_the_audit_warnings(cli: Invoke, make_audit: MakeAudit, tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["warnings"] = [{"code": "constant_embedding", "message": "the visual embedding is the same",
                          "modality": "visual"}]

    result = cli("check", "--audit", str(_hand_written(tmp_path, make_audit, edit)), "--max-share", "0.9", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["audit"]["warnings"] == ["the visual embedding is the same"]
