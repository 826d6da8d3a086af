"""A project's keypoints: their names and skeleton, and each instance's points as stored.

A project may name keypoints (landmarks: the head and tail of a worm, the poles of a
cell) at creation (``Project.create(..., keypoints=[...], skeleton=[...])``), later
(`Project.set_keypoints`) or from the first COCO import that has them. The names and the
0-based skeleton live in the ``meta`` table (keys ``"keypoints"``, ``"skeleton"``, JSON);
each instance's ``(K, 3)`` points (x, y in COCO pixel coordinates, visibility 0/1/2) in
``annotations.keypoints`` (schema 5) as little-endian float64 bytes, NULL when the
instance has no labelled point. Versions, provenance, undo and the effort log treat a
keypoint edit like a geometry edit: the instance becomes ``"corrected"`` and the edit
records ``"edited"``.

Names are only ever appended: points stored with fewer names read back with ``v = 0`` in
the new columns. A project without names stores and returns no keypoints (`Instances`
with ``keypoints=None``), exactly as before keypoints existed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..instances import Instances, check_keypoint_names, check_skeleton

__all__ = [
    "check_instance_keypoints",
    "decode_points",
    "encode_points",
    "import_mapping",
    "read_names",
    "remap_points",
    "same_points",
    "stack_points",
    "write_names",
]


def read_names(con: sqlite3.Connection) -> tuple[list[str] | None, list[tuple[int, int]]]:
    """The project's keypoint names (None: none) and skeleton, from ``meta``."""
    rows = dict(con.execute("SELECT key, value FROM meta WHERE key IN ('keypoints', 'skeleton')"))
    if "keypoints" not in rows:
        return None, []
    names = json.loads(rows["keypoints"])
    skeleton = [(int(a), int(b)) for a, b in json.loads(rows.get("skeleton", "[]"))]
    return names, skeleton


def write_names(
    con: sqlite3.Connection, names: Any, skeleton: Any, *, where: str = "the project"
) -> tuple[list[str], list[tuple[int, int]]]:
    """Check and store keypoint names and skeleton (inside the caller's write transaction).

    The names may only extend those stored (the same first names, new ones appended):
    stored points keep their columns. Returns what is stored.
    """
    checked = check_keypoint_names(names)
    edges = check_skeleton(skeleton, len(checked))
    old, _ = read_names(con)
    if old is not None and checked[: len(old)] != old:
        raise ValueError(
            f"{where} has the keypoints {old}; new keypoint names can only be appended to "
            f"them (got {checked}): start with {old}"
        )
    con.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [("keypoints", json.dumps(checked)), ("skeleton", json.dumps([list(e) for e in edges]))],
    )
    return checked, edges


def check_instance_keypoints(instances: Instances, names: list[str] | None) -> None:
    """ValueError unless ``instances`` may be saved to a project with keypoint ``names``."""
    points = instances.keypoints
    if points is None or not len(instances):
        return
    if names is None:
        raise ValueError(
            f"instances have {points.shape[1]} keypoints per object, but the project names "
            "no keypoints; name them first with Project.set_keypoints([...names], skeleton=...)"
        )
    if points.shape[1] != len(names):
        raise ValueError(
            f"instances have {points.shape[1]} keypoints per object, but the project names "
            f"{len(names)}: {names} (the columns of Instances.keypoints, in this order)"
        )


def encode_points(instances: Instances) -> list[bytes | None]:
    """Each instance's ``(K, 3)`` points as float64 bytes; None where none is labelled.

    Examples
    --------
    >>> import shapely
    >>> inst = Instances([shapely.box(0, 0, 4, 4)] * 2, [0, 0], [1, 1], (8, 8),
    ...                  keypoints=[[[1.5, 2.5, 2]], [[0, 0, 0]]])
    >>> [None if b is None else len(b) for b in encode_points(inst)]
    [24, None]
    """
    if instances.keypoints is None:
        return [None] * len(instances)
    points = np.ascontiguousarray(instances.keypoints, dtype="<f8")
    return [p.tobytes() if (p[:, 2] > 0).any() else None for p in points]


def decode_points(blob: bytes | None, k: int) -> np.ndarray:
    """One instance's stored points as a ``(k, 3)`` array (zeros where not stored).

    Examples
    --------
    >>> decode_points(np.array([[1.5, 2.5, 2.0]]).tobytes(), 2).tolist()
    [[1.5, 2.5, 2.0], [0.0, 0.0, 0.0]]
    """
    out = np.zeros((k, 3), dtype=np.float64)
    if blob is not None:
        stored = np.frombuffer(blob, dtype="<f8").reshape(-1, 3)[:k]
        out[: len(stored)] = stored
    return out


def stack_points(blobs: Sequence[bytes | None], k: int) -> np.ndarray:
    """Stored points of N instances as an ``(N, k, 3)`` float64 array."""
    if not blobs:
        return np.zeros((0, k, 3), dtype=np.float64)
    return np.stack([decode_points(b, k) for b in blobs])


def same_points(old: bytes | None, new: bytes | None) -> bool:
    """Whether two stored point blobs are the same points (None: none labelled).

    Examples
    --------
    >>> a = np.array([[1.0, 2.0, 2.0]]).tobytes()
    >>> same_points(a, a), same_points(a, None), same_points(None, None)
    (True, False, True)
    """
    if old is None or new is None:
        return old is None and new is None
    a = np.frombuffer(old, dtype="<f8").reshape(-1, 3)
    b = np.frombuffer(new, dtype="<f8").reshape(-1, 3)
    k = max(len(a), len(b))
    return bool(np.array_equal(decode_points(old, k), decode_points(new, k)))


def import_mapping(
    have: list[str] | None,
    edges: list[tuple[int, int]],
    names: list[str] | None,
    skeleton: Sequence[tuple[int, int]],
) -> tuple[list[str] | None, np.ndarray, list[tuple[int, int]]]:
    """What a COCO import with keypoint ``names`` and ``skeleton`` stores in a project
    that has ``have`` and ``edges``: the names (the project's, the file's new ones
    appended; None when the file has none), the project column of each of the file's
    keypoints, and the skeleton (the project's, plus the file's new edges).

    Examples
    --------
    >>> names, columns, skeleton = import_mapping(["head", "tail"], [(0, 1)],
    ...                                           ["middle", "head"], [(1, 0)])
    >>> names, columns.tolist(), skeleton
    (['head', 'tail', 'middle'], [2, 0], [(0, 1), (0, 2)])
    """
    if names is None:
        return None, np.zeros(0, dtype=np.int64), []
    merged = list(have or []) + [n for n in names if n not in (have or [])]
    columns = np.array([merged.index(n) for n in names], dtype=np.int64)
    out = list(edges)
    for a, b in skeleton:
        edge = (int(columns[a]), int(columns[b]))
        if edge not in out and edge[::-1] not in out:
            out.append(edge)
    return merged, columns, out


def remap_points(
    points: np.ndarray | None, columns: np.ndarray, names: list[str] | None
) -> np.ndarray | None:
    """A file's ``(N, k, 3)`` keypoints in the project's columns (``v = 0`` elsewhere).

    Examples
    --------
    >>> remap_points(np.array([[[1.0, 2.0, 2.0]]]), np.array([1]), ["a", "b"]).tolist()
    [[[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]]]
    """
    if points is None or names is None:
        return None
    out = np.zeros((len(points), len(names), 3), dtype=np.float64)
    out[:, columns] = points
    return out
