"""Writing COCO files (private): `write_coco` and `instances_to_coco`, re-exported by
`labelassist.coco`, whose docstring states the COCO rules they follow.

Instances are converted in chunks of images (`_convert_chunk`): shapely and pycocotools
are called once per chunk (once per image size), and the annotations' JSON text is built
from columns (`_Converted.json`), not with ``json.dumps`` per annotation. `write_coco`
streams image records and annotations to temporary files next to the target and then
replaces it atomically. With ``workers > 1`` the chunks are converted in spawned worker
processes (`_ParallelAnnotations`), which import this module to run `_convert_wkb`: it
imports only `labelassist._coco_common` and `labelassist.instances` of labelassist, not
the reader.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import shutil
import signal
import stat
import tempfile
import warnings
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pycocotools import mask as mask_utils

from ..instances import Instances
from ._rules import (
    _POLYGON_TYPE,
    _check_categories,
    _check_item_instances,
    _check_record,
    _escapes_root,
    _geometry,
    _is_int,
)

__all__ = ["instances_to_coco", "write_coco"]

_SEGMENTATIONS = ("polygon", "rle")


def _check_segmentation_mode(segmentation: Any) -> str:
    if segmentation not in _SEGMENTATIONS:
        raise ValueError(f"segmentation must be 'polygon' or 'rle', got {segmentation!r}")
    return segmentation


# -- writing --------------------------------------------------------------------------------
def _floats32(values: np.ndarray) -> list[float]:
    """Each value as the shortest decimal that round-trips through float32 (short JSON).

    Equal to ``float(str(np.float32(v)))`` per value: numpy prints float32 with the
    shortest round-tripping digits both ways. Values in ``[2**-10, 1]`` (scores) are done
    in exact float64 arithmetic (`_short32`), the others by numpy's printing.
    """
    v = np.asarray(values, dtype=np.float32).ravel()
    out = np.zeros(len(v))
    slow = ~((v >= 2.0**-10) & (v <= 1))
    fast = np.flatnonzero(~slow)
    if len(fast):
        short, unsure = _short32(v[fast])
        out[fast] = short
        slow[fast[unsure]] = True
    if slow.any():
        out[slow] = v[slow].astype(str).astype(np.float64)
    return out.tolist()


def _short32(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`_floats32` of float32 values in ``[2**-10, 1]``: ``(values, unsure)``; where
    ``unsure`` the value is to be found otherwise.

    For ``k = 0, 1, ...`` decimal places, the two ``k``-place decimals around ``v`` are
    tested against the float32 rounding interval of ``v`` (ends: the midpoints to its
    neighbours); the first ``k`` with one strictly inside gives the shortest digits, the
    nearer one if both are. All products are exact in float64 (``v`` has 24 significant
    bits, the midpoints 25, ``5**12 < 2**28``); a decimal on an interval end or equally far
    from ``v`` on both sides (where rounding rules would decide) is left ``unsure``.
    """
    x = v.astype(np.float64)
    lo = (x + np.nextafter(v, np.float32(0)).astype(np.float64)) / 2
    hi = (x + np.nextafter(v, np.float32(2)).astype(np.float64)) / 2
    out = np.zeros(len(v))
    unsure = np.zeros(len(v), dtype=bool)
    todo = np.arange(len(v))
    for k in range(13):
        scale = 10.0**k
        xs, los, his = x[todo] * scale, lo[todo] * scale, hi[todo] * scale
        down = np.floor(xs)
        up = down + 1
        in_down = (down > los) & (down < his)
        in_up = (up > los) & (up < his)
        on_end = (down == los) | (down == his) | (up == los) | (up == his)
        tie = in_down & in_up & (xs - down == up - xs)
        pick = np.where(in_down & (~in_up | (xs - down < up - xs)), down, up)
        found = in_down | in_up
        unsure[todo[on_end | tie]] = True
        out[todo[found]] = pick[found] / scale
        todo = todo[~found & ~on_end]
        if not len(todo):
            break
    unsure[todo] = True
    return out, unsure


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
        masks = _geometry().polygons_to_masks(local[batch], (mh, mw))
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


class _Converted:
    """The annotations of a chunk of images as columns (see `_convert_chunk`); rendered as
    dicts or as JSON.

    Annotation ``j`` (id ``first_id + j``) belongs to image ``image_ids[pos[j]]`` of size
    ``shapes[pos[j]]``. A polygon annotation has the rings ``ring_first[j]:ring_stop[j]``
    into ``begins`` / ``ends`` (ranges of ``values``); an RLE one has ``ring_first[j] ==
    -1`` and the compressed ``counts[j]``.
    """

    __slots__ = ("first_id", "image_ids", "shapes", "pos", "categories", "ring_first",
                 "ring_stop", "counts", "values", "begins", "ends", "areas", "bboxes", "crowd",
                 "scores")  # fmt: skip

    def _segmentations(self, rings: list, rle: Any) -> list:
        """Per annotation: its list of ``rings`` (polygon) or ``rle(h, w, counts)``."""
        return [
            rings[a:b] if a >= 0 else rle(*self.shapes[p], c)
            for p, a, b, c in zip(
                self.pos.tolist(), self.ring_first.tolist(), self.ring_stop.tolist(), self.counts,
                strict=True,
            )
        ]  # fmt: skip

    def dicts(self) -> list[dict]:
        values = self.values.tolist()
        rings = [values[a:b] for a, b in zip(self.begins.tolist(), self.ends.tolist(), strict=True)]
        segs = self._segmentations(rings, lambda h, w, c: {"size": [h, w], "counts": c})
        return [
            {
                "id": self.first_id + j,
                "image_id": self.image_ids[p],
                "category_id": category,
                "segmentation": seg,
                "area": area,
                "bbox": bbox,
                "iscrowd": iscrowd,
                "score": score,
            }
            for j, (p, category, seg, area, bbox, iscrowd, score) in enumerate(
                zip(
                    self.pos.tolist(),
                    self.categories.tolist(),
                    segs,
                    self.areas.tolist(),
                    self.bboxes.tolist(),
                    self.crowd.tolist(),
                    self.scores,
                    strict=True,
                )
            )
        ]

    def json(self) -> str:
        """``",\n".join`` of the compact JSON of `dicts` (same text), built directly.

        The text is one ``"".join`` over a table of pieces, a row per annotation.
        """
        n_values, n = len(self.values), len(self.areas)
        if n == 0:
            return ""
        texts = _float_texts(np.concatenate([self.values, self.areas, self.bboxes.ravel()]))
        rings = [
            "[" + ",".join(texts[a:b]) + "]"
            for a, b in zip(self.begins.tolist(), self.ends.tolist(), strict=True)
        ]
        rle = self.ring_first < 0
        if not rle.any() and (self.ring_stop - self.ring_first == 1).all():
            segs = np.array(rings, dtype=object)[self.ring_first]  # the usual case: one ring each
        else:
            segs = [
                seg if isinstance(seg, str) else ",".join(seg)
                for seg in self._segmentations(
                    rings, lambda h, w, c: f'{{"size":[{h},{w}],"counts":{_dumps(c)}}}'
                )
            ]
        table = np.empty((n, 19), dtype=object)
        table[:, 0] = '{"id":'
        table[:, 1] = list(map(str, range(self.first_id, self.first_id + n)))
        heads = [f',"image_id":{i},"category_id":' for i in self.image_ids]
        table[:, 2] = np.array(heads, dtype=object)[self.pos]
        table[:, 3] = _int_texts(self.categories)
        table[:, 4] = _pick(rle, ',"segmentation":[', ',"segmentation":')
        table[:, 5] = segs
        table[:, 6] = _pick(rle, '],"area":', ',"area":')
        table[:, 7] = texts[n_values : n_values + n]
        table[:, 8] = ',"bbox":['
        table[:, 9:16:2] = np.array(texts[n_values + n :], dtype=object).reshape(n, 4)
        table[:, 10:15:2] = ","
        table[:, 16] = _pick(
            self.crowd.astype(bool), '],"iscrowd":0,"score":', '],"iscrowd":1,"score":'
        )
        table[:, 17] = list(map(repr, self.scores))
        table[:, 18] = "},\n"
        table[-1, 18] = "}"
        return "".join(table.ravel().tolist())


def _pick(mask: np.ndarray, no: str, yes: str) -> np.ndarray:
    """``yes`` where ``mask``, else ``no`` (object array of the two str objects)."""
    return np.array([no, yes], dtype=object)[mask.astype(np.intp)]


def _int_texts(values: np.ndarray) -> np.ndarray:
    """``str`` of each small non-negative int (object array), from a table."""
    return np.array(list(map(str, range(int(values.max()) + 1))), dtype=object)[values]


#: half-integers in [-_TABLE_HALF / 2, _TABLE_HALF / 2] get their JSON text from a table
_TABLE_HALF = 1 << 14


@functools.cache
def _half_texts() -> np.ndarray:
    """``repr(k / 2)`` for ``k`` in ``[-_TABLE_HALF, _TABLE_HALF]`` (object array of str)."""
    return np.array([repr(k / 2) for k in range(-_TABLE_HALF, _TABLE_HALF + 1)], dtype=object)


def _float_texts(values: np.ndarray) -> list[str]:
    """JSON text of each float64 value, as ``json`` writes it (``repr``; NaN/inf refused).

    Pixel coordinates are mostly whole or half numbers: their text comes from a table,
    the rest from the JSON encoder in one call.
    """
    twice = values * 2
    negative_zero = (values == 0) & np.signbit(values)
    table = (twice == np.rint(twice)) & (np.abs(twice) <= _TABLE_HALF) & ~negative_zero
    out = np.empty(len(values), dtype=object)
    out[table] = _half_texts()[twice[table].astype(np.int64) + _TABLE_HALF]
    rest = ~table
    if rest.any():
        out[rest] = _dumps(values[rest].tolist())[1:-1].split(",")
    return out.tolist()


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
    """A chunk as columns ``(image_ids, shapes, lengths, geoms, labels, scores, crowd)``:
    list of int, (M, 2) int64, (M,) int64, and (N,) arrays of the N instances in image
    order; ``crowd`` is None when no instance has ``extra["iscrowd"]``."""
    lengths = np.array([len(inst) for _, inst in chunk], dtype=np.int64)
    shapes = np.array([inst.image_shape for _, inst in chunk], dtype=np.int64).reshape(-1, 2)
    image_ids = [image_id for image_id, _ in chunk]
    if not chunk:
        no = np.zeros(0)
        return image_ids, shapes, lengths, no.astype(object), no.astype(np.int64), no, None
    geoms = np.concatenate([inst.polygons for _, inst in chunk])
    labels = np.concatenate([inst.labels for _, inst in chunk])
    scores = np.concatenate([inst.scores for _, inst in chunk])
    crowd = None
    if any("iscrowd" in inst.extra for _, inst in chunk):
        crowd = np.concatenate(
            [np.asarray(inst.extra.get("iscrowd", np.zeros(len(inst))), dtype=bool)
             for _, inst in chunk]
        )  # fmt: skip
    return image_ids, shapes, lengths, geoms, labels, scores, crowd


def _convert_columns(columns: tuple, first_id: int, segmentation: str) -> tuple[_Converted, int]:
    """`_convert_chunk` of a chunk as `_chunk_columns`."""
    image_ids, shapes, lengths, geoms, labels, scores, crowd = columns
    n = int(lengths.sum())
    out = _Converted()
    out.first_id = first_id
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


def _instances_to_coco(
    instances: Instances, image_id: int, first_id: int, segmentation: str
) -> tuple[list[dict], int]:
    converted, skipped = _convert(instances, image_id, first_id, segmentation)
    return converted.dicts(), skipped


def _warn_skipped(count: int, stacklevel: int) -> None:
    if count:
        warnings.warn(
            f"skipped {count} empty instance(s) (empty geometry or no pixel inside the "
            "image): COCO annotations need a non-empty segmentation",
            UserWarning,
            stacklevel=stacklevel + 1,
        )


def instances_to_coco(
    instances: Instances,
    image_id: int,
    *,
    first_id: int = 1,
    segmentation: str = "polygon",
) -> list[dict]:
    """Convert one image's instances to COCO annotation dicts.

    Parameters
    ----------
    instances : Instances
        The image's instances; ``labels`` become ``category_id = label + 1``. An
        ``extra["iscrowd"]`` bool column marks crowd regions (written as ``iscrowd=1`` RLE).
    image_id : int
        The ``image_id`` of every annotation.
    first_id : int, optional
        Id of the first annotation; the others follow consecutively.
    segmentation : {"polygon", "rle"}, optional
        ``"polygon"`` writes one ring per part, except instances with holes (COCO polygons
        cannot express holes) and crowd regions, which are written as RLE. ``"rle"``
        writes every instance as compressed RLE with ``str`` counts.

    Returns
    -------
    list of dict
        Annotations with ``id, image_id, category_id, segmentation, area, bbox, iscrowd,
        score``. ``area`` is the pixel count of the mask pycocotools rasterizes from the
        segmentation, ``bbox`` is ``[x, y, w, h]`` of that mask. Instances that cover no
        pixel (empty geometry, or outside the image) are skipped with a warning. Extra
        columns other than ``iscrowd`` are not written.

    Examples
    --------
    >>> import shapely
    >>> inst = Instances([shapely.box(1, 1, 4, 3)], [0], [0.5], (5, 5))
    >>> ann = instances_to_coco(inst, image_id=7)[0]
    >>> ann["category_id"], ann["segmentation"], ann["area"], ann["bbox"]
    (1, [[4.0, 1.0, 4.0, 3.0, 1.0, 3.0, 1.0, 1.0]], 6.0, [1.0, 1.0, 3.0, 2.0])
    """
    if not isinstance(instances, Instances):
        raise TypeError(f"instances must be an Instances, got {type(instances).__name__}")
    if not _is_int(image_id):
        raise TypeError(f"image_id must be an int, got {image_id!r}")
    if not _is_int(first_id) or first_id < 1:
        raise ValueError(f"first_id must be an int >= 1 (COCO ids start at 1), got {first_id!r}")
    segmentation = _check_segmentation_mode(segmentation)
    anns, skipped = _instances_to_coco(instances, int(image_id), int(first_id), segmentation)
    _warn_skipped(skipped, stacklevel=2)
    return anns


#: compact JSON, built once (``json.dumps`` with options builds an encoder per call)
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _dumps(obj: Any) -> str:
    return _ENCODER.encode(obj)


class _TempFile:
    """A binary temp file next to ``path`` (same folder, so ``os.replace`` is atomic)."""

    def __init__(self, path: Path) -> None:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        self.name = name
        self.file = os.fdopen(fd, "w+b")

    def write(self, text: str) -> None:
        self.file.write(text.encode("utf-8"))

    def discard(self) -> None:
        self.file.close()
        if os.path.exists(self.name):
            os.unlink(self.name)


def write_coco(
    path: str | os.PathLike,
    categories: Sequence[str],
    items: Iterable[tuple[Mapping[str, Any], Instances | None]],
    *,
    segmentation: str = "polygon",
    info: Mapping[str, Any] | None = None,
    workers: int = 1,
) -> Path:
    """Write a COCO instance-segmentation file, streaming images and annotations.

    Images and annotations are written as they come, to temporary files in the target
    folder; the finished file then replaces ``path`` atomically (``os.replace``). Only one
    chunk of images (a few thousand instances) is held in memory, converted together
    (with ``workers > 1``: two chunks per worker), and if anything fails ``path`` is left
    as it was.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.json`` file to write; its folder is created when missing.
    categories : sequence of str
        Class names; category ``k`` is written with id ``k + 1``.
    items : iterable of (dict, Instances or None)
        Image records (``id`` int, ``file_name`` relative to the image root, ``height``,
        ``width``; other keys are written as they are) with their instances (None: no
        annotations). A generator is fine. Image ids must be unique; ``file_name`` must
        not be absolute nor contain ``..`` (`read_coco` refuses such files).
    segmentation : {"polygon", "rle"}, optional
        See `instances_to_coco`.
    info : dict, optional
        The COCO ``info`` block; by default a description and the creation time.
    workers : int, optional
        Processes converting chunks of instances to COCO (1: in this process). With more,
        this process reads ``items`` and writes the file while the others convert (started
        with "spawn", which takes about a second: worth it from some 50,000 instances).
        The file is the same whatever the number; an error in a worker is raised here.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import shapely, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "labels.json"
    >>> record = {"id": 1, "file_name": "a.png", "height": 8, "width": 8}
    >>> inst = Instances([shapely.box(0, 0, 2, 2)], [0], [1.0], (8, 8))
    >>> write_coco(out, ["cell"], [(record, inst)]).name
    'labels.json'
    >>> from labelassist.coco import read_coco
    >>> len(read_coco(out).instances[1])
    1
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"path {str(path)!r} is a folder; give a .json file name in it")
    segmentation = _check_segmentation_mode(segmentation)
    names = _check_categories(categories)
    if not _is_int(workers) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    workers = int(workers)
    if info is None:
        info = {
            "description": "written by labelassist",
            "date_created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    elif not isinstance(info, Mapping):
        raise TypeError(f"info must be a dict, got {type(info).__name__}")
    head = {
        "info": dict(info),
        "licenses": [],
        "categories": [
            {"id": k + 1, "name": name, "supercategory": ""} for k, name in enumerate(names)
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    main = _TempFile(path)
    side = None
    try:
        side = _TempFile(path)
        main.write(_dumps(head)[:-1] + ',\n"images":[\n')
        skipped = _stream(main, side, names, items, segmentation, workers)
        main.write('\n],\n"annotations":[\n')
        side.file.seek(0)
        shutil.copyfileobj(side.file, main.file, 1 << 16)
        main.write("\n]}\n")
        main.file.flush()
        os.fsync(main.file.fileno())
        main.file.close()
        # mkstemp creates 0600 files: give the result the target's mode (new: rw-r--r--)
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
        os.chmod(main.name, mode)
        os.replace(main.name, path)
    finally:
        main.discard()
        if side is not None:
            side.discard()
    _warn_skipped(skipped, stacklevel=2)
    return path


#: images are converted in chunks of this many instances (or `_CHUNK_IMAGES` images):
#: shapely and pycocotools are called once per chunk, and memory stays bounded by it
_CHUNK_INSTANCES = 2048
_CHUNK_IMAGES = 128


def _stream(
    main: _TempFile,
    side: _TempFile,
    names: list[str],
    items: Iterable[tuple[Mapping[str, Any], Instances | None]],
    segmentation: str,
    workers: int = 1,
) -> int:
    """Write image records to ``main`` and annotations to ``side``; return skipped count.

    Items are checked one by one as they come; their instances are converted in chunks
    (`_convert_chunk`), so that memory holds one chunk, not the whole dataset; with
    ``workers > 1`` a few chunks per worker (`_ParallelAnnotations`).
    """
    seen: set[int] = set()
    records: list[str] = []
    chunk: list[tuple[int, Instances]] = []
    size = 0
    sink = _Annotations(side, segmentation) if workers == 1 else _ParallelAnnotations(
        side, segmentation, workers
    )  # fmt: skip

    def flush() -> None:
        nonlocal size
        main.write("".join(records))
        records.clear()
        sink.add(chunk, size)
        chunk.clear()
        size = 0

    try:
        for k, item in enumerate(items):
            where = f"items[{k}]"
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise TypeError(f"{where} must be a pair (image record, Instances or None)")
            record = _check_record(item[0], f"{where} image record")
            if _escapes_root(record["file_name"]):
                raise ValueError(
                    f"{where}: file_name {record['file_name']!r} is absolute or leaves the "
                    "image folder; write it relative to the image root (e.g. 'images/a.png')"
                )
            if record["id"] in seen:
                raise ValueError(f"{where}: duplicate image id {record['id']}")
            seen.add(record["id"])
            instances = _check_item_instances(item[1], record, len(names), f"{where} instances")
            records.append(("" if k == 0 else ",\n") + _dumps(record))
            if instances is None:
                continue
            chunk.append((record["id"], instances))
            size += len(instances)
            if size >= _CHUNK_INSTANCES or len(chunk) >= _CHUNK_IMAGES:
                flush()
        flush()
        sink.finish()
    except BaseException:
        sink.abort()
        raise
    return sink.skipped


class _Annotations:
    """Converts chunks in this process and writes their annotations to ``side`` in order,
    with ids from 1 (the annotation part of `_stream`)."""

    def __init__(self, side: _TempFile, segmentation: str) -> None:
        self.side = side
        self.segmentation = segmentation
        self.next_id = 1
        self.skipped = 0

    def add(self, chunk: list[tuple[int, Instances]], size: int) -> None:
        """Convert and write a chunk of ``size`` instances."""
        converted, skipped = _convert_chunk(chunk, self.next_id, self.segmentation)
        self._write(converted.json().encode("utf-8"), len(converted.categories), skipped)

    def _write(self, text: bytes, n: int, skipped: int) -> None:
        if n:  # one write per chunk
            self.side.file.write(text if self.next_id == 1 else b",\n" + text)
            self.next_id += n
        self.skipped += skipped

    def finish(self) -> None:
        """Write what is still pending."""

    def abort(self) -> None:
        """Stop without writing (an error or an interrupt)."""


class _ParallelAnnotations(_Annotations):
    """`_Annotations` converting in ``workers`` processes (spawned: no fork of a host with
    threads), at most ``2 * workers`` chunks in flight; written in order as they finish.

    A chunk is sent as columns with WKB geometries (`_wkb_columns`; pickling shapely
    objects is a hundred times slower) and comes back as JSON bytes. Its ids are given up front,
    supposing that the chunks before it skip no instance; when some did, its text is
    renumbered (`_renumber`), so ids are those of the in-process conversion.
    """

    def __init__(self, side: _TempFile, segmentation: str, workers: int) -> None:
        super().__init__(side, segmentation)
        context = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_ignore_sigint)
        self.window = 2 * workers
        self.pending: deque = deque()  # (future, first id given, instances)

    def add(self, chunk: list[tuple[int, Instances]], size: int) -> None:
        if size == 0:  # nothing to write, nothing skipped
            return
        first_id = self.next_id + sum(n for _, _, n in self.pending)
        columns = _wkb_columns(chunk)
        future = self.pool.submit(_convert_wkb, columns, first_id, self.segmentation)
        self.pending.append((future, first_id, size))
        while len(self.pending) >= self.window:
            self._take()

    def _take(self) -> None:
        future, first_id, _ = self.pending.popleft()
        text, n, skipped = future.result()  # a worker's exception is raised here, as it was
        if n and first_id != self.next_id:
            text = _renumber(text, self.next_id)
        self._write(text, n, skipped)

    def finish(self) -> None:
        while self.pending:
            self._take()
        self.pool.shutdown()

    def abort(self) -> None:
        # the workers finish the chunk they hold (a fraction of a second; they ignore
        # Ctrl-C) and exit; terminating one while it writes its result to the shared pipe
        # could leave the pool's reader thread blocked for ever
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pending.clear()


def _ignore_sigint() -> None:
    """Worker initializer: Ctrl-C stops the main process, which then ends the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _wkb_columns(chunk: list[tuple[int, Instances]]) -> tuple:
    """`_chunk_columns` with the geometries as WKB bytes (object array), cheap to pickle.

    Instances whose ``polygons`` already hold WKB bytes (a project's stored rows, see
    ``_project_coco.iter_items``) are sent as they are.
    """
    image_ids, shapes, lengths, geoms, labels, scores, crowd = _chunk_columns(chunk)
    if len(geoms) and not isinstance(geoms[0], bytes):
        geoms = shapely.to_wkb(geoms)
    return image_ids, shapes, lengths, geoms, labels, scores, crowd


def _convert_wkb(columns: tuple, first_id: int, segmentation: str) -> tuple[bytes, int, int]:
    """Worker side of `_ParallelAnnotations`: a chunk of `_wkb_columns` to
    ``(JSON text as UTF-8, annotations written, instances skipped)``."""
    image_ids, shapes, lengths, wkb, labels, scores, crowd = columns
    geoms = shapely.from_wkb(wkb)
    converted, skipped = _convert_columns(
        (image_ids, shapes, lengths, geoms, labels, scores, crowd), first_id, segmentation
    )
    return converted.json().encode("utf-8"), len(converted.categories), skipped


def _renumber(text: bytes, first_id: int) -> bytes:
    """`_Converted.json` text (UTF-8) with the annotation ids ``first_id, first_id + 1, ...``.

    Each annotation is one line starting ``{"id":<id>,`` (no JSON text of ours holds a
    newline).
    """
    return b"\n".join(
        b'{"id":%d%s' % (first_id + j, line[line.index(b",") :])
        for j, line in enumerate(text.split(b"\n"))
    )
