"""``mmbalance models``: list registered and installed models."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from ._options import JsonOpt, QuietOpt
from .app import app, stderr_console, stdout_console


@app.command("models")
def models_command(
    pattern: Annotated[str, typer.Argument(help="fnmatch pattern (a plain word matches as a substring).")] = "*",
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """List models usable with [bold]--model[/]: built-ins and installed plug-ins."""
    from ..models import list_model_info  # lazy: torch only once a command runs

    infos = list_model_info(pattern)
    if not infos:  # on stderr, so `--json` still prints [] on stdout
        stderr_console().print(f"no models match {pattern!r}; `mmbalance models` lists them all", markup=False)
    if as_json:
        typer.echo(json.dumps([info.to_json() for info in infos], indent=2))
        return
    if quiet:  # the names only, one a line
        for info in infos:
            typer.echo(info.name)
        return
    if not infos:
        return
    table = Table("name", "source", "description", title=None, show_lines=False)
    for info in infos:
        table.add_row(info.name, info.source, info.description)
    stdout_console().print(table)
