"""The command-line interface: a thin typer shell over the library.

Each subcommand lives in its own ``cmd_*.py`` module; importing it registers it on
:data:`app`.
"""

from __future__ import annotations

from .app import EXIT_CHECK_FAILED, EXIT_ERROR, EXIT_INTERNAL, EXIT_OK, app, main

# Importing a command module registers its commands on ``app``.
from . import cmd_models  # noqa: E402,F401
from . import cmd_data  # noqa: E402,F401
from . import cmd_audit  # noqa: E402,F401
from . import cmd_finetune  # noqa: E402,F401
from . import cmd_demo  # noqa: E402,F401
from . import cmd_check  # noqa: E402,F401
from . import cmd_report  # noqa: E402,F401
from . import cmd_media  # noqa: E402,F401
from . import cmd_bench  # noqa: E402,F401

__all__ = ["app", "main", "EXIT_OK", "EXIT_CHECK_FAILED", "EXIT_ERROR", "EXIT_INTERNAL"]
