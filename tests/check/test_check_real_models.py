"""``mmbalance check --model ...`` on real-model inputs: pass-through masks, ``--call dict`` and ``--pad-id``
reach the audit it runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmbalance.cli import app

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
if str(MODELS_DIR) not in sys.path:
    sys.path.insert(0, str(MODELS_DIR))
import real_plugins as rp  # noqa: E402

PLUGINS = str(MODELS_DIR / "real_plugins.py")
runner = CliRunner()


def _run(*args: str):
    res = runner.invoke(app, [str(a) for a in args])
    return res, res.output + (res.stderr if res.stderr_bytes is not None else "")


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    return rp.save_token_data(tmp_path_factory.mktemp("chk") / "t.pt", 8)


def test_check_runs_the_audit_with_pass_through_call_and_pad_id(tokens, tmp_path):
    saved = tmp_path / "audit.json"
    res, text = _run("check", "--model", f"{PLUGINS}:build_dict_forward", "--data", tokens, "--call", "dict",
                     "--pass-through", "attention_mask", "--pad-id", "3", "--steps", "8", "--max-share", "0.999",
                     "--save-audit", saved, "--quiet")
    assert res.exit_code == 0, text
    doc = json.loads(saved.read_text())
    assert doc["modalities"] == ["text", "tabular"]  # the mask is passed through, never judged
    assert doc["extra"]["pass_through"] == ["attention_mask"] and doc["extra"]["call"] == "dict"
    assert doc["methods"]["shapley"]["params"]["token_ids"] == {"text": {"layer": "emb", "pad_id": 3}}


def test_without_the_options_the_same_model_is_one_clear_line(tokens):
    res, text = _run("check", "--model", f"{PLUGINS}:build_dict_forward", "--data", tokens, "--max-share", "0.9",
                     "--quiet")
    assert res.exit_code == 2, text
    assert "attention_mask" in text and "Traceback" not in text  # the mask never reached forward


@pytest.mark.parametrize("flag", [["--pass-through", "attention_mask"], ["--call", "dict"], ["--pad-id", "1"]])
def test_audit_options_with_an_audit_file_exit_2(tmp_path, flag):
    audit = tmp_path / "a.json"
    audit.write_text("{}")
    res, text = _run("check", "--audit", audit, "--max-share", "0.9", *flag)
    assert res.exit_code == 2, text
    assert flag[0] in text and "only appl" in text
