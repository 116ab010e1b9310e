"""Clips listed by a source (manifest, CREMA-D, class folders) and how each becomes tensors.

A source is read into a :class:`MediaCollection`: :class:`MediaItem` rows (files, label,
split), the class names and the rows already found bad while reading (unknown labels,
...). :func:`decode_item` turns one item into ``{"audio": ..., "visual": ...}``.

Example:
    >>> import tempfile, pathlib
    >>> from mmbalance.media.testing import write_clip
    >>> clip = write_clip(pathlib.Path(tempfile.mkdtemp()) / "c.mp4", seconds=1)
    >>> item = MediaItem(visual=str(clip), audio=None, label=0, split=None, where="example")
    >>> out = decode_item(item, DecodeOptions(frames=2, size=32, clip_seconds=1), ("audio", "visual"))
    >>> {m: tuple(t.shape) for m, t in out.items()}
    {'audio': (1, 64, 101), 'visual': (3, 2, 32, 32)}
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from torch import Tensor

from ..errors import DataError
from .decode import MediaError, probe, read_frames, read_waveform
from .features import frames_to_tensor, spectrogram
from .options import DecodeOptions

__all__ = ["MediaItem", "SkippedItem", "MediaCollection", "decode_item", "check_item", "validate_items", "item_key",
           "MODALITIES"]

MODALITIES = ("audio", "visual")


@dataclass(frozen=True)
class MediaItem:
    """One clip: ``visual`` (a video file or a folder of frames), ``audio`` (a separate file, or
    ``None`` to use the video's own track), the class index, the split and ``where`` it was
    listed (for messages, e.g. ``clips.csv line 4``)."""

    visual: str
    audio: str | None
    label: int
    split: str | None
    where: str

    @property
    def audio_path(self) -> str:
        """The file the audio comes from."""
        return self.audio or self.visual

    @property
    def name(self) -> str:
        """Short name of the clip (its visual file or folder name)."""
        return Path(self.visual).name


@dataclass(frozen=True)
class SkippedItem:
    """A clip left out, with the file at fault and why."""

    where: str
    path: str
    reason: str
    split: str | None = None

    @classmethod
    def from_error(cls, err: MediaError | DataError, *, where: str, split: str | None) -> "SkippedItem":
        """Record ``err`` (a :class:`MediaError` names its file) as a skipped clip."""
        if isinstance(err, MediaError):
            return cls(where=where, path=err.path, reason=err.reason, split=split)
        return cls(where=where, path="", reason=err.message, split=split)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"where": self.where, "path": self.path, "reason": self.reason, "split": self.split}

    def describe(self) -> str:
        """One line: ``clips.csv line 4: no audio track: clips/a.mp4``."""
        return f"{self.where}: {self.reason}" + (f": {self.path}" if self.path else "")


@dataclass
class MediaCollection:
    """What a media source lists: items, class names, splits (``None``: the source has no
    splits) and rows already rejected while reading (only kept with ``skip_bad``)."""

    source: str
    items: list[MediaItem]
    classes: list[str]
    splits: tuple[str, ...] | None
    skipped: list[SkippedItem] = field(default_factory=list)

    def select(self, split: str | None, *, default_split: str = "test") -> tuple[list[MediaItem], str | None]:
        """Items of ``split`` (default ``default_split``) and the split name; all items when the source has none.

        Example: ``items, split = collection.select("train")``.
        """
        if self.splits is None:
            return list(self.items), None
        wanted = split or default_split
        if wanted not in self.splits:
            raise DataError(f"{self.source} has no split {wanted!r}",
                            hint=f"available splits: {', '.join(self.splits)}; choose one with --split")
        return [item for item in self.items if item.split == wanted], wanted

    def skipped_in(self, split: str | None) -> list[SkippedItem]:
        """Rows rejected while reading that belong to ``split`` (all when ``split`` is ``None``)."""
        return [s for s in self.skipped if split is None or s.split in (split, None)]


def _needs(modalities: Sequence[str]) -> tuple[bool, bool]:
    return "audio" in modalities, "visual" in modalities


def check_item(item: MediaItem, modalities: Sequence[str]) -> None:
    """Cheap up-front check (headers only): the files exist, open, and have the tracks needed.

    Raises :class:`MediaError` naming the file and where it was listed.
    """
    need_audio, need_visual = _needs(modalities)
    try:
        info = probe(item.visual) if (need_visual or item.audio is None) else None
        if need_visual and info is not None and not info.has_video:
            raise MediaError(item.visual, "no video track")
        if need_audio:
            if item.audio is not None:
                if not probe(item.audio).has_audio:
                    raise MediaError(item.audio, "no audio track")
            elif info is not None and not info.has_audio:
                what = "no audio track" if info.kind == "file" else "a frame folder has no audio"
                raise MediaError(item.visual, what,
                                 hint="give the clip an audio file (manifest column 'audio'), use --modalities "
                                      "visual, or pass --skip-bad to skip it")
    except MediaError as err:
        raise err.located(item.where) from None


def decode_item(item: MediaItem, options: DecodeOptions, modalities: Sequence[str]) -> dict[str, Tensor]:
    """Decode one clip into ``{modality: tensor}`` for ``modalities`` (``audio``, ``visual``).

    Raises :class:`MediaError` naming the file and where it was listed.
    """
    out: dict[str, Tensor] = {}
    try:
        for modality in modalities:
            if modality == "audio":
                out["audio"] = spectrogram(read_waveform(item.audio_path, options), options)
            elif modality == "visual":
                out["visual"] = frames_to_tensor(read_frames(item.visual, options), options)
            else:
                raise DataError(f"media sources have modalities {', '.join(MODALITIES)}, not {modality!r}")
    except MediaError as err:
        raise err.located(item.where) from None
    return out


def item_key(item: MediaItem, modalities: Sequence[str]) -> str:
    """A key that changes when the clip's files change (path, size, mtime) or the modalities do.

    Missing files raise :class:`MediaError`.
    """
    parts: list[Any] = [list(modalities)]
    need_audio, need_visual = _needs(modalities)
    paths = []
    if need_visual or item.audio is None:
        paths.append(item.visual)
    if need_audio and item.audio is not None:
        paths.append(item.audio)
    for p in paths:
        parts.append([os.path.abspath(p), *_stamp(Path(p), item.where)])
    return hashlib.sha1(json.dumps(parts).encode("utf-8", "surrogatepass")).hexdigest()[:20]


def _stamp(path: Path, where: str) -> list[int]:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise MediaError(path, "file not found", where=where) from None
    except OSError as err:
        raise MediaError(path, f"cannot read ({err.strerror or err})", where=where) from None
    if path.is_dir():  # a frame folder: its newest entry counts
        newest, count = st.st_mtime_ns, 0
        try:
            for entry in os.scandir(path):
                count += 1
                newest = max(newest, entry.stat().st_mtime_ns)
        except OSError:
            pass
        return [newest, count]
    return [st.st_mtime_ns, st.st_size]


def validate_items(items: Sequence[MediaItem], modalities: Sequence[str], *, skip_bad: bool,
                   check: Callable[[MediaItem, Sequence[str]], None] = check_item
                   ) -> tuple[list[MediaItem], list[SkippedItem]]:
    """Run ``check`` on every item: raise on the first bad one, or with ``skip_bad`` drop and list it."""
    good: list[MediaItem] = []
    skipped: list[SkippedItem] = []
    for item in items:
        try:
            check(item, modalities)
        except MediaError as err:
            if not skip_bad:
                raise
            skipped.append(SkippedItem.from_error(err, where=item.where, split=item.split))
            continue
        good.append(item)
    return good, skipped
