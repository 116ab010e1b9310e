"""Optimizer and learning-rate schedule for every method, and validation of the issue-14 settings.

``--optimizer adam|adamw|sgd`` (SGD with ``--momentum``, 0.9 by default, as OGM-GE's code)
and ``--scheduler cosine|constant|step`` (``step``: multiply the learning rate by
``--gamma`` every ``--step-size`` epochs, PyTorch's ``StepLR``) apply to every method.

Example:
    >>> import torch
    >>> from mmbalance.training import TrainConfig
    >>> cfg = TrainConfig(model="av-tiny", data="d", out="o", optimizer="sgd", lr=1e-3, weight_decay=1e-4)
    >>> opts, schs = make_optimizers(cfg, [[torch.nn.Parameter(torch.zeros(2))]])
    >>> type(opts[0]).__name__, opts[0].param_groups[0]["momentum"]
    ('SGD', 0.9)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import nn

from ...errors import UsageError

if TYPE_CHECKING:
    from ..config import TrainConfig

__all__ = ["make_optimizers", "validate_method_settings"]


def validate_method_settings(config: "TrainConfig", modalities: Sequence[str] | None = None) -> None:
    """Raise :class:`UsageError` for optimizer, schedule, unimodal and auxiliary-head settings that cannot work."""
    from ..config import OPTIMIZERS
    if config.optimizer not in OPTIMIZERS:
        raise UsageError(f"unknown --optimizer {config.optimizer!r}", hint=f"use one of {', '.join(OPTIMIZERS)}")
    if not (math.isfinite(config.momentum) and 0.0 <= config.momentum < 1.0):
        raise UsageError(f"--momentum must lie in [0, 1), got {config.momentum}")
    if config.step_size < 1:
        raise UsageError(f"--step-size must be at least 1 epoch, got {config.step_size}")
    if not (math.isfinite(config.gamma) and 0.0 < config.gamma <= 1.0):
        raise UsageError(f"--gamma must lie in (0, 1], got {config.gamma}")
    if config.modulation_start < 1:
        raise UsageError(f"--modulation-start is a 1-based epoch, got {config.modulation_start}")
    if config.modulation_end is not None and config.modulation_end < config.modulation_start:
        raise UsageError(f"--modulation-end {config.modulation_end} is before --modulation-start "
                         f"{config.modulation_start}")
    if not (math.isfinite(config.aux_weight) and config.aux_weight >= 0):
        raise UsageError(f"--aux-weight must be a finite number >= 0, got {config.aux_weight}")
    if config.gblend_every < 1:
        raise UsageError(f"--gblend-every must be at least 1 epoch, got {config.gblend_every}")
    if not (math.isfinite(config.gblend_holdout) and 0.0 < config.gblend_holdout < 1.0):
        raise UsageError(f"--gblend-holdout is a fraction of the training data in (0, 1), got {config.gblend_holdout}")
    if not (math.isfinite(config.gblend_smoothing) and 0.0 <= config.gblend_smoothing < 1.0):
        raise UsageError(f"--gblend-smoothing must lie in [0, 1), got {config.gblend_smoothing}")
    if not (math.isfinite(config.gblend_floor) and 0.0 < config.gblend_floor * 3 < 1.0):
        raise UsageError(f"--gblend-floor (each head's least loss weight) must lie in (0, 1/3), "
                         f"got {config.gblend_floor}")
    if modalities is not None and not config.gblend_floor * (len(modalities) + 1) < 1.0:
        raise UsageError(f"--gblend-floor must be below 1/{len(modalities) + 1} with {len(modalities)} modalities "
                         f"(one floor per head), got {config.gblend_floor}")
    if config.aux_heads and config.regularizer not in ("none", "attribution"):
        raise UsageError(f"--aux-heads combines with --regularizer none or attribution, not {config.regularizer}",
                         hint="gblend has its own auxiliary heads")
    if config.unimodal is not None:
        if config.regularizer != "none" or config.aux_heads or config.zero_modalities:
            raise UsageError("--unimodal trains one encoder and its own classifier alone",
                             hint="drop --regularizer, --aux-heads and --zero-modality")
        if modalities is not None and config.unimodal not in modalities:
            raise UsageError(f"--unimodal names unknown modality {config.unimodal!r}",
                             hint=f"the data has {', '.join(modalities)}")


def make_optimizers(config: "TrainConfig", groups: Sequence[Sequence[nn.Parameter]]
                    ) -> tuple[list[torch.optim.Optimizer], list[Any]]:
    """One optimizer (``config.optimizer``) and one scheduler (``config.scheduler``) per parameter group."""
    optimizers: list[torch.optim.Optimizer] = []
    for params in groups:
        params = list(params)
        if config.optimizer == "sgd":
            optimizers.append(torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                                              weight_decay=config.weight_decay))
        elif config.optimizer == "adamw":
            optimizers.append(torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay))
        else:
            optimizers.append(torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay))
    schedulers: list[Any] = []
    for opt in optimizers:
        if config.scheduler == "cosine":
            schedulers.append(torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs))
        elif config.scheduler == "step":
            schedulers.append(torch.optim.lr_scheduler.StepLR(opt, step_size=config.step_size, gamma=config.gamma))
        else:
            schedulers.append(torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0))
    return optimizers, schedulers
