"""Run the GitHub Actions workflow of docs/ci.md locally: its ``run:`` steps, in order, with its ``env:``.

The workflow is read from ``.github/workflows/modality-balance.yml`` in the current directory
when it exists (where you put it), else from the first ``yaml`` block of docs/ci.md. Each
``run:`` step runs in ``bash -e`` in the current directory; ``uses:`` steps (checkout,
setup-python, cache, upload, test report) are GitHub's own and are listed, not run. The exit
status is the first failing step's.

Usage::

    python scripts/run_ci_snippet.py                                # every step, the install too
    python scripts/run_ci_snippet.py --skip-install --env DATA=data/avd
    python scripts/run_ci_snippet.py --print                        # only show the steps
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

DOC = Path(__file__).resolve().parents[1] / "docs" / "ci.md"
WORKFLOW = Path(".github") / "workflows" / "modality-balance.yml"


def load_workflow(path: Path | None = None) -> dict[str, Any]:
    """The workflow as a mapping: from ``path``, the workflow file here, or docs/ci.md's first yaml block."""
    if path is None and WORKFLOW.is_file():
        path = WORKFLOW
    if path is not None and path.suffix in (".yml", ".yaml"):
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    text = (path or DOC).read_text(encoding="utf-8")
    match = re.search(r"^```yaml\n(.*?)^```", text, flags=re.S | re.M)
    if match is None:
        raise SystemExit(f"no yaml block in {path or DOC}")
    return yaml.safe_load(match.group(1))


def job_steps(workflow: dict[str, Any]) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The first job's ``env:`` (as strings) and its steps."""
    job = next(iter(workflow["jobs"].values()))
    return {k: str(v) for k, v in (job.get("env") or {}).items()}, list(job["steps"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflow", type=Path, help="a workflow .yml or a Markdown file (default: see above)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="override an env value")
    parser.add_argument("--skip-install", action="store_true", help="leave out steps named 'Install ...'")
    parser.add_argument("--print", action="store_true", help="print the steps without running them")
    args = parser.parse_args(argv)
    env, steps = job_steps(load_workflow(args.workflow))
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--env takes NAME=VALUE, got {item!r}")
        env[name] = value
    run_env = dict(os.environ, **env)
    for step in steps:
        name = step.get("name") or step.get("uses") or "step"
        if "run" not in step:
            print(f"-- {name}: GitHub's own step ({step.get('uses')}), not run here", flush=True)
            continue
        if args.skip_install and str(name).lower().startswith("install"):
            print(f"-- {name}: skipped (--skip-install)", flush=True)
            continue
        print(f"-- {name}\n{step['run'].rstrip()}", flush=True)
        if args.print:
            continue
        code = subprocess.run(["bash", "-e", "-c", step["run"]], env=run_env).returncode
        if code:
            print(f"-- {name}: failed with exit {code}", file=sys.stderr)
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
