"""Dataset sources: one small registry that turns what the user typed into a dataset.

A source is a ``match`` (a string prefix or a predicate on the source string) and a
``loader`` that builds a :class:`~mmbalance.data.MultimodalDataset` from a
:class:`SourceRequest`. Built in: ``synthetic:<name>[?param=value&...]``, a tensor file
(``*.pt``/``*.pth``) and a directory of ``<split>.pt`` files. Other formats plug in with
:func:`register_source`; sources are tried by ``priority`` (highest first), then in
registration order, and the first match loads.

Example:
    >>> ds = load_dataset("synthetic:av-dominance?n_test=16&seed=3")
    >>> ds.split, len(ds), ds.modalities
    ('test', 16, ('audio', 'visual'))

Plugging in a format (``match`` may also be a prefix such as ``"hf:"``)::

    @register_source(lambda s: s.endswith("manifest.csv"), name="manifest",
                     form="a manifest.csv listing media files")
    def _load_manifest(request: SourceRequest) -> MultimodalDataset:
        ...
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, Union
from urllib.parse import parse_qsl

from ..limits import MAX_SAMPLES
from ..errors import DataError
from . import synthetic
from .dataset import MultimodalDataset, TensorMultimodalDataset
from .tensor_format import SUFFIXES, load_tensor_file

__all__ = [
    "SourceRequest",
    "SourceEntry",
    "SourceLoader",
    "register_source",
    "unregister_source",
    "list_sources",
    "load_dataset",
    "SYNTHETIC_PREFIX",
    "PLUGIN_MODULES",
    "ENTRY_POINT_GROUP",
]

SYNTHETIC_PREFIX = "synthetic:"
ENTRY_POINT_GROUP = "mmbalance.sources"
# mmbalance modules that register more sources when imported (media files need PyAV)
PLUGIN_MODULES: tuple[str, ...] = ("mmbalance.media.dataset",)


@dataclass(frozen=True)
class SourceRequest:
    """What :func:`load_dataset` was asked for, handed to a source's loader.

    ``split`` is what the user chose (``None``: not chosen); loaders with splits use
    :attr:`wanted_split`. Loaders should pass ``modalities`` to
    :func:`~mmbalance.data.select_modalities` and record ``source`` on the dataset.
    """

    source: str
    split: str | None = None
    modalities: tuple[str, ...] | None = None
    default_split: str = "test"

    @property
    def wanted_split(self) -> str:
        """The split to read: the user's choice, else the default."""
        return self.split or self.default_split


SourceLoader = Callable[[SourceRequest], MultimodalDataset]


@dataclass(frozen=True)
class SourceEntry:
    """A registered source: ``matches(source)`` decides, ``loader(request)`` loads.

    ``form`` describes the accepted form for error messages.
    """

    name: str
    matches: Callable[[str], bool]
    loader: SourceLoader
    form: str
    priority: int = 0


_SOURCES: dict[str, SourceEntry] = {}
_plugin_state: dict[str, object] = {"loaded": False, "failures": []}


def register_source(
    match: Union[str, Callable[[str], bool]],
    loader: SourceLoader | None = None,
    *,
    name: str | None = None,
    form: str | None = None,
    priority: int = 0,
) -> SourceLoader | Callable[[SourceLoader], SourceLoader]:
    """Register ``loader`` for sources that start with ``match`` (a str) or satisfy it (a callable).

    Works as a call or as a decorator; returns the loader. Registering an existing ``name``
    replaces that source. ``form`` is how the source is shown in "unknown source" errors.

    Example:
        >>> def load_demo(request):
        ...     return load_dataset("synthetic:av-dominance?n_test=4", modalities=request.modalities)
        >>> _ = register_source("demo:", load_demo, form="demo:<anything>")
        >>> len(load_dataset("demo:x"))
        4
        >>> unregister_source("demo:")
    """
    default_name: str | None
    default_form: str | None
    if isinstance(match, str):
        prefix = match
        matches: Callable[[str], bool] = lambda source: source.startswith(prefix)  # noqa: E731
        default_name, default_form = prefix, f"{prefix}..."
    elif callable(match):
        matches = match
        default_name = default_form = None
    else:
        raise TypeError("match must be a prefix string or a predicate")

    def add(fn: SourceLoader) -> SourceLoader:
        entry_name = name or default_name or str(getattr(fn, "__name__", repr(fn)))
        _SOURCES.pop(entry_name, None)
        _SOURCES[entry_name] = SourceEntry(entry_name, matches, fn, form or default_form or entry_name, priority)
        return fn

    if loader is not None:
        return add(loader)
    return add


def unregister_source(name: str) -> None:
    """Remove the source registered as ``name`` (no error if there is none)."""
    _SOURCES.pop(name, None)


def list_sources() -> list[SourceEntry]:
    """Registered sources in the order they are tried (plug-ins included)."""
    _load_plugins()
    order = {name: i for i, name in enumerate(_SOURCES)}
    return sorted(_SOURCES.values(), key=lambda e: (-e.priority, order[e.name]))


def load_dataset(
    source: str | os.PathLike[str],
    *,
    split: str | None = None,
    modalities: Sequence[str] | None = None,
    default_split: str = "test",
) -> MultimodalDataset:
    """Load a dataset from ``source``: a tensor file, a directory of split files, ``synthetic:...``.

    ``split`` picks a split of a split directory or synthetic source (default
    ``default_split``); a single file has no splits and ignores it. ``modalities`` selects
    and orders modalities (default: all, in the source's order; ``"a,b"`` works too).

    Example:
        >>> ds = load_dataset("synthetic:av-dominance?n_val=8", split="val", modalities=["visual"])
        >>> ds.split, ds.modalities, ds.sample_shapes()
        ('val', ('visual',), {'visual': (3, 4, 32, 32)})
    """
    text = os.fspath(source).strip() if isinstance(source, (str, os.PathLike)) else ""
    if not text:
        raise DataError(f"no dataset source given ({source!r})", hint=_accepted())
    if isinstance(modalities, str):  # "audio,visual"
        modalities = [m.strip() for m in modalities.split(",") if m.strip()]
    renames: dict[str, str] = {}
    if modalities is not None and any("=" in m for m in modalities):  # video=visual: dataset name=model name
        from .rename import parse_modality_map, renamed

        modalities, renames = parse_modality_map(modalities)
    request = SourceRequest(text, split or None, tuple(modalities) if modalities is not None else None,
                            default_split)
    for entry in list_sources():
        if entry.matches(text):
            return renamed(entry.loader(request), renames) if renames else entry.loader(request)
    path = Path(text)
    if path.is_dir():
        raise DataError(f"{text} is a directory without dataset files", hint=_accepted())
    if path.exists():
        raise DataError(f"{text} is not a dataset format mmbalance reads", hint=_accepted())
    if os.sep in text or "/" in text or path.suffix:
        raise DataError(f"dataset not found: {text}", hint=_accepted())
    raise DataError(f"unknown dataset source {text!r}", hint=_accepted())


def _accepted() -> str:
    text = "accepted: " + "; ".join(entry.form for entry in list_sources())
    failures = _plugin_state["failures"]
    if failures:
        text += "; plug-ins that failed to load: " + "; ".join(failures)  # type: ignore[arg-type]
    return text


def _load_plugins() -> None:
    """Import :data:`PLUGIN_MODULES` and ``mmbalance.sources`` entry points, once.

    A plug-in that fails does not break the other sources; its error is named in the
    "unknown dataset source" message. A plug-in module that is not there is skipped.
    """
    if _plugin_state["loaded"]:
        return
    _plugin_state["loaded"] = True
    failures: list[str] = []
    for module in PLUGIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if not (err.name and module.startswith(err.name)):
                failures.append(f"{module}: {_one_line(err)}")
        except Exception as err:  # noqa: BLE001 - reported with the sources, not raised
            failures.append(f"{module}: {_one_line(err)}")
    try:
        entry_points = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    except Exception:  # noqa: BLE001 - a broken installed distribution must not break loading
        entry_points = []
    for ep in entry_points:
        try:
            ep.load()
        except Exception as err:  # noqa: BLE001
            failures.append(f"{ep.name} ({ep.value}): {_one_line(err)}")
    _plugin_state["failures"] = failures


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return f"{type(err).__name__}: {text[:200]}"


# --- built-in sources -------------------------------------------------------------------

_SYNTHETIC_PARAMS = ("n_train", "n_val", "n_test", "seed", "num_classes")


def _load_synthetic(request: SourceRequest) -> MultimodalDataset:
    body = request.source[len(SYNTHETIC_PREFIX):]
    name, _, query = body.partition("?")
    if name != synthetic.NAME:
        raise DataError(f"unknown synthetic dataset {name!r} in {request.source!r}",
                        hint=f"available: {SYNTHETIC_PREFIX}{synthetic.NAME}")
    params: dict[str, int] = {"seed": 0, "num_classes": synthetic.DEFAULT_NUM_CLASSES,
                              **{f"n_{s}": n for s, n in synthetic.DEFAULT_SIZES.items()}}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise DataError(f"cannot parse the parameters in {request.source!r}",
                        hint=f"use {SYNTHETIC_PREFIX}{synthetic.NAME}?seed=3&n_train=2000") from None
    for key, value in pairs:
        if key not in _SYNTHETIC_PARAMS:
            raise DataError(f"unknown parameter {key!r} in {request.source!r}",
                            hint=f"accepted: {', '.join(_SYNTHETIC_PARAMS)}")
        try:
            params[key] = int(value)
        except ValueError:
            raise DataError(f"parameter {key}={value!r} in {request.source!r} is not an integer") from None
    split = request.wanted_split
    if split not in synthetic.SPLIT_OFFSETS:
        raise DataError(f"{request.source} has no split {split!r}",
                        hint=f"available splits: {', '.join(synthetic.SPLIT_OFFSETS)}")
    n = params[f"n_{split}"]
    if n < 1:
        raise DataError(f"n_{split} must be at least 1 in {request.source!r}, got {n}")
    if n > MAX_SAMPLES:
        raise DataError(f"n_{split} must be at most {MAX_SAMPLES} in {request.source!r}, got {n}")
    if not 2 <= params["num_classes"] <= synthetic.MAX_NUM_CLASSES:
        raise DataError(f"num_classes must be between 2 and {synthetic.MAX_NUM_CLASSES} in "
                        f"{request.source!r}, got {params['num_classes']}")
    inputs, labels, classes = synthetic.synthesize_av_dominance(
        n, seed=params["seed"], num_classes=params["num_classes"], split_offset=synthetic.SPLIT_OFFSETS[split])
    return TensorMultimodalDataset(inputs, labels, classes=classes, modalities=request.modalities,
                                   source=request.source, split=split)


def _is_tensor_file(source: str) -> bool:
    return Path(source).suffix.lower() in SUFFIXES


def _load_tensor_file(request: SourceRequest) -> MultimodalDataset:
    return load_tensor_file(request.source, modalities=request.modalities, source=request.source)


def _split_files(directory: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for suffix in reversed(SUFFIXES):  # .pt wins over .pth for the same split
        for path in sorted(directory.glob(f"*{suffix}")):
            if path.is_file() and not path.name.startswith("."):
                files[path.stem] = path
    return dict(sorted(files.items()))


def _is_split_dir(source: str) -> bool:
    path = Path(source)
    return path.is_dir() and bool(_split_files(path))


def _load_split_dir(request: SourceRequest) -> MultimodalDataset:
    directory = Path(request.source)
    split = request.wanted_split
    files = _split_files(directory)
    if split not in files:
        raise DataError(f"split {split!r} not found in {request.source}: no {split}.pt there",
                        hint=f"available splits: {', '.join(files)}")
    return load_tensor_file(files[split], modalities=request.modalities, source=request.source, split=split)


register_source(SYNTHETIC_PREFIX, _load_synthetic, name="synthetic",
                form=f"{SYNTHETIC_PREFIX}{synthetic.NAME}[?seed=0&n_train=2000&n_val=500&n_test=1000]")
register_source(_is_tensor_file, _load_tensor_file, name="tensor-file",
                form="a .pt file written by torch.save (see docs/dataset-format.md)")
register_source(_is_split_dir, _load_split_dir, name="split-dir",
                form="a directory holding train.pt, val.pt, test.pt")
