"""Decoding one COCO segmentation (RLE or polygons) into a shapely geometry (private).

Untrusted input is validated here, and decoding is memory-bounded: an RLE mask is
expanded only inside the box its runs cover (found from the run lengths first), and a box
larger than ``max_pixels`` is refused before anything is allocated. pycocotools' C decoder
is not used: it writes as many pixels as the counts say, without a bounds check.
Polygons that reach outside the image are clipped to it (as pycocotools' rasterizer does),
and the caller is told so that it can warn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from ..geometry import masks_to_polygons
from ._rules import _POLYGON_TYPE, _brief, _is_int, _positive_int
from .errors import CocoFormatError


def segmentation_geometry(
    seg: Any, shape: tuple[int, int], where: str, max_pixels: int
) -> tuple[shapely.Geometry | None, str | None, bool]:
    """``(geometry, None, clipped)`` or ``(None, reason to skip, clipped)`` for one
    annotation's segmentation in an image of ``shape`` ``(height, width)``.

    ``clipped`` is True when a polygon reached outside the image and was cut to it.
    Raises `CocoFormatError` (message starting with ``where``) when the segmentation is
    broken or its RLE mask covers a box of more than ``max_pixels`` pixels.
    """
    if isinstance(seg, dict):
        geom = _rle_geometry(_read_rle(seg, shape, where), shape, where, max_pixels)
        return (None, "an empty segmentation", False) if geom.is_empty else (geom, None, False)
    if not isinstance(seg, list):
        raise CocoFormatError(
            f"{where}: segmentation must be a list of polygons or an RLE dict, got "
            f"{type(seg).__name__}"
        )
    if all(isinstance(r, list) and not r for r in seg):  # [] or [[]]
        return None, "an empty segmentation", False
    geom = _polygon_geometry(seg, where)
    if geom.is_empty or geom.area == 0:
        return None, "a zero-area (degenerate) polygon", False
    geom, clipped = _clip_to_image(geom, shape)
    if geom.is_empty or geom.area == 0:
        return None, "a polygon outside the image", True
    return geom, None, clipped


# -- RLE ----------------------------------------------------------------------------------------
def _rle_string_counts(counts: bytes) -> list[int] | None:
    """Run lengths of pycocotools' compressed RLE string (None when malformed).

    Decoded in Python (LEB128-like, 5 bits per character, deltas from the run two back)
    so that untrusted input is validated.
    """
    out: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x = k = 0
        more = True
        while more:
            if p >= n or k > 12:
                return None
            c = counts[p] - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def _read_rle(seg: dict, shape: tuple[int, int], where: str) -> list[int]:
    """Validate an RLE dict (compressed or not); return its run lengths.

    The runs are non-negative and sum to ``height * width`` (which `_positive_int` keeps
    below 2**62), so each fits in int64.
    """
    h, w = shape
    if "size" not in seg or "counts" not in seg:
        raise CocoFormatError(f"{where}: RLE segmentation needs 'size' and 'counts'")
    size = seg["size"]
    if not isinstance(size, list) or [_positive_int(s) for s in size] != [h, w]:
        raise CocoFormatError(
            f"{where}: RLE size {_brief(size)} does not match the image's [height, width] = [{h}, {w}]"
        )
    counts = seg["counts"]
    decoded: list[int] | None
    if isinstance(counts, list):  # uncompressed RLE
        if not all(_is_int(c) and c >= 0 for c in counts):
            raise CocoFormatError(f"{where}: uncompressed RLE counts must be non-negative ints")
        decoded = [int(c) for c in counts]
    else:
        if isinstance(counts, str):
            try:
                counts = counts.encode("ascii")
            except UnicodeEncodeError:
                raise CocoFormatError(f"{where}: RLE counts string is not ASCII") from None
        if not isinstance(counts, bytes):
            raise CocoFormatError(
                f"{where}: RLE counts must be a str (compressed) or a list of ints "
                f"(uncompressed), got {type(counts).__name__}"
            )
        decoded = _rle_string_counts(counts)
        if decoded is None or min(decoded, default=0) < 0:
            raise CocoFormatError(f"{where}: RLE counts string is malformed")
    total = sum(decoded)
    if total != h * w:
        raise CocoFormatError(
            f"{where}: RLE counts sum to {total}, expected height*width = {h * w}"
        )
    return decoded


def _rle_geometry(
    counts: list[int], shape: tuple[int, int], where: str, max_pixels: int
) -> shapely.Geometry:
    """Exact pixel-edge geometry of validated RLE run lengths (empty Polygon: no pixels).

    Runs alternate background/foreground, starting with background, over the pixels in
    column-major (Fortran) order. The foreground's box is computed from the runs; only
    that box is expanded to pixels, after checking it against ``max_pixels``.
    """
    h = shape[0]
    runs = np.asarray(counts, dtype=np.int64)
    ends = np.cumsum(runs)
    foreground = (np.arange(len(runs)) % 2 == 1) & (runs > 0)
    if not foreground.any():
        return shapely.Polygon()
    stop = ends[foreground]  # exclusive linear index of each foreground run's end
    start = stop - runs[foreground]
    first_col, last_col = start // h, (stop - 1) // h
    c0, c1 = int(first_col[0]), int(last_col[-1]) + 1
    if (last_col > first_col).any():  # a run goes on into the next column: every row
        r0, r1 = 0, h
    else:
        r0, r1 = int((start % h).min()), int(((stop - 1) % h).max()) + 1
    bh, bw = r1 - r0, c1 - c0
    if bh * bw > max_pixels:
        raise CocoFormatError(
            f"{where}: the RLE mask spans a box of {bw} x {bh} pixels, more than the "
            f"limit of {max_pixels} (labelassist.coco.read.MAX_MASK_PIXELS); raise it to "
            "read such masks"
        )
    # the same runs in the box (column-major): each is contiguous there too, because it
    # either stays in one column or the box has every row
    local = (first_col - c0) * bh + (start % h - r0)
    length = stop - start
    gaps = local - np.concatenate([[0], (local + length)[:-1]])
    pieces = np.empty(2 * len(local) + 1, dtype=np.int64)
    pieces[0:-1:2], pieces[1::2] = gaps, length
    pieces[-1] = bh * bw - int(local[-1] + length[-1])
    values = np.arange(len(pieces)) % 2 == 1
    box = np.repeat(values, pieces).reshape(bw, bh).T
    return masks_to_polygons(box[None], tolerance=0, offset=(c0, r0))[0]


# -- polygons -------------------------------------------------------------------------------------
def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """The non-empty polygon parts of ``geom``: a Polygon, MultiPolygon or empty Polygon."""
    parts = shapely.get_parts(geom)
    parts = parts[(shapely.get_type_id(parts) == _POLYGON_TYPE) & ~shapely.is_empty(parts)]
    if len(parts) == 0:
        return shapely.Polygon()
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(list(parts))


def _ring(values: Any, where: str) -> np.ndarray:
    if not isinstance(values, list):
        raise CocoFormatError(
            f"{where}: a polygon segmentation must be a list of rings "
            "[[x0, y0, x1, y1, ...], ...], got an element of type "
            f"{type(values).__name__}"
        )
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise CocoFormatError(f"{where}: polygon coordinates must be numbers")
    try:
        xy = np.asarray(values, dtype=np.float64)
    except OverflowError:  # an int beyond float64
        xy = np.array([np.inf])
    if not np.isfinite(xy).all():
        raise CocoFormatError(f"{where}: polygon has NaN or infinite coordinates")
    if len(xy) % 2:
        raise CocoFormatError(
            f"{where}: polygon has an odd number of coordinates ({len(xy)}); expected x, y pairs"
        )
    if len(xy) < 6:
        raise CocoFormatError(f"{where}: polygon has {len(xy) // 2} point(s), fewer than 3")
    return xy.reshape(-1, 2)


def _polygon_geometry(rings: list, where: str) -> shapely.Geometry:
    """Rings of one annotation -> their union (pycocotools semantics), made valid."""
    polys = [shapely.Polygon(_ring(r, where)) for r in rings]
    geom = polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)
    if geom.is_valid:
        return geom
    return _polygonal(shapely.union_all(shapely.make_valid(np.asarray(polys, dtype=object))))


def _clip_to_image(geom: shapely.Geometry, shape: tuple[int, int]) -> tuple[shapely.Geometry, bool]:
    """``geom`` cut to the image ``[0, width] x [0, height]``; True when it reached outside."""
    h, w = shape
    x0, y0, x1, y1 = geom.bounds
    if x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h:
        return geom, False
    return _polygonal(shapely.intersection(geom, shapely.box(0, 0, w, h))), True
