"""`labelassist.refine.offset_edges`: the Shrink / Grow of an outline, checked geometrically."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from labelassist import Instances, masks_to_polygons
from labelassist.refine import offset_edges

SHAPE = (64, 64)


@st.composite
def outlines(draw):
    """A traced pixel outline (as proposals are): a random blob of pixels, 8 px and up."""
    cx, cy = draw(st.floats(16, 48)), draw(st.floats(16, 48))
    rx, ry = draw(st.floats(4, 12)), draw(st.floats(4, 12))
    angle = draw(st.floats(0, np.pi))
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]] + 0.5
    u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
    v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
    mask = (u / rx) ** 2 + (v / ry) ** 2 <= 1
    return masks_to_polygons(mask[None], tolerance=draw(st.sampled_from([0, 0.5])))[0]


@settings(max_examples=60, deadline=None)
@given(outlines(), st.floats(0.25, 2.0))
def test_grow_moves_every_edge_out_by_the_distance(polygon, distance):
    inst = Instances([polygon], [0], [0.9], SHAPE)
    [grown] = offset_edges(inst, distance).polygons
    assert grown.is_valid and polygon.within(grown)
    # each point of the new outline is at least `distance` from the old one (mitred
    # corners go further, by at most mitre_limit * distance) ...
    ring = shapely.segmentize(grown.exterior, 0.25)
    far = shapely.distance(shapely.points(shapely.get_coordinates(ring)), polygon.exterior)
    assert far.min() >= distance - 1e-6
    assert far.max() <= 2.0 * distance + 1e-6
    # ... so the area grows by about the perimeter times the distance
    assert grown.area >= polygon.area + 0.9 * polygon.length * distance
    # no vertex added: the outline is as easy to edit as before (a mitre limit can bevel a
    # sharp corner into two)
    assert len(grown.exterior.coords) <= 2 * len(polygon.exterior.coords)


@settings(max_examples=60, deadline=None)
@given(outlines(), st.floats(0.25, 1.5))
def test_shrink_moves_every_edge_in_by_the_distance(polygon, distance):
    inst = Instances([polygon], [0], [0.9], SHAPE)
    [shrunk] = offset_edges(inst, -distance).polygons
    assert shrunk.is_valid and not shrunk.is_empty
    if shrunk.equals(polygon):  # too thin to shrink: kept
        assert shapely.buffer(polygon, -distance).is_empty
        return
    assert shrunk.within(polygon)
    points = shapely.points(shapely.get_coordinates(shapely.segmentize(shrunk.boundary, 0.25)))
    near = shapely.distance(points, polygon.exterior)
    assert near.min() >= distance - 1e-6
    assert shrunk.area <= polygon.area - 0.5 * polygon.length * distance


def test_pixel_square_by_hand():
    square = Instances([shapely.box(10, 10, 20, 20)], [1], [0.7], SHAPE)
    assert offset_edges(square, 1).polygons[0].equals(shapely.box(9, 9, 21, 21))
    assert offset_edges(square, -2).polygons[0].equals(shapely.box(12, 12, 18, 18))
    assert offset_edges(square, 0).polygons[0].equals(square.polygons[0])


def test_grow_stays_in_the_image():
    corner = Instances(
        [shapely.box(0, 0, 5, 5), shapely.box(60, 58, 64, 64)], [0, 0], [1, 1], SHAPE
    )
    grown = offset_edges(corner, 2).polygons
    assert grown[0].equals(shapely.box(0, 0, 7, 7))
    assert grown[1].equals(shapely.box(58, 56, 64, 64))


def test_shrink_that_would_erase_keeps_the_outline_and_no_instance_is_dropped():
    thin = shapely.box(10, 10, 30, 11)  # 1 px thick
    empty = shapely.Polygon()
    inst = Instances([thin, shapely.box(40, 40, 50, 50), empty], [0, 1, 0], [0.5, 0.6, 0.7], SHAPE)
    out = offset_edges(inst, -1)
    assert len(out) == 3
    assert out.polygons[0].equals(thin)
    assert out.polygons[1].equals(shapely.box(41, 41, 49, 49))
    assert out.polygons[2].is_empty


def test_labels_scores_extra_and_input_are_kept():
    inst = Instances(
        [shapely.box(10, 10, 20, 20), shapely.box(30, 30, 40, 44)],
        [2, 0],
        [0.25, 0.75],
        SHAPE,
        extra={"instance_id": np.array([7, 3])},
    )
    before = inst.polygons.copy()
    out = offset_edges(inst, 0.5)
    assert out.labels.tolist() == [2, 0]
    assert out.scores.tolist() == [0.25, 0.75]
    assert out.extra["instance_id"].tolist() == [7, 3]
    assert all(a.equals(b) for a, b in zip(inst.polygons, before, strict=True))
    assert len(offset_edges(Instances.empty(SHAPE), 1)) == 0


@pytest.mark.parametrize(
    ("instances", "kwargs", "error", "match"),
    [
        ("not instances", {"distance": 1}, TypeError, "instances must be labelassist.Instances"),
        (None, {"distance": float("nan")}, ValueError, "distance"),
        (None, {"distance": "1"}, ValueError, "distance must be a finite number"),
        (None, {"distance": 1, "mitre_limit": 0}, ValueError, "mitre_limit"),
    ],
)
def test_bad_input(instances, kwargs, error, match):
    if instances is None:
        instances = Instances([shapely.box(1, 1, 5, 5)], [0], [1.0], SHAPE)
    with pytest.raises(error, match=match):
        offset_edges(instances, **kwargs)


def test_clipping_keeps_only_polygons():
    """A shape with a part inside the image and a part outside touching its edge: the clip
    leaves a line where the outside part touched; only the polygon is kept."""
    inside = shapely.box(10, 10, 20, 20)
    outside = shapely.box(64.5, 30, 70, 40)  # grown by 0.5 px, it meets the image at x = 64
    shape = shapely.MultiPolygon([inside, outside])
    [grown] = offset_edges(Instances([shape], [0], [1.0], SHAPE), 0.5).polygons
    assert shapely.get_type_id(grown) == 3  # a Polygon: the sliver at the edge is gone
    assert grown.equals(shapely.box(9.5, 9.5, 20.5, 20.5))
