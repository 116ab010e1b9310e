"""The audit's verdict everywhere it is shown, and the sanity guards (issue 17)."""

from __future__ import annotations

import json

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from mmbalance.audit import audit, reinitialised
from mmbalance.check import check, parse_policy
from mmbalance.check.rules import Rule
from mmbalance.cli import app
from mmbalance.cli._render import audit_table
from mmbalance.errors import UsageError
from mmbalance.guards import near_chance_warning
from mmbalance.models import ModelAdapter, load_model
from mmbalance.report import build_report
from mmbalance.results import AuditResult, MethodResult, audit_verdict, clear_dominant

from .toys import LinearAV, av_batch

AV = ["audio", "visual"]


def method(name, audio, ci=0.02):
    shares = {"audio": audio, "visual": 1 - audio}
    return MethodResult(name=name, shares=shares, ci95={m: [v - ci, v + ci] for m, v in shares.items()})


def disagreeing(ci=0.02):
    """Shapley says audio 80%, IG says visual 74%: the decoy's two readings."""
    return AuditResult(model="m", data="d", n_samples=50, modalities=AV, accuracy=1.0, primary_method="shapley",
                       methods={"shapley": method("shapley", 0.8, ci), "ig": method("ig", 0.26, ci)})


def test_clear_dominant_needs_separated_intervals():
    assert clear_dominant(method("a", 0.6, ci=0.05)) == "audio"
    assert clear_dominant(method("a", 0.52, ci=0.05)) is None  # [0.47, 0.57] overlaps [0.43, 0.53]
    assert clear_dominant(MethodResult(name="a", shares={"audio": 0.5, "visual": 0.5})) is None  # a tie


def test_verdict_statuses():
    assert disagreeing().verdict["status"] == "inconclusive"
    assert disagreeing().verdict["by_method"] == {"shapley": "audio", "ig": "visual"}
    # the same disagreement inside overlapping intervals is not a verdict of its own
    overlapping = {"shapley": method("shapley", 0.55, ci=0.2), "ig": method("ig", 0.45, ci=0.2)}
    assert audit_verdict(overlapping, "shapley")["status"] == "balanced"
    agreeing = {"shapley": method("shapley", 0.8), "ablation": method("ablation", 0.9)}
    v = audit_verdict(agreeing, "shapley")
    assert (v["status"], v["dominant"], v["max_share"]) == ("dominant", "audio", 0.8)


def test_verdict_in_the_json_and_old_files_still_load():
    doc = json.loads(disagreeing().to_json())
    assert doc["verdict"]["status"] == "inconclusive" and doc["schema"] == "mmbalance.audit/1"
    del doc["verdict"]  # an audit written before the field existed
    old = AuditResult.from_json(json.dumps(doc))
    assert old.verdict["status"] == "inconclusive" and old == disagreeing()


def test_terminal_html_and_markdown_show_inconclusive(tmp_path):
    console = Console(record=True, width=200)
    console.print(audit_table(disagreeing()))
    text = console.export_text()
    assert "verdict: inconclusive" in text and "← dominant" not in text
    # no modality dominates an inconclusive audit: the caption names the largest share as such
    assert "· largest share " in text and "· dominant " not in text
    files = build_report([disagreeing()], out_dir=tmp_path / "r", formats="html,md")
    html = files.html.read_text(encoding="utf-8")
    assert 'class="verdict inconclusive"' in html and 'class="verdict balanced"' not in html
    assert "❓ **inconclusive" in files.markdown.read_text(encoding="utf-8")
    assert files.balanced is False


def test_check_warns_on_disagreement_and_fails_when_agreement_is_required():
    rules = [Rule("max_share", 0.9)]
    warned = check(disagreeing(), rules)
    assert warned.passed and [o.rule for o in warned.warnings] == ["estimator_agreement"]
    failed = check(disagreeing(), rules, require_agreement=True)
    assert not failed.passed and [o.rule for o in failed.failed] == ["estimator_agreement"]
    agreeing = AuditResult(model="m", data="d", n_samples=5, modalities=AV, accuracy=1.0,
                           methods={"shapley": method("shapley", 0.8), "ablation": method("ablation", 0.9)})
    assert [o.verdict.value for o in check(agreeing, rules, require_agreement=True).outcomes] == ["PASS", "PASS"]
    assert parse_policy({"require_agreement": True, "max_share": 0.9}).require_agreement is True
    with pytest.raises(UsageError, match="require_agreement"):
        parse_policy({"require_agreement": "yes"})


def test_check_cli_require_agreement(tmp_path):
    path = tmp_path / "a.json"
    disagreeing().save(path)
    runner = CliRunner()
    assert runner.invoke(app, ["check", "--audit", str(path), "--max-share", "0.9"]).exit_code == 0
    res = runner.invoke(app, ["check", "--audit", str(path), "--max-share", "0.9", "--require-agreement"])
    assert res.exit_code == 1 and "estimator_agreement" in res.output
    policy = tmp_path / "mmbalance.toml"
    policy.write_text("[check]\nrequire_agreement = true\nmax_share = 0.9\n")
    assert runner.invoke(app, ["check", "--audit", str(path), "--policy", str(policy)]).exit_code == 1


def test_near_chance_warning_threshold():
    assert near_chance_warning(0.3, 4, 50) is not None  # 25% + 5 points
    assert near_chance_warning(0.31, 4, 50) is None
    assert near_chance_warning(0.5, 1, 50) is None


def _linear_data(n=24):
    from mmbalance.data.dataset import TensorMultimodalDataset

    torch.manual_seed(0)
    model = LinearAV(num_classes=3)
    x = av_batch(n)
    with torch.no_grad():
        labels = model(x["audio"], x["visual"]).argmax(1)
    return model, TensorMultimodalDataset(x, labels, classes=["a", "b", "c"])


def test_sanity_randomisation_moves_the_shares_of_a_model():
    model, data = _linear_data()
    with torch.no_grad():
        model.fv.weight.mul_(0.01)  # trained: audio decides
    result = audit(ModelAdapter(model, AV), data, progress=False, bootstrap=0, sanity=True)
    sanity = result.extra["sanity"]
    assert sanity["method"] == "shapley" and sanity["passed"] and sanity["moved"] >= 0.05
    assert "sanity" not in result.warning_codes()


def test_sanity_fails_for_an_estimator_blind_to_the_weights():
    from mmbalance.attribution.base import Attribution, Estimator

    class Sizes(Estimator):  # scores from the inputs alone: what Adebayo et al. test for
        name = "sizes"

        def _attribute(self, forward, inputs, target, *, labels, baselines):
            return Attribution(tuple(inputs), torch.stack([x.flatten(1).abs().sum(1) for x in inputs.values()], 1))

    model, data = _linear_data()
    result = audit(ModelAdapter(model, AV), data, progress=False, bootstrap=0, sanity=True, estimators=[Sizes()])
    assert result.extra["sanity"]["passed"] is False and result.extra["sanity"]["moved"] < 1e-9
    assert "sanity" in result.warning_codes()


def test_reinitialised_changes_weights_and_keeps_the_original():
    m = load_model("av-tiny", num_classes=4)
    before = [p.clone() for p in m.parameters()]
    r = reinitialised(m, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(m.parameters(), r.parameters()))


def test_pool_applies_to_gradient_estimators_only():
    model, data = _linear_data()
    with pytest.raises(UsageError, match="--pool signed applies"):
        audit(ModelAdapter(model, AV), data, progress=False, pool="signed")
    with pytest.raises(UsageError, match="unknown --pool"):
        audit(ModelAdapter(model, AV), data, progress=False, methods=["ig"], pool="l3")
    r = audit(ModelAdapter(model, AV), data, progress=False, methods=["ig"], pool="signed", steps=4, bootstrap=0)
    assert r.methods["ig"].params["pool"] == "signed"
