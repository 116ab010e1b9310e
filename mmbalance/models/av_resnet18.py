"""``av-resnet18``: the OGM-GE audio-visual baseline (Peng et al., CVPR 2022).

Audio: a ResNet-18 whose first convolution takes one channel, on spectrograms
``(B, 1, F, T)``. Visual: a ResNet-18 applied to each frame of ``(B, 3, T, H, W)``, pooled,
then averaged over time. Both drop the classifier, so embeddings have D=512. Weights are
initialised randomly; nothing is downloaded.

Example:
    >>> import torch
    >>> from mmbalance.models import create_model
    >>> m = create_model("av-resnet18", num_classes=3).eval()
    >>> m(torch.randn(1, 1, 32, 32), torch.randn(1, 3, 2, 32, 32)).shape
    torch.Size([1, 3])
"""

from __future__ import annotations

from torch import Tensor, nn

from ._registry import register_model
from .fusion import FusionModel, as_frames, as_spectrogram, build_fusion

__all__ = ["AVResNet18", "av_resnet18"]

EMBEDDING_DIM = 512


def _resnet18_trunk(in_channels: int) -> nn.Module:
    """A randomly initialised torchvision ResNet-18 without its classifier: ``(N, C, H, W)`` → ``(N, 512)``."""
    from torchvision.models import resnet18  # imported here: torchvision is slow to import

    net = resnet18(weights=None)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    net.fc = nn.Identity()
    return net


class ResNetAudioEncoder(nn.Module):
    """``(B, 1, F, T)`` → ``(B, 512)``."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _resnet18_trunk(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(as_spectrogram(x))


class ResNetVisualEncoder(nn.Module):
    """``(B, 3, T, H, W)`` → per-frame ResNet-18 → mean over T → ``(B, 512)``."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _resnet18_trunk(3)

    def forward(self, x: Tensor) -> Tensor:
        x = as_frames(x)
        b, c, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        return self.net(frames).view(b, t, -1).mean(dim=1)


class AVResNet18(FusionModel):
    """OGM-GE's audio and visual ResNet-18 encoders and a fusion head."""


def _build_av_resnet18(num_classes: int, fusion: str) -> AVResNet18:
    encoders = {"audio": ResNetAudioEncoder(), "visual": ResNetVisualEncoder()}
    head = build_fusion(fusion, {m: EMBEDDING_DIM for m in AVResNet18.modalities}, num_classes)
    return AVResNet18(encoders, head, embedding_dim=EMBEDDING_DIM, num_classes=num_classes)


@register_model("av-resnet18")
def av_resnet18(num_classes: int, fusion: str = "concat") -> AVResNet18:
    """OGM-GE style audio/visual ResNet-18 pair (D=512, random init); fusion concat|sum|film|gated."""
    return _build_av_resnet18(num_classes, fusion)
