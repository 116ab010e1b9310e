"""Per-modality embeddings in a training step, for built-in and plug-in models alike.

Regularizers that work on embeddings (``-r attribution`` at ``--level embedding``, ``-r
ogm-ge``, the embedding dropout of ``-r modality-dropout``) and the validation shares reach
them through the audit's :class:`~mmbalance.attribution.hooks.EmbeddingView`: a built-in
model's ``encode``/``fuse``, or, with ``--embedding-layer audio=audio_net,visual=visual_net``,
forward hooks on the named modules (no ``encode``/``fuse`` needed). In a training step the
view runs with ``grad=True``: the embeddings and logits stay differentiable, and the rest
of the model evaluated at substituted embeddings (``view.bind``) can be differentiated
twice.

Example:
    >>> import torch
    >>> from mmbalance.models import load_model
    >>> adapter = load_model("av-tiny", num_classes=3)
    >>> view = training_view(adapter, None)
    >>> x = {"audio": torch.randn(2, 1, 16, 16), "visual": torch.randn(2, 3, 2, 16, 16)}
    >>> emb, logits = view.encode_with_logits(x, grad=True)
    >>> sorted(branch_logits(adapter, view, x, emb)), logits.requires_grad
    (['audio', 'visual'], True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from ..attribution.hooks import EmbeddingView, EncodeFuseView, HookView, embedding_view, parse_embedding_layers
from ..attribution.tokens import find_embedding_layers, integer_modalities, resolve_pad_id
from ..errors import UsageError
from .differentiable import frozen_norm_stats

__all__ = ["TokenInputs", "branch_logits", "find_tokens", "training_view"]


@dataclass(frozen=True)
class TokenInputs:
    """A run's token-id modalities: the embedding layer of each, and the pad id that removes ids.

    Example:
        >>> TokenInputs({"text": "emb"}, pad_id=1).blank(torch.tensor([[5, 6]])).tolist()
        [[1, 1]]
    """

    layers: Mapping[str, str] = field(default_factory=dict)
    pad_id: int = 0

    def input_view(self, adapter: Any) -> HookView | None:
        """The input level's view: token ids at their embedding, the other modalities at the input."""
        return HookView(adapter, self.layers) if self.layers else None

    def blank(self, x: Tensor) -> Tensor:
        """What a removed modality becomes: zeros, or pad ids for token ids."""
        return torch.zeros_like(x) if x.is_floating_point() or x.is_complex() else torch.full_like(x, self.pad_id)


def find_tokens(adapter: Any, probe: Mapping[str, Tensor], layers: Mapping[str, str] | None = None,
                pad_id: int | None = None) -> TokenInputs:
    """The token-id modalities of ``probe`` (one batch: modalities and pass-through inputs), as the audit finds them.

    Each integer modality's embedding is ``layers[m]`` or the one ``nn.Embedding`` that
    receives its ids (:func:`~mmbalance.attribution.tokens.find_embedding_layers`); the pad
    id is ``pad_id`` or the model config's ``pad_token_id`` (else 0).

    Example:
        >>> find_tokens(adapter, {**batch.inputs, **batch.extra})  # doctest: +SKIP
        TokenInputs(layers={'text': 'emb'}, pad_id=0)
    """
    tokens = integer_modalities(probe, tuple(getattr(adapter, "modalities", ())))
    if not tokens:
        return TokenInputs()
    return TokenInputs(find_embedding_layers(adapter, probe, tokens, layers), resolve_pad_id(adapter, pad_id))


def training_view(adapter: Any, layers: Mapping[str, str] | str | None, *, needed_by: str | None = None,
                  tokens: TokenInputs | None = None) -> EmbeddingView | None:
    """The embedding view for training ``adapter``: hooks on ``layers`` when named, else encode/fuse.

    Token-id modalities (``tokens``) use their embedding layers unless ``layers`` names
    others. ``None`` when some modality has no embedding and nothing needs them; with
    ``needed_by`` (what needs them, e.g. ``"-r ogm-ge"``) that case raises
    :class:`UsageError` (exit 2) suggesting ``--embedding-layer``.

    Example:
        >>> from mmbalance.models import load_model
        >>> type(training_view(load_model("av-tiny", num_classes=3), None)).__name__
        'EncodeFuseView'
    """
    parsed = parse_embedding_layers(layers) if isinstance(layers, str) else layers
    full = {**(tokens.layers if tokens is not None else {}), **(parsed or {})}
    modalities = tuple(getattr(adapter, "modalities", ()))
    missing = [m for m in modalities if m not in full]
    if full and not missing:
        return embedding_view(adapter, full)
    if not full and getattr(adapter, "has_embeddings", False):
        return embedding_view(adapter)
    if needed_by is None:
        if parsed:
            HookView(adapter, full)  # a module that does not exist: one clear line
        return None
    name = type(getattr(adapter, "model", adapter)).__name__
    if full:
        HookView(adapter, full)  # a module that does not exist: one clear line first
        raise UsageError(f"{needed_by} needs each modality's embedding: --embedding-layer names no module for "
                         f"{', '.join(missing)}",
                         hint=f"add {missing[0]}=<module> to --embedding-layer; print(model) shows the module names")
    example = ",".join(f"{m}=<module>" for m in modalities) or "audio=<module>"
    raise UsageError(f"{needed_by} needs each modality's embedding, and {name} has no encode/fuse methods",
                     hint=f"name each modality's encoder module with --embedding-layer {example}; "
                          "print(model) shows the module names")


def branch_logits(adapter: Any, view: EmbeddingView, inputs: Mapping[str, Tensor],
                  embeddings: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Each modality's own logits ``{modality: (B, C)}`` (no gradients).

    An additive built-in head (``concat``/``sum``) splits its logits by modality. Any other
    model, built-in or hooked, is evaluated with the *other* modalities' embeddings replaced
    by zeros (the zero baseline): what the model predicts from this modality's embedding alone.
    Extra passes leave batch-norm statistics unchanged.

    Example:
        >>> parts = branch_logits(adapter, view, inputs, embeddings)  # doctest: +SKIP
    """
    emb = {m: e.detach() for m, e in embeddings.items()}
    with torch.no_grad():
        if isinstance(view, EncodeFuseView) and getattr(adapter, "has_branch_logits", False):
            return dict(adapter.branch_logits(emb))
        fuse = view.bind(inputs)
        out = {}
        with frozen_norm_stats(adapter if isinstance(adapter, nn.Module) else nn.Module()):
            for m in emb:
                alone = {k: (e if k == m else torch.zeros_like(e)) for k, e in emb.items()}
                out[m] = fuse(alone)
        return out
