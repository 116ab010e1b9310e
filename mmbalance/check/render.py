"""Renderers for a :class:`~mmbalance.check.evaluate.CheckReport`, separate from the rules.

Each takes a report and returns text (or a rich renderable); the ``write_*`` /
``append_*`` helpers put it where CI tools look for it:

* :func:`to_table` — a rich table for the terminal;
* :func:`to_junit` / :func:`write_junit` — JUnit XML, one ``<testcase>`` per rule;
* :func:`to_markdown` / :func:`append_step_summary` — the GitHub Actions job summary;
* :func:`to_annotations` — ``::error`` / ``::warning`` workflow commands.

JSON is the report's own :meth:`~mmbalance.check.evaluate.CheckReport.to_json`.

Example:
    >>> print(to_markdown(report))  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from ..errors import MMBalanceError
from ..io import atomic_write_text
from .evaluate import CheckReport, Outcome
from .rules import Verdict, format_value

_STYLE = {Verdict.PASS: "green", Verdict.WARN: "yellow", Verdict.FAIL: "bold red"}
_ICON = {Verdict.PASS: "✅", Verdict.WARN: "⚠️", Verdict.FAIL: "❌"}
# Characters XML 1.0 forbids (JUnit readers reject the whole file on one of them).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _subject(report: CheckReport) -> str:
    a = report.audit
    text = f"{a.get('model', '?')}"
    if a.get("checkpoint"):
        text += f" ({a['checkpoint']})"
    text += f" on {a.get('data', '?')}"
    if a.get("split"):
        text += f" [{a['split']}]"
    return text


def _measured(o: Outcome) -> str:
    text = format_value(o.name, o.measured)
    return f"{text} ({o.where})" if o.where and o.where != "all samples" else text


def to_table(report: CheckReport) -> Table:
    """A rich table: rule, measured (and where), limit, verdict; the summary in the caption.

    Example:
        >>> from rich.console import Console
        >>> Console().print(to_table(report))  # doctest: +SKIP
    """
    method = report.audit.get("method")
    title = f"mmbalance check — {_subject(report)}" + (f", method {method}" if method else "")
    table = Table(title=escape(title), title_justify="left")
    table.add_column("rule", style="bold")
    table.add_column("demands")
    table.add_column("measured", justify="right")
    table.add_column("limit", justify="right")
    table.add_column("verdict", justify="center")
    for o in report.outcomes:
        table.add_row(escape(o.rule), escape(o.description), escape(_measured(o)), format_value(o.name, o.limit),
                      f"[{_STYLE[o.verdict]}]{o.verdict.value}[/]")
    table.caption = f"[{_STYLE[report.verdict]}]{report.summary()}[/]"
    table.caption_justify = "left"
    return table


# -- JUnit ------------------------------------------------------------------------------------------


def _xml_text(text: object) -> str:
    return _XML_ILLEGAL.sub("?", str(text))


def to_junit(report: CheckReport, *, suite: str = "mmbalance check") -> str:
    """JUnit XML: one ``<testsuite>`` whose ``<testcase>`` elements are the rules.

    A failed rule carries a ``<failure>``; a warning passes, with its message in
    ``<system-out>`` (JUnit has no warning state). GitHub test-report actions, GitLab's
    ``artifacts:reports:junit`` and Jenkins' ``junit`` step all read this layout.

    Example:
        >>> xml = to_junit(report)  # doctest: +SKIP
    """
    counts = {"tests": str(len(report.outcomes)), "failures": str(len(report.failed)), "errors": "0",
              "skipped": "0", "time": "0"}
    root = ET.Element("testsuites", {"name": suite, **counts})
    testsuite = ET.SubElement(root, "testsuite", {
        "name": f"{suite}: {_xml_text(_subject(report))}", **counts,
        "timestamp": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    })
    properties = ET.SubElement(testsuite, "properties")
    for key in ("model", "checkpoint", "data", "split", "n_samples", "method"):
        value = report.audit.get(key)
        if value is not None:
            ET.SubElement(properties, "property", {"name": key, "value": _xml_text(value)})
    if report.baseline:
        ET.SubElement(properties, "property",
                      {"name": "baseline", "value": _xml_text(_subject(CheckReport((), report.baseline)))})
    for o in report.outcomes:
        case = ET.SubElement(testsuite, "testcase", {"classname": "mmbalance.check", "name": _xml_text(o.rule),
                                                     "time": "0"})
        detail = (f"{o.description}\nmeasured: {_measured(o)}\nlimit: {format_value(o.name, o.limit)}\n"
                  f"level: {o.level}\nverdict: {o.verdict.value}\n{o.message}")
        if o.verdict is Verdict.FAIL:
            failure = ET.SubElement(case, "failure", {"message": _xml_text(o.message), "type": o.name})
            failure.text = _xml_text(detail)
        else:
            out = ET.SubElement(case, "system-out")
            out.text = _xml_text(("WARNING: " if o.verdict is Verdict.WARN else "") + detail)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(report: CheckReport, path: str | os.PathLike[str]) -> Path:
    """Write :func:`to_junit` to ``path`` atomically; returns the path."""
    atomic_write_text(path, to_junit(report))
    return Path(path)


# -- GitHub Actions ---------------------------------------------------------------------------------


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(report: CheckReport) -> str:
    """A Markdown section: verdict headline, the rules as a table, and why each failed.

    Example:
        >>> to_markdown(report).splitlines()[0]  # doctest: +SKIP
        '### ❌ mmbalance check failed: 1 of 3 rules failed'
    """
    lines = [f"### {_ICON[report.verdict]} mmbalance check {report.summary()}", ""]
    method = report.audit.get("method")
    lines.append(f"Audit of `{_md(_subject(report))}`" + (f", method `{method}`" if method else "")
                 + (f", {report.audit['n_samples']} samples" if report.audit.get("n_samples") else "") + ".")
    if report.baseline:
        lines.append(f"Baseline: `{_md(_subject(CheckReport((), report.baseline)))}`.")
    lines += ["", "| rule | demands | measured | limit | verdict |", "|---|---|---:|---:|:---:|"]
    for o in report.outcomes:
        lines.append(f"| `{_md(o.rule)}` | {_md(o.description)} | {_md(_measured(o))} | "
                     f"{_md(format_value(o.name, o.limit))} | {_ICON[o.verdict]} {o.verdict.value} |")
    notes = [o for o in report.outcomes if o.verdict is not Verdict.PASS]
    if notes:
        lines.append("")
        lines += [f"- **{o.verdict.value}** `{_md(o.rule)}`: {_md(o.message)}" for o in notes]
    return "\n".join(lines) + "\n"


def append_step_summary(report: CheckReport, path: str | os.PathLike[str]) -> None:
    """Append :func:`to_markdown` to the job-summary file (``$GITHUB_STEP_SUMMARY``)."""
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("\n" + to_markdown(report))
    except OSError as err:
        raise MMBalanceError(f"cannot append the step summary to {path}: {err.strerror or err}") from err


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def to_annotations(report: CheckReport) -> list[str]:
    """GitHub workflow commands: ``::error`` per failed rule, ``::warning`` per warning.

    Example:
        >>> to_annotations(report)  # doctest: +SKIP
        ['::error title=mmbalance check%3A max_share::share of audio is 81.0%25, above the 70.0%25 limit']
    """
    lines = []
    for o in report.outcomes:
        if o.verdict is Verdict.PASS:
            continue
        command = "error" if o.verdict is Verdict.FAIL else "warning"
        title = _escape_property(f"mmbalance check: {o.rule}")
        lines.append(f"::{command} title={title}::{_escape_data(o.message)}")
    return lines
