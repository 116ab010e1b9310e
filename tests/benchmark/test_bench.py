"""``mmbalance bench``: the plan of runs, the table, files written, and resuming without retraining."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from mmbalance.benchmark import BenchRecord, bench, plan_runs, share_variance, summarize
from mmbalance.cli import app
from mmbalance.errors import UsageError
from mmbalance.training import TrainConfig, TrainingInterrupted, finetune

DATA = "synthetic:av-dominance?n_train=32&n_val=16&n_test=16"
FAST = dict(epochs=1, batch_size=16, steps=2, progress=False, device="cpu")


def test_plan_expands_unimodal_and_puts_the_ensemble_last():
    plans = plan_runs(["ensemble", "plain", "ogm-ge-published"], ["audio", "visual"], epochs=10)
    assert [p.name for p in plans] == ["unimodal-audio", "unimodal-visual", "plain", "ogm-ge-published", "ensemble"]
    ogm = plans[3].overrides
    assert (ogm["optimizer"], ogm["momentum"], ogm["scheduler"], ogm["step_size"]) == ("sgd", 0.9, "step", 7)
    assert plans[-1].members == ("unimodal-audio", "unimodal-visual")
    with pytest.raises(UsageError, match="gblnd"):
        plan_runs(["gblnd"], ["audio", "visual"], epochs=1)
    with pytest.raises(UsageError):
        plan_runs(["plain", "plain"], ["audio", "visual"], epochs=1)


def test_share_variance_and_the_table():
    assert share_variance({"a": 0.5, "b": 0.5}) == 0.0
    assert share_variance({"a": 1.0, "b": 0.0}) == pytest.approx(0.25)
    recs = [BenchRecord("plain", "plain", s, acc, {"a": 0.9, "b": 0.1}, 1.0) for s, acc in ((0, 0.6), (1, 0.7))]
    recs += [BenchRecord("unimodal-a", "unimodal", s, acc, {"a": 1.0, "b": 0.0}, 0.5)
             for s, acc in ((0, 0.65), (1, 0.6))]
    recs += [BenchRecord("gblend", "gblend", s, acc, {"a": 0.5, "b": 0.5}, 2.0) for s, acc in ((0, 0.7), (1, 0.8))]
    table = summarize(recs)
    g = table["gblend"]
    assert g["accuracy_mean"] == pytest.approx(0.75) and g["accuracy_std"] == pytest.approx(math.sqrt(0.005))
    assert g["delta_best_unimodal"] == pytest.approx([0.05, 0.2])
    assert g["delta_plain"] == pytest.approx([0.1, 0.1])
    assert g["variance_cut"] == pytest.approx(1.0) and g["relative_time"] == pytest.approx(2.0)
    assert table["plain"]["variance_cut"] == pytest.approx(0.0)


def test_bench_writes_the_table_and_does_not_retrain(tmp_path):
    out = tmp_path / "b"
    first = bench("av-tiny", DATA, out=out, methods=["plain", "gblend"], seeds=[0], **FAST)
    assert first.trained == ["plain/seed0", "gblend/seed0"]
    doc = json.loads((out / "bench.json").read_text())
    assert doc["schema"] == "mmbalance.bench/1"
    assert [r["run"] for r in doc["records"]] == ["plain", "gblend"]
    assert set(doc["table"]) == {"plain", "gblend"}
    md = (out / "bench.md").read_text().split("### Robustness")[0]
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| Method")]
    assert [r.split("|")[1].strip() for r in rows] == ["plain", "gblend"]
    acc = doc["records"][1]["test_accuracy"]
    assert f"{acc:.1%}" in rows[1]
    html = (out / "report" / "index.html").read_text()
    assert "data:image/png;base64," in html and "gblend" in html
    for run in ("plain", "gblend"):
        assert (out / "runs" / run / "seed0" / "best.pt").is_file()
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/seed0/*") if p.is_file()}
    second = bench("av-tiny", DATA, out=out, methods=["plain", "gblend"], seeds=[0], **FAST)
    assert second.trained == []
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert [r.to_dict() for r in second.records] == [r.to_dict() for r in first.records]


def test_bench_resumes_an_interrupted_run(tmp_path):
    out = tmp_path / "b"
    run_dir = out / "runs" / "plain" / "seed0"
    cfg = TrainConfig(model="av-tiny", data=DATA, out=str(run_dir), epochs=2, batch_size=16, seed=0, device="cpu")

    def stop(row):
        raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        finetune(cfg, progress=False, on_epoch_end=stop)
    told = []
    result = bench("av-tiny", DATA, out=out, methods=["plain"], seeds=[0], **dict(FAST, epochs=2),
                   on_run=lambda run, seed, status: told.append(status))
    assert told == ["resumed"]
    assert result.records[0].best_epoch in (1, 2)
    assert len((run_dir / "metrics.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs


def test_ensemble_is_audited_from_the_unimodal_runs(tmp_path):
    out = tmp_path / "b"
    result = bench("av-tiny", DATA, out=out, methods=["ensemble"], seeds=[0], train={"target": "audio=0.3,visual=0.7"},
                   **FAST)
    runs = [r.run for r in result.records]
    assert runs == ["unimodal-audio", "unimodal-visual", "ensemble"]
    uni = result.records[0]
    assert uni.shares == {"audio": pytest.approx(1.0), "visual": 0.0}
    ens = result.records[2]
    assert ens.train_seconds == pytest.approx(result.records[0].train_seconds + result.records[1].train_seconds)
    assert json.loads((out / "runs" / "ensemble" / "seed0" / "run.json").read_text())["model"] == "ensemble"


def test_cli_bad_method_is_one_line_and_exit_2(tmp_path):
    res = CliRunner().invoke(app, ["bench", "-m", "av-tiny", "-d", DATA, "-o", str(tmp_path), "--methods", "nope"])
    assert res.exit_code == 2
    assert "unknown bench method" in res.output and "Traceback" not in res.output


def test_a_run_with_other_settings_is_refused_not_reused(tmp_path):
    out = tmp_path / "b"
    bench("av-tiny", DATA, out=out, methods=["plain"], seeds=[0], **FAST)
    with pytest.raises(UsageError, match="lr"):
        bench("av-tiny", DATA, out=out, methods=["plain"], seeds=[0], lr=5e-3, **FAST)
    again = bench("av-tiny", DATA, out=out, methods=["plain"], seeds=[0], **dict(FAST, device="auto"))
    assert again.trained == []


def test_report_renders_a_bench_json(tmp_path):
    out = tmp_path / "b"
    bench("av-tiny", DATA, out=out, methods=["plain"], seeds=[0], **FAST)
    res = CliRunner().invoke(app, ["report", str(out / "bench.json"), "-o", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "Methods compared" in page and "data:image/png;base64," in page
    assert (tmp_path / "rep" / "bench.md").read_text() == (out / "bench.md").read_text()
    (tmp_path / "x.json").write_text('{"schema": "mmbalance.bench/1"}')
    bad = CliRunner().invoke(app, ["report", str(tmp_path / "x.json"), "-o", str(tmp_path / "rep2")])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_plan_warm_recommended_and_ogm_ge_at_the_budget():
    from mmbalance.benchmark.methods import RECOMMENDED, WARM_LR_FACTOR

    plans = plan_runs(["warm", "plain"], ["audio", "visual"], epochs=10)
    assert [p.name for p in plans] == ["unimodal-audio", "unimodal-visual", "warm", "plain"]
    assert plans[2].members == ("unimodal-audio", "unimodal-visual")
    rec = plan_runs(["recommended", RECOMMENDED], ["audio", "visual"], epochs=10)  # one method, named twice
    assert [p.name for p in rec][-1] == RECOMMENDED and len({p.name for p in rec}) == len(rec)
    ogm = plan_runs(["ogm-ge"], ["audio", "visual"], epochs=10)[0].overrides
    assert "optimizer" not in ogm and "scheduler" not in ogm and ogm["modulation_end"] == 5
    assert 0 < WARM_LR_FACTOR < 1


def test_warm_bench_merges_the_unimodal_runs_and_measures_robustness(tmp_path):
    from mmbalance.benchmark.methods import WARM_LR_FACTOR

    out = tmp_path / "b"
    result = bench("av-tiny", DATA, out=out, methods=["recommended"], seeds=[0], lr=3e-3, **FAST)
    assert [r.run for r in result.records] == ["unimodal-audio", "unimodal-visual", "warm-calibrated"]
    info = json.loads((out / "runs" / "warm-calibrated" / "seed0" / "run.json").read_text())
    config = info["config"]
    assert config["init_calibrate"] is True and set(info["init_scales"]) == {"audio", "visual"}
    assert config["lr"] == pytest.approx(3e-3 * WARM_LR_FACTOR)
    assert config["init"] == {m: str(out / "runs" / f"unimodal-{m}" / "seed0" / "best.pt") for m in ("audio", "visual")}
    doc = json.loads((out / "bench.json").read_text())
    assert doc["recommended"] == "warm-calibrated"
    for record in result.records:
        robust = record.extra["robustness"]
        assert set(robust) == {"zero_audio", "noise_audio", "zero_visual", "noise_visual"}
        assert all(0.0 <= v <= 1.0 for v in robust.values())
    # a unimodal model does not read the other stream: corrupting it changes nothing
    audio_only = result.records[0]
    assert audio_only.extra["robustness"]["zero_visual"] == pytest.approx(audio_only.test_accuracy)
    assert audio_only.extra["robustness"]["noise_visual"] == pytest.approx(audio_only.test_accuracy)
    assert "### Robustness" in (out / "bench.md").read_text()


def test_baseline_below_the_best_unimodal_model_is_warned():
    from mmbalance.benchmark.robustness import baseline_warnings

    table = {"unimodal-audio": {"accuracy_mean": 0.6}, "unimodal-visual": {"accuracy_mean": 0.8},
             "plain": {"accuracy_mean": 0.9}, "ogm-ge": {"accuracy_mean": 0.2}, "ensemble": {"accuracy_mean": 0.7}}
    lines = baseline_warnings(table)
    assert len(lines) == 1 and lines[0].startswith("ogm-ge (20.0%) is below") and "unimodal-visual (80.0%)" in lines[0]
    assert baseline_warnings({"plain": {"accuracy_mean": 0.1}}) == []


def test_shares_are_the_audits_primary_measure_and_an_old_ig_result_is_reaudited(tmp_path):
    from mmbalance.audit import audit
    from mmbalance.data import load_dataset

    out = tmp_path / "b"
    first = bench("av-tiny", DATA, out=out, methods=["plain"], seeds=[0], robust=False, **FAST)
    doc = json.loads((out / "bench.json").read_text())
    assert doc["measure"] == "shapley" and first.records[0].extra["measure"] == "shapley"
    assert "input-level Shapley (modality removal) shares" in (out / "bench.md").read_text()
    run_dir = out / "runs" / "plain" / "seed0"
    direct = audit("av-tiny", load_dataset(DATA, split="test"), checkpoint=str(run_dir / "best.pt"),
                   methods=["shapley"], bootstrap=0, progress=False, device="cpu")
    # the same estimator on the same checkpoint and data: equal up to float32 summation order
    assert first.records[0].shares == pytest.approx(direct.shares, abs=1e-6)
    # a result written by an earlier bench (no measure: IG) is audited again, and the model is not retrained
    result = run_dir / "bench_result.json"
    old = json.loads(result.read_text())
    old["extra"].pop("measure")
    old["shares"] = {"audio": 0.99, "visual": 0.01}
    result.write_text(json.dumps(old))
    weights = (run_dir / "best.pt").stat().st_mtime_ns
    statuses = []
    again = bench("av-tiny", DATA, out=out, methods=["plain"], seeds=[0], robust=False,
                  on_run=lambda run, seed, status: statuses.append(status), **FAST)
    assert statuses == ["audited"] and (run_dir / "best.pt").stat().st_mtime_ns == weights
    assert again.records[0].shares == pytest.approx(first.records[0].shares, abs=1e-6)
    ig = bench("av-tiny", DATA, out=out, methods=["plain"], seeds=[0], robust=False, measure="ig", **FAST)
    assert ig.records[0].extra["measure"] == "ig"
    assert "Integrated-Gradients" in (out / "bench.md").read_text()
    with pytest.raises(UsageError):
        bench("av-tiny", DATA, out=out, methods=["plain"], seeds=[0], measure="nope", **FAST)
