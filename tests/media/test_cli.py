"""``mmbalance data prepare`` and the decoding options shared with audit/finetune."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmbalance.data import load_dataset
from mmbalance.errors import UsageError

EXIT_ERROR = 2
def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


TINY_ARGS = ["--frames", "2", "--size", "32", "--clip-seconds", "1", "--n-mels", "16"]


@pytest.fixture
def source(tmp_path: Path, media, write_csv) -> Path:
    for p in (media.clips[0], media.clips[1], media.unicode, media.corrupt):
        shutil.copy(p, tmp_path / p.name)
    return write_csv(tmp_path / "clips.csv", ["clip0.mp4,cat", "clip1.mp4,dog", "ünïcødé clip.mp4,dog"])


def test_prepare_writes_a_split_directory(cli_app, tmp_path: Path, source: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli_app, ["data", "prepare", str(source), "--out", str(out), *TINY_ARGS])
    assert result.exit_code == 0, result.output
    for word in ("test", "1×16×101", "3×2×32×32", "cat, dog", "decoded 3 clips"):
        assert word in flat(result.output)
    ds = load_dataset(str(out))
    assert len(ds) == 3 and ds.sample_shapes() == {"audio": (1, 16, 101), "visual": (3, 2, 32, 32)}
    again = CliRunner().invoke(cli_app, ["data", "prepare", str(source), "--out", str(out), *TINY_ARGS, "--json"])
    summary = json.loads(again.stdout)
    assert summary["decoded"] == 0 and summary["cached"] == 3 and summary["splits"] == {"test": 3}


def test_bad_clip_exits_2_naming_it_and_skip_bad_goes_on(cli_app, tmp_path: Path, source: Path) -> None:
    with open(source, "a", encoding="utf-8") as fh:
        fh.write("corrupt.mp4,cat\n")
    args = ["data", "prepare", str(source), "--out", str(tmp_path / "out"), *TINY_ARGS]
    failed = CliRunner().invoke(cli_app, args)
    assert failed.exit_code == EXIT_ERROR
    for word in ("corrupt.mp4", "clips.csv line 5", "--skip-bad"):
        assert word in flat(failed.output)
    skipped = CliRunner().invoke(cli_app, [*args, "--skip-bad", "-j", "1"])
    assert skipped.exit_code == 0, skipped.output
    assert "skipped 1 clips" in flat(skipped.output) and "corrupt.mp4" in flat(skipped.output)
    assert len(load_dataset(str(tmp_path / "out"))) == 3


@pytest.mark.parametrize("args, word", [
    (["--frames", "2", "--fps", "4"], "either frames or fps"),
    (["--spectrogram", "cqt"], "spectrogram"),
])
def test_invalid_decoding_options_exit_2(cli_app, tmp_path: Path, source: Path, args: list[str], word: str) -> None:
    result = CliRunner().invoke(cli_app, ["data", "prepare", str(source), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == EXIT_ERROR and word in flat(result.output)


def test_empty_manifest_exits_2(cli_app, tmp_path: Path, write_csv) -> None:
    csv = write_csv(tmp_path / "empty.csv", [])
    result = CliRunner().invoke(cli_app, ["data", "prepare", str(csv), "--out", str(tmp_path / "o")])
    assert result.exit_code == EXIT_ERROR and "lists no clips" in flat(result.output)


def test_media_data_folds_cli_options_into_the_source(cli_app, tmp_path: Path, source: Path) -> None:
    from mmbalance.cli._media_options import media_data

    assert media_data(str(source)) == str(source)
    assert media_data(str(source), frames=8, size=None, skip_bad=True) == f"{source}?frames=8&skip_bad=1"
    assert media_data("synthetic:av-dominance") == "synthetic:av-dominance"
    with pytest.raises(UsageError, match="--frames apply to media sources"):
        media_data("data/test.pt", frames=8)
