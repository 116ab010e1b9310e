"""The resumable training state of a run directory (``resume.pt``) and how to read it back.

``best.pt`` and ``last.pt`` stay plain state dicts for inference; ``resume.pt`` holds
everything else a run needs to go on exactly where it stopped: the model, optimizer(s),
scheduler(s) and gradient scaler, the random generators, the epoch reached, the best
epoch so far and the metric rows. It is rewritten atomically after every epoch (and
before the first), so an interrupted run continues from its last complete epoch.

Example:
    >>> config, state = load_resume("runs/plain")  # doctest: +SKIP
    >>> state["epoch"]  # doctest: +SKIP
    3
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, TrainingError, UnsafeCheckpointError
from ..io import atomic_torch_save
from ..models import requires_code
from ..models.checkpoint import read_torch_file
from .config import TrainConfig

__all__ = ["RESUME_FILE", "RESUME_FORMAT", "RUN_FILE", "capture_rng", "load_resume", "restore_rng",
           "save_resume"]

RESUME_FILE = "resume.pt"
RUN_FILE = "run.json"
RESUME_FORMAT = "mmbalance.resume/1"


def capture_rng() -> dict[str, Any]:
    """The state of Python's and torch's generators (CPU, and CUDA when initialized)."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put back generator states saved by :func:`capture_rng`."""
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


def save_resume(run_dir: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` (plus the format tag) to ``run_dir/resume.pt`` atomically."""
    path = Path(run_dir) / RESUME_FILE
    payload = dict(state, format=RESUME_FORMAT)
    atomic_torch_save(path, payload)
    return path


def load_resume(run_dir: str | os.PathLike[str], *, trust: bool = False) -> tuple[TrainConfig, dict[str, Any]]:
    """The saved configuration and training state of ``run_dir``.

    A run directory is untrusted input, like a checkpoint: ``run.json`` is plain JSON,
    ``resume.pt`` is read with the checkpoint loader (``weights_only``), and a model spec
    that would import code (``module:factory``, ``file.py:factory``) is refused with
    :class:`CheckpointError` unless ``trust`` (``--trust-checkpoint``), before anything is
    imported or called.

    Raises :class:`TrainingError` (exit code 2) when the directory holds no run, no
    ``resume.pt``, an unreadable one, or one whose configuration disagrees with ``run.json``.
    """
    d = Path(run_dir)
    hint = "give the --out directory of an earlier `mmbalance finetune` run"
    if not d.is_dir():
        raise TrainingError(f"cannot resume {d}: no such directory", hint=hint)
    run_file, state_file = d / RUN_FILE, d / RESUME_FILE
    if not run_file.is_file():
        raise TrainingError(f"cannot resume {d}: it holds no run ({RUN_FILE} is missing)", hint=hint)
    try:
        run = json.loads(run_file.read_text(encoding="utf-8"))
        saved = run["config"]
        config = TrainConfig.from_dict(saved)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise TrainingError(f"cannot resume {d}: {RUN_FILE} is unreadable or not from mmbalance ({err})",
                            hint=hint) from None
    check_resumable_model(config.model, where=run_file, trust=trust)
    if not state_file.is_file():
        raise TrainingError(f"cannot resume {d}: {RESUME_FILE} is missing",
                            hint="the run was made by an older mmbalance or its training state was deleted")
    try:
        state = read_torch_file(state_file)  # never trusted: a training state is tensors and plain data
    except UnsafeCheckpointError as err:
        raise TrainingError(f"cannot resume {d}: {RESUME_FILE} is refused as unsafe ({err.message})",
                            hint="start a new run") from None
    except CheckpointError as err:
        raise TrainingError(f"cannot resume {d}: {RESUME_FILE} is unreadable ({err.message})",
                            hint="it may be truncated; start a new run") from None
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        raise TrainingError(f"cannot resume {d}: {RESUME_FILE} is not a {RESUME_FORMAT} training state",
                            hint="start a new run")
    if not _same_config(state.get("config"), config):
        raise TrainingError(f"cannot resume {d}: {RESUME_FILE} belongs to another configuration than {RUN_FILE}",
                            hint="the directory mixes two runs; start a new run in an empty directory")
    return config, state


def check_resumable_model(spec: Any, *, where: str | os.PathLike[str], trust: bool = False) -> None:
    """Refuse a saved model spec that would import code, unless ``trust``; imports and calls nothing.

    A registered (or installed entry-point) name is fine; ``module:factory`` and
    ``file.py:factory`` name code that resuming would import and call.

    Example:
        >>> check_resumable_model("av-tiny", where="run.json")
        >>> check_resumable_model("subprocess:getoutput", where="run.json")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        mmbalance.errors.CheckpointError: run.json names the model 'subprocess:getoutput' ...
    """
    if not isinstance(spec, str) or not spec.strip():
        raise TrainingError(f"{where} names no model ({spec!r})", hint="start a new run")
    if trust or not requires_code(spec):
        return
    raise CheckpointError(
        f"{where} names the model {spec!r}, which is not a registered model: resuming would import and call it",
        hint="pass --trust-checkpoint with --resume only if you trust this run directory: it can run "
             "arbitrary code")


# Settings a resumed run may change without becoming another run.
_MOVABLE = ("device", "out")


def _same_config(saved: Any, config: TrainConfig) -> bool:
    if not isinstance(saved, dict):
        return False
    try:
        other = TrainConfig.from_dict(saved)
    except TypeError:
        return False
    a, b = other.to_dict(), config.to_dict()
    for key in _MOVABLE:
        a.pop(key, None)
        b.pop(key, None)
    return a == b
