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
import re
from typing import Any, Iterator, Mapping

import torch
from torch import Tensor, nn

from ..errors import EstimatorError, UsageError
from ._stems import constant_forward, patched_forwards
from .base import ForwardFn
from .rows import BatchForward

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
    """Any model: the outputs of named modules are the embeddings (see the module docstring).

    Modalities without a named layer stay at the input (a mixed level: token ids are
    attributed at their embedding, float modalities at the input). A path ending in ``[i]``
    names element ``i`` of a module's tuple output. Inputs given to :meth:`encode_with_logits`
    and :meth:`bind` may hold pass-through tensors besides the modalities.
    """

    kind = "hooks"

    def __init__(self, adapter: nn.Module, layers: Mapping[str, str]) -> None:
        self.adapter = adapter
        self.layers = dict(layers)
        root = getattr(adapter, "model", adapter)
        self.modules: dict[str, nn.Module] = {}
        self.element: dict[str, int | None] = {}
        for m, path in self.layers.items():
            base, index = split_element(path)
            self.modules[m] = resolve_module(root, base)
            self.element[m] = index
        self.modalities = tuple(getattr(adapter, "modalities", ()) or self.layers)
        self.at_input = tuple(m for m in self.modalities if m not in self.layers)
        self._rows: dict[str, int] = {}

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"via": self.kind, "layers": dict(self.layers)}
        if self.at_input:
            out["at_input"] = list(self.at_input)
        return out

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
            emb = _element(outputs[0], self.element[m], f"{m}={path}")
            if emb.dim() == 0 or emb.shape[0] % batch:
                raise EstimatorError(f"--embedding-layer {m}={path}: output shape {tuple(emb.shape)} has no "
                                     f"per-sample rows for a batch of {batch}",
                                     hint="name a module whose output has the batch as its first axis")
            self._rows[m] = emb.shape[0] // batch
            emb = emb if grad else emb.detach()
            out[m] = emb.reshape((batch, -1) + tuple(emb.shape[1:])) if self._rows[m] > 1 else emb
        for m in self.at_input:
            out[m] = inputs[m] if grad else inputs[m].detach()
        return {m: out[m] for m in self.modalities if m in out}, logits

    def bind(self, inputs: Mapping[str, Tensor]) -> ForwardFn:
        # everything but the attributed tensors (the hooked modalities' raw inputs, pass-through inputs)
        # follows its sample into every stacked copy
        context = {m: x.detach() for m, x in inputs.items() if m not in self.at_input}

        def forward(tensors: dict[str, Tensor], ctx: dict[str, Tensor]) -> Tensor:
            raw = {**ctx, **{m: tensors[m] for m in self.at_input}}
            with self._replacing({m: tensors[m] for m in self.modules}):
                return self.adapter(raw)

        return BatchForward(forward, context)

    @contextlib.contextmanager
    def _replacing(self, embeddings: Mapping[str, Tensor]) -> Iterator[None]:
        with patched_forwards() as patch:
            for m, module in self.modules.items():
                value = embeddings[m]
                if self._rows.get(m, 1) > 1:
                    value = value.reshape((-1,) + tuple(value.shape[2:]))
                index = self.element[m]
                value = value.clone()  # in-place operations must not touch the input
                patch(module, constant_forward(value) if index is None else
                      _replacing_element(module.forward, index, value))
            yield


def split_element(path: str) -> tuple[str, int | None]:
    """``"encoder[0]"`` → ``("encoder", 0)``; ``"encoder"`` → ``("encoder", None)``.

    Example:
        >>> split_element("text_model.embeddings[0]")
        ('text_model.embeddings', 0)
    """
    match = re.fullmatch(r"(.+?)\[(-?\d+)\]", path.strip())
    if match is None:
        return path.strip(), None
    return match.group(1), int(match.group(2))


def _element(output: Any, index: int | None, what: str) -> Tensor:
    if index is None:
        if isinstance(output, Tensor):
            return output
        hint = ("name one element of its output, e.g. --embedding-layer " + what + "[0]"
                if isinstance(output, (tuple, list)) or hasattr(output, "to_tuple") else
                "name a module whose output is one tensor")
        raise EstimatorError(f"--embedding-layer {what}: the module returns {type(output).__name__}, not a tensor",
                             hint=hint)
    items = output.to_tuple() if hasattr(output, "to_tuple") else output
    if not isinstance(items, (tuple, list)) or not -len(items) <= index < len(items):
        raise EstimatorError(f"--embedding-layer {what}: the module's output has no element {index}",
                             hint="[i] selects element i of a tuple output")
    value = items[index]
    if not isinstance(value, Tensor):
        raise EstimatorError(f"--embedding-layer {what}: element {index} of the module's output is "
                             f"{type(value).__name__}, not a tensor")
    return value


def _replacing_element(original: Any, index: int, value: Tensor) -> Any:
    """A forward that runs ``original`` and puts ``value`` in element ``index`` of its tuple output."""
    def forward(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        if hasattr(out, "to_tuple"):  # a Hugging Face ModelOutput: ordered keys
            keys = list(out.keys())
            out[keys[index]] = value
            return out
        items = list(out)
        items[index] = value
        return type(out)(items) if isinstance(out, list) else tuple(items)
    return forward


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
