"""``audit()``: how much does each modality contribute to a model's decisions?

Streams a dataset through a model, attributes every prediction to the modalities with
the chosen estimators, and folds the per-sample shares into an :class:`AuditResult`.

Example:
    >>> result = audit("av-tiny", "synthetic:av-dominance?n_test=64", steps=4, progress=False)  # doctest: +SKIP
    >>> result.dominant_modality, result.shares  # doctest: +SKIP
    ('audio', {'audio': 0.93, 'visual': 0.07})
"""

from __future__ import annotations

import datetime as _dt
import time
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor

from .attribution import IntegratedGradients, ShareAccumulator
from .attribution.base import Estimator, get_estimator_class
from .data import MultimodalDataset, iter_batches, load_dataset
from .device import resolve_device
from .errors import ModelError, UsageError
from .models import ModelAdapter, load_model
from .progress import progress_bar
from .results import AuditResult, MethodResult

TARGETS = ("pred", "label")


def build_estimators(methods: Sequence[str], *, steps: int = 32, **settings: Any) -> list[Estimator]:
    """Instantiate the estimators named in ``methods`` with shared settings.

    Example:
        >>> [e.name for e in build_estimators(["ig"], steps=8)]
        ['ig']
    """
    if not methods:
        raise UsageError("no attribution method chosen", hint="pass --method ig")
    estimators: list[Estimator] = []
    for name in dict.fromkeys(methods):
        cls = get_estimator_class(name)
        if cls is IntegratedGradients:
            estimators.append(IntegratedGradients(steps=steps, **settings))
        else:
            estimators.append(cls(**settings))
    return estimators


def audit(
    model: str | ModelAdapter,
    data: str | MultimodalDataset,
    *,
    checkpoint: str | None = None,
    trust_checkpoint: bool = False,
    model_args: Mapping[str, Any] | None = None,
    split: str | None = None,
    modalities: Sequence[str] | None = None,
    output: str | int | None = None,
    methods: Sequence[str] = ("ig",),
    steps: int = 32,
    batch_size: int = 32,
    limit: int | None = None,
    target: str = "pred",
    device: str = "auto",
    progress: bool = True,
    estimators: Sequence[Estimator] | None = None,
) -> AuditResult:
    """Measure each modality's share of the model's decisions on ``data``.

    ``model`` is a registry spec (``av-tiny``, ``pkg.mod:factory``, ``file.py:factory``)
    or an already loaded :class:`ModelAdapter`; ``data`` a dataset source string or a
    :class:`MultimodalDataset`. The attribution target is the predicted class
    (``target="pred"``) or the true label (``"label"``). Pass ``estimators`` to use
    pre-configured estimator objects instead of ``methods``/``steps``.

    Example:
        >>> r = audit("av-tiny", "synthetic:av-dominance?n_test=32", steps=4, progress=False)  # doctest: +SKIP
        >>> sorted(r.methods)  # doctest: +SKIP
        ['ig']
    """
    if target not in TARGETS:
        raise UsageError(f"unknown --target {target!r}", hint="use pred or label")
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    started = time.perf_counter()
    dev = resolve_device(device)
    dataset = data if isinstance(data, MultimodalDataset) else load_dataset(
        data, split=split, modalities=modalities, default_split="test")
    if isinstance(model, ModelAdapter):
        adapter = model.to(dev).eval()
        model_name = type(adapter.model).__name__
    else:
        adapter = load_model(model, checkpoint=checkpoint, trust_checkpoint=trust_checkpoint,
                             model_args=dict(model_args or {}), num_classes=dataset.num_classes,
                             modalities=dataset.modalities, output=output, device=str(dev))
        model_name = model
    ests = list(estimators) if estimators is not None else build_estimators(methods, steps=steps)

    outcome = run_audit(adapter, dataset, ests, batch_size=batch_size, limit=limit, target=target,
                        device=dev, progress=progress)
    method_results = {}
    for est in ests:
        stats = outcome["accumulators"][est.name].compute(dataset.classes)
        extra: dict[str, Any] = {"share_histogram": stats["histogram"]}
        extra.update(outcome["extras"].get(est.name, {}))
        method_results[est.name] = MethodResult(name=est.name, level=est.level, shares=stats["shares"],
                                                scores=stats["scores"], per_class=stats["per_class"],
                                                params=est.params(), extra=extra)
    n = outcome["n"]
    return AuditResult(
        model=model_name,
        model_args=dict(model_args or {}),
        checkpoint=str(checkpoint) if checkpoint else None,
        data=dataset.source,
        split=dataset.split,
        n_samples=n,
        modalities=list(dataset.modalities),
        classes=list(dataset.classes),
        target=target,
        accuracy=outcome["correct"] / n if n else 0.0,
        per_class_accuracy=outcome["per_class_accuracy"],
        methods=method_results,
        primary_method=ests[0].name,
        device=str(dev),
        seconds=round(time.perf_counter() - started, 3),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )


def run_audit(adapter: ModelAdapter, dataset: MultimodalDataset, estimators: Sequence[Estimator], *,
              batch_size: int, limit: int | None, target: str, device: torch.device,
              progress: bool = True) -> dict[str, Any]:
    """The streaming loop behind :func:`audit`: one pass, every estimator on every batch.

    Returns the accumulators (one per estimator), accuracy counts and per-estimator
    extra figures (IG's completeness error).
    """
    modalities = tuple(dataset.modalities)
    num_classes = dataset.num_classes
    accumulators = {e.name: ShareAccumulator(modalities, num_classes) for e in estimators}
    extra_sums: dict[str, dict[str, list[float]]] = {e.name: {} for e in estimators}
    correct = 0
    class_correct = torch.zeros(num_classes, dtype=torch.float64)
    class_count = torch.zeros(num_classes, dtype=torch.float64)
    n = 0
    total = min(len(dataset), limit) if limit else len(dataset)
    forward: Callable[[dict[str, Tensor]], Tensor] = adapter
    with progress_bar("auditing", total=total, unit="samples", enabled=progress) as advance:
        for batch in iter_batches(dataset, batch_size=batch_size, limit=limit):
            batch = batch.to(device)
            with torch.no_grad():
                logits = adapter(batch.inputs)
            if logits.shape[1] < num_classes:
                raise ModelError(
                    f"the model returns {logits.shape[1]} scores per sample but the data has {num_classes} classes",
                    hint="use --output to pick the logits of a tuple/dict output, or check --model-arg num_classes")
            preds = logits.argmax(dim=1)
            tgt = preds if target == "pred" else batch.labels
            correct += int((preds == batch.labels).sum())
            labels_cpu = batch.labels.cpu()
            class_count += torch.bincount(labels_cpu, minlength=num_classes).double()[:num_classes]
            class_correct += torch.bincount(labels_cpu[(preds == batch.labels).cpu()],
                                            minlength=num_classes).double()[:num_classes]
            for est in estimators:
                out = est.attribute(forward, batch.inputs, tgt)
                accumulators[est.name].update(out.scores, batch.labels)
                for key, values in out.extra.items():
                    extra_sums[est.name].setdefault(key, []).append(values.detach().double().cpu())
            n += batch.labels.shape[0]
            advance(batch.labels.shape[0])
    extras: dict[str, dict[str, Any]] = {}
    for name, parts in extra_sums.items():
        extras[name] = {}
        for key, chunks in parts.items():
            values = torch.cat(chunks)
            finite = values[torch.isfinite(values)]
            extras[name][key] = {"mean": float(finite.mean()) if finite.numel() else None,
                                 "max": float(finite.max()) if finite.numel() else None}
    per_class_accuracy = {dataset.classes[k]: float(class_correct[k] / class_count[k])
                          for k in range(num_classes) if class_count[k] > 0}
    return {"accumulators": accumulators, "correct": correct, "n": n, "extras": extras,
            "per_class_accuracy": per_class_accuracy}

