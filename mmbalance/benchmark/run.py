"""``mmbalance bench``: train every method at the same budget for every seed, audit each, write the table.

Layout of ``out``::

    runs/<run>/seed<k>/      a normal finetune run directory (run.json, best.pt, metrics.csv, ...)
                 .../bench_result.json   the run's test accuracy, test shares and time, once audited
    bench.json, bench.md     every record and the per-method table
    report/index.html        the table and the accuracy vs share-variance scatter

A run whose ``bench_result.json`` exists is neither retrained nor re-audited; a run with
a ``resume.pt`` but no result continues from its last complete epoch. The directory is
untrusted input: one bench at a time works in it (a lock), a state file that is damaged or
tampered with is one clear error, and files are never written through links found there.

Example:
    >>> result = bench("av-tiny", "synthetic:av-dominance", out="bench/avd", methods=["plain", "gblend"],
    ...                seeds=[0, 1], epochs=5)  # doctest: +SKIP
    >>> result.table["gblend"]["accuracy_mean"]  # doctest: +SKIP
    0.91
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from ..attribution import get_estimator_class
from ..audit import audit
from ..data import MultimodalDataset, iter_batches, load_dataset
from ..device import resolve_device
from ..errors import DataError, MMBalanceError, UsageError
from ..io import atomic_write_json, atomic_write_text, check_output_dir, check_output_file, confined_to
from ..limits import MAX_BENCH_SEEDS, MAX_SEED, check_int
from ..models import create_model, load_model, load_state_dict, save_state_dict
from ..progress import Bar, progress_bar
from ..training import TrainConfig, finetune
from ..training.methods import unimodal_spec
from ..training.preflight import check_trainable
from ..training.resume import RESUME_FILE, RUN_FILE
from ..training.rundir import RunLock
from .methods import DEFAULT_METHODS, RECOMMENDED, WARM_LR_FACTOR, WARM_METHODS, RunPlan, plan_runs
from .render import bench_markdown, write_bench_html
from .robustness import baseline_warnings, robustness
from .summary import BENCH_SCHEMA, DEFAULT_MEASURE, BenchRecord, bench_verdict, record_measure, summarize

__all__ = ["BENCH_SCHEMA", "BenchResult", "bench", "measure_step_seconds", "RESULT_FILE"]

RESULT_FILE = "bench_result.json"

RunCallback = Callable[[str, int, str], None]


@dataclass(frozen=True)
class BenchResult:
    """Every record, the per-method ``table`` (see :func:`~mmbalance.benchmark.summary.summarize`) and the files."""

    out_dir: Path
    records: list[BenchRecord]
    table: dict[str, dict[str, Any]]
    trained: list[str]

    @property
    def verdict(self) -> str:
        """One sentence naming the best method or the tie (see :func:`~mmbalance.benchmark.summary.bench_verdict`)."""
        return bench_verdict(self.table)

    @property
    def markdown_path(self) -> Path:
        return self.out_dir / "bench.md"

    @property
    def json_path(self) -> Path:
        return self.out_dir / "bench.json"

    @property
    def html_path(self) -> Path:
        return self.out_dir / "report" / "index.html"


def bench(model: str, data: str, *, out: str | Path, methods: Sequence[str] = DEFAULT_METHODS,
          seeds: Sequence[int] = (0, 1, 2), epochs: int = 10, lr: float = 1e-3, batch_size: int = 32,
          model_args: Mapping[str, Any] | None = None, device: str = "auto", test_split: str = "test",
          steps: int = 16, train: Mapping[str, Any] | None = None, progress: bool = True,
          on_run: RunCallback | None = None, robust: bool = True, measure: str = DEFAULT_MEASURE) -> BenchResult:
    """Train, audit and tabulate ``methods`` x ``seeds`` on ``data`` at ``epochs`` epochs each.

    ``train`` holds further :class:`~mmbalance.training.TrainConfig` fields shared by every
    method (e.g. ``{"lambda_": 3.0}``); a method's own settings override them. ``on_run(run,
    seed, status)`` is told ``"done"`` (already finished), ``"trained"`` or ``"resumed"``.
    Accuracy and shares are measured on ``test_split`` with ``measure`` at the input level
    (default: the audit's primary measure, exact Shapley values of modality removal; ``ig``
    takes ``steps`` steps), targeting the predicted class. A finished run audited with another
    measure is re-audited, not retrained. With ``robust``
    each run's test accuracy is also measured with each modality zeroed and noise-corrupted
    (:mod:`.robustness`). ``methods`` may name ``recommended`` (:data:`~.methods.RECOMMENDED`).
    """
    out = Path(out)
    if epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {epochs}")
    if len(seeds) > MAX_BENCH_SEEDS:  # before listing them: range(10**14) must not be materialised
        raise UsageError(f"--seeds must be at most {MAX_BENCH_SEEDS} (each seed trains every method), got {len(seeds)}")
    seeds = list(dict.fromkeys(check_int("seed", int(s), 0, MAX_SEED) for s in seeds))
    if not seeds:
        raise UsageError("--seeds must be at least 1")
    check_int("--steps", steps, 1, 1_000_000)
    get_estimator_class(measure)  # an unknown --measure fails before any work
    check_output_dir(out, what="--out")  # every target before any work
    with confined_to(out):
        for name in ("bench.json", "bench.md"):
            check_output_file(out / name, what=f"--out's {name}")
        check_output_dir(out / "report", what="--out's report directory")
    probe = load_dataset(data, split="train", default_split="train")
    modalities = list(probe.modalities)
    plans = plan_runs(methods, modalities, epochs=epochs)
    base = dict(model=model, data=data, epochs=epochs, lr=lr, batch_size=batch_size, device=device,
                model_args=dict(model_args or {}))
    base.update(dict(train or {}))
    for plan in plans:  # fail on bad settings, and on methods the model cannot be trained with, before any training
        if plan.method != "ensemble":
            config = _config(base, plan, out, seeds[0])
            config.validate(modalities)
            check_trainable(config, what=f"bench method {plan.name!r}")
    test_sets: dict[tuple[str, ...], MultimodalDataset] = {}

    def test_set(mods: Sequence[str]) -> MultimodalDataset:
        key = tuple(mods)
        if key not in test_sets:
            test_sets[key] = load_dataset(data, split=test_split, modalities=list(mods), default_split=test_split)
        return test_sets[key]

    test_set(modalities)  # a missing --test-split fails now, not after the training
    with RunLock(out), confined_to(out):  # one bench at a time; links planted in it are never followed
        trains = [plan for plan in plans if plan.method != "ensemble"]  # the ensemble is assembled, not trained
        todo = sum(1 for seed in seeds for plan in trains
                   if not (out / "runs" / plan.name / f"seed{seed}" / RESULT_FILE).is_file())
        if progress and todo:
            try:
                step, per_epoch = measure_step_seconds(model, data, batch_size=batch_size,
                                                       model_args=dict(model_args or {}), device=device)
            except (MMBalanceError, RuntimeError, TypeError, ValueError):  # e.g. a plug-in that needs --call dict
                Bar().print("bench: no time estimate (one plain training step of the model could not be timed)")
            else:
                Bar().print(eta_line(todo, epochs, per_epoch, step))
        return _bench_runs(model, data, out, plans, len(trains), seeds, base, modalities, test_set, device, steps,
                           epochs, test_split, progress, on_run, robust, measure)


def _bench_runs(model: str, data: str, out: Path, plans: Sequence[RunPlan], n_trained: int, seeds: list[int],
                base: Mapping[str, Any], modalities: list[str],
                test_set: Callable[[Sequence[str]], MultimodalDataset], device: str, steps: int, epochs: int,
                test_split: str, progress: bool, on_run: RunCallback | None, robust: bool,
                measure: str) -> BenchResult:
    records: list[BenchRecord] = []
    trained: list[str] = []
    with progress_bar("bench", total=n_trained * len(seeds) * epochs, unit="epochs", enabled=progress) as bar:
        for seed in seeds:
            done: dict[str, BenchRecord] = {}
            for plan in plans:
                run_dir = out / "runs" / plan.name / f"seed{seed}"
                bar.describe(f"{plan.name} seed {seed}")
                counted = [0]

                def epoch_done(row: Mapping[str, Any], bar: Bar = bar, counted: list[int] = counted) -> None:
                    counted[0] += 1
                    bar(1)

                record, status = _run_one(plan, run_dir, base, seed, done, modalities, test_set, device, steps,
                                          out, on_epoch_end=epoch_done, robust=robust, measure=measure)
                if plan.method != "ensemble":
                    bar(max(0, epochs - counted[0]))  # finished earlier, stopped early or resumed
                if status != "done":
                    trained.append(f"{plan.name}/seed{seed}")
                done[plan.name] = record
                records.append(record)
                if progress:
                    bar.print(f"{plan.name} seed {seed}: {status} (test accuracy {record.test_accuracy:.1%})")
                if on_run is not None:
                    on_run(plan.name, seed, status)
    table = summarize(records)
    doc = {"schema": BENCH_SCHEMA, "model": model, "data": data, "epochs": epochs, "seeds": seeds,
           "test_split": test_split, "measure": measure, "modalities": modalities,
           "methods": [p.name for p in plans],
           "settings": {p.name: p.overrides for p in plans},
           "records": [r.to_dict() for r in records], "table": table, "verdict": bench_verdict(table)}
    doc["recommended"] = RECOMMENDED
    doc["warnings"] = baseline_warnings(table)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "bench.json", doc)
    atomic_write_text(out / "bench.md", bench_markdown(doc))
    write_bench_html(doc, out / "report")
    return BenchResult(out_dir=out, records=records, table=table, trained=trained)


def measure_step_seconds(model: str, data: str, *, batch_size: int, model_args: Mapping[str, Any] | None = None,
                         device: str = "auto", steps: int = 3) -> tuple[float, int]:
    """(median seconds of one plain training step, steps per epoch) on ``data``'s training split: forward,
    cross-entropy, backward and an Adam step of a fresh ``model``, after one warm-up step. What
    :func:`bench` multiplies out into its ETA before it starts.

    Example:
        >>> seconds, per_epoch = measure_step_seconds("av-tiny", "synthetic:av-dominance?n_train=64",
        ...                                           batch_size=32, device="cpu")
        >>> per_epoch, seconds > 0
        (2, True)
    """
    dev = resolve_device(device)
    train_set = load_dataset(data, split="train", default_split="train")
    adapter = load_model(model, model_args=dict(model_args or {}), num_classes=train_set.num_classes,
                         modalities=train_set.modalities, device=str(dev)).train()
    optimizer = torch.optim.Adam(adapter.parameters(), lr=1e-3)
    times = []
    for i, batch in enumerate(iter_batches(train_set, batch_size=batch_size)):
        if i > steps:
            break
        batch = batch.to(dev)
        started = time.perf_counter()
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(adapter({**batch.inputs, **batch.extra}), batch.labels)
        loss.backward()
        optimizer.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i > 0 or len(train_set) <= batch_size:  # the first step warms up
            times.append(time.perf_counter() - started)
    return float(statistics.median(times)), math.ceil(len(train_set) / batch_size)


def eta_line(runs: int, epochs: int, steps_per_epoch: int, step_seconds: float) -> str:
    """The line :func:`bench` prints before it starts.

    Example:
        >>> eta_line(6, 10, 63, 0.05)
        'bench: 6 runs x 10 epochs x 63 steps, a plain step takes 50 ms: about 3 min of training (balancing methods take up to a few times longer per step; audits come on top)'
    """
    total = runs * epochs * steps_per_epoch * step_seconds
    when = f"{total / 60:.0f} min" if total >= 90 else f"{total:.0f} s"
    return (f"bench: {runs} runs x {epochs} epochs x {steps_per_epoch} steps, a plain step takes "
            f"{step_seconds * 1000:.0f} ms: about {when} of training (balancing methods take up to a few times "
            "longer per step; audits come on top)")


def _config(base: Mapping[str, Any], plan: RunPlan, out: Path, seed: int) -> TrainConfig:
    fields = dict(base)
    fields.update(plan.overrides)
    fields.update(seed=seed, out=str(out / "runs" / plan.name / f"seed{seed}"))
    if plan.method in WARM_METHODS:  # merge this seed's unimodal runs, fine-tune at a small learning rate
        fields["lr"] = float(base["lr"]) * WARM_LR_FACTOR
        fields["init"] = {name.split("-", 1)[1]: str(out / "runs" / name / f"seed{seed}" / "best.pt")
                          for name in plan.members}
    return TrainConfig(**fields)


_FREE = {"out", "device", "init"}  # may differ between invocations (init follows out)


def _check_same_settings(run_dir: Path, config: TrainConfig) -> None:
    """Refuse to reuse a run trained with other settings (a stale row would be a silent wrong answer)."""
    try:
        saved = json.loads((run_dir / RUN_FILE).read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return
    if not isinstance(saved, dict):
        return
    wanted = json.loads(json.dumps(config.to_dict()))
    changed = sorted(k for k in wanted if k not in _FREE and saved.get(k, wanted[k]) != wanted[k])
    if changed:
        what = ", ".join(f"{k} {saved.get(k)!r} -> {wanted[k]!r}" for k in changed[:4])
        raise UsageError(f"{run_dir} was trained with other settings ({what})",
                         hint="use another --out, or delete that run directory to retrain it")


def _finished(run_dir: Path) -> bool:
    try:
        info = json.loads((run_dir / RUN_FILE).read_text())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(info, dict) and "best_val_accuracy" in info


def _median_seconds(run_dir: Path, column: str) -> float:
    path = run_dir / "metrics.csv"
    try:
        with open(path, newline="") as fh:
            values = [float(row[column]) for row in csv.DictReader(fh) if row.get(column)]
    except (OSError, ValueError, TypeError, csv.Error) as err:
        raise _damaged(path, f"unreadable ({type(err).__name__})") from None
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise _damaged(path, f"its {column} column holds a negative or non-finite value")
    return float(statistics.median(values)) if values else 0.0


def _damaged(path: Path, why: str) -> DataError:
    return DataError(f"{path} is damaged or was edited: {why}",
                     hint=f"delete {path.parent} to train and audit that run again")


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def read_record(path: Path) -> BenchRecord:
    """A run's ``bench_result.json``, checked field by field; anything else is one :class:`DataError`."""
    try:
        if path.stat().st_size > 1 << 20:
            raise ValueError("larger than 1 MiB")
        doc = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as err:
        raise _damaged(path, f"not valid JSON ({str(err)[:80]})") from None
    if not isinstance(doc, dict):
        raise _damaged(path, "not a JSON object")

    def number(key: str, low: float, high: float, *, optional: bool = False) -> None:
        value = doc.get(key)
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)) \
                or not low <= float(value) <= high:
            raise _damaged(path, f"{key} is {str(value)[:40]!r}, not a number between {low} and {high}")

    for key in ("run", "method"):
        if not isinstance(doc.get(key), str):
            raise _damaged(path, f"{key} is not a string")
    if isinstance(doc.get("seed"), bool) or not isinstance(doc.get("seed"), int):
        raise _damaged(path, "seed is not an integer")
    number("seed", 0, MAX_SEED)
    number("test_accuracy", 0.0, 1.0)
    number("train_seconds", 0.0, 1e12)
    number("best_val_accuracy", 0.0, 1.0, optional=True)
    number("best_epoch", 0, 1e12, optional=True)
    shares = doc.get("shares")
    if not isinstance(shares, dict) or not all(isinstance(k, str) for k in shares):
        raise _damaged(path, "shares is not an object of modality -> share")
    for m, v in shares.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
            raise _damaged(path, f"the share of {m[:40]!r} is {str(v)[:40]!r}, not a number between 0 and 1")
    if not isinstance(doc.get("extra", {}), dict) or not isinstance(doc.get("run_dir", ""), str):
        raise _damaged(path, "extra or run_dir has the wrong type")
    with contextlib.suppress(KeyError):
        for v in doc["extra"].values():
            if isinstance(v, float) and not math.isfinite(v):
                raise _damaged(path, "extra holds a non-finite number")
    return BenchRecord.from_dict(doc)


def _run_one(plan: RunPlan, run_dir: Path, base: Mapping[str, Any], seed: int, done: Mapping[str, BenchRecord],
             modalities: Sequence[str], test_set: Callable[[Sequence[str]], MultimodalDataset], device: str,
             steps: int, out: Path, on_epoch_end: Callable[[Mapping[str, Any]], None] | None = None,
             robust: bool = True, measure: str = DEFAULT_MEASURE) -> tuple[BenchRecord, str]:
    if plan.method != "ensemble":
        _check_same_settings(run_dir, _config(base, plan, out, seed))
    result_path = run_dir / RESULT_FILE
    if result_path.is_file() or result_path.is_symlink():
        if result_path.is_symlink() or not result_path.is_file():
            raise _damaged(result_path, "it is a link, not the file bench wrote")
        cached = read_record(result_path)
        if record_measure(cached) == measure:
            return cached, "done"
        # audited with another measure (e.g. a bench of an earlier version): audit again, never retrain
    status = "trained"
    audit_extra: dict[str, Any] = {}
    if plan.method == "ensemble":
        spec, args, ckpt, seconds = _assemble_ensemble(plan, run_dir, done, base, out, seed)
        mods = list(modalities)
        info = {}
        epoch_seconds = sum(done[n].extra.get("epoch_seconds", 0.0) for n in plan.members)
    else:
        if _finished(run_dir):
            status = "audited"
        elif (run_dir / RESUME_FILE).is_file():
            finetune(resume=run_dir, progress=False, on_epoch_end=on_epoch_end)
            status = "resumed"
        else:
            finetune(_config(base, plan, out, seed), progress=False, on_epoch_end=on_epoch_end)
        config = _config(base, plan, out, seed)
        try:
            info = json.loads((run_dir / RUN_FILE).read_text(), parse_constant=_reject_constant)
            if not isinstance(info, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError, RecursionError) as err:
            raise _damaged(run_dir / RUN_FILE, f"not valid JSON ({str(err)[:80]})") from None
        for key, high in (("best_val_accuracy", 1.0), ("best_epoch", 1e12)):
            value = info.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not 0 <= value <= high):
                raise _damaged(run_dir / RUN_FILE, f"{key} is {str(value)[:40]!r}")
        spec, args = unimodal_spec(config)
        mods = [config.unimodal] if config.unimodal else list(modalities)
        if not config.unimodal:  # a plug-in's extra inputs and call style, as it was trained
            audit_extra = {"pass_through": config.pass_through, "call": config.call}
        ckpt = run_dir / "best.pt"
        seconds = _median_seconds(run_dir, "train_seconds") or _median_seconds(run_dir, "epoch_seconds")
        epoch_seconds = _median_seconds(run_dir, "epoch_seconds")
    report = audit(spec, test_set(mods), checkpoint=str(ckpt), model_args=args, methods=[measure], steps=steps,
                   bootstrap=0, progress=False, device=device, **audit_extra)
    shares = {m: float(report.shares.get(m, 0.0)) for m in modalities}
    extra: dict[str, Any] = {"epoch_seconds": epoch_seconds, "measure": measure}
    if robust:
        extra["robustness"] = robustness(spec, test_set(mods), checkpoint=str(ckpt), model_args=args,
                                         modalities=modalities, device=device, seed=seed)
    record = BenchRecord(run=plan.name, method=plan.method, seed=seed, test_accuracy=float(report.accuracy),
                         shares=shares, train_seconds=seconds, best_val_accuracy=info.get("best_val_accuracy"),
                         best_epoch=info.get("best_epoch"), run_dir=str(run_dir), extra=extra)
    atomic_write_json(result_path, record.to_dict())
    return record, status


def _assemble_ensemble(plan: RunPlan, run_dir: Path, done: Mapping[str, BenchRecord], base: Mapping[str, Any],
                       out: Path, seed: int) -> tuple[str, dict[str, Any], Path, float]:
    """Write ``best.pt`` and ``run.json`` of the ensemble of this seed's unimodal runs."""
    members = []
    state: dict[str, torch.Tensor] = {}
    for i, name in enumerate(plan.members):
        member_dir = out / "runs" / name / f"seed{seed}"
        modality = name.split("-", 1)[1]
        member = {"base": base["model"], "modality": modality, "base_args": dict(base["model_args"])}
        layer = (base.get("embedding_layers") or {}).get(modality)
        if layer:  # a plug-in's encoder module (--embedding-layer)
            member["layer"] = layer
        members.append(member)
        state.update({f"members.{i}.{k}": v for k, v in load_state_dict(member_dir / "best.pt").items()})
    args = {"members": members, "combine": "softmax"}
    num_classes = int(next(v for k, v in state.items() if k.endswith("fusion.fc.bias")).shape[0])
    model = create_model("ensemble", num_classes=num_classes, model_args=args)
    model.load_state_dict(state)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_state_dict(model, run_dir / "best.pt")
    atomic_write_json(run_dir / RUN_FILE, {"model": "ensemble", "model_args": args, "members": list(plan.members)})
    return "ensemble", args, run_dir / "best.pt", sum(done[n].train_seconds for n in plan.members)
