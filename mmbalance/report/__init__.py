"""Reports: plots, a self-contained HTML page, Markdown for pull requests, and before/after comparisons.

Measure (``audit()`` → :class:`~mmbalance.results.AuditResult`), judge
(:func:`summarize`, :func:`compare_audits`), render (:func:`build_report` via
:mod:`.plots`, :mod:`.html`, :mod:`.markdown`). Everything re-renders from the audit
JSON and the training ``metrics.csv`` alone, without the model.

Example:
    >>> from mmbalance.results import AuditResult  # doctest: +SKIP
    >>> files = build_report([AuditResult.load("audit.json")], out_dir="report")  # doctest: +SKIP
    >>> print(files.verdict)  # doctest: +SKIP
    audio dominates: 93% of the attribution
"""

from __future__ import annotations

from .build import DEFAULT_FORMATS, FORMATS, ReportFiles, build_report, parse_formats
from .compare import AuditComparison, Delta, compare_audits
from .metrics import TrainingMetrics, load_metrics
from .summary import Summary, summarize

__all__ = [
    "AuditComparison",
    "DEFAULT_FORMATS",
    "Delta",
    "FORMATS",
    "ReportFiles",
    "Summary",
    "TrainingMetrics",
    "build_report",
    "compare_audits",
    "load_metrics",
    "parse_formats",
    "summarize",
]
