"""A run directory that is never clobbered and never shared: the existing-run check and the lock.

* :func:`check_new_run_dir` refuses to start a new run where one already is (its
  ``run.json``, ``best.pt``, ... are there) unless ``force``; :func:`clear_run_files` then
  removes the old run's files just before the new run writes its own, so the two never mix.
* :class:`RunLock` lets one process at a time work in a run directory. The lock file
  (``.mmbalance.lock``) holds the owner's PID and an ``flock`` on it; the kernel drops the
  ``flock`` when the owner dies however it dies, so a lock left by a dead process is taken over.
  A run directory is untrusted input: the lock is opened with ``O_NOFOLLOW | O_NONBLOCK`` and
  must be a regular file, so a planted symlink or FIFO is refused, never written through or
  waited on.

Example:
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> with RunLock(d):
    ...     RunLock(d).acquire()  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    mmbalance.errors.OutputError: run directory ... is in use by another mmbalance process (PID ...)
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from types import TracebackType

from ..errors import OutputError
from ..io import check_output_dir, check_output_file

__all__ = ["LOCK_FILE", "RUN_FILES", "RunLock", "check_new_run_dir", "clear_run_files", "existing_run_files"]

LOCK_FILE = ".mmbalance.lock"
# Files a run writes; any of them marks a directory as holding a run.
RUN_FILES = ("run.json", "resume.pt", "best.pt", "last.pt", "metrics.csv")
# Files a new run replaces only at its end of the first epoch: removed when it starts with force.
_STALE_ON_START = ("best.pt", "last.pt", "metrics.csv")

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the PID in the file is all there is
    fcntl = None  # type: ignore[assignment]


def existing_run_files(run_dir: str | os.PathLike[str]) -> list[str]:
    """The run files already in ``run_dir`` (names, in :data:`RUN_FILES` order)."""
    d = Path(run_dir)
    return [name for name in RUN_FILES if (d / name).exists() or (d / name).is_symlink()]


def check_new_run_dir(run_dir: str | os.PathLike[str], *, force: bool = False, probe_lock: bool = True) -> Path:
    """Fail at once when a new run cannot write ``run_dir``, or would overwrite a run there without ``force``.

    A directory another process works in is named as such first (its PID), not as "holds a
    run"; ``probe_lock=False`` skips that (the caller holds the lock, or is not rank 0).

    Example:
        >>> check_new_run_dir("runs/plain")  # doctest: +SKIP
        Traceback (most recent call last):
        mmbalance.errors.OutputError: runs/plain already holds a run (run.json, best.pt) ...
    """
    d = check_output_dir(run_dir, what="--out")
    for name in RUN_FILES:
        check_output_file(d / name, what="run file")
    if probe_lock:
        RunLock(d).probe()
    found = existing_run_files(d)
    if found and not force:
        raise OutputError(f"--out {d} already holds a run ({', '.join(found)}); it would be overwritten",
                          hint=f"continue it with --resume {d}, overwrite it with --force, or choose another --out")
    return d


def clear_run_files(run_dir: str | os.PathLike[str]) -> None:
    """Remove an old run's checkpoints and metrics (``force``), so they never mix with the new run's."""
    d = Path(run_dir)
    for name in _STALE_ON_START:
        with contextlib.suppress(FileNotFoundError):
            (d / name).unlink()


class RunLock:
    """One process at a time in a run directory; a second one fails at once, naming the holder's PID.

    Use as a context manager, or :meth:`acquire` / :meth:`release`.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(run_dir)
        self.path = self.dir / LOCK_FILE
        self._fd: int | None = None
        self._created = False

    def probe(self) -> None:
        """Raise :class:`OutputError` (naming the PID) when another process holds the lock; take nothing."""
        try:
            fd = os.open(self.path, os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise self._not_a_lock("a symbolic link") from None
            return  # no lock file (or none we can read): nobody to name
        try:
            self._check_regular(fd)
            holder = _read_pid(fd)
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as err:
                    if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise self._busy(holder) from None
                    return
                fcntl.flock(fd, fcntl.LOCK_UN)
            elif holder is not None and holder != os.getpid() and _alive(holder):
                raise self._busy(holder)
        finally:
            os.close(fd)

    def acquire(self) -> "RunLock":
        """Take the lock, or raise :class:`OutputError` when a live process holds it."""
        try:
            self._created = not self.dir.exists()
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            from ..io import output_error

            raise output_error(err, self.path) from None
        for _ in range(10):  # the file may be replaced under us by a holder that is releasing
            fd = self._open()
            if self._locked(fd):
                try:
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()}\n".encode())
                except OSError as err:  # a full disk: no empty lock is left behind
                    with contextlib.suppress(OSError):
                        self.path.unlink()
                    os.close(fd)
                    from ..io import output_error

                    raise output_error(err, self.path) from None
                self._fd = fd
                return self
        raise OutputError(f"cannot lock run directory {self.dir}", hint=f"remove {self.path} and try again")

    def _open(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise self._not_a_lock("a symbolic link") from None
            if err.errno in (errno.ENXIO, errno.EISDIR, errno.EWOULDBLOCK):
                raise self._not_a_lock("not a regular file") from None
            from ..io import output_error

            raise output_error(err, self.path) from None
        try:
            self._check_regular(fd)
        except OutputError:
            os.close(fd)
            raise
        return fd

    def _check_regular(self, fd: int) -> None:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) \
                else "not a regular file"
            raise self._not_a_lock(kind)

    def _not_a_lock(self, kind: str) -> OutputError:
        return OutputError(f"the lock file {self.path} is {kind}, not a lock mmbalance wrote; refusing to use "
                           f"run directory {self.dir}",
                           hint=f"remove {self.path} if no mmbalance process runs there, or choose another --out")

    def _locked(self, fd: int) -> bool:
        """Lock ``fd``; False when the file was replaced meanwhile (retry); raises when it is held."""
        holder = _read_pid(fd)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise OutputError(f"cannot lock run directory {self.dir}: {err.strerror or err}") from None
                os.close(fd)
                raise self._busy(_read_pid_at(self.path) or holder) from None
        elif holder is not None and holder != os.getpid() and _alive(holder):
            os.close(fd)
            raise self._busy(holder)
        try:
            same = os.fstat(fd).st_ino == os.lstat(self.path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
        return same

    def _busy(self, pid: int | None) -> OutputError:
        who = f"PID {pid}" if pid is not None else "PID unknown"
        return OutputError(f"run directory {self.dir} is in use by another mmbalance process ({who})",
                           hint="wait for it to finish or stop it, or choose another --out")

    def release(self) -> None:
        """Give the lock up (removing the lock file, and the directory when it made it and it is empty)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == os.lstat(self.path).st_ino:
                self.path.unlink()
        os.close(fd)
        if self._created:
            with contextlib.suppress(OSError):
                self.dir.rmdir()  # only when empty: a run that failed before writing anything

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except (OSError, ValueError):
        return None


def _read_pid_at(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        return _read_pid(fd)
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
