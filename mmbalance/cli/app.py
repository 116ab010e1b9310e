"""The typer application and the one place where errors become exit codes.

Command modules (``mmbalance/cli/cmd_*.py``) import :data:`app` and register their
commands with ``@app.command()``; :mod:`mmbalance.cli` imports them all.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from .. import __version__
from ..allocator import tune_allocator
from ..errors import MMBalanceError

if TYPE_CHECKING:
    from typer._click.core import Context as ClickContext  # typer 0.29 bundles click

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_ERROR = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130

_STATE: dict[str, Any] = {"debug": False}


def stdout_console() -> Console:
    """A console for results; rich drops colour when stdout is no terminal or NO_COLOR is set."""
    return Console(highlight=False, soft_wrap=False)


def stderr_console() -> Console:
    """A console for progress and error lines."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _report_error(message: str) -> None:
    stderr_console().print(f"[bold red]error:[/] {message}", markup=True, highlight=False)


class _MMBalanceGroup(TyperGroup):
    """Maps the :class:`MMBalanceError` family to one red line and exit code 2."""

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except MMBalanceError as err:
            if _STATE["debug"]:
                raise
            _report_error(_escape(str(err)))
            raise typer.Exit(EXIT_ERROR) from None
        except KeyboardInterrupt:
            if _STATE["debug"]:
                raise
            _report_error("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
            raise  # typer's own control flow (exit codes, usage errors)
        except Exception as err:  # noqa: BLE001 - last line of defence, no tracebacks for users
            if _STATE["debug"] or os.environ.get("MMBALANCE_DEBUG"):
                raise
            _report_error(_escape(f"internal error: {type(err).__name__}: {err} "
                                  "(rerun with --debug for the traceback and please report it)"))
            raise typer.Exit(EXIT_INTERNAL) from None


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


app = typer.Typer(
    cls=_MMBalanceGroup,
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Diagnose and fix modality dominance in multimodal PyTorch models.",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"mmbalance {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version_callback,
                                                    is_eager=True, help="Print the version.")] = None,
) -> None:
    """mmbalance: does your model actually use every modality?"""
    _STATE["debug"] = debug
    tune_allocator()  # reuse freed tensor memory (see mmbalance/allocator.py; MMBALANCE_MALLOC=default: off)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    app(args=argv if argv is not None else sys.argv[1:], prog_name="mmbalance")
