"""Rules judged on an audit: measure first, judge second.

:func:`check` measures the figure each :class:`~mmbalance.check.rules.Rule` names on an
:class:`~mmbalance.results.AuditResult` and judges it against the rule's limit: PASS, or,
when the limit is crossed, WARN or FAIL according to the rule's level. The verdicts come
back as a :class:`CheckReport`, which serializes both ways; rendering it (table, JUnit,
Markdown, annotations) is the job of :mod:`mmbalance.check.render`.

Example:
    >>> from mmbalance.results import AuditResult, MethodResult
    >>> ig = MethodResult(name="ig", shares={"audio": 0.8, "visual": 0.2})
    >>> audit = AuditResult(model="m", data="d", n_samples=4, modalities=["audio", "visual"],
    ...                     accuracy=0.9, methods={"ig": ig})
    >>> report = check(audit, [Rule("max_share", 0.7), Rule("min_accuracy", 0.8, level="warn")])
    >>> [(o.rule, o.verdict.value) for o in report.outcomes]
    [('max_share', 'FAIL'), ('min_accuracy', 'PASS')]
    >>> report.passed
    False
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ..errors import ResultsError, UsageError
from ..guards import completeness_ratio
from ..results import AuditResult, MethodResult, imbalance_figures
from .rules import ABLATION, CHECK_SCHEMA, Rule, Verdict, _label, format_value, suggest

# Values exactly at the limit pass; this absorbs float noise from JSON round trips.
_EPS = 1e-9


@dataclass(frozen=True)
class Outcome:
    """The verdict of one rule: what was measured, against which limit, and why.

    ``where`` names the modality/class that gave the ``measured`` (worst) value.
    """

    rule: str
    name: str
    description: str
    measured: float | None
    limit: float
    level: str
    verdict: Verdict
    message: str
    modality: str | None = None
    where: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"rule": self.rule, "name": self.name, "modality": self.modality,
                "description": self.description, "measured": _finite(self.measured), "limit": self.limit,
                "level": self.level, "verdict": self.verdict.value, "where": self.where, "message": self.message}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Outcome":
        """Inverse of :meth:`to_dict`."""
        return cls(rule=d["rule"], name=d["name"], description=d["description"], measured=d.get("measured"),
                   limit=d["limit"], level=d["level"], verdict=Verdict(d["verdict"]), message=d["message"],
                   modality=d.get("modality"), where=d.get("where"))


@dataclass(frozen=True)
class CheckReport:
    """All verdicts of one check, with what was checked (``audit``, ``baseline`` summaries).

    ``passed`` is true when no rule failed (warnings allowed).

    Example:
        >>> report.passed, [o.rule for o in report.failed]  # doctest: +SKIP
        (False, ['max_share'])
    """

    outcomes: tuple[Outcome, ...]
    audit: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] | None = None

    @property
    def failed(self) -> list[Outcome]:
        """Outcomes with verdict FAIL."""
        return [o for o in self.outcomes if o.verdict is Verdict.FAIL]

    @property
    def warnings(self) -> list[Outcome]:
        """Outcomes with verdict WARN."""
        return [o for o in self.outcomes if o.verdict is Verdict.WARN]

    @property
    def passed(self) -> bool:
        """True when no rule failed."""
        return not self.failed

    @property
    def verdict(self) -> Verdict:
        """FAIL if any rule failed, else WARN if any warned, else PASS."""
        if self.failed:
            return Verdict.FAIL
        return Verdict.WARN if self.warnings else Verdict.PASS

    @property
    def counts(self) -> dict[str, int]:
        """How many rules ended in each verdict, plus the total."""
        counts = {v.value.lower(): 0 for v in Verdict}
        for o in self.outcomes:
            counts[o.verdict.value.lower()] += 1
        return {"rules": len(self.outcomes), **counts}

    def summary(self) -> str:
        """One line: ``failed: 1 of 4 rules failed, 1 warning``."""
        n, f, w = len(self.outcomes), len(self.failed), len(self.warnings)
        warn = f", {w} warning{'s' if w != 1 else ''}" if w else ""
        if f:
            return f"failed: {f} of {n} rule{'s' if n != 1 else ''} failed{warn}"
        return f"passed: {n} rule{'s' if n != 1 else ''} checked{warn}"

    def to_dict(self) -> dict[str, Any]:
        """The ``mmbalance.check/1`` verdict document."""
        return {"schema": CHECK_SCHEMA, "passed": self.passed, "verdict": self.verdict.value,
                "counts": self.counts, "audit": dict(self.audit), "baseline": self.baseline,
                "outcomes": [o.to_dict() for o in self.outcomes]}

    def to_json(self) -> str:
        """Indented JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CheckReport":
        """Rebuild a report from :meth:`to_dict` output (to re-render it without re-checking)."""
        if not isinstance(d, Mapping) or d.get("schema") != CHECK_SCHEMA:
            found = d.get("schema") if isinstance(d, Mapping) else None
            raise ResultsError(f"not an mmbalance check verdict (schema {found!r}, expected {CHECK_SCHEMA!r})")
        try:
            return cls(outcomes=tuple(Outcome.from_dict(o) for o in d["outcomes"]),
                       audit=dict(d.get("audit") or {}), baseline=d.get("baseline"))
        except (KeyError, TypeError, ValueError) as err:
            raise ResultsError(f"check verdict is missing or has malformed fields ({err})") from err


# -- measuring --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Point:
    """One measured figure: its value, where it was taken and what it is, in words."""

    value: float
    where: str
    label: str


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) else None


class _MissingValue(ResultsError):
    """A figure a rule needs is missing or NaN in the audit: the rule fails (it never passes)."""


def _number(value: Any, what: str) -> float:
    number = _finite(value)
    if number is None:
        raise _MissingValue(f"the audit has no finite value for {what} (found {value!r})",
                            hint="re-run `mmbalance audit`")
    return number


def _completeness_methods(audit: AuditResult) -> list[MethodResult]:
    """The methods that report a completeness error (Integrated Gradients)."""
    keys = ("completeness_error", "relative_completeness_error")
    return [m for m in audit.methods.values() if any(k in m.extra for k in keys)]


def _method(audit: AuditResult, name: str, which: str) -> MethodResult:
    if name not in audit.methods:
        available = ", ".join(audit.methods) or "none"
        raise UsageError(f"the {which} has no results for method '{name}' (it has: {available})",
                         hint=f"run the audit with `--method {name}`")
    return audit.methods[name]


def _default_method(audit: AuditResult) -> str:
    if audit.primary_method in audit.methods or not audit.methods:
        return audit.primary_method
    return next(iter(audit.methods))


def _class_shares(method: MethodResult) -> list[tuple[str, Mapping[str, Any]]]:
    if not method.per_class:
        raise ResultsError(f"per-class checks need per-class shares, and method '{method.name}' of the audit has none",
                           hint="audit labelled data, or drop per_class")
    scopes = []
    for cls, entry in method.per_class.items():
        shares = entry.get("shares") if isinstance(entry, Mapping) else None
        if shares:
            scopes.append((str(cls), shares))
    return scopes


def _share_points(rule: Rule, method: MethodResult, modalities: Sequence[str], targets: Sequence[str],
                  per_class: bool) -> list[_Point]:
    scopes: list[tuple[str | None, Mapping[str, Any]]] = [(None, method.shares)]
    if per_class:
        scopes += _class_shares(method)
    points = []
    for cls, shares in scopes:
        where_cls = f"class {cls}" if cls is not None else ("all samples" if per_class else None)
        values = {m: _number(shares.get(m), f"the {method.name} share of {m}" + (f" in {where_cls}" if cls else ""))
                  for m in modalities}
        if rule.name == "max_share_variance":
            points.append(_Point(imbalance_figures(values)["share_variance"], where_cls or "all samples",
                                 _label(rule.name, None, cls)))
            continue
        for m in targets:
            where = f"{m}, {where_cls}" if where_cls else m
            points.append(_Point(values[m], where, _label(rule.name, m, cls)))
    return points


def _modality_points(rule: Rule, values: Mapping[str, Any], targets: Sequence[str], what: str) -> list[_Point]:
    return [_Point(_number(values.get(m), f"{what} of {m}"), m, _label(rule.name, m, None)) for m in targets]


def _targets(rule: Rule, rules: Sequence[Rule], modalities: Sequence[str]) -> list[str]:
    """The modalities a rule judges: its own, or each one without a rule of the same name of its own."""
    if rule.modality is not None:
        return [rule.modality]
    own = {r.modality for r in rules if r.name == rule.name and r.modality is not None}
    return [m for m in modalities if m not in own]


def _measure(rule: Rule, targets: Sequence[str], audit: AuditResult, baseline: AuditResult | None,
             method: str, per_class: bool) -> list[_Point]:
    """Every figure ``rule`` looks at, before judging."""
    if rule.spec.share_rule:
        return _share_points(rule, audit.methods[method], audit.modalities, targets, per_class)
    if rule.name == "min_accuracy":
        return [_Point(_number(audit.accuracy, "accuracy"), "all samples", _label(rule.name, None, None))]
    if rule.name == "min_ablation_drop":
        return _modality_points(rule, audit.methods[ABLATION].scores, targets, "the ablation logit drop")
    if rule.name == "min_ablation_accuracy_drop":
        return _modality_points(rule, audit.methods[ABLATION].extra["accuracy_drop"], targets,
                                "the ablation accuracy drop")
    if rule.name == "max_share_increase" and baseline is not None:
        now, before = audit.methods[method].shares, baseline.methods[method].shares
        points = []
        for m in targets:
            new = _number(now.get(m), f"the {method} share of {m}")
            old = _number(before.get(m), f"the baseline {method} share of {m}")
            points.append(_Point(new - old, m, f"{_label(rule.name, m, None)} ({old:.1%} → {new:.1%})"))
        return points
    if rule.name == "max_completeness_error":
        return [_Point(_number(completeness_ratio(m.extra), f"the completeness error of {m.name}"), m.name,
                       _label(rule.name, m.name, None)) for m in _completeness_methods(audit)]
    if rule.name == "min_probe_gap":
        gaps = {m: row.get("gap") for m, row in _probe(audit).items()}
        return _modality_points(rule, gaps, [m for m in targets if gaps.get(m) is not None],
                                "the probe gap")
    raise UsageError(f"rule {rule.id} cannot be measured on this audit")  # pragma: no cover - _validate


def _judge(rule: Rule, points: Sequence[_Point], description: str) -> Outcome:
    spec = rule.spec
    fmt: Callable[[float], str] = lambda v: format_value(rule.name, v)  # noqa: E731
    if spec.bound == "max":
        worst = max(points, key=lambda p: p.value)
        crossed = [p for p in points if p.value > rule.limit + _EPS]
        side, bound_word = "above", "limit"
    else:
        worst = min(points, key=lambda p: p.value)
        crossed = [p for p in points if p.value < rule.limit - _EPS]
        side, bound_word = "below", "minimum"
    if crossed:
        verdict = Verdict.FAIL if rule.level == "fail" else Verdict.WARN
        message = f"{worst.label} is {fmt(worst.value)}, {side} the {fmt(rule.limit)} {bound_word}"
        if len(crossed) > 1:
            names = "; ".join(p.where for p in crossed[:6]) + ("; …" if len(crossed) > 6 else "")
            message += f" ({len(crossed)} of {len(points)} cross it: {names})"
    else:
        verdict = Verdict.PASS
        within = "within the" if spec.bound == "max" else "meets the"
        message = f"{worst.label} is {fmt(worst.value)}, {within} {fmt(rule.limit)} {bound_word}"
    return Outcome(rule=rule.id, name=rule.name, description=description, measured=worst.value,
                   limit=rule.limit, level=rule.level, verdict=verdict, message=message,
                   modality=rule.modality, where=worst.where)


def _validate(rules: Sequence[Rule], audit: AuditResult, baseline: AuditResult | None, method: str) -> None:
    seen: set[str] = set()
    for rule in rules:
        if not isinstance(rule, Rule):
            raise UsageError(f"check() takes Rule objects, got {type(rule).__name__}")
        if rule.id in seen:
            raise UsageError(f"rule {rule.id} is given twice")
        seen.add(rule.id)
        if rule.modality is not None and rule.modality not in audit.modalities:
            hint = suggest(rule.modality, audit.modalities)
            raise UsageError(f"rule {rule.id} names modality '{rule.modality}', but the audit has: "
                             f"{', '.join(audit.modalities)}", hint=hint)
        if rule.name.startswith("min_ablation") and ABLATION not in audit.methods:
            raise UsageError(f"rule {rule.id} needs the ablation estimator, and the audit has only: "
                             f"{', '.join(audit.methods) or 'no methods'}",
                             hint=f"run the audit with `--method {method},{ABLATION}`")
        if rule.name == "min_ablation_accuracy_drop" and not isinstance(
                audit.methods[ABLATION].extra.get("accuracy_drop"), Mapping):
            raise ResultsError(f"rule {rule.id} needs the ablation accuracy drops "
                               "(methods.ablation.extra.accuracy_drop), which the audit lacks",
                               hint="re-run the audit with `--method ablation` on labelled data")
        if rule.name == "max_share_increase":
            if baseline is None:
                raise UsageError(f"rule {rule.id} compares with a baseline audit, and none was given",
                                 hint="pass --baseline old-audit.json (or baseline = \"...\" in the policy)")
            missing = [m for m in ([rule.modality] if rule.modality else audit.modalities)
                       if m not in baseline.modalities]
            if missing:
                raise UsageError(f"the baseline audit has no modality {', '.join(missing)} "
                                 f"(it has: {', '.join(baseline.modalities)})",
                                 hint="compare audits of the same model family")
        if rule.name == "max_completeness_error" and not _completeness_methods(audit):
            raise UsageError(f"rule {rule.id} needs the completeness error of Integrated Gradients, and the audit "
                             f"has only: {', '.join(audit.methods) or 'no methods'}",
                             hint="run the audit with `--method ig`")
        if rule.name == "min_probe_gap":
            gaps = {m for m, row in _probe(audit).items() if isinstance(row, Mapping) and row.get("gap") is not None}
            wanted = [rule.modality] if rule.modality else sorted(gaps)
            if not gaps or any(m not in gaps for m in wanted):
                raise UsageError(f"rule {rule.id} needs the encoder probe against unimodal runs, and the audit "
                                 f"has {'none' if not gaps else 'it only for ' + ', '.join(sorted(gaps))}",
                                 hint="run the audit with --probe --probe-unimodal visual=runs/v/best.pt")
        if rule.spec.share_rule or rule.name == "max_share_increase":
            _method(audit, method, "audit")
            if rule.name == "max_share_increase" and baseline is not None:
                _method(baseline, method, "baseline audit")


def _probe(audit: AuditResult) -> Mapping[str, Any]:
    """The audit's encoder probe (``extra.probe``, from ``audit --probe``), or an empty mapping."""
    probe = audit.extra.get("probe") if isinstance(audit.extra, Mapping) else None
    return probe if isinstance(probe, Mapping) else {}


def _summary(audit: AuditResult, method: str | None) -> dict[str, Any]:
    summary = {"model": audit.model, "checkpoint": audit.checkpoint, "data": audit.data, "split": audit.split,
               "n_samples": audit.n_samples, "modalities": list(audit.modalities), "method": method,
               "created": audit.created}
    if audit.warnings:
        summary["warnings"] = [str(w.get("message", w)) if isinstance(w, Mapping) else str(w)
                               for w in audit.warnings]
    return summary


def _state(value: Any) -> str:
    """What is wrong with a value that should be a finite number, in one word."""
    if value is None:
        return "missing"
    if isinstance(value, float) and value != value:
        return "NaN"
    return repr(value)


def _integrity(audit: AuditResult) -> list[Outcome]:
    """FAIL outcomes an audit gets whatever the rules: missing or NaN results, unaudited model inputs.

    Only present when something is wrong, so a sound audit's report lists just its rules.
    """
    outcomes = []
    gaps = [f"accuracy ({_state(audit.accuracy)})"] if _finite(audit.accuracy) is None else []
    for name, m in audit.methods.items():
        for what, values in (("share", m.shares), ("score", m.scores)):
            if what == "score" and not values:
                continue  # scores not recorded at all (a hand-made audit): shares alone are judged
            gaps += [f"the {name} {what} of {mod} ({_state(values.get(mod))})" for mod in audit.modalities
                     if _finite(values.get(mod)) is None]
    if not audit.methods:
        gaps.append("any method's shares")
    if gaps:
        listed = "; ".join(gaps[:4]) + ("; …" if len(gaps) > 4 else "")
        outcomes.append(Outcome(
            rule="finite_results", name="finite_results", description="every share, score and accuracy is a number",
            measured=float(len(gaps)), limit=0.0, level="fail", verdict=Verdict.FAIL,
            message=f"the audit has {len(gaps)} missing or NaN value{'s' if len(gaps) != 1 else ''} ({listed}): "
                    "its shares cannot be trusted; fix the model (see the audit's errors) and re-run the audit"))
    missing = [m for m in (audit.model_inputs or []) if m not in audit.modalities]
    if missing:
        outcomes.append(Outcome(
            rule="all_model_inputs", name="all_model_inputs", description="every modality the model takes is audited",
            measured=float(len(missing)), limit=0.0, level="fail", verdict=Verdict.FAIL,
            message=f"the model takes {', '.join(missing)}, which the audit did not measure (it measured "
                    f"{', '.join(audit.modalities)}); audit all of {', '.join(audit.model_inputs or [])}",
            where=", ".join(missing)))
    return outcomes


def _trust(audit: AuditResult, *, require_agreement: bool, allow_untrained: bool) -> list[Outcome]:
    """Outcomes on whether the audit's headline can be trusted at all, whatever the rules.

    ``estimator_agreement``: the audit's estimators name different dominant modalities beyond
    their intervals (verdict ``inconclusive``): a WARN, a FAIL with ``require_agreement`` (listed as
    PASS then when they agree). ``trained_model``: the audit ran on a model's initial weights
    (warning ``no_checkpoint``): a FAIL unless ``allow_untrained``.
    """
    outcomes = []
    verdict = audit.verdict
    level = "fail" if require_agreement else "warn"
    desc = "the estimators name the same dominant modality"
    if verdict["status"] == "inconclusive" and len(audit.methods) > 1:
        outcomes.append(Outcome(
            rule="estimator_agreement", name="estimator_agreement", description=desc, measured=None, limit=0.0,
            level=level, verdict=Verdict.FAIL if require_agreement else Verdict.WARN,
            message=f"{verdict['message']}; the shares of any one estimator cannot be trusted alone: see "
                    "docs/estimators.md for what each measures"))
    elif require_agreement:
        outcomes.append(Outcome(rule="estimator_agreement", name="estimator_agreement", description=desc,
                                measured=None, limit=0.0, level=level, verdict=Verdict.PASS,
                                message=f"the estimators agree ({verdict['message']})"))
    if "no_checkpoint" in audit.warning_codes() and not allow_untrained:
        outcomes.append(Outcome(
            rule="trained_model", name="trained_model", description="the audited model was loaded from a checkpoint",
            measured=None, limit=0.0, level="fail", verdict=Verdict.FAIL,
            message="the audit ran on the model's random initial weights (no --checkpoint): pass the trained "
                    "checkpoint, or --allow-untrained if the model loads its weights itself"))
    return outcomes


def check(
    audit: AuditResult,
    rules: Sequence[Rule],
    *,
    baseline: AuditResult | None = None,
    method: str | None = None,
    per_class: bool = False,
    require_agreement: bool = False,
    allow_untrained: bool = False,
) -> CheckReport:
    """Judge ``audit`` by ``rules``; one :class:`Outcome` per rule, in order.

    Share rules look at the shares of ``method`` (default: the audit's primary method);
    with ``per_class`` they also look at every class's shares and report the worst. A rule
    for one modality replaces the all-modality rule of the same name for that modality.
    ``max_share_increase`` needs ``baseline``. User mistakes (a modality the audit lacks,
    a missing estimator or baseline) raise :class:`~mmbalance.errors.UsageError`.

    Whatever the rules, an audit whose estimators disagree (verdict ``inconclusive``) gets a WARN
    (a FAIL with ``require_agreement``), and one run without a checkpoint (warning ``no_checkpoint``)
    a FAIL unless ``allow_untrained``.

    Example:
        >>> report = check(audit, [Rule("min_share", 0.25, modality="visual")])  # doctest: +SKIP
        >>> report.outcomes[0].message  # doctest: +SKIP
        'share of visual is 20.0%, below the 25.0% minimum'
    """
    rules = list(rules)
    if not rules:
        raise UsageError("no check rules given", hint="pass e.g. --max-share 0.7, or --policy mmbalance.toml")
    check_consistent(audit)
    if baseline is not None:
        check_consistent(baseline, what="baseline audit")
    method_name = method or _default_method(audit)
    _validate(rules, audit, baseline, method_name)
    outcomes = _integrity(audit) + _trust(audit, require_agreement=require_agreement,
                                          allow_untrained=allow_untrained)
    for rule in rules:
        targets = _targets(rule, rules, audit.modalities)
        excluded = [m for m in audit.modalities if m not in targets] if rule.modality is None else []
        description = rule.describe(per_class=per_class, excluded=excluded)
        if rule.spec.per_modality and not targets:
            outcomes.append(Outcome(rule=rule.id, name=rule.name, description=description, measured=None,
                                    limit=rule.limit, level=rule.level, verdict=Verdict.PASS,
                                    message=f"every modality has a {rule.name} limit of its own"))
            continue
        try:
            points = _measure(rule, targets, audit, baseline, method_name, per_class)
        except _MissingValue as err:  # a missing or NaN figure never passes
            outcomes.append(Outcome(rule=rule.id, name=rule.name, description=description, measured=None,
                                    limit=rule.limit, level=rule.level, verdict=Verdict.FAIL, message=err.message,
                                    modality=rule.modality))
            continue
        outcomes.append(_judge(rule, points, description))
    uses_shares = any(r.spec.share_rule or r.name == "max_share_increase" for r in rules)
    return CheckReport(outcomes=tuple(outcomes), audit=_summary(audit, method_name if uses_shares else None),
                       baseline=_summary(baseline, method_name) if baseline is not None else None)


# Shares of one method sum to 1 (scores_to_shares); a JSON round trip keeps that to ~1e-12.
_SUM_TOLERANCE = 1e-6


def check_consistent(audit: AuditResult, *, what: str = "audit") -> None:
    """Refuse an audit whose fields disagree: the modalities and the primary method are re-derived from the methods.

    An audit file is untrusted input: dropping a modality from ``modalities`` (or naming a
    ``primary_method`` the file lacks) must not turn a failing check into a pass. Every method's
    shares must name only the listed modalities and, when all are there, sum to 1; ``primary_method`` must be one
    of the methods (a listed modality without a value fails the check instead). Raises :class:`~mmbalance.errors.ResultsError` (exit 2).

    Example:
        >>> from mmbalance.results import AuditResult, MethodResult
        >>> ig = MethodResult(name="ig", shares={"audio": 0.15, "visual": 0.85})
        >>> check_consistent(AuditResult(model="m", data="d", n_samples=4, modalities=["audio"], accuracy=0.9,
        ...                              methods={"ig": ig}))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        mmbalance.errors.ResultsError: the audit lists the modalities audio, but its ig shares name audio, visual ...
    """
    listed = list(audit.modalities)
    hint = "re-run the audit; an audit file must not be edited by hand"
    if len(set(listed)) != len(listed):
        raise ResultsError(f"the {what} lists a modality twice ({', '.join(listed)})", hint=hint)
    if audit.methods and audit.primary_method not in audit.methods:
        raise ResultsError(f"the {what}'s primary_method '{audit.primary_method}' is not one of its methods "
                           f"({', '.join(audit.methods)})", hint=hint)
    for name, m in audit.methods.items():
        for kind, values in (("shares", m.shares), ("scores", m.scores)):
            if kind == "scores" and not values:
                continue
            if set(values) - set(listed):  # a listed modality without a value is a FAIL (_integrity), not this
                raise ResultsError(f"the {what} lists the modalities {', '.join(listed) or 'none'}, but its {name} "
                                   f"{kind} name {', '.join(map(str, values)) or 'none'}", hint=hint)
        finite = [float(v) for v in m.shares.values() if _finite(v) is not None]
        if len(finite) == len(listed) and finite and abs(math.fsum(finite) - 1.0) > _SUM_TOLERANCE:
            raise ResultsError(f"the {what}'s {name} shares sum to {math.fsum(finite):.6g}, not 1", hint=hint)
