"""The balancing methods of ``finetune`` as three lines in your own training loop.

:class:`AttributionPenalty` is ``finetune -r attribution``'s penalty and
:class:`AuxHeads` is ``--aux-heads``, run step by step in a loop you own (plain PyTorch,
Lightning, the Hugging Face ``Trainer``, accelerate). Both build the same
:class:`~mmbalance.training.regularizers.Regularizer` that ``finetune`` builds and call its
``step``: one implementation, so an epoch through the library equals an epoch of
``mmbalance finetune`` on the same seed and data. Settings left at ``None`` take
``finetune``'s defaults (:class:`~mmbalance.training.TrainConfig`).

The model is any ``nn.Module`` taking one tensor per modality (built-in models know their
embeddings; a plug-in names its encoder modules with ``embedding_layers``).
:func:`modality_shares` measures the shares of a model on held-out batches, the number the
framework callbacks (:mod:`mmbalance.integrations`) log.

Example:
    >>> import torch, torch.nn.functional as F
    >>> from mmbalance.models import create_model
    >>> model = create_model("av-tiny", num_classes=3)
    >>> pen = AttributionPenalty(model, target="equal")
    >>> audio, visual, y = torch.randn(4, 1, 16, 16), torch.randn(4, 3, 2, 16, 16), torch.tensor([0, 1, 2, 0])
    >>> logits, penalty = pen(audio, visual, labels=y)
    >>> loss = F.cross_entropy(logits, y) + 1.0 * penalty
    >>> loss.backward()
    >>> sorted(pen.last_shares), penalty.requires_grad
    (['audio', 'visual'], True)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..errors import UsageError
from ..models.adapter import ModelAdapter, model_input_names
from ..results import imbalance_figures
from .config import TrainConfig
from .differentiable import AttributionSpec, modality_scores, soft_shares
from .embeddings import TokenInputs, find_tokens, training_view
from .regularizers import Regularizer, StepOutput, build_regularizer

__all__ = ["AttributionPenalty", "AuxHeads", "balance_figures", "modality_shares"]

Layers = Mapping[str, "str | nn.Module"]

# The per-step options and the TrainConfig fields they set (None: finetune's default).
_SETTINGS = {"level": "level", "method": "attribution", "steps": "attr_steps", "pool": "pool",
             "penalty": "penalty", "scope": "scope", "target": "target", "weight": "aux_weight"}


def _defaults() -> TrainConfig:
    return TrainConfig(model="", data="", out="")


def _layer_paths(model: nn.Module, layers: Layers | str | None) -> dict[str, str] | None:
    """``{modality: dotted path}`` from paths or from the modules themselves (``model.audio_net``)."""
    if layers is None or isinstance(layers, str):
        from ..attribution.hooks import parse_embedding_layers
        return parse_embedding_layers(layers)
    names = {id(module): name for name, module in model.named_modules() if name}
    out: dict[str, str] = {}
    for m, value in layers.items():
        if isinstance(value, nn.Module):
            if id(value) not in names:
                raise UsageError(f"embedding_layers[{m!r}] is a {type(value).__name__} that is not a submodule of "
                                 f"{type(model).__name__}", hint="pass a module of the model, or its dotted name")
            out[str(m)] = names[id(value)]
        else:
            out[str(m)] = str(value)
    return out


class _InLoop:
    """One ``finetune`` regularizer run step by step in the caller's loop (see the module docstring)."""

    _regularizer = "none"
    _extra: dict[str, Any] = {}

    def __init__(self, model: nn.Module, *, embedding_layers: Layers | str | None = None,
                 modalities: Sequence[str] | None = None, pass_through: Sequence[str] = (), call: str = "auto",
                 output: str | int | None = None, num_classes: int | None = None, pad_id: int | None = None,
                 **settings: Any) -> None:
        if not isinstance(model, nn.Module):
            raise UsageError(f"expected a torch.nn.Module, got {type(model).__name__}")
        inner = model.model if isinstance(model, ModelAdapter) else model
        layers = _layer_paths(inner, embedding_layers)
        mods = tuple(modalities or model_input_names(inner) or (layers or {}))
        if not mods:
            raise UsageError(f"{type(inner).__name__} does not say which modalities it takes",
                             hint="pass modalities=[...] in the order its forward takes them")
        self.adapter = model if isinstance(model, ModelAdapter) else ModelAdapter(
            model, mods, call=call, output=output, num_classes=num_classes, pass_through=tuple(pass_through))
        fields = {_SETTINGS[k]: v for k, v in settings.items() if k in _SETTINGS and v is not None}
        unknown = [k for k in settings if k not in _SETTINGS]
        if unknown:
            raise UsageError(f"unknown setting {', '.join(unknown)}", hint=f"use some of {', '.join(_SETTINGS)}")
        self.config = dataclasses.replace(_defaults(), model=type(inner).__name__, embedding_layers=layers,
                                          pad_id=pad_id, call=call, regularizer=self._regularizer,
                                          lambda_=1.0, lambda_warmup=0, **self._extra, **fields)
        self.config.validate(self.adapter.modalities)
        self.regularizer: Regularizer = build_regularizer(self.config, self.adapter.modalities)
        self.regularizer.begin_epoch(1)
        self._ready = False
        self.last_shares: dict[str, float] = {}

    @property
    def modalities(self) -> tuple[str, ...]:
        """The model's modalities, in the order positional inputs are taken."""
        return self.adapter.modalities

    def _inputs(self, args: Sequence[Any], kwargs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        if len(args) == 1 and isinstance(args[0], Mapping):
            inputs = dict(args[0])
        else:
            if len(args) != len(self.modalities):
                raise UsageError(f"expected {len(self.modalities)} inputs ({', '.join(self.modalities)}), got "
                                 f"{len(args)}", hint="pass one tensor per modality, in that order, or one dict")
            inputs = dict(zip(self.modalities, args))
        unknown = [k for k in kwargs if k not in self.adapter.pass_through]
        if unknown:
            raise UsageError(f"unexpected keyword input(s) {', '.join(unknown)}",
                             hint="name the model's extra inputs with pass_through=[...]")
        return {**inputs, **kwargs}

    def _setup(self, inputs: Mapping[str, Tensor]) -> None:
        reg = self.regularizer
        reg.tokens = find_tokens(self.adapter, inputs, self.config.embedding_layers, self.config.pad_id)
        reg.check(self.adapter, training_view(self.adapter, self.config.embedding_layers, tokens=reg.tokens,
                                              needed_by=reg.needs_embeddings()), probe=inputs)
        self._ready = True

    def _step(self, args: Sequence[Any], labels: Tensor | None, kwargs: Mapping[str, Tensor]) -> StepOutput:
        if labels is None:
            raise UsageError("labels are needed: pass labels=y (the penalty attributes the true class)")
        inputs = self._inputs(args, kwargs)
        if not self._ready:
            self._setup(inputs)
        out = self.regularizer.step(self.adapter, inputs, labels)
        if out.shares is not None:
            self.last_shares = dict(zip(self.modalities, (float(v) for v in out.shares)))
        return out

    def shares(self, batches: Iterable[Any], *, limit: int | None = None) -> dict[str, float]:
        """Mean modality shares of the model on ``batches`` (see :func:`modality_shares`), measured as the penalty does."""
        return modality_shares(self.adapter, batches, view=self.regularizer.view, spec=_spec(self.config),
                               tokens=self.regularizer.tokens, limit=limit)


def _spec(config: TrainConfig) -> AttributionSpec:
    return AttributionSpec(method=config.attribution, level=config.level, steps=config.attr_steps, pool=config.pool)


class AttributionPenalty(_InLoop):
    """``finetune -r attribution``'s penalty in your loop: ``logits, penalty = pen(*inputs, labels=y)``.

    ``penalty`` is the differentiable share penalty ``R`` of the batch (unweighted: the loss is
    ``CE + lambda * R``); ``logits`` come from the same forward. Options are those of
    ``finetune`` that make sense per step: ``level`` (``embedding``/``input``), ``method``
    (``gradxinput``/``ig``), ``steps``, ``pool``, ``penalty`` (``l1``/``l2``/``kl``),
    ``scope`` (``fusion``/``all``), ``target`` (``"equal"`` or ``{"audio": 0.3, ...}``);
    ``embedding_layers`` names a plug-in's encoders (modules or dotted names),
    ``pass_through`` its extra keyword inputs, ``call="dict"`` a model taking one dict.
    Inputs are one tensor per modality in order, or one dict. No graph or hook outlives the
    step; ``last_shares`` holds the batch's mean shares as floats.

    Example:
        >>> pen = AttributionPenalty(model, embedding_layers={"audio": model.audio_net,
        ...                          "visual": model.visual_net})  # doctest: +SKIP
        >>> logits, penalty = pen(audio, visual, labels=y)  # doctest: +SKIP
    """

    _regularizer = "attribution"

    def __init__(self, model: nn.Module, *, embedding_layers: Layers | str | None = None, target: Any = None,
                 level: str | None = None, method: str | None = None, steps: int | None = None,
                 pool: str | None = None, penalty: str | None = None, scope: str | None = None,
                 modalities: Sequence[str] | None = None, pass_through: Sequence[str] = (), call: str = "auto",
                 output: str | int | None = None, num_classes: int | None = None,
                 pad_id: int | None = None) -> None:
        if isinstance(target, Mapping):
            target = ",".join(f"{k}={v}" for k, v in target.items())
        super().__init__(model, embedding_layers=embedding_layers, modalities=modalities, pass_through=pass_through,
                         call=call, output=output, num_classes=num_classes, pad_id=pad_id, target=target,
                         level=level, method=method, steps=steps, pool=pool, penalty=penalty, scope=scope)

    def __call__(self, *inputs: Any, labels: Tensor | None = None, **pass_through: Tensor) -> tuple[Tensor, Tensor]:
        out = self._step(inputs, labels, pass_through)
        assert out.term is not None  # lambda is 1 inside: the term is always differentiable
        return out.logits, out.term


class AuxHeads(_InLoop):
    """``--aux-heads`` in your loop: a Linear classifier on each modality's embedding.

    ``logits, aux_loss = aux(*inputs, labels=y)``; ``aux_loss = weight * sum_m CE(head_m(e_m), y)``
    trains each encoder on its own. The heads are parameters of their own: give
    ``aux.parameters()`` to the optimizer with the model's. A built-in model sizes them at
    once; a plug-in (``embedding_layers``) needs one batch, ``example=(audio, visual)`` (or a dict).

    Example:
        >>> aux = AuxHeads(model, embedding_layers="audio=audio_net,visual=visual_net",
        ...                example=(audio, visual))  # doctest: +SKIP
        >>> opt = torch.optim.Adam([*model.parameters(), *aux.parameters()])  # doctest: +SKIP
    """

    _regularizer = "none"
    _extra = {"aux_heads": True}

    def __init__(self, model: nn.Module, *, embedding_layers: Layers | str | None = None,
                 weight: float | None = None, example: Any = None, modalities: Sequence[str] | None = None,
                 pass_through: Sequence[str] = (), call: str = "auto", output: str | int | None = None,
                 num_classes: int | None = None, pad_id: int | None = None) -> None:
        super().__init__(model, embedding_layers=embedding_layers, modalities=modalities, pass_through=pass_through,
                         call=call, output=output, num_classes=num_classes, pad_id=pad_id, weight=weight)
        if example is not None:
            args = (example,) if isinstance(example, Mapping) else tuple(example)
            self._setup(self._inputs(args, {}))
        elif getattr(self.adapter, "has_embeddings", False) and not embedding_layers:
            self._setup({})

    def _setup(self, inputs: Mapping[str, Tensor]) -> None:
        if not inputs:  # a built-in model: sized from its fusion head
            self.regularizer.check(self.adapter, training_view(self.adapter, None, needed_by="--aux-heads"))
            self._ready = True
            return
        super()._setup(inputs)

    @property
    def heads(self) -> nn.Module:
        """The heads (an ``nn.Module``: move, save and load it with the model)."""
        if self.regularizer.aux is None:
            raise UsageError("the auxiliary heads are sized by one forward",
                             hint="pass example=(one batch of inputs) when building AuxHeads")
        return self.regularizer.aux

    def parameters(self) -> Iterable[nn.Parameter]:
        """The heads' parameters, for the optimizer."""
        return self.heads.parameters()

    def __call__(self, *inputs: Any, labels: Tensor | None = None, **pass_through: Tensor) -> tuple[Tensor, Tensor]:
        out = self._step(inputs, labels, pass_through)
        assert out.aux is not None
        return out.logits, out.aux


def _split_batch(batch: Any, modalities: Sequence[str], pass_through: Sequence[str]
                 ) -> tuple[dict[str, Tensor], Tensor]:
    """``(inputs, labels)`` from a tuple ``(*modalities, labels)`` or a dict with ``labels``/``label``."""
    if isinstance(batch, Mapping):
        key = "labels" if "labels" in batch else "label" if "label" in batch else None
        if key is None:
            raise UsageError(f"a batch dict needs a 'labels' key; it has {', '.join(map(str, batch))}")
        names = [*modalities, *pass_through]
        missing = [m for m in names if m not in batch]
        if missing:
            raise UsageError(f"the batch has no {', '.join(missing)}; it has {', '.join(map(str, batch))}")
        return {m: batch[m] for m in names}, batch[key]
    if isinstance(batch, (tuple, list)) and len(batch) == len(modalities) + 1:
        return dict(zip(modalities, batch[:-1])), batch[-1]
    raise UsageError(f"cannot read a batch of type {type(batch).__name__}",
                     hint=f"yield ({', '.join(modalities)}, labels) tuples or dicts with those keys and 'labels'")


def modality_shares(model: nn.Module, batches: Iterable[Any], *, embedding_layers: Layers | str | None = None,
                    modalities: Sequence[str] | None = None, pass_through: Sequence[str] = (), call: str = "auto",
                    spec: AttributionSpec | None = None, view: Any = None, tokens: TokenInputs | None = None,
                    limit: int | None = None) -> dict[str, float]:
    """Mean per-sample modality shares of ``model`` on ``batches`` (eval mode, no gradients kept).

    The shares are those ``finetune`` validates with: the true-class attribution measured as
    ``spec`` says (``finetune``'s defaults), at the embedding level for built-in models or
    ``embedding_layers``, else at the input level. ``batches`` yield ``(*modalities, labels)``
    tuples or dicts with the modality names and ``labels``; ``limit`` stops after that many samples.

    Example:
        >>> from mmbalance.models import create_model
        >>> m = create_model("av-tiny", num_classes=2)
        >>> batch = (torch.randn(4, 1, 16, 16), torch.randn(4, 3, 2, 16, 16), torch.tensor([0, 1, 0, 1]))
        >>> round(sum(modality_shares(m, [batch]).values()), 6)
        1.0
    """
    adapter = model if isinstance(model, ModelAdapter) else None
    if adapter is None:
        inner = model
        layers = _layer_paths(inner, embedding_layers)
        mods = tuple(modalities or model_input_names(inner) or (layers or {}))
        if not mods:
            raise UsageError(f"{type(inner).__name__} does not say which modalities it takes",
                             hint="pass modalities=[...] in the order its forward takes them")
        adapter = ModelAdapter(inner, mods, call=call, pass_through=tuple(pass_through))
    else:
        layers = _layer_paths(adapter.model, embedding_layers)
    spec = spec or _spec(_defaults())
    if view is None and spec.level == "embedding":
        view = training_view(adapter, layers)
    if view is None and spec.level == "embedding":
        spec = dataclasses.replace(spec, level="input")
    device = next(adapter.parameters()).device
    was = adapter.training
    adapter.eval()
    sums = torch.zeros(len(adapter.modalities), dtype=torch.float64)
    n = 0
    try:
        for batch in batches:
            inputs, labels = _split_batch(batch, adapter.modalities, adapter.pass_through)
            inputs = {k: v.to(device) for k, v in inputs.items()}
            scores = modality_scores(adapter, inputs, labels.to(device), spec,
                                     view=view if spec.level == "embedding" else
                                     (tokens or TokenInputs()).input_view(adapter))
            sums += soft_shares(scores.double()).sum(0).cpu()
            n += int(labels.shape[0])
            if limit is not None and n >= limit:
                break
    finally:
        adapter.train(was)
    if n == 0:
        raise UsageError("no batches to measure the shares on", hint="give a non-empty loader")
    return dict(zip(adapter.modalities, (sums / n).tolist()))


def balance_figures(shares: Mapping[str, float], tolerance: float | None = None) -> dict[str, Any]:
    """``share_variance``, ``max_share``, ``balanced`` (1.0/0.0) and the one-line ``verdict`` of some shares.

    Example:
        >>> f = balance_figures({"audio": 0.8, "visual": 0.2})
        >>> round(f["share_variance"], 4), f["balanced"], f["verdict"]
        (0.09, 0.0, 'audio dominates: 80% of the attribution')
    """
    from ..report.summary import BALANCE_TOLERANCE, is_balanced, verdict_text
    tolerance = BALANCE_TOLERANCE if tolerance is None else tolerance
    figures = imbalance_figures(dict(shares))
    return {"share_variance": figures["share_variance"], "max_share": figures["max_share"],
            "balanced": float(is_balanced(figures["max_share"], len(shares), tolerance)),
            "verdict": verdict_text(dict(shares), tolerance)}
