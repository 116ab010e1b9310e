"""Bench results: one :class:`BenchRecord` per run and seed, and the per-method table computed from them.

*Share variance* is the population variance of a model's modality shares across its
``M`` modalities, ``(1/M) * sum_m (s_m - 1/M)^2`` (the shares sum to 1, so their mean is
``1/M``): 0 for perfectly equal shares, ``(M - 1) / M^2`` (0.25 for two modalities) when
one modality takes everything. Its *cut* is ``1 - var(method) / var(plain)``, both means
over seeds.

Example:
    >>> recs = [BenchRecord("plain", "plain", 0, 0.70, {"a": 0.8, "b": 0.2}, 1.0),
    ...         BenchRecord("gblend", "gblend", 0, 0.74, {"a": 0.6, "b": 0.4}, 1.5)]
    >>> row = summarize(recs)["gblend"]
    >>> round(row["share_variance"], 4), round(row["variance_cut"], 3), row["delta_plain"]
    (0.01, 0.889, [0.04])
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from ..results import DEFAULT_METHODS, imbalance_figures

__all__ = ["BENCH_SCHEMA", "DEFAULT_MEASURE", "MEASURE_NAMES", "BenchRecord", "bench_verdict", "measure_label",
           "record_measure", "share_variance", "summarize"]

BENCH_SCHEMA = "mmbalance.bench/1"
#: how bench measures each run's shares: the audit's primary measure (exact Shapley values of modality removal)
DEFAULT_MEASURE = DEFAULT_METHODS[0]
#: readable names of the measures, for bench.md and its HTML page
MEASURE_NAMES = {"shapley": "Shapley (modality removal)", "ablation": "ablation", "ig": "Integrated-Gradients",
                 "gradxinput": "gradient × input", "permutation": "permutation"}


def record_measure(record: "BenchRecord") -> str:
    """The measure a run's shares were taken with; records of earlier versions have no field and used IG."""
    return str(record.extra.get("measure", "ig"))


def measure_label(doc: Mapping[str, Any]) -> str:
    """What ``bench.json``'s shares are, in words (files written before the field existed hold IG shares)."""
    name = str(doc.get("measure", "ig"))
    return MEASURE_NAMES.get(name, name)


def share_variance(shares: Mapping[str, float]) -> float:
    """Population variance of the shares across modalities (0: perfectly balanced)."""
    return float(imbalance_figures(dict(shares))["share_variance"])


@dataclass
class BenchRecord:
    """One trained (or assembled) model: its run, seed, test accuracy, test shares and training time.

    ``train_seconds``: the median over epochs of the seconds spent in training steps (validation and
    G-Blend's loss measurements excluded); every method runs the same steps per epoch, so its ratio to
    plain's is the step-time ratio. An ensemble's is the sum of its members'.
    """

    run: str
    method: str
    seed: int
    test_accuracy: float
    shares: dict[str, float]
    train_seconds: float
    best_val_accuracy: float | None = None
    best_epoch: int | None = None
    run_dir: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def share_variance(self) -> float:
        return share_variance(self.shares)

    def to_dict(self) -> dict[str, Any]:
        return dict(asdict(self), share_variance=self.share_variance)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BenchRecord":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def _mean(values: Sequence[float]) -> float:
    return float(statistics.fmean(values)) if values else math.nan


def _std(values: Sequence[float]) -> float:
    return float(statistics.stdev(values)) if len(values) > 1 else 0.0


def summarize(records: Sequence[BenchRecord]) -> dict[str, dict[str, Any]]:
    """Per run name (in first-seen order): accuracy mean/std, per-seed deltas, shares, variance and its cut, time.

    ``delta_best_unimodal`` and ``delta_plain`` are per seed (in ``seeds`` order), against the best
    ``unimodal-*`` run of that seed and the ``plain`` run of that seed; ``relative_time`` is the mean
    ``train_seconds`` over plain's (the step-time ratio).
    """
    by_run: dict[str, list[BenchRecord]] = {}
    for r in records:
        by_run.setdefault(r.run, []).append(r)
    by_seed: dict[int, dict[str, BenchRecord]] = {}
    for r in records:
        by_seed.setdefault(r.seed, {})[r.run] = r
    plain = by_run.get("plain", [])
    plain_var = _mean([r.share_variance for r in plain])
    plain_time = _mean([r.train_seconds for r in plain])
    out: dict[str, dict[str, Any]] = {}
    for run, recs in by_run.items():
        recs = sorted(recs, key=lambda r: r.seed)
        accs = [r.test_accuracy for r in recs]
        d_uni: list[float | None] = []
        d_plain: list[float | None] = []
        for r in recs:
            seed_runs = by_seed[r.seed]
            uni = [x.test_accuracy for name, x in seed_runs.items() if name.startswith("unimodal-")]
            d_uni.append(round(r.test_accuracy - max(uni), 6) if uni else None)
            d_plain.append(round(r.test_accuracy - seed_runs["plain"].test_accuracy, 6)
                           if "plain" in seed_runs else None)
        modalities = list(recs[0].shares)
        var = _mean([r.share_variance for r in recs])
        time_ = _mean([r.train_seconds for r in recs])
        out[run] = {
            "run": run, "method": recs[0].method, "seeds": [r.seed for r in recs], "n": len(recs),
            "accuracy_mean": _mean(accs), "accuracy_std": _std(accs), "accuracies": accs,
            "delta_best_unimodal": d_uni, "delta_plain": d_plain,
            "shares": {m: _mean([r.shares.get(m, 0.0) for r in recs]) for m in modalities},
            "share_variance": var,
            # a unimodal model has one share (variance 0 by construction): no cut to speak of
            "variance_cut": (1.0 - var / plain_var if plain_var and plain_var > 0 and recs[0].method != "unimodal"
                             else None),
            "train_seconds": time_,
            "relative_time": time_ / plain_time if plain_time and plain_time > 0 else None,
        }
    return out


def _points(value: float) -> str:
    return f"{100 * value:+.1f} pts"


def bench_verdict(table: Mapping[str, Mapping[str, Any]]) -> str:
    """One sentence naming the best method (by mean test accuracy; unimodal models are the yardstick, not
    candidates) or the methods that tie with it: a difference no larger than the larger of the two methods'
    seed standard deviations is a tie. With one seed there is no spread, so only equal accuracies tie.

    Example:
        >>> table = {"unimodal-audio": {"method": "unimodal", "accuracy_mean": 0.60, "accuracy_std": 0.01},
        ...          "plain": {"method": "plain", "accuracy_mean": 0.70, "accuracy_std": 0.01,
        ...                    "delta_best_unimodal": [0.10], "variance_cut": 0.0},
        ...          "gblend": {"method": "gblend", "accuracy_mean": 0.74, "accuracy_std": 0.01,
        ...                     "delta_best_unimodal": [0.14], "variance_cut": 0.5}}
        >>> bench_verdict(table)
        'on this data, gblend is best: +14.0 pts over the best unimodal model, 50% variance cut; differences under the seed spread are called ties'
    """
    candidates = {name: row for name, row in table.items()
                  if row.get("method") != "unimodal" and math.isfinite(row.get("accuracy_mean", math.nan))}
    if not candidates:
        return "no multimodal method ran, so there is no winner to name"
    best = max(candidates, key=lambda name: candidates[name]["accuracy_mean"])
    top = candidates[best]

    def spread(row: Mapping[str, Any]) -> float:
        return float(row.get("accuracy_std") or 0.0)

    tied = [name for name, row in candidates.items() if name != best
            and top["accuracy_mean"] - row["accuracy_mean"] <= max(spread(top), spread(row))]

    def figures(row: Mapping[str, Any]) -> str:
        parts = []
        deltas = [d for d in row.get("delta_best_unimodal") or [] if d is not None]
        if deltas:
            gain = _mean(deltas)
            parts.append(f"{_points(gain)} over the best unimodal model" if gain >= 0
                         else f"{100 * -gain:.1f} pts below the best unimodal model")
        cut = row.get("variance_cut")
        if cut is not None and math.isfinite(cut):
            parts.append(f"{cut:.0%} variance cut")
        return ", ".join(parts) or "no unimodal or plain run to compare with"

    rule = "differences under the seed spread are called ties"
    if not tied:
        return f"on this data, {best} is best: {figures(top)}; {rule}"
    names = ", ".join([best, *tied[:-1]]) + f" and {tied[-1]}"
    return (f"on this data, {names} tie for best (accuracy within the seed spread); {best} has the highest mean: "
            f"{figures(top)}; {rule}")
