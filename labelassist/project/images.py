"""Images of a labeling project: adding files, their records, review status and splits.

Functions take the `Store` first; `Project` exposes them as methods. An image is named by
its id or by its record (a dict with ``"id"``, as `list_images` returns).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..checks import check_choice, check_int
from ..io import collect_image_paths
from . import files as _files
from . import schema as _schema
from ._util import listed, placeholders, progress_bar, split_filter, sql_where, status_filter
from .actions import record_review
from .store import Store

__all__ = [
    "IMAGE_COLUMNS",
    "Added",
    "add_images",
    "as_path",
    "assign_splits",
    "check_files",
    "get_image",
    "image_id",
    "image_path",
    "image_row",
    "ids_of",
    "insert_images",
    "list_images",
    "new_files",
    "place_files",
    "record",
    "set_split",
    "set_status",
    "stack_id",
    "stored_sizes",
]

#: Columns of an image record, in the order `record` reads them.
IMAGE_COLUMNS = (
    "id, file_name, path, height, width, status, split, n_instances, updated, version,"
    " stack_id, plane"
)
#: SQLite's limit on ``?`` parameters is far above this; chunks keep statements small.
_CHUNK = 500

#: A placed file: (file_name, stored path, origin (resolved source), (height, width)).
Placed = tuple[str, str, str, tuple[int, int]]


def image_id(image: Any) -> int:
    """The id of ``image`` (an int, or a record with ``"id"``)."""
    if isinstance(image, Mapping):
        if "id" not in image:
            raise ValueError("image record has no 'id'; pass a record from Project.images()")
        image = image["id"]
    if isinstance(image, (bool, np.bool_)) or not isinstance(image, (int, np.integer)):
        raise TypeError(
            f"image must be an image id (int) or a record from Project.images(), got {image!r}"
        )
    return int(image)


def stack_id(stack: Any) -> int:
    """The id of ``stack`` (an int, or a stack record with ``"id"``)."""
    if isinstance(stack, Mapping):
        stack = stack.get("id")
    if isinstance(stack, (bool, np.bool_)) or not isinstance(stack, (int, np.integer)):
        raise TypeError(
            f"stack must be a stack id (int) or a record from Project.stacks(), got {stack!r}"
        )
    return int(stack)


def image_row(con: sqlite3.Connection, image: Any, columns: str = IMAGE_COLUMNS) -> tuple:
    """The ``columns`` of one image's row; ValueError when it is not in the project."""
    number = image_id(image)
    row = con.execute(f"SELECT {columns} FROM images WHERE id = ?", (number,)).fetchone()
    if row is None:
        raise ValueError(f"image {number} is not in this project; see Project.images()")
    return tuple(row)


def record(store: Store, row: Sequence[Any]) -> dict:
    """An image record (see `Project.images`) from a row of `IMAGE_COLUMNS`; a plane of a
    stack also has ``stack`` (its id) and ``plane`` (its index in the stack)."""
    number, file_name, path, height, width, status, split, n, updated, version = row[:10]
    out = {
        "id": number,
        "file_name": file_name,
        "path": store.absolute_str(path),
        "height": height,
        "width": width,
        "status": status,
        "split": split,
        "n_instances": n,
        "updated": updated,
        "version": version,
    }
    if len(row) > 10 and row[10] is not None:
        out.update(stack=row[10], plane=row[11])
    return out


def list_images(store: Store, *, status: Any = None, split: Any = None) -> list[dict]:
    where, params = sql_where(status_filter(status), split_filter(split))
    with store.read() as con:
        rows = con.execute(
            f"SELECT {IMAGE_COLUMNS} FROM images{where} ORDER BY id", params
        ).fetchall()
    return [record(store, row) for row in rows]


def get_image(store: Store, image: Any) -> dict:
    with store.read() as con:
        return record(store, image_row(con, image))


def image_path(store: Store, image: Any) -> Path:
    with store.read() as con:
        (stored,) = image_row(con, image, "path")
    return store.absolute(stored)


def set_status(store: Store, image: Any, status: str) -> None:
    """Set an image's status; accepting it (to ``"reviewed"`` from another status) is
    recorded in the effort log (`labelassist.project.actions.record_review`)."""
    check_choice(status, "status", _schema.STATUSES)
    number = image_id(image)
    with store.write("set the status") as con:
        (old,) = image_row(con, number, "status")
        con.execute(
            "UPDATE images SET status = ?, updated = ? WHERE id = ?",
            (status, _schema.now(), number),
        )
        if status == "reviewed" and old != "reviewed":
            record_review(con, number)


def set_split(store: Store, images: Any, split: str | None) -> None:
    if split is not None:
        check_choice(split, "split", _schema.SPLITS)
    if isinstance(images, (Mapping, int, np.integer)):
        images = [images]
    ids = [image_id(image) for image in images]
    with store.write("set the split") as con:
        stamp = _schema.now()
        for number in ids:
            cur = con.execute(
                "UPDATE images SET split = ?, updated = ? WHERE id = ?", (split, stamp, number)
            )
            if cur.rowcount == 0:
                raise ValueError(f"image {number} is not in this project; see Project.images()")


def assign_splits(
    store: Store, *, val_fraction: float, seed: int, overwrite: bool
) -> dict[str, int]:
    if (
        isinstance(val_fraction, (bool, np.bool_))
        or not isinstance(val_fraction, (int, float, np.integer, np.floating))
        or not 0 <= val_fraction <= 1
    ):
        raise ValueError(f"val_fraction must be a number in [0, 1], got {val_fraction!r}")
    seed = check_int(seed, "seed", minimum=0)
    with store.write("assign splits") as con:
        where = "" if overwrite else " WHERE split IS NULL"
        rows = con.execute(f"SELECT id, stack_id FROM images{where} ORDER BY id").fetchall()
        # the unit of the split: an image, or a whole stack (its planes are alike: a plane
        # in val next to its neighbours in train would not be held out)
        units: dict[tuple[str, int], list[int]] = {}
        for number, stack in rows:
            key = ("image", number) if stack is None else ("stack", stack)
            units.setdefault(key, []).append(number)
        groups = list(units.values())
        order = np.random.default_rng(seed).permutation(len(groups))
        n_val = int(round(val_fraction * len(groups)))
        val = {i for k in order[:n_val].tolist() for i in groups[k]}
        stamp = _schema.now()
        con.executemany(
            "UPDATE images SET split = ?, updated = ? WHERE id = ?",
            [("val" if i in val else "train", stamp, i) for i, _ in rows],
        )
    return {"train": len(rows) - len(val), "val": len(val)}


# -- adding files ----------------------------------------------------------------------------
@dataclass
class Added:
    """What `add_images` did: the new ids, the files refused (unreadable) with the reason,
    how many were already in the project, and how many new files were looked at."""

    ids: list[int] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)
    duplicates: int = 0
    checked: int = 0


def add_images(
    store: Store,
    sources: Any,
    *,
    copy: bool | None = None,
    split: str | None = None,
    progress: bool = False,
) -> Added:
    """Add the readable image files of ``sources`` (see `Project.add_images`).

    Files that cannot be read are refused and listed in the result; when no new file can
    be read, nothing is added and ValueError lists them.
    """
    store.require_writable("add images")
    if copy is None:
        copy = store.copy_images
    if not isinstance(copy, (bool, np.bool_)):
        raise TypeError(f"copy must be True, False or None, got {copy!r}")
    if split is not None:
        check_choice(split, "split", _schema.SPLITS)
    paths = collect_image_paths(sources, name="paths_or_folder_or_glob")
    new, n_dupes = new_files(store, paths)
    sizes, refused = check_files(new, progress=progress)
    result = Added(refused=refused, duplicates=n_dupes, checked=len(new))
    if refused and not sizes:
        raise ValueError(
            f"cannot read {len(refused)} of {len(new)} image files, nothing was added: "
            + listed([reason for _, reason in refused])
        )
    readable = [path for path in new if path in sizes]
    rows, copies = place_files(store, readable, sizes, copy=bool(copy))
    try:
        with store.write("add images") as con:
            result.ids = insert_images(con, rows, split=split)
    except BaseException:
        _files.remove_copies(copies)  # the copies of images that were not added
        raise
    return result


def check_files(
    paths: list[Path], *, progress: bool = False
) -> tuple[dict[Path, tuple[int, int]], list[tuple[Path, str]]]:
    """``(height, width)`` of each readable file, and ``(path, reason)`` of the others."""
    sizes: dict[Path, tuple[int, int]] = {}
    refused: list[tuple[Path, str]] = []
    for path in progress_bar(paths, progress, "checking images"):
        try:
            sizes[path] = _files.image_size(path)
        except MemoryError:  # not the file's fault: stop instead of refusing it
            raise
        except Exception as exc:  # any decoder error: report it with the file
            reason = str(exc) if str(path) in str(exc) else f"{path} ({type(exc).__name__}: {exc})"
            refused.append((path, reason))
    return sizes, refused


def new_files(store: Store, paths: Iterable[Path]) -> tuple[list[Path], int]:
    """Resolved ``paths`` not yet in the project (in order, once each), and how many of
    ``paths`` were left out as duplicates."""
    paths = list(paths)
    unique = list(dict.fromkeys(p.resolve() for p in paths))
    keys = [p.as_posix() for p in unique]
    known: set[str] = set()
    with store.read() as con:
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            known.update(
                row[0]
                for row in con.execute(
                    f"SELECT origin FROM images WHERE origin IN ({placeholders(chunk)})", chunk
                )
            )
    new = [p for p in unique if p.as_posix() not in known]
    return new, len(paths) - len(new)


def stored_sizes(store: Store, paths: Iterable[Path]) -> dict[str, tuple[int, int]]:
    """``(height, width)`` of the resolved ``paths`` already in the project, by origin."""
    keys = [p.as_posix() for p in paths]
    out: dict[str, tuple[int, int]] = {}
    with store.read() as con:
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            rows = con.execute(
                f"SELECT origin, height, width FROM images WHERE origin IN ({placeholders(chunk)})",
                chunk,
            )
            out.update((origin, (h, w)) for origin, h, w in rows)
    return out


def place_files(
    store: Store, paths: list[Path], sizes: Mapping[Path, tuple[int, int]], *, copy: bool
) -> tuple[list[Placed], list[Path]]:
    """A `Placed` row per file, copying it into ``images/`` when asked; and the copies
    made (for `files.remove_copies` when the database write fails)."""
    rows: list[Placed] = []
    copies: list[Path] = []
    taken: set[str] = set()
    images_dir = store.images_dir.resolve()
    try:
        for path in paths:
            target = path
            if copy and images_dir not in path.parents:
                target = _files.copy_into(path, images_dir, taken)
                copies.append(target)
            rows.append((target.name, store.stored_path(target), path.as_posix(), sizes[path]))
    except BaseException:
        _files.remove_copies(copies)
        raise
    return rows, copies


def insert_images(
    con: sqlite3.Connection,
    rows: Iterable[Placed],
    *,
    split: str | None = None,
    stack: int | None = None,
) -> list[int]:
    """Insert `Placed` rows (inside the caller's write transaction); return their ids.

    With ``stack``, the rows are that stack's planes 0, 1, ... in order.
    """
    ids = []
    stamp = _schema.now()
    for k, (file_name, path, origin, (height, width)) in enumerate(rows):
        plane = None if stack is None else k
        cur = con.execute(
            "INSERT INTO images (file_name, path, origin, height, width, split, updated,"
            " stack_id, plane) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (file_name, path, origin, height, width, split, stamp, stack, plane),
        )
        ids.append(int(cur.lastrowid or 0))
    return ids


def ids_of(con: sqlite3.Connection, origins: Sequence[str]) -> list[int]:
    """Image ids of resolved source paths (``origin``), in order; all must be present."""
    found: dict[str, int] = {}
    for start in range(0, len(origins), _CHUNK):
        chunk = list(origins[start : start + _CHUNK])
        found.update(
            con.execute(
                f"SELECT origin, id FROM images WHERE origin IN ({placeholders(chunk)})", chunk
            ).fetchall()
        )
    return [found[origin] for origin in origins]


def as_path(value: Any, name: str) -> Path:
    """``value`` (str or os.PathLike) as an absolute, resolved Path."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path, got {type(value).__name__}")
    return Path(value).expanduser().resolve()
