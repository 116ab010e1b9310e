"""Render a :class:`~mmbalance.report.content.ReportDocument` as GitHub-flavoured Markdown.

Meant for pull-request comments and READMEs: images are referenced as files next to
``report.md`` (``![...](shares.png)``), tables are pipe tables, and user-supplied text
(model names, class names) is escaped so it cannot break the layout.

Example:
    >>> text = render_markdown(doc, {"shares": "shares.png"})  # doctest: +SKIP
    >>> text.splitlines()[0]  # doctest: +SKIP
    '# Modality balance report'
"""

from __future__ import annotations

import re
from typing import Mapping

from .content import Block, Heading, Paragraph, Plot, ReportDocument, Table

_SPECIAL = re.compile(r"([\\*_\[\]<>|#])")


def escape(text: object) -> str:
    """Escape Markdown syntax in plain text (backticks are kept for code spans); newlines become spaces.

    Example:
        >>> escape("a|b *c*")
        'a\\\\|b \\\\*c\\\\*'
    """
    return _SPECIAL.sub(r"\\\1", str(text)).replace("\r", " ").replace("\n", " ")


def render_markdown(doc: ReportDocument, image_files: Mapping[str, str]) -> str:
    """The report as Markdown; ``image_files`` maps each plot key to a file name relative to the ``.md``.

    Plots whose key is missing from ``image_files`` are left out.

    Example:
        >>> md = render_markdown(doc, {p.key: f"{p.key}.png" for p in doc.plots()})  # doctest: +SKIP
    """
    lines = [f"# {escape(doc.title)}", "", f"_{escape(doc.subtitle)}_", ""]
    mark = "❓" if doc.status == "inconclusive" else ("✅" if doc.balanced else "⚠️")
    lines += [f"> {mark} **{escape(doc.verdict)}**", ""]
    lines += _table(Table([c.label for c in doc.cards], [[c.value for c in doc.cards]],
                          [True] * len(doc.cards)))
    hints = [f"{c.label}: {c.hint}" for c in doc.cards if c.hint]
    if hints:
        lines += ["", "<sub>" + escape(" · ".join(hints)) + "</sub>"]
    for block in doc.summary_blocks:
        lines += [""] + _block(block, image_files)
    for section in doc.sections:
        lines += ["", f"## {escape(section.title)}"]
        for block in section.blocks:
            out = _block(block, image_files)
            if out:
                lines += [""] + out
    lines += ["", "---", "", f"<sub>{escape(doc.footer)}</sub>", ""]
    return "\n".join(lines)


def _block(block: Block, image_files: Mapping[str, str]) -> list[str]:
    if isinstance(block, Heading):
        return [f"### {escape(block.text)}"]
    if isinstance(block, Paragraph):
        return [f"_{escape(block.text)}_" if block.kind == "note" else escape(block.text)]
    if isinstance(block, Table):
        out = _table(block)
        if block.caption:
            out += ["", f"_{escape(block.caption)}_"]
        return out
    if isinstance(block, Plot):
        name = image_files.get(block.key)
        if not name:
            return []
        return [f"![{escape(block.title)}]({name})", "", f"_{escape(block.caption)}_"]
    raise TypeError(f"unknown block {type(block).__name__}")


def _table(table: Table) -> list[str]:
    numeric = list(table.numeric) + [False] * (len(table.headers) - len(table.numeric))
    head = "| " + " | ".join(escape(h) for h in table.headers) + " |"
    rule = "|" + "|".join("---:" if n else ":---" for n in numeric[: len(table.headers)]) + "|"
    rows = ["| " + " | ".join(escape(c) for c in row) + " |" for row in table.rows]
    return [head, rule] + rows
