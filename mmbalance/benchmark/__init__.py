"""``mmbalance bench``: every balancing method at one budget, several seeds, on the user's data.

Example:
    >>> from mmbalance.benchmark import bench
    >>> r = bench("av-tiny", "synthetic:av-dominance", out="bench/avd", methods=["plain", "unimodal", "gblend"],
    ...           seeds=[0, 1, 2], epochs=10)  # doctest: +SKIP
    >>> r.markdown_path.read_text()  # doctest: +SKIP
"""

from .methods import BENCH_METHODS, DEFAULT_METHODS, RunPlan, plan_runs
from .render import bench_markdown, is_bench_file, load_bench, render_bench, write_bench_html
from .run import BenchResult, bench
from .summary import BENCH_SCHEMA, BenchRecord, bench_verdict, share_variance, summarize

__all__ = ["BENCH_METHODS", "BENCH_SCHEMA", "BenchRecord", "BenchResult", "DEFAULT_METHODS", "RunPlan", "bench",
           "bench_markdown", "bench_verdict", "is_bench_file", "load_bench", "plan_runs", "render_bench", "share_variance", "summarize", "write_bench_html"]
