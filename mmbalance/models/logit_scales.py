"""Per-modality logit scales for warm starts: temperature scaling of each unimodal run before merging.

Unimodal runs overfit their training data in different degrees, so their logits are on
different scales: summing them (a product of experts) lets the over-confident run outvote a
better calibrated one. :func:`fit_logit_scales` fits one positive scale per modality,
``a_m``, by minimising the cross-entropy of ``sum_m a_m * logits_m`` on held-out data (the
validation split): per-modality temperature scaling (Guo et al., 2017) fitted jointly, two
numbers for two modalities, so there is little to overfit. ``finetune --init-calibrate``
merges the runs with these scales (:func:`mmbalance.models.warm.warm_start`).

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> z = torch.randn(4000, 3, generator=g)
    >>> y = torch.multinomial(torch.softmax(z, 1), 1, generator=g).squeeze(1)
    >>> scales = fit_logit_scales({"audio": 4 * z}, y)  # 4x over-confident
    >>> 0.2 < scales["audio"] < 0.3  # the fitted scale undoes the factor 4
    True
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ModelError

__all__ = ["fit_logit_scales"]

#: scales are kept within [1/LIMIT, LIMIT]: beyond that a modality is switched off or blown up, not calibrated
LIMIT = 100.0


def fit_logit_scales(logits: Mapping[str, Tensor], labels: Tensor, *, max_iter: int = 100) -> dict[str, float]:
    """The scales ``{modality: a_m > 0}`` that minimise the cross-entropy of ``sum_m a_m * logits[m]``.

    ``logits`` maps each modality to its ``(N, classes)`` logits on held-out samples with
    ``labels`` ``(N,)``. Fitted in float64 with L-BFGS over ``log a_m`` (so scales stay
    positive), clamped to [1/100, 100]. Raises :class:`ModelError` for non-finite logits.
    """
    names = list(logits)
    if not names:
        raise ModelError("no logits to calibrate")
    stacked = torch.stack([logits[m].detach().to(torch.float64).cpu() for m in names])  # (M, N, C)
    y = labels.detach().cpu().long()
    if stacked.shape[1] != y.shape[0] or y.numel() == 0:
        raise ModelError(f"calibration needs one label per sample, got {y.shape[0]} labels for "
                         f"{stacked.shape[1]} samples")
    if not torch.isfinite(stacked).all():
        raise ModelError("a unimodal run gives non-finite logits on the validation split",
                         hint="check the --init runs (audit them) or start without --init-calibrate")
    log_scales = torch.zeros(len(names), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_scales], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        fused = (log_scales.exp()[:, None, None] * stacked).sum(0)
        loss = F.cross_entropy(fused, y)
        loss.backward()
        return loss

    optimizer.step(closure)
    fitted = log_scales.detach().exp().clamp(1 / LIMIT, LIMIT)
    if not torch.isfinite(fitted).all():  # pragma: no cover - L-BFGS on finite inputs stays finite
        raise ModelError("the logit-scale fit did not converge", hint="start without --init-calibrate")
    return {m: float(a) for m, a in zip(names, fitted.tolist())}
