"""Process-group helpers for ``torchrun``: one rank per process, rank-0 I/O, summed statistics.

Under ``torchrun --nproc_per_node N -m mmbalance ...`` every process sees ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in its environment. :func:`init_distributed` joins the
process group (gloo on CPU, nccl on CUDA) when ``WORLD_SIZE > 1`` and does nothing
otherwise, so the same code runs single-process and distributed.

Example:
    >>> info = init_distributed("cpu")        # a plain `python` process: nothing to join
    >>> info.world_size, info.is_main
    (1, True)
    >>> all_reduce_sum(torch.tensor([1.0, 2.0])).tolist()   # the identity in one process
    [1.0, 2.0]
    >>> list(ShardSampler(5, rank=1, world_size=2))
    [1, 3]
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from .errors import UsageError

__all__ = ["DistInfo", "ShardSampler", "all_reduce_max", "all_reduce_sum", "barrier", "dist_info",
           "env_world_size", "init_distributed", "is_distributed", "shutdown_distributed"]

# Whether this module created the process group (and so should destroy it).
_OWNED = {"group": False}


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and prints (rank 0)."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1


def env_world_size() -> int:
    """``WORLD_SIZE`` as set by torchrun (1 when unset)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def is_distributed() -> bool:
    """Whether a process group with more than one process is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def dist_info() -> DistInfo:
    """Rank, world size and local rank of the active process group (single process: 0, 1, 0)."""
    if not is_distributed():
        return DistInfo()
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local)


def init_distributed(device: str | torch.device = "cpu") -> DistInfo:
    """Join the torchrun process group when ``WORLD_SIZE > 1``; idempotent.

    The backend is nccl for a CUDA ``device`` and gloo otherwise; on CUDA each process
    uses GPU ``LOCAL_RANK``. Without torchrun this returns ``DistInfo()`` and does nothing.

    Example:
        >>> init_distributed("cpu").enabled
        False
    """
    if is_distributed():
        return dist_info()
    if env_world_size() <= 1:
        return DistInfo()
    if not dist.is_available():
        raise UsageError("this PyTorch build has no torch.distributed support", hint="run without torchrun")
    kind = torch.device(device).type
    backend = "nccl" if kind == "cuda" else "gloo"
    if kind == "cuda":
        torch.cuda.set_device(_local_gpu())
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
        _OWNED["group"] = True
        # A gloo group still alive at interpreter exit aborts the process; leave it cleanly.
        atexit.register(shutdown_distributed)
    return dist_info()


def _local_gpu() -> int:
    """This process's GPU (``LOCAL_RANK``); a :class:`UsageError` when the node has fewer GPUs than processes."""
    try:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", str(local_rank + 1)))
    except ValueError:
        raise UsageError("LOCAL_RANK/LOCAL_WORLD_SIZE are not integers", hint="start the job with torchrun") from None
    visible = torch.cuda.device_count()
    if max(local_rank + 1, per_node) > visible:
        raise UsageError(f"torchrun started {per_node} processes on this node but only {visible} GPU(s) "
                         "are visible", hint=f"use torchrun --nproc_per_node {visible} or --device cpu"
                         if visible else "use --device cpu")
    return local_rank


def shutdown_distributed() -> None:
    """Destroy the process group if :func:`init_distributed` created it (after a last barrier)."""
    if _OWNED["group"] and dist.is_available() and dist.is_initialized():
        with contextlib.suppress(Exception):  # a peer that already failed must not mask the real error
            if dist.get_backend() == "gloo":  # bounded: a peer that died must not hang this one
                dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
            else:
                barrier()
        dist.destroy_process_group()
    _OWNED["group"] = False


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``tensor`` over all processes (a new tensor; the identity alone).

    Example:
        >>> all_reduce_sum(torch.ones(2)).tolist()
        [1.0, 1.0]
    """
    if not is_distributed():
        return tensor.clone()
    buf = tensor.detach().to(_comm_device(), copy=True)
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf.to(tensor.device)


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise maximum of ``tensor`` over all processes."""
    if not is_distributed():
        return tensor.clone()
    buf = tensor.detach().to(_comm_device(), copy=True)
    dist.all_reduce(buf, op=dist.ReduceOp.MAX)
    return buf.to(tensor.device)


def barrier() -> None:
    """Wait for every process (no-op alone)."""
    if is_distributed():
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` from rank ``src`` on every process (returned unchanged alone)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world_size, ...`` below ``n``: disjoint shards that cover every sample once.

    Unlike :class:`torch.utils.data.DistributedSampler` it pads nothing, so sums reduced
    over the shards equal the single-process sums exactly (for evaluation and audits).
    """

    def __init__(self, n: int, *, rank: int | None = None, world_size: int | None = None) -> None:
        info = dist_info()
        self.n = int(n)
        self.rank = info.rank if rank is None else int(rank)
        self.world_size = info.world_size if world_size is None else int(world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))


def gather_objects(obj: Any) -> list[Any]:
    """``obj`` from every process, in rank order (``[obj]`` alone)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
