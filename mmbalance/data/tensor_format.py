"""The tensor dataset format: one ``torch.save`` file per split (see ``docs/dataset-format.md``).

A file holds ``{"inputs": {modality: Tensor[N, ...]}, "labels": LongTensor[N],
"classes": [names]}`` (``classes`` optional). It is read with ``weights_only=True`` (no
arbitrary code) and memory-mapped, so large files stream from disk. Memory-mapping reads every
tensor's declared shape and strides without allocating it, so a tensor that declares more memory
than the machine has (a stride-0 ``expand`` of 80 GB saved in a few kilobytes, say) is refused
with its declared size before anything touches it, in ``inputs``, ``labels`` and ``extra`` alike.

Example:
    >>> import tempfile, pathlib, torch
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "test.pt"
    >>> _ = save_tensor_dataset(p, {"audio": torch.zeros(4, 1, 8, 8), "visual": torch.zeros(4, 3, 2, 8, 8)},
    ...                         torch.tensor([0, 1, 1, 0]), classes=["cat", "dog"])
    >>> ds = load_tensor_file(p)
    >>> ds.modalities, ds.classes, len(ds)
    (('audio', 'visual'), ['cat', 'dog'], 4)
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from ..errors import DataError
from ..io import atomic_torch_save
from .dataset import TensorMultimodalDataset, check_tensor_dataset

__all__ = ["SUFFIXES", "check_declared_sizes", "load_tensor_file", "read_tensor_file", "save_tensor_dataset"]

SUFFIXES = (".pt", ".pth")
_ZIP_MAGIC = b"PK\x03\x04"
_UNSAFE_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([A-Za-z_][\w.]*)")
_ONLY_SAFE = "a dataset file must contain only tensors, dicts, lists and strings"
# A tensor declaring more than this many times the bytes it stores (overlapping strides) is refused
# once it declares more than _BROADCAST_FLOOR bytes: materialising it would blow up memory.
_BROADCAST_RATIO = 8
_BROADCAST_FLOOR = 256 << 20


def load_tensor_file(
    path: str | os.PathLike[str],
    *,
    modalities: Sequence[str] | None = None,
    source: str | None = None,
    split: str | None = None,
) -> TensorMultimodalDataset:
    """Read one tensor dataset file into a :class:`TensorMultimodalDataset`.

    ``modalities`` selects and orders modalities (default: the file's key order). ``source``
    and ``split`` are recorded on the dataset (``source`` defaults to ``path``); messages
    name the file itself.

    Example: ``load_tensor_file("data/test.pt", modalities=["visual", "audio"])``.
    """
    path = Path(path)
    obj = read_tensor_file(path)
    where = str(path)
    if not isinstance(obj, dict):
        raise DataError(f"{where} holds a {type(obj).__name__}, not a dataset dict",
                        hint='expected {"inputs": {modality: tensor}, "labels": tensor, "classes": [...]}')
    missing = [k for k in ("inputs", "labels") if k not in obj]
    if missing:
        found = ", ".join(repr(k) for k in obj) or "none"
        raise DataError(f"{where} has no {' or '.join(repr(k) for k in missing)} entry (found keys: {found})",
                        hint='expected {"inputs": {modality: tensor}, "labels": tensor, "classes": [...]}')
    extra = obj.get("extra")
    if extra is not None and not isinstance(extra, dict):
        raise DataError(f"'extra' in {where} must be a dict of name -> tensor, got a {type(extra).__name__}",
                        hint='pass-through inputs go in {"extra": {"attention_mask": tensor}}')
    return TensorMultimodalDataset(obj["inputs"], obj["labels"], classes=obj.get("classes"),
                                   modalities=modalities, source=source or where, split=split, location=where,
                                   extra=extra)


def refused_pickle(err: BaseException) -> str | None:
    """If safe loading (``weights_only=True``) refused ``err``'s file as unsafe: what it refused, else ``None``.

    Example:
        >>> import pickle
        >>> refused_pickle(pickle.UnpicklingError("Trying to load unsupported GLOBAL posix.system whose ..."))
        'the global posix.system'
        >>> refused_pickle(pickle.UnpicklingError("invalid load key, 'x'.")) is None
        True
    """
    text = str(err)
    found = _UNSAFE_GLOBAL.search(text)
    return f"the global {found.group(1)}" if found else None


def read_tensor_file(path: str | os.PathLike[str]) -> Any:
    """``torch.load`` with ``weights_only=True`` and ``mmap`` (plain read for legacy files), errors as DataError."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"dataset file not found: {path}")
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a dataset file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from err
    if not head:
        raise DataError(f"{path} is empty", hint="write it again with mmbalance.data.save_tensor_dataset")
    try:
        # zip files (torch.save's format since 1.6) can be memory-mapped; legacy ones cannot
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=head == _ZIP_MAGIC)
    except pickle.UnpicklingError as err:
        refused = refused_pickle(err)
        if refused:
            hint = ("convert arrays with torch.from_numpy(...) before saving" if "numpy" in refused
                    else "save plain tensors, lists and strings only")
            raise DataError(f"{path} was refused as unsafe: loading it would run {refused}, which can execute "
                            f"arbitrary code; {_ONLY_SAFE}", hint=hint) from None
        raise DataError(f"{path} is not a readable torch file (corrupt or truncated?)",
                        hint="write it again with torch.save or mmbalance.data.save_tensor_dataset") from None
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from None
    except Exception as err:  # noqa: BLE001 - torch reports corrupt files with many exception types
        reason = str(err).split(". ")[0].strip() or type(err).__name__
        raise DataError(f"{path} is not a readable torch file (corrupt or truncated?): {reason[:200]}",
                        hint="write it again with torch.save or mmbalance.data.save_tensor_dataset") from None
    check_declared_sizes(obj, str(path))
    return obj


def _available_memory() -> int:
    """Bytes of memory available now (MemAvailable), or the physical memory when that is unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (OSError, ValueError, AttributeError):
        return 1 << 62


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n} bytes"


def check_declared_sizes(obj: Any, where: str, *, limit: int | None = None) -> None:
    """Refuse any tensor in ``obj`` whose declared size could not be allocated, before it is touched.

    A tensor declares ``numel * element_size`` bytes. One that declares more than it stores (a
    broadcast view, stride 0) would be allocated when used: it is refused when that exceeds
    ``limit`` (default: the memory available now) or far exceeds what it stores. A memory-mapped
    tensor whose bytes are all in the file is never refused for its size. One :class:`DataError` names the entry and the declared size.

    Example:
        >>> import torch
        >>> check_declared_sizes({"x": torch.zeros(4)}, "d.pt")
        >>> check_declared_sizes({"x": torch.zeros(1).expand(10**11)}, "d.pt")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        mmbalance.errors.DataError: d.pt: 'x' declares 400.0 GB ...
    """
    budget = _available_memory() if limit is None else limit
    for name, t in _tensors(obj, ""):
        declared = t.numel() * t.element_size()
        try:
            stored = t.untyped_storage().nbytes()
        except (RuntimeError, NotImplementedError):
            stored = declared
        if declared <= stored:  # its bytes are in the file (memory-mapped): nothing to allocate
            continue
        broadcast = declared > _BROADCAST_FLOOR and declared > _BROADCAST_RATIO * max(stored, 1)
        if declared > budget or broadcast:
            why = (f"but stores only {_gb(stored)} (a broadcast/expand view)" if broadcast
                   else f"more than the {_gb(budget)} of memory available")
            raise DataError(f"{where}: {name!r} declares {_gb(declared)} ({tuple(t.shape)}, {t.dtype}) {why}; "
                            "refused before allocating it",
                            hint="save real data with .contiguous() (or .clone()), or split it into smaller files")


def _tensors(obj: Any, prefix: str, depth: int = 0) -> Any:
    """``(dotted name, tensor)`` for every tensor in nested dicts, lists and tuples."""
    if depth > 64:
        return
    if isinstance(obj, Tensor):
        yield prefix or "tensor", obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _tensors(value, f"{prefix}.{key}" if prefix else str(key), depth + 1)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _tensors(value, f"{prefix}[{i}]", depth + 1)


def save_tensor_dataset(
    path: str | os.PathLike[str],
    inputs: Mapping[str, Tensor],
    labels: Tensor | Sequence[int],
    classes: Sequence[str] | None = None,
    extra: Mapping[str, Tensor] | None = None,
) -> Path:
    """Check and write a tensor dataset file atomically (modality order = ``inputs`` order).

    Tensors are moved to the CPU and stored compactly (a slice does not drag its whole
    parent storage along).

    ``extra`` holds pass-through inputs (attention masks, lengths), stored under the file's
    ``"extra"`` key.

    Example: ``save_tensor_dataset("data/test.pt", {"audio": a, "visual": v}, labels, ["cat", "dog"])``.
    """
    path = Path(path)
    if not isinstance(labels, Tensor):
        labels = torch.as_tensor(list(labels), dtype=torch.long)
    if classes is not None:
        classes = list(classes)
    labels, _ = check_tensor_dataset(inputs, labels, classes, where=str(path))
    payload: dict[str, Any] = {
        "inputs": {name: _compact(t) for name, t in inputs.items()},
        "labels": _compact(labels),
    }
    if classes is not None:
        payload["classes"] = [str(c) for c in classes]
    if extra:
        check_tensor_dataset(dict(extra), labels, None, where=f"'extra' of {path}")
        payload["extra"] = {name: _compact(t) for name, t in extra.items()}
    atomic_torch_save(path, payload)
    return path


def _compact(t: Tensor) -> Tensor:
    t = t.detach().cpu().contiguous()
    if t.untyped_storage().nbytes() != t.numel() * t.element_size():
        t = t.clone()
    return t
