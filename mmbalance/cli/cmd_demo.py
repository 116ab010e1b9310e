"""``mmbalance demo``: the whole story on built-in data, in a few minutes on a laptop CPU."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ._options import DeviceOpt, QuietOpt, output_dir
from ._render import print_audit
from .app import app, stdout_console

if TYPE_CHECKING:
    from ..demo import DemoResult
    from ..results import AuditResult


@app.command("demo")
def demo_command(
    out: Annotated[Path, typer.Option("--out", "-o", parser=output_dir, help="Where to write data, runs and audits.")] = Path("mmbalance-demo"),
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Plain training epochs.")] = 3,
    finetune_epochs: Annotated[int, typer.Option("--finetune-epochs", min=1, help="Fine-tuning epochs with the attribution regularizer.")] = 2,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Synthesize imbalanced audio-visual data, train a fused model plainly, audit it, fine-tune it with the
    attribution regularizer, audit again and compare."""
    from ..demo import run_demo  # lazy: torch only once a command runs

    console = stdout_console()
    if not quiet:
        console.print(f"[bold]mmbalance demo[/] → {out}")
    result = run_demo(out, epochs=epochs, finetune_epochs=finetune_epochs, seed=seed, device=device,
                      progress=not quiet)
    if quiet:
        return
    console.print("\n[bold]1. The plainly trained model[/]")
    print_audit(result.audit, console)
    console.print(escape(story(result.audit, before=None)))
    console.print("\n[bold]2. After fine-tuning with the attribution regularizer[/]")
    print_audit(result.balanced_audit, console)
    console.print(escape(story(result.balanced_audit, before=result.audit)))
    console.print()
    console.print(comparison_table(result))
    console.print(f"\ndata: {result.data_dir}\nruns: {result.plain.out_dir}, {result.balanced.out_dir} "
                  f"(best.pt, last.pt, metrics.csv)\naudits: {result.audit_path}, {result.balanced_audit_path}")
    if result.report_html is not None:
        console.print(f"report: [bold]{result.report_html}[/] (open it in a browser: the whole story on one page)")


def story(audit: AuditResult, before: AuditResult | None) -> str:
    """One honest sentence on an audit's verdict (and, with ``before``, on what fine-tuning changed).

    Example:
        >>> story(plain_audit, None)  # doctest: +SKIP
        'It leans on audio: 64% of the Shapley share (what its decisions lose without each modality).'
    """
    verdict = audit.verdict
    status, top = verdict["status"], audit.dominant_modality
    if status == "inconclusive":
        line = f"The estimators disagree: {verdict['message']}."
    elif status == "balanced":
        line = f"It reads as balanced: the largest share is {top} with {audit.shares.get(top or '', 0):.0%}."
    else:
        line = f"It leans on {top}: {audit.shares.get(top or '', 0):.0%} of the Shapley share (what its decisions " \
               "lose without each modality)."
    if before is not None and top is not None and top in before.shares:
        moved = audit.shares[top] - before.shares[top]
        verb = "reached balance" if status == "balanced" else "did not reach balance"
        line += f" The regularizer moved {top}'s share by {100 * moved:+.0f} pts and {verb}."
    return line


def comparison_table(result: DemoResult) -> Table:
    """Before/after: accuracy, each modality's share and accuracy alone, share variance, dominant modality."""
    table = Table(title="Before → after fine-tuning with the attribution regularizer", title_justify="left")
    table.add_column("figure", style="bold")
    table.add_column("plain", justify="right")
    table.add_column("fine-tuned", justify="right")
    table.add_column("change", justify="right")
    c = result.comparison

    def row(label: str, key: str, fmt: str = "{:.1%}", points: bool = True) -> None:
        before, after = c[key]
        if before is None or after is None:
            table.add_row(label, _fmt(before, fmt), _fmt(after, fmt), "—")
            return
        delta = after - before
        change = f"{100 * delta:+.1f} pts" if points else f"{delta:+.4f}"
        table.add_row(label, fmt.format(before), fmt.format(after), change)

    row("test accuracy", "accuracy")
    for m in result.audit.modalities:
        row(f"{m} share", f"share_{m}")
    for m in result.audit.modalities:
        row(f"accuracy with {m} alone", f"alone_{m}")
    row("share variance", "share_variance", "{:.4f}", points=False)
    table.add_row("largest share", str(c["dominant"][0]), str(c["dominant"][1]), "")
    method = result.audit.primary
    table.caption = (f"shares: {method.name} at the {method.level} level on the test split; alone: the other modality "
                     "zeroed. The fine-tuned model also trained for more epochs; docs/results.md compares "
                     "methods at equal budgets.")
    return table


def _fmt(value: Any, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)
