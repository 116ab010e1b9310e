"""Shared pieces of the training tests: a tiny smooth fusion model and tiny synthetic data."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmbalance.models import ModelAdapter
from mmbalance.models.fusion import FusionModel, build_fusion

# Small enough for 1-2 epochs in a couple of seconds on two CPU cores.
TINY_DATA = "synthetic:av-dominance?n_train=64&n_val=32&n_test=32"


class _Enc(nn.Module):
    def __init__(self, n_in: int, dim: int) -> None:
        super().__init__()
        self.lin = nn.Linear(n_in, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(x.flatten(1)))


class SmoothAV(FusionModel):
    """tanh encoders and a fusion head: twice differentiable everywhere (for gradcheck)."""


def smooth_adapter(fusion: str = "concat", dim: int = 3, classes: int = 3, dtype=torch.float64) -> ModelAdapter:
    """A :class:`ModelAdapter` over :class:`SmoothAV` (audio ``(1, 2, 3)``, visual ``(3, 1, 2, 2)``)."""
    torch.manual_seed(0)
    model = SmoothAV({"audio": _Enc(6, dim), "visual": _Enc(12, dim)},
                     build_fusion(fusion, {"audio": dim, "visual": dim}, classes), embedding_dim=dim,
                     num_classes=classes)
    return ModelAdapter(model.to(dtype), ["audio", "visual"])


def smooth_batch(n: int = 4, dtype=torch.float64, seed: int = 1) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    inputs = {"audio": torch.randn(n, 1, 2, 3, generator=g, dtype=dtype),
              "visual": torch.randn(n, 3, 1, 2, 2, generator=g, dtype=dtype)}
    return inputs, torch.arange(n) % 3


@pytest.fixture
def tiny_data() -> str:
    return TINY_DATA


@pytest.fixture(name="make_smooth")
def make_smooth_fixture():
    """:func:`smooth_adapter`, as a fixture (test modules do not import conftest)."""
    return smooth_adapter


@pytest.fixture(name="make_batch")
def make_batch_fixture():
    """:func:`smooth_batch`, as a fixture."""
    return smooth_batch
