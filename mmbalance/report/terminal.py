"""Terminal rendering of comparisons and reports with rich (used by ``mmbalance compare`` / ``report``).

Changes are coloured by whether they move towards balance: green when a share moves
towards the equal share, the largest share or the share variance falls, or entropy
or accuracy rises; red for the opposite.

Example:
    >>> from rich.console import Console
    >>> Console().print(comparison_table(compare_audits(before, after)))  # doctest: +SKIP
"""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from .compare import AuditComparison, Delta
from .content import num, pct, pp, signed


def _style(better: bool | None) -> str:
    return "" if better is None else ("green" if better else "red")


def _towards(d: Delta, target: float) -> bool | None:
    if d.before is None or d.after is None or d.before == d.after:
        return None
    return abs(d.after - target) < abs(d.before - target)


def _direction(d: Delta, up_is_better: bool) -> bool | None:
    if d.delta is None or d.delta == 0:
        return None
    return (d.delta > 0) == up_is_better


def comparison_table(comp: AuditComparison) -> Table:
    """A rich table: one row per share (method × modality), then accuracy and imbalance figures.

    Example:
        >>> table = comparison_table(compare_audits(before, after))  # doctest: +SKIP
    """
    table = Table(title=escape(f"{comp.before_label} → {comp.after_label}"), title_justify="left")
    table.add_column("figure", style="bold")
    table.add_column(escape(comp.before_label), justify="right")
    table.add_column(escape(comp.after_label), justify="right")
    table.add_column("change", justify="right")
    equal = 1 / len(comp.modalities) if comp.modalities else 0.0
    for method in comp.methods:
        for mod, d in comp.shares[method].items():
            table.add_row(escape(f"{mod} share ({method})"), pct(d.before), pct(d.after),
                          _styled(pp(d.delta), _towards(d, equal)))
        table.add_section()
    acc = comp.accuracy
    table.add_row("accuracy", pct(acc.before), pct(acc.after), _styled(pp(acc.delta), _direction(acc, True)))
    imb = comp.imbalance
    table.add_row("max share", pct(imb["max_share"].before), pct(imb["max_share"].after),
                  _styled(pp(imb["max_share"].delta), _direction(imb["max_share"], False)))
    table.add_row("share variance", num(imb["share_variance"].before, 4), num(imb["share_variance"].after, 4),
                  _styled(signed(imb["share_variance"].delta, 4), _direction(imb["share_variance"], False)))
    table.add_row("entropy", num(imb["entropy"].before), num(imb["entropy"].after),
                  _styled(signed(imb["entropy"].delta), _direction(imb["entropy"], True)))
    table.add_row("largest share", escape(comp.dominant_before or "—"), escape(comp.dominant_after or "—"),
                  "changed" if comp.dominance_changed else "same")
    table.add_row("balanced", "yes" if comp.balanced_before else "no", "yes" if comp.balanced_after else "no", "")
    if comp.notes:
        table.caption = escape("\n".join(comp.notes))
        table.caption_justify = "left"
    return table


def _styled(text: str, better: bool | None) -> str:
    style = _style(better)
    return f"[{style}]{text}[/]" if style else text
