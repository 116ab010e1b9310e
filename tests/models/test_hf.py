"""`--model hf:DIR`: Hugging Face models saved with save_pretrained (tiny configs, random weights, no network)."""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr import LayerIntegratedGradients
from typer.testing import CliRunner

from mmbalance.attribution.shares import scores_to_shares
from mmbalance.cli import app
from mmbalance.errors import ModelError
from mmbalance.models.hf import load_hf_model

pytest.importorskip("transformers")
if os.path.dirname(__file__) not in sys.path:
    sys.path.insert(0, os.path.dirname(__file__))
import real_plugins as rp  # noqa: E402

PLUGINS = os.path.join(os.path.dirname(__file__), "real_plugins.py")
runner = CliRunner()
STEPS = 16


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result, result.output + (result.stderr if result.stderr_bytes is not None else "")


@pytest.fixture(scope="module")
def vilt(tmp_path_factory):
    root = tmp_path_factory.mktemp("vilt")
    return rp.save_vilt(root / "model"), rp.save_vision_text_data(root / "d.pt")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    return rp.save_clip(root / "model"), rp.save_vision_text_data(root / "d.pt", labels=2)


def test_vilt_audit_needs_no_wrapper_and_ig_equals_captum_on_the_word_embeddings(vilt):
    model_dir, data = vilt
    result, text = run("audit", "--model", f"hf:{model_dir}", "--data", data, "--method", "ig,ablation,shapley",
                       "--steps", STEPS, "--bootstrap", "0", "--json")
    assert result.exit_code == 0, text
    doc = json.loads(result.stdout)
    assert doc["modalities"] == ["input_ids", "pixel_values"]
    assert doc["extra"]["pass_through"] == ["attention_mask"]  # a known mask, passed through by default
    ig = doc["methods"]["ig"]
    layer = ig["params"]["token_ids"]["input_ids"]["layer"]
    assert layer == "vilt.embeddings.text_embeddings.word_embeddings"
    pad = ig["params"]["token_ids"]["input_ids"]["pad_id"]

    # captum: IG over (word embeddings, pixels), i.e. LayerIntegratedGradients on the word embeddings
    # with the pixels interpolated alongside, the mask as an additional argument
    model = load_hf_model(f"hf:{model_dir}")
    d = torch.load(data)["inputs"]
    ids, pixels, mask = d["input_ids"], d["pixel_values"], d["attention_mask"]
    words = model.get_submodule(layer)
    with torch.no_grad():
        emb, emb0 = words(ids), words(torch.full_like(ids, pad))
        target = model(input_ids=ids, pixel_values=pixels, attention_mask=mask).logits.argmax(1)

    def f(e, p, m):
        return model(inputs_embeds=e, pixel_values=p, attention_mask=m).logits

    attrs = CaptumIG(f).attribute((emb, pixels), baselines=(emb0, torch.zeros_like(pixels)), target=target,
                                  additional_forward_args=(mask,), n_steps=STEPS)
    scores = torch.stack([a.abs().flatten(1).sum(1) for a in attrs], 1)
    want = dict(zip(["input_ids", "pixel_values"], scores_to_shares(scores).mean(0).tolist()))
    for m in want:
        assert ig["shares"][m] == pytest.approx(want[m], abs=1e-3)


def test_clip_output_is_never_taken_as_class_logits_silently(clip):
    model_dir, data = clip
    result, text = run("audit", "--model", f"hf:{model_dir}", "--data", data, "--quiet")
    assert result.exit_code == 2, text
    assert "logits_per_image" in text and "--output" in text and "Traceback" not in text


def test_clip_with_a_few_lines_of_wrapper(clip):
    model_dir, data = clip
    result, text = run("audit", "--model", f"{PLUGINS}:build_clip_match", "--model-arg", f"path={model_dir}",
                       "--data", data, "--pass-through", "attention_mask", "--method", "ig,ablation,shapley",
                       "--steps", "8", "--bootstrap", "0", "--json")
    assert result.exit_code == 0, text
    doc = json.loads(result.stdout)
    assert doc["methods"]["ig"]["params"]["token_ids"]["input_ids"]["layer"] == \
        "clip.text_model.embeddings.token_embedding"
    shares = doc["methods"]["shapley"]["shares"]
    assert abs(sum(shares.values()) - 1) < 1e-6 and set(shares) == {"input_ids", "pixel_values"}
    # captum's LayerIntegratedGradients on the token embedding (and the pixels), the mask as an extra argument
    model = rp.build_clip_match(str(model_dir)).eval()
    d = torch.load(data)["inputs"]
    ids, pixels, mask = d["input_ids"], d["pixel_values"], d["attention_mask"]
    with torch.no_grad():
        target = model(ids, pixels, mask).argmax(1)
    lig = LayerIntegratedGradients(model, [model.clip.text_model.embeddings.token_embedding, model.pixels])
    attrs = lig.attribute((ids, pixels), baselines=(torch.full_like(ids, 1), torch.zeros_like(pixels)), target=target,
                          additional_forward_args=(mask,), n_steps=8)
    scores = torch.stack([a.abs().flatten(1).sum(1) for a in attrs], 1)
    want = dict(zip(["input_ids", "pixel_values"], scores_to_shares(scores).mean(0).tolist()))
    assert doc["methods"]["ig"]["params"]["token_ids"]["input_ids"]["pad_id"] == 1  # CLIP's config pad_token_id
    for m in want:
        assert doc["methods"]["ig"]["shares"][m] == pytest.approx(want[m], abs=1e-3)


def test_explicit_pass_through_replaces_the_default(vilt):
    model_dir, data = vilt
    result, text = run("audit", "--model", f"hf:{model_dir}", "--data", data, "--method", "ablation",
                       "--bootstrap", "0", "--json", "--pass-through", "attention_mask", "--pad-id", "1")
    assert result.exit_code == 0, text
    doc = json.loads(result.stdout)
    assert doc["methods"]["ablation"]["params"]["token_ids"]["input_ids"]["pad_id"] == 1


@pytest.mark.parametrize("make,needle", [
    (lambda tmp: tmp / "missing", "not a directory"),
    (lambda tmp: tmp, "no config.json"),
])
def test_bad_hf_directories_exit_2(tmp_path, vilt, make, needle):
    _, data = vilt
    result, text = run("audit", "--model", f"hf:{make(tmp_path)}", "--data", data, "--quiet")
    assert result.exit_code == 2 and needle in text, text


def test_missing_transformers_is_one_clear_line(monkeypatch, vilt):
    model_dir, _ = vilt
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ModelError, match=r"mmbalance\[hf\]"):
        load_hf_model(f"hf:{model_dir}")


def test_dataset_inputs_forward_does_not_take_are_left_out_unless_named(vilt, tmp_path):
    model_dir, data = vilt
    d = torch.load(data)
    d["inputs"]["caption_length"] = torch.randn(len(d["labels"]), 1)
    path = tmp_path / "more.pt"
    torch.save(d, path)
    result, text = run("audit", "--model", f"hf:{model_dir}", "--data", path, "--method", "ablation", "--json",
                       "--bootstrap", "0")
    assert result.exit_code == 0, text
    assert json.loads(result.stdout)["modalities"] == ["input_ids", "pixel_values"]
    result, text = run("audit", "--model", f"hf:{model_dir}", "--data", path, "--quiet",
                       "--modalities", "input_ids,pixel_values,caption_length")
    assert result.exit_code == 2 and "no input named caption_length" in text, text
