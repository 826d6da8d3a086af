"""`StackInstances` and linking: label volumes in and out, 3-D objects, tracks, divisions, gaps."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from labelassist import Instances
from labelassist.stacks import (
    StackInstances,
    iou,
    link_planes,
    match,
    polygon_overlaps,
)

SHAPE = (20, 20)


def plane(*boxes, scores=None):
    """One plane's instances from ``(x0, y0, x1, y1)`` boxes."""
    return Instances([shapely.box(*b) for b in boxes], None, scores, SHAPE)


def ids(stack):
    return [p.extra["object_id"].tolist() for p in stack.planes]


# -- linking: hand-built sequences, expected ids written out -------------------------------
def test_z_object_through_three_planes_and_a_new_object():
    planes = [
        plane((2, 2, 8, 8)),
        plane((2, 3, 8, 9), (12, 12, 17, 17)),
        plane((3, 3, 9, 9), (12, 13, 17, 18)),
    ]
    stack = link_planes(planes, axes="ZYX")
    assert ids(stack) == [[1], [1, 2], [1, 2]]
    assert stack.tracks.tolist() == [[1, 0, 0, 0], [2, 0, 0, 0]]


def test_z_tip_sections_join_their_object():
    # the 2 x 2 tip has IoU 4 / 64 with the section below, but lies inside it
    planes = [
        plane((6, 6, 8, 8)),
        plane((2, 2, 10, 10)),
        plane((2, 2, 10, 10)),
        plane((5, 5, 7, 7)),
    ]
    assert ids(link_planes(planes, axes="ZYX")) == [[1], [1], [1], [1]]
    by_iou = link_planes(planes, axes="ZYX", tip_threshold=None, min_planes=1)
    assert ids(by_iou) == [[1], [2], [2], [3]]
    # the default min_planes=2 drops the tips, now objects of one plane
    assert ids(link_planes(planes, axes="ZYX", tip_threshold=None)) == [[], [1], [1], []]


def test_z_hungarian_prefers_the_best_total_overlap():
    # plane 1's wide box overlaps both objects; a greedy first-come match would give it id 1
    planes = [plane((0, 0, 6, 10), (6, 0, 12, 10)), plane((1, 0, 11, 10), (0, 0, 3, 10))]
    stack = link_planes(planes, axes="ZYX", tip_threshold=None, merge_threshold=None)
    # IoU(A, wide) = 50 / 110, IoU(A, thin) = 30 / 60; IoU(B, wide) = 50 / 110: best total
    # is A-thin (0.5) + B-wide (0.45)
    assert ids(stack) == [[1, 2], [2, 1]]


def test_t_division_records_parent_links():
    frames = [
        plane((0, 0, 8, 8)),
        plane((0, 0, 8, 4), (0, 4, 8, 8)),
        plane((0, 0, 8, 3), (0, 5, 8, 8)),
    ]
    stack = link_planes(frames, axes="TYX")
    assert ids(stack) == [[1], [2, 3], [2, 3]]
    assert stack.parents == {2: 1, 3: 1}
    assert stack.tracks.tolist() == [[1, 0, 0, 0], [2, 1, 2, 1], [3, 1, 2, 1]]


def test_t_a_moving_cell_next_to_a_newcomer_is_no_division():
    frames = [plane((0, 0, 8, 8)), plane((1, 0, 9, 8), (9, 0, 13, 8))]
    stack = link_planes(frames, axes="TYX")
    assert ids(stack) == [[1], [1, 2]]
    assert stack.parents == {}


def test_t_gap_of_one_frame_keeps_the_id():
    frames = [plane((2, 2, 8, 8)), plane(), plane((3, 2, 9, 8))]
    assert ids(link_planes(frames, axes="TYX")) == [[1], [], [1]]
    assert ids(link_planes(frames, axes="TYX", max_gap=0)) == [[1], [], [2]]


def test_t_gap_of_two_frames_needs_max_gap_two():
    frames = [plane((2, 2, 8, 8)), plane(), plane(), plane((2, 2, 8, 8))]
    assert ids(link_planes(frames, axes="TYX")) == [[1], [], [], [2]]
    assert ids(link_planes(frames, axes="TYX", max_gap=2)) == [[1], [], [], [1]]


def test_t_new_object_and_object_leaving():
    frames = [
        plane((0, 0, 5, 5), (10, 10, 15, 15)),
        plane((0, 1, 5, 6)),  # the second object left
        plane((0, 2, 5, 7), (14, 0, 19, 4)),  # a new one entered
    ]
    stack = link_planes(frames, axes="TYX")
    assert ids(stack) == [[1, 2], [1], [1, 3]]
    assert stack.tracks.tolist() == [[1, 0, 2, 0], [2, 0, 0, 0], [3, 2, 2, 0]]


def test_a_divided_mother_is_never_continued_by_gap_closing():
    # the last box matches the mother (IoU 0.75) but neither daughter (IoU 0.43)
    frames = [plane((0, 0, 8, 8)), plane((0, 0, 8, 4), (0, 4, 8, 8)), plane((0, 1, 8, 7))]
    stack = link_planes(frames, axes="TYX", stitch_threshold=0.5)
    assert ids(stack) == [[1], [2, 3], [4]]
    assert stack.parents == {2: 1, 3: 1}


def test_tz_links_3d_objects_between_frames():
    # 2 frames x 2 planes; object 1 in both planes of both frames, object 2 appears at t=1
    planes = [
        plane((2, 2, 8, 8)),
        plane((2, 2, 8, 8)),
        plane((3, 2, 9, 8)),
        plane((3, 2, 9, 8), (12, 12, 18, 18)),
    ]
    stack = link_planes(planes, axes="TZYX", stack_shape=(2, 2), min_planes=1)
    assert ids(stack) == [[1], [1], [1], [1, 2]]
    assert stack.shape == (2, 2, *SHAPE)
    assert stack.tracks.tolist() == [[1, 0, 1, 0], [2, 1, 1, 0]]


def test_single_plane_numbers_its_instances():
    stack = link_planes([plane((0, 0, 2, 2), (5, 5, 7, 7))], axes="YX")
    assert ids(stack) == [[1, 2]]
    assert stack.shape == SHAPE and len(stack) == 1


def test_link_planes_keeps_other_columns_and_replaces_old_ids():
    inst = Instances(
        [shapely.box(0, 0, 4, 4)], [0], [0.7], SHAPE, extra={"object_id": [9], "src": ["m"]}
    )
    stack = link_planes([inst, inst], axes="ZYX")
    assert ids(stack) == [[1], [1]]
    assert stack.planes[0].extra["src"].tolist() == ["m"]
    assert inst.extra["object_id"].tolist() == [9]  # input untouched


def test_match_is_hungarian_and_respects_the_threshold():
    r, c = match(np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([0.9, 0.8, 0.85]), 0.5)
    assert (r.tolist(), c.tolist()) == ([0, 1], [1, 0])
    r, c = match(np.array([0, 1]), np.array([0, 1]), np.array([0.9, 0.2]), 0.5)
    assert (r.tolist(), c.tolist()) == ([0], [0])
    r, c = match(np.zeros(0, int), np.zeros(0, int), np.zeros(0), 0.5)
    assert len(r) == len(c) == 0


def test_polygon_overlaps_and_iou():
    a = np.array([shapely.box(0, 0, 4, 4), shapely.box(10, 10, 12, 12)], dtype=object)
    b = np.array(
        [shapely.box(2, 0, 6, 4), shapely.box(4, 0, 8, 4)], dtype=object
    )  # 2nd only touches
    ia, ib, area = polygon_overlaps(a, b)
    assert (ia.tolist(), ib.tolist(), area.tolist()) == ([0], [0], [8.0])
    assert iou(area, np.array([16.0]), np.array([16.0])).tolist() == [8 / 24]
    bowtie = np.array([shapely.Polygon([(0, 0), (4, 4), (4, 0), (0, 4)])], dtype=object)
    assert polygon_overlaps(bowtie, a[:1])[2].tolist() == [8.0]  # repaired, then measured
    assert [len(x) for x in polygon_overlaps(a, b[:0])] == [0, 0, 0]


# -- StackInstances --------------------------------------------------------------------------
volume_shapes = st.tuples(st.integers(1, 3), st.integers(1, 7), st.integers(1, 7))
label_volumes = arrays(np.uint16, volume_shapes, elements=st.integers(0, 4))


@settings(max_examples=150, deadline=None)
@given(label_volumes)
def test_labels_round_trip_is_exact(volume):
    stack = StackInstances.from_labels(volume, "ZYX")
    np.testing.assert_array_equal(stack.to_labels(), volume)
    for k, p in enumerate(stack.planes):
        assert p.extra["object_id"].tolist() == sorted(set(np.unique(volume[k]).tolist()) - {0})


def test_round_trip_tzyx_with_holes_and_parts_and_large_ids():
    volume = np.zeros((2, 2, 9, 9), np.uint32)
    volume[0, 0, 1:6, 1:6] = 70000
    volume[0, 0, 3, 3] = 0  # a hole
    volume[0, 1, 0:2, 0:2] = 70000
    volume[0, 1, 6:8, 6:8] = 70000  # two parts
    volume[1, :, 4:9, 4:9] = 3
    stack = StackInstances.from_labels(volume, "TZYX")
    np.testing.assert_array_equal(stack.to_labels(), volume)
    assert stack.tracks.tolist() == [[3, 1, 1, 0], [70000, 0, 0, 0]]
    assert stack.planes[1].polygons[0].geom_type == "MultiPolygon"
    with pytest.raises(ValueError, match="object id 70000 does not fit in uint16"):
        stack.to_labels(np.uint16)


def test_from_labels_of_a_dask_volume():
    da = pytest.importorskip("dask.array")
    volume = np.zeros((3, 6, 6), np.int32)
    volume[1:, 2:4, 2:4] = 5
    stack = StackInstances.from_labels(da.from_array(volume, chunks=(1, 6, 6)), "TYX")
    np.testing.assert_array_equal(stack.to_labels(), volume)


def test_to_labels_higher_score_wins_overlaps():
    p = Instances([shapely.box(0, 0, 4, 4), shapely.box(2, 0, 6, 4)], None, [0.9, 0.4], (4, 8),
                  extra={"object_id": [1, 2]})  # fmt: skip
    labels = StackInstances([p], (4, 8), "YX").to_labels()
    assert labels[0].tolist() == [1, 1, 1, 1, 2, 2, 0, 0]


def test_container_protocol_and_helpers():
    volume = np.zeros((2, 3, 4, 4), np.uint8)
    volume[1, 2, 0, 0] = 4
    stack = StackInstances.from_labels(volume, "TZYX")
    assert len(stack) == 6
    assert stack.stack_shape == (2, 3) and stack.image_shape == (4, 4)
    assert stack.plane_index((1, 2)) == 5 and len(stack.planes[5]) == 1
    assert stack.frames().tolist() == [0, 0, 0, 1, 1, 1]
    assert stack.object_ids.tolist() == [4]
    assert repr(stack) == "StackInstances(axes='TZYX', shape=(2, 3, 4, 4), objects=1, divisions=0)"
    assert stack == StackInstances.from_labels(volume, "TZYX")
    assert stack != StackInstances.from_labels(np.zeros_like(volume), "TZYX")
    assert stack.__eq__(3) is NotImplemented
    empty = StackInstances([Instances.empty((4, 4), extra_keys=["object_id"])], (4, 4), "YX")
    assert empty.planes[0].extra["object_id"].dtype == np.int64
    assert empty.tracks.shape == (0, 4) and empty.to_labels().max() == 0


def test_parents_are_checked_against_the_tracks():
    movie = np.zeros((3, 6, 6), np.uint8)
    movie[0, 0:2, 0:2] = 1
    movie[1:, 0:2, 0:2] = 2
    movie[1:, 3:5, 3:5] = 3
    stack = StackInstances.from_labels(movie, "TYX", parents={2: 1, 3: 1})
    assert stack.parents == {2: 1, 3: 1}
    assert stack.tracks[:, 3].tolist() == [0, 1, 1]
