"""``mmbalance data prepare``: decode media once into the tensor format (see docs/bring-your-own-data.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ._media_options import SkipBadOpt, decode_values, with_decoding_options
from ._options import ModalitiesOpt, QuietOpt, split_list, output_dir
from .app import stderr_console, stdout_console
from .cmd_data import data_app

_SHOWN_SKIPPED = 20


@data_app.command("prepare")
@with_decoding_options
def prepare_command(
    source: Annotated[str, typer.Argument(help="A manifest .csv, a CREMA-D folder (OGM-GE layout) or root/<class>/<clip>.mp4 folders; ?frames=8&... allowed.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", parser=output_dir, help="Output folder: <split>.pt files, skipped.json, prepare.json and .cache/.")],
    workers: Annotated[int, typer.Option("--workers", "-j", min=1, help="Parallel decoding processes.")] = 1,
    split: Annotated[Optional[list[str]], typer.Option("--split", help="Prepare only this split (repeatable); default: all.")] = None,
    as_split: Annotated[str, typer.Option("--as-split", help="File name for a source without splits (<name>.pt).")] = "test",
    skip_bad: SkipBadOpt = False,
    modalities: ModalitiesOpt = None,
    drop_cache: Annotated[bool, typer.Option("--drop-cache", help="Delete the resumable cache (.cache/) after a successful run.")] = False,
    quiet: QuietOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
    *,
    decoding: dict[str, Any],
) -> None:
    """Decode video/audio clips once into [bold]<split>.pt[/] tensor files that audit and finetune read.

    Resumable: decoded clips are cached, so a re-run (after a crash, or with new clips) decodes only
    what is new. Bad clips stop the run with exit code 2, or with [bold]--skip-bad[/] are skipped and
    listed in skipped.json.

    Example: [bold]mmbalance data prepare clips.csv --out prepared --workers 4 --frames 8 --size 112 --skip-bad[/]
    """
    from ..media import DecodeOptions, prepare  # noqa: PLC0415  lazy: torch only once a command runs

    given = decode_values(**decoding)
    result = prepare(source, out, options=DecodeOptions(**given) if given else None, split=split or None,
                     unsplit_name=as_split, modalities=split_list(modalities), workers=workers,
                     skip_bad=skip_bad or None, keep_cache=not drop_cache, progress=not quiet and not as_json)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    if quiet:
        return
    skipped_by_split: dict[str, int] = {}
    for s in result.skipped:
        skipped_by_split[s.split or ""] = skipped_by_split.get(s.split or "", 0) + 1
    table = Table("split", "samples", "skipped", *result.modalities, "file", title=f"prepared {result.source}",
                  title_justify="left")
    for name, count in result.splits.items():
        shapes = ["×".join(str(d) for d in result.shapes[m]) for m in result.modalities]
        table.add_row(name, str(count), str(skipped_by_split.get(name, 0)), *shapes, escape(result.files[name]))
    table.caption = f"classes: {', '.join(result.classes)}"
    table.caption_justify = "left"
    stdout_console().print(table)
    err = stderr_console()
    rate = result.clips_per_second
    speed = f", {rate:.1f} clips/s with {result.workers} worker{'s' if result.workers > 1 else ''}" if rate else ""
    err.print(f"decoded {result.decoded} clips, {result.cached} from the cache, in {result.seconds:.1f} s{speed}")
    if result.skipped:
        log = escape(str(Path(result.out) / "skipped.json"))
        err.print(f"[yellow]skipped {len(result.skipped)} clips[/] (log: {log}):")
        for s in result.skipped[:_SHOWN_SKIPPED]:
            err.print(f"  {escape(s.describe())}")
        if len(result.skipped) > _SHOWN_SKIPPED:
            err.print(f"  ... and {len(result.skipped) - _SHOWN_SKIPPED} more")
