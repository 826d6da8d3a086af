"""Exact conversions between instance masks and polygons.

Coordinates are COCO's continuous pixel coordinates ``(x, y)``: the pixel at row ``i``,
column ``j`` covers the square ``[j, j+1] x [i, i+1]``. At ``tolerance=0`` a mask becomes
the polygon traced along its pixel edges (vertices on the integer lattice), so rasterizing
it back (with `polygons_to_masks` or with pycocotools) gives exactly the same pixels.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
from scipy import ndimage
from skimage import draw, measure

__all__ = ["DEFAULT_TOLERANCE", "masks_to_polygons", "polygons_to_masks"]

DEFAULT_TOLERANCE: float = 0.5
"""Default simplification tolerance in pixels for `masks_to_polygons`."""

_EMPTY = shapely.Polygon()


# -- input validation ------------------------------------------------------------------------
def _check_nonnegative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return value


def _check_offset(offset: Any) -> tuple[float, float]:
    try:
        arr = np.asarray(offset, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"offset must be a pair of numbers (x0, y0), got {offset!r}") from None
    if arr.shape != (2,) or not np.isfinite(arr).all():
        raise ValueError(f"offset must be a pair of finite numbers (x0, y0), got {offset!r}")
    return float(arr[0]), float(arr[1])


def _objects(masks: Any) -> tuple[Any, list[tuple[slice, slice] | None], list[Any]]:
    """Validate ``masks``; return (array, bounding-box slices, selector per object).

    The selector is the label id for a label image, or the stack index for a stack.
    """
    arr = np.asarray(masks)
    if arr.dtype == object or not (arr.dtype == bool or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(
            f"masks must be a bool or integer array, got dtype {arr.dtype}; threshold "
            "probabilities first, e.g. masks > 0.5"
        )
    if arr.ndim == 2 and arr.dtype == bool:
        arr = arr[None]
    if arr.ndim == 2:
        return _label_objects(arr)
    if arr.ndim != 3:
        raise ValueError(
            f"masks must be an (N, H, W) stack or an (H, W) label image, got shape {arr.shape}"
        )
    if arr.dtype != bool:
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise ValueError(
                "an integer (N, H, W) mask stack must hold only 0 and 1, got values in "
                f"[{arr.min()}, {arr.max()}]; pass a bool stack or an (H, W) label image"
            )
        arr = arr.astype(bool)
    return arr, _stack_bboxes(arr), list(range(arr.shape[0]))


def _stack_bboxes(stack: np.ndarray) -> list[tuple[slice, slice] | None]:
    n = stack.shape[0]
    if n == 0 or stack.shape[1] == 0 or stack.shape[2] == 0:
        return [None] * n
    rows = stack.any(axis=2)
    cols = stack.any(axis=1)
    nonempty = rows.any(axis=1)
    r0 = rows.argmax(axis=1)
    r1 = rows.shape[1] - rows[:, ::-1].argmax(axis=1)
    c0 = cols.argmax(axis=1)
    c1 = cols.shape[1] - cols[:, ::-1].argmax(axis=1)
    return [
        (slice(int(r0[k]), int(r1[k])), slice(int(c0[k]), int(c1[k]))) if nonempty[k] else None
        for k in range(n)
    ]


def _label_objects(labels: np.ndarray) -> tuple[Any, list[tuple[slice, slice]], list[Any]]:
    if labels.size == 0:
        return labels, [], []
    if np.issubdtype(labels.dtype, np.signedinteger) and labels.min() < 0:
        raise ValueError(
            f"label image must not hold negative ids, got minimum {labels.min()}; "
            "use 0 for background and positive ids for objects"
        )
    top = int(labels.max())
    if top == 0:
        return labels, [], []
    if top <= max(4 * labels.size, 1 << 16) and top < np.iinfo(np.intp).max:
        work = labels.astype(np.intp) if labels.dtype == np.uint64 else labels
        slices = ndimage.find_objects(work, max_label=top)
        keep = [k for k, s in enumerate(slices) if s is not None]
        return work, [slices[k] for k in keep], [k + 1 for k in keep]
    # Very large ids: relabel to 1..K in ascending order of the original ids.
    ids, inverse = np.unique(labels, return_inverse=True)
    work = inverse.reshape(labels.shape).astype(np.intp)
    if ids[0] != 0:
        work += 1
    slices = ndimage.find_objects(work)
    return work, slices, list(range(1, len(slices) + 1))


# -- mask -> polygon -----------------------------------------------------------------------
def _crop(arr: np.ndarray, sl: tuple[slice, slice], sel: Any, is_label: bool) -> np.ndarray:
    """The object's bbox crop, padded by one background pixel, as float64."""
    h = sl[0].stop - sl[0].start
    w = sl[1].stop - sl[1].start
    padded = np.zeros((h + 2, w + 2), dtype=np.float64)
    if is_label:
        padded[1:-1, 1:-1] = arr[sl] == sel
    else:
        padded[1:-1, 1:-1] = arr[sel][sl]
    return padded


def _lattice_ring(contour: np.ndarray) -> np.ndarray:
    """Pixel-edge corners of a closed iso-0.5 contour (padded-crop index coords (row, col)).

    Every contour point is the midpoint of a pixel edge: on a vertical edge the column is
    half-integer, on a horizontal edge the row is. Between consecutive points of different
    kinds the boundary turns at the lattice corner (row of the horizontal-edge point, column
    of the vertical-edge point); those corners are exactly the pixel-edge polygon.
    Returns (K, 2) ``(x, y)`` relative to the padded crop's pixel-edge origin (not closed).
    """
    pts = contour[:-1]
    vertical = (pts[:, 1] % 1.0) != 0.0
    nxt = np.roll(np.arange(len(pts)), -1)
    turn = vertical != vertical[nxt]
    a = pts[turn]
    b = pts[nxt[turn]]
    va = vertical[turn]
    col = np.where(va, a[:, 1], b[:, 1])
    row = np.where(va, b[:, 0], a[:, 0])
    # index coords (pixel centres at integers) -> pixel-edge coords of the padded crop
    return np.stack([col + 0.5, row + 0.5], axis=1)


def _ring_area(ring: np.ndarray) -> float:
    x = ring[:, 0]
    y = ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _has_saddle(padded: np.ndarray) -> bool:
    a = padded[:-1, :-1]
    b = padded[:-1, 1:]
    c = padded[1:, :-1]
    d = padded[1:, 1:]
    return bool(np.any((a == d) & (b == c) & (a != b)))


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """Keep only the polygonal parts of ``geom`` (a Polygon, MultiPolygon or empty)."""
    parts = shapely.get_parts(geom)
    parts = parts[shapely.get_type_id(parts) == 3]
    parts = parts[~shapely.is_empty(parts)]
    if len(parts) == 0:
        return _EMPTY
    if len(parts) == 1:
        return parts[0]
    return shapely.MultiPolygon(list(parts))


def _exact_polygon(padded: np.ndarray, x0: float, y0: float) -> shapely.Geometry:
    """Pixel-edge polygon of the foreground of ``padded``; (x0, y0): its top-left corner."""
    rings = [_lattice_ring(c) for c in measure.find_contours(padded, 0.5)]
    shift = np.array([x0, y0])
    shells = []
    holes = []
    for ring in rings:
        if len(ring) < 4:
            continue
        (shells if _ring_area(ring) > 0 else holes).append(ring + shift)
    shell_polys = [shapely.Polygon(s) for s in shells]
    if holes:
        areas = [p.area for p in shell_polys]
        owned: list[list[np.ndarray]] = [[] for _ in shells]
        for hole in holes:
            # midpoint of the first edge: on the hole ring, never on another ring
            probe = 0.5 * (hole[0] + hole[1])
            inside = [
                k for k, p in enumerate(shell_polys) if shapely.contains_xy(p, probe[0], probe[1])
            ]
            if inside:
                owned[min(inside, key=areas.__getitem__)].append(hole)
        shell_polys = [shapely.Polygon(s, h) for s, h in zip(shells, owned, strict=True)]
    if not shell_polys:
        return _EMPTY
    geom = shell_polys[0] if len(shell_polys) == 1 else shapely.MultiPolygon(shell_polys)
    if _has_saddle(padded) and not geom.is_valid:
        geom = _polygonal(shapely.make_valid(geom))
    return geom


def _simplify(geom: shapely.Geometry, tolerance: float) -> shapely.Geometry:
    if tolerance == 0 or geom.is_empty:
        return geom
    out = shapely.simplify(geom, tolerance, preserve_topology=True)
    if not out.is_valid:
        out = _polygonal(shapely.make_valid(out))
    return out


def masks_to_polygons(
    masks: np.ndarray,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    min_area: float = 0.0,
    offset: tuple[float, float] = (0.0, 0.0),
) -> list[shapely.Polygon | shapely.MultiPolygon]:
    """Convert instance masks to polygons in COCO pixel coordinates.

    Parameters
    ----------
    masks : ndarray
        Either an (N, H, W) stack (bool, or integer holding only 0 and 1), an (H, W) bool
        mask (one instance), or an (H, W) integer label image (0 = background, any
        non-negative ids, gaps allowed).
    tolerance : float, optional
        Simplification tolerance in pixels. ``0`` gives the exact pixel-edge polygon
        (vertices on the integer lattice); larger values remove vertices while preserving
        topology. Default `DEFAULT_TOLERANCE`.
    min_area : float, optional
        Masks with fewer pixels than this give an empty polygon.
    offset : (float, float), optional
        ``(x0, y0)`` added to every coordinate, e.g. the origin of a crop in its image.

    Returns
    -------
    list of shapely.Polygon or shapely.MultiPolygon
        One valid geometry per instance, aligned with the input: per stack entry, or per
        distinct non-zero label id in ascending order. Holes are interiors; a mask in
        several parts gives a MultiPolygon; an empty (or too small) mask gives an empty
        ``Polygon()``.

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((4, 5), dtype=bool)
    >>> mask[2, 3] = True
    >>> masks_to_polygons(mask, tolerance=0)[0].bounds
    (3.0, 2.0, 4.0, 3.0)
    >>> labels = np.array([[0, 7, 7], [3, 0, 0]], dtype=np.uint16)
    >>> [p.area for p in masks_to_polygons(labels, tolerance=0)]
    [1.0, 2.0]
    """
    tolerance = _check_nonnegative("tolerance", tolerance)
    min_area = _check_nonnegative("min_area", min_area)
    ox, oy = _check_offset(offset)
    arr, slices, selectors = _objects(masks)
    is_label = np.asarray(masks).ndim == 2 and arr.ndim == 2
    out: list[shapely.Polygon | shapely.MultiPolygon] = []
    for sl, sel in zip(slices, selectors, strict=True):
        if sl is None:
            out.append(_EMPTY)
            continue
        padded = _crop(arr, sl, sel, is_label)
        if min_area > 0 and padded.sum() < min_area:
            out.append(_EMPTY)
            continue
        geom = _exact_polygon(padded, sl[1].start - 1 + ox, sl[0].start - 1 + oy)
        out.append(_simplify(geom, tolerance))
    return out


# -- polygon -> mask -----------------------------------------------------------------------
def _check_shape(shape: Any) -> tuple[int, int]:
    try:
        h, w = (operator.index(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"shape must be (height, width) with two non-negative ints, got {shape!r}"
        ) from None
    if h < 0 or w < 0:
        raise ValueError(f"shape must be (height, width) with non-negative ints, got {shape!r}")
    return h, w


def _fill_ring(ring: shapely.LinearRing, shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
    xy = shapely.get_coordinates(ring)
    return draw.polygon(xy[:, 1] - 0.5, xy[:, 0] - 0.5, shape)


def _draw(out: np.ndarray, geom: shapely.Geometry) -> None:
    shape = out.shape
    for part in shapely.get_parts(geom):
        if part.is_empty:
            continue
        rr, cc = _fill_ring(part.exterior, shape)
        if not part.interiors:
            out[rr, cc] = True
            continue
        tmp = np.zeros(shape, dtype=bool)
        tmp[rr, cc] = True
        for hole in part.interiors:
            hr, hc = _fill_ring(hole, shape)
            tmp[hr, hc] = False
        out |= tmp


def polygons_to_masks(
    polygons: Sequence[shapely.Polygon | shapely.MultiPolygon] | np.ndarray,
    shape: tuple[int, int],
) -> np.ndarray:
    """Rasterize polygons to an (N, H, W) bool mask stack.

    Pixel ``(i, j)`` of mask ``k`` is set when its centre ``(j + 0.5, i + 0.5)`` lies inside
    ``polygons[k]`` (holes excluded, all parts included). Geometry outside the image is
    clipped.

    Parameters
    ----------
    polygons : sequence of shapely.Polygon or shapely.MultiPolygon, length N
        Geometries in COCO pixel coordinates ``(x, y)``.
    shape : (int, int)
        ``(height, width)`` of the image.

    Returns
    -------
    ndarray of shape (N, H, W), bool

    Examples
    --------
    >>> import shapely
    >>> polygons_to_masks([shapely.box(1, 0, 3, 1)], (2, 4)).astype(int)
    array([[[0, 1, 1, 0],
            [0, 0, 0, 0]]])
    """
    h, w = _check_shape(shape)
    if isinstance(polygons, shapely.Geometry):
        raise TypeError(
            f"polygons must be a sequence of geometries, got a single {polygons.geom_type}; "
            "wrap it in a list: [polygon]"
        )
    geoms = list(polygons)
    out = np.zeros((len(geoms), h, w), dtype=bool)
    for k, geom in enumerate(geoms):
        if not isinstance(geom, (shapely.Polygon, shapely.MultiPolygon)):
            raise TypeError(
                f"polygons[{k}] is {type(geom).__name__}, expected a shapely Polygon or "
                "MultiPolygon"
            )
        if not geom.is_empty and h and w:
            _draw(out[k], geom)
    return out
