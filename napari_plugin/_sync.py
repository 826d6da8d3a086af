"""Keep a Shapes layer and the project in step: send only real edits, take back stored ids.

napari keeps vertices in float32, so `restore_unchanged` gives untouched instances their
exact stored geometry before a save; `sync_features` gives the layer's shapes the instance
ids and provenance the project returned with the save (`labelassist.project.Revision`), so
the plugin never reads the project back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from labelassist.instances import Instances

__all__ = ["restore_unchanged", "restore_unchanged_points", "sync_features"]


def restore_unchanged(
    instances: Instances, originals: dict[int, Any], *, tolerance: float = 1e-3
) -> Instances:
    """Put back the stored geometry of instances the user did not change.

    napari keeps vertices in float32, so an untouched polygon comes back from the layer a
    few 1e-5 px off. Within ``tolerance`` (pixels, per vertex) of its stored geometry an
    instance gets that geometry back, and the project sees it unchanged.

    Parameters
    ----------
    instances : Instances
        From `layer_to_instances`, with ``extra["instance_id"]``.
    originals : dict of int to shapely geometry
        Stored geometry by instance id.

    Examples
    --------
    >>> import shapely
    >>> from labelassist import Instances
    >>> stored = shapely.box(0, 0, 2.1, 2)
    >>> edited = Instances([shapely.box(0, 0, 2.1000001, 2)], [0], [1.0], (4, 4),
    ...                    extra={"instance_id": [7]})
    >>> restore_unchanged(edited, {7: stored}).polygons[0] is stored
    True
    """
    ids = np.asarray(instances.extra.get("instance_id", []))
    rows = [k for k, i in enumerate(ids.tolist()) if i in originals]
    if not rows:
        return instances
    polys = instances.polygons.copy()
    stored = np.empty(len(rows), dtype=object)
    stored[:] = [originals[ids[k]] for k in rows]
    same = shapely.equals_exact(
        shapely.normalize(polys[rows]), shapely.normalize(stored), tolerance=tolerance
    )
    polys[np.asarray(rows)[same]] = stored[same]
    return instances.replace(polygons=polys)


def sync_features(layer: Any, sent: np.ndarray, saved: Instances) -> None:
    """Give the layer's shapes the ids and provenance the project stored.

    Parameters
    ----------
    layer : napari.layers.Shapes
        The layer that was saved (its ``instance`` feature holds the `sent` ids).
    sent : ndarray of int, shape (N,)
        The ``instance_id`` of each saved instance as sent.
    saved : Instances
        What the save returned (same order as sent), with ``extra["instance_id"]`` and
        ``extra["source"]``.
    """
    features = layer.features
    if len(features) == 0 or len(sent) == 0:
        return
    ids = features["instance"].to_numpy()
    mapping = {int(a): k for k, a in enumerate(np.asarray(sent).tolist())}
    rows = np.array([mapping.get(int(i), -1) for i in ids])
    ok = rows >= 0
    new_ids = ids.copy()
    new_ids[ok] = np.asarray(saved.extra["instance_id"])[rows[ok]]
    provenance = features["provenance"].to_numpy().copy()
    provenance[ok] = np.asarray(saved.extra["source"], dtype=object)[rows[ok]]
    features.iloc[:, features.columns.get_loc("instance")] = new_ids
    features.iloc[:, features.columns.get_loc("provenance")] = provenance


def restore_unchanged_points(
    keypoints: np.ndarray, ids: np.ndarray, originals: dict[int, np.ndarray], *, tolerance=1e-6
) -> np.ndarray:
    """Put back the stored keypoints of instances whose points the user did not change.

    The round trip to napari's ``(row, col)`` and back may move a point by a rounding
    error; within ``tolerance`` (pixels) of its stored points an instance gets them back.

    Parameters
    ----------
    keypoints : ndarray of shape (N, K, 3)
        From the Points layer (`._keypoints_layer.points_to_keypoints`).
    ids : ndarray of int, shape (N,)
        The instance id of each row.
    originals : dict of int to ndarray of shape (K, 3)
        Stored keypoints by instance id.

    Examples
    --------
    >>> stored = np.array([[22.3, 4.1, 2.0]])
    >>> moved = (stored + [[1e-9, 0, 0]])[None]
    >>> restore_unchanged_points(moved, np.array([7]), {7: stored})[0].tolist() == stored.tolist()
    True
    """
    out = np.array(keypoints, dtype=np.float64, copy=True)
    for row, instance in enumerate(np.asarray(ids).tolist()):
        stored = originals.get(int(instance))
        if stored is None or stored.shape != out[row].shape:
            continue
        same_v = np.array_equal(stored[:, 2], out[row, :, 2])
        if same_v and np.allclose(stored[:, :2], out[row, :, :2], rtol=0, atol=tolerance):
            out[row] = stored
    return out
