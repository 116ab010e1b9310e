"""``--regularizer gblend``: Gradient-Blending (Wang, Tran & Feiszli, "What Makes Training Multi-modal
Classification Networks Hard?", CVPR 2020).

A Linear auxiliary head on each modality's embedding (:mod:`.aux_heads`) plus the
model's fused head give ``K = M + 1`` losses, blended as ``loss = sum_k w_k * CE_k``.
The weights follow the overfitting-to-generalization ratio (OGR) measured between two
checkpoints ``N`` and ``N + n`` (``n = --gblend-every`` epochs): with ``L^T_k`` the
training loss and ``L^V_k`` the held-out loss of head ``k``, the overfitting is
``O_k = L^V_k - L^T_k``, and

* ``dG_k = L^V_k(N) - L^V_k(N + n)``: the generalization gained (held-out loss drop);
* ``dO_k = O_k(N + n) - O_k(N)``: the overfitting gained; ``OGR_k = |dO_k / dG_k|``.

The paper's Proposition 1 gives the blend that minimizes the overfitting of the blended
gradient, ``w_k* = <grad L*, v_k> / (Z * sigma_k^2)``, estimated as

    w*_k = (1 / Z) * dG_k / dO_k^2,     Z = sum_k dG_k / dO_k^2,

so a head whose held-out loss falls while it overfits little gets a large weight. A
negative ``dG_k`` (no generalization) gives ``w*_k = 0`` and ``dO_k^2`` is floored at ``1e-8``.

As in the paper, ``V`` is a **held-out part of the training data**: ``--gblend-holdout``
(default 20%, seeded and stratified by class) is taken out of the training split before
training and never trained on; ``L^T`` is measured in eval mode on a fixed subset of the
rest of the same size (at least 512 samples), ``L^V`` on the held-out part. The validation
split stays what it is elsewhere: the data that picks the best epoch.

One estimate from one or two epochs is noisy: on small held-out sets ``w*`` jumps between
one-hot extremes, and a weight of 0 stops the fused head's gradient. So every head keeps a
floor ``f`` (``--gblend-floor``, default 0.05) and the estimates are smoothed across
epochs with an exponential moving average (``--gblend-smoothing`` ``beta``, default 0.5):

    w_k <- beta * w_k + (1 - beta) * (f + (1 - K f) * w*_k)

Weights start uniform (``1/K``), stay ``>= f`` and sum to 1, and one update moves a weight by
at most ``(1 - beta)(1 - K f)``. When no head generalized, the weights are kept.

Example:
    >>> prev = {"audio": (1.0, 1.2), "visual": (2.0, 2.1), "fused": (1.0, 1.2)}  # (train, held-out) losses
    >>> now = {"audio": (0.5, 1.0), "visual": (1.9, 1.9), "fused": (0.4, 1.1)}
    >>> {k: round(v, 3) for k, v in gblend_weights(prev, now).items()}
    {'audio': 0.098, 'visual': 0.884, 'fused': 0.018}
    >>> w = blend_update({"audio": 1 / 3, "visual": 1 / 3, "fused": 1 / 3}, prev, now, smoothing=0.5, floor=0.05)
    >>> {k: round(v, 3) for k, v in w.items()}
    {'audio': 0.233, 'visual': 0.567, 'fused': 0.199}
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...attribution.hooks import EmbeddingView
from ...data import make_loader
from ...data.splits import dataset_labels, stratified_split
from ...errors import UsageError
from ..config import TrainConfig
from .aux_heads import build_aux_heads
from .base import Regularizer, StepOutput, register_regularizer

__all__ = ["FUSED", "GradientBlending", "blend_update", "gblend_weights"]

FUSED = "fused"
_FLOOR = 1e-8
_MIN_TRAIN_SUBSET = 512


def gblend_weights(prev: Mapping[str, tuple[float, float]], now: Mapping[str, tuple[float, float]],
                   floor: float = _FLOOR) -> dict[str, float] | None:
    """G-Blend weights ``w_k ∝ max(dG_k, 0) / max(dO_k^2, floor)`` from ``(train, val)`` losses per head.

    ``prev`` and ``now`` map each head to its ``(train_loss, val_loss)`` at two checkpoints.
    Returns weights summing to 1, or ``None`` when no head's validation loss fell.
    """
    raw: dict[str, float] = {}
    for k, (t1, v1) in now.items():
        t0, v0 = prev[k]
        d_g = v0 - v1
        d_o = (v1 - t1) - (v0 - t0)
        raw[k] = max(d_g, 0.0) / max(d_o * d_o, floor) if math.isfinite(d_g) and math.isfinite(d_o) else 0.0
    total = sum(raw.values())
    if not (total > 0 and math.isfinite(total)):
        return None
    return {k: v / total for k, v in raw.items()}


def blend_update(weights: Mapping[str, float], prev: Mapping[str, tuple[float, float]],
                 now: Mapping[str, tuple[float, float]], *, smoothing: float, floor: float) -> dict[str, float]:
    """The next loss weights: ``beta * w + (1 - beta) * (f + (1 - K f) * w*)`` (module docstring).

    ``w*`` is :func:`gblend_weights` of ``prev`` and ``now``; when it is ``None`` (no head
    generalized) ``weights`` come back unchanged.
    """
    target = gblend_weights(prev, now)
    if target is None:
        return dict(weights)
    spread = 1.0 - len(target) * floor
    return {k: smoothing * weights[k] + (1.0 - smoothing) * (floor + spread * target[k]) for k in weights}


@register_regularizer
class GradientBlending(Regularizer):
    """Unimodal auxiliary heads plus the fused head, loss weights from the OGR (see the module docstring)."""

    name = "gblend"

    def __init__(self, config: TrainConfig, modalities: Sequence[str]) -> None:
        super().__init__(config, modalities)
        if len(self.modalities) < 2:
            raise UsageError("Gradient-Blending blends two or more modalities; the data has one")
        self.heads = (*self.modalities, FUSED)
        self.weights = {k: 1.0 / len(self.heads) for k in self.heads}
        self.prev: dict[str, tuple[float, float]] | None = None
        self.every = int(config.gblend_every)
        #: every estimate's inputs, ``[epoch, {head: (train_loss, held_out_loss)}]`` (in resume.pt)
        self.observations: list[list[Any]] = []
        self._split: tuple[list[int], list[int]] | None = None

    def training_indices(self, train_set: Any) -> list[int]:
        """The training samples left after ``--gblend-holdout`` is held out (seeded, stratified)."""
        if self._split is None:
            keep, held = stratified_split(dataset_labels(train_set), self.config.gblend_holdout,
                                          seed=self.config.seed)
            if not keep or not held:
                raise UsageError(f"Gradient-Blending holds out {self.config.gblend_holdout:g} of the training data, "
                                 f"and {train_set.location} has {len(train_set)} samples: too few",
                                 hint="use more training data or another --regularizer")
            self._split = keep, held
        return self._split[0]

    def needs_embeddings(self) -> str | None:
        return "-r gblend"

    def check(self, adapter: nn.Module, view: EmbeddingView | None = None,
              probe: Mapping[str, Tensor] | None = None) -> None:
        super().check(adapter, view, probe)
        if self.view is None:
            raise UsageError("Gradient-Blending needs per-modality embeddings (encode/fuse)",
                             hint="name each modality's encoder module with --embedding-layer audio=...,visual=...")
        if self.aux is None:
            self.aux = build_aux_heads(adapter, self.view, probe)

    def head_logits(self, adapter: nn.Module, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Logits of every head: each modality's auxiliary head and ``fused``."""
        if self.aux is None:
            raise RuntimeError("GradientBlending.check(adapter) builds the heads; call it first")
        embeddings, fused = self.encode_with_logits(adapter, inputs)
        out = self.aux(embeddings)
        out[FUSED] = fused
        return out

    def step(self, adapter: nn.Module, inputs: Mapping[str, Tensor], labels: Tensor) -> StepOutput:
        logits = self.head_logits(adapter, inputs)
        losses = {k: F.cross_entropy(z.float(), labels) for k, z in logits.items()}
        loss = sum((self.weights[k] * losses[k] for k in self.heads), torch.zeros((), device=labels.device))
        return StepOutput(logits=logits[FUSED], loss=loss, task_loss=losses[FUSED].detach())

    @torch.no_grad()
    def head_losses(self, adapter: nn.Module, dataset: Any, indices: Sequence[int], *, batch_size: int,
                    device: torch.device) -> dict[str, float]:
        """Mean cross-entropy of every head on ``dataset[indices]`` (eval mode)."""
        if self.aux is None:
            raise RuntimeError("GradientBlending.check(adapter) builds the heads; call it first")
        was = adapter.training, self.aux.training
        adapter.eval()
        self.aux.eval()
        sums = dict.fromkeys(self.heads, 0.0)
        n = 0
        for batch in make_loader(dataset, batch_size=batch_size, sampler=list(indices)):
            batch = batch.to(device)
            for k, z in self.head_logits(adapter, {**batch.inputs, **batch.extra}).items():
                sums[k] += float(F.cross_entropy(z.float(), batch.labels, reduction="sum"))
            n += batch.labels.shape[0]
        adapter.train(was[0])
        self.aux.train(was[1])
        return {k: v / max(n, 1) for k, v in sums.items()}

    def observe(self, adapter: nn.Module, epoch: int, *, train_set: Any, val_set: Any, batch_size: int,
                device: torch.device) -> None:
        if epoch % self.every:
            return
        keep = self.training_indices(train_set)
        held = self._split[1] if self._split is not None else []
        size = min(len(keep), max(len(held), _MIN_TRAIN_SUBSET))
        order = torch.randperm(len(keep), generator=torch.Generator().manual_seed(self.config.seed))[:size]
        train = self.head_losses(adapter, train_set, [keep[i] for i in order.tolist()], batch_size=batch_size,
                                 device=device)
        held_out = self.head_losses(adapter, train_set, held, batch_size=batch_size, device=device)
        now = {k: (train[k], held_out[k]) for k in self.heads}
        if self.prev is not None:
            self.weights = blend_update(self.weights, self.prev, now, smoothing=self.config.gblend_smoothing,
                                        floor=self.config.gblend_floor)
        self.prev = now
        self.observations.append([epoch, {k: [a, b] for k, (a, b) in now.items()}])

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {f"w_{k}": round(v, 6) for k, v in self.weights.items()}
        if self.prev is not None:  # the estimate's inputs: each head's training and held-out loss
            out.update({f"gblend_train_loss_{k}": a for k, (a, _) in self.prev.items()})
            out.update({f"gblend_heldout_loss_{k}": b for k, (_, b) in self.prev.items()})
        return out

    def state_dict(self) -> dict[str, Any]:
        return dict(super().state_dict(), weights=dict(self.weights), prev=self.prev,
                    observations=list(self.observations))

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if "weights" in state:
            self.weights = {k: float(v) for k, v in state["weights"].items()}
            self.prev = {k: (float(a), float(b)) for k, (a, b) in state["prev"].items()} if state["prev"] else None
            self.observations = [list(o) for o in state.get("observations", [])]
