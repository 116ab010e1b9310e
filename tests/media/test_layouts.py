"""CREMA-D as OGM-GE lays it out, and one folder per class."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mmbalance.data import load_dataset
from mmbalance.errors import DataError
from mmbalance.media import CREMAD_CLASSES, MediaDataset, read_class_folders, read_cremad
from mmbalance.media.testing import write_clip, write_image, write_wav

TINY_QUERY = "frames=2&size=32&clip_seconds=1&n_mels=16"


def make_cremad(root: Path, rows: dict[str, list[tuple[str, str]]], *, frames: int = 3) -> Path:
    """OGM-GE's layout: <split>.csv (clip,label, no header), AudioWAV/<clip>.wav, Image-01-FPS/<clip>/*.jpg."""
    for split, pairs in rows.items():
        (root / f"{split}.csv").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{split}.csv").write_text("".join(f"{clip},{label}\n" for clip, label in pairs))
        for n, (clip, _) in enumerate(pairs):
            write_wav(root / "AudioWAV" / f"{clip}.wav", seconds=0.5, seed=n)
            for i in range(frames):
                write_image(root / "Image-01-FPS" / clip / f"frame_{i + 1:05d}.jpg", index=i, count=frames, seed=n)
    return root


@pytest.fixture(scope="module")
def cremad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cremad(tmp_path_factory.mktemp("cremad"), {
        "train": [("1001_DFA_ANG_XX", "ANG"), ("1001_DFA_HAP_XX", "HAP"), ("1002_IEO_NEU_LO", "NEU")],
        "test": [("1003_TIE_SAD_XX", "SAD"), ("1004_MTI_FEA_XX", "FEA")],
    })


def test_cremad_layout_reads_like_ogm_ge(cremad: Path) -> None:
    c = read_cremad(cremad)
    assert c.classes == list(CREMAD_CLASSES) == ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]
    assert c.splits == ("train", "test")
    train, _ = c.select("train")
    assert [(Path(i.visual).name, i.label) for i in train] == [("1001_DFA_ANG_XX", 5), ("1001_DFA_HAP_XX", 1),
                                                              ("1002_IEO_NEU_LO", 0)]
    assert train[0].audio == str(cremad / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    assert Path(train[0].visual).parent.name == "Image-01-FPS"


def test_cremad_through_load_dataset(cremad: Path) -> None:
    ds = load_dataset(f"{cremad}?{TINY_QUERY}", split="train")
    assert isinstance(ds, MediaDataset) and len(ds) == 3 and ds.split == "train"
    inputs, label = ds[0]
    assert tuple(inputs["audio"].shape) == (1, 16, 101) and tuple(inputs["visual"].shape) == (3, 2, 32, 32)
    assert ds.classes[label] == "ANG"
    assert len(load_dataset(f"cremad:{cremad}?{TINY_QUERY}")) == 2  # default split: test


def test_cremad_missing_wav_and_unknown_label(tmp_path: Path, cremad: Path) -> None:
    root = shutil.copytree(cremad, tmp_path / "c")
    (root / "AudioWAV" / "1003_TIE_SAD_XX.wav").unlink()
    with pytest.raises(DataError, match=r"file not found: .*1003_TIE_SAD_XX.wav \(.*test.csv line 1\)"):
        load_dataset(f"{root}?{TINY_QUERY}")
    ds = load_dataset(f"{root}?{TINY_QUERY}&skip_bad=1")
    assert len(ds) == 1 and [s.reason for s in ds.skipped] == ["file not found"]
    (root / "train.csv").write_text("1001_DFA_ANG_XX,ANG\n1001_DFA_HAP_XX,XXX\n")
    with pytest.raises(DataError, match=r"train.csv line 2: unknown label 'XXX'"):
        read_cremad(root)
    assert len(read_cremad(root, skip_bad=True).select("train")[0]) == 1


def test_cremad_falls_back_to_videoflash(tmp_path: Path) -> None:
    root = tmp_path / "c"
    (root / "AudioWAV").mkdir(parents=True)
    write_wav(root / "AudioWAV" / "1001_DFA_ANG_XX.wav", seconds=0.5)
    write_clip(root / "VideoFlash" / "1001_DFA_ANG_XX.mp4")
    (root / "test.csv").write_text("1001_DFA_ANG_XX,ANG\n")
    ds = load_dataset(f"{root}?{TINY_QUERY}")
    assert Path(ds.items[0].visual).parent.name == "VideoFlash"
    assert tuple(ds[0][0]["visual"].shape) == (3, 2, 32, 32)


def test_class_folders_flat_with_sidecar_audio_and_frame_folders(tmp_path: Path, media) -> None:
    root = tmp_path / "root"
    shutil.copy(media.clips[0], _mk(root / "dog") / "a.mp4")
    shutil.copy(media.wav, root / "dog" / "a.wav")
    shutil.copy(media.unicode, _mk(root / "cät") / "ünïcødé clip.mp4")
    shutil.copytree(media.frames, root / "cät" / "frames_clip")
    (root / "cät" / "notes.txt").write_text("ignored")
    c = read_class_folders(root)
    assert c.classes == ["cät", "dog"] and c.splits is None
    assert [(Path(i.visual).name, i.label, Path(i.audio).name if i.audio else None) for i in c.items] == [
        ("frames_clip", 0, None), ("ünïcødé clip.mp4", 0, None), ("a.mp4", 1, "a.wav")]
    ds = load_dataset(f"{root}?{TINY_QUERY}", modalities=["visual"])  # frame folders have no audio
    assert len(ds) == 3 and ds.modalities == ("visual",)
    with pytest.raises(DataError, match="a frame folder has no audio"):
        load_dataset(f"{root}?{TINY_QUERY}")


def test_class_folders_with_split_level(tmp_path: Path, media) -> None:
    root = tmp_path / "ks"
    for split, classes in {"train": ["a", "b"], "val": ["b"]}.items():
        for k in classes:
            shutil.copy(media.clips[0], _mk(root / split / k) / "x.mp4")
    c = read_class_folders(root)
    assert c.splits == ("train", "val") and c.classes == ["a", "b"]
    assert [i.label for i in c.select("val")[0]] == [1]  # same index for 'b' in every split
    with pytest.raises(DataError, match="no split 'test'"):
        load_dataset(f"folders:{root}?{TINY_QUERY}")
    assert load_dataset(f"folders:{root}?{TINY_QUERY}", split="val").split == "val"


def test_class_folders_fixed_classes(tmp_path: Path, media) -> None:
    root = tmp_path / "r"
    shutil.copy(media.clips[0], _mk(root / "dog") / "a.mp4")
    shutil.copy(media.clips[1], _mk(root / "cow") / "b.mp4")
    ds = load_dataset(f"{root}?{TINY_QUERY}&classes=dog,cow,cat")
    assert ds.classes == ["dog", "cow", "cat"] and sorted(i.label for i in ds.items) == [0, 1]
    with pytest.raises(DataError, match="class folder 'cow'"):
        read_class_folders(root, classes=["dog", "cat"])


def test_folder_without_clips_is_not_a_media_source(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(DataError, match="without dataset files"):
        load_dataset(str(tmp_path / "empty"))


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
