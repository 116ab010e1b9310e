"""``--per-sample FILE.csv|.parquet``: one row per audited sample, written batch by batch.

Columns: ``index`` (position in the dataset), ``label``, ``pred``, ``target``, then per
estimator ``<method>.score.<modality>``, ``<method>.share.<modality>`` and its per-sample
extras (``<method>.<key>`` or ``<method>.<key>.<modality>``). The file is written to a
temporary name beside the target and renamed when the audit completes, so an interrupted
audit leaves no half-written file.

Example:
    >>> import tempfile, pathlib, torch
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.csv"
    >>> w = PerSampleWriter(path, ("audio", "visual"))
    >>> w.write({"index": torch.tensor([0, 1]), "ig.share.audio": torch.tensor([0.7, 0.2])})
    >>> _ = w.close()
    >>> path.read_text().splitlines()[0]
    'index,ig.share.audio'
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from torch import Tensor

from ..errors import UsageError
from ..io import PendingFile, check_output_file, output_error

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def per_sample_format(path: str | os.PathLike[str]) -> str:
    """``csv`` or ``parquet`` from the file name; a clear error otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"--per-sample {path}: unknown file type {suffix or '(none)'}",
                         hint="name a .csv or .parquet file")
    fmt = FORMATS[suffix]
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as err:
            raise UsageError("--per-sample .parquet needs pyarrow", hint="pip install pyarrow, or write .csv") from err
    return fmt


def batch_columns(modalities: Sequence[str], method: str, scores: Tensor, shares: Tensor,
                  extra: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The columns one estimator contributes for one batch."""
    cols: dict[str, Tensor] = {}
    for j, m in enumerate(modalities):
        cols[f"{method}.score.{m}"] = scores[:, j]
        cols[f"{method}.share.{m}"] = shares[:, j]
    for key, value in extra.items():
        if value.dim() == 1:
            cols[f"{method}.{key}"] = value
        elif value.dim() == 2 and value.shape[1] == len(modalities):
            for j, m in enumerate(modalities):
                cols[f"{method}.{key}.{m}"] = value[:, j]
    return cols


class PerSampleWriter:
    """Appends batches of per-sample columns to a CSV or Parquet file (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], modalities: Sequence[str]) -> None:
        self.path = Path(path)
        self.format = per_sample_format(self.path)
        self.modalities = tuple(modalities)
        check_output_file(self.path, what="--per-sample", example="samples.csv")
        self._pending = PendingFile(self.path)
        self._tmp = self._pending.tmp
        self._columns: list[str] | None = None
        self._parquet: Any = None
        self._schema: Any = None
        self.rows = 0

    def write(self, columns: Mapping[str, Tensor | Sequence[Any]]) -> None:
        """Append one batch: ``{column: values}``, all of the batch's length."""
        import pandas as pd

        data = {k: (v.detach().cpu().numpy() if isinstance(v, Tensor) else list(v)) for k, v in columns.items()}
        frame = pd.DataFrame(data)
        if self._columns is None:
            self._columns = list(frame.columns)
        else:
            frame = frame.reindex(columns=self._columns)
        try:
            self._append(frame)
        except OSError as err:
            raise output_error(err, self.path) from None
        self.rows += len(frame)

    def _append(self, frame: Any) -> None:
        if self.format == "csv":
            frame.to_csv(self._tmp, mode="a", header=self.rows == 0, index=False)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._parquet is None:
            self._schema = table.schema
            self._parquet = pq.ParquetWriter(self._tmp, self._schema)
        self._parquet.write_table(table.cast(self._schema))

    def close(self) -> Path:
        """Finish the file and move it into place; returns its path."""
        try:
            if self._parquet is not None:
                self._parquet.close()
                self._parquet = None
            elif self.format == "parquet" and self.rows == 0:
                import pyarrow as pa
                import pyarrow.parquet as pq

                pq.write_table(pa.table({}), self._tmp)
        except OSError as err:
            self.abort()
            raise output_error(err, self.path) from None
        return self._pending.commit()

    def abort(self) -> None:
        """Drop the partial file (an audit that failed)."""
        if self._parquet is not None:
            with contextlib.suppress(Exception):
                self._parquet.close()
        self._pending.abort()
