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

import copy
import datetime as _dt
import inspect
import os
import time
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from .attribution import ShareAccumulator
from .attribution.agreement import AgreementAccumulator
from .attribution.base import Estimator, check_pool, get_estimator_class
from .attribution.baselines import BASELINES, Baseline, MeanAccumulator
from .attribution.hooks import EmbeddingView, parse_embedding_layers
from .attribution.integrated_gradients import resolve_quadrature
from .attribution.levels import LevelSpace, plan_space
from .attribution.per_sample import PerSampleWriter, batch_columns, per_sample_format
from .attribution.shares import ExtraAccumulator, poisson_weights
from .data import MultimodalDataset, iter_batches, load_dataset, make_loader, parse_pass_through, with_pass_through
from .device import resolve_device
from .distributed import ShardSampler, all_reduce_sum, dist_info, gather_objects, init_distributed
from .errors import EstimatorError, MMBalanceError, UsageError
from .guards import (ConstantMonitor, check_finite, check_gradients_flow, check_logits_width,
                     check_width_follows_classes, completeness_warning,
                     constant_embedding_warning, gradient_estimators, near_chance_warning, no_checkpoint_warning,
                     randomisation_warning, unaudited_inputs)
from .guards import FORWARD_ONLY_ESTIMATORS, audit_warning, check_compiled, compiled_kind, probabilities_warning
from .io import check_output_file
from .limits import MAX_BATCH_SIZE, MAX_LIMIT, MAX_SEED, MAX_STEPS, check_int
from .models import ModelAdapter, load_model
from .models.binding import fit_to_model, split_pass_through
from .progress import progress_bar
from .precision import DEFAULT_PRECISION, check_precision
from .reproducibility import deterministic_mode
from .results import DEFAULT_METHODS, AuditResult, MethodResult

TARGETS = ("pred", "label")
LEVELS = ("input", "embedding")
DEFAULT_BOOTSTRAP = 200
#: ``--sanity``: the shares of the re-initialised model must move by at least this much
SANITY_MIN_CHANGE = 0.05


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
            acc.update(view.encode({**batch.inputs, **batch.extra}) if view is not None else batch.inputs)
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
    deterministic: bool = False,
    precision: str = DEFAULT_PRECISION,
    pass_through: str | Sequence[str] | None = None,
    call: str = "auto",
    pad_id: int | None = None,
    pool: str = "l1",
    sanity: bool = False,
) -> AuditResult:
    """Measure each modality's share of the model's decisions on ``data``.

    ``model`` is a registry spec (``av-tiny``, ``pkg.mod:factory``, ``file.py:factory``)
    or an already loaded :class:`ModelAdapter`; ``data`` a dataset source string or a
    :class:`MultimodalDataset`. The attribution target is the predicted class
    (``target="pred"``) or the true label (``"label"``).

    Estimators: ``methods`` (``ig``, ``gradxinput``, ``ablation``, ``shapley``,
    ``permutation``, ``branch``; the first is the primary one; default ``shapley`` then ``ablation``,
    see docs/estimators.md for why), at ``level`` ``input`` or
    ``embedding`` (``embedding_layers`` names the modules for plug-ins), against ``baseline``
    ``zero|mean|noise|blur``; IG takes ``steps``, ``quadrature`` and ``tolerance``, the
    permutation score ``repeats``; ``pool`` is how IG and gradient x input pool a modality's map
    (``l1``: sum of magnitudes; ``signed``: plain sum). Pass ``estimators`` to use pre-configured objects instead.
    ``sanity`` runs the model-randomisation test (Adebayo et al. 2018): the primary estimator again on
    re-initialised weights, whose shares must move (``extra.sanity``; a ``sanity`` warning otherwise).
    ``bootstrap`` replicates give 95% intervals (0: none); ``per_sample`` writes one row per
    sample (``.csv`` or ``.parquet``); ``seed`` fixes every random draw; ``deterministic`` turns on
    deterministic algorithms (bit-identical results on CUDA, see :mod:`mmbalance.reproducibility`);
    ``precision`` (``fp32``, ``tf32`` on CUDA, ``bf16``) is the arithmetic of IG's forward and backward
    passes (see :mod:`mmbalance.precision`; other estimators run in fp32; with ``estimators``, set
    ``IntegratedGradients(precision=...)`` instead).

    Real models: ``pass_through`` names inputs given to ``forward`` with each sample but never
    attributed (``attention_mask``, ``lengths``; from the dataset's ``extra`` mapping or its
    inputs); ``call`` is how ``forward`` is called (``auto``, ``positional``, ``keyword``,
    ``dict``); integer modalities (token ids) are attributed at their embedding output (found
    automatically or named in ``embedding_layers``) against ``pad_id`` sequences (default: the
    model config's ``pad_token_id``, else 0). ``model="hf:DIR"`` loads a Hugging Face model
    saved with ``save_pretrained``.

    Example:
        >>> r = audit("av-tiny", "synthetic:av-dominance?n_test=32", steps=4, progress=False,
        ...           methods=["ig", "shapley"], bootstrap=100)  # doctest: +SKIP
        >>> sorted(r.methods), r.methods["ig"].ci95 is not None  # doctest: +SKIP
        (['ig', 'shapley'], True)
    """
    if target not in TARGETS:
        raise UsageError(f"unknown --target {target!r}", hint="use pred or label")
    check_int("--batch-size", batch_size, 1, MAX_BATCH_SIZE)
    if limit is not None:
        check_int("--limit", limit, 1, MAX_LIMIT)
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
    if per_sample is not None:
        per_sample_format(per_sample)
        check_output_file(per_sample, what="--per-sample", example="samples.csv")  # before the work, not after it
    check_int("--seed", seed, 0, MAX_SEED)
    if pad_id is not None:
        check_int("--pad-id", pad_id, 0, MAX_SEED)  # token ids are int64
    for flag, value, low in (("--steps", steps, 1), ("--repeats", repeats, 1), ("--bootstrap", bootstrap, 0)):
        check_int(flag, value, low, MAX_STEPS)
    check_precision(precision)
    check_pool(pool)
    resolve_quadrature(quadrature)  # a misspelt rule is refused even when no estimator uses it
    if pool != "l1" and (estimators is not None or not any(m in ("ig", "gradxinput") for m in methods)):
        raise UsageError(f"--pool {pool} applies to the gradient estimators (ig, gradxinput)",
                         hint="add ig to --method, or drop --pool")
    if precision != DEFAULT_PRECISION and estimators is not None:
        raise UsageError("precision= applies to the estimators audit() builds",
                         hint="pass IntegratedGradients(precision=...) among your estimators instead")
    if precision != DEFAULT_PRECISION and "ig" not in methods:
        raise UsageError(f"--precision {precision} applies to Integrated Gradients only",
                         hint="add ig to --method, or drop --precision")
    started = time.perf_counter()
    dev = resolve_device(device)
    check_precision(precision, dev)  # before any work: tf32 needs CUDA
    rank = init_distributed(dev)  # under torchrun: join the group; run_audit shards the data
    if rank.enabled and dev.type == "cuda":
        dev = torch.device("cuda", rank.local_rank)
    dataset = data if isinstance(data, MultimodalDataset) else load_dataset(
        data, split=split, modalities=modalities, default_split="test")
    passed = parse_pass_through(pass_through)
    if isinstance(model, ModelAdapter):
        adapter = model.to(dev).eval()
        model_name = type(adapter.model).__name__
        if passed and adapter.pass_through and passed != adapter.pass_through:
            raise UsageError(f"pass_through={list(passed)} differs from the adapter's {list(adapter.pass_through)}")
        if passed and not adapter.pass_through:  # the same model, now given its pass-through inputs
            adapter = ModelAdapter(adapter.model, adapter.modalities, call=adapter.call_style, output=adapter.output,
                                   num_classes=adapter.num_classes, pass_through=passed).to(dev).eval()
        passed = passed or adapter.pass_through
        dataset = with_pass_through(dataset, passed)
    else:
        dataset, passed = split_pass_through(model, dataset, pass_through)
        adapter = load_model(model, checkpoint=checkpoint, trust_checkpoint=trust_checkpoint,
                             model_args=dict(model_args or {}), num_classes=dataset.num_classes,
                             modalities=dataset.modalities, output=output, device=str(dev), call=call,
                             pass_through=passed)
        model_name = model
        dataset = fit_to_model(adapter, dataset, modalities_named=modalities is not None)

    shared_baseline = Baseline(baseline, seed=seed)
    ests = list(estimators) if estimators is not None else build_estimators(
        methods, steps=steps, level=level, baseline=shared_baseline, quadrature=quadrature, tolerance=tolerance,
        repeats=repeats, seed=seed, **({"precision": precision} if precision != DEFAULT_PRECISION else {}),
        **({"pool": pool} if pool != "l1" else {}))
    if compiled_kind(adapter.model) is not None:  # scripted/exported: no hooks, no gradients through modules
        hooked = [e.name for e in ests if e.name not in FORWARD_ONLY_ESTIMATORS or e.level != "input"]
        if hooked:
            check_compiled(adapter.model, f"--method {','.join(hooked)}"
                           + (f" at --level {level}" if level != "input" else ""))
    for est in ests:
        est.check(adapter)
    spaces = plan_spaces(adapter, dataset, ests, layers, pad_id, device=dev)
    if baseline == "mean" and estimators is None:
        first = next(iter(spaces.values()), None)
        shared_baseline.means = dataset_means(dataset, batch_size=batch_size, limit=limit, device=dev,
                                              view=first.view if first is not None else None, progress=progress)

    with deterministic_mode(deterministic):
        outcome = run_audit(adapter, dataset, ests, batch_size=batch_size, limit=limit, target=target,
                            device=dev, progress=progress, spaces=spaces,
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
        if not est.needs_model and est.level in spaces:
            params.update(spaces[est.level].describe())
        all_shares[est.name] = stats["shares"]
        method_results[est.name] = MethodResult(name=est.name, level=est.level, shares=stats["shares"],
                                                scores=stats["scores"], per_class=stats["per_class"],
                                                params=params, ci95=stats["ci95"], extra=extra)
    warnings = audit_warnings(method_results, outcome["constant_embeddings"], baseline=baseline,
                              own_estimators=estimators is None)
    if outcome.get("probabilities") is not None:
        warnings.insert(0, outcome["probabilities"])
    def rebuild() -> ModelAdapter:
        assert isinstance(model, str)
        return load_model(model, model_args=dict(model_args or {}), num_classes=dataset.num_classes,
                          modalities=dataset.modalities, output=output, device="cpu", call=call, pass_through=passed)

    for extra_warning in (no_checkpoint_warning(adapter, model, checkpoint, rebuild),
                          near_chance_warning(accuracy, dataset.num_classes, n),
                          decoding_warning(data, checkpoint)):
        if extra_warning is not None:
            warnings.append(extra_warning)
    passed_through = set(getattr(adapter, "pass_through", None) or ())  # given to forward, never audited
    available = [m for m in (_source_modalities(data, split) if modalities else dataset.modalities)
                 if m not in passed_through]
    model_inputs = unaudited_inputs(adapter.model, dataset.modalities, available)
    audit_extra: dict[str, Any] = {}
    if len(ests) > 1:
        audit_extra["agreement"] = outcome["agreement"].compute(all_shares)
    if bootstrap:
        audit_extra["bootstrap"] = {"replicates": bootstrap, "seed": seed, "method": "poisson"}
    if outcome.get("per_sample"):
        audit_extra["per_sample"] = outcome["per_sample"]
    if adapter.pass_through:
        audit_extra["pass_through"] = list(adapter.pass_through)
    if adapter.call_style == "dict" or call != "auto":
        audit_extra["call"] = adapter.call_style
    if sanity:
        primary = method_results[ests[0].name]
        audit_extra["sanity"] = randomisation_test(
            adapter, dataset, ests[0], primary, layers=layers, pad_id=pad_id, batch_size=batch_size, limit=limit,
            target=target, device=dev, seed=seed, baseline=shared_baseline if estimators is None else None,
            progress=progress)
        if not audit_extra["sanity"]["passed"]:
            warnings.append(randomisation_warning(audit_extra["sanity"]["moved"], SANITY_MIN_CHANGE))
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
        warnings=warnings,
        model_inputs=model_inputs,
    )


def reinitialised(adapter: ModelAdapter, seed: int = 0) -> ModelAdapter:
    """A copy of ``adapter`` whose every module with ``reset_parameters`` is re-initialised (seeded).

    Example:
        >>> from mmbalance.models import load_model
        >>> m = load_model("av-tiny", num_classes=4)
        >>> r = reinitialised(m)
        >>> any(not torch.equal(a, b) for a, b in zip(m.parameters(), r.parameters()))
        True
    """
    fresh = copy.deepcopy(adapter)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed) + 7919)
        for module in fresh.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset) and any(True for _ in module.parameters(recurse=False)):
                reset()
    return fresh.eval()


def randomisation_test(adapter: ModelAdapter, dataset: MultimodalDataset, estimator: Estimator,
                       measured: MethodResult, *, layers: Mapping[str, str] | None = None,
                       pad_id: int | None = None, batch_size: int = 32, limit: int | None = None,
                       target: str = "pred", device: torch.device | str = "cpu", seed: int = 0,
                       baseline: Baseline | None = None, progress: bool = False) -> dict[str, Any]:
    """The model-randomisation test of Adebayo et al. (2018) on modality shares.

    Runs ``estimator`` again on :func:`reinitialised` weights and compares its shares with
    ``measured`` (the trained model's), over the dataset and per class. ``moved`` is the largest
    absolute change of a share; the test passes when it reaches :data:`SANITY_MIN_CHANGE`: an
    estimator whose shares do not move with the weights describes the inputs, not the model.

    Example:
        >>> out = randomisation_test(adapter, dataset, ShapleyValues(), result.primary)  # doctest: +SKIP
        >>> out["passed"], round(out["moved"], 2)  # doctest: +SKIP
        (True, 0.41)
    """
    dev = torch.device(device)
    fresh = reinitialised(adapter, seed)
    est = copy.deepcopy(estimator)
    spaces = plan_spaces(fresh, dataset, [est], layers, pad_id, device=dev)
    outcome = run_audit(fresh, dataset, [est], batch_size=batch_size, limit=limit, target=target, device=dev,
                        progress=progress, spaces=spaces, baseline=baseline, bootstrap=0, seed=seed)
    stats = outcome["accumulators"][est.name].compute(dataset.classes)
    moved = max((abs(stats["shares"][m] - measured.shares.get(m, 0.0)) for m in stats["shares"]), default=0.0)
    for cls, entry in stats["per_class"].items():
        before = (measured.per_class.get(cls) or {}).get("shares") or {}
        for m, v in entry["shares"].items():
            if m in before:
                moved = max(moved, abs(v - before[m]))
    return {"test": "model_randomisation", "method": est.name, "shares_randomised": stats["shares"],
            "moved": moved, "threshold": SANITY_MIN_CHANGE, "passed": moved >= SANITY_MIN_CHANGE}


def plan_spaces(adapter: ModelAdapter, dataset: MultimodalDataset, estimators: Sequence[Estimator],
                layers: Mapping[str, str] | None, pad_id: int | None = None, *,
                device: torch.device | str = "cpu") -> dict[str, LevelSpace]:
    """The attribution space of every level the estimators use, planned on the first two samples.

    Token-id modalities get their embedding layers here (found by a hooked forward, or from
    ``layers``); raises :class:`~mmbalance.errors.EstimatorError` when none can be found.
    """
    levels = list(dict.fromkeys(e.level for e in estimators if not e.needs_model))
    if not levels:
        return {}
    probe = next(iter_batches(dataset, batch_size=min(2, len(dataset)))).to(device)
    return {lvl: plan_space(adapter, lvl, {**probe.inputs, **probe.extra}, layers, pad_id) for lvl in levels}


def decoding_warning(data: str | os.PathLike[str] | MultimodalDataset,
                     checkpoint: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """A ``decoding`` warning when ``data`` is media decoded otherwise than the data ``checkpoint`` was trained on.

    The training data is the ``data`` of the ``run.json`` beside the checkpoint; the options on each side come from
    a media source's query string or a prepared folder's ``prepare.json`` (see :mod:`mmbalance.media.provenance`).

    Example:
        >>> decoding_warning("synthetic:av-dominance", "runs/p/best.pt") is None
        True
    """
    if checkpoint is None or not isinstance(data, (str, os.PathLike)):
        return None
    from .media.provenance import decoding_mismatch  # noqa: PLC0415 - the media package, only when it can apply

    message = decoding_mismatch(data, checkpoint)
    if message is None:
        return None
    return audit_warning("decoding", f"{message}; the model was trained on inputs decoded otherwise, so what it "
                                     f"does here may not be what it does on its own inputs: decode as its training "
                                     f"data was")


def _source_modalities(data: str | MultimodalDataset, split: str | None) -> tuple[str, ...]:
    """Every modality the data source holds (``--modalities`` may have audited fewer); ``()`` if unknown."""
    if isinstance(data, MultimodalDataset):
        return data.modalities
    try:
        return load_dataset(data, split=split, default_split="test").modalities
    except MMBalanceError:
        return ()


def audit_warnings(methods: Mapping[str, MethodResult], constant_embeddings: Sequence[str], *, baseline: str,
                   own_estimators: bool = True) -> list[dict[str, Any]]:
    """The warnings an audit prints under its table and stores in the JSON (see :mod:`mmbalance.guards`).

    IG completeness errors above 5% of ``|F(x) - F(baseline)|`` on average, and, with the zero
    baseline, embeddings that are the same for every sample.

    Example:
        >>> ig = MethodResult(name="ig", extra={"completeness_error": {"mean": 0.5}, "output_change": {"mean": 1.0}})
        >>> [w["code"] for w in audit_warnings({"ig": ig}, ["visual"], baseline="zero")]
        ['completeness', 'constant_embedding']
    """
    out = []
    for name, method in methods.items():
        warning = completeness_warning(name, method.extra, method.params)
        if warning is not None:
            out.append(warning)
    if baseline == "zero" and own_estimators:
        out.extend(constant_embedding_warning(m) for m in constant_embeddings)
    return out


def run_audit(adapter: ModelAdapter, dataset: MultimodalDataset, estimators: Sequence[Estimator], *,
              batch_size: int, limit: int | None, target: str, device: torch.device,
              progress: bool = True, view: EmbeddingView | None = None, baseline: Baseline | None = None,
              spaces: Mapping[str, LevelSpace] | None = None,
              bootstrap: int = 0, seed: int = 0,
              per_sample: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The streaming loop behind :func:`audit`: one pass, every estimator on every batch.

    Returns the share accumulators and extra-figure accumulators (one per estimator), the
    agreement accumulator, accuracy counts and, with ``per_sample``, the written file.
    Every piece of state has a fixed size, so memory does not depend on the dataset size.
    ``baseline`` is computed once per batch and given to every estimator (so they compare
    against the same reference); ``None`` lets each estimator use its own. ``spaces`` (from
    :func:`plan_spaces`) say where each level attributes; ``view`` alone sets the embedding level's.
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
    spaces = dict(spaces or {})
    if view is not None:
        spaces["embedding"] = LevelSpace("embedding", view)
    missing = [e.level for e in estimators if not e.needs_model and e.level not in spaces]
    if missing:
        spaces.update(plan_spaces(adapter, dataset, [e for e in estimators if e.level in missing], None,
                                  device=device))
    by_gradient = gradient_estimators(estimators)
    monitor = ConstantMonitor()
    correct = 0
    class_correct = torch.zeros(num_classes, dtype=torch.float64)
    class_count = torch.zeros(num_classes, dtype=torch.float64)
    n = 0
    probabilities: dict[str, Any] | None = None  # the warning when the first batch's outputs are probabilities
    total = min(len(dataset), limit) if limit else len(dataset)
    batches = (make_loader(dataset, batch_size=batch_size, sampler=ShardSampler(total)) if shard.enabled
               else iter_batches(dataset, batch_size=batch_size, limit=limit))
    try:
        with progress_bar("auditing", total=total, unit="samples", enabled=progress) as advance:
            for batch in batches:
                batch = batch.to(device)
                inputs, labels = batch.inputs, batch.labels
                # per level: the tensors to attribute, a forward over them, references; one forward gives the logits
                prepared = {lvl: space.prepare(adapter, inputs, batch.extra, baseline) for lvl, space in spaces.items()}
                if prepared:
                    logits = next(iter(prepared.values()))[3]
                else:
                    with torch.no_grad():
                        logits = adapter({**inputs, **batch.extra})
                check_logits_width(logits, num_classes, dataset.location)
                if n == 0:
                    check_width_follows_classes(adapter, {**inputs, **batch.extra}, logits)
                    probabilities = probabilities_warning(logits)
                check_finite(logits, batch.indices, "the model's logits")
                if "embedding" in prepared:
                    monitor.update(prepared["embedding"][0])
                preds = logits.argmax(dim=1)
                tgt = preds if target == "pred" else labels
                hits = preds == labels
                correct += int(hits.sum())
                labels_cpu = labels.cpu()
                class_count += torch.bincount(labels_cpu, minlength=num_classes).double()[:num_classes]
                class_correct += torch.bincount(labels_cpu[hits.cpu()], minlength=num_classes).double()[:num_classes]
                if n == 0 and by_gradient:  # the cheap test, once: do gradients reach the inputs at all?
                    for lvl in dict.fromkeys(e.level for e in by_gradient):
                        tensors, forward, refs, _ = prepared[lvl]
                        check_gradients_flow(forward, tensors, refs, tgt,
                                             what="inputs" if lvl == "input" else "embeddings")
                weights = poisson_weights(len(batch), bootstrap, boot_gen) if bootstrap else None
                shares = {}
                columns: dict[str, Any] = {}
                if writer is not None:
                    columns = {"index": batch.indices, "label": labels, "pred": preds, "target": tgt}
                for est in estimators:
                    if est.needs_model:
                        out = est.attribute(adapter, inputs, tgt, labels=labels)
                    else:
                        tensors, forward, refs, _ = prepared[est.level]
                        out = est.attribute(forward, tensors, tgt, labels=labels, baselines=refs)
                    check_finite(out.scores, batch.indices, f"the {est.name} attributions", error=EstimatorError,
                                 hint="the gradients or logits overflow there; check the model on that sample")
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
        reducible: list[ShareAccumulator | AgreementAccumulator] = [*accumulators.values(), agreement]
        for reduced in reducible:
            reduced.load_state(all_reduce_sum(reduced.state()))
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
            "per_class_accuracy": per_class_accuracy, "per_sample": written,
            "constant_embeddings": monitor.constant(), "probabilities": probabilities}
