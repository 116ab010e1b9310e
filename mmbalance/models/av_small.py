"""``av-small``: a mid-size audio-visual CNN (about 141k parameters) for benchmarks on a CPU.

``av-tiny``'s visual encoder sees 7-pixel patches and cannot read a small printed letter
(23.8 % alone on the letters benchmark against an 86.5 % oracle bound), so a comparison of
balancing methods on it measures the encoder, not the method. ``av-small`` gives each
modality four convolutions of 32-64 channels, enough to learn both streams, and still
trains an epoch of the letters benchmark in seconds on two cores.

Audio: spectrograms ``(B, 1, F, T)`` through four Conv2d-BatchNorm-ReLU layers (32, 32, 64,
64 channels; strides 2, 1, 2, 1), global average pooling and a Linear to ``embedding_dim``.
Visual: frames ``(B, 3, T, H, W)`` through four per-frame ``1x3x3`` Conv3d layers (32, 32,
64, 64 channels; spatial strides 2, 2, 2, 1), global average pooling over time and space and a
Linear. Any input size works.

Example:
    >>> import torch
    >>> from mmbalance.models import create_model
    >>> m = create_model("av-small", num_classes=10)
    >>> m(torch.randn(2, 1, 16, 32), torch.randn(2, 3, 4, 32, 32)).shape
    torch.Size([2, 10])
    >>> 130_000 < sum(p.numel() for p in m.parameters()) < 150_000
    True
"""

from __future__ import annotations

from torch import Tensor, nn

from ._registry import register_model
from .fusion import FusionModel, as_frames, as_spectrogram, build_fusion

__all__ = ["AVSmall", "av_small"]


def _conv2d(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _conv3d(cin: int, cout: int, time: int, stride: int) -> list[nn.Module]:
    return [nn.Conv3d(cin, cout, (time, 3, 3), stride=(1, stride, stride), padding=(time // 2, 1, 1), bias=False),
            nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]


class SmallAudioEncoder(nn.Module):
    """``(B, 1, F, T)`` → ``(B, embedding_dim)``."""

    def __init__(self, embedding_dim: int) -> None:
        super().__init__()
        self.features = nn.Sequential(*_conv2d(1, 32, 2), *_conv2d(32, 32, 1), *_conv2d(32, 64, 2),
                                      *_conv2d(64, 64, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.proj = nn.Linear(64, embedding_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.features(as_spectrogram(x)))


class SmallVisualEncoder(nn.Module):
    """``(B, 3, T, H, W)`` → ``(B, embedding_dim)``."""

    def __init__(self, embedding_dim: int) -> None:
        super().__init__()
        self.features = nn.Sequential(*_conv3d(3, 32, 1, 2), *_conv3d(32, 32, 1, 2), *_conv3d(32, 64, 1, 2),
                                      *_conv3d(64, 64, 1, 1), nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.proj = nn.Linear(64, embedding_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.features(as_frames(x)))


class AVSmall(FusionModel):
    """Mid-size audio + visual encoders (4 conv layers each) and a fusion head."""


@register_model("av-small")
def av_small(num_classes: int, fusion: str = "concat", embedding_dim: int = 64) -> AVSmall:
    """Mid-size audio-visual CNN (~141k parameters, D=64) for benchmarks; fusion concat|sum|film|gated."""
    encoders = {"audio": SmallAudioEncoder(embedding_dim), "visual": SmallVisualEncoder(embedding_dim)}
    head = build_fusion(fusion, {m: embedding_dim for m in AVSmall.modalities}, num_classes)
    return AVSmall(encoders, head, embedding_dim=embedding_dim, num_classes=num_classes)
