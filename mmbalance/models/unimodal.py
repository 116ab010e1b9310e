"""Unimodal baselines (``--unimodal audio``): one encoder and its own classifier, trained alone.

The model is the ``unimodal`` entry of the model registry: it builds the built-in
``base`` model, keeps only ``modality``'s encoder and puts a Linear classifier on its
embedding. It takes that one input and nothing else (``modalities == ("audio",)``), so
the other streams are never read; it is not the fused model with zeroed inputs. Audit or
evaluate a saved run with::

    mmbalance audit -m unimodal --model-arg base=av-tiny --model-arg modality=audio \\
        -c runs/audio/best.pt -d DATA --modalities audio

Example:
    >>> import torch
    >>> from mmbalance.models.unimodal import unimodal
    >>> m = unimodal(num_classes=3, base="av-tiny", modality="audio")
    >>> m.modalities, m(torch.randn(2, 1, 16, 16)).shape
    (('audio',), torch.Size([2, 3]))
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor, nn

from ..errors import ModelError
from ._builder import create_model
from ._registry import register_model
from .fusion import build_fusion

__all__ = ["UnimodalModel", "plugin_encoder", "unimodal"]


class _FlatHead(nn.Module):
    """A Linear classifier on one flattened embedding whose size the first forward finds (plug-in encoders)."""

    def __init__(self, modality: str, num_classes: int) -> None:
        super().__init__()
        self.modality = modality
        self.fc = nn.LazyLinear(num_classes)

    def forward(self, embeddings: Mapping[str, Tensor]) -> Tensor:
        return self.fc(embeddings[self.modality].flatten(1))


class _Element(nn.Module):
    """Element ``index`` of a module's tuple output (``--embedding-layer encoder[0]``)."""

    def __init__(self, module: nn.Module, index: int) -> None:
        super().__init__()
        self.module, self.index = module, index

    def forward(self, x: Tensor) -> Tensor:
        out = self.module(x)
        return out.to_tuple()[self.index] if hasattr(out, "to_tuple") else out[self.index]


def plugin_encoder(model: nn.Module, layer: str) -> nn.Module:
    """The module of ``model`` that ``layer`` names (``--embedding-layer`` syntax, ``encoder[0]`` included)."""
    from ..attribution.hooks import resolve_module, split_element

    path, index = split_element(layer)
    encoder = resolve_module(model, path)
    return encoder if index is None else _Element(encoder, index)


class UnimodalModel(nn.Module):
    """``encoder -> Linear``: one modality of a model with its own classifier (``fusion`` with one input).

    ``embedding_dim=None`` (a plug-in's encoder): the classifier is sized by the first forward.
    """

    def __init__(self, modality: str, encoder: nn.Module, embedding_dim: int | None, num_classes: int) -> None:
        super().__init__()
        self.modalities: tuple[str, ...] = (modality,)
        self.encoders = nn.ModuleDict({modality: encoder})
        self.fusion: nn.Module = (build_fusion("concat", {modality: embedding_dim}, num_classes)
                                  if embedding_dim is not None else _FlatHead(modality, num_classes))
        self.embedding_dim = embedding_dim
        self.num_classes = num_classes

    def encode(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``{modality: (B, D)}`` from the one input this model reads."""
        (m,) = self.modalities
        if m not in inputs:
            raise ModelError(f"the unimodal {m} model needs the {m} input; got {', '.join(inputs) or 'none'}")
        return {m: self.encoders[m](inputs[m])}

    def fuse(self, embeddings: Mapping[str, Tensor]) -> Tensor:
        """Logits from the one embedding."""
        return self.fusion(embeddings)

    @property
    def has_branch_logits(self) -> bool:
        return True

    def branch_logits(self, embeddings: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The whole logits belong to the one modality."""
        return {self.modalities[0]: self.fuse(embeddings)}

    def forward(self, x: Tensor) -> Tensor:
        return self.fuse(self.encode({self.modalities[0]: x}))


@register_model("unimodal")
def unimodal(num_classes: int, base: str = "av-tiny", modality: str = "audio",
             base_args: dict[str, Any] | None = None, layer: str | None = None) -> UnimodalModel:
    """One encoder of model ``base`` with its own classifier (unimodal baseline).

    A built-in ``base`` gives its ``encoders[modality]``; a plug-in names the module that
    encodes ``modality`` (``layer``, as ``--embedding-layer`` does; it must take that input as
    it is), and its classifier is sized by the first forward.
    """
    model = create_model(base, num_classes=num_classes, model_args=dict(base_args or {}))
    if layer is not None:
        return UnimodalModel(modality, plugin_encoder(model, layer), None, num_classes)
    encoders = getattr(model, "encoders", None)
    if not isinstance(encoders, nn.ModuleDict):
        raise ModelError(f"{base!r} has no per-modality `encoders`",
                         hint="unimodal baselines need a model with one encoder per modality (built-in models)")
    if modality not in encoders:
        raise ModelError(f"{base!r} has no {modality!r} encoder", hint=f"it has {', '.join(encoders)}")
    dim = getattr(model, "embedding_dim", None)
    if not isinstance(dim, int):
        raise ModelError(f"{base!r} does not say its embedding size (embedding_dim)")
    return UnimodalModel(modality, encoders[modality], dim, num_classes)

