"""The project database: opening it (read-write or read-only), its lock and its transactions.

A `Store` is one open ``project.db`` with what every other module of the package needs
from it: the folder, the classes, `Store.read` and `Store.write` transactions (one
thread at a time through `Store.lock`; other processes queue on SQLite's busy timeout),
and the paths of images and checkpoints relative to the folder.

SQLite errors that mean the file is damaged become `ProjectDamagedError`, and writes to a
project without write access become `ProjectReadOnlyError`, each a one-line message that
says what to do.

Examples
--------
>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> create_database(folder, classes=["cell"], copy_images=False)
>>> store = Store.open(folder)
>>> with store.read() as con:
...     con.execute("SELECT count(*) FROM images").fetchone()
(0,)
>>> store.classes, store.read_only
(['cell'], False)
>>> store.close()
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .._version import __version__
from . import schema as _schema
from .errors import ProjectDamagedError, ProjectReadOnlyError

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DB_NAME",
    "Store",
    "connect",
    "create_database",
    "database_error",
    "read_transaction",
    "write_transaction",
]

logger = logging.getLogger(__name__)

#: The database file inside a project folder.
DB_NAME = "project.db"
#: How long a connection waits for another process's write transaction to finish.
BUSY_TIMEOUT_MS = 60_000


def connect(path: str | os.PathLike, *, read_only: bool = False) -> sqlite3.Connection:
    """Open ``path`` with the settings every process sharing a project uses.

    - autocommit mode (``isolation_level=None``): transactions are explicit, writes use
      ``BEGIN IMMEDIATE`` so that two writers queue on the busy timeout instead of one
      failing with ``database is locked`` when it upgrades a read lock;
    - ``journal_mode=WAL``: readers (training) and one writer (the napari plugin) run
      at the same time without blocking each other;
    - ``synchronous=FULL``: a transaction is on disk when ``COMMIT`` returns, so that a
      crash or power cut after an edit was reported as saved does not lose it;
    - ``busy_timeout``: waiting for another writer is silent (`BUSY_TIMEOUT_MS`).

    ``read_only=True`` opens with SQLite's ``mode=ro``; when the folder cannot be written
    either (no room for the WAL index), as ``immutable``, which is safe only because
    nobody with our rights can change the file (a WAL file with unmerged saves is refused).
    """
    path = Path(path)
    if read_only:
        return _connect_read_only(path)
    con = _sqlite(str(path))
    try:
        if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA synchronous = FULL")
        con.execute("PRAGMA foreign_keys = ON")
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the WAL now
    except BaseException:
        con.close()
        raise
    return con


def _sqlite(target: str, *, uri: bool = False) -> sqlite3.Connection:
    con = sqlite3.connect(
        target,
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
        check_same_thread=False,
        uri=uri,
    )
    con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return con


def _connect_read_only(path: Path) -> sqlite3.Connection:
    uri = path.resolve().as_uri()
    try:
        con = _sqlite(f"{uri}?mode=ro", uri=True)
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return con
    except sqlite3.OperationalError as exc:
        if not _cannot_write(exc):
            raise
    # no WAL index and no right to create one: read the file as it is
    wal = path.with_name(path.name + "-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        raise ProjectReadOnlyError(
            f"cannot read {path}: its folder cannot be written and {wal.name} holds saves not "
            "yet merged into it; open the project once with write access (that merges them)"
        )
    con = _sqlite(f"{uri}?mode=ro&immutable=1", uri=True)
    con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return con


@contextmanager
def write_transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any exception)."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        if con.in_transaction:  # SQLite may have rolled back already (a damaged page)
            con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextmanager
def read_transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A read transaction: every query inside sees the same snapshot."""
    if con.in_transaction:  # nested in a write transaction: already consistent
        yield con
        return
    con.execute("BEGIN")
    try:
        yield con
    finally:
        if con.in_transaction:
            con.execute("COMMIT")


def _error_name(exc: sqlite3.Error) -> str:
    return str(getattr(exc, "sqlite_errorname", ""))  # Python >= 3.11


def _is_damage(exc: sqlite3.Error) -> bool:
    name, text = _error_name(exc), str(exc)
    return (
        name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
        or "malformed" in text
        or "file is not a database" in text
    )


def _is_read_only(exc: sqlite3.Error) -> bool:
    return _error_name(exc).startswith("SQLITE_READONLY") or "readonly database" in str(exc)


def _cannot_write(exc: sqlite3.Error) -> bool:
    """Opening failed for lack of write access: to the file, or to the folder, where the
    WAL files are created (SQLite then says ``unable to open database file``)."""
    name = _error_name(exc)
    return _is_read_only(exc) or name.startswith("SQLITE_CANTOPEN") or "unable to open" in str(exc)


def database_error(
    exc: sqlite3.Error, folder: Path, action: str = "write to it"
) -> Exception | None:
    """The one-line project error for an SQLite error that means a damaged or read-only
    database, or None for any other error (re-raise it as it is)."""
    if _is_damage(exc):
        return ProjectDamagedError(
            f"the database of project {folder} is damaged ({exc}); run `labelassist project "
            f"check {folder}` to list the problems, and restore {DB_NAME} from a backup"
        )
    if _is_read_only(exc):
        return ProjectReadOnlyError(
            f"cannot {action}: project {folder} cannot be written ({exc}); copy the project "
            "folder somewhere you can write, or get write access to it"
        )
    return None


def looks_like_sqlite(path: Path) -> bool:
    with open(path, "rb") as f:
        header = f.read(16)
    return header == b"SQLite format 3\x00"


def create_database(
    folder: str | os.PathLike,
    *,
    classes: Sequence[str],
    copy_images: bool,
    keypoints: Sequence[str] | None = None,
    skeleton: Sequence[tuple[int, int]] = (),
) -> None:
    """Write a new, empty ``project.db`` (and ``checkpoints/``) into ``folder`` atomically.

    The caller checks the arguments (``keypoints`` names and a 0-based ``skeleton``, see
    `labelassist.project.keypoints`) and that ``folder`` holds no database yet.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "checkpoints").mkdir(exist_ok=True)
    # a fresh name (not mkstemp: its 0600 mode would lock out the team)
    tmp = str(folder / f".project-{uuid.uuid4().hex}.db")
    meta = {
        "classes": json.dumps(list(classes)),
        "copy_images": "1" if copy_images else "0",
        "created": _schema.now(),
        "created_by": f"labelassist {__version__}",
    }
    if keypoints is not None:
        meta["keypoints"] = json.dumps(list(keypoints))
        meta["skeleton"] = json.dumps([[int(a), int(b)] for a, b in skeleton])
    try:
        con = connect(tmp)
        try:
            with write_transaction(con):
                _schema.create_schema(con, meta)
        finally:
            con.close()  # checkpoints the WAL into the file
        os.replace(tmp, folder / DB_NAME)
    finally:
        for leftover in (tmp, tmp + "-wal", tmp + "-shm"):
            Path(leftover).unlink(missing_ok=True)


class Store:
    """One open project database; see the module docstring.

    Use `Store.open`. Attributes: ``folder`` (absolute Path), ``db``, ``classes``,
    ``copy_images``, ``images_dir``, ``checkpoint_dir``, ``read_only`` and ``lock`` (the
    `threading.RLock` that serializes this connection's users).
    """

    def __init__(
        self,
        folder: Path,
        con: sqlite3.Connection,
        meta: dict[str, str],
        *,
        read_only: bool = False,
        read_only_reason: str = "",
    ) -> None:
        self.folder = folder
        self.db = folder / DB_NAME
        self._folder_str = str(folder)
        self._con: sqlite3.Connection | None = con
        self.lock = threading.RLock()
        self.classes: list[str] = json.loads(meta["classes"])
        self.copy_images: bool = meta.get("copy_images") == "1"
        self.images_dir = folder / "images"
        self.checkpoint_dir = folder / "checkpoints"
        self.read_only = read_only
        self._read_only_reason = read_only_reason

    @classmethod
    def open(cls, folder: str | os.PathLike) -> Store:
        """Open the project database in ``folder``; read-only when it cannot be written.

        Migrates an older schema version (which needs write access).
        """
        folder = Path(folder).expanduser().resolve()
        if not folder.is_dir():
            raise FileNotFoundError(f"no such project folder: {folder}")
        db = folder / DB_NAME
        if not db.is_file():
            raise ValueError(
                f"{folder} is not a labelassist project (no {DB_NAME}); create one with "
                "Project.create or `labelassist project init`"
            )
        if not looks_like_sqlite(db):
            raise ValueError(f"{folder} is not a labelassist project ({DB_NAME} is not SQLite)")
        try:
            return cls._open(folder, db)
        except sqlite3.DatabaseError as exc:
            error = database_error(exc, folder, "open it")
            if error is None:
                raise
            raise error from exc

    @classmethod
    def _open(cls, folder: Path, db: Path) -> Store:
        read_only, reason = False, ""
        con = None
        if not os.access(db, os.W_OK):
            read_only, reason = True, f"no write access to {db}"
        else:
            try:
                con = connect(db)
            except sqlite3.OperationalError as exc:
                if not _cannot_write(exc):
                    raise
                read_only, reason = True, f"SQLite cannot write in {folder}: {exc}"
        if con is None:
            con = connect(db, read_only=True)
            logger.info("opened project %s read-only (%s)", folder, reason)
        try:
            meta = _read_meta(con, folder)
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > _schema.SCHEMA_VERSION:
                raise ValueError(
                    f"project {folder} was created by a newer labelassist (schema version "
                    f"{version}, this labelassist reads up to {_schema.SCHEMA_VERSION}); "
                    "upgrade: pip install -U labelassist"
                )
            if version < _schema.SCHEMA_VERSION:
                if version not in _schema.MIGRATIONS:
                    raise ValueError(f"project {folder} has unknown schema version {version}")
                if read_only:
                    raise ProjectReadOnlyError(
                        f"project {folder} has schema version {version} and must be upgraded "
                        f"to {_schema.SCHEMA_VERSION}, which needs write access ({reason}); "
                        "open it once where it can be written"
                    )
                logger.info(
                    "migrating project %s from schema %d to %d",
                    folder,
                    version,
                    _schema.SCHEMA_VERSION,
                )
                with write_transaction(con):
                    _schema.migrate(con, folder)
        except BaseException:
            con.close()
            raise
        return cls(folder, con, meta, read_only=read_only, read_only_reason=reason)

    # -- the connection ------------------------------------------------------------------
    @property
    def con(self) -> sqlite3.Connection:
        """The open connection; raises ValueError when the project is closed."""
        if self._con is None:
            raise ValueError("the project is closed; open it again with Project.open")
        return self._con

    @property
    def closed(self) -> bool:
        return self._con is None

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self.lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def reader(self) -> sqlite3.Connection:
        """A new connection of its own, for a long read (a streamed export) that should
        neither hold `lock` nor see later writes. The caller closes it."""
        self.con  # noqa: B018  (raises when closed)
        try:
            return connect(self.db, read_only=self.read_only)
        except sqlite3.DatabaseError as exc:
            error = database_error(exc, self.folder, "read it")
            if error is None:
                raise
            raise error from exc

    # -- transactions --------------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction (one consistent snapshot) on the shared connection."""
        with self.lock:
            con = self.con
            try:
                with read_transaction(con):
                    yield con
            except sqlite3.DatabaseError as exc:
                error = database_error(exc, self.folder, "read it")
                if error is None:
                    raise
                raise error from exc

    @contextmanager
    def write(self, action: str) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), committed durably when the block ends
        and rolled back on any exception. ``action`` names the operation in errors."""
        self.require_writable(action)
        with self.lock:
            con = self.con
            try:
                with write_transaction(con):
                    yield con
            except sqlite3.DatabaseError as exc:
                error = database_error(exc, self.folder, action)
                if error is None:
                    raise
                raise error from exc

    def require_writable(self, action: str) -> None:
        """Raise `ProjectReadOnlyError` (naming ``action``) when the project is read-only;
        called before a write touches anything, files included."""
        self.con  # noqa: B018  (raises when closed)
        if self.read_only:
            raise ProjectReadOnlyError(
                f"cannot {action}: project {self.folder} is open read-only "
                f"({self._read_only_reason}); copy the project folder somewhere you can "
                "write, or get write access to it"
            )

    # -- paths ---------------------------------------------------------------------------
    def absolute(self, stored: str) -> Path:
        """A stored path (relative to the folder, or absolute) as an absolute Path."""
        return Path(self.absolute_str(stored))

    def absolute_str(self, stored: str) -> str:
        """Like `absolute`, as a normalized str (plain os.path: ``images()`` builds 100k)."""
        return os.path.normpath(os.path.join(self._folder_str, stored))

    def stored_path(self, path: Path) -> str:
        """``path`` as stored in the database: relative to the project folder when
        possible (POSIX separators), absolute otherwise (another drive on Windows)."""
        try:
            return Path(os.path.relpath(path, self.folder)).as_posix()
        except ValueError:
            return path.as_posix()


def _read_meta(con: sqlite3.Connection, folder: Path) -> dict[str, str]:
    try:
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.OperationalError:  # no such table: some other SQLite file
        meta = {}
    if meta.get("format") != _schema.FORMAT:
        raise ValueError(f"{folder} is not a labelassist project ({DB_NAME} has no project data)")
    try:
        classes = json.loads(meta["classes"])
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise TypeError(f"not a list of names: {classes!r}")
    except (KeyError, ValueError, TypeError) as exc:
        raise ProjectDamagedError(
            f"project {folder} has no readable class list in {DB_NAME} ({type(exc).__name__}: "
            f"{exc}); run `labelassist project check {folder}`"
        ) from None
    return meta
