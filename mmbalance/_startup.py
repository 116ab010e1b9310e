"""Ctrl-C while the command line is still starting up (importing torch) is one line, not a traceback.

Importing :mod:`mmbalance` takes a second or two (torch, matplotlib). The CLI's own handling of
Ctrl-C (see :mod:`mmbalance.cli.app`) can only be installed once those imports are done, so the
package calls :func:`guard_cli_startup` first thing: when, and only when, this process *is* the
``mmbalance`` command line, a Ctrl-C (or SIGTERM) before the command starts prints one line and
exits 130 (143). Importing mmbalance as a library changes no signal handler.

Stdlib only, so it is installed before anything heavy is imported.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

_EXIT_CODES: dict[int, int] = {int(signal.SIGINT): 130, int(signal.SIGTERM): 143}


def is_cli_process(orig_argv: list[str] | None = None) -> bool:
    """Whether this interpreter runs the ``mmbalance`` command line (console script or ``-m mmbalance``).

    ``orig_argv`` is the interpreter's own command line (default: :data:`sys.orig_argv`).

    Example:
        >>> is_cli_process(["/venv/bin/python", "-u", "-m", "mmbalance", "audit"])
        True
        >>> is_cli_process(["/venv/bin/python", "/venv/bin/mmbalance", "audit", "-m", "av-tiny"])
        True
        >>> is_cli_process(["/venv/bin/python", "-c", "import mmbalance"])
        False
    """
    args = list(orig_argv if orig_argv is not None else getattr(sys, "orig_argv", sys.argv))
    i = 1
    while i < len(args):
        arg = args[i]
        if arg == "-m":
            return i + 1 < len(args) and args[i + 1] in ("mmbalance", "mmbalance.cli")
        if arg in ("-X", "-W"):
            i += 2
            continue
        if arg.startswith("-") and arg != "-":
            if arg.startswith("-c"):
                return False
            i += 1
            continue
        return os.path.basename(arg) in ("mmbalance", "mmbalance.exe", "mmbalance-script.py")
    return False


def _quit_during_startup(signum: int, frame: FrameType | None) -> None:
    what = "interrupted" if signum == signal.SIGINT else "terminated"
    try:
        sys.stderr.write(f"mmbalance: {what} while starting up; nothing was run\n")
        sys.stderr.flush()
    finally:
        os._exit(_EXIT_CODES.get(signum, 130))


def guard_cli_startup() -> None:
    """In the CLI process only: until the CLI installs its own handlers, Ctrl-C/SIGTERM exit with one line."""
    if not is_cli_process():
        return
    try:
        for sig in _EXIT_CODES:
            signal.signal(sig, _quit_during_startup)
    except ValueError:  # not the main thread: leave the handlers alone
        pass
