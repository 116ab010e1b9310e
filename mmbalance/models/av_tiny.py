"""``av-tiny``: a few-thousand-parameter audio-visual model that trains in seconds on a CPU.

Audio: spectrograms ``(B, 1, F, T)`` through three small Conv2d layers, global average
pooling and a Linear to ``embedding_dim``. Visual: frames ``(B, 3, T, H, W)`` through two
small Conv3d layers, global average pooling and a Linear. Any input size works.

Example:
    >>> import torch
    >>> from mmbalance.models import create_model
    >>> m = create_model("av-tiny", num_classes=4, model_args={"fusion": "sum"})
    >>> m(torch.randn(2, 1, 32, 32), torch.randn(2, 3, 4, 32, 32)).shape
    torch.Size([2, 4])
"""

from __future__ import annotations

from torch import Tensor, nn

from ._registry import register_model
from .fusion import FusionModel, as_frames, as_spectrogram, build_fusion

__all__ = ["AVTiny", "av_tiny"]


def _conv2d(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _conv3d(cin: int, cout: int, kernel: tuple[int, int, int], padding: tuple[int, int, int]) -> list[nn.Module]:
    return [nn.Conv3d(cin, cout, kernel, stride=(1, 2, 2), padding=padding, bias=False), nn.BatchNorm3d(cout),
            nn.ReLU(inplace=True)]


class TinyAudioEncoder(nn.Module):
    """``(B, 1, F, T)`` → ``(B, embedding_dim)``."""

    def __init__(self, embedding_dim: int) -> None:
        super().__init__()
        self.features = nn.Sequential(*_conv2d(1, 8, 2), *_conv2d(8, 16, 2), *_conv2d(16, 16, 1),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.proj = nn.Linear(16, embedding_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.features(as_spectrogram(x)))


class TinyVisualEncoder(nn.Module):
    """``(B, 3, T, H, W)`` → ``(B, embedding_dim)``."""

    def __init__(self, embedding_dim: int) -> None:
        super().__init__()
        self.features = nn.Sequential(*_conv3d(3, 8, (1, 3, 3), (0, 1, 1)), *_conv3d(8, 16, (3, 3, 3), (1, 1, 1)),
                                      nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.proj = nn.Linear(16, embedding_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.features(as_frames(x)))


class AVTiny(FusionModel):
    """Tiny audio + visual encoders and a fusion head."""


def _build_av_tiny(num_classes: int, fusion: str, embedding_dim: int) -> AVTiny:
    encoders = {"audio": TinyAudioEncoder(embedding_dim), "visual": TinyVisualEncoder(embedding_dim)}
    head = build_fusion(fusion, {m: embedding_dim for m in AVTiny.modalities}, num_classes)
    return AVTiny(encoders, head, embedding_dim=embedding_dim, num_classes=num_classes)


@register_model("av-tiny")
def av_tiny(num_classes: int, fusion: str = "concat", embedding_dim: int = 32) -> AVTiny:
    """Tiny CPU-friendly audio-visual CNN (D=32); fusion concat|sum|film|gated."""
    return _build_av_tiny(num_classes, fusion, embedding_dim)
