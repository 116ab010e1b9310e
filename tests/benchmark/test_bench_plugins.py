"""A plain ``nn.Module`` plug-in named with ``--embedding-layer`` runs every bench method (issue 19, item 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmbalance.benchmark import bench
from mmbalance.cli import app
from mmbalance.errors import UsageError
from mmbalance.models import create_model, load_state_dict
from mmbalance.training import TrainConfig
from mmbalance.training.preflight import check_trainable

TOYS = Path(__file__).resolve().parents[1] / "models" / "toy_plugins.py"
SPEC = f"{TOYS}:build_two_branch"
DATA = "synthetic:av-dominance?n_train=16&n_val=8&n_test=8"
LAYERS = {"audio": "audio_net", "visual": "visual_net"}
runner = CliRunner()


def test_every_method_runs_for_a_plugin(tmp_path):
    methods = ["plain", "unimodal", "ensemble", "gblend", "ogm-ge", "modality-dropout", "aux", "attribution",
               "attribution-aux", "warm", "warm-calibrated", "warm-attribution"]
    result = bench(SPEC, DATA, out=tmp_path / "b", methods=methods, seeds=[0], epochs=1, batch_size=8, steps=2,
                   device="cpu", progress=False, train={"embedding_layers": LAYERS})
    assert set(result.table) == {"plain", "unimodal-audio", "unimodal-visual", "gblend", "ogm-ge",
                                 "modality-dropout", "aux", "attribution", "attribution-aux", "ensemble", "warm",
                                 "warm-calibrated", "warm-attribution"}
    for record in result.records:
        assert sum(record.shares.values()) == pytest.approx(1.0, abs=1e-6), record.run
    audio_alone = next(r for r in result.records if r.run == "unimodal-audio")
    assert audio_alone.shares == {"audio": 1.0, "visual": 0.0}
    # the unimodal model is the plug-in's own audio encoder with a classifier sized by one forward
    state = load_state_dict(tmp_path / "b" / "runs" / "unimodal-audio" / "seed0" / "best.pt")
    encoder = create_model(SPEC, num_classes=4).audio_net.state_dict()
    assert {f"encoders.audio.{k}" for k in encoder} | {"fusion.fc.weight", "fusion.fc.bias"} == set(state)
    assert tuple(state["fusion.fc.weight"].shape) == (4, 6)
    ensemble = json.loads((tmp_path / "b" / "runs" / "ensemble" / "seed0" / "run.json").read_text())
    assert [m["layer"] for m in ensemble["model_args"]["members"]] == ["audio_net", "visual_net"]
    # the warm starts fuse the plug-in's encoders: the late-fusion model, its encoders copied from the runs
    warm = load_state_dict(tmp_path / "b" / "runs" / "warm" / "seed0" / "best.pt")
    runs = [load_state_dict(tmp_path / "b" / "runs" / f"unimodal-{m}" / "seed0" / "best.pt") for m in LAYERS]
    assert {k for k in warm if k.startswith("encoders.")} == {k for r in runs for k in r if k.startswith("encoders.")}
    assert tuple(warm["fusion.fc.weight"].shape) == (4, 12)  # concat of the two 6-wide embeddings
    calibrated = json.loads((tmp_path / "b" / "runs" / "warm-calibrated" / "seed0" / "run.json").read_text())
    assert set(calibrated["init_scales"]) == {"audio", "visual"}
    built = calibrated["built"]
    assert built["model"] == "late-fusion" and built["model_args"]["dims"] == {"audio": 6, "visual": 6}
    # the run.json arguments rebuild the model its best.pt fits
    fused = create_model("late-fusion", num_classes=4, model_args=built["model_args"])
    fused.load_state_dict(load_state_dict(tmp_path / "b" / "runs" / "warm-calibrated" / "seed0" / "best.pt"))


def test_bench_refuses_a_method_before_training_anything(tmp_path):
    out = tmp_path / "b"
    res = runner.invoke(app, ["bench", "-m", SPEC, "-d", DATA, "-o", str(out), "--methods", "plain,gblend",
                              "--seeds", "1", "--epochs", "1", "-q"])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "bench method 'gblend'" in text and "--embedding-layer" in text
    assert not (out / "runs").exists()  # plain was not trained first


def test_check_trainable_names_the_problem():
    cfg = TrainConfig(model=SPEC, data=DATA, out="o", regularizer="ogm-ge")
    with pytest.raises(UsageError, match="x: -r ogm-ge needs each modality's embedding"):
        check_trainable(cfg, what="x")
    check_trainable(TrainConfig(model=SPEC, data=DATA, out="o", regularizer="ogm-ge", embedding_layers=LAYERS))
    check_trainable(TrainConfig(model=SPEC, data=DATA, out="o", unimodal="visual", embedding_layers=LAYERS))


def test_a_warm_start_of_a_model_that_cannot_take_one_is_refused_before_training(tmp_path):
    out = tmp_path / "b"
    res = runner.invoke(app, ["bench", "-m", "av-tiny", "--model-arg", "fusion=film", "-d", DATA, "-o", str(out),
                              "--methods", "plain,warm-calibrated", "--seeds", "1", "--epochs", "1", "-q"])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "bench method 'warm-calibrated'" in text and "concat or sum fusion head" in text
    assert not (out / "runs").exists()  # neither plain nor the unimodal runs were trained first


@pytest.mark.parametrize("kw,message", [
    ({"init": {"audio": "a.pt"}}, "needs one unimodal run for each"),
    ({"init": {"audio": "a.pt", "visual": "v.pt"}, "pass_through": ["mask"]}, "cannot pass mask through"),
])
def test_a_plugin_warm_start_needs_a_run_per_encoder_and_no_pass_through(kw, message):
    with pytest.raises(UsageError, match=message):
        TrainConfig(model=SPEC, data=DATA, out="o", embedding_layers=LAYERS, **kw).validate()
