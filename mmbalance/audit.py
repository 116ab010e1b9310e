"""``audit()``: how much does each modality contribute to a model's decisions?

Streams a dataset through a model, attributes every prediction to the modalities with
the chosen estimators, and folds the per-sample shares into an :class:`AuditResult`:
shares with bootstrap 95% intervals, per-class shares, estimator-specific figures and
the agreement between estimators. Memory does not grow with the dataset: everything is
accumulated in fixed-size state (only ``per_sample`` output grows, on disk).

Example:
    >>> result = audit("av-tiny", "synthetic:av-dominance?n_test=64", steps=4, progress=False)  # doctest: +SKIP
    >>> result.dominant_modality, result.shares  # doctest: +SKIP
    ('audio', {'audio': 0.93, 'visual': 0.07})
"""

from __future__ import annotations

import datetime as _dt
import inspect
import os
import time
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from .attribution import ShareAccumulator
from .attribution.agreement import AgreementAccumulator
from .attribution.base import Estimator, get_estimator_class
from .attribution.baselines import BASELINES, Baseline, MeanAccumulator
from .attribution.hooks import EmbeddingView, embedding_view, parse_embedding_layers
from .attribution.per_sample import PerSampleWriter, batch_columns, per_sample_format
from .attribution.shares import ExtraAccumulator, poisson_weights
from .data import MultimodalDataset, iter_batches, load_dataset, make_loader
from .device import resolve_device
from .distributed import ShardSampler, all_reduce_sum, dist_info, gather_objects, init_distributed
from .limits import MAX_SEED, MAX_STEPS, check_int
from .errors import ModelError, UsageError
from .models import ModelAdapter, load_model
from .progress import progress_bar
from .results import AuditResult, MethodResult

TARGETS = ("pred", "label")
LEVELS = ("input", "embedding")
#: what ``mmbalance audit`` runs without ``--method``: IG (primary) and modality ablation
DEFAULT_METHODS = ("ig", "ablation")
DEFAULT_BOOTSTRAP = 200


def build_estimators(methods: Sequence[str], *, steps: int = 32, level: str = "input",
                     baseline: str | Baseline = "zero", quadrature: str = "gausslegendre",
                     tolerance: float | None = None, repeats: int = 5, seed: int = 0,
                     **settings: Any) -> list[Estimator]:
    """Instantiate the estimators named in ``methods`` with shared settings.

    Each estimator receives the settings its constructor takes (``steps``, ``method`` =
    ``quadrature``, ``baseline``, ``tolerance``, ``repeats``, ``seed``, ``level``, and any
    extra keyword in ``settings``).

    Example:
        >>> [e.name for e in build_estimators(["ig", "ablation"], steps=8)]
        ['ig', 'ablation']
    """
    if not methods:
        raise UsageError("no attribution method chosen", hint=f"pass --method {','.join(DEFAULT_METHODS)}")
    if level not in LEVELS:
        raise UsageError(f"unknown --level {level!r}", hint="use --level input or --level embedding")
    shared = Baseline.coerce(baseline)
    offered: dict[str, Any] = {"steps": steps, "method": quadrature, "baseline": shared, "tolerance": tolerance,
                               "repeats": repeats, "seed": seed, "level": level, **settings}
    estimators: list[Estimator] = []
    for name in dict.fromkeys(methods):
        cls = get_estimator_class(name)
        params = inspect.signature(cls.__init__).parameters
        estimators.append(cls(**{k: v for k, v in offered.items() if k in params and k != "self"}))
    return estimators


def dataset_means(dataset: MultimodalDataset, *, batch_size: int, limit: int | None, device: torch.device,
                  view: EmbeddingView | None = None, progress: bool = False) -> dict[str, Tensor]:
    """Element-wise mean of every modality over the (first ``limit``) samples, in one streaming pass.

    With ``view``, the mean of the embeddings instead (for ``--baseline mean --level embedding``).
    """
    acc = MeanAccumulator()
    total = min(len(dataset), limit) if limit else len(dataset)
    with progress_bar("dataset mean", total=total, unit="samples", enabled=progress) as advance:
        for batch in iter_batches(dataset, batch_size=batch_size, limit=limit):
            batch = batch.to(device)
            acc.update(view.encode(batch.inputs) if view is not None else batch.inputs)
            advance(len(batch))
    return {m: t.to(device) for m, t in acc.compute().items()}


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
    methods: Sequence[str] = DEFAULT_METHODS,
    steps: int = 32,
    batch_size: int = 32,
    limit: int | None = None,
    target: str = "pred",
    device: str = "auto",
    progress: bool = True,
    estimators: Sequence[Estimator] | None = None,
    level: str = "input",
    baseline: str = "zero",
    quadrature: str = "gausslegendre",
    tolerance: float | None = None,
    embedding_layers: str | Mapping[str, str] | None = None,
    repeats: int = 5,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    per_sample: str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> AuditResult:
    """Measure each modality's share of the model's decisions on ``data``.

    ``model`` is a registry spec (``av-tiny``, ``pkg.mod:factory``, ``file.py:factory``)
    or an already loaded :class:`ModelAdapter`; ``data`` a dataset source string or a
    :class:`MultimodalDataset`. The attribution target is the predicted class
    (``target="pred"``) or the true label (``"label"``).

    Estimators: ``methods`` (``ig``, ``gradxinput``, ``ablation``, ``shapley``,
    ``permutation``, ``branch``; the first is the primary one), at ``level`` ``input`` or
    ``embedding`` (``embedding_layers`` names the modules for plug-ins), against ``baseline``
    ``zero|mean|noise|blur``; IG takes ``steps``, ``quadrature`` and ``tolerance``, the
    permutation score ``repeats``. Pass ``estimators`` to use pre-configured objects instead.
    ``bootstrap`` replicates give 95% intervals (0: none); ``per_sample`` writes one row per
    sample (``.csv`` or ``.parquet``); ``seed`` fixes every random draw.

    Example:
        >>> r = audit("av-tiny", "synthetic:av-dominance?n_test=32", steps=4, progress=False,
        ...           methods=["ig", "shapley"], bootstrap=100)  # doctest: +SKIP
        >>> sorted(r.methods), r.methods["ig"].ci95 is not None  # doctest: +SKIP
        (['ig', 'shapley'], True)
    """
    if target not in TARGETS:
        raise UsageError(f"unknown --target {target!r}", hint="use pred or label")
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    if level not in LEVELS:
        raise UsageError(f"unknown --level {level!r}", hint="use --level input or --level embedding")
    if baseline not in BASELINES:
        raise UsageError(f"unknown --baseline {baseline!r}", hint=f"use --baseline {'|'.join(BASELINES)}")
    if baseline == "blur" and level == "embedding":
        raise UsageError("the blur baseline needs spatial inputs and embeddings are flat",
                         hint="use --baseline zero|mean|noise at --level embedding, or --level input")
    if bootstrap < 0:
        raise UsageError(f"--bootstrap must be 0 (off) or a number of replicates, got {bootstrap}")
    if 0 < bootstrap < 20:
        raise UsageError(f"--bootstrap {bootstrap} is too few replicates for a 95% interval",
                         hint="use --bootstrap 200 (the default) or 0 to turn intervals off")
    layers = parse_embedding_layers(embedding_layers)
    if layers and level != "embedding":
        raise UsageError("--embedding-layer only applies at the embedding level", hint="add --level embedding")
    if per_sample is not None:
        per_sample_format(per_sample)
    check_int("--seed", seed, 0, MAX_SEED)
    for flag, value, low in (("--steps", steps, 1), ("--repeats", repeats, 1), ("--bootstrap", bootstrap, 0)):
        check_int(flag, value, low, MAX_STEPS)
    started = time.perf_counter()
    dev = resolve_device(device)
    rank = init_distributed(dev)  # under torchrun: join the group; run_audit shards the data
    if rank.enabled and dev.type == "cuda":
        dev = torch.device("cuda", rank.local_rank)
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

    shared_baseline = Baseline(baseline, seed=seed)
    ests = list(estimators) if estimators is not None else build_estimators(
        methods, steps=steps, level=level, baseline=shared_baseline, quadrature=quadrature, tolerance=tolerance,
        repeats=repeats, seed=seed)
    for est in ests:
        est.check(adapter)
    needs_view = any(est.level == "embedding" and not est.needs_model for est in ests)
    view = embedding_view(adapter, layers) if needs_view else None
    if baseline == "mean" and estimators is None:
        input_level = any(est.level == "input" and not est.needs_model for est in ests)
        shared_baseline.means = dataset_means(dataset, batch_size=batch_size, limit=limit, device=dev,
                                              view=None if input_level else view, progress=progress)

    outcome = run_audit(adapter, dataset, ests, batch_size=batch_size, limit=limit, target=target,
                        device=dev, progress=progress, view=view,
                        baseline=shared_baseline if estimators is None else None,
                        bootstrap=bootstrap, seed=seed, per_sample=per_sample)
    n = outcome["n"]
    accuracy = outcome["correct"] / n if n else 0.0
    method_results = {}
    all_shares = {}
    for est in ests:
        stats = outcome["accumulators"][est.name].compute(dataset.classes)
        extra: dict[str, Any] = {"share_histogram": stats["histogram"]}
        extra.update(est.summarize(outcome["extras"][est.name].compute(), accuracy=accuracy))
        params = dict(est.params())
        if est.level == "embedding" and view is not None and not est.needs_model:
            params["embedding"] = view.describe()
        all_shares[est.name] = stats["shares"]
        method_results[est.name] = MethodResult(name=est.name, level=est.level, shares=stats["shares"],
                                                scores=stats["scores"], per_class=stats["per_class"],
                                                params=params, ci95=stats["ci95"], extra=extra)
    audit_extra: dict[str, Any] = {}
    if len(ests) > 1:
        audit_extra["agreement"] = outcome["agreement"].compute(all_shares)
    if bootstrap:
        audit_extra["bootstrap"] = {"replicates": bootstrap, "seed": seed, "method": "poisson"}
    if outcome.get("per_sample"):
        audit_extra["per_sample"] = outcome["per_sample"]
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
        accuracy=accuracy,
        per_class_accuracy=outcome["per_class_accuracy"],
        methods=method_results,
        primary_method=ests[0].name,
        device=str(dev),
        seconds=round(time.perf_counter() - started, 3),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        extra=audit_extra,
    )


def run_audit(adapter: ModelAdapter, dataset: MultimodalDataset, estimators: Sequence[Estimator], *,
              batch_size: int, limit: int | None, target: str, device: torch.device,
              progress: bool = True, view: EmbeddingView | None = None, baseline: Baseline | None = None,
              bootstrap: int = 0, seed: int = 0,
              per_sample: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The streaming loop behind :func:`audit`: one pass, every estimator on every batch.

    Returns the share accumulators and extra-figure accumulators (one per estimator), the
    agreement accumulator, accuracy counts and, with ``per_sample``, the written file.
    Every piece of state has a fixed size, so memory does not depend on the dataset size.
    ``baseline`` is computed once per batch and given to every estimator (so they compare
    against the same reference); ``None`` lets each estimator use its own.
    """
    modalities = tuple(dataset.modalities)
    num_classes = dataset.num_classes
    accumulators = {e.name: ShareAccumulator(modalities, num_classes, bootstrap=bootstrap, seed=seed)
                    for e in estimators}
    extras = {e.name: ExtraAccumulator(modalities) for e in estimators}
    agreement = AgreementAccumulator([e.name for e in estimators], modalities)
    shard = dist_info()  # torchrun: each rank audits every world_size-th sample, then the sums are reduced
    if shard.enabled and per_sample is not None:
        raise UsageError("--per-sample is not supported under torchrun", hint="run the audit in one process")
    boot_gen = torch.Generator().manual_seed(int(seed) + 1_000_003 * shard.rank)
    writer = PerSampleWriter(per_sample, modalities) if per_sample is not None else None
    needs_input_baseline = baseline is not None and any(e.level == "input" and not e.needs_model
                                                        for e in estimators)
    needs_embeddings = any(e.level == "embedding" and not e.needs_model for e in estimators)
    if needs_embeddings and view is None:
        view = embedding_view(adapter)
    correct = 0
    class_correct = torch.zeros(num_classes, dtype=torch.float64)
    class_count = torch.zeros(num_classes, dtype=torch.float64)
    n = 0
    total = min(len(dataset), limit) if limit else len(dataset)
    batches = (make_loader(dataset, batch_size=batch_size, sampler=ShardSampler(total)) if shard.enabled
               else iter_batches(dataset, batch_size=batch_size, limit=limit))
    try:
        with progress_bar("auditing", total=total, unit="samples", enabled=progress) as advance:
            for batch in batches:
                batch = batch.to(device)
                inputs, labels = batch.inputs, batch.labels
                if needs_embeddings:  # one forward gives the embeddings and the logits
                    assert view is not None
                    emb, logits = view.encode_with_logits(inputs)
                    fuse = view.bind(inputs)
                else:
                    with torch.no_grad():
                        logits = adapter(inputs)
                if logits.shape[1] < num_classes:
                    raise ModelError(f"the model gives {logits.shape[1]} logits per sample but {dataset.location} "
                                     f"has {num_classes} classes",
                                     hint="choose the element holding the logits with --output, or build the "
                                          "model for this many classes (--model-arg num_classes=...)")
                preds = logits.argmax(dim=1)
                tgt = preds if target == "pred" else labels
                hits = preds == labels
                correct += int(hits.sum())
                labels_cpu = labels.cpu()
                class_count += torch.bincount(labels_cpu, minlength=num_classes).double()[:num_classes]
                class_correct += torch.bincount(labels_cpu[hits.cpu()], minlength=num_classes).double()[:num_classes]
                ref_inputs = baseline(inputs) if needs_input_baseline else None
                ref_emb = baseline(emb) if needs_embeddings and baseline is not None else None
                weights = poisson_weights(len(batch), bootstrap, boot_gen) if bootstrap else None
                shares = {}
                columns: dict[str, Any] = {}
                if writer is not None:
                    columns = {"index": batch.indices, "label": labels, "pred": preds, "target": tgt}
                for est in estimators:
                    if est.needs_model:
                        out = est.attribute(adapter, inputs, tgt, labels=labels)
                    elif est.level == "embedding":
                        out = est.attribute(fuse, emb, tgt, labels=labels, baselines=ref_emb)
                    else:
                        out = est.attribute(adapter, inputs, tgt, labels=labels, baselines=ref_inputs)
                    shares[est.name] = accumulators[est.name].update(out.scores, labels, weights)
                    extras[est.name].update(out.extra)
                    if writer is not None:
                        columns.update(batch_columns(modalities, est.name, out.scores.detach().cpu(),
                                                     shares[est.name], out.extra))
                agreement.update(shares)
                if writer is not None:
                    writer.write(columns)
                n += len(batch)
                advance(len(batch))
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    written = str(writer.close()) if writer is not None else None
    if shard.enabled:  # sum every rank's statistics: the same numbers as one process
        for acc in (*accumulators.values(), agreement):
            acc.load_state(all_reduce_sum(acc.state()))
        for name, acc in extras.items():
            merged = ExtraAccumulator(modalities)
            for part in gather_objects(acc):
                merged.merge(part)
            extras[name] = merged
        counts = all_reduce_sum(torch.cat([torch.tensor([float(correct), float(n)], dtype=torch.float64),
                                           class_correct, class_count]))
        correct, n = int(counts[0]), int(counts[1])
        class_correct, class_count = counts[2:2 + num_classes], counts[2 + num_classes:]
    per_class_accuracy = {dataset.classes[k]: float(class_correct[k] / class_count[k])
                          for k in range(num_classes) if class_count[k] > 0}
    return {"accumulators": accumulators, "extras": extras, "agreement": agreement, "correct": correct, "n": n,
            "per_class_accuracy": per_class_accuracy, "per_sample": written}
