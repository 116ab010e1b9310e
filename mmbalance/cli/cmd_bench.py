"""``mmbalance bench``: compare balancing methods at one budget on the user's data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ..errors import UsageError
from ..limits import MAX_BENCH_SEEDS
from ._defaults import AUDIT_METHODS, BENCH_METHODS
from ._options import (BatchSizeOpt, CallOpt, DataOpt, DeviceOpt, ModelArgOpt, ModelOpt, PassThroughOpt, QuietOpt,
                       output_dir, split_list)
from .app import EXIT_INTERRUPTED, app, stderr_console, stdout_console


@app.command("bench")
def bench_command(
    model: ModelOpt,
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", "-o", parser=output_dir, help="Bench directory: runs/, bench.md, bench.json, report/.")],
    methods: Annotated[str, typer.Option("--methods", help="Comma-separated: plain, unimodal, ensemble, gblend, ogm-ge, ogm-ge-published, modality-dropout, aux, attribution, attribution-aux, attribution-aux-all, warm, warm-attribution; recommended names the method docs/results.md recommends.")] = ",".join(BENCH_METHODS),
    seeds: Annotated[int, typer.Option("--seeds", min=1, max=MAX_BENCH_SEEDS, help="Number of seeds (0 .. N-1) per method.")] = 3,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Epochs per run (the same budget for every method).")] = 10,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate shared by every method.")] = 1e-3,
    batch_size: BatchSizeOpt = 32,
    test_split: Annotated[str, typer.Option("--test-split", help="Split on which accuracy and shares are measured.")] = "test",
    val_split: Annotated[str, typer.Option("--val-split", help="Split that picks each run's best epoch.")] = "val",
    val_fraction: Annotated[Optional[float], typer.Option("--val-fraction", help="Instead of --val-split: hold out this fraction of the training split (seeded, stratified).")] = None,
    measure: Annotated[str, typer.Option("--measure", help="How each run's shares are measured: shapley (the audit's default), ablation or ig.")] = AUDIT_METHODS[0],
    steps: Annotated[int, typer.Option("--steps", min=1, help="Integrated Gradients steps of each audit (--measure ig).")] = 16,
    lambda_: Annotated[float, typer.Option("--lambda", help="Attribution methods: weight of the penalty.")] = 1.0,
    target: Annotated[str, typer.Option("--target", help="Attribution methods: target shares, equal or audio=0.3,visual=0.7.")] = "equal",
    robustness: Annotated[bool, typer.Option("--robustness/--no-robustness", help="Also measure each run's test accuracy with each modality zeroed and noise-corrupted.")] = True,
    model_arg: ModelArgOpt = None,
    embedding_layer: Annotated[Optional[str], typer.Option("--embedding-layer", help="A plug-in model's encoder modules, e.g. audio=audio_net,visual=visual_net: the methods that need embeddings (gblend, ogm-ge, aux, attribution) and the unimodal runs use them.")] = None,
    pass_through: PassThroughOpt = None,
    call: CallOpt = "auto",
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Train every method for every seed at the same budget, audit each on the test split, write bench.md.

    Rerun the same command to continue: finished runs are neither retrained nor re-audited.

    Example: [bold]mmbalance bench -m av-tiny -d synthetic:av-dominance --methods plain,unimodal,gblend --seeds 3 --epochs 10 -o bench/avd[/]
    [bold]mmbalance bench -m av-small -d data/letters-av --methods plain,ensemble,recommended --lr 3e-3 -o bench/letters[/]
    """
    from ..attribution.hooks import parse_embedding_layers
    from ..benchmark import bench  # lazy: torch only once a command runs
    from ..data import parse_pass_through
    from ..models import parse_model_args
    from ..training import TrainingInterrupted

    names = split_list(methods) or []
    if not names:
        raise UsageError("--methods is empty")
    err = stderr_console()
    try:
        result = bench(model, data, out=out, methods=names, seeds=range(seeds), epochs=epochs, lr=lr,
                       batch_size=batch_size, model_args=parse_model_args(model_arg or []), device=device,
                       test_split=test_split, steps=steps, progress=not quiet, robust=robustness, measure=measure,
                       train={"lambda_": lambda_, "target": target, "val_split": val_split,
                              "val_fraction": val_fraction,
                              "embedding_layers": parse_embedding_layers(embedding_layer),
                              "pass_through": list(parse_pass_through(pass_through)) if pass_through is not None
                              else None, "call": call})
    except TrainingInterrupted as stop:
        err.print(f"[bold yellow]interrupted[/]: {stop.epochs_done} complete epoch(s) saved in {stop.out_dir}; "
                  "run the same command again to continue")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if not quiet:
        typer.echo(result.markdown_path.read_text())  # plain text: a wrapped Markdown table is unreadable
        stdout_console().print(f"wrote {result.markdown_path}, {result.json_path}, {result.html_path}")
    if not quiet:
        stdout_console().print(f"[bold]{escape(result.verdict)}[/]", soft_wrap=True)  # last: the answer, one line
