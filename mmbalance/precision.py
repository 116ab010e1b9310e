"""``--precision fp32|tf32|bf16``: the arithmetic an audit's gradient passes run in.

* ``fp32`` (default): full single precision, exact to float rounding.
* ``tf32``: CUDA only. Matrix products and convolutions use TensorFloat-32 (10-bit mantissa inputs,
  fp32 accumulation) on Ampere and later GPUs; :func:`precision_scope` sets
  ``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32`` and restores them.
  Refused on a CPU (it would change nothing there).
* ``bf16``: the model's forward (and so its backward) runs under ``torch.autocast`` with bfloat16;
  works on CPU and CUDA. Estimators keep their sums in fp32 and report the completeness error.

Example:
    >>> import torch
    >>> check_precision("bf16", torch.device("cpu"))
    'bf16'
    >>> with precision_scope("fp32", torch.device("cpu")), forward_autocast("bf16", torch.device("cpu")):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.bfloat16
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from .errors import UsageError

__all__ = ["DEFAULT_PRECISION", "PRECISIONS", "check_precision", "forward_autocast", "precision_scope"]

PRECISIONS = ("fp32", "tf32", "bf16")
DEFAULT_PRECISION = "fp32"


def check_precision(precision: str, device: torch.device | None = None) -> str:
    """``precision`` if it is known (and, with ``device``, possible there); else one :class:`UsageError`."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown --precision {precision!r}", hint="use --precision fp32, tf32 or bf16")
    if precision == "tf32" and device is not None and device.type != "cuda":
        raise UsageError(f"--precision tf32 needs a CUDA device, this runs on {device.type}",
                         hint="use --precision fp32 or bf16 on a CPU")
    return precision


@contextlib.contextmanager
def precision_scope(precision: str, device: torch.device) -> Iterator[None]:
    """Global settings of ``precision`` for the body (TF32 switches), restored after it."""
    check_precision(precision, device)
    if precision != "tf32":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def forward_autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[object]:
    """Where the model's forward runs: under bfloat16 autocast for ``bf16``, unchanged otherwise."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
