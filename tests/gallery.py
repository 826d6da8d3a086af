"""A gallery of tiny named shapes, as masks and as the exact pixel-edge polygons.

Each entry is ``name -> (mask, polygon)``: ``mask`` an (H, W) bool array, ``polygon`` the
geometry its pixels cover in COCO pixel coordinates ``(x, y)`` (pixel (row i, col j) covers
``[j, j+1] x [i, i+1]``), written by hand, not computed. Other test files import it::

    from gallery import GALLERY, gallery_mask
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely import MultiPolygon, Polygon, box

__all__ = ["GALLERY", "HOLE_FREE", "gallery_mask", "gallery_label_image"]


def _mask(rows: list[str]) -> np.ndarray:
    """A mask from strings: ``#`` is foreground, ``.`` background."""
    return np.array([[c == "#" for c in row] for row in rows], dtype=bool)


def _with_holes(outer: Polygon, *holes: Polygon) -> Polygon:
    return Polygon(outer.exterior.coords, [h.exterior.coords for h in holes])


GALLERY: dict[str, tuple[np.ndarray, Polygon | MultiPolygon]] = {
    "one_pixel": (
        _mask(
            [
                ".....",
                ".....",
                "...#.",
                ".....",
            ]
        ),
        box(3, 2, 4, 3),
    ),
    "square": (
        _mask(
            [
                ".....",
                ".###.",
                ".###.",
                ".###.",
                ".....",
            ]
        ),
        box(1, 1, 4, 4),
    ),
    "l_shape": (
        _mask(
            [
                "#...",
                "#...",
                "###.",
            ]
        ),
        Polygon([(0, 0), (1, 0), (1, 2), (3, 2), (3, 3), (0, 3)]),
    ),
    "donut": (
        _mask(
            [
                ".....",
                ".###.",
                ".#.#.",
                ".###.",
                ".....",
            ]
        ),
        _with_holes(box(1, 1, 4, 4), box(2, 2, 3, 3)),
    ),
    "bowtie": (
        _mask(
            [
                "##..",
                "##..",
                "..##",
                "..##",
            ]
        ),
        MultiPolygon([box(0, 0, 2, 2), box(2, 2, 4, 4)]),
    ),
    "two_blobs": (
        _mask(
            [
                "##...",
                "##...",
                ".....",
                "...##",
            ]
        ),
        MultiPolygon([box(0, 0, 2, 2), box(3, 3, 5, 4)]),
    ),
    "border": (
        _mask(
            [
                "###.",
                "###.",
                "....",
            ]
        ),
        box(0, 0, 3, 2),
    ),
    "full": (
        _mask(
            [
                "###",
                "###",
            ]
        ),
        box(0, 0, 3, 2),
    ),
    "empty": (np.zeros((3, 4), dtype=bool), Polygon()),
    "island_in_hole": (
        _mask(
            [
                "#####",
                "#...#",
                "#.#.#",
                "#...#",
                "#####",
            ]
        ),
        MultiPolygon([_with_holes(box(0, 0, 5, 5), box(1, 1, 4, 4)), box(2, 2, 3, 3)]),
    ),
    # the hole at (1, 1) touches the outside at the corner point (2, 2)
    "hole_touching_shell": (
        _mask(
            [
                "###",
                "#.#",
                "##.",
            ]
        ),
        Polygon(
            [(0, 0), (3, 0), (3, 2), (2, 2), (2, 3), (0, 3)],
            [[(1, 1), (2, 1), (2, 2), (1, 2)]],
        ),
    ),
    # two holes touching each other at the corner point (2, 2)
    "touching_holes": (
        _mask(
            [
                "####",
                "#.##",
                "##.#",
                "####",
            ]
        ),
        _with_holes(box(0, 0, 4, 4), box(1, 1, 2, 2), box(2, 2, 3, 3)),
    ),
}

HOLE_FREE = [
    name
    for name, (_, poly) in GALLERY.items()
    if all(len(p.interiors) == 0 for p in shapely.get_parts(poly))
]
"""Names whose polygons have no holes (expressible as COCO polygons)."""


def gallery_mask(name: str) -> np.ndarray:
    """A copy of the gallery mask ``name``, (H, W) bool."""
    return GALLERY[name][0].copy()


def gallery_label_image() -> tuple[np.ndarray, list[Polygon | MultiPolygon]]:
    """A (7, 12) uint16 label image with gapped ids 3, 10, 500 and its exact polygons."""
    labels = np.zeros((7, 12), dtype=np.uint16)
    labels[1:4, 1:4] = 500  # 3x3 square
    labels[2, 2] = 0  # ... with a hole
    labels[0:2, 6:12] = 3  # touches the top and right borders
    labels[2:7, 6:8] = 10  # touches id 3 and the bottom border
    expected = [
        box(6, 0, 12, 2),
        box(6, 2, 8, 7),
        _with_holes(box(1, 1, 4, 4), box(2, 2, 3, 3)),
    ]
    return labels, expected
