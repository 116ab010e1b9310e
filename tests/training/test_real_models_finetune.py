"""`mmbalance finetune` on the model families of the real-model audit: token ids and masks, a dict forward, a
keyword-only forward, ViLT through ``hf:``, a CLIP wrapper and a torchaudio + timm waveform model.

Each family is fine-tuned one epoch through the CLI with ``-r attribution`` and ``-r ogm-ge`` (tiny sizes,
random weights from configs, nothing downloaded) and compared with a plain run of the same seed.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from typer.testing import CliRunner

import mmbalance.training as training_pkg
from mmbalance.cli import app
from mmbalance.models import ModelAdapter
from mmbalance.training import TrainConfig
from mmbalance.training.embeddings import TokenInputs, find_tokens, training_view
from mmbalance.training.loop import zero_modalities
from mmbalance.training.regularizers import build_regularizer

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
if str(MODELS_DIR) not in sys.path:
    sys.path.insert(0, str(MODELS_DIR))
import real_plugins as rp  # noqa: E402

PLUGINS = str(MODELS_DIR / "real_plugins.py")
runner = CliRunner()
TEXT = ["--pass-through", "attention_mask", "--embedding-layer", "tabular=tab_net"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("real")
    return {"tokens": rp.save_token_data(root / "t.pt", 16), "wave": rp.save_wave_data(root / "w.pt", 6),
            "vilt": rp.save_vilt(root / "vilt"), "vilt_data": rp.save_vision_text_data(root / "vt.pt", 8),
            "clip": rp.save_clip(root / "clip"), "clip_data": rp.save_vision_text_data(root / "ct.pt", 8, labels=2)}


# family -> (CLI arguments, data key, modalities); masks and lengths are passed through, never shares
FAMILIES = {
    "text_tabular": (lambda f: ["-m", f"{PLUGINS}:build_text_tabular", *TEXT], "tokens", ["text", "tabular"]),
    "dict_forward": (lambda f: ["-m", f"{PLUGINS}:build_dict_forward", "--call", "dict", *TEXT], "tokens",
                     ["text", "tabular"]),
    "keyword_only": (lambda f: ["-m", f"{PLUGINS}:build_keyword_only", *TEXT], "tokens", ["text", "tabular"]),
    "vilt": (lambda f: ["-m", f"hf:{f['vilt']}", "--embedding-layer", "pixel_values=vilt.embeddings.patch_embeddings"],
             "vilt_data", ["input_ids", "pixel_values"]),
    "clip": (lambda f: ["-m", f"{PLUGINS}:build_clip_match", "--model-arg", f"path={f['clip']}", "--pass-through",
                        "attention_mask", "--embedding-layer",
                        "pixel_values=clip.vision_model.embeddings.patch_embedding"],
             "clip_data", ["input_ids", "pixel_values"]),
    "wave_image": (lambda f: ["-m", f"{PLUGINS}:build_wave_image", "--pass-through", "lengths", "--embedding-layer",
                              "audio=audio_encoder[0],image=image_encoder"], "wave", ["audio", "image"]),
}


def _finetune(files, family: str, out: Path, *extra: str, epochs: int = 1):
    args, data, _ = FAMILIES[family]
    res = runner.invoke(app, ["finetune", *args(files), "-d", str(files[data]), "-o", str(out), "--epochs",
                              str(epochs), "-b", "4", "-q", *extra])
    return res, res.output + (res.stderr if res.stderr_bytes is not None else "")


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


_plain_runs: dict[str, Path] = {}


def _plain(files, family: str, tmp_path_factory) -> Path:
    if family not in _plain_runs:
        out = tmp_path_factory.mktemp(f"plain_{family}")
        res, text = _finetune(files, family, out, "-r", "none")
        assert res.exit_code == 0, text
        _plain_runs[family] = out
    return _plain_runs[family]


@pytest.mark.parametrize("regularizer", ["attribution", "ogm-ge"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_finetunes_one_epoch_with_shares_of_its_real_modalities(files, family, regularizer, tmp_path,
                                                                            tmp_path_factory):
    res, text = _finetune(files, family, tmp_path / "run", "-r", regularizer)
    assert res.exit_code == 0, text
    assert "Traceback" not in text
    (row,) = _rows(tmp_path / "run")
    for key in ("train_loss", "val_loss", "val_accuracy"):
        assert math.isfinite(float(row[key])), row
    modalities = FAMILIES[family][2]
    shares = {k[len("share_"):]: float(v) for k, v in row.items() if k.startswith("share_")}
    assert sorted(shares) == sorted(modalities)  # no column for a mask or lengths
    assert all(0.0 < v < 1.0 for v in shares.values()) and sum(shares.values()) == pytest.approx(1.0)
    if regularizer == "attribution":
        assert float(row["penalty"]) > 0 and math.isfinite(float(row["penalty"]))
    # the balancing method acts: the weights end up elsewhere than after plain training of the same seed
    plain = torch.load(_plain(files, family, tmp_path_factory) / "last.pt")
    tuned = torch.load(tmp_path / "run" / "last.pt")
    assert plain.keys() == tuned.keys()
    assert any(not torch.equal(plain[k], tuned[k]) for k in plain if plain[k].is_floating_point())


@pytest.mark.parametrize("family,extra", [
    ("dict_forward", ["-r", "attribution", "--level", "input", "--scope", "all"]),
    ("text_tabular", ["-r", "attribution", "--level", "input"]),  # fusion scope: encoders (embedding too) frozen
    ("vilt", ["-r", "ogm-ge"]),
    ("clip", ["-r", "modality-dropout", "--pad-id", "3"]),
])
def test_resume_of_an_interrupted_real_model_run_matches_an_uninterrupted_one(files, family, extra, tmp_path,
                                                                              monkeypatch):
    res, text = _finetune(files, family, tmp_path / "full", *extra, epochs=2)
    assert res.exit_code == 0, text

    real = training_pkg.finetune  # the CLI imports it when the command runs

    def stop_after_first(*args, **kwargs):
        def interrupt(row: dict) -> None:
            raise KeyboardInterrupt
        return real(*args, on_epoch_end=interrupt, **kwargs)

    monkeypatch.setattr(training_pkg, "finetune", stop_after_first)
    res, text = _finetune(files, family, tmp_path / "cut", *extra, epochs=2)
    assert res.exit_code == 130, text
    monkeypatch.setattr(training_pkg, "finetune", real)
    res = runner.invoke(app, ["finetune", "--resume", str(tmp_path / "cut"), "--trust-checkpoint", "-q"])
    assert res.exit_code == 0, res.output
    full, cut = _rows(tmp_path / "full"), _rows(tmp_path / "cut")
    assert len(cut) == 2
    for a, b in zip(full, cut):
        for key in a:
            if key.endswith("seconds"):  # wall-clock times
                continue
            if a[key] == "":
                assert b[key] == "", key
            else:
                assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-5, abs=1e-7), (key, a[key], b[key])


def test_run_json_records_the_inputs_and_the_token_embeddings(files, tmp_path):
    res, text = _finetune(files, "dict_forward", tmp_path / "r", "--pad-id", "2")
    assert res.exit_code == 0, text
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["config"]["pass_through"] == ["attention_mask"] and run["config"]["call"] == "dict"
    assert run["config"]["pad_id"] == 2 and run["modalities"] == ["text", "tabular"]
    assert run["token_ids"] == {"text": {"layer": "emb", "pad_id": 2}}


def test_hf_model_passes_its_known_masks_through_by_default(files, tmp_path):
    res, text = _finetune(files, "vilt", tmp_path / "r")  # plain training, no option about the mask
    assert res.exit_code == 0, text
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["pass_through"] == ["attention_mask"] and run["config"]["pass_through"] is None
    assert run["token_ids"]["input_ids"]["layer"] == "vilt.embeddings.text_embeddings.word_embeddings"


@pytest.mark.parametrize("model,extra,needle", [
    ("build_text_tabular", ["--pass-through", "attention_mask", "-r", "attribution"],
     "names no module for tabular"),
    ("build_two_embeddings", ["--pass-through", "attention_mask"], "--embedding-layer text=emb"),
    ("build_no_embedding", ["--pass-through", "attention_mask"], "no nn.Embedding"),
    ("build_text_tabular", [], "attention_mask"),
    ("build_text_tabular", ["--pass-through", "attention_mask", "--call", "sideways"], "unknown --call"),
])
def test_token_models_that_cannot_train_are_one_clear_line(files, tmp_path, model, extra, needle):
    res = runner.invoke(app, ["finetune", "-m", f"{PLUGINS}:{model}", "-d", str(files["tokens"]), "-o",
                              str(tmp_path / "x"), "--epochs", "1", "-q", *extra])
    text = res.output + (res.stderr if res.stderr_bytes is not None else "")
    assert res.exit_code == 2, text
    assert needle in " ".join(text.split()) and "Traceback" not in text


# -- removing a token modality means pad ids, never zeros ------------------------------------------------------


class _Recorder(nn.Module):
    """Records the token ids its embedding receives; ids and floats both matter to the output."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(rp.VOCAB + 1, 4)
        self.tab = nn.Linear(rp.TAB, 4)
        self.head = nn.Linear(8, 3)
        self.seen: list[Tensor] = []
        self.tabs: list[Tensor] = []

    def forward(self, text: Tensor, tabular: Tensor) -> Tensor:
        self.seen.append(text.detach().clone())
        self.tabs.append(tabular.detach().clone())
        return self.head(torch.cat([self.emb(text).mean(1), self.tab(tabular)], 1))


@pytest.mark.parametrize("hooked", [False, True])
def test_modality_dropout_replaces_a_token_modality_by_pad_ids(hooked):
    torch.manual_seed(0)
    model = _Recorder()
    adapter = ModelAdapter(model, ["text", "tabular"])
    b = rp.token_batch(64)
    inputs = {"text": b["text"] + 1, "tabular": b["tabular"]}  # no id equals 0, the default pad id
    tokens = find_tokens(adapter, inputs, None, pad_id=7)
    assert tokens == TokenInputs({"text": "emb"}, 7)
    reg = build_regularizer(TrainConfig(model="m", data="d", out="o", regularizer="modality-dropout", p=1.0),
                            ["text", "tabular"])
    reg.tokens = tokens
    reg.check(adapter, training_view(adapter, {"tabular": "tab"} if hooked else None, tokens=tokens))
    assert (reg.view is not None) == hooked
    reg.begin_epoch(1)
    keep = reg.keep_mask(64)
    reg.begin_epoch(1)  # the same draws again for the step
    model.seen.clear()
    model.tabs.clear()
    reg.step(adapter, inputs, b["labels"])
    text = model.seen[-1]
    dropped = keep[:, 0] == 0
    assert dropped.any() and (~dropped).any()
    assert bool((text[dropped] == 7).all()), "a dropped token modality must be pad ids"
    assert torch.equal(text[~dropped], inputs["text"][~dropped])
    if not hooked:  # floats are zeroed at the input (with a view: at their embedding)
        assert bool((model.tabs[-1][keep[:, 1] == 0] == 0).all())


def test_zero_modality_blanks_token_ids_with_the_pad_id():
    x = {"text": torch.tensor([[4, 5]]), "tabular": torch.ones(1, 2)}
    out = zero_modalities(x, ["text", "tabular"], TokenInputs({"text": "emb"}, 9))
    assert out["text"].tolist() == [[9, 9]] and out["tabular"].tolist() == [[0.0, 0.0]]


@pytest.mark.parametrize("method", ["gradxinput", "ig"])
def test_input_level_scores_take_token_ids_at_their_embedding_and_floats_at_the_input(method):
    from mmbalance.training.differentiable import AttributionSpec, attribute, modality_scores
    model = rp.TextTabular(3).eval()
    adapter = ModelAdapter(model, ["text", "tabular"], pass_through=["attention_mask"])
    b = rp.token_batch(8)
    x = {"text": b["text"], "tabular": b["tabular"], "attention_mask": b["attention_mask"]}
    tokens = find_tokens(adapter, x)
    spec = AttributionSpec(method=method, level="input", steps=4)
    got = modality_scores(adapter, x, b["labels"], spec, view=tokens.input_view(adapter))
    # by hand: the same attribution over (the embedding's output, the tabular input), the mask passed along
    mask = b["attention_mask"].unsqueeze(-1).float()

    def f(p):
        rows = p["tabular"].shape[0] // mask.shape[0]
        m = mask.repeat(rows, 1, 1)
        t = (model.text_net(p["text"]) * m).sum(1) / m.sum(1).clamp_min(1.0)
        return model.head(torch.cat([t, model.tab_net(p["tabular"])], 1))

    with torch.no_grad():
        emb = model.emb(b["text"])
    maps = attribute(f, {"text": emb, "tabular": b["tabular"]}, b["labels"], method=method, steps=4,
                     create_graph=False)
    want = torch.stack([maps["text"].abs().flatten(1).sum(1), maps["tabular"].abs().sum(1)], 1)
    assert torch.allclose(got, want, atol=1e-5)
