"""A run directory is untrusted input (issue 21, cases 2, 5 and 14): planted links, FIFOs, a full disk, `/`."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

import pytest

from finetune_cli import base_args as _base
from finetune_cli import invoke_finetune as _invoke
from finetune_cli import one_error_line as _one_error_line
from mmbalance.errors import OutputError
from mmbalance.io import atomic_write_text, confined_to
from mmbalance.training.rundir import LOCK_FILE, RunLock


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    p = tmp_path / "victim.txt"
    p.write_text("precious\n")
    return p


@pytest.mark.parametrize("resume", [False, True])
def test_a_symlinked_lock_is_refused_and_its_target_untouched(tiny_data, tmp_path, victim, resume):
    out = tmp_path / "run"
    if resume:
        assert _invoke(*_base(tiny_data, out)).exit_code == 0
    else:
        out.mkdir()
    (out / LOCK_FILE).symlink_to(victim)
    res = _invoke("--resume", out) if resume else _invoke(*_base(tiny_data, out))
    assert res.exit_code == 2, res.output
    line = _one_error_line(res)
    assert "symbolic link" in line and LOCK_FILE in line
    assert victim.read_text() == "precious\n"
    assert (out / LOCK_FILE).is_symlink()  # not deleted either


def test_a_fifo_lock_is_refused_at_once_instead_of_hanging(tiny_data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    os.mkfifo(out / LOCK_FILE)
    done: dict[str, object] = {}

    def go() -> None:
        done["res"] = _invoke(*_base(tiny_data, out))

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(60)
    if t.is_alive():  # unblock the hung open so the thread can end, then fail
        fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail("finetune hung on a FIFO lock file")
    res = done["res"]
    assert res.exit_code == 2 and "FIFO" in _one_error_line(res)


def test_a_full_disk_while_taking_the_lock_is_one_line_and_leaves_no_lock(tmp_path, monkeypatch):
    real_write = os.write

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OutputError, match="no space left"):
        RunLock(tmp_path).acquire()
    monkeypatch.setattr(os, "write", real_write)
    assert not (tmp_path / LOCK_FILE).exists()


def test_resume_never_writes_through_links_planted_in_the_run_directory(tiny_data, tmp_path, victim):
    out = tmp_path / "run"
    assert _invoke(*_base(tiny_data, out), "--epochs", "1").exit_code == 0
    # make the run resumable for one more epoch: it was saved with epochs=1, so patch the cap in resume.pt
    import torch

    state = torch.load(out / "resume.pt", weights_only=True)
    state["config"]["epochs"] = 2
    torch.save(state, out / "resume.pt")
    info = json.loads((out / "run.json").read_text())
    info["config"]["epochs"] = 2
    (out / "run.json").write_text(json.dumps(info))
    others = {}
    for name in ("last.pt", "metrics.csv", "best.pt", "run.json"):
        target = tmp_path / f"outside-{name}"
        target.write_bytes((out / name).read_bytes())  # readable copies, so resuming works
        (out / name).unlink()
        (out / name).symlink_to(target)
        others[name] = (target, target.read_bytes())
    res = _invoke("--resume", out)
    assert res.exit_code == 0, res.output
    for name, (target, before) in others.items():
        assert target.read_bytes() == before, name
    for name in ("last.pt", "metrics.csv", "run.json"):
        assert not (out / name).is_symlink() and (out / name).is_file(), name


def test_confined_writes_replace_a_fifo_instead_of_opening_it(tmp_path):
    os.mkfifo(tmp_path / "metrics.csv")
    with confined_to(tmp_path):
        atomic_write_text(tmp_path / "metrics.csv", "a,b\n")  # would block forever if the FIFO were opened
    assert (tmp_path / "metrics.csv").read_text() == "a,b\n"


@pytest.mark.parametrize("root", ["/", "/etc", "/usr"])
def test_system_roots_are_refused_as_out(tiny_data, root):
    res = _invoke(*_base(tiny_data, Path(root)), "--force")
    assert res.exit_code == 2
    assert "system directory" in _one_error_line(res)
