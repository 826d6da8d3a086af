"""Edge refinement of instance outlines with GrabCut, each object in its own region of interest.

A proposal's outline is often a pixel off (Mask R-CNN's 28 x 28 masks are coarse); GrabCut
re-decides the pixels near the edge from the image itself. Each object is cut inside its
box grown by ``margin`` pixels, starting from its own mask:

==================================  =========================================================
pixels                              GrabCut label
==================================  =========================================================
mask, farther than ``band`` inside  sure foreground (the mask eroded by ``band``)
rest of the mask                    probable foreground
``band`` px around the mask         probable background
other objects' masks                sure background (touching objects cannot bleed into
                                    each other)
the rest of the region              sure background
==================================  =========================================================

so an outline moves at most ``band`` pixels either way. OpenCV (``opencv-python-headless``)
is imported on first use. What it does on nuclei, measured against ground truth, is in
``docs/refine.md`` (``bench/bench_refine.py``).
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

__all__ = ["REFINE_METHODS", "offset_edges", "refine_edges"]

#: Methods of `refine_edges`.
REFINE_METHODS = ("grabcut",)

# GrabCut's labels (cv2.GC_BGD, GC_FGD, GC_PR_BGD, GC_PR_FGD), spelled out so that the
# labels of a region are built without cv2
_BGD, _FGD, _PR_BGD, _PR_FGD = 0, 1, 2, 3


def _import_cv2() -> Any:
    try:
        import cv2  # heavy: OpenCV, only needed here
    except ImportError:
        raise ImportError(
            "refine_edges(method='grabcut') needs OpenCV: pip install opencv-python-headless"
        ) from None
    return cv2


def _check_limits(limits: Any) -> tuple[float, float]:
    message = f"limits must be finite (low, high) with low < high, got {limits!r}"
    if isinstance(limits, (str, bytes)):
        raise ValueError(message)
    try:
        lo, hi = (float(v) for v in limits)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(message)
    return lo, hi


def _to_uint8(crop: np.ndarray, limits: tuple[float, float], smoothing: float) -> np.ndarray:
    """A crop (h, w[, C]) as the contiguous (h, w, 3) uint8 image GrabCut takes.

    ``limits`` map to 0 and 255 (clipped; NaN is 0, +-inf 255 / 0), then a Gaussian of
    ``smoothing`` px (per channel) evens out noise; gray is repeated to three channels,
    alpha is dropped.
    """
    lo, hi = limits
    if crop.ndim == 3:
        crop = crop[..., :3]
    if crop.dtype == np.uint8 and (lo, hi) == (0.0, 255.0) and smoothing == 0:
        out = crop
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            work = (np.asarray(crop, dtype=np.float64) - lo) * (255.0 / (hi - lo))
        work = np.clip(np.nan_to_num(work, nan=0.0, posinf=255.0, neginf=0.0), 0, 255)
        if smoothing > 0:
            sigma = (smoothing, smoothing, 0.0)[: work.ndim]
            work = ndimage.gaussian_filter(work, sigma, mode="nearest")
        out = np.rint(work).astype(np.uint8)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    return np.ascontiguousarray(out)


def _regions(boxes: np.ndarray, margin: int, shape: tuple[int, int]) -> np.ndarray:
    """Integer regions ``(x0, y0, x1, y1)``, (N, 4) int64: the pixels each box touches,
    grown by ``margin`` and clipped to the image (empty where a box lies outside it)."""
    h, w = shape
    boxes = np.nan_to_num(boxes, nan=0.0)  # empty geometries: NaN bounds, an empty region
    grown = np.concatenate([np.floor(boxes[:, :2]) - margin, np.ceil(boxes[:, 2:]) + margin], 1)
    return np.clip(grown, 0, [w, h, w, h]).astype(np.int64)


def _trimap(own: np.ndarray, others: np.ndarray, band: int) -> np.ndarray:
    """GrabCut's initial labels of one region (see the module notes), (h, w) uint8."""
    inside = ndimage.distance_transform_edt(own)
    outside = ndimage.distance_transform_edt(~own)
    labels = np.full(own.shape, _BGD, dtype=np.uint8)
    labels[outside <= band] = _PR_BGD
    labels[others] = _BGD
    labels[own] = _PR_FGD
    labels[inside > band] = _FGD
    return labels


def _cleanup(result: np.ndarray, own: np.ndarray) -> np.ndarray:
    """GrabCut's foreground without the parts that miss the original mask, and with the
    holes it opened filled (holes of the original mask may stay holes)."""
    parts, n = ndimage.label(result)
    if n > 1:
        keep = np.zeros(n + 1, dtype=bool)
        keep[parts[own & result]] = True
        keep[0] = False
        result = keep[parts]
    filled = ndimage.binary_fill_holes(result)
    old_holes = ndimage.binary_fill_holes(own) & ~own
    return result | (filled & ~old_holes)


def _grabcut(
    cv2: Any, crop: np.ndarray, own: np.ndarray, others: np.ndarray, band: int, iterations: int
) -> np.ndarray | None:
    """The refined mask of one object in its region, or None where GrabCut cannot run."""
    labels = _trimap(own, others, band)
    if not np.any(labels % 2 == 0):  # no background to learn its colours from
        return None
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    # GrabCut seeds its colour models with k-means from OpenCV's global generator: reseed
    # so an object's result does not depend on what ran before (deterministic output)
    cv2.setRNGSeed(0)
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
    band: int = 1,
    iterations: int = 2,
    smoothing: float = 0.7,
    margin: int | None = None,
    limits: tuple[float, float] | None = None,
    normalization: Mapping[str, Any] | str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    max_area_ratio: float = 2.0,
) -> Instances:
    """Refine the outlines of ``instances`` against the edges of ``image`` with GrabCut.

    Each object is cut in its own region (its box grown by ``margin``), initialised from
    its mask: sure foreground is the mask eroded by ``band``, probable foreground the rest
    of the mask, probable background a ring of ``band`` pixels around it, sure background
    the rest of the region and every other object's pixels (so touching objects do not
    bleed into each other). An outline moves at most ``band`` pixels. Opt-in: it helps on
    average on nuclei but makes about one object in six worse (``docs/refine.md``,
    ``bench/bench_refine.py``); measure it on your data.

    Parameters
    ----------
    image : ndarray of shape (H, W), (H, W, 3) or (H, W, 4)
        bool, integer or float intensities. Mapped to 8 bits by ``limits`` (GrabCut works
        on 8-bit colour); gray is used as three equal channels, alpha is dropped.
    instances : Instances
        The objects of ``image`` (``instances.image_shape == image.shape[:2]``).
    method : {"grabcut"}
        The refinement: OpenCV's ``cv2.grabCut`` (needs ``opencv-python-headless``).
    band : int
        Width in pixels of the uncertain zone on each side of the outline, >= 1. The
        default 1 measured best on nuclei; 2 fixes larger errors but moves good edges too.
    iterations : int
        GrabCut iterations (colour model re-estimations), >= 1; more than 2 changed
        nothing measurable on nuclei.
    smoothing : float
        Standard deviation in pixels of a Gaussian applied to the image before GrabCut
        (it evens out camera noise along the edges), >= 0; 0 turns it off. Not applied to
        bool images. On noise-free images (rendered or thresholded ones) pass 0: smoothed
        edges against a perfectly flat background look like no background colour at all.
    margin : int, optional
        Pixels added to each side of an object's box for its region, >= ``band``: the
        region beyond the band gives GrabCut its background colours. Default ``band + 8``.
    limits : (float, float), optional
        Intensities mapped to 0 and 255. Default: the model's image normalisation,
        `labelassist.model.intensity_range` of ``image`` with ``normalization`` (uint8 as
        it is, other types their 1st to 99.8th percentiles), computed once per image.
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
        extra columns, plus a bool column ``extra["refined"]`` (replacing any such column):
        True where the outline is GrabCut's (COCO pixel coordinates, traced from the
        refined mask), False where the original polygon is kept unchanged because GrabCut
        emptied the mask, changed its area by more than ``max_area_ratio``, or could not
        run (an empty polygon, one without a pixel centre in the image, a region without
        background). No instance is ever dropped. Parts of a refined mask that do not
        touch the original mask are dropped; holes GrabCut opened are filled.

    Notes
    -----
    One GrabCut per object on its region only (the object's box plus ``margin`` on each
    side; neighbours found with a shapely STRtree), so the work grows with the objects, not
    the image, and no full-image mask is ever built.

    Examples
    --------
    A blurred, noisy disc of radius 10 and a proposal 2 px too large:

    >>> import numpy as np, shapely
    >>> from scipy import ndimage
    >>> from labelassist import Instances
    >>> yy, xx = np.mgrid[:48, :48]
    >>> disc = (xx - 23.5) ** 2 + (yy - 23.5) ** 2 < 10**2  # centre (24, 24) in (x, y)
    >>> blurred = ndimage.gaussian_filter(np.where(disc, 200.0, 30.0), 1.0)
    >>> noise = np.random.default_rng(0).normal(0, 8, disc.shape)
    >>> image = np.clip(blurred + noise, 0, 255).astype(np.uint8)
    >>> proposal = Instances([shapely.Point(24, 24).buffer(12)], [0], [0.9], (48, 48))
    >>> refined = refine_edges(image, proposal, band=2, smoothing=0)
    >>> refined.extra["refined"].tolist()
    [True]
    >>> def iou(inst):
    ...     mask = inst.masks()[0]
    ...     return (mask & disc).sum() / (mask | disc).sum()
    >>> bool(iou(proposal) < 0.75 < 0.85 < iou(refined))
    True
    """
    check_choice(method, "method", REFINE_METHODS)
    band = check_int(band, "band", minimum=1)
    iterations = check_int(iterations, "iterations", minimum=1)
    smoothing = check_number(smoothing, "smoothing", minimum=0)
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
    if tuple(image.shape[:2]) != instances.image_shape:
        raise ValueError(
            f"image has shape {tuple(image.shape[:2])} but instances.image_shape is "
            f"{instances.image_shape}; pass the image the instances belong to"
        )
    if limits is not None:
        limits = _check_limits(limits)
    extra = {key: value for key, value in instances.extra.items() if key != "refined"}
    if len(instances) == 0:
        return instances.replace(extra={**extra, "refined": np.zeros(0, dtype=bool)})
    cv2 = _import_cv2()
    if limits is None:
        from .model import intensity_range  # heavy: imports torch

        limits = intensity_range(image, normalization=normalization)
    if image.dtype == bool:
        smoothing = 0.0
    polygons, refined = _refine_all(
        cv2, image, instances, limits, smoothing, band, iterations, margin, tolerance,
        max_area_ratio,
    )  # fmt: skip
    return instances.replace(polygons=polygons, extra={**extra, "refined": refined})


def _refine_all(
    cv2: Any,
    image: np.ndarray,
    instances: Instances,
    limits: tuple[float, float],
    smoothing: float,
    band: int,
    iterations: int,
    margin: int,
    tolerance: float,
    max_area_ratio: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The polygons after refinement (N,) object, and which were refined (N,) bool."""
    geoms = instances.polygons
    polygons = geoms.copy()
    refined = np.zeros(len(geoms), dtype=bool)
    regions = _regions(instances.boxes, margin, instances.image_shape)
    tree = shapely.STRtree(geoms)
    for k, (x0, y0, x1, y1) in enumerate(regions.tolist()):
        if x1 <= x0 or y1 <= y0 or geoms[k].is_empty:
            continue
        near = tree.query(shapely.box(x0, y0, x1, y1))
        origin = np.array([x0, y0], dtype=np.float64)
        local = shapely.transform(geoms[near], lambda xy, o=origin: xy - o)
        masks = polygons_to_masks(local, (y1 - y0, x1 - x0))
        mine = near == k
        own = masks[mine][0]
        area = int(own.sum())
        if area == 0:
            continue
        crop = _to_uint8(image[y0:y1, x0:x1], limits, smoothing)
        result = _grabcut(cv2, crop, own, masks[~mine].any(axis=0), band, iterations)
        if result is None:
            continue
        new_area = int(result.sum())
        if new_area == 0 or not area / max_area_ratio <= new_area <= area * max_area_ratio:
            continue
        polygons[k] = masks_to_polygons(result, tolerance=tolerance, offset=(x0, y0))[0]
        refined[k] = True
    return polygons, refined


def offset_edges(instances: Instances, distance: float, *, mitre_limit: float = 2.0) -> Instances:
    """Move every outline of ``instances`` outwards (``distance > 0``) or inwards (``< 0``).

    The "Grow" and "Shrink" of an annotation tool: a proposal whose outline lies a fraction
    of a pixel outside (or inside) the object's edge all the way round is brought onto it
    by one press, with no image needed. Each polygon is buffered by ``distance`` with
    mitred corners (no vertices are added, so the outline stays as easy to edit) and
    clipped to the image.

    Parameters
    ----------
    instances : Instances
        The objects to move.
    distance : float
        Pixels to move each edge along its normal; negative shrinks. Finite.
    mitre_limit : float
        Corners sharper than this ratio are bevelled (shapely's ``mitre_limit``), > 0.

    Returns
    -------
    Instances
        A new `Instances` with the same objects in the same order, labels, scores and extra
        columns. An outline that a shrink would erase (thinner than ``2 * -distance``) is
        kept as it was; no instance is ever dropped.

    Examples
    --------
    A 10 x 10 square grown by half a pixel and shrunk by one:

    >>> import shapely
    >>> from labelassist import Instances
    >>> square = Instances([shapely.box(10, 10, 20, 20)], [0], [0.9], (32, 32))
    >>> offset_edges(square, 0.5).polygons[0].bounds
    (9.5, 9.5, 20.5, 20.5)
    >>> offset_edges(square, -1).polygons[0].area
    64.0
    >>> offset_edges(square, -6).polygons[0].area  # would vanish: kept
    100.0
    """
    if not isinstance(instances, Instances):
        raise TypeError(f"instances must be labelassist.Instances, got {type(instances).__name__}")
    distance = check_number(distance, "distance")
    mitre_limit = check_number(mitre_limit, "mitre_limit", minimum=0)
    if mitre_limit == 0:
        raise ValueError("mitre_limit must be > 0, got 0")
    geoms = instances.polygons
    if len(geoms) == 0 or distance == 0:
        return instances.replace(polygons=geoms.copy())
    h, w = instances.image_shape
    moved = shapely.buffer(geoms, distance, join_style="mitre", mitre_limit=mitre_limit)
    clipped = shapely.intersection(moved, shapely.box(0, 0, w, h))
    # keep the polygons of each result: a part that only touched the image edge leaves a line
    parts, index = shapely.get_parts(clipped, return_index=True)
    areal = shapely.get_type_id(parts) == 3
    moved = np.empty(len(geoms), dtype=object)
    moved[:] = [shapely.union_all(parts[areal & (index == k)]) for k in range(len(geoms))]
    moved = np.where(shapely.is_empty(moved) | (shapely.area(moved) == 0), geoms, moved)
    return instances.replace(polygons=moved)
