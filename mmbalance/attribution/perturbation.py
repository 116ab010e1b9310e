"""Perturbation estimators: change whole modalities and watch the output.

* :class:`Ablation`: replace one modality by its baseline; the drop of the target logit is
  its score, the drop in accuracy goes in ``extra["accuracy_drop"]``.
* :class:`ShapleyValues`: exact Shapley values of the modalities as players (2^M coalitions,
  absent modalities at their baseline), on the target logit and, in
  ``extra["accuracy_shapley"]``, on correctness (SHAPE, Hu et al. 2022; the per-sample values
  average to the Shapley value of dataset accuracy).
* :class:`PermutationScore`: the Perceptual Score (Gat et al. 2021): shuffle one modality
  across the samples of the batch, ``repeats`` times; logit drop as the score, accuracy
  drop in ``extra["accuracy_drop"]`` and, over the dataset, ``perceptual_score`` (the drop
  divided by the accuracy).

Scores are signed (removing a modality can raise the logit); shares use their magnitude.

Example:
    >>> import torch
    >>> lin = torch.nn.Linear(3, 2, bias=False)
    >>> f = lambda d: lin(torch.cat([d["a"], d["b"]], 1))
    >>> x = {"a": torch.randn(4, 1), "b": torch.randn(4, 2)}
    >>> t = torch.zeros(4, dtype=torch.long)
    >>> torch.allclose(ShapleyValues().attribute(f, x, t).scores, Ablation().attribute(f, x, t).scores)
    True
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from ..errors import EstimatorError, UsageError
from .base import Attribution, Estimator, ForwardFn, correct, register_estimator, target_logit
from .baselines import Baseline

MAX_SHAPLEY_MODALITIES = 10


def forward_variants(forward: ForwardFn, variants: Sequence[Mapping[str, Tensor]],
                     memory_budget_mb: float = 512.0) -> list[Tensor]:
    """Logits of every variant of a batch, stacking as many variants per forward as the budget allows.

    Example:
        >>> f = lambda d: d["a"] * 2
        >>> [t.tolist() for t in forward_variants(f, [{"a": torch.ones(1, 1)}, {"a": torch.zeros(1, 1)}])]
        [[[2.0]], [[0.0]]]
    """
    if not variants:
        return []
    first = variants[0]
    batch = next(iter(first.values())).shape[0]
    per_variant = sum(x.numel() * x.element_size() for x in first.values()) * 16
    per_call = max(1, int(memory_budget_mb * 2**20 // max(1, per_variant)))
    out: list[Tensor] = []
    with torch.no_grad():
        for start in range(0, len(variants), per_call):
            group = variants[start:start + per_call]
            stacked = {m: torch.cat([v[m] for v in group]) if len(group) > 1 else group[0][m] for m in first}
            logits = forward(stacked)
            out.extend(logits.split(batch))
    return out


class _Perturbation(Estimator):
    """Shared settings of the perturbation estimators."""

    def __init__(self, *, baseline: str | Baseline = "zero", memory_budget_mb: float = 512.0,
                 level: str = "input") -> None:
        self.baseline = Baseline.coerce(baseline)
        self.memory_budget_mb = memory_budget_mb
        self.level = level

    def params(self) -> dict[str, Any]:
        return self.baseline.params()


@register_estimator
class Ablation(_Perturbation):
    """Each modality replaced by its baseline in turn: ``M + 1`` forward passes per batch."""

    name = "ablation"

    def _attribute(self, forward: ForwardFn, inputs: dict[str, Tensor], target: Tensor, *,
                   labels: Tensor | None, baselines: dict[str, Tensor] | None) -> Attribution:
        modalities = tuple(inputs)
        baselines = baselines if baselines is not None else self.baseline(inputs)
        variants = [inputs] + [{**inputs, m: baselines[m]} for m in modalities]
        full, *ablated = forward_variants(forward, variants, self.memory_budget_mb)
        drop = torch.stack([target_logit(full, target) - target_logit(a, target) for a in ablated], 1)
        extra = {}
        if labels is not None:
            ok = correct(full, labels)
            extra["accuracy_drop"] = torch.stack([ok - correct(a, labels) for a in ablated], 1)
        return Attribution(modalities, drop, extra=extra)


def shapley_weights(m: int) -> list[float]:
    """``w(s) = s! (M - s - 1)! / M!``: the weight of a coalition of ``s`` other players.

    Example:
        >>> shapley_weights(3)
        [0.3333333333333333, 0.16666666666666666, 0.3333333333333333]
    """
    return [math.factorial(s) * math.factorial(m - s - 1) / math.factorial(m) for s in range(m)]


@register_estimator
class ShapleyValues(_Perturbation):
    """Exact Shapley values over modality coalitions: ``2^M`` forward passes per batch."""

    name = "shapley"

    def _attribute(self, forward: ForwardFn, inputs: dict[str, Tensor], target: Tensor, *,
                   labels: Tensor | None, baselines: dict[str, Tensor] | None) -> Attribution:
        modalities = tuple(inputs)
        n = len(modalities)
        if n > MAX_SHAPLEY_MODALITIES:
            raise EstimatorError(f"exact Shapley values over {n} modalities need 2^{n} forward passes per batch",
                                 hint="use --method ablation or permutation for this many modalities")
        baselines = baselines if baselines is not None else self.baseline(inputs)
        masks = list(itertools.product((False, True), repeat=n))
        variants = [{m: (inputs[m] if keep else baselines[m]) for m, keep in zip(modalities, mask)}
                    for mask in masks]
        logits = dict(zip(masks, forward_variants(forward, variants, self.memory_budget_mb)))
        value = {mask: target_logit(out, target) for mask, out in logits.items()}
        extra = {}
        phi = self._shapley(value, n)
        if labels is not None:
            extra["accuracy_shapley"] = self._shapley({k: correct(v, labels) for k, v in logits.items()}, n)
        return Attribution(modalities, phi, extra=extra)

    @staticmethod
    def _shapley(value: Mapping[tuple[bool, ...], Tensor], n: int) -> Tensor:
        weights = shapley_weights(n)
        columns = []
        for j in range(n):
            total = None
            for mask, v in value.items():
                if mask[j]:
                    continue
                with_j = mask[:j] + (True,) + mask[j + 1:]
                part = weights[sum(mask)] * (value[with_j] - v)
                total = part if total is None else total + part
            assert total is not None  # modality j is absent from half of the 2^n masks (n >= 1)
            columns.append(total)
        return torch.stack(columns, 1)


def derangement(n: int, generator: torch.Generator) -> Tensor:
    """A random permutation of ``range(n)`` with no fixed point (a random cycle), ``n >= 2``.

    Example:
        >>> p = derangement(5, torch.Generator().manual_seed(0))
        >>> bool((p != torch.arange(5)).all()), sorted(p.tolist())
        (True, [0, 1, 2, 3, 4])
    """
    order = torch.randperm(n, generator=generator)
    perm = torch.empty(n, dtype=torch.long)
    perm[order] = order.roll(-1)
    return perm


@register_estimator
class PermutationScore(_Perturbation):
    """Perceptual Score: one modality shuffled across samples, ``repeats`` times: ``M * repeats + 1`` passes.

    Each repeat draws one derangement of the batch and applies it to each modality in turn
    (so two interchangeable modalities are treated alike). A batch of one sample takes its
    donor from the previous batch.
    """

    name = "permutation"

    def __init__(self, repeats: int = 5, *, seed: int = 0, memory_budget_mb: float = 512.0,
                 level: str = "input", baseline: str | Baseline = "zero") -> None:
        if repeats < 1:
            raise UsageError(f"--repeats must be at least 1, got {repeats}")
        super().__init__(baseline=baseline, memory_budget_mb=memory_budget_mb, level=level)
        self.repeats = int(repeats)
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self._previous: dict[str, Tensor] | None = None

    def params(self) -> dict[str, Any]:
        return {"repeats": self.repeats, "seed": self.seed}

    def summarize(self, extra: dict[str, Any], *, accuracy: float) -> dict[str, Any]:
        drop = extra.get("accuracy_drop")
        if isinstance(drop, Mapping) and accuracy > 0:
            extra = {**extra, "perceptual_score": {m: v / accuracy for m, v in drop.items()}}
        return extra

    def _attribute(self, forward: ForwardFn, inputs: dict[str, Tensor], target: Tensor, *,
                   labels: Tensor | None, baselines: dict[str, Tensor] | None) -> Attribution:
        modalities = tuple(inputs)
        batch = target.shape[0]
        if batch < 2 and self._previous is None:
            raise EstimatorError("the permutation score shuffles modalities across samples and got a batch of 1",
                                 hint="use --batch-size 2 or more")
        variants: list[dict[str, Tensor]] = [inputs]
        for _ in range(self.repeats):
            if batch >= 2:
                perm = derangement(batch, self.generator).to(target.device)
                donors = {m: inputs[m][perm] for m in modalities}
            else:
                prev = self._previous or {}
                pick = torch.randint(next(iter(prev.values())).shape[0], (batch,), generator=self.generator)
                donors = {m: prev[m][pick.to(prev[m].device)] for m in modalities}
            variants += [{**inputs, m: donors[m]} for m in modalities]
        full, *shuffled = forward_variants(forward, variants, self.memory_budget_mb)
        self._previous = {m: x.detach()[-min(batch, 64):] for m, x in inputs.items()}
        n = len(modalities)
        f_full = target_logit(full, target)
        drop = torch.zeros(batch, n, dtype=full.dtype, device=full.device)
        acc = torch.zeros_like(drop)
        ok = correct(full, labels) if labels is not None else None
        for r in range(self.repeats):
            for j in range(n):
                out = shuffled[r * n + j]
                drop[:, j] += f_full - target_logit(out, target)
                if ok is not None:
                    acc[:, j] += ok - correct(out, labels)  # type: ignore[arg-type]
        extra = {"accuracy_drop": acc / self.repeats} if ok is not None else {}
        return Attribution(modalities, drop / self.repeats, extra=extra)
