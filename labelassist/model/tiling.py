"""Tiling: overlapping windows over a large image, and which tile's copy of an object to keep.

`tile_grid` cuts an image into overlapping tiles whose core regions partition it. A
detection is a candidate in its tile when its box centre lies in (or near) the tile's core
and, near the core, its box keeps clear of the tile's inner edges (a box touching such an
edge is cut by the tile, and a whole copy exists in a neighbour); `merge_tiles` then keeps,
among overlapping candidates of different tiles, the one farthest from its tile's edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = [
    "Tile",
    "default_overlap",
    "edge_distance",
    "merge_tiles",
    "select_candidates",
    "tile_grid",
]


def default_overlap(tile_size: int) -> int:
    """The default overlap of ``tile_size`` tiles: ``min(192, tile_size * 3 // 8)``.

    Objects are then taken at least ~96 px from a tile edge, where the starter's masks agree
    with untiled prediction (99.5 % at IoU 0.9 on 2048 px images with 512 px tiles; 98.5-99.0 %
    with overlap 128, 1.5x faster).

    Examples
    --------
    >>> default_overlap(512), default_overlap(64)
    (192, 24)
    """
    return min(192, int(tile_size) * 3 // 8)


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride)) + [length - tile]
    return sorted(set(starts))


def _cores(starts: list[int], tile: int, length: int) -> list[tuple[float, float]]:
    """Core interval of each tile: from the middle of the overlap with the previous tile
    to the middle of the overlap with the next one (a partition of ``[0, length]``)."""
    bounds = [0.0]
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        bounds.append((b + min(a + tile, length)) / 2.0)
    bounds.append(float(length))
    return list(zip(bounds[:-1], bounds[1:], strict=True))


@dataclass(frozen=True)
class Tile:
    """One window of an image: pixel ``[y0:y1, x0:x1]`` and its core region (x, y)."""

    y0: int
    x0: int
    y1: int
    x1: int
    core: tuple[float, float, float, float] = field(default=(0.0, 0.0, 0.0, 0.0))


def tile_grid(shape: tuple[int, int], tile_size: int, overlap: int) -> list[Tile]:
    """Overlapping tiles covering an image; their core regions partition it.

    Parameters
    ----------
    shape : (int, int)
        ``(height, width)`` of the image.
    tile_size : int
        Tile side in pixels (tiles are smaller only where the image is).
    overlap : int
        Overlap between neighbouring tiles; must exceed the largest object size so that
        every object lies whole in the tile whose core holds its centre.

    Returns
    -------
    list of Tile
        ``core`` is ``(x0, y0, x1, y1)`` in image coordinates.

    Examples
    --------
    >>> [(t.x0, t.x1) for t in tile_grid((100, 250), 100, 20)]
    [(0, 100), (80, 180), (150, 250)]
    >>> [t.core[::2] for t in tile_grid((100, 250), 100, 20)]
    [(0.0, 90.0), (90.0, 165.0), (165.0, 250.0)]
    """
    h, w = (int(s) for s in shape)
    ys, xs = _starts(h, tile_size, overlap), _starts(w, tile_size, overlap)
    cy, cx = _cores(ys, tile_size, h), _cores(xs, tile_size, w)
    return [
        Tile(y0, x0, min(y0 + tile_size, h), min(x0 + tile_size, w), (c[0], r[0], c[1], r[1]))
        for y0, r in zip(ys, cy, strict=True)
        for x0, c in zip(xs, cx, strict=True)
    ]


# Selection of tiled detections (fractions of the overlap): a detection is a candidate when
# its box centre lies within the tile's core widened by ``_CORE_MARGIN * overlap`` and its
# box keeps ``_EDGE_GAP * overlap`` pixels from every tile edge that is not an image edge
# (a box touching such an edge is cut by the tile and a whole copy exists in a neighbour);
# among overlapping candidates of different tiles the one farthest from its tile's edges
# wins (`merge_tiles`).
_CORE_MARGIN = 0.5
_EDGE_GAP = 0.25


def _keep_in_core(boxes: np.ndarray, tile: Tile, margin: float) -> np.ndarray:
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 + tile.x0
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 + tile.y0
    x0, y0, x1, y1 = tile.core
    return (cx >= x0 - margin) & (cx < x1 + margin) & (cy >= y0 - margin) & (cy < y1 + margin)


def select_candidates(
    boxes: np.ndarray, tile: Tile, shape: tuple[int, int], overlap: int
) -> np.ndarray:
    """Which detections of a tile may represent their object.

    A box whose centre lies in the tile's core is a candidate; so is one whose centre lies
    within ``overlap / 2`` of the core if the box keeps ``overlap / 4`` px clear of the
    tile's inner edges (otherwise the tile cuts it, and a neighbour holds it whole).

    Parameters
    ----------
    boxes : ndarray of shape (N, 4)
        Boxes ``(x0, y0, x1, y1)`` in tile coordinates.
    tile : Tile
        The tile (from `tile_grid`).
    shape : (int, int)
        ``(height, width)`` of the whole image.
    overlap : int
        The overlap `tile_grid` was called with.

    Returns
    -------
    ndarray of bool, shape (N,)

    Examples
    --------
    >>> tile = tile_grid((100, 250), 100, 40)[1]  # x 60-160, core x 80-140
    >>> boxes = np.array([[12, 40, 32, 60], [0, 40, 16, 60]], np.float32)
    >>> select_candidates(boxes, tile, (100, 250), 40).tolist()  # the second is cut
    [True, False]
    """
    wide = _keep_in_core(boxes, tile, overlap * _CORE_MARGIN)
    if _EDGE_GAP > 0:
        wide &= edge_distance(boxes, tile, shape) >= overlap * _EDGE_GAP
    return _keep_in_core(boxes, tile, 0.0) | wide


def edge_distance(boxes: np.ndarray, tile: Tile, shape: tuple[int, int]) -> np.ndarray:
    """Distance of each box (tile coordinates) to the nearest tile edge that is not an
    image edge: larger means less likely to be cut by the tile.

    Examples
    --------
    >>> tile = tile_grid((100, 250), 100, 40)[0]  # x 0-100: only its right edge is inside
    >>> edge_distance(np.array([[10, 10, 30, 30]], np.float32), tile, (100, 250)).tolist()
    [70.0]
    """
    h, w = shape
    big = np.float32(1e9)
    d = [
        boxes[:, 0] if tile.x0 > 0 else np.full(len(boxes), big),
        boxes[:, 1] if tile.y0 > 0 else np.full(len(boxes), big),
        (tile.x1 - tile.x0) - boxes[:, 2] if tile.x1 < w else np.full(len(boxes), big),
        (tile.y1 - tile.y0) - boxes[:, 3] if tile.y1 < h else np.full(len(boxes), big),
    ]
    return np.min(np.stack(d), axis=0)


def merge_tiles(
    boxes: np.ndarray, distances: np.ndarray, labels: np.ndarray, *, iou_threshold: float = 0.5
) -> np.ndarray:
    """Indices of the tiled candidates to keep: among boxes of one label overlapping by more
    than ``iou_threshold``, the one farthest from its tile's cut edges (`edge_distance`).

    Parameters
    ----------
    boxes : ndarray of shape (N, 4)
        Candidate boxes ``(x0, y0, x1, y1)`` in image coordinates.
    distances : ndarray of shape (N,)
        Their `edge_distance` in their tile.
    labels : ndarray of shape (N,)
        Their labels (boxes of different labels never suppress each other).

    Returns
    -------
    ndarray of int, sorted

    Examples
    --------
    >>> boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    >>> merge_tiles(boxes, np.array([5.0, 30.0, 1.0]), np.zeros(3, np.int64)).tolist()
    [1, 2]
    """
    from torchvision.ops import batched_nms  # heavy: torchvision

    keep = batched_nms(
        torch.from_numpy(np.asarray(boxes, np.float32)),
        torch.from_numpy(np.asarray(distances, np.float32)),
        torch.from_numpy(np.asarray(labels, np.int64)),
        float(iou_threshold),
    ).numpy()
    return np.sort(keep)
