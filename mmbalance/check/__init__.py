"""The CI gate: rules over an audit, judged PASS / WARN / FAIL, rendered for CI tools.

Library first; ``mmbalance check`` is a thin shell over these functions.

Example:
    >>> from mmbalance.check import Rule, check, load_policy  # doctest: +SKIP
    >>> audit = AuditResult.load("audit.json")  # doctest: +SKIP
    >>> report = check(audit, [Rule("max_share", 0.7), Rule("min_share", 0.25, modality="visual")])  # doctest: +SKIP
    >>> report.passed, [o.message for o in report.failed]  # doctest: +SKIP
"""

from __future__ import annotations

from .evaluate import CheckReport, Outcome, check
from .policy import Policy, load_policy, parse_policy
from .render import append_step_summary, to_annotations, to_junit, to_markdown, to_table, write_junit
from .rules import (CHECK_SCHEMA, RULES, Rule, RuleSpec, Verdict, format_value, merge_rules, parse_rule_option,
                    rules_from_options)

__all__ = [
    "CHECK_SCHEMA", "RULES", "CheckReport", "Outcome", "Policy", "Rule", "RuleSpec", "Verdict",
    "append_step_summary", "check", "format_value", "load_policy", "merge_rules", "parse_policy",
    "parse_rule_option", "rules_from_options", "to_annotations", "to_junit", "to_markdown", "to_table",
    "write_junit",
]
