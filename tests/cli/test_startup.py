"""The CLI starts without importing torch for --help, argument errors and ``models``; the literals it shows match."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmbalance.cli import _defaults, app, cmd_models

ROOT = Path(__file__).resolve().parents[2]

# Runs the CLI in one fresh interpreter for each argument list in turn; after each, which heavy modules are loaded.
_PROBE = """
import json, sys
from mmbalance.cli import main
for args in json.loads(sys.argv[1]):
    try:
        main(args)
        code = 0
    except SystemExit as stop:
        code = stop.code
    print(json.dumps({"args": args, "code": code, "torch": "torch" in sys.modules,
                      "matplotlib": "matplotlib" in sys.modules}), file=sys.stderr)
"""
_ARGS = [["--help"], ["audit", "--help"], ["finetune", "--help"], ["bench", "--help"], ["check", "--help"],
         ["report", "--help"], ["data", "synth", "--help"], ["data", "prepare", "--help"], ["demo", "--help"],
         ["compare", "--help"], ["audit"], ["finetune", "--epochs", "x"], ["check", "--bogus"], ["bench"],
         ["models"], ["models", "--json"], ["models", "tiny", "-q"]]


def test_help_argument_errors_and_models_do_not_import_torch():
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(_ARGS)], capture_output=True, text=True,
                          env=env, timeout=120)
    seen = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith('{"args"')]
    assert [s["args"] for s in seen] == _ARGS, proc.stderr
    for s in seen:
        assert s["code"] in (0, 2), s
        assert not s["torch"], f"mmbalance {' '.join(s['args'])} imported torch"
        assert not s["matplotlib"], f"mmbalance {' '.join(s['args'])} imported matplotlib"


def test_import_mmbalance_is_lazy_and_functions_stay_functions():
    code = ("import sys, mmbalance; lazy = 'torch' not in sys.modules; import mmbalance.audit; "
            "from mmbalance.check import rules; "
            "print(lazy, callable(mmbalance.audit), callable(mmbalance.check), mmbalance.finetune.__name__, "
            "mmbalance.AuditResult.__name__)")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.split() == ["True", "True", "True", "finetune", "AuditResult"], out.stderr


def test_cli_defaults_equal_the_library_defaults():
    from mmbalance.attribution import list_estimators
    from mmbalance.audit import DEFAULT_BOOTSTRAP, DEFAULT_METHODS
    from mmbalance.benchmark import DEFAULT_METHODS as BENCH_METHODS
    from mmbalance.data import synthetic

    assert _defaults.AUDIT_METHODS == tuple(DEFAULT_METHODS)
    assert _defaults.AUDIT_BOOTSTRAP == DEFAULT_BOOTSTRAP
    assert set(_defaults.ESTIMATORS) <= set(list_estimators())
    assert _defaults.BENCH_METHODS == tuple(BENCH_METHODS)
    assert _defaults.SYNTHETIC_NAME == synthetic.NAME
    assert _defaults.SYNTHETIC_SIZES == synthetic.DEFAULT_SIZES
    assert _defaults.SYNTHETIC_NUM_CLASSES == synthetic.DEFAULT_NUM_CLASSES
    assert _defaults.SYNTHETIC_MAX_NUM_CLASSES == synthetic.MAX_NUM_CLASSES
    from mmbalance.models import _registry, list_model_info

    assert _defaults.MODELS_ENTRY_POINT_GROUP == _registry.ENTRY_POINT_GROUP
    assert _defaults.BUILTIN_MODELS == tuple((i.name, i.description, i.target) for i in list_model_info()
                                             if i.source == "builtin")


@pytest.mark.parametrize("pattern", ["*", "", "av", "AV-*", "tiny", "*res*", "[eu]*", "av-?iny", "zzz"])
def test_models_listed_from_literals_as_the_registry_lists_them(pattern):
    from mmbalance.models import list_model_info

    expected = [i.to_json() for i in list_model_info(pattern) if i.source == "builtin"]
    assert cmd_models._builtin_model_info(pattern) == expected


def test_models_lists_a_model_registered_in_process_through_the_registry():
    from mmbalance.models import _registry, register_model

    @register_model("startup-toy")
    def startup_toy(num_classes: int):
        """A toy registered at run time."""

    try:
        result = CliRunner().invoke(app, ["models", "startup-toy", "--json"])
    finally:
        _registry._unregister("startup-toy")
    assert result.exit_code == 0, result.output
    assert [row["description"] for row in json.loads(result.stdout)] == ["A toy registered at run time."]


def test_flags_are_shown_as_flags():
    result = CliRunner().invoke(app, ["models", "--help"], env={"COLUMNS": "120", "NO_COLOR": "1"})
    assert result.exit_code == 0
    line = next(row for row in result.output.splitlines() if "--json" in row)
    assert "<bool>" not in line and "Print machine-readable JSON" in line
    assert "<int" in next(row for row in CliRunner().invoke(app, ["audit", "--help"], env={"COLUMNS": "120"})
                          .output.splitlines() if "--steps" in row)  # options with values keep their type


def test_models_json_with_no_match_says_so():
    result = CliRunner().invoke(app, ["models", "--json", "true"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    assert "no models match 'true'" in result.stderr
