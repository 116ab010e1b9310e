"""The tensor file format: round trip, modality order and every refusal."""

from __future__ import annotations

import collections
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from mmbalance.data import TensorMultimodalDataset, load_tensor_file, save_tensor_dataset
from mmbalance.errors import DataError


def test_round_trip_keeps_tensors_labels_classes_and_order(tmp_path: Path, make_inputs) -> None:
    inputs, labels = make_inputs(7)
    path = save_tensor_dataset(tmp_path / "sub" / "d.pt", inputs, labels, classes=("x", "y", "z"))
    ds = load_tensor_file(path)
    assert isinstance(ds, TensorMultimodalDataset)
    assert ds.modalities == ("audio", "visual")
    assert ds.classes == ["x", "y", "z"] and ds.num_classes == 3
    assert ds.source == str(path) and ds.split is None
    assert len(ds) == 7
    assert ds.sample_shapes() == {"audio": (1, 4, 4), "visual": (3, 2, 4, 4)}
    sample, label = ds[5]
    assert torch.equal(sample["visual"], inputs["visual"][5]) and label == 5 % 3
    assert torch.equal(ds.labels, labels)
    assert [p.name for p in path.parent.iterdir()] == ["d.pt"]  # no temporary file left


def test_classes_default_to_numbers_up_to_the_largest_label(tmp_path: Path, make_inputs) -> None:
    inputs, _ = make_inputs(4)
    ds = load_tensor_file(save_tensor_dataset(tmp_path / "d.pt", inputs, [0, 4, 1, 1]))
    assert ds.classes == ["0", "1", "2", "3", "4"]


def test_modality_order_is_the_key_order_of_inputs(tmp_path: Path, make_inputs) -> None:
    inputs, labels = make_inputs(3)
    path = save_tensor_dataset(tmp_path / "d.pt", {"visual": inputs["visual"], "audio": inputs["audio"]}, labels)
    assert load_tensor_file(path).modalities == ("visual", "audio")


def test_modalities_select_and_reorder(small_file: Path) -> None:
    ds = load_tensor_file(small_file, modalities=["visual", "audio"])
    assert ds.modalities == ("visual", "audio")
    only = load_tensor_file(small_file, modalities=["visual"])
    assert only.modalities == ("visual",)
    assert set(only[0][0]) == {"visual"}


def test_unknown_modality_lists_the_available_ones(small_file: Path) -> None:
    with pytest.raises(DataError, match=r"no modality 'depth'.*available modalities: audio, visual"):
        load_tensor_file(small_file, modalities=["audio", "depth"])


def test_saving_a_slice_does_not_store_the_parent(tmp_path: Path) -> None:
    big = torch.zeros(10_000, 64)
    path = save_tensor_dataset(tmp_path / "d.pt", {"x": big[:2]}, torch.tensor([0, 1]))
    assert path.stat().st_size < 100_000


def test_legacy_non_zip_files_load(tmp_path: Path, make_inputs) -> None:
    inputs, labels = make_inputs(3)
    path = tmp_path / "legacy.pt"
    torch.save({"inputs": inputs, "labels": labels}, path, _use_new_zipfile_serialization=False)
    assert len(load_tensor_file(path)) == 3


def test_ordered_dict_inputs_are_accepted(raw_file, make_inputs) -> None:
    inputs, labels = make_inputs(3)
    path = raw_file({"inputs": collections.OrderedDict(inputs), "labels": labels})
    assert load_tensor_file(path).modalities == ("audio", "visual")


# --- refusals: one DataError line naming the file ------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"dataset file not found: .*nope\.pt"):
        load_tensor_file(tmp_path / "nope.pt")


def test_not_a_torch_file(tmp_path: Path) -> None:
    path = tmp_path / "text.pt"
    path.write_text("just some text\n")
    with pytest.raises(DataError, match=r"text\.pt is not a readable torch file"):
        load_tensor_file(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.pt is empty"):
        load_tensor_file(path)


def test_truncated_file(small_file: Path) -> None:
    data = small_file.read_bytes()
    small_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"small\.pt is not a readable torch file \(corrupt or truncated\?\)"):
        load_tensor_file(small_file)


def test_corrupt_file(small_file: Path) -> None:
    data = bytearray(small_file.read_bytes())
    data[60:400] = b"\x00" * 340
    small_file.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"small\.pt is not a readable torch file"):
        load_tensor_file(small_file)


def test_not_a_dict(raw_file) -> None:
    with pytest.raises(DataError, match=r"raw\.pt holds a list, not a dataset dict"):
        load_tensor_file(raw_file([torch.zeros(2)]))


@pytest.mark.parametrize("missing", ["inputs", "labels"])
def test_missing_entry(raw_file, missing: str, make_inputs) -> None:
    inputs, labels = make_inputs(3)
    obj = {"inputs": inputs, "labels": labels}
    del obj[missing]
    with pytest.raises(DataError, match=rf"raw\.pt has no '{missing}' entry \(found keys: "):
        load_tensor_file(raw_file(obj))


def test_inputs_not_a_dict(raw_file) -> None:
    message = r"'inputs' in .*raw\.pt must be a dict of modality name -> tensor, got a Tensor"
    with pytest.raises(DataError, match=message):
        load_tensor_file(raw_file({"inputs": torch.zeros(3, 2), "labels": torch.zeros(3, dtype=torch.long)}))


def test_inputs_value_not_a_tensor(raw_file) -> None:
    obj = {"inputs": {"audio": [1.0, 2.0]}, "labels": torch.zeros(2, dtype=torch.long)}
    with pytest.raises(DataError, match=r"'audio' is a list"):
        load_tensor_file(raw_file(obj))


def test_empty_inputs(raw_file) -> None:
    with pytest.raises(DataError, match=r"got an empty dict"):
        load_tensor_file(raw_file({"inputs": {}, "labels": torch.zeros(2, dtype=torch.long)}))


def test_length_mismatch_gives_each_length(raw_file) -> None:
    obj = {"inputs": {"audio": torch.zeros(5, 2), "visual": torch.zeros(4, 2)}, "labels": torch.zeros(5).long()}
    with pytest.raises(DataError, match=r"length mismatch in .*raw\.pt: 'audio' has 5, 'visual' has 4, 'labels' has 5"):
        load_tensor_file(raw_file(obj))


def test_float_labels(raw_file) -> None:
    obj = {"inputs": {"a": torch.zeros(3, 2)}, "labels": torch.zeros(3)}
    with pytest.raises(DataError, match=r"'labels' in .*raw\.pt must be a 1-D integer tensor \(N,\), got float32"):
        load_tensor_file(raw_file(obj))


def test_two_dimensional_labels(raw_file) -> None:
    obj = {"inputs": {"a": torch.zeros(3, 2)}, "labels": torch.zeros(3, 4, dtype=torch.long)}
    message = re.escape("must be a 1-D integer tensor (N,), got int64 tensor of shape (3, 4)")
    with pytest.raises(DataError, match=message):
        load_tensor_file(raw_file(obj))


def test_negative_label_names_the_sample(raw_file) -> None:
    obj = {"inputs": {"a": torch.zeros(4, 2)}, "labels": torch.tensor([0, 1, -1, 0])}
    with pytest.raises(DataError, match=r"label -1 of sample 2 in .*raw\.pt is negative"):
        load_tensor_file(raw_file(obj))


def test_too_few_class_names(raw_file) -> None:
    obj = {"inputs": {"a": torch.zeros(3, 2)}, "labels": torch.tensor([0, 3, 1]), "classes": ["a", "b"]}
    message = r"raw\.pt lists 2 class names but labels go up to 3 \('classes' needs at least 4"
    with pytest.raises(DataError, match=message):
        load_tensor_file(raw_file(obj))


def test_classes_not_strings(raw_file) -> None:
    obj = {"inputs": {"a": torch.zeros(2, 2)}, "labels": torch.tensor([0, 1]), "classes": ["a", 2]}
    with pytest.raises(DataError, match=r"'classes' in .*raw\.pt must be a list of strings, got a list containing int"):
        load_tensor_file(raw_file(obj))


def test_empty_dataset(raw_file) -> None:
    obj = {"inputs": {"a": torch.zeros(0, 2)}, "labels": torch.zeros(0, dtype=torch.long)}
    with pytest.raises(DataError, match=r"raw\.pt holds no samples"):
        load_tensor_file(raw_file(obj))


class Custom:
    """Unpickling this needs arbitrary code."""


def test_arbitrary_objects_are_refused(raw_file, make_inputs) -> None:
    inputs, labels = make_inputs(2)
    path = raw_file({"inputs": inputs, "labels": labels, "meta": Custom()})
    message = (r"raw\.pt was refused as unsafe: loading it would run the global \S*Custom, which can execute "
               r"arbitrary code; a dataset file must contain only tensors, dicts, lists and strings")
    with pytest.raises(DataError, match=message):
        load_tensor_file(path)


def test_numpy_arrays_are_refused_with_a_hint(raw_file) -> None:
    path = raw_file({"inputs": {"a": np.zeros((2, 3))}, "labels": torch.tensor([0, 1])})
    with pytest.raises(DataError, match=r"refused as unsafe.*torch\.from_numpy"):
        load_tensor_file(path)


def test_save_checks_before_writing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="length mismatch"):
        save_tensor_dataset(tmp_path / "d.pt", {"a": torch.zeros(3, 2)}, torch.tensor([0, 1]))
    assert not (tmp_path / "d.pt").exists()


def test_zip_files_are_memory_mapped_and_read_safely(small_file: Path, tmp_path: Path, monkeypatch,
                                                     make_inputs) -> None:
    calls: list[dict] = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_tensor_file(small_file)
    inputs, labels = make_inputs(2)
    legacy = tmp_path / "legacy.pt"
    torch.save({"inputs": inputs, "labels": labels}, legacy, _use_new_zipfile_serialization=False)
    load_tensor_file(legacy)
    seen = [(c["mmap"], c["weights_only"], c["map_location"]) for c in calls]
    assert seen == [(True, True, "cpu"), (False, True, "cpu")]
