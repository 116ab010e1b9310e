"""Forwards over stacked copies of a batch, with per-sample context repeated alike.

Estimators evaluate a batch of ``B`` samples at many points at once by stacking copies of
it: ``k * B`` rows, copy after copy (IG steps, ablation variants, Shapley coalitions,
shuffles). Tensors that belong to each sample but are not attributed (pass-through inputs
such as attention masks, the raw inputs behind a hooked embedding) must follow their sample
into every copy. :class:`BatchForward` does that once for every estimator: it sees how many
copies a call stacks and repeats its context as many times. :meth:`BatchForward.select`
gives the forward for a subset of the samples (IG's adaptive refinement walks only those
that have not converged).

Example:
    >>> import torch
    >>> f = BatchForward(lambda x, ctx: x["a"] * ctx["mask"], {"mask": torch.tensor([[1.0], [0.0]])})
    >>> f({"a": torch.ones(4, 1)}).flatten().tolist()  # two stacked copies of a batch of two
    [1.0, 0.0, 1.0, 0.0]
    >>> f.select(torch.tensor([1]))({"a": torch.ones(2, 1)}).flatten().tolist()
    [0.0, 0.0]
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from torch import Tensor

from ..errors import EstimatorError

__all__ = ["BatchForward", "select_rows"]

ContextFn = Callable[[dict[str, Tensor], dict[str, Tensor]], Tensor]


class BatchForward:
    """``fn(tensors, context)`` where ``context`` holds each row's sample's per-sample tensors.

    Args:
        fn: the forward, given the estimator's tensors and the matching context rows.
        context: ``{name: (B, ...)}`` per-sample tensors of the batch.
        rows: the samples (indices into ``context``) the calls are about; all by default.
    """

    def __init__(self, fn: ContextFn, context: Mapping[str, Tensor], rows: Tensor | None = None) -> None:
        self.fn = fn
        self.context = dict(context)
        self.rows = rows
        self.batch = int(rows.shape[0]) if rows is not None else (
            int(next(iter(self.context.values())).shape[0]) if self.context else 0)
        self._repeated: dict[int, dict[str, Tensor]] = {}

    def __call__(self, tensors: Mapping[str, Tensor]) -> Tensor:
        n = int(next(iter(tensors.values())).shape[0]) if tensors else self.batch
        return self.fn(dict(tensors), self.context_for(n))

    def context_for(self, n: int) -> dict[str, Tensor]:
        """The context for ``n`` rows: ``n / B`` stacked copies of the batch's."""
        if not self.context:
            return {}
        if self.batch == 0 or n % self.batch:
            raise EstimatorError(f"{n} rows do not stack copies of a batch of {self.batch}",
                                 hint="estimators must evaluate whole copies of the batch")
        copies = n // self.batch
        if copies not in self._repeated:
            base = self.context if self.rows is None else {k: v[self.rows.to(v.device)]
                                                           for k, v in self.context.items()}
            self._repeated = {copies: {k: v.repeat((copies,) + (1,) * (v.dim() - 1)) if copies > 1 else v
                                       for k, v in base.items()}}
        return self._repeated[copies]

    def select(self, idx: Tensor) -> "BatchForward":
        """The forward for samples ``idx`` of this batch only."""
        rows = idx if self.rows is None else self.rows[idx.to(self.rows.device)]
        return BatchForward(self.fn, self.context, rows)


def select_rows(forward: Any, idx: Tensor | None) -> Any:
    """``forward.select(idx)`` when ``forward`` carries per-sample context, else ``forward`` itself."""
    if idx is None:
        return forward
    select = getattr(forward, "select", None)
    return select(idx) if callable(select) else forward
