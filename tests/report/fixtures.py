"""Audit results and a metrics CSV built in code, shared by the report tests (no model needed)."""

from __future__ import annotations

from mmbalance.results import AuditResult, MethodResult

MODALITIES = ["audio", "visual"]
CLASSES = ["low-a", "low-b", "high-a", "high-b"]


def _histogram(mean: float) -> dict[str, dict[str, list[float]]]:
    edges = [i / 10 for i in range(11)]
    center = min(9, int(mean * 10))
    counts = [max(0, 40 - 12 * abs(i - center)) for i in range(10)]
    mirrored = list(reversed(counts))
    return {"audio": {"bins": edges, "counts": counts}, "visual": {"bins": edges, "counts": mirrored}}


def make_audit(audio: float = 0.81, *, accuracy: float = 0.52, ablation_audio: float | None = 0.74,
               ci: bool = True, agreement: bool = True, model: str = "av-tiny") -> AuditResult:
    """Two modalities, two methods (ig primary + ablation), per-class shares, intervals, a histogram."""
    def method(name: str, a: float, level: str = "input") -> MethodResult:
        per_class = {c: {"n": 25 + 5 * i, "shares": {"audio": min(0.99, a + 0.04 * (i - 1.5)),
                                                       "visual": 1 - min(0.99, a + 0.04 * (i - 1.5))}}
                     for i, c in enumerate(CLASSES)}
        return MethodResult(
            name=name, level=level, shares={"audio": a, "visual": 1 - a},
            scores={"audio": 4 * a, "visual": 4 * (1 - a)},
            per_class=per_class, params={"steps": 16} if name == "ig" else {},
            ci95={"audio": [a - 0.03, a + 0.02], "visual": [1 - a - 0.02, 1 - a + 0.03]} if ci else None,
            extra={"share_histogram": _histogram(a), "completeness_error": {"mean": 0.001, "max": 0.02}}
            if name == "ig" else {},
        )

    methods = {"ig": method("ig", audio)}
    if ablation_audio is not None:
        methods["ablation"] = method("ablation", ablation_audio)
    extra = {"agreement": {"pairwise": {"ig|ablation": {"same_dominant": True, "spearman": 0.8}}}} \
        if agreement and ablation_audio is not None else {}
    return AuditResult(model=model, data="synthetic:av-dominance", n_samples=130, modalities=list(MODALITIES),
                       accuracy=accuracy, methods=methods, classes=list(CLASSES), split="test",
                       per_class_accuracy={c: 0.4 + 0.1 * i for i, c in enumerate(CLASSES)},
                       created="2026-11-27T06:00:00+00:00", extra=extra)


METRICS_CSV = """\
epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,epoch_seconds,penalty,lambda,share_audio,share_visual,val_penalty
1,1.30,0.40,1.25,0.42,0.002,1.1,0.40,0.05,0.90,0.10,0.42
2,1.00,0.55,1.05,0.51,0.002,1.0,0.30,0.10,0.80,0.20,0.33
3,0.80,0.66,0.90,0.60,0.001,1.0,0.20,0.10,0.68,0.32,0.22
4,0.70,0.71,0.85,0.63,0.001,1.0,0.12,0.10,0.58,0.42,0.15
"""
