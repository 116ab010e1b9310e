"""Audit results: frozen dataclasses that serialize both ways.

The JSON layout ("mmbalance.audit/1") is documented in ``docs/audit-schema.md``;
reports and checks re-read it without the model.

Example:
    >>> shares = {"audio": 0.8, "visual": 0.2}
    >>> m = MethodResult(name="ig", level="input", shares=shares, scores={"audio": 4.0, "visual": 1.0})
    >>> r = AuditResult(model="av-tiny", data="synthetic:av-dominance", n_samples=10,
    ...                 modalities=["audio", "visual"], accuracy=0.5, methods={"ig": m})
    >>> r.dominant_modality, round(r.imbalance["max_share"], 2)
    ('audio', 0.8)
    >>> AuditResult.from_json(r.to_json()) == r
    True
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from . import __version__
from .errors import ResultsError
from .io import atomic_write_json

SCHEMA = "mmbalance.audit/1"
#: an audit reads as balanced when its largest share exceeds the equal share 1/M by at most this
BALANCE_TOLERANCE = 0.10
VERDICTS = ("balanced", "dominant", "inconclusive")
#: what ``mmbalance audit`` runs without ``--method``: exact Shapley values of modality removal (primary)
#: and modality ablation; both read what the model's output does without each modality (docs/estimators.md)
DEFAULT_METHODS = ("shapley", "ablation")


def imbalance_figures(shares: Mapping[str, float]) -> dict[str, float]:
    """Largest share, variance of the shares across modalities and their normalized entropy.

    Entropy is ``-sum(s log s) / log(M)``: 1 for perfectly equal shares, 0 when one
    modality takes everything.

    Example:
        >>> imbalance_figures({"a": 0.5, "b": 0.5})
        {'max_share': 0.5, 'share_variance': 0.0, 'entropy': 1.0}
    """
    values = [float(v) for v in shares.values()]
    if not values:
        return {"max_share": 0.0, "share_variance": 0.0, "entropy": 0.0}
    mean = sum(values) / len(values)
    variance = sum((v - mean) ** 2 for v in values) / len(values)
    if len(values) > 1:
        ent = -sum(v * math.log(v) for v in values if v > 0) / math.log(len(values))
    else:
        ent = 0.0
    return {"max_share": max(values), "share_variance": variance, "entropy": min(1.0, max(0.0, ent))}


def dominant(shares: Mapping[str, float]) -> str | None:
    """The modality with the largest share (``None`` when there are no shares)."""
    return max(shares, key=lambda m: shares[m]) if shares else None


def is_balanced(max_share: float, n_modalities: int, tolerance: float = BALANCE_TOLERANCE) -> bool:
    """Whether the largest share stays within ``tolerance`` of the equal share ``1/M``.

    Example:
        >>> is_balanced(0.55, 2), is_balanced(0.81, 2)
        (True, False)
    """
    if n_modalities < 2:
        return True
    return max_share <= 1.0 / n_modalities + tolerance + 1e-12


def clear_dominant(method: "MethodResult") -> str | None:
    """The modality ``method`` names dominant *beyond its confidence intervals*, else ``None``.

    The top modality is clear when the lower end of its 95% interval lies above the upper end of
    every other modality's (without intervals: when its share is strictly the largest, by more
    than 1e-9). A method whose shares tie, or whose intervals overlap, names no one.

    Example:
        >>> m = MethodResult(name="a", shares={"audio": 0.6, "visual": 0.4},
        ...                  ci95={"audio": [0.55, 0.65], "visual": [0.35, 0.45]})
        >>> clear_dominant(m)
        'audio'
        >>> clear_dominant(MethodResult(name="b", shares={"audio": 0.52, "visual": 0.48},
        ...                             ci95={"audio": [0.45, 0.6], "visual": [0.4, 0.55]})) is None
        True
    """
    shares = {m: float(v) for m, v in method.shares.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    if len(shares) < 2:
        return None
    top = max(shares, key=lambda m: shares[m])
    ci = method.ci95 or {}
    low_top = ci[top][0] if top in ci else shares[top]
    for m, v in shares.items():
        if m == top:
            continue
        high = ci[m][1] if m in ci else v
        if not low_top > high + (0.0 if top in ci and m in ci else 1e-9):
            return None
    return top


def audit_verdict(methods: Mapping[str, "MethodResult"], primary: str | None,
                  tolerance: float = BALANCE_TOLERANCE) -> dict[str, Any]:
    """The headline of an audit: ``balanced``, ``dominant`` or ``inconclusive``, with the why.

    ``inconclusive`` when two estimators of the audit each name a different dominant modality
    beyond their confidence intervals (:func:`clear_dominant`); otherwise the primary method's
    shares decide: ``balanced`` when the largest share is within ``tolerance`` of ``1/M``
    (:func:`is_balanced`), else ``dominant``. Returns ``{"status", "dominant", "max_share",
    "method", "by_method", "message"}`` (``by_method``: each estimator's clear dominant or ``None``).

    Example:
        >>> a = MethodResult(name="shapley", shares={"audio": 0.9, "visual": 0.1})
        >>> b = MethodResult(name="ig", shares={"audio": 0.3, "visual": 0.7})
        >>> audit_verdict({"shapley": a}, "shapley")["message"]
        'audio dominates: 90% (shapley)'
        >>> audit_verdict({"shapley": a, "ig": b}, "shapley")["status"]
        'inconclusive'
    """
    if not methods:
        return {"status": "inconclusive", "dominant": None, "max_share": None, "method": None, "by_method": {},
                "message": "no shares measured"}
    name = primary if primary is not None and primary in methods else next(iter(methods))
    shares = {m: float(v) for m, v in methods[name].shares.items() if _is_number(v)}  # a NaN share names no one
    top = dominant(shares)
    max_share = float(shares[top]) if top is not None else 0.0
    by_method = {n: clear_dominant(m) for n, m in methods.items()}
    named = {n: d for n, d in by_method.items() if d is not None}
    if len(set(named.values())) > 1:
        said = ", ".join(f"{n} says {d}" for n, d in named.items())
        return {"status": "inconclusive", "dominant": None, "max_share": max_share, "method": name,
                "by_method": by_method,
                "message": f"inconclusive: the estimators disagree beyond their intervals ({said})"}
    if top is None or is_balanced(max_share, len(shares), tolerance):
        message = f"balanced: the largest share is {top} with {max_share:.0%} ({name})" if top else "no shares"
        return {"status": "balanced", "dominant": None, "max_share": max_share, "method": name,
                "by_method": by_method, "message": message}
    return {"status": "dominant", "dominant": top, "max_share": max_share, "method": name, "by_method": by_method,
            "message": f"{top} dominates: {max_share:.0%} ({name})"}


@dataclass(frozen=True)
class MethodResult:
    """What one estimator measured over the whole dataset.

    ``shares`` are dataset shares (the mean of per-sample shares), ``scores`` the mean
    raw per-sample score per modality, ``per_class`` maps class name to
    ``{"n": count, "shares": {...}}``, ``ci95`` optional bootstrap intervals and
    ``extra`` estimator-specific figures (IG's completeness error, for example).
    """

    name: str
    level: str = "input"
    shares: dict[str, float] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    per_class: dict[str, dict[str, Any]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    ci95: dict[str, list[float]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return _clean(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MethodResult":
        """Inverse of :meth:`to_dict`; unknown keys go into ``extra``."""
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        extra = dict(kwargs.pop("extra", {}) or {})
        extra.update({k: v for k, v in d.items() if k not in known})
        return cls(**kwargs, extra=extra)


@dataclass(frozen=True)
class AuditResult:
    """One audit: which model, which data, what every estimator measured.

    ``dominant_modality`` and ``imbalance`` are derived from the primary method's shares.
    ``warnings`` are the audit's warnings (``{"code", "message", ...}``, see :mod:`mmbalance.guards`);
    ``model_inputs`` lists every modality the model declares when that is more than ``modalities``
    (``None`` otherwise), so that ``check`` can fail an audit that left some out.
    """

    model: str
    data: str
    n_samples: int
    modalities: list[str]
    accuracy: float
    methods: dict[str, MethodResult]
    primary_method: str = ""  # "" = the first of ``methods`` (what audit() puts first)
    checkpoint: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    split: str | None = None
    classes: list[str] = field(default_factory=list)
    target: str = "pred"
    per_class_accuracy: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    seconds: float = 0.0
    created: str = ""
    mmbalance_version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    model_inputs: list[str] | None = None

    def __post_init__(self) -> None:
        if not self.primary_method and self.methods:
            object.__setattr__(self, "primary_method", next(iter(self.methods)))

    @property
    def primary(self) -> MethodResult:
        """The method whose shares define dominance and imbalance."""
        if self.primary_method in self.methods:
            return self.methods[self.primary_method]
        return next(iter(self.methods.values()))

    @property
    def shares(self) -> dict[str, float]:
        """The primary method's dataset shares."""
        return dict(self.primary.shares) if self.methods else {}

    @property
    def dominant_modality(self) -> str | None:
        """The modality with the largest primary share."""
        return dominant(self.shares)

    @property
    def imbalance(self) -> dict[str, float]:
        """``max_share``, ``share_variance`` and ``entropy`` of the primary shares."""
        return imbalance_figures(self.shares)

    @property
    def verdict(self) -> dict[str, Any]:
        """``balanced``, ``dominant`` or ``inconclusive`` and why (see :func:`audit_verdict`).

        Derived from the methods, so audits written before the field existed get one too.
        """
        return audit_verdict(self.methods, self.primary_method)

    def warning_codes(self) -> list[str]:
        """The ``code`` of every warning of the audit."""
        return [str(w.get("code")) for w in self.warnings if isinstance(w, Mapping)]

    # -- serialization -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The "mmbalance.audit/1" document as a dict."""
        d: dict[str, Any] = {"schema": SCHEMA}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "methods":
                value = {k: m.to_dict() for k, m in value.items()}
            d[f.name] = value
        d["dominant_modality"] = self.dominant_modality
        d["imbalance"] = self.imbalance
        d["verdict"] = self.verdict
        return _clean(d)

    def to_json(self) -> str:
        """Serialize to indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, origin: str = "audit JSON", finite: bool = True) -> "AuditResult":
        """Rebuild from a dict, checking the schema version and the field types.

        With ``finite=False`` a share, score or accuracy that is missing (``null``) or NaN is
        kept as such instead of refused (``mmbalance check`` loads audits so, and fails them).
        """
        if not isinstance(d, Mapping):
            raise ResultsError(f"{origin} is not an mmbalance audit (top level is not an object)")
        schema = d.get("schema")
        if schema != SCHEMA:
            raise ResultsError(
                f"{origin} has schema {schema!r}, expected {SCHEMA!r}",
                hint="re-run `mmbalance audit` with this version of mmbalance",
            )
        _check_fields(d, origin, finite=finite)
        try:
            methods = {k: MethodResult.from_dict(m) for k, m in d["methods"].items()}
            known = {f.name for f in dataclasses.fields(cls)}
            kwargs = {k: v for k, v in d.items() if k in known and k != "methods"}
            return cls(methods=methods, **kwargs)
        except (KeyError, TypeError, AttributeError) as err:
            raise ResultsError(f"{origin} is missing or has malformed fields ({err})",
                               hint="re-run `mmbalance audit`") from err

    @classmethod
    def from_json(cls, text: str, *, origin: str = "audit JSON", finite: bool = True) -> "AuditResult":
        """Parse JSON text (see :meth:`from_dict`)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ResultsError(f"{origin} is not valid JSON (truncated?): {err.msg} at line {err.lineno}",
                               hint="re-run `mmbalance audit` to write it again") from err
        except (ValueError, RecursionError) as err:  # a 5000-digit number, arrays nested thousands deep
            raise ResultsError(f"{origin} is not an mmbalance audit: {str(err).split(';')[0]}",
                               hint="re-run `mmbalance audit` to write it again") from None
        return cls.from_dict(data, origin=origin, finite=finite)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON atomically; returns the path."""
        atomic_write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, finite: bool = True) -> "AuditResult":
        """Read an audit JSON file, with one clear error for missing/truncated/foreign files (``finite``: see
        :meth:`from_dict`)."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError as err:
            raise ResultsError(f"audit file {p} does not exist", hint="run `mmbalance audit --out FILE` first") from err
        except (OSError, UnicodeDecodeError) as err:
            raise ResultsError(f"cannot read audit file {p}: {err}") from err
        return cls.from_json(text, origin=str(p), finite=finite)

    def to_frame(self) -> "Any":
        """One row per (method, modality): share, score, ci95 bounds (a pandas DataFrame)."""
        import pandas as pd

        rows = []
        for name, m in self.methods.items():
            for mod in self.modalities:
                lo, hi = (m.ci95 or {}).get(mod, [float("nan"), float("nan")])
                rows.append({"method": name, "level": m.level, "modality": mod,
                             "share": m.shares.get(mod, float("nan")),
                             "score": m.scores.get(mod, float("nan")),
                             "ci95_low": lo, "ci95_high": hi})
        return pd.DataFrame(rows)


def _is_number(value: Any) -> bool:
    """A finite JSON number (not a bool, not null, not a number too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _is_missing(value: Any) -> bool:
    """``null`` or NaN: a figure the audit could not compute."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _check_fields(d: Mapping[str, Any], origin: str, *, finite: bool = True) -> None:
    """Refuse, in one line, an audit document whose fields have the wrong types (before anything uses them)."""

    def bad(name_: str, expected: str, value: Any) -> ResultsError:
        shown = json.dumps(value)[:60] if not isinstance(value, float) else repr(value)
        return ResultsError(f"{origin}: {name_} must be {expected}, got {shown}", hint="re-run `mmbalance audit`")

    def numbers(name_: str, value: Any, *, optional: bool = False) -> None:
        if value is None and optional:
            return
        if not isinstance(value, Mapping):
            raise bad(name_, "an object of numbers", value)
        for key, v in value.items():
            if not _is_number(v) and (finite or not _is_missing(v)):
                raise bad(f"{name_}.{key}", "a finite number", v)

    n = d.get("n_samples")
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 2**63:
        raise bad("n_samples", "a sample count", n)
    if not _is_number(d.get("accuracy")) and (finite or not _is_missing(d.get("accuracy"))):
        raise bad("accuracy", "a finite number", d.get("accuracy"))
    for name_ in ("modalities", "classes"):
        value = d.get(name_, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad(name_, "a list of names", value)
    numbers("per_class_accuracy", d.get("per_class_accuracy", {}))
    for name_, optional in (("model", False), ("data", False), ("primary_method", True), ("checkpoint", True),
                            ("split", True), ("target", True), ("device", True), ("created", True),
                            ("mmbalance_version", True)):
        value = d.get(name_)
        if not isinstance(value, str) and not (optional and value is None):
            raise bad(name_, "a string", value)
    for name_ in ("model_args", "extra"):
        if not isinstance(d.get(name_, {}), Mapping):
            raise bad(name_, "an object", d.get(name_))
    if "seconds" in d and not _is_number(d["seconds"]):
        raise bad("seconds", "a finite number", d["seconds"])
    methods = d.get("methods")
    if not isinstance(methods, Mapping) or not methods:
        raise bad("methods", "an object with at least one method", methods)
    for name, m in methods.items():
        if not isinstance(m, Mapping):
            raise bad(f"methods.{name}", "an object", m)
        for name_ in ("name", "level"):
            if not isinstance(m.get(name_, ""), str):
                raise bad(f"methods.{name}.{name_}", "a string", m.get(name_))
        for name_ in ("params", "extra"):
            if not isinstance(m.get(name_, {}), Mapping):
                raise bad(f"methods.{name}.{name_}", "an object", m.get(name_))
        numbers(f"methods.{name}.shares", m.get("shares", {}))
        numbers(f"methods.{name}.scores", m.get("scores", {}))
        ci95 = m.get("ci95")
        if ci95 is not None:
            if not isinstance(ci95, Mapping):
                raise bad(f"methods.{name}.ci95", "an object of [low, high] pairs", ci95)
            for mod, pair in ci95.items():
                if not (isinstance(pair, list) and len(pair) == 2 and all(_is_number(v) for v in pair)):
                    raise bad(f"methods.{name}.ci95.{mod}", "a [low, high] pair of numbers", pair)
        per_class = m.get("per_class", {})
        if not isinstance(per_class, Mapping):
            raise bad(f"methods.{name}.per_class", "an object", per_class)
        for cls, entry in per_class.items():
            if not isinstance(entry, Mapping):
                raise bad(f"methods.{name}.per_class.{cls}", "an object", entry)
            numbers(f"methods.{name}.per_class.{cls}.shares", entry.get("shares", {}))


def _clean(obj: Any) -> Any:
    """Make an object JSON-safe: tuples → lists, NaN/inf → None, tensors/numpy → floats."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "item"):
        return _clean(obj.item())
    return obj
