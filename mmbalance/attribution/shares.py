"""From per-sample modality scores to dataset shares, streaming over batches.

:class:`ShareAccumulator` follows the torchmetrics pattern: ``update()`` folds in one
batch, ``compute()`` returns the result, ``reset()`` clears. Its whole state is a few
fixed-size tensors (sums, counts, per-class sums, a histogram, bootstrap replicate sums),
so an audit's memory does not grow with the dataset, and states from several processes
add up (:meth:`ShareAccumulator.state` / :meth:`ShareAccumulator.load_state`).

Confidence intervals use the online Poisson bootstrap (Hanley & MacGibbon 2006; Chamandy
et al. 2012): every sample gets ``Poisson(1)`` weights for ``R`` replicates and each
replicate keeps a weighted sum of shares and of weights. A replicate's share is the ratio
of the two; the 2.5% and 97.5% quantiles across replicates bound the 95% interval. Sums
of independent processes' states are again a valid bootstrap.

Example:
    >>> import torch
    >>> acc = ShareAccumulator(("audio", "visual"), num_classes=2)
    >>> _ = acc.update(torch.tensor([[3.0, 1.0], [1.0, 1.0]]), labels=torch.tensor([0, 1]))
    >>> acc.compute()["shares"]
    {'audio': 0.625, 'visual': 0.375}
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

HISTOGRAM_BINS = 20


def scores_to_shares(scores: Tensor) -> Tensor:
    """Row-normalize the magnitudes ``|scores|`` ``(B, M)``; an all-zero row gets equal shares.

    Signed scores (ablation, Shapley, permutation) count by magnitude, like IG's L1 mass: a
    modality whose removal *raises* the target logit still drives the decision.

    Example:
        >>> scores_to_shares(torch.tensor([[2.0, 2.0], [0.0, 0.0], [3.0, -1.0]])).tolist()
        [[0.5, 0.5], [0.5, 0.5], [0.75, 0.25]]
    """
    scores = scores.detach().double().abs()
    total = scores.sum(dim=1, keepdim=True)
    equal = torch.full_like(scores, 1.0 / scores.shape[1])
    return torch.where(total > 0, scores / total.clamp_min(torch.finfo(torch.float64).tiny), equal)


def poisson_weights(batch: int, replicates: int, generator: torch.Generator) -> Tensor:
    """``Poisson(1)`` bootstrap weights ``(batch, replicates)`` (float64).

    Example:
        >>> poisson_weights(3, 4, torch.Generator().manual_seed(0)).shape
        torch.Size([3, 4])
    """
    return torch.poisson(torch.ones(batch, replicates, dtype=torch.float64), generator=generator)


class ShareAccumulator:
    """Accumulates per-sample shares, scores, per-class sums, a share histogram and bootstrap replicates.

    ``bootstrap`` is the number of Poisson-bootstrap replicates (0: no intervals). Pass the
    same ``weights`` to several accumulators to resample them alike; without weights they
    are drawn from the accumulator's own generator (seeded with ``seed``).
    """

    def __init__(self, modalities: Sequence[str], num_classes: int, bins: int = HISTOGRAM_BINS, *,
                 bootstrap: int = 0, seed: int = 0) -> None:
        self.modalities = tuple(modalities)
        self.num_classes = int(num_classes)
        self.bins = int(bins)
        self.bootstrap = int(bootstrap)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        m, c, r = len(self.modalities), self.num_classes, self.bootstrap
        self.count = torch.zeros((), dtype=torch.float64)
        self.share_sum = torch.zeros(m, dtype=torch.float64)
        self.score_sum = torch.zeros(m, dtype=torch.float64)
        self.class_count = torch.zeros(c, dtype=torch.float64)
        self.class_share_sum = torch.zeros(c, m, dtype=torch.float64)
        self.histogram = torch.zeros(m, self.bins, dtype=torch.float64)
        self.boot_weight = torch.zeros(r, dtype=torch.float64)
        self.boot_share_sum = torch.zeros(r, m, dtype=torch.float64)

    def update(self, scores: Tensor, labels: Tensor, weights: Tensor | None = None) -> Tensor:
        """Fold in one batch of scores ``(B, M)`` with true labels ``(B,)``; returns the shares.

        ``weights``: bootstrap weights ``(B, bootstrap)`` (see :func:`poisson_weights`).
        """
        scores = scores.detach().double().cpu()
        labels = labels.detach().long().cpu()
        shares = scores_to_shares(scores)
        self.count += shares.shape[0]
        self.share_sum += shares.sum(0)
        self.score_sum += scores.sum(0)
        self.class_count += torch.bincount(labels, minlength=self.num_classes).double()[: self.num_classes]
        self.class_share_sum.index_add_(0, labels, shares)
        idx = (shares * self.bins).long().clamp_(0, self.bins - 1)
        for j in range(shares.shape[1]):
            self.histogram[j] += torch.bincount(idx[:, j], minlength=self.bins).double()
        if self.bootstrap:
            if weights is None:
                weights = poisson_weights(shares.shape[0], self.bootstrap, self.generator)
            weights = weights.detach().double().cpu()
            self.boot_weight += weights.sum(0)
            self.boot_share_sum += weights.T @ shares
        return shares

    def state(self) -> Tensor:
        """The whole state as one flat float64 tensor (sum it across processes)."""
        return torch.cat([self.count.view(1), self.share_sum, self.score_sum, self.class_count,
                          self.class_share_sum.flatten(), self.histogram.flatten(), self.boot_weight,
                          self.boot_share_sum.flatten()])

    def load_state(self, flat: Tensor) -> None:
        """Replace the state by a flat tensor from :meth:`state` (e.g. after an all-reduce)."""
        m, c, b, r = len(self.modalities), self.num_classes, self.bins, self.bootstrap
        flat = flat.detach().double().cpu()
        sizes = [1, m, m, c, c * m, m * b, r, r * m]
        parts = torch.split(flat, sizes)
        self.count = parts[0][0].clone()
        self.share_sum, self.score_sum, self.class_count = parts[1].clone(), parts[2].clone(), parts[3].clone()
        self.class_share_sum = parts[4].view(c, m).clone()
        self.histogram = parts[5].view(m, b).clone()
        self.boot_weight = parts[6].clone()
        self.boot_share_sum = parts[7].view(r, m).clone()

    def confidence_intervals(self, level: float = 0.95) -> dict[str, list[float]] | None:
        """Bootstrap percentile intervals of the dataset shares (``None`` without replicates)."""
        used = self.boot_weight > 0
        if not self.bootstrap or int(used.sum()) < 2:
            return None
        reps = self.boot_share_sum[used] / self.boot_weight[used].unsqueeze(1)
        lo = torch.quantile(reps, (1 - level) / 2, dim=0).tolist()
        hi = torch.quantile(reps, 1 - (1 - level) / 2, dim=0).tolist()
        return {m: [lo[j], hi[j]] for j, m in enumerate(self.modalities)}

    def compute(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """Dataset shares, mean scores, per-class shares, histograms and ``ci95`` as plain Python values."""
        n = float(self.count)
        names = list(class_names) if class_names is not None else [str(i) for i in range(self.num_classes)]
        mods = self.modalities
        if n == 0:
            return {"n": 0, "shares": {m: 0.0 for m in mods}, "scores": {m: 0.0 for m in mods},
                    "per_class": {}, "histogram": {}, "ci95": None}
        shares = (self.share_sum / n).tolist()
        scores = (self.score_sum / n).tolist()
        per_class = {}
        for k in range(self.num_classes):
            cnt = float(self.class_count[k])
            if cnt > 0:
                per_class[names[k]] = {"n": int(cnt),
                                       "shares": dict(zip(mods, (self.class_share_sum[k] / cnt).tolist()))}
        edges = torch.linspace(0, 1, self.bins + 1).tolist()
        histogram = {m: {"bins": edges, "counts": [int(v) for v in self.histogram[j].tolist()]}
                     for j, m in enumerate(mods)}
        return {"n": int(n), "shares": dict(zip(mods, shares)), "scores": dict(zip(mods, scores)),
                "per_class": per_class, "histogram": histogram, "ci95": self.confidence_intervals()}


class ExtraAccumulator:
    """Streaming summaries of an estimator's per-sample ``extra`` tensors.

    ``(B,)`` tensors become ``{"mean": ..., "max": ...}`` over finite values; ``(B, M)``
    tensors become ``{modality: mean}``. Memory is a few numbers per key; :meth:`merge`
    combines accumulators from several processes.

    Example:
        >>> acc = ExtraAccumulator(("a", "v"))
        >>> acc.update({"err": torch.tensor([1.0, 3.0]), "drop": torch.tensor([[1.0, 0.0], [0.0, 0.0]])})
        >>> acc.compute()
        {'err': {'mean': 2.0, 'max': 3.0}, 'drop': {'a': 0.5, 'v': 0.0}}
    """

    def __init__(self, modalities: Sequence[str]) -> None:
        self.modalities = tuple(modalities)
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, Tensor] = {}
        self.maxima: dict[str, float] = {}

    def update(self, extra: Mapping[str, Tensor]) -> None:
        """Fold in one batch of ``{key: (B,) or (B, M) tensor}``."""
        for key, value in extra.items():
            v = value.detach().double().cpu()
            finite = torch.isfinite(v)
            total = torch.where(finite, v, torch.zeros_like(v)).sum(0)
            count = finite.sum(0).double()
            if key in self.sums:
                self.sums[key] = self.sums[key] + total
                self.counts[key] = self.counts[key] + count
            else:
                self.sums[key], self.counts[key] = total, count
            if v.dim() == 1 and bool(finite.any()):
                self.maxima[key] = max(self.maxima.get(key, -math.inf), float(v[finite].max()))

    def merge(self, other: "ExtraAccumulator") -> None:
        """Add another accumulator's data (from another process or shard)."""
        for key in other.sums:
            if key in self.sums:
                self.sums[key] = self.sums[key] + other.sums[key]
                self.counts[key] = self.counts[key] + other.counts[key]
            else:
                self.sums[key], self.counts[key] = other.sums[key].clone(), other.counts[key].clone()
        for key, value in other.maxima.items():
            self.maxima[key] = max(self.maxima.get(key, -math.inf), value)

    def compute(self) -> dict[str, Any]:
        """The summaries (``None`` where no finite value was seen)."""
        out: dict[str, Any] = {}
        for key, total in self.sums.items():
            count = self.counts[key]
            if total.dim() == 0:
                out[key] = {"mean": float(total / count) if count > 0 else None, "max": self.maxima.get(key)}
            else:
                out[key] = {m: (float(total[j] / count[j]) if count[j] > 0 else None)
                            for j, m in enumerate(self.modalities)}
        return out
