"""Deltas between two audits (before → after): shares, accuracy, imbalance figures.

Pure: takes two :class:`~mmbalance.results.AuditResult` objects, returns an
:class:`AuditComparison` that renders as a table (``mmbalance compare``), JSON
(``--json``) or a report section.

Example:
    >>> from mmbalance.results import AuditResult, MethodResult
    >>> def make(a):
    ...     m = MethodResult(name="ig", shares={"audio": a, "visual": 1 - a})
    ...     return AuditResult(model="m", data="d", n_samples=8, modalities=["audio", "visual"],
    ...                        accuracy=0.8, methods={"ig": m})
    >>> c = compare_audits(make(0.9), make(0.6))
    >>> round(c.shares["ig"]["audio"].delta, 2), c.dominant_before, c.dominant_after
    (-0.3, 'audio', 'audio')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import ResultsError
from ..results import AuditResult
from .summary import BALANCE_TOLERANCE, is_balanced

IMBALANCE_KEYS = ("max_share", "share_variance", "entropy")


@dataclass(frozen=True)
class Delta:
    """One figure before and after; ``delta`` is ``after - before`` (``None`` if either is missing)."""

    before: float | None
    after: float | None

    @property
    def delta(self) -> float | None:
        """``after - before``."""
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    def to_dict(self) -> dict[str, float | None]:
        """``{"before": .., "after": .., "delta": ..}``."""
        return {"before": self.before, "after": self.after, "delta": self.delta}


@dataclass(frozen=True)
class AuditComparison:
    """What changed from ``before`` to ``after``.

    ``shares`` maps each method present in both audits to ``{modality: Delta}`` over
    the modalities both audits share; ``imbalance`` holds ``max_share``,
    ``share_variance`` and ``entropy`` of each audit's primary method.
    """

    before_label: str
    after_label: str
    methods: list[str]
    modalities: list[str]
    shares: dict[str, dict[str, Delta]]
    accuracy: Delta
    imbalance: dict[str, Delta]
    primary_before: str
    primary_after: str
    dominant_before: str | None
    dominant_after: str | None
    balanced_before: bool
    balanced_after: bool
    per_class_accuracy: dict[str, Delta] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def dominance_changed(self) -> bool:
        """Whether the dominant modality differs between the two audits."""
        return self.dominant_before != self.dominant_after

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``mmbalance compare --json``)."""
        return {
            "before": self.before_label,
            "after": self.after_label,
            "methods": list(self.methods),
            "modalities": list(self.modalities),
            "shares": {m: {mod: d.to_dict() for mod, d in per.items()} for m, per in self.shares.items()},
            "accuracy": self.accuracy.to_dict(),
            "imbalance": {k: d.to_dict() for k, d in self.imbalance.items()},
            "primary_method": {"before": self.primary_before, "after": self.primary_after},
            "dominant_modality": {"before": self.dominant_before, "after": self.dominant_after,
                                  "changed": self.dominance_changed},
            "balanced": {"before": self.balanced_before, "after": self.balanced_after},
            "per_class_accuracy": {k: d.to_dict() for k, d in self.per_class_accuracy.items()},
            "notes": list(self.notes),
        }


def compare_audits(before: AuditResult, after: AuditResult, *, before_label: str = "before",
                   after_label: str = "after", tolerance: float = BALANCE_TOLERANCE) -> AuditComparison:
    """Compare two audits: per-modality share deltas for every common method, plus accuracy and imbalance.

    Example:
        >>> c = compare_audits(AuditResult.load("plain.json"), AuditResult.load("balanced.json"))  # doctest: +SKIP
        >>> c.to_dict()["imbalance"]["max_share"]  # doctest: +SKIP
        {'before': 0.93, 'after': 0.58, 'delta': -0.35}
    """
    require_methods(before)
    require_methods(after)
    notes: list[str] = []
    after_mods = set(after.modalities)
    modalities = [m for m in before.modalities if m in after_mods]
    for label, audit, other in ((before_label, before, after), (after_label, after, before)):
        only = [m for m in audit.modalities if m not in set(other.modalities)]
        if only:
            notes.append(f"modalities only in {label}: {', '.join(only)}")
    methods = [m for m in before.methods if m in after.methods]
    for label, audit, other in ((before_label, before, after), (after_label, after, before)):
        only = [m for m in audit.methods if m not in other.methods]
        if only:
            notes.append(f"methods only in {label}: {', '.join(only)}")
    if before.primary.name != after.primary.name:
        notes.append(f"primary methods differ ({before.primary.name} → {after.primary.name}); "
                     "imbalance figures come from each audit's own primary method")
    if before.data != after.data or before.split != after.split:
        notes.append(f"different data: {before.data} [{before.split}] → {after.data} [{after.split}]")
    shares = {
        method: {mod: Delta(_get(before.methods[method].shares, mod), _get(after.methods[method].shares, mod))
                 for mod in modalities}
        for method in methods
    }
    imb_b, imb_a = before.imbalance, after.imbalance
    classes = [c for c in before.per_class_accuracy if c in after.per_class_accuracy]
    return AuditComparison(
        before_label=before_label,
        after_label=after_label,
        methods=methods,
        modalities=modalities,
        shares=shares,
        accuracy=Delta(_num(before.accuracy), _num(after.accuracy)),
        imbalance={k: Delta(_num(imb_b[k]), _num(imb_a[k])) for k in IMBALANCE_KEYS},
        primary_before=before.primary.name if before.methods else "",
        primary_after=after.primary.name if after.methods else "",
        dominant_before=before.dominant_modality,
        dominant_after=after.dominant_modality,
        balanced_before=is_balanced(imb_b["max_share"], len(before.shares), tolerance),
        balanced_after=is_balanced(imb_a["max_share"], len(after.shares), tolerance),
        per_class_accuracy={c: Delta(_num(before.per_class_accuracy[c]), _num(after.per_class_accuracy[c]))
                            for c in classes},
        notes=notes,
    )


def require_methods(audit: AuditResult) -> None:
    """Raise :class:`~mmbalance.errors.ResultsError` for an audit without any estimator result."""
    if not audit.methods:
        raise ResultsError(f"the audit of {audit.model} on {audit.data} has no attribution results",
                           hint="re-run `mmbalance audit`")


def _get(shares: dict[str, float], mod: str) -> float | None:
    return _num(shares.get(mod))


def _num(value: Any) -> float | None:
    """A float, or ``None`` for missing/non-numeric values (NaN is stored as null in the JSON)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)
