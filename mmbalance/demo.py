"""The built-in demonstration: synthesize the imbalanced data, train plainly, audit.

Example:
    >>> result = run_demo("mmbalance-demo", progress=False)  # doctest: +SKIP
    >>> result.audit.dominant_modality  # doctest: +SKIP
    'audio'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .audit import audit
from .data.synthetic import write_synthetic
from .results import AuditResult
from .training import TrainConfig, TrainResult, finetune

DEMO_MODEL = "av-tiny"


@dataclass(frozen=True)
class DemoResult:
    """The files and results a demo run produced."""

    out_dir: Path
    data_dir: Path
    plain: TrainResult
    audit: AuditResult
    audit_path: Path


def run_demo(out_dir: str | Path = "mmbalance-demo", *, epochs: int = 4, seed: int = 0, steps: int = 16,
             device: str = "auto", progress: bool = True) -> DemoResult:
    """Synthesize ``synthetic:av-dominance``, train ``av-tiny`` plainly, and audit it on the test split."""
    out = Path(out_dir)
    data_dir = out / "data"
    write_synthetic(data_dir, seed=seed)
    plain = finetune(TrainConfig(model=DEMO_MODEL, data=str(data_dir), out=str(out / "plain"), epochs=epochs,
                                 seed=seed, device=device, lr=2e-3), progress=progress)
    result = audit(DEMO_MODEL, str(data_dir), checkpoint=str(plain.best_path), steps=steps, batch_size=64,
                   device=device, progress=progress)
    audit_path = result.save(out / "audit-plain.json")
    return DemoResult(out_dir=out, data_dir=data_dir, plain=plain, audit=result, audit_path=audit_path)
