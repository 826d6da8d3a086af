"""Convert between labelassist `Instances` and napari Shapes layer data and features.

This module is the one place of labelassist that swaps the two coordinate conventions
(`xy_to_rowcol` / `rowcol_to_xy`): labelassist uses COCO's continuous ``(x, y)`` where
pixel ``(i, j)`` covers ``[j, j+1] x [i, i+1]``; napari puts pixel centres at integer
coordinates and orders axes ``(row, col)``, so napari ``(row, col) = (y - 0.5, x - 0.5)``.
Every other conversion here (vectorised over many rings) calls that pair.

napari shapes have no holes and one ring each, so an instance is stored as:

* one shape per part of a MultiPolygon; the parts share the ``instance`` feature;
* a polygon with holes as one *keyhole* ring: each hole is joined to the exterior by a
  zero-width cut (the hole is walked once and the cut twice). The ring rasterizes to the
  same pixels as the polygon with its holes (even-odd fill), and `layer_to_instances`
  restores the holes with ``shapely.make_valid(..., method="structure")``. Editing the
  vertices of a keyhole ring with napari's tools keeps the hole as long as the cut is not
  dragged apart.

The per-shape ``features`` table holds ``instance`` (int, shapes of one instance share
it), ``class`` (categorical class name), ``score`` (float) and ``provenance``
(``"model"``, ``"corrected"``, ``"human"`` or ``"prompted"``: added by a box or point
prompt). Colours live in `._style`, the bookkeeping
while the user edits in `._tracker`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import shapely

from labelassist.instances import Instances

__all__ = [
    "FEATURE_COLUMNS",
    "METADATA_KEY",
    "PROVENANCES",
    "default_classes",
    "feature_defaults",
    "instances_to_layer_data",
    "layer_to_instances",
    "plane_instances",
    "planes_to_layer_data",
    "shape_planes",
    "rowcol_to_xy",
    "xy_to_rowcol",
]

logger = logging.getLogger(__name__)

FEATURE_COLUMNS = ("instance", "class", "score", "provenance")
PROVENANCES = ("model", "corrected", "human", "prompted")
METADATA_KEY = "labelassist"  # layer.metadata[METADATA_KEY]: the plugin's link and settings


# -- the one coordinate conversion ---------------------------------------------------------
def xy_to_rowcol(xy: np.ndarray) -> np.ndarray:
    """Convert library vertices ``(x, y)`` to napari vertices ``(row, col)``.

    labelassist (COCO) puts the pixel at row ``i``, column ``j`` on the square
    ``[j, j+1] x [i, i+1]``; napari puts pixel centres at integer coordinates. Hence
    ``row = y - 0.5`` and ``col = x - 0.5``. This pair of functions is the only place
    of labelassist that converts between the two conventions.

    Parameters
    ----------
    xy : array-like of shape (K, 2)
        Vertices as ``(x, y)``.

    Returns
    -------
    ndarray of shape (K, 2), float64
        Vertices as ``(row, col)``.

    Examples
    --------
    >>> xy_to_rowcol([[0.0, 0.0], [4.0, 2.0]]).tolist()
    [[-0.5, -0.5], [1.5, 3.5]]
    """
    xy = _as_vertices(xy, "xy")
    return xy[:, ::-1] - 0.5


def rowcol_to_xy(rowcol: np.ndarray) -> np.ndarray:
    """Convert napari vertices ``(row, col)`` to library vertices ``(x, y)``.

    The inverse of `xy_to_rowcol`: ``x = col + 0.5`` and ``y = row + 0.5``.

    Parameters
    ----------
    rowcol : array-like of shape (K, 2)
        Vertices as ``(row, col)`` (napari data coordinates of a 2D layer).

    Returns
    -------
    ndarray of shape (K, 2), float64
        Vertices as ``(x, y)``.

    Examples
    --------
    >>> rowcol_to_xy([[-0.5, -0.5], [1.5, 3.5]]).tolist()
    [[0.0, 0.0], [4.0, 2.0]]
    """
    rowcol = _as_vertices(rowcol, "rowcol")
    return rowcol[:, ::-1] + 0.5


def _as_vertices(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must be an array of shape (K, 2), got shape {arr.shape}")
    return arr


# -- Instances -> layer data ------------------------------------------------------------------------
def default_classes(labels: np.ndarray) -> list[str]:
    """Class names ``"class 0"``, ... for layers made without the class list.

    Examples
    --------
    >>> default_classes(np.array([0, 2]))
    ['class 0', 'class 1', 'class 2']
    """
    n = int(labels.max()) + 1 if labels.size else 1
    return [f"class {k}" for k in range(n)]


def feature_defaults(class_name: str, classes: Sequence[str]) -> dict[str, Any]:
    """The features napari gives a shape the user draws (``layer.feature_defaults``).

    Examples
    --------
    >>> defaults = feature_defaults("b", ["a", "b"])
    >>> defaults["provenance"], defaults["class"].tolist()
    ('human', ['b'])
    """
    return {
        "instance": -1,
        "class": pd.Categorical([class_name], categories=list(classes)),
        "score": 1.0,
        "provenance": "human",
    }


def _keyhole(polygon: shapely.Polygon) -> np.ndarray:
    """One ring (K, 2) ``(x, y)``, not closed, that walks the exterior and every hole."""
    polygon = shapely.orient_polygons(polygon)  # holes run against the exterior
    ring = np.asarray(polygon.exterior.coords)[:-1]
    for interior in polygon.interiors:
        hole = np.asarray(interior.coords)[:-1]
        d2 = ((ring[:, None, :] - hole[None, :, :]) ** 2).sum(axis=-1)
        j, i = np.unravel_index(int(np.argmin(d2)), d2.shape)
        hole_walk = np.concatenate([np.roll(hole, -i, axis=0), hole[i : i + 1]])
        ring = np.concatenate([ring[: j + 1], hole_walk, ring[j:]])
    return ring


def instances_to_layer_data(
    instances: Instances, *, classes: Sequence[str] | None = None
) -> tuple[list[np.ndarray], pd.DataFrame]:
    """Shapes layer data and features for `instances`.

    Parameters
    ----------
    instances : Instances
        Polygons in library ``(x, y)`` coordinates.
    classes : sequence of str, optional
        Class names indexed by ``instances.labels``. Default ``"class 0"``, ...

    Returns
    -------
    data : list of ndarray of shape (K, 2), float64
        One ``(row, col)`` vertex array per shape (napari coordinates, not closed).
        A MultiPolygon gives one shape per part; a hole is kept by a keyhole cut (see the
        module docstring); empty polygons give no shape.
    features : pandas.DataFrame
        One row per shape with columns ``instance`` (int64: ``extra["instance_id"]``
        when present, as in `labelassist.Project.instances`, else the index into
        `instances`), ``class`` (categorical with categories `classes`), ``score``
        (float64) and ``provenance`` (str: ``extra["provenance"]`` or ``extra["source"]``
        when present, else ``"model"``).

    Examples
    --------
    >>> import shapely
    >>> from labelassist import Instances
    >>> inst = Instances([shapely.box(0, 0, 2, 1)], [0], [0.9], (4, 4))
    >>> data, features = instances_to_layer_data(inst, classes=["cell"])
    >>> sorted(map(tuple, data[0].tolist()))
    [(-0.5, -0.5), (-0.5, 1.5), (0.5, -0.5), (0.5, 1.5)]
    >>> features["class"].tolist(), features["provenance"].tolist()
    (['cell'], ['model'])
    """
    if not isinstance(instances, Instances):
        raise TypeError(f"instances must be labelassist.Instances, got {type(instances).__name__}")
    classes = list(classes) if classes is not None else default_classes(instances.labels)
    if instances.labels.size and int(instances.labels.max()) >= len(classes):
        raise ValueError(
            f"classes has {len(classes)} names but instances has label "
            f"{int(instances.labels.max())}; pass all class names of the model or project"
        )
    provenance = instances.extra.get("provenance", instances.extra.get("source"))
    if provenance is None:
        provenance = np.full(len(instances), "model", dtype=object)
    ids = instances.extra.get("instance_id")
    ids = np.arange(len(instances)) if ids is None else np.asarray(ids, dtype=np.int64)
    parts, owner = shapely.get_parts(instances.polygons, return_index=True)
    keep = ~shapely.is_empty(parts)
    parts, owner = parts[keep], owner[keep]
    data = _parts_to_rings(parts)
    features = pd.DataFrame(
        {
            "instance": ids[owner].astype(np.int64),
            "class": pd.Categorical.from_codes(instances.labels[owner], categories=classes),
            "score": instances.scores[owner].astype(np.float64),
            "provenance": np.asarray(provenance, dtype=object)[owner],
        }
    )
    return data, features


def _parts_to_rings(parts: np.ndarray) -> list[np.ndarray]:
    """(row, col) rings of polygons (vectorised for polygons without holes)."""
    if parts.size == 0:
        return []
    coords, index = shapely.get_coordinates(shapely.get_exterior_ring(parts), return_index=True)
    rc = xy_to_rowcol(coords)  # all rings at once
    bounds = np.searchsorted(index, np.arange(1, len(parts)))
    rings = [r[:-1] for r in np.split(rc, bounds)]
    for k in np.flatnonzero(shapely.get_num_interior_rings(parts) > 0):
        rings[k] = xy_to_rowcol(_keyhole(parts[k]))
    return rings


def planes_to_layer_data(
    planes: Sequence[Instances],
    stack_shape: tuple[int, ...],
    *,
    classes: Sequence[str] | None = None,
) -> tuple[list[np.ndarray], pd.DataFrame]:
    """nD Shapes layer data and features for the planes of a stack.

    Parameters
    ----------
    planes : sequence of Instances
        One per plane, in C order over ``stack_shape`` (as
        `labelassist.stacks.StackInstances.planes`); ``extra["object_id"]`` when present.
    stack_shape : tuple of int
        The sizes of the stack axes, e.g. ``(Z,)`` or ``(T, Z)``.
    classes : sequence of str, optional
        Class names.

    Returns
    -------
    data : list of ndarray of shape (K, len(stack_shape) + 2), float64
        Each shape's vertices with the plane's index over the stack axes first, then
        ``(row, col)``: napari shows a shape on the slice its leading coordinates name,
        so the sliders show each plane's objects.
    features : pandas.DataFrame
        The columns of `instances_to_layer_data` plus ``object`` (int64, the object or
        track id; 0 when an instance has none).

    Examples
    --------
    >>> import shapely
    >>> from labelassist import Instances
    >>> planes = [Instances.empty((4, 4)),
    ...           Instances([shapely.box(0, 0, 2, 1)], [0], [0.9], (4, 4),
    ...                     extra={"object_id": [7]})]
    >>> data, features = planes_to_layer_data(planes, (2,), classes=["cell"])
    >>> data[0][:, 0].tolist(), features["object"].tolist()
    ([1.0, 1.0, 1.0, 1.0], [7])
    """
    lead = tuple(int(n) for n in stack_shape)
    if len(planes) != int(np.prod(lead)):
        raise ValueError(f"planes has {len(planes)} entries for stack shape {lead}")
    data: list[np.ndarray] = []
    tables = []
    for k, plane in enumerate(planes):
        rings, features = instances_to_layer_data(plane, classes=classes)
        if not rings:
            continue
        index = np.asarray(np.unravel_index(k, lead), dtype=np.float64)
        data.extend(np.column_stack([np.tile(index, (len(r), 1)), r]) for r in rings)
        objects = plane.extra.get("object_id")
        if objects is None:
            objects = np.zeros(len(plane), dtype=np.int64)
        parts, owner = shapely.get_parts(plane.polygons, return_index=True)
        owner = owner[~shapely.is_empty(parts)]
        features["object"] = np.asarray(objects, dtype=np.int64)[owner]
        tables.append(features)
    if not tables:
        empty = instances_to_layer_data(Instances.empty((1, 1)), classes=classes or ["class 0"])
        features = empty[1].assign(object=np.zeros(0, dtype=np.int64))
        return [], features
    return data, pd.concat(tables, ignore_index=True)


def shape_planes(data: Sequence[np.ndarray], stack_shape: tuple[int, ...]) -> np.ndarray:
    """The plane (position in C order over ``stack_shape``) of each nD shape, from its
    first vertex's leading coordinates (rounded); -1 outside the stack.

    Examples
    --------
    >>> shape_planes([np.array([[1.0, 2.0, 0.0, 0.0]])], (2, 3)).tolist()
    [5]
    """
    lead = tuple(int(n) for n in stack_shape)
    if not len(data):
        return np.zeros(0, dtype=np.int64)
    index = np.rint([np.asarray(v)[0, : len(lead)] for v in data]).astype(np.int64)
    inside = np.all((index >= 0) & (index < np.asarray(lead)), axis=1)
    out = np.full(len(data), -1, dtype=np.int64)
    if inside.any():
        out[inside] = np.ravel_multi_index(tuple(index[inside].T), lead)
    return out


def plane_instances(
    layer: Any,
    plane: int,
    stack_shape: tuple[int, ...],
    *,
    image_shape: tuple[int, int],
    classes: Sequence[str],
) -> tuple[Instances, np.ndarray]:
    """The instances of one plane of an nD Shapes layer (see `planes_to_layer_data`).

    Returns
    -------
    instances : Instances
        As `layer_to_instances` makes them from the shapes on ``plane``, with
        ``extra["object_id"]`` (the ``object`` feature; 0 where a shape has none).
    rows : ndarray of int
        The layer's rows (shape indices) on that plane.
    """
    on_plane = np.flatnonzero(shape_planes(list(layer.data), stack_shape) == plane)
    features = layer.features.iloc[on_plane].reset_index(drop=True)
    data = [np.asarray(layer.data[k])[:, -2:] for k in on_plane]
    kinds = [layer.shape_type[k] for k in on_plane]
    inst = _shapes_to_instances(
        data, kinds, features, (int(image_shape[0]), int(image_shape[1])), list(classes)
    )
    objects = np.zeros(len(inst), dtype=np.int64)
    if "object" in features and len(inst):
        by_instance = dict(
            zip(_instance_ids(features, len(features)).tolist(), features["object"], strict=True)
        )
        objects = np.array(
            [int(by_instance.get(int(i), 0)) for i in inst.extra["instance_id"]], dtype=np.int64
        )
    return inst.replace(extra={**inst.extra, "object_id": objects}), on_plane


# -- layer -> Instances ---------------------------------------------------------------------------
def _ellipse_ring(corners: np.ndarray, n: int = 32) -> np.ndarray:
    centre = corners.mean(axis=0)
    u = (corners[1] - corners[0]) / 2
    w = (corners[2] - corners[1]) / 2
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)[:, None]
    return centre + np.cos(t) * u + np.sin(t) * w


def layer_to_instances(
    layer: Any,
    *,
    image_shape: tuple[int, int] | None = None,
    classes: Sequence[str] | None = None,
) -> Instances:
    """Instances from a napari Shapes layer.

    Parameters
    ----------
    layer : napari.layers.Shapes
        A 2D Shapes layer. Polygons, rectangles and ellipses become polygons; lines and
        paths have no area and are skipped with a warning. Shapes sharing the feature
        ``instance`` become one instance (a MultiPolygon when they do not touch);
        shapes without it, or with ``instance < 0``, are an instance each.
    image_shape : tuple of int, optional
        ``(height, width)``; default ``layer.metadata["labelassist"]["image_shape"]``.
        Polygons are clipped to the image.
    classes : sequence of str, optional
        Class names; default the layer's metadata, else the categories of the ``class``
        feature.

    Returns
    -------
    Instances
        In library ``(x, y)`` coordinates, ordered by first appearance in the layer,
        with ``extra["provenance"]`` and ``extra["instance_id"]`` (the ``instance``
        feature; negative for shapes without one). Invalid rings (self-crossing, keyholes) are
        repaired with ``shapely.make_valid(method="structure")``; shapes that end up
        empty are dropped.

    Examples
    --------
    >>> import numpy as np
    >>> from napari.layers import Shapes
    >>> layer = Shapes([np.array([[-0.5, -0.5], [-0.5, 1.5], [0.5, 1.5], [0.5, -0.5]])])
    >>> inst = layer_to_instances(layer, image_shape=(4, 4))
    >>> inst.boxes.tolist(), inst.extra["provenance"].tolist()
    ([[0.0, 0.0, 2.0, 1.0]], ['human'])
    """
    meta = getattr(layer, "metadata", {}).get(METADATA_KEY, {})
    if image_shape is None:
        image_shape = meta.get("image_shape")
    if image_shape is None:
        raise ValueError(
            "image_shape is unknown for this layer: pass image_shape=(height, width) of the "
            "image the shapes belong to"
        )
    features = layer.features
    if classes is None:
        classes = meta.get("classes")
    if classes is None:
        col = features.get("class")
        if col is not None and isinstance(col.dtype, pd.CategoricalDtype):
            classes = [str(c) for c in col.cat.categories]
        else:
            classes = sorted({str(c) for c in col}) if col is not None else ["class 0"]
    return _shapes_to_instances(
        list(layer.data), list(layer.shape_type), features, tuple(image_shape), list(classes)
    )


def _shapes_to_instances(
    data: list[np.ndarray],
    shape_types: list[str],
    features: pd.DataFrame,
    image_shape: tuple[int, int],
    classes: list[str],
) -> Instances:
    n = len(data)
    if n == 0:
        return Instances.empty(image_shape, extra_keys=("provenance", "instance_id"))
    rings, keep = [], np.zeros(n, dtype=bool)
    skipped = 0
    for k, (vertices, kind) in enumerate(zip(data, shape_types, strict=True)):
        vertices = np.asarray(vertices, dtype=np.float64)[:, -2:]
        if kind == "ellipse":
            vertices = _ellipse_ring(vertices)
        elif kind in ("line", "path") or len(vertices) < 3:
            skipped += 1
            continue
        rings.append(vertices)
        keep[k] = True
    if skipped:
        logger.warning("skipped %d line/path shapes: they have no area", skipped)
    if not rings:
        return Instances.empty(image_shape, extra_keys=("provenance", "instance_id"))
    lengths = np.array([len(r) for r in rings])
    xy = rowcol_to_xy(np.concatenate(rings))  # all rings at once
    polys = shapely.polygons(
        shapely.linearrings(xy, indices=np.repeat(np.arange(len(rings)), lengths))
    )
    polys = _repair(polys, image_shape)

    rows = np.flatnonzero(keep)
    ids = _instance_ids(features, n)[rows]
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first)  # groups in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    group = rank[inverse]
    lead = rows[first[order]]  # first shape of each group carries class and score
    by_group = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[by_group], np.arange(1, len(order)))
    geoms = np.split(polys[by_group], bounds)
    merged = [g[0] if len(g) == 1 else _union(g) for g in geoms]

    class_col = features["class"] if "class" in features else pd.Series([classes[0]] * n)
    names = np.asarray(class_col.astype(str), dtype=object)
    codes = pd.Index(classes).get_indexer(names)[lead]
    if (codes < 0).any():
        bad = class_col.astype(str).iloc[lead[codes < 0][0]]
        raise ValueError(f"shape class {bad!r} is not one of the classes {classes}")
    scores = np.asarray(features["score"], dtype=np.float64)[lead] if "score" in features else 1.0
    prov_col = (
        np.asarray(features["provenance"], dtype=object)
        if "provenance" in features
        else np.full(n, "human", dtype=object)
    )
    prov = prov_col[lead].copy()
    corrected = np.zeros(len(order), dtype=bool)
    corrected[group[prov_col[rows] == "corrected"]] = True  # any corrected part
    prov[corrected & np.isin(prov, ("model", "prompted"))] = "corrected"
    scores = np.clip(np.broadcast_to(scores, (len(order),)), 0.0, 1.0)
    extra = {"provenance": prov, "instance_id": ids[first[order]]}
    inst = Instances(merged, codes, scores, image_shape, extra=extra)
    return inst[~shapely.is_empty(inst.polygons)]


def _instance_ids(features: pd.DataFrame, n: int) -> np.ndarray:
    """Instance id per shape; shapes without a valid id get unique negative ids."""
    if "instance" not in features:
        return -1 - np.arange(n)
    ids = pd.to_numeric(features["instance"], errors="coerce").to_numpy(dtype=np.float64)
    missing = ~np.isfinite(ids) | (ids < 0)
    ids = np.where(missing, -1 - np.arange(n), ids)
    return ids.astype(np.int64)


def _repair(polys: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    polys = polys.copy()
    bad = ~shapely.is_valid(polys)
    if bad.any():
        polys[bad] = [
            _polygonal(g)
            for g in shapely.make_valid(polys[bad], method="structure", keep_collapsed=False)
        ]
    h, w = image_shape
    outside = ~shapely.within(polys, shapely.box(0, 0, w, h))
    if outside.any():
        polys[outside] = [
            _polygonal(g) for g in shapely.intersection(polys[outside], shapely.box(0, 0, w, h))
        ]
    return polys


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    if shapely.get_type_id(geom) in (3, 6):
        return geom
    parts = [p for p in shapely.get_parts(geom) if shapely.get_type_id(p) in (3, 6)]
    return _union(parts) if parts else shapely.Polygon()


def _union(parts: Sequence[shapely.Geometry] | np.ndarray) -> shapely.Geometry:
    merged = shapely.union_all(list(parts))
    return merged if shapely.get_type_id(merged) in (3, 6) else _polygonal(merged)
