"""CLI start-up: wall-clock seconds of ``mmbalance --help``, ``models``, an argument error and ``import torch``.

Each command runs in a fresh interpreter (``python -m mmbalance ...``), ``--repeats`` times; the median is
reported. The target is under 1 s for ``--help``, argument errors and ``models`` (torch is imported only once a
command runs; ``models`` lists the built-ins from literals; see mmbalance/cli/_defaults.py). Writes the "CLI start-up" section of ``docs/performance.md``.

Usage::

    python bench/bench_startup.py               # 5 repeats, writes docs/performance.md
    python bench/bench_startup.py --repeats 3 --no-write
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "CLI start-up"
CASES = [
    ("`mmbalance --help`", ["-m", "mmbalance", "--help"]),
    ("`mmbalance audit --help`", ["-m", "mmbalance", "audit", "--help"]),
    ("`mmbalance audit` (argument error, exit 2)", ["-m", "mmbalance", "audit"]),
    ("`mmbalance finetune --epochs x` (argument error, exit 2)", ["-m", "mmbalance", "finetune", "--epochs", "x"]),
    ("`mmbalance models`", ["-m", "mmbalance", "models"]),
    ("`python -c 'import torch'` (for scale)", ["-c", "import torch"]),
]


def time_once(args: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds user + system) of one run; CPU time barely depends on other jobs' load."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run(repeats: int) -> str:
    load_before = os.getloadavg()[0]
    rows = []
    for label, args in CASES:
        time_once(args)  # warm the file cache
        runs = [time_once(args) for _ in range(repeats)]
        wall, cpu = [r[0] for r in runs], [r[1] for r in runs]
        rows.append(f"| {label} | {statistics.median(wall):.2f} | {min(wall):.2f} | {statistics.median(cpu):.2f} |")
        print(rows[-1], flush=True)
    load_after = os.getloadavg()[0]
    return "\n".join([
        f"## {SECTION}", "",
        f"`python bench/bench_startup.py` ({datetime.date.today()}): each command in a fresh interpreter, "
        f"{repeats} runs after one warm-up; wall clock and CPU time (user + system, which other jobs' load barely changes) in seconds. `--help`, argument errors and `models` "
        "(the built-ins, listed from literals) import neither torch nor matplotlib (tests/cli/test_startup.py "
        "asserts it); a command that runs imports them then.", "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}. Load average {load_before:.1f} before and {load_after:.1f} after "
        "(other jobs shared the CPUs).", "",
        "| command | median wall s | best wall s | median CPU s |", "|---|---:|---:|---:|", *rows, ""])


def write_section(text: str, path: Path) -> None:
    """Replace (or append) the '## CLI start-up' section of ``path``, keeping the other sections."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Performance\n\n"
    pattern = re.compile(rf"^## {re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(old):
        new = pattern.sub(lambda _: text + "\n", old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new.rstrip("\n") + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="Runs per command (median reported).")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs/performance.md alone.")
    args = parser.parse_args()
    text = run(args.repeats)
    print()
    print(text)
    if not args.no_write:
        write_section(text, ROOT / "docs" / "performance.md")


if __name__ == "__main__":
    main()
