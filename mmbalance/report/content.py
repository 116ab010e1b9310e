"""What a report says, independent of how it is rendered.

:func:`assemble_report` turns audits (and optionally training metrics) into a
:class:`ReportDocument`: a headline (verdict and key numbers), then sections made of a
few block types (:class:`Heading`, :class:`Paragraph`, :class:`Table`, :class:`Plot`).
The HTML and Markdown renderers (:mod:`.html`, :mod:`.markdown`) only lay these out,
so both formats always tell the same story. All text here is plain (unescaped); each
renderer escapes it for its own format.

Example:
    >>> doc = assemble_report([AuditResult.load("audit.json")])  # doctest: +SKIP
    >>> doc.verdict, [s.title for s in doc.sections]  # doctest: +SKIP
    ('audio dominates: 93% of the attribution', ['Modality shares', 'Shares per class', ...])
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, Union

from matplotlib.figure import Figure

from .. import __version__
from ..results import AuditResult
from . import plots, training_plots
from .compare import AuditComparison, compare_audits
from .metrics import SHARE_PREFIX, TrainingMetrics
from .summary import Summary, summarize


@dataclass(frozen=True)
class Heading:
    """A sub-heading inside a section."""

    text: str


@dataclass(frozen=True)
class Paragraph:
    """A paragraph; ``kind="note"`` renders smaller and muted."""

    text: str
    kind: str = "text"


@dataclass(frozen=True)
class Table:
    """A table of plain-text cells; ``numeric`` marks right-aligned columns."""

    headers: list[str]
    rows: list[list[str]]
    numeric: list[bool] = field(default_factory=list)
    caption: str = ""


@dataclass(frozen=True)
class Plot:
    """A figure; ``key`` names its image file (``<key>.png``), ``title`` is its alt text."""

    key: str
    title: str
    caption: str
    figure: Figure = field(repr=False, compare=False)


Block = Union[Heading, Paragraph, Table, Plot]


@dataclass(frozen=True)
class Section:
    """A titled part of the report; ``id`` is its anchor."""

    id: str
    title: str
    blocks: list[Block]
    short: str = ""

    @property
    def nav(self) -> str:
        """The short name used in the table of contents."""
        return self.short or self.title


@dataclass(frozen=True)
class Card:
    """One key number in the summary: ``label``, ``value`` and a short ``hint`` under it."""

    label: str
    value: str
    hint: str = ""


@dataclass(frozen=True)
class ReportDocument:
    """The whole report: title, headline summary, sections."""

    title: str
    subtitle: str
    verdict: str
    balanced: bool
    cards: list[Card]
    summary_blocks: list[Block]
    sections: list[Section]
    footer: str
    summary: Summary

    @property
    def status(self) -> str:
        """``balanced``, ``dominant`` or ``inconclusive`` (the headline audit's verdict)."""
        return self.summary.status or ("balanced" if self.balanced else "dominant")

    def plots(self) -> list[Plot]:
        """Every plot in document order."""
        blocks = list(self.summary_blocks) + [b for s in self.sections for b in s.blocks]
        return [b for b in blocks if isinstance(b, Plot)]


# -- formatting ----------------------------------------------------------------------
def pct(value: Any, digits: int = 1) -> str:
    """``0.812`` → ``"81.2%"``; missing → ``"—"``."""
    return f"{value:.{digits}%}" if _finite(value) else "—"


def pp(value: Any) -> str:
    """A share difference in percentage points: ``-0.35`` → ``"−35.0 pp"``."""
    if not _finite(value):
        return "—"
    sign = "+" if value > 0 else "−" if value < 0 else "±"
    return f"{sign}{abs(value) * 100:.1f} pp"


def num(value: Any, digits: int = 3) -> str:
    """A plain number with ``digits`` decimals; missing → ``"—"``."""
    return f"{value:.{digits}f}" if _finite(value) else "—"


def signed(value: Any, digits: int = 3) -> str:
    """A signed difference: ``-0.1`` → ``"−0.100"``."""
    if not _finite(value):
        return "—"
    return ("+" if value > 0 else "−" if value < 0 else "±") + f"{abs(value):.{digits}f}"


def cell(value: Any, limit: int = 120) -> str:
    """Any JSON value as short text: booleans as yes/no, floats with 3 decimals, dicts as ``k=v``."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return num(value) if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    if isinstance(value, Mapping):
        text = ", ".join(f"{k}={cell(v)}" for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(cell(v) for v in value) + "]"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def slug(text: str) -> str:
    """A file- and anchor-safe name: ``"After (λ=0.1)"`` → ``"after-0-1"``."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s or "x"


# -- assembly ------------------------------------------------------------------------
def default_labels(n: int) -> list[str]:
    """``["before", "after"]`` for two audits, ``["audit 1", ...]`` otherwise (``[""]`` for one)."""
    if n == 1:
        return [""]
    if n == 2:
        return ["before", "after"]
    return [f"audit {i + 1}" for i in range(n)]


def assemble_report(audits: Sequence[AuditResult], *, labels: Sequence[str] | None = None,
                    metrics: TrainingMetrics | None = None, title: str | None = None) -> ReportDocument:
    """Build the report's content: headline from the last audit, then comparison, training and per-audit sections.

    With two or more audits the first is "before" and the last "after"; the summary
    describes the last one.

    Example:
        >>> doc = assemble_report([before, after], labels=["plain", "balanced"])  # doctest: +SKIP
    """
    if not audits:
        raise ValueError("assemble_report needs at least one audit")
    labels = list(labels) if labels is not None else default_labels(len(audits))
    if len(labels) != len(audits):
        raise ValueError("one label per audit")
    multi = len(audits) > 1
    names = [lab or f"audit {i + 1}" for i, lab in enumerate(labels)]
    mods = list(dict.fromkeys([m for a in audits for m in a.modalities] +
                              (metrics.share_modalities if metrics else [])))
    colors = plots.modality_colors(mods)
    head = audits[-1]
    summary = summarize(head)
    suffixes = _unique_slugs(names) if multi else [""] * len(audits)

    summary_blocks: list[Block] = []
    head_probe = probe_sentence(probe_rows(head))
    if head_probe:
        summary_blocks.append(Paragraph(f"Encoder probe{f' ({names[-1]})' if multi else ''}: "
                                        f"{head_probe[0].lower()}{head_probe[1:]}"))
    if multi:
        summary_blocks.append(Paragraph(f"The numbers above are for {names[-1]}, the last audit. All audits:"))
        summary_blocks.append(_audits_table(audits, names))

    sections: list[Section] = []
    if multi:
        sections.append(_comparison_section(audits, names, colors))
    details: list[Section] = []
    for audit, name, suffix in zip(audits, names, suffixes):
        *analysis, detail = _audit_sections(audit, name if multi else "", suffix, colors)
        sections.extend(analysis)
        details.append(detail)
    if metrics is not None:
        sections.append(_training_section(metrics, colors))
    sections.extend(details)

    subject = f"{head.model} on {head.data}" + (f" [{head.split}]" if head.split else "")
    subtitle = f"{subject} · {head.n_samples} samples · estimator {summary.method}"
    if multi:
        subtitle = f"{len(audits)} audits, headline: {names[-1]} · " + subtitle
    return ReportDocument(
        title=title or "Modality balance report",
        subtitle=subtitle,
        verdict=summary.verdict,
        balanced=summary.balanced,
        cards=_cards(head, summary),
        summary_blocks=summary_blocks,
        sections=sections,
        footer=(f"Generated by mmbalance {__version__} from the audit JSON"
                f"{' and training metrics' if metrics else ''} alone; "
                f"re-render with `mmbalance report`."),
        summary=summary,
    )


def _unique_slugs(names: Sequence[str]) -> list[str]:
    out: list[str] = []
    for i, name in enumerate(names):
        s = slug(name)
        out.append(s if s not in out else f"{s}-{i + 1}")
    return out


def _cards(audit: AuditResult, summary: Summary) -> list[Card]:
    dom = summary.dominant or "—"
    share = audit.shares.get(summary.dominant) if summary.dominant else None
    # a balanced (or inconclusive) model has a largest share but no dominant modality
    title = "dominant modality" if summary.status == "dominant" else "largest share"
    return [
        Card(title, dom, f"{pct(share, 0)} of the attribution ({summary.method})"),
        Card("accuracy", pct(summary.accuracy), f"top-1 on {summary.n_samples} samples"),
        Card("max share", pct(summary.max_share), f"equal would be {pct(1 / max(len(audit.shares), 1), 0)}"),
        Card("share variance", num(summary.share_variance, 4), "0 = equal shares"),
        Card("entropy", num(summary.entropy), "1 = balanced, 0 = one modality"),
    ]


def _audits_table(audits: Sequence[AuditResult], names: Sequence[str]) -> Table:
    models = len({a.model for a in audits}) > 1
    rows = []
    for audit, name in zip(audits, names):
        s = summarize(audit)
        rows.append([name] + ([audit.model] if models else []) +
                    [pct(s.accuracy), s.dominant or "—", pct(s.max_share), num(s.entropy),
                     "yes" if s.balanced else "no"])
    heads = ["audit"] + (["model"] if models else []) + ["accuracy", "dominant", "max share", "entropy", "balanced"]
    return Table(heads, rows, [False] + ([False] if models else []) + [True, False, True, True, False])


def _comparison_section(audits: Sequence[AuditResult], names: Sequence[str],
                        colors: Mapping[str, str]) -> Section:
    first, last = audits[0], audits[-1]
    comp = compare_audits(first, last, before_label=names[0], after_label=names[-1])
    title = "Before → after" if len(audits) == 2 else "Comparison"
    if list(names) != ["before", "after"]:
        title += f": {names[0]} → {names[-1]}"
    blocks: list[Block] = [Paragraph(_comparison_sentence(comp, first, last))]
    blocks.append(Plot("comparison", "Modality shares and key figures per audit",
                       "Each audit's primary-estimator shares, then accuracy, largest share and entropy.",
                       plots.plot_comparison(audits, names, colors=colors)))
    blocks.append(comparison_table(comp))
    for note in comp.notes:
        blocks.append(Paragraph(note, kind="note"))
    return Section("comparison", title, blocks, short=title.split(":")[0])


def _comparison_sentence(comp: AuditComparison, first: AuditResult, last: AuditResult) -> str:
    parts = [f"{comp.before_label} — {summarize(first).verdict}; {comp.after_label} — {summarize(last).verdict}."]
    d = comp.accuracy.delta
    if d is not None:
        parts.append(f"Accuracy {pct(comp.accuracy.before)} → {pct(comp.accuracy.after)} ({pp(d)}).")
    return " ".join(parts)


def comparison_table(comp: AuditComparison) -> Table:
    """Rows of before / after / change: shares per common method and modality, accuracy, imbalance figures.

    Example:
        >>> comparison_table(compare_audits(a, b)).headers  # doctest: +SKIP
        ['figure', 'before', 'after', 'change']
    """
    rows: list[list[str]] = []
    for method in comp.methods:
        for mod, d in comp.shares[method].items():
            rows.append([f"{mod} share ({method})", pct(d.before), pct(d.after), pp(d.delta)])
    rows.append(["accuracy", pct(comp.accuracy.before), pct(comp.accuracy.after), pp(comp.accuracy.delta)])
    imb = comp.imbalance
    rows.append(["max share", pct(imb["max_share"].before), pct(imb["max_share"].after),
                 pp(imb["max_share"].delta)])
    rows.append(["share variance", num(imb["share_variance"].before, 4), num(imb["share_variance"].after, 4),
                 signed(imb["share_variance"].delta, 4)])
    rows.append(["entropy", num(imb["entropy"].before), num(imb["entropy"].after), signed(imb["entropy"].delta)])
    rows.append(["largest share", comp.dominant_before or "—", comp.dominant_after or "—",
                 "changed" if comp.dominance_changed else "same"])
    rows.append(["balanced", "yes" if comp.balanced_before else "no", "yes" if comp.balanced_after else "no", ""])
    return Table(["figure", comp.before_label, comp.after_label, "change"], rows, [False, True, True, True])


_COLUMN_NAMES = {"train_accuracy": "train acc.", "val_accuracy": "val. acc.", "train_loss": "train loss",
                 "val_loss": "val. loss", "val_penalty": "val. penalty", "lambda": "λ"}


def _training_section(metrics: TrainingMetrics, colors: Mapping[str, str]) -> Section:
    blocks: list[Block] = []
    best = metrics.best_epoch()
    facts = [f"{len(metrics.epochs)} epochs"]
    if best:
        facts.append(f"best validation accuracy {pct(best[1])} at epoch {best[0]}")
    final = {m: metrics.last(SHARE_PREFIX + m) for m in metrics.share_modalities}
    if final:
        facts.append("final shares " + ", ".join(f"{m} {pct(v, 0)}" for m, v in final.items()))
    blocks.append(Paragraph("; ".join(facts) + "."))
    blocks.append(Plot("training", "Training curves", "Accuracy, loss, regularizer and shares per epoch, "
                       f"from {metrics.path}.", training_plots.plot_training(metrics, colors=colors)))
    cols = [c for c in ("train_accuracy", "val_accuracy", "train_loss", "val_loss", "penalty", "val_penalty",
                        "lambda") if metrics.has(c)] + [SHARE_PREFIX + m for m in metrics.share_modalities]
    rows = []
    for i, epoch in enumerate(metrics.epochs):
        row = [str(epoch)]
        for c in cols:
            v = metrics.columns[c][i]
            row.append(pct(v) if c.endswith("accuracy") or c.startswith(SHARE_PREFIX) else cell(v))
        rows.append(row)
    if len(rows) > 12:
        rows = rows[:5] + [["…"] + ["" for _ in cols]] + rows[-5:]
    heads = [_COLUMN_NAMES.get(c, f"{c[len(SHARE_PREFIX):]} share" if c.startswith(SHARE_PREFIX) else c)
             for c in cols]
    blocks.append(Table(["epoch"] + heads, rows, [True] * (len(cols) + 1)))
    return Section("training", "Training", blocks)


def _audit_sections(audit: AuditResult, name: str, suffix: str, colors: Mapping[str, str]) -> list[Section]:
    tag = f" — {name}" if name else ""
    key = f"-{suffix}" if suffix else ""
    sections: list[Section] = []
    methods = plots.method_order(audit)

    def nav(word: str) -> str:
        return f"{name}: {word}" if name else ""

    blocks: list[Block] = []
    if name:
        blocks.append(Paragraph(f"{name}: {summarize(audit).verdict} (primary estimator {audit.primary.name})."))
    blocks.append(Plot(f"shares{key}", f"Modality shares per estimator{tag}",
                       "Mean per-sample share of the attribution per modality; whiskers: 95% interval "
                       "when the audit computed one; dashed: equal shares.",
                       plots.plot_shares(audit, colors=colors)))
    blocks.append(shares_table(audit, methods))
    blocks += [Paragraph(f"Warning: {w.get('message', w)}") for w in audit.warnings]  # see mmbalance.guards
    sections.append(Section(f"shares{key}", f"Modality shares{tag}", blocks, short=nav("shares")))

    fig = plots.plot_per_class(audit, colors=colors)
    if fig is not None:
        sections.append(Section(f"per-class{key}", f"Shares per class{tag}", [
            Plot(f"per-class{key}", f"Shares per class{tag}",
                 f"Primary estimator ({audit.primary.name}); samples grouped by true label.", fig),
            per_class_table(audit)], short=nav("per class")))

    fig = plots.plot_share_distribution(audit, colors=colors)
    if fig is not None:
        sections.append(Section(f"distribution{key}", f"Per-sample shares{tag}", [
            Plot(f"share-distribution{key}", f"Distribution of per-sample shares{tag}",
                 "How the share of each modality varies from sample to sample; dashed: dataset mean.", fig)],
            short=nav("per sample")))

    if len(methods) >= 2:
        blocks = [Paragraph(_agreement_sentence(audit, methods))]
        fig = plots.plot_agreement(audit, colors=colors)
        if fig is not None:
            blocks.append(Plot(f"agreement{key}", f"Estimator agreement{tag}",
                               "One marker per estimator; band: range across estimators.", fig))
        table = agreement_table(audit)
        if table is not None:
            blocks.append(table)
        sections.append(Section(f"agreement{key}", f"Estimator agreement{tag}", blocks, short=nav("agreement")))

    rows = probe_rows(audit)
    if rows:
        sections.append(Section(f"probe{key}", f"Encoder probe{tag}", probe_blocks(rows), short=nav("probe")))

    # the details section must stay last: assemble_report moves it to the end of the report
    sections.append(Section(f"details{key}", f"Audit details{tag}", [details_table(audit)], short=nav("details")))
    return sections


# -- encoder probe (audit --probe) ------------------------------------------------------
@dataclass(frozen=True)
class ProbeRow:
    """One modality of an audit's encoder probe (``extra.probe``); ``None`` where the JSON has no number."""

    modality: str
    accuracy: float | None
    unimodal_accuracy: float | None
    gap: float | None


def probe_rows(audit: AuditResult) -> list[ProbeRow]:
    """The encoder probe of ``audit --probe`` per modality, in the JSON's order; ``[]`` without one.

    Entries that are not objects, or carry none of ``accuracy``, ``unimodal_accuracy`` and
    ``gap`` as a finite number, are skipped; every number is read from the JSON as it is.

    Example:
        >>> row = {"accuracy": 0.41, "unimodal_accuracy": 0.483, "gap": -0.073}
        >>> r = AuditResult(model="m", data="d", n_samples=8, modalities=["visual"], accuracy=0.9,
        ...                 methods={}, extra={"probe": {"visual": row}})
        >>> probe_rows(r)
        [ProbeRow(modality='visual', accuracy=0.41, unimodal_accuracy=0.483, gap=-0.073)]
    """
    probe = audit.extra.get("probe") if isinstance(audit.extra, Mapping) else None
    if not isinstance(probe, Mapping):
        return []
    rows = []
    for modality, entry in probe.items():
        if not isinstance(entry, Mapping):
            continue
        values = [_number(entry.get(k)) for k in ("accuracy", "unimodal_accuracy", "gap")]
        if any(v is not None for v in values):
            rows.append(ProbeRow(str(modality), *values))
    return rows


def probe_sentence(rows: Sequence[ProbeRow]) -> str:
    """One sentence naming the weakest encoder ("" without rows).

    With unimodal runs, the weakest is the encoder furthest below its unimodal counterpart
    (smallest gap); without, the one with the lowest probe accuracy.

    Example:
        >>> probe_sentence([ProbeRow("visual", 0.41, 0.483, -0.073)])
        'The visual encoder is 7.3 points below its unimodal counterpart (41.0% against 48.3%).'
    """
    compared = [r for r in rows if r.gap is not None]
    if compared:
        weak = min(compared, key=lambda r: r.gap if r.gap is not None else 0.0)
        gap = weak.gap if weak.gap is not None else 0.0
        points = f"{abs(gap) * 100:.1f} points"
        against = f"({pct(weak.accuracy)} against {pct(weak.unimodal_accuracy)})"
        if gap < 0:
            tail = f", the largest shortfall of the {len(compared)} encoders compared" if len(compared) > 1 else ""
            return f"The {weak.modality} encoder is {points} below its unimodal counterpart {against}{tail}."
        if len(compared) > 1:
            return (f"No encoder reads below its unimodal counterpart; the closest is the {weak.modality} encoder, "
                    f"{points} above it {against}.")
        return f"The {weak.modality} encoder is {points} above its unimodal counterpart {against}."
    read = [r for r in rows if r.accuracy is not None]
    if not read:
        return ""
    weak = min(read, key=lambda r: r.accuracy if r.accuracy is not None else 0.0)
    others = ", ".join(f"{r.modality} {pct(r.accuracy)}" for r in read if r is not weak)
    text = f"The {weak.modality} encoder reads lowest: {pct(weak.accuracy)} probe accuracy (against {others})" \
        if others else f"The {weak.modality} encoder reads {pct(weak.accuracy)} probe accuracy"
    return text + "; no unimodal run was given to compare with (`--probe-unimodal`)."


def probe_blocks(rows: Sequence[ProbeRow]) -> list[Block]:
    """The probe section's content: what was measured, the sentence, and a table per modality.

    Example:
        >>> [type(b).__name__ for b in probe_blocks([ProbeRow("visual", 0.41, 0.483, -0.073)])]
        ['Paragraph', 'Table', 'Paragraph']
    """
    blocks: list[Block] = []
    sentence = probe_sentence(rows)
    if sentence:
        blocks.append(Paragraph(sentence))
    blocks.append(probe_table(rows))
    blocks.append(Paragraph("A linear probe (multinomial logistic regression) on each modality's frozen embedding, "
                            "fitted on the training split and scored on the audited split: how much each encoder "
                            "learnt, whatever the fusion makes of it. Gap: this model's encoder minus the unimodal "
                            "run's, in percentage points (`mmbalance audit --probe --probe-unimodal`).", kind="note"))
    return blocks


def probe_table(rows: Sequence[ProbeRow]) -> Table:
    """Modality, probe accuracy and, when any unimodal run was probed, its accuracy and the gap.

    Example:
        >>> probe_table([ProbeRow("visual", 0.41, 0.483, -0.073)]).rows
        [['visual', '41.0%', '48.3%', '−7.3 pp']]
    """
    unimodal = any(r.unimodal_accuracy is not None or r.gap is not None for r in rows)
    heads = ["modality", "probe accuracy"] + (["unimodal probe accuracy", "gap"] if unimodal else [])
    body = [[r.modality, pct(r.accuracy)] + ([pct(r.unimodal_accuracy), pp(r.gap)] if unimodal else [])
            for r in rows]
    return Table(heads, body, [False] + [True] * (len(heads) - 1))


def _number(value: Any) -> float | None:
    return float(value) if _finite(value) else None


def shares_table(audit: AuditResult, methods: Sequence[str] | None = None) -> Table:
    """Modality × estimator shares, with ``[low–high]`` 95% intervals when known."""
    methods = list(methods or audit.methods)
    rows = []
    for mod in audit.modalities:
        row = [mod]
        for name in methods:
            m = audit.methods[name]
            text = pct(m.shares.get(mod))
            ci = plots.ci_bounds(m, mod)
            if ci:
                text += f" [{ci[0] * 100:.1f}–{ci[1] * 100:.1f}]"
            row.append(text)
        rows.append(row)
    heads = ["modality"] + [f"{n} ({audit.methods[n].level})" if audit.methods[n].level != "input" else n
                            for n in methods]
    return Table(heads, rows, [False] + [True] * len(methods))


def per_class_table(audit: AuditResult) -> Table:
    """Class, samples, accuracy and primary-estimator shares per modality."""
    m = audit.primary
    order = [c for c in audit.classes if c in m.per_class] + [c for c in m.per_class if c not in audit.classes]
    rows = []
    for c in order:
        entry = m.per_class[c] if isinstance(m.per_class[c], Mapping) else {}
        shares = entry.get("shares") or {}
        rows.append([c, cell(entry.get("n")), pct(audit.per_class_accuracy.get(c))] +
                    [pct(shares.get(mod)) for mod in audit.modalities])
    return Table(["class", "n", "accuracy"] + list(audit.modalities), rows,
                 [False, True, True] + [True] * len(audit.modalities))


def _agreement_sentence(audit: AuditResult, methods: Sequence[str]) -> str:
    doms = {name: _dominant(audit.methods[name].shares) for name in methods}
    distinct = set(doms.values())
    if len(distinct) == 1:
        return f"All {len(methods)} estimators name {next(iter(distinct))} as the dominant modality."
    return "The estimators disagree on the dominant modality: " + \
        ", ".join(f"{n} → {d}" for n, d in doms.items()) + "."


def _dominant(shares: Mapping[str, float]) -> str:
    """The modality with the largest share (``"—"`` when none)."""
    finite = {k: v for k, v in shares.items() if _finite(v)}
    return max(finite, key=lambda k: finite[k]) if finite else "—"


def agreement_table(audit: AuditResult) -> Table | None:
    """``audit.extra.agreement.pairwise`` as a table (one row per estimator pair), or ``None``."""
    agreement = audit.extra.get("agreement")
    if not isinstance(agreement, Mapping):
        return None
    pairwise = agreement.get("pairwise")
    if not isinstance(pairwise, Mapping) or not pairwise:
        return None
    keys: list[str] = []
    for value in pairwise.values():
        if isinstance(value, Mapping):
            keys += [k for k in value if k not in keys]
    rows = []
    for pair, value in pairwise.items():
        label = " vs ".join(str(pair).split("|"))
        value = value if isinstance(value, Mapping) else {}
        rows.append([label] + [cell(value.get(k)) for k in keys])
    others = [f"{k}: {cell(v)}" for k, v in agreement.items() if k != "pairwise"]
    return Table(["estimators"] + [k.replace("_", " ") for k in keys], rows, [False] + [True] * len(keys),
                 caption="; ".join(others))


def details_table(audit: AuditResult) -> Table:
    """Where the numbers come from: model, data, estimator settings, versions."""
    rows = [
        ["model", audit.model + (f" ({cell(audit.model_args)})" if audit.model_args else "")],
        ["checkpoint", audit.checkpoint or "—"],
        ["data", audit.data + (f" [{audit.split}]" if audit.split else "")],
        ["samples", str(audit.n_samples)],
        ["modalities", ", ".join(audit.modalities)],
        ["classes", cell(", ".join(audit.classes)) if audit.classes else "—"],
        ["attribution target", audit.target],
        ["primary estimator", audit.primary.name if audit.methods else "—"],
    ]
    for name, m in audit.methods.items():
        rows.append([f"{name} settings", cell(m.params) if m.params else "—"])
        for k, v in m.extra.items():
            if k != "share_histogram":
                rows.append([f"{name} {k.replace('_', ' ')}", cell(v)])
    rows += [["device", audit.device], ["seconds", cell(float(audit.seconds))], ["created", audit.created or "—"],
             ["mmbalance", audit.mmbalance_version]]
    return Table(["field", "value"], rows, [False, False])
