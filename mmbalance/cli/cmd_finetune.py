"""``mmbalance finetune``: train or fine-tune a multimodal model, plainly or with a balancing method."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

from rich.markup import escape
from typer._click.core import ParameterSource  # typer 0.29 bundles click
import typer

from ..errors import UsageError
from ._media_options import SkipBadOpt, media_data, with_decoding_options
from ._options import (BatchSizeOpt, CallOpt, CheckpointOpt, DeterministicOpt, DeviceOpt, ModalitiesOpt, ModelArgOpt,
                       OutputOpt, PadIdOpt, PassThroughOpt, QuietOpt, TrustRemoteOpt, parse_output, split_list,
                       output_dir)
from .app import app, interrupt_exit_code, interrupt_reason, stderr_console, stdout_console

if TYPE_CHECKING:
    from ..training import TrainResult

# Options that may accompany --resume (everything else comes from the saved run).
_RESUME_OPTIONS = {"resume", "device", "quiet", "trust_checkpoint", "trust_remote_code"}


@app.command("finetune")
@with_decoding_options
def finetune_command(
    ctx: typer.Context,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Registered name, [bold]package.module:factory[/], [bold]file.py:factory[/] or [bold]hf:DIR[/].")] = None,
    data: Annotated[Optional[str], typer.Option("--data", "-d", help="Dataset: a .pt file, a split directory, synthetic:av-dominance, a media manifest .csv, a CREMA-D folder or class folders.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", parser=output_dir, help="Run directory (best.pt, last.pt, metrics.csv, resume.pt).")] = None,
    checkpoint: CheckpointOpt = None,
    init: Annotated[Optional[str], typer.Option("--init", help="Warm start from unimodal runs: audio=RUN_A/best.pt,visual=RUN_V/best.pt (encoders copied, fusion set so the fused logits start as the sum of the unimodal logits; concat or sum heads). Fine-tune at a small --lr, e.g. 1e-4.")] = None,
    init_calibrate: Annotated[bool, typer.Option("--init-calibrate", help="With --init: first scale each run's logits by one factor per modality, fitted on the validation split (temperature scaling), so an over-confident run does not outvote the other. The factors go to run.json (init_scales).")] = False,
    regularizer: Annotated[str, typer.Option("--regularizer", "-r", help="none, attribution, ogm-ge, modality-dropout or gblend (Gradient-Blending).", rich_help_panel="Balancing")] = "none",
    lambda_: Annotated[float, typer.Option("--lambda", help="Weight of the attribution penalty (>= 0).", rich_help_panel="Balancing")] = 1.0,
    attribution: Annotated[str, typer.Option("--attribution", help="shapley (the audit's default measure), gradxinput or ig, inside the penalty.", rich_help_panel="Balancing")] = "shapley",
    attr_steps: Annotated[int, typer.Option("--attr-steps", help="Integrated Gradients steps inside the penalty.", rich_help_panel="Balancing")] = 8,
    level: Annotated[str, typer.Option("--level", help="embedding (cheap) or input (research; many times slower).", rich_help_panel="Balancing")] = "embedding",
    pool: Annotated[str, typer.Option("--pool", help="l1 or l2: how a modality's attributions become one score.", rich_help_panel="Balancing")] = "l1",
    penalty: Annotated[str, typer.Option("--penalty", help="l1, l2 or kl: distance between shares and target.", rich_help_panel="Balancing")] = "l2",
    target: Annotated[str, typer.Option("--target", help="equal, or shares such as audio=0.3,visual=0.7.", rich_help_panel="Balancing")] = "equal",
    scope: Annotated[str, typer.Option("--scope", help="all: the penalty trains every weight; fusion: only the fusion head and classifier (own optimizer).", rich_help_panel="Balancing")] = "fusion",
    lambda_warmup: Annotated[int, typer.Option("--lambda-warmup", help="Epochs over which lambda ramps up from 0.", rich_help_panel="Balancing")] = 0,
    alpha: Annotated[float, typer.Option("--alpha", help="OGM-GE modulation strength.", rich_help_panel="Balancing")] = 0.5,
    p: Annotated[float, typer.Option("--p", help="Modality dropout: probability of dropping one modality of a sample.", rich_help_panel="Balancing")] = 0.5,
    aux_heads: Annotated[bool, typer.Option("--aux-heads", help="Add a unimodal classifier on each encoder; its loss trains that encoder (none, attribution).", rich_help_panel="Balancing")] = False,
    aux_weight: Annotated[float, typer.Option("--aux-weight", help="Weight of the auxiliary heads' summed loss.", rich_help_panel="Balancing")] = 1.0,
    modulate: Annotated[float, typer.Option("--modulate", help="-r attribution: scale each encoder's gradient by exp(k * (target - share)) (attribution-guided gradient modulation, AGM-style); 0: off.", rich_help_panel="Balancing")] = 0.0,
    gblend_every: Annotated[int, typer.Option("--gblend-every", help="Gradient-Blending: re-estimate the loss weights every N epochs.", rich_help_panel="Balancing")] = 1,
    gblend_holdout: Annotated[float, typer.Option("--gblend-holdout", help="Gradient-Blending: fraction of the training data held out to estimate the weights (seeded, stratified; not trained on).", rich_help_panel="Balancing")] = 0.2,
    gblend_smoothing: Annotated[float, typer.Option("--gblend-smoothing", help="Gradient-Blending: moving-average factor of the weights across estimates (0: no smoothing).", rich_help_panel="Balancing")] = 0.5,
    gblend_floor: Annotated[float, typer.Option("--gblend-floor", help="Gradient-Blending: least weight of every head, so the fused head always learns.", rich_help_panel="Balancing")] = 0.05,
    val_split: Annotated[str, typer.Option("--val-split", help="Split that picks the best epoch (early stopping).")] = "val",
    val_fraction: Annotated[Optional[float], typer.Option("--val-fraction", help="Instead of --val-split: hold out this fraction of the training split (seeded by --seed, stratified by class).")] = None,
    modulation_start: Annotated[int, typer.Option("--modulation-start", help="OGM-GE: first modulated epoch.", rich_help_panel="Balancing")] = 1,
    modulation_end: Annotated[Optional[int], typer.Option("--modulation-end", help="OGM-GE: last modulated epoch (default: the last).", rich_help_panel="Balancing")] = None,
    unimodal: Annotated[Optional[str], typer.Option("--unimodal", help="Train one modality's encoder with its own classifier alone (a unimodal baseline).", rich_help_panel="Balancing")] = None,
    zero_modality: Annotated[Optional[list[str]], typer.Option("--zero-modality", help="Replace this modality by zeros in training and evaluation (unimodal baselines); repeatable.", rich_help_panel="Balancing")] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Most epochs to train (training stops earlier when validation accuracy stalls, see --patience).")] = 50,
    patience: Annotated[int, typer.Option("--patience", min=0, help="Stop after this many epochs without a better validation accuracy; 0: train all --epochs.")] = 5,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 1e-3,
    weight_decay: Annotated[float, typer.Option("--weight-decay")] = 0.0,
    batch_size: BatchSizeOpt = 32,
    scheduler: Annotated[str, typer.Option("--scheduler", help="cosine, constant or step (x --gamma every --step-size epochs).")] = "cosine",
    optimizer: Annotated[str, typer.Option("--optimizer", help="adam, adamw or sgd (with --momentum).")] = "adam",
    momentum: Annotated[float, typer.Option("--momentum", help="SGD momentum.")] = 0.9,
    step_size: Annotated[int, typer.Option("--step-size", help="Epochs between learning-rate drops (--scheduler step).")] = 70,
    gamma: Annotated[float, typer.Option("--gamma", help="Learning-rate factor per drop (--scheduler step).")] = 0.1,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: DeviceOpt = "auto",
    amp: Annotated[bool, typer.Option("--amp", help="Mixed precision (CUDA only).")] = False,
    deterministic: DeterministicOpt = False,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the interrupted run in this directory with its saved settings.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the run already in --out (its best.pt, last.pt, metrics.csv, run.json, resume.pt).")] = False,
    output: OutputOpt = None,
    modalities: ModalitiesOpt = None,
    embedding_layer: Annotated[Optional[str], typer.Option(
        "--embedding-layer", help="For plug-in models without encode/fuse: the module whose output is each "
                                  "modality's embedding, e.g. audio=audio_net,visual=visual_net (used by "
                                  "-r attribution at --level embedding, -r ogm-ge, -r modality-dropout and "
                                  "the validation shares). Token-id modalities are found automatically when one "
                                  "nn.Embedding takes them; module[0] names element 0 of a tuple output.")] = None,
    pass_through: PassThroughOpt = None,
    call: CallOpt = "auto",
    pad_id: PadIdOpt = None,
    model_arg: ModelArgOpt = None,
    trust_checkpoint: Annotated[bool, typer.Option("--trust-checkpoint", help="Allow full unpickling of --checkpoint; with --resume, allow a run whose saved model is module:factory or file.py:factory. Only for files you trust: it can run code.")] = False,
    trust_remote_code: TrustRemoteOpt = False,
    log: Annotated[Optional[str], typer.Option("--log", help="Also log every epoch's metrics (loss, accuracy, penalty, lambda, shares) to a tracker: tensorboard (event files in OUT/tensorboard).")] = None,
    skip_bad: SkipBadOpt = False,
    quiet: QuietOpt = False,
    *,
    decoding: dict[str, Any],
) -> None:
    """Train with cross-entropy and an optional balancing method, keeping the best epoch.

    Examples:
    [bold]mmbalance finetune -m av-tiny -d synthetic:av-dominance -o runs/plain --epochs 5[/]
    [bold]mmbalance finetune -m av-tiny -d data/avd -c runs/plain/best.pt -o runs/attr -r attribution --lambda 1[/]
    [bold]mmbalance finetune -m my_net.py:build -d data/avd -o runs/ogm -r ogm-ge --embedding-layer audio=audio_net,visual=visual_net[/]
    [bold]mmbalance finetune -m av-small -d data/avd -o runs/warm --init audio=runs/a/best.pt,visual=runs/v/best.pt --lr 1e-4[/]
    [bold]mmbalance finetune --resume runs/attr[/]   (after Ctrl-C)
    [bold]mmbalance finetune ... -o runs/plain --force[/]   (start over in a directory that holds a run)
    [bold]torchrun --nproc_per_node 2 -m mmbalance finetune ...[/]   (DistributedDataParallel)
    """
    from ..attribution.hooks import parse_embedding_layers  # lazy: torch only once a command runs
    from ..data import parse_pass_through
    from ..models import parse_model_args
    from ..training import TrainConfig, finetune
    from ..training.rundir import check_new_run_dir
    from ..models.warm import parse_init
    from ..training.trackers import parse_log

    main_rank = int(os.environ.get("RANK", "0")) == 0
    show = not quiet and main_rank
    if resume is not None:
        given = [name for name in ctx.params if name not in _RESUME_OPTIONS
                 and ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE]
        if given:
            flags = ", ".join("--" + n.rstrip("_").replace("_", "-") for n in given)
            raise UsageError(f"--resume continues a run with its saved settings; drop {flags}",
                             hint="only --device, --quiet, --trust-checkpoint and --trust-remote-code may accompany --resume")
        run = lambda: finetune(resume=resume, progress=not quiet, trust_checkpoint=trust_checkpoint,  # noqa: E731
                               device=device if ctx.get_parameter_source("device") is
                               ParameterSource.COMMANDLINE else None)
        where: Path | None = resume
    else:
        missing = [flag for flag, value in (("--model", model), ("--data", data), ("--out", out)) if value is None]
        if missing:
            raise UsageError(f"missing {', '.join(missing)}", hint="or continue a run with --resume DIR")
        check_new_run_dir(str(out), force=force, probe_lock=main_rank)  # before decoding any media
        data = media_data(str(data), skip_bad=skip_bad, **decoding)
        config = TrainConfig(
            model=str(model), data=str(data), out=str(out), checkpoint=str(checkpoint) if checkpoint else None,
            init=parse_init(init), init_calibrate=init_calibrate,
            trust_checkpoint=trust_checkpoint, model_args=parse_model_args(model_arg or []),
            modalities=split_list(modalities), output=parse_output(output),
            embedding_layers=parse_embedding_layers(embedding_layer),
            pass_through=list(parse_pass_through(pass_through)) if pass_through is not None else None, call=call,
            pad_id=pad_id, epochs=epochs, lr=lr,
            patience=patience,
            weight_decay=weight_decay, batch_size=batch_size, scheduler=scheduler, seed=seed, device=device,
            regularizer=regularizer, lambda_=lambda_, attribution=attribution, attr_steps=attr_steps, level=level,
            pool=pool, penalty=penalty, target=target, scope=scope, lambda_warmup=lambda_warmup, alpha=alpha, p=p,
            zero_modalities=list(zero_modality or []), amp=amp, optimizer=optimizer, momentum=momentum,
            step_size=step_size, gamma=gamma, modulation_start=modulation_start, modulation_end=modulation_end,
            unimodal=unimodal, aux_heads=aux_heads, aux_weight=aux_weight, gblend_every=gblend_every,
            gblend_holdout=gblend_holdout, gblend_smoothing=gblend_smoothing, gblend_floor=gblend_floor,
            modulate=modulate, val_split=val_split, val_fraction=val_fraction, deterministic=deterministic,
            log=parse_log(log))
        config.validate()
        run = lambda: finetune(config, progress=not quiet, force=force)  # noqa: E731
        where = out
    from ..models.hf import remote_code_trusted

    try:
        with remote_code_trusted(trust_remote_code):
            result = run()
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM: say where the resumable state is
        if main_rank:
            stderr_console().print(_interrupted_line(err, Path(str(where))), markup=True, highlight=False)
        raise typer.Exit(interrupt_exit_code()) from None
    if show:
        _summary(result, Path(str(where)))


def _interrupted_line(err: KeyboardInterrupt, where: Path) -> str:
    """One line: what stopped the run, and where its resumable state is (or that there is none yet)."""
    from ..training import TrainingInterrupted
    from ..training.resume import RESUME_FILE

    reason = escape(interrupt_reason())
    out_dir = err.out_dir if isinstance(err, TrainingInterrupted) else where
    if not (out_dir / RESUME_FILE).is_file():
        return f"[bold yellow]{reason}[/] before the run started: nothing to resume in {escape(str(out_dir))}"
    done = err.epochs_done if isinstance(err, TrainingInterrupted) else None
    saved = ("no complete epoch yet, the run's settings are" if done == 0 else
             f"{done} complete epoch(s)" if done else "the last complete epoch is")
    return (f"[bold yellow]{reason}[/]: {saved} saved in {escape(str(out_dir))}; continue with "
            f"[bold]mmbalance finetune --resume {escape(str(out_dir))}[/]")


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
