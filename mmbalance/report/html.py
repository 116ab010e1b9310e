"""Render a :class:`~mmbalance.report.content.ReportDocument` as one self-contained HTML page.

Images are embedded as ``data:`` URIs; the only CSS is inline; there is no script,
no web font and no external link. A Content-Security-Policy ``<meta>`` tells the
browser to load nothing but inline styles and ``data:`` images, so the page looks the
same offline, attached to an e-mail or opened from a CI artifact. The layout is a
single centred column (max 960 px) with full-width images and horizontally
scrollable tables, so it reads on a phone too. Every piece of text is escaped.

Example:
    >>> page = render_html(doc, {"shares": ("image/png", png_bytes)})  # doctest: +SKIP
    >>> page.startswith("<!doctype html>")  # doctest: +SKIP
    True
"""

from __future__ import annotations

import base64
import html
import re
from typing import Mapping

from .content import Block, Heading, Paragraph, Plot, ReportDocument, Table

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d8dee4; --bg: #f4f6f8; --card: #ffffff;
        --bad-bg: #fdecea; --bad: #b3261e; --good-bg: #e7f5ea; --good: #1a7f37; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--fg); line-height: 1.5;
       font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 960px; margin: 0 auto; padding: 20px 16px 40px; }
h1 { font-size: 1.7rem; line-height: 1.2; margin: 0.2em 0 0.1em; }
h2 { font-size: 1.3rem; line-height: 1.25; margin: 0 0 0.6em; }
h3 { font-size: 1.05rem; margin: 1.2em 0 0.4em; }
.subtitle { color: var(--muted); margin: 0 0 1rem; overflow-wrap: anywhere; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 12px;
          padding: 18px 20px; margin: 16px 0; }
.verdict { font-size: 1.4rem; font-weight: 700; line-height: 1.3; margin: 0 0 14px;
           padding: 12px 16px; border-radius: 8px; border-left: 6px solid; }
.verdict.dominated { background: var(--bad-bg); border-color: var(--bad); color: #7a1712; }
.verdict.balanced { background: var(--good-bg); border-color: var(--good); color: #0f5323; }
.verdict.inconclusive { background: #fff4d6; border-color: #b7791f; color: #5c3d00; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.card .label { font-size: 0.78rem; text-transform: uppercase; letter-spacing: 0.04em; color: var(--muted); }
.card .value { font-size: 1.6rem; font-weight: 700; line-height: 1.2; overflow-wrap: anywhere; }
.card .hint { font-size: 0.82rem; color: var(--muted); }
nav.toc { margin: 12px 0 0; font-size: 0.9rem; }
nav.toc a { color: #0b57d0; text-decoration: none; margin-right: 14px; display: inline-block; }
figure { margin: 14px 0; padding: 8px 0; border: 1px solid var(--line); border-radius: 8px; }
figure img { display: block; width: 100%; max-width: 680px; height: auto; margin: 0 auto; }
figcaption { font-size: 0.85rem; color: var(--muted); margin: 6px 10px 0; }
.table-wrap { overflow-x: auto; -webkit-overflow-scrolling: touch; margin: 10px 0; }
table { border-collapse: collapse; width: 100%; font-size: 0.92rem; }
caption { caption-side: bottom; text-align: left; font-size: 0.82rem; color: var(--muted); padding-top: 4px; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
p.note { font-size: 0.85rem; color: var(--muted); }
code { font: 0.9em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #eef1f4;
       padding: 1px 4px; border-radius: 4px; }
footer { color: var(--muted); font-size: 0.85rem; margin-top: 24px; }
@media (max-width: 600px) {
  main { padding: 12px 8px 32px; }
  section { padding: 12px 10px; border-radius: 10px; }
  h1 { font-size: 1.35rem; }
  h2 { font-size: 1.15rem; }
  .verdict { font-size: 1.15rem; padding: 10px 12px; }
  .cards { grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 8px; }
  .card:first-child { grid-column: 1 / -1; }
  .card .value { font-size: 1.3rem; }
  table { font-size: 0.85rem; }
  nav.toc { font-size: 0.85rem; }
  nav.toc a { margin-right: 10px; }
  figure { padding: 4px 0; }
  th, td { padding: 5px 6px; }
}
@media print { body { background: #fff; } section { break-inside: avoid; border: none; } nav.toc { display: none; } }
""".strip()


def render_html(doc: ReportDocument, images: Mapping[str, tuple[str, bytes]]) -> str:
    """The page as a string; ``images`` maps each plot key to ``(mime type, bytes)``.

    Plots whose key is missing from ``images`` are left out.

    Example:
        >>> html_text = render_html(doc, {p.key: ("image/png", b"...") for p in doc.plots()})  # doctest: +SKIP
    """
    e = _esc
    state = "inconclusive" if doc.status == "inconclusive" else ("balanced" if doc.balanced else "dominated")
    parts = [
        "<!doctype html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{e(CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light">',
        '<meta name="generator" content="mmbalance">',
        f"<title>{e(doc.title)} — {e(doc.summary.verdict)}</title>",
        f"<style>\n{CSS}\n</style>",
        "</head>",
        "<body>",
        "<main>",
        "<header>",
        f"<h1>{e(doc.title)}</h1>",
        f'<p class="subtitle">{e(doc.subtitle)}</p>',
        "</header>",
        '<section id="summary" aria-label="summary">',
        f'<p class="verdict {state}">{e(doc.verdict)}</p>',
        '<div class="cards">',
    ]
    for card in doc.cards:
        parts.append(f'<div class="card"><div class="label">{e(card.label)}</div>'
                     f'<div class="value">{e(card.value)}</div><div class="hint">{e(card.hint)}</div></div>')
    parts.append("</div>")
    parts.extend(_block(b, images) for b in doc.summary_blocks)
    if doc.sections:
        links = " ".join(f'<a href="#{e(s.id)}">{e(s.nav)}</a>' for s in doc.sections)
        parts.append(f'<nav class="toc" aria-label="contents">{links}</nav>')
    parts.append("</section>")
    for section in doc.sections:
        parts.append(f'<section id="{e(section.id)}">')
        parts.append(f"<h2>{e(section.title)}</h2>")
        parts.extend(_block(b, images) for b in section.blocks)
        parts.append("</section>")
    parts += [f"<footer><p>{_inline(doc.footer)}</p></footer>", "</main>", "</body>", "</html>", ""]
    return "\n".join(p for p in parts if p)


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _inline(text: str) -> str:
    """Escape, then turn `code` spans into <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _esc(text))


def _block(block: Block, images: Mapping[str, tuple[str, bytes]]) -> str:
    e = _esc
    if isinstance(block, Heading):
        return f"<h3>{e(block.text)}</h3>"
    if isinstance(block, Paragraph):
        cls = ' class="note"' if block.kind == "note" else ""
        return f"<p{cls}>{_inline(block.text)}</p>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Plot):
        if block.key not in images:
            return ""
        mime, data = images[block.key]
        size = _png_size(data) if mime == "image/png" else None
        dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
        src = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        return (f'<figure><img src="{src}" alt="{e(block.title)}"{dims} decoding="sync">'
                f"<figcaption>{_inline(block.caption)}</figcaption></figure>")
    raise TypeError(f"unknown block {type(block).__name__}")


def _table(table: Table) -> str:
    e = _esc
    numeric = list(table.numeric) + [False] * (len(table.headers) - len(table.numeric))

    def cls(i: int) -> str:
        return ' class="num"' if i < len(numeric) and numeric[i] else ""

    head = "".join(f'<th scope="col"{cls(i)}>{e(h)}</th>' for i, h in enumerate(table.headers))
    rows = "".join("<tr>" + "".join(f"<td{cls(i)}>{e(c)}</td>" for i, c in enumerate(row)) + "</tr>"
                   for row in table.rows)
    caption = f"<caption>{e(table.caption)}</caption>" if table.caption else ""
    return f'<div class="table-wrap"><table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'


def _png_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
