"""``--regularizer modality-dropout``: train on samples that sometimes lack a modality.

With probability ``p`` a training sample has one modality, chosen uniformly, removed, so
the model cannot rely on any single stream always being there. Evaluation sees every
modality. For models with per-modality embeddings (built-ins, or plug-ins with
``--embedding-layer``) the dropped modality's *embedding* is zeroed, as multimodal
transformers drop tokens; zeroing raw inputs instead would also shift the encoders'
batch-norm statistics away from what evaluation sees. Other models get their inputs zeroed.
Token ids are always replaced by pad ids (``--pad-id``), never by zeros. The draws come from
a generator seeded from the run seed, the epoch and the rank, so resumed and repeated runs
draw the same masks.

Example:
    >>> from mmbalance.training import TrainConfig
    >>> cfg = TrainConfig(model="av-tiny", data="d", out="o", regularizer="modality-dropout", p=1.0)
    >>> reg = ModalityDropout(cfg, ["audio", "visual"]); reg.begin_epoch(1)
    >>> keep = reg.keep_mask(6)
    >>> keep.shape, bool((keep.sum(1) == 1).all())
    (torch.Size([6, 2]), True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import UsageError
from ..config import TrainConfig
from .base import Regularizer, StepOutput, register_regularizer

if TYPE_CHECKING:
    from ...models.adapter import ModelAdapter

__all__ = ["ModalityDropout"]


@register_regularizer
class ModalityDropout(Regularizer):
    """Zero one random modality of a sample with probability ``p``."""

    name = "modality-dropout"

    def __init__(self, config: TrainConfig, modalities: Sequence[str]) -> None:
        super().__init__(config, modalities)
        if len(self.modalities) < 2:
            raise UsageError("modality dropout needs two or more modalities; the data has one")
        self.p = float(config.p)
        self._gen: torch.Generator | None = None

    def begin_epoch(self, epoch: int, rank: int = 0) -> None:
        super().begin_epoch(epoch, rank)
        self._gen = self._generator(2, rank + 1)

    def keep_mask(self, batch: int) -> Tensor:
        """``(B, M)`` float mask: 0 where a sample's modality is dropped, else 1."""
        gen = self._gen if self._gen is not None else self._generator(2, self.rank + 1)
        drop = torch.rand(batch, generator=gen) < self.p
        which = torch.randint(len(self.modalities), (batch,), generator=gen)
        keep = torch.ones(batch, len(self.modalities))
        keep[drop, which[drop]] = 0.0
        return keep

    def _apply(self, tensors: Mapping[str, Tensor], keep: Tensor, names: Sequence[str] | None = None
               ) -> dict[str, Tensor]:
        out = dict(tensors)
        for j, m in enumerate(self.modalities):
            if names is not None and m not in names:
                continue
            x = tensors[m]
            mask = keep[:, j].to(device=x.device).view((-1,) + (1,) * (x.dim() - 1))
            # token ids are dropped to pad ids (self.tokens), floats to zeros
            out[m] = x * mask.to(x.dtype) if x.is_floating_point() else torch.where(mask > 0, x, self.tokens.blank(x))
        return out

    def step(self, adapter: ModelAdapter, inputs: Mapping[str, Tensor], labels: Tensor) -> StepOutput:
        keep = self.keep_mask(labels.shape[0])
        view = self.embedding_view(adapter)
        if view is None:
            return super().step(adapter, self._apply(inputs, keep), labels)
        ids = [m for m in self.modalities if not inputs[m].is_floating_point()]
        inputs = self._apply(inputs, keep, ids) if ids else inputs  # pad ids in, then their embeddings
        floats = [m for m in self.modalities if m not in ids]
        logits = view.bind(inputs)(self._apply(view.encode(inputs, grad=True), keep, floats))
        loss = F.cross_entropy(logits.float(), labels)
        return StepOutput(logits=logits, loss=loss, task_loss=loss.detach())
