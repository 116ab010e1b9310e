"""`mmbalance audit` on the model families people train: token ids, masks, dict and keyword-only forwards,
tuple-returning encoders, a torchaudio + timm model. Every IG number is checked against captum."""

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
from mmbalance.audit import audit
from mmbalance.cli import app

if os.path.join(os.path.dirname(__file__), "models") not in sys.path:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "models"))
import real_plugins as rp  # noqa: E402

PLUGINS = os.path.join(os.path.dirname(__file__), "models", "real_plugins.py")
runner = CliRunner()
STEPS = 16


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result, result.output + (result.stderr if result.stderr_bytes is not None else "")


def audit_json(*args):
    result, text = run("audit", "--json", "--bootstrap", "0", "--steps", STEPS, *args)
    assert result.exit_code == 0, text
    return json.loads(result.stdout)


def mean_shares(maps: list[torch.Tensor], names: list[str]) -> dict[str, float]:
    scores = torch.stack([m.detach().abs().flatten(1).sum(1) for m in maps], 1)
    return dict(zip(names, scores_to_shares(scores).mean(0).tolist()))


def assert_shares(got: dict[str, float], want: dict[str, float]) -> None:
    assert set(got) == set(want)
    for m in want:
        assert got[m] == pytest.approx(want[m], abs=1e-3), (got, want)


@pytest.fixture(scope="module")
def token_file(tmp_path_factory):
    return rp.save_token_data(tmp_path_factory.mktemp("tok") / "t.pt")


def captum_text_tabular(model: rp.TextTabular, pad_id: int = 0) -> dict[str, float]:
    """captum's LayerIntegratedGradients on the embedding (and the tabular input's identity layer), mask as an
    additional forward argument, pad ids as the text baseline."""
    b = rp.token_batch(8)
    with torch.no_grad():
        target = model(b["text"], b["tabular"], b["attention_mask"]).argmax(1)
    lig = LayerIntegratedGradients(model, [model.emb, model.tab_in])
    attrs = lig.attribute((b["text"], b["tabular"]), baselines=(torch.full_like(b["text"], pad_id),
                                                                torch.zeros_like(b["tabular"])),
                          target=target, additional_forward_args=(b["attention_mask"],), n_steps=STEPS)
    return mean_shares(list(attrs), ["text", "tabular"])


@pytest.mark.parametrize("factory,extra_args", [
    ("build_text_tabular", []),
    ("build_dict_forward", ["--call", "dict"]),
    ("build_keyword_only", []),
])
def test_token_ids_with_a_mask_audit_equals_captum_layer_ig(token_file, factory, extra_args):
    doc = audit_json("--model", f"{PLUGINS}:{factory}", "--data", token_file, "--pass-through", "attention_mask",
                     "--method", "ig,ablation,shapley", *extra_args)
    assert doc["modalities"] == ["text", "tabular"] and doc["extra"]["pass_through"] == ["attention_mask"]
    params = doc["methods"]["ig"]["params"]
    assert params["token_ids"] == {"text": {"layer": "emb", "pad_id": 0}}
    assert params["embedding"]["at_input"] == ["tabular"] and "mixed" in params["level_detail"]
    assert_shares(doc["methods"]["ig"]["shares"], captum_text_tabular(rp.TextTabular(3)))
    # ablation replaces ids by the pad id: exactly the model on pad ids
    b = rp.token_batch(8)
    model = rp.TextTabular(3)
    with torch.no_grad():
        full = model(b["text"], b["tabular"], b["attention_mask"])
        target = full.argmax(1)
        padded = model(torch.zeros_like(b["text"]), b["tabular"], b["attention_mask"])
        no_tab = model(b["text"], torch.zeros_like(b["tabular"]), b["attention_mask"])
    drop = torch.stack([(full - padded).gather(1, target[:, None])[:, 0],
                        (full - no_tab).gather(1, target[:, None])[:, 0]], 1)
    assert_shares(doc["methods"]["ablation"]["shares"],
                  dict(zip(["text", "tabular"], scores_to_shares(drop).mean(0).tolist())))


def test_pad_id_option_and_mask_from_the_inputs(tmp_path):
    path = rp.save_token_data(tmp_path / "t.pt", mask_in_extra=False)
    doc = audit_json("--model", f"{PLUGINS}:build_text_tabular", "--data", path, "--pass-through",
                     "attention_mask", "--pad-id", "3", "--method", "ig")
    assert doc["modalities"] == ["text", "tabular"]
    assert doc["methods"]["ig"]["params"]["token_ids"]["text"]["pad_id"] == 3
    assert_shares(doc["methods"]["ig"]["shares"], captum_text_tabular(rp.TextTabular(3), pad_id=3))


def test_a_mask_given_as_a_modality_is_attributed_but_a_pass_through_is_not(token_file, tmp_path):
    path = rp.save_token_data(tmp_path / "m.pt", mask_in_extra=False)
    result, text = run("audit", "--model", f"{PLUGINS}:build_text_tabular", "--data", path, "--quiet")
    # without --pass-through the mask is a third (integer) modality: it has no embedding to attribute at
    assert result.exit_code == 2 and "--pass-through attention_mask" in text and "Traceback" not in text


def test_token_ids_at_the_embedding_level(token_file):
    doc = audit_json("--model", f"{PLUGINS}:build_text_tabular", "--data", token_file, "--pass-through",
                     "attention_mask", "--level", "embedding", "--embedding-layer", "tabular=tab_net",
                     "--method", "ig,ablation")
    assert doc["methods"]["ig"]["params"]["embedding"]["layers"] == {"tabular": "tab_net", "text": "emb"}


@pytest.mark.parametrize("factory,needles", [
    ("build_no_embedding", ["no nn.Embedding", "--embedding-layer text="]),
    ("build_two_embeddings", ["2 embeddings", "emb, emb2", "--embedding-layer text=emb"]),
])
def test_token_ids_without_one_embedding_exit_2_with_one_line(token_file, factory, needles):
    result, text = run("audit", "--model", f"{PLUGINS}:{factory}", "--data", token_file, "--pass-through",
                       "attention_mask", "--quiet")
    assert result.exit_code == 2, text
    assert all(n in text for n in needles), text
    assert "Traceback" not in text and result.stderr.count("error:") == 1


def test_named_embedding_resolves_the_ambiguity(token_file):
    doc = audit_json("--model", f"{PLUGINS}:build_two_embeddings", "--data", token_file, "--pass-through",
                     "attention_mask", "--embedding-layer", "text=emb", "--method", "ig")
    assert doc["methods"]["ig"]["params"]["token_ids"]["text"]["layer"] == "emb"


def test_forward_batch_dict_without_call_dict_hints_at_it(token_file):
    result, text = run("audit", "--model", f"{PLUGINS}:build_dict_forward", "--data", token_file, "--pass-through",
                       "attention_mask", "--quiet", "--call", "positional")
    assert result.exit_code == 2 and "--call dict" in text, text
    # the dict annotation is enough for --call auto
    doc = audit_json("--model", f"{PLUGINS}:build_dict_forward", "--data", token_file, "--pass-through",
                     "attention_mask", "--method", "ig")
    assert doc["extra"]["call"] == "dict"


def test_unknown_pass_through_exits_2(token_file):
    result, text = run("audit", "--model", f"{PLUGINS}:build_text_tabular", "--data", token_file, "--pass-through",
                       "lengths", "--quiet")
    assert result.exit_code == 2 and "lengths" in text and "attention_mask" in text, text


# -- a waveform model from torchaudio with a timm image encoder, lengths passed through ---------------------


@pytest.fixture(scope="module")
def wave_file(tmp_path_factory):
    pytest.importorskip("torchaudio")
    pytest.importorskip("timm")
    return rp.save_wave_data(tmp_path_factory.mktemp("wave") / "w.pt")


def test_waveform_and_image_at_the_input_equal_captum_with_lengths(wave_file):
    doc = audit_json("--model", f"{PLUGINS}:build_wave_image", "--data", wave_file, "--pass-through", "lengths",
                     "--method", "ig,ablation,shapley")
    data = torch.load(wave_file)
    model = rp.WaveImage(3).eval()
    x, lengths = data["inputs"], data["extra"]["lengths"]
    with torch.no_grad():
        target = model(x["audio"], x["image"], lengths).argmax(1)
    attrs = CaptumIG(model).attribute((x["audio"], x["image"]), target=target, additional_forward_args=(lengths,),
                                      n_steps=STEPS)
    assert_shares(doc["methods"]["ig"]["shares"], mean_shares(list(attrs), ["audio", "image"]))


def test_tuple_returning_encoder_named_by_element(wave_file):
    doc = audit_json("--model", f"{PLUGINS}:build_wave_image", "--data", wave_file, "--pass-through", "lengths",
                     "--method", "ig,ablation,shapley", "--level", "embedding",
                     "--embedding-layer", "audio=audio_encoder[0],image=image_encoder")
    assert doc["methods"]["ig"]["params"]["embedding"]["layers"]["audio"] == "audio_encoder[0]"
    data = torch.load(wave_file)
    model = rp.WaveImage(3).eval()
    x, lengths = data["inputs"], data["extra"]["lengths"]
    with torch.no_grad():
        feats, _ = model.audio_encoder(x["audio"], lengths)
        img = model.image_encoder(x["image"])

    def head(f, i):
        return model.head(torch.cat([f.mean(1), i], 1))

    target = head(feats, img).argmax(1)
    attrs = CaptumIG(head).attribute((feats, img), target=target, n_steps=STEPS)
    assert_shares(doc["methods"]["ig"]["shares"], mean_shares(list(attrs), ["audio", "image"]))
    result, text = run("audit", "--model", f"{PLUGINS}:build_wave_image", "--data", wave_file, "--pass-through",
                       "lengths", "--level", "embedding", "--quiet",
                       "--embedding-layer", "audio=audio_encoder,image=image_encoder")
    assert result.exit_code == 2 and "audio_encoder[0]" in text, text


def test_python_api_takes_pass_through(token_file):
    r = audit(f"{PLUGINS}:build_text_tabular", str(token_file), pass_through=["attention_mask"], methods=["ig"],
              steps=STEPS, bootstrap=0, progress=False)
    assert_shares(r.methods["ig"].shares, captum_text_tabular(rp.TextTabular(3)))


def test_every_estimator_and_the_mean_baseline_run_at_the_mixed_level(token_file):
    doc = audit_json("--model", f"{PLUGINS}:build_text_tabular", "--data", token_file, "--pass-through",
                     "attention_mask", "--method", "ig,gradxinput,permutation", "--baseline", "mean",
                     "--tolerance", "0.05", "--batch-size", "3")
    for name in ("ig", "gradxinput", "permutation"):
        shares = doc["methods"][name]["shares"]
        assert set(shares) == {"text", "tabular"} and abs(sum(shares.values()) - 1) < 1e-6
    assert doc["methods"]["ig"]["params"]["token_ids"]["text"]["pad_id"] == 0


def test_python_api_with_an_adapter_built_without_pass_through(token_file):
    from mmbalance.models import ModelAdapter
    adapter = ModelAdapter(rp.TextTabular(3), ["text", "tabular"])
    r = audit(adapter, str(token_file), pass_through="attention_mask", methods=["ig"], steps=STEPS, bootstrap=0,
              progress=False)
    assert r.extra["pass_through"] == ["attention_mask"]
    assert_shares(r.methods["ig"].shares, captum_text_tabular(rp.TextTabular(3)))


def test_the_table_says_where_token_ids_went_and_what_passed_through(token_file):
    result, text = run("audit", "--model", f"{PLUGINS}:build_text_tabular", "--data", token_file, "--pass-through",
                       "attention_mask", "--method", "ablation", "--bootstrap", "0")
    assert result.exit_code == 0, text
    assert "text: token ids attributed at emb (pad id 0)" in result.stdout
    assert "passed through, not attributed: attention_mask" in result.stdout
