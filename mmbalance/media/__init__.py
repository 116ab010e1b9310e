"""Real media in: video and audio files, the dataset layouts people already have, and a prepared cache.

Importing this package registers the media sources with :func:`mmbalance.data.load_dataset`:
a manifest ``*.csv``, a CREMA-D folder in OGM-GE's layout and a folder of class folders,
each optionally carrying decoding options (``clips.csv?frames=8&size=112&skip_bad=1``).
:func:`prepare` decodes a source once into the tensor format (see
``docs/bring-your-own-data.md``).

Example:
    >>> import tempfile, pathlib
    >>> from mmbalance.data import load_dataset
    >>> from mmbalance.media.testing import write_clip
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_clip(d / "a.mp4"); _ = write_clip(d / "b.mp4", seed=1)
    >>> _ = (d / "clips.csv").write_text("video,label\\na.mp4,cat\\nb.mp4,dog\\n")
    >>> ds = load_dataset(f"{d}/clips.csv?frames=2&size=32&clip_seconds=1")
    >>> inputs, label = ds[1]
    >>> tuple(inputs["audio"].shape), tuple(inputs["visual"].shape), ds.classes[label]
    ((1, 64, 101), (3, 2, 32, 32), 'dog')
"""

from __future__ import annotations

from .dataset import CREMAD_PREFIX, FOLDERS_PREFIX, MediaDataset, is_media_source, open_media, read_collection
from .decode import MediaError, MediaInfo, probe, read_frames, read_waveform
from .features import frames_to_tensor, spectrogram
from .items import MediaCollection, MediaItem, SkippedItem, decode_item
from .layouts import CREMAD_CLASSES, read_class_folders, read_cremad
from .manifest import read_manifest
from .options import DecodeOptions, SourceSpec, split_source, with_options
from .prepare import PrepareResult, prepare

__all__ = [
    "DecodeOptions",
    "SourceSpec",
    "split_source",
    "with_options",
    "MediaError",
    "MediaInfo",
    "probe",
    "read_frames",
    "read_waveform",
    "spectrogram",
    "frames_to_tensor",
    "MediaItem",
    "SkippedItem",
    "MediaCollection",
    "decode_item",
    "read_manifest",
    "read_cremad",
    "read_class_folders",
    "CREMAD_CLASSES",
    "MediaDataset",
    "open_media",
    "read_collection",
    "is_media_source",
    "CREMAD_PREFIX",
    "FOLDERS_PREFIX",
    "prepare",
    "PrepareResult",
]
