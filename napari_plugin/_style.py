"""How the plugin's layers look: class colours, low-score flags, contrast limits, layer kwargs.

`shapes_layer_kwargs` and `image_layer_kwargs` give everything ``viewer.add_shapes`` /
``viewer.add_image`` need: the data (converted by `._convert`), colours, contrast limits and
the plugin's metadata link.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from labelassist.instances import Instances

from ._convert import METADATA_KEY, default_classes, feature_defaults, instances_to_layer_data

__all__ = [
    "LOW_SCORE_FACE",
    "NO_FACE",
    "class_colors",
    "contrast_limits",
    "image_layer_kwargs",
    "shape_colors",
    "shapes_layer_kwargs",
]

LOW_SCORE_FACE = (1.0, 0.0, 0.0, 0.35)  # translucent red fill flags low-score instances
NO_FACE = (0.0, 0.0, 0.0, 0.0)
_PALETTE = (
    (1.0, 0.85, 0.0, 1.0),  # yellow
    (0.0, 0.9, 1.0, 1.0),  # cyan
    (0.3, 1.0, 0.3, 1.0),  # green
    (1.0, 0.5, 0.0, 1.0),  # orange
    (1.0, 0.3, 1.0, 1.0),  # magenta
    (0.5, 0.6, 1.0, 1.0),  # light blue
    (1.0, 1.0, 1.0, 1.0),  # white
    (0.6, 1.0, 0.8, 1.0),  # mint
)


# -- shapes ------------------------------------------------------------------------------------
def class_colors(classes: Sequence[str]) -> dict[str, np.ndarray]:
    """A fixed RGBA edge colour per class name (the palette repeats after 8 classes).

    Examples
    --------
    >>> class_colors(["a", "b"])["a"].tolist()
    [1.0, 0.85, 0.0, 1.0]
    """
    return {name: np.asarray(_PALETTE[k % len(_PALETTE)]) for k, name in enumerate(classes)}


def shape_colors(
    features: pd.DataFrame, classes: Sequence[str], *, low_score: float
) -> tuple[np.ndarray, np.ndarray]:
    """Edge colours by class and face colours flagging ``score < low_score``.

    Parameters
    ----------
    features : pandas.DataFrame
        A Shapes layer's features with columns ``class`` and ``score``.
    classes : sequence of str
        The class names, in palette order.
    low_score : float
        Shapes scoring below it are filled.

    Returns
    -------
    edge, face : ndarray of shape (N, 4), float64
        RGBA per shape: the edge is the class colour; the face is translucent red for
        low-score shapes and transparent otherwise.

    Examples
    --------
    >>> features = pd.DataFrame({"class": ["b", "a"], "score": [0.9, 0.1]})
    >>> edge, face = shape_colors(features, ["a", "b"], low_score=0.5)
    >>> edge[0].tolist(), face[:, 3].tolist()
    ([0.0, 0.9, 1.0, 1.0], [0.0, 0.35])
    """
    palette = np.asarray([_PALETTE[k % len(_PALETTE)] for k in range(max(len(classes), 1))])
    codes = pd.Index(list(classes)).get_indexer(np.asarray(features["class"], dtype=object))
    edge = palette[np.where(codes < 0, 0, codes)] if len(codes) else np.zeros((0, 4))
    low = np.asarray(features["score"], dtype=np.float64) < low_score
    face = np.where(low[:, None], LOW_SCORE_FACE, NO_FACE)
    return edge.astype(np.float64), face.astype(np.float64)


def shapes_layer_kwargs(
    instances: Instances,
    *,
    classes: Sequence[str] | None = None,
    low_score: float = 0.5,
    name: str = "instances",
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``viewer.add_shapes`` / ``napari.layers.Shapes``.

    Parameters
    ----------
    instances : Instances
        Polygons in library ``(x, y)`` coordinates.
    classes : sequence of str, optional
        Class names indexed by the labels.
    low_score : float
        Instances scoring below it are filled in translucent red.
    name : str
        Layer name (only shown to the user; the plugin never looks layers up by name).
    metadata : dict, optional
        Extra entries for ``layer.metadata["labelassist"]`` (for example the project
        folder, image id and version).

    Examples
    --------
    >>> import shapely
    >>> from labelassist import Instances
    >>> inst = Instances([shapely.box(0, 0, 2, 1)], [0], [0.2], (4, 4))
    >>> kwargs = shapes_layer_kwargs(inst, classes=["cell"])
    >>> kwargs["face_color"].tolist()
    [[1.0, 0.0, 0.0, 0.35]]
    """
    classes = list(classes) if classes is not None else default_classes(instances.labels)
    data, features = instances_to_layer_data(instances, classes=classes)
    edge, face = shape_colors(features, classes, low_score=low_score)
    meta = {"classes": classes, "image_shape": tuple(instances.image_shape), "low_score": low_score}
    meta.update(metadata or {})
    return {
        "data": data,
        "shape_type": "polygon",
        "features": features,
        "feature_defaults": feature_defaults(classes[0] if classes else "class 0", classes),
        "edge_color": edge if len(edge) else "#ffd900",  # napari rejects (0, 4) arrays
        "face_color": face if len(face) else "transparent",
        "edge_width": 1.0,
        "name": name,
        "metadata": {METADATA_KEY: meta},
    }


# -- images ------------------------------------------------------------------------------------
def contrast_limits(
    image: np.ndarray, *, percentiles: tuple[float, float] = (0.5, 99.5)
) -> tuple[float, float]:
    """Display range of `image` from percentiles, for any dtype (8/16-bit, float).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C)
        Any numeric dtype; large images are subsampled.
    percentiles : tuple of float
        Lower and upper percentile.

    Returns
    -------
    tuple of float
        ``(low, high)`` with ``high > low``.

    Examples
    --------
    >>> img = np.zeros((10, 10), np.uint16); img[5:, :] = 1000
    >>> contrast_limits(img)
    (0.0, 1000.0)
    """
    image = np.asarray(image)
    if image.size == 0:
        raise ValueError("image is empty; contrast limits need at least one pixel")
    step = max(1, int(np.sqrt(image.size / 1_000_000)))
    sample = image[::step, ::step].astype(np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return (0.0, 1.0)
    low, high = (float(v) for v in np.percentile(sample, percentiles))
    if high <= low:
        high = low + 1.0
    return (low, high)


def image_layer_kwargs(
    image: np.ndarray, *, name: str = "image", metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``viewer.add_image`` with percentile contrast limits.

    Parameters
    ----------
    image : ndarray of shape (H, W), (H, W, 3) or (H, W, 4)
        Any dtype; RGB(A) when the last axis has 3 or 4 channels.
    name : str
        Layer name.
    metadata : dict, optional
        Stored as ``layer.metadata["labelassist"]``.

    Examples
    --------
    >>> kwargs = image_layer_kwargs(np.full((4, 4), 300, np.uint16))
    >>> kwargs["contrast_limits"], kwargs["rgb"]
    ((300.0, 301.0), False)
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)):
        raise ValueError(
            f"image must have shape (H, W) or (H, W, 3|4), got {image.shape}; pick a 2-D plane"
        )
    rgb = image.ndim == 3
    kwargs: dict[str, Any] = {"data": image, "name": name, "rgb": rgb}
    if not (rgb and image.dtype == np.uint8):
        kwargs["contrast_limits"] = contrast_limits(image)
    kwargs["metadata"] = {METADATA_KEY: dict(metadata or {})}
    return kwargs
