"""Write small media files with PyAV, for tests, benchmarks and trying mmbalance out.

Nothing is downloaded: clips are synthetic (a moving bar and a tone whose pitch and
brightness depend on ``seed``).

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> write_clip(d / "a.mp4", seconds=0.5).suffix, write_wav(d / "a.wav", seconds=0.5).suffix
    ('.mp4', '.wav')
"""

from __future__ import annotations

import fractions
import os
from pathlib import Path
from typing import cast

import numpy as np

__all__ = ["write_clip", "write_wav", "write_image", "video_encoder"]


def video_encoder() -> str:
    """The H.264 encoder this PyAV build has (``libx264``, else ``h264``), or ``mpeg4``."""
    import av  # noqa: PLC0415
    from av.codec import Codec  # noqa: PLC0415

    for name in ("libx264", "h264", "mpeg4"):
        try:
            Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - not in this build
            continue
    raise RuntimeError(f"PyAV {av.__version__} has no H.264 or MPEG-4 encoder")


def _picture(i: int, n: int, width: int, height: int, seed: int, texture: bool = False) -> np.ndarray:
    if texture:  # camera-like noise, so the encoder works (and the decoder) about as hard as on real video
        img = np.random.default_rng(seed * 10_000 + i).integers(0, 64, (height, width, 3), dtype=np.uint8)
    else:
        img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] += np.uint8((40 * seed) % 192)
    img[..., 2] = np.maximum(img[..., 2], (i * 255) // max(n - 1, 1))
    x = (i * width) // max(n, 1)
    img[:, x:x + max(1, width // 8), 1] = 220
    return img


def _tone(seconds: float, sample_rate: int, seed: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    wave = 0.4 * np.sin(2 * np.pi * (220 + 110 * seed) * t)
    return np.repeat(wave[None, :], channels, axis=0).astype(np.float32)


def write_clip(path: str | os.PathLike[str], *, seconds: float = 1.0, fps: int = 8, width: int = 64,
               height: int = 48, audio: bool = True, sample_rate: int = 16000, channels: int = 1,
               seed: int = 0, codec: str | None = None, texture: bool = False) -> Path:
    """Write an mp4 (H.264 video, AAC audio unless ``audio=False``) of ``seconds`` and return its path.

    ``texture=True`` adds noise to every frame, so decoding costs about what real footage costs.
    """
    import av  # noqa: PLC0415

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = max(1, int(round(seconds * fps)))
    with av.open(os.fspath(path), mode="w") as container:
        vs = cast("av.VideoStream", container.add_stream(codec or video_encoder(), rate=fps))
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        if vs.codec_context.name in ("libx264", "h264"):
            vs.options = {"preset": "ultrafast"}
        astream = None
        if audio:
            astream = container.add_stream("aac", rate=sample_rate)
            astream.layout = "mono" if channels == 1 else "stereo"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(_picture(i, n, width, height, seed, texture), format="rgb24")
            for packet in vs.encode(frame):
                container.mux(packet)
        for packet in vs.encode(None):
            container.mux(packet)
        if astream is not None:
            wave = _tone(seconds, sample_rate, seed, channels)
            step = 1024
            for s in range(0, wave.shape[1], step):
                chunk = np.ascontiguousarray(wave[:, s:s + step])
                aframe = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=astream.layout.name)
                aframe.sample_rate = sample_rate
                aframe.pts = s
                aframe.time_base = fractions.Fraction(1, sample_rate)
                for packet in astream.encode(aframe):
                    container.mux(packet)
            for packet in astream.encode(None):
                container.mux(packet)
    return path


def write_wav(path: str | os.PathLike[str], *, seconds: float = 1.0, sample_rate: int = 22050, channels: int = 1,
              seed: int = 0) -> Path:
    """Write a 16-bit PCM WAV tone of ``seconds`` and return its path."""
    import av  # noqa: PLC0415

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = (_tone(seconds, sample_rate, seed, channels) * 32767).astype(np.int16)
    layout = "mono" if channels == 1 else "stereo"
    with av.open(os.fspath(path), mode="w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=sample_rate)
        stream.layout = layout
        packed = np.ascontiguousarray(wave.T.reshape(1, -1))
        frame = av.AudioFrame.from_ndarray(packed, format="s16", layout=layout)
        frame.sample_rate = sample_rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_image(path: str | os.PathLike[str], *, width: int = 64, height: int = 48, index: int = 0,
                count: int = 1, seed: int = 0) -> Path:
    """Write one JPEG frame (as CREMA-D's ``Image-01-FPS/<clip>/frame_00001.jpg``) and return its path."""
    import av  # noqa: PLC0415

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = _picture(index, count, width, height, seed)
    with open(path, "wb") as fh, av.open(fh, mode="w", format="image2pipe") as container:
        stream = container.add_stream("mjpeg", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
        for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
