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


class SymmetricAV(nn.Module):
    """``head(h(audio) + h(visual))`` with one shared ``h``: swapping the modalities changes nothing."""

    def __init__(self, shape=(1, 4, 5), num_classes=3):
        super().__init__()
        n = int(torch.tensor(shape).prod())
        self.h = nn.Sequential(nn.Flatten(), nn.Linear(n, 6), nn.Tanh())
        self.head = nn.Sequential(nn.Linear(6, 6), nn.Softplus(), nn.Linear(6, num_classes))

    def forward(self, audio, visual):
        return self.head(self.h(audio) + self.h(visual))


class PluginAV(nn.Module):
    """An OGM-GE-like plug-in: ``audio_net``, a per-frame ``visual_net`` and ``fusion_module``.

    ``visual_net`` sees the frames of all samples stacked, ``(B*T, 3, H, W)``, so its output has
    ``T`` rows per sample; ``forward`` returns ``(a, v, logits)``.
    """

    def __init__(self, num_classes=3, dim=6):
        super().__init__()
        self.audio_net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, dim))
        self.visual_net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                        nn.Flatten(), nn.Linear(4, dim))
        self.fusion_module = nn.Linear(2 * dim, num_classes)

    def forward(self, audio, visual):
        b, c, t, h, w = visual.shape
        a = self.audio_net(audio)
        v = self.visual_net(visual.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))
        v = v.view(b, t, -1).mean(1)
        return a, v, self.fusion_module(torch.cat([a, v], 1))


def randomize_batchnorm(model, seed=0):
    """Give every batch norm non-trivial running statistics and affine parameters (eval mode matters)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
    return model


def tiny_dataset(n=12, num_classes=3, seed=0, audio_shape=(1, 8, 8), visual_shape=(3, 2, 8, 8)):
    """A small in-memory ``TensorMultimodalDataset`` with audio and visual inputs."""
    from mmbalance.data import TensorMultimodalDataset

    x = av_batch(n, seed=seed, audio_shape=audio_shape, visual_shape=visual_shape)
    labels = torch.arange(n) % num_classes
    return TensorMultimodalDataset(x, labels, classes=[f"c{k}" for k in range(num_classes)], source="toy")


# -- models that answer wrongly unless mmbalance's guards stop them (tests/test_guards.py) ----------


class NoGradAV(ConvAV):
    """Runs its forward under ``torch.no_grad()``: logits without a ``grad_fn``."""

    def forward(self, audio, visual):
        with torch.no_grad():
            return super().forward(audio, visual)


class DetachedAV(ConvAV):
    """Detaches the encoders' outputs: the head's parameters get gradients, the inputs none."""

    def forward(self, audio, visual):
        return self.head(torch.cat([self.a(audio), self.v(visual)], dim=1).detach())


class MarkedNaNAV(ConvAV):
    """Outputs NaN for every sample whose first audio value is ``marker`` (finite elsewhere)."""

    def __init__(self, num_classes=3, marker=123.0):
        super().__init__(num_classes)
        self.marker = marker

    def forward(self, audio, visual):
        logits = super().forward(audio, visual)
        bad = (audio.flatten(1)[:, :1] == self.marker).expand_as(logits)
        return torch.where(bad, torch.full_like(logits, float("nan")), logits)


class NaNAV(ConvAV):
    """Outputs NaN for every sample (a diverged model)."""

    def forward(self, audio, visual):
        return super().forward(audio, visual) * float("nan")


class SteepAV(nn.Module):
    """``3 tanh(8 W_a audio) + W_v visual`` with fixed weights: IG with two trapezoid steps misses badly."""

    def __init__(self, num_classes=3):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.a = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(8, num_classes))
        self.v = nn.Sequential(nn.Conv3d(3, 2, 3, padding=1), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(2, num_classes))
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, audio, visual):
        return 3 * torch.tanh(8 * self.a(audio)) + self.v(visual)


class SimilarityAV(nn.Module):
    """CLIP-like: returns the batch x batch similarity of audio and visual embeddings, not class logits."""

    def __init__(self, num_classes=3, dim=8):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, dim))
        self.v = nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, dim))

    def forward(self, audio, visual):
        return self.a(audio) @ self.v(visual).T


class ConstantEncoder(nn.Module):
    """An encoder that ignores its input: the same learned vector for every sample."""

    def __init__(self, dim=4):
        super().__init__()
        self.value = nn.Parameter(torch.linspace(0.5, 2.0, dim))

    def forward(self, x):
        return self.value.expand(x.shape[0], -1)


class ConstantVisualAV(nn.Module):
    """``audio_net`` and a constant ``visual_net`` feeding a linear fusion (use --embedding-layer)."""

    def __init__(self, num_classes=3, dim=4):
        super().__init__()
        self.audio_net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(1),
                                       nn.Flatten(), nn.Linear(4, dim))
        self.visual_net = ConstantEncoder(dim)
        self.fusion_module = nn.Linear(2 * dim, num_classes)

    def forward(self, audio, visual):
        return self.fusion_module(torch.cat([self.audio_net(audio), self.visual_net(visual)], dim=1))


class OptionalTextKwAV(ConvAV):
    """Takes ``text`` too, but runs without it (it defaults to ``None``)."""

    def forward(self, audio, visual, text=None):
        logits = super().forward(audio, visual)
        return logits if text is None else logits + text.flatten(1)[:, :1]


class OptionalTextAV(OptionalTextKwAV):
    """:class:`OptionalTextKwAV` that also declares its three modalities."""

    modalities = ("audio", "visual", "text")


def build_conv(num_classes):
    """Factory of the healthy :class:`ConvAV` (``tests/toys.py:build_conv``)."""
    return ConvAV(num_classes)


def build_steep(num_classes):
    """Factory of :class:`SteepAV`."""
    return SteepAV(num_classes)


def build_nograd(num_classes):
    """Factory of :class:`NoGradAV`."""
    return NoGradAV(num_classes)


def build_nan(num_classes):
    """Factory of :class:`NaNAV`."""
    return NaNAV(num_classes)


def build_seven_way(num_classes):
    """A 7-way head whatever the data's classes."""
    return ConvAV(7)


def build_similarity(num_classes):
    """Factory of :class:`SimilarityAV`."""
    return SimilarityAV(num_classes)


def build_optional_text(num_classes):
    """Factory of :class:`OptionalTextKwAV` (no ``modalities`` attribute)."""
    return OptionalTextKwAV(num_classes)


def build_constant_visual(num_classes):
    """Factory of :class:`ConstantVisualAV`."""
    return ConstantVisualAV(num_classes)
