"""Gradient x input: the first-order Taylor term of the target logit, per modality.

``map_i = (x_i - x'_i) * dF_c/dx_i (x)``; with the zero baseline this is captum's
``InputXGradient``. A modality's score is the L1 mass of its map. One forward and one
backward pass per batch: the cheapest gradient estimator, and exact on a linear model.

Example:
    >>> import torch
    >>> lin = torch.nn.Linear(3, 2)
    >>> x = {"a": torch.randn(4, 3)}
    >>> out = GradientXInput(keep_maps=True).attribute(lambda d: lin(d["a"]), x, torch.zeros(4, dtype=torch.long))
    >>> torch.allclose(out.maps["a"], x["a"] * lin.weight[0])
    True
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .base import Attribution, Estimator, ForwardFn, check_pool, pooled_scores, register_estimator, target_logit
from .baselines import Baseline


@register_estimator
class GradientXInput(Estimator):
    """``(x - baseline) * gradient``, all modalities in one backward pass."""

    name = "gradxinput"

    def __init__(self, *, baseline: str | Baseline = "zero", keep_maps: bool = False, level: str = "input",
                 pool: str = "l1") -> None:
        self.baseline = Baseline.coerce(baseline)
        self.pool = check_pool(pool)
        self.keep_maps = keep_maps
        self.level = level

    def params(self) -> dict[str, Any]:
        return {**self.baseline.params(), **({"pool": self.pool} if self.pool != "l1" else {})}

    def _attribute(self, forward: ForwardFn, inputs: dict[str, Tensor], target: Tensor, *,
                   labels: Tensor | None, baselines: dict[str, Tensor] | None) -> Attribution:
        modalities = tuple(inputs)
        baselines = baselines if baselines is not None else self.baseline(inputs)
        leaves = {m: x.detach().requires_grad_(True) for m, x in inputs.items()}
        with torch.enable_grad():
            out = target_logit(forward(leaves), target).sum()
            grads = (torch.autograd.grad(out, [leaves[m] for m in modalities], allow_unused=True)
                     if out.requires_grad else [None] * len(modalities))
        maps = {m: (inputs[m].detach() - baselines[m]) * (g if g is not None else torch.zeros_like(inputs[m]))
                for m, g in zip(modalities, grads)}
        return Attribution(modalities, pooled_scores(maps, modalities, self.pool),
                           maps={m: v.detach() for m, v in maps.items()} if self.keep_maps else None)
