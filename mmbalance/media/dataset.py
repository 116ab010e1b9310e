"""A dataset that decodes media on the fly, and the source loaders that plug it into ``load_dataset``.

Registered sources (tried after the tensor formats):

* ``clips.csv`` (any ``*.csv``): a manifest (:mod:`mmbalance.media.manifest`);
* a CREMA-D folder in OGM-GE's layout, or ``cremad:<folder>``;
* a folder of class folders, or ``folders:<folder>``.

Each may carry :class:`DecodeOptions` and ``skip_bad`` as query parameters:
``load_dataset("clips.csv?frames=8&size=112&skip_bad=1", split="test")``.

Example:
    >>> import tempfile, pathlib
    >>> from mmbalance.data import load_dataset
    >>> from mmbalance.media.testing import write_clip
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_clip(root / "dog" / "a.mp4"); _ = write_clip(root / "cat" / "b.mp4")
    >>> ds = load_dataset(f"{root}?frames=2&size=32&clip_seconds=1")
    >>> len(ds), ds.classes, ds.sample_shapes()
    (2, ['cat', 'dog'], {'audio': (1, 64, 101), 'visual': (3, 2, 32, 32)})
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from torch import Tensor

from ..data.dataset import MultimodalDataset, select_modalities
from ..data.sources import SourceRequest, register_source
from ..errors import DataError
from .items import MODALITIES, MediaCollection, MediaItem, SkippedItem, decode_item, validate_items
from .layouts import is_class_folder_root, is_cremad_root, read_class_folders, read_cremad
from .manifest import read_manifest
from .options import DecodeOptions, split_source

__all__ = ["MediaDataset", "open_media", "read_collection", "is_media_source", "CREMAD_PREFIX", "FOLDERS_PREFIX"]

CREMAD_PREFIX = "cremad:"
FOLDERS_PREFIX = "folders:"


class MediaDataset(MultimodalDataset):
    """Clips decoded when a sample is read: ``{"audio": (1, F, T'), "visual": (3, T, H, W)}``, label.

    Files are checked up front (they exist, open, and have the tracks the modalities
    need; headers only). A bad file raises :class:`~mmbalance.media.MediaError` naming it,
    or with ``skip_bad`` is left out and listed in :attr:`skipped`. A file that opens but
    fails to decode later raises when its sample is read.

    Example: ``MediaDataset(items, classes=["cat", "dog"], options=DecodeOptions(frames=8))``.
    """

    def __init__(self, items: Sequence[MediaItem], *, classes: Sequence[str], options: DecodeOptions | None = None,
                 modalities: Sequence[str] | None = None, source: str = "<media>", split: str | None = None,
                 skip_bad: bool = False, skipped: Sequence[SkippedItem] = (), check: bool = True) -> None:
        chosen = select_modalities(MODALITIES, modalities, where=source)
        super().__init__(modalities=chosen, classes=classes, source=source, split=split)
        self.options = options or DecodeOptions()
        self.skip_bad = skip_bad
        if check:
            good, bad = validate_items(items, chosen, skip_bad=skip_bad)
        else:
            good, bad = list(items), []
        self.items: list[MediaItem] = good
        self.skipped: list[SkippedItem] = [*skipped, *bad]
        if not self.items:
            extra = f" ({len(self.skipped)} skipped, first: {self.skipped[0].describe()})" if self.skipped else ""
            raise DataError(f"{self.location} has no usable clip{extra}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[dict[str, Tensor], int]:
        item = self.items[index]
        return decode_item(item, self.options, self.modalities), item.label

    def sample_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes from the options, without decoding anything."""
        shapes = {"audio": self.options.audio_shape, "visual": self.options.visual_shape}
        return {m: tuple(shapes[m]) for m in self.modalities}


def read_collection(path: str | os.PathLike[str], *, skip_bad: bool = False,
                    classes: Sequence[str] | None = None) -> MediaCollection:
    """Read a media source (no query string): a manifest CSV, a CREMA-D folder or class folders.

    ``cremad:`` and ``folders:`` prefixes force a layout. ``classes`` fixes the class names
    and order of a manifest or class folders. Example:
    ``read_collection("data/clips.csv").select("train")``.
    """
    text = os.fspath(path)
    if text.startswith(CREMAD_PREFIX) or (not text.startswith(FOLDERS_PREFIX) and not text.lower().endswith(".csv")
                                          and is_cremad_root(text)):
        if classes is not None:
            raise DataError("classes= does not apply to CREMA-D, whose classes are fixed",
                            hint="drop classes= from the source")
        return read_cremad(text.removeprefix(CREMAD_PREFIX), skip_bad=skip_bad)
    if text.startswith(FOLDERS_PREFIX):
        return read_class_folders(text[len(FOLDERS_PREFIX):], skip_bad=skip_bad, classes=classes)
    if text.lower().endswith(".csv"):
        return read_manifest(text, classes=classes, skip_bad=skip_bad)
    if is_class_folder_root(text):
        return read_class_folders(text, skip_bad=skip_bad, classes=classes)
    if not Path(text).exists():
        raise DataError(f"media source not found: {text}")
    raise DataError(f"{text} is not a media source mmbalance reads",
                    hint="a manifest .csv, a CREMA-D folder (OGM-GE layout) or root/<class>/<clip>.mp4 folders; "
                         "see docs/bring-your-own-data.md")


def is_media_source(source: str | os.PathLike[str]) -> bool:
    """True when ``source`` (query string allowed) names a manifest, a CREMA-D folder or class folders."""
    text = os.fspath(source).strip()
    if text.startswith((CREMAD_PREFIX, FOLDERS_PREFIX)):
        return True
    path = text if os.path.exists(text) else text.partition("?")[0]
    return path.lower().endswith(".csv") or is_cremad_root(path) or is_class_folder_root(path)


def open_media(source: str | os.PathLike[str], *, split: str | None = None, modalities: Sequence[str] | None = None,
               default_split: str = "test", options: DecodeOptions | None = None,
               skip_bad: bool | None = None) -> MediaDataset:
    """Open a media source for on-the-fly decoding; ``options``/``skip_bad`` override the query string.

    Example: ``open_media("clips.csv?frames=8", split="test", skip_bad=True)``.
    """
    text = os.fspath(source).strip()
    spec = split_source(text)
    opts = spec.options.merged(options)
    skip = spec.skip_bad if skip_bad is None else skip_bad
    collection = read_collection(spec.path, skip_bad=skip, classes=spec.classes)
    items, chosen_split = collection.select(split, default_split=default_split)
    if not items:
        raise DataError(f"{spec.path} lists no clip in split {chosen_split!r}")
    return MediaDataset(items, classes=collection.classes, options=opts, modalities=modalities, source=text,
                        split=chosen_split, skip_bad=skip, skipped=collection.skipped_in(chosen_split))


# --- registration with mmbalance.data.load_dataset -------------------------------------------

def _base(source: str) -> str:
    return source if os.path.exists(source) else source.partition("?")[0]


def _load(request: SourceRequest) -> MultimodalDataset:
    return open_media(request.source, split=request.split, modalities=request.modalities,
                      default_split=request.default_split)


def _options_on_prepared(source: str) -> bool:
    base, sep, _ = source.partition("?")
    if not sep or os.path.exists(source):
        return False
    p = Path(base)
    return p.suffix.lower() in (".pt", ".pth") or (p.is_dir() and any(p.glob("*.pt")))


def _refuse_options(request: SourceRequest) -> MultimodalDataset:
    base = request.source.partition("?")[0]
    raise DataError(f"decoding options do not apply to {base}: it already holds tensors",
                    hint="decoding options (--frames, --size, ...) apply to media sources; to change them, "
                         "run `mmbalance data prepare` again with the new options")


register_source(lambda s: _base(s).lower().endswith(".csv"), _load, name="media-manifest",
                form="a manifest .csv (video,label[,audio][,split]) with optional ?frames=4&size=112&...")
register_source(lambda s: s.startswith(CREMAD_PREFIX) or is_cremad_root(_base(s)), _load, name="media-cremad",
                form="a CREMA-D folder in OGM-GE's layout (train.csv, test.csv, AudioWAV/, Image-01-FPS/)")
register_source(lambda s: s.startswith(FOLDERS_PREFIX) or is_class_folder_root(_base(s)), _load,
                name="media-folders", form="a folder of class folders: root/[split/]<class>/<clip>.mp4",
                priority=-1)
register_source(_options_on_prepared, _refuse_options, name="media-options-on-tensors", priority=1,
                form="decoding options (?frames=...) on a media source only")
