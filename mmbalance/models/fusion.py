"""Fusion heads and the :class:`FusionModel` base that built-in architectures share.

A fusion head takes per-modality embeddings ``{modality: (B, D)}`` and returns logits
``(B, C)``. The four heads follow OGM-GE (Peng et al., CVPR 2022):

* ``concat``: one Linear on the concatenation.
* ``sum``: one Linear per modality, summed: ``logits = fc_audio(a) + fc_visual(v)``.
* ``film``: the first modality yields ``gamma, beta`` that modulate the second, then a Linear.
* ``gated``: ``sigmoid`` of the first modality's projection gates the second's, then a Linear.

``concat`` and ``sum`` also give each modality's own contribution to the logits
(:meth:`ConcatFusion.branch_logits`); ``film`` and ``gated`` mix modalities before the
classifier and have none.

Example:
    >>> import torch
    >>> head = build_fusion("concat", {"audio": 4, "visual": 4}, num_classes=3)
    >>> emb = {"audio": torch.randn(2, 4), "visual": torch.randn(2, 4)}
    >>> head(emb).shape
    torch.Size([2, 3])
    >>> parts = head.branch_logits(emb)
    >>> torch.allclose(parts["audio"] + parts["visual"], head(emb), atol=1e-6)
    True
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn

from ..errors import EstimatorError, ModelError

__all__ = [
    "FUSIONS",
    "FusionHead",
    "ConcatFusion",
    "SumFusion",
    "FiLMFusion",
    "GatedFusion",
    "build_fusion",
    "FusionModel",
    "as_spectrogram",
    "as_frames",
]


class FusionHead(nn.Module):
    """Base of the fusion heads: ``forward({modality: (B, D)}) -> logits (B, C)``."""

    def __init__(self, dims: Mapping[str, int], num_classes: int) -> None:
        super().__init__()
        if not dims:
            raise ModelError("a fusion head needs at least one modality")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ModelError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.modalities: tuple[str, ...] = tuple(dims)
        self.dims: dict[str, int] = dict(dims)
        self.num_classes = num_classes

    def _take(self, embeddings: Mapping[str, Tensor]) -> list[Tensor]:
        missing = [m for m in self.modalities if m not in embeddings]
        if missing:
            raise ModelError(f"fusion needs embeddings for {', '.join(missing)}; got {', '.join(embeddings) or 'none'}")
        return [embeddings[m] for m in self.modalities]


class ConcatFusion(FusionHead):
    """``logits = fc(cat(e_audio, e_visual))``."""

    def __init__(self, dims: Mapping[str, int], num_classes: int) -> None:
        super().__init__(dims, num_classes)
        self.fc = nn.Linear(sum(self.dims.values()), num_classes)

    def forward(self, embeddings: Mapping[str, Tensor]) -> Tensor:
        return self.fc(torch.cat(self._take(embeddings), dim=1))

    def branch_logits(self, embeddings: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Each modality's share of the logits: its columns of ``fc.weight``, plus ``bias / n``.

        As in OGM-GE, the bias is split evenly, so the shares sum to the fused logits.
        """
        parts = self._take(embeddings)
        bias = self.fc.bias / len(parts) if self.fc.bias is not None else None
        out: dict[str, Tensor] = {}
        start = 0
        for modality, emb in zip(self.modalities, parts):
            width = self.dims[modality]
            logits = emb @ self.fc.weight[:, start:start + width].T
            out[modality] = logits + bias if bias is not None else logits
            start += width
        return out


class SumFusion(FusionHead):
    """``logits = fc_audio(e_audio) + fc_visual(e_visual)``."""

    def __init__(self, dims: Mapping[str, int], num_classes: int) -> None:
        super().__init__(dims, num_classes)
        self.fcs = nn.ModuleDict({m: nn.Linear(d, num_classes) for m, d in self.dims.items()})

    def forward(self, embeddings: Mapping[str, Tensor]) -> Tensor:
        return torch.stack(list(self.branch_logits(embeddings).values())).sum(dim=0)

    def branch_logits(self, embeddings: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Each modality's own Linear output (with its own bias); they sum to the fused logits."""
        parts = self._take(embeddings)
        return {m: self.fcs[m](e) for m, e in zip(self.modalities, parts)}


class _PairFusion(FusionHead):
    """A head where the first modality conditions the second (two modalities, equal dims)."""

    def __init__(self, dims: Mapping[str, int], num_classes: int) -> None:
        super().__init__(dims, num_classes)
        if len(self.modalities) != 2:
            raise ModelError(f"{type(self).__name__} fuses exactly two modalities, got {len(self.modalities)}",
                             hint="use fusion=concat or fusion=sum for other counts")
        sizes = set(self.dims.values())
        if len(sizes) != 1:
            raise ModelError(f"{type(self).__name__} needs equal embedding sizes, got {self.dims}")
        self.dim = sizes.pop()


class FiLMFusion(_PairFusion):
    """``gamma, beta = fc(e_audio)``; ``logits = fc_out(gamma * e_visual + beta)``."""

    def __init__(self, dims: Mapping[str, int], num_classes: int) -> None:
        super().__init__(dims, num_classes)
        self.fc = nn.Linear(self.dim, 2 * self.dim)
        self.fc_out = nn.Linear(self.dim, num_classes)

    def forward(self, embeddings: Mapping[str, Tensor]) -> Tensor:
        film, target = self._take(embeddings)
        gamma, beta = torch.split(self.fc(film), self.dim, dim=1)
        return self.fc_out(gamma * target + beta)


class GatedFusion(_PairFusion):
    """``logits = fc_out(sigmoid(fc_audio(e_audio)) * fc_visual(e_visual))`` (OGM-GE, ``x_gate=True``)."""

    def __init__(self, dims: Mapping[str, int], num_classes: int) -> None:
        super().__init__(dims, num_classes)
        self.fc_gate = nn.Linear(self.dim, self.dim)
        self.fc_value = nn.Linear(self.dim, self.dim)
        self.fc_out = nn.Linear(self.dim, num_classes)

    def forward(self, embeddings: Mapping[str, Tensor]) -> Tensor:
        gate_in, value_in = self._take(embeddings)
        gate = torch.sigmoid(self.fc_gate(gate_in))
        return self.fc_out(gate * self.fc_value(value_in))


FUSIONS: dict[str, type[FusionHead]] = {
    "concat": ConcatFusion,
    "sum": SumFusion,
    "film": FiLMFusion,
    "gated": GatedFusion,
}


def build_fusion(kind: str, dims: Mapping[str, int], num_classes: int) -> FusionHead:
    """Build the fusion head ``kind`` (one of :data:`FUSIONS`) for embeddings of ``dims``.

    Example:
        >>> build_fusion("sum", {"audio": 8, "visual": 8}, 5).fcs["audio"].out_features
        5
    """
    cls = FUSIONS.get(str(kind).lower())
    if cls is None:
        raise ModelError(f"unknown fusion {kind!r}", hint=f"use one of {', '.join(FUSIONS)}")
    return cls(dims, num_classes)


class HeadMethods:
    """``fuse`` and ``branch_logits`` of a model whose ``fusion`` attribute is its :class:`FusionHead`."""

    fusion: nn.Module

    def fuse(self, embeddings: Mapping[str, Tensor]) -> Tensor:
        """Logits ``(B, num_classes)`` from the embeddings."""
        return self.fusion(embeddings)

    @property
    def has_branch_logits(self) -> bool:
        """Whether the fusion head splits its logits by modality (``concat`` and ``sum``)."""
        return callable(getattr(self.fusion, "branch_logits", None))

    def branch_logits(self, embeddings: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Each modality's own contribution to the logits; only for ``concat`` and ``sum`` heads."""
        fn = getattr(self.fusion, "branch_logits", None)
        if not callable(fn):
            raise EstimatorError(f"the {type(self.fusion).__name__} head has no per-modality logits",
                                 hint="use fusion=concat or fusion=sum, or another estimator")
        return fn(embeddings)


class FusionModel(HeadMethods, nn.Module):
    """Base of the built-in architectures: per-modality encoders, then a fusion head.

    ``encode`` returns exactly the embeddings that enter fusion, ``fuse`` maps them to logits,
    and ``forward(audio, visual)`` is ``fuse(encode(...))``.

    Example:
        >>> import torch
        >>> from mmbalance.models import create_model
        >>> m = create_model("av-tiny", num_classes=3)
        >>> emb = m.encode({"audio": torch.randn(2, 1, 16, 16), "visual": torch.randn(2, 3, 2, 16, 16)})
        >>> m.fuse(emb).shape
        torch.Size([2, 3])
    """

    modalities: tuple[str, ...] = ("audio", "visual")

    def __init__(self, encoders: Mapping[str, nn.Module], fusion: FusionHead, *, embedding_dim: int,
                 num_classes: int) -> None:
        super().__init__()
        missing = [m for m in self.modalities if m not in encoders]
        if missing:
            raise ModelError(f"{type(self).__name__} needs encoders for {', '.join(missing)}")
        self.encoders = nn.ModuleDict({m: encoders[m] for m in self.modalities})
        self.fusion = fusion
        self.embedding_dim = embedding_dim
        self.num_classes = num_classes

    def encode(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Per-modality embeddings ``{modality: (B, embedding_dim)}``."""
        missing = [m for m in self.modalities if m not in inputs]
        if missing:
            raise ModelError(f"{type(self).__name__} needs inputs {', '.join(self.modalities)}; "
                             f"missing {', '.join(missing)}")
        return {m: self.encoders[m](inputs[m]) for m in self.modalities}

    def forward(self, audio: Tensor, visual: Tensor) -> Tensor:
        return self.fuse(self.encode({"audio": audio, "visual": visual}))


def as_spectrogram(x: Tensor, channels: int = 1) -> Tensor:
    """Audio input as ``(B, channels, F, T)``; a ``(B, F, T)`` tensor gets its channel axis."""
    if x.dim() == 3 and channels == 1:
        x = x.unsqueeze(1)
    if x.dim() != 4 or x.shape[1] != channels:
        raise ModelError(f"audio input must be spectrograms (B, {channels}, F, T), got shape {tuple(x.shape)}",
                         hint="check the dataset's audio tensors and the --modalities order")
    return x


def as_frames(x: Tensor, channels: int = 3) -> Tensor:
    """Visual input as ``(B, channels, T, H, W)``; a ``(B, channels, H, W)`` image becomes one frame."""
    if x.dim() == 4 and x.shape[1] == channels:
        x = x.unsqueeze(2)
    if x.dim() != 5 or x.shape[1] != channels:
        raise ModelError(f"visual input must be frames (B, {channels}, T, H, W), got shape {tuple(x.shape)}",
                         hint="check the dataset's visual tensors and the --modalities order")
    return x
