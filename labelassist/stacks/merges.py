"""Clean-ups of imperfect planes before and after linking: merged, nested and stacked instances.

A 2-D model looking at an out-of-focus plane of a z-stack often returns two touching
nuclei as one instance. Linked as it is, that instance joins the two 3-D objects into
one (and chains more through further merges). The planes next to it usually show the two
nuclei apart: an instance of plane ``z`` is cut when two or more instances of plane
``z - 1`` or ``z + 1`` (the parts) each lie at least ``fraction`` inside it, each cover at
least `PART` of it, and do not overlap each other (their areas add up to at most `APART`
times the area of their union). Its pixels go to the nearest part centroid (a Voronoi cut), and
each piece becomes an instance with the merged one's label and score, traced as exact
pixel outlines (`labelassist.geometry.masks_to_polygons`).

After linking, `split_drifts` splits 3-D objects whose sections slide sideways from one
nucleus onto its neighbour (two nuclei side by side at different depths, chained through
the planes where both show), and `split_waists` those whose section area dips between two
peaks (two nuclei stacked along Z, joined tip to tip).

Measured on synthetic z-stacks with the starter model: see bench/results_stacks.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely

from ..geometry import masks_to_polygons, polygons_to_masks
from ..instances import Instances
from .overlap import polygon_overlaps

__all__ = [
    "APART",
    "DRIFT",
    "MIN_PART_PLANES",
    "PART",
    "WAIST",
    "drop_nested",
    "split_drifts",
    "split_merges",
    "split_waists",
]

#: A part covers at least this fraction of the instance it cuts (tips and noise do not cut).
PART = 0.2
#: Z: a 3-D object whose section area falls below this fraction of its largest sections
#: above and below is two nuclei stacked along Z, split below the narrowest plane.
WAIST = 0.6
#: Z: sections two planes apart of one object overlap by at least this fraction of the
#: smaller; below it the object slid sideways onto a neighbour and is split (`split_drifts`;
#: 0.5-0.8 measured in bench/results_stacks.md).
DRIFT = 0.7
#: Z: `split_drifts` cuts only objects whose sections otherwise stack up: the median
#: overlap of their sections two planes apart is at least this.
STACKED = 0.9
#: Z: `split_drifts` leaves at least this many planes in each part.
MIN_PART_PLANES = 2
#: The parts' areas add up to at most this multiple of their union's area (they are apart).
APART = 1.1


def split_merges(planes: Sequence[Instances], fraction: float = 0.6) -> list[Instances]:
    """Cut the instances of a z-stack's planes that hold two sections of a neighbouring plane.

    Parameters
    ----------
    planes : sequence of Instances
        The planes of one z-stack (or one frame of a ``TZYX`` stack), in Z order.
    fraction : float
        The fraction, in (0, 1], of each part that lies inside the instance it cuts.

    Returns
    -------
    list of Instances
        The planes, each merged instance replaced by its pieces (other instances as they
        were, in their order; the pieces where the merged instance was).

    Examples
    --------
    >>> import shapely
    >>> def plane(*boxes):
    ...     return Instances([shapely.box(*b) for b in boxes], None, None, (20, 20))
    >>> cut = split_merges([plane((0, 0, 6, 6), (6, 0, 12, 6)), plane((0, 0, 12, 6))])
    >>> [len(p) for p in cut], sorted(cut[1].areas.tolist())
    ([2, 2], [36.0, 36.0])
    """
    planes = list(planes)
    geoms = [np.asarray(p.polygons, dtype=object) for p in planes]
    areas = [shapely.area(g).astype(np.float64) for g in geoms]
    # the overlaps of each pair of neighbouring planes, measured once for both directions
    pairs = [polygon_overlaps(geoms[z], geoms[z + 1]) for z in range(len(planes) - 1)]
    out = []
    for z, plane in enumerate(planes):
        cuts: dict[int, np.ndarray] = {}
        for nz in (z - 1, z + 1):
            if not 0 <= nz < len(planes) or not len(geoms[z]) or not len(geoms[nz]):
                continue
            if nz > z:
                rows, cols, inter = pairs[z]
            else:
                cols, rows, inter = pairs[nz]
            ok = (inter >= fraction * areas[nz][cols]) & (areas[nz][cols] >= PART * areas[z][rows])
            for m in np.unique(rows[ok]).tolist():
                parts = ok & (rows == m)
                if parts.sum() < 2:
                    continue
                total = areas[nz][cols[parts]].sum()
                if total > APART * shapely.area(shapely.union_all(geoms[nz][cols[parts]])):
                    continue  # overlapping parts: duplicates of one section, not two
                if len(cuts.get(m, ())) < parts.sum():
                    centres = shapely.centroid(geoms[nz][cols[parts]])
                    cuts[m] = shapely.get_coordinates(centres)
        out.append(_cut(plane, cuts) if cuts else plane)
    return out


def drop_nested(plane: Instances, fraction: float = 0.8) -> Instances:
    """Drop the instances of a plane that hold two other instances of the same plane.

    A detector sometimes returns two touching objects both apart and once more as one
    instance covering both (non-maximum suppression keeps it: its IoU with each is low).
    An instance is dropped when two or more smaller instances of its plane each lie at
    least ``fraction`` inside it, each cover at least `PART` of it and do not overlap
    each other (their areas add up to at most `APART` times their union's area).

    Examples
    --------
    >>> import shapely
    >>> both = Instances(
    ...     [shapely.box(0, 0, 6, 6), shapely.box(6, 0, 12, 6), shapely.box(0, 0, 12, 6)],
    ...     None, None, (20, 20),
    ... )
    >>> drop_nested(both).areas.tolist()
    [36.0, 36.0]
    """
    geoms = np.asarray(plane.polygons, dtype=object)
    if len(geoms) < 3:
        return plane
    areas = shapely.area(geoms).astype(np.float64)
    rows, cols, inter = polygon_overlaps(geoms, geoms)
    ok = (
        (rows != cols)
        & (areas[cols] < areas[rows])
        & (inter >= fraction * areas[cols])
        & (areas[cols] >= PART * areas[rows])
    )
    drop = np.zeros(len(geoms), dtype=bool)
    for m in np.unique(rows[ok]).tolist():
        parts = cols[ok & (rows == m)]
        if len(parts) >= 2 and areas[parts].sum() <= APART * shapely.area(
            shapely.union_all(geoms[parts])
        ):
            drop[m] = True
    return plane[~drop] if drop.any() else plane


def _cut(plane: Instances, cuts: dict[int, np.ndarray]) -> Instances:
    """The plane with instance ``m`` replaced by its pieces nearest each of ``cuts[m]``."""
    index: list[int] = []
    polygons: list[shapely.Geometry] = []
    for k, geom in enumerate(plane.polygons):
        pieces = _pieces(geom, cuts[k], plane.image_shape) if k in cuts else [geom]
        index += [k] * len(pieces)
        polygons += pieces
    return plane[np.array(index, dtype=np.intp)].replace(polygons=polygons)


def _pieces(
    geom: shapely.Geometry, centres: np.ndarray, shape: tuple[int, int]
) -> list[shapely.Geometry]:
    """The pixels of ``geom`` split by the nearest of ``centres`` (x, y), as exact outlines."""
    h, w = shape
    x0, y0, x1, y1 = shapely.bounds(geom)
    c0, r0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
    c1, r1 = min(int(np.ceil(x1)), w), min(int(np.ceil(y1)), h)
    if c1 <= c0 or r1 <= r0:
        return [geom]
    local = shapely.affinity.translate(geom, -c0, -r0)
    mask = polygons_to_masks([local], (r1 - r0, c1 - c0))[0]
    rr, cc = np.nonzero(mask)
    xy = np.stack([cc + c0 + 0.5, rr + r0 + 0.5], axis=1)
    nearest = np.argmin(((xy[:, None, :] - centres[None, :, :]) ** 2).sum(-1), axis=1)
    label = np.zeros(mask.shape, dtype=np.int32)
    label[rr, cc] = nearest + 1
    pieces = [
        p
        for p in masks_to_polygons(label, tolerance=0.0, offset=(c0, r0))
        if p is not None and not p.is_empty
    ]
    return pieces or [geom]


def split_waists(
    owner: list[np.ndarray], areas: list[np.ndarray], count: int
) -> tuple[list[np.ndarray], int]:
    """Z: objects whose section area dips below `WAIST` of the peaks on both sides split there.

    ``owner[z]`` holds the object index (0-based) of each instance of plane ``z`` and
    ``areas[z]`` its area; returns the new ``owner`` (renumbered by appearance) and the
    object count. Used by `labelassist.stacks.link_planes` after linking.

    Examples
    --------
    >>> areas = [np.array([100.0]), np.array([4.0]), np.array([100.0])]
    >>> owner, n = split_waists([np.array([0])] * 3, areas, 1)
    >>> [o.tolist() for o in owner], n
    ([[0], [0], [1]], 2)
    """
    n_z = len(owner)
    profile = np.zeros((count, n_z))  # each object's area per plane
    for z, (o, a) in enumerate(zip(owner, areas, strict=True)):
        np.add.at(profile[:, z], o, a)
    owner = [o.copy() for o in owner]
    for obj in range(count):
        zs = np.flatnonzero(profile[obj] > 0)
        current = obj
        while len(zs) >= 3:
            a = profile[obj, zs]
            before = np.maximum.accumulate(a)[:-2]
            after = np.maximum.accumulate(a[::-1])[::-1][2:]
            depth = a[1:-1] / (WAIST * np.minimum(before, after))
            k = int(np.argmin(depth))
            if depth[k] >= 1:
                break
            cut = zs[k + 2 :]  # the planes below the waist: a new object
            for z in cut:
                owner[z][owner[z] == current] = count
            current, count = count, count + 1
            zs = cut
    # renumber by appearance
    flat = np.concatenate(owner)
    uniq, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(uniq))
    ends = np.cumsum([len(o) for o in owner])[:-1]
    return list(np.split(rank[inverse], ends)), len(uniq)


def split_drifts(
    owner: list[np.ndarray], geoms: list[np.ndarray], count: int, fraction: float = DRIFT
) -> tuple[list[np.ndarray], int]:
    """Z: objects whose sections two planes apart barely overlap are split where they drift.

    ``owner[z]`` holds the object index (0-based) of each polygon ``geoms[z]`` (at most
    one per object and plane, as `labelassist.stacks.link_planes` links them); returns
    the new ``owner`` (the lower parts of split objects as new indices from ``count``)
    and the new count. A nucleus's sections lie on top of each other: the smaller of
    the sections of planes ``k`` and ``k + 2`` lies almost wholly inside the larger. When
    an object's sections do so (the median of that overlap over its planes is at least
    `STACKED`) except at some planes where it falls below ``fraction``, the linking slid
    sideways from one nucleus onto a neighbour there (through a section holding a little
    of both). The object is cut once per run of such planes, between the two planes of
    the run that overlap least.
    Cuts leaving a part of fewer than `MIN_PART_PLANES` planes are not made. A nucleus
    tilted out of the plane drifts at every plane: its median stays low, it is not cut.

    Examples
    --------
    >>> import shapely
    >>> left, right = shapely.box(0, 0, 8, 8), shapely.box(8, 0, 16, 8)
    >>> slide = [left] * 5 + [shapely.box(3, 0, 11, 8), shapely.box(5, 0, 13, 8)] + [right] * 5
    >>> owner, n = split_drifts([np.array([0])] * 12, [np.array([g]) for g in slide], 1)
    >>> [int(o[0]) for o in owner], n
    ([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1], 2)
    """
    n_z = len(owner)
    where = np.full((count, n_z), -1, dtype=np.int64)  # the polygon of each object per plane
    for z, o in enumerate(owner):
        where[o, z] = np.arange(len(o))
    owner = [o.copy() for o in owner]
    for obj in range(count):
        zs = np.flatnonzero(where[obj] >= 0)
        if len(zs) < 2 * MIN_PART_PLANES:
            continue
        sections = np.array([geoms[z][where[obj, z]] for z in zs], dtype=object)
        two = _inside(sections[:-2], sections[2:])  # planes k and k + 2
        if two.min() >= fraction or np.median(two) < STACKED:
            continue
        one = _inside(sections[:-1], sections[1:])  # planes k and k + 1
        current, last = obj, 0
        for cut in _drift_cuts(np.flatnonzero(two < fraction), one):
            if cut - last < MIN_PART_PLANES or len(zs) - cut < MIN_PART_PLANES:
                continue
            for z in zs[cut:]:
                owner[z][owner[z] == current] = count
            current, count, last = count, count + 1, cut
    return owner, count


def _drift_cuts(bad: np.ndarray, one: np.ndarray) -> list[int]:
    """The first plane (position in the object) of each new part: one per run of
    consecutive pairs ``(k, k + 2)`` in ``bad``, at the weakest link ``one[c - 1]`` (the
    overlap of planes ``c - 1`` and ``c``) among the planes the run spans."""
    cuts: list[int] = []
    runs = np.split(bad, np.flatnonzero(np.diff(bad) > 1) + 1) if len(bad) else []
    for run in runs:
        first, last = int(run[0]) + 1, int(run[-1]) + 2  # the cut lies in [first, last]
        cuts.append(first + int(np.argmin(one[first - 1 : last])))
    return cuts


def _inside(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pair, the intersection area over the smaller area (0 for empty polygons)."""
    inter = shapely.area(shapely.intersection(a, b))
    smaller = np.minimum(shapely.area(a), shapely.area(b))
    return np.divide(inter, smaller, out=np.zeros(len(a)), where=smaller > 0)
