"""Resolving sources: files, split directories, synthetic data, the registry, unknown forms."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmbalance.data import (
    MultimodalDataset,
    SourceRequest,
    TensorMultimodalDataset,
    list_sources,
    load_dataset,
    register_source,
    save_tensor_dataset,
    unregister_source,
)
from mmbalance.data import sources
from mmbalance.errors import DataError

BUILTIN = ("synthetic", "tensor-file", "split-dir")


@pytest.fixture(autouse=True)
def builtin_sources_only(monkeypatch) -> None:
    """Only this package's sources, so messages do not depend on which plug-ins are installed."""
    monkeypatch.setattr(sources, "_SOURCES", {name: sources._SOURCES[name] for name in BUILTIN})
    monkeypatch.setattr(sources, "_plugin_state", {"loaded": True, "failures": []})


@pytest.fixture
def split_dir(tmp_path: Path, make_inputs) -> Path:
    """``train.pt`` (12 samples) and ``test.pt`` (5 samples), no ``val.pt``."""
    for split, n in (("train", 12), ("test", 5)):
        inputs, labels = make_inputs(n)
        save_tensor_dataset(tmp_path / f"{split}.pt", inputs, labels, ["cat", "dog", "eel"])
    return tmp_path


def test_a_file_source_ignores_split(small_file: Path) -> None:
    ds = load_dataset(str(small_file), split="train")
    assert len(ds) == 12 and ds.split is None and ds.source == str(small_file)
    assert ds.classes == ["cat", "dog", "eel"]


def test_a_path_object_is_accepted(small_file: Path) -> None:
    assert len(load_dataset(small_file)) == 12


def test_split_dir_uses_the_default_split(split_dir: Path) -> None:
    ds = load_dataset(str(split_dir))
    assert ds.split == "test" and len(ds) == 5 and ds.source == str(split_dir)
    assert load_dataset(str(split_dir), default_split="train").split == "train"


def test_split_dir_explicit_split_and_modalities(split_dir: Path) -> None:
    ds = load_dataset(str(split_dir), split="train", modalities=["visual"])
    assert (ds.split, len(ds), ds.modalities) == ("train", 12, ("visual",))
    assert load_dataset(str(split_dir), modalities="visual, audio").modalities == ("visual", "audio")


def test_missing_split_lists_the_available_ones(split_dir: Path) -> None:
    message = r"split 'val' not found in .*: no val\.pt there \(available splits: test, train\)"
    with pytest.raises(DataError, match=message):
        load_dataset(str(split_dir), split="val")


def test_a_split_name_cannot_leave_the_directory(split_dir: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_dataset(str(split_dir), split="../test")


def test_errors_in_a_split_file_name_that_file(split_dir: Path) -> None:
    (split_dir / "test.pt").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"test\.pt is not a readable torch file"):
        load_dataset(str(split_dir))


def test_directory_without_split_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match=r"is a directory without dataset files \(accepted: synthetic:av-dominance"):
        load_dataset(str(tmp_path))


def test_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"dataset file not found: .*missing\.pt"):
        load_dataset(str(tmp_path / "missing.pt"))
    with pytest.raises(DataError, match=r"dataset not found: .*missing_dir"):
        load_dataset(str(tmp_path / "missing_dir"))


def test_unknown_source_lists_the_accepted_forms() -> None:
    with pytest.raises(DataError, match=r"unknown dataset source 'imagenet' \(accepted: synthetic:av-dominance.*"
                                        r"a \.pt file.*a directory holding train\.pt"):
        load_dataset("imagenet")
    with pytest.raises(DataError, match="no dataset source given"):
        load_dataset("  ")


def test_existing_file_of_another_format(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n")
    with pytest.raises(DataError, match=r"data\.csv is not a dataset format mmbalance reads"):
        load_dataset(str(path))


def test_synthetic_source_with_params() -> None:
    ds = load_dataset("synthetic:av-dominance?n_val=10&seed=3", split="val", modalities=["visual", "audio"])
    assert (ds.split, len(ds), ds.modalities) == ("val", 10, ("visual", "audio"))
    assert ds.sample_shapes() == {"visual": (3, 4, 32, 32), "audio": (1, 32, 32)}
    assert ds.classes == ["low-a", "low-b", "high-a", "high-b"]
    again = load_dataset("synthetic:av-dominance?seed=3&n_val=10", split="val")
    assert torch.equal(ds.inputs["audio"], again.inputs["audio"])


@pytest.mark.parametrize(("source", "split", "message"), [
    ("synthetic:cats", None, r"unknown synthetic dataset 'cats'.*available: synthetic:av-dominance"),
    ("synthetic:av-dominance?size=3", None, r"unknown parameter 'size'.*accepted: n_train, n_val, n_test, seed"),
    ("synthetic:av-dominance?seed=abc", None, r"parameter seed='abc' .* is not an integer"),
    ("synthetic:av-dominance?seed", None, r"cannot parse the parameters"),
    ("synthetic:av-dominance?n_test=0", None, r"n_test must be at least 1"),
    ("synthetic:av-dominance?num_classes=1", None, r"num_classes must be between 2 and 16"),
    ("synthetic:av-dominance", "holdout", r"has no split 'holdout' \(available splits: train, val, test\)"),
])
def test_synthetic_source_errors(source: str, split: str | None, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_dataset(source, split=split)


def test_registered_sources_plug_in_by_prefix_and_predicate(small_file: Path) -> None:
    before = [e.name for e in list_sources()]
    assert tuple(before) == BUILTIN
    seen: list[SourceRequest] = []

    def load_mem(request: SourceRequest) -> MultimodalDataset:
        seen.append(request)
        return TensorMultimodalDataset({"x": torch.zeros(3, 2)}, torch.tensor([0, 1, 0]),
                                       modalities=request.modalities, source=request.source,
                                       split=request.wanted_split)

    register_source("mem:", load_mem, form="mem:<name>")
    register_source(lambda s: s.endswith("manifest.csv"), load_mem, name="manifest", form="a manifest.csv")
    try:
        ds = load_dataset("mem:anything", modalities=["x"], default_split="val")
        assert (ds.source, ds.split, len(ds)) == ("mem:anything", "val", 3)
        assert seen[0] == SourceRequest("mem:anything", None, ("x",), "val")
        assert load_dataset("some/manifest.csv", split="train").split == "train"
        with pytest.raises(DataError, match=r"accepted: .*mem:<name>; a manifest\.csv"):
            load_dataset("nothing-like-that")
    finally:
        unregister_source("mem:")
        unregister_source("manifest")
    assert [e.name for e in list_sources()] == before


def test_priority_decides_between_matching_sources(small_file: Path) -> None:
    @register_source(lambda s: s.endswith(".pt"), name="override", priority=10)
    def load_other(request: SourceRequest) -> MultimodalDataset:
        return TensorMultimodalDataset({"y": torch.zeros(1, 1)}, torch.tensor([0]), source=request.source)

    try:
        assert list_sources()[0].name == "override"
        assert load_dataset(str(small_file)).modalities == ("y",)
    finally:
        unregister_source("override")
    assert load_dataset(str(small_file)).modalities == ("audio", "visual")


@pytest.fixture
def fresh_plugins(monkeypatch):
    """Plug-in loading as if for the first time (on the private registry of the autouse fixture)."""
    monkeypatch.setattr(sources, "_plugin_state", {"loaded": False, "failures": []})
    return sources


def test_plugin_modules_register_on_first_use(fresh_plugins, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "mmb_test_plugin.py").write_text(
        "from mmbalance.data import register_source, load_dataset\n"
        "register_source('plug:', lambda r: load_dataset('synthetic:av-dominance?n_test=3'), name='plug')\n")
    (tmp_path / "mmb_broken_plugin.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(fresh_plugins, "PLUGIN_MODULES",
                        ("mmb_test_plugin", "mmb_broken_plugin", "mmb_not_installed_plugin"))
    assert len(load_dataset("plug:x")) == 3
    with pytest.raises(DataError, match=r"plug-ins that failed to load: mmb_broken_plugin: RuntimeError: boom\)$"):
        load_dataset("nothing-like-that")
