"""Keypoints as a napari Points layer linked to the Shapes layer of the same instances.

One point per labelled keypoint (visibility 1 or 2) of an image's `Instances`, at napari
``(row, col) = (y - 0.5, x - 0.5)`` (`._convert.xy_to_rowcol`). The layer's
``features``: ``instance`` (the instance id the point belongs to, as in the Shapes
layer's ``instance`` feature; 0: not yet assigned), ``keypoint`` (categorical name) and
``visibility`` (2 visible, 1 labelled but hidden). Colours are per keypoint name
(`keypoint_colors`, the same for every image), hidden points are drawn as rings.

Back to keypoints (`points_to_keypoints`): a point counts for the instance its
``instance`` feature names when that instance is in the Shapes layer, otherwise for the
instance whose outline contains it (a point the user just added), else the nearest one
within `SNAP_PX`; points that belong to no instance are dropped (their count is
returned). Two points of one name on one instance: the later one counts. A deleted point
is a keypoint with ``v = 0``.

The skeleton is drawn as line shapes between the points of each instance
(`skeleton_lines`), in a Shapes layer the widget rebuilds after each edit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import shapely

from labelassist.instances import Instances

from ._convert import METADATA_KEY, rowcol_to_xy, xy_to_rowcol

__all__ = [
    "KEYPOINT_FEATURES",
    "SNAP_PX",
    "keypoint_colors",
    "points_layer_kwargs",
    "points_to_keypoints",
    "set_visibility",
    "skeleton_layer_kwargs",
    "skeleton_lines",
]

KEYPOINT_FEATURES = ("instance", "keypoint", "visibility")
#: a point outside every outline counts for the nearest instance within this many pixels
SNAP_PX = 3.0
#: colours of keypoint names, in order (tab10 without the class colours' first ones)
_PALETTE = (
    "#d62728",
    "#1f77b4",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#17becf",
    "#e377c2",
    "#bcbd22",
    "#8c564b",
    "#7f7f7f",
)
_SYMBOLS = {1: "ring", 2: "disc"}


def keypoint_colors(names: Sequence[str]) -> dict[str, str]:
    """A colour per keypoint name, by position (the palette repeats after ten).

    Examples
    --------
    >>> keypoint_colors(["head", "tail"])
    {'head': '#d62728', 'tail': '#1f77b4'}
    """
    return {name: _PALETTE[k % len(_PALETTE)] for k, name in enumerate(names)}


def _features(instance: Any, keypoint: Any, visibility: Any, names: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "instance": np.asarray(instance, dtype=np.int64),
            "keypoint": pd.Categorical(list(keypoint), categories=list(names)),
            "visibility": np.asarray(visibility, dtype=np.int64),
        }
    )


def points_layer_kwargs(
    instances: Instances,
    names: Sequence[str],
    *,
    skeleton: Sequence[tuple[int, int]] = (),
    name: str = "keypoints",
    metadata: dict[str, Any] | None = None,
    size: float = 3.0,
) -> dict[str, Any]:
    """Keyword arguments of ``viewer.add_points`` for the keypoints of ``instances``.

    Parameters
    ----------
    instances : Instances
        With ``(N, K, 3)`` keypoints (None: no points) and ``extra["instance_id"]``
        (default ``1..N``).
    names : sequence of str
        The K keypoint names.
    skeleton : sequence of (int, int)
        Kept in the metadata (for `skeleton_lines`).
    name, metadata, size
        The layer's name, ``metadata[METADATA_KEY]`` entries and point size (pixels).

    Examples
    --------
    >>> import shapely
    >>> inst = Instances([shapely.box(0, 0, 9, 4)], [0], [1.0], (8, 12),
    ...                  keypoints=[[[0.5, 0.5, 2], [8.5, 3.5, 1]]])
    >>> kwargs = points_layer_kwargs(inst, ["head", "tail"])
    >>> kwargs["data"].tolist(), kwargs["features"]["visibility"].tolist()
    ([[0.0, 0.0], [3.0, 8.0]], [2, 1])
    """
    names = list(names)
    n = len(instances)
    ids = np.asarray(instances.extra.get("instance_id", np.arange(1, n + 1)), dtype=np.int64)
    points = instances.keypoints
    if points is None:
        points = np.zeros((n, len(names), 3))
    if points.shape[1] != len(names):
        raise ValueError(
            f"instances have {points.shape[1]} keypoints per object but {len(names)} names "
            f"were given ({names})"
        )
    owner, column = np.nonzero(points[:, :, 2] > 0)
    xy = points[owner, column, :2]
    visibility = points[owner, column, 2].astype(np.int64)
    colors = keypoint_colors(names)
    return {
        "data": xy_to_rowcol(xy) if len(xy) else np.zeros((0, 2)),
        "features": _features(ids[owner], [names[c] for c in column], visibility, names),
        "feature_defaults": {"instance": 0, "keypoint": names[0], "visibility": 2},
        "face_color": "keypoint",
        "face_color_cycle": colors,
        "border_color": "white",
        "border_width": 0.1,
        "symbol": [_SYMBOLS[int(v)] for v in visibility] or "disc",
        "size": size,
        "name": name,
        "metadata": {
            METADATA_KEY: {
                **(metadata or {}),
                "kind": "keypoints",
                "keypoints": names,
                "skeleton": [list(e) for e in skeleton],
            }
        },
    }


def points_to_keypoints(
    layer: Any, instances: Instances, names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, int]:
    """The ``(N, K, 3)`` keypoints a Points layer gives ``instances``.

    Parameters
    ----------
    layer : napari.layers.Points
        Made by `points_layer_kwargs` (or with the same features), then edited.
    instances : Instances
        The instances of the linked Shapes layer (`layer_to_instances`), with
        ``extra["instance_id"]``.
    names : sequence of str
        The keypoint names (the columns).

    Returns
    -------
    keypoints : ndarray of shape (N, K, 3)
        In library ``(x, y)`` coordinates.
    owners : ndarray of int, shape (M,)
        The instance id each point of the layer counted for (0: none).
    dropped : int
        Points that belong to no instance.
    """
    names = list(names)
    n = len(instances)
    out = np.zeros((n, len(names), 3), dtype=np.float64)
    data = np.asarray(layer.data, dtype=np.float64).reshape(-1, 2)
    owners = np.zeros(len(data), dtype=np.int64)
    if not len(data) or not n:
        return out, owners, len(data)
    ids = np.asarray(instances.extra["instance_id"], dtype=np.int64)
    row_of = {int(i): k for k, i in enumerate(ids.tolist())}
    xy = rowcol_to_xy(data)
    features = layer.features
    claimed = features["instance"].to_numpy(dtype=np.int64)
    rows = np.array([row_of.get(int(i), -1) for i in claimed], dtype=np.int64)
    lost = np.flatnonzero(rows < 0)
    if len(lost):
        rows[lost] = _nearest_instance(instances.polygons, xy[lost])
    column_of = {name: k for k, name in enumerate(names)}
    columns = np.array([column_of.get(str(v), -1) for v in features["keypoint"]], dtype=np.int64)
    visibility = np.clip(features["visibility"].to_numpy(dtype=np.int64), 1, 2)
    ok = (rows >= 0) & (columns >= 0)
    for p in np.flatnonzero(ok):  # in layer order: a later point of one name wins
        out[rows[p], columns[p]] = (xy[p, 0], xy[p, 1], visibility[p])
    owners[ok] = ids[rows[ok]]
    return out, owners, int((~ok).sum())


def _nearest_instance(polygons: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Row of the polygon holding (or nearest within `SNAP_PX` to) each point; -1: none."""
    points = shapely.points(xy)
    tree = shapely.STRtree(polygons)
    found, distance = tree.query_nearest(points, max_distance=SNAP_PX, return_distance=True)
    out = np.full(len(xy), -1, dtype=np.int64)
    # ties (inside two outlines): the first instance
    for (p, g), _d in sorted(zip(found.T.tolist(), distance.tolist(), strict=True), reverse=True):
        out[p] = g
    return out


def set_visibility(layer: Any, indices: Sequence[int], visibility: int) -> None:
    """Mark points hidden (1) or visible (2): the ``visibility`` feature and the symbol.

    Examples
    --------
    >>> import shapely
    >>> from napari.layers import Points
    >>> inst = Instances([shapely.box(0, 0, 9, 4)], [0], [1.0], (8, 12),
    ...                  keypoints=[[[0.5, 0.5, 2], [8.5, 3.5, 2]]])
    >>> kwargs = points_layer_kwargs(inst, ["head", "tail"])
    >>> kwargs.pop("feature_defaults")["visibility"]
    2
    >>> layer = Points(**kwargs)
    >>> set_visibility(layer, [1], 1)
    >>> layer.features["visibility"].tolist(), [str(s) for s in layer.symbol]
    ([2, 1], ['disc', 'ring'])
    """
    if visibility not in _SYMBOLS:
        raise ValueError(f"visibility must be 1 (hidden) or 2 (visible), got {visibility!r}")
    rows = sorted(int(i) for i in indices)
    if not rows:
        return
    features = layer.features
    column = features.columns.get_loc("visibility")
    features.iloc[rows, column] = visibility
    symbols = np.array([str(s) for s in layer.symbol], dtype=object)
    symbols[rows] = _SYMBOLS[visibility]
    layer.symbol = symbols.tolist()


def skeleton_lines(layer: Any, skeleton: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """The skeleton's line segments, ``(2, 2)`` napari ``(row, col)`` arrays: one per edge
    whose two keypoints an instance has (by the points' ``instance`` feature).

    Examples
    --------
    >>> import shapely
    >>> from napari.layers import Points
    >>> inst = Instances([shapely.box(0, 0, 9, 4)], [0], [1.0], (8, 12),
    ...                  keypoints=[[[0.5, 0.5, 2], [8.5, 3.5, 1]]])
    >>> kwargs = points_layer_kwargs(inst, ["head", "tail"])
    >>> del kwargs["feature_defaults"]
    >>> [line.tolist() for line in skeleton_lines(Points(**kwargs), [(0, 1)])]
    [[[0.0, 0.0], [3.0, 8.0]]]
    """
    data = np.asarray(layer.data, dtype=np.float64).reshape(-1, 2)
    if not len(data) or not len(skeleton):
        return []
    names = list(layer.features["keypoint"].cat.categories)
    where: dict[tuple[int, str], int] = {}
    instances = layer.features["instance"].to_numpy(dtype=np.int64).tolist()
    keypoints = [str(v) for v in layer.features["keypoint"]]
    for p, key in enumerate(zip(instances, keypoints, strict=True)):
        where[key] = p  # a later point of one name wins, as in points_to_keypoints
    lines = []
    for instance in dict.fromkeys(i for i in instances if i > 0):
        for a, b in skeleton:
            pa, pb = where.get((instance, names[a])), where.get((instance, names[b]))
            if pa is not None and pb is not None:
                lines.append(data[[pa, pb]])
    return lines


def skeleton_layer_kwargs(
    lines: list[np.ndarray], *, name: str = "skeleton", metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Keyword arguments of ``viewer.add_shapes`` for skeleton lines (not for editing).

    Examples
    --------
    >>> skeleton_layer_kwargs([np.zeros((2, 2))])["shape_type"]
    'line'
    """
    return {
        "data": lines,
        "shape_type": "line",
        "edge_color": "yellow",
        "edge_width": 0.5,
        "name": name,
        "metadata": {METADATA_KEY: {**(metadata or {}), "kind": "skeleton"}},
    }
