"""GPU speed of attribution and training: the table of issue 13, re-measured with this code.

Attribution (32 IG steps, zero baseline, per case and precision):

* captum's ``IntegratedGradients`` at its best ``internal_batch_size`` (a sweep; fp32 only: the reference),
* our ``IntegratedGradients()`` with its default (device-aware) chunking,
* ours with ``internal_batch_size = batch x 32`` (all steps in one forward),
* one forward + backward of the batch (the floor a step cannot beat),

best of ``--repeats`` (5) after ``--warmup`` (2) calls, ``torch.cuda.synchronize`` around each, with the
largest gap between our mean shares and captum's, our completeness error and our peak memory.

Training (av-resnet18 at 224x224, same batch, same AMP setting): samples per second of the library's
training step (``finetune``'s step module, autocast and gradient scaler) against a minimal hand-written
PyTorch loop, and the embedding-level attribution-regularized step against the plain one.

Usage::

    python bench/bench_gpu.py                  # on a CUDA machine: the full table (a few minutes)
    python bench/bench_gpu.py --json out.json  # also write the numbers
    python bench/bench_gpu.py --cpu --quick    # smoke test on a CPU, tiny sizes (not a measurement)

Needs torch and captum (not PyAV). Exits 0 with one clear line when CUDA or captum is missing.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

STEPS = 32
NUM_CLASSES = 4


@dataclass(frozen=True)
class Case:
    model: str
    batch: int
    audio: tuple[int, ...]
    visual: tuple[int, ...]
    note: str = ""

    def label(self) -> str:
        a = "x".join(map(str, self.audio))
        v = "x".join(map(str, self.visual))
        return f"{self.model}, batch {self.batch}, audio {a}, visual {v}" + (f" ({self.note})" if self.note else "")


#: the cases of issue 13
GPU_CASES = [Case("av-resnet18", 8, (1, 257, 188), (3, 3, 224, 224), "OGM-GE sizes"),
             Case("av-resnet18", 32, (1, 128, 128), (3, 2, 112, 112)),
             Case("av-tiny", 64, (1, 64, 81), (3, 4, 32, 32))]
#: ``--quick`` on a CPU: the same code paths at toy sizes
QUICK_CASES = [Case("av-resnet18", 2, (1, 32, 32), (3, 2, 32, 32)),
               Case("av-tiny", 4, (1, 16, 20), (3, 2, 16, 16))]
#: training: av-resnet18 at 224x224 (GPU) / toy sizes (``--quick``)
TRAIN_GPU = Case("av-resnet18", 32, (1, 257, 188), (3, 3, 224, 224), "224x224")
TRAIN_QUICK = Case("av-resnet18", 2, (1, 32, 32), (3, 2, 32, 32))


def missing(use_cpu: bool) -> str | None:
    """Why this machine cannot run the bench, or ``None``."""
    if importlib.util.find_spec("captum") is None:
        return "captum is not installed (pip install captum): it is the reference this bench compares with"
    if not use_cpu and not torch.cuda.is_available():
        return (f"no CUDA device (torch {torch.__version__}, torch.cuda.is_available() is False); "
                "run on a GPU machine, or `python bench/bench_gpu.py --cpu --quick` for a smoke test")
    return None


def machine(device: torch.device) -> dict[str, Any]:
    import captum

    out: dict[str, Any] = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                           "python": platform.python_version(), "torch": torch.__version__,
                           "captum": captum.__version__, "device": str(device)}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
        out["cuda"] = torch.version.cuda
    else:
        out["cpu"] = platform.processor() or platform.machine()
        out["threads"] = torch.get_num_threads()
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int) -> float:
    """Best wall time of ``fn`` over ``repeats`` calls after ``warmup`` calls, synchronized."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def build(case: Case, device: torch.device, seed: int = 0) -> tuple[Any, dict[str, torch.Tensor], torch.Tensor]:
    """The model (eval mode, batch norms with non-trivial statistics) in an adapter, one batch, its targets."""
    from mmbalance.models import ModelAdapter, create_model

    torch.manual_seed(seed)
    model = create_model(case.model, num_classes=NUM_CLASSES)
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
    adapter = ModelAdapter(model, ["audio", "visual"]).to(device).eval()
    x = {"audio": torch.randn((case.batch,) + case.audio, generator=g).to(device),
         "visual": torch.randn((case.batch,) + case.visual, generator=g).to(device)}
    target = (torch.arange(case.batch) % NUM_CLASSES).to(device)
    return adapter, x, target


def mean_shares(scores: torch.Tensor) -> torch.Tensor:
    from mmbalance.attribution import scores_to_shares

    return scores_to_shares(scores.double().cpu()).mean(0)


def _oom_safe(fn: Callable[[], float], device: torch.device) -> float | None:
    try:
        return fn()
    except torch.OutOfMemoryError:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return None


def attribution_rows(case: Case, device: torch.device, precisions: list[str], repeats: int, warmup: int,
                     sweep: list[int]) -> list[dict[str, Any]]:
    """One row per precision: captum (fp32, best ibs), ours default, ours batch x 32, forward+backward."""
    from captum.attr import IntegratedGradients as CaptumIG

    from mmbalance.attribution import IntegratedGradients
    from mmbalance.precision import forward_autocast

    adapter, x, target = build(case, device)
    tup = (x["audio"], x["visual"])

    def model_fn(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return adapter({"audio": a, "visual": v})

    captum_ig = CaptumIG(model_fn)
    captum_times: dict[int, float | None] = {}
    for k in sweep:
        ibs = case.batch * k

        def run_captum(ibs: int = ibs) -> Any:
            return captum_ig.attribute(tup, target=target, n_steps=STEPS, internal_batch_size=ibs)
        captum_times[ibs] = _oom_safe(lambda f=run_captum: best_time(f, device, repeats, warmup), device)
    fitting = {k: t for k, t in captum_times.items() if t is not None}
    best_ibs = min(fitting, key=lambda k: fitting[k]) if fitting else None
    captum_shares = None
    if best_ibs is not None:
        a, v = captum_ig.attribute(tup, target=target, n_steps=STEPS, internal_batch_size=best_ibs)
        captum_shares = mean_shares(torch.stack([a.abs().flatten(1).sum(1), v.abs().flatten(1).sum(1)], 1))

    rows = []
    for precision in precisions:
        ours = IntegratedGradients(steps=STEPS, precision=precision)
        whole = IntegratedGradients(steps=STEPS, precision=precision, internal_batch_size=case.batch * STEPS)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t_ours = _oom_safe(lambda ig=ours: best_time(lambda: ig.attribute(adapter, x, target), device, repeats,
                                                     warmup), device)
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        t_whole = _oom_safe(lambda ig=whole: best_time(lambda: ig.attribute(adapter, x, target), device, repeats,
                                                       warmup), device)

        def fwd_bwd(precision: str = precision) -> None:
            leaves = {k: val.detach().clone().requires_grad_(True) for k, val in x.items()}
            with forward_autocast(precision, device):
                out = adapter(leaves)
            torch.autograd.grad(out.float().gather(1, target.view(-1, 1)).sum(), list(leaves.values()))
        t_fb = best_time(fwd_bwd, device, repeats, warmup)
        result = ours.attribute(adapter, x, target)
        gap = (float((mean_shares(result.scores) - captum_shares).abs().max())
               if captum_shares is not None else None)
        rows.append({"case": case.label(), "precision": precision,
                     "captum_best_s": fitting.get(best_ibs) if best_ibs else None, "captum_best_ibs": best_ibs,
                     "captum_sweep_s": {str(k): t for k, t in captum_times.items()},
                     "ours_default_s": t_ours, "ours_batch_x32_s": t_whole, "forward_backward_s": t_fb,
                     "share_gap_vs_captum": gap,
                     "relative_completeness_error": float(result.extra["relative_completeness_error"].mean()),
                     "peak_gib": peak})
    return rows


def training_rows(case: Case, device: torch.device, steps: int, warmup: int) -> list[dict[str, Any]]:
    """Samples per second: library step vs a hand-written loop, and the regularized step vs the plain one."""
    from mmbalance.models import load_model
    from mmbalance.training import TrainConfig, build_regularizer
    from mmbalance.training.loop import _autocast, _make_optimizers, _StepModule

    amp = device.type == "cuda"  # finetune's --amp is CUDA-only: the same setting on both sides
    g = torch.Generator().manual_seed(0)
    host = [({"audio": torch.randn((case.batch,) + case.audio, generator=g),
              "visual": torch.randn((case.batch,) + case.visual, generator=g)},
             torch.randint(0, NUM_CLASSES, (case.batch,), generator=g)) for _ in range(2)]
    if device.type == "cuda":
        host = [({k: v.pin_memory() for k, v in xs.items()}, y.pin_memory()) for xs, y in host]

    def library(regularizer: str) -> Callable[[int], None]:
        cfg = TrainConfig(model=case.model, data="-", out="-", regularizer=regularizer, amp=amp,
                          **({"level": "embedding"} if regularizer == "attribution" else {}))
        torch.manual_seed(0)
        adapter = load_model(case.model, num_classes=NUM_CLASSES, modalities=["audio", "visual"], device=device)
        adapter.train()
        reg = build_regularizer(cfg, ["audio", "visual"])
        reg.check(adapter)
        reg.begin_epoch(1)
        optimizers, _ = _make_optimizers(cfg, adapter, reg)
        step_module = _StepModule(adapter, reg, ())
        scaler = torch.amp.GradScaler("cuda", enabled=amp and not torch.cuda.is_bf16_supported())

        def step(i: int) -> None:
            xs, y = host[i % len(host)]
            xs = {k: v.to(device, non_blocking=True) for k, v in xs.items()}
            y = y.to(device, non_blocking=True)
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            with _autocast(device, amp):
                loss, *_ = step_module(xs, y)
            scaler.scale(loss).backward()
            reg.after_backward(adapter)
            for opt in optimizers:
                scaler.step(opt)
            scaler.update()
        return step

    def hand_written() -> Callable[[int], None]:
        from mmbalance.models import create_model

        torch.manual_seed(0)
        model = create_model(case.model, num_classes=NUM_CLASSES).to(device).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        dtype = torch.bfloat16 if device.type != "cuda" or torch.cuda.is_bf16_supported() else torch.float16

        def step(i: int) -> None:
            xs, y = host[i % len(host)]
            a, v = xs["audio"].to(device, non_blocking=True), xs["visual"].to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, dtype=dtype, enabled=amp):
                loss = torch.nn.functional.cross_entropy(model(a, v), y)
            loss.backward()
            opt.step()
        return step

    def throughput(step: Callable[[int], None]) -> float:
        for i in range(warmup):
            step(i)
        sync(device)
        start = time.perf_counter()
        for i in range(steps):
            step(i)
        sync(device)
        return steps * case.batch / (time.perf_counter() - start)

    rates = {"hand-written loop": throughput(hand_written()), "mmbalance step (plain)": throughput(library("none")),
             "mmbalance step (attribution, embedding level)": throughput(library("attribution"))}
    base = rates["hand-written loop"]
    plain = rates["mmbalance step (plain)"]
    return [{"case": case.label(), "loop": name, "amp": amp, "samples_per_s": rate,
             "vs_hand_written": rate / base, "step_time_vs_plain": plain / rate} for name, rate in rates.items()]


def _s(t: float | None) -> str:
    return "OOM" if t is None else f"{t:.4f} s"


def markdown(info: dict[str, Any], attr: list[dict[str, Any]], train: list[dict[str, Any]], quick: bool) -> str:
    lines = [f"Machine: {info.get('gpu', info.get('cpu'))} ({info['device']}), torch {info['torch']}, "
             f"captum {info['captum']}, python {info['python']}, {info['date']}. {STEPS} IG steps, zero baseline.",
             ""]
    if quick:
        lines += ["**Smoke test (--quick): toy sizes, not a measurement.**", ""]
    lines += ["| case | precision | captum fp32, best `internal_batch_size` | `IntegratedGradients()` default "
              "| ours, `internal_batch_size` = batch×32 | one forward+backward | speed-up vs captum "
              "| share gap vs captum | completeness error | peak GiB |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in attr:
        cap = r["captum_best_s"]
        ours = [t for t in (r["ours_default_s"], r["ours_batch_x32_s"]) if t is not None]
        speed = f"{cap / min(ours):.2f}×" if cap and ours else "–"
        gap = "–" if r["share_gap_vs_captum"] is None else f"{r['share_gap_vs_captum']:.1e}"
        peak = "–" if r["peak_gib"] is None else f"{r['peak_gib']:.1f}"
        lines.append(f"| {r['case']} | {r['precision']} | {_s(cap)} (ibs {r['captum_best_ibs']}) | "
                     f"{_s(r['ours_default_s'])} | {_s(r['ours_batch_x32_s'])} | {_s(r['forward_backward_s'])} | "
                     f"{speed} | {gap} | {r['relative_completeness_error']:.1e} | {peak} |")
    if train:
        lines += ["", f"Training, {train[0]['case']}, AMP {'on (bf16)' if train[0]['amp'] else 'off'}:", "",
                  "| loop | samples/s | vs hand-written loop | step time vs plain step |", "|---|---|---|---|"]
        for r in train:
            lines.append(f"| {r['loop']} | {r['samples_per_s']:.1f} | {r['vs_hand_written']:.2f}× | "
                         f"{r['step_time_vs_plain']:.2f}× |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu", action="store_true", help="run on the CPU (a smoke test, with --quick)")
    parser.add_argument("--quick", action="store_true", help="toy sizes, 1 repeat, short sweep")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-train", action="store_true", help="skip the training comparison")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    why = missing(args.cpu)
    if why is not None:
        print(f"bench_gpu: nothing measured: {why}")
        return 0
    device = torch.device("cpu" if args.cpu else "cuda")
    repeats, warmup = (1, 1) if args.quick else (args.repeats, args.warmup)
    cases = QUICK_CASES if args.quick else GPU_CASES
    sweep = [4, 32] if args.quick else [1, 2, 4, 8, 16, 32]
    precisions = ["fp32", "bf16"]
    info = machine(device)
    attr: list[dict[str, Any]] = []
    for case in cases:
        print(f"... {case.label()}", file=sys.stderr, flush=True)
        attr += attribution_rows(case, device, precisions, repeats, warmup, sweep)
    train: list[dict[str, Any]] = []
    if not args.no_train:
        print("... training step", file=sys.stderr, flush=True)
        train = training_rows(TRAIN_QUICK if args.quick else TRAIN_GPU, device, steps=2 if args.quick else 30,
                              warmup=1 if args.quick else 5)
    print(markdown(info, attr, train, args.quick))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": info, "attribution": attr, "training": train}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
