"""``mmbalance check`` end to end: exit codes, outputs, CI integrations, bad input."""

from __future__ import annotations

import json
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable

import pytest

from mmbalance.results import AuditResult

Invoke = Callable[..., Any]
WriteAudit = Callable[..., Path]

SKEWED = {"audio": 0.81, "visual": 0.19}
EVEN = {"audio": 0.55, "visual": 0.45}


def test_exit_0_when_every_rule_passes(cli: Invoke, write_audit: WriteAudit) -> None:
    result = cli("check", "--audit", str(write_audit(shares=EVEN)), "--max-share", "0.7", "--min-share", "0.3")
    assert result.exit_code == 0, result.output
    assert "max_share" in result.stdout and "PASS" in result.stdout and "passed: 2 rules checked" in result.stdout


def test_exit_1_when_a_rule_fails(cli: Invoke, write_audit: WriteAudit) -> None:
    result = cli("check", "--audit", str(write_audit(shares=SKEWED)), "--max-share", "0.7")
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.stdout and "share of audio is 81.0%, above the 70.0% limit" in result.stdout


def test_warnings_alone_exit_0(cli: Invoke, write_audit: WriteAudit) -> None:
    result = cli("check", "--audit", str(write_audit(shares=SKEWED)), "--max-share", "0.7:warn",
                 "--min-share", "visual=0.25:warn")
    assert result.exit_code == 0, result.output
    assert "WARN" in result.stdout and "2 warnings" in result.stdout


def test_json_verdict(cli: Invoke, write_audit: WriteAudit) -> None:
    result = cli("check", "--audit", str(write_audit(shares=SKEWED)), "--max-share", "0.7",
                 "--min-share", "visual=0.1:warn", "--json")
    assert result.exit_code == 1
    verdict = json.loads(result.stdout)
    assert verdict["schema"] == "mmbalance.check/1" and verdict["passed"] is False
    assert [(o["rule"], o["verdict"]) for o in verdict["outcomes"]] == [("max_share", "FAIL"),
                                                                        ("min_share[visual]", "PASS")]
    assert verdict["outcomes"][0]["measured"] == pytest.approx(0.81) and verdict["outcomes"][0]["limit"] == 0.7


def test_quiet_prints_nothing(cli: Invoke, write_audit: WriteAudit) -> None:
    result = cli("check", "--audit", str(write_audit(shares=SKEWED)), "--max-share", "0.7", "--quiet")
    assert result.exit_code == 1 and result.stdout == ""


def test_junit_file(cli: Invoke, write_audit: WriteAudit, tmp_path: Path) -> None:
    junit = tmp_path / "reports" / "junit.xml"
    result = cli("check", "--audit", str(write_audit(shares=SKEWED)), "--max-share", "0.7", "--min-accuracy", "0.5",
                 "--junit", str(junit), "--quiet")
    assert result.exit_code == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    assert [c.get("name") for c in suite.findall("testcase")] == ["max_share", "min_accuracy"]
    assert suite.find("testcase[@name='max_share']/failure") is not None


def test_github_step_summary_is_appended(cli: Invoke, write_audit: WriteAudit, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("## Earlier step\n\nkept\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = cli("check", "--audit", str(write_audit(shares=SKEWED)), "--max-share", "0.7", "--quiet")
    assert result.exit_code == 1
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("## Earlier step\n\nkept\n")
    assert "### ❌ mmbalance check failed: 1 of 1 rule failed" in text
    assert "| `max_share` |" in text


def test_annotations_when_github_actions(cli: Invoke, write_audit: WriteAudit,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    args = ("check", "--audit", str(write_audit(shares=SKEWED)), "--max-share", "0.7", "--min-share",
            "visual=0.25:warn", "--quiet")
    assert "::" not in cli(*args).stdout
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    lines = cli(*args).stdout.splitlines()
    assert lines == [
        "::error title=mmbalance check%3A max_share::share of audio is 81.0%25, above the 70.0%25 limit",
        "::warning title=mmbalance check%3A min_share[visual]::share of visual is 19.0%25, below the 25.0%25 minimum",
    ]
    # --json keeps stdout one JSON document
    json.loads(cli(*args[:-1], "--json").stdout)


def test_policy_file_and_flag_override(cli: Invoke, write_audit: WriteAudit, tmp_path: Path) -> None:
    policy = tmp_path / "mmbalance.toml"
    policy.write_text('[check]\nmax_share = 0.7\nmin_share = { visual = 0.25, level = "warn" }\n', encoding="utf-8")
    audit = str(write_audit(shares=SKEWED))
    assert cli("check", "--audit", audit, "--policy", str(policy)).exit_code == 1
    result = cli("check", "--audit", audit, "--policy", str(policy), "--max-share", "0.9", "--json")
    assert result.exit_code == 0, result.output
    outcomes = json.loads(result.stdout)["outcomes"]
    assert [(o["rule"], o["limit"], o["verdict"]) for o in outcomes] == [("max_share", 0.9, "PASS"),
                                                                         ("min_share[visual]", 0.25, "WARN")]


def test_pyproject_policy(cli: Invoke, write_audit: WriteAudit, tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "demo"\n\n[tool.mmbalance.check]\nmax_share = 0.9\n', encoding="utf-8")
    assert cli("check", "--audit", str(write_audit(shares=SKEWED)), "--policy", str(pyproject)).exit_code == 0


def test_baseline_regression(cli: Invoke, write_audit: WriteAudit, tmp_path: Path) -> None:
    old = write_audit(shares={"audio": 0.70, "visual": 0.30}, name="old.json")
    new = write_audit(shares=SKEWED, name="new.json")
    result = cli("check", "--audit", str(new), "--baseline", str(old), "--max-share-increase", "0.05", "--json")
    assert result.exit_code == 1, result.output
    (outcome,) = json.loads(result.stdout)["outcomes"]
    assert "70.0% → 81.0%" in outcome["message"] and outcome["measured"] == pytest.approx(0.11)
    assert cli("check", "--audit", str(new), "--baseline", str(old), "--max-share-increase", "0.15").exit_code == 0
    # the policy's baseline path is relative to the policy file
    (tmp_path / "mmbalance.toml").write_text('[check]\nbaseline = "old.json"\nmax_share_increase = 0.05\n')
    assert cli("check", "--audit", str(new), "--policy", str(tmp_path / "mmbalance.toml")).exit_code == 1


def test_per_class_and_method_flags(cli: Invoke, make_audit: Callable[..., AuditResult],
                                   write_audit: WriteAudit) -> None:
    audit = make_audit(EVEN, per_class={"a": {"audio": 0.95, "visual": 0.05}},
                       extra_methods={"shapley": {"audio": 0.9, "visual": 0.1}})
    path = str(write_audit(audit))
    assert cli("check", "--audit", path, "--max-share", "0.7").exit_code == 0
    assert cli("check", "--audit", path, "--max-share", "0.7", "--per-class").exit_code == 1
    assert cli("check", "--audit", path, "--max-share", "0.7", "--method", "shapley").exit_code == 1


# -- errors: exit 2 with one clear line ------------------------------------------------------------


def _error(result: Any) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stderr.startswith("error:"), result.stderr
    return " ".join(result.stderr.split())  # rich wraps the one line at the terminal width


def test_no_rules_is_a_usage_error(cli: Invoke, write_audit: WriteAudit) -> None:
    assert "no check rules given" in _error(cli("check", "--audit", str(write_audit())))


def test_nothing_to_check(cli: Invoke) -> None:
    assert "--audit" in _error(cli("check", "--max-share", "0.7"))
    assert "both --model and --data" in _error(cli("check", "--max-share", "0.7", "--model", "av-tiny"))


def test_audit_and_model_together(cli: Invoke, write_audit: WriteAudit) -> None:
    text = _error(cli("check", "--audit", str(write_audit()), "--model", "av-tiny", "--data", "x",
                      "--max-share", "0.7"))
    assert "not both" in text


def test_unknown_modality(cli: Invoke, write_audit: WriteAudit) -> None:
    text = _error(cli("check", "--audit", str(write_audit()), "--min-share", "text=0.2"))
    assert "'text'" in text and "audio, visual" in text


def test_bad_flag_value(cli: Invoke, write_audit: WriteAudit) -> None:
    assert "--max-share '70'" in _error(cli("check", "--audit", str(write_audit()), "--max-share", "70"))
    assert "warn" in _error(cli("check", "--audit", str(write_audit()), "--max-share", "0.7:loud"))


def test_policy_errors(cli: Invoke, write_audit: WriteAudit, tmp_path: Path) -> None:
    policy = tmp_path / "mmbalance.toml"
    policy.write_text("[check]\nmax_shar = 0.7\n", encoding="utf-8")
    text = _error(cli("check", "--audit", str(write_audit()), "--policy", str(policy)))
    assert "unknown key 'max_shar'" in text and "mmbalance.toml" in text and "did you mean 'max_share'" in text
    policy.write_text('[check]\nper_class = "yes"\n', encoding="utf-8")
    assert "per_class" in _error(cli("check", "--audit", str(write_audit()), "--policy", str(policy)))


def test_wrong_schema_audit(cli: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"schema": "mmbalance.audit/0", "methods": {}}), encoding="utf-8")
    assert "schema" in _error(cli("check", "--audit", str(path), "--max-share", "0.7"))
    assert "does not exist" in _error(cli("check", "--audit", str(tmp_path / "nope.json"), "--max-share", "0.7"))


def test_missing_ablation(cli: Invoke, write_audit: WriteAudit) -> None:
    text = _error(cli("check", "--audit", str(write_audit()), "--min-ablation-drop", "0.1"))
    assert "--method ig,ablation" in text


def test_baseline_without_rule_and_rule_without_baseline(cli: Invoke, write_audit: WriteAudit) -> None:
    audit = str(write_audit())
    assert "no rule uses it" in _error(cli("check", "--audit", audit, "--baseline", audit, "--max-share", "0.7"))
    assert "--baseline" in _error(cli("check", "--audit", audit, "--max-share-increase", "0.05"))


# -- running the audit itself ----------------------------------------------------------------------


def test_runs_the_audit_with_model_and_data(cli: Invoke, make_audit: Callable[..., AuditResult],
                                            monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The wiring to ``mmbalance.audit.audit``, with a stand-in audit function."""
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def fake_audit(*args: Any, **kwargs: Any) -> AuditResult:
        calls.append((args, kwargs))
        return make_audit(SKEWED, ablation={"audio": 2.0, "visual": 0.5})

    monkeypatch.setitem(sys.modules, "mmbalance.audit", types.SimpleNamespace(audit=fake_audit))
    saved = tmp_path / "audit.json"
    result = cli("check", "--model", "av-tiny", "--data", "synthetic:av-dominance", "--checkpoint", "best.pt",
                 "--split", "test", "--steps", "4", "--limit", "8", "--batch-size", "4", "--device", "cpu",
                 "--modalities", "audio,visual", "--output", "logits", "--max-share", "0.9",
                 "--min-ablation-drop", "0.1", "--save-audit", str(saved), "--quiet")
    assert result.exit_code == 0, result.output
    (args, kwargs), = calls
    assert args == ("av-tiny", "synthetic:av-dominance")
    assert kwargs["checkpoint"] == "best.pt" and kwargs["split"] == "test" and kwargs["steps"] == 4
    assert kwargs["limit"] == 8 and kwargs["batch_size"] == 4 and kwargs["device"] == "cpu"
    assert kwargs["modalities"] == ["audio", "visual"] and kwargs["output"] == "logits"
    assert kwargs["methods"] == ["shapley", "ablation"] and kwargs["progress"] is False
    assert AuditResult.load(saved).model == "av-tiny"


def test_runs_the_real_audit(cli: Invoke, tmp_path: Path) -> None:
    pytest.importorskip("mmbalance.audit", exc_type=ImportError, reason="mmbalance.audit is not importable yet")
    saved = tmp_path / "audit.json"
    args = ("check", "--model", "av-tiny", "--data", "synthetic:av-dominance", "--limit", "16",
            "--steps", "2", "--batch-size", "8", "--device", "cpu", "--max-share", "1.0",
            "--save-audit", str(saved), "--json")
    # no --checkpoint: the one-step check audits random initial weights, and fails for that alone
    result = cli(*args)
    assert result.exit_code == 1, result.output
    verdict = json.loads(result.stdout)
    assert [o["rule"] for o in verdict["outcomes"] if o["verdict"] == "FAIL"] == ["trained_model"]
    assert "no_checkpoint" in AuditResult.load(saved).warning_codes()
    result = cli(*args, "--allow-untrained")
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.stdout)
    assert verdict["outcomes"][-1]["rule"] == "max_share" and verdict["audit"]["model"] == "av-tiny"
    assert AuditResult.load(saved).modalities


def test_unwritable_step_summary_only_warns(cli: Invoke, write_audit: WriteAudit, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "no" / "such" / "dir" / "summary.md"))
    result = cli("check", "--audit", str(write_audit(shares=EVEN)), "--max-share", "0.7", "--quiet")
    assert result.exit_code == 0 and "warning:" in result.stderr


def test_audit_run_options_with_audit_file(cli: Invoke, write_audit: WriteAudit) -> None:
    text = _error(cli("check", "--audit", str(write_audit()), "--checkpoint", "best.pt", "--max-share", "0.7"))
    assert "--checkpoint only applies when check runs the audit" in text
