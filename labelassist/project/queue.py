"""The review queue of a labeling project: which image to label next (`Project.next_image`).

Without a model the choice costs one indexed query: by id (``"order"``), or by the stored
fraction of uncertain model scores (``"uncertainty"``, kept up to date by every save).
With a model, `labelassist.active.rank_images` predicts every open image and ranks them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..active import rank_images
from ..checks import check_choice
from . import schema as _schema
from .images import IMAGE_COLUMNS, image_id, list_images, record
from .store import Store

__all__ = ["next_image"]


def next_image(
    store: Store, *, strategy: str = "uncertainty", model: Any = None, exclude: Iterable[Any] = ()
) -> dict | None:
    """The record of the image to label next, or None (see `Project.next_image`)."""
    check_choice(strategy, "strategy", ("uncertainty", "order"))
    skip = {image_id(image) for image in exclude}
    if strategy == "uncertainty" and model is not None:
        return _rank_with_model(store, model, skip)
    # partial indexes over the images still to label; DESC puts NULL (never predicted) last
    index, order = (
        ("images_todo", "id") if strategy == "order" else ("images_queue", "uncertainty DESC, id")
    )
    with store.read() as con:
        rows = con.execute(
            f"SELECT {IMAGE_COLUMNS} FROM images INDEXED BY {index} WHERE {_schema.QUEUE}"
            f" ORDER BY {order} LIMIT ?",
            (len(skip) + 1,),
        ).fetchall()
    for row in rows:
        if row[0] not in skip:
            return record(store, row)
    return None


def _rank_with_model(store: Store, model: Any, skip: set[int]) -> dict | None:
    candidates = [
        r
        for r in list_images(store, status=["new", "pre-annotated", "in-review"])
        if r["id"] not in skip
    ]
    if not candidates:
        return None
    order = rank_images(model, [r["path"] for r in candidates])
    return candidates[int(order[0])]
