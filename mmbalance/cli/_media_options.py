"""Decoding options for every command that takes a dataset (``data prepare``, ``audit``, ``finetune``).

Add them to a command and fold them into its ``--data`` source string; ``load_dataset``
then decodes media with them (and refuses them for tensor files)::

    def audit(data: DataOpt, frames: FramesOpt = None, fps: FpsOpt = None, size: SizeOpt = None,
              sample_rate: SampleRateOpt = None, clip_seconds: ClipSecondsOpt = None, n_mels: NMelsOpt = None,
              spectrogram: SpectrogramOpt = None, skip_bad: SkipBadOpt = False, ...):
        data = media_data(data, frames=frames, fps=fps, size=size, sample_rate=sample_rate,
                          clip_seconds=clip_seconds, n_mels=n_mels, spectrogram=spectrogram, skip_bad=skip_bad)
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

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
SkipBadOpt = Annotated[bool, typer.Option("--skip-bad", help="Skip missing, unreadable or incomplete clips (and unknown labels), list them, and go on.")]


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
        flags = ", ".join("--" + k.replace("_", "-") for k in given) or "--skip-bad"
        raise UsageError(f"{flags} apply to media sources (a manifest .csv, a CREMA-D folder, class folders), "
                         f"not to {data}", hint="drop them, or point --data at the media")
    return with_options(data, DecodeOptions(**given), skip_bad=skip_bad)
