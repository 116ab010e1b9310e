"""``mmbalance audit``: attribute a model's decisions to its modalities."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..audit import audit as run_audit
from ..models import parse_model_args
from ._options import (BatchSizeOpt, CheckpointOpt, DataOpt, DeviceOpt, JsonOpt, ModalitiesOpt, ModelArgOpt,
                       ModelOpt, OutputOpt, QuietOpt, SplitOpt, TrustOpt, parse_output, split_list)
from ._render import print_audit
from .app import app, stderr_console, stdout_console


@app.command("audit")
def audit_command(
    model: ModelOpt,
    data: DataOpt,
    checkpoint: CheckpointOpt = None,
    split: SplitOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the audit JSON here.")] = None,
    method: Annotated[str, typer.Option("--method", help="Comma-separated estimators.")] = "ig",
    steps: Annotated[int, typer.Option("--steps", min=1, help="Integrated Gradients steps.")] = 32,
    batch_size: BatchSizeOpt = 32,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Audit only the first N samples.")] = None,
    target: Annotated[str, typer.Option("--target", help="Attribute the predicted class (pred) or the label.")] = "pred",
    device: DeviceOpt = "auto",
    output: OutputOpt = None,
    modalities: ModalitiesOpt = None,
    model_arg: ModelArgOpt = None,
    trust_checkpoint: TrustOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Measure each modality's share of the model's decisions (Integrated Gradients by default).

    Example: [bold]mmbalance audit --model av-tiny --checkpoint run/best.pt --data synthetic:av-dominance --out audit.json[/]
    """
    result = run_audit(
        model, data, checkpoint=str(checkpoint) if checkpoint else None, trust_checkpoint=trust_checkpoint,
        model_args=parse_model_args(model_arg or []), split=split, modalities=split_list(modalities),
        output=parse_output(output), methods=split_list(method) or [], steps=steps, batch_size=batch_size,
        limit=limit, target=target, device=device, progress=not quiet and not as_json,
    )
    if out is not None:
        result.save(out)
    if as_json:
        typer.echo(result.to_json())
        return
    if not quiet:
        print_audit(result, stdout_console())
        if out is not None:
            stderr_console().print(f"wrote {out}")
