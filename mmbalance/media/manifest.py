"""Manifest CSVs: one clip per row, paths relative to the CSV.

Columns (header required, names case-insensitive, others ignored):

* ``video``: a video file, or a folder of frames (``.jpg``/``.png``);
* ``audio`` (optional): a separate audio file (WAV, FLAC, MP3, ...); empty or absent:
  the video's own audio track;
* ``label``: a class name, or a class index when every label is an integer;
* ``split`` (optional): ``train``, ``val``, ``test``, ...

Class names: the sorted distinct names (or ``0..max`` for integer labels), unless
``classes`` fixes them (then any other label is unknown).

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "clips.csv").write_text("video,label,split\\na.mp4,dog,train\\nb.mp4,cat,test\\n")
    >>> m = read_manifest(d / "clips.csv")
    >>> m.classes, m.splits, [(i.name, i.label, i.split) for i in m.items]
    (['cat', 'dog'], ('test', 'train'), [('a.mp4', 1, 'train'), ('b.mp4', 0, 'test')])
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..errors import DataError
from .items import MediaCollection, MediaItem, SkippedItem

__all__ = ["read_manifest", "MANIFEST_COLUMNS"]

MANIFEST_COLUMNS = ("video", "audio", "label", "split")
_HINT = "a manifest is a CSV with a header row: video,label[,audio][,split]; paths are relative to the CSV"


def read_manifest(path: str | os.PathLike[str], *, classes: Sequence[str] | None = None,
                  skip_bad: bool = False) -> MediaCollection:
    """Read a manifest CSV into a :class:`MediaCollection` (files are not opened here).

    Unknown or empty labels and empty paths raise :class:`DataError` naming the row; with
    ``skip_bad`` they are listed in ``collection.skipped`` instead. An empty manifest
    always raises.

    Example: ``read_manifest("data/clips.csv", classes=["cat", "dog"])``.
    """
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise DataError(f"manifest not found: {path}", hint=_HINT)
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a manifest CSV", hint=_HINT)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = _read_rows(fh, where)
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a UTF-8 text file", hint=_HINT) from None
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from None
    except csv.Error as err:
        raise DataError(f"{path} is not a readable CSV: {err}", hint=_HINT) from None
    if not rows:
        raise DataError(f"manifest {path} lists no clips", hint=_HINT)

    base = path.parent
    has_split = any(r[1].get("split") is not None for r in rows) if rows else False
    labels = [r[1]["label"] for r in rows]
    class_list, to_index = _classes(labels, classes)

    items: list[MediaItem] = []
    skipped: list[SkippedItem] = []
    for line, row in rows:
        here = f"{where} line {line}"
        split = row.get("split") if has_split else None
        try:
            video = row["video"]
            if not video:
                raise DataError(f"{here}: empty 'video'", hint=_HINT)
            for column in ("video", "audio"):
                if "\x00" in (row.get(column) or ""):
                    raise DataError(f"{here}: the {column!r} path holds a NUL byte, which no file name can contain",
                                    hint="fix the manifest (a binary file pasted into it?)")
            if has_split and not split:
                raise DataError(f"{here}: empty 'split'", hint="give every row a split, or drop the column")
            label = to_index(row["label"])
            if label is None:
                raise DataError(f"{here}: unknown label {row['label']!r}",
                                hint=f"known classes: {', '.join(class_list)}" if class_list else _HINT)
        except DataError as err:
            if not skip_bad:
                raise
            skipped.append(SkippedItem(where=here, path=row.get("video") or "", reason=err.message.split(": ", 1)[-1],
                                       split=split or None))
            continue
        audio = row.get("audio") or None
        items.append(MediaItem(visual=_resolve(base, video), audio=_resolve(base, audio) if audio else None,
                               label=label, split=split or None, where=here))
    if not items:
        raise DataError(f"manifest {path} has no usable row ({len(skipped)} skipped)",
                        hint=skipped[0].describe() if skipped else _HINT)
    splits = tuple(sorted({i.split for i in items if i.split})) if has_split else None
    return MediaCollection(source=where, items=items, classes=class_list, splits=splits, skipped=skipped)


def _read_rows(fh: Iterable[str], where: str) -> list[tuple[int, dict[str, str | None]]]:
    reader = csv.reader(fh)
    header: list[str] | None = None
    rows: list[tuple[int, dict[str, str | None]]] = []
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            header = [c.strip().lower() for c in cells]
            missing = [c for c in ("video", "label") if c not in header]
            if missing:
                found = ", ".join(repr(c) for c in header)
                hint = _HINT
                if len(header) == 2 and "video" not in header:
                    hint += ("; an OGM-GE CREMA-D train.csv/test.csv (clip,label without header) is read by "
                             "passing its folder instead")
                raise DataError(f"manifest {where} has no {' or '.join(repr(m) for m in missing)} column "
                                f"(found: {found})", hint=hint)
            continue
        values = {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(header)}
        rows.append((reader.line_num, {c: values.get(c) if c in header else None for c in MANIFEST_COLUMNS}))
    return rows


def _classes(labels: list[str | None], fixed: Sequence[str] | None
             ) -> tuple[list[str], Callable[[str | None], int | None]]:
    """Class names and a function label-string → index (``None`` when unknown)."""
    present = [lab for lab in labels if lab]
    if fixed is not None:
        names = [str(c) for c in fixed]
        lookup = {n: i for i, n in enumerate(names)}

        def by_fixed(label: str | None) -> int | None:
            if not label:
                return None
            if label in lookup:
                return lookup[label]
            if label.isdigit() and int(label) < len(names):
                return int(label)
            return None

        return names, by_fixed
    if present and all(_is_int(lab) for lab in present):
        top = max(int(lab) for lab in present)
        names = [str(i) for i in range(top + 1)]

        def by_index(label: str | None) -> int | None:
            return int(label) if label and _is_int(label) and int(label) >= 0 else None

        return names, by_index
    names = sorted(set(present))
    lookup = {n: i for i, n in enumerate(names)}
    return names, lambda label: lookup.get(label) if label else None


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _resolve(base: Path, value: str) -> str:
    p = Path(os.path.expanduser(value))
    return str(p if p.is_absolute() else base / p)
