"""Models that finetune and audit must refuse or warn about (``tests/guard_toys.py:build_...``); CPU-fast."""

from __future__ import annotations

import torch
from torch import nn



class ConvAV(nn.Module):
    """A small conv audio-visual model (as tests/toys.py's; this file is loaded by path as a plug-in)."""

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.v = nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.Softplus(), nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(16 + 4, 8), nn.Tanh(), nn.Linear(8, num_classes))

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.a(audio), self.v(visual)], dim=1))


class SoftmaxAV(ConvAV):
    """Ends in a softmax: returns probabilities, not logits."""

    def forward(self, audio, visual):
        return super().forward(audio, visual).softmax(dim=-1)


class LazyAV(ConvAV):
    """A lazy head that forward runs (materialized by the dry forward) and, with ``unused``, one it never runs."""

    def __init__(self, num_classes=3, unused=False):
        super().__init__(num_classes)
        self.lazy_head = nn.LazyLinear(num_classes)
        if unused:
            self.never_run = nn.LazyLinear(2)

    def forward(self, audio, visual):
        return super().forward(audio, visual) + self.lazy_head(audio.flatten(1))


def build_seven_way(num_classes):
    return ConvAV(7)


def build_softmax(num_classes):
    return SoftmaxAV(num_classes)


def build_scripted(num_classes):
    return torch.jit.script(ConvAV(num_classes))


def build_lazy(num_classes):
    return LazyAV(num_classes)


def build_lazy_unused(num_classes):
    return LazyAV(num_classes, unused=True)
