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

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from ..attribution.hooks import EmbeddingView, EncodeFuseView, embedding_view, parse_embedding_layers
from ..errors import EstimatorError, UsageError
from .differentiable import frozen_norm_stats

__all__ = ["branch_logits", "training_view"]


def training_view(adapter: Any, layers: Mapping[str, str] | str | None, *,
                  needed_by: str | None = None) -> EmbeddingView | None:
    """The embedding view for training ``adapter``: hooks on ``layers`` when named, else encode/fuse.

    ``None`` when the model has neither and nothing needs embeddings; with ``needed_by``
    (what needs them, e.g. ``"-r ogm-ge"``) that case raises :class:`UsageError` (exit 2)
    suggesting ``--embedding-layer``.

    Example:
        >>> from mmbalance.models import load_model
        >>> type(training_view(load_model("av-tiny", num_classes=3), None)).__name__
        'EncodeFuseView'
    """
    parsed = parse_embedding_layers(layers) if isinstance(layers, str) else layers
    if parsed or getattr(adapter, "has_embeddings", False):
        return embedding_view(adapter, parsed)
    try:
        return embedding_view(adapter)  # whatever the view finds on its own
    except EstimatorError:
        if needed_by is None:
            return None
    name = type(getattr(adapter, "model", adapter)).__name__
    example = ",".join(f"{m}=<module>" for m in getattr(adapter, "modalities", ())) or "audio=<module>"
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
