"""audit() and `mmbalance audit` with every estimator, level, baseline and statistic."""

import json
import math
import os

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from mmbalance.audit import audit, run_audit
from mmbalance.cli import EXIT_ERROR, app
from mmbalance.data import save_tensor_dataset
from mmbalance.errors import EstimatorError, UsageError
from mmbalance.models import ModelAdapter
from toys import PluginAV, av_batch, tiny_dataset

ALL = ["ig", "gradxinput", "ablation", "shapley", "permutation", "branch"]
TOYS = os.path.join(os.path.dirname(__file__), "toys.py")


def quick(**kw):
    kw.setdefault("steps", 4)
    kw.setdefault("progress", False)
    kw.setdefault("batch_size", 5)
    return audit(kw.pop("model", "av-tiny"), kw.pop("data", tiny_dataset()), **kw)


def test_default_audit_is_shapley_then_ablation():
    r = quick()
    assert list(r.methods) == ["shapley", "ablation"] and r.primary_method == "shapley"
    assert r.extra["agreement"]["dominant"]["shapley"] == r.dominant_modality
    assert json.loads(r.to_json())["verdict"] == r.verdict


def test_ig_primary_ablation_intervals_and_agreement():
    r = quick(methods=["ig", "ablation"])
    assert list(r.methods) == ["ig", "ablation"] and r.primary_method == "ig"
    ig, ab = r.methods["ig"], r.methods["ablation"]
    assert abs(sum(ig.shares.values()) - 1) < 1e-9
    for m in r.modalities:
        lo, hi = ig.ci95[m]
        assert lo <= ig.shares[m] <= hi
    assert set(ab.extra["accuracy_drop"]) == {"audio", "visual"}
    assert "share_histogram" in ig.extra and "share_histogram" in ab.extra
    assert ig.extra["completeness_error"]["mean"] is not None
    pair = r.extra["agreement"]["pairwise"]["ig|ablation"]
    assert set(pair) >= {"same_dominant", "pearson", "spearman"}
    assert r.extra["agreement"]["dominant"] == {"ig": r.dominant_modality, "ablation": max(ab.shares, key=ab.shares.get)}
    assert r.extra["bootstrap"]["replicates"] == 200
    doc = json.loads(r.to_json())
    assert doc["methods"]["ablation"]["extra"]["accuracy_drop"]["audio"] == ab.extra["accuracy_drop"]["audio"]
    assert type(r).from_json(r.to_json()) == r


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_every_estimator_and_per_sample_file(tmp_path, fmt):
    path = tmp_path / f"samples.{fmt}"
    r = quick(methods=ALL, per_sample=path, model_args={"fusion": "sum"}, repeats=2)
    assert list(r.methods) == ALL
    assert r.methods["branch"].level == "embedding"
    assert set(r.methods["permutation"].extra["perceptual_score"]) == {"audio", "visual"}
    assert set(r.methods["shapley"].extra["accuracy_shapley"]) == {"audio", "visual"}
    assert len(r.extra["agreement"]["pairwise"]) == 15
    frame = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
    assert len(frame) == 12 and frame["index"].tolist() == list(range(12))
    for col in ("label", "pred", "ig.share.audio", "ablation.score.visual", "ablation.accuracy_drop.audio",
                "ig.completeness_error", "branch.branch_accuracy.visual"):
        assert col in frame.columns
    mean_share = frame["shapley.share.audio"].mean()
    assert abs(mean_share - r.methods["shapley"].shares["audio"]) < 1e-9
    assert not list(tmp_path.glob(".samples*"))  # no temporary file left


def test_embedding_level_mean_baseline_tolerance_and_seed():
    r = quick(methods=["ig", "ablation"], level="embedding", baseline="mean", bootstrap=0)
    assert all(m.level == "embedding" for m in r.methods.values())
    assert r.methods["ig"].params["embedding"] == {"via": "encode/fuse"} and r.methods["ig"].ci95 is None
    assert r.methods["ig"].params["baseline"] == "mean"
    t = quick(methods=["ig"], steps=64, quadrature="riemann", tolerance=0.01)
    assert t.methods["ig"].params["tolerance"] == 0.01 and t.methods["ig"].params["method"] == "riemann_trapezoid"
    assert 5 <= t.methods["ig"].extra["steps"]["mean"] <= 65
    from mmbalance.models import load_model

    model = load_model("av-tiny", num_classes=3)  # one set of weights for both runs
    a = quick(model=model, methods=["ig", "permutation"], baseline="noise", seed=3)
    b = quick(model=model, methods=["ig", "permutation"], baseline="noise", seed=3)
    assert a.methods == b.methods and a.extra == b.extra


def test_hooked_plugin_at_the_embedding_level():
    ds = tiny_dataset()
    adapter = ModelAdapter(PluginAV(num_classes=3), ["audio", "visual"])
    r = quick(model=adapter, data=ds, methods=["ig", "shapley"], level="embedding",
              embedding_layers="audio=audio_net,visual=visual_net")
    assert r.methods["ig"].params["embedding"]["layers"] == {"audio": "audio_net", "visual": "visual_net"}
    with pytest.raises(EstimatorError, match="--embedding-layer"):
        quick(model=adapter, data=ds, level="embedding")


def test_bad_option_combinations_are_refused():
    with pytest.raises(UsageError, match="--level embedding"):
        quick(embedding_layers="audio=a,visual=b")
    with pytest.raises(UsageError, match="flat"):
        quick(level="embedding", baseline="blur")
    with pytest.raises(UsageError, match="--baseline"):
        quick(baseline="median")
    with pytest.raises(UsageError, match="--bootstrap"):
        quick(bootstrap=5)
    with pytest.raises(UsageError, match=".csv or .parquet"):
        quick(per_sample="out.xlsx")
    with pytest.raises(EstimatorError, match="fusion=concat"):
        quick(methods=["ig", "branch"], model_args={"fusion": "film"})


def test_state_does_not_grow_with_the_dataset():
    from mmbalance.models import load_model

    adapter = load_model("av-tiny", num_classes=3)
    from mmbalance.attribution import Ablation, IntegratedGradients

    sizes = []
    for n in (6, 30):
        out = run_audit(adapter, tiny_dataset(n), [IntegratedGradients(steps=2), Ablation()], batch_size=4,
                        limit=None, target="pred", device=torch.device("cpu"), progress=False, bootstrap=50)
        state = sum(acc.state().numel() for acc in out["accumulators"].values()) + out["agreement"].state().numel()
        extras = sum(t.numel() for e in out["extras"].values() for t in e.sums.values())
        sizes.append((state, extras))
    assert sizes[0] == sizes[1]


# -- the CLI -------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "d.pt"
    x = av_batch(8, audio_shape=(1, 8, 8), visual_shape=(3, 2, 8, 8))
    save_tensor_dataset(path, x, torch.arange(8) % 3, ["c0", "c1", "c2"])
    return str(path)


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result, result.output + (result.stderr if result.stderr_bytes is not None else "")


def test_cli_runs_every_option(data_file, tmp_path):
    out, samples = tmp_path / "a.json", tmp_path / "s.csv"
    result, text = run("audit", "--model", "av-tiny", "--data", data_file, "--steps", "4", "--quiet",
                       "--method", "ig,ablation,permutation", "--baseline", "mean", "--quadrature", "riemann",
                       "--tolerance", "0.05", "--repeats", "2", "--bootstrap", "50", "--seed", "1",
                       "--per-sample", samples, "--out", out, "--batch-size", "4")
    assert result.exit_code == 0, text
    doc = json.loads(out.read_text())
    assert doc["primary_method"] == "ig" and doc["methods"]["ig"]["ci95"]["audio"]
    assert doc["methods"]["ig"]["params"]["tolerance"] == 0.05
    assert "ig|permutation" in doc["extra"]["agreement"]["pairwise"]
    assert len(pd.read_csv(samples)) == 8
    result, text = run("audit", "--model", "av-tiny", "--data", data_file, "--steps", "2", "--level", "embedding",
                       "--json", "--bootstrap", "0")
    assert result.exit_code == 0, text
    assert json.loads(result.stdout)["methods"]["shapley"]["level"] == "embedding"


@pytest.mark.parametrize("args,needles", [
    (["--model", "av-tiny", "--model-arg", "fusion=film", "--method", "ig,branch"], ["FiLMFusion", "fusion=concat"]),
    (["--model", f"{TOYS}:PluginAV", "--modalities", "audio,visual", "--level", "embedding"],
     ["--embedding-layer audio="]),
    (["--model", f"{TOYS}:PluginAV", "--modalities", "audio,visual", "--level", "embedding",
      "--embedding-layer", "audio=audio_nett,visual=visual_net"], ["no module 'audio_nett'", "audio_net"]),
    (["--model", "av-tiny", "--level", "sideways"], ["--level"]),
    (["--model", "av-tiny", "--quadrature", "simpson"], ["--quadrature"]),
    (["--model", "av-tiny", "--per-sample", "x.json"], [".csv or .parquet"]),
])
def test_cli_bad_input_exits_2_naming_the_fix(data_file, args, needles):
    result, text = run("audit", "--data", data_file, "--steps", "2", "--quiet", *args)
    assert result.exit_code == EXIT_ERROR, text
    err = result.stderr.strip()
    assert err.startswith("error:") and "Traceback" not in text and len(err.splitlines()) <= 3
    for needle in needles:
        assert needle in " ".join(err.split()), err


def test_intervals_are_finite_numbers():
    r = quick(methods=["ig"], bootstrap=100)
    assert all(math.isfinite(v) for lo_hi in r.methods["ig"].ci95.values() for v in lo_hi)
