"""Converting chunks of images' `Instances` to COCO annotation columns (private).

`_convert_chunk` turns ``(image_id, Instances)`` pairs into a `_Converted` (columns that
`labelassist.coco._emit` renders as dicts or JSON). shapely and pycocotools are called
once per chunk (once per image size where sizes differ), not per instance: polygon
instances go through one ``frPyObjects`` of all their exterior rings; RLE instances
(``segmentation="rle"``, crowd regions, instances with holes) are rasterized inside their
own boxes, in batches, so the work does not grow with the image size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
from pycocotools import mask as mask_utils

from ..geometry import polygons_to_masks
from ..instances import Instances
from ._emit import _Converted, _floats32
from ._rules import _POLYGON_TYPE


def _boxes(geoms: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(N, 4) int ``[c0, r0, c1, r1]``: the pixel box of each geometry, clipped to the image."""
    h, w = shape
    x0, y0, x1, y1 = shapely.bounds(geoms).T
    return np.stack(
        [
            np.maximum(np.floor(x0), 0),
            np.maximum(np.floor(y0), 0),
            np.minimum(np.ceil(x1), w),
            np.minimum(np.ceil(y1), h),
        ],
        axis=1,
    ).astype(np.int64)


#: pixels of one batch of box-local masks in `_rasterized_rles` (the scanline fill needs
#: ~24 bytes per filled pixel: ~25 MiB at most, unless one box alone is larger)
_BATCH_PIXELS = 1 << 20


def _rasterized_rles(geoms: np.ndarray, shape: tuple[int, int]) -> list[dict]:
    """Compressed RLE of each geometry's full-image mask (pixel-centre rule), batched.

    Equal to ``mask_utils.encode`` of the full (H, W) mask of each geometry as
    `geometry.polygons_to_masks` rasterizes it, but each geometry is rasterized inside its
    own box only (translated to the box origin; batches of boxes in one call) and the run
    lengths are read off the box, so the work does not grow with the image size.
    """
    h, w = shape
    n = len(geoms)
    box = _boxes(geoms, shape)
    bh = np.maximum(box[:, 3] - box[:, 1], 0)
    bw = np.maximum(box[:, 2] - box[:, 0], 0)
    xy, index = shapely.get_coordinates(geoms, return_index=True)
    local = geoms.copy()
    shapely.set_coordinates(local, xy - box[index, :2])  # replaces the copies' elements
    counts: list[list[int]] = [[h * w]] * n
    order = np.argsort(bh * bw, kind="stable")
    order = order[(bh[order] > 0) & (bw[order] > 0)]
    start = 0
    while start < len(order):
        # the longest batch from `start` whose canvas stays within _BATCH_PIXELS (at least 1)
        rest = order[start:]
        canvas = (
            np.arange(1, len(rest) + 1)
            * np.maximum.accumulate(bh[rest])
            * np.maximum.accumulate(bw[rest])
        )
        stop = start + max(1, int(np.searchsorted(canvas, _BATCH_PIXELS, side="right")))
        batch = order[start:stop]
        mh, mw = int(bh[batch].max()), int(bw[batch].max())
        masks = polygons_to_masks(local[batch], (mh, mw))
        # keep each geometry's own box: the rest of the canvas is outside the image
        masks &= np.arange(mh)[None, :, None] < bh[batch][:, None, None]
        masks &= np.arange(mw)[None, None, :] < bw[batch][:, None, None]
        for k, runs in zip(batch.tolist(), _box_runs(masks, box[batch], h, w), strict=True):
            counts[k] = runs
        start = stop
    return mask_utils.frPyObjects([{"size": [h, w], "counts": c} for c in counts], h, w)


def _box_runs(masks: np.ndarray, box: np.ndarray, h: int, w: int) -> list[list[int]]:
    """Uncompressed RLE counts (column-major, background first) of box-local masks.

    Only run boundaries are listed (a run of each box column, then joined with the run
    in the next column when it goes on there), not every pixel.
    """
    m, mh, mw = masks.shape
    cols = np.zeros((m, mw, mh + 2), dtype=np.int8)
    cols[:, :, 1:-1] = masks.transpose(0, 2, 1)
    # +1 where a run starts in a column, -1 just after it ends; sorted by mask, column, row
    k, c, r = np.nonzero(np.diff(cols, axis=2))
    if len(k) == 0:  # no mask of the batch covers a pixel centre
        return [[h * w] for _ in range(m)]
    seg_mask, seg_first = k[0::2], (box[k[0::2], 0] + c[0::2]) * h + box[k[0::2], 1] + r[0::2]
    seg_end = seg_first + (r[1::2] - r[0::2])  # exclusive, index in the full image
    new_run = np.ones(len(seg_first), dtype=bool)
    new_run[1:] = (seg_mask[1:] != seg_mask[:-1]) | (seg_first[1:] != seg_end[:-1])
    run_start = np.flatnonzero(new_run)
    first = seg_first[run_start]
    length = seg_end[np.append(run_start[1:], len(seg_first)) - 1] - first
    run_mask = seg_mask[run_start]
    # gap before each run: from the end of the previous run of the same mask (or 0)
    prev_end = np.zeros(len(first), dtype=np.int64)
    prev_end[1:] = first[:-1] + length[:-1]
    first_of_mask = np.ones(len(first), dtype=bool)
    first_of_mask[1:] = run_mask[1:] != run_mask[:-1]
    prev_end[first_of_mask] = 0
    gap = first - prev_end
    pairs = np.stack([gap, length], axis=1).ravel().tolist()
    bounds = np.searchsorted(run_mask, np.arange(len(masks) + 1))
    total = h * w
    out = []
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if a == b:
            out.append([total])
            continue
        runs = pairs[2 * a : 2 * b]
        tail = total - int(first[b - 1] + length[b - 1])
        if tail:
            runs.append(tail)
        out.append(runs)
    return out


def _exterior_rings(parts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exterior rings of polygons without holes, flattened: ``(values, begins, ends)``.

    ``values[begins[r]:ends[r]]`` is ``[x0, y0, x1, y1, ...]`` of ring ``r`` (float64, no
    closing point). The polygons' coordinates are read directly (no ring objects): without
    holes they are those of the exterior ring.
    """
    xy, ring = shapely.get_coordinates(parts, return_index=True)
    stops = np.cumsum(np.bincount(ring, minlength=len(parts)))
    keep = np.ones(len(xy), dtype=bool)
    keep[stops[stops > 0] - 1] = False  # drop each ring's closing point
    ends = 2 * (stops - np.arange(1, len(parts) + 1))
    begins = np.concatenate([[0], ends])[:-1].astype(np.int64)
    return xy[keep].ravel(), begins, ends


def _convert(
    instances: Instances, image_id: int, first_id: int, segmentation: str
) -> tuple[_Converted, int]:
    """The annotations of one image (`_convert_chunk` of one image)."""
    return _convert_chunk([(image_id, instances)], first_id, segmentation)


def _ring_rles(values: np.ndarray, begins: np.ndarray, ends: np.ndarray, sizes: np.ndarray):
    """``frPyObjects`` of each ring, one call per image size: list of compressed RLEs.

    ``sizes`` is the ``(R, 2)`` ``(h, w)`` of each ring's image.
    """
    polys = [values[a:b] for a, b in zip(begins.tolist(), ends.tolist(), strict=True)]
    if not polys:
        return []
    out: list[Any] = [None] * len(polys)
    for (h, w), idx in _by_shape(sizes, np.arange(len(polys))):
        if len(idx) == len(polys):
            return mask_utils.frPyObjects(polys, h, w)
        rles = mask_utils.frPyObjects([polys[k] for k in idx.tolist()], h, w)
        for k, rle in zip(idx.tolist(), rles, strict=True):
            out[k] = rle
    return out


def _convert_chunk(
    chunk: Sequence[tuple[int, Instances]], first_id: int, segmentation: str
) -> tuple[_Converted, int]:
    """The annotations of a chunk of images ``(image_id, Instances)``, converted together.

    Shapely and pycocotools are called once per chunk (once per image size where sizes
    differ), not per image. Polygon instances: all exterior rings go through one
    ``frPyObjects`` (``merge`` joins the rings of multi-part ones); RLE instances
    (``segmentation="rle"``, crowd, holes): rasterized in their boxes in batches.
    ``area`` and ``bbox`` come from ``mask_utils.area`` / ``toBbox`` on the list of RLEs.
    Annotation ids run from ``first_id`` in image order. Instances covering no pixel are
    skipped; the second value counts them.
    """
    return _convert_columns(_chunk_columns(chunk), first_id, segmentation)


def _chunk_columns(chunk: Sequence[tuple[int, Instances]]) -> tuple:
    """A chunk as columns ``(image_ids, shapes, lengths, geoms, labels, scores, crowd,
    keypoints)``: list of int, (M, 2) int64, (M,) int64, and (N,) arrays of the N
    instances in image order; ``crowd`` is None when no instance has
    ``extra["iscrowd"]``, ``keypoints`` an (N, K, 3) array or None when no instance has
    keypoints (the writer has checked that all or none do)."""
    lengths = np.array([len(inst) for _, inst in chunk], dtype=np.int64)
    shapes = np.array([inst.image_shape for _, inst in chunk], dtype=np.int64).reshape(-1, 2)
    image_ids = [image_id for image_id, _ in chunk]
    if not chunk:
        no = np.zeros(0)
        return image_ids, shapes, lengths, no.astype(object), no.astype(np.int64), no, None, None
    geoms = np.concatenate([inst.polygons for _, inst in chunk])
    labels = np.concatenate([inst.labels for _, inst in chunk])
    scores = np.concatenate([inst.scores for _, inst in chunk])
    crowd = None
    if any("iscrowd" in inst.extra for _, inst in chunk):
        crowd = np.concatenate(
            [np.asarray(inst.extra.get("iscrowd", np.zeros(len(inst))), dtype=bool)
             for _, inst in chunk]
        )  # fmt: skip
    keypoints = None
    if any(inst.keypoints is not None for _, inst in chunk):
        keypoints = np.concatenate(
            [inst.keypoints for _, inst in chunk if inst.keypoints is not None]
        )
    return image_ids, shapes, lengths, geoms, labels, scores, crowd, keypoints


def _convert_columns(columns: tuple, first_id: int, segmentation: str) -> tuple[_Converted, int]:
    """`_convert_chunk` of a chunk as `_chunk_columns`."""
    image_ids, shapes, lengths, geoms, labels, scores, crowd, keypoints = columns
    n = int(lengths.sum())
    out = _Converted()
    out.first_id = first_id
    out.keypoints = None
    if n == 0:
        no_int = np.zeros(0, dtype=np.int64)
        out.image_ids, out.shapes, out.counts, out.scores = [], [], [], []
        out.pos, out.categories, out.ring_first, out.ring_stop = no_int, no_int, no_int, no_int
        out.values, out.begins, out.ends, out.crowd = np.zeros(0), no_int, no_int, no_int
        out.areas, out.bboxes = np.zeros(0), np.zeros((0, 4))
        return out, 0
    image = np.repeat(np.arange(len(lengths)), lengths)  # chunk index of each instance
    if crowd is None:
        crowd = np.zeros(n, dtype=bool)
    if (shapely.get_type_id(geoms) == _POLYGON_TYPE).all():  # the usual case: no multi-parts
        parts, owner = geoms, np.arange(n)
    else:
        parts, owner = shapely.get_parts(geoms, return_index=True)
    holes = np.bincount(owner, weights=shapely.get_num_interior_rings(parts), minlength=n) > 0
    as_rle = (segmentation == "rle") | crowd | holes
    keep = np.flatnonzero(~shapely.is_empty(geoms))
    # polygon instances: one exterior ring per non-empty part
    use = ~as_rle[owner] & ~shapely.is_empty(parts)
    parts, owner = parts[use], owner[use]
    values, begins, ends = _exterior_rings(parts)
    ring_rles = _ring_rles(values, begins, ends, shapes[image[owner]])
    ring_bounds = np.searchsorted(owner, np.arange(n + 1))
    ring_first = np.full(n, -1, dtype=np.int64)
    ring_stop = np.full(n, -1, dtype=np.int64)
    counts: list[Any] = [None] * n
    rles: list[Any] = [None] * n
    poly_idx = keep[~as_rle[keep]]
    ring_first[poly_idx] = ring_bounds[poly_idx]
    ring_stop[poly_idx] = ring_bounds[poly_idx + 1]
    for k, a, b in zip(
        poly_idx.tolist(), ring_first[poly_idx].tolist(), ring_stop[poly_idx].tolist(), strict=True
    ):
        rles[k] = ring_rles[a] if b - a == 1 else mask_utils.merge(ring_rles[a:b])
    rle_idx = keep[as_rle[keep]]
    if len(rle_idx):
        for (h, w), idx in _by_shape(shapes[image[rle_idx]], rle_idx):
            for k, rle in zip(idx.tolist(), _rasterized_rles(geoms[idx], (h, w)), strict=True):
                counts[k] = rle["counts"].decode("ascii")
                rles[k] = rle
    kept_rles = rles if len(keep) == n else [rles[k] for k in keep.tolist()]
    areas = _rle_areas(kept_rles)
    covered = areas > 0
    idx = keep[covered]
    out.image_ids = list(image_ids)
    out.shapes = [tuple(s) for s in shapes.tolist()]
    out.pos = image[idx]
    out.categories = labels[idx] + 1
    out.ring_first, out.ring_stop = ring_first[idx], ring_stop[idx]
    out.counts = [counts[k] for k in idx.tolist()]
    out.values, out.begins, out.ends = values, begins, ends
    out.areas = areas[covered].astype(np.float64)
    out.bboxes = mask_utils.toBbox(kept_rles)[covered] if kept_rles else np.zeros((0, 4))
    out.crowd = crowd[idx].astype(int)
    out.scores = _floats32(scores[idx])
    if keypoints is not None:
        out.keypoints = keypoints[idx]
    return out, n - len(idx)


def _by_shape(sizes: np.ndarray, idx: np.ndarray) -> list[tuple[tuple[int, int], np.ndarray]]:
    """``idx`` grouped by the ``(h, w)`` rows of ``sizes``: ``[((h, w), idx of that size)]``."""
    if (sizes == sizes[0]).all():
        return [(tuple(sizes[0].tolist()), idx)]
    return [
        ((h, w), idx[(sizes[:, 0] == h) & (sizes[:, 1] == w)])
        for h, w in np.unique(sizes, axis=0).tolist()
    ]


_AREA_CHUNK = 255  # pycocotools 2.0.11 `area` overflows (uint8 count) beyond 255 RLEs per call


def _rle_areas(rles: list[dict]) -> np.ndarray:
    """``mask_utils.area`` of any number of RLEs (called in chunks of 255)."""
    if not rles:
        return np.zeros(0, np.uint32)
    return np.concatenate(
        [mask_utils.area(rles[i : i + _AREA_CHUNK]) for i in range(0, len(rles), _AREA_CHUNK)]
    )
