"""`check` re-derives the modalities and the primary method from the methods (issue 21, case 11)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmbalance.check import Rule, check
from mmbalance.check.evaluate import check_consistent
from mmbalance.errors import ResultsError


def _tamper(path: Path, **changes) -> Path:
    doc = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    path.write_text(json.dumps(doc))
    return path


def _one_error_line(res) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    return lines[0]


def test_dropping_a_dominant_modality_from_the_list_never_passes(cli, write_audit):
    path = write_audit(shares={"audio": 0.15, "visual": 0.85})
    assert cli("check", "--audit", str(path), "--max-share", "0.7").exit_code == 1
    _tamper(path, modalities=["audio"])
    res = cli("check", "--audit", str(path), "--max-share", "0.7")
    assert res.exit_code == 2, res.output
    assert "visual" in _one_error_line(res)


def test_dropping_it_from_list_and_shares_alike_is_caught_by_the_sum(cli, write_audit):
    path = write_audit(shares={"audio": 0.15, "visual": 0.85})
    doc = json.loads(path.read_text())
    for m in doc["methods"].values():
        for key in ("shares", "scores"):
            m.get(key, {}).pop("visual", None)
    doc["modalities"] = ["audio"]
    path.write_text(json.dumps(doc))
    res = cli("check", "--audit", str(path), "--max-share", "0.7")
    assert res.exit_code == 2, res.output
    assert "sum to 0.15" in _one_error_line(res)


def test_a_primary_method_naming_a_missing_estimator_is_refused(cli, write_audit):
    path = _tamper(write_audit(shares={"audio": 0.15, "visual": 0.85}), primary_method="shapley")
    res = cli("check", "--audit", str(path), "--max-share", "0.7")
    assert res.exit_code == 2, res.output
    assert "shapley" in _one_error_line(res)


def test_a_consistent_audit_is_judged_as_before(make_audit):
    audit = make_audit(shares={"audio": 0.15, "visual": 0.85})
    check_consistent(audit)
    assert not check(audit, [Rule("max_share", 0.7)]).passed
    with pytest.raises(ResultsError, match="twice"):
        check_consistent(make_audit(shares={"audio": 0.5, "visual": 0.5}).__class__(
            **{**make_audit().__dict__, "modalities": ["audio", "audio"]}))


def test_outputs_naming_an_input_are_refused_before_the_check(cli, write_audit):
    path = write_audit(shares={"audio": 0.15, "visual": 0.85})
    before = path.read_bytes()
    for flag in ("--junit", "--save-audit"):
        res = cli("check", "--audit", str(path), "--max-share", "0.7", flag, str(path))
        assert res.exit_code == 2, res.output
        assert "same file as --audit" in _one_error_line(res)
        assert path.read_bytes() == before
