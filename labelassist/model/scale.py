"""Object-size normalisation: object sizes, the scale factor they imply, and rescaling images and instances.

Cellpose's "diameter" idea: a network sees objects best at the size it was trained at. The
size of an object is the diameter of the circle of the same area, ``2 * sqrt(area / pi)``
in pixels (`object_sizes`); a set of objects has the median of these (`median_object_size`).
A model stores the size it was trained at (``Model.object_size``); an image whose objects
measure ``s`` pixels is rescaled by ``object_size / s`` (`scale_factor`, `rescale_image`)
before the network sees it, and the results are mapped back to the original pixels.

Rescaling follows the COCO pixel convention (pixel ``(r, c)`` covers ``[c, c+1] x [r,
r+1]``): a point ``(x, y)`` maps to ``(x * fx, y * fy)`` about the image's corner, where
``(fx, fy)`` are the exact per-axis factors of the resized grid (`grid_factors`), as
OpenCV and scikit-image resample.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np
import shapely

from ..checks import check_shape
from ..geometry import masks_to_polygons, polygons_to_masks
from ..instances import Instances

__all__ = [
    "MAX_FACTOR",
    "check_object_size",
    "grid_factors",
    "median_object_size",
    "object_sizes",
    "rescale_image",
    "rescale_instances",
    "scale_factor",
]

#: Scale factors are clipped to ``[1 / MAX_FACTOR, MAX_FACTOR]`` (`scale_factor`).
MAX_FACTOR = 8.0
# OpenCV resizes these dtypes (and at most 512 channels); others go through scikit-image
_CV2_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


def object_sizes(instances: Instances) -> np.ndarray:
    """Per instance the diameter of the circle of the same area, ``2 * sqrt(area / pi)`` (px).

    Parameters
    ----------
    instances : Instances

    Returns
    -------
    ndarray of shape (N,), float64
        0 for an empty polygon.

    Examples
    --------
    >>> import shapely
    >>> inst = Instances([shapely.box(0, 0, 10, 10)], None, None, (32, 32))
    >>> object_sizes(inst).round(3).tolist()
    [11.284]
    """
    if not isinstance(instances, Instances):
        raise TypeError(f"instances must be an Instances, got {type(instances).__name__}")
    return 2.0 * np.sqrt(np.asarray(instances.areas, dtype=np.float64) / math.pi)


def median_object_size(items: Instances | Iterable[Instances]) -> float | None:
    """The median `object_sizes` over one `Instances` or an iterable of them.

    Empty polygons do not count.

    Parameters
    ----------
    items : Instances or iterable of Instances

    Returns
    -------
    float or None
        None when there is no (non-empty) instance.

    Examples
    --------
    >>> import shapely
    >>> a = Instances([shapely.box(0, 0, 10, 10)], None, None, (32, 32))
    >>> b = Instances([shapely.box(0, 0, 20, 20), shapely.box(0, 0, 30, 30)], None, None, (64, 64))
    >>> round(median_object_size([a, b]), 3)
    22.568
    >>> median_object_size(Instances.empty((8, 8))) is None
    True
    """
    if isinstance(items, Instances):
        items = [items]
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise TypeError(
            f"items must be an Instances or an iterable of them, got {type(items).__name__}"
        )
    sizes = [object_sizes(inst) for inst in items]
    every = np.concatenate(sizes) if sizes else np.zeros(0)
    every = every[every > 0]
    return float(np.median(every)) if every.size else None


def check_object_size(value: Any, name: str = "object_size", *, allow_auto: bool = False) -> Any:
    """A positive finite object size in pixels as ``float`` (or None, or ``"auto"`` where
    allowed); a one-line `ValueError` otherwise.

    Examples
    --------
    >>> check_object_size(24), check_object_size(None), check_object_size("auto", allow_auto=True)
    (24.0, None, 'auto')
    >>> check_object_size(0)
    Traceback (most recent call last):
    ...
    ValueError: object_size must be a positive number of pixels (the objects' median diameter) or None, got 0
    """
    if value is None:
        return None
    if allow_auto and isinstance(value, str) and value == "auto":
        return "auto"
    auto = ', "auto" (estimate it from a first pass)' if allow_auto else ""
    message = (
        f"{name} must be a positive number of pixels (the objects' median diameter){auto} "
        f"or None, got {value!r}"
    )
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(message)
    out = float(value)
    if not math.isfinite(out) or out <= 0:
        raise ValueError(message)
    return out


def scale_factor(net_size: float | None, size: float | None) -> float:
    """The factor that brings objects of ``size`` px to the network's ``net_size`` px.

    ``net_size / size`` clipped to ``[1 / MAX_FACTOR, MAX_FACTOR]``; 1 when either is None.

    Examples
    --------
    >>> scale_factor(30.0, 60.0), scale_factor(None, 60.0), scale_factor(30.0, 1.0)
    (0.5, 1.0, 8.0)
    """
    if net_size is None or size is None:
        return 1.0
    net_size = check_object_size(net_size, "net_size")
    size = check_object_size(size, "size")
    return float(min(max(net_size / size, 1.0 / MAX_FACTOR), MAX_FACTOR))


def _new_shape(shape: tuple[int, int], factor: float) -> tuple[int, int]:
    h, w = shape
    return max(1, round(h * factor)), max(1, round(w * factor))


def grid_factors(shape: tuple[int, int], factor: float) -> tuple[float, float]:
    """The exact per-axis factors ``(fx, fy)`` of `rescale_image` (the grid is rounded).

    Examples
    --------
    >>> grid_factors((10, 15), 0.5)
    (0.5333333333333333, 0.5)
    """
    h, w = check_shape(shape, "shape", minimum=1)
    nh, nw = _new_shape((h, w), factor)
    return nw / w, nh / h


def _check_factor(factor: Any) -> float:
    if isinstance(factor, bool) or not isinstance(factor, numbers.Real):
        raise ValueError(f"factor must be a positive finite number, got {factor!r}")
    out = float(factor)
    if not math.isfinite(out) or out <= 0:
        raise ValueError(f"factor must be a positive finite number, got {factor!r}")
    return out


def rescale_image(image: np.ndarray, factor: float) -> np.ndarray:
    """Resize an image by ``factor`` to ``(round(H * factor), round(W * factor))``.

    Bilinear when enlarging, area averaging (anti-aliased) when shrinking, OpenCV for
    its dtypes (scikit-image for the others); the dtype is kept (integers rounded and
    clipped to their range; bool resampled as 0/1 and thresholded at 0.5). Factor 1
    returns the image itself.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C)
    factor : float
        Positive.

    Returns
    -------
    ndarray of shape (round(H * factor), round(W * factor)[, C]), same dtype

    Examples
    --------
    >>> image = np.arange(16, dtype=np.uint8).reshape(4, 4)
    >>> rescale_image(image, 0.5)
    array([[ 3,  5],
           [11, 13]], dtype=uint8)
    >>> rescale_image(np.zeros((5, 7, 2), np.float32), 1.5).shape
    (8, 10, 2)
    """
    factor = _check_factor(factor)
    image = np.asarray(image)
    if image.ndim not in (2, 3) or 0 in image.shape:
        raise ValueError(f"image must be a non-empty (H, W) or (H, W, C) array, got {image.shape}")
    if factor == 1.0:
        return image
    nh, nw = _new_shape((int(image.shape[0]), int(image.shape[1])), factor)
    if (nh, nw) == image.shape[:2]:
        return image
    if image.dtype.kind == "b":  # resampled as 0/255 and thresholded at the middle
        return rescale_image(image.astype(np.uint8) * np.uint8(255), factor) >= 128
    shrink = nh < image.shape[0] or nw < image.shape[1]
    channels = 1 if image.ndim == 2 else int(image.shape[2])
    if image.dtype.type in _CV2_DTYPES and channels <= 512:
        import cv2  # heavy: OpenCV

        interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        out = cv2.resize(np.ascontiguousarray(image), (nw, nh), interpolation=interpolation)
        return out.reshape((nh, nw) + image.shape[2:])
    from skimage.transform import resize  # heavy-ish: scikit-image's transform

    work = image.astype(np.float64)
    out = resize(
        work,
        (nh, nw) + image.shape[2:],
        order=1,
        mode="edge",
        anti_aliasing=shrink,
        preserve_range=True,
    )
    if image.dtype.kind in "ui":
        info = np.iinfo(image.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(image.dtype)
    return out.astype(image.dtype)


def rescale_instances(
    instances: Instances,
    factor: float,
    image_shape: tuple[int, int] | None = None,
    *,
    exact: bool = True,
) -> Instances:
    """Scale instances about the image corner: a point ``(x, y)`` goes to ``(x*fx, y*fy)``.

    Parameters
    ----------
    instances : Instances
    factor : float
        The factor `rescale_image` was given.
    image_shape : (int, int), optional
        The rescaled image's ``(height, width)`` (default: ``instances.image_shape``
        rescaled as `rescale_image` does). ``(fx, fy)`` are its size over the original's.
    exact : bool
        Re-rasterise each scaled polygon on the new grid (pixel centres inside, as
        pycocotools) and trace it back, so the result is an exact pixel-boundary polygon
        of the rescaled image (vertices on the integer lattice). An object too small to
        cover a pixel centre after shrinking becomes an empty polygon (kept, so the
        columns stay aligned; drop them with ``out[~shapely.is_empty(out.polygons)]``).
        ``exact=False`` only scales the coordinates.

    Returns
    -------
    Instances
        Same labels, scores and ``extra``; ``image_shape`` the rescaled one.

    Examples
    --------
    >>> import shapely
    >>> inst = Instances([shapely.box(1, 2, 5, 6)], [0], [0.8], (10, 10))
    >>> out = rescale_instances(inst, 0.5)
    >>> out.polygons[0].bounds, out.image_shape, out.scores.tolist()
    ((1.0, 1.0, 3.0, 3.0), (5, 5), [0.800000011920929])
    """
    if not isinstance(instances, Instances):
        raise TypeError(f"instances must be an Instances, got {type(instances).__name__}")
    factor = _check_factor(factor)
    old = instances.image_shape
    if image_shape is None:
        new = _new_shape(old, factor)
    else:
        new = check_shape(image_shape, "image_shape", minimum=1)
    fx, fy = new[1] / old[1], new[0] / old[0]
    polygons = np.asarray(instances.polygons, dtype=object)
    scaled = shapely.transform(polygons, lambda xy: xy * np.array([fx, fy]))
    if exact:
        scaled = _rasterise_each(scaled, new)
    points = instances.keypoints
    if points is not None:  # x, y scale with the image; visibility stays
        points = np.asarray(points, dtype=np.float64) * np.array([fx, fy, 1.0])
    return instances.replace(polygons=list(scaled), image_shape=new, keypoints=points)


def _rasterise_each(polygons: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Each geometry as the exact pixel-boundary polygon of the pixels whose centres it covers
    (rasterised inside its own bounding box, so the work is proportional to the objects)."""
    h, w = shape
    out = np.empty(len(polygons), dtype=object)
    out[:] = [shapely.Polygon()] * len(polygons)
    for k, geom in enumerate(polygons):
        if geom is None or geom.is_empty:
            continue
        bx0, by0, bx1, by1 = geom.bounds
        x0, y0 = max(int(math.floor(bx0)), 0), max(int(math.floor(by0)), 0)
        x1, y1 = min(int(math.ceil(bx1)), w), min(int(math.ceil(by1)), h)
        if x1 <= x0 or y1 <= y0:
            continue
        local = shapely.transform(geom, lambda xy, x0=x0, y0=y0: xy - np.array([x0, y0]))
        mask = polygons_to_masks([local], (y1 - y0, x1 - x0))[0]
        if mask.any():
            out[k] = masks_to_polygons(mask, tolerance=0, offset=(x0, y0))[0]
    return out
