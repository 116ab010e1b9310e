"""Validation: loss, accuracy and modality shares of a model on a dataset (used after every epoch).

Example:
    >>> zero_modalities({"a": torch.ones(1, 2), "b": torch.ones(1, 2)}, ["b"])["b"].tolist()
    [[0.0, 0.0]]
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..attribution.hooks import EmbeddingView
from ..data import MultimodalDataset, make_loader
from ..distributed import ShardSampler, all_reduce_sum
from ..errors import TrainingError
from ..guards import ConstantMonitor, check_finite
from ..models import ModelAdapter
from .differentiable import AttributionSpec, modality_scores, share_penalty, soft_shares
from .embeddings import TokenInputs

__all__ = ["evaluate", "zero_modalities"]


def _autocast(device: torch.device, enabled: bool) -> Any:
    """bf16 autocast on CUDA (fp16 with a gradient scaler where bf16 is missing); off elsewhere."""
    if not (enabled and device.type == "cuda"):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def zero_modalities(inputs: Mapping[str, Tensor], names: Sequence[str],
                    tokens: TokenInputs | None = None) -> dict[str, Tensor]:
    """``inputs`` with the modalities in ``names`` replaced by zeros, token ids by pad ids (unimodal baselines).

    Example:
        >>> zero_modalities({"a": torch.ones(1, 2), "b": torch.ones(1, 2)}, ["b"])["b"].tolist()
        [[0.0, 0.0]]
    """
    if not names:
        return dict(inputs)
    blank = (tokens or TokenInputs()).blank
    return {m: blank(x) if m in names else x for m, x in inputs.items()}


def evaluate(adapter: ModelAdapter, dataset: MultimodalDataset, *, batch_size: int, device: torch.device,
             spec: AttributionSpec | None = None, target: Sequence[float] | None = None, penalty: str = "l2",
             zero: Sequence[str] = (), amp: bool = False, view: EmbeddingView | None = None,
             tokens: TokenInputs | None = None, monitor: ConstantMonitor | None = None) -> dict[str, Any]:
    """Mean cross-entropy, accuracy and (with ``spec``) modality shares of ``adapter`` on ``dataset``.

    Shares are the mean per-sample shares of the true-class attribution measured as
    ``spec`` says (at the embedding level through ``view`` when given, see
    :mod:`mmbalance.training.embeddings`; a model with no embeddings is measured at the
    input level, where ``tokens`` attributes token ids at their embedding). Each batch's
    pass-through inputs (``batch.extra``) go to the model with it. With ``target`` the share
    penalty of those mean shares is returned too. Under torchrun each rank evaluates its
    shard and the sums are all-reduced, so every rank gets the single-process numbers. With
    ``monitor`` and shares at the embedding level, each batch's embeddings are folded into it
    (one more forward per batch), to find those that never change.

    Example:
        >>> evaluate(adapter, val_set, batch_size=64, device=torch.device("cpu"))  # doctest: +SKIP
        {'loss': 0.61, 'accuracy': 0.74, 'n': 500}
    """
    was_training = adapter.training
    adapter.eval()
    modalities = tuple(adapter.modalities)
    sums = torch.zeros(3 + len(modalities), dtype=torch.float64)  # loss, correct, n, share sums
    if spec is not None and spec.level == "embedding" and view is None and not adapter.has_embeddings:
        spec = AttributionSpec(method=spec.method, level="input", steps=spec.steps, pool=spec.pool)
    loader = make_loader(dataset, batch_size=batch_size, sampler=ShardSampler(len(dataset)))
    for batch in loader:
        batch = batch.to(device)
        inputs = {**zero_modalities(batch.inputs, zero, tokens), **batch.extra}
        with torch.no_grad(), _autocast(device, amp):
            logits = adapter(inputs)
        check_finite(logits, batch.indices, "the model's logits on the evaluation data", error=TrainingError,
                     hint="training diverged or the model overflows; lower --lr, or turn off --amp")
        sums[0] += float(F.cross_entropy(logits.float(), batch.labels, reduction="sum"))
        sums[1] += int((logits.argmax(1) == batch.labels).sum())
        sums[2] += batch.labels.shape[0]
        if spec is not None:
            with _autocast(device, amp):
                scores = modality_scores(adapter, inputs, batch.labels, spec,
                                         view=view if spec.level == "embedding" else
                                         (tokens or TokenInputs()).input_view(adapter))
            sums[3:] += soft_shares(scores.double()).sum(0).cpu()
            if monitor is not None and spec.level == "embedding":
                with torch.no_grad(), _autocast(device, amp):
                    monitor.update(view.encode(inputs) if view is not None else adapter.encode(inputs))
    sums = all_reduce_sum(sums)
    adapter.train(was_training)
    n = max(float(sums[2]), 1.0)
    out: dict[str, Any] = {"loss": float(sums[0]) / n, "accuracy": float(sums[1]) / n, "n": int(sums[2])}
    if spec is not None:
        shares = sums[3:] / n
        out["shares"] = dict(zip(modalities, shares.tolist()))
        if target is not None:
            out["penalty"] = float(share_penalty(shares, torch.tensor(list(target), dtype=torch.float64), penalty))
    return out
