"""``mmbalance data synth`` through the real typer app."""

from __future__ import annotations

import importlib
import sys
import types
import warnings
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch
from typer.testing import CliRunner

import mmbalance
from mmbalance.data import load_dataset, synthesize_av_dominance

EXIT_ERROR = 2


@pytest.fixture
def app() -> Iterator[Any]:
    """The real typer app with ``data`` registered.

    When ``mmbalance.cli`` itself does not import (a sibling command module is broken or
    missing), ``cli/app.py`` and ``cli/cmd_data.py`` are loaded on their own, so this
    module's commands are still tested; the modules loaded that way are dropped afterwards.
    """
    try:
        importlib.import_module("mmbalance.cli")  # registers every command
        real_app = importlib.import_module("mmbalance.cli.app").app
    except ImportError as err:
        warnings.warn(f"mmbalance.cli does not import ({err}); testing cli/app.py + cli/cmd_data.py alone",
                      stacklevel=1)
    else:
        yield real_app
        return
    before = {name: mod for name, mod in sys.modules.items() if name.startswith("mmbalance.cli")}
    stub = types.ModuleType("mmbalance.cli")
    stub.__path__ = [str(Path(mmbalance.__file__).parent / "cli")]
    sys.modules["mmbalance.cli"] = stub
    try:
        app_module = importlib.import_module("mmbalance.cli.app")
        importlib.import_module("mmbalance.cli.cmd_data")
        assert app_module.EXIT_ERROR == EXIT_ERROR
        yield app_module.app
    finally:
        for name in [n for n in sys.modules if n.startswith("mmbalance.cli")]:
            del sys.modules[name]
        sys.modules.update(before)


def test_data_synth_writes_splits_and_prints_a_summary(app, tmp_path: Path) -> None:
    out = tmp_path / "syn"
    result = CliRunner().invoke(app, ["data", "synth", "--out", str(out), "--seed", "4",
                                      "--n-train", "6", "--n-val", "3", "--n-test", "5"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["test.pt", "train.pt", "val.pt"]
    for word in ("train", "val", "test", "1×32×32", "3×4×32×32", "low-a"):
        assert word in result.stdout
    test = load_dataset(str(out))
    assert len(test) == 5
    expected, _, _ = synthesize_av_dominance(5, seed=4, split_offset=2)
    assert torch.equal(test.inputs["visual"], expected["visual"])


def test_data_synth_refuses_to_overwrite_without_force(app, tmp_path: Path) -> None:
    args = ["data", "synth", "--out", str(tmp_path), "--n-train", "2", "--n-val", "2", "--n-test", "2"]
    runner = CliRunner()
    assert runner.invoke(app, args).exit_code == 0
    again = runner.invoke(app, args)
    assert again.exit_code == EXIT_ERROR
    assert "refusing to overwrite" in again.output and "--force" in again.output
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0


def test_data_synth_rejects_bad_sizes(app, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path), "--n-test", "0"])
    assert result.exit_code != 0
    assert not any(tmp_path.iterdir())
