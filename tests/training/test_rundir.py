"""Run directories that are never clobbered nor shared: --force, the lock, stale locks, full disks."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import mmbalance
from finetune_cli import base_args as _base
from finetune_cli import invoke_finetune as _invoke
from finetune_cli import one_error_line as _one_error_line
from mmbalance.errors import MMBalanceError, OutputError
from mmbalance.training import TrainConfig, TrainingInterrupted, finetune
from mmbalance.training.regularizers import PlainTraining
from mmbalance.training.rundir import LOCK_FILE, RunLock

REPO = Path(mmbalance.__file__).resolve().parents[1]


def _snapshot(d: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(d.iterdir()) if p.is_file()}


def test_finetune_onto_an_existing_run_refuses_without_force(tiny_data, tmp_path):
    out = tmp_path / "run"
    assert _invoke(*_base(tiny_data, out)).exit_code == 0
    before = _snapshot(out)
    assert {"best.pt", "last.pt", "metrics.csv", "run.json", "resume.pt"} <= set(before)
    res = _invoke(*_base(tiny_data, out), "--seed", "1")
    assert res.exit_code == 2, res.output
    line = _one_error_line(res)
    assert "already holds a run" in line and "--force" in line and "--resume" in line
    assert _snapshot(out) == before  # not one byte, not one timestamp changed

    res = _invoke(*_base(tiny_data, out), "--seed", "1", "--force")
    assert res.exit_code == 0, res.output
    assert (out / "best.pt").read_bytes() != before["best.pt"][0]
    assert not (out / LOCK_FILE).exists()


def test_a_forced_run_never_mixes_with_the_old_one(tiny_data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    finetune(TrainConfig(model="av-tiny", data=tiny_data, out=str(out), epochs=1, batch_size=16, device="cpu"),
             progress=False)

    def interrupt(self, adapter, inputs, labels):
        raise KeyboardInterrupt

    monkeypatch.setattr(PlainTraining, "step", interrupt)
    with pytest.raises(TrainingInterrupted):
        finetune(TrainConfig(model="av-tiny", data=tiny_data, out=str(out), epochs=2, batch_size=16, device="cpu",
                             seed=5), progress=False, force=True)
    # the new run stopped before its first epoch: the old run's checkpoints and metrics are gone, not kept
    # next to the new run.json as if they belonged to it
    assert not (out / "best.pt").exists() and not (out / "metrics.csv").exists()
    assert '"seed": 5' in (out / "run.json").read_text()
    assert not (out / LOCK_FILE).exists()  # released on Ctrl-C too


def test_the_demo_runs_twice_in_the_same_directory(tmp_path):
    from mmbalance.demo import run_demo

    sizes = {"n_train": 32, "n_val": 16, "n_test": 16}
    for _ in range(2):
        result = run_demo(tmp_path / "demo", epochs=1, finetune_epochs=1, steps=2, device="cpu", progress=False,
                          data_sizes=sizes)
    assert result.balanced.best_path.is_file() and len(result.balanced.history) == 1


@pytest.fixture
def lock_holder(tmp_path):
    """Another process that holds the lock of tmp_path/'busy' and sleeps."""
    busy = tmp_path / "busy"
    code = ("import sys, time\nfrom mmbalance.training.rundir import RunLock\n"
            "RunLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\ntime.sleep(120)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen([sys.executable, "-c", code, str(busy)], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        yield busy, child
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("its_files", [False, True])
def test_a_second_process_on_the_same_directory_exits_2_at_once(tiny_data, lock_holder, its_files):
    busy, child = lock_holder
    if its_files:  # the holder is well into its run: still named by its PID, with or without --force
        (busy / "run.json").write_text("{}")
    started = time.perf_counter()
    for extra in ([], ["--force"]):
        res = _invoke(*_base(tiny_data, busy), *extra)
        assert res.exit_code == 2, res.output
        line = _one_error_line(res)
        assert f"PID {child.pid}" in line and "in use by another mmbalance process" in line
    assert time.perf_counter() - started < 30
    assert sorted(p.name for p in busy.iterdir()) == sorted([LOCK_FILE] + (["run.json"] if its_files else []))


def test_resume_of_a_locked_directory_exits_2(tiny_data, lock_holder):
    busy, child = lock_holder
    res = _invoke("--resume", busy)
    assert res.exit_code == 2 and f"PID {child.pid}" in _one_error_line(res)


def test_a_lock_left_by_a_killed_process_is_taken_over(tiny_data, lock_holder):
    busy, child = lock_holder
    child.kill()
    child.wait()
    assert (busy / LOCK_FILE).read_text().strip() == str(child.pid)  # SIGKILL: no clean-up ran
    res = _invoke(*_base(tiny_data, busy))
    assert res.exit_code == 0, res.output
    assert (busy / "best.pt").is_file() and not (busy / LOCK_FILE).exists()


def test_a_lock_file_naming_a_dead_pid_is_stale(tiny_data, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_FILE).write_text(f"{dead.pid}\n")
    res = _invoke(*_base(tiny_data, out))
    assert res.exit_code == 0, res.output
    assert not (out / LOCK_FILE).exists()


def test_the_lock_in_one_process(tmp_path):
    with RunLock(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())
        with pytest.raises(OutputError, match=f"PID {os.getpid()}"):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / LOCK_FILE).exists()
    RunLock(tmp_path).acquire().release()


def test_the_lock_is_released_when_training_fails(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(MMBalanceError):
        finetune(TrainConfig(model="av-tiny", data=str(tmp_path / "no-such-data.pt"), out=str(out), epochs=1),
                 progress=False)
    assert not out.exists()  # the lock and the directory it made are gone again
    RunLock(out).acquire().release()


def test_finetune_on_a_full_disk_is_one_line(tiny_data, tmp_path, monkeypatch):
    def enforce_fail(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    class Full:
        f_bavail, f_frsize, f_flag = 0, 4096, 0

    monkeypatch.setattr(torch, "save", enforce_fail)
    monkeypatch.setattr(os, "statvfs", lambda p: Full())
    out = tmp_path / "run"
    res = _invoke(*_base(tiny_data, out))
    assert res.exit_code == 2, res.output
    assert f"no space left on the device holding {out}" in _one_error_line(res)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert not (out / LOCK_FILE).exists()


def test_finetune_on_a_disk_that_fills_up(tiny_data, tmp_path, monkeypatch):
    real_save = torch.save
    saves = {"n": 0}

    def fills_up(obj, f, *args, **kwargs):
        saves["n"] += 1
        if saves["n"] > 1:  # resume.pt of epoch 0 fits, best.pt of epoch 1 does not
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", fills_up)
    out = tmp_path / "run"
    res = _invoke(*_base(tiny_data, out))
    assert res.exit_code == 2 and "no space left" in _one_error_line(res)
    assert (out / "resume.pt").is_file() and not (out / "best.pt").exists()


def test_docstring_examples():
    import doctest

    from mmbalance.training import resume, rundir

    for module in (rundir, resume):
        assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0
