"""The emotion-av generator (bench/emotion_av.py) on a tiny size: shapes, labels, determinism, meta, oracle."""

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

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "emotion_av.py"


@pytest.fixture(scope="module")
def gen():
    path, had_letters = list(sys.path), "realistic_av" in sys.modules
    spec = importlib.util.spec_from_file_location("emotion_av", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["emotion_av"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("emotion_av", None)
    if not had_letters:
        sys.modules.pop("realistic_av", None)
    sys.path[:] = path


def _cfg(gen, **kw):
    base = dict(seed=3, n_train=24, n_val=12, n_test=12, oracle_draws=3000)
    base.update(kw)
    return gen.EmotionConfig(**base)


def test_splits_shapes_labels_and_meta(gen, tmp_path):
    meta = gen.generate(tmp_path / "d", _cfg(gen), log=False)
    for split, n in (("train", 24), ("val", 12), ("test", 12)):
        ds = load_dataset(str(tmp_path / "d"), split=split)
        assert len(ds) == n and ds.modalities == ("audio", "visual")
        assert ds.classes == list(gen.EMOTIONS) and ds.num_classes == 6
        # the shapes of letters-av, so av-small and av-tiny take either benchmark
        assert ds.inputs["audio"].shape == (n, 1, 16, 32)
        assert ds.inputs["visual"].shape == (n, 3, 4, 32, 32)
        assert torch.isfinite(ds.inputs["audio"]).all() and torch.isfinite(ds.inputs["visual"]).all()
        assert torch.bincount(ds.labels, minlength=6).tolist() == [n // 6] * 6  # balanced, in range
    on_disk = json.loads((tmp_path / "d" / "meta.json").read_text())
    assert on_disk == json.loads(json.dumps(meta))
    assert meta["name"] == "emotion-av" and meta["espeak_ng"].startswith("eSpeak NG")
    assert meta["config"]["seed"] == 3 and meta["config"]["audio_swap"] == 0.2
    assert meta["shapes"] == {"audio": [1, 16, 32], "visual": [3, 4, 32, 32]}
    bound = meta["oracle"]
    assert bound["fused"] > max(bound["audio"], bound["visual"]) > 1 / 6
    loose = meta["oracle_corruption_only"]
    assert bound["audio"] < loose["audio"] and bound["visual"] < loose["visual"] and loose["fused"] == 1.0
    for split, n in (("train", 24), ("val", 12), ("test", 12)):
        done = meta["realized"][split]
        assert done["n"] == n and sum(done["intensity"].values()) == n
        # exact counts, round(n * rate), as float32 means
        for key, rate in (("audio_noise", 0.05), ("audio_swap", 0.2), ("visual_corrupt", 0.15)):
            assert done[key] == pytest.approx(round(n * rate) / n, rel=1e-6)
        assert set(done["oracle"]) == {"audio", "visual", "fused"}


def test_same_seed_same_bytes_other_seed_differs(gen, tmp_path):
    small = dict(n_train=12, n_val=6, n_test=6)
    gen.generate(tmp_path / "a", _cfg(gen, **small), log=False)
    gen.generate(tmp_path / "b", _cfg(gen, **small), log=False)
    gen.generate(tmp_path / "c", _cfg(gen, seed=4, **small), log=False)
    for split in ("train", "val", "test"):
        a, b, c = (torch.load(tmp_path / d / f"{split}.pt") for d in "abc")
        for m in ("audio", "visual"):
            assert torch.equal(a["inputs"][m], b["inputs"][m])
            assert not torch.equal(a["inputs"][m], c["inputs"][m])
        assert torch.equal(a["labels"], b["labels"])
    assert (tmp_path / "a" / "meta.json").read_text() == (tmp_path / "b" / "meta.json").read_text()
    train = torch.load(tmp_path / "a" / "train.pt")
    test = torch.load(tmp_path / "a" / "test.pt")
    assert not torch.equal(train["inputs"]["visual"][:6], test["inputs"]["visual"])  # independent streams


def test_swapped_tracks_carry_another_emotion(gen):
    cfg = _cfg(gen)
    latents = gen.draw_latents(400, cfg, torch.Generator().manual_seed(0))
    code, heard, labels = latents["corrupt"], latents["heard"], latents["labels"]
    assert torch.bincount(code, minlength=4).tolist() == [240, 20, 80, 60]  # clean, noise, swap, face hidden
    assert (heard[code == 2] != labels[code == 2]).all() and (heard[code != 2] == labels[code != 2]).all()


def test_hidden_faces_carry_no_expression(gen):
    cfg = _cfg(gen)
    calm, angry = torch.zeros(4, 6), torch.tensor([gen.EXPRESSION_TARGET["anger"]]).repeat(4, 1)

    def faces(expression, hidden):
        return gen.draw_faces(expression, torch.full((4,), hidden), cfg, torch.Generator().manual_seed(0))
    assert torch.equal(faces(calm, True), faces(angry, True))  # same draw, other expression: identical frames
    assert not torch.equal(faces(calm, False), faces(angry, False))


def test_oracle_without_ambiguity_is_the_corruption_bound(gen):
    # with (almost) no per-sample spread every clean modality is read perfectly, so the Bayes bound
    # must equal letters-av's closed form: audio 1 - noise - swap + noise/K, visual 1 - v + v/K, fused 1
    cfg = _cfg(gen, prosody_spread=(0.01, 0.01, 0.01), expression_spread=0.01, audio_noise=0.1, audio_swap=0.2,
               visual_corrupt=0.3)
    bound = gen.latent_oracle(cfg, n=6000)  # 6000 * rates are whole: the corruption counts are exact
    exact = cfg.oracle_corruption_only()
    assert exact == {"audio": pytest.approx(1 - 0.1 - 0.2 + 0.1 / 6, abs=5e-5),  # rounded to 4 digits
                     "visual": pytest.approx(0.75, abs=5e-5), "fused": 1.0}
    for m in ("audio", "visual", "fused"):
        assert bound[m] == pytest.approx(exact[m], abs=1e-4)  # both rounded to 4 digits: at most 1e-4 apart


def test_bad_settings_are_refused(gen, tmp_path):
    with pytest.raises(SystemExit, match="corruption rates"):
        gen.generate(tmp_path / "x", _cfg(gen, audio_noise=0.6, visual_corrupt=0.6), log=False)
    with pytest.raises(SystemExit, match="emotions"):
        gen.generate(tmp_path / "y", _cfg(gen, emotions=("anger", "boredom")), log=False)
    with pytest.raises(SystemExit, match="spreads must be positive"):
        gen.generate(tmp_path / "z", _cfg(gen, expression_spread=0.0), log=False)
    assert not any((tmp_path / d).exists() for d in "xyz")


def test_cli_refuses_bad_settings_in_one_line(gen, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert gen.main(["--out", str(tmp_path / "file")]) == 2
    assert gen.main(["--out", str(tmp_path / "d"), "--audio-swap", "1.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "not a directory" in err[0] and "corruption rates" in err[1]
    assert not (tmp_path / "d").exists()
