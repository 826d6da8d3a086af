"""RoI masks to polygons: Mask R-CNN's per-box mask probabilities traced without full-image masks.

Each ``M x M`` probability map is resampled onto the pixels its box covers, at the exact
coordinates the mask head learned it at, thresholded there and traced with
`labelassist.geometry.masks_to_polygons`; many small crops are traced in a few stacked calls.

Where the mask bins lie: torchvision builds the mask head's training targets with
``roi_align(..., aligned=False)``, which samples bin ``i`` of a box ``x0..x1`` at the
continuous index coordinate ``x0 + (i + 0.5) * (x1 - x0) / M``, where index ``j`` is the
centre of pixel ``j``. So the bins span the pixel centres ``x0 .. x1``, and pixel ``j`` of
the output reads the maps at bin coordinate ``(j - x0) * M / (x1 - x0) - 0.5`` (bilinear,
the edge bins extended to the box's edges, nothing outside the box). torchvision's own
``paste_masks_in_image`` instead grows the box by a pixel and truncates it to integers,
which made every mask about one pixel too large (v1: area +8 % on synthetic nuclei, +19 % on
the real sample; see bench/bench_fidelity.py).

Images rescaled before the network (``object_size``, `labelassist.model.scale`): the maps
are a function of the rescaled image, whose COCO coordinates are the original's times
``(fx, fy)``. Pixel ``j`` of the original grid has its centre at ``(j + 0.5) * fx`` there,
index coordinate ``(j + 0.5) * fx - 0.5``; a box mapped back as ``(b + 0.5) / fx - 0.5``
(`boxes_to_original`) makes the rule above read the maps at exactly that point, so the
masks are traced on the original pixels (exact pixel-boundary polygons of the original
grid), never by scaling polygons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import shapely
import torch
from scipy import ndimage
from shapely.geometry.base import BaseGeometry

from ..geometry import DEFAULT_TOLERANCE, masks_to_polygons, polygons_to_masks

__all__ = ["boxes_to_original", "original_window", "rois_to_polygons"]


def boxes_to_original(boxes: np.ndarray, factors: tuple[float, float]) -> np.ndarray:
    """Boxes of a rescaled image (index coordinates, as the network predicts them) in the
    original image's: ``(b + 0.5) / f - 0.5`` per axis (see the module docstring).

    Parameters
    ----------
    boxes : ndarray of shape (N, 4)
        ``(x0, y0, x1, y1)`` in the rescaled image.
    factors : (float, float)
        ``(fx, fy)``: the rescaled image's width and height over the original's.

    Returns
    -------
    ndarray of shape (N, 4), float64

    Examples
    --------
    >>> boxes_to_original(np.array([[3.5, 0.0, 7.5, 4.0]]), (0.5, 2.0)).tolist()
    [[7.5, -0.25, 15.5, 1.75]]
    """
    fx, fy = (float(f) for f in factors)
    scale = np.array([fx, fy, fx, fy])
    return (np.asarray(boxes, dtype=np.float64) + 0.5) / scale - 0.5


def original_window(
    window: tuple[int, int, int, int], shape: tuple[int, int], scaled: tuple[int, int]
) -> tuple[int, int, int, int]:
    """The original pixels whose centres lie in a pixel window of the rescaled image.

    Pixel ``j`` of the original belongs to the rescaled columns ``x0 .. x1 - 1`` when its
    centre ``(j + 0.5) * fx`` lies in ``[x0, x1)``, with ``fx = W' / W`` (integer
    arithmetic: exact).

    Parameters
    ----------
    window : (int, int, int, int)
        ``(x0, y0, x1, y1)`` in the rescaled image (e.g. a tile).
    shape, scaled : (int, int)
        ``(height, width)`` of the original and the rescaled image.

    Returns
    -------
    (int, int, int, int)
        ``(x0, y0, x1, y1)`` in the original image, for `rois_to_polygons`'s ``window``.

    Examples
    --------
    >>> original_window((0, 0, 50, 40), (100, 100), (50, 50))  # a half-size image
    (0, 0, 100, 80)
    """
    (h, w), (sh, sw) = shape, scaled

    def first(edge: int, n: int, m: int) -> int:  # ceil(edge * n / m - 0.5)
        return -((m - 2 * edge * n) // (2 * m))

    x0, y0, x1, y1 = (int(v) for v in window)
    return first(x0, w, sw), first(y0, h, sh), first(x1, w, sw), first(y1, h, sh)


def _resampling(lo: float, hi: float, bins: int, first: int, count: int) -> np.ndarray:
    """``(count, bins)`` bilinear weights: row ``k`` gives pixel ``first + k`` from the bins
    of a box spanning pixel centres ``lo .. hi`` (edge bins extended to the box edges)."""
    pixels = np.arange(first, first + count, dtype=np.float64)
    u = np.clip((pixels - lo) * (bins / max(hi - lo, 1e-6)) - 0.5, 0.0, bins - 1.0)
    i0 = np.minimum(np.floor(u).astype(np.int64), bins - 2) if bins > 1 else np.zeros_like(u, int)
    frac = u - i0
    weights = np.zeros((count, bins), dtype=np.float32)
    rows = np.arange(count)
    weights[rows, i0] = 1.0 - frac
    if bins > 1:
        weights[rows, i0 + 1] = frac
    return weights


def rois_to_polygons(
    mask_probs: torch.Tensor,
    boxes: torch.Tensor,
    image_shape: tuple[int, int],
    *,
    mask_threshold: float = 0.5,
    tolerance: float | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
    window: tuple[int, int, int, int] | None = None,
    clip: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    fit_thresholds: Sequence[float] | None = None,
    fit_pixels: np.ndarray | None = None,
    hull_margin: float | None = None,
    gap_width: int = 0,
) -> list[BaseGeometry]:
    """Convert Mask R-CNN RoI mask probabilities to polygons without full-image masks.

    Each ``M x M`` map is resampled onto the pixels whose centres lie in its box (see the
    module docstring for the exact coordinates), clipped to the image, thresholded
    (``> mask_threshold``) and traced inside the box.

    Parameters
    ----------
    mask_probs : Tensor of shape (N, 1, M, M), float
        Per-detection mask probabilities (torchvision's ``detections["masks"]`` before
        pasting).
    boxes : Tensor of shape (N, 4), float
        Boxes ``(x0, y0, x1, y1)`` in the image's pixel coordinates (as the network
        predicts them).
    image_shape : (int, int)
        ``(height, width)`` of the image; masks are clipped to it.
    mask_threshold : float
        Probability above which a pixel is inside.
    tolerance : float, optional
        Polygon simplification tolerance (default `labelassist.geometry.DEFAULT_TOLERANCE`).
    offset : (float, float)
        Added to every vertex ``(x, y)`` (e.g. a tile's origin).
    window : (int, int, int, int), optional
        ``(x0, y0, x1, y1)``: masks are clipped to the pixel columns ``x0 .. x1 - 1`` and
        rows ``y0 .. y1 - 1`` (e.g. the original pixels of a tile of a rescaled image).
        Default: the whole image.
    clip : ndarray of shape (N, 4), optional
        Per box, integer ``(x0, y0, x1, y1)`` (before ``offset``): mask ``i`` is also
        clipped to the pixel columns ``x0 .. x1 - 1`` and rows ``y0 .. y1 - 1`` (e.g. the
        pixels of a prompt box, `labelassist.model.box_prompts.pixel_windows`).
    exclude : ndarray of shapely geometries, optional
        Polygons in the output's coordinates (after ``offset``): the pixels whose centres
        they cover are left out of every mask (e.g. objects already annotated, so that a
        prompted object does not overlap them).
    fit_thresholds : sequence of float, optional
        Candidate thresholds for boxes known to be tight (needs ``clip``): per box, the
        candidate whose mask's bounding box fills the box's pixels best (box IoU to three
        decimals; ties go to the candidate nearest ``mask_threshold``) replaces
        ``mask_threshold``. See `labelassist.model.box_prompts.tight_thresholds`.
    fit_pixels : ndarray of shape (N, K, 2), optional
        Per box, K integer pixels ``(column, row)`` (before ``offset``, like ``clip``) that
        its object covers, such as the extreme clicks on it (needs ``fit_thresholds``): the
        candidates are ranked first by how many of them their mask contains, then by fit.
    hull_margin : float, optional
        With ``fit_pixels`` on the object's edge (extreme clicks): the pixels whose centres
        lie farther than ``hull_margin`` times half the geometric mean of the box's width and
        height (in pixels, ``clip``) from the convex hull of the ``fit_pixels`` centres are
        left out of every candidate. A disc of radius ``r`` reaches ``(1 - 1 / sqrt(2)) r``
        beyond the square through its four extreme points
        (`labelassist.model.box_prompts.HULL_MARGIN`).
    gap_width : int
        With ``exclude``: the pixels in a gap at most ``gap_width`` pixels wide between a
        mask and the excluded polygons (their distances to both add up to at most
        ``gap_width + 1``) join the mask, within its box and hull: touching objects share
        their outline, and the mask head stops a pixel or two short of an annotated
        neighbour (`labelassist.model.box_prompts.NEIGHBOUR_GAP`). 0: none join.

    Returns
    -------
    list of shapely.Polygon or MultiPolygon, length N
        An empty Polygon where nothing is above the threshold.

    Examples
    --------
    A full RoI mask covers the pixels whose centres (index coordinates) lie in its box:
    columns 2-9 and rows 3-7 of the box ``x 2-9, y 3-7``, that is x 2-10, y 3-8:

    >>> probs = torch.ones(1, 1, 28, 28)
    >>> [p.bounds for p in rois_to_polygons(probs, torch.tensor([[2.0, 3.0, 9.0, 7.0]]), (16, 16))]
    [(2.0, 3.0, 10.0, 8.0)]
    """
    tolerance = DEFAULT_TOLERANCE if tolerance is None else tolerance
    n = int(boxes.shape[0])
    if n == 0:
        return []
    im_h, im_w = (int(s) for s in image_shape)
    wx0, wy0, wx1, wy1 = (0, 0, im_w, im_h) if window is None else (int(v) for v in window)
    wx0, wy0, wx1, wy1 = max(wx0, 0), max(wy0, 0), min(wx1, im_w), min(wy1, im_h)
    if fit_thresholds is not None and clip is None:
        raise ValueError("fit_thresholds needs clip: the box each mask must fit")
    if fit_pixels is not None and fit_thresholds is None:
        raise ValueError("fit_pixels needs fit_thresholds: the candidates to rank")
    if hull_margin is not None and fit_pixels is None:
        raise ValueError("hull_margin needs fit_pixels: the pixels whose hull it extends")
    candidates = sorted(
        {float(mask_threshold), *(float(t) for t in fit_thresholds or ())},
        key=lambda t: (abs(t - mask_threshold), t),
    )
    probs = mask_probs.detach().float().cpu().numpy()[:, 0]
    limits = np.tile([wx0, wy0, wx1, wy1], (n, 1))
    if clip is not None:
        clip = np.asarray(clip, dtype=np.int64).reshape(n, 4)
        limits[:, :2] = np.maximum(limits[:, :2], clip[:, :2])
        limits[:, 2:] = np.minimum(limits[:, 2:], clip[:, 2:])
    bins_y, bins_x = probs.shape[1:]
    ox, oy = (float(v) for v in offset)
    excluded = None if exclude is None or len(exclude) == 0 else _Excluded(exclude)
    crops: list[np.ndarray | None] = []
    origins = np.zeros((n, 2), dtype=np.float64)
    for i, (bx0, by0, bx1, by1) in enumerate(boxes.detach().double().cpu().tolist()):
        lx0, ly0, lx1, ly1 = (int(v) for v in limits[i])
        x0, x1 = max(math.ceil(bx0), lx0), min(math.floor(bx1) + 1, lx1)
        y0, y1 = max(math.ceil(by0), ly0), min(math.floor(by1) + 1, ly1)
        if x1 <= x0 or y1 <= y0:
            crops.append(None)
            continue
        across = _resampling(bx0, bx1, bins_x, x0, x1 - x0)
        down = _resampling(by0, by1, bins_y, y0, y1 - y0)
        p = down @ probs[i] @ across.T
        allowed = None if excluded is None else ~excluded.pixels(x0 + ox, y0 + oy, p.shape)
        if hull_margin is not None and fit_pixels is not None:
            reach = hull_margin * math.sqrt((lx1 - lx0) * (ly1 - ly0)) / 2
            near = _near_hull(fit_pixels[i], x0, y0, p.shape, reach)
            allowed = near if allowed is None else allowed & near
        best, best_fit = None, (-1, -1.0)
        for t in candidates if fit_thresholds is not None else candidates[:1]:
            crop = p > t
            if allowed is not None:
                crop &= allowed
            inside = 0 if fit_pixels is None else _covered(crop, fit_pixels[i], x0, y0)
            fit = (inside, round(_fill(crop, (lx1 - lx0) * (ly1 - ly0)), 3))
            if fit > best_fit:
                best, best_fit = crop, fit
        if gap_width and excluded is not None and allowed is not None and best is not None:
            best = best | (_gap_pixels(best, excluded, x0 + ox, y0 + oy, gap_width) & allowed)
        crops.append(best)
        origins[i] = (x0, y0)
    return _trace_crops(crops, origins + np.asarray(offset, dtype=np.float64), tolerance)


def _gap_pixels(
    crop: np.ndarray, excluded: _Excluded, x0: float, y0: float, width: int
) -> np.ndarray:
    """Which pixels of a crop (its top-left corner at COCO ``x0, y0``) lie in a gap at most
    ``width`` pixels wide between the ``crop``'s mask and the ``excluded`` pixels, (h, w) bool:
    those whose distances to both add up to at most ``width + 1``."""
    pad = width + 1  # the neighbours just outside the crop count too
    h, w = crop.shape
    others = excluded.pixels(x0 - pad, y0 - pad, (h + 2 * pad, w + 2 * pad))
    if not others.any() or not crop.any():
        return np.zeros_like(crop)
    mask = np.zeros_like(others)
    mask[pad : pad + h, pad : pad + w] = crop
    between = ndimage.distance_transform_edt(~mask) + ndimage.distance_transform_edt(~others)
    return ((between <= width + 1 + 1e-9) & ~mask & ~others)[pad : pad + h, pad : pad + w]


def _near_hull(
    pixels: np.ndarray, x0: int, y0: int, shape: tuple[int, ...], reach: float
) -> np.ndarray:
    """Which pixels of a crop (its top-left pixel at ``x0, y0``) have their centres within
    ``reach`` pixels of the convex hull of the ``(column, row)`` ``pixels``' centres, (h, w)
    bool."""
    hull = shapely.MultiPoint(np.asarray(pixels, dtype=np.float64)).convex_hull
    corners = shapely.get_coordinates(hull)  # a closed ring, a segment or a point
    rows, cols = np.indices(shape[:2], dtype=np.float64)
    reach += 1e-9  # rounding: a pixel on the hull's edge is on it
    px, py = cols + x0, rows + y0
    if len(corners) == 1:
        return np.hypot(px - corners[0, 0], py - corners[0, 1]) <= reach
    near = np.zeros(shape[:2], dtype=bool)
    left, right = np.ones(shape[:2], dtype=bool), np.ones(shape[:2], dtype=bool)
    for (ax, ay), (bx, by) in zip(corners[:-1], corners[1:], strict=True):
        dx, dy = bx - ax, by - ay
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / max(dx * dx + dy * dy, 1e-12), 0, 1)
        near |= np.hypot(px - ax - t * dx, py - ay - t * dy) <= reach
        side = dx * (py - ay) - dy * (px - ax)
        left &= side >= 0
        right &= side <= 0
    return near | ((left | right) & isinstance(hull, shapely.Polygon))


def _covered(crop: np.ndarray, pixels: np.ndarray, x0: int, y0: int) -> int:
    """How many of the ``(column, row)`` ``pixels`` the ``crop`` (its top-left pixel at
    ``x0, y0``) contains."""
    cols, rows = np.asarray(pixels, dtype=np.int64).T - np.array([[x0], [y0]])
    ok = (cols >= 0) & (rows >= 0) & (cols < crop.shape[1]) & (rows < crop.shape[0])
    return int(crop[rows[ok], cols[ok]].sum())


def _fill(crop: np.ndarray, window_area: int) -> float:
    """The share of a box's ``window_area`` pixels (the crop lies in them) that the bounding
    box of ``crop``'s pixels covers: its box IoU with the window (0 when empty)."""
    rows, cols = np.flatnonzero(crop.any(axis=1)), np.flatnonzero(crop.any(axis=0))
    if not len(rows):
        return 0.0
    covered = (cols[-1] - cols[0] + 1) * (rows[-1] - rows[0] + 1)
    return float(covered / max(window_area, 1))


class _Excluded:
    """Rasterizes, window by window, the pixels that given polygons cover."""

    def __init__(self, geoms: np.ndarray) -> None:
        self.geoms = np.asarray(geoms, dtype=object)
        self.tree = shapely.STRtree(self.geoms)

    def pixels(self, x0: float, y0: float, shape: tuple[int, int]) -> np.ndarray:
        """(h, w) bool: the pixels of the window at ``(x0, y0)`` (COCO coordinates of its
        top-left corner) whose centres the polygons cover."""
        h, w = shape
        hits = self.tree.query(shapely.box(x0, y0, x0 + w, y0 + h))
        if len(hits) == 0:
            return np.zeros(shape, dtype=bool)
        local = shapely.transform(self.geoms[hits], lambda xy: xy - (x0, y0))
        return np.asarray(polygons_to_masks(local, (h, w)).any(axis=0), dtype=bool)


def _trace_crops(
    crops: list[np.ndarray | None], origins: np.ndarray, tolerance: float, budget: int = 1 << 22
) -> list[BaseGeometry]:
    """Polygons of many small masks with few `masks_to_polygons` calls: crops of similar
    size are packed into zero-padded stacks (at most ``budget`` pixels each) and the
    results shifted to each crop's origin ``(x, y)``.

    Every crop gets a one-pixel zero margin on all sides, so a crop traces the same whatever
    else shares its stack (simplification treats pixels on the array's edge differently).
    """
    out = np.empty(len(crops), dtype=object)
    out[:] = [shapely.Polygon()] * len(crops)
    present = [(i, c) for i, c in enumerate(crops) if c is not None]
    present.sort(key=lambda item: item[1].size)
    start = 0
    while start < len(present):
        stop, height, width = start, 0, 0
        while stop < len(present):
            h, w = (s + 2 for s in present[stop][1].shape)
            if stop > start and (stop - start + 1) * max(height, h) * max(width, w) > budget:
                break
            height, width, stop = max(height, h), max(width, w), stop + 1
        chunk = present[start:stop]
        stack = np.zeros((len(chunk), height, width), dtype=bool)
        for k, (_, crop) in enumerate(chunk):
            h, w = crop.shape
            stack[k, 1 : h + 1, 1 : w + 1] = crop
        out[[i for i, _ in chunk]] = masks_to_polygons(stack, tolerance=tolerance)
        start = stop
    coords, index = shapely.get_coordinates(out, return_index=True)
    if len(coords):
        out = shapely.set_coordinates(out.copy(), coords + origins[index] - 1.0)
    return list(out)
