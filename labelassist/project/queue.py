"""The review queue of a labeling project: which image to label next (`Project.next_image`).

Without a model the choice costs one indexed query: by id (``"order"``), or by the stored
fraction of uncertain model scores (``"uncertainty"``, kept up to date by every save).
With a model, `labelassist.active.rank_images` predicts every open image and ranks them.

Stacks are queued by plane (each plane is an image: `next_image`, optionally within one
stack) or by stack (`next_stack`: the stack with the most uncertain open plane).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..active import rank_images
from ..checks import check_choice
from . import schema as _schema
from .images import IMAGE_COLUMNS, image_id, list_images, record, stack_id
from .store import Store

__all__ = ["next_image", "next_stack"]


def next_image(
    store: Store,
    *,
    strategy: str = "uncertainty",
    model: Any = None,
    exclude: Iterable[Any] = (),
    stack: Any = None,
) -> dict | None:
    """The record of the image to label next, or None (see `Project.next_image`)."""
    check_choice(strategy, "strategy", ("uncertainty", "order"))
    skip = {image_id(image) for image in exclude}
    if stack is not None:
        return _next_plane(store, stack_id(stack), strategy, model, skip)
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


def _next_plane(store: Store, stack: int, strategy: str, model: Any, skip: set[int]) -> dict | None:
    """The open plane of ``stack`` to label next: by plane index (``"order"``), by the
    model's ranking, or by the stored fraction of uncertain scores."""
    order = "plane" if strategy == "order" else "uncertainty IS NULL, uncertainty DESC, plane"
    with store.read() as con:
        if con.execute("SELECT 1 FROM stacks WHERE id = ?", (stack,)).fetchone() is None:
            raise ValueError(f"stack {stack} is not in this project; see Project.stacks()")
        rows = con.execute(
            f"SELECT {IMAGE_COLUMNS} FROM images WHERE stack_id = ? AND {_schema.QUEUE}"
            f" ORDER BY {order}",
            (stack,),
        ).fetchall()
    candidates = [record(store, row) for row in rows if row[0] not in skip]
    if strategy == "uncertainty" and model is not None and candidates:
        return candidates[int(rank_images(model, [r["path"] for r in candidates])[0])]
    return candidates[0] if candidates else None


def next_stack(
    store: Store, *, strategy: str = "uncertainty", exclude: Iterable[Any] = ()
) -> int | None:
    """The id of the stack to label next, or None when no stack has an open plane.

    ``"order"``: the lowest id; ``"uncertainty"``: the stack whose most uncertain open
    plane is the most uncertain (stored scores; stacks never predicted last, by id).
    """
    check_choice(strategy, "strategy", ("uncertainty", "order"))
    skip = {stack_id(stack) for stack in exclude}
    order = "stack_id"
    if strategy == "uncertainty":
        order = "max(uncertainty) IS NULL, max(uncertainty) DESC, stack_id"
    with store.read() as con:
        rows = con.execute(
            f"SELECT stack_id FROM images WHERE stack_id IS NOT NULL AND {_schema.QUEUE}"
            f" GROUP BY stack_id ORDER BY {order}"
        ).fetchall()
    for (number,) in rows:
        if number not in skip:
            return int(number)
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
