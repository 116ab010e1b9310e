"""Decode a media source once into the tensor format: parallel, resumable, with a log of what was skipped.

``prepare("clips.csv", "prepared/")`` writes ``prepared/<split>.pt`` (one per split; a
source without splits becomes ``test.pt``), ``prepared/skipped.json`` and
``prepared/prepare.json``. ``load_dataset("prepared/", split="train")`` reads the result.

Decoded clips are cached in shards under ``prepared/.cache/<options>/``, keyed by each
clip's files (path, size, modification time): a re-run, after a crash or with more clips,
decodes only what is new. Changing the decoding options starts a new cache.

Example:
    >>> import tempfile, pathlib
    >>> from mmbalance.media.testing import write_clip
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_clip(d / "dog" / "a.mp4"); _ = write_clip(d / "cat" / "b.mp4")
    >>> opts = DecodeOptions(frames=2, size=32, clip_seconds=1)
    >>> r = prepare(d, d / "out", options=opts, progress=False)
    >>> r.splits, r.decoded, prepare(d, d / "out", options=opts, progress=False).cached
    ({'test': 2}, 2, 2)
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from ..data.dataset import select_modalities
from ..data.tensor_format import save_tensor_dataset
from ..errors import DataError, UsageError
from ..io import atomic_torch_save, atomic_write_json, check_output_dir
from ..progress import progress_bar
from .dataset import read_collection
from .decode import MediaError
from .items import MODALITIES, MediaItem, SkippedItem, decode_item, item_key
from .options import DecodeOptions, split_source

__all__ = ["prepare", "PrepareResult", "CACHE_DIR", "SKIPPED_LOG", "SUMMARY_FILE"]

CACHE_DIR = ".cache"
SKIPPED_LOG = "skipped.json"
SUMMARY_FILE = "prepare.json"


@dataclass(frozen=True)
class PrepareResult:
    """What :func:`prepare` wrote: samples per split, their files, the skipped clips, and timings.

    ``decoded`` clips were decoded in this run (``seconds`` of wall time, so
    :attr:`clips_per_second` is the decode throughput); ``cached`` came from earlier runs.
    """

    out: str
    source: str
    splits: dict[str, int]
    files: dict[str, str]
    classes: list[str]
    modalities: tuple[str, ...]
    options: DecodeOptions
    skipped: tuple[SkippedItem, ...] = ()
    decoded: int = 0
    cached: int = 0
    seconds: float = 0.0
    workers: int = 1
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def clips_per_second(self) -> float | None:
        """Clips decoded per second of wall time in this run (``None`` when nothing was decoded)."""
        return self.decoded / self.seconds if self.decoded and self.seconds > 0 else None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary (also written to ``prepare.json``)."""
        return {
            "out": self.out, "source": self.source, "splits": self.splits, "files": self.files,
            "classes": self.classes, "modalities": list(self.modalities), "options": self.options.to_dict(),
            "shapes": {m: list(s) for m, s in self.shapes.items()},
            "skipped": [s.to_dict() for s in self.skipped], "decoded": self.decoded, "cached": self.cached,
            "seconds": round(self.seconds, 3), "workers": self.workers,
            "clips_per_second": round(self.clips_per_second, 3) if self.clips_per_second else None,
        }


@dataclass(frozen=True)
class _ShardReport:
    name: str
    ok: tuple[str, ...]
    failed: dict[str, tuple[str, str]]  # key -> (path, reason)
    errors: dict[str, tuple[str, str, str | None]]  # key -> (path, reason, where) of clips failed this run


def prepare(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    options: DecodeOptions | None = None,
    split: str | Sequence[str] | None = None,
    unsplit_name: str = "test",
    modalities: Sequence[str] | None = None,
    workers: int = 1,
    skip_bad: bool | None = None,
    shard_size: int = 32,
    keep_cache: bool = True,
    progress: bool = True,
) -> PrepareResult:
    """Decode ``source`` (a media source, query options allowed) into ``out/<split>.pt`` files.

    ``split`` limits which splits are written (default: all; a source without splits is
    written as ``unsplit_name``). ``workers > 1`` decodes in that many spawned processes.
    A bad clip (missing, unreadable, no audio track, unknown label) raises
    :class:`~mmbalance.errors.DataError` naming the file; with ``skip_bad`` it is left out and
    listed in ``out/skipped.json``. Finished shards stay cached either way, so a re-run
    resumes. ``keep_cache=False`` deletes the cache after a successful run.

    Example: ``prepare("data/clips.csv?frames=8", "data/prepared", workers=4, skip_bad=True)``.
    """
    started = time.perf_counter()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UsageError(f"workers must be a positive integer, got {workers!r}")
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise UsageError(f"shard_size must be a positive integer, got {shard_size!r}")
    check_output_dir(out, what="--out")
    spec = split_source(source)
    opts = spec.options.merged(options)
    skip = spec.skip_bad if skip_bad is None else bool(skip_bad)
    collection = read_collection(spec.path, skip_bad=skip, classes=spec.classes)
    mods = select_modalities(MODALITIES, modalities, where=spec.path)
    out_dir = Path(out)

    jobs = _split_jobs(collection, split, unsplit_name)
    cache = out_dir / CACHE_DIR / f"{opts.fingerprint()}-{'+'.join(mods)}"
    cache.mkdir(parents=True, exist_ok=True)
    index_ok, index_failed = _load_index(cache)

    # keys (stat only); a missing file is a failure before anything is decoded
    keys: dict[int, str] = {}
    missing: dict[int, MediaError] = {}
    all_items = [item for _, items in jobs for item in items]
    for n, item in enumerate(all_items):
        try:
            keys[n] = item_key(item, mods)
        except MediaError as err:
            if not skip:
                raise
            missing[n] = err
    todo: dict[str, MediaItem] = {}
    for n, key in keys.items():
        if key not in index_ok and key not in index_failed and key not in todo:
            todo[key] = all_items[n]
    cached = len({k for k in keys.values() if k in index_ok or k in index_failed})
    # a clip that failed in an earlier run fails again without decoding
    if not skip:
        for n, key in keys.items():
            if key in index_failed:
                path, reason = index_failed[key]
                raise MediaError(path, reason, where=all_items[n].where)

    _run(list(todo.items()), cache, opts, mods, workers=workers, shard_size=shard_size, skip_bad=skip,
         progress=progress)
    index_ok, index_failed = _load_index(cache)

    # assemble each split in item order
    splits: dict[str, int] = {}
    files: dict[str, str] = {}
    names = {name for name, _ in jobs}
    skipped: list[SkippedItem] = [s for s in collection.skipped if s.split is None or s.split in names]
    shapes: dict[str, tuple[int, ...]] = {m: s for m, s in (("audio", opts.audio_shape), ("visual", opts.visual_shape))
                                          if m in mods}
    offset = 0
    empty: list[str] = []
    for split_name, items in jobs:
        rows: list[tuple[MediaItem, str]] = []
        for n, item in enumerate(items, start=offset):
            if n in missing:
                skipped.append(SkippedItem.from_error(missing[n], where=item.where, split=item.split or split_name))
            elif keys[n] in index_failed:
                path, reason = index_failed[keys[n]]
                skipped.append(SkippedItem(where=item.where, path=path, reason=reason, split=item.split or split_name))
            else:
                rows.append((item, keys[n]))
        offset += len(items)
        if not rows:
            empty.append(split_name)
            continue
        target = out_dir / f"{split_name}.pt"
        _assemble(target, rows, index_ok, cache, shapes, collection.classes)
        splits[split_name] = len(rows)
        files[split_name] = str(target)

    result = PrepareResult(
        out=str(out_dir), source=os.fspath(source), splits=splits, files=files, classes=list(collection.classes),
        modalities=mods, options=opts, skipped=tuple(skipped), decoded=len(todo), cached=cached,
        seconds=time.perf_counter() - started, workers=workers, shapes=shapes)
    atomic_write_json(out_dir / SKIPPED_LOG, {"source": result.source, "count": len(skipped),
                                              "skipped": [s.to_dict() for s in skipped]})
    if empty:
        raise DataError(f"no clip of split {empty[0]!r} in {spec.path} could be decoded "
                        f"({len(skipped)} skipped in all)", hint=f"see {out_dir / SKIPPED_LOG}")
    atomic_write_json(out_dir / SUMMARY_FILE, result.to_json())
    if not keep_cache:
        shutil.rmtree(out_dir / CACHE_DIR, ignore_errors=True)
    return result


def _split_jobs(collection: Any, split: str | Sequence[str] | None, unsplit_name: str
                ) -> list[tuple[str, list[MediaItem]]]:
    wanted = [split] if isinstance(split, str) else (list(split) if split else None)
    if collection.splits is None:
        if wanted and wanted != [unsplit_name]:
            raise UsageError(f"{collection.source} has no splits; --split does not apply",
                             hint="the clips are written as one file; name it with --as-split")
        return [(unsplit_name, list(collection.items))]
    names = wanted or list(collection.splits)
    unknown = [s for s in names if s not in collection.splits]
    if unknown:
        raise DataError(f"{collection.source} has no split {unknown[0]!r}",
                        hint=f"available splits: {', '.join(collection.splits)}")
    return [(s, [i for i in collection.items if i.split == s]) for s in names]


# --- cache ----------------------------------------------------------------------------------

def _load_index(cache: Path) -> tuple[dict[str, tuple[str, int]], dict[str, tuple[str, str]]]:
    """Finished clips ``key -> (shard file, row)`` and failed ones ``key -> (path, reason)``."""
    ok: dict[str, tuple[str, int]] = {}
    failed: dict[str, tuple[str, str]] = {}
    for meta in sorted(cache.glob("shard-*.json")):
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # an unreadable index: its clips are decoded again
        shard = data.get("file")
        if shard and not (cache / shard).is_file():
            continue
        for row, key in enumerate(data.get("keys", [])):
            ok[key] = (shard, row)
        for key, (path, reason) in data.get("failed", {}).items():
            failed[key] = (path, reason)
    return ok, failed


def _decode_shard(cache: str, name: str, entries: list[tuple[str, MediaItem]], options: DecodeOptions,
                  modalities: tuple[str, ...]) -> _ShardReport:
    """Decode ``entries`` and write ``<name>.pt`` (tensors) and ``<name>.json`` (keys, failures)."""
    cache_dir = Path(cache)
    keys: list[str] = []
    tensors: dict[str, list[torch.Tensor]] = {m: [] for m in modalities}
    failed: dict[str, tuple[str, str]] = {}
    errors: dict[str, tuple[str, str, str | None]] = {}
    for key, item in entries:
        try:
            sample = decode_item(item, options, modalities)
        except MediaError as err:
            failed[key] = (err.path, err.reason)
            errors[key] = (err.path, err.reason, item.where)
            continue
        keys.append(key)
        for m in modalities:
            tensors[m].append(sample[m])
    meta: dict[str, Any] = {"keys": keys, "failed": failed, "file": None}
    if keys:
        payload = {"keys": keys, "inputs": {m: torch.stack(ts) for m, ts in tensors.items()}}
        atomic_torch_save(cache_dir / f"{name}.pt", payload)
        meta["file"] = f"{name}.pt"
    atomic_write_json(cache_dir / f"{name}.json", meta)  # written last: marks the shard complete
    return _ShardReport(name, tuple(keys), failed, errors)


def _init_worker() -> None:
    torch.set_num_threads(1)


def _chunks(entries: list[tuple[str, MediaItem]], size: int) -> Iterable[list[tuple[str, MediaItem]]]:
    for start in range(0, len(entries), size):
        yield entries[start:start + size]


def _run(entries: list[tuple[str, MediaItem]], cache: Path, options: DecodeOptions, modalities: tuple[str, ...], *,
         workers: int, shard_size: int, skip_bad: bool, progress: bool) -> None:
    if not entries:
        return
    if workers > 1:  # at least ~4 shards per worker, so the workers finish together
        shard_size = max(1, min(shard_size, -(-len(entries) // (4 * workers))))
    chunks = list(_chunks(entries, shard_size))
    workers = min(workers, len(chunks))
    label = f"decoding {len(entries)} clips" + (f" ({workers} workers)" if workers > 1 else "")

    def check(report: _ShardReport) -> None:
        if report.errors and not skip_bad:
            path, reason, where = next(iter(report.errors.values()))
            raise MediaError(path, reason, where=where)

    with progress_bar(label, total=len(entries), unit="clips", enabled=progress) as advance:
        if workers == 1:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # tiny tensors: extra intra-op threads only add overhead
            try:
                for chunk in chunks:
                    report = _decode_shard(str(cache), _shard_name(), chunk, options, modalities)
                    advance(len(chunk))
                    check(report)
            finally:
                torch.set_num_threads(threads)
            return
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker)
        try:
            pending: dict[Future[_ShardReport], int] = {}
            queue = iter(chunks)
            # keep a few shards in flight per worker, so a failure stops the run early
            for chunk in queue:
                pending[pool.submit(_decode_shard, str(cache), _shard_name(), chunk, options, modalities)] = len(chunk)
                if len(pending) >= 2 * workers:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    size = pending.pop(future)
                    report = future.result()
                    advance(size)
                    check(report)
                    nxt = next(queue, None)
                    if nxt is not None:
                        pending[pool.submit(_decode_shard, str(cache), _shard_name(), nxt, options,
                                            modalities)] = len(nxt)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _shard_name() -> str:
    return f"shard-{uuid.uuid4().hex[:16]}"


def _assemble(target: Path, rows: list[tuple[MediaItem, str]], index: dict[str, tuple[str, int]], cache: Path,
              shapes: dict[str, tuple[int, ...]], classes: list[str]) -> None:
    n = len(rows)
    inputs = {m: torch.empty((n, *shape), dtype=torch.float32) for m, shape in shapes.items()}
    by_shard: dict[str, list[tuple[int, int]]] = {}
    for i, (_, key) in enumerate(rows):
        shard, row = index[key]
        by_shard.setdefault(shard, []).append((i, row))
    for shard, pairs in by_shard.items():
        data = torch.load(cache / shard, map_location="cpu", weights_only=True, mmap=True)
        dst = torch.as_tensor([i for i, _ in pairs], dtype=torch.long)
        src = torch.as_tensor([r for _, r in pairs], dtype=torch.long)
        for m in shapes:
            inputs[m][dst] = data["inputs"][m][src]
    labels = torch.as_tensor([item.label for item, _ in rows], dtype=torch.long)
    save_tensor_dataset(target, inputs, labels, classes)
