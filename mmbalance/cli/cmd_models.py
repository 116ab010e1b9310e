"""``mmbalance models``: list registered and installed models."""

from __future__ import annotations

import importlib.metadata
import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from ..patterns import matches_pattern
from ._defaults import BUILTIN_MODELS, MODELS_ENTRY_POINT_GROUP
from ._options import JsonOpt, QuietOpt
from .app import app, stderr_console, stdout_console


@app.command("models")
def models_command(
    pattern: Annotated[str, typer.Argument(help="fnmatch pattern (a plain word matches as a substring).")] = "*",
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """List models usable with [bold]--model[/]: built-ins and installed plug-ins."""
    if _registry_must_list():  # it imports the plug-ins (and torch) to read their docstrings
        from ..models import list_model_info

        infos = [info.to_json() for info in list_model_info(pattern)]
    else:  # the built-ins only: listed from literals, in well under a second
        infos = _builtin_model_info(pattern)
    if not infos:  # on stderr, so `--json` still prints [] on stdout
        stderr_console().print(f"no models match {pattern!r}; `mmbalance models` lists them all", markup=False)
    if as_json:
        typer.echo(json.dumps(infos, indent=2))
        return
    if quiet:  # the names only, one a line
        for info in infos:
            typer.echo(info["name"])
        return
    if not infos:
        return
    table = Table("name", "source", "description", title=None, show_lines=False)
    for info in infos:
        table.add_row(info["name"], info["source"], info["description"])
    stdout_console().print(table)


def _registry_must_list() -> bool:
    """Whether the registry must list: a plug-in is installed in the ``mmbalance.models`` entry-point group, or the
    registry is imported already (this process may have registered models of its own, and torch is loaded anyway).
    """
    if "mmbalance.models" in sys.modules:
        return True
    try:
        return any(True for _ in importlib.metadata.entry_points(group=MODELS_ENTRY_POINT_GROUP))
    except Exception:  # noqa: BLE001 - a broken installed distribution: let the registry report it
        return True


def _builtin_model_info(pattern: str) -> list[dict[str, str]]:
    """``list_model_info(pattern)`` of the built-ins as JSON, from the literal table, without importing torch."""
    return [{"name": name, "source": "builtin", "description": description, "target": target}
            for name, description, target in BUILTIN_MODELS if matches_pattern(name, pattern)]

