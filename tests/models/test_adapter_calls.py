"""ModelAdapter call styles for real models: dict forwards, pass-through inputs, keyword-only parameters."""

from __future__ import annotations

from typing import Mapping

import pytest
import torch
from torch import nn

from mmbalance.errors import ModelError, UsageError
from mmbalance.models import ModelAdapter


class DictNet(nn.Module):
    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack([batch["a"].sum(1), (batch["b"] * batch["mask"]).sum(1)], 1)


class KwOnly(nn.Module):
    def forward(self, *, a, b, mask):
        return torch.stack([a.sum(1), (b * mask).sum(1)], 1)


class Positional(nn.Module):
    def forward(self, x, y, mask=None):
        return torch.stack([x.sum(1), (y * mask).sum(1)], 1)


X = {"a": torch.ones(2, 3), "b": torch.ones(2, 3), "mask": torch.tensor([[1.0, 0, 0], [1, 1, 1]])}
WANT = torch.tensor([[3.0, 1.0], [3.0, 3.0]])


@pytest.mark.parametrize("model,style", [(DictNet(), "dict"), (KwOnly(), "keyword"), (Positional(), "positional")])
def test_pass_through_reaches_forward_in_every_call_style(model, style):
    adapter = ModelAdapter(model, ["a", "b"], pass_through=["mask"])
    assert adapter.call_style == style
    torch.testing.assert_close(adapter(X), WANT)


def test_missing_or_unknown_pass_through_is_a_clear_error():
    adapter = ModelAdapter(KwOnly(), ["a", "b"], pass_through=["mask"])
    with pytest.raises(ModelError, match="pass-through input.*mask"):
        adapter({"a": X["a"], "b": X["b"]})
    with pytest.raises(ModelError, match="no parameter named lengths"):
        ModelAdapter(KwOnly(), ["a", "b"], pass_through=["lengths"])
    with pytest.raises(UsageError, match="both a modality and a pass-through"):
        ModelAdapter(KwOnly(), ["a", "b"], pass_through=["a"])


def test_forward_batch_without_an_annotation_points_to_call_dict():
    class Plain(nn.Module):
        def forward(self, batch):
            return DictNet()(batch)

    with pytest.raises(ModelError, match="--call dict"):
        ModelAdapter(Plain(), ["a", "b"])
    torch.testing.assert_close(ModelAdapter(Plain(), ["a", "b"], call="dict", pass_through=["mask"])(X), WANT)
