"""Edge refinement of instance outlines with GrabCut, each object in its own region of interest.

A proposal's outline is often a pixel off (Mask R-CNN's 28 x 28 masks are coarse); GrabCut
re-decides the pixels near the edge from the image itself. Each object is cut inside its
box grown by ``margin`` pixels, initialised from its own mask:

============================  ===========================================================
pixels                        GrabCut label
============================  ===========================================================
mask, farther than ``band``   sure foreground (the mask eroded by ``band``)
inside the edge
rest of the mask              probable foreground
``band`` px around the mask   probable background
other objects' masks          sure background (touching objects cannot bleed into
                              each other)
beyond                        sure background
============================  ===========================================================

so an outline moves at most ``band`` pixels either way. OpenCV (``opencv-python-headless``)
is imported on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import shapely
from scipy import ndimage

from .checks import check_choice, check_int, check_number
from .geometry import DEFAULT_TOLERANCE, masks_to_polygons, polygons_to_masks
from .instances import Instances
from .io import check_image

__all__ = ["REFINE_METHODS", "refine_edges"]

#: Methods of `refine_edges`.
REFINE_METHODS = ("grabcut",)

# GrabCut's labels (cv2.GC_BGD, GC_FGD, GC_PR_BGD, GC_PR_FGD), spelled out so that the
# RoI labels are built without importing cv2
_BGD, _FGD, _PR_BGD, _PR_FGD = 0, 1, 2, 3


def _import_cv2() -> Any:
    try:
        import cv2  # heavy: OpenCV, only needed here
    except ImportError:
        raise ImportError(
            "refine_edges(method='grabcut') needs OpenCV: pip install opencv-python-headless"
        ) from None
    return cv2


def _to_uint8(crop: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    """An (h, w[, C]) crop as the contiguous (h, w, 3) uint8 image GrabCut takes.

    ``limits`` map to 0 and 255 (clipped); gray is repeated to three channels, alpha is
    dropped, NaN becomes 0 and +-inf 255 / 0.
    """
    lo, hi = limits
    if crop.ndim == 3:
        crop = crop[..., :3]
    if crop.dtype == np.uint8 and (lo, hi) == (0.0, 255.0):
        out = crop
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            work = np.asarray(crop, dtype=np.float64)
            work = (work - lo) * (255.0 / (hi - lo))
        work = np.nan_to_num(work, nan=0.0, posinf=255.0, neginf=0.0)
        out = np.clip(np.rint(work), 0, 255).astype(np.uint8)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    return np.ascontiguousarray(out)


def _check_limits(limits: Any) -> tuple[float, float]:
    message = f"limits must be finite (low, high) with low < high, got {limits!r}"
    try:
        lo, hi = (float(v) for v in limits)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(message)
    return lo, hi


def _rois(boxes: np.ndarray, grow: int, shape: tuple[int, int]) -> np.ndarray:
    """Integer RoIs ``(x0, y0, x1, y1)``, (N, 4): the pixels a box touches, grown by
    ``grow`` and clipped to the image (empty where the box lies outside it)."""
    h, w = shape
    x0 = np.floor(boxes[:, 0]) - grow
    y0 = np.floor(boxes[:, 1]) - grow
    x1 = np.ceil(boxes[:, 2]) + grow
    y1 = np.ceil(boxes[:, 3]) + grow
    out = np.stack(
        [np.clip(x0, 0, w), np.clip(y0, 0, h), np.clip(x1, 0, w), np.clip(y1, 0, h)], axis=1
    )
    return out.astype(np.int64)


def _trimap(own: np.ndarray, others: np.ndarray, band: int) -> np.ndarray:
    """GrabCut's initial labels of one RoI (see the module notes), (h, w) uint8."""
    inside = ndimage.distance_transform_edt(own)
    outside = ndimage.distance_transform_edt(~own)
    labels = np.full(own.shape, _BGD, dtype=np.uint8)
    labels[(outside <= band) & ~own] = _PR_BGD
    labels[others & ~own] = _BGD
    labels[own] = _PR_FGD
    labels[inside > band] = _FGD
    return labels


def _cleanup(result: np.ndarray, own: np.ndarray) -> np.ndarray:
    """GrabCut's foreground, reduced to the parts that overlap the original mask, with the
    holes it opened filled (holes of the original mask may stay holes)."""
    parts, n = ndimage.label(result)
    if n > 1:
        keep = np.zeros(n + 1, dtype=bool)
        keep[np.unique(parts[own & result])] = True
        keep[0] = False
        result = keep[parts]
    filled = ndimage.binary_fill_holes(result)
    old_holes = ndimage.binary_fill_holes(own) & ~own
    return result | (filled & ~old_holes)


def _grabcut_one(
    cv2: Any,
    crop: np.ndarray,
    own: np.ndarray,
    others: np.ndarray,
    band: int,
    iterations: int,
) -> np.ndarray | None:
    """The refined mask of one object in its RoI, or None where GrabCut cannot run."""
    labels = _trimap(own, others, band)
    if not (labels % 2 == 0).any():  # no background at all: nothing to learn it from
        return None
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(crop, labels, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # e.g. a colour model without samples
        return None
    return _cleanup((labels == _FGD) | (labels == _PR_FGD), own)


def refine_edges(
    image: np.ndarray,
    instances: Instances,
    *,
    method: str = "grabcut",
    band: int = 2,
    iterations: int = 3,
    margin: int | None = None,
    limits: tuple[float, float] | None = None,
    normalization: Mapping[str, Any] | str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    max_area_ratio: float = 2.0,
) -> Instances:
    """Refine the outlines of ``instances`` against the edges of ``image`` with GrabCut.

    Each object is cut in its own region of interest (its box grown by ``margin``),
    initialised from its mask: sure foreground is the mask eroded by ``band``, probable
    foreground the rest of the mask, probable background a ring of ``band`` pixels around
    it, sure background the rest of the region and every other object's pixels (so
    touching objects do not bleed into each other). An outline moves at most ``band``
    pixels. Opt-in: measure it on your data first (``bench/bench_refine.py``; see
    docs/refine.md for what it does on nuclei).

    Parameters
    ----------
    image : ndarray of shape (H, W), (H, W, 3) or (H, W, 4)
        uint8, uint16, other integers, float or bool. Intensities are mapped to 8 bits by
        ``limits`` (GrabCut works on 8-bit colour); gray is used as three equal channels,
        alpha is dropped.
    instances : Instances
        The objects of ``image`` (``instances.image_shape == image.shape[:2]``).
    method : {"grabcut"}
        The refinement; OpenCV's ``cv2.grabCut`` (needs ``opencv-python-headless``).
    band : int
        Width in pixels of the uncertain zone on each side of the outline, >= 1.
    iterations : int
        GrabCut iterations (colour model re-estimations), >= 1.
    margin : int, optional
        Pixels added to each side of an object's box for its region of interest, >= ``band``;
        the pixels beyond the band give GrabCut its background colours. Default ``band +
        8``.
    limits : (float, float), optional
        Intensities mapped to 0 and 255. Default: the model's image normalisation,
        `labelassist.model.intensity_range` of ``image`` with ``normalization`` (uint8 as
        it is, other types their 1st-99.8th percentiles), computed once per image.
    normalization : dict or str, optional
        The model's normalisation (``model.normalization``) for the default ``limits``.
    tolerance : float
        Simplification of the refined outlines, as `labelassist.geometry.masks_to_polygons`
        (``0``: exact pixel edges).
    max_area_ratio : float
        Sanity limit, > 1: a refined mask whose area differs from the original's by more
        than this factor (either way) is discarded.

    Returns
    -------
    Instances
        A new `Instances` with the same objects in the same order, labels, scores and
        extra columns, and a bool column ``extra["refined"]`` (replacing any such column):
        True where the outline comes from GrabCut (in COCO pixel coordinates, traced from
        the refined mask), False where the original polygon is kept as it was: GrabCut
        emptied the mask, changed its area by more than ``max_area_ratio``, or could not
        run (an object with no pixel centre in the image, a region without any
        background). No instance is ever dropped. Parts of the refined mask that do not
        touch the original mask are dropped, and holes GrabCut opened are filled.

    Notes
    -----
    The work is one GrabCut per object on its region only (about the object's box plus
    ``2 * margin``), so it grows with the objects, not the image; neighbours are found with
    a shapely STRtree.

    Examples
    --------
    >>> import numpy as np, shapely
    >>> from labelassist import Instances
    >>> yy, xx = np.mgrid[:40, :40]
    >>> image = (((xx - 19.5) ** 2 + (yy - 19.5) ** 2 < 10**2) * 200 + 20).astype(np.uint8)
    >>> proposal = shapely.Point(20, 20).buffer(12)  # 2 px too large
    >>> out = refine_edges(image, Instances([proposal], [0], [0.9], (40, 40)))
    >>> bool(out.extra["refined"][0]), round(out.areas[0] / proposal.area, 2)
    (True, 0.7)
    """
    check_choice(method, "method", REFINE_METHODS)
    band = check_int(band, "band", minimum=1)
    iterations = check_int(iterations, "iterations", minimum=1)
    margin = check_int(margin, "margin", minimum=band, allow_none=True)
    if margin is None:
        margin = band + 8
    tolerance = check_number(tolerance, "tolerance", minimum=0)
    max_area_ratio = check_number(max_area_ratio, "max_area_ratio", minimum=1)
    if max_area_ratio == 1.0:
        raise ValueError("max_area_ratio must be > 1 (1 would keep every original), got 1.0")
    if not isinstance(instances, Instances):
        raise TypeError(f"instances must be labelassist.Instances, got {type(instances).__name__}")
    if not hasattr(image, "shape") or not hasattr(image, "dtype"):
        raise TypeError(f"image must be a numpy array (H, W[, C]), got {type(image).__name__}")
    image = check_image(image)
    if image.dtype.kind not in "biuf":
        raise TypeError(
            f"image must hold bool, integer or float intensities, got dtype {image.dtype}"
        )
    if tuple(image.shape[:2]) != instances.image_shape:
        raise ValueError(
            f"image has shape {tuple(image.shape[:2])} but instances.image_shape is "
            f"{instances.image_shape}; pass the image the instances belong to"
        )
    if limits is not None:
        limits = _check_limits(limits)
    n = len(instances)
    refined = np.zeros(n, dtype=bool)
    extra = {k: v for k, v in instances.extra.items() if k != "refined"}
    if n == 0:
        return instances.replace(extra={**extra, "refined": refined})
    cv2 = _import_cv2()
    if limits is None:
        from .model import intensity_range  # heavy: imports torch

        limits = intensity_range(image, normalization=normalization)
    polygons = instances.polygons.copy()
    rois = _rois(instances.boxes, margin, instances.image_shape)
    tree = shapely.STRtree(instances.polygons)
    for k in range(n):
        x0, y0, x1, y1 = (int(v) for v in rois[k])
        if x1 <= x0 or y1 <= y0 or instances.polygons[k].is_empty:
            continue
        near = tree.query(shapely.box(x0, y0, x1, y1))
        shifted = shapely.transform(instances.polygons[near], lambda xy: xy - (x0, y0))  # noqa: B023
        masks = polygons_to_masks(shifted, (y1 - y0, x1 - x0))
        mine = near == k
        own = masks[mine][0]
        others = masks[~mine].any(axis=0)
        area = int(own.sum())
        if area == 0:
            continue
        crop = _to_uint8(image[y0:y1, x0:x1], limits)
        result = _grabcut_one(cv2, crop, own, others, band, iterations)
        if result is None:
            continue
        new_area = int(result.sum())
        if new_area == 0 or not area / max_area_ratio <= new_area <= area * max_area_ratio:
            continue
        polygons[k] = masks_to_polygons(result, tolerance=tolerance, offset=(x0, y0))[0]
        refined[k] = True
    return instances.replace(polygons=polygons, extra={**extra, "refined": refined})
