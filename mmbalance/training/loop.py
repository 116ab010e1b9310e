"""Training and fine-tuning: per-epoch validation, checkpoints, metrics, resume, DDP and AMP.

One loop serves every balancing method (``--regularizer none|attribution|ogm-ge|gblend|
modality-dropout``, see :mod:`mmbalance.training.regularizers`). Every epoch is evaluated
on the validation split (loss, accuracy and modality shares, :mod:`.evaluation`); ``best.pt`` and ``last.pt``
are plain state dicts, ``metrics.csv`` has one row per epoch, ``run.json`` the
configuration and ``resume.pt`` the training state, all written atomically by rank 0.

Under ``torchrun --nproc_per_node N -m mmbalance finetune ...`` the model is wrapped in
DistributedDataParallel (gloo on CPU, nccl on CUDA); ``--batch-size`` is the *global*
batch, split evenly over the ranks by a :class:`~torch.utils.data.DistributedSampler`
whose order for one process equals the single-process order.

Example:
    >>> from mmbalance.training import TrainConfig, finetune
    >>> cfg = TrainConfig(model="av-tiny", data="synthetic:av-dominance", out="runs/attr", epochs=3,
    ...                   regularizer="attribution", lambda_=1.0)
    >>> result = finetune(cfg)  # doctest: +SKIP
    >>> result = finetune(resume="runs/attr")  # doctest: +SKIP  (continues an interrupted run)
"""

from __future__ import annotations

import csv
import io
import math
import os
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DistributedSampler

from ..data import IndexedDataset, MultimodalDataset, iter_batches, load_dataset, make_loader, split_dataset
from ..device import resolve_device
from ..distributed import all_reduce_sum, barrier, init_distributed, shutdown_distributed
from ..errors import DataError, MMBalanceWarning, TrainingError, UsageError
from ..guards import (ConstantMonitor, check_compiled, check_training_outputs, compiled_kind,
                      constant_embedding_training_warning)
from ..io import atomic_write_json, atomic_write_text, check_output_dir, confined_to
from ..models import ModelAdapter, load_model, save_state_dict
from ..models.binding import fit_to_model, split_pass_through
from ..models.warm import warm_start
from ..progress import progress_bar
from ..reproducibility import deterministic_mode
from .config import TrainConfig
from .differentiable import AttributionSpec
from .embeddings import find_tokens, training_view
from .evaluation import _autocast, evaluate, zero_modalities
from .methods import make_optimizers, materialize, own_embedding_layers, unimodal_spec
from .regularizers import Regularizer, build_regularizer, fusion_parameters
from .rundir import RunLock, check_new_run_dir, clear_run_files
from .resume import RESUME_FILE, RUN_FILE, capture_rng, load_resume, restore_rng, save_resume
from .trackers import EpochTrackers, parse_log
from .stopping import TrainingWarning, chance_accuracy, chance_check_epoch, chance_warning, should_stop

__all__ = ["METRIC_COLUMNS", "TrainResult", "TrainingInterrupted", "evaluate", "finetune", "metrics_csv",
           "seed_everything", "zero_modalities"]

METRIC_COLUMNS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "epoch_seconds",
                  "penalty", "lambda"]

EpochCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class TrainResult:
    """Where a run's files are and how it went (``history``: the metric rows, resumed epochs included).

    ``stopped_epoch`` is the epoch at which early stopping ended the run (0: it ran to the
    ``--epochs`` cap); ``warnings`` holds the :class:`TrainingWarning` texts it raised.
    """

    out_dir: Path
    best_epoch: int
    best_val_accuracy: float
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int = 0
    stopped_epoch: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def stopped_early(self) -> bool:
        return self.stopped_epoch > 0

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def metrics_path(self) -> Path:
        return self.out_dir / "metrics.csv"

    @property
    def resume_path(self) -> Path:
        return self.out_dir / RESUME_FILE


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`finetune`; ``resume.pt`` holds the last complete epoch.

    Continue with ``finetune(resume=err.out_dir)`` or ``mmbalance finetune --resume DIR``.
    """

    def __init__(self, out_dir: Path, epochs_done: int) -> None:
        super().__init__(f"training interrupted after {epochs_done} complete epoch(s)")
        self.out_dir = out_dir
        self.epochs_done = epochs_done


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's generators (CPU and CUDA)."""
    random.seed(seed)
    torch.manual_seed(seed)


def metrics_csv(rows: list[dict[str, Any]]) -> str:
    """Render metric rows (one per epoch) as CSV text with a stable column order; ``None`` is an empty cell."""
    columns = list(METRIC_COLUMNS)
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


class _StepModule(nn.Module):
    """The training forward as one module, so DDP sees every computation (double backprop included)."""

    def __init__(self, adapter: ModelAdapter, regularizer: Regularizer, zero: Sequence[str]) -> None:
        super().__init__()
        self.adapter = adapter
        self.regularizer = regularizer
        self.zero = tuple(zero)
        self.extra = regularizer.extra_modules()  # e.g. auxiliary heads: trained (and DDP-synced) with the model

    def forward(self, inputs: dict[str, Tensor], labels: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        out = self.regularizer.step(self.adapter, zero_modalities(inputs, self.zero, self.regularizer.tokens), labels)
        penalty = out.penalty if out.penalty is not None else torch.full((), math.nan, device=labels.device)
        return out.loss, out.task_loss, out.logits, penalty


def _make_optimizers(config: TrainConfig, adapter: ModelAdapter, regularizer: Regularizer
                     ) -> tuple[list[torch.optim.Optimizer], list[Any]]:
    extra = regularizer.extra_modules()
    own = [p for p in extra.parameters() if p.requires_grad] if extra is not None else []
    if regularizer.fusion_scoped():
        head = fusion_parameters(adapter, regularizer.view)
        head_ids = {id(p) for p in head}
        rest = [p for p in adapter.parameters() if id(p) not in head_ids and p.requires_grad] + own
        groups = [rest, head] if rest else [head]
    else:
        groups = [[p for p in adapter.parameters() if p.requires_grad] + own]
    return make_optimizers(config, groups)


def _eval_spec(config: TrainConfig) -> AttributionSpec:
    return AttributionSpec(method=config.attribution, level=config.level, steps=config.attr_steps, pool=config.pool)


def finetune(config: TrainConfig | None = None, *, resume: str | Path | None = None, progress: bool = True,
             device: str | None = None, on_epoch_end: EpochCallback | None = None, force: bool = False,
             trust_checkpoint: bool = False) -> TrainResult:
    """Train ``config.model`` on ``config.data`` (from ``config.checkpoint`` when given) with a balancing method.

    Pass ``resume=DIR`` instead of ``config`` to continue an interrupted run with its saved
    configuration, optimizer, scheduler, random state and epoch (``device`` may change).
    ``on_epoch_end(row)`` is called after each epoch's files are written. The same
    ``seed`` gives identical weights; a resumed run ends with the weights and metric rows
    of an uninterrupted one. ``config.epochs`` is a cap: the run stops early once validation
    accuracy has not improved for ``config.patience`` epochs (see :mod:`.stopping`), and warns
    (:class:`TrainingWarning`) when it is still at chance after a third of the cap. Ctrl-C
    raises :class:`TrainingInterrupted`; a non-finite loss stops training with
    :class:`TrainingError`, keeping the last good checkpoint.

    A new run refuses an ``out`` directory that already holds a run unless ``force`` (its old
    checkpoints and metrics are then removed when the new run starts). One process at a time
    works in a run directory (see :class:`~mmbalance.training.rundir.RunLock`). A resumed run
    whose saved model spec is not a registered name (``module:factory``, ``file.py:factory``)
    is refused unless ``trust_checkpoint``: resuming it would import and call that code.

    Example:
        >>> finetune(TrainConfig(model="av-tiny", data="data/avd", out="runs/p", epochs=2))  # doctest: +SKIP
    """
    state: dict[str, Any] | None = None
    lock: RunLock | None = None
    try:
        if resume is not None:
            if config is not None:
                raise UsageError("give either a configuration or a run directory to resume, not both")
            if _main_process() and Path(resume).is_dir():
                lock = RunLock(resume).acquire()
            config, state = load_resume(resume, trust=trust_checkpoint)
            config.out = str(Path(resume))
        elif config is None:
            raise UsageError("finetune needs a configuration (or resume=DIR)")
        if device is not None:
            config.device = device
        config.validate()
        if state is None:
            check_output_dir(config.out, what="--out")
            if _main_process():
                lock = RunLock(config.out).acquire()  # first: a busy directory is named by its holder's PID
            with confined_to(config.out):  # links planted in the run directory are never followed
                check_new_run_dir(config.out, force=force, probe_lock=False)
        dev = resolve_device(config.device)
        if config.amp and dev.type != "cuda":
            raise UsageError("--amp (mixed precision) needs a CUDA device", hint="drop --amp or use --device cuda")
        info = init_distributed(dev)
        if info.enabled and dev.type == "cuda":
            dev = torch.device("cuda", info.local_rank)
        try:
            with deterministic_mode(config.deterministic), confined_to(config.out):
                return _train(config, state, dev, info.rank, info.world_size, progress and info.is_main,
                              on_epoch_end)
        finally:
            shutdown_distributed()
    finally:
        if lock is not None:
            lock.release()


def _main_process() -> bool:
    """Rank 0 under torchrun (read before the process group exists), or a plain process."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def _train(config: TrainConfig, state: dict[str, Any] | None, dev: torch.device, rank: int, world: int,
           progress: bool, on_epoch_end: EpochCallback | None) -> TrainResult:
    out = Path(config.out)
    main = rank == 0
    if config.batch_size % world:
        raise UsageError(f"--batch-size {config.batch_size} does not split over {world} processes",
                         hint=f"use a multiple of {world}: --batch-size is the global batch")
    wanted = [config.unimodal] if config.unimodal else config.modalities  # a unimodal run loads one input
    splits = (config.train_split,) if config.val_fraction is not None else (config.train_split, config.val_split)
    sets = [load_dataset(config.data, split=split, modalities=wanted, default_split=split) for split in splits]
    passed: tuple[str, ...] = ()
    for i, ds in enumerate(sets):
        sets[i], passed = split_pass_through(config.model, ds, config.pass_through)
    if config.val_fraction is not None:  # seeded and stratified: the same split on every rank and on resume
        sets = list(split_dataset(sets[0], config.val_fraction, seed=config.seed,
                                  name=f"{config.train_split}, {config.val_fraction:.0%} held out"))
    _check_validation_split(sets[0], sets[1])
    seed_everything(config.seed)
    spec_name, spec_args = unimodal_spec(config)
    adapter = load_model(spec_name, checkpoint=None if state else config.checkpoint,
                         trust_checkpoint=config.trust_checkpoint, model_args=spec_args,
                         num_classes=sets[0].num_classes, modalities=sets[0].modalities, output=config.output,
                         device=str(dev), call=config.call, pass_through=passed)
    train_set, val_set = (fit_to_model(adapter, ds, modalities_named=wanted is not None) for ds in sets)
    init_scales: dict[str, float] | None = state.get("init_scales") if state else None  # kept across a resume
    if config.init and state is None:  # calibrated on the validation split, the data model selection uses
        init_scales = warm_start(adapter.model, config.init, calibrate_on=iter_batches(val_set, config.batch_size)
                                 if config.init_calibrate else None)
    modalities = tuple(train_set.modalities)
    config.validate(modalities)
    regularizer = build_regularizer(config, modalities)
    target = [config.target_shares(modalities)[m] for m in modalities]
    probe = next(iter_batches(train_set, batch_size=min(2, len(train_set)))).to(dev)
    if compiled_kind(adapter.model) == "torch.export" or (compiled_kind(adapter.model) and config.regularizer != "none"):
        check_compiled(adapter.model, "finetune" + (f" -r {config.regularizer}" if config.regularizer != "none" else ""))
    # lazy layers materialize here, before the optimizers take the parameters; audit's output guards
    materialize(adapter, {**probe.inputs, **probe.extra})
    check_training_outputs(adapter, {**probe.inputs, **probe.extra}, train_set.num_classes, train_set.location)
    layers = own_embedding_layers(config)  # unimodal and late-fusion models are built-in: encode/fuse
    regularizer.tokens = find_tokens(adapter, {**probe.inputs, **probe.extra}, layers, config.pad_id)
    regularizer.check(adapter, training_view(adapter, layers, tokens=regularizer.tokens,
                                             needed_by=regularizer.needs_embeddings()),
                      probe={**probe.inputs, **probe.extra})
    optimizers, schedulers = _make_optimizers(config, adapter, regularizer)
    amp = config.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp and not torch.cuda.is_bf16_supported())
    history: list[dict[str, Any]] = []
    best_acc, best_epoch, start, stopped_epoch = -1.0, 0, 0, 0
    if state is not None:
        try:
            adapter.model.load_state_dict(state["model"])
            for opt, sd in zip(optimizers, state["optimizers"], strict=True):
                opt.load_state_dict(sd)
            for sch, sd in zip(schedulers, state["schedulers"], strict=True):
                sch.load_state_dict(sd)
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            regularizer.load_state_dict(state.get("regularizer", {}))
        except (RuntimeError, KeyError, ValueError) as err:
            raise TrainingError(f"cannot resume {out}: its training state does not fit this model "
                                f"({str(err).splitlines()[0][:200]})", hint="start a new run") from None
        history = list(state["history"])
        best_acc, best_epoch, start = float(state["best_acc"]), int(state["best_epoch"]), int(state["epoch"])
        stopped_epoch = int(state.get("stopped_epoch", 0))
        restore_rng(state["rng"])
    chance, check_at = chance_accuracy(val_set), chance_check_epoch(config.epochs)
    messages: list[str] = list(state.get("warnings", [])) if state else []
    if state is None and config.checkpoint and main:
        from ..media.provenance import decoding_mismatch  # noqa: PLC0415 - the media package, only when it can apply

        mismatch = decoding_mismatch(config.data, config.checkpoint)
        if mismatch is not None:  # fine-tuning on media decoded otherwise: fine when meant, a slip when not
            messages.append(f"{mismatch}; --checkpoint was trained on inputs decoded otherwise: decode as its "
                            f"training data was, unless the change is meant")
            warnings.warn(messages[-1], TrainingWarning, stacklevel=2)
    last_epoch = stopped_epoch or config.epochs
    run_info = {"config": config.to_dict(), "classes": list(train_set.classes), "modalities": list(modalities)}
    if passed:
        run_info["pass_through"] = list(passed)
    if spec_name != config.model:  # unimodal or late-fusion: what audit's --model and --model-arg must name
        run_info["built"] = {"model": spec_name, "model_args": spec_args}
    if init_scales is not None and config.init_calibrate:
        run_info["init_scales"] = init_scales
    if regularizer.tokens.layers:
        run_info["token_ids"] = {m: {"layer": layer, "pad_id": regularizer.tokens.pad_id}
                                 for m, layer in regularizer.tokens.layers.items()}

    def snapshot(epoch: int) -> dict[str, Any]:
        return {"config": config.to_dict(), "epoch": epoch, "model": adapter.model.state_dict(),
                "optimizers": [o.state_dict() for o in optimizers], "schedulers": [s.state_dict() for s in schedulers],
                "scaler": scaler.state_dict() if scaler.is_enabled() else {}, "rng": capture_rng(),
                "regularizer": regularizer.state_dict(),
                "history": history, "best_acc": best_acc, "best_epoch": best_epoch, "stopped_epoch": stopped_epoch,
                "warnings": messages, "init_scales": init_scales}

    if state is None:
        regularizer.observe(adapter, 0, train_set=train_set, val_set=val_set, batch_size=config.batch_size,
                            device=dev)
    if main and state is None:
        clear_run_files(out)  # a forced new run: the old run's checkpoints and metrics must not mix with it
        atomic_write_json(out / RUN_FILE, run_info)
        save_resume(out, snapshot(0))
    barrier()
    step_module: nn.Module = _StepModule(adapter, regularizer, config.zero_modalities)
    if world > 1:
        step_module = nn.parallel.DistributedDataParallel(
            step_module, device_ids=[dev.index] if dev.type == "cuda" else None)
    kept = regularizer.training_indices(train_set)  # G-Blend trains on the rest of its held-out part
    fit_set = train_set if kept is None else IndexedDataset(train_set, kept)
    sampler: DistributedSampler[int] = DistributedSampler(fit_set, num_replicas=world, rank=rank, shuffle=True,
                                                          seed=config.seed)
    local_batch = config.batch_size // world
    spec = _eval_spec(config)
    steps_per_epoch = math.ceil(len(sampler) / local_batch)
    epoch = start
    trackers = EpochTrackers(parse_log(config.log) if main else [], out)
    try:
        with progress_bar("training", total=(last_epoch - start) * steps_per_epoch, unit="steps",
                          enabled=progress) as advance:
            for epoch in range(start + 1, last_epoch + 1):
                started = time.perf_counter()
                adapter.train()
                regularizer.begin_epoch(epoch, rank)
                sampler.set_epoch(epoch)
                sums = torch.zeros(5, dtype=torch.float64)  # task loss, correct, n, penalty sum, penalty batches
                for batch in make_loader(fit_set, batch_size=local_batch, sampler=sampler):
                    batch = batch.to(dev)
                    for opt in optimizers:
                        opt.zero_grad(set_to_none=True)
                    with _autocast(dev, amp):
                        loss, task, logits, penalty = step_module({**batch.inputs, **batch.extra}, batch.labels)
                    _check_finite(loss, epoch, out, bool(history))
                    scaler.scale(loss).backward()
                    if scaler.is_enabled():
                        for opt in optimizers:
                            scaler.unscale_(opt)
                    regularizer.after_backward(adapter)
                    for opt in optimizers:
                        scaler.step(opt)
                    scaler.update()
                    size = batch.labels.shape[0]
                    sums[0] += float(task) * size
                    sums[1] += int((logits.detach().argmax(1) == batch.labels).sum())
                    sums[2] += size
                    if not math.isnan(float(penalty)):
                        sums[3] += float(penalty)
                        sums[4] += 1
                    advance(1)
                sums = all_reduce_sum(sums)
                train_seconds = time.perf_counter() - started  # the training steps alone (bench: step time)
                lr = optimizers[0].param_groups[0]["lr"]
                for sch in schedulers:
                    sch.step()
                # once, at the first validation; Shapley's absent modality is the encoding of a zero input, which
                # gives a constant embedding a share of 0: only the gradient measures (zero embedding) need the guard
                watch = epoch == 1 and main and spec.method != "shapley"
                monitor = ConstantMonitor() if watch else None
                val = evaluate(adapter, val_set, batch_size=config.batch_size, device=dev, spec=spec, target=target,
                               penalty=config.penalty, zero=config.zero_modalities, amp=amp,
                               view=regularizer.view, tokens=regularizer.tokens, monitor=monitor)
                for m in monitor.constant() if monitor is not None else ():
                    messages.append(constant_embedding_training_warning(m))
                    warnings.warn(messages[-1], TrainingWarning, stacklevel=2)
                regularizer.observe(adapter, epoch, train_set=train_set, val_set=val_set,
                                    batch_size=config.batch_size, device=dev)
                n = max(float(sums[2]), 1.0)
                lam = regularizer.lambda_at(epoch)
                row: dict[str, Any] = {
                    "epoch": epoch, "train_loss": float(sums[0]) / n, "train_accuracy": float(sums[1]) / n,
                    "val_loss": val["loss"], "val_accuracy": val["accuracy"], "lr": lr,
                    "epoch_seconds": round(time.perf_counter() - started, 4),
                    "penalty": float(sums[3] / sums[4]) if sums[4] > 0 else None, "lambda": lam,
                }
                row.update({f"share_{m}": v for m, v in val["shares"].items()})
                row["val_penalty"] = val.get("penalty")
                row["train_seconds"] = round(train_seconds, 4)
                row.update(regularizer.metrics())
                improved = val["accuracy"] > best_acc
                if improved:
                    best_acc, best_epoch = val["accuracy"], epoch
                stop = should_stop(epoch, best_epoch, config.patience) and epoch < config.epochs
                stopped_epoch = epoch if stop else 0
                row.update(epochs_since_best=epoch - best_epoch, stopped_early=int(stop))
                history.append(row)
                if epoch == check_at or (stop and epoch < check_at):
                    message = chance_warning(best_acc, chance, epoch, config.epochs)
                    if message and main:
                        messages.append(message)
                        warnings.warn(message, TrainingWarning, stacklevel=2)
                if improved and main:
                    save_state_dict(adapter, out / "best.pt")
                if main:
                    save_state_dict(adapter, out / "last.pt")
                    atomic_write_text(out / "metrics.csv", metrics_csv(history))
                    save_resume(out, snapshot(epoch))
                    trackers.log(row)
                barrier()
                if on_epoch_end is not None:
                    on_epoch_end(dict(row))
                if stop:
                    break
    except KeyboardInterrupt as err:
        if isinstance(err, TrainingInterrupted):
            raise
        raise TrainingInterrupted(out, len(history)) from None
    finally:
        trackers.close()
    if main:
        atomic_write_json(out / RUN_FILE, dict(run_info, best_epoch=best_epoch, best_val_accuracy=best_acc,
                                               epochs_done=len(history), stopped_epoch=stopped_epoch,
                                               warnings=messages))
    barrier()
    return TrainResult(out_dir=out, best_epoch=best_epoch, best_val_accuracy=best_acc, history=history,
                       resumed_from=start, stopped_epoch=stopped_epoch, warnings=messages)


def _check_validation_split(train_set: MultimodalDataset, val_set: MultimodalDataset) -> None:
    """Refuse validation labels the model cannot predict; warn when validation is the training data."""
    if val_set.num_classes > train_set.num_classes:
        raise DataError(f"the validation data {val_set.location} has {val_set.num_classes} classes, the training "
                        f"data {train_set.location} only {train_set.num_classes}",
                        hint="train and validation splits must share one list of classes")
    if train_set.location == val_set.location:
        warnings.warn(f"{train_set.location} is both the training and the validation data: the best epoch is "
                      "chosen on the training samples; give a split directory (train.pt, val.pt) for an honest "
                      "validation", MMBalanceWarning, stacklevel=2)


def _check_finite(loss: Tensor, epoch: int, out: Path, have_checkpoint: bool) -> None:
    flag = torch.tensor([0.0 if bool(torch.isfinite(loss.detach())) else 1.0])
    if float(all_reduce_sum(flag)[0]) == 0.0:
        return
    value = float(loss.detach()) if bool(flag[0]) else math.nan
    where = f"{out / 'last.pt'} and {out / RESUME_FILE} (resume with --resume {out})" if have_checkpoint else None
    raise TrainingError(
        f"the loss became {value} in epoch {epoch}; training stopped",
        hint=f"lower --lr or --lambda; the last good epoch is kept in {where}" if where
        else "lower --lr or --lambda, or check the inputs")
