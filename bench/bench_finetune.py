"""Balancing methods side by side on the built-in planted-imbalance data (3 seeds, mean ± std).

Every method trains ``av-tiny`` (concat fusion) from scratch on ``synthetic:av-dominance``
(2000/500/1000 samples) for the same number of epochs (default 3: a short budget in
which the plain model still leans on audio) with Adam, lr 2e-3, batch 32, cosine
schedule, and keeps the best validation epoch. Rows:

* plain, OGM-GE (alpha 0.5), modality dropout (p 0.5);
* the attribution regularizer at the embedding level (gradient x input, l1 pool, l2
  penalty, equal target) for a few lambdas and both scopes, and at the input level;
* unimodal baselines: av-tiny trained with the other modality replaced by zeros.

Columns: test accuracy; each modality's accuracy alone (the fused model with the other
modality zeroed; for the unimodal rows, the model's own modality); modality shares from
an Integrated Gradients audit (16 steps, zero baseline, attributing the predicted class)
at the embedding level and at the input level, and the variance of those shares across
modalities; the training-step time relative to a plain step (median of interleaved
timed steps on the same batches). Prints the table and puts it into ``docs/results.md``
(between the ``bench_finetune`` markers; the discussion around it is kept).

Usage::

    python bench/bench_finetune.py                    # 3-9 min on 2 cores
    python bench/bench_finetune.py --seeds 0 --epochs 2 --quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmbalance.audit import audit  # noqa: E402
from mmbalance.data import load_dataset, make_loader  # noqa: E402
from mmbalance.data.synthetic import write_synthetic  # noqa: E402
from mmbalance.models import load_model  # noqa: E402
from mmbalance.results import imbalance_figures  # noqa: E402
from mmbalance.training import TrainConfig, build_regularizer, evaluate, finetune  # noqa: E402
from mmbalance.training.loop import _make_optimizers, zero_modalities  # noqa: E402

MODEL = "av-tiny"
MODALITIES = ("audio", "visual")

ATTR = {"regularizer": "attribution"}
METHODS: dict[str, dict[str, Any]] = {
    "plain": {},
    "ogm-ge (alpha 0.5)": {"regularizer": "ogm-ge", "alpha": 0.5},
    "modality dropout (p 0.5)": {"regularizer": "modality-dropout", "p": 0.5},
    "attr emb fusion λ0.3": {**ATTR, "scope": "fusion", "lambda_": 0.3},
    "attr emb fusion λ1": {**ATTR, "scope": "fusion", "lambda_": 1.0},
    "attr emb fusion λ3": {**ATTR, "scope": "fusion", "lambda_": 3.0},
    "attr emb all λ0.3": {**ATTR, "scope": "all", "lambda_": 0.3},
    "attr emb all λ1": {**ATTR, "scope": "all", "lambda_": 1.0},
    "attr input fusion λ1": {**ATTR, "scope": "fusion", "lambda_": 1.0, "level": "input"},
    "attr input all λ1": {**ATTR, "scope": "all", "lambda_": 1.0, "level": "input"},
    "audio only (visual zeroed)": {"zero_modalities": ["visual"]},
    "visual only (audio zeroed)": {"zero_modalities": ["audio"]},
}
QUICK = ["plain", "ogm-ge (alpha 0.5)", "modality dropout (p 0.5)", "attr emb fusion λ1", "attr emb all λ1",
         "attr input fusion λ1", "audio only (visual zeroed)", "visual only (audio zeroed)"]


def train_and_measure(name: str, settings: dict[str, Any], data: str, seed: int, epochs: int, work: Path,
                      steps: int) -> dict[str, Any]:
    cfg = TrainConfig(model=MODEL, data=data, out=str(work / f"{name}-{seed}".replace(" ", "_")), epochs=epochs,
                      lr=2e-3, batch_size=32, seed=seed, device="cpu", **settings)
    started = time.perf_counter()
    result = finetune(cfg, progress=False)
    seconds = time.perf_counter() - started
    test = load_dataset(data, split="test")
    adapter = load_model(MODEL, checkpoint=str(result.best_path), num_classes=test.num_classes,
                         modalities=MODALITIES)
    zero = list(settings.get("zero_modalities", []))
    acc = evaluate(adapter, test, batch_size=100, device=torch.device("cpu"), zero=zero)["accuracy"]
    alone = {m: None if m in zero else evaluate(adapter, test, batch_size=100, device=torch.device("cpu"),
                                                zero=[o for o in MODALITIES if o != m])["accuracy"]
             for m in MODALITIES}
    row: dict[str, Any] = {"method": name, "seed": seed, "test_accuracy": acc, "train_seconds": seconds,
                           "alone": alone, "best_epoch": result.best_epoch}
    if zero:  # a unimodal model: attribution shares say nothing
        return row
    for level in ("embedding", "input"):
        a = audit(adapter, test, methods=["ig"], level=level, steps=steps, batch_size=100, device="cpu",
                  progress=False, bootstrap=0, seed=seed)
        row[f"shares_{level}"] = dict(a.shares)
        row[f"variance_{level}"] = imbalance_figures(a.shares)["share_variance"]
    return row


def step_times(data: str, names: list[str], repeats: int = 12) -> dict[str, float]:
    """Median seconds per training step (forward, penalty, backward, optimizer) on the same batches."""
    train = load_dataset(data, split="train")
    batches = [b for _, b in zip(range(4), make_loader(train, batch_size=32, shuffle=True, seed=0))]
    setups = {}
    for name in names:
        settings = METHODS[name]
        cfg = TrainConfig(model=MODEL, data=data, out="-", **settings)
        reg = build_regularizer(cfg, MODALITIES)
        torch.manual_seed(0)
        adapter = load_model(MODEL, num_classes=train.num_classes, modalities=MODALITIES)
        adapter.train()
        reg.check(adapter)
        reg.begin_epoch(1)
        optimizers, _ = _make_optimizers(cfg, adapter, reg)
        setups[name] = (adapter, reg, optimizers, list(settings.get("zero_modalities", [])))
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats + 2):  # interleaved, so background load hits every method alike
        for name, (adapter, reg, optimizers, zero) in setups.items():
            batch = batches[r % len(batches)]
            started = time.perf_counter()
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            out = reg.step(adapter, zero_modalities(batch.inputs, zero), batch.labels)
            out.loss.backward()
            reg.after_backward(adapter)
            for opt in optimizers:
                opt.step()
            if r >= 2:  # warm-up steps excluded
                samples[name].append(time.perf_counter() - started)
    return {n: statistics.median(v) for n, v in samples.items()}


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(rows: list[dict[str, Any]], times: dict[str, float], names: list[str]) -> list[dict[str, Any]]:
    plain_step = times.get("plain")
    table = []
    for name in names:
        rs = [r for r in rows if r["method"] == name]
        entry: dict[str, Any] = {"method": name, "n": len(rs), "test_accuracy": mean_std([r["test_accuracy"] for r in rs]),
                                 "alone": {m: None if any(r["alone"][m] is None for r in rs)
                                           else mean_std([r["alone"][m] for r in rs]) for m in MODALITIES},
                                 "step_ratio": times[name] / plain_step if plain_step else None,
                                 "step_ms": 1000 * times[name]}
        for level in ("embedding", "input"):
            if all(f"shares_{level}" in r for r in rs):
                entry[f"shares_{level}"] = {m: mean_std([r[f"shares_{level}"][m] for r in rs]) for m in MODALITIES}
                entry[f"variance_{level}"] = mean_std([r[f"variance_{level}"] for r in rs])
        plain = {r["seed"]: r for r in rows if r["method"] == "plain"}
        entry["delta"] = [r["test_accuracy"] - plain[r["seed"]]["test_accuracy"] for r in rs if r["seed"] in plain]
        table.append(entry)
    base = next((e for e in table if e["method"] == "plain"), None)
    for e in table:
        for level in ("embedding", "input"):
            v, b = e.get(f"variance_{level}"), base.get(f"variance_{level}") if base else None
            e[f"cut_{level}"] = 1 - v[0] / b[0] if v is not None and b is not None and b[0] > 0 else None
    return table


def markdown(table: list[dict[str, Any]], *, seeds: list[int], epochs: int, minutes: float) -> str:
    def ms(pair: tuple[float, float] | None, scale: float = 100, digits: int = 1) -> str:
        return "—" if pair is None else f"{scale * pair[0]:.{digits}f} ± {scale * pair[1]:.{digits}f}"

    lines = [f"Seeds {', '.join(map(str, seeds))}; {epochs} epochs from scratch; mean ± std over seeds; "
             f"bench wall time {minutes:.1f} min.", "",
             "| method | test acc % | Δ acc vs plain, pts (per seed) | audio alone % | visual alone % "
             "| emb. shares a/v % | emb. share var. (cut) | input IG shares a/v % | input IG share var. (cut) "
             "| step × plain |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for e in table:
        def shares(level: str, e: dict[str, Any] = e) -> str:
            s = e.get(f"shares_{level}")
            return "—" if s is None else f"{100 * s['audio'][0]:.0f} / {100 * s['visual'][0]:.0f}"

        def var(level: str, e: dict[str, Any] = e) -> str:
            v, cut = e.get(f"variance_{level}"), e.get(f"cut_{level}")
            if v is None:
                return "—"
            return f"{v[0]:.4f} ± {v[1]:.4f}" + ("" if cut is None or e["method"] == "plain" else f" ({-100 * cut:+.0f}%)")

        ratio = "—" if e["step_ratio"] is None else f"{e['step_ratio']:.2f}"
        delta = " / ".join(f"{100 * d:+.1f}" for d in e["delta"]) if e["method"] != "plain" else "—"
        lines.append(f"| {e['method']} | {ms(e['test_accuracy'])} | {delta} | {ms(e['alone']['audio'])} | "
                     f"{ms(e['alone']['visual'])} | {shares('embedding')} | {var('embedding')} | {shares('input')} | "
                     f"{var('input')} | {ratio} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=16, help="IG steps of the audits")
    parser.add_argument("--quick", action="store_true", help="fewer methods")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results.md",
                        help="the table replaces the bench section of this file")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw rows here")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    names = QUICK if args.quick else list(METHODS)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mmbalance-bench-") as tmp:
        work = Path(tmp)
        for seed in args.seeds:
            data_dir = work / f"data-{seed}"
            write_synthetic(data_dir, seed=seed)
            for name in names:
                row = train_and_measure(name, METHODS[name], str(data_dir), seed, args.epochs, work, args.steps)
                rows.append(row)
                alone = "/".join("—" if v is None else f"{v:.2f}" for v in row["alone"].values())
                print(f"seed {seed} {name:28s} acc {row['test_accuracy']:.3f} alone a/v {alone} "
                      f"emb {json.dumps({k: round(v, 3) for k, v in row.get('shares_embedding', {}).items()})} "
                      f"input {json.dumps({k: round(v, 3) for k, v in row.get('shares_input', {}).items()})} "
                      f"({row['train_seconds']:.1f}s)", flush=True)
        times = step_times(str(work / f"data-{args.seeds[0]}"), names)
    minutes = (time.perf_counter() - started) / 60
    table = summarize(rows, times, names)
    text = markdown(table, seeds=args.seeds, epochs=args.epochs, minutes=minutes)
    print()
    print(text)
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows, "step_seconds": times}, indent=2))
    if not args.no_write:
        write_section(args.out, text)
        print(f"wrote {args.out}")
    return 0


START, END = "<!-- bench_finetune:start -->", "<!-- bench_finetune:end -->"


def write_section(path: Path, text: str) -> None:
    """Replace the table between the bench markers in ``path`` (append it when the markers are missing)."""
    block = f"{START}\n{text}{END}"
    old = path.read_text() if path.exists() else "# Results\n"
    if START in old and END in old:
        head, rest = old.split(START, 1)
        new = head + block + rest.split(END, 1)[1]
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    path.write_text(new)


if __name__ == "__main__":
    raise SystemExit(main())
