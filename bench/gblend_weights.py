"""How Gradient-Blending's loss weights move during training, and what the model reaches.

Trains ``av-tiny`` with ``--regularizer gblend`` for a few seeds and prints, per run, the
weight trajectory's largest one-epoch jump, the smallest weight the fused head got, the
number of epochs in which a head had (almost) no weight, and the best checkpoint's test
accuracy. Extra ``finetune`` flags go after ``--``, so the same script measures the raw
estimate (``-- --gblend-smoothing 0 --gblend-floor 1e-6``) or another checkout
(``PYTHONPATH=/other/checkout python bench/gblend_weights.py ...``).

Usage::

    python bench/realistic_av.py --out data/letters-small --n-train 1000 --n-val 300 --n-test 500
    python bench/gblend_weights.py --data data/letters-small --out runs/gblend --seeds 2 --epochs 15
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
from pathlib import Path

import torch

from mmbalance.data import load_dataset
from mmbalance.models import load_model
from mmbalance.training.evaluation import evaluate


def _run(data: str, out: Path, seed: int, epochs: int, lr: float, extra: list[str]) -> list[dict[str, str]]:
    if not (out / "metrics.csv").is_file():
        cmd = [sys.executable, "-m", "mmbalance", "finetune", "--model", "av-tiny", "--data", data, "--out", str(out),
               "--regularizer", "gblend", "--epochs", str(epochs), "--patience", "0", "--lr", str(lr),
               "--seed", str(seed), "--device", "cpu", "-q", "--force", *extra]
        subprocess.run(cmd, check=True, env=dict(os.environ))
    with open(out / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _test_accuracy(data: str, run: Path) -> float:
    test = load_dataset(data, split="test")
    adapter = load_model("av-tiny", checkpoint=str(run / "best.pt"), num_classes=test.num_classes,
                         modalities=test.modalities, device="cpu")
    return float(evaluate(adapter, test, batch_size=64, device=torch.device("cpu"))["accuracy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("extra", nargs="*", help="further finetune flags, after --")
    args = parser.parse_args()
    print("| seed | largest one-epoch weight jump | least fused weight | epochs with a head < 0.01 "
          "| final weights (audio/visual/fused) | test accuracy |")
    print("|---:|---:|---:|---:|---|---:|")
    for seed in range(args.seeds):
        run = Path(args.out) / f"seed{seed}"
        rows = _run(args.data, run, seed, args.epochs, args.lr, args.extra)
        heads = [k[2:] for k in rows[0] if k.startswith("w_")]
        traj = [[1 / len(heads)] * len(heads)] + [[float(r[f"w_{h}"]) for h in heads] for r in rows]
        jump = max(abs(b - a) for p, q in zip(traj, traj[1:]) for a, b in zip(p, q))
        fused = min(t[heads.index("fused")] for t in traj)
        starved = sum(min(t) < 0.01 for t in traj[1:])
        final = "/".join(f"{v:.2f}" for v in traj[-1])
        acc = _test_accuracy(args.data, run)
        print(f"| {seed} | {jump:.3f} | {fused:.3f} | {starved} of {len(rows)} | {final} | {acc:.1%} |", flush=True)


if __name__ == "__main__":
    main()
