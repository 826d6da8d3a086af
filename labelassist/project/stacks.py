"""Stacks in a labeling project: z-stacks and time-lapse added as planes, their objects in and out.

A stack (``ZYX``, ``TYX`` or ``TZYX``, channels kept per plane) is a row of table
``stacks`` plus one *image* per plane: each plane's pixels are written once, when the
stack is added, as a 2-D TIFF under ``planes/<name>/`` (a plane is then an image like any
other: the queue, versions, provenance, undo, status, the effort log, COCO export,
training rounds and every 2-D tool work on it unchanged; the cost is one copy of the
stack on disk). Plane ``k`` is the ``k``-th plane in C order over the stack axes (for
``TZYX``: ``t * Z + z``), as in `labelassist.stacks.StackInstances`.

Each instance of a plane keeps its 3-D object or track id (``extra["object_id"]``);
`stack_instances` gathers the planes into a `StackInstances` (ids assigned to instances
that have none yet), `save_stack_instances` writes one (pre-annotations from
``Model.predict_stack``, a label volume from another tool) in one transaction, a new
version per plane. Divisions (``parents``) are stored with the stack.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..checks import check_choice
from ..instances import Instances
from ..io import check_image, read_image, read_stack
from ..stacks import (
    OBJECT_ID,
    StackInstances,
    read_label_volume,
    stack_planes,
    write_coco_video,
    write_label_volume,
)
from ..stacks.label_tiff import write_tiff_atomic
from . import schema as _schema
from ._util import split_filter, sql_where, status_filter
from .annotations import read_version, write_instances
from .images import IMAGE_COLUMNS, insert_images, record, stack_id
from .store import Store

__all__ = [
    "add_stack",
    "export_coco_video",
    "export_label_volume",
    "get_stack",
    "import_label_volume",
    "list_stacks",
    "plane_record",
    "plane_records",
    "reviewed_planes",
    "save_stack_instances",
    "stack_image",
    "stack_instances",
]

_STACK_COLUMNS = "id, name, origin, axes, shape, source_axes, channels, parents, created"


# -- adding ----------------------------------------------------------------------------------
def add_stack(
    store: Store,
    source: Any,
    *,
    axes: str | None = None,
    name: str | None = None,
    channels: int | list[int] | None = None,
    split: str | None = None,
) -> int:
    """Add a stack (a TIFF path read with `labelassist.io.read_stack`, or an array with
    ``axes``); write its planes; return its id (see `Project.add_stack`)."""
    store.require_writable("add a stack")
    if split is not None:
        check_choice(split, "split", _schema.SPLITS)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser().resolve()
        array, letters = read_stack(path, axes=axes)
        origin, default_name = path.as_posix(), path.name.split(".")[0]
    else:
        if axes is None:
            raise ValueError(
                "axes is needed with an array: one letter per axis from T, Z, C, Y, X, "
                "e.g. axes='ZYX'"
            )
        if not hasattr(source, "shape") or not hasattr(source, "__getitem__"):
            raise TypeError(
                f"stack must be a TIFF path or an array with axes=, got {type(source).__name__}"
            )
        array, letters = source, axes
        origin, default_name = f"array:{uuid.uuid4().hex}", "stack"
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ValueError(f"name must be a non-empty str, got {name!r}")
    name = (name or default_name).strip()
    loaders, layout, lead = stack_planes(array, axes=letters, channels=channels)
    if layout == "YX":
        raise ValueError(
            f"{origin if origin.startswith('/') else 'the array'} is a single 2-D image "
            f"(axes {letters!r}), not a stack; add it with Project.add_images"
        )
    with store.read() as con:
        row = con.execute("SELECT id FROM stacks WHERE origin = ?", (origin,)).fetchone()
    if row is not None:
        raise ValueError(f"{origin} is already in this project as stack {row[0]}")
    folder = _free_folder(store.folder / "planes", name)
    rows, shape = _write_planes(store, loaders, layout, lead, folder, name)
    chosen = None if channels is None else json.dumps(np.atleast_1d(channels).tolist())
    try:
        with store.write("add a stack") as con:
            cur = con.execute(
                "INSERT INTO stacks (name, origin, axes, shape, source_axes, channels, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, origin, layout, json.dumps(shape), letters, chosen, _schema.now()),
            )
            number = int(cur.lastrowid or 0)
            insert_images(con, rows, split=split, stack=number)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return number


def _free_folder(parent: Path, name: str) -> Path:
    """A new folder ``parent / name`` (``name_1``, ... when taken)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "stack"
    parent.mkdir(parents=True, exist_ok=True)
    candidate, k = parent / safe, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            candidate, k = parent / f"{safe}_{k}", k + 1


def _write_planes(
    store: Store, loaders: list, layout: str, lead: tuple[int, ...], folder: Path, name: str
) -> tuple[list[tuple], list[int]]:
    """Write each plane as a 2-D TIFF in ``folder``; return the `images.Placed` rows and
    the stack's label-volume shape. Removes ``folder`` on any error."""
    rows: list[tuple] = []
    size: tuple[int, int] | None = None
    try:
        for k, load in enumerate(loaders):
            index = np.unravel_index(k, lead)
            suffix = "_".join(
                f"{a.lower()}{int(i):04d}" for a, i in zip(layout, index, strict=False)
            )
            plane = check_image(np.asarray(load()), name=f"plane {suffix} of stack {name!r}")
            if size is None:
                size = (int(plane.shape[0]), int(plane.shape[1]))
            target = folder / f"{folder.name}_{suffix}.tif"
            photometric = "rgb" if plane.ndim == 3 else "minisblack"
            write_tiff_atomic(target, plane, photometric=photometric)  # never half a file
            origin = target.resolve().as_posix()
            rows.append((target.name, store.stored_path(target), origin, size))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if size is None:
        raise ValueError(f"stack {name!r} has no plane")
    return rows, [*lead, *size]


# -- records ---------------------------------------------------------------------------------
def _stack_record(con: Any, row: tuple) -> dict:
    number, name, origin, axes, shape, source_axes, channels, parents, created = row
    counts = dict.fromkeys(_schema.STATUSES, 0)
    n_instances = 0
    for status, n, m in con.execute(
        "SELECT status, count(*), sum(n_instances) FROM images WHERE stack_id = ? GROUP BY status",
        (number,),
    ):
        counts[status], n_instances = n, n_instances + m
    return {
        "id": number,
        "name": name,
        "source": None if origin.startswith("array:") else origin,
        "axes": axes,
        "shape": tuple(json.loads(shape)),
        "source_axes": source_axes,
        "channels": None if channels is None else json.loads(channels),
        "planes": sum(counts.values()),
        "status": counts,
        "n_instances": n_instances,
        "parents": {int(k): int(v) for k, v in json.loads(parents).items()},
        "created": created,
    }


def _stack_row(con: Any, stack: Any) -> tuple:
    number = stack_id(stack)
    row = con.execute(f"SELECT {_STACK_COLUMNS} FROM stacks WHERE id = ?", (number,)).fetchone()
    if row is None:
        raise ValueError(f"stack {number} is not in this project; see Project.stacks()")
    return tuple(row)


def list_stacks(store: Store) -> list[dict]:
    """Stack records, ordered by id (see `Project.stacks`)."""
    with store.read() as con:
        rows = con.execute(f"SELECT {_STACK_COLUMNS} FROM stacks ORDER BY id").fetchall()
        return [_stack_record(con, tuple(row)) for row in rows]


def get_stack(store: Store, stack: Any) -> dict:
    with store.read() as con:
        return _stack_record(con, _stack_row(con, stack))


def plane_records(store: Store, stack: Any, *, status: Any = None) -> list[dict]:
    """Image records of a stack's planes, in plane order (see `Project.planes`)."""
    where, params = sql_where(status_filter(status), None)
    where = where.replace(" WHERE ", " AND ", 1)
    with store.read() as con:
        number = _stack_row(con, stack)[0]
        rows = con.execute(
            f"SELECT {IMAGE_COLUMNS} FROM images WHERE stack_id = ?{where} ORDER BY plane",
            [number, *params],
        ).fetchall()
    return [record(store, row) for row in rows]


def plane_record(store: Store, stack: Any, index: Any) -> dict:
    """The image record of one plane: ``index`` is its position (int) or its index over
    the stack axes (a tuple, e.g. ``(t, z)``)."""
    with store.read() as con:
        row = _stack_row(con, stack)
        lead = tuple(json.loads(row[4]))[:-2]
        plane = _plane_position(index, lead, row[0])
        found = con.execute(
            f"SELECT {IMAGE_COLUMNS} FROM images WHERE stack_id = ? AND plane = ?",
            (row[0], plane),
        ).fetchone()
    return record(store, found)


def _plane_position(index: Any, lead: tuple[int, ...], number: int) -> int:
    n = int(np.prod(lead))
    try:
        if isinstance(index, (bool, np.bool_)):
            raise TypeError
        if isinstance(index, (int, np.integer)):
            position = int(index)
            if not 0 <= position < n:
                raise IndexError
            return position
        values = tuple(int(i) for i in index)
        return int(np.ravel_multi_index(values, lead))
    except (TypeError, ValueError, IndexError):
        raise ValueError(
            f"plane index {index!r} is not in stack {number} ({n} planes, stack shape "
            f"{lead}); give 0 <= index < {n} or one index per stack axis"
        ) from None


# -- pixels ----------------------------------------------------------------------------------
def stack_image(store: Store, stack: Any) -> np.ndarray:
    """The stack's pixels, shape ``stack shape + (H, W)`` (``(H, W, C)`` per plane with
    channels), read from the plane files."""
    planes = plane_records(store, stack)
    lead = get_stack(store, stack)["shape"][:-2]
    first = read_image(planes[0]["path"])
    out = np.empty((len(planes), *first.shape), dtype=first.dtype)
    out[0] = first
    for k, plane in enumerate(planes[1:], start=1):
        out[k] = read_image(plane["path"])
    return out.reshape(*lead, *first.shape)


def reviewed_planes(store: Store, *, split: Any = None) -> Iterator[tuple[np.ndarray, Instances]]:
    """``(plane image, Instances)`` of every reviewed plane of every stack, in stack and
    plane order (see `Project.reviewed_planes`)."""
    where, params = sql_where(["reviewed"], split_filter(split))
    with store.read() as con:
        rows = con.execute(
            f"SELECT id, path, height, width, version FROM images{where}"
            " AND stack_id IS NOT NULL ORDER BY stack_id, plane",
            params,
        ).fetchall()
    for number, path, height, width, version in rows:
        with store.read() as con:
            instances = read_version(con, number, version, (height, width))
        yield read_image(store.absolute(path)), instances


# -- objects ---------------------------------------------------------------------------------
def stack_instances(store: Store, stack: Any) -> StackInstances:
    """The current instances of every plane as a `StackInstances` (see
    `Project.stack_instances`)."""
    with store.read() as con:
        row = _stack_row(con, stack)
        shape = tuple(json.loads(row[4]))
        planes = []
        for number, version in con.execute(
            "SELECT id, version FROM images WHERE stack_id = ? ORDER BY plane", (row[0],)
        ).fetchall():
            planes.append(read_version(con, number, version, shape[-2:]))
    planes = _with_object_ids(planes)
    objects = StackInstances(planes, shape, row[3])
    parents = {int(k): int(v) for k, v in json.loads(row[7]).items()}
    if parents:
        tracks = {int(r[0]): (int(r[1]), int(r[2])) for r in objects.tracks}
        kept = {
            c: m
            for c, m in parents.items()
            if c in tracks and m in tracks and tracks[m][1] < tracks[c][0]
        }
        objects = StackInstances(objects.planes, shape, row[3], parents=kept)
    return objects


def _with_object_ids(planes: list[Instances]) -> list[Instances]:
    """Planes whose instances without an object id (0), or with one used twice in the
    plane, get new ids above every id of the stack."""
    used = [int(p.extra[OBJECT_ID].max()) for p in planes if len(p)]
    next_id = max(used, default=0) + 1
    out = []
    for plane in planes:
        ids = np.asarray(plane.extra[OBJECT_ID], dtype=np.int64).copy()
        seen: set[int] = set()
        for k, value in enumerate(ids.tolist()):
            if value < 1 or value in seen:
                ids[k], next_id = next_id, next_id + 1
            seen.add(int(ids[k]))
        out.append(plane.replace(extra={**plane.extra, OBJECT_ID: ids}))
    return out


def save_stack_instances(
    store: Store,
    stack: Any,
    objects: StackInstances,
    *,
    source: str = "model",
    model_id: str | None = None,
) -> list[int]:
    """Save a `StackInstances` as a new version of every plane, in one transaction;
    return the versions (see `Project.save_stack_instances`)."""
    if not isinstance(objects, StackInstances):
        raise TypeError(f"objects must be a StackInstances, got {type(objects).__name__}")
    check_choice(source, "source", _schema.SOURCES)
    if model_id is not None and not isinstance(model_id, str):
        raise TypeError(f"model_id must be a str or None, got {model_id!r}")
    labels = [int(p.labels.max()) for p in objects.planes if len(p)]
    if labels and max(labels) >= len(store.classes):
        raise ValueError(
            f"objects have label {max(labels)}, but the project has {len(store.classes)} "
            f"classes {store.classes} (labels are 0-based indices)"
        )
    with store.write("save stack instances") as con:
        row = _stack_row(con, stack)
        shape = tuple(json.loads(row[4]))
        if objects.axes != row[3] or tuple(objects.shape) != shape:
            raise ValueError(
                f"objects have axes {objects.axes!r} and shape {tuple(objects.shape)}, but "
                f"stack {row[0]} is {row[3]!r} {shape}; give a StackInstances of this stack"
            )
        ids = [
            r[0]
            for r in con.execute(
                "SELECT id FROM images WHERE stack_id = ? ORDER BY plane", (row[0],)
            )
        ]
        versions = [
            write_instances(con, number, plane, source, model_id)
            for number, plane in zip(ids, objects.planes, strict=True)
        ]
        con.execute(
            "UPDATE stacks SET parents = ? WHERE id = ?",
            (json.dumps({str(k): v for k, v in sorted(objects.parents.items())}), row[0]),
        )
    return versions


def import_label_volume(
    store: Store,
    stack: Any,
    labels: Any,
    *,
    axes: str | None = None,
    label: int = 0,
    parents: Mapping[int, int] | None = None,
    tolerance: float = 0.0,
    source: str = "model",
) -> list[int]:
    """Import a label volume (array or TIFF) as the stack's instances (see
    `Project.import_label_volume`)."""
    info = get_stack(store, stack)
    if isinstance(labels, (str, os.PathLike)):
        objects = read_label_volume(labels, axes=axes, parents=parents, tolerance=tolerance)
    else:
        volume = np.asarray(labels)
        if tuple(volume.shape) != info["shape"]:
            raise ValueError(
                f"labels has shape {tuple(volume.shape)}, but stack {info['id']} is "
                f"{info['axes']} {info['shape']}; give one label per pixel of the stack"
            )
        objects = StackInstances.from_labels(
            volume, axes or info["axes"], parents=parents, tolerance=tolerance
        )
    if (
        not isinstance(label, (int, np.integer))
        or isinstance(label, bool)
        or not (0 <= label < len(store.classes))
    ):
        raise ValueError(
            f"label must be a class index in [0, {len(store.classes)}) of {store.classes}, "
            f"got {label!r}"
        )
    planes = [p.replace(labels=np.full(len(p), int(label), np.int64)) for p in objects.planes]
    objects = StackInstances(planes, objects.shape, objects.axes, parents=objects.parents)
    return save_stack_instances(store, info["id"], objects, source=source)


def export_label_volume(store: Store, stack: Any, path: str | os.PathLike) -> Path:
    """Write the stack's objects as a uint32 label TIFF with its axes."""
    return write_label_volume(stack_instances(store, stack), path)


def export_coco_video(store: Store, stack: Any, path: str | os.PathLike) -> Path:
    """Write the stack's objects as COCO video JSON (TAO layout)."""
    info = get_stack(store, stack)
    file_name = Path(info["source"]).name if info["source"] else None
    return write_coco_video(
        stack_instances(store, stack), path, store.classes, name=info["name"], file_name=file_name
    )
