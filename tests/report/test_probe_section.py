"""The encoder probe (``extra.probe`` of ``audit --probe``) in the HTML and Markdown report.

Expected cells and sentences are formatted here from the numbers in the audit JSON the test
writes, so a wrong number, a swapped column or a dropped modality fails.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from mmbalance.report import build_report
from mmbalance.report.content import assemble_report
from mmbalance.report.html import render_html
from mmbalance.report.markdown import render_markdown
from mmbalance.results import AuditResult

from .fixtures import make_audit

#: as ``audit --probe --probe-unimodal audio=...,visual=...`` writes it (gap = accuracy - unimodal_accuracy)
PROBE = {"audio": {"accuracy": 0.58, "unimodal_accuracy": 0.601, "gap": 0.58 - 0.601},
         "visual": {"accuracy": 0.41, "unimodal_accuracy": 0.483, "gap": 0.41 - 0.483}}
#: a second model's probe, for the comparison: its audio encoder is the weaker one
PROBE_AFTER = {"audio": {"accuracy": 0.52, "unimodal_accuracy": 0.601, "gap": 0.52 - 0.601},
               "visual": {"accuracy": 0.466, "unimodal_accuracy": 0.483, "gap": 0.466 - 0.483}}


def with_probe(audit: AuditResult, probe: Any, tmp_path: Path, name: str) -> AuditResult:
    """``audit`` with ``extra.probe``, written to JSON and read back, as ``mmbalance report`` reads it."""
    audit.extra["probe"] = probe
    return AuditResult.load(audit.save(tmp_path / f"{name}.json"))


def percent(x: float) -> str:
    return f"{x * 100:.1f}%"


def points(gap: float) -> str:
    return ("+" if gap > 0 else "−") + f"{abs(gap) * 100:.1f} pp"


def below_sentence(m: str, probe: dict[str, dict[str, float]]) -> str:
    row = probe[m]
    return (f"The {m} encoder is {abs(row['gap']) * 100:.1f} points below its unimodal counterpart "
            f"({percent(row['accuracy'])} against {percent(row['unimodal_accuracy'])})")


def expected_rows(probe: dict[str, dict[str, float]]) -> list[list[str]]:
    return [[m, percent(r["accuracy"]), percent(r["unimodal_accuracy"]), points(r["gap"])] for m, r in probe.items()]


class Sections(HTMLParser):
    """Text, and table rows, of each ``<section id=...>`` of a report page."""

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.rows: dict[str, list[list[str]]] = {}
        self._id: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self._id = dict(attrs).get("id") or ""
            self.text[self._id], self.rows[self._id] = "", []
        elif tag == "tr" and self._id is not None:
            self.rows[self._id].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._id = None
        elif tag in ("td", "th") and self._cell is not None and self._id is not None:
            self.rows[self._id][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._id is not None:
            self.text[self._id] += data
        if self._cell is not None:
            self._cell.append(data)


def sections(page: str) -> Sections:
    parser = Sections()
    parser.feed(page)
    return parser


def md_section(md: str, title: str) -> str:
    """The Markdown from ``## title`` up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", md, re.M | re.S)
    assert match, f"no section {title!r}"
    return match.group(1)


def md_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| modality")]


@pytest.fixture(scope="module")
def probe_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    audit = with_probe(make_audit(0.81), PROBE, root, "probed")
    return build_report([audit], out_dir=root / "out", formats="html,md,png")


def test_html_probe_section(probe_report):
    page = sections(probe_report.html.read_text(encoding="utf-8"))
    assert page.rows["probe"][0] == ["modality", "probe accuracy", "unimodal probe accuracy", "gap"]
    assert page.rows["probe"][1:] == expected_rows(PROBE)
    text = page.text["probe"]
    assert "Encoder probe" in text
    # visual is further below its unimodal run than audio: it is the one named
    assert below_sentence("visual", PROBE) + ", the largest shortfall of the 2 encoders compared." in text
    assert "The audio encoder is" not in text
    summary = page.text["summary"]
    assert "Encoder probe: t" + below_sentence("visual", PROBE)[1:] in summary
    assert 'href="#probe"' in probe_report.html.read_text(encoding="utf-8")
    # the section sits before the audit details, which stay last
    assert list(page.text).index("probe") == list(page.text).index("details") - 1


def test_markdown_probe_section(probe_report):
    md = probe_report.markdown.read_text(encoding="utf-8")
    section = md_section(md, "Encoder probe")
    assert "| modality | probe accuracy | unimodal probe accuracy | gap |" in section
    assert md_rows(section) == expected_rows(PROBE)
    assert below_sentence("visual", PROBE) in section
    assert "Encoder probe: t" + below_sentence("visual", PROBE)[1:] in md.split("## ")[0]  # in the summary


@pytest.mark.parametrize("probe", [None, {}, "fitted", {"audio": "high", "visual": {"accuracy": None, "gap": "x"}}])
def test_no_probe_no_section(tmp_path, probe):
    plain = make_audit(0.81)
    doc = assemble_report([plain])
    expected_md, expected_html = render_markdown(doc, {}), render_html(doc, {})
    audit = plain if probe is None else with_probe(make_audit(0.81), probe, tmp_path, "odd")
    doc = assemble_report([audit])
    assert "probe" not in [s.id for s in doc.sections]
    md, page = render_markdown(doc, {}), render_html(doc, {})
    assert "probe" not in md.lower() and "probe" not in page.lower()
    if probe is not None:  # a missing or malformed probe renders exactly as no probe
        assert (md, page) == (expected_md, expected_html)


def test_probe_without_unimodal_runs(tmp_path):
    probe = {m: {"accuracy": r["accuracy"], "unimodal_accuracy": None, "gap": None} for m, r in PROBE.items()}
    doc = assemble_report([with_probe(make_audit(0.81), probe, tmp_path, "alone")])
    section = md_section(render_markdown(doc, {}), "Encoder probe")
    assert "| modality | probe accuracy |\n" in section  # no unimodal columns
    assert md_rows(section) == [[m, percent(r["accuracy"])] for m, r in PROBE.items()]
    assert (f"The visual encoder reads lowest: {percent(PROBE['visual']['accuracy'])} probe accuracy "
            f"(against audio {percent(PROBE['audio']['accuracy'])})") in section


def test_every_encoder_above_its_unimodal_run(tmp_path):
    probe = {"audio": {"accuracy": 0.62, "unimodal_accuracy": 0.601, "gap": 0.62 - 0.601},
             "visual": {"accuracy": 0.55, "unimodal_accuracy": 0.483, "gap": 0.55 - 0.483}}
    doc = assemble_report([with_probe(make_audit(0.81), probe, tmp_path, "above")])
    section = md_section(render_markdown(doc, {}), "Encoder probe")
    assert md_rows(section) == expected_rows(probe)
    assert (f"No encoder reads below its unimodal counterpart; the closest is the audio encoder, "
            f"{probe['audio']['gap'] * 100:.1f} points above it") in section


def test_comparison_shows_each_audits_probe(tmp_path):
    before = with_probe(make_audit(0.81), PROBE, tmp_path, "plain")
    after = with_probe(make_audit(0.56, accuracy=0.61, ablation_audio=0.6), PROBE_AFTER, tmp_path, "balanced")
    files = build_report([before, after], out_dir=tmp_path / "out", formats="html,md",
                         labels=["plain", "balanced"])
    page = sections(files.html.read_text(encoding="utf-8"))
    md = files.markdown.read_text(encoding="utf-8")
    for label, probe, weakest in (("plain", PROBE, "visual"), ("balanced", PROBE_AFTER, "audio")):
        assert page.rows[f"probe-{label}"][1:] == expected_rows(probe)
        assert below_sentence(weakest, probe) in page.text[f"probe-{label}"]
        section = md_section(md, f"Encoder probe — {label}")
        assert md_rows(section) == expected_rows(probe)
        assert below_sentence(weakest, probe) in section
    # the summary speaks of the last audit
    assert "Encoder probe (balanced): t" + below_sentence("audio", PROBE_AFTER)[1:] in page.text["summary"]


def test_comparison_with_one_probe(tmp_path):
    before = with_probe(make_audit(0.81), PROBE, tmp_path, "plain")
    after = make_audit(0.56, accuracy=0.61, ablation_audio=0.6)
    doc = assemble_report([before, after], labels=["plain", "balanced"])
    assert [s.id for s in doc.sections if s.id.startswith("probe")] == ["probe-plain"]
    md = render_markdown(doc, {})
    assert md_rows(md_section(md, "Encoder probe — plain")) == expected_rows(PROBE)
    assert "Encoder probe (" not in md  # the headline audit has no probe: nothing in the summary
