"""The verdict at the top of a report: which modality dominates, and by how much.

This is the "judge" step between measuring (the audit) and rendering (HTML, Markdown):
a pure function from an :class:`~mmbalance.results.AuditResult` to a :class:`Summary`.

An audit reads as *balanced* when the largest share exceeds the equal share ``1/M``
by at most ``tolerance`` (default 0.10: up to 60% with two modalities, 43% with three), and
as *inconclusive* when its estimators name different dominant modalities beyond their
confidence intervals (:func:`mmbalance.results.audit_verdict`); an inconclusive audit is
never shown as balanced.

Example:
    >>> from mmbalance.results import AuditResult, MethodResult
    >>> m = MethodResult(name="ig", shares={"audio": 0.81, "visual": 0.19})
    >>> r = AuditResult(model="m", data="d", n_samples=8, modalities=["audio", "visual"], accuracy=0.9,
    ...                 methods={"ig": m})
    >>> summarize(r).verdict
    'audio dominates: 81% of the attribution'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..results import BALANCE_TOLERANCE, AuditResult, audit_verdict, is_balanced

__all__ = ["BALANCE_TOLERANCE", "Summary", "is_balanced", "summarize", "verdict_text"]


@dataclass(frozen=True)
class Summary:
    """Headline figures of one audit (from its primary method)."""

    method: str
    dominant: str | None
    balanced: bool
    verdict: str
    accuracy: float
    max_share: float
    share_variance: float
    entropy: float
    n_samples: int
    status: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def verdict_text(shares: dict[str, float], tolerance: float = BALANCE_TOLERANCE) -> str:
    """One line: ``"audio dominates: 81% of the attribution"`` or ``"balanced: ..."``.

    Example:
        >>> verdict_text({"audio": 0.52, "visual": 0.48})
        'balanced: the largest share is audio with 52%'
    """
    if not shares:
        return "no shares measured"
    top = max(shares, key=lambda m: shares[m])
    if is_balanced(shares[top], len(shares), tolerance):
        return f"balanced: the largest share is {top} with {shares[top]:.0%}"
    return f"{top} dominates: {shares[top]:.0%} of the attribution"


def summarize(audit: AuditResult, *, tolerance: float = BALANCE_TOLERANCE) -> Summary:
    """The :class:`Summary` of ``audit`` (primary method's shares).

    Example:
        >>> summarize(AuditResult.load("audit.json")).balanced  # doctest: +SKIP
        False
    """
    shares = audit.shares
    imb = audit.imbalance
    verdict = audit_verdict(audit.methods, audit.primary_method, tolerance)
    inconclusive = verdict["status"] == "inconclusive" and bool(shares)
    return Summary(
        method=audit.primary.name if audit.methods else "",
        dominant=audit.dominant_modality,
        balanced=(is_balanced(imb["max_share"], len(shares), tolerance) if shares else True) and not inconclusive,
        verdict=verdict["message"] if inconclusive else verdict_text(shares, tolerance),
        accuracy=float(audit.accuracy),
        max_share=float(imb["max_share"]),
        share_variance=float(imb["share_variance"]),
        entropy=float(imb["entropy"]),
        n_samples=int(audit.n_samples),
        status=verdict["status"],
    )
