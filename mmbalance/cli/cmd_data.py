"""``mmbalance data ...``: dataset utilities. :data:`data_app` is shared; add commands to it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._defaults import SYNTHETIC_MAX_NUM_CLASSES, SYNTHETIC_NAME, SYNTHETIC_NUM_CLASSES, SYNTHETIC_SIZES
from ._options import QuietOpt, output_dir
from .app import app, stdout_console

data_app = typer.Typer(
    rich_markup_mode="rich",
    no_args_is_help=True,
    help="Create and prepare datasets in mmbalance's tensor format (see docs/dataset-format.md).",
)
app.add_typer(data_app, name="data")


@data_app.command("synth")
def synth_command(
    out: Annotated[Path, typer.Option("--out", "-o", parser=output_dir, help="Directory for train.pt, val.pt and test.pt.")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives identical files.")] = 0,
    n_train: Annotated[int, typer.Option("--n-train", min=1, help="Training samples.")] =
        SYNTHETIC_SIZES["train"],
    n_val: Annotated[int, typer.Option("--n-val", min=1, help="Validation samples.")] = SYNTHETIC_SIZES["val"],
    n_test: Annotated[int, typer.Option("--n-test", min=1, help="Test samples.")] = SYNTHETIC_SIZES["test"],
    num_classes: Annotated[int, typer.Option("--num-classes", min=2, max=SYNTHETIC_MAX_NUM_CLASSES,
                                             help="Number of classes (in pairs that audio cannot tell apart).")] =
        SYNTHETIC_NUM_CLASSES,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing split files in --out.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Write the built-in [bold]synthetic:av-dominance[/] data (audio easy but incomplete, visual slow but needed)."""
    from ..data import load_dataset, write_synthetic  # lazy: torch only once a command runs

    paths = write_synthetic(out, seed=seed, n_train=n_train, n_val=n_val, n_test=n_test,
                            num_classes=num_classes, overwrite=force)
    if quiet:
        return
    table = Table("split", "samples", "audio", "visual", "file", title=f"synthetic:{SYNTHETIC_NAME}, seed {seed}",
                  title_justify="left")
    for split, path in paths.items():
        ds = load_dataset(str(out), split=split)
        shapes = ds.sample_shapes()
        table.add_row(split, str(len(ds)), _shape(shapes["audio"]), _shape(shapes["visual"]), str(path))
    table.caption = f"classes: {', '.join(ds.classes)}"
    table.caption_justify = "left"
    stdout_console().print(table)


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(str(d) for d in shape)
