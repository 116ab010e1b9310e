"""Reading and writing model weights; the security boundary for untrusted files.

``.safetensors`` files are read with :mod:`safetensors`; everything else with
``torch.load(weights_only=True)``, which refuses pickled code. A file that needs full
unpickling is only loaded with ``trust=True`` (``--trust-checkpoint``), because unpickling
can run arbitrary code.

Wrappers are unwrapped (``{"model": sd}``, ``{"state_dict": sd}``,
``{"model_state_dict": sd}``, nested once more as Lightning does) and a ``module.``
prefix (DataParallel/DDP) or ``_orig_mod.`` prefix (``torch.compile``) is stripped.

Example:
    >>> import tempfile, pathlib
    >>> from torch import nn
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.safetensors"
    >>> save_state_dict(nn.Linear(2, 3), path)
    >>> sorted(load_state_dict(path))
    ['bias', 'weight']
    >>> load_checkpoint(nn.Linear(2, 3), path)
    CheckpointKeys(missing=[], unexpected=[])
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, UnsafeCheckpointError
from ..io import atomic_torch_save, atomic_write_with
from ._registry import one_line

__all__ = ["CheckpointKeys", "load_state_dict", "load_checkpoint", "read_torch_file", "save_state_dict",
           "unwrap_model"]

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
STRIPPED_PREFIXES = ("module.", "_orig_mod.")
_LIST_LIMIT = 10

_TRUST_HINT = ("pass --trust-checkpoint to load it with full unpickling, but only if you trust where the "
               "file came from: unpickling can run arbitrary code")


@dataclass(frozen=True)
class CheckpointKeys:
    """Keys that did not line up when loading with ``strict=False``."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def load_state_dict(path: str | os.PathLike[str], *, trust: bool = False) -> dict[str, Tensor]:
    """Read a state dict from ``path`` onto the CPU, unwrapping common checkpoint layouts.

    Args:
        path: ``.safetensors``, or a ``torch.save`` file (``.pt .pth .ckpt .bin`` or any name).
        trust: allow full unpickling (``torch.load(weights_only=False)``). Only for trusted files.

    Example:
        >>> sd = load_state_dict("runs/exp1/best.pt")  # doctest: +SKIP
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}", hint="check the --checkpoint path")
    if not p.is_file():
        raise CheckpointError(f"checkpoint is not a file: {p}", hint="give the weights file, not a directory")
    obj = _read_safetensors(p) if p.suffix.lower() == ".safetensors" else _read_torch(p, trust)
    return _strip_prefixes(_extract_state_dict(obj, p))


def read_torch_file(path: str | os.PathLike[str], *, trust: bool = False) -> Any:
    """``torch.load`` of any file with the checkpoint rules: ``weights_only`` unless ``trust``.

    Refused pickles name their globals; every failure is one :class:`CheckpointError` line.
    Run directories (``resume.pt``) are read with it too.

    Example:
        >>> read_torch_file("runs/plain/resume.pt")["epoch"]  # doctest: +SKIP
        3
    """
    return _read_torch(Path(path), trust)


def _read_safetensors(p: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(p), device="cpu")
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise CheckpointError(f"cannot read safetensors checkpoint {p}: {one_line(err)}",
                              hint="the file may be truncated or not a safetensors file") from err


def _read_torch(p: Path, trust: bool) -> Any:
    try:
        return torch.load(p, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as err:
        text = str(err)
        if not trust and ("Unsupported global" in text or "GLOBAL" in text):
            names = _unsafe_globals(p, text)
            found = f": {', '.join(names)}" if names else ""
            raise UnsafeCheckpointError(f"checkpoint {p} holds pickled Python objects that safe loading refuses{found}",
                                  hint=_TRUST_HINT) from None
        raise CheckpointError(f"cannot read checkpoint {p}: {_unpickler_detail(text) or one_line(err)}",
                              hint="the file may be truncated or not a PyTorch checkpoint") from err
    except (ImportError, AttributeError) as err:
        raise CheckpointError(f"cannot unpickle checkpoint {p}: {one_line(err)}",
                              hint="the code that defined the pickled objects must be importable") from err
    except Exception as err:  # noqa: BLE001 - zip, EOF, and format errors all mean "unreadable"
        raise CheckpointError(f"cannot read checkpoint {p}: {one_line(err)}",
                              hint="the file may be truncated or not a PyTorch checkpoint") from err


def _unpickler_detail(message: str) -> str:
    """The line after ``WeightsUnpickler error:`` in torch's long weights-only message, if any."""
    _, sep, rest = message.partition("WeightsUnpickler error:")
    if not sep:
        return ""
    for line in rest.splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""


def _unsafe_globals(p: Path, message: str) -> list[str]:
    """Every global the file would import; falls back to the one named in ``message``."""
    getter = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if getter is not None:
        try:
            names = list(getter(str(p)))
        except Exception:  # noqa: BLE001 - legacy (non-zip) files are not supported by it
            names = []
        if names:
            return sorted(set(names))
    return sorted(set(re.findall(r"GLOBAL ([\w.]+)", message)))


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def _extract_state_dict(obj: Any, p: Path, depth: int = 0) -> dict[str, Tensor]:
    if isinstance(obj, nn.Module):
        return dict(unwrap_model(obj).state_dict())
    if _is_state_dict(obj):
        return dict(obj)
    if isinstance(obj, Mapping) and depth < 2:
        for key in WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, (Mapping, nn.Module)):
                try:
                    return _extract_state_dict(inner, p, depth + 1)
                except CheckpointError:
                    continue
    if isinstance(obj, Mapping):
        keys = ", ".join(repr(k) for k in list(obj)[:_LIST_LIMIT])
        what = f"a dict with keys {keys}" + (", ..." if len(obj) > _LIST_LIMIT else "")
    else:
        what = f"a {type(obj).__name__}"
    raise CheckpointError(f"no state dict found in checkpoint {p}: it holds {what}",
                          hint="expected a state dict of tensors, or one under 'state_dict', "
                               "'model_state_dict' or 'model'")


def _strip_prefixes(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    changed = True
    while changed and sd:
        changed = False
        for prefix in STRIPPED_PREFIXES:
            if all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix):]: v for k, v in sd.items()}
                changed = True
    return sd


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module whose state dict is saved: strips ModelAdapter, DataParallel/DDP and torch.compile wrappers."""
    from .adapter import ModelAdapter

    wrappers = (nn.DataParallel, nn.parallel.DistributedDataParallel)
    while True:
        if isinstance(model, ModelAdapter):
            model = model.model
        elif isinstance(model, wrappers):
            model = model.module
        elif isinstance(orig := getattr(model, "_orig_mod", None), nn.Module):
            model = orig
        else:
            return model


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LIST_LIMIT])
    more = f", ... ({len(keys) - _LIST_LIMIT} more)" if len(keys) > _LIST_LIMIT else ""
    return f"{len(keys)}: {shown}{more}"


def _trained_with(path: str | os.PathLike[str]) -> str | None:
    """``--model X [--model-arg k=v ...]`` from the ``run.json`` of the finetune run that wrote ``path``, if any.

    Example:
        >>> _trained_with("no/such/run/best.pt") is None
        True
    """
    try:
        info = json.loads((Path(path).parent / "run.json").read_text(encoding="utf-8"))
        config = info["config"]
        built = info.get("built")  # the model the run built, where it is not --model (unimodal, late-fusion)
        if isinstance(built, dict):
            config = built
        model = config["model"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(model, str) or not model:
        return None
    args = config.get("model_args") or {}
    flags = "".join(f" --model-arg {_model_arg(k, v)}" for k, v in args.items()) if isinstance(args, dict) else ""
    return f"--model {model}{flags}"


def _model_arg(key: str, value: Any) -> str:
    """``key=value`` as ``--model-arg`` parses it; a dict or list value quoted for the shell."""
    text = f"{key}={json.dumps(value)}"
    return shlex.quote(text) if isinstance(value, (dict, list)) else text


def load_checkpoint(model: nn.Module, path: str | os.PathLike[str], *, trust: bool = False,
                    strict: bool = True) -> CheckpointKeys:
    """Load weights from ``path`` into ``model`` (wrappers are unwrapped first).

    Missing or unexpected keys raise :class:`CheckpointError` when ``strict``; parameters whose
    shapes differ always raise. Returns the keys that did not line up.

    Example:
        >>> from mmbalance.models import create_model
        >>> m = create_model("av-tiny", num_classes=10)
        >>> load_checkpoint(m, "runs/exp1/best.safetensors")  # doctest: +SKIP
        CheckpointKeys(missing=[], unexpected=[])
    """
    target = unwrap_model(model)
    sd = load_state_dict(path, trust=trust)
    expected = target.state_dict()
    sd = _maybe_strip_model_prefix(sd, expected)
    lazy = [k for k, v in expected.items() if isinstance(v, nn.parameter.UninitializedParameter) and k in sd]
    if lazy:  # layers sized by their first forward (a plug-in's unimodal classifier) take the checkpoint's sizes
        params: dict[str, Any] = dict(target.named_parameters())
        for k in lazy:
            params[k].materialize(sd[k].shape)
        expected = target.state_dict()

    mismatched = [f"{k} (checkpoint {tuple(v.shape)}, model {tuple(expected[k].shape)})"
                  for k, v in sd.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if mismatched or (strict and (missing or unexpected)):
        trained_with = _trained_with(path)
        if trained_with is not None:  # run.json beside it names the model: say that, with counts, not key names
            counts = ", ".join(f"{len(keys)} {what}" for what, keys in (
                ("missing keys", missing), ("unexpected keys", unexpected), ("keys of other shapes", mismatched))
                if keys)
            raise CheckpointError(f"checkpoint {path} does not match {type(target).__name__} ({counts}): this "
                                  f"checkpoint was trained with {trained_with} (run.json)",
                                  hint=f"pass {trained_with}")
        # All three counts at once: a checkpoint of another architecture shows as all three, not one.
        parts = [f"{what} {_listing(keys)}" for what, keys in (
            ("missing keys", missing), ("unexpected keys", unexpected), ("keys of other shapes", mismatched)) if keys]
        hint = ("is it for this model spec and these --model-arg values?" if len(missing) + len(unexpected)
                else "build the model with the arguments used in training (--model-arg, num_classes)")
        raise CheckpointError(f"checkpoint {path} does not match {type(target).__name__}: {'; '.join(parts)}",
                              hint=hint)
    try:
        target.load_state_dict(sd, strict=strict)
    except RuntimeError as err:
        raise CheckpointError(f"cannot load checkpoint {path}: {one_line(err)}") from err
    return CheckpointKeys(missing=missing, unexpected=unexpected)


def _maybe_strip_model_prefix(sd: dict[str, Tensor], expected: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Strip a leading ``model.`` (an adapter's or a LightningModule's) only when that matches more keys."""
    prefix = "model."
    if not sd or not all(k.startswith(prefix) for k in sd):
        return sd
    stripped = {k[len(prefix):]: v for k, v in sd.items()}
    if sum(k in expected for k in stripped) > sum(k in expected for k in sd):
        return stripped
    return sd


def save_state_dict(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Write ``model``'s weights to ``path`` atomically (``.safetensors`` or ``torch.save``).

    Wrappers (ModelAdapter, DataParallel/DDP, torch.compile) are unwrapped so the keys match
    the bare model.

    Example:
        >>> from torch import nn
        >>> import tempfile, pathlib
        >>> save_state_dict(nn.Linear(2, 2), pathlib.Path(tempfile.mkdtemp()) / "w.pt")
    """
    sd = {k: v.detach() for k, v in unwrap_model(model).state_dict().items()}
    if str(path).lower().endswith(".safetensors"):
        from safetensors.torch import save_file

        # Copies break storage sharing (tied weights), which safetensors refuses.
        flat = {k: v.to("cpu", copy=True).contiguous() for k, v in sd.items()}
        atomic_write_with(path, lambda tmp: save_file(flat, str(tmp)))
    else:
        atomic_torch_save(path, sd)
