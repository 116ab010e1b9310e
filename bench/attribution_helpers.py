"""Helpers for ``bench_attribution.py``: the benchmarked models, a streaming dataset, timing, machine info.

Kept out of ``bench_*.py`` so ``make bench`` does not run it as a benchmark.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

import torch
from torch import Tensor, nn

THREADS = 2
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class PlainConvAV(nn.Module):
    """A plain conv audio-visual model (no batch norm): two conv layers per modality, concat, linear."""

    modalities = ("audio", "visual")

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.audio = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                                   nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.visual = nn.Sequential(nn.Conv3d(3, 16, 3, padding=1), nn.ReLU(),
                                    nn.Conv3d(16, 32, 3, stride=(1, 2, 2), padding=1), nn.ReLU(),
                                    nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.head = nn.Linear(64, num_classes)
        self.num_classes = num_classes

    def forward(self, audio: Tensor, visual: Tensor) -> Tensor:
        return self.head(torch.cat([self.audio(audio), self.visual(visual)], 1))


#: name -> (batch, audio shape, visual shape)
CASES: dict[str, tuple[int, tuple[int, ...], tuple[int, ...]]] = {
    "av-tiny": (16, (1, 32, 32), (3, 4, 32, 32)),
    "av-resnet18": (4, (1, 32, 32), (3, 2, 32, 32)),
    "plain-conv": (16, (1, 32, 32), (3, 4, 32, 32)),
}


def build(name: str, seed: int = 0) -> tuple[nn.Module, dict[str, Tensor], Tensor]:
    """The model (eval mode, batch norms with non-trivial statistics), one batch of inputs and targets."""
    torch.manual_seed(seed)
    if name == "plain-conv":
        model: nn.Module = PlainConvAV()
    else:
        from mmbalance.models import create_model

        model = create_model(name, num_classes=4)
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
    model.eval()
    batch, a_shape, v_shape = CASES[name]
    x = {"audio": torch.randn((batch,) + a_shape, generator=g), "visual": torch.randn((batch,) + v_shape, generator=g)}
    target = torch.arange(batch) % 4
    return model, x, target


def adapter_for(model: nn.Module) -> Any:
    from mmbalance.models import ModelAdapter

    return ModelAdapter(model, ["audio", "visual"]).eval()


def forward_backward(adapter: Any, x: dict[str, Tensor], target: Tensor) -> None:
    """One forward and one backward pass to the inputs (the unit of the IG lower bound)."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in x.items()}
    out = adapter(leaves).gather(1, target.view(-1, 1)).sum()
    torch.autograd.grad(out, list(leaves.values()))


def chunk_passes(model: nn.Module, x: dict[str, Tensor], target: Tensor, rows: int) -> dict[str, Callable[[], Any]]:
    """One chunk of ``rows`` interpolated samples, three ways: the cost floor of exact input-level IG.

    * ``chunk: to inputs``: forward + backward to the inputs (what captum runs per chunk);
    * ``chunk: from stems``: forward + backward walked from the affine stems' outputs (what we run per chunk);
    * ``chunk: from stems, BN folded``: the same with batch norms folded into their convolutions, as
      ``IntegratedGradients`` folds them (``mmbalance.attribution._folding``).

    ``to inputs / from stems`` bounds how much faster than captum any exact IG can be with PyTorch's kernels.
    """
    from mmbalance.attribution import _folding, _stems

    batch = target.shape[0]
    copies = max(1, rows // batch)
    xs = {m: v.repeat((copies,) + (1,) * (v.dim() - 1)) for m, v in x.items()}
    ts = target.repeat(copies)
    zero = {m: torch.zeros_like(v) for m, v in xs.items()}
    adapter = adapter_for(model)

    def to_inputs() -> None:
        leaves = {k: v.clone().requires_grad_(True) for k, v in xs.items()}
        objective = adapter(leaves).gather(1, ts.view(-1, 1)).sum()
        torch.autograd.grad(objective, list(leaves.values()))

    def from_stems(folds: Any) -> Callable[[], Any]:
        with _folding.folding(folds):
            stems = _stems.verify_stems(_stems.find_stems(adapter, adapter, xs), adapter, xs, zero)
            with torch.no_grad(), _stems.capturing(stems) as z:
                adapter(xs)
        n = ts.shape[0]

        def run() -> None:
            with _folding.folding(folds):
                if not stems:
                    return to_inputs()
                leaves = {m: _stems.per_sample_view(v, n).clone().requires_grad_(True) for m, v in z.items()}
                with _stems.injecting(stems, {m: v + 0 for m, v in leaves.items()}):  # + 0: in-place ReLUs follow
                    objective = adapter(xs).gather(1, ts.view(-1, 1)).sum()
                torch.autograd.grad(objective, list(leaves.values()))
        return run

    folds = _folding.verify_folds(_folding.find_folds(adapter, adapter, xs), adapter, xs, zero)
    return {"chunk: to inputs": to_inputs,
            "chunk: from stems": from_stems(_folding.Folds()),
            "chunk: from stems, BN folded": from_stems(folds)}


def interleaved(fns: dict[str, Callable[[], Any]], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Run every function once per round, in turn (so slow phases of a shared machine hit all alike)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    return times


def summary(times: list[float]) -> dict[str, float]:
    """Best (min) and median of repeated timings: on a shared machine the best is the least disturbed."""
    return {"median": statistics.median(times), "min": min(times), "n": len(times)}


def busy_fraction(seconds: float = 1.0) -> float:
    """Fraction of all CPU time spent busy over the next ``seconds`` (from /proc/stat; 0 when unknown)."""
    def read() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            parts = [int(v) for v in fh.readline().split()[1:]]
        idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
        return idle, sum(parts)

    try:
        i0, t0 = read()
        time.sleep(seconds)
        i1, t1 = read()
    except OSError:
        return 0.0
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def wait_for_quiet(max_wait: float = 90.0, busy: float = 0.15) -> float:
    """Wait (up to ``max_wait`` s) until other processes leave the CPUs alone; returns the busy fraction seen."""
    deadline = time.monotonic() + max_wait
    seen = busy_fraction()
    while seen > busy and time.monotonic() < deadline:
        seen = busy_fraction(2.0)
    return seen


def run_child(code: str, timeout: float = 600) -> tuple[float, str]:
    """Run ``code`` in a fresh Python process; returns (wall seconds including start-up, stdout)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS), PYTHONPATH=ROOT + os.pathsep
               + os.path.join(ROOT, "bench") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=ROOT)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, done.stdout


def peak_rss_mb() -> float:
    """This process's own peak resident set size (``VmHWM``), in MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import captum

    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": THREADS, "python": platform.python_version(),
            "torch": torch.__version__, "captum": captum.__version__, "platform": platform.platform(),
            "load_avg_1min_at_start": round(load, 2)}


class LazySyntheticAV:
    """A dataset that makes each sample on demand from its index: memory independent of its length.

    Used for the peak-memory measurement, so that what grows (or not) is the audit, not the data.
    """

    def __new__(cls, n: int, num_classes: int = 4) -> Any:  # built lazily so importing needs no mmbalance
        from mmbalance.data import MultimodalDataset

        class _Lazy(MultimodalDataset):
            def __init__(self) -> None:
                super().__init__(modalities=("audio", "visual"), classes=[f"c{k}" for k in range(num_classes)],
                                 source=f"lazy-synthetic:{n}")

            def __len__(self) -> int:
                return n

            def __getitem__(self, index: int) -> tuple[dict[str, Tensor], int]:
                g = torch.Generator().manual_seed(index)
                label = index % num_classes
                audio = torch.randn(1, 32, 32, generator=g) + 0.5 * label
                visual = torch.randn(3, 2, 32, 32, generator=g)
                return {"audio": audio, "visual": visual}, label

        return _Lazy()
