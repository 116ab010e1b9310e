"""Rendering a bench document (``bench.json``): the Markdown table and the HTML report section.

Example:
    >>> import json
    >>> doc = json.loads(open("bench/avd/bench.json").read())  # doctest: +SKIP
    >>> print(bench_markdown(doc))  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any, Mapping

from ..errors import UsageError
from ..io import atomic_write_text
from .robustness import robustness_markdown
from .summary import BENCH_SCHEMA, bench_verdict, measure_label

__all__ = ["bench_markdown", "bench_scatter", "bench_table", "is_bench_file", "load_bench", "render_bench",
           "write_bench_html"]


def load_bench(path: str | Path) -> dict[str, Any]:
    """Read a ``bench.json``; :class:`UsageError` when it is not one."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read bench file {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(doc, dict) or doc.get("schema") != BENCH_SCHEMA or not isinstance(doc.get("table"), dict):
        raise UsageError(f"{path} is not a bench file (schema {BENCH_SCHEMA})", hint="give the bench.json of "
                         "`mmbalance bench`")
    return doc


def is_bench_file(path: str | Path) -> bool:
    """Whether ``path`` is a readable ``bench.json`` (schema ``mmbalance.bench/1``)."""
    try:
        load_bench(path)
    except UsageError:
        return False
    return True


def render_bench(path: str | Path, out_dir: str | Path) -> list[Path]:
    """Re-render a ``bench.json`` into ``out_dir/index.html`` and ``out_dir/bench.md`` (``mmbalance report``).

    Example:
        >>> render_bench("bench/avd/bench.json", "bench/avd/report")  # doctest: +SKIP
        [PosixPath('bench/avd/report/index.html'), PosixPath('bench/avd/report/bench.md')]
    """
    doc = load_bench(path)
    html_path = write_bench_html(doc, out_dir)
    md_path = Path(out_dir) / "bench.md"
    atomic_write_text(md_path, bench_markdown(doc))
    return [html_path, md_path]

_HEADERS = ["Method", "Seeds", "Test accuracy", "Δ best unimodal (per seed)", "Δ plain (per seed)", "Shares",
            "Share variance", "Variance cut vs plain", "Step time vs plain"]


def _f(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) and math.isfinite(value) else "—"


def _accuracy(row: Mapping[str, Any]) -> str:
    """Mean ± standard deviation over seeds; one seed has no spread, so the mean alone."""
    if row.get("n", 1) < 2:
        return _f(row["accuracy_mean"], ".1%")
    return f"{_f(row['accuracy_mean'], '.1%')} ± {_f(row['accuracy_std'] * 100, '.1f')} pts"


def _cut(row: Mapping[str, Any]) -> str:
    """The variance cut in percent; ``n/a`` where it means nothing (unimodal rows, no plain run)."""
    value = row.get("variance_cut")
    return _f(value, ".0%") if value is not None else "n/a"


def _deltas(values: list[Any]) -> str:
    return ", ".join(_f(v * 100, "+.1f") if v is not None else "—" for v in values) + " pts" \
        if any(v is not None for v in values) else "—"


def bench_table(doc: Mapping[str, Any]) -> list[list[str]]:
    """The table rows (strings) of a bench document, one per method run, in run order."""
    rows = []
    for name, row in doc["table"].items():
        shares = ", ".join(f"{m} {_f(v, '.0%')}" for m, v in row["shares"].items())
        rows.append([name, str(row["n"]),
                     _accuracy(row),
                     _deltas(row["delta_best_unimodal"]), _deltas(row["delta_plain"]), shares,
                     _f(row["share_variance"], ".4f"), _cut(row),
                     _f(row["relative_time"], ".2f") + ("×" if row["relative_time"] is not None else "")])
    return rows


def bench_markdown(doc: Mapping[str, Any]) -> str:
    """``bench.md``: what was run, the table, and how to read it."""
    lines = [f"# mmbalance bench: {doc['model']} on {doc['data']}", "",
             f"{len(doc['seeds'])} seed(s) ({', '.join(map(str, doc['seeds']))}), {doc['epochs']} epochs per run, "
             f"accuracy and input-level {measure_label(doc)} shares on the `{doc['test_split']}` split (best-validation "
             "checkpoint of each run).", "",
             "| " + " | ".join(_HEADERS) + " |", "|" + "|".join("---" for _ in _HEADERS) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in bench_table(doc)]
    lines += ["", f"**Verdict:** {bench_verdict(doc['table'])}."]
    lines += ["", "Share variance: the population variance of a model's modality shares across modalities "
              "(0 = perfectly balanced; 0.25 = one of two modalities takes everything). Variance cut: "
              "1 − variance / plain's variance (n/a for unimodal models, whose one share has no variance). Step time: the median time of an epoch's training steps (validation "
              "excluded; every method runs the same steps per epoch) relative to plain's; the ensemble's is the sum "
              "of its members'. Δ columns: this method's test "
              "accuracy minus the best unimodal model's and minus plain's, seed by seed, in percentage points (pts).",
              ""]
    return "\n".join(lines) + robustness_markdown(doc)


def bench_scatter(doc: Mapping[str, Any]) -> bytes:
    """PNG: test accuracy against share variance, one point per method and seed."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from matplotlib.ticker import PercentFormatter

    from ..report._plot_style import PALETTE, WIDTH, figure_bytes

    fig = Figure(figsize=(WIDTH, WIDTH * 0.7))
    ax = fig.add_subplot()
    names = list(doc["table"])
    cmap = matplotlib.colormaps["tab20"]  # past the report's Okabe-Ito palette
    for i, name in enumerate(names):
        recs = [r for r in doc["records"] if r["run"] == name]
        ax.scatter([r["share_variance"] for r in recs], [r["test_accuracy"] for r in recs], label=name,
                   color=PALETTE[i] if i < len(PALETTE) else cmap((i - len(PALETTE)) % 20), marker="os^Dv<>"[i % 7], alpha=0.85)
    ax.set_xlabel("share variance (0 = balanced)")
    ax.set_ylabel(f"test accuracy ({doc['test_split']})")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.legend(fontsize="small", loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return figure_bytes(fig, "png")


def write_bench_html(doc: Mapping[str, Any], folder: str | Path) -> Path:
    """Write ``folder/index.html``: the bench section (table and scatter) as a self-contained page."""
    from ..report.html import CSP, CSS
    e = html.escape
    png = base64.b64encode(bench_scatter(doc)).decode()
    head = "".join(f"<th>{e(h)}</th>" for h in _HEADERS)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>" for cells in bench_table(doc))
    title = f"mmbalance bench: {doc['model']} on {doc['data']}"
    page = "\n".join([
        "<!doctype html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{e(CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">', f"<title>{e(title)}</title>",
        f"<style>\n{CSS}\n</style>", "</head>", "<body>", "<main>", f"<header><h1>{e(title)}</h1>",
        f'<p class="subtitle">{len(doc["seeds"])} seed(s), {doc["epochs"]} epochs per run, '
        f'test split {e(doc["test_split"])}, input-level {e(measure_label(doc))} shares</p></header>',
        '<section id="bench"><h2>Methods compared</h2>',
        f'<p class="verdict"><strong>Verdict:</strong> {e(bench_verdict(doc["table"]))}.</p>',
        f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>',
        f'<figure><img src="data:image/png;base64,{png}" alt="test accuracy against share variance, one point '
        'per method and seed"><figcaption>Accuracy against share variance: one point per method and seed; '
        'up and to the left is better.</figcaption></figure>', "</section>", "</main>", "</body>", "</html>", ""])
    path = Path(folder) / "index.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, page)
    return path
