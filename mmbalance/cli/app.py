"""The typer application and the one place where errors become exit codes.

Command modules (``mmbalance/cli/cmd_*.py``) import :data:`app` and register their
commands with ``@app.command()``; :mod:`mmbalance.cli` imports them all.
"""

from __future__ import annotations

import contextlib
import errno
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
from typer._click.exceptions import ClickException, NoArgsIsHelpError
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

_STATE: dict[str, Any] = {"debug": False, "quiet": False, "signal": None, "verdict": None, "stdout_closed": False}
# Commands whose exit code is a verdict: it stands whatever happens to stdout.
_GATES = ("check",)
# errno values that mean stdout itself cannot take the output (closed, full, gone).
_STDOUT_ERRNOS = (errno.EBADF, errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EIO, errno.EPIPE,
                  errno.EROFS, errno.EFBIG)


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


def record_verdict(code: int) -> None:
    """A gate (``check``) records its exit code before printing, so a closed or full stdout cannot change it."""
    _STATE["verdict"] = int(code)


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
    _STATE["verdict"] = None
    disabled = logging.root.manager.disable
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            yield
        finally:
            logging.disable(disabled)


def _silence_stdout() -> None:
    """Stdout's reader went away (or it is full): send whatever is still buffered for it to /dev/null."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file descriptor (tests): nothing to redirect
        pass


def _plug_closed_descriptors() -> None:
    """Started with stdin, stdout or stderr closed (``>&-``): put /dev/null there, and remember stdout was closed.

    Otherwise the next file mmbalance opens (a lock, a checkpoint) would get descriptor 1, and
    anything printed would land in it.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        try:
            devnull = os.open(os.devnull, os.O_RDWR)
        except OSError:
            continue
        if devnull != fd:
            os.dup2(devnull, fd)
            os.close(devnull)
        if fd == 1:
            _STATE["stdout_closed"] = True
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - lives as long as the process
        elif fd == 2:
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115


def _stdout_broken() -> bool:
    """Whether stdout cannot take output: closed, or its buffered output cannot be flushed (full device)."""
    if sys.stdout is None:
        return True
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        return True
    return False


def _usage_line(err: ClickException) -> str:
    """A click/typer usage error as one line naming the fix (``--help`` of the command)."""
    ctx = getattr(err, "ctx", None)
    where = f"{ctx.command_path} --help" if ctx is not None else "mmbalance --help"
    return f"{one_line(err.format_message())} (see {where})"


class _MMBalanceGroup(TyperGroup):
    """The one place where errors become exit codes (see the module docstring and docs/getting-started.md).

    MMBalanceError: one red line, exit 2 (with --debug the traceback first, still exit 2). A usage
    error (bad option value, unknown option): one line naming ``--help``, exit 2, never the panel.
    Ctrl-C: 130, SIGTERM: 143. Stdout's reader gone (``| head -1``): quiet exit 0, outputs already
    written. Stdout closed (``>&-``) or full (``/dev/full``): one line, exit 2. A gate (``check``)
    always exits with its verdict, whatever happens to stdout. A plug-in calling ``sys.exit()``:
    one line, exit 2. Anything else is a bug: one line, exit 3.
    """

    def make_context(self, info_name: str | None, args: list[str], parent: ClickContext | None = None,
                     **extra: Any) -> ClickContext:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except NoArgsIsHelpError:
            raise
        except ClickException as err:
            _report_error(_escape(_usage_line(err)))
            raise typer.Exit(EXIT_ERROR) from None

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            with _command_scope():
                result = super().invoke(ctx)
                if _STATE["stdout_closed"] or _stdout_broken():
                    raise OSError(errno.EBADF, "stdout is closed")
                return result
        except typer.Exit as done:
            if _STATE["verdict"] is not None and done.exit_code in (EXIT_OK, EXIT_CHECK_FAILED):
                if _stdout_broken():
                    _silence_stdout()
                raise typer.Exit(_STATE["verdict"]) from None
            if done.exit_code == EXIT_OK and (_STATE["stdout_closed"] or _stdout_broken()):
                return self._stdout_failed(OSError(errno.EBADF, "stdout is closed"))
            raise
        except NoArgsIsHelpError:
            raise
        except ClickException as err:
            _report_error(_escape(_usage_line(err)))
            raise typer.Exit(EXIT_ERROR) from None
        except (typer.Abort, typer.exceptions.TyperException):
            raise  # typer's own control flow
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
            verdict = _STATE["verdict"]
            raise typer.Exit(EXIT_OK if verdict is None else verdict) from None
        except OSError as err:
            # a write to a named file is an OutputError (mmbalance/io.py); a bare one is stdout's
            if err.errno in _STDOUT_ERRNOS and (_STATE["stdout_closed"] or _stdout_broken() or err.filename is None):
                return self._stdout_failed(err)
            _debug_traceback()
            _report_error(_escape(f"internal error: {type(err).__name__}: {err} "
                                  "(rerun with --debug for the traceback and please report it)"))
            raise typer.Exit(EXIT_INTERNAL) from None
        except SystemExit as err:  # a plug-in's forward or factory called sys.exit(): never a silent success
            _debug_traceback()
            _report_error(_escape(f"the model code called sys.exit({err.code!r}) while mmbalance was running it; "
                                  "nothing was written (a plug-in must raise an exception, not exit)"))
            raise typer.Exit(EXIT_ERROR) from None
        except Exception as err:  # noqa: BLE001 - last line of defence, no tracebacks for users
            _debug_traceback()
            _report_error(_escape(f"internal error: {type(err).__name__}: {err} "
                                  "(rerun with --debug for the traceback and please report it)"))
            raise typer.Exit(EXIT_INTERNAL) from None


    def _stdout_failed(self, err: OSError) -> Any:
        """Stdout closed or full: one line, exit 2; a gate still exits with its verdict."""
        _silence_stdout()
        what = "closed" if _STATE["stdout_closed"] or err.errno == errno.EBADF else \
            f"not writable ({err.strerror or err})"
        _report_error(_escape(f"standard output is {what}; the results printed there were lost "
                              "(files named with --out are written)") + " (redirect stdout to a file or /dev/null)")
        verdict = _STATE["verdict"]
        raise typer.Exit(EXIT_ERROR if verdict is None else verdict)


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
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version_callback,
                                                    is_eager=True, help="Print the version.")] = None,
) -> None:
    """mmbalance: does your model actually use every modality?"""
    _STATE["debug"] = debug
    if _STATE["stdout_closed"] and ctx.invoked_subcommand not in _GATES:
        _report_error("standard output is closed, so the results would be lost; nothing was run "
                      "(redirect stdout to a file or /dev/null instead of closing it)")
        raise typer.Exit(EXIT_ERROR)
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
    _plug_closed_descriptors()
    try:
        app(args=argv if argv is not None else sys.argv[1:], prog_name="mmbalance")
    finally:
        try:
            if sys.stdout is not None:
                sys.stdout.flush()
        except (OSError, ValueError):
            _silence_stdout()
