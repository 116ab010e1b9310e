"""`hf:DIR` is untrusted input (issue 21, cases 1, 10, 13): no remote code, no prompt, no shard outside DIR."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmbalance.cli import app
from mmbalance.errors import ModelError
from mmbalance.models.hf import load_hf_model, remote_code_trusted

pytest.importorskip("transformers")
if os.path.dirname(__file__) not in sys.path:
    sys.path.insert(0, os.path.dirname(__file__))
import real_plugins as rp  # noqa: E402

EVIL = """
import pathlib
pathlib.Path({marker!r}).write_text("ran")
from transformers import PretrainedConfig, ViltForQuestionAnswering, ViltConfig
class EvilConfig(ViltConfig):
    model_type = "evil"
class EvilModel(ViltForQuestionAnswering):
    config_class = EvilConfig
"""


def _cli(*args: object, stdin: str = "y\n" * 20):
    res = CliRunner().invoke(app, [str(a) for a in args], input=stdin, env={"COLUMNS": "300", "NO_COLOR": "1"})
    return res


def _one_error_line(res) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    return " ".join(lines[0].split())


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return rp.save_vilt(root / "model"), rp.save_vision_text_data(root / "d.pt")


def _variant(saved, tmp_path: Path, **config_changes) -> tuple[Path, Path, Path]:
    model_dir, data = saved
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    marker = tmp_path / "code-ran"
    (d / "evil.py").write_text(EVIL.format(marker=str(marker)))
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(config_changes)
    (d / "config.json").write_text(json.dumps(cfg))
    return d, data, marker


AUTO_MAP = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}


@pytest.mark.parametrize("changes", [
    dict(model_type="evil", architectures=["EvilModel"], auto_map=AUTO_MAP),
    dict(architectures=["AutoModel"], auto_map=AUTO_MAP),
    dict(architectures=["EvilModel"], auto_map=AUTO_MAP),
], ids=["unknown-type", "auto-class", "unknown-class"])
@pytest.mark.parametrize("command", ["audit", "finetune"])
def test_auto_map_code_never_runs_even_when_stdin_says_yes(saved, tmp_path, changes, command):
    d, data, marker = _variant(saved, tmp_path, **changes)
    args = ["--model", f"hf:{d}", "--data", data, "-q"]
    args += ["--json"] if command == "audit" else ["--out", tmp_path / "run", "--epochs", "1", "--device", "cpu"]
    res = _cli(command, *args)
    assert not marker.exists(), "the directory's Python code ran"
    assert res.exit_code == 2, res.output
    line = _one_error_line(res)
    assert res.stdout == ""  # no prompt on stdout
    assert "--trust-remote-code" in line or "not a transformers model class" in line


def test_trust_remote_code_is_what_allows_it(saved, tmp_path):
    d, _, marker = _variant(saved, tmp_path, model_type="evil", architectures=["EvilModel"], auto_map=AUTO_MAP)
    with pytest.raises(ModelError, match="--trust-remote-code"):
        load_hf_model(f"hf:{d}")
    assert not marker.exists()
    from transformers.dynamic_module_utils import HF_MODULES_CACHE

    try:
        with remote_code_trusted():
            model = load_hf_model(f"hf:{d}")
    finally:  # transformers copies the code into its module cache: leave no trace of the test there
        shutil.rmtree(Path(HF_MODULES_CACHE) / "transformers_modules" / d.name, ignore_errors=True)
    assert marker.exists() and type(model).__name__ == "EvilModel"


@pytest.mark.parametrize("name", ["pipeline", "Trainer", "AutoModelForImageClassification", "PreTrainedModel"])
def test_architectures_naming_no_model_class_is_one_line(saved, tmp_path, name):
    d, data, _ = _variant(saved, tmp_path, architectures=[name])
    res = _cli("audit", "--model", f"hf:{d}", "--data", data, "-q")
    assert res.exit_code == 2, res.output
    assert "not a transformers model class" in _one_error_line(res) or name in _one_error_line(res)


def test_a_shard_index_pointing_outside_the_directory_is_refused(saved, tmp_path):
    d, data, _ = _variant(saved, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.move(str(d / "model.safetensors"), outside / "model.safetensors")
    from safetensors import safe_open

    with safe_open(str(outside / "model.safetensors"), "pt") as fh:
        keys = list(fh.keys())
    index = {"metadata": {}, "weight_map": {k: "../outside/model.safetensors" for k in keys}}
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    res = _cli("audit", "--model", f"hf:{d}", "--data", data, "-q")
    assert res.exit_code == 2, res.output
    assert "outside" in _one_error_line(res)


def test_call_dict_with_hf_and_a_huge_pad_id_are_one_line(saved):
    model_dir, data = saved
    res = _cli("audit", "--model", f"hf:{model_dir}", "--data", data, "-q", "--call", "dict", "--method", "ablation")
    assert res.exit_code == 2, res.output
    _one_error_line(res)
    res = _cli("audit", "--model", f"hf:{model_dir}", "--data", data, "-q", "--pad-id", str(2**70),
               "--method", "ablation")
    assert res.exit_code == 2, res.output
    assert "--pad-id" in _one_error_line(res)
