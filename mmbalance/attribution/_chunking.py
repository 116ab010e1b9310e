"""How many interpolated samples go through the model at once, and backing off when memory runs out.

On a CPU the chunk comes from a fixed memory budget (``memory_budget_mb``, 512 MB by default).
On an accelerator it comes from the memory that is free on the device (:func:`free_memory`) and
the cost of one interpolated sample: a conservative estimate until a chunk has run, then the
peak memory that chunk measured (:func:`peak_memory`). Both probes are module-level functions so
that tests can lower "the memory the chunker believes is free".

Example:
    >>> fit_chunk(steps=32, batch=8, budget_bytes=2**20, per_sample_bytes=2**14)
    8
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

__all__ = ["DEVICE_FRACTION", "ESTIMATE_FACTOR_CPU", "ESTIMATE_FACTOR_DEVICE", "OOM", "equal_chunks", "fit_chunk",
           "free_memory", "measuring_peak", "peak_memory"]

#: activations per interpolated sample, as a multiple of its input bytes, before anything was measured
ESTIMATE_FACTOR_CPU = 32
#: on a device the first chunk is planned more cautiously (ResNet-18 at 224x224 measured about 65x)
ESTIMATE_FACTOR_DEVICE = 128
#: the share of the free device memory one chunk may use (the rest: allocator slack, other tensors)
DEVICE_FRACTION = 0.7
#: the error an allocation that does not fit raises (CUDA and other accelerators)
OOM: type[BaseException] = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def free_memory(device: torch.device) -> int | None:
    """Bytes free on ``device`` (``torch.cuda.mem_get_info`` plus what torch has cached), ``None`` on a CPU (use the fixed budget).

    Example:
        >>> free_memory(torch.device("cpu")) is None
        True
    """
    if device.type == "cuda" and torch.cuda.is_available():
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)  # reusable by torch
        return int(torch.cuda.mem_get_info(device)[0]) + max(0, int(cached))
    return None


def peak_memory(device: torch.device) -> int | None:
    """Peak bytes allocated on ``device`` since the last reset, ``None`` where it is not tracked."""
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated(device))
    return None


@contextlib.contextmanager
def measuring_peak(device: torch.device, enabled: bool = True) -> Iterator[dict[str, int]]:
    """Measure the extra peak memory of the body: ``out["bytes"]`` after it, absent where untracked."""
    out: dict[str, int] = {}
    if enabled and device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats(device)
        before = int(torch.cuda.memory_allocated(device))
        yield out
        peak = peak_memory(device)
        if peak is not None:
            out["bytes"] = max(0, peak - before)
        return
    yield out


def fit_chunk(*, steps: int, batch: int, budget_bytes: float, per_sample_bytes: float) -> int:
    """The most steps (each ``batch`` interpolated samples) that fit in ``budget_bytes``, at least 1."""
    return max(1, min(steps, int(budget_bytes // max(1.0, per_sample_bytes * batch))))


def equal_chunks(steps: int, fit: int) -> int:
    """Split ``steps`` into equal chunks of at most ``fit``: one shape for the whole pass.

    Example:
        >>> equal_chunks(32, 20)
        16
    """
    chunks = -(-steps // max(1, fit))
    return -(-steps // chunks)
