"""Decoding options for every command that takes a dataset (``data prepare``, ``audit``, ``finetune``).

Declare them once with :func:`with_decoding_options`: a command names one parameter
``decoding``, and the decorator puts the nine ``--frames ... --audio-pad`` options in its
place (typer sees them as ordinary parameters) and hands the command the ones given, as a
dict. Fold them into the ``--data`` source string with :func:`media_data`; ``load_dataset``
then decodes media with them (and refuses them for tensor files)::

    @app.command("audit")
    @with_decoding_options
    def audit(data: DataOpt, decoding: dict[str, Any], skip_bad: SkipBadOpt = False, ...):
        data = media_data(data, skip_bad=skip_bad, **decoding)
"""

from __future__ import annotations

import functools
import inspect
from typing import Annotated, Any, Callable, Optional, TypeVar, get_type_hints

import typer

from ..errors import UsageError

_PANEL = "Media decoding"

FramesOpt = Annotated[Optional[int], typer.Option("--frames", min=1, rich_help_panel=_PANEL, help="Video frames per clip, sampled evenly over the clip window; default 4.")]
FpsOpt = Annotated[Optional[float], typer.Option("--fps", min=0.001, rich_help_panel=_PANEL, help="Sample frames at this rate instead (fps × clip seconds frames).")]
SizeOpt = Annotated[Optional[int], typer.Option("--size", min=1, rich_help_panel=_PANEL, help="Frames are resized to SIZE×SIZE; default 112.")]
SampleRateOpt = Annotated[Optional[int], typer.Option("--sample-rate", min=1, rich_help_panel=_PANEL, help="Audio is resampled to this rate in Hz; default 16000.")]
ClipSecondsOpt = Annotated[Optional[float], typer.Option("--clip-seconds", min=0.001, rich_help_panel=_PANEL, help="Audio is cut or padded to this length; frames come from the same window; default 3.")]
NMelsOpt = Annotated[Optional[int], typer.Option("--n-mels", min=1, rich_help_panel=_PANEL, help="Mel bands of the log-mel spectrogram; default 64.")]
SpectrogramOpt = Annotated[Optional[str], typer.Option("--spectrogram", rich_help_panel=_PANEL, help="mel (log-mel, dB) or stft (OGM-GE's log |STFT|); default mel.")]
NormalizeOpt = Annotated[Optional[str], typer.Option("--normalize", rich_help_panel=_PANEL, help="Frames: imagenet (mean/std) or unit ([0, 1]); default imagenet.")]
AudioPadOpt = Annotated[Optional[str], typer.Option("--audio-pad", rich_help_panel=_PANEL, help="Short audio: zero (silence) or loop (repeat, as OGM-GE); default zero.")]
#: the decoding options in the order --help lists them (``skip_bad`` is not one: each command places it)
DECODING_OPTIONS: dict[str, Any] = {"frames": FramesOpt, "fps": FpsOpt, "size": SizeOpt, "sample_rate": SampleRateOpt,
                                    "clip_seconds": ClipSecondsOpt, "n_mels": NMelsOpt, "spectrogram": SpectrogramOpt,
                                    "normalize": NormalizeOpt, "audio_pad": AudioPadOpt}

SkipBadOpt = Annotated[bool, typer.Option("--skip-bad", help="Skip missing, unreadable or incomplete clips (and unknown labels), list them, and go on.")]


F = TypeVar("F", bound=Callable[..., Any])


def with_decoding_options(command: F) -> F:
    """Replace ``command``'s ``decoding`` parameter by the decoding options; pass the given ones as ``decoding``.

    Apply it below ``@app.command``. ``decoding`` is ``{"frames": 8, ...}`` with only the options given on
    the command line (names as in :data:`DECODING_OPTIONS`), ready for :func:`media_data` or
    :func:`decode_values`.
    """
    signature = inspect.signature(command)
    if "decoding" not in signature.parameters:
        raise TypeError(f"{command.__name__} has no 'decoding' parameter to replace")
    hints = get_type_hints(command, include_extras=True)
    params: list[inspect.Parameter] = []
    for param in signature.parameters.values():
        if param.name == "decoding":
            params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
                       for name, annotation in DECODING_OPTIONS.items()]
        else:
            params.append(param.replace(annotation=hints.get(param.name, param.annotation)))

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name, None) for name in DECODING_OPTIONS}
        return command(*args, decoding={k: v for k, v in values.items() if v is not None}, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper  # type: ignore[return-value]


def decode_values(*, frames: int | None = None, fps: float | None = None, size: int | None = None,
                  sample_rate: int | None = None, clip_seconds: float | None = None, n_mels: int | None = None,
                  spectrogram: str | None = None, normalize: str | None = None,
                  audio_pad: str | None = None) -> dict[str, Any]:
    """The decoding options given on the command line (``None`` = not given), as DecodeOptions fields."""
    values = {"frames": frames, "fps": fps, "size": size, "sample_rate": sample_rate, "clip_seconds": clip_seconds,
              "n_mels": n_mels, "spectrogram": spectrogram, "normalize": normalize, "pad": audio_pad}
    return {k: v for k, v in values.items() if v is not None}


def media_data(data: str, *, skip_bad: bool = False, **options: Any) -> str:
    """``data`` with the decoding options given on the command line folded in as query parameters.

    With no option given ``data`` comes back unchanged, so tensor sources keep working.
    Example: ``media_data("clips.csv", frames=8, skip_bad=True) == "clips.csv?frames=8&skip_bad=1"``.
    """
    from ..media import DecodeOptions, is_media_source, with_options  # noqa: PLC0415

    given = decode_values(**options)
    if not given and not skip_bad:
        return data
    if not is_media_source(data):
        flags = ", ".join("--" + k.replace("_", "-") for k, v in options.items() if v is not None) or "--skip-bad"
        raise UsageError(f"{flags} apply to media sources (a manifest .csv, a CREMA-D folder, class folders), "
                         f"not to {data}", hint="drop them, or point --data at the media")
    return with_options(data, DecodeOptions(**given), skip_bad=skip_bad)
