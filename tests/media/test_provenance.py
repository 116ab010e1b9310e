"""An audit warns when its media are decoded otherwise than the checkpoint's training data (issue 20): options
read from a media source's query string or a prepared folder's ``prepare.json``, the training data from the
``run.json`` beside the checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmbalance.audit import decoding_warning
from mmbalance.cli import app
from mmbalance.media import DecodeOptions
from mmbalance.media.provenance import (decoding_differences, decoding_mismatch, describe_differences,
                                        source_decoding, training_decoding)

TINY_ARGS = ["--frames", "2", "--size", "32", "--clip-seconds", "1", "--n-mels", "16"]
AUDIT_QUICK = ["--method", "ablation", "--bootstrap", "0", "--batch-size", "4", "--device", "cpu", "-q"]
runner = CliRunner()


def flat(text: str) -> str:
    return " ".join(text.split())


def test_differences_compare_what_is_decoded() -> None:
    assert decoding_differences(DecodeOptions(frames=4), DecodeOptions()) == []  # 4 frames is the default
    assert decoding_differences(DecodeOptions(fps=4, clip_seconds=1), DecodeOptions(clip_seconds=1)) == [
        ("fps", 4, None)]  # 4 frames either way, but at 4 fps over the clip rather than evenly spread
    assert decoding_differences(DecodeOptions(spectrogram="stft", n_mels=16), DecodeOptions(spectrogram="stft")) == []
    assert decoding_differences(DecodeOptions(n_fft=400), DecodeOptions()) == [("n_fft", 400, 512)]
    text = describe_differences(decoding_differences(DecodeOptions(fps=8, size=64, clip_seconds=2.5),
                                                     DecodeOptions(clip_seconds=2.5)))
    assert text == "frames 20 here, 4 there; fps 8 here, unset there; size 64 here, 112 there"


def test_source_decoding_reads_query_options_and_prepare_json(tmp_path: Path) -> None:
    assert source_decoding("clips.csv?frames=8&size=64").options == DecodeOptions(frames=8, size=64)
    assert source_decoding("clips.csv").origin == "options"
    assert source_decoding("synthetic:av-dominance?n_test=8") is None
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / "test.pt").write_bytes(b"")
    assert source_decoding(prepared) is None  # tensors without a prepare.json: nothing known
    (prepared / "prepare.json").write_text(json.dumps({"options": DecodeOptions(fps=2.5, n_mels=32).to_dict()}))
    for where in (prepared, prepared / "test.pt"):
        found = source_decoding(where)
        assert found is not None and found.origin == "prepare.json"
        assert found.options == DecodeOptions(fps=2.5, n_mels=32)
    for bad in ('{"options": {"frames": 2, "fps": 3}}', '{"options": {"size": NaN}}', "[1, 2]", "not json"):
        (prepared / "prepare.json").write_text(bad)
        assert source_decoding(prepared) is None, bad


def test_training_decoding_reads_run_json_beside_the_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    assert training_decoding(run / "best.pt") is None
    (run / "run.json").write_text(json.dumps({"config": {"data": "clips.csv?frames=3"}}))
    found = training_decoding(run / "best.pt")
    assert found is not None and found.options.frames == 3
    line = decoding_mismatch("clips.csv?frames=5", run / "best.pt")
    assert line == "decoding differs from the training data's options (clips.csv?frames=3): frames 5 here, 3 there"
    assert decoding_mismatch("clips.csv?frames=3", run / "best.pt") is None
    assert decoding_warning("clips.csv?frames=5", run / "best.pt")["code"] == "decoding"  # type: ignore[index]
    assert decoding_warning("clips.csv?frames=5", None) is None
    (run / "run.json").write_text(json.dumps({"config": {"data": "synthetic:av-dominance"}}))
    assert decoding_mismatch("clips.csv?frames=5", run / "best.pt") is None


@pytest.fixture
def trained(tmp_path: Path, media, write_csv) -> dict[str, Path]:
    """A manifest, two prepared folders of it (A: the tiny options; B: 3 frames of 24×24) and av-tiny trained on A."""
    for p in media.clips:
        shutil.copy(p, tmp_path / p.name)
    manifest = write_csv(tmp_path / "clips.csv", [
        "clip0.mp4,cat,train", "clip1.mp4,dog,train", "clip2.mp4,cat,val", "clip3.mp4,dog,val",
        "clip2.mp4,cat,test", "clip3.mp4,dog,test"], header="video,label,split")
    a, b = tmp_path / "A", tmp_path / "B"
    b_args = ["--frames", "3", "--size", "24", "--clip-seconds", "1", "--n-mels", "16"]
    for out, args in ((a, TINY_ARGS), (b, b_args)):
        result = runner.invoke(app, ["data", "prepare", str(manifest), "--out", str(out), *args, "-q"])
        assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    result = runner.invoke(app, ["finetune", "-m", "av-tiny", "-d", str(a), "-o", str(run), "--epochs", "1",
                                 "--batch-size", "2", "--device", "cpu", "-q"])
    assert result.exit_code == 0, result.output
    return {"manifest": manifest, "A": a, "B": b, "checkpoint": run / "best.pt"}


def audit_json(data: str, checkpoint: Path, *flags: str):
    result = runner.invoke(app, ["audit", "-m", "av-tiny", "-c", str(checkpoint), "-d", data, *flags, *AUDIT_QUICK,
                                 "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), flat(result.stderr)


def test_audit_warns_about_a_prepared_folder_decoded_otherwise(trained: dict[str, Path]) -> None:
    report, stderr = audit_json(str(trained["B"]), trained["checkpoint"])
    (warning,) = [w for w in report["warnings"] if w["code"] == "decoding"]
    expected = (f"decoding differs from the training data's prepare.json ({trained['A'] / 'prepare.json'}): "
                "frames 3 here, 2 there; size 24 here, 32 there; ")
    assert warning["message"].startswith(expected)
    assert expected in stderr  # one line on stderr too (--json keeps stdout one document)
    same, stderr = audit_json(str(trained["A"]), trained["checkpoint"])
    assert "decoding" not in [w["code"] for w in same["warnings"]] and "decoding differs" not in stderr


def test_audit_warns_about_its_own_decoding_flags(trained: dict[str, Path]) -> None:
    report, _ = audit_json(str(trained["manifest"]), trained["checkpoint"], "--frames", "2", "--size", "32",
                           "--clip-seconds", "1", "--n-mels", "8")
    (warning,) = [w for w in report["warnings"] if w["code"] == "decoding"]
    assert ": n_mels 8 here, 16 there; the model was trained" in warning["message"]
    same, _ = audit_json(str(trained["manifest"]), trained["checkpoint"], *TINY_ARGS)
    assert "decoding" not in [w["code"] for w in same["warnings"]]


def test_finetune_from_a_checkpoint_warns_about_media_decoded_otherwise(trained: dict[str, Path]) -> None:
    run = trained["A"].parent / "again"
    result = runner.invoke(app, ["finetune", "-m", "av-tiny", "-c", str(trained["checkpoint"]), "-d", str(trained["B"]),
                                 "-o", str(run), "--epochs", "1", "--batch-size", "2", "--device", "cpu", "-q"])
    assert result.exit_code == 0, result.output
    expected = "frames 3 here, 2 there; size 24 here, 32 there; --checkpoint was trained on inputs decoded otherwise"
    assert flat(result.stderr).count(expected) == 1, result.stderr
    assert [w for w in json.loads((run / "run.json").read_text())["warnings"] if expected in w]
    same = runner.invoke(app, ["finetune", "-m", "av-tiny", "-c", str(trained["checkpoint"]), "-d", str(trained["A"]),
                               "-o", str(run), "--force", "--epochs", "1", "--batch-size", "2", "--device", "cpu", "-q"])
    assert same.exit_code == 0 and "decoding differs" not in same.stderr, same.output


def test_docstring_examples() -> None:
    import doctest

    from mmbalance.media import provenance

    result = doctest.testmod(provenance)
    assert result.attempted > 0 and result.failed == 0
