"""Truth vs measured: every estimator and level on the ground-truth suite (tests/attribution/ground_truth.py).

Writes a Markdown table (one row per case, one column per estimator and level) between the
``<!-- ground-truth:start -->`` and ``<!-- ground-truth:end -->`` markers of docs/estimators.md,
or prints it with ``--print``. A cell is the dominant modality the estimator names (``balanced``
when the largest share is within 10 points of 1/M), the largest share, and ✓ when the dominant
modality is right and every share whose truth is a number is within the suite's tolerance.

Usage: PYTHONPATH=$PWD python bench/bench_ground_truth.py [--print]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "estimators.md"
START, END = "<!-- ground-truth:start -->", "<!-- ground-truth:end -->"
COLUMNS = [("shapley", "input", {}), ("ablation", "input", {}), ("permutation", "input", {}),
           ("ig", "input", {}), ("ig", "input", {"pool": "signed"}), ("gradxinput", "input", {}),
           ("shapley", "embedding", {}), ("ig", "embedding", {}), ("ig", "embedding", {"pool": "signed"})]


def _suite():
    spec = importlib.util.spec_from_file_location("ground_truth", ROOT / "tests" / "attribution" / "ground_truth.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ground_truth"] = module
    spec.loader.exec_module(module)
    return module


def measure() -> str:
    from mmbalance.audit import audit
    from mmbalance.data.dataset import TensorMultimodalDataset
    from mmbalance.models import ModelAdapter
    from mmbalance.results import is_balanced

    gt = _suite()
    heads = ["case", "truth"] + [f"{m}{'/' + kw['pool'] if kw else ''} @{lvl[:3]}" for m, lvl, kw in COLUMNS]
    rows = []
    for case in gt.cases():
        data = TensorMultimodalDataset(case.inputs, case.labels(), classes=["pos", "neg"])
        truth = ", ".join(f"{m} {v:.0%}" for m, v in (case.shares or {}).items())
        row = [f"`{case.name}`", f"{case.dominant or 'balanced'} ({truth})"]
        for method, level, kw in COLUMNS:
            adapter = ModelAdapter(case.model, list(case.modalities), call="keyword")
            r = audit(adapter, data, methods=[method], level=level, steps=32, bootstrap=0, progress=False,
                      embedding_layers=gt.embedding_layers(case.model) if level == "embedding" else None, **kw)
            top = max(r.shares, key=r.shares.get)
            said = "balanced" if is_balanced(r.shares[top], len(r.shares)) else top
            ok = said == (case.dominant or "balanced") and all(
                abs(r.shares[m] - v) <= gt.SHARE_TOLERANCE for m, v in (case.shares or {}).items())
            row.append(f"{said} {r.shares[top]:.0%} {'✓' if ok else '✗'}")
        rows.append(row)
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print the table instead of writing docs/estimators.md")
    args = parser.parse_args()
    table = measure()
    if args.print:
        print(table)
        return
    text = DOCS.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{DOCS} has no {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    DOCS.write_text(f"{head}{START}\n{table}\n{END}{tail}", encoding="utf-8")
    print(f"wrote the truth-vs-measured table into {DOCS}")


if __name__ == "__main__":
    main()
