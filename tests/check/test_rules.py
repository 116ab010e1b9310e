"""Rules measured and judged on audits built in code."""

from __future__ import annotations

from typing import Callable

import pytest

from mmbalance.check import CheckReport, Rule, Verdict, check, merge_rules, parse_rule_option, rules_from_options
from mmbalance.errors import ResultsError, UsageError
from mmbalance.results import AuditResult

MakeAudit = Callable[..., AuditResult]

# rule, an audit where it passes, an audit where it fails (keyword arguments of make_audit)
CASES = [
    (Rule("max_share", 0.7), {"shares": {"audio": 0.6, "visual": 0.4}}, {"shares": {"audio": 0.8, "visual": 0.2}}),
    (Rule("max_share", 0.5, modality="visual"), {"shares": {"audio": 0.6, "visual": 0.4}},
     {"shares": {"audio": 0.4, "visual": 0.6}}),
    (Rule("min_share", 0.25), {"shares": {"audio": 0.7, "visual": 0.3}}, {"shares": {"audio": 0.8, "visual": 0.2}}),
    (Rule("min_share", 0.25, modality="visual"), {"shares": {"audio": 0.7, "visual": 0.3}},
     {"shares": {"audio": 0.9, "visual": 0.1}}),
    (Rule("max_share_variance", 0.02), {"shares": {"audio": 0.6, "visual": 0.4}},  # variance 0.01
     {"shares": {"audio": 0.9, "visual": 0.1}}),  # variance 0.16
    (Rule("min_accuracy", 0.6), {"accuracy": 0.8}, {"accuracy": 0.5}),
    (Rule("min_ablation_drop", 0.5), {"ablation": {"audio": 2.0, "visual": 0.8}},
     {"ablation": {"audio": 2.0, "visual": 0.1}}),
    (Rule("min_ablation_drop", 0.5, modality="audio"), {"ablation": {"audio": 2.0, "visual": 0.0}},
     {"ablation": {"audio": 0.2, "visual": 3.0}}),
    (Rule("min_ablation_accuracy_drop", 0.05),
     {"ablation": {"audio": 1, "visual": 1}, "accuracy_drop": {"audio": 0.3, "visual": 0.1}},
     {"ablation": {"audio": 1, "visual": 1}, "accuracy_drop": {"audio": 0.3, "visual": 0.01}}),
]


@pytest.mark.parametrize("rule,good,bad", CASES, ids=[c[0].id + f"-{i}" for i, c in enumerate(CASES)])
def test_each_rule_passes_and_fails(rule: Rule, good: dict, bad: dict, make_audit: MakeAudit) -> None:
    ok = check(make_audit(**good), [rule])
    assert ok.passed and ok.outcomes[0].verdict is Verdict.PASS, ok.outcomes[0].message
    failed = check(make_audit(**bad), [rule])
    outcome = failed.outcomes[0]
    assert not failed.passed and outcome.verdict is Verdict.FAIL
    assert outcome.rule == rule.id and outcome.limit == rule.limit
    assert ("above" in outcome.message) == (rule.spec.bound == "max")


def test_measured_value_and_message_name_the_worst_modality(make_audit: MakeAudit) -> None:
    report = check(make_audit({"audio": 0.81, "visual": 0.19}), [Rule("max_share", 0.7), Rule("min_share", 0.25)])
    top, low = report.outcomes
    assert top.measured == pytest.approx(0.81) and top.where == "audio"
    assert top.message == "share of audio is 81.0%, above the 70.0% limit"
    assert low.measured == pytest.approx(0.19) and low.where == "visual"
    assert low.message == "share of visual is 19.0%, below the 25.0% minimum"


def test_at_the_limit_passes(make_audit: MakeAudit) -> None:
    assert check(make_audit({"audio": 0.7, "visual": 0.3}), [Rule("max_share", 0.7)]).passed


def test_warn_level_warns_instead_of_failing(make_audit: MakeAudit) -> None:
    audit = make_audit({"audio": 0.8, "visual": 0.2})
    report = check(audit, [Rule("max_share", 0.7, level="warn"), Rule("min_accuracy", 0.5)])
    assert report.passed
    assert [o.verdict for o in report.outcomes] == [Verdict.WARN, Verdict.PASS]
    assert report.verdict is Verdict.WARN and len(report.warnings) == 1 and not report.failed
    both = check(audit, [Rule("max_share", 0.7, level="warn"), Rule("min_share", 0.3)])
    assert not both.passed and both.verdict is Verdict.FAIL
    assert [o.rule for o in both.failed] == ["min_share"] and [o.rule for o in both.warnings] == ["max_share"]


def test_per_class_applies_share_rules_to_every_class(make_audit: MakeAudit) -> None:
    audit = make_audit({"audio": 0.6, "visual": 0.4},
                       per_class={"low": {"audio": 0.5, "visual": 0.5}, "high": {"audio": 0.9, "visual": 0.1}})
    assert check(audit, [Rule("max_share", 0.7)]).passed
    report = check(audit, [Rule("max_share", 0.7), Rule("max_share_variance", 0.05), Rule("min_accuracy", 0.5)],
                   per_class=True)
    share, variance, accuracy = report.outcomes
    assert share.verdict is Verdict.FAIL and share.where == "audio, class high"
    assert share.measured == pytest.approx(0.9) and "in class high" in share.message
    assert variance.verdict is Verdict.FAIL and variance.where == "class high"
    assert accuracy.verdict is Verdict.PASS  # not a share rule: per_class does not apply
    assert "every class" in share.description


def test_per_class_without_per_class_shares_is_an_error(make_audit: MakeAudit) -> None:
    with pytest.raises(ResultsError, match="per-class"):
        check(make_audit(), [Rule("max_share", 0.7)], per_class=True)


def test_method_chooses_whose_shares_are_judged(make_audit: MakeAudit) -> None:
    audit = make_audit({"audio": 0.6, "visual": 0.4}, extra_methods={"shapley": {"audio": 0.9, "visual": 0.1}})
    assert check(audit, [Rule("max_share", 0.7)]).passed
    report = check(audit, [Rule("max_share", 0.7)], method="shapley")
    assert not report.passed and report.audit["method"] == "shapley"
    with pytest.raises(UsageError, match="no results for method 'perm'.*ig, shapley"):
        check(audit, [Rule("max_share", 0.7)], method="perm")


def test_unknown_modality_names_the_available_ones(make_audit: MakeAudit) -> None:
    with pytest.raises(UsageError) as err:
        check(make_audit(), [Rule("min_share", 0.2, modality="visaul")])
    text = str(err.value)
    assert "visaul" in text and "audio, visual" in text and "did you mean 'visual'" in text


def test_ablation_rules_need_the_ablation_method(make_audit: MakeAudit) -> None:
    with pytest.raises(UsageError, match="--method ig,ablation"):
        check(make_audit(), [Rule("min_ablation_drop", 0.1)])
    with pytest.raises(ResultsError, match="accuracy_drop"):
        check(make_audit(ablation={"audio": 1.0, "visual": 1.0}), [Rule("min_ablation_accuracy_drop", 0.1)])


def test_baseline_regression_rule(make_audit: MakeAudit) -> None:
    base = make_audit({"audio": 0.60, "visual": 0.40})
    small = make_audit({"audio": 0.63, "visual": 0.37})
    big = make_audit({"audio": 0.72, "visual": 0.28})
    rule = Rule("max_share_increase", 0.05)
    assert check(small, [rule], baseline=base).passed
    report = check(big, [rule], baseline=base)
    outcome = report.outcomes[0]
    assert outcome.verdict is Verdict.FAIL and outcome.where == "audio"
    assert outcome.measured == pytest.approx(0.12)
    assert "60.0% → 72.0%" in outcome.message and "12.0 pp" in outcome.message
    assert report.baseline is not None
    # only the named modality
    assert check(big, [Rule("max_share_increase", 0.05, modality="visual")], baseline=base).passed
    with pytest.raises(UsageError, match="baseline"):
        check(big, [rule])
    with pytest.raises(UsageError, match="baseline audit has no modality"):
        check(big, [rule], baseline=make_audit({"audio": 0.5, "text": 0.5}))


def test_bad_rules_are_usage_errors(make_audit: MakeAudit) -> None:
    with pytest.raises(UsageError, match="did you mean 'max_share'"):
        Rule("max_shares", 0.7)
    with pytest.raises(UsageError, match="between 0 and 1.*70") as err:
        Rule("max_share", 70)
    assert "0.7 means 70%" in str(err.value)
    with pytest.raises(UsageError, match="level"):
        Rule("max_share", 0.7, level="error")
    with pytest.raises(UsageError, match="does not take a modality"):
        Rule("min_accuracy", 0.5, modality="audio")
    with pytest.raises(UsageError, match="no check rules"):
        check(make_audit(), [])
    with pytest.raises(UsageError, match="twice"):
        check(make_audit(), [Rule("max_share", 0.7), Rule("max_share", 0.8)])


def test_missing_share_value_fails_the_rule(make_audit: MakeAudit) -> None:
    audit = make_audit({"audio": 0.8, "visual": 0.2})
    audit.methods["ig"].shares["visual"] = None  # what NaN becomes in the JSON
    report = check(audit, [Rule("min_share", 0.1, level="warn")])
    assert not report.passed
    by_rule = {o.rule: o for o in report.outcomes}
    assert by_rule["min_share"].verdict is Verdict.FAIL and "visual" in by_rule["min_share"].message
    assert by_rule["finite_results"].verdict is Verdict.FAIL


@pytest.mark.parametrize("text,expected", [
    ("0.7", Rule("max_share", 0.7)),
    ("0.7:warn", Rule("max_share", 0.7, level="warn")),
    ("audio=0.8", Rule("max_share", 0.8, modality="audio")),
    (" audio = 0.8 : fail ", Rule("max_share", 0.8, modality="audio")),
])
def test_parse_rule_option(text: str, expected: Rule) -> None:
    assert parse_rule_option("max_share", text) == expected


@pytest.mark.parametrize("text,match", [
    ("abc", "expected \\[MODALITY=\\]NUMBER"),
    ("0.7:error", "'warn' or 'fail'"),
    ("1.5", "between 0 and 1"),
])
def test_parse_rule_option_errors(text: str, match: str) -> None:
    with pytest.raises(UsageError, match=match) as err:
        parse_rule_option("max_share", text)
    assert "--max-share" in str(err.value)


def test_rules_from_options_and_merge() -> None:
    rules = rules_from_options(max_share=["0.7"], min_share=["visual=0.25:warn", "audio=0.1"], min_accuracy="0.5")
    assert [r.id for r in rules] == ["max_share", "min_share[visual]", "min_share[audio]", "min_accuracy"]
    with pytest.raises(UsageError, match="twice"):
        rules_from_options(max_share=["0.7", "0.8"])
    merged = merge_rules(rules, [Rule("max_share", 0.9, level="warn"), Rule("max_share_variance", 0.1)])
    assert [r.id for r in merged] == ["max_share", "min_share[visual]", "min_share[audio]", "min_accuracy",
                                      "max_share_variance"]
    assert merged[0].limit == 0.9 and merged[0].level == "warn"


def test_report_round_trips_through_json(make_audit: MakeAudit) -> None:
    report = check(make_audit({"audio": 0.8, "visual": 0.2}),
                   [Rule("max_share", 0.7), Rule("min_share", 0.1, level="warn")])
    d = report.to_dict()
    assert d["schema"] == "mmbalance.check/1" and d["passed"] is False and d["verdict"] == "FAIL"
    assert d["counts"] == {"rules": 2, "pass": 1, "warn": 0, "fail": 1}
    assert d["audit"]["model"] == "av-tiny" and d["audit"]["method"] == "ig"
    assert CheckReport.from_dict(d) == report
    with pytest.raises(ResultsError):
        CheckReport.from_dict({"schema": "other"})


def test_a_modality_rule_replaces_the_general_one_for_that_modality(make_audit: MakeAudit) -> None:
    audit = make_audit({"audio": 0.75, "visual": 0.25})
    report = check(audit, [Rule("max_share", 0.7), Rule("max_share", 0.8, modality="audio")])
    general, audio = report.outcomes
    assert report.passed and general.where == "visual" and audio.measured == pytest.approx(0.75)
    assert general.description == "share of each modality but audio ≤ 70.0%"
    assert not check(audit, [Rule("max_share", 0.7), Rule("max_share", 0.72, modality="audio")]).passed
    covered = check(audit, [Rule("min_share", 0.5), Rule("min_share", 0.1, modality="audio"),
                            Rule("min_share", 0.1, modality="visual")])
    assert covered.passed and covered.outcomes[0].measured is None
    assert "of its own" in covered.outcomes[0].message
