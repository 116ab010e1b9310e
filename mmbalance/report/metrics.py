"""Reading a fine-tuning run's ``metrics.csv`` (one row per epoch) for reports.

Required columns are ``epoch`` and ``val_accuracy``; everything else is optional and
plotted when present: ``train_accuracy``, ``train_loss``, ``val_loss``, ``lr``,
``penalty``, ``val_penalty`` and ``lambda`` (attribution regularizer), ``share_<modality>`` (shares
measured per epoch). Empty cells read as missing values (NaN).

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "metrics.csv"
    >>> _ = p.write_text("epoch,val_accuracy,share_audio,share_visual\\n1,0.5,0.9,0.1\\n2,0.7,0.6,0.4\\n")
    >>> m = load_metrics(p)
    >>> m.epochs, m.share_modalities, m.column("val_accuracy")
    ([1, 2], ['audio', 'visual'], [0.5, 0.7])
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ResultsError

REQUIRED_COLUMNS = ("epoch", "val_accuracy")
SHARE_PREFIX = "share_"


@dataclass(frozen=True)
class TrainingMetrics:
    """Per-epoch training figures: ``epochs`` and one list of floats per other column."""

    path: str
    epochs: list[int]
    columns: dict[str, list[float]] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        """Whether column ``name`` exists and holds at least one finite value."""
        return any(math.isfinite(v) for v in self.columns.get(name, []))

    def column(self, name: str) -> list[float]:
        """The values of column ``name`` (NaN where a cell was empty); ``[]`` when absent."""
        return list(self.columns.get(name, []))

    @property
    def share_modalities(self) -> list[str]:
        """Modalities with a ``share_<modality>`` column, in file order."""
        return [c[len(SHARE_PREFIX):] for c in self.columns if c.startswith(SHARE_PREFIX) and self.has(c)]

    def last(self, name: str) -> float | None:
        """The last finite value of a column, or ``None``."""
        finite = [v for v in self.columns.get(name, []) if math.isfinite(v)]
        return finite[-1] if finite else None

    def best_epoch(self) -> tuple[int, float] | None:
        """``(epoch, val_accuracy)`` of the best validation accuracy (first one on ties)."""
        best: tuple[int, float] | None = None
        for epoch, acc in zip(self.epochs, self.columns.get("val_accuracy", [])):
            if math.isfinite(acc) and (best is None or acc > best[1]):
                best = (epoch, acc)
        return best

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes ``None``)."""
        return {"path": self.path, "epochs": list(self.epochs),
                "columns": {k: [v if math.isfinite(v) else None for v in vals] for k, vals in self.columns.items()}}


def load_metrics(path: str | os.PathLike[str]) -> TrainingMetrics:
    """Read ``metrics.csv`` written by ``mmbalance finetune``.

    Raises :class:`~mmbalance.errors.ResultsError` for a missing or unreadable file, a
    file without rows, missing required columns (named in the message) or cells that
    are not numbers.

    Example:
        >>> load_metrics("runs/plain/metrics.csv").best_epoch()  # doctest: +SKIP
        (4, 0.91)
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ResultsError(f"metrics file {p} does not exist",
                           hint="pass the metrics.csv of a `mmbalance finetune` run") from err
    except IsADirectoryError as err:
        raise ResultsError(f"metrics file {p} is a directory", hint="pass RUN/metrics.csv") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ResultsError(f"cannot read metrics file {p}: {err}") from err
    rows = list(csv.reader(text.splitlines()))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise ResultsError(f"metrics file {p} is empty", hint="pass the metrics.csv of a `mmbalance finetune` run")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ResultsError(f"metrics file {p} lacks required column(s): {', '.join(missing)}",
                           hint=f"expected at least {', '.join(REQUIRED_COLUMNS)}")
    body = rows[1:]
    if not body:
        raise ResultsError(f"metrics file {p} has a header but no rows (truncated?)")
    columns: dict[str, list[float]] = {h: [] for h in header if h and h != "epoch"}
    epochs: list[int] = []
    for line_no, row in enumerate(body, start=2):
        if len(row) > len(header):
            raise ResultsError(f"metrics file {p} line {line_no} has {len(row)} cells for {len(header)} columns")
        cells = dict(zip(header, row + [""] * (len(header) - len(row))))
        epoch_cell = cells["epoch"].strip()
        try:
            epoch = float(epoch_cell)
        except ValueError:
            raise ResultsError(f"metrics file {p} line {line_no}: epoch {epoch_cell!r} is not a number") from None
        if not math.isfinite(epoch):
            raise ResultsError(f"metrics file {p} line {line_no}: epoch {epoch_cell!r} is not a number")
        epochs.append(int(epoch))
        for name in columns:
            columns[name].append(_number(cells[name], p, line_no, name))
    return TrainingMetrics(path=str(p), epochs=epochs, columns=columns)


def _number(cell: str, path: Path, line_no: int, name: str) -> float:
    cell = cell.strip()
    if not cell:
        return math.nan
    try:
        return float(cell)
    except ValueError:
        raise ResultsError(f"metrics file {path} line {line_no}: {name} {cell!r} is not a number") from None
