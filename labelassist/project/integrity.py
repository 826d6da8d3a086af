"""Health check of a project folder: database integrity, schema, bookkeeping, image files.

`check_folder` is ``labelassist project check FOLDER``: it opens the database read-only
without `Project.open` (so it also works on a project too damaged to open) and returns
one line per problem, an empty list when the project is sound. `Project.check` runs the
same checks on an open project.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from ..checks import check_classes
from . import schema as _schema
from .errors import ProjectReadOnlyError
from .store import DB_NAME, connect, looks_like_sqlite

__all__ = ["check_database", "check_folder"]

#: at most this many lines of SQLite's integrity report
_MAX_INTEGRITY_LINES = 50


def check_folder(folder: str | os.PathLike) -> list[str]:
    """The problems of the project in ``folder`` (one line each; empty: none found).

    Raises
    ------
    FileNotFoundError
        If ``folder`` does not exist.
    ValueError
        If ``folder`` holds no ``project.db``.

    Examples
    --------
    >>> import tempfile
    >>> from labelassist.project import Project
    >>> folder = tempfile.mkdtemp()
    >>> Project.create(folder, classes=["cell"]).close()
    >>> check_folder(folder)
    []
    """
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"no such project folder: {root}")
    db = root / DB_NAME
    if not db.is_file():
        raise ValueError(f"{root} is not a labelassist project (no {DB_NAME})")
    if not looks_like_sqlite(db):
        return [f"{DB_NAME} is not an SQLite database (its first bytes are not SQLite's header)"]
    try:
        con = connect(db, read_only=True)
    except (sqlite3.DatabaseError, ProjectReadOnlyError) as exc:
        return [f"{DB_NAME} cannot be opened: {exc}"]
    try:
        return check_database(con, root)
    finally:
        con.close()


def check_database(con: sqlite3.Connection, folder: Path) -> list[str]:
    """The problems of an open project database (see `check_folder`)."""
    try:
        report = con.execute(f"PRAGMA integrity_check({_MAX_INTEGRITY_LINES})").fetchall()
    except sqlite3.DatabaseError as exc:
        return [f"{DB_NAME}: SQLite cannot read the file to check it: {exc}"]
    lines = [line.strip() for row in report for line in str(row[0]).splitlines()]
    problems = [
        f"{DB_NAME} integrity: {line}"
        for line in lines[:_MAX_INTEGRITY_LINES]
        if line and line != "ok" and not line.startswith("*** in database")
    ]
    try:
        version = _check_schema(con, problems)
        if version == _schema.SCHEMA_VERSION:
            _check_bookkeeping(con, problems)
        if version == _schema.SCHEMA_VERSION or version in _schema.MIGRATIONS:
            _check_files(con, folder, problems)
    except sqlite3.DatabaseError as exc:
        problems.append(f"{DB_NAME}: reading it failed: {exc}")
    return problems


def _check_schema(con: sqlite3.Connection, problems: list[str]) -> int:
    """Append schema problems; return the schema version."""
    (version,) = con.execute("PRAGMA user_version").fetchone()
    if version > _schema.SCHEMA_VERSION:
        problems.append(
            f"schema version {version} is newer than this labelassist reads "
            f"({_schema.SCHEMA_VERSION}): pip install -U labelassist"
        )
        return int(version)
    if version < _schema.SCHEMA_VERSION and version not in _schema.MIGRATIONS:
        problems.append(f"unknown schema version {version}")
        return int(version)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "meta" not in tables:
        problems.append("table meta is missing: this is not a labelassist project database")
        return -1
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("format") != _schema.FORMAT:
        problems.append(f"meta.format is {meta.get('format')!r}, expected {_schema.FORMAT!r}")
    try:
        classes = json.loads(meta.get("classes", "null"))
        if not isinstance(classes, list):
            raise TypeError(f"meta.classes must be a JSON list of names, got {classes!r}")
        check_classes(classes, "meta.classes")
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
        problems.append(f"the project's classes are not valid: {exc}")
    if version < _schema.SCHEMA_VERSION:  # an older schema: Project.open migrates it
        return int(version)
    expected = _current_columns()
    for table, columns in expected.items():
        if table not in tables:
            problems.append(f"table {table} is missing")
            continue
        have = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
        lost = [c for c in columns if c not in have]
        if lost:
            problems.append(f"table {table} lacks columns {lost}")
    for table, rowid, parent, _ in con.execute("PRAGMA foreign_key_check").fetchall()[:10]:
        problems.append(f"table {table} row {rowid} refers to a missing {parent} row")
    return int(version)


def _current_columns() -> dict[str, list[str]]:
    """Column names of each table of the current schema (built in memory)."""
    mem = sqlite3.connect(":memory:")
    try:
        _schema.create_schema(mem, {})
        tables = [r[0] for r in mem.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: [r[1] for r in mem.execute(f"PRAGMA table_info({t})")] for t in tables}
    finally:
        mem.close()


def _check_bookkeeping(con: sqlite3.Connection, problems: list[str]) -> None:
    """The counters and pointers every save keeps in step agree with the data."""
    (dangling,) = con.execute(
        "SELECT count(*) FROM images i WHERE i.version != 0 AND NOT EXISTS"
        " (SELECT 1 FROM edits e WHERE e.image_id = i.id AND e.version = i.version)"
    ).fetchone()
    if dangling:
        problems.append(f"{dangling} image(s) point at a version that is not in the history")
    (miscounted,) = con.execute(
        "SELECT count(*) FROM images i WHERE i.n_instances != (SELECT count(*) FROM"
        " annotations a WHERE a.image_id = i.id AND a.version = i.version)"
    ).fetchone()
    if miscounted:
        problems.append(f"{miscounted} image(s) have a wrong n_instances")
    stored = {
        (label, source): n
        for label, source, n in con.execute("SELECT label, source, n FROM instance_counts")
        if n
    }
    recount = {
        (label, source): n
        for label, source, n in con.execute(
            "SELECT a.label, a.source, count(*) FROM annotations a JOIN images i"
            " ON a.image_id = i.id AND a.version = i.version GROUP BY a.label, a.source"
        )
    }
    if stored != recount:
        problems.append("instance_counts differ from a recount: Project.stats() is wrong")


def _check_files(con: sqlite3.Connection, folder: Path, problems: list[str]) -> None:
    """Every image file is where the database says."""
    base = str(folder)
    for number, stored in con.execute("SELECT id, path FROM images ORDER BY id"):
        path = os.path.normpath(os.path.join(base, stored))
        if not os.path.isfile(path):
            problems.append(f"image {number}: file not found: {path}")
