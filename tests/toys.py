"""Tiny models and tensors shared by the tests (no downloads, CPU-fast)."""

from __future__ import annotations

import torch
from torch import nn


class LinearAV(nn.Module):
    """logits = W_a · flatten(audio) + W_v · flatten(visual) + b: IG is exactly x ⊙ W[c]."""

    def __init__(self, audio_shape=(1, 4, 5), visual_shape=(3, 2, 3, 3), num_classes=3, bias=True):
        super().__init__()
        self.audio_shape, self.visual_shape = audio_shape, visual_shape
        na = int(torch.tensor(audio_shape).prod())
        nv = int(torch.tensor(visual_shape).prod())
        self.fa = nn.Linear(na, num_classes, bias=bias)
        self.fv = nn.Linear(nv, num_classes, bias=False)

    def forward(self, audio, visual):
        return self.fa(audio.flatten(1)) + self.fv(visual.flatten(1))


class ConvAV(nn.Module):
    """A small nonlinear conv audio-visual model."""

    def __init__(self, num_classes=3):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.v = nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.Softplus(), nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(16 + 4, 8), nn.Tanh(), nn.Linear(8, num_classes))

    def forward(self, audio, visual):
        return self.head(torch.cat([self.a(audio), self.v(visual)], dim=1))


class AudioOnly(nn.Module):
    """Takes both modalities but ignores ``visual`` entirely."""

    def __init__(self, num_classes=3):
        super().__init__()
        self.fa = nn.Linear(20, num_classes)

    def forward(self, audio, visual):
        return self.fa(audio.flatten(1))


def av_batch(n=4, seed=0, audio_shape=(1, 4, 5), visual_shape=(3, 2, 3, 3)):
    """Random ``{"audio", "visual"}`` inputs."""
    g = torch.Generator().manual_seed(seed)
    return {"audio": torch.randn((n,) + tuple(audio_shape), generator=g),
            "visual": torch.randn((n,) + tuple(visual_shape), generator=g)}


def as_forward(model):
    """A dict-taking forward for estimators."""
    return lambda inputs: model(inputs["audio"], inputs["visual"])
