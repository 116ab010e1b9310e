"""Small datasets for the tests of :mod:`mmbalance.data`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from mmbalance.data import save_tensor_dataset


def make_inputs(n: int = 12) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """``audio (n, 1, 4, 4)``, ``visual (n, 3, 2, 4, 4)`` with sample i filled with i; labels i % 3."""
    ramp = torch.arange(n, dtype=torch.float32)
    inputs = {
        "audio": ramp[:, None, None, None].expand(n, 1, 4, 4).clone(),
        "visual": ramp[:, None, None, None, None].expand(n, 3, 2, 4, 4).clone(),
    }
    return inputs, torch.arange(n) % 3


@pytest.fixture(name="make_inputs")
def make_inputs_fixture() -> Callable[[int], tuple[dict[str, torch.Tensor], torch.Tensor]]:
    """:func:`make_inputs`, as a fixture (test modules do not import conftest)."""
    return make_inputs


@pytest.fixture
def small_file(tmp_path: Path) -> Path:
    """A valid 12-sample tensor file with classes cat/dog/eel."""
    inputs, labels = make_inputs()
    return save_tensor_dataset(tmp_path / "small.pt", inputs, labels, ["cat", "dog", "eel"])


@pytest.fixture
def raw_file(tmp_path: Path) -> Callable[[Any], Path]:
    """Write any object with plain ``torch.save`` (for malformed files)."""

    def write(obj: Any, name: str = "raw.pt") -> Path:
        path = tmp_path / name
        torch.save(obj, path)
        return path

    return write
