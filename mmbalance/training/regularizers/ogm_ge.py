"""``--regularizer ogm-ge``: On-the-fly Gradient Modulation with Generalization Enhancement.

Peng et al., "Balanced Multimodal Learning via On-the-fly Gradient Modulation", CVPR 2022.
Each step measures how confidently each modality alone predicts the true class,
``s_m = sum_b softmax(logits_m)_b[y_b]`` with ``logits_m`` the modality's own part of the
fused logits (its fusion columns for ``concat``/``sum``; otherwise the fused logits with
the other embeddings set to zero, see :func:`mmbalance.training.embeddings.branch_logits`).
Plug-in models name their encoders with ``--embedding-layer``: the embeddings are those
modules' outputs, the encoder parameters those modules' parameters. The most confident modality's encoder gradients are
scaled down by ``1 - tanh(alpha * s_max / mean(s_others))`` and Gaussian noise with the
gradient's own standard deviation is added to every encoder weight gradient (the
"generalization enhancement"). With two modalities this is the published rule. As in
the reference code, only weight tensors (two or more dimensions) are modulated, and only
in epochs ``--modulation-start`` to ``--modulation-end`` (default: every epoch; the
reference code modulates epochs 0-50 of 100). The published setting is SGD with momentum
0.9, weight decay 1e-4, learning rate 1e-3 and ``StepLR(step 70, gamma 0.1)``:
``--optimizer sgd --weight-decay 1e-4 --scheduler step --step-size 70 --gamma 0.1``. Under torchrun the scores are summed across ranks
and the noise is drawn from a generator shared by all ranks, so replicas stay identical.

Example:
    >>> from mmbalance.training import TrainConfig
    >>> cfg = TrainConfig(model="av-tiny", data="d", out="o", regularizer="ogm-ge", alpha=0.5)
    >>> reg = OGMGE(cfg, ["audio", "visual"])
    >>> coeffs = reg.coefficients(torch.tensor([30.0, 10.0]))
    >>> round(coeffs["audio"], 4), coeffs["visual"]
    (0.0949, 1.0)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...attribution.hooks import EmbeddingView
from ...distributed import all_reduce_sum
from ...errors import UsageError
from ..config import TrainConfig
from ..embeddings import branch_logits
from .base import Regularizer, StepOutput, encoder_parameters, register_regularizer

if TYPE_CHECKING:
    from ...models.adapter import ModelAdapter

__all__ = ["OGMGE"]


@register_regularizer
class OGMGE(Regularizer):
    """Gradient modulation of the dominant modality's encoder, plus gradient noise."""

    name = "ogm-ge"

    def __init__(self, config: TrainConfig, modalities: Sequence[str]) -> None:
        super().__init__(config, modalities)
        if len(self.modalities) < 2:
            raise UsageError("OGM-GE balances two or more modalities; the data has one")
        self.alpha = float(config.alpha)
        self.coeffs: dict[str, float] = {m: 1.0 for m in self.modalities}
        self._noise: torch.Generator | None = None

    def needs_embeddings(self) -> str | None:
        return "-r ogm-ge"

    def check(self, adapter: nn.Module, view: EmbeddingView | None = None,
              probe: Mapping[str, Tensor] | None = None) -> None:
        super().check(adapter, view, probe)
        if self.view is None:
            raise UsageError("OGM-GE needs per-modality embeddings (encode/fuse)",
                             hint="name each modality's encoder with --embedding-layer audio=...,visual=...")
        encoder_parameters(adapter, self.view)

    def begin_epoch(self, epoch: int, rank: int = 0) -> None:
        super().begin_epoch(epoch, rank)
        self._noise = self._generator(1)  # the same on every rank

    def coefficients(self, scores: Tensor) -> dict[str, float]:
        """Gradient scale per modality from the summed confidences ``scores`` ``(M,)``."""
        values = [float(v) for v in scores]
        top = max(range(len(values)), key=lambda i: values[i])
        others = [v for i, v in enumerate(values) if i != top]
        ratio = values[top] / max(sum(others) / len(others), 1e-12)
        coeffs = {m: 1.0 for m in self.modalities}
        coeffs[self.modalities[top]] = 1.0 - math.tanh(self.alpha * max(ratio, 0.0))
        return coeffs

    def step(self, adapter: ModelAdapter, inputs: Mapping[str, Tensor], labels: Tensor) -> StepOutput:
        view = self.embedding_view(adapter)
        if view is None:
            raise UsageError("OGM-GE needs per-modality embeddings", hint="name them with --embedding-layer")
        embeddings, logits = view.encode_with_logits(inputs, grad=True)
        loss = F.cross_entropy(logits.float(), labels)
        with torch.no_grad():
            parts = branch_logits(adapter, view, inputs, embeddings)
            scores = torch.stack([F.softmax(parts[m].float(), dim=1).gather(1, labels.view(-1, 1)).sum()
                                  for m in self.modalities])
        self.coeffs = self.coefficients(all_reduce_sum(scores).cpu())
        return StepOutput(logits=logits, loss=loss, task_loss=loss.detach())

    def modulating(self, epoch: int) -> bool:
        """Whether ``epoch`` lies in ``--modulation-start`` .. ``--modulation-end`` (inclusive)."""
        end = self.config.modulation_end
        return self.config.modulation_start <= epoch and (end is None or epoch <= end)

    def after_backward(self, adapter: nn.Module) -> None:
        if not self.modulating(self.epoch):
            return
        for modality, params in encoder_parameters(adapter, self.embedding_view(adapter)).items():
            coeff = self.coeffs.get(modality, 1.0)
            for p in params:
                if p.grad is None or p.grad.dim() < 2:
                    continue
                std = float(p.grad.float().std()) + 1e-8 if p.grad.numel() > 1 else 1e-8
                noise = torch.randn(p.grad.shape, generator=self._noise, dtype=torch.float32) * std
                p.grad.mul_(coeff).add_(noise.to(device=p.grad.device, dtype=p.grad.dtype))
