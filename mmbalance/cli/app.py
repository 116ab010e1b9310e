"""The typer application and the one place where errors become exit codes.

Command modules (``mmbalance/cli/cmd_*.py``) import :data:`app` and register their
commands with ``@app.command()``; :mod:`mmbalance.cli` imports them all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import traceback
import warnings
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, Iterator, Optional, TextIO

import typer
from rich.console import Console
from typer.core import TyperGroup, TyperOption

from .. import __version__
from ..allocator import tune_allocator
from ..errors import MMBalanceError, MMBalanceWarning

if TYPE_CHECKING:
    from typer._click.core import Context as ClickContext  # typer 0.29 bundles click

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_ERROR = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
EXIT_TERMINATED = 143  # SIGTERM (128 + SIGTERM)

_STATE: dict[str, Any] = {"debug": False, "quiet": False, "signal": None}


def no_color() -> bool:
    """``NO_COLOR`` set to any non-empty value: no styling at all (https://no-color.org)."""
    return bool(os.environ.get("NO_COLOR"))


class _Console(Console):
    """A rich console whose closed stdout is a BrokenPipeError for the CLI to handle (rich itself exits 1)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def stdout_console() -> Console:
    """A console for results; no styling when stdout is no terminal or NO_COLOR is set."""
    return _Console(highlight=False, soft_wrap=False, color_system=None if no_color() else "auto")


def stderr_console() -> Console:
    """A console for progress and error lines (no styling under NO_COLOR)."""
    return _Console(stderr=True, highlight=False, soft_wrap=True, color_system=None if no_color() else "auto")


def _report_error(message: str) -> None:
    stderr_console().print(f"[bold red]error:[/] {one_line(message)}", markup=True, highlight=False)


def one_line(text: str) -> str:
    """Control characters (newlines from a file name or a JSON key, say) shown escaped, so an error stays one line.

    Example:
        >>> print(one_line("a" + chr(30) + "b" + chr(10) + "c"))
        a\\x1eb\\nc
    """
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in text)


def interrupt_exit_code() -> int:
    """130 after Ctrl-C, 143 after SIGTERM (the signal that stopped the command)."""
    return EXIT_TERMINATED if _STATE["signal"] == signal.SIGTERM else EXIT_INTERRUPTED


def interrupt_reason() -> str:
    """``"interrupted (Ctrl-C)"`` or ``"terminated (SIGTERM)"``, for the one line an interrupted command prints."""
    return "terminated (SIGTERM)" if _STATE["signal"] == signal.SIGTERM else "interrupted (Ctrl-C)"


def _debug_traceback() -> None:
    """Under --debug (or MMBALANCE_DEBUG), the traceback of the exception being handled, on stderr."""
    if _STATE["debug"] or os.environ.get("MMBALANCE_DEBUG"):
        traceback.print_exc(file=sys.stderr)


def set_quiet(value: bool) -> bool:
    """Callback of ``--quiet``: third-party library warnings go to the log instead of stderr (unless --debug)."""
    _STATE["quiet"] = bool(value)
    if value and not _STATE["debug"]:
        logging.disable(logging.WARNING)  # matplotlib, torchaudio & co. log their warnings; keep errors
    return value


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    """Warnings as one yellow line; with --quiet only mmbalance's own (others go to the 'py.warnings' log)."""
    ours = issubclass(category, MMBalanceWarning)
    if not ours and _STATE["quiet"] and not _STATE["debug"]:
        logging.getLogger("py.warnings").debug("%s:%s: %s: %s", filename, lineno, category.__name__, message)
        return
    text = str(message) if ours else f"{category.__name__}: {message}"
    if _STATE["debug"]:
        text += f" ({filename}:{lineno})"
    stderr_console().print(f"[yellow]warning:[/] {_escape(text)}", markup=True, highlight=False)


@contextlib.contextmanager
def _command_scope() -> Iterator[None]:
    """Warning display and logging state for one command, restored afterwards (tests run many in one process)."""
    _STATE["quiet"] = False
    disabled = logging.root.manager.disable
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            yield
        finally:
            logging.disable(disabled)


def _silence_stdout() -> None:
    """Stdout's reader went away: send whatever is still buffered for it to /dev/null."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file descriptor (tests): nothing to redirect
        pass


class _MMBalanceGroup(TyperGroup):
    """The one place where errors become exit codes (see the module docstring and docs/getting-started.md).

    MMBalanceError: one red line, exit 2 (with --debug the traceback first, still exit 2). Ctrl-C: 130,
    SIGTERM: 143. A closed stdout (``| head -1``): quiet exit 0, outputs already written. Anything else
    is a bug: one line, exit 3.
    """

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            with _command_scope():
                result = super().invoke(ctx)
                sys.stdout.flush()  # a closed stdout shows here, while BrokenPipeError is still ours to handle
                return result
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
            raise  # typer's own control flow (exit codes, usage errors)
        except MMBalanceError as err:
            _debug_traceback()
            _report_error(_escape(str(err)))
            raise typer.Exit(EXIT_ERROR) from None
        except KeyboardInterrupt:
            _debug_traceback()
            _report_error(interrupt_reason())
            raise typer.Exit(interrupt_exit_code()) from None
        except BrokenPipeError:
            _silence_stdout()  # `mmbalance ... | head -1`: files are written before anything is printed
            raise typer.Exit(EXIT_OK) from None
        except Exception as err:  # noqa: BLE001 - last line of defence, no tracebacks for users
            _debug_traceback()
            _report_error(_escape(f"internal error: {type(err).__name__}: {err} "
                                  "(rerun with --debug for the traceback and please report it)"))
            raise typer.Exit(EXIT_INTERNAL) from None


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _flag_type(self: TyperOption, ctx: Any) -> str | None:
    """Help shows a flag (``--json``) as a flag: typer 0.29's rich panels print ``<bool>`` after it, which reads
    as if it took a value (``models --json true`` then lists the models matching ``true``: none)."""
    if self.is_flag or self.count:
        return None
    return _typed_option_display(self, ctx)


_typed_option_display = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]

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


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt, so every command stops the way Ctrl-C stops it
    (a finetune run keeps its last complete epoch); the exit code says which signal it was."""
    _STATE["signal"] = signum
    raise KeyboardInterrupt(signal.Signals(signum).name)


def install_signal_handlers() -> None:
    """Ctrl-C → exit 130, SIGTERM → exit 143, each with one line (replaces the start-up guard)."""
    try:
        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
    except ValueError:  # not the main thread
        pass


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    install_signal_handlers()
    try:
        app(args=argv if argv is not None else sys.argv[1:], prog_name="mmbalance")
    finally:
        try:
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            _silence_stdout()
