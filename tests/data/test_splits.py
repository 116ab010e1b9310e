"""Seeded, stratified hold-out splits (``--val-fraction``, G-Blend's held-out part)."""

from __future__ import annotations

import doctest

import pytest
import torch

import mmbalance.data.splits as splits
from mmbalance.data import TensorMultimodalDataset, split_dataset, stratified_split
from mmbalance.errors import UsageError


def test_docstring_examples():
    result = doctest.testmod(splits)
    assert result.failed == 0 and result.attempted > 0


def test_split_is_stratified_seeded_disjoint_and_complete():
    labels = [0] * 50 + [1] * 30 + [2] * 7 + [3]
    keep, held = stratified_split(labels, 0.2, seed=3)
    assert sorted(keep + held) == list(range(len(labels))) and not set(keep) & set(held)
    counts = {c: sum(labels[i] == c for i in held) for c in range(4)}
    assert counts == {0: 10, 1: 6, 2: 1, 3: 0}  # round(0.2 n) per class, >= 1 when a class has 2+, never all
    assert stratified_split(labels, 0.2, seed=3) == (keep, held)
    assert stratified_split(labels, 0.2, seed=4)[1] != held


def test_split_dataset_reads_the_samples_it_names_and_refuses_too_little_data():
    x = torch.arange(12.0)[:, None]
    ds = TensorMultimodalDataset({"x": x}, torch.tensor([0, 1] * 6))
    rest, val = split_dataset(ds, 0.5, seed=0, name="val")
    inputs, labels = val.get_batch(range(len(val)))
    assert inputs["x"][:, 0].long().tolist() == val.indices and labels.tolist() == [i % 2 for i in val.indices]
    assert val.location.endswith("(split 'val')")
    with pytest.raises(UsageError, match="too few"):
        split_dataset(TensorMultimodalDataset({"x": x[:2]}, torch.tensor([0, 1])), 0.5, seed=0)
    with pytest.raises(UsageError, match="between 0 and 1"):
        stratified_split([0, 1], 1.0, seed=0)
