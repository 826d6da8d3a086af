"""The fast COCO JSON emitter (private): annotation columns rendered as JSON text.

`_Converted` holds converted annotations as columns and renders them as dicts or straight
to JSON text; the float formatting it relies on lives here too.

The annotations' JSON text is built from columns, a row of pieces per annotation joined
once, not with ``json.dumps`` per annotation; it is byte for byte what
``json.dumps(..., separators=(",", ":"))`` writes for `_Converted.dicts`. Scores are
written as the shortest decimal that round-trips through float32 (`_floats32`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import numpy as np


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


class _Converted:
    """The annotations of a chunk of images as columns (see `_convert_chunk`); rendered as
    dicts or as JSON.

    Annotation ``j`` (id ``first_id + j``) belongs to image ``image_ids[pos[j]]`` of size
    ``shapes[pos[j]]``. A polygon annotation has the rings ``ring_first[j]:ring_stop[j]``
    into ``begins`` / ``ends`` (ranges of ``values``); an RLE one has ``ring_first[j] ==
    -1`` and the compressed ``counts[j]``. With ``keypoints`` (an (N, K, 3) array, else
    None) every annotation also gets COCO's flat ``keypoints`` list ``[x1, y1, v1, ...]``
    (x, y floats, v an int) and ``num_keypoints`` (the count with ``v > 0``), after
    ``score``.
    """

    __slots__ = ("first_id", "image_ids", "shapes", "pos", "categories", "ring_first",
                 "ring_stop", "counts", "values", "begins", "ends", "areas", "bboxes", "crowd",
                 "scores", "keypoints")  # fmt: skip

    first_id: int
    image_ids: list[int]
    shapes: list[tuple[int, int]]
    pos: np.ndarray  # (N,) int: chunk index of the image of each annotation
    categories: np.ndarray  # (N,) int: category ids (label + 1)
    ring_first: np.ndarray  # (N,) int: first ring of a polygon annotation, -1 for RLE
    ring_stop: np.ndarray  # (N,) int
    counts: list[str | None]  # compressed RLE counts (None for polygon annotations)
    values: np.ndarray  # float64 ring coordinates, all rings one after the other
    begins: np.ndarray  # (R,) int: start of each ring in `values`
    ends: np.ndarray  # (R,) int
    areas: np.ndarray  # (N,) float64
    bboxes: np.ndarray  # (N, 4) float64
    crowd: np.ndarray  # (N,) int 0/1
    scores: list[float]
    keypoints: np.ndarray | None  # (N, K, 3) float64, or None

    def _segmentations(self, rings: list, rle: Callable[..., Any]) -> list:
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
        out = [
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
        if self.keypoints is not None:
            for ann, flat, count in zip(out, *_keypoint_lists(self.keypoints), strict=True):
                ann["keypoints"] = flat
                ann["num_keypoints"] = count
        return out

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
        segs: Any
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
        if self.keypoints is not None:
            ends = table[:, 18].tolist()
            table[:, 18] = [
                text + end for text, end in zip(_keypoint_texts(self.keypoints), ends, strict=True)
            ]
        return "".join(table.ravel().tolist())


def _keypoint_lists(keypoints: np.ndarray) -> tuple[list[list[float | int]], list[int]]:
    """COCO's flat ``[x1, y1, v1, ...]`` (v as int) and ``num_keypoints`` per annotation."""
    flat: list[list[float | int]] = []
    for row in keypoints.tolist():
        flat.append([v for x, y, vis in row for v in (x, y, int(vis))])
    counts = np.count_nonzero(keypoints[:, :, 2] > 0, axis=1).tolist()
    return flat, counts


def _keypoint_texts(keypoints: np.ndarray) -> list[str]:
    """``,"keypoints":[...],"num_keypoints":n`` per annotation, as `_keypoint_lists` dumps."""
    n, k, _ = keypoints.shape
    coords = np.array(_float_texts(keypoints[:, :, :2].ravel()), dtype=object).reshape(n, k, 2)
    vis = keypoints[:, :, 2].astype(np.int64).astype(str).astype(object).reshape(n, k, 1)
    parts = np.concatenate([coords, vis], axis=2).reshape(n, 3 * k)
    counts = np.count_nonzero(keypoints[:, :, 2] > 0, axis=1).tolist()
    return [
        ',"keypoints":[' + ",".join(row) + '],"num_keypoints":' + str(c)
        for row, c in zip(parts.tolist(), counts, strict=True)
    ]


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


#: compact JSON, built once (``json.dumps`` with options builds an encoder per call)
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _dumps(obj: Any) -> str:
    return _ENCODER.encode(obj)


def _renumber(text: bytes, first_id: int) -> bytes:
    """`_Converted.json` text (UTF-8) with the annotation ids ``first_id, first_id + 1, ...``.

    Each annotation is one line starting ``{"id":<id>,`` (no JSON text of ours holds a
    newline).
    """
    return b"\n".join(
        b'{"id":%d%s' % (first_id + j, line[line.index(b",") :])
        for j, line in enumerate(text.split(b"\n"))
    )
