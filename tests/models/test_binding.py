"""Fitting a dataset's inputs to a model (shared by audit, finetune and check)."""

from __future__ import annotations

import doctest

import pytest
import torch
from torch import nn

from mmbalance.data import TensorMultimodalDataset
from mmbalance.errors import ModelError
from mmbalance.models import ModelAdapter, binding
from mmbalance.models.binding import fit_to_model, split_pass_through


def test_docstring_examples():
    result = doctest.testmod(binding, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


class _TextOnly(nn.Module):
    def forward(self, text):
        return torch.zeros(text.shape[0], 2)


def _dataset():
    return TensorMultimodalDataset({"text": torch.zeros(2, 3, dtype=torch.long), "tab": torch.zeros(2, 4),
                                    "attention_mask": torch.ones(2, 3, dtype=torch.long)}, torch.tensor([0, 1]))


def test_no_pass_through_for_a_plain_model_unless_named():
    ds, passed = split_pass_through("my_net.py:build", _dataset(), None)
    assert passed == () and ds.modalities == ("text", "tab", "attention_mask")


def test_fit_to_model_keeps_what_the_model_takes_or_names_the_rest():
    ds, _ = split_pass_through("x.py:f", _dataset(), "attention_mask")
    adapter = ModelAdapter(_TextOnly(), ["text"])
    assert fit_to_model(adapter, ds).modalities == ("text",)
    with pytest.raises(ModelError, match="takes no input named tab"):
        fit_to_model(adapter, ds, modalities_named=True)
