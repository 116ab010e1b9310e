import json

import pytest

from mmbalance.errors import ResultsError
from mmbalance.results import SCHEMA, AuditResult, MethodResult, imbalance_figures


def make_result(**kw):
    m = MethodResult(name="ig", level="input", shares={"audio": 0.8, "visual": 0.2},
                     scores={"audio": 4.0, "visual": 1.0},
                     per_class={"c0": {"n": 3, "shares": {"audio": 0.9, "visual": 0.1}}})
    base = dict(model="av-tiny", data="d.pt", n_samples=3, modalities=["audio", "visual"], accuracy=0.5,
                methods={"ig": m}, classes=["c0"])
    base.update(kw)
    return AuditResult(**base)


def test_imbalance_figures():
    figs = imbalance_figures({"a": 0.8, "b": 0.2})
    assert figs["max_share"] == 0.8
    assert abs(figs["share_variance"] - 0.09) < 1e-12
    assert 0 < figs["entropy"] < 1
    assert imbalance_figures({"a": 1.0, "b": 0.0})["entropy"] == 0.0


def test_json_round_trip_and_required_fields(tmp_path):
    r = make_result()
    path = r.save(tmp_path / "a.json")
    d = json.loads(path.read_text())
    for key in ("schema", "model", "checkpoint", "data", "n_samples", "modalities", "accuracy", "methods",
                "dominant_modality", "imbalance"):
        assert key in d
    assert d["schema"] == SCHEMA
    assert d["methods"]["ig"]["shares"]["audio"] == 0.8
    assert d["methods"]["ig"]["per_class"]["c0"]["n"] == 3
    assert d["dominant_modality"] == "audio"
    assert set(d["imbalance"]) == {"max_share", "share_variance", "entropy"}
    assert AuditResult.load(path) == r
    frame = r.to_frame()
    assert list(frame["modality"]) == ["audio", "visual"]


def test_foreign_schema_truncated_and_missing_files(tmp_path):
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"schema": "mmbalance.audit/0"}))
    with pytest.raises(ResultsError, match="schema"):
        AuditResult.load(p)
    p.write_text(make_result().to_json()[:50])
    with pytest.raises(ResultsError, match="not valid JSON"):
        AuditResult.load(p)
    with pytest.raises(ResultsError, match="does not exist"):
        AuditResult.load(tmp_path / "nope.json")
