"""Media decoding throughput: clips per second for ``mmbalance data prepare`` with 1 and 2 workers.

Generates CREMA-D-like clips with PyAV (480×360 H.264 at 30 fps, 2.5 s, stereo AAC at
44.1 kHz, noisy frames; nothing is downloaded), decodes them with the default options (4 frames at
112×112, 16 kHz log-mel with 64 bands, 3 s) and appends the numbers to
``docs/performance.md`` under "Media decoding" (replacing that section, keeping the others).

Usage::

    python bench/bench_decode.py                 # 64 clips, workers 1 and 2, writes docs/performance.md
    python bench/bench_decode.py --clips 16 --no-write
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmbalance.media import DecodeOptions, open_media, prepare  # noqa: E402
from mmbalance.media.testing import video_encoder, write_clip  # noqa: E402

SECTION = "Media decoding"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import av

    return (f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; Python "
            f"{platform.python_version()}, torch {torch.__version__}, PyAV {av.__version__} "
            f"(FFmpeg {av.ffmpeg_version_info if hasattr(av, 'ffmpeg_version_info') else '?'})")


def make_clips(folder: Path, n: int, seconds: float, width: int, height: int, fps: int) -> Path:
    rows = ["video,label"]
    for i in range(n):
        name = f"clip{i:03d}.mp4"
        write_clip(folder / name, seconds=seconds, fps=fps, width=width, height=height, sample_rate=44100,
                   channels=2, seed=i, texture=True)
        rows.append(f"{name},c{i % 6}")
    csv = folder / "clips.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv


def run(args: argparse.Namespace) -> str:
    options = DecodeOptions()
    load = [os.getloadavg()[0]]
    work = Path(tempfile.mkdtemp(prefix="mmbalance-bench-"))
    try:
        t0 = time.perf_counter()
        csv = make_clips(work / "clips", args.clips, args.seconds, args.width, args.height, args.fps)
        made = time.perf_counter() - t0
        print(f"made {args.clips} clips in {made:.1f} s ({video_encoder()} + AAC)", flush=True)
        rows = []
        for workers in args.workers:
            out = work / f"out-{workers}"
            result = prepare(csv, out, options=options, workers=workers, progress=False)
            rate = result.decoded / result.seconds
            rows.append((f"`data prepare --workers {workers}`", workers, result.decoded, result.seconds, rate))
            print(f"workers={workers}: {result.decoded} clips in {result.seconds:.2f} s = {rate:.1f} clips/s",
                  flush=True)
        # worker start-up: the same prepare on 2 clips (mostly spawning and importing torch)
        small = csv.parent / "small.csv"
        small.write_text("\n".join(csv.read_text().splitlines()[:3]) + "\n")
        startup = prepare(small, work / "out-startup", options=options, workers=2, shard_size=1,
                          progress=False).seconds
        print(f"2 workers on 2 clips (start-up): {startup:.2f} s", flush=True)
        ds = open_media(csv, options=options)
        ds[0]  # warm-up: builds the resampler and mel filters once
        n = min(len(ds) - 1, 16)
        t0 = time.perf_counter()
        for i in range(1, n + 1):
            ds[i]
        live = time.perf_counter() - t0
        rows.append((f"on the fly (`MediaDataset[i]`, in-process, {torch.get_num_threads()} torch threads)", 1, n,
                     live, n / live))
        print(f"on the fly: {n} clips in {live:.2f} s = {n / live:.1f} clips/s", flush=True)
        stages = stage_times(ds, n)
        print("per clip: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in stages.items()), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load.append(os.getloadavg()[0])

    lines = [
        f"## {SECTION}",
        "",
        f"`python bench/bench_decode.py` ({time.strftime('%Y-%m-%d')}): {args.clips} synthetic clips of "
        f"{args.seconds:g} s, {args.width}×{args.height} H.264 at {args.fps} fps with stereo AAC at 44.1 kHz "
        "(like CREMA-D; frames carry noise so decoding costs about what real footage costs), decoded with the "
        f"default options: {options.num_frames} frames at "
        f"{options.size}×{options.size} (ImageNet-normalized), audio resampled to {options.sample_rate} Hz, "
        f"{options.clip_seconds:g} s, log-mel with {options.n_mels} bands. Times are wall clock and include "
        "starting the worker processes (spawn) and writing the tensor files.",
        "",
        f"Machine: {machine()}. Load average {load[0]:.1f} before and {load[1]:.1f} after the run"
        + (" (other jobs shared the CPUs, so these numbers are pessimistic)" if max(load) > (os.cpu_count() or 1) * 0.5
           else "") + ".",
        "",
        "| how | workers | clips | seconds | clips/s |",
        "|---|---:|---:|---:|---:|",
        *[f"| {how} | {w} | {n} | {s:.2f} | {r:.1f} |" for how, w, n, s, r in rows],
        "",
        "Per clip, in-process with one torch thread: "
        + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in stages.items())
        + f". Starting two workers costs about {startup:.1f} s (spawning and importing torch; measured as "
        "`prepare` of 2 clips with 2 workers), paid once per run. Each worker decodes whole clips with one "
        "torch thread and the clips are independent, so on a machine with N free cores `--workers N` "
        "should divide the decoding time by up to N once that start-up is paid (not measured here); on a "
        "2-CPU machine that other jobs share, as here, a second worker does not pay for its start-up. At the one-worker rate above a 7,442-clip CREMA-D pass takes about "
        f"{7442 / rows[0][4] / 60:.0f} min.",
        "",
    ]
    return "\n".join(lines)


def stage_times(ds, n: int) -> dict[str, float]:
    """Mean seconds per clip of each stage, in-process with one torch thread."""
    from mmbalance.media import frames_to_tensor, read_frames, read_waveform, spectrogram

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    totals = {"video decode + resize": 0.0, "audio decode + resample": 0.0, "spectrogram + normalize": 0.0}
    try:
        for item in ds.items[1:n + 1]:
            t0 = time.perf_counter()
            frames = read_frames(item.visual, ds.options)
            t1 = time.perf_counter()
            wave = read_waveform(item.audio_path, ds.options)
            t2 = time.perf_counter()
            spectrogram(wave, ds.options)
            frames_to_tensor(frames, ds.options)
            t3 = time.perf_counter()
            for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2)):
                totals[key] += dt
    finally:
        torch.set_num_threads(threads)
    return {k: v / n for k, v in totals.items()}


def write_section(text: str, path: Path) -> None:
    """Replace (or append) the '## Media decoding' section of ``path``, keeping the other sections."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Performance\n\n"
    pattern = re.compile(rf"^## {re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(old):
        new = pattern.sub(lambda _: text + "\n", old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new.rstrip("\n") + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=2.5)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs/performance.md alone.")
    args = parser.parse_args()
    print(machine(), flush=True)
    text = run(args)
    print()
    print(text)
    if not args.no_write:
        write_section(text, ROOT / "docs" / "performance.md")
        print(f"updated {ROOT / 'docs' / 'performance.md'}")


if __name__ == "__main__":
    main()
