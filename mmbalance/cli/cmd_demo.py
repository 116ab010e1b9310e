"""``mmbalance demo``: the whole story on built-in data, in a few minutes on a laptop CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..demo import run_demo
from ._options import DeviceOpt, QuietOpt
from ._render import print_audit
from .app import app, stdout_console


@app.command("demo")
def demo_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write data, runs and audits.")] = Path("mmbalance-demo"),
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Plain training epochs.")] = 4,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Synthesize imbalanced audio-visual data, train a fused model plainly, and audit it."""
    console = stdout_console()
    if not quiet:
        console.print(f"[bold]mmbalance demo[/] → {out}")
    result = run_demo(out, epochs=epochs, seed=seed, device=device, progress=not quiet)
    if quiet:
        return
    print_audit(result.audit, console)
    dom = result.audit.dominant_modality
    console.print(f"\nThe plainly trained model leans on [bold]{dom}[/]: "
                  f"{result.audit.shares[dom]:.0%} of the attribution mass.")
    console.print(f"data: {result.data_dir}\nrun: {result.plain.out_dir} (best.pt, last.pt, metrics.csv)\n"
                  f"audit: {result.audit_path}")
