"""A bench directory is untrusted input (issue 21, cases 4, 6, 12, 14): bounds, tampering, targets, the lock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmbalance.benchmark import bench
from mmbalance.benchmark.run import RESULT_FILE, read_record
from mmbalance.cli import app
from mmbalance.errors import DataError, OutputError, UsageError
from mmbalance.training.rundir import RunLock

DATA = "synthetic:av-dominance?n_train=32&n_val=16&n_test=16"
FAST = dict(epochs=1, batch_size=16, steps=2, progress=False, device="cpu")


def _cli(*args: object):
    return CliRunner().invoke(app, ["bench", *[str(a) for a in args]], env={"COLUMNS": "300", "NO_COLOR": "1"})


def _one_error_line(res) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    return lines[0]


def test_seeds_are_bounded_before_anything_is_listed(tmp_path):
    res = _cli("-m", "av-tiny", "-d", DATA, "-o", tmp_path / "b", "--seeds", "99999999999999", "-q")
    assert res.exit_code == 2 and "--seeds" in _one_error_line(res)
    with pytest.raises(UsageError, match="--seeds must be at most"):
        bench("av-tiny", DATA, out=tmp_path / "b", seeds=range(10**14), **FAST)  # would be 10**14 ints in a list
    assert not (tmp_path / "b").exists()


def test_targets_are_checked_before_any_training(tmp_path):
    out = tmp_path / "b"
    with pytest.raises(DataError, match="nosuch"):
        bench("av-tiny", DATA, out=out, methods=["plain"], seeds=[0], test_split="nosuch", **FAST)
    assert not (out / "runs").exists()
    (out / "bench.json").mkdir(parents=True)
    with pytest.raises(OutputError, match="bench.json"):
        bench("av-tiny", DATA, out=out, methods=["plain"], seeds=[0], **FAST)
    assert not (out / "runs").exists()


def test_a_second_bench_on_the_same_out_is_refused(tmp_path):
    out = tmp_path / "b"
    with RunLock(out):
        with pytest.raises(OutputError, match="in use"):
            bench("av-tiny", DATA, out=out, methods=["plain"], seeds=[0], **FAST)
    assert not (out / "runs").exists()


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "b"
    bench("av-tiny", DATA, out=out, methods=["plain"], seeds=[0], **FAST)
    return out


@pytest.mark.parametrize("text", [
    '{"run": "plain", "method": "plain", "seed": 0, "test_accuracy": NaN, "shares": {}, "train_seconds": 1}',
    '{"run": "plain", "method": "plain", "seed": 0, "test_accuracy": "0.5", "shares": {}, "train_seconds": 1}',
    "not json at all",
    '{"run": "plain", "method": "plain", "seed": 0, "test_accuracy": 0.5, "shares": {"audio": 1' + "0" * 5000 + "}",
    '{"run": "plain", "method": "plain", "seed": ' + "9" * 5000 + "}",
    "[1, 2, 3]",
    '{"run": "plain", "method": "plain", "seed": 0, "test_accuracy": 0.5, "shares": {"audio": 2.0}, '
    '"train_seconds": 1}',
])
def test_a_tampered_result_is_one_line_and_exit_2(finished, tmp_path, text):
    import shutil

    out = tmp_path / "b"
    shutil.copytree(finished, out)
    result = out / "runs" / "plain" / "seed0" / RESULT_FILE
    result.write_text(text)
    with pytest.raises(DataError, match="damaged"):
        read_record(result)
    res = _cli("-m", "av-tiny", "-d", DATA, "-o", out, "--methods", "plain", "--seeds", "1", "--epochs", "1",
               "--batch-size", "16", "--steps", "2", "--device", "cpu", "-q")
    assert res.exit_code == 2, res.output
    assert RESULT_FILE in _one_error_line(res)


def test_bench_files_are_never_written_through_planted_links(finished, tmp_path):
    import shutil

    out = tmp_path / "b"
    shutil.copytree(finished, out)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (out / "bench.md").unlink()
    (out / "bench.md").symlink_to(victim)
    bench("av-tiny", DATA, out=out, methods=["plain"], seeds=[0], **FAST)
    assert victim.read_text() == "precious\n"
    assert not (out / "bench.md").is_symlink()
    assert json.loads((out / "bench.json").read_text())["records"][0]["run"] == "plain"
