"""Shared pytest set-up: make ``tests/toys.py`` (toy models and data) importable everywhere."""

import os
import subprocess
import sys

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("NO_COLOR", "1")
# Two cores shared by parallel work (`make test` runs one pytest worker per core): one intra-op thread per
# process keeps timings stable and fast, in the test processes and in the commands they start.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 KiB tmpfs mounted in tmp_path (a real full disk); skips where mounting is not allowed."""
    where = tmp_path / "tiny-tmpfs"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def pytest_addoption(parser):
    parser.addoption("--reverse-order", action="store_true", default=False,
                     help="run the collected tests in reverse order (a check that no test depends on another)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--reverse-order"):
        items.reverse()
