"""compare_audits: deltas are numerically right and serialize to JSON."""

from __future__ import annotations

import json

import pytest

from mmbalance.errors import ResultsError
from mmbalance.report import build_report, compare_audits, summarize
from mmbalance.results import AuditResult, MethodResult

from .fixtures import make_audit


def test_deltas(before, after):
    c = compare_audits(before, after)
    assert c.methods == ["ig", "ablation"] and c.modalities == ["audio", "visual"]
    assert c.shares["ig"]["audio"].before == pytest.approx(0.81)
    assert c.shares["ig"]["audio"].after == pytest.approx(0.56)
    assert c.shares["ig"]["audio"].delta == pytest.approx(-0.25)
    assert c.shares["ig"]["visual"].delta == pytest.approx(0.25)
    assert c.shares["ablation"]["audio"].delta == pytest.approx(0.60 - 0.74)
    assert c.accuracy.delta == pytest.approx(0.09)
    assert c.imbalance["max_share"].delta == pytest.approx(-0.25)
    var_b, var_a = (0.81 - 0.5) ** 2, (0.56 - 0.5) ** 2
    assert c.imbalance["share_variance"].delta == pytest.approx(var_a - var_b)
    assert c.imbalance["entropy"].delta == pytest.approx(after.imbalance["entropy"] - before.imbalance["entropy"])
    assert c.dominant_before == c.dominant_after == "audio" and not c.dominance_changed
    assert (c.balanced_before, c.balanced_after) == (False, True)
    assert c.per_class_accuracy["low-a"].delta == pytest.approx(0.0)
    assert c.notes == []


def test_to_dict_is_json(before, after):
    d = json.loads(json.dumps(compare_audits(before, after).to_dict(), allow_nan=False))
    assert d["shares"]["ig"]["audio"]["delta"] == pytest.approx(-0.25)
    assert d["dominant_modality"] == {"before": "audio", "after": "audio", "changed": False}
    assert set(d["imbalance"]) == {"max_share", "share_variance", "entropy"}


def test_different_methods_and_modalities_are_noted():
    a = make_audit(0.8)
    b = AuditResult(model="m", data="synthetic:av-dominance", split="test", n_samples=5,
                    modalities=["audio", "text"], accuracy=0.4,
                    methods={"shapley": MethodResult(name="shapley", shares={"audio": 0.3, "text": 0.7})},
                    primary_method="shapley")
    c = compare_audits(a, b)
    assert c.methods == [] and c.modalities == ["audio"]
    assert c.dominant_after == "text" and c.dominance_changed
    text = " ".join(c.notes)
    assert "visual" in text and "text" in text and "shapley" in text and "primary methods differ" in text
    assert c.accuracy.delta == pytest.approx(0.4 - 0.52)


def test_verdicts():
    assert summarize(make_audit(0.81)).verdict == "audio dominates: 81% of the attribution"
    s = summarize(make_audit(0.45, ablation_audio=None))
    assert s.balanced and s.verdict.startswith("balanced") and s.dominant == "visual" and s.status == "balanced"
    # IG says visual 55% [52%, 57%], ablation audio 74% [71%, 76%]: the README case is inconclusive, never green
    s = summarize(make_audit(0.45))
    assert not s.balanced and s.status == "inconclusive" and s.verdict.startswith("inconclusive")
    assert "ig says visual" in s.verdict and "ablation says audio" in s.verdict


def test_audit_without_methods_is_refused(before, tmp_path):
    empty = AuditResult(model="m", data="d", n_samples=0, modalities=["audio"], accuracy=0.0, methods={})
    with pytest.raises(ResultsError, match="no attribution results"):
        compare_audits(before, empty)
    with pytest.raises(ResultsError, match="no attribution results"):
        build_report([empty], out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
