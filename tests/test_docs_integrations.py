"""Every Python example in docs/integrations.md runs as written (CPU, tiny data)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "integrations.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
NEEDS = {"lightning": "lightning", "transformers": "transformers", "accelerate": "accelerate"}


def test_the_doc_has_one_example_per_framework():
    text = "\n".join(BLOCKS)
    for name in ("import lightning", "from transformers import Trainer", "from accelerate import Accelerator",
                 "AttributionPenalty", "AuxHeads"):
        assert name in text


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_example_runs(index, tmp_path, monkeypatch):
    code = BLOCKS[index]
    for word, package in NEEDS.items():
        if f"import {word}" in code or f"from {word}" in code:
            pytest.importorskip(package)
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    namespace: dict = {"__name__": "__docs__"}
    exec(compile(code, f"{DOC.name}[{index}]", "exec"), namespace)
    if "pen" in namespace:  # every example with a penalty measured shares that sum to 1
        assert sum(namespace["pen"].last_shares.values()) == pytest.approx(1.0, abs=1e-6)
