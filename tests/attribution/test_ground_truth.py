"""The ground-truth suite: the default audit names the modality each model relies on by construction.

Cases and their truths are in :mod:`ground_truth` (next to this file). The default estimators
(``audit()`` without ``methods``) must name the right dominant modality (or call the audit
balanced) and get every share within :data:`ground_truth.SHARE_TOLERANCE`; the input-level L1 IG
(``--method ig``) is shown to miss the decoy and the size cases, the bias the default avoids.
"""

from __future__ import annotations

import pytest

from mmbalance.audit import DEFAULT_METHODS, audit
from mmbalance.data.dataset import TensorMultimodalDataset
from mmbalance.models import ModelAdapter

from .ground_truth import SHARE_TOLERANCE, Case, case, cases


def run(c: Case, **kwargs):
    data = TensorMultimodalDataset(c.inputs, c.labels(), classes=["pos", "neg"])
    return audit(ModelAdapter(c.model, list(c.modalities), call="keyword"), data, progress=False, **kwargs)


@pytest.mark.parametrize("c", cases(), ids=lambda c: c.name)
def test_default_audit_gets_the_truth(c):
    result = run(c, bootstrap=50)
    assert result.primary_method == DEFAULT_METHODS[0]
    assert result.accuracy == 1.0
    verdict = result.verdict
    if c.dominant is None:
        assert verdict["status"] == "balanced", verdict
    else:
        assert verdict["status"] == "dominant" and verdict["dominant"] == c.dominant, verdict
    for m, truth in (c.shares or {}).items():
        assert abs(result.shares[m] - truth) <= SHARE_TOLERANCE, (m, result.shares)
    # the second default estimator agrees on every case: no inconclusive verdict
    assert result.verdict["status"] != "inconclusive"


@pytest.mark.parametrize("name, wrong", [("decoy", "visual"), ("sizes", "large")])
def test_input_level_l1_ig_is_fooled_where_the_default_is_not(name, wrong):
    c = case(name)
    l1 = run(c, methods=["ig"], steps=8, bootstrap=0)
    assert l1.dominant_modality == wrong  # the bias docs/estimators.md states
    signed = run(c, methods=["ig"], steps=8, bootstrap=0, pool="signed")
    for m, truth in (c.shares or {}).items():
        assert abs(signed.shares[m] - truth) <= SHARE_TOLERANCE  # completeness: signed sums are exact here


def test_l1_ig_beside_the_default_makes_the_decoy_inconclusive():
    result = run(case("decoy"), methods=["shapley", "ig"], steps=8, bootstrap=50)
    assert result.verdict["status"] == "inconclusive"
    assert result.verdict["by_method"] == {"shapley": "audio", "ig": "visual"}
    assert "inconclusive" in result.verdict["message"]


PLUGIN = '''
import torch
from torch import nn


class TwoHeads(nn.Module):
    """Linear read-outs set by hand (trainable parameters, no checkpoint needed)."""

    def __init__(self, kind, weights=None):
        super().__init__()
        self.kind = kind
        self.fa = nn.Linear(16, 1, bias=False)
        self.fv = nn.Linear(768, 1, bias=False)
        if weights is not None:
            with torch.no_grad():
                self.fa.weight.copy_(weights[0])
                self.fv.weight.copy_(weights[1])

    def forward(self, audio, visual):
        a, v = self.fa(audio.flatten(1)).squeeze(1), self.fv(visual.flatten(1)).squeeze(1)
        z = a + v if self.kind == "decoy" else 4 * a * v
        return torch.stack([z, -z], 1)


def _weights():
    g = torch.Generator().manual_seed(0)
    return torch.randn(1, 16, generator=g), 5.0 * torch.tensor([1.0, -1.0]).repeat(384).view(1, 768)


def decoy(num_classes):
    return TwoHeads("decoy", _weights())


def needs_both(num_classes):
    wa, _ = _weights()
    g = torch.Generator().manual_seed(1)
    return TwoHeads("both", (wa, torch.randn(1, 768, generator=g)))


def untrained(num_classes):
    return TwoHeads("decoy")
'''


def test_default_cli_on_unseen_style_models(tmp_path):
    """The issue's acceptance through the CLI: decoy -> audio, fails the gate for audio; needs-both passes;
    a model with random initial weights is flagged and fails the gate."""
    import importlib.util
    import json

    import torch
    from typer.testing import CliRunner

    from mmbalance.cli import app
    from mmbalance.data import save_tensor_dataset

    plugin = tmp_path / "models.py"
    plugin.write_text(PLUGIN)
    spec = importlib.util.spec_from_file_location("gt_models", plugin)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    g = torch.Generator().manual_seed(2)
    n = 48
    audio = torch.randn(n, 16, generator=g)
    visual = torch.randn(n, 384, generator=g).repeat_interleave(2, dim=1) * 3  # pairs: the decoy cancels
    runner = CliRunner()
    for name, dominant in (("decoy", "audio"), ("needs_both", None)):
        with torch.no_grad():
            labels = getattr(mod, name)(2)(audio, visual).argmax(1)
        data = tmp_path / f"{name}.pt"
        save_tensor_dataset(data, {"audio": audio, "visual": visual}, labels, ["pos", "neg"])
        out = tmp_path / f"{name}.json"
        res = runner.invoke(app, ["audit", "--model", f"{plugin}:{name}", "--data", str(data), "--out", str(out),
                                  "--quiet"])
        assert res.exit_code == 0, res.output
        doc = json.loads(out.read_text())
        assert doc["warnings"] == []  # weights set by hand: no no_checkpoint warning
        assert doc["verdict"]["status"] == ("dominant" if dominant else "balanced"), doc["verdict"]
        assert doc["verdict"]["dominant"] == dominant
        gate = runner.invoke(app, ["check", "--audit", str(out), "--max-share", "0.7"])
        if dominant:
            assert gate.exit_code == 1 and "share of audio" in " ".join(gate.output.split()), gate.output
        else:
            assert gate.exit_code == 0, gate.output
    out = tmp_path / "untrained.json"
    res = runner.invoke(app, ["audit", "--model", f"{plugin}:untrained", "--data", str(tmp_path / "decoy.pt"),
                              "--out", str(out), "--quiet"])
    assert res.exit_code == 0 and "without --checkpoint" in " ".join(res.output.split()), res.output
    assert "no_checkpoint" in [w["code"] for w in json.loads(out.read_text())["warnings"]]
    gate = runner.invoke(app, ["check", "--audit", str(out), "--max-share", "1.0"])
    assert gate.exit_code == 1 and "trained_model" in gate.output
    assert runner.invoke(app, ["check", "--audit", str(out), "--max-share", "1.0", "--allow-untrained"]).exit_code == 0
