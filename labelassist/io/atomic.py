"""Atomic file writes: a temp file in the target folder, fsync, then ``os.replace``.

Readers see the old file or the complete new one, never a partial write. The temp file of
a write to ``<folder>/<name>`` is ``<folder>/.<name>.<random>.labelassist<suffix>`` (a
long ``<name>`` is shortened to fit the file system's name limit).

Leftovers and how they are cleaned
----------------------------------
A failed write (an exception, a full disk) removes its temp file. A writer that is
killed (SIGKILL, power loss) cannot, so the rule is: while a writer lives it holds an
exclusive ``flock`` on its temp file (the kernel drops it when the process ends, however
it ends). The first atomic write into a folder by a process removes every file in that
folder that has the temp naming above and whose lock it can take, i.e. whose writer is
dead. Files of other names, and temp files of live writers (other processes, other
hosts of a shared file system that honours ``flock``), are never touched. Where locks
are not available (no ``fcntl``, a file system without ``flock``) nothing is removed.
Later writes into the same folder by the same process do not scan it again (the scan
costs a folder listing).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locks, no cleaning
    fcntl = None  # type: ignore[assignment]

__all__ = ["TempFile", "atomic_write", "remove_stale_temp_files"]

#: Marks the temp files of labelassist's atomic writes (see the module notes).
TEMP_MARK = ".labelassist"

_NAME_MAX = 255  # bytes in one file name on the common file systems
_RANDOM = 8  # characters `tempfile.mkstemp` puts between prefix and suffix
# a temp file: "." + (possibly shortened) name + "." + random + mark + suffix
_TEMP_RE = re.compile(
    rf"\.(?P<name>.+)\.[a-z0-9_]{{{_RANDOM}}}{re.escape(TEMP_MARK)}(\.\w+)*", re.ASCII
)

_cleaned: set[str] = set()  # folders this process has cleaned
_cleaned_lock = threading.Lock()


def _umask() -> int:
    """The process umask, read without changing it where the system allows."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _prefix(name: str, suffix: str) -> str:
    """The temp-name prefix for target ``name``; shortened so the whole name fits."""
    room = _NAME_MAX - len(f"..{'x' * _RANDOM}{TEMP_MARK}{suffix}".encode())
    while len(name.encode("utf-8", "surrogateescape")) > room and name:
        name = name[:-1]
    return f".{name}."


def _check_suffix(suffix: str) -> str:
    if not isinstance(suffix, str) or not re.fullmatch(r"(\.\w+)*", suffix, re.ASCII):
        raise ValueError(f"suffix must be '' or like '.tmp' (a dot and letters), got {suffix!r}")
    return suffix


def _check_target(path: Path) -> None:
    """An existing target must be a regular file: never replace a device or a folder."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    except OSError:
        return  # e.g. a name too long: the write itself says so
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder; give a file name in it", str(path))
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(
            f"{path} is not a regular file (a device, FIFO or socket); atomic writes replace "
            "files only: give the path of a file"
        )


class TempFile:
    """A binary temp file next to ``path`` that `commit` moves onto ``path`` atomically.

    The building block of `atomic_write`, for writers that need more than one file
    (e.g. a COCO file written from two streams). The file is locked while it exists
    (see the module notes); `discard` always removes it, even when closing it fails
    (a full disk).

    Parameters
    ----------
    path : str or os.PathLike
        The file the temp file will replace; its folder is created when missing.
    suffix : str
        Ending of the temp file's name, ``".tmp"`` by default.

    Attributes
    ----------
    file : IO[bytes]
        The open file (``"w+b"``).
    name : str
        Its path.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> tmp = TempFile(target)
    >>> _ = tmp.file.write(b"hello")
    >>> tmp.commit()
    >>> target.read_bytes()
    b'hello'
    """

    def __init__(self, path: str | os.PathLike, *, suffix: str = ".tmp") -> None:
        self.path = Path(path)
        suffix = _check_suffix(suffix)
        _check_target(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _clean_once(self.path.parent)
        prefix = _prefix(self.path.name, suffix)
        while True:
            fd, name = tempfile.mkstemp(
                prefix=prefix, suffix=f"{TEMP_MARK}{suffix}", dir=self.path.parent
            )
            locked = _lock(fd, blocking=True)
            if locked is None or _still_named(fd, name):
                break
            os.close(fd)  # a cleaner removed it before we held the lock: make another
        self.name = name
        self.file: IO[bytes] = os.fdopen(fd, "w+b")
        self._done = False

    def commit(self, *, mode: int | None = None) -> None:
        """Flush, fsync and move the file onto ``path``; it gets ``mode`` (default
        ``0o666`` minus the umask, not ``mkstemp``'s owner-only ``0o600``)."""
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            os.fchmod(self.file.fileno(), (0o666 & ~_umask()) if mode is None else mode)
            os.replace(self.name, self.path)
            self._done = True
        finally:
            self.discard()

    def discard(self) -> None:
        """Close the file (errors ignored) and remove it unless committed; idempotent."""
        with contextlib.suppress(OSError):
            self.file.close()  # releases the lock
        if not self._done:
            self._done = True
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.name)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[IO[bytes]]:
    """Open a binary temp file next to ``path``; on success it replaces ``path``.

    Readers see the old file or the complete new one, never a partial write; on an
    exception (a full disk included) the temp file is removed and ``path`` is untouched.
    The new file gets the usual permissions (``0o666`` minus the umask), not
    ``mkstemp``'s owner-only ``0o600``. Temp files left by killed writers are removed
    (see the module notes).

    Raises
    ------
    IsADirectoryError
        ``path`` is a folder.
    ValueError
        ``path`` exists and is not a regular file (``/dev/null``, a FIFO): it is never
        replaced.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.bin"
    >>> with atomic_write(target) as fh:
    ...     _ = fh.write(b"done")
    >>> target.read_bytes()
    b'done'
    """
    tmp = TempFile(path, suffix=suffix)
    try:
        yield tmp.file
        tmp.commit()
    finally:
        tmp.discard()


def remove_stale_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temp files that killed writers left in ``folder``; return them.

    Only files named like labelassist's temp files whose lock no process holds (see the
    module notes). `atomic_write` and `TempFile` call it once per folder and process.

    Examples
    --------
    >>> import tempfile
    >>> remove_stale_temp_files(tempfile.mkdtemp())
    []
    """
    removed: list[Path] = []
    if fcntl is None:  # pragma: no cover
        return removed
    try:
        entries = list(os.scandir(os.fspath(folder)))
    except OSError:
        return removed
    for entry in entries:
        if _TEMP_RE.fullmatch(entry.name) and _remove_if_stale(entry.path):
            removed.append(Path(entry.path))
    return removed


def _clean_once(folder: Path) -> None:
    key = os.path.abspath(folder)
    with _cleaned_lock:
        if key in _cleaned:
            return
        _cleaned.add(key)
    remove_stale_temp_files(folder)


def _lock(fd: int, *, blocking: bool) -> bool | None:
    """Take an exclusive flock: True, False (held elsewhere) or None (no locks here)."""
    if fcntl is None:  # pragma: no cover
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError:  # ENOLCK, EOPNOTSUPP: this file system has no locks
        return None
    return True


def _still_named(fd: int, name: str) -> bool:
    """Whether ``name`` still is the file open as ``fd``."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(name, follow_symlinks=False))
    except FileNotFoundError:
        return False


def _remove_if_stale(name: str) -> bool:
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(name, flags)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        if _lock(fd, blocking=False) is not True or not _still_named(fd, name):
            return False  # a live writer holds it, or no locks here, or already gone
        os.unlink(name)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
