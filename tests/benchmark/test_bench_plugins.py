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
               "attribution-aux"]
    result = bench(SPEC, DATA, out=tmp_path / "b", methods=methods, seeds=[0], epochs=1, batch_size=8, steps=2,
                   device="cpu", progress=False, train={"embedding_layers": LAYERS})
    assert set(result.table) == {"plain", "unimodal-audio", "unimodal-visual", "gblend", "ogm-ge",
                                 "modality-dropout", "aux", "attribution", "attribution-aux", "ensemble"}
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
