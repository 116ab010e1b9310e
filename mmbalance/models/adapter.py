"""Wrap any multimodal model so mmbalance can call it with ``{modality: tensor}``.

Third-party models need no edits: :class:`ModelAdapter` decides how to call ``forward``
(positional in modality order, or by keyword) and where the logits are in what comes back
(a tensor, an element of a tuple/list, or a dict entry).

Example:
    >>> import torch
    >>> from torch import nn
    >>> class AVClassifier(nn.Module):           # OGM-GE style: returns (a, v, logits)
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = nn.Linear(8, 3)
    ...     def forward(self, audio, visual):
    ...         a, v = audio.flatten(1), visual.flatten(1)
    ...         return a, v, self.fc(torch.cat([a, v], 1))
    >>> m = ModelAdapter(AVClassifier(), ["audio", "visual"])
    >>> m({"audio": torch.randn(2, 4), "visual": torch.randn(2, 4)}).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast

from torch import Tensor, nn

from ..errors import EstimatorError, ModelError, UsageError
from ._registry import one_line

__all__ = ["CALL_STYLES", "ModelAdapter", "check_modalities", "model_input_names"]

CALL_STYLES = ("auto", "positional", "keyword", "dict")

_FORWARD_ERRORS = (RuntimeError, TypeError, ValueError, IndexError, KeyError)


class _EmbeddingModel(Protocol):
    """What a model with per-modality embeddings provides (checked at run time by ``has_embeddings``)."""

    def encode(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]: ...

    def fuse(self, embeddings: Mapping[str, Tensor]) -> Tensor: ...

    def branch_logits(self, embeddings: Mapping[str, Tensor]) -> dict[str, Tensor]: ...


def _forward_parameters(model: nn.Module) -> list[inspect.Parameter] | None:
    try:
        return list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return None


def model_input_names(model: nn.Module) -> tuple[str, ...] | None:
    """The modality names ``model`` takes: its ``modalities`` attribute, else ``None`` (unknown)."""
    mods = getattr(model, "modalities", None)
    if isinstance(mods, (tuple, list)) and mods and all(isinstance(m, str) for m in mods):
        return tuple(mods)
    return None


class ModelAdapter(nn.Module):
    """Call ``model`` with ``{modality: tensor}`` and return logits ``(B, C)``.

    Args:
        model: any ``nn.Module`` taking one tensor per modality.
        modalities: modality names, in the order of ``forward``'s positional parameters.
        call: ``"positional"`` (``model(*tensors)`` in modality order), ``"keyword"``
            (``model(**{modality: tensor})``), ``"dict"`` (``model({modality: tensor, ...})``,
            one mapping holding the modalities and pass-through inputs) or ``"auto"``: keyword
            when every modality name is a parameter of ``forward``, dict when ``forward`` takes
            one parameter annotated as a dict/Mapping, else positional.
        output: where the logits are when ``forward`` does not return a tensor: an index for a
            tuple/list (default: the last element, as OGM-GE's ``(a, v, out)``), a key for a
            dict (default: ``"logits"``). Objects with a ``logits`` attribute also work.
        num_classes: the number of classes when known (else read from ``model.num_classes``
            or the last output).
        pass_through: names of inputs given to ``forward`` with each sample but never
            attributed (attention masks, lengths); by keyword, or in the dict with ``call="dict"``.

    Example:
        >>> import torch
        >>> from mmbalance.models import create_model
        >>> m = ModelAdapter(create_model("av-tiny", num_classes=2), ["audio", "visual"])
        >>> m.call_style, m.has_embeddings
        ('keyword', True)
    """

    def __init__(self, model: nn.Module, modalities: Sequence[str], call: str = "auto",
                 output: str | int | None = None, *, num_classes: int | None = None,
                 pass_through: Sequence[str] = ()) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise ModelError(f"expected a torch.nn.Module to wrap, got {type(model).__name__}")
        if isinstance(modalities, str):
            modalities = [m.strip() for m in modalities.split(",") if m.strip()]
        mods = tuple(modalities)
        if not mods or not all(isinstance(m, str) and m for m in mods):
            raise UsageError(f"modalities must be non-empty names, got {list(mods)}",
                             hint="give --modalities as comma-separated names, e.g. audio,visual")
        if len(set(mods)) != len(mods):
            raise UsageError(f"modalities repeat a name: {', '.join(mods)}")
        if call not in CALL_STYLES:
            raise UsageError(f"unknown call style {call!r}", hint=f"use one of {', '.join(CALL_STYLES)}")
        if output is not None and not isinstance(output, (str, int)):
            raise UsageError(f"output must be a tuple index or a dict key, got {output!r}")
        extra = tuple(pass_through)
        clash = [p for p in extra if p in mods]
        if clash:
            raise UsageError(f"{', '.join(clash)} cannot be both a modality and a pass-through input")
        self.model = model
        self._modalities = mods
        self.pass_through = extra
        self.output = output
        self._num_classes = num_classes
        self.call_style = self._resolve_call(call)

    # -- calling ---------------------------------------------------------------------------

    def _resolve_call(self, call: str) -> str:
        params = _forward_parameters(self.model)
        if params is None:
            return "positional" if call == "auto" else call
        names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params)
        if call == "auto":
            call = ("keyword" if set(self._modalities) <= names else
                    "dict" if _takes_one_mapping(params) else "positional")
        if call != "dict":
            unknown = [p for p in self.pass_through if p not in names]
            if unknown and not takes_kwargs:
                raise ModelError(f"{type(self.model).__name__}.forward has no parameter named {', '.join(unknown)} "
                                 f"for --pass-through; it takes {', '.join(sorted(names)) or 'none by name'}",
                                 hint="name forward's parameters in --pass-through, or use --call dict")
        if call == "positional":
            positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            takes_var = any(p.kind is p.VAR_POSITIONAL for p in params)
            required = [p for p in positional if p.default is p.empty]
            if not takes_var and len(positional) < len(self._modalities):
                hint = ("if forward takes one dict of every input, use --call dict" if len(positional) == 1 else
                        "set --modalities to the model's inputs, in forward's order")
                raise ModelError(f"{type(self.model).__name__}.forward takes {len(positional)} positional "
                                 f"input(s) but {len(self._modalities)} modalities were given "
                                 f"({', '.join(self._modalities)})", hint=hint)
            if len(required) > len(self._modalities):
                raise ModelError(f"{type(self.model).__name__}.forward needs {len(required)} inputs "
                                 f"({', '.join(p.name for p in required)}) but only "
                                 f"{len(self._modalities)} modalities were given ({', '.join(self._modalities)})",
                                 hint="set --modalities to the model's inputs, in forward's order")
        elif call == "keyword":
            unknown = [m for m in self._modalities if m not in names]
            if unknown and not takes_kwargs:
                raise ModelError(f"{type(self.model).__name__}.forward has no parameter named "
                                 f"{', '.join(unknown)}; it takes {', '.join(sorted(names)) or 'none by name'}",
                                 hint="rename --modalities to forward's parameter names or use positional calls")
        return call

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names in input order."""
        return self._modalities

    @property
    def num_classes(self) -> int | None:
        """Number of classes: given, ``model.num_classes``, or the width of the last logits seen."""
        if self._num_classes is not None:
            return self._num_classes
        value = getattr(self.model, "num_classes", None)
        return value if isinstance(value, int) else None

    def _inputs(self, inputs: Mapping[str, Tensor]) -> list[Tensor]:
        missing = [m for m in self._modalities if m not in inputs]
        if missing:
            raise ModelError(f"inputs lack modalit{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)}; "
                             f"got {', '.join(inputs) or 'none'}",
                             hint="set --modalities to names the dataset provides")
        return [inputs[m] for m in self._modalities]

    def _describe(self, tensors: Sequence[Any]) -> str:
        parts = []
        for m, t in zip(self._modalities, tensors):
            shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            parts.append(f"{m}: {shape}")
        return "{" + ", ".join(parts) + "}"

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """Logits ``(B, C)`` for a batch ``{modality: tensor}`` (plus its pass-through inputs)."""
        tensors = self._inputs(inputs)
        missing = [p for p in self.pass_through if p not in inputs]
        if missing:
            raise ModelError(f"inputs lack pass-through input(s) {', '.join(missing)}; got {', '.join(inputs)}",
                             hint="the dataset must hold them (its \"extra\" mapping or its inputs)")
        extra = {p: inputs[p] for p in self.pass_through}
        try:
            if self.call_style == "keyword":
                out = self.model(**dict(zip(self._modalities, tensors)), **extra)
            elif self.call_style == "dict":
                out = self.model({**dict(zip(self._modalities, tensors)), **extra})
            else:
                out = self.model(*tensors, **extra)
        except ModelError:
            raise
        except _FORWARD_ERRORS as err:
            raise ModelError(f"model forward failed on inputs {self._describe(tensors)}: {one_line(err)}",
                             hint="check --modalities (names and order) and that input sizes suit the model") from err
        logits = self._select_output(out)
        batch = tensors[0].shape[0] if tensors and isinstance(tensors[0], Tensor) and tensors[0].dim() else None
        if batch is not None and logits.shape[0] != batch:
            raise ModelError(f"model returned logits of shape {tuple(logits.shape)} for a batch of {batch}",
                             hint="the logits must be (batch, classes); choose another output with --output")
        if self._num_classes is None and getattr(self.model, "num_classes", None) is None:
            self._num_classes = int(logits.shape[1])
        return logits

    def _select_output(self, out: Any) -> Tensor:
        what = _kind(out)
        if isinstance(out, Tensor):
            if self.output is not None:
                raise ModelError(f"--output {self.output!r} was given but the model returned a single tensor",
                                 hint="drop --output")
            logits = out
        elif isinstance(out, (tuple, list)):
            index = self.output if self.output is not None else -1
            if isinstance(index, str):
                try:
                    index = int(index)
                except ValueError:
                    raise ModelError(f"model returned {what}; --output {index!r} is not an index",
                                     hint="give --output an integer index into the tuple") from None
            if not -len(out) <= index < len(out):
                raise ModelError(f"model returned {what}; --output {index} is out of range",
                                 hint=f"give --output an index from 0 to {len(out) - 1}")
            logits = out[index]
            what = f"element {index} of {what}"
        elif isinstance(out, Mapping):
            key = self.output if self.output is not None else ("logits" if "logits" in out else None)
            if key is None:
                raise ModelError(f"model returned {what} without a 'logits' key",
                                 hint=f"choose the logits with --output, one of {', '.join(map(str, out))}")
            if key not in out:
                raise ModelError(f"model returned {what}; it has no key {key!r}",
                                 hint=f"give --output one of {', '.join(map(str, out))}")
            logits = out[key]
            what = f"key {key!r} of {what}"
        elif isinstance(getattr(out, "logits", None), Tensor) and self.output is None:
            logits = out.logits
        else:
            raise ModelError(f"model returned {what}, not logits",
                             hint="the model must return a tensor, a tuple/list or a dict; pick the logits "
                                  "with --output")
        if not isinstance(logits, Tensor):
            raise ModelError(f"{what} is {_kind(logits)}, not a logits tensor",
                             hint="choose the element holding the logits with --output")
        if logits.dim() != 2:
            raise ModelError(f"{what} has shape {tuple(logits.shape)}; logits must be 2-D (batch, classes)",
                             hint="choose the element holding the logits with --output")
        return logits

    # -- embeddings (for estimators) -------------------------------------------------------

    @property
    def has_embeddings(self) -> bool:
        """Whether the wrapped model exposes ``encode``/``fuse`` (built-in :class:`FusionModel` s)."""
        return callable(getattr(self.model, "encode", None)) and callable(getattr(self.model, "fuse", None))

    @property
    def has_branch_logits(self) -> bool:
        """Whether per-modality logits are available (``concat``/``sum`` fusion)."""
        if not self.has_embeddings or not callable(getattr(self.model, "branch_logits", None)):
            return False
        return bool(getattr(self.model, "has_branch_logits", True))

    def _need_embeddings(self, what: str) -> None:
        if not self.has_embeddings:
            raise EstimatorError(f"{type(self.model).__name__} exposes no per-modality embeddings ({what})",
                                 hint="use a built-in model (see `mmbalance models`) or an estimator that "
                                      "needs only inputs and logits")

    def encode(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Per-modality embeddings ``{modality: (B, D)}``, exactly what enters fusion."""
        self._need_embeddings("encode")
        return cast(_EmbeddingModel, self.model).encode(dict(zip(self._modalities, self._inputs(inputs))))

    def fuse(self, embeddings: Mapping[str, Tensor]) -> Tensor:
        """Logits ``(B, C)`` from embeddings returned by :meth:`encode`."""
        self._need_embeddings("fuse")
        return cast(_EmbeddingModel, self.model).fuse(embeddings)

    def branch_logits(self, embeddings: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Each modality's own contribution to the logits (``concat``/``sum`` fusion only)."""
        if not self.has_branch_logits:
            self._need_embeddings("branch_logits")
            fusion = getattr(self.model, "fusion", None)
            name = type(fusion).__name__ if fusion is not None else type(self.model).__name__
            raise EstimatorError(f"{name} does not split its logits by modality",
                                 hint="use fusion=concat or fusion=sum, or another estimator")
        return cast(_EmbeddingModel, self.model).branch_logits(embeddings)

    def extra_repr(self) -> str:
        more = f", pass_through={self.pass_through}" if self.pass_through else ""
        return f"modalities={self._modalities}, call={self.call_style!r}, output={self.output!r}{more}"


def _takes_one_mapping(params: Sequence[inspect.Parameter]) -> bool:
    """Whether ``forward`` takes exactly one input, annotated as a dict or mapping."""
    inputs = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    if len(inputs) != 1 or any(p.kind is p.VAR_POSITIONAL for p in params):
        return False
    note = inputs[0].annotation
    text = note if isinstance(note, str) else getattr(note, "__name__", str(note))
    return any(word in str(text).lower() for word in ("dict", "mapping"))


def _kind(obj: Any) -> str:
    if isinstance(obj, Tensor):
        return f"a tensor of shape {tuple(obj.shape)}"
    if isinstance(obj, (tuple, list)):
        inner = ", ".join(_short(x) for x in obj[:6]) + (", ..." if len(obj) > 6 else "")
        return f"a {type(obj).__name__} of {len(obj)} ({inner})"
    if isinstance(obj, Mapping):
        inner = ", ".join(f"{k!r}: {_short(v)}" for k, v in list(obj.items())[:8])
        return f"a dict {{{inner}{', ...' if len(obj) > 8 else ''}}}"
    return f"a {type(obj).__name__}"


def _short(obj: Any) -> str:
    return f"tensor{tuple(obj.shape)}" if isinstance(obj, Tensor) else type(obj).__name__


def check_modalities(adapter: ModelAdapter, dataset_modalities: Sequence[str]) -> None:
    """Raise :class:`ModelError` when the model and the dataset disagree on modality names.

    The model's names come from ``model.modalities`` (built-ins) or, for keyword calls, from
    ``forward``'s parameters; every one must also be in ``dataset_modalities``.

    Example:
        >>> from mmbalance.models import load_model
        >>> check_modalities(load_model("av-tiny", num_classes=2), ["audio", "visual"])
    """
    data = tuple(dataset_modalities)
    takes = model_input_names(adapter.model)
    if takes is None and adapter.call_style == "keyword":
        params = _forward_parameters(adapter.model) or []
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            takes = tuple(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    name = type(adapter.model).__name__
    if takes is not None:
        unknown = [m for m in adapter.modalities if m not in takes]
        if unknown:
            raise ModelError(f"{name} does not take modalit{'y' if len(unknown) == 1 else 'ies'} "
                             f"{', '.join(unknown)}; it takes {', '.join(takes)}",
                             hint="set --modalities to the model's input names")
    missing = [m for m in adapter.modalities if m not in data]
    if missing:
        raise ModelError(f"{name} needs modalit{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)} "
                         f"that the dataset lacks (it has {', '.join(data) or 'none'})",
                         hint="use a dataset with these modalities or set --modalities")
