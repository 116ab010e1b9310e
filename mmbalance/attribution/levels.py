"""Where each level's estimators work: plain inputs, hooked embeddings, or a mix of both.

* ``input``: float modalities at the model input; integer ones (token ids) at the output of
  the embedding that consumes them (a mixed level, see :mod:`mmbalance.attribution.tokens`).
* ``embedding``: every modality at its embedding (built-in ``encode``/``fuse``, or hooks on
  named modules; token modalities' layers are found automatically).

A :class:`LevelSpace` turns one batch (modalities plus pass-through inputs) into what an
estimator takes: the tensors to attribute, a forward over stacked copies of them that
carries each sample's pass-through inputs along, and the reference values (a token
modality's reference is the embedding of pad ids, whatever ``--baseline`` says).

Example:
    >>> import torch
    >>> from mmbalance.models import load_model
    >>> adapter = load_model("av-tiny", num_classes=2)
    >>> x = {"audio": torch.randn(2, 1, 16, 16), "visual": torch.randn(2, 3, 2, 16, 16)}
    >>> space = plan_space(adapter, "input", x, {})
    >>> tensors, forward, refs, logits = space.prepare(adapter, x, {}, None)
    >>> space.view is None, tuple(logits.shape)
    (True, (2, 2))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor

from ..errors import UsageError
from .base import ForwardFn
from .baselines import Baseline
from .hooks import EmbeddingView, HookView, embedding_view
from .rows import BatchForward
from .tokens import find_embedding_layers, integer_modalities, pad_references, resolve_pad_id

__all__ = ["LevelSpace", "plan_space"]


@dataclass
class LevelSpace:
    """One level's attribution space: a view (``None``: plain inputs), token modalities, pad id."""

    level: str
    view: EmbeddingView | None
    tokens: tuple[str, ...] = ()
    pad_id: int = 0

    def describe(self) -> dict[str, Any]:
        """What the audit JSON records (method params): how each modality is reached."""
        out: dict[str, Any] = {}
        if self.view is not None:
            out["embedding"] = self.view.describe()
        if self.tokens:
            layers = getattr(self.view, "layers", {})
            out["token_ids"] = {m: {"layer": layers.get(m), "pad_id": self.pad_id} for m in self.tokens}
            if self.level == "input":
                out["level_detail"] = "mixed: token ids at their embedding output, other modalities at the input"
        return out

    def prepare(self, adapter: Any, inputs: Mapping[str, Tensor], extra: Mapping[str, Tensor],
                baseline: Baseline | None) -> tuple[dict[str, Tensor], ForwardFn, dict[str, Tensor] | None, Tensor]:
        """``(tensors, forward, references, logits)`` for one batch.

        ``references`` is ``None`` when ``baseline`` is ``None`` and no token modality needs
        its pad reference (estimators then use their own baselines).
        """
        full = {**inputs, **extra}
        if self.view is None:
            with torch.no_grad():
                logits = adapter(full)
            tensors = dict(inputs)
            forward: ForwardFn = (BatchForward(lambda x, ctx: adapter({**x, **ctx}), dict(extra)) if extra
                                  else adapter)
        else:
            tensors, logits = self.view.encode_with_logits(full)
            forward = self.view.bind(full)
        refs = None
        if baseline is not None or self.tokens:
            refs = (baseline or Baseline("zero"))(tensors)
            if self.tokens:
                assert isinstance(self.view, HookView)
                refs.update(pad_references(self.view, full, self.tokens, self.pad_id))
        return tensors, forward, refs, logits


def plan_space(adapter: Any, level: str, probe: Mapping[str, Tensor], layers: Mapping[str, str] | None,
               pad_id: int | None = None) -> LevelSpace:
    """The space for ``level``, from one probe batch ``{modality and pass-through: tensor}``.

    Token modalities (integer tensors) get their embedding layer from ``layers`` or, failing
    that, from a hooked forward on ``probe``. At the input level, ``layers`` may only name
    token modalities.
    """
    modalities = tuple(getattr(adapter, "modalities", ()))
    tokens = integer_modalities(probe, modalities)
    named = dict(layers or {})
    if level == "input":
        floats = [m for m in named if m not in tokens]
        if floats:
            raise UsageError(f"--embedding-layer {', '.join(floats)}: at the input level only token-id "
                             "modalities are attributed at an embedding", hint="add --level embedding")
        if not tokens:
            return LevelSpace(level, None)
        found = find_embedding_layers(adapter, probe, tokens, named)
        return LevelSpace(level, HookView(adapter, found), tokens, resolve_pad_id(adapter, pad_id))
    if tokens:
        named.update(find_embedding_layers(adapter, probe, tokens, named))
    view = embedding_view(adapter, named or None)
    return LevelSpace(level, view, tokens, resolve_pad_id(adapter, pad_id) if tokens else 0)
