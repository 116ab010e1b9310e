"""Do estimators agree? Streaming comparison of per-sample shares between estimators.

For every pair of estimators and every modality, :class:`AgreementAccumulator` keeps running
sums (for Pearson's r) and a ``bins x bins`` joint histogram of the two shares (for
Spearman's rho, from mid-ranks of the binned values: the rank correlation of the shares
rounded to ``1/bins``, so shares that differ by less than that count as ties), plus how
often the two name the same dominant modality for a sample. Memory is fixed
(``pairs x M x bins^2`` counts; with two modalities only the first is tracked, the second
share being one minus the first); states from several processes add up.

Example:
    >>> import torch
    >>> acc = AgreementAccumulator(["ig", "ablation"], ["audio", "visual"])
    >>> s = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    >>> acc.update({"ig": s, "ablation": s})
    >>> out = acc.compute({"ig": {"audio": 0.57, "visual": 0.43}, "ablation": {"audio": 0.57, "visual": 0.43}})
    >>> round(out["pairwise"]["ig|ablation"]["pearson"], 6), out["dominant"]["ig"]
    (1.0, 'audio')
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

SPEARMAN_BINS = 256


class AgreementAccumulator:
    """Running statistics of per-sample shares for every pair of estimators."""

    def __init__(self, methods: Sequence[str], modalities: Sequence[str], bins: int = SPEARMAN_BINS) -> None:
        self.methods = list(dict.fromkeys(methods))
        self.modalities = tuple(modalities)
        self.pairs = list(itertools.combinations(self.methods, 2))
        self.bins = int(bins)
        self.tracked = 1 if len(self.modalities) == 2 else len(self.modalities)
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        p, m = len(self.pairs), self.tracked
        self.moments = torch.zeros(p, m, 6, dtype=torch.float64)  # n, sum a, sum b, sum a^2, sum b^2, sum ab
        self.joint = torch.zeros(p, m, self.bins, self.bins, dtype=torch.float64)
        self.same_argmax = torch.zeros(p, dtype=torch.float64)

    def update(self, shares: Mapping[str, Tensor]) -> None:
        """Fold in one batch: ``{method: per-sample shares (B, M)}``."""
        for k, (a_name, b_name) in enumerate(self.pairs):
            full_a = shares[a_name].detach().double().cpu()
            full_b = shares[b_name].detach().double().cpu()
            self.same_argmax[k] += float((full_a.argmax(1) == full_b.argmax(1)).sum())
            a, b = full_a[:, :self.tracked], full_b[:, :self.tracked]
            self.moments[k, :, 0] += a.shape[0]
            self.moments[k, :, 1] += a.sum(0)
            self.moments[k, :, 2] += b.sum(0)
            self.moments[k, :, 3] += (a * a).sum(0)
            self.moments[k, :, 4] += (b * b).sum(0)
            self.moments[k, :, 5] += (a * b).sum(0)
            ia = (a * self.bins).long().clamp_(0, self.bins - 1)
            ib = (b * self.bins).long().clamp_(0, self.bins - 1)
            for j in range(self.tracked):
                flat = ia[:, j] * self.bins + ib[:, j]
                self.joint[k, j] += torch.bincount(flat, minlength=self.bins ** 2).double().view(self.bins, self.bins)

    def state(self) -> Tensor:
        """The whole state as one flat float64 tensor (sum it across processes)."""
        return torch.cat([self.moments.flatten(), self.joint.flatten(), self.same_argmax])

    def load_state(self, flat: Tensor) -> None:
        """Replace the state by a flat tensor from :meth:`state`."""
        sizes = [self.moments.numel(), self.joint.numel(), self.same_argmax.numel()]
        a, b, c = torch.split(flat.detach().double().cpu(), sizes)
        self.moments = a.view_as(self.moments).clone()
        self.joint = b.view_as(self.joint).clone()
        self.same_argmax = c.clone()

    def compute(self, dataset_shares: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
        """``{"pairwise": {"a|b": {...}}, "dominant": {method: modality}}``.

        Each pair reports ``same_dominant`` (the two dataset-level dominant modalities are the
        same), ``pearson`` and ``spearman`` (correlation of per-sample shares, averaged over
        modalities; ``None`` when a method's shares do not vary) and
        ``sample_dominant_agreement`` (fraction of samples on which both name the same one).
        """
        dominant = {m: (max(s, key=lambda k: s[k]) if s else None) for m, s in dataset_shares.items()
                    if m in self.methods}
        pairwise: dict[str, Any] = {}
        for k, (a, b) in enumerate(self.pairs):
            pearsons = [_pearson(self.moments[k, j]) for j in range(self.tracked)]
            spearmans = [_spearman(self.joint[k, j]) for j in range(self.tracked)]
            n = float(self.moments[k, 0, 0]) if self.tracked else 0.0
            pairwise[f"{a}|{b}"] = {
                "same_dominant": dominant.get(a) is not None and dominant.get(a) == dominant.get(b),
                "pearson": _mean(pearsons),
                "spearman": _mean(spearmans),
                "sample_dominant_agreement": float(self.same_argmax[k] / n) if n else None,
            }
        return {"pairwise": pairwise, "dominant": dominant}


def _mean(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def _pearson(mom: Tensor) -> float | None:
    n, sa, sb, saa, sbb, sab = (float(v) for v in mom)
    if n < 2:
        return None
    cov = sab / n - (sa / n) * (sb / n)
    va = saa / n - (sa / n) ** 2
    vb = sbb / n - (sb / n) ** 2
    if va <= 1e-15 or vb <= 1e-15:
        return None
    return max(-1.0, min(1.0, cov / math.sqrt(va * vb)))


def _spearman(joint: Tensor) -> float | None:
    n = float(joint.sum())
    if n < 2:
        return None
    rows, cols = joint.sum(1), joint.sum(0)
    rank_r = torch.cumsum(rows, 0) - rows + (rows + 1) / 2
    rank_c = torch.cumsum(cols, 0) - cols + (cols + 1) / 2
    mr = float((rows * rank_r).sum()) / n
    mc = float((cols * rank_c).sum()) / n
    dr, dc = rank_r - mr, rank_c - mc
    cov = float((joint * dr[:, None] * dc[None, :]).sum()) / n
    vr = float((rows * dr * dr).sum()) / n
    vc = float((cols * dc * dc).sum()) / n
    if vr <= 1e-12 or vc <= 1e-12:
        return None
    return max(-1.0, min(1.0, cov / math.sqrt(vr * vc)))
