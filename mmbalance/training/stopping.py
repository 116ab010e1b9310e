"""Early stopping on validation accuracy and the "still at chance" warning of a training run.

``--epochs`` is a cap: a run stops once validation accuracy has not improved for
``--patience`` epochs (``0`` turns early stopping off). The counter is the number of epochs
since the best one, so it is restored with the best epoch when a run resumes.

A run whose best validation accuracy is still within :data:`CHANCE_MARGIN` of chance after a
third of its epoch cap (or when it stops earlier) gets a :class:`TrainingWarning` that
suggests a larger ``--lr`` or ``--epochs``: on such a run, shares and regularizers say nothing.

Example:
    >>> should_stop(epoch=8, best_epoch=3, patience=5), should_stop(epoch=7, best_epoch=3, patience=5)
    (True, False)
    >>> chance_warning(best_accuracy=0.26, chance=0.25, epoch=4, epochs=10) is not None
    True
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import MMBalanceWarning

__all__ = ["CHANCE_MARGIN", "TrainingWarning", "chance_accuracy", "chance_check_epoch", "chance_warning",
           "should_stop"]

CHANCE_MARGIN = 0.02  # "within 2 points of chance"


class TrainingWarning(MMBalanceWarning):
    """A training run that finished but probably did not learn what it should (the CLI prints it)."""


def should_stop(epoch: int, best_epoch: int, patience: int) -> bool:
    """True when ``patience`` (> 0) epochs have passed since the best validation epoch."""
    return patience > 0 and epoch - best_epoch >= patience


def chance_accuracy(dataset: Any) -> float:
    """Accuracy of always guessing the most frequent class (``1 / num_classes`` without label tensor).

    Example:
        >>> class D: labels, num_classes = torch.tensor([0, 0, 0, 1]), 2
        >>> chance_accuracy(D())
        0.75
    """
    uniform = 1.0 / max(int(dataset.num_classes), 1)
    labels = getattr(dataset, "labels", None)
    if isinstance(labels, torch.Tensor) and labels.numel():
        return max(uniform, float(torch.bincount(labels.long()).max()) / labels.numel())
    return uniform


def chance_check_epoch(epochs: int) -> int:
    """The epoch after which the chance check runs: a third of the cap, rounded up."""
    return max(1, math.ceil(epochs / 3))


def chance_warning(best_accuracy: float, chance: float, epoch: int, epochs: int) -> str | None:
    """The warning text when ``best_accuracy`` is within :data:`CHANCE_MARGIN` of ``chance``, else None."""
    if best_accuracy > chance + CHANCE_MARGIN:
        return None
    return (f"validation accuracy is still at chance after {epoch} of {epochs} epochs (best {best_accuracy:.1%}, "
            f"chance {chance:.1%}): the model is not learning; try a larger --lr (e.g. 3e-3) or more --epochs "
            f"(and --patience), and check that inputs and labels match")
