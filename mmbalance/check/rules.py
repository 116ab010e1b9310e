"""The vocabulary of check rules: what each one measures, its limits, how it is written.

A :class:`Rule` is one condition ("no modality takes more than 70% of the attribution"):
a name from :data:`RULES` (whose :class:`RuleSpec` says what is measured and how the limit
reads), a limit, an optional modality and a level — a crossed limit is a FAIL or only a
WARN. Rules are built in code, parsed from command-line values (:func:`rules_from_options`)
or read from a policy file (:mod:`mmbalance.check.policy`); judging them on an audit is the
job of :mod:`mmbalance.check.evaluate`.

Example:
    >>> rule = parse_rule_option("min_share", "visual=0.25:warn")
    >>> rule.id, rule.describe()
    ('min_share[visual]', 'share of visual ≥ 25.0%')
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from enum import Enum
from typing import Iterable, Literal, Sequence

from ..errors import UsageError

CHECK_SCHEMA = "mmbalance.check/1"
LEVELS = ("warn", "fail")
ABLATION = "ablation"


class Verdict(str, Enum):
    """What a rule's judgement came to."""

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class RuleSpec:
    """What a rule measures and how its limit reads.

    ``bound`` is ``"max"`` (the figure may not exceed the limit) or ``"min"``;
    ``unit`` picks the formatting (``fraction`` → 70.0%, ``pp`` → 5.0 pp, ``number``,
    ``variance``); ``per_modality`` rules take an optional modality (none = each one);
    ``share_rule`` rules are also applied per class when ``per_class`` is on.
    """

    name: str
    bound: Literal["max", "min"]
    unit: Literal["fraction", "pp", "number", "variance"]
    per_modality: bool
    share_rule: bool
    low: float | None
    high: float | None
    summary: str


RULES: dict[str, RuleSpec] = {
    spec.name: spec
    for spec in (
        RuleSpec("max_share", "max", "fraction", True, True, 0.0, 1.0,
                 "largest share of the attribution a modality may take"),
        RuleSpec("min_share", "min", "fraction", True, True, 0.0, 1.0,
                 "smallest share of the attribution a modality must get"),
        RuleSpec("max_share_variance", "max", "variance", False, True, 0.0, None,
                 "largest population variance of the shares across modalities"),
        RuleSpec("min_accuracy", "min", "fraction", False, False, 0.0, 1.0,
                 "smallest top-1 accuracy on the audited samples"),
        RuleSpec("min_ablation_drop", "min", "number", True, False, None, None,
                 "smallest drop of the target logit when a modality is replaced by its baseline "
                 "(needs the ablation estimator)"),
        RuleSpec("min_ablation_accuracy_drop", "min", "pp", True, False, -1.0, 1.0,
                 "smallest drop of accuracy when a modality is replaced by its baseline "
                 "(needs the ablation estimator)"),
        RuleSpec("max_share_increase", "max", "pp", True, False, 0.0, 1.0,
                 "largest growth of a modality's share over a baseline audit (needs a baseline)"),
        RuleSpec("max_completeness_error", "max", "fraction", False, False, 0.0, None,
                 "largest mean Integrated Gradients completeness error, as a fraction of the mean "
                 "|F(x) - F(baseline)| (needs the ig estimator)"),
        RuleSpec("min_probe_gap", "min", "pp", True, False, -1.0, 1.0,
                 "smallest gap between a modality encoder's linear-probe accuracy and its unimodal "
                 "counterpart's, e.g. -0.05 (needs audit --probe --probe-unimodal)"),
    )
}


def format_value(rule: str, value: float | None) -> str:
    """Format a measured value or limit the way rule ``rule`` reads it.

    Example:
        >>> format_value("max_share", 0.7), format_value("max_share_increase", 0.05)
        ('70.0%', '5.0 pp')
    """
    if value is None or not math.isfinite(value):
        return "—"
    unit = RULES[rule].unit if rule in RULES else "number"
    if unit == "fraction":
        return f"{value:.1%}"
    if unit == "pp":
        return f"{value * 100:.1f} pp"
    if unit == "variance":
        return f"{value:.4f}"
    return f"{value:.4g}"


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """A "did you mean ...?" hint for a misspelt name, or ``None``.

    Example:
        >>> suggest("visaul", ["audio", "visual"])
        "did you mean 'visual'?"
        >>> suggest("max_shar", RULES)
        "did you mean 'max_share' or 'min_share'?"
    """
    close = difflib.get_close_matches(word, list(choices), n=2, cutoff=0.6)
    if not close:
        return None
    return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


def limit_problem(name: str, limit: object) -> tuple[str, str | None] | None:
    """What is wrong with ``limit`` for rule ``name`` (message, hint), or ``None`` when it is fine.

    Example:
        >>> limit_problem("max_share", 70)
        ('the limit must be between 0 and 1, got 70', 'shares and accuracies are fractions: 0.7 means 70%')
    """
    spec = RULES[name]
    if isinstance(limit, bool) or not isinstance(limit, (int, float)):
        return f"the limit must be a number, got {type(limit).__name__}", None
    if not math.isfinite(limit):
        return f"the limit must be a finite number, got {limit}", None
    if (spec.low is not None and limit < spec.low) or (spec.high is not None and limit > spec.high):
        span = (f"between {spec.low:g} and {spec.high:g}" if spec.low is not None and spec.high is not None
                else f"at least {spec.low:g}" if spec.low is not None else f"at most {spec.high:g}")
        hint = "shares and accuracies are fractions: 0.7 means 70%" if spec.unit in ("fraction", "pp") else None
        return f"the limit must be {span}, got {limit:g}", hint
    return None


@dataclass(frozen=True)
class Rule:
    """One condition on an audit: ``name`` (a key of :data:`RULES`), its ``limit``,
    the ``modality`` it concerns (``None``: each modality, for per-modality rules) and
    its ``level``: a crossed limit is a ``"fail"`` (exit 1) or only a ``"warn"``.

    Example:
        >>> Rule("min_share", 0.25, modality="visual", level="warn").id
        'min_share[visual]'
    """

    name: str
    limit: float
    modality: str | None = None
    level: str = "fail"

    def __post_init__(self) -> None:
        spec = RULES.get(self.name)
        if spec is None:
            raise UsageError(f"unknown check rule '{self.name}'",
                             hint=suggest(self.name, RULES) or f"known rules: {', '.join(RULES)}")
        if self.level not in LEVELS:
            raise UsageError(f"rule {self.id}: level must be 'warn' or 'fail', got {self.level!r}")
        problem = limit_problem(self.name, self.limit)
        if problem is not None:
            raise UsageError(f"rule {self.id}: {problem[0]}", hint=problem[1])
        if self.modality is not None and not spec.per_modality:
            raise UsageError(f"rule {self.name} does not take a modality (got {self.modality!r})")
        if self.modality is not None and (not isinstance(self.modality, str) or not self.modality):
            raise UsageError(f"rule {self.name}: the modality must be a non-empty name, got {self.modality!r}")
        object.__setattr__(self, "limit", float(self.limit))

    @property
    def id(self) -> str:
        """``name`` or ``name[modality]``: unique within one check."""
        return f"{self.name}[{self.modality}]" if self.modality else self.name

    @property
    def spec(self) -> RuleSpec:
        """The :class:`RuleSpec` of this rule's name."""
        return RULES[self.name]

    def describe(self, *, per_class: bool = False, excluded: Sequence[str] = ()) -> str:
        """One line saying what the rule demands (``excluded``: modalities with a rule of their own).

        Example:
            >>> Rule("max_share", 0.7).describe()
            'share of each modality ≤ 70.0%'
            >>> Rule("max_share", 0.7).describe(excluded=["audio"])
            'share of each modality but audio ≤ 70.0%'
        """
        subject = self.modality or "each modality" + (f" but {', '.join(excluded)}" if excluded else "")
        op = "≤" if self.spec.bound == "max" else "≥"
        text = f"{_label(self.name, subject, None)} {op} {format_value(self.name, self.limit)}"
        if per_class and self.spec.share_rule:
            text += ", in every class too"
        return text


def _label(rule: str, modality: str | None, cls: str | None) -> str:
    """What is measured, in words: ``share of audio in class low-a``."""
    in_class = f" in class {cls}" if cls is not None else ""
    if rule in ("max_share", "min_share"):
        return f"share of {modality}{in_class}"
    if rule == "max_share_variance":
        return f"share variance{in_class}"
    if rule == "min_accuracy":
        return "accuracy"
    if rule == "min_ablation_drop":
        return f"target-logit drop when {modality} is ablated"
    if rule == "min_ablation_accuracy_drop":
        return f"accuracy drop when {modality} is ablated"
    if rule == "max_share_increase":
        return f"increase of the share of {modality} over the baseline"
    if rule == "max_completeness_error":
        return f"completeness error of {modality}" if modality else "IG completeness error"
    return rule


def parse_rule_option(name: str, text: str) -> Rule:
    """Parse one command-line rule value ``[MODALITY=]NUMBER[:warn|:fail]``.

    Example:
        >>> parse_rule_option("min_share", "visual=0.25:warn")
        Rule(name='min_share', limit=0.25, modality='visual', level='warn')
        >>> parse_rule_option("max_share", "0.7")
        Rule(name='max_share', limit=0.7, modality=None, level='fail')
    """
    option = "--" + name.replace("_", "-")
    example = "visual=0.25:warn" if RULES.get(name, RULES["max_share"]).per_modality else "0.05:warn"
    body, level = text.strip(), "fail"
    head, sep, tail = body.rpartition(":")
    if sep:
        if tail.strip().lower() not in LEVELS:
            raise UsageError(f"{option} {text!r}: the level after ':' must be 'warn' or 'fail'",
                             hint=f"e.g. {option} {example}")
        body, level = head.strip(), tail.strip().lower()
    modality: str | None = None
    if "=" in body:
        modality, _, body = (part.strip() for part in body.partition("="))
    try:
        limit = float(body)
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected [MODALITY=]NUMBER[:warn|:fail]",
                         hint=f"e.g. {option} {example}") from None
    try:
        return Rule(name, limit, modality=modality or None, level=level)
    except UsageError as err:
        raise UsageError(f"{option} {text!r}: {err.message}", hint=err.hint) from None


def rules_from_options(
    *,
    max_share: Sequence[str] = (),
    min_share: Sequence[str] = (),
    max_share_variance: str | None = None,
    min_accuracy: str | None = None,
    min_ablation_drop: Sequence[str] = (),
    min_ablation_accuracy_drop: Sequence[str] = (),
    max_share_increase: Sequence[str] = (),
    max_completeness_error: str | None = None,
    min_probe_gap: Sequence[str] = (),
) -> list[Rule]:
    """Rules from command-line values (see :func:`parse_rule_option` for one value's form).

    Example:
        >>> [r.id for r in rules_from_options(max_share=["0.7"], min_share=["visual=0.25:warn"])]
        ['max_share', 'min_share[visual]']
    """
    given: list[tuple[str, Sequence[str]]] = [
        ("max_share", max_share),
        ("min_share", min_share),
        ("max_share_variance", [max_share_variance] if max_share_variance is not None else []),
        ("min_accuracy", [min_accuracy] if min_accuracy is not None else []),
        ("min_ablation_drop", min_ablation_drop),
        ("min_ablation_accuracy_drop", min_ablation_accuracy_drop),
        ("max_share_increase", max_share_increase),
        ("max_completeness_error", [max_completeness_error] if max_completeness_error is not None else []),
        ("min_probe_gap", min_probe_gap),
    ]
    rules: list[Rule] = []
    seen: set[str] = set()
    for name, values in given:
        for text in values:
            rule = parse_rule_option(name, text)
            if rule.id in seen:
                raise UsageError(f"rule {rule.id} given twice on the command line")
            seen.add(rule.id)
            rules.append(rule)
    return rules


def merge_rules(base: Iterable[Rule], override: Iterable[Rule]) -> list[Rule]:
    """``base`` with each rule of the same id replaced by ``override``'s; new ones appended.

    Used to let command-line flags override a policy file.

    Example:
        >>> [r.limit for r in merge_rules([Rule("max_share", 0.7)], [Rule("max_share", 0.8)])]
        [0.8]
    """
    merged = {r.id: r for r in base}
    for rule in override:
        merged[rule.id] = rule
    return list(merged.values())
