"""The letters-av generator (bench/realistic_av.py) on a tiny size: shapes, splits, determinism, corruption."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from mmbalance.data import load_dataset

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "realistic_av.py"


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("realistic_av", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["realistic_av"] = module
    spec.loader.exec_module(module)
    # one voice, speed and pitch: 10 espeak-ng calls instead of 240
    module.VOICES, module.SPEEDS, module.PITCHES = ("en-us",), (160,), (50,)
    yield module
    sys.modules.pop("realistic_av", None)


def _cfg(gen, **kw):
    base = dict(seed=3, n_train=40, n_val=20, n_test=20, audio_noise=0.15, audio_swap=0.2, visual_corrupt=0.25)
    base.update(kw)
    return gen.LettersConfig(**base)


def test_splits_shapes_and_meta(gen, tmp_path):
    meta = gen.generate(tmp_path / "d", _cfg(gen), log=False)
    for split, n in (("train", 40), ("val", 20), ("test", 20)):
        ds = load_dataset(str(tmp_path / "d"), split=split)
        assert len(ds) == n and ds.modalities == ("audio", "visual")
        assert ds.classes == list(gen.LETTERS) and ds.num_classes == 10
        assert ds.inputs["audio"].shape == (n, 1, gen.N_MELS, gen.N_FRAMES)
        assert ds.inputs["visual"].shape == (n, 3, gen.N_TIME, gen.FRAME_SIZE, gen.FRAME_SIZE)
        assert torch.isfinite(ds.inputs["audio"]).all() and torch.isfinite(ds.inputs["visual"]).all()
        assert torch.bincount(ds.labels, minlength=10).tolist() == [n // 10] * 10  # balanced
    assert meta["oracle"] == {"audio": pytest.approx(1 - 0.15 - 0.2 + 0.015), "visual": pytest.approx(0.775),
                              "fused": 1.0}
    assert json.loads((tmp_path / "d" / "meta.json").read_text())["oracle"] == meta["oracle"]
    train = load_dataset(str(tmp_path / "d"), split="train")
    test = load_dataset(str(tmp_path / "d"), split="test")
    assert not torch.equal(train.inputs["visual"][:20], test.inputs["visual"])  # independent streams


def test_corruption_rates_match_and_are_disjoint(gen):
    cfg = _cfg(gen, n_train=200)
    glyphs = gen.render_glyphs(cfg.letters, gen.font_paths()[:2])
    speech = gen.synthesize_speech(cfg.letters)
    inputs, labels, codes = gen.make_split("train", 200, cfg, glyphs, speech)
    assert torch.bincount(codes, minlength=4).tolist() == [80, 30, 40, 50]  # clean, noise, swap, visual
    # noise-only audio has no spoken onset: it is flatter over time than speech
    energy = inputs["audio"][:, 0].mean(1)  # (n, frames): mean standardized log-mel per frame
    flat = energy.std(1)
    assert flat[codes == 1].mean() < 0.5 * flat[codes != 1].mean()


def test_corrupted_frames_carry_no_letter(gen):
    cfg = _cfg(gen)
    glyphs = gen.render_glyphs(cfg.letters, gen.font_paths()[:1])
    a, b = torch.zeros(6, dtype=torch.long), torch.arange(6) + 1

    def frames(labels, corrupt):
        return gen.make_visual(labels, torch.full((6,), corrupt), glyphs, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(frames(a, True), frames(b, True))  # same draw, other letters: identical frames
    assert not torch.equal(frames(a, False), frames(b, False))


def test_same_seed_same_bytes_other_seed_differs(gen, tmp_path):
    gen.generate(tmp_path / "a", _cfg(gen), log=False)
    gen.generate(tmp_path / "b", _cfg(gen), log=False)
    gen.generate(tmp_path / "c", _cfg(gen, seed=4), log=False)
    for split in ("train", "val", "test"):
        a, b, c = (torch.load(tmp_path / d / f"{split}.pt") for d in "abc")
        for m in ("audio", "visual"):
            assert torch.equal(a["inputs"][m], b["inputs"][m])
            assert not torch.equal(a["inputs"][m], c["inputs"][m])
        assert torch.equal(a["labels"], b["labels"])


def test_missing_espeak_says_how_to_install(gen, monkeypatch, capsys):
    monkeypatch.setattr(gen.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="apt-get install espeak-ng"):
        gen.espeak_version()


def test_bad_rates_are_refused(gen, tmp_path):
    with pytest.raises(SystemExit, match="corruption rates"):
        gen.generate(tmp_path / "x", _cfg(gen, audio_noise=0.6, visual_corrupt=0.6), log=False)
