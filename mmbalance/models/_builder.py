"""Building models: spec strings, factory calls, ``--model-arg`` parsing and :func:`load_model`.

A spec is one of:

* ``NAME``: a registered model or an installed ``mmbalance.models`` entry point;
* ``package.module:factory``: an importable factory (the current directory is tried too);
* ``path/to/file.py:factory``: a factory in a Python file, loaded under a unique module name.

``factory`` may be dotted (``module:Class.build``) and may be a class.

Example:
    >>> m = create_model("av-tiny", num_classes=3, model_args=parse_model_args(["fusion=sum"]))
    >>> type(m.fusion).__name__
    'SumFusion'
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import torch
from torch import nn

from ..device import resolve_device
from ..errors import MMBalanceError, ModelError, UsageError
from ..guards import allow_mode_switch
from ._registry import is_model, model_entrypoint, one_line
from .adapter import ModelAdapter, check_modalities, model_input_names
from .checkpoint import load_checkpoint
from .hf import hf_modalities, is_hf_spec, load_hf_model

__all__ = ["resolve_factory", "requires_code", "create_model", "parse_model_args", "load_model"]

_SPEC_HINT = "use a registered name (see `mmbalance models`), package.module:factory or path/to/file.py:factory"

# Files loaded from ``file.py:factory`` specs, by (resolved path, mtime) so a file is executed once.
_file_modules: dict[tuple[str, int], ModuleType] = {}


def _is_file_spec(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target or os.sep in target


@contextlib.contextmanager
def _on_sys_path(directory: str) -> Iterator[None]:
    """Put ``directory`` first on ``sys.path`` while importing (for the plug-in's own imports)."""
    added = directory not in sys.path
    if added:
        sys.path.insert(0, directory)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(directory)


def _load_file_module(spec: str, file_part: str) -> ModuleType:
    path = Path(file_part).expanduser()
    if not path.is_file():
        raise ModelError(f"model file not found: {path} (from spec {spec!r})", hint=_SPEC_HINT)
    resolved = path.resolve()
    key = (str(resolved), resolved.stat().st_mtime_ns)
    if key in _file_modules:
        return _file_modules[key]
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:10]
    stem = "".join(ch if ch.isalnum() else "_" for ch in resolved.stem)
    module_name = f"mmbalance_plugin_{stem}_{digest}"
    import_spec = importlib.util.spec_from_file_location(module_name, resolved)
    if import_spec is None or import_spec.loader is None:
        raise ModelError(f"cannot load {path} as a Python module (from spec {spec!r})", hint=_SPEC_HINT)
    module = importlib.util.module_from_spec(import_spec)
    sys.modules[module_name] = module  # dataclasses, pickling and typing look modules up here
    try:
        with _on_sys_path(str(resolved.parent)):
            import_spec.loader.exec_module(module)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - whatever the user's file raises, in one line
        sys.modules.pop(module_name, None)
        raise ModelError(f"cannot import model file {path}: {one_line(err)}",
                         hint="fix the error in that file or the packages it imports") from err
    _file_modules[key] = module
    return module


def _import_module(spec: str, module_part: str) -> ModuleType:
    try:
        try:
            return importlib.import_module(module_part)
        except ModuleNotFoundError as err:
            # The console script does not put the working directory on sys.path; try it too.
            cwd = os.getcwd()
            if err.name != module_part.split(".")[0] or cwd in sys.path or "" in sys.path:
                raise
            with _on_sys_path(cwd):
                return importlib.import_module(module_part)
    except ModuleNotFoundError as err:
        raise ModelError(f"cannot import module {module_part!r} for model spec {spec!r}: {one_line(err)}",
                         hint="install the package or add its directory to PYTHONPATH; "
                              "for a file use path/to/file.py:factory") from err
    except (Exception, SystemExit) as err:  # noqa: BLE001 - errors raised while importing the user's module
        raise ModelError(f"cannot import module {module_part!r} for model spec {spec!r}: {one_line(err)}",
                         hint="fix the error in that module or the packages it imports") from err


def _getattr_path(module: ModuleType, dotted: str, spec: str) -> Any:
    obj: Any = module
    for part in dotted.split("."):
        if not hasattr(obj, part):
            callables = sorted(n for n, v in vars(module).items()
                               if callable(v) and not n.startswith("_") and getattr(v, "__module__", None)
                               == module.__name__)
            raise ModelError(f"{spec!r}: {module.__name__ if obj is module else dotted} has no attribute {part!r}",
                             hint=f"callables defined there: {', '.join(callables) or 'none'}")
        obj = getattr(obj, part)
    return obj


def requires_code(spec: str) -> bool:
    """Whether building ``spec`` would import code outside the registry (``module:factory``, ``file.py:factory``).

    Imports and calls nothing; registered and installed entry-point names are not such code.

    Example:
        >>> requires_code("av-tiny"), requires_code("subprocess:getoutput"), requires_code("net.py:build")
        (False, True, True)
    """
    spec = spec.strip()
    return ":" in spec and not is_model(spec)


def resolve_factory(spec: str) -> Callable[..., Any]:
    """The factory a spec names (see the module docstring for the forms).

    Example:
        >>> resolve_factory("av-tiny").__name__
        'av_tiny'
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ModelError(f"empty model spec {spec!r}", hint=_SPEC_HINT)
    spec = spec.strip()
    if is_model(spec) or ":" not in spec:
        if _is_file_spec(spec) and not is_model(spec):
            raise ModelError(f"model spec {spec!r} names a file but no factory", hint="use path/to/file.py:factory")
        return model_entrypoint(spec)
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ModelError(f"malformed model spec {spec!r}", hint=_SPEC_HINT)
    module = _load_file_module(spec, target) if _is_file_spec(target) else _import_module(spec, target)
    fn = _getattr_path(module, attr, spec)
    if not callable(fn):
        raise ModelError(f"{spec!r} is a {type(fn).__name__}, not a callable factory", hint=_SPEC_HINT)
    return fn


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def _accepted(sig: inspect.Signature) -> str:
    names = []
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            names.append(f"**{p.name}")
        elif p.kind is p.VAR_POSITIONAL:
            continue
        else:
            names.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return ", ".join(names) or "none"


def create_model(spec: str, *, num_classes: int | None = None, model_args: dict[str, Any] | None = None) -> nn.Module:
    """Build the model a spec names.

    ``num_classes`` (usually the dataset's) is passed when the factory has a ``num_classes``
    parameter and ``model_args`` does not set it already.

    Example:
        >>> m = create_model("av-tiny", num_classes=5, model_args={"fusion": "film"})
        >>> m.num_classes
        5
    """
    if is_hf_spec(spec):
        if model_args:
            raise UsageError(f"model {spec!r}: --model-arg does not apply to a saved Hugging Face model",
                             hint="change its config.json instead")
        return load_hf_model(spec)
    fn = resolve_factory(spec)
    kwargs = dict(model_args or {})
    sig = _signature(fn)
    if sig is not None:
        if num_classes is not None and "num_classes" not in kwargs and "num_classes" in sig.parameters:
            kwargs["num_classes"] = num_classes
        try:
            sig.bind(**kwargs)
        except TypeError as err:
            missing_nc = "num_classes" in sig.parameters and "num_classes" not in kwargs
            hint = (f"it accepts: {_accepted(sig)}"
                    + ("; give --model-arg num_classes=N or a dataset" if missing_nc else ""))
            raise ModelError(f"model {spec!r} cannot take these arguments: {err}", hint=hint) from None
    try:
        model = fn(**kwargs)
    except MMBalanceError:
        raise
    except TypeError as err:
        hint = f"it accepts: {_accepted(sig)}" if sig is not None else "check --model-arg values"
        raise ModelError(f"building model {spec!r} failed: {one_line(err)}", hint=hint) from err
    except SystemExit as err:  # a factory that calls sys.exit() must not end the command with its code
        raise ModelError(f"building model {spec!r} failed: the factory called sys.exit({err.code!r})",
                         hint="a factory should raise an exception instead of exiting") from None
    except Exception as err:  # noqa: BLE001 - the factory is user code; report it in one line
        raise ModelError(f"building model {spec!r} failed: {one_line(err)}",
                         hint="check --model-arg values") from err
    if not isinstance(model, nn.Module):
        raise ModelError(f"model factory {spec!r} returned a {type(model).__name__}, not a torch.nn.Module",
                         hint="a factory must return the model")
    return model


def parse_model_args(items: Sequence[str] | None) -> dict[str, Any]:
    """Turn ``["key=value", ...]`` into a dict; values are JSON when they parse, else strings.

    Example:
        >>> parse_model_args(["fusion=sum", "embedding_dim=64", "dropout=0.1", "tags=[1, 2]"])
        {'fusion': 'sum', 'embedding_dim': 64, 'dropout': 0.1, 'tags': [1, 2]}
    """
    args: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UsageError(f"malformed --model-arg {item!r}", hint="write key=value, e.g. --model-arg fusion=sum")
        if key in args:
            raise UsageError(f"--model-arg {key} is given twice")
        try:
            args[key] = json.loads(raw)
        except ValueError:
            args[key] = raw
    return args


def load_model(spec: str, *, checkpoint: str | os.PathLike[str] | None = None, trust_checkpoint: bool = False,
               model_args: dict[str, Any] | None = None, num_classes: int | None = None,
               modalities: Sequence[str] | None = None, output: str | int | None = None, call: str = "auto",
               device: str | torch.device = "cpu", pass_through: Sequence[str] = ()) -> ModelAdapter:
    """Build a model, load its weights and wrap it in a :class:`ModelAdapter` in eval mode.

    Built-in models know their modalities; for plug-ins pass ``modalities`` (the order their
    ``forward`` takes). When both are known they are checked against each other. ``hf:DIR``
    loads a Hugging Face model saved with ``save_pretrained``; its modalities are those of
    ``modalities`` that its ``forward`` takes (see :mod:`mmbalance.models.hf`).
    ``pass_through`` names inputs given to ``forward`` but never attributed.

    Example:
        >>> m = load_model("av-tiny", num_classes=3, modalities=["audio", "visual"])
        >>> m.modalities, m.training
        (('audio', 'visual'), False)
    """
    if is_hf_spec(spec) and call == "dict":
        raise ModelError(f"model {spec!r}: Hugging Face models take their inputs as keywords, not one mapping",
                         hint="drop --call dict (or use --call keyword)")
    model = create_model(spec, num_classes=num_classes, model_args=model_args)
    if is_hf_spec(spec):
        if modalities is None:
            raise ModelError(f"model {spec!r}: its modalities come from the dataset's input names",
                             hint="give a dataset (or --modalities) naming forward's inputs, e.g. input_ids")
        modalities = hf_modalities(model, modalities, pass_through)
    allow_mode_switch(model)  # an exported program refuses .eval(); forward-only estimators still run on it
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, trust=trust_checkpoint)
    own = model_input_names(model)
    given = tuple(modalities) if modalities is not None else None
    if own is None and not given:
        raise ModelError(f"model {spec!r} does not say which modalities it takes",
                         hint="give --modalities in the order its forward takes them, e.g. audio,visual")
    adapter = ModelAdapter(model, own or given or (), call=call, output=output, num_classes=num_classes,
                           pass_through=pass_through)
    if given:
        check_modalities(adapter, given)
    dev = resolve_device(device) if isinstance(device, str) else device
    return adapter.to(dev).eval()
