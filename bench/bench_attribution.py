"""Attribution speed and memory: the numbers behind docs/performance.md ("Attribution speed").

Measures, with ``torch.set_num_threads(2)`` everywhere (children too):

1. input-level Integrated Gradients (ours) against its lower bound ``steps x (one forward +
   backward of the same batch)`` and against captum's ``IntegratedGradients`` at its best
   ``internal_batch_size`` (same model, inputs, steps), in-process (interleaved rounds) and as
   whole processes (start-up, imports, model building and K batches: wall time of a fresh
   ``python``);
2. adaptive steps (``tolerance=0.01``) against fixed steps at equal error;
3. embedding-level against input-level IG on av-resnet18;
4. peak memory (``ru_maxrss`` of a fresh process) of an audit of N and 10 N samples;
5. (``--only default``) the whole default audit, ``audit()`` as ``mmbalance audit`` runs it
   (Shapley values + ablation), against the previous default (IG with 32 steps + ablation), on
   av-tiny and av-resnet18 (the issue-17 cost bound: at most 1.5x).

Usage::

    python bench/bench_attribution.py                 # prints Markdown (about 4 minutes on 2 cores)
    python bench/bench_attribution.py --quick         # fewer repeats, for a smoke test
    python bench/bench_attribution.py --update-docs   # also rewrites the section in docs/performance.md
    python bench/bench_attribution.py --only default  # new default audit vs the previous one (JSON)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from attribution_helpers import (CASES, THREADS, adapter_for, build, chunk_passes,  # noqa: E402
                                 forward_backward, interleaved, machine, run_child, summary, wait_for_quiet)

STEPS = 32
SECTION = "## Attribution speed"
DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "performance.md")

_IG_CHILD = """
import time, torch
torch.set_num_threads({threads})
if {tune}:
    from mmbalance.allocator import tune_allocator
    assert tune_allocator()
from attribution_helpers import build, adapter_for
model, x, t = build({name!r})
if {impl!r} == "ours":
    from mmbalance.attribution import IntegratedGradients
    start = time.perf_counter()
    ig, ad = IntegratedGradients(steps={steps}), adapter_for(model)
    for _ in range({k}):
        ig.attribute(ad, x, t)
else:
    from captum.attr import IntegratedGradients
    start = time.perf_counter()
    ig = IntegratedGradients(model)
    for _ in range({k}):
        ig.attribute((x["audio"], x["visual"]), target=t, n_steps={steps}, internal_batch_size={ibs})
print(time.perf_counter() - start)
"""

_MEMORY_CHILD = """
import resource, torch
torch.set_num_threads({threads})
from attribution_helpers import LazySyntheticAV, peak_rss_mb
from mmbalance.audit import audit
after_import = peak_rss_mb()
r = audit("av-tiny", LazySyntheticAV({n}), methods=["ig", "ablation", "shapley", "permutation"], steps=8,
          repeats=2, batch_size=16, bootstrap=200, progress=False)
print(peak_rss_mb(), after_import, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, r.n_samples)
"""


def bench_ig(name: str, rounds: int, process_repeats: int, batches: int) -> dict[str, Any]:
    """Ours vs the lower bound vs captum for one model."""
    from captum.attr import IntegratedGradients as CaptumIG

    from mmbalance.attribution import IntegratedGradients

    quiet = wait_for_quiet()
    model, x, target = build(name)
    adapter = adapter_for(model)
    ours = IntegratedGradients(steps=STEPS)
    plain = IntegratedGradients(steps=STEPS, factor_stems=False)
    captum = CaptumIG(model)
    batch = CASES[name][0]
    sizes = [batch * k for k in ((1, 4, 8, 16, 32) if name == "av-tiny" else (4, 8, 16, 32))]
    fns = {"forward+backward": lambda: forward_backward(adapter, x, target),
           "ours": lambda: ours.attribute(adapter, x, target),
           "ours (no stem factoring)": lambda: plain.attribute(adapter, x, target)}
    for ibs in sizes:
        fns[f"captum ibs={ibs}"] = (lambda ibs=ibs: captum.attribute((x["audio"], x["visual"]), target=target,
                                                                     n_steps=STEPS, internal_batch_size=ibs))
    times = {k: summary(v) for k, v in interleaved(fns, rounds).items()}
    best_ibs = min(sizes, key=lambda s: times[f"captum ibs={s}"]["min"])
    out: dict[str, Any] = {"model": name, "batch": batch, "audio": CASES[name][1], "visual": CASES[name][2],
                           "steps": STEPS, "times": times, "best_captum_ibs": best_ibs, "busy_before": quiet}
    # the floor: one chunk of captum's best size, to the inputs vs from the stems (exact savings only)
    chunks = {k: summary(v) for k, v in interleaved(chunk_passes(model, x, target, best_ibs), rounds).items()}
    out["chunk"] = {"rows": best_ibs, "times": chunks}
    for stat in ("min", "median"):
        bound = STEPS * times["forward+backward"][stat]
        floor = min(chunks["chunk: from stems"][stat], chunks["chunk: from stems, BN folded"][stat])
        out[stat] = {"lower_bound": bound, "ours_over_bound": times["ours"][stat] / bound,
                     "captum_over_ours": times[f"captum ibs={best_ibs}"][stat] / times["ours"][stat],
                     "ceiling": chunks["chunk: to inputs"][stat] / floor}
    # whole processes: start-up, imports, model, `batches` attributions (first call and set-up included)
    wait_for_quiet(30)
    # ours runs with the allocator settings the CLI applies; captum as a plain script, and with them too
    children = {"ours": ("ours", True), "captum": ("captum", False), "captum, same allocator": ("captum", True)}
    wall: dict[str, list[float]] = {k: [] for k in children}
    inside: dict[str, list[float]] = {k: [] for k in children}
    for _ in range(process_repeats):
        for key, (impl, tune) in children.items():
            code = _IG_CHILD.format(threads=THREADS, name=name, impl=impl, steps=STEPS, k=batches, ibs=best_ibs,
                                    tune=tune)
            seconds, text = run_child(code)
            wall[key].append(seconds)
            inside[key].append(float(text.split()[-1]))
    out["process"] = {"batches": batches, "wall": {k: summary(v) for k, v in wall.items()},
                      "attribution": {k: summary(v) for k, v in inside.items()}}
    for stat in ("min", "median"):
        w, a = out["process"]["wall"], out["process"]["attribution"]
        out["process"][stat] = {
            "wall_captum_over_ours": w["captum"][stat] / w["ours"][stat],
            "attribution_captum_over_ours": a["captum"][stat] / a["ours"][stat],
            "wall_tuned_captum_over_ours": w["captum, same allocator"][stat] / w["ours"][stat]}
    return out


def bench_adaptive(rounds: int) -> dict[str, Any]:
    """Fixed steps vs --tolerance 0.01 on av-tiny: error reached and time taken (best of interleaved rounds)."""
    from mmbalance.attribution import IntegratedGradients

    wait_for_quiet()
    model, x, target = build("av-tiny", seed=1)
    _, x2, target2 = build("av-tiny", seed=2)
    adapter = adapter_for(model)
    batches = [(x, target), (x2, target2)]
    n = sum(t.shape[0] for _, t in batches)
    tol = 0.01
    configs: dict[str, IntegratedGradients] = {}
    grids = {"riemann": [8, 16, 32, 64, 128, 256], "gausslegendre": [4, 8, 16, 32, 64, 128]}
    for rule, grid in grids.items():
        for steps in grid:
            pts = steps + 1 if rule == "riemann" else steps
            configs[f"{rule} fixed {pts}"] = IntegratedGradients(steps=pts, method=rule)
        configs[f"{rule} adaptive"] = IntegratedGradients(steps=grid[-1], method=rule, tolerance=tol)
    outputs: dict[str, Any] = {}

    def runner(key: str) -> Any:
        def run() -> None:
            outputs[key] = [configs[key].attribute(adapter, xb, tb) for xb, tb in batches]
        return run

    times = {k: summary(v) for k, v in interleaved({k: runner(k) for k in configs}, rounds, warmup=0).items()}
    out: dict[str, Any] = {"samples": n, "tolerance": tol, "rules": {}}
    for rule in grids:
        rows = []
        for key in [k for k in configs if k.startswith(rule)]:
            rel = torch.cat([o.extra["relative_completeness_error"] for o in outputs[key]])
            steps = (float(torch.cat([o.extra["steps"] for o in outputs[key]]).mean())
                     if "steps" in outputs[key][0].extra else float(configs[key].steps))
            rows.append({"config": key, "steps": steps, "seconds": times[key]["min"],
                         "seconds_median": times[key]["median"], "within_tol": float((rel <= tol).double().mean()),
                         "median_rel_error": float(rel.median())})
        adaptive = rows[-1]
        equal = next((r for r in rows[:-1] if r["within_tol"] >= adaptive["within_tol"]), None)
        out["rules"][rule] = {"rows": rows, "cap": configs[f"{rule} adaptive"].steps,
                              "equal_error_fixed_steps": equal["steps"] if equal else None,
                              "speedup_at_equal_error": equal["seconds"] / adaptive["seconds"] if equal else None,
                              "speedup_median": (equal["seconds_median"] / adaptive["seconds_median"]
                                                 if equal else None)}
    return out


def bench_embedding(rounds: int) -> dict[str, Any]:
    """Embedding-level vs input-level IG on av-resnet18 (same batch and steps), at two batch sizes."""
    from mmbalance.attribution import IntegratedGradients, embedding_view

    out: dict[str, Any] = {}
    for batch in (4, 16, 32):
        wait_for_quiet()
        model, x, target = build("av-resnet18")
        if batch != x["audio"].shape[0]:
            g = torch.Generator().manual_seed(batch)
            x = {k: torch.randn((batch,) + tuple(v.shape[1:]), generator=g) for k, v in x.items()}
            target = torch.arange(batch) % 4
        adapter = adapter_for(model)
        view = embedding_view(adapter)
        ig = IntegratedGradients(steps=STEPS)

        def embedding(view: Any = view, ig: Any = ig, x: dict[str, torch.Tensor] = x, target: Any = target) -> None:
            emb = view.encode(x)
            ig.attribute(view.bind(x), emb, target)

        runs = {"input": lambda ig=ig, a=adapter, x=x, t=target: ig.attribute(a, x, t),
                "embedding": embedding, "encode only": lambda view=view, x=x: view.encode(x)}
        times = {k: summary(v) for k, v in interleaved(runs, rounds).items()}
        out[str(batch)] = {"times": times,
                           "speedup": times["input"]["min"] / times["embedding"]["min"],
                           "speedup_median": times["input"]["median"] / times["embedding"]["median"],
                           "ceiling": times["input"]["min"] / times["encode only"]["min"]}
    return out


def bench_memory(n: int) -> dict[str, Any]:
    """Peak RSS of a fresh process auditing n and 10 n samples (streaming data, so only the audit can grow)."""
    rss = {}
    for size in (n, 10 * n):
        _, out = run_child(_MEMORY_CHILD.format(threads=THREADS, n=size))
        peak, base, ru, seen = out.split()
        rss[str(size)] = {"peak_rss_mb": float(peak), "after_import_mb": float(base), "ru_maxrss_mb": float(ru),
                          "samples": int(seen)}
    small, large = rss[str(n)], rss[str(10 * n)]
    return {"runs": rss, "growth": large["peak_rss_mb"] / small["peak_rss_mb"] - 1,
            "growth_above_import": ((large["peak_rss_mb"] - large["after_import_mb"])
                                    / (small["peak_rss_mb"] - small["after_import_mb"]) - 1)}


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [SECTION, "",
             f"Measured by `python bench/bench_attribution.py --update-docs` on {m['cpu']}, {m['cores']} cores, "
             f"`torch.set_num_threads({m['torch_threads']})` in every process, Python {m['python']}, torch "
             f"{m['torch']}, captum {m['captum']} ({m['platform']}); bench wall time {r['seconds']:.0f} s. "
             "The machine is shared with other jobs, so every comparison is interleaved run by run and each "
             "section waits for idle CPUs first; **best** is the least disturbed of the rounds (the headline), "
             "the median is given beside it.", ""]
    lines += [f"### Input-level Integrated Gradients ({STEPS} steps)", "",
              "Lower bound = steps x one forward + backward (to the inputs) of the same batch. captum = "
              "`captum.attr.IntegratedGradients(model).attribute(..., n_steps=32, internal_batch_size=ibs)` at the "
              "best `ibs` tried. Ours = `mmbalance.attribution.IntegratedGradients(steps=32)` through the "
              "`ModelAdapter`, as `mmbalance audit` runs it (Gauss-Legendre, zero baseline).", "",
              "| model | batch x inputs | lower bound | ours | ours / bound | captum (best ibs) | captum / ours |",
              "|---|---|---|---|---|---|---|"]
    for c in r["ig"]:
        t = c["times"]
        cap = t[f"captum ibs={c['best_captum_ibs']}"]
        lines.append(
            f"| {c['model']} | {c['batch']} x audio {tuple(c['audio'])}, visual {tuple(c['visual'])} "
            f"| {c['min']['lower_bound']:.3f} s | {t['ours']['min']:.3f} s (median {t['ours']['median']:.3f}) "
            f"| **{c['min']['ours_over_bound']:.2f}x** (median {c['median']['ours_over_bound']:.2f}x) "
            f"| {cap['min']:.3f} s ({c['best_captum_ibs']}) "
            f"| **{c['min']['captum_over_ours']:.2f}x** (median {c['median']['captum_over_ours']:.2f}x) |")
    lines += ["", "Whole processes: a fresh `python` imports, builds the model and attributes the same batch "
              "`batches` times; *wall* is the process's wall time (interpreter start and imports included), "
              "*attribution* the time inside it from creating the estimator to the last result (first call, "
              "stem discovery and checks included). Ours runs with the malloc settings the `mmbalance` CLI "
              "applies at start-up (`mmbalance.allocator`), captum as a plain script; the last column gives "
              "captum the same settings, to show what the allocator accounts for.", "",
              "| model | batches | wall: ours | wall: captum | captum / ours | attribution: ours "
              "| attribution: captum | captum / ours | captum, same allocator / ours (wall) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for c in r["ig"]:
        p = c["process"]
        w, a = p["wall"], p["attribution"]
        lines.append(f"| {c['model']} | {p['batches']} | {w['ours']['min']:.2f} s | {w['captum']['min']:.2f} s "
                     f"| **{p['min']['wall_captum_over_ours']:.2f}x** (median {p['median']['wall_captum_over_ours']:.2f}x) "
                     f"| {a['ours']['min']:.2f} s | {a['captum']['min']:.2f} s "
                     f"| **{p['min']['attribution_captum_over_ours']:.2f}x** "
                     f"(median {p['median']['attribution_captum_over_ours']:.2f}x) "
                     f"| {p['min']['wall_tuned_captum_over_ours']:.2f}x "
                     f"(median {p['median']['wall_tuned_captum_over_ours']:.2f}x) |")
    lines += ["", "The floor of exact IG: one chunk of captum's best size (`ibs` interpolated samples), forward and "
              "backward to the inputs (what captum runs per chunk) against the same walked from the encoders' "
              "affine stems, with and without batch norms folded into the convolutions (the exact savings "
              "there are). *available* = to inputs / the faster of the two: about what any exact "
              "input-level IG on PyTorch's kernels can gain over captum on that model.", "",
              "| model | rows | to inputs | from stems | from stems, BN folded | available |", "|---|---|---|---|---|---|"]
    for c in r["ig"]:
        ch = c["chunk"]["times"]
        lines.append(f"| {c['model']} | {c['chunk']['rows']} | {ch['chunk: to inputs']['min']:.4f} s "
                     f"| {ch['chunk: from stems']['min']:.4f} s | {ch['chunk: from stems, BN folded']['min']:.4f} s "
                     f"| **{c['min']['ceiling']:.2f}x** (median {c['median']['ceiling']:.2f}x) |")
    lines += ["", "Without stem factoring (`factor_stems=False`) ours takes: " + ", ".join(
        f"{c['model']} {c['times']['ours (no stem factoring)']['min']:.3f} s" for c in r["ig"]) + ".", "",
        "All in-process timings (best / median of the rounds, seconds):", "", "```"]
    for c in r["ig"]:
        lines.append(c["model"] + ": " + ", ".join(f"{k} {v['min']:.4f}/{v['median']:.4f}" for k, v in c["times"].items()))
    lines += ["```", ""]
    a = r["adaptive"]
    lines += [f"### Adaptive steps (`--tolerance {a['tolerance']}`), av-tiny, {a['samples']} samples", "",
              "*within 1%*: fraction of samples whose completeness error is below 1% of |f(x) - f(baseline)|. "
              "Adaptive runs refine only the samples still above it, doubling the steps, up to the cap; for "
              "Gauss-Legendre the rules do not nest, so the steps of every level are counted.", "",
              "| run | steps per sample | within 1% | median rel. error | seconds (best / median) |",
              "|---|---|---|---|---|"]
    for d in a["rules"].values():
        for row in d["rows"]:
            name = row["config"]
            bold = "**" if "adaptive" in name else ""
            label = f"{name} (cap {d['cap']})" if "adaptive" in name else name
            lines.append(f"| {bold}{label}{bold} | {row['steps']:.1f} | {row['within_tol']:.0%} "
                         f"| {row['median_rel_error']:.4f} | {row['seconds']:.3f} / {row['seconds_median']:.3f} |")
    lines.append("")
    for rule, d in a["rules"].items():
        ad = d["rows"][-1]
        if d["equal_error_fixed_steps"] is None:
            lines.append(f"- {rule}: no fixed step count up to the cap reached the adaptive run's error.")
        else:
            lines.append(f"- {rule}: fixed steps need {d['equal_error_fixed_steps']:.0f} steps per sample to have "
                         f"as many samples within 1%; adaptive uses {ad['steps']:.1f} on average: "
                         f"**{d['speedup_at_equal_error']:.1f}x faster at equal error** "
                         f"(median {d['speedup_median']:.1f}x).")
    lines += ["", "### Embedding level vs input level (av-resnet18, 32 steps)", "",
              "Both through `IntegratedGradients`; the embedding level includes encoding the batch. *encode only* "
              "is that encoding alone (one forward pass of the encoders, no attribution), so input level / "
              "encode only is the most the embedding level could gain at that batch size.", "",
              "| batch | input level | embedding level | speed-up | encode only | input / encode only |",
              "|---|---|---|---|---|---|"]
    for batch, e in r["embedding"].items():
        t = e["times"]
        lines.append(f"| {batch} | {t['input']['min']:.3f} s (median {t['input']['median']:.3f}) "
                     f"| {t['embedding']['min']:.4f} s (median {t['embedding']['median']:.4f}) "
                     f"| **{e['speedup']:.0f}x** (median {e['speedup_median']:.0f}x) "
                     f"| {t['encode only']['min']:.4f} s | {e['ceiling']:.0f}x |")
    mem = r["memory"]
    sizes = sorted(mem["runs"], key=int)
    runs = [mem["runs"][s] for s in sizes]
    lines += ["", "### Peak memory vs dataset size", "",
              "A fresh process audits a streaming dataset (samples made on demand, so the data itself takes no "
              "memory) with ig, ablation, shapley, permutation (2 repeats), 8 IG steps, batches of 16 and 200 "
              "bootstrap replicates. Peak RSS is the child's `VmHWM` (its own high-water mark); "
              "`resource.getrusage(RUSAGE_SELF).ru_maxrss` is shown too, but in a child it also counts the "
              "parent's size at the fork (the bench measures memory first, while it is small), so it is an upper "
              "bound.", "",
              "| samples | peak RSS | after imports | audit's own peak (above imports) | ru_maxrss |",
              "|---|---|---|---|---|"]
    for run in runs:
        lines.append(f"| {run['samples']} | {run['peak_rss_mb']:.0f} MB | {run['after_import_mb']:.0f} MB "
                     f"| {run['peak_rss_mb'] - run['after_import_mb']:.0f} MB | {run['ru_maxrss_mb']:.0f} MB |")
    lines += ["", f"10x the samples: peak RSS **{mem['growth']:+.1%}**, the audit's own peak "
              f"{mem['growth_above_import']:+.1%}.", ""]
    lines += verdicts(r)
    return "\n".join(lines)


def verdicts(r: dict[str, Any]) -> list[str]:
    """The issue's targets, met or missed, with the reasons (from this run's numbers)."""
    def mark(ok: bool) -> str:
        return "met" if ok else "**missed**"

    out = ["### Against the targets", ""]
    ig = {c["model"]: c for c in r["ig"]}
    out.append("- IG within 1.25x of steps x (forward+backward): "
               + ", ".join(f"{m} {c['min']['ours_over_bound']:.2f}x ({mark(c['min']['ours_over_bound'] <= 1.25)})"
                           for m, c in ig.items())
               + ". Ours runs the steps in large chunks and skips each encoder's affine stem per step, so it is "
                 "below the naive bound, not just within it.")
    def all_three(c: dict[str, Any]) -> bool:
        return min(c["min"]["captum_over_ours"], c["process"]["min"]["attribution_captum_over_ours"],
                   c["process"]["min"]["wall_captum_over_ours"]) >= 1.5

    out.append("- At least 1.5x faster than captum at its best `internal_batch_size`, whole-process time included: "
               + ", ".join(f"{m} {c['min']['captum_over_ours']:.2f}x in process, "
                           f"{c['process']['min']['attribution_captum_over_ours']:.2f}x in a fresh process, "
                           f"{c['process']['min']['wall_captum_over_ours']:.2f}x whole-process wall "
                           f"({mark(all_three(c))}; {c['process']['min']['wall_tuned_captum_over_ours']:.2f}x "
                           "against captum with the same allocator settings)" for m, c in ig.items()) + ".")
    out.append("  Why not everywhere: captum at its best chunk size is as compute-bound as we are, and per step "
               "both must run every layer after the first nonlinearity forward and backward. The exact savings "
               "are the ones we take: the affine stem runs once per batch instead of once per step, and batch "
               "norms are folded into their convolutions. The floor table above measures what they are worth per "
               "chunk: " + ", ".join(f"{m} {c['min']['ceiling']:.2f}x" for m, c in ig.items()) + ". On av-tiny "
               "the stems are half the work; on the plain conv model the first layer is cheap (1 or 3 input "
               "channels) and there are no batch norms; on ResNet-18 the 7x7 stem is a few percent of the FLOPs "
               "and folding saves the rest of what is available. Where that floor is under 1.5x, no exact "
               "input-level IG on these kernels reaches the target; what is left between ours and the floor is "
               "the path itself (built and summed at the stems' output, which is larger than the input) and "
               "the two small-batch forward passes at the path's ends. In whole processes, the interpreter and "
               "library start-up (1.5 to 2 s each) and first-call warm-up dilute the ratio; the malloc settings "
               "the CLI applies (`mmbalance.allocator`: freed tensor memory is reused instead of being mapped "
               "afresh, page fault by page fault) win part of it back, and would win captum part of its time "
               "too (last column of the whole-process table).")
    for rule, d in r["adaptive"]["rules"].items():
        ad = d["rows"][-1]
        if d["speedup_at_equal_error"] is not None:
            out.append(f"- Adaptive steps ({rule}): mean {ad['steps']:.1f} steps per sample instead of "
                       f"{d['equal_error_fixed_steps']:.0f} at equal error, {d['speedup_at_equal_error']:.1f}x "
                       "faster in time (reported, no target): refinement passes run on fewer samples at once, so "
                       "time falls less than steps.")
    emb = r["embedding"]
    out.append("- Embedding level at least 50x faster than input level on av-resnet18: "
               + ", ".join(f"batch {b} {e['speedup']:.0f}x ({mark(e['speedup'] >= 50)})" for b, e in emb.items())
               + ". The embedding level costs one encoder forward pass (the attribution on top is a few "
                 "milliseconds); at small batches that single pass is latency-bound (ResNet-18 on 4 or 16 "
                 "samples uses the cores poorly), while input-level IG runs its 32 steps in large, efficient "
                 "chunks. Input level / encode only caps the gain: "
               + ", ".join(f"batch {b} {e['ceiling']:.0f}x" for b, e in emb.items())
               + ", so where that cap is under 50x the target cannot be met at that batch size (32 is the "
                 "audit's default `--batch-size`).")
    mem = r["memory"]
    out.append(f"- Peak memory independent of dataset size (10x samples, within 10%): {mem['growth']:+.1%} "
               f"({mark(abs(mem['growth']) <= 0.10)}).")
    out.append("")
    return out


def update_docs(text: str) -> None:
    """Replace this bench's section of docs/performance.md (create the file if missing)."""
    try:
        with open(DOCS, encoding="utf-8") as fh:
            doc = fh.read()
    except FileNotFoundError:
        doc = "# Performance\n"
    start = doc.find(SECTION)
    if start < 0:
        doc = doc.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    else:
        nxt = doc.find("\n## ", start + len(SECTION))
        rest = doc[nxt + 1:] if nxt >= 0 else ""
        doc = doc[:start] + text.rstrip("\n") + "\n" + ("\n" + rest if rest else "")
    with open(DOCS, "w", encoding="utf-8") as fh:
        fh.write(doc)


def bench_default(rounds: int) -> list[dict[str, Any]]:
    """Wall time of the default audit against the previous default, interleaved, same model and data."""
    from mmbalance.audit import DEFAULT_METHODS, audit
    from mmbalance.data.dataset import TensorMultimodalDataset

    out = []
    for name, batches in (("av-tiny", 4), ("av-resnet18", 2)):
        model, x, target = build(name)
        adapter = adapter_for(model)
        reps = batches
        data = TensorMultimodalDataset({k: v.repeat((reps,) + (1,) * (v.dim() - 1)) for k, v in x.items()},
                                       target.repeat(reps) % 4, classes=[str(i) for i in range(4)])
        batch = x["audio"].shape[0]

        def run(methods: Any, adapter: Any = adapter, data: Any = data, batch: int = batch) -> Any:
            return lambda: audit(adapter, data, methods=list(methods), steps=STEPS, batch_size=batch, progress=False)

        times = interleaved({"default": run(DEFAULT_METHODS), "previous": run(("ig", "ablation"))}, rounds)
        new, old = summary(times["default"]), summary(times["previous"])
        out.append({"model": name, "samples": len(data), "batch": batch, "default": new, "previous": old,
                    "ratio_median": new["median"] / old["median"]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke test)")
    parser.add_argument("--update-docs", action="store_true", help="rewrite the section in docs/performance.md")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--only", help="comma list of parts: ig,adaptive,embedding,memory,default")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    parts = set((args.only or "ig,adaptive,embedding,memory").split(","))
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine()}
    q = args.quick
    if "memory" in parts:  # first, while this process is small (children inherit its size in ru_maxrss)
        results["memory"] = bench_memory(48 if q else 64)
    if "ig" in parts:
        results["ig"] = [bench_ig("av-tiny", 3 if q else 9, 1 if q else 3, 16),
                         bench_ig("plain-conv", 3 if q else 7, 1 if q else 3, 4),
                         bench_ig("av-resnet18", 2 if q else 3, 1 if q else 3, 2)]
    if "adaptive" in parts:
        results["adaptive"] = bench_adaptive(1 if q else 3)
    if "embedding" in parts:
        results["embedding"] = bench_embedding(2 if q else 4)
    if "default" in parts:
        results["default"] = bench_default(2 if q else 5)
    results["seconds"] = time.perf_counter() - started
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2, default=str)
    if parts == {"ig", "adaptive", "embedding", "memory"}:
        text = markdown(results)
        print(text)
        if args.update_docs:
            update_docs(text)
    else:
        print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
