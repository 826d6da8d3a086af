"""Linking the planes of a stack: one id per 3-D object (Z) and per track (T), with divisions.

Z (`link_planes` with ``axes="ZYX"``): consecutive planes are matched one-to-one by mask
IoU with the Hungarian algorithm (as Cellpose's ``stitch_threshold``): an instance whose
match in the plane above has IoU >= ``stitch_threshold`` takes its id. Then the instances
left over on both sides are matched by the fraction of the smaller inside the larger
(>= ``tip_threshold``): the small sections at the top and bottom of a round object
overlap the next section well but have a low IoU with it (measured on synthetic
ellipsoids with exact per-plane instances: 3-D F1 0.85 by IoU >= 0.25 alone, almost all
lost objects being tips split off). Anything left starts a new object.

Before linking, clean-ups of imperfect (predicted) planes. Every layout: an instance that
two smaller, non-overlapping instances of its own plane lie inside is dropped (the
detector returned a touching pair once more as one; `labelassist.stacks.merges.
drop_nested`, with ``merge_threshold``). Z only: an instance that holds two instances of
a neighbouring plane is cut between them (``merge_threshold``,
`labelassist.stacks.merges`: a 2-D model returns touching nuclei in blurred planes as
one, and the merged section would chain the two 3-D objects), and 3-D objects seen in
fewer than ``min_planes`` planes are dropped (default 2: on the synthetic z-stack with
the starter, most single-plane objects were haze at the tips or fragments; every true
nucleus spanned 4 or more planes). After linking, with the clean-ups on, a 3-D object
whose sections two planes apart overlap by less than 0.7 of the smaller, where its other
sections lie on top of each other, is cut there (it slid from one nucleus onto a
neighbour at another depth: `labelassist.stacks.merges.split_drifts`), and one whose
section area falls below 0.6 of its largest sections above and below is split at that
plane (two nuclei stacked along Z, joined where the tip of one meets the tip of the next
in a blurred plane). Measured in bench/results_stacks.md.

T (``"TYX"``; ``"TZYX"`` links the 3-D objects of each frame, their overlap summed over
the planes): frame ``t`` to ``t + 1``, in this order,

1. divisions: a mother in ``t`` whose two daughters in ``t + 1`` each lie at least
   ``division_threshold`` inside it (intersection / daughter size; the mother is each
   daughter's largest overlap), are alike in size (the smaller at least 40 % of the
   larger), do not overlap each other, and together match the mother better than either
   alone (of up to 4 candidate daughters, the pair that matches it best), ends; the daughters start new tracks with it as parent. Not when a daughter
   matches a track lost in the frames before ``t`` (step 3): then two touching objects
   were seen as one in ``t`` and separate again. (On a synthetic 50-frame time-lapse with
   101 true daughter links, the starter model's predictions gave 236 daughter links by
   coverage and union alone, 74 with the three other checks; its ID switches fell from 71
   to 13. Dropping nested duplicates, trying pairs of candidates and
   ``division_threshold`` 0.4 instead of 0.5 (daughters move apart in their first frame)
   raised the correct links from 0.963 to 0.980 on that movie, 0.951 to 0.973 on another
   seed: bench/results_stacks.md.)
2. continuation: the Hungarian matching by IoU >= ``stitch_threshold``;
3. gap closing: an object still unmatched takes the id of a track last seen up to
   ``max_gap`` frames before ``t`` (missing in between) when they match by the same rule;
4. anything left starts a new track.

Ids are numbered from 1 in order of appearance.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely

from ..checks import check_int, check_number
from ..instances import Instances
from .merges import drop_nested, split_drifts, split_merges, split_waists
from .overlap import iou, match, polygon_overlaps
from .stack_instances import OBJECT_ID, STACK_LAYOUTS, StackInstances

__all__ = ["link_planes"]


# the smaller daughter of a division is at least this fraction of the larger: sisters are
# alike; a small fragment inside a cell next to its continuation is no division
_SISTERS = 0.4
# the daughters' intersections with the mother add up to at most this fraction of it: they
# are disjoint parts of it (a little more for polygons that touch)
_APART = 1.1
# candidate daughters of one mother tried in pairs (the largest intersections)
_CANDIDATES = 4


@dataclass
class _Frame:
    """The objects of one linking step: its planes' polygons and each polygon's object."""

    geoms: list[np.ndarray]  # per plane, the polygons
    owner: list[np.ndarray]  # per plane, the object index (0-based) of each polygon
    sizes: np.ndarray  # per object, area summed over the planes

    @property
    def n(self) -> int:
        return len(self.sizes)


def link_planes(
    planes: Sequence[Instances],
    *,
    axes: str = "ZYX",
    stack_shape: tuple[int, ...] | None = None,
    stitch_threshold: float = 0.25,
    tip_threshold: float | None = 0.6,
    division_threshold: float = 0.4,
    max_gap: int = 1,
    merge_threshold: float | None = 0.8,
    min_planes: int = 2,
) -> StackInstances:
    """Give the instances of a stack's planes object ids: 3-D objects, tracks, divisions.

    Parameters
    ----------
    planes : sequence of Instances
        One per plane, in C order over the stack axes, all of one ``image_shape``. An
        existing ``extra["object_id"]`` column is replaced.
    axes : str
        ``"ZYX"``, ``"TYX"``, ``"TZYX"`` or ``"YX"`` (a single plane).
    stack_shape : tuple of int, optional
        The sizes of the stack axes, e.g. ``(T, Z)``; needed for ``"TZYX"`` only
        (default ``(len(planes),)``).
    stitch_threshold : float
        The IoU, in (0, 1], at which instances of neighbouring planes or frames are the
        same object (see the module notes).
    tip_threshold : float or None
        Z only: instances of neighbouring planes left unmatched by IoU are still one
        object when this fraction, in (0, 1], of the smaller lies inside the larger (the
        small sections at an object's top and bottom). None: IoU only.
    division_threshold : float
        The fraction, in (0, 1], of each daughter that must lie inside its mother.
    max_gap : int
        Frames an object may be missing and keep its id (0: no gap closing).
    merge_threshold : float or None
        Before linking, an instance holding two smaller, non-overlapping instances of its
        own plane, each at least this fraction, in (0, 1], inside it, is dropped (a
        duplicate of the pair: `labelassist.stacks.merges.drop_nested`); Z only: one
        holding two instances of a neighbouring plane is cut between them
        (`labelassist.stacks.merges.split_merges`: two touching nuclei returned as one in
        a blurred plane). None: neither.
    min_planes : int
        Z only: 3-D objects seen in fewer planes are dropped (>= 1; 1 keeps all). A
        nucleus sampled by a z-stack spans several planes; detections in one plane alone
        are mostly out-of-focus haze (module notes). Stacks with a single plane per frame
        keep everything.

    Returns
    -------
    StackInstances
        The planes with ``extra["object_id"]``, and the divisions as ``parents``.

    Examples
    --------
    >>> import shapely
    >>> from labelassist import Instances
    >>> def plane(*boxes):
    ...     return Instances([shapely.box(*b) for b in boxes], None, None, (20, 20))
    >>> planes = [plane((0, 0, 6, 6)), plane((1, 0, 7, 6), (12, 12, 16, 16))]
    >>> [p.extra["object_id"].tolist() for p in link_planes(planes, axes="ZYX").planes]
    [[1], [1]]
    >>> stack = link_planes(planes, axes="ZYX", min_planes=1)  # keep one-plane objects
    >>> [p.extra["object_id"].tolist() for p in stack.planes]
    [[1], [1, 2]]
    """
    if axes not in STACK_LAYOUTS:
        raise ValueError(f"axes must be one of {list(STACK_LAYOUTS)}, got {axes!r}")
    planes = list(planes)
    if not planes:
        raise ValueError("planes is empty; a stack needs at least one plane")
    for k, plane in enumerate(planes):
        if not isinstance(plane, Instances):
            raise TypeError(f"planes[{k}] is {type(plane).__name__}, expected Instances")
        if plane.image_shape != planes[0].image_shape:
            raise ValueError(
                f"planes[{k}] has image_shape {plane.image_shape}, planes[0] has "
                f"{planes[0].image_shape}; a stack's planes have one size"
            )
    shape = _stack_shape(stack_shape, axes, len(planes))
    threshold = check_number(stitch_threshold, "stitch_threshold", minimum=0, maximum=1)
    if threshold == 0:
        raise ValueError("stitch_threshold must be within (0, 1], got 0")
    division = check_number(division_threshold, "division_threshold", minimum=0, maximum=1)
    if division == 0:
        raise ValueError("division_threshold must be within (0, 1], got 0")
    gap = check_int(max_gap, "max_gap", minimum=0)
    tips = check_number(tip_threshold, "tip_threshold", minimum=0, maximum=1, allow_none=True)
    if tips == 0:
        raise ValueError("tip_threshold must be within (0, 1] or None, got 0")
    merges = check_number(merge_threshold, "merge_threshold", minimum=0, maximum=1, allow_none=True)
    if merges == 0:
        raise ValueError("merge_threshold must be within (0, 1] or None, got 0")
    min_z = check_int(min_planes, "min_planes", minimum=1)
    if merges is not None:
        planes = [drop_nested(p, merges) for p in planes]
    n_z = 1 if axes in ("YX", "TYX") else shape[-1]
    if n_z > 1:  # Z: cut merged instances, link, drop objects of too few planes
        planes = _z_clean(planes, n_z, threshold, tips, merges, min_z)

    geoms = [np.asarray(p.polygons, dtype=object) for p in planes]
    parents: dict[int, int] = {}
    if "T" not in axes:  # YX or ZYX: one frame of 3-D objects
        owner, _ = _stitch(geoms, threshold, tips, merges is not None)
        ids = [o + 1 for o in owner]
    else:
        n_z = shape[1] if axes == "TZYX" else 1
        frames = []
        for t in range(shape[0]):
            z_geoms = geoms[t * n_z : (t + 1) * n_z]
            owner, n = _stitch(z_geoms, threshold, tips, merges is not None)
            frames.append(_frame(z_geoms, owner, n))
        track_ids, parents = _track(frames, threshold, division, gap)
        ids = [track_ids[t][o] for t, frame in enumerate(frames) for o in frame.owner]
    linked = [
        p.replace(extra={**p.extra, OBJECT_ID: i.astype(np.int64)})
        for p, i in zip(planes, ids, strict=True)
    ]
    return StackInstances(linked, (*shape, *planes[0].image_shape), axes, parents)


def _z_clean(
    planes: list[Instances],
    n_z: int,
    threshold: float,
    tips: float | None,
    merges: float | None,
    min_planes: int,
) -> list[Instances]:
    """The planes with merged instances cut and the instances of too-short objects dropped."""
    out: list[Instances] = []
    for start in range(0, len(planes), n_z):
        frame = planes[start : start + n_z]
        if merges is not None:
            frame = split_merges(frame, merges)
        if min_planes > 1:
            geoms = [np.asarray(p.polygons, dtype=object) for p in frame]
            owner, n = _stitch(geoms, threshold, tips, merges is not None)
            planes_of = np.zeros(n, dtype=np.int64)
            for o in owner:
                np.add.at(planes_of, np.unique(o), 1)
            frame = [p[planes_of[o] >= min_planes] for p, o in zip(frame, owner, strict=True)]
        out += frame
    return out


def _stack_shape(stack_shape: tuple[int, ...] | None, axes: str, n: int) -> tuple[int, ...]:
    dims = len(axes) - 2
    if stack_shape is None:
        if dims == 2:
            raise ValueError("axes 'TZYX' needs stack_shape=(T, Z) to split the planes")
        shape: tuple[int, ...] = (n,) if dims else ()
    else:
        try:
            shape = tuple(int(s) for s in stack_shape)
        except (TypeError, ValueError):
            raise ValueError(f"stack_shape must be a tuple of ints, got {stack_shape!r}") from None
        if len(shape) != dims:
            raise ValueError(
                f"stack_shape must have {dims} entries for axes {axes!r}, got {stack_shape!r}"
            )
    if math.prod(shape) != n:
        raise ValueError(
            f"{n} planes do not fill stack_shape {shape} ({math.prod(shape)} planes) for "
            f"axes {axes!r}"
        )
    return shape


def _stitch(
    geoms: list[np.ndarray], threshold: float, tips: float | None, waists: bool = False
) -> tuple[list[np.ndarray], int]:
    """Z linking: the object index (0-based, by appearance) of each polygon, and the count."""
    owner: list[np.ndarray] = []
    areas = [shapely.area(g).astype(np.float64) for g in geoms]
    count = 0
    for z, g in enumerate(geoms):
        ids = np.full(len(g), -1, dtype=np.int64)
        if z and len(g) and len(geoms[z - 1]):
            _join(ids, owner[z - 1], geoms[z - 1], g, areas[z - 1], areas[z], threshold, tips)
        new = np.flatnonzero(ids < 0)
        ids[new] = count + np.arange(len(new))
        count += len(new)
        owner.append(ids)
    if waists and count:
        owner, count = split_drifts(owner, geoms, count)
        owner, count = split_waists(owner, areas, count)
    return owner, count


def _join(
    ids: np.ndarray,
    prev_owner: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    size_a: np.ndarray,
    size_b: np.ndarray,
    threshold: float,
    tips: float | None,
) -> None:
    """Give sections ``b`` the objects (``prev_owner``) of sections ``a`` they continue."""
    ra, cb, inter = polygon_overlaps(a, b)
    sa, sb = size_a[ra], size_b[cb]
    r, c = match(ra, cb, iou(inter, sa, sb), threshold)
    ids[c] = prev_owner[r]
    if tips is not None:  # tip sections: mostly inside a leftover neighbour
        left = ~np.isin(ra, r) & ~np.isin(cb, c)
        inside = inter / np.minimum(sa, sb)
        r2, c2 = match(ra[left], cb[left], inside[left], tips)
        ids[c2] = prev_owner[r2]


def _frame(geoms: list[np.ndarray], owner: list[np.ndarray], n: int) -> _Frame:
    sizes = np.zeros(n, dtype=np.float64)
    for g, o in zip(geoms, owner, strict=True):
        np.add.at(sizes, o, shapely.area(g))
    return _Frame(geoms, owner, sizes)


def _frame_overlaps(a: _Frame, b: _Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Object pairs of two frames with their intersections summed over the planes."""
    rows, cols, inter = [], [], []
    for ga, oa, gb, ob in zip(a.geoms, a.owner, b.geoms, b.owner, strict=True):
        ia, ib, area = polygon_overlaps(ga, gb)
        rows.append(oa[ia])
        cols.append(ob[ib])
        inter.append(area)
    if not rows or not sum(len(r) for r in rows):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    key = np.concatenate(rows) * max(b.n, 1) + np.concatenate(cols)
    keys, inverse = np.unique(key, return_inverse=True)
    total = np.bincount(inverse, weights=np.concatenate(inter))
    return keys // max(b.n, 1), keys % max(b.n, 1), total


def _track(
    frames: list[_Frame], threshold: float, division: float, max_gap: int
) -> tuple[list[np.ndarray], dict[int, int]]:
    """T linking (module notes): the track id of each frame object, and the divisions."""
    ids: list[np.ndarray] = []
    parents: dict[int, int] = {}
    last_seen: dict[int, int] = {}
    ended: set[int] = set()  # mothers of divisions: never continued
    next_id = 1
    for t, frame in enumerate(frames):
        out = np.zeros(frame.n, dtype=np.int64)
        # tracks that ended up to max_gap frames ago: (old frame, its candidate pairs)
        lost = []
        for gap in range(1, max_gap + 1):
            if t - 1 - gap < 0 or not frame.n:
                break
            alive = np.array(
                [
                    last_seen.get(int(i)) == t - 1 - gap and int(i) not in ended
                    for i in ids[t - 1 - gap]
                ],
                dtype=bool,
            )
            if alive.any():
                old = frames[t - 1 - gap]
                r, c, inter = _frame_overlaps(old, frame)
                score = iou(inter, old.sizes[r], frame.sizes[c])
                keep = alive[r] & (score >= threshold)
                lost.append((t - 1 - gap, r[keep], c[keep], score[keep]))
        if t and frame.n and frames[t - 1].n:
            prev = frames[t - 1]
            r, c, inter = _frame_overlaps(prev, frame)
            divisions = _divisions(r, c, inter, prev.sizes, frame.sizes, division, threshold)
            # a "division" one of whose daughters continues a lost track is a merge of two
            # touching objects in t - 1 separating again: not a division
            returning = {int(x) for _, _, cols, _ in lost for x in cols}
            divisions = [d for d in divisions if not returning & set(d[1])]
            for mother, daughters in divisions:
                mother_id = int(ids[t - 1][mother])
                ended.add(mother_id)
                for d in daughters:
                    out[d] = next_id
                    parents[next_id] = mother_id
                    next_id += 1
            free = ~np.isin(r, [m for m, _ in divisions]) & (out[c] == 0)
            score = iou(inter, prev.sizes[r], frame.sizes[c])
            mr, mc = match(r[free], c[free], score[free], threshold)
            out[mc] = ids[t - 1][mr]
        for old_t, r, c, score in lost:  # gap closing, the most recent losses first
            keep = out[c] == 0
            mr, mc = match(r[keep], c[keep], score[keep], threshold)
            out[mc] = ids[old_t][mr]
        new = np.flatnonzero(out == 0)
        out[new] = next_id + np.arange(len(new))
        next_id += len(new)
        for i in out.tolist():
            last_seen[i] = t
        ids.append(out)
    return ids, parents


def _divisions(
    rows: np.ndarray,
    cols: np.ndarray,
    inter: np.ndarray,
    size_a: np.ndarray,
    size_b: np.ndarray,
    threshold: float,
    link_threshold: float,
) -> list[tuple[int, tuple[int, int]]]:
    """(mother, (daughter, daughter)) of each division between two frames (module notes)."""
    found: list[tuple[int, tuple[int, int]]] = []
    if len(rows) < 2:
        return found
    # each daughter's best mother: the largest intersection in its column
    order = np.lexsort((-inter, cols))
    first = np.ones(len(order), dtype=bool)
    first[1:] = cols[order][1:] != cols[order][:-1]
    best = order[first]
    cover = inter[best] / size_b[cols[best]]
    cand = best[cover >= threshold]
    for mother in np.unique(rows[cand]).tolist():
        edges = cand[rows[cand] == mother]
        # the best pair of candidate daughters (several when the detector also returned
        # the pair once more as one overlapping instance)
        edges = edges[np.argsort(-inter[edges], kind="stable")[:_CANDIDATES]]
        pick: tuple[float, int, int] | None = None
        for e1, e2 in itertools.combinations(edges.tolist(), 2):
            d1, d2 = int(cols[e1]), int(cols[e2])
            i1, i2 = float(inter[e1]), float(inter[e2])
            union = (i1 + i2) / (size_a[mother] + size_b[d1] + size_b[d2] - i1 - i2)
            alone = max(
                i1 / (size_a[mother] + size_b[d1] - i1), i2 / (size_a[mother] + size_b[d2] - i2)
            )
            sisters = min(size_b[d1], size_b[d2]) / max(size_b[d1], size_b[d2])
            apart = i1 + i2 <= _APART * size_a[mother]  # overlapping "daughters": duplicates
            good = union > alone and union >= link_threshold and sisters >= _SISTERS and apart
            if good and (pick is None or union > pick[0]):
                pick = (union, d1, d2)
        if pick is not None:
            found.append((mother, (pick[1], pick[2])))
    return found
