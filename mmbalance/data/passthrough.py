"""Pass-through inputs: tensors the model takes with each sample that are not modalities.

Attention masks, token type ids, pixel masks and sequence lengths go to ``forward`` with
their sample but are never attributed, interpolated, ablated or counted as a modality.
A dataset holds them in its ``extra`` mapping (the tensor file's ``"extra"`` key); a
pass-through name may also be one of the file's inputs, which is then moved out of the
modalities.

Example:
    >>> import torch
    >>> from mmbalance.data import TensorMultimodalDataset
    >>> ds = TensorMultimodalDataset({"text": torch.zeros(4, 5, dtype=torch.long),
    ...                               "attention_mask": torch.ones(4, 5, dtype=torch.long)},
    ...                              torch.tensor([0, 1, 0, 1]))
    >>> view = with_pass_through(ds, ["attention_mask"])
    >>> view.modalities, view.extra_names, sorted(view.get_extra([0, 1]))
    (('text',), ('attention_mask',), ['attention_mask'])
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor

from ..errors import DataError, UsageError
from .dataset import MultimodalDataset, TensorMultimodalDataset, select_modalities

__all__ = ["parse_pass_through", "with_pass_through"]


def parse_pass_through(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"attention_mask, lengths"`` → ``("attention_mask", "lengths")``; ``None`` → ``()``.

    Example:
        >>> parse_pass_through("attention_mask,lengths")
        ('attention_mask', 'lengths')
    """
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(v).strip() for v in items if str(v).strip())
    if len(set(names)) != len(names):
        raise UsageError(f"--pass-through repeats a name: {', '.join(names)}")
    return names


class _PassThroughView(MultimodalDataset):
    """``dataset`` with some of its tensors moved from the modalities to ``extra``."""

    def __init__(self, dataset: MultimodalDataset, modalities: Sequence[str], moved: Sequence[str],
                 kept: Sequence[str]) -> None:
        super().__init__(modalities=modalities, classes=dataset.classes, source=dataset.source, split=dataset.split)
        self.dataset = dataset
        self._moved = tuple(moved)
        self._kept = tuple(kept)
        self.extra_names = self._moved + self._kept

    @property
    def location(self) -> str:
        return self.dataset.location

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[dict[str, Tensor], int]:
        inputs, label = self.dataset[index]
        return {m: inputs[m] for m in self.modalities}, label

    def get_batch(self, indices: Sequence[int]) -> tuple[dict[str, Tensor], Tensor]:
        inputs, labels = self.dataset.get_batch(indices)
        return {m: inputs[m] for m in self.modalities}, labels

    def get_extra(self, indices: Sequence[int]) -> dict[str, Tensor]:
        out = {}
        if self._moved:
            inputs, _ = self.dataset.get_batch(indices)
            out = {m: inputs[m] for m in self._moved}
        extra = self.dataset.get_extra(indices)
        out.update({m: extra[m] for m in self._kept})
        return out

    def sample_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = self.dataset.sample_shapes()
        return {m: shapes[m] for m in self.modalities}


def with_pass_through(dataset: MultimodalDataset, names: Sequence[str],
                      modalities: Sequence[str] | None = None) -> MultimodalDataset:
    """``dataset`` with ``names`` as pass-through inputs and ``modalities`` (default: the rest) as modalities.

    A name is looked up in the dataset's ``extra`` mapping, then among its inputs (moved out
    of the modalities). A :class:`DataError` names what the dataset has when one is missing.
    """
    names = tuple(names)
    if not names and modalities is None:
        return dataset
    if modalities is not None:
        clash = [m for m in modalities if m in names]
        if clash:
            raise UsageError(f"{', '.join(clash)} cannot be both a modality and a pass-through input")
    if isinstance(dataset, TensorMultimodalDataset):  # re-split the tensors themselves: no second read per batch
        pool = {**dataset.unused_inputs, **dataset.inputs}
        _check_present(dataset, names, set(pool) | set(dataset.extra))
        extra = ({n: dataset.extra[n] if n in dataset.extra else pool[n] for n in names} if names
                 else dict(dataset.extra))
        rest = tuple(m for m in dataset.modalities if m not in names)
        if not rest:
            raise UsageError("every input is a pass-through: no modality is left to attribute",
                             hint="leave the modalities out of --pass-through")
        return TensorMultimodalDataset({m: dataset.inputs[m] for m in rest}, dataset.labels, classes=dataset.classes,
                                       modalities=modalities, source=dataset.source, split=dataset.split,
                                       location=getattr(dataset, "_location", None), extra=extra)
    kept = [n for n in names if n in dataset.extra_names]
    moved = [n for n in names if n not in kept]
    _check_present(dataset, names, set(dataset.modalities) | set(dataset.extra_names))
    rest = tuple(m for m in dataset.modalities if m not in moved)
    if modalities is not None:
        rest = select_modalities(rest, modalities, where=dataset.location)
    if not rest:
        raise UsageError("every input is a pass-through: no modality is left to attribute",
                         hint="leave the modalities out of --pass-through")
    return _PassThroughView(dataset, rest, moved, kept)


def _check_present(dataset: MultimodalDataset, names: Sequence[str], have: set[str]) -> None:
    missing = [n for n in names if n not in have]
    if missing:
        listed = [m for m in (*dataset.modalities, *dataset.extra_names) if m in have] + sorted(
            have - set(dataset.modalities) - set(dataset.extra_names))
        raise DataError(f"--pass-through {', '.join(missing)}: {dataset.location} has no such input "
                        f"(it has {', '.join(listed) or 'none'})",
                        hint='store masks and lengths under the file\'s "extra" key or among its inputs')
