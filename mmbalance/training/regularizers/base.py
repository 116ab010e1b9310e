"""What a training-time balancing method looks like, and the registry that names them.

A regularizer owns the forward half of one training step (:meth:`Regularizer.step`:
inputs and labels in, logits and the loss to back-propagate out) and may touch the
gradients before the optimizer steps (:meth:`Regularizer.after_backward`). The loop
(:mod:`mmbalance.training.loop`) does everything else: data, optimizers, DDP, AMP,
checkpoints, metrics.

Example:
    >>> sorted(list_regularizers())
    ['attribution', 'gblend', 'modality-dropout', 'none', 'ogm-ge']
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...attribution.hooks import EmbeddingView, EncodeFuseView, HookView
from ...errors import UsageError
from ..config import TrainConfig
from ..embeddings import TokenInputs
from .aux_heads import AuxHeads, build_aux_heads

if TYPE_CHECKING:
    from ...models.adapter import ModelAdapter

__all__ = ["PlainTraining", "Regularizer", "StepOutput", "build_regularizer", "encoder_parameters",
           "fusion_parameters", "list_regularizers", "register_regularizer"]


@dataclass
class StepOutput:
    """One training step's forward results.

    ``loss`` is back-propagated; ``task_loss`` is the cross-entropy alone; ``penalty``
    the (unweighted, detached) regularization term when there is one, ``term`` the same
    term still differentiable (for :class:`mmbalance.AttributionPenalty`), ``shares`` the
    batch's mean modality shares; ``aux`` the auxiliary heads' weighted loss (``--aux-heads``).
    """

    logits: Tensor
    loss: Tensor
    task_loss: Tensor
    penalty: Tensor | None = None
    term: Tensor | None = None  # the penalty as computed, differentiable (before any weight)
    shares: Tensor | None = None  # the batch's mean modality shares (detached), when measured
    aux: Tensor | None = None  # --aux-heads: aux_weight * sum_m CE_m, differentiable


class Regularizer:
    """Plain cross-entropy; subclasses add a balancing method.

    ``config`` holds every setting; ``modalities`` are the data's modality names in
    model input order. Per-epoch randomness is re-seeded from ``(seed, epoch, rank)`` in
    :meth:`begin_epoch`, so a resumed run draws the same numbers as an uninterrupted one.
    """

    name = "none"

    def __init__(self, config: TrainConfig, modalities: Sequence[str]) -> None:
        self.config = config
        self.modalities = tuple(modalities)
        self.epoch = 0
        self.rank = 0
        self.view: EmbeddingView | None = None
        self.tokens = TokenInputs()  # token-id modalities: their embedding layers and pad id (set by the loop)
        self.aux: AuxHeads | None = None

    def needs_embeddings(self) -> str | None:
        """What needs per-modality embeddings (e.g. ``"-r ogm-ge"``), or ``None`` when this method works without."""
        return "--aux-heads" if self.config.aux_heads else None

    def check(self, adapter: nn.Module, view: EmbeddingView | None = None,
              probe: Mapping[str, Tensor] | None = None) -> None:
        """Raise :class:`UsageError` when the model cannot be trained this way; keep ``view``; build ``--aux-heads``.

        ``view`` reaches the model's per-modality embeddings (see
        :mod:`mmbalance.training.embeddings`); ``None``: a built-in model's encode/fuse, if any.
        ``probe`` (one batch of inputs) sizes a plug-in's auxiliary heads by one forward.
        """
        self.view = view
        self.embedding_view(adapter)
        if self.config.aux_heads and self.aux is None:  # --aux-heads
            self.aux = build_aux_heads(adapter, self.view, probe)

    def embedding_view(self, adapter: nn.Module) -> EmbeddingView | None:
        """The view given to :meth:`check`, else the model's own encode/fuse (``None`` when it has none)."""
        if self.view is None and getattr(adapter, "has_embeddings", False):
            self.view = EncodeFuseView(adapter)
        return self.view

    def encode_with_logits(self, adapter: nn.Module, inputs: Mapping[str, Tensor]
                           ) -> tuple[dict[str, Tensor], Tensor]:
        """Differentiable embeddings and logits of one forward (built-in encode/fuse or ``--embedding-layer`` hooks)."""
        view = self.embedding_view(adapter)
        if view is None:
            raise UsageError(f"{type(getattr(adapter, 'model', adapter)).__name__} exposes no per-modality "
                             "embeddings", hint="name each modality's encoder with --embedding-layer")
        return view.encode_with_logits(inputs, grad=True)

    # -- hooks for methods with state or parts of their own (auxiliary heads, G-Blend) -----

    def extra_modules(self) -> nn.Module | None:
        """Trainable modules the method owns (trained and checkpointed with the model, not saved in best.pt)."""
        return self.aux

    def state_dict(self) -> dict[str, Any]:
        """The method's state for ``resume.pt``."""
        return {"aux": self.aux.state_dict()} if self.aux is not None else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        if self.aux is not None and "aux" in state:
            self.aux.load_state_dict(state["aux"])

    def training_indices(self, train_set: Any) -> list[int] | None:
        """The samples of ``train_set`` the optimizer sees; ``None``: all (G-Blend holds some out)."""
        return None

    def observe(self, adapter: nn.Module, epoch: int, *, train_set: Any, val_set: Any, batch_size: int,
                device: torch.device) -> None:
        """Called after epoch ``epoch``'s validation (and with ``epoch=0`` before training starts)."""

    def metrics(self) -> dict[str, float]:
        """Extra columns for this epoch's metric row (e.g. G-Blend's loss weights)."""
        return {}

    def aux_loss(self, embeddings: Mapping[str, Tensor], labels: Tensor) -> Tensor | None:
        """``aux_weight * sum_m CE(aux_m(e_m), y)`` with ``--aux-heads``, else ``None``."""
        if self.aux is None:
            return None
        parts = self.aux(embeddings)
        return self.config.aux_weight * sum((F.cross_entropy(z.float(), labels) for z in parts.values()),
                                            torch.zeros((), device=labels.device))

    def begin_epoch(self, epoch: int, rank: int = 0) -> None:
        """Called before each epoch (1-based) with this process's rank."""
        self.epoch = epoch
        self.rank = rank

    def lambda_at(self, epoch: int) -> float | None:
        """The penalty weight used in ``epoch`` (``None``: this method has no penalty)."""
        return None

    def step(self, adapter: ModelAdapter, inputs: Mapping[str, Tensor], labels: Tensor) -> StepOutput:
        """The forward half of a training step: logits and the loss to back-propagate."""
        if self.aux is None:
            logits = adapter(inputs)
            loss = F.cross_entropy(logits.float(), labels)
            return StepOutput(logits=logits, loss=loss, task_loss=loss.detach())
        embeddings, logits = self.encode_with_logits(adapter, inputs)
        task = F.cross_entropy(logits.float(), labels)
        aux = self.aux_loss(embeddings, labels)
        return StepOutput(logits=logits, loss=task + aux if aux is not None else task, task_loss=task.detach(),
                          aux=aux)

    def after_backward(self, adapter: nn.Module) -> None:
        """Adjust gradients after ``backward`` (and DDP's all-reduce), before the optimizer step."""

    def fusion_scoped(self) -> bool:
        """Whether fusion/classifier parameters get their own optimizer (``--scope fusion``)."""
        return False

    def _generator(self, *salt: int) -> torch.Generator:
        """A CPU generator seeded from the run seed, the epoch and ``salt``."""
        seed = (int(self.config.seed) * 1_000_003 + self.epoch * 7_919 + sum(s * 104_729 for s in salt)) % (2**63)
        return torch.Generator().manual_seed(seed)


class PlainTraining(Regularizer):
    """``--regularizer none``: cross-entropy only."""

    name = "none"

    def __init__(self, config: TrainConfig, modalities: Sequence[str]) -> None:
        Regularizer.__init__(self, config, modalities)


_REGULARIZERS: dict[str, type[Regularizer]] = {"none": PlainTraining}


def register_regularizer(cls: type[Regularizer]) -> type[Regularizer]:
    """Class decorator: make a regularizer available to ``--regularizer`` by its ``name``."""
    _REGULARIZERS[cls.name] = cls
    return cls


def list_regularizers() -> list[str]:
    """Names accepted by ``--regularizer``."""
    return sorted(_REGULARIZERS)


def build_regularizer(config: TrainConfig, modalities: Sequence[str]) -> Regularizer:
    """The regularizer ``config.regularizer`` names, set up for ``modalities``.

    Example:
        >>> cfg = TrainConfig(model="av-tiny", data="synthetic:av-dominance", out="x", regularizer="ogm-ge")
        >>> build_regularizer(cfg, ["audio", "visual"]).name
        'ogm-ge'
    """
    cls = _REGULARIZERS.get(config.regularizer)
    if cls is None:
        close = difflib.get_close_matches(config.regularizer, list(_REGULARIZERS), n=2)
        hint = f"did you mean {', '.join(close)}?" if close else f"use one of {', '.join(list_regularizers())}"
        raise UsageError(f"unknown --regularizer {config.regularizer!r}", hint=hint)
    return cls(config, modalities)


def _hooked_modules(view: EmbeddingView | None) -> dict[str, nn.Module] | None:
    return dict(view.modules) if isinstance(view, HookView) else None


def fusion_parameters(adapter: nn.Module, view: EmbeddingView | None = None) -> list[nn.Parameter]:
    """The fusion head's (and classifier's) parameters.

    ``model.fusion`` of a built-in model; with a hook view (``--embedding-layer``) every
    trainable parameter outside the named encoder modules.
    """
    hooked = _hooked_modules(view)
    if hooked is not None:
        inside = {id(p) for module in hooked.values() for p in module.parameters()}
        rest = [p for p in adapter.parameters() if p.requires_grad and id(p) not in inside]
        if not rest:
            raise UsageError(f"every parameter of {type(getattr(adapter, 'model', adapter)).__name__} is inside the "
                             "--embedding-layer modules, so there is no fusion head to train on its own",
                             hint="use --scope all")
        return rest
    fusion = getattr(getattr(adapter, "model", adapter), "fusion", None)
    if not isinstance(fusion, nn.Module):
        raise UsageError(f"{type(getattr(adapter, 'model', adapter)).__name__} has no `fusion` module",
                         hint="name the encoders with --embedding-layer (every other parameter is then the "
                              "fusion head), or use --scope all")
    return [p for p in fusion.parameters() if p.requires_grad]


def encoder_parameters(adapter: nn.Module, view: EmbeddingView | None = None) -> dict[str, list[nn.Parameter]]:
    """Each modality's encoder parameters.

    ``model.encoders[modality]`` of a built-in model; with a hook view (``--embedding-layer``)
    the parameters of the module named for each modality.
    """
    hooked = _hooked_modules(view)
    if hooked is not None:
        return {m: [p for p in module.parameters() if p.requires_grad] for m, module in hooked.items()}
    encoders = getattr(getattr(adapter, "model", adapter), "encoders", None)
    if not isinstance(encoders, nn.ModuleDict):
        raise UsageError(f"{type(getattr(adapter, 'model', adapter)).__name__} has no per-modality `encoders`",
                         hint="name each modality's encoder module with --embedding-layer")
    return {m: [p for p in enc.parameters() if p.requires_grad] for m, enc in encoders.items()}
