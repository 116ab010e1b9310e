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
