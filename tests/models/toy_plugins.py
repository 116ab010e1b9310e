"""Toy third-party models for the models tests (imported as ``toy_plugins`` from this directory)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

A_DIM = 1 * 4 * 4          # audio (B, 1, 4, 4)
V_DIM = 3 * 2 * 4 * 4      # visual (B, 3, 2, 4, 4)


def toy_inputs(batch: int = 2) -> dict[str, Tensor]:
    return {"audio": torch.randn(batch, 1, 4, 4), "visual": torch.randn(batch, 3, 2, 4, 4)}


class PositionalNet(nn.Module):
    """forward(x, y): names that are not modality names, so calls are positional."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.fa = nn.Linear(A_DIM, num_classes)
        self.fv = nn.Linear(V_DIM, num_classes)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.fa(x.flatten(1)) + 2 * self.fv(y.flatten(1))


class KeywordNet(PositionalNet):
    """forward(visual, audio): keyword calls must map by name despite the order."""

    def forward(self, visual: Tensor, audio: Tensor) -> Tensor:  # type: ignore[override]
        return self.fa(audio.flatten(1)) + 2 * self.fv(visual.flatten(1))


class AVClassifier(nn.Module):
    """OGM-GE's interface: forward(audio, visual) -> (a, v, out)."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.audio_net = nn.Linear(A_DIM, 8)
        self.visual_net = nn.Linear(V_DIM, 8)
        self.fusion_module = nn.Linear(16, num_classes)

    def forward(self, audio: Tensor, visual: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        a = self.audio_net(audio.flatten(1))
        v = self.visual_net(visual.flatten(1))
        return a, v, self.fusion_module(torch.cat([a, v], dim=1))


class DictNet(PositionalNet):
    """forward returns a dict; ``key`` decides the logits' key."""

    def __init__(self, num_classes: int = 3, key: str = "logits") -> None:
        super().__init__(num_classes)
        self.key = key

    def forward(self, audio: Tensor, visual: Tensor) -> dict[str, Tensor]:  # type: ignore[override]
        emb = audio.flatten(1)
        return {"embedding": emb, self.key: self.fa(emb) + self.fv(visual.flatten(1))}


def build_positional(num_classes: int, scale: float = 1.0) -> nn.Module:
    """Positional toy (x, y)."""
    net = PositionalNet(num_classes)
    net.scale = scale
    return net


def build_keyword(num_classes: int) -> nn.Module:
    """Keyword toy (visual, audio)."""
    return KeywordNet(num_classes)


def build_avclassifier(num_classes: int) -> nn.Module:
    """OGM-GE-like AVClassifier."""
    return AVClassifier(num_classes)


def build_no_classes() -> nn.Module:
    """A factory without num_classes."""
    return PositionalNet(7)


def build_kwargs_forwarder(**kwargs: object) -> nn.Module:
    """Forwards its kwargs to a class that does not take them all."""
    return PositionalNet(**kwargs)  # type: ignore[arg-type]


def build_not_module(num_classes: int) -> object:
    """Returns something that is not a module."""
    return {"num_classes": num_classes}


def build_raises(num_classes: int) -> nn.Module:
    """Fails while building."""
    raise ValueError("weights folder is missing\nsecond line")


class TrainState:
    """A benign custom object pickled next to a state dict."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch


# -- plug-ins without encode/fuse, fine-tuned with --embedding-layer (tests/training/test_plugins.py) --------


class TwoBranchNet(nn.Module):
    """A conv encoder per modality and a head that mixes them (tanh: not additive); any input size."""

    def __init__(self, num_classes: int = 4, dim: int = 6) -> None:
        super().__init__()
        self.audio_net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(2),
                                       nn.Flatten(), nn.Linear(12, dim))
        self.visual_net = nn.Sequential(nn.Conv3d(3, 3, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool3d((1, 2, 2)),
                                        nn.Flatten(), nn.Linear(12, dim))
        self.head = nn.Sequential(nn.Linear(2 * dim, 8), nn.Tanh(), nn.Linear(8, num_classes))

    def forward(self, audio: Tensor, visual: Tensor) -> Tensor:
        return self.head(torch.cat([self.audio_net(audio), self.visual_net(visual)], dim=1))


class _Tokens(nn.Module):
    """Average-pool a modality to a few positions, then project each position to a token ``(B, T, dim)``."""

    def __init__(self, pool: nn.Module, channels: int, dim: int) -> None:
        super().__init__()
        self.pool = pool
        self.proj = nn.Linear(channels, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.pool(x).flatten(2).transpose(1, 2))


class AttentionNet(nn.Module):
    """Tokens of both modalities mixed by one ``F.scaled_dot_product_attention`` layer, then a linear head."""

    def __init__(self, num_classes: int = 4, dim: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.audio_net = _Tokens(nn.AdaptiveAvgPool2d(2), 1, dim)
        self.visual_net = _Tokens(nn.AdaptiveAvgPool3d((1, 2, 2)), 3, dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, audio: Tensor, visual: Tensor) -> Tensor:
        tokens = torch.cat([self.audio_net(audio), self.visual_net(visual)], dim=1)  # (B, T, D)
        b, t, d = tokens.shape
        q, k, v = (z.reshape(b, t, self.heads, d // self.heads).transpose(1, 2)
                   for z in self.qkv(tokens).chunk(3, dim=-1))
        mixed = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        return self.head(torch.tanh(mixed + tokens).mean(dim=1))


def build_two_branch(num_classes: int) -> nn.Module:
    """TwoBranchNet (encoders ``audio_net``, ``visual_net``)."""
    return TwoBranchNet(num_classes)


def build_attention(num_classes: int) -> nn.Module:
    """AttentionNet (encoders ``audio_net``, ``visual_net``; SDPA fusion)."""
    return AttentionNet(num_classes)
