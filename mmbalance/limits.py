"""Bounds on integer settings, checked where they enter the library, so a typo of 20 digits is one clear
error instead of an overflow deep inside torch.

Example:
    >>> check_int("--steps", 32, 1, MAX_STEPS)
    32
"""

from __future__ import annotations

from .errors import UsageError

MAX_SEED = 2**63 - 1  # torch.manual_seed takes a 64-bit integer
MAX_STEPS = 1_000_000  # integration steps, shuffles, bootstrap replicates per sample
MAX_EPOCHS = 1_000_000
MAX_SAMPLES = 100_000_000  # generated samples (synthetic data)
MAX_BATCH_SIZE = 1_000_000  # samples per batch
MAX_LIMIT = 2**62  # --limit: a cap on samples, any count a machine can hold
MAX_BENCH_SEEDS = 1_000  # seeds per method of one bench (each is a full training run)


def check_int(flag: str, value: int, low: int, high: int) -> int:
    """Return ``value`` if ``low <= value <= high``, else raise one :class:`UsageError` naming ``flag``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{flag} must be an integer, got {value!r}")
    if not low <= value <= high:
        shown = str(value) if len(str(value)) <= 30 else f"a {len(str(value))}-digit number"
        raise UsageError(f"{flag} must be between {low} and {high}, got {shown}")
    return value
