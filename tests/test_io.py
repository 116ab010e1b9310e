"""The one output writer (mmbalance/io.py): targets checked first, symlinks, FIFOs, devices, full disks."""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
from pathlib import Path

import pytest
import torch

from mmbalance.errors import MMBalanceError, OutputError
from mmbalance.io import (PendingFile, atomic_torch_save, atomic_write_json, atomic_write_text, atomic_write_with,
                          check_output_dir, check_output_file, output_error)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# -- checks before the work ---------------------------------------------------------------------------


def test_an_existing_directory_is_no_output_file(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputError, match=r"--out .*d is a directory"):
        check_output_file(tmp_path / "d", what="--out")


def test_an_empty_path_is_no_output(tmp_path):
    with pytest.raises(OutputError, match="empty path"):
        check_output_file("", what="--out")
    with pytest.raises(OutputError, match="empty path"):
        check_output_dir("  ", what="--out")


def test_a_parent_that_is_a_file_is_named(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match=r"f is a file, not a directory"):
        check_output_file(tmp_path / "f" / "sub" / "a.json")
    with pytest.raises(OutputError, match=r"exists and is not a directory"):
        check_output_dir(tmp_path / "f")


def test_an_unwritable_place_is_refused(tmp_path, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == tmp_path else real_access(p, mode))
    with pytest.raises(OutputError, match="permission denied"):
        check_output_file(tmp_path / "a.json")
    with pytest.raises(OutputError, match="permission denied"):
        check_output_dir(tmp_path / "new" / "dir")


def test_a_read_only_file_system_is_refused(tmp_path, monkeypatch):
    class ReadOnly:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", lambda p: ReadOnly())
    with pytest.raises(OutputError, match="read-only"):
        check_output_file(tmp_path / "a.json")


def test_writable_targets_pass_and_are_returned(tmp_path):
    assert check_output_file(tmp_path / "new" / "a.json") == tmp_path / "new" / "a.json"
    (tmp_path / "old.json").write_text("{}")
    assert check_output_file(tmp_path / "old.json") == tmp_path / "old.json"
    assert check_output_dir(tmp_path / "x" / "y") == tmp_path / "x" / "y"


# -- symlinks, FIFOs and devices ------------------------------------------------------------------------


def test_a_symlink_is_written_through(tmp_path):
    target = tmp_path / "real" / "audit.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    atomic_write_json(check_output_file(link), {"a": 1})
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text()) == {"a": 1}
    assert _leftovers(tmp_path) == [] and _leftovers(target.parent) == []


def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "made.json")
    atomic_write_text(link, "hi")
    assert link.is_symlink() and (tmp_path / "made.json").read_text() == "hi"


def _read_fifo(path: Path, into: list[bytes]) -> threading.Thread:
    def reader() -> None:
        with open(path, "rb") as fh:
            into.append(fh.read())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    return thread


def test_a_fifo_is_written_by_opening_it(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    thread = _read_fifo(fifo, got)
    atomic_write_json(check_output_file(fifo), {"through": "the pipe"})
    thread.join(timeout=10)
    assert json.loads(got[0]) == {"through": "the pipe"}
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still a pipe, not a file renamed over it
    assert _leftovers(tmp_path) == []


def test_torch_save_into_a_fifo_behind_a_symlink(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "weights.pt"
    link.symlink_to(fifo)
    got: list[bytes] = []
    thread = _read_fifo(fifo, got)
    atomic_torch_save(link, {"w": torch.arange(3.0)})
    thread.join(timeout=10)
    (tmp_path / "copy.pt").write_bytes(got[0])
    assert torch.load(tmp_path / "copy.pt")["w"].tolist() == [0.0, 1.0, 2.0]
    assert link.is_symlink() and stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.fixture
def null_device(tmp_path) -> Path:
    """A character device in tmp_path: a fresh ``null`` node (root), else a symlink to /dev/null.

    Never is the real /dev/null renamed over; through the link it is only opened and written.
    """
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError, AttributeError):
        node.symlink_to("/dev/null")
    return node


def test_a_character_device_is_opened_not_replaced(tmp_path, null_device):
    was_link = null_device.is_symlink()
    atomic_write_json(check_output_file(null_device), {"a": 1})
    assert stat.S_ISCHR(os.stat(null_device).st_mode)
    assert null_device.is_symlink() == was_link
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert _leftovers(tmp_path) == []


def test_a_character_device_branch_without_a_device(tmp_path, monkeypatch):
    """The branch itself, with stat saying 'character device' for a plain file (no device needed)."""
    fake = tmp_path / "dev"
    fake.write_text("keep-inode")
    inode = os.stat(fake).st_ino
    real_stat = os.stat

    class Result:
        def __init__(self, st: os.stat_result) -> None:
            self._st = st
            self.st_mode = stat.S_IFCHR | 0o666

        def __getattr__(self, name: str):
            return getattr(self._st, name)

    monkeypatch.setattr(os, "stat", lambda p, *a, **kw: Result(real_stat(p, *a, **kw)) if Path(p) == fake
                        else real_stat(p, *a, **kw))
    atomic_write_text(fake, "new")
    monkeypatch.undo()
    assert os.stat(fake).st_ino == inode  # opened and written in place, never renamed over
    assert fake.read_text() == "new"


def test_dev_stdout_into_a_pipe_is_opened(tmp_path):
    """/dev/stdout of a piped process resolves to no real path ('pipe:[...]'): it must be opened."""
    import subprocess
    import sys

    code = ("from mmbalance.io import atomic_write_json, check_output_file\n"
            "atomic_write_json(check_output_file('/dev/stdout'), {'to': 'stdout'})\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"to": "stdout"}
    assert list(tmp_path.iterdir()) == []


def test_a_socket_is_refused(tmp_path):
    import socket

    path = tmp_path / "s"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(path))
        with pytest.raises(OutputError, match="socket"):
            check_output_file(path)
    finally:
        sock.close()


# -- a full disk ------------------------------------------------------------------------------------------


def test_no_space_is_one_line_and_the_old_file_stays(tmp_path):
    target = tmp_path / "audit.json"
    target.write_text("old and complete")

    def half_then_full(tmp: Path) -> None:
        tmp.write_text('{"half": ')
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError) as info:
        atomic_write_with(target, half_then_full)
    assert str(info.value).startswith(f"cannot write {target}: no space left on the device holding {tmp_path}")
    assert "\n" not in str(info.value)
    assert target.read_text() == "old and complete"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("code,words", [(errno.EDQUOT, "quota"), (errno.EROFS, "read-only")])
def test_quota_and_read_only_are_one_line(tmp_path, code, words):
    err = output_error(OSError(code, os.strerror(code)), tmp_path / "x.json")
    assert isinstance(err, MMBalanceError) and words in str(err) and str(tmp_path) in str(err)


def test_torch_save_failing_with_a_cpp_message_on_a_full_disk(tmp_path, monkeypatch):
    target = tmp_path / "best.pt"
    torch.save({"old": torch.zeros(1)}, target)
    before = target.read_bytes()

    def enforce_fail(obj, f, *args, **kwargs):
        f.write(b"PK partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    class Full:
        f_bavail, f_frsize, f_flag = 0, 4096, 0

    monkeypatch.setattr(torch, "save", enforce_fail)
    monkeypatch.setattr(os, "statvfs", lambda p: Full())
    with pytest.raises(OutputError, match=f"no space left on the device holding {tmp_path}"):
        atomic_torch_save(target, {"new": torch.ones(1)})
    assert target.read_bytes() == before and _leftovers(tmp_path) == []


def test_torch_save_iostream_error_with_space_left_is_still_one_line(tmp_path, monkeypatch):
    def iostream(obj, f, *args, **kwargs):
        raise RuntimeError("basic_ios::clear: iostream error")

    monkeypatch.setattr(torch, "save", iostream)
    with pytest.raises(OutputError, match="the write failed"):
        atomic_torch_save(tmp_path / "x.pt", {})


def test_torch_save_turns_enospc_of_the_file_into_an_oserror(tmp_path, monkeypatch):
    """torch.save writes through a Python file, so a full disk is ENOSPC, not a C++ message."""
    real_open = open
    calls = {"n": 0}

    class FullFile:
        def __init__(self, fh) -> None:
            self._fh = fh

        def write(self, data) -> int:
            calls["n"] += 1
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name: str):
            return getattr(self._fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self._fh.close()

    def opener(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        return FullFile(fh) if "w" in mode and str(file).endswith(".tmp") else fh

    import builtins

    monkeypatch.setattr(builtins, "open", opener)
    with pytest.raises(OutputError, match="no space left"):
        atomic_torch_save(tmp_path / "x.pt", {"w": torch.zeros(4)})
    assert calls["n"] >= 1 and _leftovers(tmp_path) == []


def test_a_really_full_tmpfs(tiny_tmpfs):
    """Where mounting is allowed: a 64 KiB tmpfs, a JSON and a torch file larger than it."""
    old = tiny_tmpfs / "w.pt"
    old.write_bytes(b"old weights")
    with pytest.raises(OutputError, match=f"no space left on the device holding {tiny_tmpfs}"):
        atomic_torch_save(old, {"w": torch.zeros(64 * 1024)})
    assert old.read_bytes() == b"old weights"
    with pytest.raises(OutputError, match="no space left"):
        atomic_write_json(tiny_tmpfs / "big.json", {"x": "y" * 200_000})
    assert sorted(p.name for p in tiny_tmpfs.iterdir()) == ["w.pt"]


# -- PendingFile ------------------------------------------------------------------------------------------


def test_pending_file_abort_leaves_the_target_alone(tmp_path):
    target = tmp_path / "rows.csv"
    target.write_text("old")
    pending = PendingFile(target)
    pending.tmp.write_text("partial")
    pending.abort()
    assert target.read_text() == "old" and _leftovers(tmp_path) == []


def test_a_replaced_file_keeps_its_mode(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("{}")
    os.chmod(target, 0o640)
    atomic_write_json(target, {"b": 2})
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640


def test_docstring_examples():
    import doctest

    import mmbalance.io

    assert doctest.testmod(mmbalance.io, optionflags=doctest.ELLIPSIS).failed == 0
