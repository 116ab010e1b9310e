"""Pass-through inputs: stored under "extra" (or among the inputs), carried by batches, never modalities."""

from __future__ import annotations

import pytest
import torch

from mmbalance.data import iter_batches, load_tensor_file, parse_pass_through, save_tensor_dataset, with_pass_through
from mmbalance.errors import DataError, UsageError

N = 5


def write(path, *, extra=True):
    inputs = {"text": torch.arange(N * 3).reshape(N, 3), "tab": torch.randn(N, 2)}
    mask = torch.ones(N, 3, dtype=torch.long)
    mask[1, 2] = 0
    if not extra:
        inputs["attention_mask"] = mask
    return save_tensor_dataset(path, inputs, torch.arange(N) % 2, extra={"attention_mask": mask} if extra else None)


def test_extra_round_trips_and_batches_carry_it(tmp_path):
    ds = load_tensor_file(write(tmp_path / "d.pt"))
    assert ds.modalities == ("text", "tab") and ds.extra_names == ("attention_mask",)
    batch = next(iter_batches(ds, batch_size=3))
    assert set(batch.inputs) == {"text", "tab"} and batch.extra["attention_mask"][1, 2] == 0
    assert batch.to("cpu").extra["attention_mask"].shape == (3, 3)


@pytest.mark.parametrize("in_extra", [True, False])
def test_with_pass_through_from_extra_or_inputs(tmp_path, in_extra):
    ds = load_tensor_file(write(tmp_path / "d.pt", extra=in_extra))
    view = with_pass_through(ds, ["attention_mask"])
    assert view.modalities == ("text", "tab") and view.extra_names == ("attention_mask",)
    batch = next(iter_batches(view, batch_size=N))
    assert set(batch.inputs) == {"text", "tab"} and int(batch.extra["attention_mask"].sum()) == N * 3 - 1


def test_a_file_input_left_out_by_modalities_can_still_pass_through(tmp_path):
    path = write(tmp_path / "d.pt", extra=False)
    ds = load_tensor_file(path, modalities=["text"])
    view = with_pass_through(ds, ["attention_mask"])
    assert view.modalities == ("text",) and next(iter_batches(view, 2)).extra["attention_mask"].shape == (2, 3)


def test_errors(tmp_path):
    ds = load_tensor_file(write(tmp_path / "d.pt"))
    with pytest.raises(DataError, match="lengths.*attention_mask"):
        with_pass_through(ds, ["lengths"])
    with pytest.raises(UsageError, match="both"):
        with_pass_through(ds, ["attention_mask"], modalities=["text", "attention_mask"])
    with pytest.raises(UsageError, match="twice|repeats"):
        parse_pass_through("a,a")
    assert parse_pass_through(None) == () and parse_pass_through("a, b") == ("a", "b")


def test_any_dataset_class_can_move_an_input_to_pass_through():
    from mmbalance.data import MultimodalDataset

    class Listed(MultimodalDataset):
        def __init__(self):
            super().__init__(modalities=["a", "mask"], classes=["0", "1"], source="listed")

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return {"a": torch.full((2,), float(i)), "mask": torch.tensor([1, i % 2])}, i % 2

    view = with_pass_through(Listed(), ["mask"])
    assert view.modalities == ("a",) and view.extra_names == ("mask",) and len(view) == 3
    batch = next(iter_batches(view, batch_size=3))
    assert set(batch.inputs) == {"a"} and batch.extra["mask"][:, 1].tolist() == [0, 1, 0]
    assert view.sample_shapes() == {"a": (2,)}
