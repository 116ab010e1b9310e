"""Output targets on the command line: checked before the work, written through links, into pipes
and devices, and one line (exit 2) on a full disk, for every command that writes a file."""

from __future__ import annotations

import errno
import importlib
import json
import os
import stat
import threading
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mmbalance.cli import app
from mmbalance.data import save_tensor_dataset
from mmbalance.models import create_model, save_state_dict

AUDIT_FAST = ["--method", "ig", "--steps", "2", "--bootstrap", "0", "-q"]


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "300", "NO_COLOR": "1"})


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), lines[0]
    return lines[0]


@pytest.fixture
def setup(tmp_path):
    g = torch.Generator().manual_seed(0)
    data = tmp_path / "data.pt"
    save_tensor_dataset(data, {"audio": torch.randn(6, 1, 8, 8, generator=g),
                               "visual": torch.randn(6, 3, 2, 8, 8, generator=g)}, torch.arange(6) % 3,
                        ["a", "b", "c"])
    torch.manual_seed(0)
    ckpt = tmp_path / "model.pt"
    save_state_dict(create_model("av-tiny", num_classes=3), ckpt)
    return tmp_path, ["-m", "av-tiny", "-d", data, "-c", ckpt]


@pytest.fixture
def no_audit(monkeypatch):
    """Make running an audit an error the test sees: a bad target must be refused before it."""
    calls: list[str] = []

    def refuse(*args, **kwargs):
        calls.append("audit")
        raise AssertionError("the audit ran before the output was checked")

    monkeypatch.setattr(importlib.import_module("mmbalance.audit"), "audit", refuse)  # the CLI imports it lazily
    return calls


@pytest.mark.parametrize("flag", ["--out", "--per-sample"])
def test_audit_into_an_existing_directory_fails_at_once(setup, no_audit, flag):
    tmp_path, base = setup
    (tmp_path / "results").mkdir()
    res = run("audit", *base, flag, tmp_path / "results", *AUDIT_FAST)
    assert res.exit_code == 2, res.output
    assert f"{flag} {tmp_path / 'results'} is a directory" in one_error_line(res)
    assert no_audit == []


def test_audit_with_an_empty_out_fails_at_once(setup, no_audit):
    _, base = setup
    res = run("audit", *base, "-o", "", *AUDIT_FAST)
    assert res.exit_code == 2 and "is a directory" in one_error_line(res) and no_audit == []


@pytest.mark.parametrize("command", [
    ["finetune", "-m", "av-tiny", "-d", "synthetic:av-dominance?n_train=8&n_val=4&n_test=4", "--epochs", "1"],
    ["bench", "-m", "av-tiny", "-d", "synthetic:av-dominance?n_train=8&n_val=4&n_test=4"],
    ["data", "synth"], ["demo"], ["report", "audit.json"],
])
def test_an_empty_output_directory_is_refused_before_any_work(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)  # an empty --out would otherwise mean the current directory
    res = run(*command, "-o", "")
    assert res.exit_code == 2, res.output
    assert "must name a directory, not an empty string" in res.output
    assert list(tmp_path.iterdir()) == []


def test_audit_under_a_file_fails_at_once(setup, no_audit):
    tmp_path, base = setup
    (tmp_path / "plain").write_text("a file")
    res = run("audit", *base, "-o", tmp_path / "plain" / "audit.json", *AUDIT_FAST)
    assert res.exit_code == 2 and "is a file, not a directory" in one_error_line(res) and no_audit == []


@pytest.mark.parametrize("flag", ["--junit", "--save-audit"])
def test_check_into_an_existing_directory_fails_at_once(setup, no_audit, flag):
    tmp_path, base = setup
    (tmp_path / "ci").mkdir()
    res = run("check", *base, "--max-share", "0.99", flag, tmp_path / "ci", "-q")
    assert res.exit_code == 2, res.output
    assert f"{flag} {tmp_path / 'ci'} is a directory" in one_error_line(res)
    assert no_audit == []


def test_check_junit_directory_with_an_audit_file(setup, tmp_path):
    _, base = setup
    assert run("audit", *base, "-o", tmp_path / "a.json", *AUDIT_FAST).exit_code == 0
    (tmp_path / "ci").mkdir()
    res = run("check", "--audit", tmp_path / "a.json", "--max-share", "0.99", "--junit", tmp_path / "ci")
    assert res.exit_code == 2 and "is a directory" in one_error_line(res)


def test_audit_writes_through_a_symlink(setup):
    tmp_path, base = setup
    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "audit.json"
    target.write_text("old")
    link = tmp_path / "latest.json"
    link.symlink_to(target)
    res = run("audit", *base, "-o", link, *AUDIT_FAST)
    assert res.exit_code == 0, res.output
    assert link.is_symlink() and Path(os.readlink(link)) == target
    assert json.loads(target.read_text())["schema"] == "mmbalance.audit/1"


def test_audit_writes_into_a_fifo(setup):
    tmp_path, base = setup
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def reader() -> None:
        with open(fifo, "rb") as fh:
            got.append(fh.read())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    res = run("audit", *base, "-o", fifo, *AUDIT_FAST)
    thread.join(timeout=20)
    assert res.exit_code == 0, res.output
    assert json.loads(got[0])["schema"] == "mmbalance.audit/1"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_audit_into_a_character_device(setup):
    tmp_path, base = setup
    dev = tmp_path / "null"
    try:
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError, AttributeError):
        dev.symlink_to("/dev/null")  # only opened and written through the link, never replaced
    res = run("audit", *base, "-o", dev, *AUDIT_FAST)
    assert res.exit_code == 0, res.output
    assert stat.S_ISCHR(os.stat(dev).st_mode) and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_audit_on_a_full_disk_is_one_line_and_keeps_the_old_file(setup, monkeypatch):
    tmp_path, base = setup
    out = tmp_path / "audit.json"
    out.write_text("the previous audit")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    res = run("audit", *base, "-o", out, *AUDIT_FAST)
    assert res.exit_code == 2, res.output
    assert f"no space left on the device holding {tmp_path}" in one_error_line(res)
    assert out.read_text() == "the previous audit"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_data_synth_on_a_really_full_disk(tiny_tmpfs):
    res = run("data", "synth", "-o", tiny_tmpfs / "avd", "--n-train", "200", "--n-val", "8", "--n-test", "8")
    assert res.exit_code == 2, res.output
    assert "no space left on the device holding" in one_error_line(res)
    assert not list((tiny_tmpfs / "avd").glob("*.tmp")) and not list((tiny_tmpfs / "avd").glob(".*.tmp"))


@pytest.mark.parametrize("command", [["data", "synth"], ["demo"]])
def test_directory_outputs_that_are_files_fail_at_once(tmp_path, command):
    (tmp_path / "f").write_text("x")
    res = run(*command, "-o", tmp_path / "f")
    assert res.exit_code == 2 and "not a directory" in one_error_line(res)


def test_report_into_a_file_fails_before_rendering(tmp_path, monkeypatch):
    report = importlib.import_module("mmbalance.report")  # the CLI imports build_report when the command runs

    monkeypatch.setattr(report, "build_report", lambda *a, **k: (_ for _ in ()).throw(AssertionError("rendered")))
    (tmp_path / "f").write_text("x")
    res = run("report", tmp_path / "missing.json", "-o", tmp_path / "f" / "report")
    assert res.exit_code == 2 and "is a file, not a directory" in one_error_line(res)
