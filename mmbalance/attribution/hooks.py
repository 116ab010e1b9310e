"""Embedding level: reach each modality's encoder output where it enters the fusion.

At ``--level embedding`` an estimator sees ``{modality: embedding}`` and a forward that maps
embeddings to logits; it never runs the encoders again, which is what makes this level cheap.

* Built-in models (:class:`~mmbalance.models.FusionModel`) expose ``encode``/``fuse``:
  :class:`EncodeFuseView`.
* Any other model names the modules whose outputs are the embeddings
  (``--embedding-layer audio=audio_net,visual=visual_net``): :class:`HookView` records their
  outputs with forward hooks, and to evaluate the rest of the model at other embeddings it
  runs ``forward`` with those modules returning the given tensors instead of computing (name
  the whole encoder module so that nothing of it is recomputed).

Both run with gradients for training (``encode_with_logits(..., grad=True)``; the forward over
embeddings is differentiable), so ``finetune --embedding-layer`` regularizes plug-ins through them.
The model always continues with copies of the recorded or substituted tensors: in-place
operations after a named module change neither the record nor the given embeddings.

An embedding may have more rows than samples (a per-frame encoder gives ``B*T`` rows): the
view groups them by sample, ``(B, rows_per_sample, ...)``, and ungroups them for the model.

Example:
    >>> import torch
    >>> from mmbalance.models import load_model
    >>> adapter = load_model("av-tiny", num_classes=3)
    >>> view = embedding_view(adapter)
    >>> x = {"audio": torch.randn(2, 1, 16, 16), "visual": torch.randn(2, 3, 2, 16, 16)}
    >>> emb = view.encode(x)
    >>> tuple(emb["audio"].shape), tuple(view.bind(x)(emb).shape)
    ((2, 32), (2, 3))
"""

from __future__ import annotations

import contextlib
import difflib
from typing import Any, Iterator, Mapping

import torch
from torch import Tensor, nn

from ..errors import EstimatorError, UsageError
from ._stems import constant_forward, patched_forwards
from .base import ForwardFn

EMBEDDING_LAYER_HINT = "name each modality's encoder module: --embedding-layer audio=dotted.path,visual=dotted.path"


def parse_embedding_layers(value: str | Mapping[str, str] | None) -> dict[str, str] | None:
    """``"audio=a.net,visual=v.net"`` → ``{"audio": "a.net", "visual": "v.net"}``.

    Example:
        >>> parse_embedding_layers("audio=audio_net, visual=visual_net")
        {'audio': 'audio_net', 'visual': 'visual_net'}
    """
    if value is None or value == "":
        return None
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    out: dict[str, str] = {}
    for item in str(value).split(","):
        item = item.strip()
        if not item:
            continue
        mod, sep, path = item.partition("=")
        if not sep or not mod.strip() or not path.strip():
            raise UsageError(f"malformed --embedding-layer item {item!r}", hint=EMBEDDING_LAYER_HINT)
        if mod.strip() in out:
            raise UsageError(f"--embedding-layer names {mod.strip()!r} twice")
        out[mod.strip()] = path.strip()
    return out or None


def resolve_module(model: nn.Module, path: str, *, option: str = "--embedding-layer") -> nn.Module:
    """The submodule at dotted ``path``; a clear error naming close paths otherwise.

    Example:
        >>> resolve_module(nn.Sequential(nn.Linear(2, 2)), "0").out_features
        2
    """
    modules = dict(model.named_modules())
    if path in modules and path:
        return modules[path]
    close = difflib.get_close_matches(path, [n for n in modules if n], n=4, cutoff=0.5)
    top = [n for n in modules if n and "." not in n]
    hint = (f"did you mean {', '.join(close)}?" if close else
            f"top-level modules of {type(model).__name__}: {', '.join(top) or 'none'}")
    raise EstimatorError(f"{option}: {type(model).__name__} has no module {path!r}", hint=hint)


class EmbeddingView:
    """How to reach a model's embeddings: :meth:`encode` inputs, then :meth:`bind` a forward over embeddings."""

    kind = "view"

    def encode(self, inputs: Mapping[str, Tensor], *, grad: bool = False) -> dict[str, Tensor]:
        """``{modality: (B, ...)}`` embeddings of a batch (detached; with ``grad`` part of the autograd graph)."""
        return self.encode_with_logits(inputs, grad=grad)[0]

    def encode_with_logits(self, inputs: Mapping[str, Tensor], *, grad: bool = False
                           ) -> tuple[dict[str, Tensor], Tensor]:
        """The embeddings and the model's logits, from one forward pass.

        ``grad=True`` (a training step) keeps both differentiable w.r.t. the weights.
        """
        raise NotImplementedError

    def bind(self, inputs: Mapping[str, Tensor]) -> ForwardFn:
        """A forward taking ``{modality: embeddings}`` of this batch (or stacked copies of it) to logits."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What the audit JSON records about the view."""
        return {"via": self.kind}


class EncodeFuseView(EmbeddingView):
    """Built-in models: ``adapter.encode`` / ``adapter.fuse``."""

    kind = "encode/fuse"

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter

    def encode(self, inputs: Mapping[str, Tensor], *, grad: bool = False) -> dict[str, Tensor]:
        if grad:
            return dict(self.adapter.encode(inputs))
        with torch.no_grad():
            return {m: e.detach() for m, e in self.adapter.encode(inputs).items()}

    def encode_with_logits(self, inputs: Mapping[str, Tensor], *, grad: bool = False
                           ) -> tuple[dict[str, Tensor], Tensor]:
        emb = self.encode(inputs, grad=grad)
        with contextlib.nullcontext() if grad else torch.no_grad():
            return emb, self.adapter.fuse(emb)

    def bind(self, inputs: Mapping[str, Tensor]) -> ForwardFn:
        return self.adapter.fuse


class HookView(EmbeddingView):
    """Any model: the outputs of named modules are the embeddings (see the module docstring)."""

    kind = "hooks"

    def __init__(self, adapter: nn.Module, layers: Mapping[str, str]) -> None:
        self.adapter = adapter
        self.layers = dict(layers)
        root = getattr(adapter, "model", adapter)
        self.modules = {m: resolve_module(root, path) for m, path in self.layers.items()}
        self._rows: dict[str, int] = {}

    def describe(self) -> dict[str, Any]:
        return {"via": self.kind, "layers": dict(self.layers)}

    def encode_with_logits(self, inputs: Mapping[str, Tensor], *, grad: bool = False
                           ) -> tuple[dict[str, Tensor], Tensor]:
        batch = next(iter(inputs.values())).shape[0]
        seen: dict[str, list[Any]] = {m: [] for m in self.modules}
        handles = []
        for m, module in self.modules.items():
            def hook(mod: nn.Module, args: tuple[Any, ...], output: Any, m: str = m) -> Any:
                seen[m].append(output)
                # the model goes on with a copy: in-place operations after the module leave the record intact
                return output.clone() if isinstance(output, Tensor) else None
            handles.append(module.register_forward_hook(hook))
        try:
            with contextlib.nullcontext() if grad else torch.no_grad():
                logits = self.adapter(inputs)
        finally:
            for h in handles:
                h.remove()
        out = {}
        for m, outputs in seen.items():
            path = self.layers[m]
            if len(outputs) != 1:
                raise EstimatorError(f"--embedding-layer {m}={path}: the module ran {len(outputs)} times in one "
                                     f"forward pass, so it has no single embedding",
                                     hint="name a module that runs once per forward (the whole encoder)")
            emb = outputs[0]
            if not isinstance(emb, Tensor):
                raise EstimatorError(f"--embedding-layer {m}={path}: the module returns {type(emb).__name__}, "
                                     "not a tensor", hint="name a module whose output is one tensor")
            if emb.dim() == 0 or emb.shape[0] % batch:
                raise EstimatorError(f"--embedding-layer {m}={path}: output shape {tuple(emb.shape)} has no "
                                     f"per-sample rows for a batch of {batch}",
                                     hint="name a module whose output has the batch as its first axis")
            self._rows[m] = emb.shape[0] // batch
            emb = emb if grad else emb.detach()
            out[m] = emb.reshape((batch, -1) + tuple(emb.shape[1:])) if self._rows[m] > 1 else emb
        return out, logits

    def bind(self, inputs: Mapping[str, Tensor]) -> ForwardFn:
        batch = next(iter(inputs.values())).shape[0]
        raw = {m: x.detach() for m, x in inputs.items()}
        repeated: dict[int, dict[str, Tensor]] = {1: raw}

        def forward(embeddings: Mapping[str, Tensor]) -> Tensor:
            n = next(iter(embeddings.values())).shape[0]
            if n % batch:
                raise EstimatorError(f"embeddings of {n} rows do not stack copies of a batch of {batch}")
            copies = n // batch
            if copies not in repeated:
                repeated[copies] = {m: x.repeat((copies,) + (1,) * (x.dim() - 1)) for m, x in raw.items()}
            with self._replacing(embeddings):
                return self.adapter(repeated[copies])

        return forward

    @contextlib.contextmanager
    def _replacing(self, embeddings: Mapping[str, Tensor]) -> Iterator[None]:
        with patched_forwards() as patch:
            for m, module in self.modules.items():
                value = embeddings[m]
                if self._rows.get(m, 1) > 1:
                    value = value.reshape((-1,) + tuple(value.shape[2:]))
                patch(module, constant_forward(value.clone()))  # in-place operations must not touch the input
            yield


def embedding_view(adapter: Any, layers: Mapping[str, str] | str | None = None) -> EmbeddingView:
    """The view for ``adapter``: hooks when ``layers`` are named, else the built-in encode/fuse.

    Raises :class:`EstimatorError` (exit 2 in the CLI) when a plug-in names no layers, names
    them for only some modalities, or names a module that does not exist.
    """
    layers = parse_embedding_layers(layers) if isinstance(layers, str) else layers
    modalities = tuple(getattr(adapter, "modalities", ()))
    if layers:
        unknown = [m for m in layers if modalities and m not in modalities]
        if unknown:
            raise UsageError(f"--embedding-layer names unknown modalit{'y' if len(unknown) == 1 else 'ies'} "
                             f"{', '.join(unknown)}; the model takes {', '.join(modalities)}")
        missing = [m for m in modalities if m not in layers]
        if missing:
            raise EstimatorError(f"--embedding-layer names no module for {', '.join(missing)}",
                                 hint=EMBEDDING_LAYER_HINT)
        return HookView(adapter, layers)
    if getattr(adapter, "has_embeddings", False):
        return EncodeFuseView(adapter)
    name = type(getattr(adapter, "model", adapter)).__name__
    raise EstimatorError(f"--level embedding: {name} does not say where its modality embeddings enter the fusion",
                         hint=EMBEDDING_LAYER_HINT + " (see print(model) for the module names), or use --level input")
