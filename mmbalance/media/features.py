"""Turn decoded media into model inputs: spectrograms ``(1, F, T')`` and frames ``(3, T, H, W)``.

torchaudio is used for the transforms only (decoding is PyAV's job).

Example:
    >>> import torch
    >>> opts = DecodeOptions(clip_seconds=1, n_mels=32)
    >>> spectrogram(torch.zeros(opts.n_samples), opts).shape
    torch.Size([1, 32, 101])
    >>> frames_to_tensor(np.zeros((4, 8, 8, 3), np.uint8), opts).shape
    torch.Size([3, 4, 8, 8])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .options import IMAGENET_MEAN, IMAGENET_STD, DecodeOptions

__all__ = ["spectrogram", "frames_to_tensor"]

_TRANSFORMS: dict[tuple[Any, ...], Any] = {}


def spectrogram(wave: Tensor, options: DecodeOptions) -> Tensor:
    """Log spectrogram ``(1, F, T')`` of a mono waveform ``(n,)`` sampled at ``options.sample_rate``.

    ``mel``: ``MelSpectrogram`` power → ``AmplitudeToDB`` (dB, floor 80 dB below the peak).
    ``stft``: OGM-GE's ``log(|STFT| + 1e-7)`` with a Hann window. ``T' = n // hop + 1``.
    """
    transform = _transform(options)
    with torch.no_grad():
        spec = transform(wave.reshape(1, -1).float())
    return spec.contiguous()


def _transform(options: DecodeOptions) -> Any:
    key = (options.spectrogram, options.sample_rate, options.fft_size, options.window_length, options.hop,
           options.n_mels)
    if key not in _TRANSFORMS:
        import torchaudio.transforms as T  # noqa: PLC0415

        if options.spectrogram == "mel":
            _TRANSFORMS[key] = torch.nn.Sequential(
                T.MelSpectrogram(sample_rate=options.sample_rate, n_fft=options.fft_size,
                                 win_length=options.window_length, hop_length=options.hop, n_mels=options.n_mels,
                                 power=2.0),
                T.AmplitudeToDB(stype="power", top_db=80.0),
            ).eval()
        else:
            _TRANSFORMS[key] = torch.nn.Sequential(
                T.Spectrogram(n_fft=options.fft_size, win_length=options.window_length, hop_length=options.hop,
                              power=1.0),
                _Log(1e-7),
            ).eval()
    return _TRANSFORMS[key]


class _Log(torch.nn.Module):
    def __init__(self, eps: float) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return torch.log(x + self.eps)


def frames_to_tensor(frames: np.ndarray, options: DecodeOptions) -> Tensor:
    """``(T, H, W, 3)`` uint8 RGB → ``(3, T, H, W)`` float in [0, 1], then ImageNet mean/std (unless ``"unit"``)."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float().div_(255.0)
    if options.normalize == "imagenet":
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)
        x = (x - mean) / std
    return x.contiguous()
