"""Turn napari prompts (a drawn rectangle, a click) into model prompts and their objects into shapes.

The Assist panel of the Review widget (`._assist`) is a thin Qt layer over these functions:
they convert a rectangle's corners or a click from napari ``(row, col)`` to library
``(x, y)`` (with `._convert`'s one conversion), add a prompted or refined object to a Shapes
layer with the right features, put refined outlines back as they were, and find the
instances of the selected shapes. None of them needs a viewer or Qt.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from labelassist.instances import Instances

from ._convert import instances_to_layer_data, layer_to_instances, rowcol_to_xy
from ._tracker import EDITED_PROVENANCES

__all__ = [
    "add_object",
    "click_to_point",
    "extreme_clicks_to_xy",
    "prompt_message",
    "rectangle_to_box",
    "replace_objects",
    "restore_objects",
    "selected_instances",
    "sources_to_save",
]


def rectangle_to_box(vertices: Any) -> np.ndarray:
    """The box ``x0, y0, x1, y1`` (COCO pixel coordinates) of a napari rectangle.

    The rectangle's area as drawn, converted like any shape (`rowcol_to_xy`).

    Parameters
    ----------
    vertices : array-like of shape (4, 2) or (4, D)
        The rectangle's corners as napari ``(row, col)`` (the last two coordinates).

    Examples
    --------
    >>> rectangle_to_box([[2, 3], [2, 9], [5, 9], [5, 3]]).tolist()
    [3.5, 2.5, 9.5, 5.5]
    """
    rowcol = np.asarray(vertices, dtype=np.float64)
    if rowcol.ndim != 2 or rowcol.shape[0] < 2 or rowcol.shape[1] < 2:
        raise ValueError(f"a rectangle needs (4, 2) corners, got shape {rowcol.shape}")
    corners = rowcol[:, -2:]
    (x0, y0), (x1, y1) = rowcol_to_xy(np.array([corners.min(axis=0), corners.max(axis=0)]))
    return np.array([x0, y0, x1, y1])


def click_to_point(position: Any) -> np.ndarray:
    """The library ``(x, y)`` of a click at napari data position ``(..., row, col)``.

    Examples
    --------
    >>> click_to_point((4.0, 7.0)).tolist()
    [7.5, 4.5]
    """
    rowcol = np.asarray(position, dtype=np.float64).reshape(-1)[-2:]
    return rowcol_to_xy(rowcol[None, :])[0]


def extreme_clicks_to_xy(positions: Any) -> np.ndarray:
    """The library ``x, y`` (4, 2) of four clicks on an object's extreme pixels.

    Extreme clicking (Papadopoulos et al., ICCV 2017): the annotator clicks the object's
    leftmost, topmost, rightmost and bottommost pixels, in any order;
    `labelassist.model.Model.segment`'s ``extreme_points`` snaps each to its pixel and
    segments the tight box they span, keeping the clicked pixels.

    Parameters
    ----------
    positions : array-like of shape (4, 2) or (4, D)
        The clicks as napari data positions ``(..., row, col)``.

    Examples
    --------
    >>> extreme_clicks_to_xy([[5.2, 2.1], [1.0, 6.4], [4.3, 8.6], [7.8, 5.0]]).tolist()
    [[2.6, 5.7], [6.9, 1.5], [9.1, 4.8], [5.5, 8.3]]
    """
    rowcol = np.asarray(positions, dtype=np.float64)
    if rowcol.ndim != 2 or rowcol.shape[0] != 4 or rowcol.shape[1] < 2:
        raise ValueError(f"extreme clicking needs 4 clicks (row, col), got shape {rowcol.shape}")
    return rowcol_to_xy(rowcol[:, -2:])


def prompt_message(class_name: str, score: float) -> str:
    """The status line for an object added by a prompt, with the box head's score.

    Scores under 0.01 (four extreme clicks keep their mask however low the box head scores
    it) are written with two significant digits and a word of caution, not as "0.00".

    Examples
    --------
    >>> prompt_message("nucleus", 0.987)
    'added a nucleus (score 0.99)'
    >>> prompt_message("nucleus", 0.0021)
    'added a nucleus (score 0.0021: the model is unsure, check the outline)'
    """
    score = float(score)
    if score >= 0.01:
        return f"added a {class_name} (score {score:.2f})"
    return f"added a {class_name} (score {score:.2g}: the model is unsure, check the outline)"


def _set_rows(features: pd.DataFrame, rows: Any, column: str, value: Any) -> None:
    features.iloc[rows, features.columns.get_loc(column)] = value


def add_object(
    layer: Any,
    instance: Instances,
    *,
    provenance: str = "prompted",
    instance_id: int | None = None,
    class_name: str | None = None,
) -> list[int]:
    """Add one object (the first instance of ``instance``) to a Shapes layer; return its rows.

    The shapes are added as polygons (one per part) the way a drawing tool adds them (an
    ``"added"`` data event, so the layer's `EditTracker` gives them an instance id and the
    review widget autosaves them); then all parts get one ``instance`` id (``instance_id``
    when given), the object's score, ``provenance`` and ``class_name`` (default: the
    layer's current class, ``layer.feature_defaults``). An empty polygon adds nothing.

    Examples
    --------
    >>> import shapely
    >>> from napari.layers import Shapes
    >>> from labelassist_napari._style import shapes_layer_kwargs
    >>> from labelassist_napari._tracker import tracker_for
    >>> layer = Shapes(**shapes_layer_kwargs(Instances.empty((8, 8)), classes=["cell"]))
    >>> _ = tracker_for(layer)
    >>> add_object(layer, Instances([shapely.box(1, 1, 4, 4)], [0], [0.8], (8, 8)))
    [0]
    >>> layer.features[["instance", "provenance"]].values.tolist()
    [[0, 'prompted']]
    """
    if len(instance) == 0:
        return []
    one = instance[[0]]
    classes = [str(c) for c in layer.features["class"].cat.categories]
    if class_name is None:
        class_name = str(layer.feature_defaults["class"].iloc[0])
    data, _ = instances_to_layer_data(one.replace(labels=np.zeros(1, np.int64)), classes=classes)
    if not data:
        return []
    start = len(layer.data)
    layer.add(data, shape_type="polygon")
    rows = list(range(start, start + len(data)))
    features = layer.features
    if instance_id is None:
        instance_id = int(features["instance"].iloc[start])
    _set_rows(features, rows, "instance", int(instance_id))
    _set_rows(features, rows, "class", class_name)
    _set_rows(features, rows, "score", float(one.scores[0]))
    _set_rows(features, rows, "provenance", provenance)
    return rows


def selected_instances(layer: Any, classes: list[str]) -> Instances:
    """The instances of the selected shapes (every part of them), with ``instance_id``."""
    picked = sorted(layer.selected_data)
    if not picked:
        return Instances.empty(
            tuple(layer.metadata["labelassist"]["image_shape"]),
            extra_keys=("provenance", "instance_id"),
        )
    ids = layer.features["instance"].to_numpy()[picked]
    instances = layer_to_instances(layer, classes=classes)
    keep = np.isin(instances.extra["instance_id"], ids)
    return instances[keep]


def replace_objects(layer: Any, refined: Instances) -> list[int]:
    """Replace the geometry of the layer's instances by ``refined``'s; return their ids.

    Only instances with ``extra["refined"]`` True (as `labelassist.refine_edges` marks
    them) and still in the layer are replaced: their shapes are removed and the new outline
    added with the same ``instance`` id, class and score; a ``"model"`` or ``"prompted"``
    one becomes ``"corrected"``. Returns the instance ids replaced.
    """
    flags = np.asarray(refined.extra.get("refined", np.zeros(len(refined), bool)), dtype=bool)
    done: list[int] = []
    for k in np.flatnonzero(flags):
        instance_id = int(refined.extra["instance_id"][k])
        features = layer.features
        rows = np.flatnonzero(features["instance"].to_numpy() == instance_id)
        if rows.size == 0:  # deleted meanwhile
            continue
        lead = int(rows[0])
        class_name = str(features["class"].iloc[lead])
        provenance = str(features["provenance"].iloc[lead])
        if provenance in EDITED_PROVENANCES:
            provenance = "corrected"
        layer.selected_data = set(rows.tolist())
        layer.remove_selected()
        add_object(
            layer,
            refined[[int(k)]],
            provenance=provenance,
            instance_id=instance_id,
            class_name=class_name,
        )
        done.append(instance_id)
    layer.selected_data = set()
    return done


def restore_objects(layer: Any, before: Instances, after: Instances) -> list[int]:
    """Put back the outlines ``before`` where the layer still has ``after``'s; return their ids.

    The undo of a refinement: ``before`` are the instances as they were (with
    ``extra["instance_id"]`` and ``extra["provenance"]``), ``after`` the same instances as
    `replace_objects` put them in the layer. An instance is restored (geometry, class, score
    and provenance as in ``before``) only while the layer holds it exactly as ``after``
    left it; one deleted or edited since is left alone (a later edit is never undone).

    Examples
    --------
    >>> import shapely
    >>> from napari.layers import Shapes
    >>> from labelassist_napari._style import shapes_layer_kwargs
    >>> from labelassist_napari._tracker import tracker_for
    >>> layer = Shapes(**shapes_layer_kwargs(Instances.empty((16, 16)), classes=["cell"]))
    >>> _ = tracker_for(layer)
    >>> rows = add_object(layer, Instances([shapely.box(2, 2, 9, 9)], [0], [0.8], (16, 16)),
    ...                   provenance="model")
    >>> before = layer_to_instances(layer, classes=["cell"])
    >>> refined = before.replace(polygons=[shapely.box(3, 3, 8, 8)], extra={
    ...     **before.extra, "refined": np.array([True])})
    >>> replace_objects(layer, refined)
    [0]
    >>> restore_objects(layer, before, layer_to_instances(layer, classes=["cell"]))
    [0]
    >>> layer_to_instances(layer, classes=["cell"]).polygons[0].bounds
    (2.0, 2.0, 9.0, 9.0)
    >>> layer.features["provenance"].tolist()
    ['model']
    """
    now = layer_to_instances(
        layer, classes=[str(c) for c in layer.features["class"].cat.categories]
    )
    current = {int(i): k for k, i in enumerate(now.extra["instance_id"])}
    expected = {int(i): k for k, i in enumerate(after.extra["instance_id"])}
    done: list[int] = []
    for k, instance_id in enumerate(int(i) for i in before.extra["instance_id"]):
        j, e = current.get(instance_id), expected.get(instance_id)
        if j is None or e is None:  # deleted meanwhile, or never refined
            continue
        if not now.polygons[j].equals_exact(after.polygons[e], 1e-6):  # edited since
            continue
        rows = np.flatnonzero(layer.features["instance"].to_numpy() == instance_id)
        class_name = str(layer.features["class"].iloc[int(rows[0])])
        layer.selected_data = set(rows.tolist())
        layer.remove_selected()
        add_object(
            layer,
            before[[k]],
            provenance=str(before.extra["provenance"][k]),
            instance_id=instance_id,
            class_name=class_name,
        )
        done.append(instance_id)
    layer.selected_data = set()
    return done


def sources_to_save(
    provenance: Iterable[str], instance_ids: Iterable[int], stored: Iterable[int]
) -> np.ndarray:
    """The ``extra["source"]`` a save passes: each shape's provenance, where a
    ``"corrected"`` shape the project never stored (a prompted object edited before its
    first save) is still ``"prompted"``.

    Examples
    --------
    >>> sources_to_save(["corrected", "corrected", "human"], [3, 9, 10], {3}).tolist()
    ['corrected', 'prompted', 'human']
    """
    prov = np.asarray(list(provenance), dtype=object)
    ids = np.asarray(list(instance_ids), dtype=np.int64)
    known = np.isin(ids, np.asarray(list(stored), dtype=np.int64))
    out = prov.copy()
    out[(prov == "corrected") & ~known] = "prompted"
    return out
