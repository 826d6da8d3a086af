"""An image's instances in a project: saving versions with provenance, reading, history, undo.

Every save is a new *version* of the image's instances (table ``edits``); the image row
points at the current one and `undo` moves it back. Each instance keeps a stable
``instance_id`` across versions and a ``source`` (``"model"``, ``"corrected"``,
``"human"``, ``"prompted"``). Saves are optimistic-concurrency safe: `save_instances` with
``expected_version`` checks, in the same ``BEGIN IMMEDIATE`` transaction as the write, that
nobody saved the image since it was read (`ProjectConflictError` otherwise). An edit save
(source ``"corrected"`` or ``"prompted"``) records the person's actions in the effort log
in the same transaction (`labelassist.project.actions`).

In a project that names keypoints (`labelassist.project.keypoints`) every instance also
keeps its ``(K, 3)`` points per version: a save whose `Instances` have no keypoints
(``keypoints=None``) keeps the points of the instances it keeps (by ``instance_id``), and
a changed point makes the instance ``"corrected"`` like a changed outline.

The planes of a stack are images too (`labelassist.project.stacks`); their instances
also keep an ``extra["object_id"]`` column (the 3-D object or track, ints >= 1), stored
with each instance and returned for planes only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import shapely

from ..checks import check_choice, check_int
from ..instances import Instances
from . import schema as _schema
from .actions import EDIT_SOURCES, Change, actions_of, record_actions
from .errors import ProjectConflictError
from .images import image_id, image_row
from .keypoints import (
    check_instance_keypoints,
    encode_points,
    read_names,
    same_points,
    stack_points,
)
from .store import Store

__all__ = [
    "UNCERTAIN_BAND",
    "Revision",
    "history",
    "instances",
    "read_version",
    "save_instances",
    "undo",
    "write_instances",
]

#: Model scores in ``[low, high)`` count as uncertain for ``next_image``'s stored-score proxy.
UNCERTAIN_BAND = (0.3, 0.8)


class Revision(NamedTuple):
    """An image's instances together with the version they are (see `Project.instances`).

    Pass ``version`` back as ``expected_version`` to `Project.save_instances`.
    """

    instances: Instances
    version: int


def save_instances(
    store: Store,
    image: Any,
    instances: Instances,
    *,
    source: str = "model",
    model_id: str | None = None,
    expected_version: int | None = None,
) -> Revision:
    """Save a new version of an image's instances; return it as stored (see
    `Project.save_instances`)."""
    if not isinstance(instances, Instances):
        raise TypeError(f"instances must be an Instances, got {type(instances).__name__}")
    check_choice(source, "source", _schema.SOURCES)
    if model_id is not None and not isinstance(model_id, str):
        raise TypeError(f"model_id must be a str or None, got {model_id!r}")
    expected = check_int(expected_version, "expected_version", minimum=0, allow_none=True)
    if len(instances) and int(instances.labels.max()) >= len(store.classes):
        raise ValueError(
            f"instances have label {int(instances.labels.max())}, but the project has "
            f"{len(store.classes)} classes {store.classes} (labels are 0-based indices)"
        )
    _flags(instances, "refined")  # checked before the transaction
    object_ids(instances)
    number = image_id(image)
    with store.write("save instances") as con:
        version = write_instances(
            con, number, instances, source, model_id, expected_version=expected
        )
        saved = read_version(con, number, version, instances.image_shape)
    return Revision(saved, version)


def write_instances(
    con: sqlite3.Connection,
    image: int,
    instances: Instances,
    source: str,
    model_id: str | None,
    *,
    status: str | None = None,
    expected_version: int | None = None,
) -> int:
    """Write a new version inside the caller's write transaction; return its number.

    ``status`` None moves the image's status as `Project.save_instances` describes.
    """
    row = con.execute(
        "SELECT height, width, status, version FROM images WHERE id = ?", (image,)
    ).fetchone()
    if row is None:
        raise ValueError(f"image {image} is not in this project; see Project.images()")
    height, width, old_status, current = row
    if expected_version is not None and expected_version != current:
        raise ProjectConflictError(
            f"image {image} changed since it was read (expected version {expected_version}, "
            f"the current version is {current}); nothing was saved: read it again with "
            "Project.instances(..., with_version=True) and re-apply your edit"
        )
    if tuple(instances.image_shape) != (height, width):
        raise ValueError(
            f"instances have image_shape {instances.image_shape}, but image {image} is "
            f"(height, width) = ({height}, {width})"
        )
    names, _ = read_names(con)
    check_instance_keypoints(instances, names)
    wkb = shapely.to_wkb(instances.polygons) if len(instances) else []
    previous = con.execute(
        "SELECT instance_id, label, source, geometry, keypoints FROM annotations"
        " WHERE image_id = ? AND version = ?",
        (image, current),
    ).fetchall()
    points = encode_points(instances)
    if names is not None and instances.keypoints is None:  # kept instances keep theirs
        before = {r[0]: r[4] for r in previous}
        points = [before.get(i) for i in _instance_ids_of(instances)]
    ids, sources, changes = _provenance(con, image, instances, source, previous, points)
    (latest,) = con.execute(
        "SELECT coalesce(max(version), 0) FROM edits WHERE image_id = ?", (image,)
    ).fetchone()
    version = latest + 1
    stamp = _schema.now()
    n = len(instances)
    con.execute(
        "INSERT INTO edits (image_id, version, parent, source, model_id, n_instances, created)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (image, version, current, source, model_id, n, stamp),
    )
    labels, scores = instances.labels.tolist(), instances.scores.tolist()
    objects = object_ids(instances)
    rows: list[tuple[Any, ...]] = [
        (image, version, ids[k], labels[k], scores[k], sources[k], wkb[k]) for k in range(n)
    ]
    columns = "image_id, version, instance_id, label, score, source, geometry"
    if objects is not None:  # planes of stacks (schema 4)
        columns += ", object_id"
        rows = [(*row, objects[k]) for k, row in enumerate(rows)]
    if any(p is not None for p in points):  # keypoints (schema 5)
        columns += ", keypoints"
        rows = [(*row, points[k]) for k, row in enumerate(rows)]
    marks = ", ".join("?" * len(columns.split(", ")))
    con.executemany(f"INSERT INTO annotations ({columns}) VALUES ({marks})", rows)
    if None in ids:
        con.execute(
            "UPDATE annotations SET instance_id = id WHERE image_id = ? AND version = ?"
            " AND instance_id IS NULL",
            (image, version),
        )
    _update_counts(con, [(r[1], r[2]) for r in previous], -1)
    _update_counts(con, zip(labels, sources, strict=True), +1)
    if changes is not None:
        _record_edit(con, image, version, instances, ids, sources, changes, previous)
    if status is None:
        status = old_status
        if source == "model" and old_status == "new":
            status = "pre-annotated"
        elif source != "model" and old_status in ("new", "pre-annotated"):
            status = "in-review"
    con.execute(
        "UPDATE images SET version = ?, n_instances = ?, uncertainty = ?, status = ?,"
        " updated = ? WHERE id = ?",
        (version, n, _uncertain_fraction(instances.scores, sources), status, stamp, image),
    )
    return version


def _provenance(
    con: sqlite3.Connection,
    image: int,
    instances: Instances,
    source: str,
    previous: list[tuple],
    points: list[bytes | None],
) -> tuple[list[int | None], list[str], list[Change] | None]:
    """Instance ids (None: new), per-instance sources of a save, and for an edit save
    (`EDIT_SOURCES`) how each instance differs from the version it replaces (``points``:
    the stored keypoints of each; moved points count as a reshape)."""
    wanted = _instance_ids_of(instances)
    known: set[int] = set()
    if any(i is not None for i in wanted):
        known = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT instance_id FROM annotations WHERE image_id = ?", (image,)
            )
        }
    ids: list[int | None] = []
    used: set[int] = set()
    for value in wanted:
        keep = value is not None and value in known and value not in used
        ids.append(value if keep else None)
        if keep and value is not None:
            used.add(value)
    if source not in EDIT_SOURCES:
        return ids, [source] * len(instances), None
    before = {r[0]: r for r in previous}
    asked = instances.extra.get("source")
    prompted = np.zeros(len(instances), bool) if asked is None else np.asarray(asked) == "prompted"
    sources: list[str] = []
    changes: list[Change] = []
    for k, instance_id in enumerate(ids):
        old = before.get(instance_id)
        if old is None:  # new (or an instance of an older version brought back)
            changes.append(Change(new=True))
            if instance_id is not None:
                sources.append("corrected")
            else:
                sources.append("prompted" if source == "prompted" or prompted[k] else "human")
            continue
        change = Change(
            new=False,
            relabelled=old[1] != int(instances.labels[k]),
            reshaped=not _same_geometry(shapely.from_wkb(old[3]), instances.polygons[k])
            or not same_points(old[4], points[k]),
        )
        changes.append(change)
        sources.append("corrected" if change.relabelled or change.reshaped else old[2])
    return ids, sources, changes


def _record_edit(
    con: sqlite3.Connection,
    image: int,
    version: int,
    instances: Instances,
    ids: list[int | None],
    sources: list[str],
    changes: list[Change],
    previous: list[tuple],
) -> None:
    """Record the actions of an edit save (see `labelassist.project.actions`)."""
    final = ids
    if None in ids:  # the ids just assigned, in the order of the instances
        final = [
            r[0]
            for r in con.execute(
                "SELECT instance_id FROM annotations WHERE image_id = ? AND version = ?"
                " ORDER BY id",
                (image, version),
            )
        ]
    refined = _flags(instances, "refined")
    pairs: list[tuple[int | None, str]] = [
        (final[k], action)
        for k, change in enumerate(changes)
        for action in actions_of(change, source=sources[k], refined=bool(refined[k]))
    ]
    kept = {i for i in ids if i is not None}
    pairs.extend((r[0], "deleted") for r in previous if r[0] not in kept)
    record_actions(con, image, version, pairs)


def object_ids(instances: Instances) -> list[int | None] | None:
    """The ``extra["object_id"]`` column as ints, 0 as None (no object yet); None when
    there is no such column. ValueError unless every value is an integer >= 0."""
    column = instances.extra.get("object_id")
    if column is None:
        return None
    values = np.asarray(column)
    if len(values) and (values.dtype.kind not in "ui" or int(values.min()) < 0):
        raise ValueError(
            "instances.extra['object_id'] must hold integer object ids >= 1 (the 3-D object "
            f"or track of each instance; 0: none yet), got {values[:5].tolist()!r}"
        )
    return [int(v) or None for v in values]


def _flags(instances: Instances, key: str) -> np.ndarray:
    """The bool column ``extra[key]`` (all False when missing)."""
    column = instances.extra.get(key)
    if column is None:
        return np.zeros(len(instances), dtype=bool)
    values = np.asarray(column)
    if values.dtype.kind not in "bui":
        raise TypeError(
            f"instances.extra[{key!r}] must be a bool column (True where the instance was "
            f"{key}), got dtype {values.dtype}"
        )
    return values.astype(bool)


def _instance_ids_of(instances: Instances) -> list[int | None]:
    """The caller's ``extra["instance_id"]`` as ints (None where missing or not positive)."""
    column = instances.extra.get("instance_id")
    if column is None:
        return [None] * len(instances)
    out: list[int | None] = []
    for value in column:
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):
            number = 0
        out.append(number if number > 0 else None)
    return out


def _same_geometry(a: shapely.Geometry, b: shapely.Geometry) -> bool:
    return bool(shapely.equals_exact(shapely.normalize(a), shapely.normalize(b), tolerance=1e-9))


def _uncertain_fraction(scores: np.ndarray, sources: Sequence[str]) -> float:
    """Fraction of instances made by the model whose score lies in `UNCERTAIN_BAND`."""
    if len(sources) == 0:
        return 0.0
    values = np.asarray(scores, dtype=np.float64)
    model = np.array([s == "model" for s in sources])
    low, high = UNCERTAIN_BAND
    return float(np.mean(model & (values >= low) & (values < high)))


def _update_counts(con: sqlite3.Connection, pairs: Iterable[tuple[int, str]], sign: int) -> None:
    """Keep ``instance_counts`` (per label and source) in step with a save or an undo."""
    tally: dict[tuple[int, str], int] = {}
    for label, source in pairs:
        tally[(int(label), source)] = tally.get((int(label), source), 0) + sign
    con.executemany(
        "INSERT INTO instance_counts (label, source, n) VALUES (?, ?, ?)"
        " ON CONFLICT (label, source) DO UPDATE SET n = n + excluded.n",
        [(label, source, n) for (label, source), n in tally.items()],
    )


# -- reading ---------------------------------------------------------------------------------
def read_version(
    con: sqlite3.Connection, image: int, version: int, shape: tuple[int, int]
) -> Instances:
    """One stored version of an image's instances, with ``source`` and ``instance_id``
    (and ``object_id`` for a plane of a stack: 0 where an instance has none yet)."""
    (stack,) = con.execute("SELECT stack_id FROM images WHERE id = ?", (image,)).fetchone()
    names, _ = read_names(con)
    k = None if names is None else len(names)
    rows = con.execute(
        "SELECT instance_id, label, score, source, geometry, coalesce(object_id, 0), keypoints"
        " FROM annotations WHERE image_id = ? AND version = ? ORDER BY id",
        (image, version),
    ).fetchall()
    keys = ("source", "instance_id") if stack is None else ("source", "instance_id", "object_id")
    if not rows:
        return Instances.empty(shape, extra_keys=keys, keypoints=k)
    ids, labels, scores, sources, wkb, objects, blobs = zip(*rows, strict=True)
    extra = {
        "source": np.array(sources, dtype=str),
        "instance_id": np.array(ids, dtype=np.int64),
    }
    if stack is not None:
        extra["object_id"] = np.array(objects, dtype=np.int64)
    return Instances(
        shapely.from_wkb(np.array(wkb, dtype=object)),
        np.array(labels, dtype=np.int64),
        np.array(scores, dtype=np.float32),
        shape,
        extra=extra,
        keypoints=None if k is None else stack_points(blobs, k),
    )


def instances(
    store: Store, image: Any, *, version: Any = None, with_version: bool = False
) -> Instances | Revision:
    """The instances of an image (see `Project.instances`)."""
    if not isinstance(with_version, (bool, np.bool_)):
        raise TypeError(f"with_version must be True or False, got {with_version!r}")
    with store.read() as con:
        number, height, width, current = image_row(con, image, "id, height, width, version")
        if version is None:
            version = current
        elif (
            isinstance(version, (bool, np.bool_))
            or not isinstance(version, (int, np.integer))
            or (
                version != 0
                and con.execute(
                    "SELECT 1 FROM edits WHERE image_id = ? AND version = ?", (number, version)
                ).fetchone()
                is None
            )
        ):
            raise ValueError(
                f"image {number} has no version {version!r}; see Project.history({number})"
            )
        result = read_version(con, number, int(version), (height, width))
    return Revision(result, int(version)) if with_version else result


def history(store: Store, image: Any) -> list[dict]:
    with store.read() as con:
        number, current = image_row(con, image, "id, version")
        rows = con.execute(
            "SELECT version, parent, source, model_id, n_instances, created FROM edits"
            " WHERE image_id = ? ORDER BY version",
            (number,),
        ).fetchall()
    keys = ("version", "parent", "source", "model_id", "n_instances", "created")
    return [dict(zip(keys, row, strict=True), current=row[0] == current) for row in rows]


def undo(store: Store, image: Any) -> Instances:
    number = image_id(image)
    with store.write("undo") as con:
        current, height, width = image_row(con, number, "version, height, width")
        if current == 0:
            raise ValueError(f"nothing to undo: image {number} has no saved instances")
        (parent,) = con.execute(
            "SELECT parent FROM edits WHERE image_id = ? AND version = ?", (number, current)
        ).fetchone()
        rows = con.execute(
            "SELECT version, label, source, score FROM annotations"
            " WHERE image_id = ? AND version IN (?, ?)",
            (number, current, parent),
        ).fetchall()
        _update_counts(con, [(r[1], r[2]) for r in rows if r[0] == current], -1)
        kept = [r for r in rows if r[0] == parent]
        _update_counts(con, [(r[1], r[2]) for r in kept], +1)
        con.execute(
            "UPDATE images SET version = ?, n_instances = ?, uncertainty = ?, updated = ?"
            " WHERE id = ?",
            (
                parent,
                len(kept),
                _uncertain_fraction(np.array([r[3] for r in kept]), [r[2] for r in kept]),
                _schema.now(),
                number,
            ),
        )
        return read_version(con, number, parent, (height, width))
