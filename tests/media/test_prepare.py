"""``prepare``: decode once into the tensor format, in parallel, resumable, with a skipped log."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from mmbalance.data import load_dataset
from mmbalance.errors import DataError, UsageError
from mmbalance.media import DecodeOptions, MediaError, prepare

# the module (the package attribute `prepare` is the function)
prep = importlib.import_module("mmbalance.media.prepare")
TINY = DecodeOptions(frames=2, size=32, clip_seconds=1.0, n_mels=16)


@pytest.fixture
def source(tmp_path: Path, media, write_csv) -> Path:
    for p in (*media.clips, media.unicode, media.short, media.wav, media.corrupt, media.no_audio):
        shutil.copy(p, tmp_path / p.name)
    return write_csv(tmp_path / "clips.csv", [
        "clip0.mp4,cat,,train", "clip1.mp4,dog,voice.wav,train", "clip2.mp4,cat,,train", "short.mp4,dog,,train",
        "clip3.mp4,cat,,test", "ünïcødé clip.mp4,dog,,test",
    ], header="video,label,audio,split")


def add_rows(csv: Path, *rows: str) -> None:
    with open(csv, "a", encoding="utf-8") as fh:
        fh.write("".join(f"{r}\n" for r in rows))


def test_prepared_splits_match_on_the_fly_decoding(tmp_path: Path, source: Path) -> None:
    out = tmp_path / "out"
    result = prepare(source, out, options=TINY, progress=False)
    assert result.splits == {"test": 2, "train": 4} and result.decoded == 6 and result.cached == 0
    assert sorted(p.name for p in out.iterdir()) == [".cache", "prepare.json", "skipped.json", "test.pt", "train.pt"]
    for split in ("train", "test"):
        prepared = load_dataset(str(out), split=split)
        live = load_dataset(f"{source}?frames=2&size=32&clip_seconds=1&n_mels=16", split=split)
        assert prepared.classes == live.classes == ["cat", "dog"]
        assert prepared.labels.tolist() == [live[i][1] for i in range(len(live))]
        for i in range(len(live)):
            for m in ("audio", "visual"):
                assert torch.allclose(prepared[i][0][m], live[i][0][m])
    summary = json.loads((out / "prepare.json").read_text())
    assert summary["options"]["frames"] == 2 and summary["shapes"]["visual"] == [3, 2, 32, 32]
    assert json.loads((out / "skipped.json").read_text())["count"] == 0


def test_rerun_is_resumable_and_decodes_only_new_clips(tmp_path: Path, source: Path) -> None:
    out = tmp_path / "out"
    prepare(source, out, options=TINY, split="train", progress=False, shard_size=2)
    again = prepare(source, out, options=TINY, progress=False)
    assert (again.decoded, again.cached) == (2, 4)  # train from the cache, test decoded
    add_rows(source, "clip3.mp4,dog,,train")  # same file as a test clip: decoded once, cached
    third = prepare(source, out, options=TINY, progress=False)
    assert (third.decoded, third.splits["train"]) == (0, 5)
    bigger = prepare(source, out, options=DecodeOptions(frames=3, size=32, clip_seconds=1.0, n_mels=16),
                     progress=False)
    assert bigger.decoded == 6 and load_dataset(str(out)).sample_shapes()["visual"] == (3, 3, 32, 32)


def test_a_crash_keeps_finished_shards(tmp_path: Path, source: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    real = prep._decode_shard
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(prep, "_decode_shard", flaky)
    with pytest.raises(KeyboardInterrupt):
        prepare(source, out, options=TINY, progress=False, shard_size=2)
    monkeypatch.setattr(prep, "_decode_shard", real)
    resumed = prepare(source, out, options=TINY, progress=False, shard_size=2)
    assert (resumed.decoded, resumed.cached) == (2, 4)


def test_bad_clip_stops_with_its_name_then_skip_bad_lists_it(tmp_path: Path, source: Path) -> None:
    add_rows(source, "corrupt.mp4,cat,,test", "noaudio.mp4,dog,,test", "gone.mp4,cat,,train", "clip0.mp4,cow,,test")
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"file not found: .*gone.mp4 \(.*clips.csv line 10\)"):
        prepare(source, out, options=TINY, progress=False)
    source.write_text(source.read_text().replace("gone.mp4,cat,,train\n", ""))
    with pytest.raises(MediaError, match=r"corrupt.mp4"):
        prepare(source, out, options=TINY, progress=False)
    result = prepare(f"{source}?skip_bad=1", out, options=TINY, progress=False)
    assert result.splits == {"test": 3, "train": 4}  # 'cow' is a class of its own here
    reasons = {Path(s.path).name: s.reason for s in result.skipped}
    assert set(reasons) == {"corrupt.mp4", "noaudio.mp4"}
    log = json.loads((out / "skipped.json").read_text())
    assert log["count"] == 2 and {Path(s["path"]).name for s in log["skipped"]} == set(reasons)
    assert all(s["where"].startswith(str(source)) for s in log["skipped"])


def test_two_workers_give_the_same_tensors(tmp_path: Path, source: Path) -> None:
    one = prepare(source, tmp_path / "one", options=TINY, progress=False)
    two = prepare(source, tmp_path / "two", options=TINY, progress=False, workers=2, shard_size=2)
    assert one.splits == two.splits and two.workers == 2
    for split in one.splits:
        a, b = load_dataset(str(tmp_path / "one"), split=split), load_dataset(str(tmp_path / "two"), split=split)
        assert torch.equal(a.inputs["visual"], b.inputs["visual"]) and torch.equal(a.labels, b.labels)
        assert torch.allclose(a.inputs["audio"], b.inputs["audio"])


def test_unsplit_source_and_options(tmp_path: Path, media, write_csv) -> None:
    shutil.copy(media.clips[0], tmp_path / "a.mp4")
    csv = write_csv(tmp_path / "m.csv", ["a.mp4,0"])
    result = prepare(csv, tmp_path / "out", options=TINY, unsplit_name="val", modalities=["visual"],
                     progress=False, keep_cache=False)
    assert result.files == {"val": str(tmp_path / "out" / "val.pt")} and result.modalities == ("visual",)
    assert not (tmp_path / "out" / ".cache").exists()
    assert load_dataset(str(tmp_path / "out"), split="val").modalities == ("visual",)
    with pytest.raises(UsageError, match="has no splits"):
        prepare(csv, tmp_path / "out", split="train", progress=False)
    with pytest.raises(UsageError, match="workers"):
        prepare(csv, tmp_path / "out", workers=0, progress=False)
