"""Manifests through ``load_dataset``: on-the-fly decoding, up-front checks, skip_bad, and the models."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from mmbalance.data import iter_batches, load_dataset, make_loader, save_tensor_dataset
from mmbalance.errors import DataError
from mmbalance.media import MediaDataset, MediaError, is_media_source, open_media
from mmbalance.models import create_model

TINY_QUERY = "frames=2&size=32&clip_seconds=1&n_mels=16"


@pytest.fixture
def manifest(tmp_path: Path, media, write_csv) -> Path:
    """Four good clips (two per class) in train/test, one with a separate WAV, one with a non-ASCII name."""
    for p in (*media.clips, media.unicode, media.wav):
        shutil.copy(p, tmp_path / p.name)
    return write_csv(tmp_path / "clips.csv", [
        "clip0.mp4,cat,,train", "clip1.mp4,dog,voice.wav,train", "clip2.mp4,cat,,test", "ünïcødé clip.mp4,dog,,test",
    ], header="video,label,audio,split")


def test_manifest_decodes_on_the_fly(manifest: Path) -> None:
    ds = load_dataset(f"{manifest}?{TINY_QUERY}")
    assert isinstance(ds, MediaDataset) and ds.split == "test" and len(ds) == 2
    assert ds.classes == ["cat", "dog"] and ds.modalities == ("audio", "visual")
    assert ds.sample_shapes() == {"audio": (1, 16, 101), "visual": (3, 2, 32, 32)}
    inputs, label = ds[1]
    assert {m: tuple(t.shape) for m, t in inputs.items()} == ds.sample_shapes() and label == 1
    batch = next(iter_batches(ds, batch_size=2))
    assert batch.labels.tolist() == [0, 1] and batch.inputs["visual"].shape == (2, 3, 2, 32, 32)


def test_decoded_batches_fit_the_builtin_models(manifest: Path) -> None:
    ds = load_dataset(str(manifest), split="train")  # default options: (1, 64, 301) and (3, 4, 112, 112)
    batch = next(iter_batches(ds, batch_size=2))
    model = create_model("av-tiny", num_classes=ds.num_classes).eval()
    with torch.no_grad():
        assert model(batch.inputs["audio"], batch.inputs["visual"]).shape == (2, 2)


def test_split_and_modalities(manifest: Path) -> None:
    ds = load_dataset(f"{manifest}?{TINY_QUERY}", split="train", modalities=["visual"])
    assert ds.split == "train" and ds.modalities == ("visual",) and set(ds[0][0]) == {"visual"}
    with pytest.raises(DataError, match="no split 'val'") as info:
        load_dataset(str(manifest), split="val")
    assert "test, train" in str(info.value)


@pytest.mark.parametrize("bad, reason", [
    ("missing.mp4", "file not found"),
    ("corrupt.mp4", "cannot open media"),
    ("truncated.mp4", "cannot open media"),
    ("noaudio.mp4", "no audio track"),
])
def test_bad_clips_stop_up_front_or_are_skipped(tmp_path: Path, media, write_csv, bad: str, reason: str) -> None:
    for p in (media.clips[0], media.corrupt, media.truncated, media.no_audio):
        shutil.copy(p, tmp_path / p.name)
    csv = write_csv(tmp_path / "m.csv", ["clip0.mp4,cat", f"{bad},dog"])
    with pytest.raises(MediaError, match=reason) as info:
        load_dataset(f"{csv}?{TINY_QUERY}")
    assert bad in str(info.value) and "m.csv line 3" in str(info.value)
    ds = load_dataset(f"{csv}?{TINY_QUERY}&skip_bad=1")
    assert len(ds) == 1 and [(Path(s.path).name, s.reason.split(" (")[0]) for s in ds.skipped] == [(bad, reason)]
    assert ds.classes == ["cat", "dog"]  # classes come from the manifest, not from what survived


def test_no_audio_is_fine_when_audio_is_not_needed(tmp_path: Path, media, write_csv) -> None:
    shutil.copy(media.no_audio, tmp_path / "noaudio.mp4")
    csv = write_csv(tmp_path / "m.csv", ["noaudio.mp4,cat"])
    assert len(load_dataset(f"{csv}?{TINY_QUERY}", modalities=["visual"])) == 1


def test_a_file_that_breaks_after_the_check_raises_when_read(tmp_path: Path, media, write_csv) -> None:
    shutil.copy(media.clips[0], tmp_path / "a.mp4")
    ds = open_media(write_csv(tmp_path / "m.csv", ["a.mp4,cat"]), options=None)
    (tmp_path / "a.mp4").write_bytes(b"broken")
    with pytest.raises(MediaError, match=r"cannot open media.*a.mp4 \(.*m.csv line 2\)"):
        next(iter_batches(ds, batch_size=1))


def test_errors_keep_their_type_through_loader_workers(tmp_path: Path, media, write_csv) -> None:
    shutil.copy(media.clips[0], tmp_path / "a.mp4")
    ds = open_media(write_csv(tmp_path / "m.csv", ["a.mp4,cat"]))
    (tmp_path / "a.mp4").write_bytes(b"broken")
    with pytest.raises(DataError, match="a.mp4"):
        next(iter(make_loader(ds, batch_size=1, num_workers=1)))


def test_all_bad_is_an_error_even_with_skip_bad(tmp_path: Path, write_csv) -> None:
    csv = write_csv(tmp_path / "m.csv", ["gone.mp4,cat"])
    with pytest.raises(DataError, match="no usable clip"):
        load_dataset(f"{csv}?skip_bad=1")


def test_decoding_options_refused_on_tensor_sources(tmp_path: Path) -> None:
    save_tensor_dataset(tmp_path / "test.pt", {"audio": torch.zeros(2, 1, 4, 4)}, torch.tensor([0, 1]))
    for source in (tmp_path / "test.pt", tmp_path):
        with pytest.raises(DataError, match="decoding options do not apply"):
            load_dataset(f"{source}?frames=8")
        assert not is_media_source(source)
    assert len(load_dataset(str(tmp_path))) == 2  # still a plain split directory


def test_is_media_source(manifest: Path, media) -> None:
    assert is_media_source(manifest) and is_media_source(f"{manifest}?frames=2")
    assert is_media_source("cremad:/anything") and is_media_source("whatever.csv")
    assert not is_media_source("synthetic:av-dominance")
