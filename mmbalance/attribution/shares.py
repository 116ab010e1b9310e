"""From per-sample modality scores to dataset shares, streaming over batches.

:class:`ShareAccumulator` follows the torchmetrics pattern: ``update()`` folds in one
batch, ``compute()`` returns the result, ``reset()`` clears. Its whole state is a few
fixed-size tensors (sums, counts, per-class sums, a histogram), so an audit's memory
does not grow with the dataset, and states from several processes add up
(:meth:`ShareAccumulator.state` / :meth:`ShareAccumulator.load_state`).

Example:
    >>> import torch
    >>> acc = ShareAccumulator(("audio", "visual"), num_classes=2)
    >>> _ = acc.update(torch.tensor([[3.0, 1.0], [1.0, 1.0]]), labels=torch.tensor([0, 1]))
    >>> acc.compute()["shares"]
    {'audio': 0.625, 'visual': 0.375}
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

HISTOGRAM_BINS = 20


def scores_to_shares(scores: Tensor) -> Tensor:
    """Row-normalize non-negative scores ``(B, M)``; an all-zero row gets equal shares.

    Example:
        >>> scores_to_shares(torch.tensor([[2.0, 2.0], [0.0, 0.0]])).tolist()
        [[0.5, 0.5], [0.5, 0.5]]
    """
    scores = scores.detach().double().clamp_min(0)
    total = scores.sum(dim=1, keepdim=True)
    equal = torch.full_like(scores, 1.0 / scores.shape[1])
    return torch.where(total > 0, scores / total.clamp_min(torch.finfo(torch.float64).tiny), equal)


class ShareAccumulator:
    """Accumulates per-sample shares, scores, per-class sums and a share histogram."""

    def __init__(self, modalities: Sequence[str], num_classes: int, bins: int = HISTOGRAM_BINS) -> None:
        self.modalities = tuple(modalities)
        self.num_classes = int(num_classes)
        self.bins = int(bins)
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        m, c = len(self.modalities), self.num_classes
        self.count = torch.zeros((), dtype=torch.float64)
        self.share_sum = torch.zeros(m, dtype=torch.float64)
        self.score_sum = torch.zeros(m, dtype=torch.float64)
        self.class_count = torch.zeros(c, dtype=torch.float64)
        self.class_share_sum = torch.zeros(c, m, dtype=torch.float64)
        self.histogram = torch.zeros(m, self.bins, dtype=torch.float64)

    def update(self, scores: Tensor, labels: Tensor) -> Tensor:
        """Fold in one batch of scores ``(B, M)`` with true labels ``(B,)``; returns the shares."""
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
        return shares

    def state(self) -> Tensor:
        """The whole state as one flat float64 tensor (sum it across processes)."""
        return torch.cat([self.count.view(1), self.share_sum, self.score_sum, self.class_count,
                          self.class_share_sum.flatten(), self.histogram.flatten()])

    def load_state(self, flat: Tensor) -> None:
        """Replace the state by a flat tensor from :meth:`state` (e.g. after an all-reduce)."""
        m, c, b = len(self.modalities), self.num_classes, self.bins
        flat = flat.detach().double().cpu()
        sizes = [1, m, m, c, c * m, m * b]
        parts = torch.split(flat, sizes)
        self.count = parts[0][0].clone()
        self.share_sum, self.score_sum, self.class_count = parts[1].clone(), parts[2].clone(), parts[3].clone()
        self.class_share_sum = parts[4].view(c, m).clone()
        self.histogram = parts[5].view(m, b).clone()

    def compute(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """Dataset shares, mean scores, per-class shares and histograms as plain Python values."""
        n = float(self.count)
        names = list(class_names) if class_names is not None else [str(i) for i in range(self.num_classes)]
        mods = self.modalities
        if n == 0:
            return {"n": 0, "shares": {m: 0.0 for m in mods}, "scores": {m: 0.0 for m in mods},
                    "per_class": {}, "histogram": {}}
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
                "per_class": per_class, "histogram": histogram}
