"""The SQLite schema of a labeling project: its tables, versions and migrations.

The database file is ``project.db`` inside the project folder. ``PRAGMA user_version``
holds the schema version. Connections and transactions are `labelassist.project.store`'s
job; the functions here run inside a transaction the caller holds.

Schema history
--------------
1. ``meta``, ``images`` (status), ``annotations`` (one current set per image, with
   ``source``), ``rounds`` (checkpoint and metrics).
2. Edit history: every save is a new *version* of an image's annotations (table
   ``edits``; ``images.version`` points at the current one, ``undo`` moves it back).
   Stable ``instance_id`` per object across versions, ``model_id`` provenance, image
   ``split``, ``origin`` (the resolved source path, for duplicate detection),
   ``uncertainty`` (cached score proxy for `Project.next_image`), ``updated``
   timestamps, round ``parent``/``image_ids``/counts, and ``instance_counts`` (per class
   and source, kept in step with every save so that statistics cost nothing).
3. The effort log: tables ``actions`` (what a person did to each instance, with a time
   stamp and the round it counts for; see `labelassist.project.actions`) and
   ``active_time`` (seconds of active work per image); the provenance ``"prompted"``
   (an instance added by a box or point prompt) in ``edits`` and ``annotations``.
4. Stacks (z-stacks, time-lapse): table ``stacks`` (layout, shape, divisions); each
   plane is a row of ``images`` (its pixels a 2-D file under ``planes/``) with
   ``stack_id`` and ``plane`` (its index in C order over the stack axes), so versions,
   provenance, undo, status and the effort log work per plane unchanged; the 3-D object
   or track id of each instance in ``annotations.object_id`` (see
   `labelassist.project.stacks`). Added columns only: 2-D projects are untouched.
5. Keypoints: ``annotations.keypoints`` (each instance's ``(K, 3)`` points as float64
   bytes, NULL when none is labelled); the names and skeleton are ``meta`` rows (see
   `labelassist.project.keypoints`). An added column only: rows without keypoints are
   untouched.
"""

from __future__ import annotations

import datetime
import sqlite3
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "SCHEMA_VERSION",
    "FORMAT",
    "STATUSES",
    "QUEUE",
    "SOURCES",
    "SPLITS",
    "ACTIONS",
    "create_schema",
    "migrate",
    "now",
]

SCHEMA_VERSION = 5
#: Value of ``meta.format``: marks a SQLite file as a labelassist project.
FORMAT = "labelassist-project"
STATUSES = ("new", "pre-annotated", "in-review", "reviewed", "skipped")
SOURCES = ("model", "corrected", "human", "prompted")
SPLITS = ("train", "val")
#: What the effort log records: per instance (see `labelassist.project.actions`), and
#: ``"reviewed"`` per image (it was accepted: its status became ``"reviewed"``).
ACTIONS = (
    "accepted",
    "deleted",
    "drawn",
    "prompted",
    "edited",
    "relabelled",
    "refined",
    "reviewed",
)

#: Statuses still to be labelled (`Project.next_image`); the partial index ``images_queue``
#: and its queries use this exact expression.
QUEUE = "status IN ('new', 'pre-annotated', 'in-review')"


def _is_in(column: str, values: tuple[str, ...]) -> str:
    """An SQL CHECK expression: ``column IN ('a', 'b')``."""
    return "{} IN ({})".format(column, ", ".join(f"'{v}'" for v in values))


_STATUS_CHECK = _is_in("status", STATUSES)


def _tables(sources: tuple[str, ...]) -> str:
    """The DDL of the tables of versions 2 and later (with the ``source`` values of one)."""
    source_check = _is_in("source", sources)
    return f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    file_name TEXT NOT NULL,
    path TEXT NOT NULL,
    origin TEXT NOT NULL UNIQUE,
    height INTEGER NOT NULL CHECK (height > 0),
    width INTEGER NOT NULL CHECK (width > 0),
    status TEXT NOT NULL DEFAULT 'new' CHECK ({_STATUS_CHECK}),
    split TEXT CHECK (split IN ('train', 'val')),
    version INTEGER NOT NULL DEFAULT 0,
    n_instances INTEGER NOT NULL DEFAULT 0,
    uncertainty REAL,
    updated TEXT NOT NULL
);
CREATE INDEX images_status ON images (status, split);
CREATE INDEX images_queue ON images (uncertainty DESC, id) WHERE {QUEUE};
CREATE INDEX images_todo ON images (id) WHERE {QUEUE};
CREATE TABLE edits (
    image_id INTEGER NOT NULL REFERENCES images (id),
    version INTEGER NOT NULL,
    parent INTEGER NOT NULL,
    source TEXT NOT NULL CHECK ({source_check}),
    model_id TEXT,
    n_instances INTEGER NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (image_id, version)
) WITHOUT ROWID;
CREATE TABLE annotations (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images (id),
    version INTEGER NOT NULL,
    instance_id INTEGER,
    label INTEGER NOT NULL CHECK (label >= 0),
    score REAL NOT NULL,
    source TEXT NOT NULL CHECK ({source_check}),
    geometry BLOB NOT NULL
);
CREATE INDEX annotations_image ON annotations (image_id, version);
CREATE TABLE instance_counts (
    label INTEGER NOT NULL,
    source TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (label, source)
) WITHOUT ROWID;
CREATE TABLE rounds (
    round INTEGER PRIMARY KEY,
    checkpoint TEXT NOT NULL,
    parent INTEGER REFERENCES rounds (round),
    image_ids TEXT NOT NULL,
    metrics TEXT NOT NULL,
    n_images INTEGER NOT NULL,
    n_instances INTEGER NOT NULL,
    created TEXT NOT NULL
);
"""


#: The effort log (schema 3). ``round``: the training round the entry counts for, 1 +
#: the rounds recorded before it (see `labelassist.project.effort`).
_EFFORT_TABLES = f"""
CREATE TABLE actions (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images (id),
    instance_id INTEGER,
    action TEXT NOT NULL CHECK ({_is_in("action", ACTIONS)}),
    version INTEGER NOT NULL,
    round INTEGER NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX actions_image ON actions (image_id, action);
CREATE INDEX actions_round ON actions (round, action);
CREATE TABLE active_time (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images (id),
    seconds REAL NOT NULL CHECK (seconds >= 0),
    round INTEGER NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX active_time_image ON active_time (image_id);
"""

#: Stacks (schema 4): added by `_migrate_3_to_4`, run by `create_schema` too, so that a
#: new project and a migrated one have the same tables, column for column.
_STACK_TABLES = """
CREATE TABLE stacks (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    origin TEXT NOT NULL UNIQUE,
    axes TEXT NOT NULL CHECK (axes IN ('ZYX', 'TYX', 'TZYX')),
    shape TEXT NOT NULL,
    source_axes TEXT NOT NULL,
    channels TEXT,
    parents TEXT NOT NULL DEFAULT '{}',
    created TEXT NOT NULL
);
ALTER TABLE images ADD COLUMN stack_id INTEGER REFERENCES stacks (id);
ALTER TABLE images ADD COLUMN plane INTEGER CHECK (plane >= 0);
CREATE UNIQUE INDEX images_stack ON images (stack_id, plane) WHERE stack_id IS NOT NULL;
ALTER TABLE annotations ADD COLUMN object_id INTEGER CHECK (object_id >= 1)
"""

#: Schema 2 as it was (its migration from 1 creates exactly this; 2 -> 3 follows).
_SCHEMA_V2 = _tables(("model", "corrected", "human"))
_SCHEMA = _tables(SOURCES) + _EFFORT_TABLES


def _execute_all(con: sqlite3.Connection, script: str, *, skip: str = "\0") -> None:
    """Run each statement of ``script`` (``;``-separated) not starting with ``skip``."""
    for statement in script.split(";"):
        if statement.strip() and not statement.strip().startswith(skip):
            con.execute(statement)


def now() -> str:
    """The current UTC time as an ISO 8601 string with milliseconds (sortable)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def create_schema(con: sqlite3.Connection, meta: dict[str, str]) -> None:
    """Create the current schema and the ``meta`` rows (inside the caller's transaction)."""
    _execute_all(con, _SCHEMA)
    _migrate_3_to_4(con, Path())
    _migrate_4_to_5(con, Path())
    con.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)",
        [("format", FORMAT), *sorted(meta.items())],
    )
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _migrate_1_to_2(con: sqlite3.Connection, folder: Path) -> None:
    timestamp = now()
    con.execute("ALTER TABLE images RENAME TO images_v1")
    con.execute("ALTER TABLE annotations RENAME TO annotations_v1")
    con.execute("ALTER TABLE rounds RENAME TO rounds_v1")
    _execute_all(con, _SCHEMA_V2, skip="CREATE TABLE meta")
    con.execute(
        "INSERT INTO images (id, file_name, path, origin, height, width, status, version,"
        " n_instances, updated) SELECT id, file_name, path, path, height, width, status,"
        " 0, 0, ? FROM images_v1",
        (timestamp,),
    )
    # one version per image that has annotations; version 1, parent 0 (no annotations)
    con.execute(
        "INSERT INTO edits (image_id, version, parent, source, model_id, n_instances, created)"
        " SELECT image_id, 1, 0, CASE WHEN count(DISTINCT source) = 1 THEN min(source)"
        " ELSE 'corrected' END, NULL, count(*), ? FROM annotations_v1 GROUP BY image_id",
        (timestamp,),
    )
    con.execute(
        "INSERT INTO annotations (id, image_id, version, instance_id, label, score, source,"
        " geometry) SELECT id, image_id, 1, id, label, score, source, geometry"
        " FROM annotations_v1"
    )
    con.execute(
        "UPDATE images SET version = 1, n_instances = (SELECT n_instances FROM edits"
        " WHERE edits.image_id = images.id) WHERE id IN (SELECT image_id FROM edits)"
    )
    con.execute(
        "INSERT INTO instance_counts (label, source, n) SELECT label, source, count(*)"
        " FROM annotations GROUP BY label, source"
    )
    con.execute(
        "INSERT INTO rounds (round, checkpoint, parent, image_ids, metrics, n_images,"
        " n_instances, created) SELECT round, checkpoint, NULL, '[]', coalesce(metrics, '{}'),"
        " 0, 0, coalesce(created, ?) FROM rounds_v1",
        (timestamp,),
    )
    # origin: the resolved file, for duplicate detection (v1 stored paths only)
    rows = con.execute("SELECT id, path FROM images").fetchall()
    con.executemany(
        "UPDATE images SET origin = ? WHERE id = ?",
        [((folder / path).resolve().as_posix(), image_id) for image_id, path in rows],
    )
    for table in ("annotations_v1", "images_v1", "rounds_v1"):
        con.execute(f"DROP TABLE {table}")


def _migrate_2_to_3(con: sqlite3.Connection, folder: Path) -> None:
    """Add the effort log; let ``edits`` and ``annotations`` hold the source "prompted"
    (SQLite cannot change a CHECK constraint: both tables are copied)."""
    current = _tables(SOURCES)
    con.execute("DROP INDEX annotations_image")
    for table in ("edits", "annotations"):
        con.execute(f"ALTER TABLE {table} RENAME TO old_{table}")
        con.execute(_statement(current, f"CREATE TABLE {table} "))
        columns = ", ".join(r[1] for r in con.execute(f"PRAGMA table_info(old_{table})"))
        con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM old_{table}")
        con.execute(f"DROP TABLE old_{table}")
    con.execute(_statement(current, "CREATE INDEX annotations_image "))
    _execute_all(con, _EFFORT_TABLES)


def _migrate_3_to_4(con: sqlite3.Connection, folder: Path) -> None:
    """Add stacks: table ``stacks``, plane columns of ``images``, ``annotations.object_id``."""
    _execute_all(con, _STACK_TABLES)


def _migrate_4_to_5(con: sqlite3.Connection, folder: Path) -> None:
    """Add keypoints: the column ``annotations.keypoints``."""
    con.execute("ALTER TABLE annotations ADD COLUMN keypoints BLOB")


def _statement(script: str, start: str) -> str:
    """The one statement of ``script`` that starts with ``start``."""
    [statement] = [s for s in script.split(";") if s.strip().startswith(start)]
    return statement


#: ``from_version -> function`` that upgrades the schema by one version, inside the
#: caller's transaction.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection, Path], None]] = {
    1: _migrate_1_to_2,
    2: _migrate_2_to_3,
    3: _migrate_3_to_4,
    4: _migrate_4_to_5,
}


def migrate(con: sqlite3.Connection, folder: Path) -> None:
    """Upgrade the project in ``folder`` to `SCHEMA_VERSION`, inside the caller's write
    transaction (which holds the lock: the version is read again here, since another
    process may have migrated meanwhile)."""
    version = con.execute("PRAGMA user_version").fetchone()[0]
    while version < SCHEMA_VERSION:
        MIGRATIONS[version](con, folder)
        version += 1
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    problems = con.execute("PRAGMA foreign_key_check").fetchall()
    if problems:
        raise ValueError(f"cannot migrate the project: broken references {problems[:5]}")
