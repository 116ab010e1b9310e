"""``--modalities video=visual``: a dataset's modality names mapped to the names the model's forward takes.

Example:
    >>> from mmbalance.data import load_dataset
    >>> ds = load_dataset("synthetic:av-dominance?n_test=4", modalities=["audio=sound", "visual"])
    >>> ds.modalities, sorted(ds.sample_shapes())
    (('sound', 'visual'), ['sound', 'visual'])
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor

from ..errors import UsageError
from .dataset import MultimodalDataset

__all__ = ["parse_modality_map", "renamed"]


def parse_modality_map(entries: Sequence[str]) -> tuple[tuple[str, ...], dict[str, str]]:
    """``["video=visual", "audio"]`` → the dataset's names to load ``("video", "audio")`` and the renames
    ``{"video": "visual"}``.

    Example:
        >>> parse_modality_map(["video=visual", "audio"])
        (('video', 'audio'), {'video': 'visual'})
    """
    names: list[str] = []
    renames: dict[str, str] = {}
    for entry in entries:
        source, sep, target = (part.strip() for part in entry.partition("="))
        if sep and (not source or not target):
            raise UsageError(f"--modalities {entry!r}: write DATASET_NAME=MODEL_NAME, e.g. video=visual")
        names.append(source)
        if sep and target != source:
            renames[source] = target
    final = [renames.get(n, n) for n in names]
    if len(set(final)) != len(final):
        raise UsageError(f"--modalities {','.join(entries)} names a modality twice",
                         hint="each model input takes one dataset modality")
    return tuple(names), renames


class _RenamedView(MultimodalDataset):
    """``dataset`` whose modalities are called ``renames[name]`` (others keep their name)."""

    def __init__(self, dataset: MultimodalDataset, renames: dict[str, str]) -> None:
        self._to_new = {m: renames.get(m, m) for m in dataset.modalities}
        super().__init__(modalities=[self._to_new[m] for m in dataset.modalities], classes=dataset.classes,
                         source=dataset.source, split=dataset.split)
        self.dataset = dataset
        self.extra_names = tuple(getattr(dataset, "extra_names", ()))

    @property
    def location(self) -> str:
        return self.dataset.location

    def __len__(self) -> int:
        return len(self.dataset)

    def _rename(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        return {self._to_new.get(m, m): t for m, t in inputs.items()}

    def __getitem__(self, index: int) -> tuple[dict[str, Tensor], int]:
        inputs, label = self.dataset[index]
        return self._rename(inputs), label

    def get_batch(self, indices: Sequence[int]) -> tuple[dict[str, Tensor], Tensor]:
        inputs, labels = self.dataset.get_batch(indices)
        return self._rename(inputs), labels

    def get_extra(self, indices: Sequence[int]) -> dict[str, Tensor]:
        return self.dataset.get_extra(indices)

    def sample_shapes(self) -> dict[str, tuple[int, ...]]:
        return {self._to_new.get(m, m): shape for m, shape in self.dataset.sample_shapes().items()}


def renamed(dataset: MultimodalDataset, renames: dict[str, str]) -> MultimodalDataset:
    """``dataset`` with its modalities renamed (``{dataset name: model name}``); itself when nothing changes."""
    return _RenamedView(dataset, renames) if renames else dataset
