"""An audit's warnings (mmbalance/guards.py) appear in the report next to its shares."""

from __future__ import annotations

import dataclasses

from mmbalance.report.content import Paragraph, assemble_report

from .fixtures import make_audit


def _paragraphs(audit) -> list[str]:
    doc = assemble_report([audit])
    return [b.text for s in doc.sections for b in s.blocks if isinstance(b, Paragraph)]


def test_warnings_are_reported_with_the_shares() -> None:
    warned = dataclasses.replace(make_audit(), warnings=[{"code": "completeness", "message": "ig: miss by 20%"}])
    assert "Warning: ig: miss by 20%" in _paragraphs(warned)


def test_no_warning_paragraph_without_warnings() -> None:
    assert not any(text.startswith("Warning:") for text in _paragraphs(make_audit()))
