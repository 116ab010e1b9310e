"""Affine stems: pull a model's first linear layers out of the Integrated Gradients sum.

Most encoders start with an affine map ``P`` of their input (a convolution, then an
eval-mode batch norm) before the first nonlinearity. Along the straight IG path
``x(a) = b + a (x - b)`` an affine map gives ``P(x(a)) = P(b) + a (P(x) - P(b))`` and its
Jacobian ``J`` is constant, so

    sum_k w_k dF/dx (x(a_k)) = J^T  sum_k w_k dF/dz (z(a_k)),    z(a) = P(b) + a (P(x) - P(b)).

The path can therefore be walked from the stem's output ``z`` onward, and the stem's
backward pass (for a conv net often the most expensive one, since it produces gradients the
size of the input) is run once per batch instead of once per step. The result is exactly IG
(up to float rounding).

:func:`find_stems` discovers the stems by running the model once with forward hooks on its
leaf modules: for each modality, the first leaf module that reads only that modality's data,
and the chain of affine modules (convolutions, linear layers, eval-mode batch norms, average
pools, identity, flatten) that follows it, each consuming the previous one's output and
called once. Nothing is trusted blindly: the stem must be affine at the path's midpoint, and
the model walked from the stems must give the plain forward's logits there; otherwise the
modality is walked from its input as usual.
"""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import Tensor, nn

AFFINE_MODULES: tuple[type[nn.Module], ...] = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear,
    nn.Identity, nn.Flatten, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_WALK_LIMIT = 48


def is_affine(module: nn.Module) -> bool:
    """Whether ``module``'s forward is an affine map of its one input (in its current mode)."""
    if isinstance(module, AFFINE_MODULES):
        return True
    if isinstance(module, _BATCH_NORMS):
        return not module.training and module.running_mean is not None
    if isinstance(module, nn.Dropout):
        return not module.training
    return False


@dataclass
class Stem:
    """The affine chain that opens one modality's encoder.

    ``modules`` are in call order; the chain's output has ``per_sample`` rows per sample
    (frames of a per-frame encoder, say).
    """

    modality: str
    modules: list[nn.Module]
    per_sample: int = 1

    @property
    def last(self) -> nn.Module:
        return self.modules[-1]


@dataclass
class _Call:
    module: nn.Module
    input: Tensor | None
    input_version: int
    output: Tensor | None
    output_version: int = 0


@dataclass
class Stems:
    """Stems found for a model and input shapes (possibly none).

    ``raw_unused``: the model reads the stemmed modalities' raw inputs only through their stems
    (checked by :func:`verify_stems`), so the path need not be walked at the raw inputs too.
    """

    stems: dict[str, Stem] = field(default_factory=dict)
    raw_unused: bool = False

    def __bool__(self) -> bool:
        return bool(self.stems)


def _leaves(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if next(m.children(), None) is None]


@contextlib.contextmanager
def _recording(model: nn.Module) -> Iterator[list[_Call]]:
    calls: list[_Call] = []

    def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        inp = args[0] if len(args) == 1 and isinstance(args[0], Tensor) else None
        out = output if isinstance(output, Tensor) else None
        calls.append(_Call(module, inp, inp._version if inp is not None else 0, out,
                           out._version if out is not None else 0))

    handles = [m.register_forward_hook(hook) for m in _leaves(model)]
    try:
        yield calls
    finally:
        for h in handles:
            h.remove()


def _reaches(t: Tensor, leaves: Mapping[int, str], produced: set[Any]) -> set[str] | None:
    """Modalities whose raw input ``t`` was computed from, walking its autograd graph.

    ``None`` when ``t`` comes from another module's output or the walk is too long.
    """
    for m_id, name in leaves.items():
        if id(t) == m_id:
            return {name}
    if t.grad_fn is None:
        return set()
    found: set[str] = set()
    seen: set[Any] = set()  # the nodes themselves: holding them keeps their Python wrappers (and ids) alive
    queue: deque[Any] = deque([t.grad_fn])  # autograd Nodes; next_functions may hold None
    while queue:
        node = queue.popleft()
        if node is None or node in seen:
            continue
        seen.add(node)
        if len(seen) > _WALK_LIMIT or node in produced:
            return None
        var = getattr(node, "variable", None)
        if var is not None:
            if id(var) in leaves:
                found.add(leaves[id(var)])
            continue
        queue.extend(fn for fn, _ in node.next_functions)
    return found


def find_stems(model: nn.Module, forward: Callable[[dict[str, Tensor]], Tensor],
               inputs: Mapping[str, Tensor]) -> Stems:
    """Discover each modality's affine stem by one hooked forward pass (see the module docstring).

    The caller must verify the stems with :func:`verify_stems` before relying on them.
    """
    batch = next(iter(inputs.values())).shape[0]
    raw = {m: x.detach().requires_grad_(True) for m, x in inputs.items()}
    leaves = {id(x): m for m, x in raw.items()}
    with torch.enable_grad(), _recording(model) as calls:
        forward(raw)
    counts: dict[int, int] = {}
    for c in calls:
        counts[id(c.module)] = counts.get(id(c.module), 0) + 1
    produced = {c.output.grad_fn for c in calls if c.output is not None and c.output.grad_fn is not None}
    stems: dict[str, Stem] = {}
    claimed: set[int] = set()
    first_touch: dict[str, int] = {}
    for i, c in enumerate(calls):
        if c.input is None or not c.input.requires_grad:
            continue
        reach = _reaches(c.input, leaves, produced)
        if reach is None or len(reach) != 1:
            continue
        m = next(iter(reach))
        if m in first_touch:
            continue
        first_touch[m] = i
    for m, i in first_touch.items():
        chain: list[int] = []
        j = i
        while True:
            c = calls[j]
            if not is_affine(c.module) or counts[id(c.module)] != 1 or id(c.module) in claimed or c.output is None:
                break
            if c.input is not None and c.input._version != c.input_version:
                break
            chain.append(j)
            consumers = [k for k in range(j + 1, len(calls)) if calls[k].input is c.output]
            if len(consumers) != 1 or c.output._version != calls[consumers[0]].input_version:
                break
            j = consumers[0]
        if not chain:
            continue
        out = calls[chain[-1]].output
        if out is None or out.shape[0] % batch != 0 or out.dim() < 2:
            continue
        modules = [calls[k].module for k in chain]
        claimed.update(id(mod) for mod in modules)
        stems[m] = Stem(m, modules, per_sample=out.shape[0] // batch)
    return Stems(stems)


@contextlib.contextmanager
def capturing(stems: Stems, *, keep_graph: bool = False) -> Iterator[dict[str, Tensor]]:
    """Record each stem's output during a forward pass: ``{modality: (B, per_sample, ...)}``.

    The forward pass sees a copy, so in-place operations after the stem leave the record intact.
    """
    captured: dict[str, Tensor] = {}
    handles = []
    for m, stem in stems.stems.items():
        def hook(module: nn.Module, args: tuple[Any, ...], output: Tensor, m: str = m) -> Tensor:
            captured[m] = output if keep_graph else output.detach()
            return output.clone()
        handles.append(stem.last.register_forward_hook(hook))
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()


def per_sample_view(z: Tensor, batch: int) -> Tensor:
    """``(batch * r, ...)`` → ``(batch, r, ...)``: stem rows grouped by sample."""
    return z.reshape((batch, z.shape[0] // batch) + tuple(z.shape[1:]))


@contextlib.contextmanager
def injecting(stems: Stems, values: Mapping[str, Tensor]) -> Iterator[None]:
    """Make every stem return ``values[modality]`` (``(n, r, ...)``) without computing anything.

    The chain's earlier modules pass their input through untouched; its last module returns
    the given tensor, flattened back to ``(n * r, ...)`` rows.
    """
    with patched_forwards() as patch:
        for m, stem in stems.stems.items():
            value = values[m]
            flat = value.reshape((-1,) + tuple(value.shape[2:]))
            for module in stem.modules[:-1]:
                patch(module, _passthrough)
            patch(stem.last, constant_forward(flat))
        yield


@contextlib.contextmanager
def patched_forwards() -> Iterator[Callable[[nn.Module, Callable[..., Any]], None]]:
    """``patch(module, fn)`` replaces ``module.forward`` until the block ends; then every module gets
    back exactly what it had before (its class's forward, or an earlier patch), also on errors."""
    saved: list[tuple[nn.Module, Any]] = []

    def patch(module: nn.Module, fn: Callable[..., Any]) -> None:
        saved.append((module, vars(module).get("forward")))
        module.forward = fn  # type: ignore[method-assign]

    try:
        yield patch
    finally:
        for module, before in reversed(saved):
            if before is not None:
                module.forward = before  # type: ignore[method-assign]
            elif "forward" in vars(module):
                del module.forward


def _passthrough(x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    return x


def constant_forward(value: Tensor) -> Callable[..., Tensor]:
    """A ``forward`` that ignores its arguments and returns ``value``."""
    def forward(*args: Any, **kwargs: Any) -> Tensor:
        return value
    return forward


def verify_stems(stems: Stems, forward: Callable[[dict[str, Tensor]], Tensor], inputs: Mapping[str, Tensor],
                 baselines: Mapping[str, Tensor]) -> Stems:
    """Keep the stems only if they are affine and the stem-walked model matches the plain one.

    Checked at the path's midpoint: the stem outputs there must be the average of those at the
    two ends, and the model walked from averaged stem outputs must give the plain logits.
    """
    if not stems:
        return stems
    batch = next(iter(inputs.values())).shape[0]
    mid = {m: 0.5 * (inputs[m] + baselines[m]) for m in inputs}
    with torch.no_grad():
        with capturing(stems) as zx:
            forward(dict(inputs))
        with capturing(stems) as zb:
            forward(dict(baselines))
        with capturing(stems) as zm:
            plain = forward(mid)
        if set(zx) != set(stems.stems) or set(zm) != set(stems.stems) or set(zb) != set(stems.stems):
            return Stems()
        averaged = {m: per_sample_view(0.5 * (zx[m] + zb[m]), batch) for m in stems.stems}
        for m in stems.stems:
            if not _close(per_sample_view(zm[m], batch), averaged[m]):
                return Stems()
        try:
            with injecting(stems, averaged):
                walked = forward(mid)
        except Exception:  # noqa: BLE001 - any failure means the model does not fit the pattern
            return Stems()
        if not _close(walked, plain):
            return Stems()
        # Does anything but the stem read the raw input? Feed the first sample's values to every row
        # (exactly what the walk then feeds) and see.
        shuffled = {m: (mid[m][:1].expand_as(mid[m]) if m in stems.stems else mid[m]) for m in mid}
        try:
            with injecting(stems, averaged):
                blind = forward(shuffled)
            unused = batch > 1 and _close(blind, plain)
        except Exception:  # noqa: BLE001
            unused = False
    return Stems(stems.stems, raw_unused=unused)


def _close(a: Tensor, b: Tensor) -> bool:
    if a.shape != b.shape:
        return False
    scale = float(b.abs().max()) if b.numel() else 0.0
    tol = 1e-4 if b.dtype in (torch.float32, torch.float64) else 1e-2
    return bool((a - b).abs().max() <= tol * (1.0 + scale))
