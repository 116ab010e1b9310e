"""Seeded, stratified hold-out splits of one dataset (``--val-fraction``, G-Blend's held-out part).

Example:
    >>> import torch
    >>> from mmbalance.data import TensorMultimodalDataset
    >>> ds = TensorMultimodalDataset({"x": torch.zeros(10, 2)}, torch.tensor([0] * 6 + [1] * 4))
    >>> keep, held = stratified_split(dataset_labels(ds), 0.5, seed=0)
    >>> len(keep), len(held), sorted(int(ds.labels[i]) for i in held)
    (5, 5, [0, 0, 0, 1, 1])
    >>> train, val = split_dataset(ds, 0.5, seed=0, name="val")
    >>> len(train), len(val), val.split
    (5, 5, 'val')
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from ..errors import UsageError
from .dataset import MultimodalDataset

__all__ = ["IndexedDataset", "dataset_labels", "split_dataset", "stratified_split"]


def dataset_labels(dataset: MultimodalDataset) -> list[int]:
    """Every sample's label, without decoding inputs where the dataset keeps its labels apart."""
    labels = getattr(dataset, "labels", None)
    if isinstance(labels, Tensor):
        return [int(v) for v in labels.tolist()]
    items = getattr(dataset, "items", None)
    if isinstance(items, list) and len(items) == len(dataset) and all(hasattr(i, "label") for i in items):
        return [int(i.label) for i in items]
    inner = getattr(dataset, "dataset", None)
    if isinstance(inner, MultimodalDataset) and len(inner) == len(dataset):
        return dataset_labels(inner)
    return [int(dataset[i][1]) for i in range(len(dataset))]


def stratified_split(labels: Sequence[int], fraction: float, *, seed: int) -> tuple[list[int], list[int]]:
    """Indices ``(keep, held_out)``: about ``fraction`` of every class held out, drawn with ``seed``.

    Each class with at least two samples gives ``round(fraction * n_c)`` samples, at least one
    and at most ``n_c - 1``; a class with one sample stays in ``keep``. Both lists are sorted.
    """
    if not (isinstance(fraction, (int, float)) and 0.0 < fraction < 1.0):
        raise UsageError(f"a hold-out fraction must lie strictly between 0 and 1, got {fraction!r}")
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(int(y), []).append(i)
    gen = torch.Generator().manual_seed(int(seed))
    held: list[int] = []
    for y in sorted(by_class):
        members = by_class[y]
        if len(members) < 2:
            continue
        k = min(max(int(math.floor(fraction * len(members) + 0.5)), 1), len(members) - 1)
        order = torch.randperm(len(members), generator=gen)[:k].tolist()
        held.extend(members[j] for j in order)
    held_set = set(held)
    return [i for i in range(len(labels)) if i not in held_set], sorted(held)


class IndexedDataset(MultimodalDataset):
    """The samples ``indices`` of ``dataset``, as a dataset of its own (named ``split``)."""

    def __init__(self, dataset: MultimodalDataset, indices: Sequence[int], *, split: str | None = None) -> None:
        super().__init__(modalities=dataset.modalities, classes=dataset.classes, source=dataset.source,
                         split=split if split is not None else dataset.split)
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        self.extra_names = dataset.extra_names
        labels = getattr(dataset, "labels", None)
        self.labels: Tensor | None = (labels[torch.as_tensor(self.indices, dtype=torch.long)]
                                      if isinstance(labels, Tensor) else None)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[dict[str, Tensor], int]:
        return self.dataset[self.indices[index]]

    def get_batch(self, indices: Sequence[int]) -> tuple[dict[str, Tensor], Tensor]:
        return self.dataset.get_batch([self.indices[i] for i in indices])

    def get_extra(self, indices: Sequence[int]) -> dict[str, Tensor]:
        return self.dataset.get_extra([self.indices[i] for i in indices])

    def sample_shapes(self) -> dict[str, tuple[int, ...]]:
        return self.dataset.sample_shapes()


def split_dataset(dataset: MultimodalDataset, fraction: float, *, seed: int, name: str = "val"
                  ) -> tuple[IndexedDataset, IndexedDataset]:
    """``(rest, held_out)`` of ``dataset``: a seeded, stratified ``fraction`` held out as split ``name``."""
    keep, held = stratified_split(dataset_labels(dataset), fraction, seed=seed)
    if not keep or not held:
        raise UsageError(f"{dataset.location} has {len(dataset)} samples: too few to hold out {fraction:g} of them",
                         hint="use more data or name a validation split with --val-split")
    return IndexedDataset(dataset, keep), IndexedDataset(dataset, held, split=name)
