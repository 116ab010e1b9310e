"""finetune applies audit's model guards before training: logits width, probabilities, compiled models, lazy
layers (issue 20); audit warns about probabilities and refuses hooks/gradients on compiled models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mmbalance.cli import EXIT_ERROR, app
from mmbalance.guards import compiled_kind, looks_like_probabilities

TOYS = str(Path(__file__).resolve().parents[1] / "guard_toys.py")
DATA = "synthetic:av-dominance?n_train=8&n_val=4&n_test=8"
runner = CliRunner()


def finetune(tmp_path: Path, factory: str, *args: str):
    return runner.invoke(app, ["finetune", "-m", f"{TOYS}:{factory}", "-d", DATA, "-o", str(tmp_path / "run"),
                               "--epochs", "1", "--batch-size", "4", "-q", "--modalities", "audio,visual", *args])


def one_line_error(result) -> str:
    assert result.exit_code == EXIT_ERROR, (result.exit_code, result.output)
    assert result.stderr.startswith("error:") and "Traceback" not in result.output, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return " ".join(result.stderr.split())


@pytest.mark.parametrize("factory,expected", [
    ("build_seven_way", "the model gives 7 logits per sample but"),
    ("build_softmax", "the model's outputs are probabilities (every row in [0, 1], summing to 1), not logits"),
    ("build_lazy_unused", "the lazy layer model.never_run has no size yet"),
])
def test_finetune_refuses_what_audit_refuses(tmp_path: Path, factory: str, expected: str) -> None:
    assert expected in one_line_error(finetune(tmp_path, factory))
    assert not (tmp_path / "run" / "best.pt").exists()


def test_lazy_layers_are_materialized_before_training(tmp_path: Path) -> None:
    result = finetune(tmp_path, "build_lazy")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "best.pt").is_file() and (tmp_path / "run" / "last.pt").is_file()


def test_scripted_model_refuses_the_attribution_regularizer_and_ig(tmp_path: Path) -> None:
    line = one_line_error(finetune(tmp_path, "build_scripted", "-r", "attribution"))
    assert "a TorchScript model cannot run finetune -r attribution" in line
    assert "--method ablation,permutation,shapley" in line
    audit = runner.invoke(app, ["audit", "-m", f"{TOYS}:build_scripted", "-d", DATA, "--modalities", "audio,visual",
                                "--method", "ig", "--bootstrap", "0", "--steps", "2", "-q"])
    assert "a TorchScript model cannot run --method ig" in one_line_error(audit)


def test_scripted_model_audits_with_forward_only_estimators(tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    result = runner.invoke(app, ["audit", "-m", f"{TOYS}:build_scripted", "-d", DATA, "--modalities", "audio,visual",
                                 "--bootstrap", "0", "--method", "ablation,permutation", "-q", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert set(json.loads(out.read_text())["methods"]) == {"ablation", "permutation"}


def test_audit_warns_when_outputs_are_probabilities(tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    result = runner.invoke(app, ["audit", "-m", f"{TOYS}:build_softmax", "-d", DATA, "--modalities", "audio,visual",
                                 "--bootstrap", "0", "--method", "ablation", "-q", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "warning: the model's outputs are probabilities" in result.stderr
    codes = [w["code"] for w in json.loads(out.read_text())["warnings"]]
    assert [c for c in codes if c not in ("no_checkpoint", "near_chance")] == ["probabilities"]  # random toy weights


def test_probabilities_test_is_exact_about_its_tolerance() -> None:
    p = torch.tensor([[0.25, 0.75], [0.5, 0.5]], dtype=torch.float64)
    assert looks_like_probabilities(p)
    assert looks_like_probabilities(p + torch.tensor([[5e-5, 0.0], [0.0, 0.0]], dtype=torch.float64))
    assert not looks_like_probabilities(p + torch.tensor([[2e-4, 0.0], [0.0, 0.0]], dtype=torch.float64))
    assert not looks_like_probabilities(torch.tensor([[1.5, -0.5]]))  # sums to 1 but leaves [0, 1]
    assert not looks_like_probabilities(torch.ones(3, 1))  # one column is no distribution


def test_compiled_kind() -> None:
    net = torch.nn.Linear(2, 2)
    assert compiled_kind(torch.jit.script(net)) == "TorchScript"
    assert compiled_kind(torch.jit.trace(net, torch.zeros(1, 2))) is None  # traced modules take hooks
    assert compiled_kind(torch.export.export(net, (torch.zeros(2, 2),)).module()) == "torch.export"
    assert compiled_kind(net) is None
