"""Keypoints in COCO files (private): categories' names and skeletons, annotations' lists.

`_category_keypoints` reads a category's ``keypoints`` names and 1-based ``skeleton``;
`_Keypoints` holds a file's keypoints (the union of its categories'); and
`_annotation_keypoints` reads an annotation's flat ``[x1, y1, v1, ...]`` list into the
file's columns. Keypoint annotations without segmentation (CVAT, Label Studio) get their
``bbox`` as outline (`_box_outline`). Problems are `CocoFormatError` naming the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import shapely

from ..instances import check_keypoint_names
from ._rules import _brief, _is_int
from .errors import CocoFormatError


class _Keypoints:
    """The keypoints of a file: ``names`` (the union over its categories, in category id
    order), ``skeleton`` (0-based, the union of the categories' edges) and, per category
    id, the positions of its own keypoints in ``names`` (None: it names none)."""

    __slots__ = ("names", "skeleton", "columns")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.skeleton: list[tuple[int, int]] = []
        self.columns: dict[int, np.ndarray | None] = {}


def _category_keypoints(cat: dict, where: str) -> tuple[list[str], list[tuple[int, int]]]:
    """A category's keypoint names and 0-based skeleton (``[]`` when it has none)."""
    names = cat.get("keypoints")
    if names is None or names == []:
        return [], []
    try:
        names = check_keypoint_names(names, "keypoints")
    except (TypeError, ValueError) as exc:
        raise CocoFormatError(f"{where}: {exc}") from None
    edges: list[tuple[int, int]] = []
    skeleton = cat.get("skeleton") or []
    if not isinstance(skeleton, list):
        raise CocoFormatError(f"{where}: skeleton must be a list of [a, b] pairs (1-based)")
    for pair in skeleton:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(_is_int(v) and 1 <= v <= len(names) for v in pair)
            or pair[0] == pair[1]
        ):
            raise CocoFormatError(
                f"{where}: skeleton edge {_brief(pair)} must join two different keypoints "
                f"by their 1-based indices in [1, {len(names)}]"
            )
        edge = (int(pair[0]) - 1, int(pair[1]) - 1)
        if edge not in edges:
            edges.append(edge)
    return names, edges


def _annotation_keypoints(
    ann: Mapping[str, Any], columns: np.ndarray | None, n: int, where: str
) -> tuple[np.ndarray, bool]:
    """``(keypoints (n, 3), dropped)`` of one annotation: its flat ``keypoints`` list put
    at its category's ``columns`` (v=0 elsewhere); ``dropped`` when it has keypoints but
    its category names none."""
    out = np.zeros((n, 3))
    raw = ann.get("keypoints")
    if raw is None or raw == []:
        return out, False
    if columns is None:
        return out, True
    k = len(columns)
    if (
        not isinstance(raw, list)
        or len(raw) != 3 * k
        or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in raw)
    ):
        raise CocoFormatError(
            f"{where}: keypoints must be a flat list [x1, y1, v1, ...] of 3 x {k} numbers "
            f"(the category's {k} keypoints), got {_brief(raw)}"
        )
    try:
        values = np.asarray(raw, dtype=np.float64).reshape(k, 3)
    except OverflowError:
        values = np.full((k, 3), np.inf)
    if not np.isfinite(values).all() or not np.isin(values[:, 2], (0, 1, 2)).all():
        raise CocoFormatError(
            f"{where}: keypoints need finite x, y and a visibility v of 0, 1 or 2 (COCO), "
            f"got {_brief(raw)}"
        )
    out[columns] = values
    return out, False


def _box_outline(ann: Mapping[str, Any], shape: tuple[int, int]) -> shapely.Polygon | None:
    """The ``bbox`` of a keypoint annotation without segmentation, clipped to the image,
    as a polygon (None when it has no usable bbox)."""
    box = ann.get("bbox")
    if not isinstance(box, list) or len(box) != 4:
        return None
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in box):
        return None
    x, y, w, h = (float(v) for v in box)
    if not all(np.isfinite([x, y, w, h])) or w <= 0 or h <= 0:
        return None
    geom = shapely.clip_by_rect(shapely.box(x, y, x + w, y + h), 0, 0, shape[1], shape[0])
    return geom if isinstance(geom, shapely.Polygon) and geom.area > 0 else None


def _no_mask(seg: Any) -> bool:
    """True for a segmentation that holds no outline: ``[]`` or ``[[]]``."""
    return isinstance(seg, list) and all(isinstance(r, list) and not r for r in seg)
