"""Device selection shared by every command: ``auto`` picks CUDA when available."""

from __future__ import annotations

import torch

from .errors import UsageError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``auto|cpu|cuda[:N]`` into a :class:`torch.device`.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError("--device cuda was asked for but no CUDA device is available",
                             hint="use --device cpu or --device auto")
        return torch.device(name)
    raise UsageError(f"unknown device {name!r}", hint="use one of auto, cpu, cuda")
