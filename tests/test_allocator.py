"""The CLI's malloc settings: applied once at start-up where they apply, skipped where they do not."""

import platform
import sys

import pytest
from typer.testing import CliRunner

from mmbalance import allocator
from mmbalance.allocator import KEEP_FREED_BYTES, MMAP_THRESHOLD_BYTES, tune_allocator

glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                           reason="glibc only")


class FakeLibc:
    def __init__(self, answer=1):
        self.calls = []
        self.answer = answer

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return self.answer


@glibc
def test_sets_the_mmap_and_trim_thresholds():
    libc = FakeLibc()
    assert tune_allocator(environ={}, load_libc=lambda: libc) is True
    assert libc.calls == [(-3, MMAP_THRESHOLD_BYTES), (-1, KEEP_FREED_BYTES)]


@glibc
def test_really_applies_on_this_machine():
    assert tune_allocator(environ={}) is True


@pytest.mark.parametrize("environ", [{"MMBALANCE_MALLOC": "default"}, {"MMBALANCE_MALLOC": "off"},
                                     {"MALLOC_ARENA_MAX": "2"}, {"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}])
def test_skipped_when_the_user_chose_otherwise(environ):
    libc = FakeLibc()
    assert tune_allocator(environ=environ, load_libc=lambda: libc) is False
    assert libc.calls == []


@glibc
def test_a_refusing_or_missing_libc_is_not_an_error():
    assert tune_allocator(environ={}, load_libc=lambda: FakeLibc(answer=0)) is False

    def missing():
        raise OSError("libc.so.6: cannot open shared object file")

    assert tune_allocator(environ={}, load_libc=missing) is False


def test_the_cli_applies_it_once_per_command(monkeypatch):
    import importlib

    app_module = importlib.import_module("mmbalance.cli.app")  # the module; mmbalance.cli.app is the Typer
    seen = []
    monkeypatch.setattr(app_module, "tune_allocator", lambda: seen.append(1) or True)
    result = CliRunner().invoke(app_module.app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    assert seen == [1]


def test_the_library_does_not_apply_it_on_import(monkeypatch):
    import importlib

    calls = []
    monkeypatch.setattr(allocator, "tune_allocator", lambda *a, **k: calls.append(1))
    importlib.reload(importlib.import_module("mmbalance.attribution.integrated_gradients"))
    assert calls == []


def test_docstring_example():
    import doctest

    assert doctest.testmod(allocator).failed == 0
