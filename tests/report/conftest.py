"""Fixtures for the report tests; the data itself is built in :mod:`.fixtures`."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmbalance.results import AuditResult

from .fixtures import METRICS_CSV, make_audit


@pytest.fixture
def before() -> AuditResult:
    return make_audit(0.81, accuracy=0.52)


@pytest.fixture
def after() -> AuditResult:
    return make_audit(0.56, accuracy=0.61, ablation_audio=0.6)


@pytest.fixture
def metrics_csv(tmp_path: Path) -> Path:
    path = tmp_path / "run" / "metrics.csv"
    path.parent.mkdir()
    path.write_text(METRICS_CSV)
    return path
