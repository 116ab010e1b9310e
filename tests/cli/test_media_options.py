"""audit and finetune take media sources and the decoding options on the command line."""

import json

from typer.testing import CliRunner

from mmbalance.cli import EXIT_ERROR, app
from mmbalance.media.testing import write_clip

runner = CliRunner()
DECODE = ["--frames", "2", "--size", "32", "--clip-seconds", "0.5", "--n-mels", "16", "--sample-rate", "8000"]


def make_manifest(tmp_path):
    rows = ["video,label,split"]
    for i in range(6):
        write_clip(tmp_path / f"clip{i}.mp4", seconds=0.5, seed=i)
        rows.append(f"clip{i}.mp4,{'ab'[i % 2]},{('train', 'val', 'test')[i // 2]}")
    manifest = tmp_path / "clips.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def test_audit_decodes_a_manifest_with_the_given_options(tmp_path):
    manifest = make_manifest(tmp_path)
    result = runner.invoke(app, ["audit", "--model", "av-tiny", "--data", str(manifest), "--split", "test",
                                 "--method", "ig", "--steps", "2", "--bootstrap", "0", "--json", *DECODE])
    assert result.exit_code == 0, result.output + result.stderr
    doc = json.loads(result.stdout)
    assert doc["n_samples"] == 2 and doc["classes"] == ["a", "b"]
    assert "frames=2" in doc["data"] and "size=32" in doc["data"]


def test_finetune_trains_on_a_manifest(tmp_path):
    manifest = make_manifest(tmp_path)
    result = runner.invoke(app, ["finetune", "--model", "av-tiny", "--data", str(manifest), "--out",
                                 str(tmp_path / "run"), "--epochs", "1", "--quiet", *DECODE])
    assert result.exit_code == 0, result.output + result.stderr
    assert (tmp_path / "run" / "best.pt").exists()
    assert len((tmp_path / "run" / "metrics.csv").read_text().splitlines()) == 2


def test_decoding_options_are_refused_for_tensor_sources(tmp_path):
    result = runner.invoke(app, ["audit", "--model", "av-tiny", "--data", "synthetic:av-dominance?n_test=8",
                                 "--frames", "8", "--quiet"])
    assert result.exit_code == EXIT_ERROR
    assert "--frames" in result.stderr


def test_decoding_options_are_declared_once_and_passed_as_given():
    import inspect

    import pytest

    from mmbalance.cli._media_options import DECODING_OPTIONS, with_decoding_options

    seen = {}

    @with_decoding_options
    def command(data: str, *, decoding: dict):
        seen.update(decoding)

    assert list(inspect.signature(command).parameters) == ["data", *DECODING_OPTIONS]
    command("clips.csv", frames=8, size=None, audio_pad="loop")
    assert seen == {"frames": 8, "audio_pad": "loop"}
    with pytest.raises(TypeError, match="no 'decoding' parameter"):
        with_decoding_options(lambda data: None)


def test_options_on_a_tensor_source_are_named_as_typed():
    result = runner.invoke(app, ["audit", "-m", "av-tiny", "-d", "synthetic:av-dominance",
                                          "--audio-pad", "loop", "--quiet"])
    assert result.exit_code == 2
    assert "--audio-pad apply to media sources" in " ".join(result.output.split())
