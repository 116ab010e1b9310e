"""Token ids: an integer modality is attributed where it becomes floating point, its embedding.

Gradients do not exist for integer inputs, so a text modality given as token ids is
attributed at the output of the embedding layer that consumes the ids. The layer is found
by running the model once with hooks on every ``nn.Embedding``: the one module that
receives the ids (the same tensor, or equal values) is it; several or none need
``--embedding-layer text=bert.embeddings.word_embeddings``. The reference ("removed") value
of a token modality is the embedding of a sequence of pad ids (``--pad-id``; default the
model config's ``pad_token_id`` when it has one, else 0): ablation, Shapley values and IG
replace ids by the pad id, never by a float. This is what captum's
``LayerIntegratedGradients`` computes with pad-id baselines.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from mmbalance.models import ModelAdapter
    >>> class Text(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.emb, self.fc = nn.Embedding(10, 4), nn.Linear(4, 2)
    ...     def forward(self, text):
    ...         return self.fc(self.emb(text).mean(1))
    >>> adapter = ModelAdapter(Text(), ["text"])
    >>> find_embedding_layers(adapter, {"text": torch.tensor([[1, 2], [3, 4]])}, ["text"])
    {'text': 'emb'}
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..errors import EstimatorError, UsageError
from .hooks import HookView

__all__ = ["find_embedding_layers", "integer_modalities", "pad_references", "resolve_pad_id"]

_EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)


def integer_modalities(inputs: Mapping[str, Tensor], modalities: Sequence[str]) -> tuple[str, ...]:
    """The modalities whose tensors hold integers (token ids), in ``modalities`` order.

    Example:
        >>> integer_modalities({"a": torch.zeros(1), "t": torch.zeros(1, dtype=torch.long)}, ["a", "t"])
        ('t',)
    """
    return tuple(m for m in modalities if not (inputs[m].is_floating_point() or inputs[m].is_complex()))


def resolve_pad_id(model: nn.Module, pad_id: int | None) -> int:
    """``pad_id`` when given, else the model config's ``pad_token_id`` when it has one, else 0.

    The config is the model's own or, for a wrapper, that of the first submodule with one (its
    ``text_config`` too, as CLIP keeps it there).
    """
    if pad_id is not None:
        if not isinstance(pad_id, int) or isinstance(pad_id, bool) or pad_id < 0:
            raise UsageError(f"--pad-id must be a non-negative token id, got {pad_id!r}")
        return pad_id
    root = getattr(model, "model", model)
    for module in root.modules():  # the model's own config first, then a wrapped model's
        config = getattr(module, "config", None)
        for cfg in (config, getattr(config, "text_config", None)):
            value = getattr(cfg, "pad_token_id", None)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return value
    return 0


def _same(ids: Tensor, seen: Any) -> bool:
    if not isinstance(seen, Tensor):
        return False
    if seen is ids:
        return True
    return (seen.numel() == ids.numel() and not seen.is_floating_point() and seen.device == ids.device
            and torch.equal(seen.reshape(-1).long(), ids.reshape(-1).long()))


def find_embedding_layers(adapter: nn.Module, inputs: Mapping[str, Tensor], tokens: Sequence[str],
                          named: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{modality: module path}`` of the embedding consuming each token modality's ids.

    ``named`` layers are taken as given; the others are found by one hooked forward on
    ``inputs`` (modalities and pass-through inputs). Raises :class:`EstimatorError` (exit 2
    in the CLI) when no ``nn.Embedding`` or more than one receives a modality's ids.
    """
    named = dict(named or {})
    out = {m: named[m] for m in tokens if m in named}
    wanted = [m for m in tokens if m not in out]
    if not wanted:
        return out
    root = getattr(adapter, "model", adapter)
    paths = {id(mod): path for path, mod in root.named_modules() if isinstance(mod, _EMBEDDINGS)}
    received: dict[str, list[str]] = {m: [] for m in wanted}
    handles = []
    for path, module in root.named_modules():
        if not isinstance(module, _EMBEDDINGS):
            continue

        def hook(mod: nn.Module, args: tuple[Any, ...], path: str = path) -> None:
            for m in wanted:
                if args and _same(inputs[m], args[0]) and path not in received[m]:
                    received[m].append(path)
        handles.append(module.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            adapter(dict(inputs))
    finally:
        for h in handles:
            h.remove()
    name = type(root).__name__
    for m in wanted:
        found = received[m]
        if len(found) == 1:
            out[m] = found[0]
            continue
        if not found:
            what = (f"no nn.Embedding of {name} receives the token ids of {m!r}" if paths else
                    f"{name} has no nn.Embedding to attribute the token ids of {m!r} at")
            raise EstimatorError(what + " (integer inputs have no gradients)",
                                 hint=f"name the module that turns them into vectors: --embedding-layer "
                                      f"{m}=dotted.path (see print(model)); --pass-through {m} if it is a mask "
                                      f"or lengths; or give {m!r} as floats")
        raise EstimatorError(f"{len(found)} embeddings of {name} receive the token ids of {m!r}: "
                             f"{', '.join(found)}", hint=f"name one: --embedding-layer {m}={found[0]}")
    return out


def pad_references(view: HookView, inputs: Mapping[str, Tensor], tokens: Sequence[str],
                   pad_id: int) -> dict[str, Tensor]:
    """The embeddings of pad-id sequences for the ``tokens`` modalities (their reference value)."""
    if not tokens:
        return {}
    padded = {**inputs, **{m: torch.full_like(inputs[m], pad_id) for m in tokens}}
    emb = view.encode(padded)
    return {m: emb[m] for m in tokens}

