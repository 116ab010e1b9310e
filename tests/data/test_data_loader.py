"""Loaders: batches with global indices, seeded shuffling, streaming, per-batch validation."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from mmbalance.data import (
    Batch,
    MultimodalDataset,
    TensorMultimodalDataset,
    iter_batches,
    load_dataset,
    make_loader,
    save_tensor_dataset,
)
from mmbalance.errors import DataError, UsageError


@pytest.fixture
def ds(make_inputs) -> TensorMultimodalDataset:
    inputs, labels = make_inputs(10)
    return TensorMultimodalDataset(inputs, labels, source="mem")


def test_batches_carry_inputs_labels_and_global_indices(ds: TensorMultimodalDataset) -> None:
    loader = make_loader(ds, batch_size=4)
    assert isinstance(loader, DataLoader) and len(loader) == 3
    batches = list(loader)
    assert all(isinstance(b, Batch) for b in batches)
    assert [b.indices.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    first = batches[0]
    assert first.inputs["visual"].shape == (4, 3, 2, 4, 4) and first.labels.dtype == torch.long
    assert first.inputs["audio"][:, 0, 0, 0].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert first.labels.tolist() == [0, 1, 2, 0]
    moved = first.to("cpu")
    assert torch.equal(moved.inputs["audio"], first.inputs["audio"]) and len(moved) == 4


def test_shuffle_is_reproducible_from_the_seed(ds: TensorMultimodalDataset) -> None:
    def order(seed: int) -> list[int]:
        return [i for b in make_loader(ds, batch_size=3, shuffle=True, seed=seed) for i in b.indices.tolist()]

    assert order(1) == order(1)
    assert order(1) != order(2)
    assert sorted(order(1)) == list(range(10))
    # inputs still follow their indices after shuffling
    for b in make_loader(ds, batch_size=3, shuffle=True, seed=5):
        assert b.inputs["audio"][:, 0, 0, 0].tolist() == b.indices.float().tolist()


def test_sampler_and_drop_last(ds: TensorMultimodalDataset) -> None:
    loader = make_loader(ds, batch_size=2, sampler=[9, 3, 3, 0, 7], drop_last=True)
    assert [b.indices.tolist() for b in loader] == [[9, 3], [3, 0]]
    with pytest.raises(UsageError, match="either a sampler or shuffle"):
        make_loader(ds, sampler=[0], shuffle=True)
    with pytest.raises(UsageError, match="batch size must be a positive integer"):
        make_loader(ds, batch_size=0)


def test_iter_batches_streams_the_first_samples(ds: TensorMultimodalDataset) -> None:
    assert [b.indices.tolist() for b in iter_batches(ds, batch_size=4, limit=6)] == [[0, 1, 2, 3], [4, 5]]
    assert sum(len(b) for b in iter_batches(ds, batch_size=4)) == 10
    assert sum(len(b) for b in iter_batches(ds, batch_size=4, limit=100)) == 10
    with pytest.raises(UsageError, match="limit must be a positive integer"):
        list(iter_batches(ds, limit=0))


def test_iter_batches_is_lazy() -> None:
    class Counting(TensorMultimodalDataset):
        reads = 0

        def get_batch(self, indices):
            Counting.reads += len(indices)
            return super().get_batch(indices)

    big = Counting({"x": torch.zeros(1000, 2)}, torch.zeros(1000, dtype=torch.long))
    stream = iter_batches(big, batch_size=10)
    next(stream)
    assert Counting.reads == 10


@pytest.mark.parametrize(("value", "kind"), [(float("nan"), "nan"), (float("inf"), "inf"), (float("-inf"), "inf")])
def test_non_finite_input_names_modality_and_sample(tmp_path, make_inputs, value: float, kind: str) -> None:
    inputs, labels = make_inputs(12)
    inputs["visual"][5, 1, 0, 2, 3] = value
    path = save_tensor_dataset(tmp_path / "test.pt", inputs, labels)
    ds = load_dataset(str(tmp_path), split="test")  # loading does not scan the inputs
    loader = make_loader(ds, batch_size=4)
    with pytest.raises(DataError, match=rf"non-finite value \({kind}\) in 'visual' of sample 5 in {path}"):
        list(loader)
    # a loader that never reaches sample 5 is fine
    assert len(list(iter_batches(ds, batch_size=4, limit=4))) == 1


def test_non_finite_is_found_after_shuffling(make_inputs) -> None:
    inputs, labels = make_inputs(12)
    inputs["audio"][5] = float("nan")
    inputs["audio"][9] = float("nan")
    ds = TensorMultimodalDataset(inputs, labels, source="mem")
    with pytest.raises(DataError, match=r"of sample (5|9) in mem"):
        list(make_loader(ds, batch_size=12, shuffle=True, seed=3))


class _ListDataset(MultimodalDataset):
    """A dataset that reads samples one by one (like a media source), labels unchecked."""

    def __init__(self, labels: list[int], shapes: list[tuple[int, ...]] | None = None) -> None:
        super().__init__(modalities=("a",), classes=["x", "y"], source="list", split="test")
        self.labels = labels
        self.shapes = shapes or [(2,)] * len(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return {"a": torch.zeros(self.shapes[index])}, self.labels[index]


def test_labels_outside_the_class_range_name_the_sample() -> None:
    ds = _ListDataset([0, 1, 1, 0, 2, 1])
    with pytest.raises(DataError, match=r"label 2 of sample 4 in list \(split 'test'\) is outside \[0, 2\)"):
        list(make_loader(ds, batch_size=3))
    with pytest.raises(DataError, match=r"label -1 of sample 1 .* is outside \[0, 2\)"):
        list(make_loader(_ListDataset([0, -1]), batch_size=3))


def test_default_get_batch_stacks_and_reports_shape_mismatch() -> None:
    ds = _ListDataset([0, 1, 0], shapes=[(2,), (2,), (3,)])
    assert ds.sample_shapes() == {"a": (2,)}
    first = next(iter(make_loader(ds, batch_size=2)))
    assert first.inputs["a"].shape == (2, 2)
    message = r"samples of 'a' differ in shape in list .*: sample 0 is \(2,\), sample 2 is \(3,\)"
    with pytest.raises(DataError, match=message):
        list(make_loader(ds, batch_size=3))


def test_worker_processes_keep_errors_intact(make_inputs) -> None:
    inputs, labels = make_inputs(8)
    inputs["audio"][6] = float("nan")
    ds = TensorMultimodalDataset(inputs, labels, source="mem")
    loader = make_loader(ds, batch_size=4, num_workers=1)
    with pytest.raises(DataError, match=r"^non-finite value \(nan\) in 'audio' of sample 6 in mem"):
        list(loader)
