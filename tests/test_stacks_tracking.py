"""CTC tracking measures (AOGM, TRA, DET) and the Z clean-ups of linking (merge cuts, min_planes)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from labelassist import Instances
from labelassist.stacks import StackInstances, link_planes
from labelassist.stacks.merges import split_merges
from labelassist.stacks.tracking_metrics import TRA_WEIGHTS, tracking_scores
from labelassist.synthetic_stacks import synthetic_timelapse, synthetic_zstack

SHAPE = (20, 20)


def plane(*boxes):
    return Instances([shapely.box(*b) for b in boxes], None, None, SHAPE)


def ids(stack):
    return [p.extra["object_id"].tolist() for p in stack.planes]


def movie(*frames, parents=None):
    """A TYX StackInstances from per-frame dicts {id: (r0, r1, c0, c1)}."""
    volume = np.zeros((len(frames), 12, 12), np.uint32)
    for t, frame in enumerate(frames):
        for oid, (r0, r1, c0, c1) in frame.items():
            volume[t, r0:r1, c0:c1] = oid
    return StackInstances.from_labels(volume, "TYX", parents=parents or {})


A, B, C = (0, 4, 0, 4), (0, 4, 6, 10), (6, 10, 0, 4)


# -- AOGM counts on hand-built graphs ----------------------------------------------------
def test_perfect_tracking_scores_one():
    truth = movie({1: A}, {1: A, 2: B}, {3: A, 4: C}, parents={3: 1, 4: 1})
    s = tracking_scores(truth, truth)
    assert (s.NS, s.FN, s.FP, s.ED, s.EA, s.EC) == (0, 0, 0, 0, 0, 0)
    # nodes: 1 + 2 + 2; edges: 1->1, 1->3, 1->4 (parent links)
    assert (s.nodes, s.edges, s.tra, s.det) == (5, 3, 1.0, 1.0)


def test_each_operation_is_counted_with_the_ctc_weights():
    truth = movie({1: A, 2: B}, {1: A, 2: B}, {1: A, 2: B})
    # frame 0: object 2 missed (FN) and a false object 7 at C (FP); frame 1: 1 and 2
    # merged into one region covering both (NS); frame 2: object 2 gets a new id 9
    merged = (0, 4, 0, 10)
    computed = movie({1: A, 7: C}, {1: merged}, {1: A, 9: B})
    s = tracking_scores(computed, truth)
    assert (s.NS, s.FN, s.FP) == (1, 1, 1)
    # true edges: 1:0->1, 1:1->2, 2:0->1, 2:1->2. The split node (frame 1) takes none of
    # them, so all four are missing; the computed edges touch the split node: none redundant
    assert (s.EA, s.ED, s.EC) == (4, 0, 0)
    aogm = 5 * 1 + 10 * 1 + 1 * 1 + 1.5 * 4
    assert s.aogm == aogm and s.aogm_0 == 10 * 6 + 1.5 * 4
    assert s.tra == pytest.approx(1 - aogm / s.aogm_0)
    assert s.det == pytest.approx(1 - (5 + 10 + 1) / 60)


def test_wrong_links_and_wrong_semantics():
    truth = movie({1: A}, {2: A, 3: C}, parents={2: 1, 3: 1})  # a division
    # the same regions, the mother continued into one daughter (track link, not parent
    # link: EC) and the other daughter a new track without parent (EA)
    computed = movie({1: A}, {1: A, 5: C})
    s = tracking_scores(computed, truth)
    assert (s.FN, s.FP, s.NS, s.EA, s.EC, s.ED) == (0, 0, 0, 1, 1, 0)
    # an id switch: both true edges kept, plus a redundant computed edge
    truth = movie({1: A, 2: C}, {1: A, 2: C})
    computed = movie({1: A, 2: C}, {2: A, 1: C})
    s = tracking_scores(computed, truth)
    assert (s.EA, s.ED, s.EC) == (2, 2, 0)
    assert s.aogm == 2 * TRA_WEIGHTS["EA"] + 2 * TRA_WEIGHTS["ED"]


def test_matching_needs_more_than_half_of_the_true_object():
    truth = movie({1: (0, 4, 0, 4)})
    half = movie({1: (0, 2, 0, 4)})  # exactly 50 %: no match
    more = movie({1: (0, 3, 0, 4)})
    assert (tracking_scores(half, truth).FN, tracking_scores(half, truth).FP) == (1, 1)
    assert tracking_scores(more, truth).tra == 1.0


def test_synthetic_tracks_linked_from_exact_instances_score_high():
    _, truth, _ = synthetic_timelapse((12, 96, 96), seed=3, division_rate=0.1)
    linked = link_planes([p.replace(extra={}) for p in truth.planes], axes="TYX")
    s = tracking_scores(linked, truth)
    assert s.FN == s.FP == s.NS == 0
    assert s.tra > 0.99
    # an empty result scores 0 (the cost is capped at building the graph from nothing)
    empty = StackInstances(
        [p[np.zeros(len(p), bool)] for p in linked.planes], truth.shape, "TYX", {}
    )
    assert tracking_scores(empty, truth).tra == 0.0


# -- Z clean-ups ---------------------------------------------------------------------------
def test_a_section_merging_two_objects_is_cut_and_the_objects_stay_apart():
    left, right = (2, 2, 8, 8), (8, 2, 14, 8)
    merged = (2, 2, 14, 8)
    planes = [plane(left, right), plane(merged), plane(left, right)]
    cut = split_merges(planes)
    assert [len(p) for p in cut] == [2, 2, 2]
    # the pieces are exact pixel outlines that partition the merged instance
    pieces = cut[1].polygons
    assert sorted(shapely.area(pieces).tolist()) == [36.0, 36.0]
    assert shapely.union_all(pieces).equals(shapely.box(*merged))
    stack = link_planes(planes, axes="ZYX")
    assert ids(stack) == [[1, 2], [1, 2], [1, 2]]
    # without the cut, the merged section chains both sides into one object
    chained = link_planes(planes, axes="ZYX", merge_threshold=None)
    assert len(set(sum(ids(chained), []))) < 4 and ids(chained)[1] == [1]


@pytest.mark.parametrize(
    "neighbours",
    [
        [(2, 2, 8, 8), (3, 2, 9, 8)],  # duplicates overlapping each other
        [(2, 2, 13, 8), (13, 2, 14, 3)],  # the second part is a speck
        [(2, 2, 8, 8)],  # one part only
    ],
)
def test_no_cut_without_two_distinct_parts(neighbours):
    planes = [plane(*neighbours), plane((2, 2, 14, 8))]
    assert len(split_merges(planes)[1]) == 1


def test_min_planes_drops_short_objects_in_z_only():
    planes = [plane((2, 2, 8, 8)), plane((2, 2, 8, 8), (12, 12, 16, 16)), plane((2, 2, 8, 8))]
    assert ids(link_planes(planes, axes="ZYX")) == [[1], [1], [1]]
    assert ids(link_planes(planes, axes="ZYX", min_planes=1)) == [[1], [1, 2], [1]]
    assert ids(link_planes(planes, axes="ZYX", min_planes=4)) == [[], [], []]
    # a time-lapse keeps objects of one frame (an object may be seen once)
    assert ids(link_planes(planes, axes="TYX")) == [[1], [1, 2], [1]]
    # TZYX: per frame, objects of one plane are dropped (frame 1 has one plane of it)
    tz = link_planes(planes + [plane()], axes="TZYX", stack_shape=(2, 2))
    assert ids(tz) == [[1], [1], [], []]


def test_clean_ups_leave_exact_synthetic_sections_alone():
    _, truth, labels = synthetic_zstack((12, 96, 96), seed=1)
    bare = [p.replace(extra={}) for p in truth.planes]
    linked = link_planes(bare, axes="ZYX")
    assert sum(map(len, linked.planes)) == sum(map(len, bare))
    assert len(linked.object_ids) == len(truth.object_ids)


def test_two_nuclei_stacked_along_z_are_split_at_the_waist():
    # big sections, a tip where one nucleus ends and the next begins, big sections again:
    # linked by overlap into one object, split at the narrowest plane
    big, tip = (2, 2, 12, 12), (6, 6, 8, 8)
    planes = [plane(big), plane(big), plane(tip), plane(big), plane(big)]
    assert ids(link_planes(planes, axes="ZYX")) == [[1], [1], [1], [2], [2]]
    # an ellipsoid's profile (growing, then shrinking) is one object
    grow = [plane((5, 5, 9, 9)), plane((3, 3, 11, 11)), plane(big), plane((4, 4, 10, 10))]
    assert ids(link_planes(grow, axes="ZYX")) == [[1], [1], [1], [1]]
    # without the clean-ups (merge_threshold=None) the stack stays one object
    assert ids(link_planes(planes, axes="ZYX", merge_threshold=None)) == [[1]] * 5


LEFT, RIGHT = (0, 4, 8, 12), (8, 4, 16, 12)  # two nuclei side by side


def test_a_chain_sliding_onto_a_neighbouring_nucleus_is_split():
    """Two nuclei side by side at different depths: the planes where both show give
    sections that slide from one to the other, and IoU linking chains them into one
    object. Sections two planes apart that barely overlap cut it between them."""
    slide = [LEFT] * 5 + [(3, 4, 11, 12), (5, 4, 13, 12)] + [RIGHT] * 5
    planes = [plane(b) for b in slide]
    assert ids(link_planes(planes, axes="ZYX", merge_threshold=None)) == [[1]] * 12
    assert ids(link_planes(planes, axes="ZYX")) == [[1]] * 5 + [[2]] * 7
    # the cut is where the two planes overlap least: here the middle pair
    middle = [LEFT] * 5 + [(2, 4, 10, 12), (6, 4, 14, 12), (7, 4, 15, 12)] + [RIGHT] * 5
    assert ids(link_planes([plane(b) for b in middle], axes="ZYX")) == [[1]] * 6 + [[2]] * 7


def test_a_tilted_nucleus_drifting_at_every_plane_stays_one_object():
    # sections 8 px wide moving 2 px per plane: two planes apart they overlap by half,
    # everywhere, so the object does not otherwise stack up and is not cut
    planes = [plane((2 * z, 4, 2 * z + 8, 12)) for z in range(7)]
    assert ids(link_planes(planes, axes="ZYX")) == [[1]] * 7


def test_a_drift_at_the_tip_leaves_no_one_plane_part():
    planes = [plane(b) for b in [LEFT] * 6 + [(4, 4, 12, 12)]]  # linked: IoU 1/3
    assert ids(link_planes(planes, axes="ZYX")) == [[1]] * 7


def test_exact_sections_of_tilted_elongated_nuclei_stay_whole():
    _, truth, _ = synthetic_zstack(
        (16, 128, 128), tilt=75, elongation=(2.5, 3.0), z_scale=0.25, seed=0
    )
    linked = link_planes([p.replace(extra={}) for p in truth.planes], axes="ZYX")
    assert len(linked.object_ids) == len(truth.object_ids)
