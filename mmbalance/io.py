"""The one output writer: every file mmbalance writes for a user goes through here.

* :func:`check_output_file` / :func:`check_output_dir` are called at the start of a command,
  before any work, so a target that cannot be written (an existing directory where a file is
  wanted, a parent that is a file, an empty path, a read-only or unwritable place) fails at
  once with one line (:class:`~mmbalance.errors.OutputError`, exit code 2).
* Writing goes to a temporary file beside the target, is fsynced and renamed over it, so the
  target is always either the old file or the complete new one.
* A symlink the user names is written *through*: its target is replaced and the link stays a link.
  Inside a directory mmbalance owns (a run or bench directory, see :func:`confined_to`) nothing is
  followed: a link, FIFO or device found there is replaced by a regular file, never written through.
* A character device, block device or FIFO is written by opening it (never renamed over).
* A full disk, an exceeded quota or a read-only file system is one line ("no space left on
  the device holding DIR"); nothing half-written is left behind and the old file is intact.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
    >>> atomic_write_json(check_output_file(p), {"a": 1})
    >>> p.read_text().strip()
    '{\\n  "a": 1\\n}'
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from .errors import OutputError

__all__ = ["PendingFile", "atomic_path", "confined_to", "check_not_same_file", "atomic_torch_save", "atomic_write_bytes", "atomic_write_json",
           "atomic_write_text", "atomic_write_with", "check_output_dir", "check_output_file", "output_error",
           "place_file", "refuse_system_root"]

# torch.save and other C++ writers report a failed write with these instead of an OSError.
_STREAM_FAILURES = ("inline_container.cc", "iostream error", "file write failed", "unexpected pos",
                    "No space left", "os error 28", "Disk quota exceeded", "Read-only file system")
# Below this many free bytes a failed C++ write is taken for a full disk.
_NEARLY_FULL = 1 << 20
# Directories whose files are written without following links (see confined_to).
_CONFINED: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("mmbalance_confined", default=())
# Directories never taken as an output directory (files would land among the system's own).
_SYSTEM_ROOTS = ("/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/root", "/run",
                 "/sbin", "/sys", "/usr", "/var", "/home", "/tmp", "/opt", "/srv", "/mnt", "/media")


@contextlib.contextmanager
def confined_to(directory: str | os.PathLike[str]) -> Iterator[None]:
    """Within the block, files written inside ``directory`` never follow a link found there.

    For directories mmbalance owns and reads back (run and bench directories): they are untrusted
    input, so a ``last.pt`` that is a symlink to a file elsewhere is replaced by a regular file
    rather than overwriting that file.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "outside").write_text("keep")
        4
        >>> (d / "run").mkdir(); (d / "run" / "last.pt").symlink_to(d / "outside")
        >>> with confined_to(d / "run"):
        ...     atomic_write_text(d / "run" / "last.pt", "new")
        >>> (d / "outside").read_text(), (d / "run" / "last.pt").is_symlink()
        ('keep', False)
    """
    token = _CONFINED.set(_CONFINED.get() + (os.path.realpath(directory),))
    try:
        yield
    finally:
        _CONFINED.reset(token)


def _confined(target: Path) -> bool:
    """Whether ``target`` lies in a directory registered with :func:`confined_to` (its parent resolved)."""
    roots = _CONFINED.get()
    if not roots:
        return False
    parent = os.path.realpath(Path(target).parent)
    return any(parent == root or parent.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def _where(target: Path) -> Path:
    """The path a write of ``target`` replaces: links followed, except inside a confined directory."""
    if _confined(target):
        return Path(os.path.realpath(target.parent)) / target.name
    return _resolve(target)


def refuse_system_root(path: str | os.PathLike[str], *, what: str = "--out") -> None:
    """Refuse ``/`` and the system's own top-level directories (``/etc``, ``/usr``, ...) as an output directory.

    Example:
        >>> refuse_system_root("/")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        mmbalance.errors.OutputError: --out / is a system directory; mmbalance will not write its files there
    """
    real = os.path.realpath(path)
    home = os.path.realpath(os.path.expanduser("~"))
    if real in _SYSTEM_ROOTS or real == home:
        raise OutputError(f"{what} {path} is a system directory; mmbalance will not write its files there",
                          hint="give a new directory, e.g. runs/my-run")


def check_not_same_file(output: str | os.PathLike[str], *inputs: tuple[str, str | os.PathLike[str] | None],
                        what: str = "--out") -> None:
    """Refuse an output that is one of the inputs (through links too), before any work.

    ``inputs`` are ``(flag, path)`` pairs; ``None`` paths are skipped.

    Example:
        >>> check_not_same_file("a.json", ("--data", "b.pt"))
        >>> check_not_same_file("x.pt", ("--data", "x.pt"))  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        mmbalance.errors.OutputError: --out x.pt is the same file as --data; writing it would destroy the input
    """
    if _in_place(Path(output)):
        return
    out_real = os.path.realpath(output)
    for flag, path in inputs:
        if path is None or not str(path).strip():
            continue
        same = os.path.realpath(path) == out_real
        with contextlib.suppress(OSError):
            same = same or os.path.samefile(path, output)
        if same:
            raise OutputError(f"{what} {output} is the same file as {flag}; writing it would destroy the input",
                              hint=f"give {what} another file name")


# -- checking targets before the work starts --------------------------------------------------------


def check_output_file(path: str | os.PathLike[str], *, what: str = "output file", example: str = "out.json") -> Path:
    """Fail at once, with one line, when ``path`` cannot be written as a file; returns it as a Path.

    ``what`` names the target in messages (e.g. ``"--out"``), ``example`` is a file name the
    hint suggests. Symlinks are followed; a FIFO or a device is accepted when it is writable.

    Example:
        >>> check_output_file("/")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        mmbalance.errors.OutputError: output file / is a directory (give a file name, e.g. /out.json)
    """
    text = os.fspath(path)
    if not str(text).strip():
        raise OutputError(f"{what} is an empty path", hint="give a file name")
    p = Path(text)
    _check_name_length(p, what)
    if _in_place(p) and not _confined(p):
        if not os.access(p, os.W_OK):
            raise OutputError(f"cannot write {what} {p}: permission denied", hint="choose a writable output")
        return p
    if _confined(p):
        if p.is_symlink() or (p.exists() and not p.is_dir()):
            _check_creatable(Path(os.path.realpath(p.parent)), what=f"{what} {p}")
            return p
    real = _resolve(p)
    if str(text).endswith(("/", os.sep)) or real.is_dir():
        raise OutputError(f"{what} {p} is a directory",
                          hint=f"give a file name, e.g. {p / example}")
    try:
        mode = os.stat(real).st_mode
    except (FileNotFoundError, NotADirectoryError):
        _check_creatable(real.parent, what=f"{what} {p}")
        return p
    except OSError as err:
        raise output_error(err, p) from None
    if stat.S_ISSOCK(mode):
        raise OutputError(f"{what} {p} is a socket, not a file", hint="give a file name")
    _check_creatable(real.parent, what=f"{what} {p}")
    return p


def check_output_dir(path: str | os.PathLike[str], *, what: str = "output directory") -> Path:
    """Fail at once, with one line, when ``path`` cannot be (or become) a writable directory.

    Example:
        >>> check_output_dir("/etc/hostname/report")  # doctest: +SKIP
        Traceback (most recent call last):
        mmbalance.errors.OutputError: cannot write output directory /etc/hostname/report: /etc/hostname is a file, ...
    """
    text = os.fspath(path)
    if not str(text).strip():
        raise OutputError(f"{what} is an empty path", hint="give a directory name")
    p = Path(text)
    _check_name_length(p, what)
    refuse_system_root(p, what=what)
    real = _resolve(p)
    if real.exists() and not real.is_dir():
        raise OutputError(f"{what} {p} exists and is not a directory", hint="choose another directory")
    _check_creatable(real, what=f"{what} {p}")
    return p


def _check_name_length(path: Path, what: str) -> None:
    """A file name longer than the file system allows (255 bytes on most) fails now, not after the work."""
    try:
        limit = os.pathconf(_nearest_existing(path.parent), "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    for part in path.parts:
        if len(os.fsencode(part)) > limit:
            raise OutputError(f"{what}: the name {part[:40]}... is {len(os.fsencode(part))} bytes long, longer than "
                              f"the {limit} the file system allows", hint="choose a shorter name")


def _nearest_existing(directory: Path) -> Path:
    d = directory if str(directory) else Path(".")
    while not d.exists() and d.parent != d:
        d = d.parent
    return d


def _check_creatable(directory: Path, *, what: str) -> None:
    """``directory`` exists and is writable, or its nearest existing ancestor is a writable directory."""
    ancestor = directory
    while not ancestor.exists() and ancestor.parent != ancestor:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"cannot write {what}: {ancestor} is a file, not a directory",
                          hint="choose another location")
    if _read_only(ancestor):
        raise OutputError(f"cannot write {what}: the file system holding {ancestor} is read-only",
                          hint="choose another location")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {what}: permission denied in {ancestor}",
                          hint="choose a writable location")


def _read_only(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


# -- writing ----------------------------------------------------------------------------------------


def _resolve(path: Path) -> Path:
    """``path`` with every symlink followed (a dangling link gives the path it points to)."""
    return Path(os.path.realpath(path))


def _is_special(mode: int) -> bool:
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or stat.S_ISBLK(mode)


# Paths that name an open file descriptor (``-o /dev/stdout``): written by opening them, like a device.
_FD_PATHS = ("/dev/stdout", "/dev/stderr", "/dev/fd/", "/proc/self/fd/")


def _in_place(target: Path) -> bool:
    """Whether ``target`` is written by opening it: a device, a FIFO (through links too), or an fd path."""
    text = os.fspath(target)
    if text.startswith(_FD_PATHS) and os.path.exists(text):
        return True
    try:
        return _is_special(os.stat(target).st_mode)
    except OSError:
        return False


class PendingFile:
    """A temporary file that becomes ``target`` on :meth:`commit` (or vanishes on :meth:`abort`).

    For writers that stream into a file over a long time (per-sample rows). Most code uses
    :func:`atomic_path` or the ``atomic_write_*`` functions instead.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "rows.csv"
        >>> pending = PendingFile(target)
        >>> _ = pending.tmp.write_text("a,b\\n")
        >>> pending.commit().read_text()
        'a,b\\n'
    """

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self.target = Path(target)
        self.real = _where(self.target)
        self.special = _in_place(self.target) and not _confined(self.target)
        # A device or pipe gets its bytes through open(); the temporary file lives in the temp dir.
        where = Path(tempfile.gettempdir()) if self.special else self.real.parent
        try:
            if not self.special:
                where.mkdir(parents=True, exist_ok=True)
            if where.exists() and not where.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(where))
            fd, tmp_name = tempfile.mkstemp(prefix=f".{self.real.name}.", suffix=".tmp", dir=where)
        except OSError as err:
            raise output_error(err, self.target) from None
        os.close(fd)
        self.tmp = Path(tmp_name)
        _copy_mode(self.real, self.tmp)

    def commit(self) -> Path:
        """Move the finished temporary file onto the target; returns the target path."""
        try:
            place_file(self.tmp, self.target)
        except BaseException:
            self.abort()
            raise
        return self.target

    def abort(self) -> None:
        """Drop the temporary file; the target is left as it was."""
        with contextlib.suppress(OSError):
            self.tmp.unlink()


def place_file(tmp: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Put the finished file ``tmp`` at ``target``: through symlinks, into devices and FIFOs.

    A regular target is replaced by an fsynced rename (copied first when ``tmp`` is on another
    file system); ``tmp`` is gone afterwards. OS errors become one-line :class:`OutputError`.
    """
    tmp, target = Path(tmp), Path(target)
    real = _where(target)
    try:
        if _in_place(target) and not _confined(target):
            _stream_into(tmp, target)
            tmp.unlink()
            return
        _fsync_file(tmp)
        try:
            os.replace(tmp, real)
        except OSError as err:
            if err.errno != errno.EXDEV:
                raise
            with atomic_path(real) as local:
                shutil.copyfile(tmp, local)
            tmp.unlink()
            return
        _fsync_dir(real.parent)
    except OSError as err:
        raise output_error(err, target) from None


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path; when the block succeeds it becomes ``target`` (see :func:`place_file`).

    On any error the temporary file is removed and ``target`` is untouched; a full disk,
    an exceeded quota or a read-only file system becomes one :class:`OutputError` line.
    """
    pending = PendingFile(target)
    try:
        yield pending.tmp
    except OSError as err:
        pending.abort()
        raise output_error(err, pending.target) from None
    except BaseException as err:
        pending.abort()
        mapped = _stream_failure(err, pending)
        if mapped is not None:
            raise mapped from None
        raise
    pending.commit()


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_json(target: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``target`` atomically."""
    atomic_write_text(target, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def atomic_write_with(target: str | os.PathLike[str], writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result onto ``target`` atomically.

    Example: ``atomic_write_with("m.safetensors", lambda p: save_file(sd, str(p)))``.
    """
    with atomic_path(target) as tmp:
        writer(tmp)


def atomic_torch_save(target: str | os.PathLike[str], obj: Any) -> None:
    """``torch.save(obj)`` to ``target`` atomically; a failed write is an ``OSError``, not a C++ message.

    Example:
        >>> import tempfile, pathlib, torch
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.pt"
        >>> atomic_torch_save(p, {"x": torch.zeros(2)})
        >>> torch.load(p)["x"].tolist()
        [0.0, 0.0]
    """
    import torch

    with atomic_path(target) as tmp:
        # An unbuffered Python file: torch then writes through it and a full disk raises OSError(ENOSPC).
        with open(tmp, "wb", buffering=0) as fh:
            torch.save(obj, _as_binary(fh))
            os.fsync(fh.fileno())


def _as_binary(fh: Any) -> BinaryIO:
    return fh  # type: ignore[no-any-return]


# -- helpers ----------------------------------------------------------------------------------------


def output_error(err: OSError, target: str | os.PathLike[str]) -> OutputError:
    """One line for an ``OSError`` met while writing ``target``.

    Example:
        >>> print(output_error(OSError(errno.ENOSPC, "No space left on device"), "/data/a.json"))
        cannot write /data/a.json: no space left on the device holding /data (free some space or \
choose another output location)
    """
    target = Path(target)
    directory = _resolve(target).parent if str(target) else Path(".")
    code = err.errno
    if code == errno.ENOSPC:
        return OutputError(f"cannot write {target}: no space left on the device holding {directory}",
                           hint="free some space or choose another output location")
    if code == getattr(errno, "EDQUOT", -1):
        return OutputError(f"cannot write {target}: disk quota exceeded on the device holding {directory}",
                           hint="free some space or choose another output location")
    if code == errno.EROFS:
        return OutputError(f"cannot write {target}: the file system holding {directory} is read-only",
                           hint="choose another output location")
    if code == errno.EISDIR:
        return OutputError(f"cannot write {target}: it is a directory", hint="give a file name")
    if code in (errno.ENOTDIR, errno.EEXIST):
        return OutputError(f"cannot write {target}: a part of its path is a file, not a directory",
                           hint="choose another output location")
    if code in (errno.EACCES, errno.EPERM):
        return OutputError(f"cannot write {target}: permission denied", hint="choose a writable output location")
    return OutputError(f"cannot write {target}: {err.strerror or err}", hint="choose a writable output location")


def _stream_failure(err: BaseException, pending: PendingFile) -> OutputError | None:
    """A C++ writer's failure (torch.save, safetensors) read as a full disk when it looks like one."""
    if not isinstance(err, Exception) or isinstance(err, OutputError):
        return None
    text = str(err)
    if not any(marker in text for marker in _STREAM_FAILURES):
        return None
    for code, words in ((errno.ENOSPC, ("No space left", "os error 28")),
                        (getattr(errno, "EDQUOT", errno.ENOSPC), ("Disk quota exceeded",)),
                        (errno.EROFS, ("Read-only file system",))):
        if any(w in text for w in words):
            return output_error(OSError(code, os.strerror(code)), pending.target)
    try:
        vfs = os.statvfs(pending.tmp.parent)
        free = vfs.f_bavail * vfs.f_frsize
    except OSError:
        return None
    if free < _NEARLY_FULL:
        return output_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), pending.target)
    return OutputError(f"cannot write {pending.target}: the write failed ({text.splitlines()[0][:200]})",
                       hint="check the device holding it (full? removed?)")


def _copy_mode(real: Path, tmp: Path) -> None:
    """Give the temporary file the mode of the file it replaces, or what a plain ``open()`` would."""
    try:
        if os.path.islink(real):  # a link found in a confined directory: its target's mode is not ours
            raise FileNotFoundError(real)
        mode = stat.S_IMODE(os.stat(real).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    with contextlib.suppress(OSError):
        os.chmod(tmp, mode)


def _stream_into(tmp: Path, target: Path) -> None:
    """Copy ``tmp`` into a device, FIFO or descriptor path by opening it for writing."""
    with open(tmp, "rb") as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
        dst.flush()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (ignored where directories cannot be fsynced)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
