"""The penalty step in a user loop: cost against a plain step, and what it does to the shares.

1. **Step time.** One training step of a user loop (forward, loss, backward, Adam step) with
   ``mmbalance.AttributionPenalty`` at the embedding level against the same loop without it,
   on a plug-in model named with ``embedding_layers`` (conv encoders on the built-in data's
   shapes: audio ``1x32x32``, visual ``3x4x32x32``, batch 32) and on the built-in ``av-tiny``.
   Plain and penalty steps are interleaved on the same batches; the ratio is the median of
   per-round ratios. Target: at most 1.3x.
2. **Shares.** The same loop for a few epochs on ``synthetic:av-dominance`` with and without
   the penalty (``scope="all"``, lambda 2): validation accuracy and share variance, per seed.

Usage::

    python bench/bench_penalty.py                 # both parts (a few minutes on 2 cores)
    python bench/bench_penalty.py --quick         # fewer rounds, one seed
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmbalance import AttributionPenalty  # noqa: E402
from mmbalance.data import load_dataset, make_loader  # noqa: E402
from mmbalance.models import create_model  # noqa: E402
from mmbalance.training.penalty import balance_figures  # noqa: E402


class ConvAV(nn.Module):
    """A plug-in mmbalance has not seen: a conv encoder per modality and an MLP head."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.audio_net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 32, 3, padding=1),
                                       nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.visual_net = nn.Sequential(nn.Conv3d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv3d(8, 32, 3, padding=1),
                                        nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, classes))

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.audio_net(audio), self.visual_net(visual)], 1))


def _penalty(model: nn.Module, **settings) -> AttributionPenalty:
    if isinstance(model, ConvAV):
        return AttributionPenalty(model, embedding_layers={"audio": model.audio_net, "visual": model.visual_net},
                                  **settings)
    return AttributionPenalty(model, **settings)


def step_ratio(model_name: str, rounds: int, scope: str) -> tuple[float, float, float]:
    """(median plain step s, median penalty step s, median per-round ratio)."""
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(32, 1, 32, 32, generator=g), torch.randn(32, 3, 4, 32, 32, generator=g),
                torch.randint(0, 4, (32,), generator=g)) for _ in range(2)]
    torch.manual_seed(0)
    model = ConvAV(4) if model_name == "plug-in" else create_model("av-tiny", num_classes=4)
    pen = _penalty(model, scope=scope)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def plain(a, v, y):
        loss = F.cross_entropy(model(a, v), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def with_penalty(a, v, y):
        logits, penalty = pen(a, v, labels=y)
        loss = F.cross_entropy(logits, y) + 1.0 * penalty
        opt.zero_grad()
        loss.backward()
        opt.step()

    for b in batches:  # warm up
        plain(*b)
        with_penalty(*b)
    plain_t, pen_t, ratios = [], [], []
    for _ in range(rounds):
        t = []
        for fn in (plain, with_penalty):
            start = time.perf_counter()
            for b in batches:
                fn(*b)
            t.append((time.perf_counter() - start) / len(batches))
        plain_t.append(t[0])
        pen_t.append(t[1])
        ratios.append(t[1] / t[0])
    return statistics.median(plain_t), statistics.median(pen_t), statistics.median(ratios)


def shares_run(lam: float, seed: int, epochs: int) -> tuple[float, float, dict[str, float]]:
    data = "synthetic:av-dominance?n_train=512&n_val=256&n_test=32"
    train, val = load_dataset(data, split="train"), load_dataset(data, split="val")
    torch.manual_seed(seed)
    model = ConvAV(train.num_classes)
    pen = _penalty(model, scope="all")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for b in make_loader(train, batch_size=32, sampler=torch.randperm(len(train), generator=g).tolist()):
            logits, penalty = pen(b.inputs["audio"], b.inputs["visual"], labels=b.labels)
            loss = F.cross_entropy(logits, b.labels) + lam * penalty
            opt.zero_grad()
            loss.backward()
            opt.step()
    held = [(b.inputs["audio"], b.inputs["visual"], b.labels) for b in make_loader(val, batch_size=64)]
    shares = pen.shares(held)
    model.eval()
    with torch.no_grad():
        acc = sum(int((model(a, v).argmax(1) == y).sum()) for a, v, y in held) / len(val)
    return balance_figures(shares)["share_variance"], acc, shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-shares", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rounds = 5 if args.quick else 15
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| model | scope | plain step | penalty step | ratio |")
    print("|---|---|---|---|---|")
    for name in ("plug-in", "av-tiny"):
        for scope in ("fusion", "all"):
            p, q, r = step_ratio(name, rounds, scope)
            print(f"| {name} | {scope} | {p * 1e3:.1f} ms | {q * 1e3:.1f} ms | {r:.2f}x |")
    if args.skip_shares:
        return
    print("\n| seed | plain: accuracy, share variance | penalty (λ 2, scope all): accuracy, share variance |")
    print("|---|---|---|")
    for seed in (0,) if args.quick else (0, 1, 2):
        pv, pa, _ = shares_run(0.0, seed, 4)
        v, a, _ = shares_run(2.0, seed, 4)
        print(f"| {seed} | {pa:.3f}, {pv:.4f} | {a:.3f}, {v:.5f} ({1 - v / pv:.0%} lower) |")


if __name__ == "__main__":
    main()
