"""Folder layouts people already have: CREMA-D as OGM-GE uses it, and one folder per class.

CREMA-D (OGM-GE, Peng et al. CVPR 2022)::

    cremad/
      train.csv  test.csv         # no header: clip,label   e.g. 1001_DFA_ANG_XX,ANG
      AudioWAV/1001_DFA_ANG_XX.wav
      Image-01-FPS/1001_DFA_ANG_XX/frame_00001.jpg ...   # or VideoFlash/<clip>.flv|.mp4

Class folders (``train/``, ``val/``, ``test/`` level optional)::

    root/[train/]<class>/<clip>.mp4     # <clip>.wav beside it: audio from there
    root/[train/]<class>/<clip>/*.jpg   # a folder of frames

Example:
    >>> import tempfile, pathlib
    >>> from mmbalance.media.testing import write_clip
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_clip(root / "dog" / "a.mp4"); _ = write_clip(root / "cat" / "b.mp4")
    >>> c = read_class_folders(root)
    >>> c.classes, c.splits, [i.label for i in c.items]
    (['cat', 'dog'], None, [0, 1])
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Sequence

from ..errors import DataError
from .decode import AUDIO_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES
from .items import MediaCollection, MediaItem, SkippedItem

__all__ = ["CREMAD_CLASSES", "CREMAD_SPLITS", "SPLIT_NAMES", "read_cremad", "read_class_folders", "is_cremad_root",
           "is_class_folder_root"]

#: OGM-GE's class order for CREMA-D (``class_dict`` in its ``CramedDataset``).
CREMAD_CLASSES = ("NEU", "HAP", "SAD", "FEA", "DIS", "ANG")
CREMAD_SPLITS = ("train", "test")
#: Folder names taken as splits in the class-folder layout.
SPLIT_NAMES = ("train", "val", "valid", "validation", "test")
_FRAME_DIR = re.compile(r"^Image-(\d+)-FPS$", re.IGNORECASE)
_CREMAD_HINT = ("expected OGM-GE's CREMA-D layout: train.csv/test.csv (clip,label), AudioWAV/<clip>.wav, "
                "Image-01-FPS/<clip>/*.jpg or VideoFlash/<clip>.flv")


# --- CREMA-D --------------------------------------------------------------------------------

def is_cremad_root(path: str | os.PathLike[str]) -> bool:
    """True for a folder with ``AudioWAV/`` and ``train.csv`` or ``test.csv``."""
    p = Path(path)
    return p.is_dir() and (p / "AudioWAV").is_dir() and ((p / "train.csv").is_file() or (p / "test.csv").is_file())


def read_cremad(root: str | os.PathLike[str], *, skip_bad: bool = False) -> MediaCollection:
    """Read OGM-GE's CREMA-D layout: splits ``train``/``test`` from the CSVs, audio from
    ``AudioWAV/``, frames from ``Image-NN-FPS/<clip>/`` (``Image-01-FPS`` preferred) or the
    original ``VideoFlash/<clip>.flv``.

    OGM-GE silently drops rows whose files are missing; here they are errors naming the
    file (or, with ``skip_bad``, skipped and listed when the clips are opened). Unknown
    labels raise, or are skipped with ``skip_bad``.

    Example: ``read_cremad("data/CREMA-D").select("test")``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"CREMA-D folder not found: {root}", hint=_CREMAD_HINT)
    if not (root / "AudioWAV").is_dir():
        raise DataError(f"{root} has no AudioWAV/ folder", hint=_CREMAD_HINT)
    frame_dir = _frame_dir(root)
    video_dir = root / "VideoFlash"
    if frame_dir is None and not video_dir.is_dir():
        raise DataError(f"{root} has neither an Image-NN-FPS/ frame folder nor VideoFlash/", hint=_CREMAD_HINT)
    lookup = {name: i for i, name in enumerate(CREMAD_CLASSES)}
    items: list[MediaItem] = []
    skipped: list[SkippedItem] = []
    splits = [s for s in CREMAD_SPLITS if (root / f"{s}.csv").is_file()]
    if not splits:
        raise DataError(f"{root} has no train.csv or test.csv", hint=_CREMAD_HINT)
    for split in splits:
        csv_path = root / f"{split}.csv"
        rows = _read_pairs(csv_path)
        if not rows:
            raise DataError(f"{csv_path} lists no clips", hint=_CREMAD_HINT)
        for line, clip, label in rows:
            here = f"{csv_path} line {line}"
            if label not in lookup:
                err = DataError(f"{here}: unknown label {label!r}",
                                hint=f"CREMA-D classes: {', '.join(CREMAD_CLASSES)}")
                if not skip_bad:
                    raise err
                skipped.append(SkippedItem(where=here, path=clip, reason=f"unknown label {label!r}", split=split))
                continue
            visual = _cremad_visual(root, frame_dir, video_dir, clip)
            items.append(MediaItem(visual=str(visual), audio=str(root / "AudioWAV" / f"{clip}.wav"),
                                   label=lookup[label], split=split, where=here))
    if not items:
        raise DataError(f"{root} has no usable clip ({len(skipped)} skipped)", hint=_CREMAD_HINT)
    return MediaCollection(source=str(root), items=items, classes=list(CREMAD_CLASSES), splits=tuple(splits),
                           skipped=skipped)


def _frame_dir(root: Path) -> Path | None:
    found = sorted(((int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _FRAME_DIR.match(p.name))),
                   key=lambda t: (t[0] != 1, t[0]))
    return found[0][1] if found else None


def _cremad_visual(root: Path, frame_dir: Path | None, video_dir: Path, clip: str) -> Path:
    if frame_dir is not None:
        folder = frame_dir / clip
        if folder.exists() or not video_dir.is_dir():
            return folder
    for suffix in (".flv", ".mp4"):
        candidate = video_dir / f"{clip}{suffix}"
        if candidate.exists():
            return candidate
    return (frame_dir / clip) if frame_dir is not None else video_dir / f"{clip}.flv"


def _read_pairs(path: Path) -> list[tuple[int, str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            rows: list[tuple[int, str, str]] = []
            for cells in reader:
                cells = [c.strip() for c in cells]
                if not any(cells):
                    continue
                if len(cells) < 2:
                    raise DataError(f"{path} line {reader.line_num}: expected clip,label, got {','.join(cells)!r}",
                                    hint=_CREMAD_HINT)
                if not rows and cells[1].lower() in ("label", "emotion", "class"):
                    continue  # a header row
                rows.append((reader.line_num, cells[0], cells[1]))
            return rows
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a UTF-8 text file", hint=_CREMAD_HINT) from None
    except csv.Error as err:
        raise DataError(f"{path} is not a readable CSV: {err}", hint=_CREMAD_HINT) from None


# --- one folder per class -------------------------------------------------------------------

def _visible_dirs(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    except OSError:
        return []


def _has_clips(folder: Path) -> bool:
    try:
        for entry in os.scandir(folder):
            if entry.name.startswith("."):
                continue
            if entry.is_file() and Path(entry.name).suffix.lower() in VIDEO_SUFFIXES:
                return True
            if entry.is_dir() and _is_frame_folder(Path(entry.path)):
                return True
    except OSError:
        return False
    return False


def _is_frame_folder(folder: Path) -> bool:
    try:
        return any(Path(e.name).suffix.lower() in IMAGE_SUFFIXES for e in os.scandir(folder) if e.is_file())
    except OSError:
        return False


def _split_dirs(root: Path) -> list[Path] | None:
    dirs = _visible_dirs(root)
    if dirs and all(d.name.lower() in SPLIT_NAMES for d in dirs):
        return dirs
    return None


def is_class_folder_root(path: str | os.PathLike[str]) -> bool:
    """True for a folder whose subfolders (or ``<split>/`` subfolders) hold clips; ``*.pt`` folders excluded."""
    root = Path(path)
    if not root.is_dir() or any(root.glob("*.pt")):
        return False
    tops = _split_dirs(root)
    class_dirs = [c for s in tops for c in _visible_dirs(s)] if tops else _visible_dirs(root)
    return any(_has_clips(c) for c in class_dirs)


def read_class_folders(root: str | os.PathLike[str], *, skip_bad: bool = False,
                       classes: Sequence[str] | None = None) -> MediaCollection:
    """Read ``root/<class>/<clip>`` or ``root/<split>/<class>/<clip>`` (clips: video files or frame folders).

    Classes are the sorted class-folder names (across all splits, so indices agree), or
    ``classes`` (then another class folder is an error, or skipped with ``skip_bad``). A
    ``<clip>.wav`` (or ``.flac``, ``.mp3``, ...) beside ``<clip>.mp4`` supplies its audio.
    Other files are ignored. ``skip_bad`` is accepted for symmetry (bad files are found
    when the clips are opened).

    Example: ``read_class_folders("data/ks").select("val")``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"class-folder root not found: {root}")
    split_dirs = _split_dirs(root)
    groups = [(d.name, d) for d in split_dirs] if split_dirs else [(None, root)]
    names = sorted({c.name for _, top in groups for c in _visible_dirs(top) if _has_clips(c)})
    if not names:
        raise DataError(f"{root} holds no class folders with clips",
                        hint=f"expected root/<class>/<clip> with {', '.join(VIDEO_SUFFIXES[:4])}, ... files "
                             "or frame folders")
    skipped: list[SkippedItem] = []
    if classes is not None:
        unknown = [n for n in names if n not in classes]
        if unknown and not skip_bad:
            raise DataError(f"{root} has class folder {unknown[0]!r}, which is not among the classes given",
                            hint=f"classes: {', '.join(classes)}")
        names = [str(c) for c in classes]
    lookup = {n: i for i, n in enumerate(names)}
    items: list[MediaItem] = []
    for split, top in groups:
        for class_dir in _visible_dirs(top):
            if not _has_clips(class_dir):
                continue
            if class_dir.name not in lookup:
                skipped.append(SkippedItem(where=str(class_dir), path=str(class_dir),
                                           reason=f"unknown label {class_dir.name!r}", split=split))
                continue
            items.extend(_clips_in(class_dir, lookup[class_dir.name], split))
    if not items:
        raise DataError(f"{root} has no usable clip", hint=f"classes: {', '.join(names)}")
    splits = tuple(sorted({i.split for i in items if i.split})) if split_dirs else None
    return MediaCollection(source=str(root), items=items, classes=names, splits=splits, skipped=skipped)


def _clips_in(class_dir: Path, label: int, split: str | None) -> list[MediaItem]:
    entries = sorted(class_dir.iterdir(), key=lambda p: p.name)
    audio_by_stem = {p.stem: p for p in entries if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES}
    items = []
    for p in entries:
        if p.name.startswith("."):
            continue
        if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES:
            audio = audio_by_stem.get(p.stem)
        elif p.is_dir() and _is_frame_folder(p):
            audio = audio_by_stem.get(p.name)
        else:
            continue
        items.append(MediaItem(visual=str(p), audio=str(audio) if audio else None, label=label, split=split,
                               where=str(p)))
    return items
