"""Terminal tables for audit results (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..results import AuditResult


def audit_table(result: AuditResult) -> Table:
    """One row per modality, one column per estimator, plus the imbalance summary in the caption.

    Example:
        >>> Console().print(audit_table(result))  # doctest: +SKIP
    """
    title = (f"Modality shares — {result.model} on {result.data}"
             f"{f' [{result.split}]' if result.split else ''}, n={result.n_samples}")
    table = Table(title=title, title_justify="left")
    table.add_column("modality", style="bold")
    for name, method in result.methods.items():
        table.add_column(f"{name} ({method.level})", justify="right")
    dom = result.dominant_modality
    if result.verdict["status"] != "dominant":
        dom = None  # no modality is marked dominant when the audit is balanced or the estimators disagree
    for mod in result.modalities:
        cells = []
        for method in result.methods.values():
            share = method.shares.get(mod)
            text = "—" if share is None else f"{share:6.1%}"
            if method.ci95 and mod in method.ci95 and method.ci95[mod]:
                lo, hi = method.ci95[mod]
                text += f" [{lo:.1%}, {hi:.1%}]"
            cells.append(text)
        name = f"{mod} ← dominant" if mod == dom and len(result.modalities) > 1 else mod
        table.add_row(name, *cells)
    imb = result.imbalance
    verdict = result.verdict
    table.caption = (f"verdict: {verdict['message']}\n"
                     f"accuracy {result.accuracy:.1%} · {'dominant' if dom else 'largest share'} "
                     f"{result.dominant_modality} · max share {imb['max_share']:.1%} · "
                     f"share variance {imb['share_variance']:.4f} · entropy {imb['entropy']:.3f}")
    table.caption_justify = "left"
    return table


def input_notes(result: AuditResult) -> list[str]:
    """Lines saying where token ids were attributed and which inputs were passed through.

    Example:
        >>> input_notes(result)  # doctest: +SKIP
        ['text: token ids attributed at emb (pad id 0)', 'passed through, not attributed: attention_mask']
    """
    notes = []
    seen = set()
    for method in result.methods.values():
        for mod, info in (method.params.get("token_ids") or {}).items():
            if mod not in seen and isinstance(info, dict):
                seen.add(mod)
                notes.append(f"{mod}: token ids attributed at {info.get('layer')} (pad id {info.get('pad_id')})")
    passed = result.extra.get("pass_through")
    if passed:
        notes.append(f"passed through, not attributed: {', '.join(passed)}")
    return notes


def print_audit(result: AuditResult, console: Console | None = None) -> None:
    """Print :func:`audit_table` to ``console`` (stdout by default), then :func:`input_notes` and the
    audit's warnings under it."""
    console = console or Console()
    console.print(audit_table(result))
    for line in input_notes(result):
        console.print(line, highlight=False)
    print_warnings(result, console)


def print_warnings(result: AuditResult, console: Console) -> None:
    """One ``warning:`` line per audit warning (see :mod:`mmbalance.guards`)."""
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(str(warning.get('message', warning)))}", highlight=False)
