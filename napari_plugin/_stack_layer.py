"""The nD Shapes layer of a stack (no Qt): its colours, one plane's save, copies to the next plane.

The Review stacks widget (`._stack_review`) reads and writes the layer through these
functions; they take a napari Shapes layer (its ``data``, ``shape_type`` and ``features``)
made by `stack_shapes_kwargs` and plain values, so they run without a viewer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import shapely

from labelassist.instances import Instances

from ._convert import (
    METADATA_KEY,
    feature_defaults,
    instances_to_layer_data,
    plane_instances,
    planes_to_layer_data,
    shape_planes,
)
from ._prompts import sources_to_save
from ._sync import restore_unchanged

__all__ = [
    "apply_saved",
    "next_plane",
    "next_plane_object",
    "object_colors",
    "plane_to_save",
    "stack_shapes_kwargs",
]

#: Colours of object ids (cycled); the edge of each shape is its object's colour.
_OBJECT_PALETTE = np.array(
    [
        [0.90, 0.10, 0.29, 1.0],
        [0.24, 0.71, 0.29, 1.0],
        [1.00, 0.88, 0.10, 1.0],
        [0.26, 0.39, 0.85, 1.0],
        [0.96, 0.51, 0.19, 1.0],
        [0.57, 0.12, 0.71, 1.0],
        [0.27, 0.94, 0.94, 1.0],
        [0.94, 0.20, 0.90, 1.0],
        [0.74, 0.96, 0.05, 1.0],
        [0.98, 0.75, 0.83, 1.0],
    ]
)


def object_colors(objects: Any) -> np.ndarray:
    """RGBA per shape from its object id (cycled palette; white for 0, no object yet).

    Examples
    --------
    >>> colours = object_colors([0, 1, 11])
    >>> colours[0].tolist(), bool((colours[1] == colours[2]).all())
    ([1.0, 1.0, 1.0, 1.0], True)
    """
    ids = np.asarray(objects, dtype=np.int64)
    out = _OBJECT_PALETTE[(ids - 1) % len(_OBJECT_PALETTE)].copy()
    out[ids <= 0] = 1.0
    return out.reshape(len(ids), 4)


def stack_shapes_kwargs(
    planes: Sequence[Instances],
    stack_shape: tuple[int, ...],
    *,
    classes: Sequence[str],
    name: str,
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """Keyword arguments for ``viewer.add_shapes``: every plane's polygons in nD (see
    `._convert.planes_to_layer_data`), the object id as text and colour.

    Examples
    --------
    >>> import shapely
    >>> plane = Instances([shapely.box(0, 0, 2, 2)], [0], [1.0], (4, 4),
    ...                   extra={"object_id": [3]})
    >>> kwargs = stack_shapes_kwargs([Instances.empty((4, 4)), plane], (2,),
    ...                              classes=["cell"], name="s", metadata={})
    >>> kwargs["ndim"], kwargs["text"]["string"], kwargs["features"]["object"].tolist()
    (3, '{object}', [3])
    """
    data, features = planes_to_layer_data(planes, stack_shape, classes=classes)
    meta = {"classes": list(classes), "image_shape": tuple(planes[0].image_shape), **metadata}
    return {
        "data": data,
        "ndim": len(stack_shape) + 2,
        "shape_type": "polygon",
        "features": features,
        # a drawn shape: a new instance and no object yet (the save gives it one)
        "feature_defaults": {**feature_defaults(classes[0], list(classes)), "object": 0},
        "edge_color": object_colors(features["object"]) if len(data) else "white",
        "face_color": "transparent",
        "edge_width": 1.0,
        "text": {"string": "{object}", "size": 10, "color": "white", "anchor": "center"},
        "name": name,
        "metadata": {METADATA_KEY: meta},
    }


def plane_to_save(
    layer: Any,
    plane: int,
    stack_shape: tuple[int, ...],
    *,
    image_shape: tuple[int, int],
    classes: Sequence[str],
    originals: dict[int, Any],
) -> tuple[Instances, np.ndarray]:
    """The instances of ``plane`` to save, and the layer's rows on that plane.

    Shapes without an object (``object`` 0: drawn) get new ids above the layer's, written
    into the layer's features too; untouched instances get their stored geometry back
    (`._sync.restore_unchanged`); ``extra`` holds ``instance_id``, ``source`` (as
    `Project.save_instances` takes it) and ``object_id``.
    """
    mine, rows = plane_instances(
        layer, plane, stack_shape, image_shape=image_shape, classes=classes
    )
    objects = mine.extra["object_id"].copy()
    fresh = np.flatnonzero(objects <= 0)
    if fresh.size:  # drawn without an object: a new one each
        features = layer.features
        top = max(int(features["object"].max()), 0)
        objects[fresh] = np.arange(top + 1, top + 1 + fresh.size)
        ids = features["instance"].to_numpy()
        for k in fresh.tolist():
            hit = rows[ids[rows] == mine.extra["instance_id"][k]]
            features.iloc[hit, features.columns.get_loc("object")] = objects[k]
    mine = restore_unchanged(mine, originals)
    sent = mine.extra["instance_id"]
    extra = {
        "instance_id": sent,
        "source": sources_to_save(mine.extra["provenance"], sent, originals),
        "object_id": objects,
    }
    return mine.replace(extra=extra), rows


def apply_saved(layer: Any, rows: np.ndarray, sent: np.ndarray, saved: Instances) -> None:
    """Give the layer's shapes on a saved plane (``rows``) the instance ids and provenance
    the project stored (``saved``, in the order of ``sent``)."""
    features = layer.features
    ids = features["instance"].to_numpy()
    mapping = {int(i): k for k, i in enumerate(np.asarray(sent).tolist())}
    stored_ids = saved.extra["instance_id"]
    stored_src = saved.extra["source"]
    id_col = features.columns.get_loc("instance")
    src_col = features.columns.get_loc("provenance")
    for row in np.asarray(rows).tolist():
        k = mapping.get(int(ids[row]))
        if k is not None:
            features.iloc[row, id_col] = int(stored_ids[k])
            features.iloc[row, src_col] = str(stored_src[k])


def next_plane(plane: int, stack_shape: tuple[int, ...]) -> int:
    """The plane after ``plane`` along the last stack axis; ValueError at its end.

    Examples
    --------
    >>> next_plane(3, (2, 5)), next_plane(0, (3,))
    (4, 1)
    >>> next_plane(4, (2, 5))
    Traceback (most recent call last):
    ...
    ValueError: plane 4 is the last along its axis: there is no next plane
    """
    index = list(np.unravel_index(int(plane), stack_shape))
    if index[-1] + 1 >= stack_shape[-1]:
        raise ValueError(f"plane {plane} is the last along its axis: there is no next plane")
    index[-1] += 1
    return int(np.ravel_multi_index(tuple(index), stack_shape))


def next_plane_object(
    layer: Any,
    row: int,
    stack_shape: tuple[int, ...],
    *,
    image_shape: tuple[int, int],
    classes: Sequence[str],
    model: Any = None,
    pixels: Callable[[int], np.ndarray] | None = None,
) -> tuple[int, list[np.ndarray], pd.DataFrame]:
    """The object of the shape at ``row`` on the next plane: ``(plane, nD shape data,
    features)``.

    With a ``model`` (anything with ``segment(image, boxes=..., label=..., exclude=...)``,
    as `labelassist.Model`) and ``pixels(plane)`` giving the plane's image, the object's
    bounding box is a box prompt on the next plane (provenance ``"prompted"``) that keeps
    off the other objects already on that plane; without one, or when the prompt finds
    nothing, its outline is copied (``"human"``). The features keep the object id and
    class; ``instance`` is -1 (new).
    """
    planes = shape_planes(list(layer.data), stack_shape)
    plane = int(planes[row])
    target = next_plane(plane, stack_shape)
    features = layer.features
    here, _ = plane_instances(layer, plane, stack_shape, image_shape=image_shape, classes=classes)
    picked = np.flatnonzero(here.extra["instance_id"] == int(features["instance"].iloc[row]))
    if picked.size == 0:
        raise ValueError("the selected shape has no area (a line or path): select an outline")
    polygon = here.polygons[int(picked[0])]
    name = str(features["class"].iloc[row])
    label = list(classes).index(name)
    geometry, provenance, score = polygon, "human", 1.0
    if model is not None and pixels is not None:
        # the object may grow from one plane to the next, and a box prompt's mask is cut to
        # its box: prompt with the outline's box grown by 2 px (inside the image)
        x0, y0, x1, y1 = shapely.bounds(polygon)
        height, width = image_shape
        box = [[max(x0 - 2, 0), max(y0 - 2, 0), min(x1 + 2, width), min(y1 + 2, height)]]
        there, _ = plane_instances(
            layer, target, stack_shape, image_shape=image_shape, classes=classes
        )
        own = int(features["object"].iloc[row])  # 0: not saved yet, no copy of it there
        others = (there.extra["object_id"] != own) | (own == 0)
        exclude = list(there.polygons[others]) if others.any() else None
        result = model.segment(pixels(target), boxes=box, label=label, exclude=exclude)
        if len(result) and not result.polygons[0].is_empty:
            geometry, provenance, score = result.polygons[0], "prompted", float(result.scores[0])
    copy = Instances([geometry], [label], [score], image_shape)
    rings, new = instances_to_layer_data(copy, classes=list(classes))
    lead = np.asarray(np.unravel_index(target, stack_shape), dtype=np.float64)
    data = [np.column_stack([np.tile(lead, (len(r), 1)), r]) for r in rings]
    new = new.assign(instance=-1, provenance=provenance, object=int(features["object"].iloc[row]))
    return target, data, new
