"""``mmbalance bench``: train every method at the same budget for every seed, audit each, write the table.

Layout of ``out``::

    runs/<run>/seed<k>/      a normal finetune run directory (run.json, best.pt, metrics.csv, ...)
                 .../bench_result.json   the run's test accuracy, test shares and time, once audited
    bench.json, bench.md     every record and the per-method table
    report/index.html        the table and the accuracy vs share-variance scatter

A run whose ``bench_result.json`` exists is neither retrained nor re-audited; a run with
a ``resume.pt`` but no result continues from its last complete epoch.

Example:
    >>> result = bench("av-tiny", "synthetic:av-dominance", out="bench/avd", methods=["plain", "gblend"],
    ...                seeds=[0, 1], epochs=5)  # doctest: +SKIP
    >>> result.table["gblend"]["accuracy_mean"]  # doctest: +SKIP
    0.91
"""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from ..audit import audit
from ..data import MultimodalDataset, load_dataset
from ..errors import UsageError
from ..io import atomic_write_json, atomic_write_text
from ..models import create_model, load_state_dict, save_state_dict
from ..progress import progress_bar
from ..training import TrainConfig, finetune
from ..training.resume import RESUME_FILE, RUN_FILE
from .methods import DEFAULT_METHODS, RECOMMENDED, WARM_LR_FACTOR, WARM_METHODS, RunPlan, plan_runs
from .render import bench_markdown, write_bench_html
from .robustness import baseline_warnings, robustness
from .summary import BENCH_SCHEMA, BenchRecord, summarize

__all__ = ["BENCH_SCHEMA", "BenchResult", "bench", "RESULT_FILE"]

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
          on_run: RunCallback | None = None, robust: bool = True) -> BenchResult:
    """Train, audit and tabulate ``methods`` x ``seeds`` on ``data`` at ``epochs`` epochs each.

    ``train`` holds further :class:`~mmbalance.training.TrainConfig` fields shared by every
    method (e.g. ``{"lambda_": 3.0}``); a method's own settings override them. ``on_run(run,
    seed, status)`` is told ``"done"`` (already finished), ``"trained"`` or ``"resumed"``.
    Accuracy and shares are measured on ``test_split`` with Integrated Gradients
    (``steps`` steps) at the input level, targeting the predicted class. With ``robust``
    each run's test accuracy is also measured with each modality zeroed and noise-corrupted
    (:mod:`.robustness`). ``methods`` may name ``recommended`` (:data:`~.methods.RECOMMENDED`).
    """
    out = Path(out)
    if epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {epochs}")
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if not seeds:
        raise UsageError("--seeds must be at least 1")
    probe = load_dataset(data, split="train", default_split="train")
    modalities = list(probe.modalities)
    plans = plan_runs(methods, modalities, epochs=epochs)
    base = dict(model=model, data=data, epochs=epochs, lr=lr, batch_size=batch_size, device=device,
                model_args=dict(model_args or {}))
    base.update(dict(train or {}))
    for plan in plans:  # fail on bad settings before any training
        if plan.method != "ensemble":
            _config(base, plan, out, seeds[0]).validate(modalities)
    records: list[BenchRecord] = []
    trained: list[str] = []
    test_sets: dict[tuple[str, ...], MultimodalDataset] = {}

    def test_set(mods: Sequence[str]) -> MultimodalDataset:
        key = tuple(mods)
        if key not in test_sets:
            test_sets[key] = load_dataset(data, split=test_split, modalities=list(mods), default_split=test_split)
        return test_sets[key]

    with progress_bar("bench", total=len(plans) * len(seeds), unit="runs", enabled=progress) as advance:
        for seed in seeds:
            done: dict[str, BenchRecord] = {}
            for plan in plans:
                run_dir = out / "runs" / plan.name / f"seed{seed}"
                record, status = _run_one(plan, run_dir, base, seed, done, modalities, test_set, device, steps,
                                          out, robust)
                if status != "done":
                    trained.append(f"{plan.name}/seed{seed}")
                done[plan.name] = record
                records.append(record)
                if on_run is not None:
                    on_run(plan.name, seed, status)
                advance(1)
    table = summarize(records)
    doc = {"schema": BENCH_SCHEMA, "model": model, "data": data, "epochs": epochs, "seeds": seeds,
           "test_split": test_split, "modalities": modalities, "methods": [p.name for p in plans],
           "settings": {p.name: p.overrides for p in plans},
           "records": [r.to_dict() for r in records], "table": table}
    doc["recommended"] = RECOMMENDED
    doc["warnings"] = baseline_warnings(table)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "bench.json", doc)
    atomic_write_text(out / "bench.md", bench_markdown(doc))
    write_bench_html(doc, out / "report")
    return BenchResult(out_dir=out, records=records, table=table, trained=trained)


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
    except (OSError, ValueError, KeyError, TypeError):
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
    except (OSError, ValueError):
        return False
    return "best_val_accuracy" in info


def _median_seconds(run_dir: Path, column: str) -> float:
    with open(run_dir / "metrics.csv", newline="") as fh:
        values = [float(row[column]) for row in csv.DictReader(fh) if row.get(column)]
    return float(statistics.median(values)) if values else 0.0


def _run_one(plan: RunPlan, run_dir: Path, base: Mapping[str, Any], seed: int, done: Mapping[str, BenchRecord],
             modalities: Sequence[str], test_set: Callable[[Sequence[str]], MultimodalDataset], device: str,
             steps: int, out: Path, robust: bool = True) -> tuple[BenchRecord, str]:
    if plan.method != "ensemble":
        _check_same_settings(run_dir, _config(base, plan, out, seed))
    result_path = run_dir / RESULT_FILE
    if result_path.is_file():
        return BenchRecord.from_dict(json.loads(result_path.read_text())), "done"
    status = "trained"
    if plan.method == "ensemble":
        spec, args, ckpt, seconds = _assemble_ensemble(plan, run_dir, done, base, out, seed)
        mods = list(modalities)
        info = {}
        epoch_seconds = sum(done[n].extra.get("epoch_seconds", 0.0) for n in plan.members)
    else:
        if _finished(run_dir):
            status = "audited"
        elif (run_dir / RESUME_FILE).is_file():
            finetune(resume=run_dir, progress=False)
            status = "resumed"
        else:
            finetune(_config(base, plan, out, seed), progress=False)
        config = _config(base, plan, out, seed)
        info = json.loads((run_dir / RUN_FILE).read_text())
        if config.unimodal:
            spec, args = "unimodal", {"base": config.model, "modality": config.unimodal,
                                      "base_args": dict(config.model_args)}
            mods = [config.unimodal]
        else:
            spec, args, mods = config.model, dict(config.model_args), list(modalities)
        ckpt = run_dir / "best.pt"
        seconds = _median_seconds(run_dir, "train_seconds") or _median_seconds(run_dir, "epoch_seconds")
        epoch_seconds = _median_seconds(run_dir, "epoch_seconds")
    report = audit(spec, test_set(mods), checkpoint=str(ckpt), model_args=args, methods=["ig"], steps=steps,
                   bootstrap=0, progress=False, device=device)
    shares = {m: float(report.shares.get(m, 0.0)) for m in modalities}
    extra: dict[str, Any] = {"epoch_seconds": epoch_seconds}
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
        members.append({"base": base["model"], "modality": modality, "base_args": dict(base["model_args"])})
        state.update({f"members.{i}.{k}": v for k, v in load_state_dict(member_dir / "best.pt").items()})
    args = {"members": members, "combine": "softmax"}
    num_classes = int(next(v for k, v in state.items() if k.endswith("fusion.fc.bias")).shape[0])
    model = create_model("ensemble", num_classes=num_classes, model_args=args)
    model.load_state_dict(state)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_state_dict(model, run_dir / "best.pt")
    atomic_write_json(run_dir / RUN_FILE, {"model": "ensemble", "model_args": args, "members": list(plan.members)})
    return "ensemble", args, run_dir / "best.pt", sum(done[n].train_seconds for n in plan.members)
