"""What every attribution estimator looks like, and the registry that names them.

An estimator stores its settings in ``__init__`` and answers one question per batch:
``attribute(forward, inputs, target) -> Attribution`` with one non-negative score per
sample and modality. Everything else (batching over a dataset, shares, per-class
statistics) is shared and lives in :mod:`mmbalance.attribution.shares` and
:mod:`mmbalance.audit`.

Example:
    >>> "ig" in list_estimators()
    True
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from ..errors import EstimatorError, UsageError

ForwardFn = Callable[[dict[str, Tensor]], Tensor]
"""A callable taking ``{modality: batch tensor}`` and returning logits ``(B, C)``."""


@dataclass
class Attribution:
    """Per-sample output of an estimator for one batch.

    ``scores`` has shape ``(B, M)`` with modalities in ``modalities`` order. Scores may be
    signed (ablation's logit drop can be negative); shares use their magnitude.
    ``extra`` holds optional per-sample tensors: ``(B,)`` ones are summarized as
    ``{"mean", "max"}`` (IG's completeness error), ``(B, M)`` ones as a mean per modality
    (ablation's accuracy drop). ``maps`` holds optional full attribution tensors.
    """

    modalities: tuple[str, ...]
    scores: Tensor
    extra: dict[str, Tensor] = field(default_factory=dict)
    maps: dict[str, Tensor] | None = None


class Estimator:
    """Base class: settings in ``__init__``, validation in :meth:`attribute`, math in ``_attribute``.

    Subclasses set ``name`` (the registry key and ``--method`` value) and implement
    ``_attribute(forward, inputs, target, labels=..., baselines=...)``. ``level`` says where the
    attribution is taken (``input`` or ``embedding``); the caller decides what ``forward`` and
    ``inputs`` are at that level (see :mod:`mmbalance.attribution.hooks`). Estimators that need
    the model itself, not just a forward function (``branch``), set ``needs_model``.
    """

    name: str = "estimator"
    level: str = "input"
    needs_model: bool = False
    #: levels this estimator can be asked to work at
    levels: tuple[str, ...] = ("input", "embedding")

    def params(self) -> dict[str, Any]:
        """Settings that identify this estimator's numbers (recorded in the audit JSON)."""
        return {}

    def check(self, model: Any) -> None:
        """Raise :class:`EstimatorError` early when this estimator cannot apply to ``model``."""

    def summarize(self, extra: dict[str, Any], *, accuracy: float) -> dict[str, Any]:
        """Derive dataset-level figures from the summarized ``extra`` (default: unchanged)."""
        return extra

    def attribute(self, forward: ForwardFn, inputs: Mapping[str, Tensor], target: Tensor, *,
                  labels: Tensor | None = None, baselines: Mapping[str, Tensor] | None = None) -> Attribution:
        """Validate ``inputs``/``target`` and return per-sample modality scores.

        ``labels`` (true classes) enable accuracy-based figures; ``baselines`` override the
        estimator's own baseline (an audit passes one shared baseline to every estimator).
        """
        if not inputs:
            raise EstimatorError("no modality inputs were given")
        sizes = {m: int(x.shape[0]) for m, x in inputs.items()}
        if len(set(sizes.values())) != 1:
            raise EstimatorError(f"modalities have different batch sizes: {sizes}")
        batch = next(iter(sizes.values()))
        device = next(iter(inputs.values())).device
        target = _per_sample(target, batch, device, "target")
        if labels is not None:
            labels = _per_sample(labels, batch, device, "labels")
        if baselines is not None:
            missing = [m for m in inputs if m not in baselines]
            if missing:
                raise EstimatorError(f"baselines lack modalities {', '.join(missing)}")
            baselines = {m: baselines[m].detach() for m in inputs}
        return self._attribute(forward, dict(inputs), target, labels=labels, baselines=baselines)

    def _attribute(self, forward: ForwardFn, inputs: dict[str, Tensor], target: Tensor, *,
                   labels: Tensor | None, baselines: dict[str, Tensor] | None) -> Attribution:
        raise NotImplementedError


def _per_sample(value: Tensor, batch: int, device: torch.device, what: str) -> Tensor:
    value = torch.as_tensor(value, dtype=torch.long, device=device)
    if value.dim() == 0:
        value = value.expand(batch)
    if value.shape != (batch,):
        raise EstimatorError(f"{what} must have one class index per sample ({batch}), got shape {tuple(value.shape)}")
    return value


_ESTIMATORS: dict[str, type[Estimator]] = {}


def register_estimator(cls: type[Estimator]) -> type[Estimator]:
    """Class decorator: make an estimator available by its ``name``."""
    _ESTIMATORS[cls.name] = cls
    return cls


def list_estimators() -> list[str]:
    """Names of the registered estimators."""
    return sorted(_ESTIMATORS)


def get_estimator_class(name: str) -> type[Estimator]:
    """The estimator class registered as ``name``; a clear error with suggestions otherwise."""
    try:
        return _ESTIMATORS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_ESTIMATORS), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"choose from {', '.join(list_estimators())}"
        raise UsageError(f"unknown attribution method {name!r}", hint=hint) from None


def l1_scores(maps: Mapping[str, Tensor], modalities: tuple[str, ...]) -> Tensor:
    """Per-sample L1 mass of each modality's attribution map, shape ``(B, M)``."""
    return torch.stack([maps[m].detach().abs().flatten(1).sum(1) for m in modalities], dim=1)


#: how a gradient estimator pools a modality's attribution map into one score
POOLS = ("l1", "signed")


def check_pool(pool: str) -> str:
    """``pool`` if it is one of :data:`POOLS`, else a :class:`UsageError`."""
    if pool not in POOLS:
        raise UsageError(f"unknown --pool {pool!r}", hint="use --pool l1 or --pool signed")
    return pool


def pooled_scores(maps: Mapping[str, Tensor], modalities: tuple[str, ...], pool: str = "l1") -> Tensor:
    """Per-sample modality scores ``(B, M)``: the L1 mass (``l1``) or the plain sum (``signed``) of each map.

    The signed sums of Integrated Gradients add up to ``F(x) - F(baseline)`` (completeness), so a
    modality whose element attributions cancel scores near zero; the L1 mass counts every element's
    magnitude and grows with the number of input elements.

    Example:
        >>> maps = {"a": torch.tensor([[3.0, -3.0]]), "b": torch.tensor([[1.0, 0.0]])}
        >>> pooled_scores(maps, ("a", "b"), "l1").tolist(), pooled_scores(maps, ("a", "b"), "signed").tolist()
        ([[6.0, 1.0]], [[0.0, 1.0]])
    """
    if check_pool(pool) == "l1":
        return l1_scores(maps, modalities)
    return torch.stack([maps[m].detach().flatten(1).sum(1) for m in modalities], dim=1)


def target_logit(logits: Tensor, target: Tensor) -> Tensor:
    """``logits[i, target[i]]`` for every row; ``target`` is repeated when ``logits`` stacks copies.

    Example:
        >>> target_logit(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([1, 0])).tolist()
        [2.0, 3.0]
    """
    reps = logits.shape[0] // target.shape[0]
    idx = target.repeat(reps) if reps > 1 else target
    return logits.gather(1, idx.view(-1, 1)).squeeze(1)


def correct(logits: Tensor, labels: Tensor) -> Tensor:
    """1.0 where the arg-max of ``logits`` is the label, else 0.0 (labels repeated like :func:`target_logit`)."""
    reps = logits.shape[0] // labels.shape[0]
    idx = labels.repeat(reps) if reps > 1 else labels
    return (logits.argmax(1) == idx).to(logits.dtype)
