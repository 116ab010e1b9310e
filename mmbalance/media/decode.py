"""Decode media with PyAV: video frames (from a file or a folder of images) and mono audio.

Every failure is a :class:`MediaError` (a :class:`~mmbalance.errors.DataError`) that names
the file, so the CLI stops with exit code 2 and a readable line.

Example:
    >>> import tempfile, pathlib
    >>> from mmbalance.media.testing import write_clip
    >>> clip = write_clip(pathlib.Path(tempfile.mkdtemp()) / "c.mp4", seconds=1, fps=8)
    >>> opts = DecodeOptions(frames=2, size=32, clip_seconds=1)
    >>> read_frames(clip, opts).shape, read_waveform(clip, opts).shape
    ((2, 32, 32, 3), torch.Size([16000]))
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from .options import DecodeOptions

__all__ = ["MediaError", "MediaInfo", "probe", "read_frames", "read_waveform", "IMAGE_SUFFIXES",
           "VIDEO_SUFFIXES", "AUDIO_SUFFIXES", "list_images"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".flv", ".mpg", ".mpeg", ".wmv", ".3gp", ".ts")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".wma", ".aiff", ".aif")
_DECODE_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, EOFError, IndexError)


class MediaError(DataError):
    """A media file that is missing, unreadable, truncated or lacks a track it needs.

    ``path`` is the file, ``reason`` the short cause (``"file not found"``, ...).
    """

    def __init__(self, path: str | os.PathLike[str], reason: str | None = None, *, where: str | None = None,
                 hint: str | None = None) -> None:
        if reason is None:  # one argument: a finished message (as DataLoader workers re-raise errors)
            self.path, self.reason, self.where, self._hint = "", str(path), where, hint
            super().__init__(str(path), hint=hint)
            return
        self.path = str(path)
        self.reason = reason
        self.where = where
        self._hint = hint
        suffix = f" ({where})" if where else ""
        super().__init__(f"{reason}: {self.path}{suffix}",
                         hint=hint or "fix or remove the file, or pass --skip-bad to skip it and go on")

    def located(self, where: str | None) -> "MediaError":
        """The same error, saying where the file was listed (``clips.csv line 4``)."""
        if not where or self.where or where == self.path or not self.path:
            return self
        return MediaError(self.path, self.reason, where=where, hint=self._hint)


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` found: ``kind`` is ``"file"`` or ``"frames"`` (a folder of images)."""

    path: str
    kind: str
    has_video: bool
    has_audio: bool
    duration: float | None


def _av() -> Any:
    import av  # noqa: PLC0415 - imported on first use

    return av


def _open(path: Path) -> Any:
    """``av.open`` with every failure turned into a :class:`MediaError`."""
    av = _av()
    if not path.exists():
        raise MediaError(path, "file not found")
    if path.is_dir():
        raise MediaError(path, "expected a media file, found a folder without images")
    try:
        return av.open(os.fspath(path), mode="r", metadata_errors="ignore")
    except av.FFmpegError as err:
        raise MediaError(path, f"cannot open media ({_reason(err)})") from None
    except _DECODE_ERRORS as err:
        raise MediaError(path, f"cannot open media ({_reason(err)})") from None


def _reason(err: BaseException) -> str:
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return re.sub(r"^\[Errno -?\d+\]\s*", "", str(text)).split(": '")[0].strip()


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Open ``path`` (a media file or a folder of images) and report its tracks; reads headers only.

    Example: ``probe("clips/a.mp4").has_audio``.
    """
    path = Path(path)
    if path.is_dir():
        images = list_images(path)
        if not images:
            raise MediaError(path, "folder holds no image files",
                             hint=f"a frame folder needs {', '.join(IMAGE_SUFFIXES)} files")
        return MediaInfo(str(path), "frames", True, False, None)
    with _open(path) as container:
        duration = container.duration / 1_000_000 if container.duration else None
        return MediaInfo(str(path), "file", bool(container.streams.video), bool(container.streams.audio), duration)


def list_images(folder: Path) -> list[Path]:
    """Image files in ``folder`` in natural order (``frame_2`` before ``frame_10``)."""
    try:
        entries = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    except OSError as err:
        raise MediaError(folder, f"cannot list folder ({err.strerror or err})") from None
    return sorted(entries, key=lambda p: [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)])


# --- video ----------------------------------------------------------------------------------

def read_frames(path: str | os.PathLike[str], options: DecodeOptions) -> np.ndarray:
    """``T`` RGB frames ``(T, size, size, 3)`` uint8 from a video file or a folder of images.

    See :class:`DecodeOptions` for how frames are chosen. Example:
    ``read_frames("a.mp4", DecodeOptions(frames=8, size=112))``.
    """
    path = Path(path)
    if path.is_dir():
        return _folder_frames(path, options)
    av = _av()
    try:
        return _video_frames(path, options)
    except MediaError:
        raise
    except av.FFmpegError as err:
        raise MediaError(path, f"cannot decode video ({_reason(err)})") from None
    except _DECODE_ERRORS as err:
        raise MediaError(path, f"cannot decode video ({_reason(err)})") from None


def _to_rgb(frame: Any, size: int) -> np.ndarray:
    return frame.to_ndarray(width=size, height=size, format="rgb24", interpolation="BILINEAR")


def _video_frames(path: Path, options: DecodeOptions) -> np.ndarray:
    count, size = options.num_frames, options.size
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(path, "no video track")
        stream = container.streams.video[0]  # FFmpeg's default threading; parallelism is across clips
        tb = float(stream.time_base) if stream.time_base else None
        start = stream.start_time * tb if (stream.start_time is not None and tb) else 0.0
        rate = float(stream.guessed_rate or stream.average_rate or 0) or 25.0
        duration = _stream_duration(container, stream)
        window = options.clip_seconds
        if options.fps is not None:
            targets: list[float] | None = [(k + 0.5) / options.fps for k in range(count)]
        elif duration:
            span = min(duration, window)
            targets = [(i + 0.5) * span / count for i in range(count)]
        else:
            targets = None  # duration unknown: keep every frame of the window, pick evenly afterwards
        picked: list[np.ndarray] = []
        kept: list[np.ndarray] = []
        prev: Any = None
        prev_rgb: np.ndarray | None = None
        index = 0
        for index, frame in enumerate(container.decode(stream)):
            t = (frame.time - start) if frame.time is not None else index / rate
            if targets is None:
                if t > window:
                    break
                kept.append(_to_rgb(frame, size))
                continue
            while len(picked) < count and t > targets[len(picked)] + 1e-6:
                if prev is None:  # the first frame starts after this target
                    picked.append(_to_rgb(frame, size))
                else:
                    if prev_rgb is None:
                        prev_rgb = _to_rgb(prev, size)
                    picked.append(prev_rgb)
            if len(picked) >= count:
                break
            prev, prev_rgb = frame, None
        if targets is None:
            if not kept:
                raise MediaError(path, "no video frame could be decoded")
            idx = _even_indices(len(kept), count)
            return np.stack([kept[i] for i in idx])
        if prev is None and not picked:
            raise MediaError(path, "no video frame could be decoded")
        if len(picked) < count:
            last = prev_rgb if prev_rgb is not None else _to_rgb(prev, size)
            picked.extend([last] * (count - len(picked)))
        return np.stack(picked)


def _stream_duration(container: Any, stream: Any) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return None


def _even_indices(n: int, count: int) -> list[int]:
    return [min(n - 1, int((i + 0.5) * n / count)) for i in range(count)]


def _folder_frames(folder: Path, options: DecodeOptions) -> np.ndarray:
    images = list_images(folder)
    if not images:
        raise MediaError(folder, "folder holds no image files",
                         hint=f"a frame folder needs {', '.join(IMAGE_SUFFIXES)} files")
    chosen = _even_indices(len(images), options.num_frames)
    cache: dict[int, np.ndarray] = {}
    for i in chosen:
        if i not in cache:
            cache[i] = _read_image(images[i], options.size)
    return np.stack([cache[i] for i in chosen])


def _read_image(path: Path, size: int) -> np.ndarray:
    av = _av()
    try:
        # a file object, so names with '%' are not taken as image2 patterns
        with open(path, "rb") as fh, av.open(fh, mode="r") as container:
            frame = next(container.decode(video=0), None)
            if frame is None:
                raise MediaError(path, "image holds no picture")
            return _to_rgb(frame, size)
    except MediaError:
        raise
    except FileNotFoundError:
        raise MediaError(path, "file not found") from None
    except av.FFmpegError as err:
        raise MediaError(path, f"cannot decode image ({_reason(err)})") from None
    except _DECODE_ERRORS as err:
        raise MediaError(path, f"cannot decode image ({_reason(err)})") from None


# --- audio ----------------------------------------------------------------------------------

def read_waveform(path: str | os.PathLike[str], options: DecodeOptions) -> Tensor:
    """Mono float waveform ``(n_samples,)`` at ``options.sample_rate``, cut or padded to the clip length.

    Any codec FFmpeg reads (WAV, FLAC, MP3, AAC in mp4, ...); the first audio track is used.
    Example: ``read_waveform("a.wav", DecodeOptions(sample_rate=22050, clip_seconds=3))``.
    """
    path = Path(path)
    av = _av()
    try:
        wave, rate = _decode_audio(path, options)
    except MediaError:
        raise
    except av.FFmpegError as err:
        raise MediaError(path, f"cannot decode audio ({_reason(err)})") from None
    except _DECODE_ERRORS as err:
        raise MediaError(path, f"cannot decode audio ({_reason(err)})") from None
    if rate != options.sample_rate:
        wave = _resampler(rate, options.sample_rate)(wave)
    return _fit_length(wave, options.n_samples, options.pad)


def _decode_audio(path: Path, options: DecodeOptions) -> tuple[Tensor, int]:
    av = _av()
    with _open(path) as container:
        if not container.streams.audio:
            what = "no audio track" if container.streams.video else "no audio track (not an audio file?)"
            raise MediaError(path, what, hint="give the clip an audio file (manifest column 'audio'), "
                                              "use --modalities visual, or pass --skip-bad to skip it")
        stream = container.streams.audio[0]
        rate = int(stream.rate or stream.codec_context.sample_rate or 0)
        if rate <= 0:
            raise MediaError(path, "audio track has no sample rate")
        # planar float at the track's own rate and layout; channels are averaged here and the
        # rate is converted with torchaudio below
        resampler = av.AudioResampler(format="fltp", layout=None, rate=rate)
        need = int(math.ceil(options.clip_seconds * rate)) + rate // 20
        chunks: list[np.ndarray] = []
        total = 0
        finished = True
        for frame in container.decode(stream):
            frame.pts = None  # let the resampler ignore gaps/odd timestamps
            for out in resampler.resample(frame):
                arr = _mono(out.to_ndarray())
                chunks.append(arr)
                total += arr.size
            if total >= need:
                finished = False
                break
        if finished:
            for out in resampler.resample(None):
                arr = _mono(out.to_ndarray())
                chunks.append(arr)
                total += arr.size
    if total == 0:
        raise MediaError(path, "audio track holds no samples")
    wave = torch.from_numpy(np.concatenate(chunks).astype(np.float32, copy=False))
    if not bool(torch.isfinite(wave).all()):
        raise MediaError(path, "audio holds non-finite samples")
    return wave, rate


def _mono(planar: np.ndarray) -> np.ndarray:
    """``(channels, n)`` planar samples → ``(n,)``, the mean of the channels."""
    return planar[0] if planar.shape[0] == 1 else planar.mean(axis=0)


_RESAMPLERS: dict[tuple[int, int], Any] = {}


def _resampler(orig: int, new: int) -> Any:
    key = (orig, new)
    if key not in _RESAMPLERS:
        import torchaudio.transforms as T  # noqa: PLC0415

        _RESAMPLERS[key] = T.Resample(orig, new)
    return _RESAMPLERS[key]


def _fit_length(wave: Tensor, n: int, pad: str) -> Tensor:
    if wave.numel() >= n:
        return wave[:n].contiguous()
    if pad == "loop":
        reps = -(-n // wave.numel())
        return wave.repeat(reps)[:n].contiguous()
    return torch.nn.functional.pad(wave, (0, n - wave.numel()))
