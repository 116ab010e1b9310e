"""Manifest CSVs: columns, paths relative to the CSV, labels, splits, and bad rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmbalance.errors import DataError
from mmbalance.media import read_manifest


def test_paths_are_relative_to_the_csv_and_classes_sorted(tmp_path: Path, write_csv) -> None:
    sub = tmp_path / "lists"
    sub.mkdir()
    csv = write_csv(sub / "clips.csv", ["../v/a.mp4,dog,../a/a.wav,train", "/abs/b.mp4,cat,,test"],
                    header="video,label,audio,split")
    m = read_manifest(csv)
    assert m.classes == ["cat", "dog"] and m.splits == ("test", "train")
    first, second = m.items
    assert first.visual == str(sub / "../v/a.mp4") and first.audio == str(sub / "../a/a.wav")
    assert (first.label, first.split, first.where) == (1, "train", f"{csv} line 2")
    assert second.visual == "/abs/b.mp4" and second.audio is None and second.label == 0


def test_integer_labels_are_indices(tmp_path: Path, write_csv) -> None:
    m = read_manifest(write_csv(tmp_path / "m.csv", ["a.mp4,2", "b.mp4,0"]))
    assert m.classes == ["0", "1", "2"] and [i.label for i in m.items] == [2, 0] and m.splits is None


def test_header_is_case_insensitive_with_bom_and_extra_columns(tmp_path: Path) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("\ufeffVideo,Label,notes\nünïcødé clip.mp4,cät,hello\n", encoding="utf-8")
    item = read_manifest(csv).items[0]
    assert item.name == "ünïcødé clip.mp4" and read_manifest(csv).classes == ["cät"]


def test_empty_manifest_is_an_error(tmp_path: Path, write_csv) -> None:
    with pytest.raises(DataError, match="lists no clips"):
        read_manifest(write_csv(tmp_path / "m.csv", []))
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="lists no clips"):
        read_manifest(empty)


def test_missing_columns_are_named(tmp_path: Path, write_csv) -> None:
    with pytest.raises(DataError, match="no 'label' column") as info:
        read_manifest(write_csv(tmp_path / "m.csv", ["a.mp4"], header="video"))
    assert "'video'" in str(info.value)
    with pytest.raises(DataError, match="passing its folder"):
        read_manifest(write_csv(tmp_path / "train.csv", ["1001_DFA_ANG_XX,ANG"], header="1001_DFA_ANG_XX,ANG"))


def test_unknown_label_stops_or_is_skipped(tmp_path: Path, write_csv) -> None:
    csv = write_csv(tmp_path / "m.csv", ["a.mp4,cat", "b.mp4,cow", "c.mp4,"])
    with pytest.raises(DataError, match=r"m.csv line 3: unknown label 'cow'"):
        read_manifest(csv, classes=["cat", "dog"])
    m = read_manifest(csv, classes=["cat", "dog"], skip_bad=True)
    assert [i.name for i in m.items] == ["a.mp4"] and m.classes == ["cat", "dog"]
    assert [(s.where.split()[-1], s.reason) for s in m.skipped] == [("3", "unknown label 'cow'"),
                                                                  ("4", "unknown label ''")]


def test_negative_index_and_empty_split_are_bad_rows(tmp_path: Path, write_csv) -> None:
    with pytest.raises(DataError, match="unknown label '-1'"):
        read_manifest(write_csv(tmp_path / "m.csv", ["a.mp4,1", "b.mp4,-1"]))
    with pytest.raises(DataError, match="empty 'split'"):
        read_manifest(write_csv(tmp_path / "s.csv", ["a.mp4,cat,train", "b.mp4,cat,"], header="video,label,split"))


def test_manifest_not_found_or_not_text(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="manifest not found"):
        read_manifest(tmp_path / "nope.csv")
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81video")
    with pytest.raises(DataError, match="not a UTF-8"):
        read_manifest(binary)
