"""Integrated Gradients over every modality at once, batched over steps.

For input ``x``, baseline ``x'`` and target logit ``F_c``::

    IG_i(x) = (x_i - x'_i) * sum_k w_k * dF_c/dx_i (x' + a_k (x - x'))

with quadrature nodes ``a_k`` and weights ``w_k`` (Gauss-Legendre by default, as in
captum, or Riemann rules; unlike captum's, our trapezoid weights sum to exactly 1, so
every rule is exact on a linear model). All modalities are interpolated together,
so one forward+backward per step answers for every modality; steps are processed in
chunks of ``internal_batch_size`` samples (when not given: from a fixed memory budget on a CPU,
from the free device memory and the measured cost of a sample on a GPU, see ``_chunking``). On a
GPU an out-of-memory error halves the chunk and retries (one warning), never crashes.

Three things make it faster than a plain loop over steps, all exact:

* the weighted sum over steps is taken by autograd itself (the path is built on a
  zero tensor broadcast over the steps, whose gradient *is* the weighted sum);
* when ``forward`` is a module whose encoders open with affine layers (convolution,
  eval-mode batch norm), the path is walked from those layers' output and their
  backward pass runs once per batch instead of once per step (see ``_stems``);
* when ``forward`` is a module, eval-mode batch norms that directly follow a convolution
  are folded into it for the duration of the call (see ``_folding``).

With ``tolerance``, steps adapt per sample: the rule is refined (doubling the number of
intervals) only for samples whose completeness error is still above
``tolerance * |F(x) - F(x')|``; ``steps`` caps the refinement.

Example:
    >>> import torch
    >>> lin = torch.nn.Linear(3, 2)
    >>> f = lambda inp: lin(inp["a"])
    >>> x = {"a": torch.randn(4, 3)}
    >>> out = IntegratedGradients(steps=8, keep_maps=True).attribute(f, x, torch.zeros(4, dtype=torch.long))
    >>> torch.allclose(out.maps["a"], x["a"] * lin.weight[0], atol=1e-5)
    True
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import EstimatorError, MMBalanceWarning, UsageError
from ..precision import DEFAULT_PRECISION, check_precision, forward_autocast, precision_scope
from . import _chunking, _folding, _stems
from .base import Attribution, Estimator, ForwardFn, check_pool, pooled_scores, register_estimator, target_logit
from .baselines import BASELINES, Baseline  # noqa: F401  (BASELINES re-exported)
from .rows import select_rows

QUADRATURES = ("gausslegendre", "riemann_middle", "riemann_trapezoid", "riemann_left", "riemann_right")
#: short names accepted for ``method`` / ``--quadrature``
QUADRATURE_ALIASES = {"riemann": "riemann_trapezoid", "gl": "gausslegendre", "gauss-legendre": "gausslegendre"}
ADAPTIVE_START = 4


def resolve_quadrature(method: str) -> str:
    """``riemann`` → ``riemann_trapezoid``; full names pass through; unknown names are refused.

    Example:
        >>> resolve_quadrature("riemann")
        'riemann_trapezoid'
    """
    name = QUADRATURE_ALIASES.get(method, method)
    if name not in QUADRATURES:
        raise UsageError(f"unknown IG quadrature {method!r}",
                         hint=f"use --quadrature riemann|gausslegendre (or {', '.join(QUADRATURES[1:])})")
    return name


def make_baseline(kind: str, x: Tensor) -> Tensor:
    """The reference input for one modality (``zero``, ``noise`` or ``blur``; ``mean`` needs :class:`Baseline`)."""
    return Baseline(kind).one("input", x)


def quadrature(method: str, steps: int) -> tuple[list[float], list[float]]:
    """Weights and nodes in ``[0, 1]`` for ``steps`` evaluation points; weights sum to 1.

    Example:
        >>> quadrature("riemann_trapezoid", 3)
        ([0.25, 0.5, 0.25], [0.0, 0.5, 1.0])
    """
    method = resolve_quadrature(method)
    n = steps
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        return [float(w) / 2 for w in weights], [(float(x) + 1) / 2 for x in nodes]
    if method == "riemann_trapezoid":
        if n < 2:
            raise UsageError("the trapezoid rule needs at least 2 steps", hint="use --steps 2 or more")
        w = [1.0 / (n - 1)] * n
        w[0] = w[-1] = 0.5 / (n - 1)
        return w, [k / (n - 1) for k in range(n)]
    offset = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}[method]
    return [1.0 / n] * n, [(k + offset) / n for k in range(n)]


class _Walk:
    """Where the IG path is walked: endpoints, a forward for points, and the way back to inputs.

    Without stems the space is the inputs themselves. With stems, a modality ``m`` is walked
    at its stem output (key ``stem:m``) and, unless the model provably reads the raw input only
    through the stem, at its raw input too (key ``raw:m``, for whatever else reads it).
    """

    def __init__(self, forward: ForwardFn, inputs: dict[str, Tensor], baselines: dict[str, Tensor],
                 target: Tensor, stems: _stems.Stems) -> None:
        self.modalities = tuple(inputs)
        self.batch = target.shape[0]
        self.stems = stems
        self.forward_fn = forward
        self.inputs, self.baselines = inputs, baselines
        self._graph: dict[str, tuple[Tensor, Tensor]] = {}
        self._fixed_raw: dict[str, Tensor] = {}
        if stems:
            raw = {m: inputs[m].detach().requires_grad_(m in stems.stems) for m in self.modalities}
            with torch.enable_grad(), _stems.capturing(stems, keep_graph=True) as zx:
                fx = forward(raw)
            with torch.no_grad(), _stems.capturing(stems) as zb:
                fb = forward(dict(baselines))
            walked_raw = [m for m in self.modalities if not (stems.raw_unused and m in stems.stems)]
            self.x = {f"raw:{m}": inputs[m] for m in walked_raw}
            self.b = {f"raw:{m}": baselines[m] for m in walked_raw}
            self._fixed_raw = {m: inputs[m][:1] for m in self.modalities if m not in walked_raw}
            for m in stems.stems:
                self._graph[m] = (zx[m], raw[m])
                self.x[f"stem:{m}"] = _stems.per_sample_view(zx[m].detach(), self.batch)
                self.b[f"stem:{m}"] = _stems.per_sample_view(zb[m], self.batch)
            fx = fx.detach()
        else:
            with torch.no_grad():
                fx, fb = forward(inputs), forward(baselines)
            self.x = {f"raw:{m}": inputs[m] for m in self.modalities}
            self.b = {f"raw:{m}": baselines[m] for m in self.modalities}
        self.f_x = target_logit(fx, target)
        self.f_b = target_logit(fb, target)
        self.diff = {k: self.x[k] - self.b[k] for k in self.x}

    def __call__(self, points: dict[str, Tensor], idx: Tensor | None = None) -> Tensor:
        if not self.stems:
            # a forward with per-sample context (pass-through inputs) must know which samples these are
            return select_rows(self.forward_fn, idx)({m: points[f"raw:{m}"] for m in self.modalities})
        rows = next(iter(points.values())).shape[0]
        # a raw input that only the (injected) stem reads needs the right shape, not values
        raw = {m: points[f"raw:{m}"] if m not in self._fixed_raw else
               self._fixed_raw[m].expand((rows,) + tuple(self._fixed_raw[m].shape[1:]))
               for m in self.modalities}
        with _stems.injecting(self.stems, {m: points[f"stem:{m}"] for m in self.stems.stems}):
            return self.forward_fn(raw)

    def input_gradients(self, sums: dict[str, Tensor]) -> dict[str, Tensor]:
        """Map gradient sums in the walk's space back to the inputs (one stem backward per modality)."""
        grads = {m: sums[f"raw:{m}"] if f"raw:{m}" in sums else torch.zeros_like(self.inputs[m])
                 for m in self.modalities}
        for m, (z, raw) in self._graph.items():
            g = sums[f"stem:{m}"].reshape(z.shape).to(z.dtype)
            # a scalar objective rather than grad_outputs=g: the latter makes torch import sympy (0.4 s) once
            (back,) = torch.autograd.grad((z * g).sum(), raw)
            grads[m] = grads[m] + back
        return grads

    def completeness_sum(self, sums: dict[str, Tensor], idx: Tensor | None = None) -> Tensor:
        """``sum_i (x_i - x'_i) * G_i`` per sample: what IG's attributions add up to."""
        total = None
        for k, g in sums.items():
            d = self.diff[k] if idx is None else self.diff[k][idx]
            part = (d * g).flatten(1).sum(1)
            total = part if total is None else total + part
        assert total is not None
        return total


#: samples that stem and batch-norm discovery run on (two: the raw-input check needs rows that differ)
DISCOVERY_ROWS = 2


def _first_rows(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    return {m: v[:DISCOVERY_ROWS] for m, v in tensors.items()}


@register_estimator
class IntegratedGradients(Estimator):
    """Integrated Gradients (Sundararajan et al. 2017), all modalities in one pass.

    Args:
        steps: evaluation points on the straight path from the baseline (with ``tolerance``:
            the most any sample may use).
        method: quadrature, ``gausslegendre`` (default), ``riemann`` (= ``riemann_trapezoid``)
            or another of :data:`QUADRATURES`.
        baseline: ``zero|mean|noise|blur`` or a :class:`Baseline`.
        tolerance: refine each sample until its completeness error is below
            ``tolerance * |F(x) - F(x')|`` (``None``: fixed ``steps``).
        internal_batch_size: cap on interpolated samples per forward (default: from
            ``memory_budget_mb``).
        factor_stems: walk the path from the encoders' affine stems when ``forward`` is a module.
        fold_norms: fold eval-mode batch norms into the convolutions before them when ``forward``
            is a module (restored after each call).
        keep_maps: keep full attribution maps in the output (tests, plots).
        precision: ``fp32`` (default), ``tf32`` (CUDA) or ``bf16`` (the model's forward and backward
            under bfloat16 autocast, gradient sums in fp32), see :mod:`mmbalance.precision`.
        pool: a modality's score from its map: ``l1`` (sum of magnitudes, the default; grows with the
            number of input elements and counts contributions that cancel) or ``signed`` (plain sum; by
            completeness the modalities' sums add up to ``F(x) - F(x')``).

    Reports the per-sample completeness error ``|sum(IG) - (F(x) - F(x'))|`` (absolute and
    relative to ``|F(x) - F(x')|``) and ``output_change`` = ``|F(x) - F(x')|`` in ``extra``, and with
    ``tolerance`` the steps used.

    Example:
        >>> ig = IntegratedGradients(steps=16, method="riemann", tolerance=0.01)
        >>> ig.params()["tolerance"]
        0.01
    """

    name = "ig"

    def __init__(self, steps: int = 32, *, method: str = "gausslegendre", baseline: str | Baseline = "zero",
                 tolerance: float | None = None, internal_batch_size: int | None = None,
                 memory_budget_mb: float = 512.0, factor_stems: bool = True, fold_norms: bool = True,
                 keep_maps: bool = False, level: str = "input", precision: str = DEFAULT_PRECISION,
                 pool: str = "l1") -> None:
        if steps < 1:
            raise UsageError(f"--steps must be at least 1, got {steps}")
        if internal_batch_size is not None and internal_batch_size < 1:
            raise UsageError("internal batch size must be at least 1")
        if tolerance is not None and not 0 < tolerance < 1:
            raise UsageError(f"--tolerance must be between 0 and 1 (a fraction of |F(x) - F(baseline)|), "
                             f"got {tolerance}")
        self.method = resolve_quadrature(method)
        if tolerance is not None and self.method not in ("gausslegendre", "riemann_trapezoid"):
            raise UsageError(f"adaptive steps (--tolerance) need --quadrature riemann or gausslegendre, "
                             f"not {self.method}")
        quadrature(self.method, steps if tolerance is None else max(2, steps))  # validates
        self.steps = steps
        self.baseline = Baseline.coerce(baseline)
        self.tolerance = tolerance
        self.internal_batch_size = internal_batch_size
        self.memory_budget_mb = memory_budget_mb
        self.factor_stems = factor_stems
        self.fold_norms = fold_norms
        self.keep_maps = keep_maps
        self.level = level
        self.precision = check_precision(precision)
        self.pool = check_pool(pool)
        self._stem_cache: dict[tuple[Any, ...], tuple[Any, _stems.Stems]] = {}
        self._fold_cache: dict[tuple[Any, ...], tuple[Any, _folding.Folds]] = {}
        # on a device: measured bytes per interpolated sample, and the most rows that fit after an OOM
        self._sample_bytes: dict[tuple[Any, ...], float] = {}
        self._row_cap: dict[tuple[Any, ...], int] = {}
        self._warned_oom = False

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"steps": self.steps, "method": self.method, **self.baseline.params()}
        if self.tolerance is not None:
            out["tolerance"] = self.tolerance
        if self.precision != DEFAULT_PRECISION:
            out["precision"] = self.precision
        if self.pool != "l1":
            out["pool"] = self.pool
        return out

    def baselines(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The baseline of every modality (override for data-dependent baselines)."""
        return self.baseline(inputs)

    def steps_per_chunk(self, inputs: dict[str, Tensor], steps: int | None = None) -> int:
        """How many interpolation steps go through the model together.

        ``internal_batch_size`` when given; on a CPU, what fits ``memory_budget_mb`` at 32x the input
        bytes per interpolated sample; on a device, what fits a share of the free memory at the measured
        cost per sample (a cautious estimate before the first chunk), never above what fit after an OOM.
        """
        steps = self.steps if steps is None else steps
        first = next(iter(inputs.values()))
        batch = first.shape[0]
        cap = self._row_cap.get(self._shape_key(inputs)) if self._row_cap else None
        if cap is not None:  # an out-of-memory error showed what fits
            steps = max(1, min(steps, cap // max(1, batch)))
        if self.internal_batch_size is not None:
            return max(1, min(steps, self.internal_batch_size // max(1, batch)))
        input_bytes = sum(x[0].numel() * x.element_size() for x in inputs.values())
        free = _chunking.free_memory(first.device)
        if free is None:  # a CPU: the fixed budget (activations of a conv net: a few dozen times the input)
            fit = _chunking.fit_chunk(steps=steps, batch=batch, budget_bytes=self.memory_budget_mb * 2**20,
                                      per_sample_bytes=input_bytes * _chunking.ESTIMATE_FACTOR_CPU)
            return _chunking.equal_chunks(steps, fit)
        key = self._shape_key(inputs)
        per_sample = self._sample_bytes.get(key, input_bytes * _chunking.ESTIMATE_FACTOR_DEVICE)
        fit = _chunking.fit_chunk(steps=steps, batch=batch, budget_bytes=free * _chunking.DEVICE_FRACTION,
                                  per_sample_bytes=per_sample)
        return _chunking.equal_chunks(steps, fit)

    @staticmethod
    def _shape_key(inputs: dict[str, Tensor]) -> tuple[Any, ...]:
        return tuple((k, tuple(x.shape[1:]), x.dtype, str(x.device)) for k, x in inputs.items())

    # -- the math ----------------------------------------------------------------------------

    @staticmethod
    def _discovered(cache: dict[tuple[Any, ...], tuple[Any, Any]], enabled: bool, forward: ForwardFn,
                    inputs: dict[str, Tensor], discover: Callable[[], Any], empty: Any) -> Any:
        """What ``discover()`` finds for this module and input shapes, found once and cached."""
        if not enabled or not isinstance(forward, nn.Module):
            return empty
        key = (id(forward), tuple((m, tuple(x.shape[1:]), x.dtype, x.device) for m, x in inputs.items()))
        hit = cache.get(key)
        if hit is not None and hit[0] is forward:
            return hit[1]
        found = discover()
        cache[key] = (forward, found)
        return found

    # Discovery and its checks look at the model's structure, not at particular samples, so they run on
    # the first DISCOVERY_ROWS samples of the batch: far cheaper at large batches, as strict.

    def _folds_for(self, forward: ForwardFn, inputs: dict[str, Tensor],
                   baselines: dict[str, Tensor]) -> _folding.Folds:
        if not isinstance(forward, nn.Module):  # discovery hooks modules (_discovered checks it too)
            return _folding.Folds()
        x, b = _first_rows(inputs), _first_rows(baselines)
        return self._discovered(self._fold_cache, self.fold_norms, forward, inputs, lambda: _folding.verify_folds(
            _folding.find_folds(forward, forward, x), forward, x, b), _folding.Folds())

    def _stems_for(self, forward: ForwardFn, inputs: dict[str, Tensor],
                   baselines: dict[str, Tensor]) -> _stems.Stems:
        if not isinstance(forward, nn.Module):  # discovery hooks modules (_discovered checks it too)
            return _stems.Stems()
        x, b = _first_rows(inputs), _first_rows(baselines)
        return self._discovered(self._stem_cache, self.factor_stems, forward, inputs, lambda: _stems.verify_stems(
            _stems.find_stems(forward, forward, x), forward, x, b), _stems.Stems())

    def _attribute(self, forward: ForwardFn, inputs: dict[str, Tensor], target: Tensor, *,
                   labels: Tensor | None, baselines: dict[str, Tensor] | None) -> Attribution:
        inputs = {m: x.detach() for m, x in inputs.items()}
        baselines = baselines if baselines is not None else self.baselines(inputs)
        with precision_scope(self.precision, target.device), \
                _folding.folding(self._folds_for(forward, inputs, baselines)):
            return self._attribute_folded(forward, inputs, baselines, target)

    def _attribute_folded(self, forward: ForwardFn, inputs: dict[str, Tensor], baselines: dict[str, Tensor],
                          target: Tensor) -> Attribution:
        modalities = tuple(inputs)
        stems = self._stems_for(forward, inputs, baselines)
        try:
            walk = _Walk(forward, inputs, baselines, target, stems)
        except _chunking.OOM:
            walk = None  # raised below, outside the handler
        if walk is None:
            raise EstimatorError(f"out of memory on {target.device} evaluating the model on a batch of "
                                 f"{target.shape[0]} samples", hint="lower --batch-size")
        delta_f = walk.f_x - walk.f_b
        extra: dict[str, Tensor] = {}
        if self.tolerance is None:
            weights, alphas = quadrature(self.method, self.steps)
            sums = self._integrate(walk, target, alphas, weights, None)
        else:
            sums, used, converged = self._adaptive(walk, target, delta_f)
            extra["steps"] = used
            extra["converged"] = converged
        total = walk.completeness_sum(sums)
        grads = walk.input_gradients(sums)
        maps = {m: (inputs[m] - baselines[m]) * grads[m] for m in modalities}
        error = (total - delta_f).abs()
        extra["completeness_error"] = error.detach()
        extra["relative_completeness_error"] = (error / delta_f.abs().clamp_min(1e-12)).detach()
        extra["output_change"] = delta_f.abs().detach()  # |F(x) - F(baseline)|: the scale of the error
        return Attribution(modalities=modalities, scores=pooled_scores(maps, modalities, self.pool), extra=extra,
                           maps={m: v.detach() for m, v in maps.items()} if self.keep_maps else None)

    def _integrate(self, walk: _Walk, target: Tensor, alphas: list[float], weights: list[float],
                   idx: Tensor | None) -> dict[str, Tensor]:
        """``sum_k w_k dF_c/dp (b + a_k (x - b))`` for the samples ``idx`` (all when ``None``).

        Steps go through the model in chunks (:meth:`steps_per_chunk`). On a device the first chunk's
        peak memory re-plans the rest, and an out-of-memory error halves the chunk and retries it.
        """
        xs = walk.x if idx is None else {k: v[idx] for k, v in walk.x.items()}
        bs = walk.b if idx is None else {k: v[idx] for k, v in walk.b.items()}
        ds = walk.diff if idx is None else {k: v[idx] for k, v in walk.diff.items()}
        tgt = target if idx is None else target[idx]
        n = tgt.shape[0]
        sums = {k: torch.zeros_like(v) for k, v in xs.items()}
        chunk = self.steps_per_chunk(xs, len(alphas))
        dtype, device = next(iter(xs.values())).dtype, tgt.device
        on_device = self.internal_batch_size is None and _chunking.free_memory(device) is not None
        key = self._shape_key(xs)
        start = 0
        while start < len(alphas):
            k = min(chunk, len(alphas) - start)
            measure = on_device and key not in self._sample_bytes
            try:
                with _chunking.measuring_peak(device, measure) as peak:
                    grads = self._chunk(walk, tgt, idx, xs, bs, ds, alphas[start:start + k],
                                        weights[start:start + k], dtype, device)
            except _chunking.OOM:
                grads = None  # retried below, outside the handler, so the failed chunk's tensors are freed
            if grads is None:
                chunk = self._back_off(key, k, n, device)
                continue
            for name, g in grads.items():
                sums[name] += g
            start += k
            if measure and peak.get("bytes"):
                self._sample_bytes[key] = peak["bytes"] / (k * n)
                if start < len(alphas):  # re-plan the rest with the measured cost
                    chunk = self.steps_per_chunk(xs, len(alphas) - start)
        return sums

    def _chunk(self, walk: _Walk, tgt: Tensor, idx: Tensor | None, xs: dict[str, Tensor], bs: dict[str, Tensor],
               ds: dict[str, Tensor], alphas: list[float], weights: list[float], dtype: torch.dtype,
               device: torch.device) -> dict[str, Tensor]:
        """The weighted gradient sums of one chunk of steps (keys with no gradient are left out)."""
        n = tgt.shape[0]
        with torch.enable_grad():
            a = torch.tensor(alphas, dtype=dtype, device=device)
            w = torch.tensor(weights, dtype=dtype, device=device)
            k = a.shape[0]
            leaves, points = {}, {}
            for key in xs:
                # b + u + a (x - b) with u = 0: dObjective/du is the weighted gradient sum
                u = torch.zeros_like(bs[key]).requires_grad_(True)
                shape = (k,) + (1,) * bs[key].dim()
                path = torch.addcmul((bs[key] + u).unsqueeze(0), a.view(shape), ds[key].unsqueeze(0))
                points[key] = path.reshape((k * n,) + tuple(bs[key].shape[1:]))
                leaves[key] = u
            with forward_autocast(self.precision, device):
                logits = walk(points, idx)
            # the weighted sum is taken in the inputs' precision (fp32), whatever the forward ran in
            objective = (target_logit(logits, tgt).to(dtype) * w.repeat_interleave(n)).sum()
            if not objective.requires_grad:
                return {}  # the output depends on no input: every gradient is zero
            keys = list(leaves)
            grads = torch.autograd.grad(objective, [leaves[key] for key in keys], allow_unused=True)
        return {key: g for key, g in zip(keys, grads) if g is not None}

    def _back_off(self, key: tuple[Any, ...], k: int, n: int, device: torch.device) -> int:
        """After an out-of-memory error on ``k`` steps of ``n`` samples: half the chunk, or one clear error."""
        if device.type == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()
        if k <= 1:
            raise EstimatorError(f"out of memory on {device} with one Integrated Gradients step of {n} samples "
                                 f"per forward", hint="lower --batch-size, or free the device for this run")
        half = k // 2
        self._row_cap[key] = half * n
        if not self._warned_oom:
            self._warned_oom = True
            warnings.warn(f"Integrated Gradients ran out of memory on {device} with {k} steps x {n} samples per "
                          f"forward; retrying with smaller chunks ({half} steps)", MMBalanceWarning, stacklevel=2)
        return half

    def _adaptive(self, walk: _Walk, target: Tensor, delta_f: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """Refine per sample until the completeness error is within tolerance (or ``steps`` is reached)."""
        batch = target.shape[0]
        tol = float(self.tolerance)  # type: ignore[arg-type]
        floor = 1e-6 * (1.0 + walk.f_x.abs() + walk.f_b.abs())
        limit = (tol * delta_f.abs()).clamp_min(0) + floor
        used = torch.zeros(batch, dtype=torch.float64)
        converged = torch.zeros(batch, dtype=torch.float64)
        result = {k: torch.zeros_like(v) for k, v in walk.x.items()}
        everyone = torch.arange(batch, device=target.device)

        def settle(idx: Tensor, estimate: dict[str, Tensor], last: bool) -> Tensor:
            err = (walk.completeness_sum(estimate, idx) - delta_f[idx]).abs()
            ok = err <= limit[idx]
            done = ok | last
            for k in result:
                result[k][idx[done]] = estimate[k][done]
            converged[idx[ok].cpu()] = 1.0
            return idx[~done]

        if self.method == "riemann_trapezoid":
            # nested rule: S = sum of w_j g(j/n) with end weights 1/2; the estimate is S / n, and
            # doubling n only adds the new midpoints (weight 1) for the samples still refining
            n = min(ADAPTIVE_START, self.steps)
            alphas = [j / n for j in range(n + 1)]
            total = self._integrate(walk, target, alphas, [0.5] + [1.0] * (n - 1) + [0.5], None)
            used += n + 1
            active = everyone
            while active.numel():
                loc = {k: total[k][active] / n for k in total}
                active = settle(active, loc, 2 * n > self.steps)
                if not active.numel():
                    break
                fresh = self._integrate(walk, target, [(2 * j + 1) / (2 * n) for j in range(n)], [1.0] * n, active)
                for k in total:
                    total[k][active] += fresh[k]
                used[active.cpu()] += n
                n *= 2
        else:
            n = min(ADAPTIVE_START, self.steps)
            active = everyone
            while active.numel():
                weights, alphas = quadrature("gausslegendre", n)
                estimate = self._integrate(walk, target, alphas, weights, active)
                used[active.cpu()] += n
                last = 2 * n > self.steps
                active = settle(active, estimate, last)
                n *= 2
        return result, used, converged

