"""Small media made with PyAV for the tests of :mod:`mmbalance.media` (nothing is downloaded).

``media`` is made once per session: 64×48 clips of 1 s at 8 fps with AAC audio, WAV files,
frame folders, and the bad cases (corrupt, truncated, no audio track, very short,
non-ASCII name).
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

import mmbalance
from mmbalance.media import DecodeOptions
from mmbalance.media.testing import write_clip, write_image, write_wav

#: Small, fast decoding settings used throughout the tests.
TINY = DecodeOptions(frames=2, size=32, clip_seconds=1.0, n_mels=16)


@dataclass(frozen=True)
class Media:
    root: Path
    clips: tuple[Path, ...]   # good mp4 clips, seed i
    unicode: Path             # "ünïcødé clip.mp4"
    short: Path               # 0.125 s, one frame
    no_audio: Path            # video only
    corrupt: Path             # random bytes
    truncated: Path           # first half of a good mp4
    wav: Path                 # 22050 Hz stereo, 0.5 s
    frames: Path              # a folder of 5 jpgs


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    root = tmp_path_factory.mktemp("media")
    clips = tuple(write_clip(root / f"clip{i}.mp4", seed=i) for i in range(4))
    good = clips[0].read_bytes()
    truncated = root / "truncated.mp4"
    truncated.write_bytes(good[: len(good) // 2])
    corrupt = root / "corrupt.mp4"
    corrupt.write_bytes(bytes(range(256)) * 20)
    frames = root / "frames"
    for i in range(5):
        write_image(frames / f"frame_{i + 1:05d}.jpg", index=i, count=5)
    return Media(root=root, clips=clips, unicode=write_clip(root / "ünïcødé clip.mp4", seed=5),
                 short=write_clip(root / "short.mp4", seconds=0.125),
                 no_audio=write_clip(root / "noaudio.mp4", audio=False),
                 corrupt=corrupt, truncated=truncated, wav=write_wav(root / "voice.wav", seconds=0.5, channels=2),
                 frames=frames)


@pytest.fixture
def tiny() -> DecodeOptions:
    return TINY


def write_csv(path: Path, rows: list[str], header: str = "video,label") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(name="write_csv")
def write_csv_fixture():
    """:func:`write_csv` as a fixture: ``write_csv(path, ["a.mp4,cat"], header="video,label")``."""
    return write_csv


@pytest.fixture
def cli_app() -> Iterator[Any]:
    """The typer app with ``data prepare`` registered.

    When ``mmbalance.cli`` does not import (a sibling command module is broken), ``app``,
    ``cmd_data`` and ``cmd_media`` are loaded on their own and dropped afterwards.
    """
    try:
        importlib.import_module("mmbalance.cli")
        importlib.import_module("mmbalance.cli.cmd_media")
        yield importlib.import_module("mmbalance.cli.app").app
        return
    except ImportError as err:
        warnings.warn(f"mmbalance.cli does not import ({err}); testing app + cmd_data + cmd_media alone",
                      stacklevel=1)
    before = {name: mod for name, mod in sys.modules.items() if name.startswith("mmbalance.cli")}
    for name in before:
        del sys.modules[name]
    stub = types.ModuleType("mmbalance.cli")
    stub.__path__ = [str(Path(mmbalance.__file__).parent / "cli")]
    sys.modules["mmbalance.cli"] = stub
    try:
        app_module = importlib.import_module("mmbalance.cli.app")
        importlib.import_module("mmbalance.cli.cmd_data")
        importlib.import_module("mmbalance.cli.cmd_media")
        yield app_module.app
    finally:
        for name in [n for n in sys.modules if n.startswith("mmbalance.cli")]:
            del sys.modules[name]
        sys.modules.update(before)
