"""How media become tensors: :class:`DecodeOptions`, and options carried in a source string.

A media source may carry its options as query parameters, so ``load_dataset`` and every
command that takes ``--data`` accept them unchanged::

    clips.csv?frames=8&size=112&spectrogram=stft&skip_bad=1

Besides the :class:`DecodeOptions` fields, ``skip_bad=1`` skips bad clips and
``classes=cat,dog`` fixes a manifest's class names and order.

Example:
    >>> spec = split_source("clips.csv?frames=8&size=96")
    >>> spec.path, spec.options.num_frames, spec.options.size, spec.skip_bad
    ('clips.csv', 8, 96, False)
    >>> with_options("clips.csv", DecodeOptions(frames=8), skip_bad=True)
    'clips.csv?frames=8&skip_bad=1'
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import parse_qsl, quote

from ..errors import UsageError

__all__ = ["DecodeOptions", "SourceSpec", "DEFAULT_FRAMES", "split_source", "with_options", "OPTION_KEYS"]

DEFAULT_FRAMES = 4
MIN_SAMPLE_RATE = 1000  # Hz; below this no speech or sound is left to hear
SPECTROGRAMS = ("mel", "stft")
NORMALIZATIONS = ("imagenet", "unit")
AUDIO_PADS = ("zero", "loop")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DecodeOptions:
    """Settings that turn one clip into ``audio (1, F, T')`` and ``visual (3, T, H, W)`` tensors.

    Video: ``frames`` frames sampled evenly over the first ``clip_seconds`` (or the whole
    clip when shorter), or with ``fps`` set, ``round(fps * clip_seconds)`` frames at that
    rate (a shorter clip repeats its last frame). Frames are resized (not cropped) to
    ``size × size`` and scaled to [0, 1], then normalized with ImageNet mean/std
    (``normalize="imagenet"``, default) or left in [0, 1] (``"unit"``).

    Audio: the file's first audio track (or the manifest's separate audio file), mixed
    to mono, resampled to ``sample_rate``, cut or padded to ``clip_seconds`` (``pad``:
    ``"zero"`` silence, or ``"loop"`` to repeat the clip as OGM-GE does), then
    ``spectrogram="mel"``: log-mel power in dB (``n_mels`` bands, 25 ms window, 10 ms hop
    unless ``n_fft``/``hop_length`` say otherwise) or ``"stft"``: OGM-GE's
    ``log(|STFT| + 1e-7)`` (``n_fft=512``, hop 16 ms = 353 samples at 22050 Hz).

    Example:
        >>> DecodeOptions(fps=2, clip_seconds=2).num_frames
        4
        >>> DecodeOptions().visual_shape, DecodeOptions().audio_shape
        ((3, 4, 112, 112), (1, 64, 301))
    """

    frames: int | None = None
    fps: float | None = None
    size: int = 112
    sample_rate: int = 16000
    clip_seconds: float = 3.0
    n_mels: int = 64
    spectrogram: str = "mel"
    normalize: str = "imagenet"
    pad: str = "zero"
    n_fft: int | None = None
    hop_length: int | None = None

    def __post_init__(self) -> None:
        if self.frames is not None and self.fps is not None:
            raise UsageError("pass either frames or fps, not both",
                             hint="frames samples T frames evenly; fps samples fps × clip_seconds frames")
        _positive_int(self, "frames", allow_none=True)
        _positive_int(self, "size")
        _positive_int(self, "sample_rate")
        _positive_int(self, "n_mels")
        _positive_int(self, "n_fft", allow_none=True)
        _positive_int(self, "hop_length", allow_none=True)
        for name in ("fps", "clip_seconds"):
            value = getattr(self, name)
            if value is None and name == "fps":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
                    or value != value or value == float("inf"):
                raise UsageError(f"{name} must be a positive number, got {value!r}")
        for name, allowed in (("spectrogram", SPECTROGRAMS), ("normalize", NORMALIZATIONS), ("pad", AUDIO_PADS)):
            if getattr(self, name) not in allowed:
                raise UsageError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.sample_rate < MIN_SAMPLE_RATE:
            raise UsageError(f"sample_rate must be at least {MIN_SAMPLE_RATE} Hz, got {self.sample_rate}")
        if self.fft_size < 2:
            raise UsageError(f"n_fft must be at least 2, got {self.fft_size}")
        if self.spectrogram == "mel" and self.fft_size // 2 + 1 < self.n_mels:
            raise UsageError(f"n_fft {self.fft_size} gives {self.fft_size // 2 + 1} frequency bins, fewer than "
                             f"n_mels {self.n_mels}: some mel bands would be empty",
                             hint="raise n_fft or lower n_mels")
        if self.num_frames < 1:
            raise UsageError(f"fps {self.fps} × clip_seconds {self.clip_seconds} gives no frame",
                             hint="raise fps or clip_seconds")
        if self.n_samples < self.window_length:
            raise UsageError(f"clip_seconds {self.clip_seconds} is shorter than one analysis window "
                             f"({self.window_length} samples at {self.sample_rate} Hz)")

    # --- derived values ---------------------------------------------------------------------

    @property
    def num_frames(self) -> int:
        """Frames per clip, ``T``."""
        if self.fps is not None:
            return int(round(self.fps * self.clip_seconds))
        return self.frames if self.frames is not None else DEFAULT_FRAMES

    @property
    def n_samples(self) -> int:
        """Audio samples per clip after cutting or padding."""
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def fft_size(self) -> int:
        """FFT size of the spectrogram."""
        if self.n_fft is not None:
            return self.n_fft
        if self.spectrogram == "stft":
            return 512
        return 1 << max(0, (self.window_length - 1).bit_length())

    @property
    def window_length(self) -> int:
        """Analysis window in samples (25 ms for mel unless ``n_fft`` is set, ``n_fft`` for stft)."""
        if self.n_fft is not None:
            return self.n_fft
        if self.spectrogram == "stft":
            return 512
        return max(1, int(round(0.025 * self.sample_rate)))

    @property
    def hop(self) -> int:
        """Hop between spectrogram columns in samples."""
        if self.hop_length is not None:
            return self.hop_length
        if self.spectrogram == "stft":
            return max(1, int(round(self.sample_rate * 353 / 22050)))
        return max(1, int(round(0.010 * self.sample_rate)))

    @property
    def audio_shape(self) -> tuple[int, int, int]:
        """Shape of one audio sample, ``(1, F, T')``."""
        bins = self.n_mels if self.spectrogram == "mel" else self.fft_size // 2 + 1
        pad = self.fft_size // 2  # torch.stft(center=True) pads both ends by n_fft // 2
        return (1, bins, (self.n_samples + 2 * pad - self.fft_size) // self.hop + 1)

    @property
    def visual_shape(self) -> tuple[int, int, int, int]:
        """Shape of one visual sample, ``(3, T, H, W)``."""
        return (3, self.num_frames, self.size, self.size)

    # --- (de)serialisation ------------------------------------------------------------------

    def changed(self) -> dict[str, Any]:
        """Options that differ from the defaults (what a source string needs to carry)."""
        default = DecodeOptions()
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) != getattr(default, f.name)}

    def merged(self, other: "DecodeOptions | None") -> "DecodeOptions":
        """These options with those ``other`` changes from the defaults put on top.

        Example:
            >>> DecodeOptions(size=64).merged(DecodeOptions(frames=2)).to_query()
            'frames=2&size=64'
        """
        values = self.changed()
        if other is not None:
            changed = other.changed()
            if "fps" in changed:
                values.pop("frames", None)
            if "frames" in changed:
                values.pop("fps", None)
            values.update(changed)
        return DecodeOptions(**values)

    def to_dict(self) -> dict[str, Any]:
        """All options as a JSON-ready dict."""
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """A short hash of everything that changes the tensors (cache key of prepared clips)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def to_query(self) -> str:
        """``frames=8&size=96`` for the options that differ from the defaults."""
        return "&".join(f"{k}={_fmt(v)}" for k, v in self.changed().items())

    @classmethod
    def from_mapping(cls, values: dict[str, Any], *, where: str = "options") -> "DecodeOptions":
        """Build from strings or values, e.g. parsed query parameters; names may use ``-`` or ``_``.

        Example:
            >>> DecodeOptions.from_mapping({"sample-rate": "22050", "spectrogram": "stft"}).sample_rate
            22050
        """
        kwargs: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for raw_key, value in values.items():
            key = raw_key.replace("-", "_")
            if key not in types:
                raise UsageError(f"unknown decoding option {raw_key!r} in {where}",
                                 hint=f"accepted: {', '.join(OPTION_KEYS)}")
            kwargs[key] = _convert(key, value, types[key], where)
        return cls(**kwargs)


OPTION_KEYS: tuple[str, ...] = tuple(f.name for f in fields(DecodeOptions)) + ("skip_bad", "classes")


@dataclass(frozen=True)
class SourceSpec:
    """A media source string taken apart: the path, decoding options, ``skip_bad`` and fixed ``classes``."""

    path: str
    options: DecodeOptions
    skip_bad: bool = False
    classes: tuple[str, ...] | None = None

    def to_source(self) -> str:
        """Back to ``path?query`` (only what differs from the defaults)."""
        query = self.options.to_query()
        extra = []
        if self.skip_bad:
            extra.append("skip_bad=1")
        if self.classes is not None:
            extra.append("classes=" + quote(",".join(self.classes), safe=","))
        query = "&".join(q for q in (query, *extra) if q)
        return f"{self.path}?{query}" if query else self.path


def split_source(source: str | os.PathLike[str]) -> SourceSpec:
    """Split ``path?key=value&...`` into a :class:`SourceSpec`.

    A path that exists as typed (even with a ``?`` in its name) is taken literally.

    Example:
        >>> spec = split_source("data/cremad?frames=2&skip_bad=true&classes=NEU,HAP")
        >>> spec.path, spec.options.frames, spec.skip_bad, spec.classes
        ('data/cremad', 2, True, ('NEU', 'HAP'))
    """
    text = os.fspath(source)
    path, sep, query = text.partition("?")
    if not sep or os.path.exists(text):
        return SourceSpec(text, DecodeOptions())
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise UsageError(f"cannot parse the options in {text!r}",
                         hint="write them as path?frames=8&size=112") from None
    values = dict(pairs)
    skip_raw = values.pop("skip_bad", values.pop("skip-bad", None))
    skip_bad = False if skip_raw is None else _convert("skip_bad", skip_raw, "bool", text)
    classes_raw = values.pop("classes", None)
    classes = None
    if classes_raw is not None:
        classes = tuple(c.strip() for c in classes_raw.split(",") if c.strip())
        if not classes:
            raise UsageError(f"empty 'classes' in {text!r}", hint="write classes=cat,dog")
    return SourceSpec(path, DecodeOptions.from_mapping(values, where=text), skip_bad, classes)


def with_options(source: str | os.PathLike[str], options: DecodeOptions | None = None, *,
                 skip_bad: bool = False) -> str:
    """``source`` with ``options`` (those that differ from the defaults) and ``skip_bad`` appended.

    Options already in ``source`` are kept unless ``options`` sets them too. Used by CLIs
    to pass ``--frames``, ``--size``, ... and ``--skip-bad`` through ``load_dataset``.

    Example:
        >>> with_options("clips.csv?size=64", DecodeOptions(frames=2))
        'clips.csv?frames=2&size=64'
    """
    spec = split_source(source)
    merged = spec.options.merged(options)
    return SourceSpec(spec.path, merged, spec.skip_bad or skip_bad, spec.classes).to_source()


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value) if abs(value) < 1e15 else value
    return quote(str(value), safe="")


def _positive_int(opts: DecodeOptions, name: str, *, allow_none: bool = False) -> None:
    value = getattr(opts, name)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value!r}")


def _convert(key: str, value: Any, typ: Any, where: str) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    typ = str(typ)
    try:
        if typ == "bool":
            low = text.lower()
            if low in ("1", "true", "yes", "on", ""):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if "None" in typ and text.lower() in ("", "none"):
            return None
        if typ.startswith("int"):
            return int(text)
        if typ.startswith("float"):
            return float(text)
    except ValueError:
        kind = {"bool": "true or false"}.get(typ, "a number")
        raise UsageError(f"option {key}={value!r} in {where} is not {kind}") from None
    return text
