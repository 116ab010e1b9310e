"""Keep freed tensor memory mapped for reuse: glibc malloc settings for CPU tensor work.

By default glibc hands large freed blocks back to the operating system and maps fresh,
zeroed pages on the next allocation, so a process that allocates the same activations
batch after batch pays page faults every time. On the 2-core machines in
docs/performance.md that is a quarter to a third of an av-tiny audit's time. The CLI
calls :func:`tune_allocator` once at start-up; a library user may call it too (it changes
the whole process, so the library never does it on import).

Skipped, returning ``False``: off Linux/glibc; under a preloaded jemalloc or tcmalloc;
when the user set any ``MALLOC_*`` variable (their choice wins); or with
``MMBALANCE_MALLOC=default``. The cost: the process keeps up to
:data:`KEEP_FREED_BYTES` of freed memory instead of returning it, so its resident size
stays near its peak (the peak itself does not grow).

Example:
    >>> import os
    >>> os.environ["MMBALANCE_MALLOC"] = "default"
    >>> tune_allocator()
    False
    >>> del os.environ["MMBALANCE_MALLOC"]
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from typing import Any, Callable

OPT_OUT_VARIABLE = "MMBALANCE_MALLOC"
#: allocations below this come from the reusable heap, not fresh mappings (glibc's 64-bit maximum)
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
#: freed heap memory kept for reuse instead of being returned to the system
KEEP_FREED_BYTES = 1024 * 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)


def _load_libc() -> Any:
    return ctypes.CDLL("libc.so.6")


def tune_allocator(*, environ: dict[str, str] | None = None, load_libc: Callable[[], Any] = _load_libc) -> bool:
    """Apply the settings above to this process; ``True`` when they were applied."""
    env = os.environ if environ is None else environ
    if env.get(OPT_OUT_VARIABLE, "").strip().lower() in ("default", "off", "0", "no"):
        return False
    if any(name.startswith("MALLOC_") for name in env):
        return False
    preload = env.get("LD_PRELOAD", "")
    if "jemalloc" in preload or "tcmalloc" in preload or "mimalloc" in preload:
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = load_libc()
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
        return bool(ok and libc.mallopt(_M_TRIM_THRESHOLD, KEEP_FREED_BYTES) == 1)
    except (OSError, AttributeError):
        return False
