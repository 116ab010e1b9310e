"""Fold eval-mode batch norms into the convolutions that feed them, while an attribution runs.

In eval mode a batch norm is a per-channel affine map, so ``bn(conv(x))`` is one convolution
with rescaled weights and a shifted bias. Every Integrated Gradients step runs the model
forward and backward; folding the norms removes their passes (on ResNet-style encoders,
a fifth to a quarter of the time per step) and leaves the result exact up to float rounding.

Nothing is trusted blindly, as with :mod:`._stems`: a pair is folded only when one hooked
forward pass shows the norm reading exactly the convolution's output, each called once and
no other module reading that output; then the folded model must give the plain model's
logits at the path's midpoint, or nothing is folded. Folding patches the modules'
``forward`` for the duration of a ``with`` block and restores them after, even on errors;
parameters and buffers are never modified.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU()).eval()
    >>> x = {"a": torch.randn(2, 1, 5, 5)}
    >>> f = lambda inp: net(inp["a"]).flatten(1)
    >>> folds = find_folds(net, f, x)
    >>> len(folds.pairs)
    1
    >>> with folding(folds):
    ...     torch.allclose(f(x), net(x["a"]).flatten(1), atol=1e-6)
    True
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.nn.utils.fusion import fuse_conv_bn_weights

from ._stems import _close, _recording, patched_forwards

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass
class Folds:
    """The (convolution, batch norm) pairs that may be folded for one model and input shapes."""

    pairs: list[tuple[_ConvNd, _BatchNorm]] = field(default_factory=list)
    _fused: dict[int, tuple[tuple[Any, ...], Tensor, Tensor]] = field(default_factory=dict, repr=False)

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def fused(self, conv: _ConvNd, norm: _BatchNorm) -> tuple[Tensor, Tensor]:
        """The folded weight and bias, recomputed only when a parameter or statistic changed."""
        tensors = (conv.weight, conv.bias, norm.running_mean, norm.running_var, norm.weight, norm.bias)
        key = tuple((id(t), t._version, t.device, t.dtype) if t is not None else None for t in tensors)
        hit = self._fused.get(id(conv))
        if hit is not None and hit[0] == key:
            return hit[1], hit[2]
        mean, var = norm.running_mean, norm.running_var
        assert mean is not None and var is not None  # find_folds pairs only norms with running statistics
        with torch.no_grad():
            w, b = fuse_conv_bn_weights(conv.weight, conv.bias, mean, var, norm.eps, norm.weight, norm.bias)
        weight, bias = w.detach(), b.detach()
        self._fused[id(conv)] = (key, weight, bias)
        return weight, bias


def _foldable_norm(module: nn.Module) -> bool:
    return (isinstance(module, _NORMS) and not module.training and module.track_running_stats
            and module.running_mean is not None and module.running_var is not None)


def find_folds(model: nn.Module, forward: Callable[[dict[str, Tensor]], Tensor],
               inputs: Mapping[str, Tensor]) -> Folds:
    """Find the foldable pairs by one hooked forward pass (verify them with :func:`verify_folds`)."""
    with torch.no_grad(), _recording(model) as calls:
        forward(dict(inputs))
    counts: dict[int, int] = {}
    for c in calls:
        counts[id(c.module)] = counts.get(id(c.module), 0) + 1
    readers: dict[int, int] = {}
    for c in calls:
        if c.input is not None:
            readers[id(c.input)] = readers.get(id(c.input), 0) + 1
    by_output = {id(c.output): c for c in calls if c.output is not None and isinstance(c.module, _CONVS)}
    pairs: list[tuple[_ConvNd, _BatchNorm]] = []
    for c in calls:
        if not _foldable_norm(c.module) or c.input is None or counts[id(c.module)] != 1:
            continue
        conv_call = by_output.get(id(c.input))
        if conv_call is None or conv_call.output is not c.input:
            continue
        conv, norm = conv_call.module, c.module
        if not isinstance(conv, _CONVS) or not isinstance(norm, _NORMS):  # always instances here: narrows types
            continue
        if (counts[id(conv)] != 1 or readers.get(id(c.input)) != 1 or c.input._version != conv_call.output_version
                or conv.out_channels != c.module.num_features or "forward" in vars(conv)
                or "forward" in vars(c.module)):
            continue
        pairs.append((conv, norm))
    return Folds(pairs)


@contextlib.contextmanager
def folding(folds: Folds) -> Iterator[None]:
    """Run each folded convolution with its norm's scale and shift built in, and its norm as identity."""
    with patched_forwards() as patch:
        for conv, norm in folds.pairs:
            weight, bias = folds.fused(conv, norm)
            patch(conv, _folded_conv(conv, weight, bias))
            patch(norm, _identity)
        yield


def _folded_conv(conv: Any, weight: Tensor, bias: Tensor) -> Callable[[Tensor], Tensor]:
    def forward(x: Tensor) -> Tensor:
        return conv._conv_forward(x, weight, bias)
    return forward


def _identity(x: Tensor) -> Tensor:
    return x


def verify_folds(folds: Folds, forward: Callable[[dict[str, Tensor]], Tensor], inputs: Mapping[str, Tensor],
                 baselines: Mapping[str, Tensor]) -> Folds:
    """Keep the folds only if the folded model gives the plain logits at the path's midpoint."""
    if not folds:
        return folds
    mid = {m: 0.5 * (inputs[m] + baselines[m]) for m in inputs}
    with torch.no_grad():
        plain = forward(dict(mid))
        try:
            with folding(folds):
                folded = forward(dict(mid))
        except Exception:  # noqa: BLE001 - any failure means the model does not fit the pattern
            return Folds()
    return folds if _close(folded, plain) else Folds()
