"""The guards through ``mmbalance audit``: exit 2 with one line for a broken model, warnings printed under
the table and stored in the JSON, and nothing of the kind for a healthy model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmbalance.cli import EXIT_ERROR, app

TOYS = str(Path(__file__).resolve().parents[1] / "toys.py")
DATA = "synthetic:av-dominance?n_test=12"
QUICK = ["--bootstrap", "0", "--steps", "4", "--batch-size", "4"]

runner = CliRunner()


def audit(*args: str):
    return runner.invoke(app, ["audit", "--data", DATA, "--modalities", "audio,visual", *QUICK, *args])


def one_line_error(result) -> str:
    assert result.exit_code == EXIT_ERROR, (result.exit_code, result.output)
    assert result.stderr.startswith("error:") and "Traceback" not in result.output, result.output
    return " ".join(result.stderr.split())


@pytest.mark.parametrize("factory,expected", [
    ("build_seven_way", "the model gives 7 logits per sample but synthetic:av-dominance?n_test=12 (split 'test') has 4 "
                        "classes"),
    ("build_similarity", "4 x 4 for a batch of 4 but 5 wide for a batch of 5: a batch x batch similarity matrix"),
    ("build_nan", "the model's logits hold NaN for sample 0"),
    ("build_nograd", "torch.no_grad()"),
])
def test_broken_models_exit_2_with_one_line(factory: str, expected: str) -> None:
    gradients = ("--method", "ig") if factory == "build_nograd" else ()  # the default estimators need no gradient
    assert expected in one_line_error(audit("--model", f"{TOYS}:{factory}", *gradients))


def test_healthy_model_has_no_warning(tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    result = audit("--model", f"{TOYS}:build_conv", "--method", "ig,ablation", "--out", str(out))
    assert result.exit_code == 0, result.output
    codes = [w["code"] for w in json.loads(out.read_text())["warnings"]]
    # the only warnings say that no checkpoint was given (the toy keeps its random weights), nothing about IG
    assert "no_checkpoint" in codes and set(codes) <= {"no_checkpoint", "near_chance"}
    assert "no_checkpoint" not in [w["code"] for w in json.loads(audit(
        "--model", f"{TOYS}:build_conv", "--checkpoint", str(_checkpoint(tmp_path)), "--json").stdout)["warnings"]]


def _checkpoint(tmp_path: Path) -> Path:
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("toys_for_ckpt", TOYS)
    assert spec is not None and spec.loader is not None
    toys = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toys)
    path = tmp_path / "conv.pt"
    torch.save(toys.build_conv(num_classes=4).state_dict(), path)
    return path


def test_completeness_warning_under_the_table_and_in_the_json(tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    result = audit("--model", f"{TOYS}:build_steep", "--steps", "2", "--quadrature", "riemann", "--method", "ig",
                   "--out", str(out))
    assert result.exit_code == 0, result.output
    table_end = result.stdout.index("entropy")
    warning_at = result.stdout.index("warning:")
    assert warning_at > table_end  # printed under the table
    assert "raise --steps (now 2, try 8) or pass --tolerance 0.01" in " ".join(result.stdout[warning_at:].split())
    (stored,) = json.loads(out.read_text())["warnings"]
    assert stored["code"] == "completeness" and stored["method"] == "ig"


def test_constant_embedding_warning_and_mean_baseline(tmp_path: Path) -> None:
    args = ["--model", f"{TOYS}:build_constant_visual", "--level", "embedding", "--method", "ig",
            "--embedding-layer", "audio=audio_net,visual=visual_net"]
    result = audit(*args, "--json")
    assert result.exit_code == 0, result.output
    (stored,) = [w for w in json.loads(result.stdout)["warnings"] if w["code"] == "constant_embedding"]
    assert stored["modality"] == "visual"
    assert "--baseline mean" in " ".join(result.stderr.split())  # --json keeps stdout one document
    quiet = audit(*args, "--baseline", "mean", "--json")
    assert quiet.exit_code == 0
    assert "constant_embedding" not in [w["code"] for w in json.loads(quiet.stdout)["warnings"]]
    assert "--baseline mean" not in quiet.stderr


def test_check_fails_an_audit_that_left_out_a_model_input(tmp_path: Path) -> None:
    import torch

    from mmbalance.data import save_tensor_dataset

    g = torch.Generator().manual_seed(0)
    data = tmp_path / "avt.pt"
    save_tensor_dataset(data, {"audio": torch.randn(8, 1, 8, 8, generator=g),
                               "visual": torch.randn(8, 3, 2, 8, 8, generator=g),
                               "text": torch.randn(8, 5, generator=g)}, torch.arange(8) % 3, ["a", "b", "c"])
    model = f"{TOYS}:build_optional_text"
    partial, full = tmp_path / "partial.json", tmp_path / "full.json"
    common = ["audit", "--model", model, "--data", str(data), *QUICK]
    assert runner.invoke(app, [*common, "--modalities", "audio,visual", "--out", str(partial)]).exit_code == 0
    assert json.loads(partial.read_text())["model_inputs"] == ["audio", "visual", "text"]
    failed = runner.invoke(app, ["check", "--audit", str(partial), "--max-share", "1.0", "--allow-untrained"])
    assert failed.exit_code == 1 and "the model takes text" in " ".join(failed.stdout.split())
    assert runner.invoke(app, [*common, "--out", str(full)]).exit_code == 0  # every modality audited
    assert json.loads(full.read_text())["model_inputs"] is None
    assert runner.invoke(app, ["check", "--audit", str(full), "--max-share", "1.0", "--allow-untrained"]).exit_code == 0
