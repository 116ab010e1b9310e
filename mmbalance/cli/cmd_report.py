"""``mmbalance report`` and ``mmbalance compare``: render audits without the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional, Sequence

import typer
from rich.markup import escape

from ..io import check_output_dir
from ..results import AuditResult
from ._options import JsonOpt, QuietOpt, output_dir
from .app import app, stderr_console, stdout_console


def audit_labels(paths: Sequence[Path]) -> list[str]:
    """Short names for audit files: their stems, or ``parent/stem`` (then ``#i stem``) when stems repeat.

    Example:
        >>> audit_labels([Path("runs/a/audit.json"), Path("runs/b/audit.json")])
        ['a/audit', 'b/audit']
    """
    for make in (lambda i, p: p.stem, lambda i, p: f"{p.parent.name}/{p.stem}", lambda i, p: f"#{i + 1} {p.stem}"):
        labels = [make(i, p) for i, p in enumerate(paths)]
        if len(set(labels)) == len(labels):
            return labels
    return [f"#{i + 1}" for i in range(len(paths))]


@app.command("report")
def report_command(
    audits: Annotated[list[Path], typer.Argument(
        help="Audit JSON files (from [bold]mmbalance audit --out[/]). With two or more, the first is "
             "'before' and the last 'after'. A bench.json of [bold]mmbalance bench[/] renders its comparison.", show_default=False, metavar="AUDIT.json...")],
    out: Annotated[Path, typer.Option("--out", "-o", parser=output_dir, help="Directory for report.html, report.md and images.",
                                      show_default=False, metavar="DIR")],
    metrics: Annotated[Optional[Path], typer.Option(
        "--metrics", help="metrics.csv of a [bold]mmbalance finetune[/] run, for training curves.",
        metavar="METRICS.csv")] = None,
    formats: Annotated[str, typer.Option("--format", "-f", help="Comma-separated: html, md, png, svg.")] =
    "html,md,png",
    title: Annotated[Optional[str], typer.Option("--title", help="Report title.")] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Render plots, a self-contained report.html and report.md from audit JSON (and a metrics CSV).

    Example: [bold]mmbalance report plain.json balanced.json --metrics runs/balanced/metrics.csv --out report[/]
    """
    from ..benchmark import is_bench_file, render_bench  # lazy: torch, matplotlib only once a command runs
    from ..report import build_report, parse_formats

    check_output_dir(out, what="--out")
    if len(audits) == 1 and is_bench_file(audits[0]):  # the bench section (mmbalance bench's bench.json)
        for path in render_bench(audits[0], out):
            if not quiet:
                stdout_console().print(f"wrote {escape(str(path))}")
        return
    fmts = parse_formats(formats)
    results = [AuditResult.load(p) for p in audits]
    labels = audit_labels(audits) if len(audits) > 1 else None
    err = stderr_console()
    if quiet or as_json:
        files = build_report(results, metrics=metrics, out_dir=out, formats=fmts, labels=labels, title=title)
    else:
        with err.status("rendering the report"):
            files = build_report(results, metrics=metrics, out_dir=out, formats=fmts, labels=labels, title=title)
    if as_json:
        typer.echo(json.dumps(files.to_dict(), indent=2))
        return
    if quiet:
        return
    console = stdout_console()
    colour = "green" if files.balanced else "red"
    console.print(f"[bold {colour}]{escape(files.verdict)}[/]")
    for path in files.paths:
        console.print(f"wrote {escape(str(path))}")


@app.command("compare")
def compare_command(
    before: Annotated[Path, typer.Argument(help="Audit JSON before (e.g. plain training).", show_default=False,
                                           metavar="BEFORE.json")],
    after: Annotated[Path, typer.Argument(help="Audit JSON after (e.g. balanced fine-tuning).",
                                          show_default=False, metavar="AFTER.json")],
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Show what changed between two audits: shares per estimator, accuracy, imbalance figures.

    Example: [bold]mmbalance compare plain.json balanced.json --json[/]
    """
    from ..report import compare_audits  # lazy: matplotlib only once a command runs
    from ..report.terminal import comparison_table

    a, b = AuditResult.load(before), AuditResult.load(after)
    labels = audit_labels([before, after])
    comparison = compare_audits(a, b, before_label=labels[0], after_label=labels[1])
    if as_json:
        typer.echo(json.dumps(comparison.to_dict(), indent=2, allow_nan=False))
        return
    if not quiet:
        stdout_console().print(comparison_table(comparison))
