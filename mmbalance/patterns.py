"""Name patterns of ``mmbalance models PATTERN``: torch-free, so the CLI lists built-ins without importing torch."""

from __future__ import annotations

import fnmatch

__all__ = ["matches_pattern"]


def matches_pattern(name: str, pattern: str) -> bool:
    """Whether ``name`` matches ``pattern``: fnmatch, case-insensitive; a pattern without wildcards is a substring.

    Example:
        >>> matches_pattern("av-tiny", "TINY"), matches_pattern("av-tiny", "av-*"), matches_pattern("av-tiny", "hf")
        (True, True, False)
    """
    pattern = (pattern or "*").lower()
    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    return fnmatch.fnmatchcase(name.lower(), pattern)
