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

__all__ = ["GALLERY", "HOLE_FREE", "connected_shapes", "gallery_mask", "gallery_label_image"]


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


def connected_shapes(n: int, *, diagonal: bool = False) -> list[np.ndarray]:
    """Every connected shape of ``n`` pixels, as tight (h, w) bool masks.

    Shapes are distinct up to translation (rotations and mirror images are separate
    shapes, as they meet the image border differently): 1, 2, 6, 19 shapes of 1-4 pixels
    with 4-connectivity, 1, 4, 20, 110 with ``diagonal`` (8-connectivity). Grown pixel by
    pixel from the one-pixel shape, each shape normalised to its top-left corner.
    """
    steps = [(1, 0), (-1, 0), (0, 1), (0, -1)]
    if diagonal:
        steps += [(1, 1), (1, -1), (-1, 1), (-1, -1)]
    shapes = {frozenset([(0, 0)])}
    for _ in range(n - 1):
        grown = set()
        for shape in shapes:
            for r, c in shape:
                for dr, dc in steps:
                    if (r + dr, c + dc) in shape:
                        continue
                    cells = shape | {(r + dr, c + dc)}
                    r0 = min(a for a, _ in cells)
                    c0 = min(b for _, b in cells)
                    grown.add(frozenset((a - r0, b - c0) for a, b in cells))
        shapes = grown
    masks = []
    for shape in sorted(shapes, key=sorted):
        mask = np.zeros((max(a for a, _ in shape) + 1, max(b for _, b in shape) + 1), bool)
        for a, b in shape:
            mask[a, b] = True
        masks.append(mask)
    return masks


# -- COCO conversion items ------------------------------------------------------------------
def mixed_geometries() -> list:
    """A donut, two parts, an empty polygon, one outside a small image, one with fractional
    corners and a sliver between pixel centres (skipped as empty by COCO conversion)."""
    donut = box(2, 2, 12, 12).difference(box(5, 5, 8, 8))
    two = MultiPolygon([box(0.5, 0.5, 3, 4), box(20, 20, 22.5, 23)])
    return [donut, two, Polygon(), box(90, 90, 95, 95), box(1.25, 3, 7.75, 9),
            box(4.1, 4.1, 4.2, 4.2)]  # fmt: skip


def mixed_coco_items(n_images: int, shape: tuple[int, int] = (24, 30)) -> list[tuple]:
    """``(record, Instances | None)`` items for COCO writing: images of ``shape`` and
    (16, 40), `mixed_geometries` in varying subsets, crowd flags, empty `Instances` (every
    5th image) and images without annotations (``None``, every 7th)."""
    from labelassist.instances import Instances

    geoms = mixed_geometries()
    items = []
    for k in range(1, n_images + 1):
        size = shape if k % 2 else (16, 40)
        pick = [g for j, g in enumerate(geoms) if (j + k) % 3 != 0]
        crowd = np.arange(len(pick)) % 4 == k % 4
        inst = Instances(pick, np.arange(len(pick)) % 2, np.linspace(0.1, 1, len(pick)), size,
                         extra={"iscrowd": crowd})  # fmt: skip
        if k % 5 == 0:
            inst = Instances.empty(size, extra_keys=("iscrowd",))
        record = {"id": k, "file_name": f"img/{k}.png", "height": size[0], "width": size[1]}
        items.append((record, None if k % 7 == 0 else inst))
    return items
