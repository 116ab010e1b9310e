"""Experiment trackers for ``finetune --log``: every epoch's metric row, as ``metrics.csv`` holds it.

``tensorboard`` writes event files under ``<out>/tensorboard`` with
:class:`torch.utils.tensorboard.SummaryWriter` (the ``tensorboard`` package, ``pip install
'mmbalance[tensorboard]'``): one scalar per numeric column of the row (``train_loss``,
``val_accuracy``, ``penalty``, ``lambda``, ``share_<modality>``, ...) at step = epoch.

Example:
    >>> parse_log("tensorboard")
    ['tensorboard']
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import UsageError

__all__ = ["TRACKERS", "EpochTrackers", "parse_log"]

TRACKERS = ("tensorboard",)


def parse_log(value: str | Sequence[str] | None) -> list[str]:
    """``"tensorboard"`` or a list of tracker names → a validated list (``none`` or empty: no tracker)."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    names = [s.strip().lower() for s in items if s.strip() and s.strip().lower() != "none"]
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise UsageError(f"unknown --log {unknown[0]!r}", hint=f"use one of {', '.join(TRACKERS)} (or none)")
    return list(dict.fromkeys(names))


class EpochTrackers:
    """The open trackers of one run: :meth:`log` a metric row per epoch, :meth:`close` at the end."""

    def __init__(self, names: Sequence[str], out: str | Path) -> None:
        self.writers: list[Any] = []
        if "tensorboard" in names:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise UsageError("--log tensorboard needs the tensorboard package",
                                 hint="pip install 'mmbalance[tensorboard]'") from None
            self.writers.append(SummaryWriter(log_dir=str(Path(out) / "tensorboard")))

    def log(self, row: Mapping[str, Any]) -> None:
        """One scalar per numeric, finite column of ``row`` at step ``row["epoch"]``."""
        step = int(row["epoch"])
        for writer in self.writers:
            for key, value in row.items():
                if key == "epoch" or isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                if math.isfinite(float(value)):
                    writer.add_scalar(key, float(value), global_step=step)
            writer.flush()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers = []
