"""The dataset contract every source returns, batches, and the loader that checks them.

A :class:`MultimodalDataset` yields ``({modality: tensor}, label)`` per sample;
:func:`make_loader` turns it into :class:`Batch` objects that carry the global sample
indices, so every error and every per-sample result can name the sample it is about.
Each batch is checked on the way (:func:`validate_batch`): non-finite inputs and labels
outside ``[0, num_classes)`` raise :class:`~mmbalance.errors.DataError`. Inputs are not
scanned at load time, so large memory-mapped datasets stream from disk.

Example:
    >>> import torch
    >>> ds = TensorMultimodalDataset({"audio": torch.zeros(5, 2), "visual": torch.ones(5, 3)},
    ...                              torch.tensor([0, 1, 0, 1, 0]))
    >>> [b.indices.tolist() for b in make_loader(ds, batch_size=2)]
    [[0, 1], [2, 3], [4]]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import DataError, UsageError

__all__ = [
    "MultimodalDataset",
    "TensorMultimodalDataset",
    "Batch",
    "validate_batch",
    "make_loader",
    "iter_batches",
    "select_modalities",
    "check_tensor_dataset",
]


class MultimodalDataset(Dataset):
    """Base of every dataset mmbalance reads: samples are ``({modality: tensor}, label)``.

    Subclasses set the attributes (``super().__init__(...)``) and implement ``__len__`` and
    ``__getitem__``; tensors have no batch dimension. :meth:`get_batch` may be overridden
    with a faster batched read.

    Attributes:
        modalities: modality names, in the model's input order.
        classes: class names (``"0", "1", ...`` when the data has none).
        source: what the user passed (for messages and JSON).
        split: the split read, or ``None`` for a single file.
    """

    modalities: tuple[str, ...]
    classes: list[str]
    source: str
    split: str | None
    #: names of pass-through inputs (masks, lengths) the dataset carries besides its modalities
    extra_names: tuple[str, ...] = ()

    def __init__(self, *, modalities: Sequence[str], classes: Sequence[str], source: str,
                 split: str | None = None) -> None:
        self.modalities = tuple(modalities)
        self.classes = [str(c) for c in classes]
        self.source = str(source)
        self.split = split

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[dict[str, Tensor], int]:
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        """Number of classes, ``len(classes)``."""
        return len(self.classes)

    @property
    def location(self) -> str:
        """Where the samples come from, for messages: ``source``, plus the split when there is one."""
        return self.source if self.split is None else f"{self.source} (split {self.split!r})"

    def sample_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample tensor shape of each modality (read from the first sample)."""
        if len(self) == 0:
            raise DataError(f"{self.location} holds no samples")
        inputs, _ = self[0]
        return {m: tuple(inputs[m].shape) for m in self.modalities}

    def get_batch(self, indices: Sequence[int]) -> tuple[dict[str, Tensor], Tensor]:
        """Stacked inputs ``{modality: (B, ...)}`` and labels ``(B,)`` for ``indices``."""
        samples = [self[i] for i in indices]
        inputs: dict[str, Tensor] = {}
        for m in self.modalities:
            tensors = [s[0][m] for s in samples]
            try:
                inputs[m] = torch.stack(tensors)
            except RuntimeError:
                first = tuple(tensors[0].shape)
                k = next(k for k, t in enumerate(tensors) if tuple(t.shape) != first)
                raise DataError(
                    f"samples of {m!r} differ in shape in {self.location}: sample {indices[0]} is {first}, "
                    f"sample {indices[k]} is {tuple(tensors[k].shape)}",
                    hint="every sample of a modality must have the same shape") from None
        labels = torch.as_tensor([int(s[1]) for s in samples], dtype=torch.long)
        return inputs, labels

    def get_extra(self, indices: Sequence[int]) -> dict[str, Tensor]:
        """Stacked pass-through inputs ``{name: (B, ...)}`` for ``indices`` (none by default)."""
        return {}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(source={self.source!r}, split={self.split!r}, samples={len(self)}, "
                f"modalities={self.modalities}, num_classes={self.num_classes})")


class TensorMultimodalDataset(MultimodalDataset):
    """A dataset held in tensors ``{modality: (N, ...)}`` and labels ``(N,)`` (memory or mmap).

    Checks structure and labels on construction (cheap); inputs are checked per batch.

    Example:
        >>> ds = TensorMultimodalDataset({"a": torch.zeros(3, 2), "b": torch.zeros(3, 4)},
        ...                              torch.tensor([0, 2, 1]), modalities=["b"])
        >>> ds.modalities, ds.classes, ds.sample_shapes()
        (('b',), ['0', '1', '2'], {'b': (4,)})
    """

    def __init__(
        self,
        inputs: Mapping[str, Tensor],
        labels: Tensor,
        *,
        classes: Sequence[str] | None = None,
        modalities: Sequence[str] | None = None,
        source: str = "<tensors>",
        split: str | None = None,
        location: str | None = None,
        extra: Mapping[str, Tensor] | None = None,
    ) -> None:
        where = location or source
        labels, class_list = check_tensor_dataset(inputs, labels, classes, where=where)
        chosen = select_modalities(tuple(inputs), modalities, where=where)
        super().__init__(modalities=chosen, classes=class_list, source=source, split=split)
        self.inputs: dict[str, Tensor] = {m: inputs[m] for m in chosen}
        self.labels: Tensor = labels
        self._location = location
        self.extra: dict[str, Tensor] = {}
        if extra:
            check_tensor_dataset(dict(extra), labels, None, where=f"'extra' of {where}")
            self.extra = dict(extra)
        #: inputs the file holds beyond the chosen modalities (a pass-through may name one)
        self.unused_inputs: dict[str, Tensor] = {m: t for m, t in inputs.items() if m not in chosen}
        self.extra_names = tuple(self.extra)

    @property
    def location(self) -> str:
        return self._location or super().location

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[dict[str, Tensor], int]:
        return {m: t[index] for m, t in self.inputs.items()}, int(self.labels[index])

    def get_batch(self, indices: Sequence[int]) -> tuple[dict[str, Tensor], Tensor]:
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        return {m: t[idx] for m, t in self.inputs.items()}, self.labels[idx]

    def get_extra(self, indices: Sequence[int]) -> dict[str, Tensor]:
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        return {m: t[idx] for m, t in self.extra.items()}

    def sample_shapes(self) -> dict[str, tuple[int, ...]]:
        return {m: tuple(t.shape[1:]) for m, t in self.inputs.items()}


def check_tensor_dataset(
    inputs: Any, labels: Any, classes: Any = None, *, where: str,
) -> tuple[Tensor, list[str]]:
    """Check the structure of a tensor dataset; return labels as ``int64`` and the class names.

    Checks: ``inputs`` is a non-empty dict of name -> tensor with a sample axis, all lengths
    equal ``len(labels)`` > 0, labels are a 1-D integer tensor with no negative value,
    ``classes`` (if given) are strings covering every label. Input values are not read.

    Example:
        >>> check_tensor_dataset({"a": torch.zeros(2, 3)}, torch.tensor([0, 2]), where="x.pt")[1]
        ['0', '1', '2']
    """
    if not isinstance(inputs, Mapping) or not inputs:
        what = "an empty dict" if isinstance(inputs, Mapping) else f"a {type(inputs).__name__}"
        raise DataError(f"'inputs' in {where} must be a dict of modality name -> tensor, got {what}")
    for name, tensor in inputs.items():
        if not isinstance(name, str) or not name:
            raise DataError(f"'inputs' in {where} has a non-string or empty key {name!r}",
                            hint="modality names must be strings")
        if not isinstance(tensor, Tensor):
            raise DataError(f"'inputs' in {where} must be a dict of modality name -> tensor; "
                            f"{name!r} is a {type(tensor).__name__}")
        if tensor.layout != torch.strided:
            raise DataError(f"{name!r} in {where} is a {str(tensor.layout).removeprefix('torch.')} tensor; "
                            "datasets hold dense tensors", hint="save tensor.to_dense() instead")
        if tensor.dim() < 1:
            raise DataError(f"{name!r} in {where} is a 0-d tensor; it needs a sample axis first: (N, ...)")
    if isinstance(labels, Tensor) and labels.layout != torch.strided:
        raise DataError(f"'labels' in {where} is a {str(labels.layout).removeprefix('torch.')} tensor; "
                        "datasets hold dense tensors", hint="save labels.to_dense() instead")
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.is_floating_point() or labels.is_complex() \
            or labels.dtype == torch.bool:
        got = (f"{str(labels.dtype).removeprefix('torch.')} tensor of shape {tuple(labels.shape)}"
               if isinstance(labels, Tensor) else f"a {type(labels).__name__}")
        raise DataError(f"'labels' in {where} must be a 1-D integer tensor (N,), got {got}",
                        hint="use torch.tensor(labels, dtype=torch.long)")
    n = int(labels.shape[0])
    lengths = {name: int(t.shape[0]) for name, t in inputs.items()}
    if any(length != n for length in lengths.values()):
        parts = ", ".join(f"{name!r} has {length}" for name, length in lengths.items())
        raise DataError(f"length mismatch in {where}: {parts}, 'labels' has {n}",
                        hint="every modality needs one entry per label")
    if n == 0:
        raise DataError(f"{where} holds no samples")
    labels = labels.long()
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        first = int((labels < 0).nonzero()[0, 0])
        raise DataError(f"label {int(labels[first])} of sample {first} in {where} is negative",
                        hint="labels must be class indices 0, 1, ...")
    if classes is None:
        return labels, [str(c) for c in range(high + 1)]
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
        raise DataError(f"'classes' in {where} must be a list of strings, got {_describe(classes)}")
    if len(classes) < high + 1:
        raise DataError(f"{where} lists {len(classes)} class names but labels go up to {high}",
                        hint=f"'classes' needs at least {high + 1} names")
    return labels, list(classes)


def select_modalities(available: Sequence[str], wanted: Sequence[str] | None, *, where: str) -> tuple[str, ...]:
    """The modalities to use, in order: ``wanted`` (checked against ``available``) or all of them.

    Example:
        >>> select_modalities(("audio", "visual"), ["visual"], where="x.pt")
        ('visual',)
    """
    if wanted is None:
        return tuple(available)
    if isinstance(wanted, str):
        wanted = [w for w in (part.strip() for part in wanted.split(",")) if w]
    wanted = tuple(wanted)
    if not wanted:
        raise DataError(f"no modalities selected for {where}", hint=f"available: {', '.join(available)}")
    unknown = [m for m in wanted if m not in available]
    if unknown:
        raise DataError(f"{where} has no modality {', '.join(repr(m) for m in unknown)}",
                        hint=f"available modalities: {', '.join(available)}")
    dupes = sorted({m for m in wanted if wanted.count(m) > 1})
    if dupes:
        raise DataError(f"modality {', '.join(repr(m) for m in dupes)} selected twice for {where}")
    return wanted


@dataclass
class Batch:
    """A batch: ``inputs`` ``{modality: (B, ...)}``, ``labels`` ``(B,)`` and ``indices`` ``(B,)``.

    ``indices`` are the samples' positions in the dataset, so results and errors can name them.
    ``extra`` holds pass-through inputs ``{name: (B, ...)}`` (attention masks, lengths): given to
    the model with each sample, never attributed.

    Example:
        >>> b = Batch({"a": torch.zeros(2, 3)}, torch.tensor([0, 1]), torch.tensor([4, 7]))
        >>> len(b), b.to("cpu").inputs["a"].shape
        (2, torch.Size([2, 3]))
    """

    inputs: dict[str, Tensor]
    labels: Tensor
    indices: Tensor
    extra: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        """The same batch on ``device`` (``indices`` stay on the CPU)."""
        return Batch({m: t.to(device, non_blocking=non_blocking) for m, t in self.inputs.items()},
                     self.labels.to(device, non_blocking=non_blocking), self.indices,
                     {m: t.to(device, non_blocking=non_blocking) for m, t in self.extra.items()})

    def pin_memory(self) -> "Batch":
        """Page-locked copy; ``DataLoader(pin_memory=True)`` calls this."""
        return Batch({m: t.pin_memory() for m, t in self.inputs.items()}, self.labels.pin_memory(), self.indices,
                     {m: t.pin_memory() for m, t in self.extra.items()})


def validate_batch(batch: Batch, *, num_classes: int, where: str) -> None:
    """Raise :class:`DataError` on non-finite inputs or labels outside ``[0, num_classes)``.

    Messages name the modality and the global sample index, e.g. ``non-finite value (nan)
    in 'visual' of sample 17 in data/test.pt``.

    Example:
        >>> b = Batch({"a": torch.tensor([[0.0], [float("nan")]])}, torch.tensor([0, 1]), torch.tensor([4, 5]))
        >>> try:
        ...     validate_batch(b, num_classes=2, where="x.pt")
        ... except DataError as err:
        ...     print(err.message)
        non-finite value (nan) in 'a' of sample 5 in x.pt
    """
    for modality, tensor in batch.inputs.items():
        if not (tensor.is_floating_point() or tensor.is_complex()):
            continue
        finite = torch.isfinite(tensor)
        if bool(finite.all()):
            continue
        bad_rows = ~finite.reshape(finite.shape[0], -1).all(dim=1)
        first = int(bad_rows.nonzero()[0, 0])
        kind = "nan" if bool(torch.isnan(tensor[first]).any()) else "inf"
        more = int(bad_rows.sum()) - 1
        extra = f" (and {more} more in this batch)" if more else ""
        raise DataError(
            f"non-finite value ({kind}) in {modality!r} of sample {int(batch.indices[first])} in {where}{extra}",
            hint="fix or drop these samples; inputs must be finite")
    labels = batch.labels
    bad = (labels < 0) | (labels >= num_classes)
    if bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        raise DataError(
            f"label {int(labels[first])} of sample {int(batch.indices[first])} in {where} is outside "
            f"[0, {num_classes})", hint=f"labels must be class indices 0..{num_classes - 1}")


class _IndexedView(Dataset):
    """Hands the loader ``(indices, inputs, labels)`` per batch via ``__getitems__``."""

    def __init__(self, dataset: MultimodalDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:  # only used if a loader is built without batching
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]) -> tuple[list[int], dict[str, Tensor], Tensor, dict[str, Tensor]]:
        inputs, labels = self.dataset.get_batch(indices)
        return list(indices), inputs, labels, self.dataset.get_extra(indices)


def _collate(data: tuple[list[int], dict[str, Tensor], Tensor, dict[str, Tensor]]) -> Batch:
    indices, inputs, labels, extra = data
    return Batch(dict(inputs), torch.as_tensor(labels, dtype=torch.long), torch.as_tensor(indices, dtype=torch.long),
                 dict(extra))


class _ValidatingLoader(DataLoader):
    """A :class:`DataLoader` that runs :func:`validate_batch` on every batch it yields.

    Validation runs in the main process, so errors keep their type and message even when
    batches come from worker processes.
    """

    def __init__(self, *args: Any, num_classes: int, where: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.num_classes = num_classes
        self.where = where

    def __iter__(self) -> Iterator[Batch]:  # type: ignore[override]
        for batch in super().__iter__():
            validate_batch(batch, num_classes=self.num_classes, where=self.where)
            yield batch


def make_loader(
    dataset: MultimodalDataset,
    *,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    sampler: Sampler[int] | Iterable[int] | None = None,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> DataLoader:
    """A :class:`DataLoader` over ``dataset`` that yields validated :class:`Batch` objects.

    Every batch goes through :func:`validate_batch` before it is handed out.

    Shuffling uses a generator seeded by ``seed``: the same seed gives the same order run
    after run (each new pass over the same loader draws the next order). ``sampler`` (any
    iterable of dataset indices) replaces shuffling.

    Example:
        >>> ds = TensorMultimodalDataset({"x": torch.arange(6.0)[:, None]}, torch.zeros(6, dtype=torch.long))
        >>> [b.indices.tolist() for b in make_loader(ds, batch_size=4, shuffle=True, seed=1)]
        [[0, 4, 5, 1], [2, 3]]
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise UsageError(f"batch size must be a positive integer, got {batch_size!r}")
    if num_workers < 0:
        raise UsageError(f"num_workers must be >= 0, got {num_workers}")
    if sampler is not None and shuffle:
        raise UsageError("pass either a sampler or shuffle=True, not both")
    generator = torch.Generator().manual_seed(int(seed))
    return _ValidatingLoader(
        _IndexedView(dataset),
        num_classes=dataset.num_classes,
        where=dataset.location,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=_collate,
        drop_last=drop_last,
        generator=generator,
        pin_memory=pin_memory,
        persistent_workers=False,
    )


def iter_batches(dataset: MultimodalDataset, batch_size: int = 32, limit: int | None = None, *,
                 num_workers: int = 0) -> Iterator[Batch]:
    """Stream validated batches in dataset order; ``limit`` stops after the first N samples.

    Example:
        >>> ds = TensorMultimodalDataset({"x": torch.zeros(10, 1)}, torch.zeros(10, dtype=torch.long))
        >>> [len(b) for b in iter_batches(ds, batch_size=4, limit=6)]
        [4, 2]
    """
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise UsageError(f"limit must be a positive integer, got {limit!r}")
    n = len(dataset) if limit is None else min(limit, len(dataset))
    yield from make_loader(dataset, batch_size=batch_size, sampler=range(n), num_workers=num_workers)


def _describe(obj: Any) -> str:
    if isinstance(obj, (list, tuple)):
        bad = next((x for x in obj if not isinstance(x, str)), None)
        return f"a {type(obj).__name__} containing {type(bad).__name__}"
    return f"a {type(obj).__name__}"
