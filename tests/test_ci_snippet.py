"""docs/ci.md's GitHub Actions workflow: its install step is safe, and its steps run (scripts/run_ci_snippet.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "run_ci_snippet.py"
DATA = "synthetic:av-dominance?n_train=32&n_val=16&n_test=32"


def _workflow():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import run_ci_snippet
    finally:
        sys.path.pop(0)
    return run_ci_snippet.job_steps(run_ci_snippet.load_workflow(ROOT / "docs" / "ci.md"))


def test_the_install_step_pins_a_tag_uses_the_constraints_and_takes_only_torch_from_its_index():
    env, steps = _workflow()
    install = next(s["run"] for s in steps if s.get("name", "").startswith("Install"))
    doc = (ROOT / "docs" / "ci.md").read_text()
    assert "EXTRA_INDEX" not in doc.upper() and "--extra-index-url" not in doc  # never for every dependency
    assert re.fullmatch(r"v\d+\.\d+\.\d+", env["MMBALANCE_REF"]) and env["MMBALANCE_REPO"].startswith("https://")
    commands = [c for c in install.replace("\\\n", " ").splitlines() if "pip install" in c]
    for command in commands:
        if "--upgrade pip" in command:
            continue
        assert "-c mmbalance-constraints.txt" in command, command  # the tag's tested versions
        assert ("--index-url" in command) == command.split("pip install")[1].split()[0].startswith("torch"), command
    assert any('"mmbalance @ git+$MMBALANCE_REPO@$MMBALANCE_REF"' in c for c in commands)  # the repository at a tag
    assert not any(re.search(r"pip install (-U )?['\"]?mmbalance\b(?! @)", c) for c in commands)  # not PyPI
    assert '$MMBALANCE_REPO/raw/$MMBALANCE_REF/constraints.txt' in install  # the constraints of that same tag
    constraints = (ROOT / "constraints.txt").read_text()
    assert all(re.search(rf"^{name}==", constraints, flags=re.M) for name in ("torch", "torchvision", "torchaudio"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from mmbalance.training import TrainConfig, finetune

    d = tmp_path_factory.mktemp("ci-snippet")
    finetune(TrainConfig(model="av-tiny", data=DATA, out=str(d / "runs"), epochs=1, batch_size=16), progress=False)
    return d / "runs" / "best.pt"


def _run(work: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1", OMP_NUM_THREADS="1")
    env.pop("GITHUB_ACTIONS", None)
    env.pop("GITHUB_STEP_SUMMARY", None)
    bin_dir = work / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "mmbalance").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mmbalance "$@"\n')
    (bin_dir / "mmbalance").chmod(0o755)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=work, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("policy,code", [("max_share = 0.99\n", 0), ("max_share = 0.5\n", 1)])
def test_the_workflow_steps_run_and_a_failed_rule_fails_the_job(checkpoint, tmp_path, policy, code):
    (tmp_path / "mmbalance.toml").write_text(f"[check]\n{policy}")
    proc = _run(tmp_path, "--skip-install", "--env", f"CHECKPOINT={checkpoint}", "--env", f"DATA={DATA}")
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "-- Install mmbalance: skipped" in proc.stdout and "actions/checkout@v4), not run here" in proc.stdout
    assert (tmp_path / "audit.json").is_file() and (tmp_path / "junit.xml").is_file()
    assert ("failures=\"0\"" in (tmp_path / "junit.xml").read_text()) == (code == 0)
