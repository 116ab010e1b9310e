"""finetune warns once, at the first validation, when a modality's embedding is the same for every sample and the
shares are measured at the embedding level (issue 20): the audit's ``constant_embedding`` guard, in training."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from mmbalance.guards import ConstantMonitor
from mmbalance.models import ModelAdapter
from mmbalance.training.differentiable import AttributionSpec
from mmbalance.training.embeddings import training_view
from mmbalance.training.evaluation import evaluate
from tests.finetune_cli import invoke_finetune
from tests.toys import ConstantVisualAV, ConvAV, tiny_dataset

TOYS = str(Path(__file__).resolve().parents[1] / "toys.py")
DATA = "synthetic:av-dominance?n_train=8&n_val=6&n_test=4"
LAYERS = "audio=audio_net,visual=visual_net"


def run(tmp_path: Path, model: str, *args: str):
    return invoke_finetune("--model", model, "--data", DATA, "--out", tmp_path / "run", "--epochs", "2",
                           "--batch-size", "4", "--device", "cpu", "--modalities", "audio,visual", "-q", *args)


def test_finetune_warns_once_about_a_constant_embedding(tmp_path: Path) -> None:
    result = run(tmp_path, f"{TOYS}:build_constant_visual", "-r", "attribution", "--level", "embedding",
                 "--attribution", "gradxinput", "--embedding-layer", LAYERS)
    assert result.exit_code == 0, result.output
    stderr = " ".join(result.stderr.split())
    assert stderr.count("the visual embedding is the same for every validation sample") == 1, result.stderr
    assert "share_visual in metrics.csv" in stderr and "--attribution shapley" in stderr
    assert "audio embedding" not in stderr
    stored = json.loads((tmp_path / "run" / "run.json").read_text())["warnings"]
    assert [w for w in stored if "embedding is the same" in w] == [w for w in stored if "visual embedding" in w]
    assert len([w for w in stored if "visual embedding is the same" in w]) == 1


def test_no_warning_under_shapley_at_the_input_level_or_for_embeddings_that_vary(tmp_path: Path) -> None:
    shapley = run(tmp_path / "s", f"{TOYS}:build_constant_visual", "-r", "attribution", "--level", "embedding",
                  "--embedding-layer", LAYERS)  # the absent modality is a zero input's encoding: share 0
    assert shapley.exit_code == 0, shapley.output
    assert "embedding is the same" not in shapley.stderr
    rows = (tmp_path / "s" / "run" / "metrics.csv").read_text().splitlines()
    visual = rows[0].split(",").index("share_visual")
    assert all(float(row.split(",")[visual]) < 1e-3 for row in rows[1:]), rows
    at_input = run(tmp_path / "a", f"{TOYS}:build_constant_visual", "--level", "input", "--attribution",
                   "gradxinput")
    assert at_input.exit_code == 0, at_input.output
    assert "embedding is the same" not in at_input.stderr
    tiny = run(tmp_path / "b", "av-tiny", "-r", "attribution", "--level", "embedding", "--attribution", "gradxinput")
    assert tiny.exit_code == 0, tiny.output
    assert "embedding is the same" not in tiny.stderr
    assert not any("embedding is the same" in w
                   for w in json.loads((tmp_path / "b" / "run" / "run.json").read_text())["warnings"])


def test_evaluate_feeds_the_monitor_at_the_embedding_level_only() -> None:
    torch.manual_seed(0)
    constant = ModelAdapter(ConstantVisualAV(num_classes=3), ["audio", "visual"])
    spec = AttributionSpec(method="gradxinput", level="embedding")
    monitor = ConstantMonitor()
    evaluate(constant, tiny_dataset(), batch_size=4, device=torch.device("cpu"), spec=spec,
             view=training_view(constant, LAYERS), monitor=monitor)
    assert monitor.constant() == ["visual"]
    at_input = ConstantMonitor()
    evaluate(ModelAdapter(ConvAV(), ["audio", "visual"]), tiny_dataset(), batch_size=4, device=torch.device("cpu"),
             spec=AttributionSpec(method="gradxinput", level="input"), monitor=at_input)
    assert at_input.constant() == []
