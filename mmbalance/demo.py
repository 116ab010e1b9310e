"""The built-in demonstration: the whole story on the planted-imbalance data.

1. synthesize ``synthetic:av-dominance`` (audio quick but incomplete, visual slow but complementary);
2. train ``av-tiny`` plainly;
3. audit it: the modality shares, and each modality's accuracy alone (the other zeroed);
4. fine-tune it from that checkpoint with the attribution regularizer;
5. audit again, compare before and after, and write one HTML report (``report/report.html``).

Example:
    >>> result = run_demo("mmbalance-demo", progress=False)  # doctest: +SKIP
    >>> result.audit.dominant_modality, result.comparison["accuracy"]  # doctest: +SKIP
    ('audio', (0.71, 0.86))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .audit import audit
from .report import build_report
from .data import load_dataset
from .data.synthetic import write_synthetic
from .device import resolve_device
from .io import check_output_dir, check_output_file, confined_to
from .models import load_model
from .results import AuditResult
from .training import TrainConfig, TrainResult, evaluate, finetune

DEMO_MODEL = "av-tiny"
DEMO_LR = 2e-3
# The regularizer the demo fine-tunes with: the defaults of `mmbalance finetune --regularizer attribution`
# (Shapley values of modality removal, the audit's default measure; equal target, scope fusion, lambda 1).
DEMO_REGULARIZER: dict[str, Any] = {"regularizer": "attribution"}


@dataclass(frozen=True)
class DemoResult:
    """The files and results a demo run produced.

    ``audit``/``audit_path`` describe the plain model, ``balanced_audit`` the fine-tuned
    one; ``unimodal`` maps ``"plain"``/``"balanced"`` to each modality's test accuracy
    with the other modalities zeroed; ``comparison`` holds ``(before, after)`` pairs.
    """

    out_dir: Path
    data_dir: Path
    plain: TrainResult
    audit: AuditResult
    audit_path: Path
    balanced: TrainResult
    balanced_audit: AuditResult
    balanced_audit_path: Path
    unimodal: dict[str, dict[str, float]] = field(default_factory=dict)
    comparison: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    report_html: Path | None = None


def unimodal_accuracies(checkpoint: str | Path, data: str, *, device: str = "cpu", model: str = DEMO_MODEL,
                        split: str = "test") -> dict[str, float]:
    """Test accuracy of a fused model when it sees one modality only (the others replaced by zeros).

    Example:
        >>> unimodal_accuracies("runs/plain/best.pt", "data/avd")  # doctest: +SKIP
        {'audio': 0.5, 'visual': 0.31}
    """
    dataset = load_dataset(data, split=split)
    dev = resolve_device(device)
    adapter = load_model(model, checkpoint=str(checkpoint), num_classes=dataset.num_classes,
                         modalities=dataset.modalities, device=str(dev))
    return {m: evaluate(adapter, dataset, batch_size=100, device=dev,
                        zero=[o for o in dataset.modalities if o != m])["accuracy"] for m in dataset.modalities}


def run_demo(out_dir: str | Path = "mmbalance-demo", *, epochs: int = 3, finetune_epochs: int = 2, seed: int = 0,
             steps: int = 16, device: str = "auto", progress: bool = True,
             data_sizes: Mapping[str, int] | None = None) -> DemoResult:
    """Run the five steps of the module docstring; files go under ``out_dir``.

    The demo owns ``out_dir``: running it again replaces its data, runs (``plain/``,
    ``balanced/``), audits and report, so ``make demo`` can be run any number of times.

    ``epochs`` plain epochs, then ``finetune_epochs`` with the attribution regularizer
    from the plain model's best checkpoint. Audits are the default audit (Shapley values of
    modality removal, then ablation) on the test split (``steps`` is kept for callers; no default
    estimator integrates). ``data_sizes`` (``{"n_train": .., "n_val": ..,
    "n_test": ..}``) shrinks the data for quick checks.
    """
    out = check_output_dir(out_dir, what="--out")
    for sub in ("data", "plain", "balanced", "report"):  # every target before any work
        check_output_dir(out / sub, what=f"--out's {sub} directory")
    with confined_to(out):
        for name in ("audit-plain.json", "audit-balanced.json"):
            check_output_file(out / name, what=f"--out's {name}")
    data_dir = out / "data"
    write_synthetic(data_dir, seed=seed, overwrite=True, **dict(data_sizes or {}))
    data = str(data_dir)
    plain = finetune(TrainConfig(model=DEMO_MODEL, data=data, out=str(out / "plain"), epochs=epochs, seed=seed,
                                 device=device, lr=DEMO_LR), progress=progress, force=True)
    before = _audit(plain.best_path, data, steps=steps, device=device, progress=progress, seed=seed)
    before_path = before.save(out / "audit-plain.json")
    balanced = finetune(TrainConfig(model=DEMO_MODEL, data=data, out=str(out / "balanced"), epochs=finetune_epochs,
                                    checkpoint=str(plain.best_path), seed=seed, device=device, lr=DEMO_LR,
                                    **DEMO_REGULARIZER), progress=progress, force=True)
    after = _audit(balanced.best_path, data, steps=steps, device=device, progress=progress, seed=seed)
    after_path = after.save(out / "audit-balanced.json")
    unimodal = {"plain": unimodal_accuracies(plain.best_path, data, device=device),
                "balanced": unimodal_accuracies(balanced.best_path, data, device=device)}
    comparison: dict[str, tuple[Any, Any]] = {
        "accuracy": (before.accuracy, after.accuracy),
        "dominant": (before.dominant_modality, after.dominant_modality),
        "share_variance": (before.imbalance["share_variance"], after.imbalance["share_variance"]),
    }
    for m in before.modalities:
        comparison[f"share_{m}"] = (before.shares.get(m), after.shares.get(m))
        comparison[f"alone_{m}"] = (unimodal["plain"][m], unimodal["balanced"][m])
    # the label says what was done, not what came of it: the verdict says that (balanced or not)
    report = build_report([before, after], metrics=balanced.metrics_path, out_dir=out / "report",
                          labels=["plain", "regularized"], title="mmbalance demo: plain vs. attribution-regularized")
    return DemoResult(out_dir=out, data_dir=data_dir, plain=plain, audit=before, audit_path=before_path,
                      balanced=balanced, balanced_audit=after, balanced_audit_path=after_path, unimodal=unimodal,
                      comparison=comparison, report_html=report.html)


def _audit(checkpoint: Path, data: str, *, steps: int, device: str, progress: bool, seed: int) -> AuditResult:
    # the default audit (Shapley values of modality removal, then ablation), as `mmbalance audit` runs it
    return audit(DEMO_MODEL, data, checkpoint=str(checkpoint), steps=steps, batch_size=100, device=device,
                 progress=progress, seed=seed)
