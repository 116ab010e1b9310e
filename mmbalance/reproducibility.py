"""``--deterministic``: bit-identical runs on CUDA (and CPU) for the same seed.

CUDA kernels such as atomics-based reductions and cuDNN's auto-tuned convolutions give
results that differ in the last digits from run to run. :func:`deterministic_mode` turns on
PyTorch's deterministic algorithms, cuDNN's deterministic mode without benchmarking, and
sets ``CUBLAS_WORKSPACE_CONFIG`` (read by cuBLAS when its first handle is created, so it
is set before any CUDA work); everything is restored on exit. An operation with no
deterministic CUDA kernel becomes one :class:`~mmbalance.errors.UsageError` naming it.

Example:
    >>> import torch
    >>> with deterministic_mode(True):
    ...     torch.are_deterministic_algorithms_enabled()
    True
    >>> torch.are_deterministic_algorithms_enabled()
    False
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Iterator

import torch

from .errors import UsageError

__all__ = ["CUBLAS_WORKSPACE", "deterministic_mode", "nondeterministic_operation"]

#: the cuBLAS workspace setting PyTorch documents for deterministic matrix products
CUBLAS_WORKSPACE = ":4096:8"

_NONDETERMINISTIC = re.compile(r"^(?P<op>\S+) does not have a deterministic implementation")


def nondeterministic_operation(err: BaseException) -> str | None:
    """The operation named by PyTorch's "does not have a deterministic implementation" error, else ``None``.

    Example:
        >>> nondeterministic_operation(RuntimeError("adaptive_max_pool2d_backward_cuda does not have a "
        ...                                         "deterministic implementation, but you set ..."))
        'adaptive_max_pool2d_backward_cuda'
    """
    if not isinstance(err, RuntimeError):
        return None
    match = _NONDETERMINISTIC.search(str(err).strip())
    return match.group("op") if match else None


@contextlib.contextmanager
def deterministic_mode(enabled: bool = True) -> Iterator[None]:
    """Run the body with deterministic algorithms (a no-op when ``enabled`` is false).

    Raises :class:`UsageError` naming the operation when one has no deterministic kernel.
    """
    if not enabled:
        yield
        return
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
                os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    if previous[4] is None:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        yield
    except RuntimeError as err:
        op = nondeterministic_operation(err)
        if op is None:
            raise
        raise UsageError(f"--deterministic: the operation {op} has no deterministic CUDA kernel",
                         hint="drop --deterministic (results then differ in the last digits between runs) "
                              "or change the model to avoid that operation") from None
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic = previous[2]
        torch.backends.cudnn.benchmark = previous[3]
        if previous[4] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
