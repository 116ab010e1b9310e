"""Which decoding options made a dataset, and whether a model was trained on media decoded the same way.

A model trained on clips decoded one way (4 frames of 112×112, 64 mel bands) still runs on clips
decoded another way when its encoders pool adaptively, and answers for inputs it never saw. The
options behind a data source are read from the source itself (a media source's query string,
``clips.csv?fps=8``) or from the ``prepare.json`` that ``mmbalance data prepare`` wrote beside a
prepared folder; a checkpoint's training data is the ``data`` of the ``run.json`` beside it.

Example:
    >>> here, there = DecodeOptions(fps=8, clip_seconds=1), DecodeOptions(frames=4, size=64, clip_seconds=1)
    >>> describe_differences(decoding_differences(here, there))
    'frames 8 here, 4 there; fps 8 here, unset there; size 112 here, 64 there'
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MMBalanceError
from .dataset import is_media_source
from .options import DecodeOptions, split_source
from .prepare import SUMMARY_FILE

__all__ = ["DataDecoding", "source_decoding", "training_decoding", "decoding_differences", "describe_differences",
           "decoding_mismatch"]

RUN_FILE = "run.json"  # mmbalance.training.resume.RUN_FILE (media does not import training)
_MAX_JSON_BYTES = 16 << 20  # a prepare.json lists skipped clips; more than this is not one


@dataclass(frozen=True)
class DataDecoding:
    """The decoding options behind a dataset and where they were read (``prepare.json`` or the source string)."""

    options: DecodeOptions
    origin: str  # "prepare.json" or "options"
    location: str  # the prepare.json's path, or the source string


def source_decoding(source: str | os.PathLike[str]) -> DataDecoding | None:
    """The decoding options behind ``source``; ``None`` when it is no decoded media (synthetic data, plain tensors).

    A media source (``clips.csv?frames=8``, a CREMA-D folder, class folders) carries its options,
    the defaults filling the rest; a prepared folder, or a split file in one, has them in its
    ``prepare.json``. An unreadable or malformed ``prepare.json`` counts as none.

    Example:
        >>> source_decoding("clips.csv?frames=8&size=64").options.size
        64
        >>> source_decoding("synthetic:av-dominance") is None
        True
    """
    text = os.fspath(source).strip()
    if not text:
        return None
    path = Path(text)
    for folder in ((path,) if path.is_dir() else (path.parent,) if path.is_file() else ()):
        summary = folder / SUMMARY_FILE
        if summary.is_file():
            options = _read_prepared_options(summary)
            return DataDecoding(options, "prepare.json", str(summary)) if options is not None else None
    if not is_media_source(text):
        return None
    try:
        return DataDecoding(split_source(text).options, "options", text)
    except MMBalanceError:
        return None  # loading the data says what is wrong with it


def training_decoding(checkpoint: str | os.PathLike[str]) -> DataDecoding | None:
    """The decoding options of the data the finetune run that wrote ``checkpoint`` trained on, if known.

    Reads ``data`` from the ``run.json`` beside the checkpoint; a relative path is read from the current directory,
    as the run did.

    Example:
        >>> training_decoding("no/such/run/best.pt") is None
        True
    """
    run_file = Path(checkpoint).parent / RUN_FILE
    info = _read_json(run_file)
    config = info.get("config") if isinstance(info, dict) else None
    data = config.get("data") if isinstance(config, dict) else None
    if not isinstance(data, str) or not data.strip():
        return None
    return source_decoding(data)


def decoding_differences(here: DecodeOptions, there: DecodeOptions) -> list[tuple[str, Any, Any]]:
    """``(option, value here, value there)`` for each option whose effect differs (``None``: unset).

    Compared as decoded: the number of frames (``frames``, or ``fps`` × ``clip_seconds``), the FFT size and hop
    (``n_fft``, ``hop_length``, defaults resolved), ``n_mels`` only for mel spectrograms.

    Example:
        >>> decoding_differences(DecodeOptions(frames=4), DecodeOptions())
        []
        >>> decoding_differences(DecodeOptions(n_mels=32), DecodeOptions())
        [('n_mels', 32, 64)]
    """
    a, b = _effective(here), _effective(there)
    return [(key, a[key], b[key]) for key in a if a[key] != b[key]]


def describe_differences(differences: list[tuple[str, Any, Any]]) -> str:
    """``"fps 8 here, 4 there; size 64 here, 112 there"``."""
    return "; ".join(f"{key} {_show(x)} here, {_show(y)} there" for key, x, y in differences)


def decoding_mismatch(data: str | os.PathLike[str], checkpoint: str | os.PathLike[str]) -> str | None:
    """``"decoding differs from the training data's ...: frames 8 here, 4 there"`` when ``data`` is decoded
    otherwise than the data ``checkpoint`` was trained on, else ``None`` (callers add what it means for them).

    Example:
        >>> decoding_mismatch("clips.csv?fps=8", "no/such/run/best.pt") is None  # no run.json: nothing to compare
        True
    """
    there = training_decoding(checkpoint)
    if there is None:
        return None
    here = source_decoding(data)
    if here is None:
        return None
    differences = decoding_differences(here.options, there.options)
    if not differences:
        return None
    where = (f"prepare.json ({there.location})" if there.origin == "prepare.json"
             else f"options ({there.location})")
    return f"decoding differs from the training data's {where}: {describe_differences(differences)}"


def _effective(options: DecodeOptions) -> dict[str, Any]:
    return {"frames": options.num_frames, "fps": options.fps, "size": options.size,
            "sample_rate": options.sample_rate, "clip_seconds": float(options.clip_seconds),
            "spectrogram": options.spectrogram,
            "n_mels": options.n_mels if options.spectrogram == "mel" else None,
            "n_fft": options.fft_size, "hop_length": options.hop, "normalize": options.normalize,
            "pad": options.pad}


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_json(path: Path) -> Any:
    try:
        if not path.is_file() or path.stat().st_size > _MAX_JSON_BYTES:
            return None
        return json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _read_prepared_options(summary: Path) -> DecodeOptions | None:
    info = _read_json(summary)
    options = info.get("options") if isinstance(info, dict) else None
    if not isinstance(options, dict):
        return None
    try:
        return DecodeOptions.from_mapping(options, where=str(summary))
    except (MMBalanceError, TypeError, ValueError):
        return None
