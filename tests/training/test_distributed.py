"""torchrun with 2 CPU processes (gloo) against one process: finetune and audit."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmbalance.models import load_state_dict
from mmbalance.training.regularizers.gblend import blend_update

pytestmark = pytest.mark.timeout(600)

# A fusion model without batch norm: with it, per-rank batch statistics would differ from
# the single-process ones; without it, DDP's averaged gradients equal the global ones.
NO_BN_MODEL = '''
import torch
from torch import nn
from mmbalance.models.fusion import FusionModel, build_fusion

class Enc(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.proj = nn.Linear(4, dim)
    def forward(self, x):
        if x.dim() == 5:
            x = x.mean(dim=(1, 2)).unsqueeze(1)
        return self.proj(torch.tanh(self.conv(x)).mean(dim=(2, 3)))

class NoBN(FusionModel):
    pass

def build(num_classes, fusion="concat"):
    head = build_fusion(fusion, {"audio": 8, "visual": 8}, num_classes)
    return NoBN({"audio": Enc(8), "visual": Enc(8)}, head, embedding_dim=8, num_classes=num_classes)
'''


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", NO_COLOR="1")
    env.pop("WORLD_SIZE", None)
    return env


def _run(args: list[str], nproc: int, cwd: Path) -> subprocess.CompletedProcess:
    if nproc == 1:
        cmd = [sys.executable, "-m", "mmbalance", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
               "-m", "mmbalance", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-8000:]
    return proc


def _metrics(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items() if v != "" and not k.endswith("_seconds")} for row in csv.DictReader(fh)]


def _close(a: list[dict[str, float]], b: list[dict[str, float]], tol: float) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            assert ra[k] == pytest.approx(rb[k], abs=tol), (k, ra[k], rb[k])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ddp")
    (d / "nobn.py").write_text(NO_BN_MODEL)
    return d


DATA = "synthetic:av-dominance?n_train=64&n_val=32&n_test=48"


@pytest.fixture(scope="module")
def audit_checkpoint(workdir) -> Path:
    """A run of its own for the audit tests: reusing another test's run made the outcome depend on test order."""
    _run(["finetune", "--model", "nobn.py:build", "--data", DATA, "--epochs", "1", "--out", "audit-run",
          "--device", "cpu", "-q"], 1, workdir)
    return workdir / "audit-run" / "last.pt"


@pytest.mark.parametrize("regularizer", ["none", "attribution", "gblend"])
def test_two_processes_match_one(workdir, regularizer):
    common = ["finetune", "--model", "nobn.py:build", "--data", DATA, "--epochs", "2", "--batch-size", "16",
              "--lr", "0.01", "--seed", "5", "--device", "cpu", "-q", "--regularizer", regularizer,
              "--lambda", "1"]
    if regularizer == "attribution":
        # the tolerance below is for a smooth per-sample measure: per-sample Shapley shares (the default) jump
        # between 0 and 1 on small samples, so half-batch means drift more; DDP itself is what is checked here
        common += ["--attribution", "gradxinput"]
    _run([*common, "--out", f"one-{regularizer}"], 1, workdir)
    proc = _run([*common, "--out", f"two-{regularizer}"], 2, workdir)
    assert proc.stdout.count("trained") <= 1  # rank-0 output only
    one, two = workdir / f"one-{regularizer}", workdir / f"two-{regularizer}"
    # Same global batches; the attribution penalty is computed per rank on half batches, so a little drift.
    tol = 0.05 if regularizer == "attribution" else 1e-4
    m1, m2 = _metrics(one / "metrics.csv"), _metrics(two / "metrics.csv")
    if regularizer == "gblend":  # the weights amplify float differences: compared with a derived tolerance
        _check_gblend_weights(one, two, m1, m2)
        m1, m2 = ([{k: v for k, v in r.items() if not k.startswith("w_")} for r in m] for m in (m1, m2))
    _close(m1, m2, tol)
    w1, w2 = load_state_dict(one / "last.pt"), load_state_dict(two / "last.pt")
    for k in w1:
        assert torch.allclose(w1[k], w2[k], atol=10 * tol), k
    assert json.loads((two / "run.json").read_text())["epochs_done"] == 2


def _observations(run: Path) -> list[dict[str, tuple[float, float]]]:
    state = torch.load(run / "resume.pt", weights_only=True)["regularizer"]
    return [{k: (float(a), float(b)) for k, (a, b) in obs.items()} for _, obs in state["observations"]]


def _replay(observations: list[dict[str, tuple[float, float]]], smoothing: float, floor: float
            ) -> list[dict[str, float]]:
    """The weights after each estimate, recomputed in float64 from the recorded losses."""
    heads = list(observations[0])
    w = {k: 1.0 / len(heads) for k in heads}
    out = []
    for prev, now in zip(observations, observations[1:]):
        w = blend_update(w, prev, now, smoothing=smoothing, floor=floor)
        out.append(w)
    return out


def _weight_tolerance(observations, delta: float, smoothing: float, floor: float) -> list[float]:
    """First-order bound on each epoch's weight change when every loss moves by up to ``delta``.

    ``sum_i |d w / d L_i| * delta``, the derivative by central differences of :func:`_replay`,
    doubled for the second-order remainder; plus the CSV's rounding of the weights (1e-6).
    """
    flat = [(e, k, j) for e, obs in enumerate(observations) for k in obs for j in (0, 1)]
    sens = [0.0] * (len(observations) - 1)
    for e, k, j in flat:
        h = 1e-6 * max(1.0, abs(observations[e][k][j]))
        moved = []
        for sign in (1, -1):
            obs = [dict(o) for o in observations]
            pair = list(obs[e][k])
            pair[j] += sign * h
            obs[e][k] = (pair[0], pair[1])
            moved.append(_replay(obs, smoothing, floor))
        for epoch, (up, down) in enumerate(zip(*moved)):
            sens[epoch] += max(abs(up[h_] - down[h_]) / (2 * h) for h_ in up)
    return [2 * s * delta + 2e-6 for s in sens]


def _check_gblend_weights(one: Path, two: Path, m1, m2) -> None:
    """G-Blend's weights are ``dG / dO^2`` of loss differences: a 1e-7 change of a loss can move them by 1e-3.

    What is equal in exact arithmetic is compared directly: the per-head losses the weights are
    estimated from (1e-4, as every loss). The weights are then checked twice: each run's weights are
    the update rule replayed on its own recorded losses, and the two runs' weights differ by no
    more than the losses' measured difference propagated through the rule's derivative.
    """
    cfg = json.loads((one / "run.json").read_text())["config"]
    smoothing, floor = cfg["gblend_smoothing"], cfg["gblend_floor"]
    obs1, obs2 = _observations(one), _observations(two)
    assert len(obs1) == len(obs2) == len(m1) + 1  # epoch 0, then every epoch
    delta = max(abs(a - b) for o1, o2 in zip(obs1, obs2) for k in o1 for a, b in zip(o1[k], o2[k]))
    assert delta < 1e-4
    for run, obs in ((m1, obs1), (m2, obs2)):
        for row, w in zip(run, _replay(obs, smoothing, floor)):
            for k, v in w.items():
                assert row[f"w_{k}"] == pytest.approx(v, abs=1.5e-6)
    for epoch, (r1, r2, tol) in enumerate(zip(m1, m2, _weight_tolerance(obs1, delta, smoothing, floor)), 1):
        for k in (k for k in r1 if k.startswith("w_")):
            assert r1[k] == pytest.approx(r2[k], abs=tol), (epoch, k, r1[k], r2[k], tol)


def test_two_processes_with_batch_norm_stay_close(workdir):
    common = ["finetune", "--model", "av-tiny", "--data", DATA, "--epochs", "1", "--batch-size", "16", "--seed", "1",
              "--device", "cpu", "-q", "--regularizer", "attribution"]
    _run([*common, "--out", "bn-one"], 1, workdir)
    _run([*common, "--out", "bn-two"], 2, workdir)
    one, two = _metrics(workdir / "bn-one" / "metrics.csv"), _metrics(workdir / "bn-two" / "metrics.csv")
    assert one[0]["val_loss"] == pytest.approx(two[0]["val_loss"], abs=0.1)  # per-rank batch-norm statistics
    assert one[0]["val_accuracy"] == pytest.approx(two[0]["val_accuracy"], abs=0.15)


AUDIT_SCRIPT = '''
import json, os, sys
from mmbalance.attribution.integrated_gradients import IntegratedGradients
from mmbalance.audit import audit

seen = []
original = IntegratedGradients.attribute

def counting(self, *args, **kwargs):
    out = original(self, *args, **kwargs)
    seen.append(int(out.scores.shape[0]))
    return out

IntegratedGradients.attribute = counting
r = audit("nobn.py:build", sys.argv[1], checkpoint=sys.argv[2], methods=["ig", "ablation"], steps=4,
          batch_size=10, bootstrap=0, device="cpu", progress=False)
rank = int(os.environ.get("RANK", "0"))
with open(f"{sys.argv[3]}-{rank}.json", "w") as fh:
    json.dump({"rank": rank, "local": sum(seen), "n": r.n_samples, "accuracy": r.accuracy,
               "shares": {k: m.shares for k, m in r.methods.items()},
               "extra": {k: m.extra.get("accuracy_drop") for k, m in r.methods.items()}}, fh)
'''


def test_audit_shards_the_data_and_reduces_the_statistics(workdir, audit_checkpoint):
    ckpt = audit_checkpoint
    (workdir / "audit_script.py").write_text(AUDIT_SCRIPT)

    def results(nproc):
        args = ["audit_script.py", DATA, str(ckpt), f"result{nproc}"]
        if nproc == 1:
            cmd = [sys.executable, *args]
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *args]
        proc = subprocess.run(cmd, cwd=workdir, env=_env(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-5000:]
        return [json.loads((workdir / f"result{nproc}-{rank}.json").read_text()) for rank in range(nproc)]

    one, two = results(1), results(2)
    assert [r["local"] for r in one] == [48]
    assert [r["local"] for r in two] == [24, 24]  # each rank attributed half of the samples
    for r in two:
        assert r["n"] == 48 and r["accuracy"] == pytest.approx(one[0]["accuracy"])
        for method, shares in one[0]["shares"].items():
            for m, v in shares.items():
                assert r["shares"][method][m] == pytest.approx(v, abs=1e-9)
        assert r["extra"]["ablation"] == pytest.approx(one[0]["extra"]["ablation"])  # merged extras


def test_audit_under_torchrun_equals_one_process(workdir, audit_checkpoint):
    ckpt = audit_checkpoint
    args = ["audit", "--model", "nobn.py:build", "--checkpoint", str(ckpt), "--data", DATA, "--steps", "4",
            "--batch-size", "10", "--device", "cpu", "-q"]
    _run([*args, "--out", "audit-one.json"], 1, workdir)
    _run([*args, "--out", "audit-two.json"], 2, workdir)
    one = json.loads((workdir / "audit-one.json").read_text())
    two = json.loads((workdir / "audit-two.json").read_text())
    assert one["n_samples"] == two["n_samples"] == 48
    assert one["accuracy"] == pytest.approx(two["accuracy"])
    for name, method in one["methods"].items():
        for m, share in method["shares"].items():
            assert two["methods"][name]["shares"][m] == pytest.approx(share, abs=1e-9)
        assert two["methods"][name]["per_class"].keys() == method["per_class"].keys()
