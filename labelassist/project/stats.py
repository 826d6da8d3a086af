"""Counts of a labeling project: images per status and split, instances per class and source.

Cheap at any size: one pass over the images' status index and the ``instance_counts``
table that every save and undo keeps up to date.
"""

from __future__ import annotations

from . import schema as _schema
from .store import Store

__all__ = ["stats"]


def stats(store: Store) -> dict:
    """The counts `Project.stats` returns."""
    with store.read() as con:
        status: dict[str, int] = {}
        split: dict[str | None, int] = {}
        for s, t, n in con.execute(  # one pass over the covering index
            "SELECT status, split, count(*) FROM images GROUP BY status, split"
        ):
            status[s] = status.get(s, 0) + n
            split[t] = split.get(t, 0) + n
        counts = con.execute("SELECT label, source, n FROM instance_counts").fetchall()
        (n_rounds,) = con.execute("SELECT count(*) FROM rounds").fetchone()
    classes = dict.fromkeys(store.classes, 0)
    sources = dict.fromkeys(_schema.SOURCES, 0)
    for label, source, n in counts:
        name = store.classes[label] if label < len(store.classes) else str(label)
        classes[name] = classes.get(name, 0) + n
        sources[source] = sources.get(source, 0) + n
    return {
        "images": sum(status.values()),
        "instances": sum(sources.values()),
        "rounds": n_rounds,
        "status": {s: status.get(s, 0) for s in _schema.STATUSES},
        "split": {
            "train": split.get("train", 0),
            "val": split.get("val", 0),
            "unassigned": split.get(None, 0),
        },
        "classes": classes,
        "source": sources,
    }
