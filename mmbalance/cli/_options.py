"""Option types shared by several commands (audit, check, finetune), defined once.

Use them as parameter annotations in a command::

    def audit(model: ModelOpt, data: DataOpt, checkpoint: CheckpointOpt = None, ...): ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import set_quiet

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Registered name, [bold]package.module:factory[/], [bold]file.py:factory[/] or [bold]hf:DIR[/] (a Hugging Face model saved with save_pretrained).")]
ModelArgOpt = Annotated[Optional[list[str]], typer.Option("--model-arg", help="Constructor argument key=value (JSON values parsed); repeatable.")]
CheckpointOpt = Annotated[Optional[Path], typer.Option("--checkpoint", "-c", help="State-dict file (.pt .pth .ckpt .bin .safetensors).")]
TrustOpt = Annotated[bool, typer.Option("--trust-checkpoint", help="Allow full unpickling of the checkpoint. Only for files you trust: it can run code.")]
TrustRemoteOpt = Annotated[bool, typer.Option("--trust-remote-code", help="hf:DIR: allow the Python code its config.json names (auto_map) to run. Off by default; only for directories you trust.")]
OutputOpt = Annotated[Optional[str], typer.Option("--output", help="Which element of a tuple/list (index) or dict (key) output holds the logits.")]
DataOpt = Annotated[str, typer.Option("--data", "-d", help="Dataset: a .pt file, a split directory, synthetic:av-dominance, a media manifest .csv, a CREMA-D folder or class folders.")]
SplitOpt = Annotated[Optional[str], typer.Option("--split", help="Split of a split dataset (train, val, test).")]
ModalitiesOpt = Annotated[Optional[str], typer.Option("--modalities", help="Comma-separated modality names in model input order; [bold]video=visual[/] feeds the dataset's video to the model's visual input.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1, max=1_000_000, help="Samples per batch.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", callback=set_quiet, help="No progress bars, tables or library warnings; errors and mmbalance's own warnings still go to stderr.")]
DeterministicOpt = Annotated[bool, typer.Option("--deterministic", help="Deterministic algorithms (cuDNN without benchmarking, cuBLAS workspace): the same seed gives bit-identical results on CUDA; slower.")]
PassThroughOpt = Annotated[Optional[str], typer.Option("--pass-through", help="Inputs given to forward with each sample but never attributed, e.g. attention_mask,lengths (from the dataset's \"extra\" mapping or its inputs).")]
CallOpt = Annotated[str, typer.Option("--call", help="How forward is called: auto, positional, keyword, or dict (forward(batch) taking one mapping).")]
PadIdOpt = Annotated[Optional[int], typer.Option("--pad-id", min=0, help="Token id that replaces removed token ids (default: the model config's pad_token_id, else 0).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout instead of tables.")]


def split_list(value: str | None) -> list[str] | None:
    """``"a, b"`` → ``["a", "b"]``; ``None``/empty → ``None``."""
    if not value:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


def parse_output(value: str | None) -> str | int | None:
    """``--output 2`` → 2 (a tuple index), ``--output logits`` → "logits" (a dict key)."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value


def output_dir(value: str | Path) -> Path:
    """Parser of a directory-valued ``--out``: refuses an empty string (which would mean the current directory).

    Example:
        >>> output_dir("runs/plain")
        PosixPath('runs/plain')
    """
    if not str(value).strip():
        raise typer.BadParameter("must name a directory, not an empty string")
    return Path(value)
