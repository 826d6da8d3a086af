"""Training rounds recorded in a labeling project: checkpoint, parent, images, metrics.

`labelassist.rounds.run_round` trains a round; this module only stores and lists them.
Checkpoints are stored relative to the project folder, so that the folder can move.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import schema as _schema
from ._util import json_dumps_checked, placeholders
from .images import as_path, image_id
from .store import Store

__all__ = ["add_round", "latest_checkpoint", "rounds"]


def add_round(
    store: Store,
    *,
    checkpoint: str | os.PathLike,
    parent: int | None = None,
    image_ids: Iterable[Any],
    metrics: Mapping[str, Any],
    n_instances: int | None = None,
) -> int:
    """Record a training round; return its number (see `Project.add_round`)."""
    store.require_writable("add a round")
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a path, got {type(checkpoint).__name__}")
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a dict, got {type(metrics).__name__}")
    metrics_json = json_dumps_checked(dict(metrics), "metrics")
    ids = [image_id(i) for i in image_ids]
    if n_instances is not None and (
        isinstance(n_instances, bool)
        or not isinstance(n_instances, (int, np.integer))
        or n_instances < 0
    ):
        raise ValueError(f"n_instances must be an int >= 0 or None, got {n_instances!r}")
    stored = store.stored_path(as_path(checkpoint, "checkpoint"))
    with store.write("add a round") as con:
        if (
            parent is not None
            and con.execute("SELECT 1 FROM rounds WHERE round = ?", (parent,)).fetchone() is None
        ):
            raise ValueError(f"parent round {parent!r} does not exist; see Project.rounds()")
        counts: dict[int, int] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            counts.update(
                con.execute(
                    f"SELECT id, n_instances FROM images WHERE id IN ({placeholders(chunk)})",
                    chunk,
                ).fetchall()
            )
        missing = sorted(set(ids) - set(counts))
        if missing:
            raise ValueError(f"image_ids {missing[:10]} are not in this project")
        total = sum(counts.values()) if n_instances is None else int(n_instances)
        cur = con.execute(
            "INSERT INTO rounds (checkpoint, parent, image_ids, metrics, n_images,"
            " n_instances, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (stored, parent, json.dumps(ids), metrics_json, len(ids), total, _schema.now()),
        )
        return int(cur.lastrowid or 0)


def rounds(store: Store) -> list[dict]:
    """Training rounds, oldest first (see `Project.rounds`)."""
    with store.read() as con:
        rows = con.execute(
            "SELECT round, checkpoint, parent, image_ids, metrics, n_images, n_instances,"
            " created FROM rounds ORDER BY round"
        ).fetchall()
    return [
        {
            "round": r[0],
            "checkpoint": store.absolute(r[1]),
            "parent": r[2],
            "image_ids": json.loads(r[3]),
            "metrics": json.loads(r[4]),
            "n_images": r[5],
            "n_instances": r[6],
            "created": r[7],
        }
        for r in rows
    ]


def latest_checkpoint(store: Store) -> Path | None:
    """The checkpoint of the latest round (absolute), or None before the first round."""
    with store.read() as con:
        row = con.execute("SELECT checkpoint FROM rounds ORDER BY round DESC LIMIT 1").fetchone()
    return None if row is None else store.absolute(row[0])
