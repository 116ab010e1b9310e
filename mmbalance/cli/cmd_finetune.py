"""``mmbalance finetune``: train or fine-tune a multimodal model, plainly or with a balancing method."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Annotated, Any, Optional

from rich.markup import escape
from typer._click.core import ParameterSource  # typer 0.29 bundles click
import typer

from ..errors import UsageError
from ..models import parse_model_args
from ..training import TrainConfig, TrainingInterrupted, TrainingWarning, TrainResult, finetune
from ._media_options import SkipBadOpt, media_data, with_decoding_options
from ._options import (BatchSizeOpt, CheckpointOpt, DeviceOpt, ModalitiesOpt, ModelArgOpt, OutputOpt, QuietOpt,
                       TrustOpt, parse_output, split_list)
from .app import EXIT_INTERRUPTED, app, stderr_console, stdout_console

# Options that may accompany --resume (everything else comes from the saved run).
_RESUME_OPTIONS = {"resume", "device", "quiet"}


@app.command("finetune")
@with_decoding_options
def finetune_command(
    ctx: typer.Context,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Registered name, [bold]package.module:factory[/] or [bold]file.py:factory[/].")] = None,
    data: Annotated[Optional[str], typer.Option("--data", "-d", help="Dataset: a .pt file, a split directory, synthetic:av-dominance, a media manifest .csv, a CREMA-D folder or class folders.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory (best.pt, last.pt, metrics.csv, resume.pt).")] = None,
    checkpoint: CheckpointOpt = None,
    regularizer: Annotated[str, typer.Option("--regularizer", "-r", help="none, attribution, ogm-ge or modality-dropout.", rich_help_panel="Balancing")] = "none",
    lambda_: Annotated[float, typer.Option("--lambda", help="Weight of the attribution penalty (>= 0).", rich_help_panel="Balancing")] = 1.0,
    attribution: Annotated[str, typer.Option("--attribution", help="gradxinput or ig, inside the penalty.", rich_help_panel="Balancing")] = "gradxinput",
    attr_steps: Annotated[int, typer.Option("--attr-steps", help="Integrated Gradients steps inside the penalty.", rich_help_panel="Balancing")] = 8,
    level: Annotated[str, typer.Option("--level", help="embedding (cheap) or input (research; many times slower).", rich_help_panel="Balancing")] = "embedding",
    pool: Annotated[str, typer.Option("--pool", help="l1 or l2: how a modality's attributions become one score.", rich_help_panel="Balancing")] = "l1",
    penalty: Annotated[str, typer.Option("--penalty", help="l1, l2 or kl: distance between shares and target.", rich_help_panel="Balancing")] = "l2",
    target: Annotated[str, typer.Option("--target", help="equal, or shares such as audio=0.3,visual=0.7.", rich_help_panel="Balancing")] = "equal",
    scope: Annotated[str, typer.Option("--scope", help="all: the penalty trains every weight; fusion: only the fusion head and classifier (own optimizer).", rich_help_panel="Balancing")] = "fusion",
    lambda_warmup: Annotated[int, typer.Option("--lambda-warmup", help="Epochs over which lambda ramps up from 0.", rich_help_panel="Balancing")] = 0,
    alpha: Annotated[float, typer.Option("--alpha", help="OGM-GE modulation strength.", rich_help_panel="Balancing")] = 0.5,
    p: Annotated[float, typer.Option("--p", help="Modality dropout: probability of dropping one modality of a sample.", rich_help_panel="Balancing")] = 0.5,
    zero_modality: Annotated[Optional[list[str]], typer.Option("--zero-modality", help="Replace this modality by zeros in training and evaluation (unimodal baselines); repeatable.", rich_help_panel="Balancing")] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Most epochs to train (training stops earlier when validation accuracy stalls, see --patience).")] = 50,
    patience: Annotated[int, typer.Option("--patience", min=0, help="Stop after this many epochs without a better validation accuracy; 0: train all --epochs.")] = 5,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate (Adam).")] = 1e-3,
    weight_decay: Annotated[float, typer.Option("--weight-decay")] = 0.0,
    batch_size: BatchSizeOpt = 32,
    scheduler: Annotated[str, typer.Option("--scheduler", help="cosine or constant.")] = "cosine",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: DeviceOpt = "auto",
    amp: Annotated[bool, typer.Option("--amp", help="Mixed precision (CUDA only).")] = False,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the interrupted run in this directory with its saved settings.")] = None,
    output: OutputOpt = None,
    modalities: ModalitiesOpt = None,
    model_arg: ModelArgOpt = None,
    trust_checkpoint: TrustOpt = False,
    skip_bad: SkipBadOpt = False,
    quiet: QuietOpt = False,
    *,
    decoding: dict[str, Any],
) -> None:
    """Train with cross-entropy and an optional balancing method, keeping the best epoch.

    Examples:
    [bold]mmbalance finetune -m av-tiny -d synthetic:av-dominance -o runs/plain --epochs 5[/]
    [bold]mmbalance finetune -m av-tiny -d data/avd -c runs/plain/best.pt -o runs/attr -r attribution --lambda 1[/]
    [bold]mmbalance finetune --resume runs/attr[/]   (after Ctrl-C)
    [bold]torchrun --nproc_per_node 2 -m mmbalance finetune ...[/]   (DistributedDataParallel)
    """
    main_rank = int(os.environ.get("RANK", "0")) == 0
    show = not quiet and main_rank
    if resume is not None:
        given = [name for name in ctx.params if name not in _RESUME_OPTIONS
                 and ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE]
        if given:
            flags = ", ".join("--" + n.rstrip("_").replace("_", "-") for n in given)
            raise UsageError(f"--resume continues a run with its saved settings; drop {flags}",
                             hint="only --device and --quiet may accompany --resume")
        run = lambda: finetune(resume=resume, progress=not quiet,  # noqa: E731
                               device=device if ctx.get_parameter_source("device") is
                               ParameterSource.COMMANDLINE else None)
        where = resume
    else:
        missing = [flag for flag, value in (("--model", model), ("--data", data), ("--out", out)) if value is None]
        if missing:
            raise UsageError(f"missing {', '.join(missing)}", hint="or continue a run with --resume DIR")
        data = media_data(str(data), skip_bad=skip_bad, **decoding)
        config = TrainConfig(
            model=str(model), data=str(data), out=str(out), checkpoint=str(checkpoint) if checkpoint else None,
            trust_checkpoint=trust_checkpoint, model_args=parse_model_args(model_arg or []),
            modalities=split_list(modalities), output=parse_output(output), epochs=epochs, lr=lr,
            patience=patience,
            weight_decay=weight_decay, batch_size=batch_size, scheduler=scheduler, seed=seed, device=device,
            regularizer=regularizer, lambda_=lambda_, attribution=attribution, attr_steps=attr_steps, level=level,
            pool=pool, penalty=penalty, target=target, scope=scope, lambda_warmup=lambda_warmup, alpha=alpha, p=p,
            zero_modalities=list(zero_modality or []), amp=amp)
        config.validate()
        run = lambda: finetune(config, progress=not quiet)  # noqa: E731
        where = out
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", TrainingWarning)
            warnings.showwarning = _warning_printer(warnings.showwarning)
            result = run()
    except TrainingInterrupted as err:
        if main_rank:
            stderr_console().print(f"[bold yellow]interrupted[/]: {err.epochs_done} complete epoch(s) saved in "
                                   f"{err.out_dir}; continue with [bold]mmbalance finetune --resume {err.out_dir}[/]")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if show:
        _summary(result, Path(str(where)))


def _warning_printer(fallback: Any) -> Any:
    """A ``warnings.showwarning`` that prints a :class:`TrainingWarning` as one yellow line right away."""
    def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        if issubclass(category, TrainingWarning):
            stderr_console().print(f"[bold yellow]warning[/]: {escape(str(message))}")
        else:
            fallback(message, category, *args, **kwargs)
    return show


def _summary(result: TrainResult, where: Path) -> None:
    console = stdout_console()
    if not result.history:
        console.print(f"nothing to train in {where}")
        return
    if result.resumed_from and result.resumed_from >= len(result.history):
        console.print(f"{where}: all {len(result.history)} epochs were already done")
    last = result.history[-1]
    shares = ", ".join(f"{k[len('share_'):]} {v:.0%}" for k, v in last.items() if k.startswith("share_"))
    resumed = f" (resumed after epoch {result.resumed_from})" if result.resumed_from else ""
    if result.stopped_early:
        resumed += (f", stopped early at epoch {result.stopped_epoch} (no better validation accuracy for "
                    f"{result.stopped_epoch - result.best_epoch} epochs)")
    console.print(f"trained {len(result.history)} epochs{resumed}: best val accuracy {result.best_val_accuracy:.1%} "
                  f"(epoch {result.best_epoch}), last {last['val_accuracy']:.1%}; val shares {shares}")
    console.print(f"checkpoints: {result.best_path}, {result.last_path}; metrics: {result.metrics_path}")
