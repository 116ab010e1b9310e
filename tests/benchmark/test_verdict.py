"""bench answers: a one-line verdict (winner or tie), n/a variance cut for unimodal rows, no ± for one seed,
the report palette (issue 20)."""

from __future__ import annotations

import pytest

from mmbalance.benchmark import BenchRecord, bench_verdict, summarize
from mmbalance.benchmark.render import bench_table


def _records(gblend_accs, plain_accs=(0.60, 0.70), uni_accs=(0.65, 0.60)):
    seeds = range(len(plain_accs))
    recs = [BenchRecord("unimodal-a", "unimodal", s, a, {"a": 1.0}, 0.5) for s, a in zip(seeds, uni_accs)]
    recs += [BenchRecord("plain", "plain", s, a, {"a": 0.9, "b": 0.1}, 1.0) for s, a in zip(seeds, plain_accs)]
    recs += [BenchRecord("gblend", "gblend", s, a, {"a": 0.6, "b": 0.4}, 2.0) for s, a in zip(seeds, gblend_accs)]
    return recs


def test_a_clear_winner_is_named_with_its_figures():
    table = summarize(_records((0.80, 0.90), plain_accs=(0.60, 0.62)))
    line = bench_verdict(table)
    # gblend beats the best unimodal model by +15 and +30 pts (mean +22.5); variance 0.01 vs plain's 0.16: 94% cut
    assert line == ("on this data, gblend is best: +22.5 pts over the best unimodal model, 94% variance cut; "
                    "differences under the seed spread are called ties")


def test_differences_under_the_seed_spread_are_ties():
    # gblend 0.70 ± 0.0707, plain 0.65 ± 0.0707: 5 pts apart, under the 7.1-pt spread
    table = summarize(_records((0.65, 0.75), plain_accs=(0.60, 0.70)))
    line = bench_verdict(table)
    assert line.startswith("on this data, gblend and plain tie for best (accuracy within the seed spread)")
    assert "\n" not in line


def test_unimodal_rows_have_no_variance_cut_and_one_seed_no_plus_minus():
    table = summarize(_records((0.8,), plain_accs=(0.7,), uni_accs=(0.6,)))
    assert table["unimodal-a"]["variance_cut"] is None
    assert table["gblend"]["variance_cut"] == pytest.approx(1 - 0.01 / 0.16)
    rows = {cells[0]: cells for cells in bench_table({"table": table})}
    assert rows["unimodal-a"][7] == "n/a"
    assert rows["gblend"][7] == "94%"
    assert "±" not in rows["gblend"][2] and rows["gblend"][2] == "80.0%"
    two = {c[0]: c for c in bench_table({"table": summarize(_records((0.8, 0.9)))})}
    assert two["gblend"][2] == "85.0% ± 7.1 pts"


def test_the_scatter_uses_the_report_palette(monkeypatch):
    from matplotlib.axes import Axes

    from mmbalance.benchmark.render import bench_scatter
    from mmbalance.report._plot_style import PALETTE

    recs = _records((0.8,), plain_accs=(0.7,), uni_accs=(0.6,))
    doc = {"table": summarize(recs), "records": [r.to_dict() for r in recs], "test_split": "test"}
    colors = []
    original = Axes.scatter

    def spy(self, *args, **kwargs):
        colors.append(kwargs.get("color"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Axes, "scatter", spy)
    assert bench_scatter(doc).startswith(b"\x89PNG")
    assert colors == list(PALETTE[:3])


def test_cli_prints_the_eta_first_status_lines_per_run_and_the_verdict_last(tmp_path):
    from typer.testing import CliRunner

    from mmbalance.cli import app

    data = "synthetic:av-dominance?n_train=32&n_val=16&n_test=16"
    result = CliRunner().invoke(app, ["bench", "-m", "av-tiny", "-d", data,
                                      "--methods", "plain", "--seeds", "1", "--epochs", "1", "--steps", "2",
                                      "--batch-size", "16", "--device", "cpu", "-o", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    err = [line for line in result.stderr.splitlines() if not line.startswith("warning:")]
    assert err[0].startswith("bench: 1 runs x 1 epochs x 2 steps, a plain step takes ")  # before any run
    assert err[1].startswith("plain seed 0: trained (test accuracy ")
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("on this data, plain is best:") and last.endswith("called ties")


def test_a_winner_below_the_best_unimodal_model_is_said_to_be_below():
    # every fused method is under unimodal-a (0.80, 0.82): gblend 0.70/0.72 is 10 pts below, not "-10.0 pts over"
    table = summarize(_records((0.70, 0.72), plain_accs=(0.50, 0.52), uni_accs=(0.80, 0.82)))
    line = bench_verdict(table)
    assert line.startswith("on this data, gblend is best: 10.0 pts below the best unimodal model")
    assert "over the best" not in line
