"""Placing objects in a label image: apart, touching, or partly hidden, one owner per pixel.

Objects are placed one after another. A new object either lands at a random spot (then it
must keep a gap to the others, except for nuclei) or against an earlier one (``touching``);
where it would cover pixels of earlier objects, only its visible part is kept, and it is
rejected when more than ``overlap`` of it would be hidden or the visible part would wrap
around another object. Each label image holds ids ``1..N`` without gaps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi

from .params import _object_size
from .shapes import (
    _CROSS,
    _Blob,
    _blob,
    _daughter,
    _Drawn,
    _largest_component,
    _rasterize_blob,
    _sized_blob,
)

logger = logging.getLogger(__name__)

_MIN_PIXELS = 12  # smaller visible remnants (e.g. cut by the border) are dropped
_MAX_FAILURES = 200  # consecutive failed placements: the image is full


def _touching_center(
    rng: np.random.Generator, centers: list[tuple[float, float, float]], r: float
) -> tuple[float, float]:
    """A centre against a random earlier object (distance 70-95 % of the summed radii)."""
    cx, cy, cr = centers[rng.integers(len(centers))]
    phi = rng.uniform(0, 2 * np.pi)
    dist = (cr + r) * rng.uniform(0.7, 0.95)
    return cx + dist * np.cos(phi), cy + dist * np.sin(phi)


def _visible_part(
    drawn: _Drawn, labels: np.ndarray, *, overlap: float, min_pixels: int, opening: bool = True
) -> np.ndarray | None:
    """The part of a new object not hidden by earlier ones (bool, in its box), or None.

    None when the object is too small, more than ``overlap`` of it is hidden, or its visible
    part would wrap around another object. One-pixel slivers are opened away, and only the
    largest 4-connected piece is kept. ``opening=False`` keeps thin objects (two pixels wide)
    that an opening would erase.
    """
    mask, box, clipped = drawn
    # openings remove one-pixel slivers (thin lobes, cuts by the border or neighbours)
    mask = ndi.binary_opening(mask, _CROSS) if opening else mask
    occupied = labels[box] != 0
    total, hidden = np.count_nonzero(mask), np.count_nonzero(mask & occupied)
    if total < min_pixels or hidden > overlap * total:
        return None
    if hidden or clipped:
        free = mask & ~occupied
        free = _largest_component(ndi.binary_opening(free, _CROSS) if opening else free)
        if np.count_nonzero(free) < max(min_pixels, (1 - overlap) * total):
            return None
        if hidden and not np.array_equal(ndi.binary_fill_holes(free), free):
            return None  # would wrap around another object
        return free
    return _largest_component(mask)


def _touches(mask: np.ndarray, box: tuple[slice, slice], labels: np.ndarray) -> bool:
    """Whether ``mask`` (in ``box``) covers or 4-touches a labelled pixel."""
    rows, cols = box
    r0, r1 = max(rows.start - 1, 0), min(rows.stop + 1, labels.shape[0])
    c0, c1 = max(cols.start - 1, 0), min(cols.stop + 1, labels.shape[1])
    grown = np.zeros((r1 - r0, c1 - c0), dtype=bool)
    grown[rows.start - r0 : rows.stop - r0, cols.start - c0 : cols.stop - c0] = mask
    grown = ndi.binary_dilation(grown, _CROSS)
    return bool(np.any(grown & (labels[r0:r1, c0:c1] != 0)))


def _place(
    rng: np.random.Generator,
    shape: tuple[int, int],
    n_target: int,
    draw: Callable[
        [np.random.Generator], tuple[float, Callable[[tuple[float, float]], _Drawn | None]]
    ],
    *,
    touching: float,
    overlap: float,
    min_pixels: int,
    blocked: np.ndarray | None = None,
    opening: bool = True,
    what: str = "objects",
) -> tuple[np.ndarray, list[tuple[float, float, float]]]:
    """Place up to ``n_target`` objects: label image (int32) and their (x, y, radius).

    ``draw(rng)`` gives an object's radius and a function rasterising it at a centre. With
    probability ``touching`` an object goes against an earlier one (then up to ``overlap``
    of it may hide behind its neighbours); otherwise at a random spot with a gap of at least
    one pixel to every other object. No object covers a ``blocked`` pixel.
    """
    labels = np.zeros(shape, dtype=np.int32)
    centers: list[tuple[float, float, float]] = []
    failures = 0
    while len(centers) < n_target and failures < _MAX_FAILURES:
        failures += 1
        r, raster = draw(rng)
        near = bool(centers) and rng.random() < touching
        if near:
            center = _touching_center(rng, centers, r)
        else:
            center = (rng.uniform(0, shape[1]), rng.uniform(0, shape[0]))
        drawn = raster(center)
        if drawn is None:
            continue
        mask, box, _ = drawn
        if blocked is not None and np.any(mask & blocked[box]):
            continue
        if not near and _touches(mask, box, labels):
            continue
        free = _visible_part(
            drawn, labels, overlap=overlap if near else 0.0, min_pixels=min_pixels, opening=opening
        )
        if free is None:
            continue
        labels[box][free] = len(centers) + 1
        centers.append((center[0], center[1], r))
        failures = 0
    if len(centers) < n_target:
        logger.warning(
            "placed %d of %d %s in a %s image; lower n or size, or raise overlap",
            len(centers), n_target, what, shape,
        )  # fmt: skip
    return labels, centers


def _nuclei_inside(
    rng: np.random.Generator, cells: np.ndarray, *, scale: tuple[float, float]
) -> np.ndarray:
    """One nucleus inside each cell, at least 2 pixels from its outline (int32, cell ids).

    A nucleus is a blob of ``scale`` times the cell's equivalent diameter, near the cell's
    centre of mass; cells too small to hold one get none.
    """
    nuclei = np.zeros_like(cells)
    for k, box in enumerate(ndi.find_objects(cells), start=1):
        if box is None:
            continue
        inside = ndi.binary_erosion(cells[box] == k, _CROSS, iterations=2)
        if np.count_nonzero(inside) < 4:
            continue
        cy, cx = ndi.center_of_mass(inside)
        diameter = 2 * np.sqrt(np.count_nonzero(cells[box] == k) / np.pi) * rng.uniform(*scale)
        blob = _sized_blob(rng, diameter, rng.uniform(1.0, 1.6), 0.15, modes=4)
        shift, phi = rng.uniform(0, 0.15) * diameter, rng.uniform(0, 2 * np.pi)
        center = (
            box[1].start + cx + 0.5 + shift * np.cos(phi),
            box[0].start + cy + 0.5 + shift * np.sin(phi),
        )
        drawn = _rasterize_blob(center, blob, cells.shape)
        if drawn is None:
            continue
        mask, (rows, cols), _ = drawn
        local = np.zeros(inside.shape, dtype=bool)
        r0, r1 = max(rows.start, box[0].start), min(rows.stop, box[0].stop)
        c0, c1 = max(cols.start, box[1].start), min(cols.stop, box[1].stop)
        if r0 < r1 and c0 < c1:
            local[r0 - box[0].start : r1 - box[0].start, c0 - box[1].start : c1 - box[1].start] = (
                mask[r0 - rows.start : r1 - rows.start, c0 - cols.start : c1 - cols.start]
            )
        nucleus = _largest_component(local & inside)
        if np.count_nonzero(nucleus) >= 4:
            nuclei[box][nucleus] = k
    return nuclei


def _blobs(
    shape: tuple[int, int],
    typical: float,
    size: tuple[float, float],
    *,
    elongation: tuple[float, float],
    irregularity: float,
) -> Callable[[np.random.Generator], tuple[float, Callable[[tuple[float, float]], _Drawn | None]]]:
    """A `_place` drawer of blobs of about ``typical`` diameter (within ``size``)."""

    def draw(
        rng: np.random.Generator,
    ) -> tuple[float, Callable[[tuple[float, float]], _Drawn | None]]:
        diameter = _object_size(rng, typical, size)
        blob = _sized_blob(rng, diameter, rng.uniform(*elongation), irregularity)
        return diameter / 2, lambda center: _rasterize_blob(center, blob, shape)

    return draw


def _min_pixels(size: float) -> int:
    """The smallest visible part kept of an object of diameter ``size``: 4 to 12 pixels."""
    return int(np.clip(0.25 * np.pi * (size / 2) ** 2, 4, _MIN_PIXELS))


def _place_nuclei(rng, shape, n_target, *, radius, irregularity, elongation, touching,
                  overlap, dividing):  # fmt: skip
    """Label image (int32, 0 = background) and per-nucleus (is_dividing) flags."""
    labels = np.zeros(shape, dtype=np.int32)
    centers: list[tuple[float, float, float]] = []  # (x, y, radius)
    dividing_flags: list[bool] = []
    failures = 0  # consecutive failed placements: the image is full
    # (center, blob) of the second daughter of a just placed dividing cell
    sibling: tuple[tuple[float, float], _Blob] | None = None
    while len(centers) < n_target and failures < _MAX_FAILURES:
        failures += 1
        is_sibling = sibling is not None
        if sibling is not None:
            (center, blob), sibling, is_dividing = sibling, None, True
            r = blob[0]
        else:
            is_dividing = rng.random() < dividing
            r = rng.uniform(*radius)
            if is_dividing:  # a condensed, elongated, bright bar
                r, elong = r * rng.uniform(0.35, 0.55), rng.uniform(1.5, 3.0)
            else:
                elong = rng.uniform(*elongation)
            blob = _blob(rng, r, elong, min(irregularity, 0.3) if is_dividing else irregularity)
            if centers and rng.random() < touching:
                center = _touching_center(rng, centers, r)
            else:
                center = (rng.uniform(0, shape[1]), rng.uniform(0, shape[0]))
        drawn = _rasterize_blob(center, blob, shape)
        if drawn is None:
            continue
        free = _visible_part(drawn, labels, overlap=overlap, min_pixels=_MIN_PIXELS)
        if free is None:
            continue
        labels[drawn[1]][free] = len(centers) + 1
        centers.append((center[0], center[1], r))
        failures = 0
        dividing_flags.append(is_dividing)
        if is_dividing and not is_sibling and rng.random() < 0.5 and len(centers) < n_target:
            sibling = (_daughter(rng, center, blob), blob)  # anaphase: two parallel bars
    if len(centers) < n_target:
        logger.warning(
            "placed %d of %d nuclei in a %s image; lower n or radius, or raise overlap",
            len(centers), n_target, shape,
        )  # fmt: skip
    return labels, np.array(dividing_flags, dtype=bool)
