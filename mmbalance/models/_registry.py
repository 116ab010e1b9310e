"""The model registry: the only place that holds registry state.

Built-in families register their factories with :func:`register_model`; installed
plug-ins are found lazily through the ``mmbalance.models`` entry-point group. Building a
model from a spec string lives in :mod:`mmbalance.models._builder`.

Example:
    >>> from mmbalance.models import list_models, is_model
    >>> "av-tiny" in list_models()
    True
    >>> is_model("av-tiny")
    True
"""

from __future__ import annotations

import difflib
import importlib.metadata
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable, TypeVar, overload

from ..errors import ModelError
from ..patterns import matches_pattern

__all__ = [
    "ENTRY_POINT_GROUP",
    "ModelInfo",
    "register_model",
    "list_models",
    "list_model_info",
    "is_model",
    "model_entrypoint",
    "model_source",
    "suggest_models",
]

ENTRY_POINT_GROUP = "mmbalance.models"

#: Where a model comes from, as shown by ``mmbalance models``.
SOURCE_BUILTIN = "builtin"
SOURCE_REGISTERED = "registered"
SOURCE_ENTRY_POINT = "entry-point"

F = TypeVar("F", bound=Callable[..., Any])

_model_entrypoints: dict[str, Callable[..., Any]] = {}
_model_sources: dict[str, str] = {}


@dataclass(frozen=True)
class ModelInfo:
    """One line of ``mmbalance models``: name, source, description and where the factory lives."""

    name: str
    source: str
    description: str
    target: str

    def to_json(self) -> dict[str, str]:
        """A JSON-ready dict."""
        return asdict(self)


@overload
def register_model(name: F) -> F: ...
@overload
def register_model(name: str | None = None) -> Callable[[F], F]: ...
def register_model(name: Any = None) -> Any:
    """Register a model factory ``fn(num_classes: int, **kwargs) -> nn.Module``.

    Use bare (the function name with ``_`` turned into ``-``) or with an explicit name.

    Example:
        >>> import torch.nn as nn
        >>> @register_model("my-linear")
        ... def my_linear(num_classes: int) -> nn.Module:
        ...     '''A linear toy.'''
        ...     return nn.Linear(4, num_classes)
        >>> is_model("my-linear")
        True
        >>> _ = _unregister("my-linear")
    """
    if callable(name):
        return _register(name, None)

    def decorator(fn: F) -> F:
        return _register(fn, name)

    return decorator


def _register(fn: F, name: str | None) -> F:
    if not callable(fn):
        raise ModelError(f"cannot register {fn!r} as a model: it is not callable")
    key = name or fn.__name__.replace("_", "-")
    if not isinstance(key, str) or not key or ":" in key:
        raise ModelError(f"invalid model name {key!r}", hint="use a non-empty name without ':'")
    previous = _model_entrypoints.get(key)
    if previous is not None and _qualified(previous) != _qualified(fn):
        warnings.warn(f"model {key!r} is registered again; {_qualified(fn)} replaces {_qualified(previous)}",
                      stacklevel=3)
    module = getattr(fn, "__module__", "") or ""
    _model_entrypoints[key] = fn
    _model_sources[key] = SOURCE_BUILTIN if module.startswith("mmbalance.") else SOURCE_REGISTERED
    return fn


def _unregister(name: str) -> Callable[..., Any] | None:
    """Remove a registered model (for tests); returns the factory or ``None``."""
    _model_sources.pop(name, None)
    return _model_entrypoints.pop(name, None)


def _qualified(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Installed ``mmbalance.models`` entry points by name (registered names win on clashes)."""
    try:
        eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # noqa: BLE001 - a broken installed distribution must not break listing
        return {}
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in eps:
        found.setdefault(ep.name, ep)
    return found


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of registered and entry-point models matching ``pattern``.

    ``pattern`` is an fnmatch pattern, case-insensitive; one without wildcards matches as a
    substring.

    Example:
        >>> list_models("av-*")
        ['av-resnet18', 'av-small', 'av-tiny']
    """
    names = set(_model_entrypoints) | set(_entry_points())
    return sorted(n for n in names if matches_pattern(n, pattern))


def is_model(name: str) -> bool:
    """Whether ``name`` is a registered or installed (entry-point) model.

    Example:
        >>> is_model("av-tiny"), is_model("nope")
        (True, False)
    """
    return name in _model_entrypoints or name in _entry_points()


def model_source(name: str) -> str:
    """``builtin``, ``registered`` (by user code at run time) or ``entry-point``."""
    if name in _model_sources:
        return _model_sources[name]
    if name in _entry_points():
        return SOURCE_ENTRY_POINT
    raise _unknown_model(name)


def suggest_models(name: str, n: int = 3) -> list[str]:
    """Registered names close to ``name`` (for "did you mean" messages)."""
    return difflib.get_close_matches(name, list_models(), n=n, cutoff=0.5)


def _unknown_model(name: str) -> ModelError:
    close = suggest_models(name)
    message = f"unknown model {name!r}"
    if close:
        message += f"; did you mean {', '.join(repr(c) for c in close)}?"
    return ModelError(message, hint="run `mmbalance models` to list models, or give package.module:factory "
                                    "or path/to/file.py:factory")


def model_entrypoint(name: str) -> Callable[..., Any]:
    """The factory registered (or installed as an entry point) under ``name``.

    Example:
        >>> model_entrypoint("av-tiny").__name__
        'av_tiny'
    """
    fn = _model_entrypoints.get(name)
    if fn is not None:
        return fn
    ep = _entry_points().get(name)
    if ep is None:
        raise _unknown_model(name)
    return _load_entry_point(ep)


def _load_entry_point(ep: importlib.metadata.EntryPoint) -> Callable[..., Any]:
    try:
        fn = ep.load()
    except Exception as err:  # noqa: BLE001 - any import failure is the plug-in's, reported in one line
        raise ModelError(f"cannot load model plug-in {ep.name!r} ({ep.value}): {one_line(err)}",
                         hint=f"check the package that declares it in the {ENTRY_POINT_GROUP!r} "
                              "entry-point group is installed correctly") from err
    if not callable(fn):
        raise ModelError(f"model plug-in {ep.name!r} ({ep.value}) is not callable but {type(fn).__name__}",
                         hint="an entry point must name a factory function or class")
    return fn


def list_model_info(pattern: str = "*") -> list[ModelInfo]:
    """Name, source, first docstring line and target of each model matching ``pattern``.

    Plug-ins are imported to read their docstrings; one that fails to import is listed with
    the failure as its description instead of breaking the listing.

    Example:
        >>> [i.source for i in list_model_info("av-tiny")]
        ['builtin']
    """
    eps = _entry_points()
    infos: list[ModelInfo] = []
    for name in list_models(pattern):
        if name in _model_entrypoints:
            fn = _model_entrypoints[name]
            infos.append(ModelInfo(name, _model_sources[name], _first_doc_line(fn),
                                   f"{fn.__module__}:{fn.__qualname__}"))
            continue
        ep = eps[name]
        try:
            description = _first_doc_line(_load_entry_point(ep))
        except ModelError as err:
            description = f"(cannot load: {err.message})"
        infos.append(ModelInfo(name, SOURCE_ENTRY_POINT, description, ep.value))
    return infos


def _first_doc_line(fn: Callable[..., Any]) -> str:
    doc = getattr(fn, "__doc__", None) or ""
    for line in doc.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def one_line(err: BaseException, limit: int = 300) -> str:
    """``"TypeName: first non-empty line of the message"``, cut to ``limit`` characters."""
    text = ""
    for line in str(err).splitlines():
        if line.strip():
            text = line.strip()
            break
    out = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return out if len(out) <= limit else out[: limit - 3] + "..."
