"""Tests for labelassist.geometry: exact mask <-> polygon conversions."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from gallery import GALLERY, HOLE_FREE, connected_shapes, gallery_label_image, gallery_mask
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_utils
from shapely import MultiPolygon, Polygon, box

from labelassist.geometry import (
    DEFAULT_TOLERANCE,
    EXACT_MAX_PIXELS,
    masks_to_polygons,
    polygons_to_masks,
)

with np.errstate(invalid="ignore"):  # shapely warns about the NaN it is asked to store
    NAN_POLYGON = Polygon([(0, 0), (np.nan, 0), (1, 1)])


# -- helpers ---------------------------------------------------------------------------------
def coco_rasterize(geom: Polygon | MultiPolygon, shape: tuple[int, int]) -> np.ndarray:
    """Rasterize the exteriors of ``geom`` with pycocotools, (H, W) bool."""
    h, w = shape
    rings = [
        np.asarray(p.exterior.coords)[:-1].ravel().tolist()
        for p in shapely.get_parts(geom)
        if not p.is_empty
    ]
    if not rings:
        return np.zeros(shape, dtype=bool)
    rles = mask_utils.frPyObjects(rings, h, w)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def same_geometry(a: shapely.Geometry, b: shapely.Geometry) -> bool:
    if a.is_empty or b.is_empty:
        return a.is_empty and b.is_empty
    return bool(shapely.equals(a, b))


def label_stack(labels: np.ndarray) -> np.ndarray:
    ids = np.unique(labels)
    ids = ids[ids != 0]
    return labels[None] == ids[:, None, None]


def nuclei_labels(seed: int, shape: tuple[int, int] = (192, 192), n: int = 60) -> np.ndarray:
    """Label image of nucleus-like blobs 10-40 px across: rotated ellipses with a wobbly
    outline, painted in turn so that later ones overlap and touch earlier ones."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    labels = np.zeros(shape, dtype=np.int32)
    for k in range(1, n + 1):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        a = rng.uniform(5, 20)
        b = a * rng.uniform(0.5, 1.0)
        theta = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
        v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
        phi = np.arctan2(v, u)
        wobble = 1 + 0.12 * np.sin(3 * phi + rng.uniform(0, 6)) + 0.06 * np.sin(5 * phi)
        labels[(u / a) ** 2 + (v / b) ** 2 <= wobble**2] = k
    return labels


# -- gallery ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(GALLERY))
def test_gallery_exact_polygon(name):
    mask, expected = GALLERY[name]
    (got,) = masks_to_polygons(mask, tolerance=0)
    assert got.is_valid, shapely.is_valid_reason(got)
    assert same_geometry(got, expected), (got.wkt, expected.wkt)
    assert got.area == mask.sum()
    assert got.geom_type == (expected.geom_type if not expected.is_empty else "Polygon")


@pytest.mark.parametrize("name", ["one_pixel", "square", "l_shape", "donut", "border", "full"])
def test_gallery_vertices_are_corners_only(name):
    mask, expected = GALLERY[name]
    (got,) = masks_to_polygons(mask, tolerance=0)
    got = shapely.normalize(got)
    assert shapely.equals_exact(got, shapely.normalize(expected), tolerance=0)


@pytest.mark.parametrize("name", sorted(GALLERY))
def test_gallery_round_trip_labelassist(name):
    mask = gallery_mask(name)
    polys = masks_to_polygons(mask, tolerance=0)
    np.testing.assert_array_equal(polygons_to_masks(polys, mask.shape)[0], mask)


@pytest.mark.parametrize("name", HOLE_FREE)
def test_gallery_round_trip_pycocotools(name):
    mask = gallery_mask(name)
    (poly,) = masks_to_polygons(mask, tolerance=0)
    np.testing.assert_array_equal(coco_rasterize(poly, mask.shape), mask)


@pytest.mark.parametrize("name", sorted(GALLERY))
def test_gallery_polygons_to_masks_of_expected(name):
    mask, expected = GALLERY[name]
    np.testing.assert_array_equal(polygons_to_masks([expected], mask.shape)[0], mask)


@pytest.mark.parametrize("name", sorted(GALLERY))
@pytest.mark.parametrize("tolerance", [0.3, DEFAULT_TOLERANCE, 1.5])
def test_gallery_simplified(name, tolerance):
    mask, expected = GALLERY[name]
    (got,) = masks_to_polygons(mask, tolerance=tolerance)
    assert got.is_valid, shapely.is_valid_reason(got)
    assert got.geom_type in ("Polygon", "MultiPolygon")
    assert got.is_empty == expected.is_empty
    if tolerance <= 0.35:  # pixel centres are >= 0.3535 from the edge-midpoint contour
        # (a hole touching the outside at a corner may open into a notch: same pixels)
        np.testing.assert_array_equal(polygons_to_masks([got], mask.shape)[0], mask)


def test_stack_of_gallery_masks_keeps_order_and_empty_slots():
    names = ["square", "empty", "donut", "empty", "one_pixel"]
    shape = (6, 6)
    stack = np.zeros((len(names), *shape), dtype=bool)
    for k, name in enumerate(names):
        m = gallery_mask(name)
        stack[k, : m.shape[0], : m.shape[1]] = m
    polys = masks_to_polygons(stack, tolerance=0)
    assert len(polys) == len(names)
    for poly, name in zip(polys, names, strict=True):
        assert same_geometry(poly, GALLERY[name][1])
        assert isinstance(poly, (Polygon, MultiPolygon))


# -- label images ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dtype", [np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32, np.int64]
)
def test_label_image_dtypes_and_gapped_ids(dtype):
    labels, expected = gallery_label_image()
    if np.iinfo(dtype).max < 500:
        labels = np.where(labels == 500, 100, labels)
    polys = masks_to_polygons(labels.astype(dtype), tolerance=0)
    assert len(polys) == 3
    for got, exp in zip(polys, expected, strict=True):
        assert same_geometry(got, exp), (got.wkt, exp.wkt)


@pytest.mark.parametrize("big", [2**31 + 5, 2**40, 2**63 + 7])
def test_label_image_huge_ids_sorted(big):
    labels = np.zeros((4, 6), dtype=np.uint64)
    labels[0, 0] = big
    labels[3, 5] = 2
    labels[1:3, 2:4] = big - 1
    polys = masks_to_polygons(labels, tolerance=0)
    assert [p.bounds for p in polys] == [
        (5.0, 3.0, 6.0, 4.0),
        (2.0, 1.0, 4.0, 3.0),
        (0.0, 0.0, 1.0, 1.0),
    ]


def test_label_image_matches_stack():
    labels = nuclei_labels(3, shape=(64, 64), n=12)
    from_labels = masks_to_polygons(labels, tolerance=0)
    from_stack = masks_to_polygons(label_stack(labels), tolerance=0)
    assert len(from_labels) == len(from_stack) == len(np.unique(labels)) - 1
    assert all(same_geometry(a, b) for a, b in zip(from_labels, from_stack, strict=True))


def test_integer_01_stack_equals_bool_stack():
    stack = label_stack(gallery_label_image()[0])
    a = masks_to_polygons(stack, tolerance=0)
    b = masks_to_polygons(stack.astype(np.uint8), tolerance=0)
    assert all(same_geometry(p, q) for p, q in zip(a, b, strict=True))


@pytest.mark.parametrize(
    "masks",
    [
        np.zeros((0, 5, 5), dtype=bool),
        np.zeros((5, 5), dtype=np.int32),
        np.zeros((0, 0), dtype=np.uint8),
        np.zeros((3, 0, 4), dtype=bool),
    ],
    ids=["empty-stack", "background-only", "zero-size-labels", "zero-height-stack"],
)
def test_empty_inputs(masks):
    polys = masks_to_polygons(masks)
    n = masks.shape[0] if masks.ndim == 3 else 0
    assert len(polys) == n
    assert all(p.is_empty and p.geom_type == "Polygon" for p in polys)


def test_empty_bool_mask_gives_one_empty_polygon():
    (poly,) = masks_to_polygons(np.zeros((4, 4), dtype=bool))
    assert poly.is_empty and poly.geom_type == "Polygon"


def test_min_area_keeps_alignment():
    stack = np.zeros((3, 8, 8), dtype=bool)
    stack[0, 1:4, 1:4] = True  # 9 px
    stack[1, 5, 5] = True  # 1 px
    stack[2, 0:2, 5:8] = True  # 6 px
    polys = masks_to_polygons(stack, tolerance=0, min_area=6)
    assert [p.area for p in polys] == [9.0, 0.0, 6.0]
    assert polys[1].is_empty


def test_offset_shifts_all_coordinates():
    mask = gallery_mask("donut")
    (plain,) = masks_to_polygons(mask, tolerance=0)
    (moved,) = masks_to_polygons(mask, tolerance=0, offset=(10, 20.5))
    assert same_geometry(moved, shapely.affinity.translate(plain, 10, 20.5))
    assert moved.bounds == (11.0, 21.5, 14.0, 24.5)


def test_inputs_not_mutated():
    labels = nuclei_labels(5, shape=(48, 48), n=6)
    before = labels.copy()
    masks_to_polygons(labels)
    np.testing.assert_array_equal(labels, before)
    polys = [box(0, 0, 3, 3)]
    polygons_to_masks(polys, (4, 4))
    assert polys == [box(0, 0, 3, 3)]


# -- saddles ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "rows",
    [
        [".#.", "#.#", ".#."],  # four pixels around a hole, touching at corners only
        ["#.#", ".#.", "#.#"],  # X of five pixels
        ["##.", "#.#", ".##"],  # hole touching the outside at two corners
        ["#.#.", ".#.#", "#.#.", ".#.#"],  # checkerboard
        ["###.", "#.#.", "##.#", "...#"],  # hole in a shell, diagonal tail
    ],
)
def test_saddle_cases_valid_and_exact(rows):
    mask = np.array([[c == "#" for c in r] for r in rows])
    (poly,) = masks_to_polygons(mask, tolerance=0)
    assert poly.is_valid, shapely.is_valid_reason(poly)
    assert poly.area == mask.sum()
    np.testing.assert_array_equal(polygons_to_masks([poly], mask.shape)[0], mask)


@pytest.mark.parametrize("seed", range(4))
def test_noisy_masks_many_saddles_parts_and_holes(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((40, 40)) < 0.55
    (poly,) = masks_to_polygons(mask, tolerance=0)
    assert poly.is_valid, shapely.is_valid_reason(poly)
    assert poly.area == mask.sum()
    assert sum(len(p.interiors) for p in shapely.get_parts(poly)) > 0
    np.testing.assert_array_equal(polygons_to_masks([poly], mask.shape)[0], mask)
    np.testing.assert_array_equal(
        polygons_to_masks(masks_to_polygons(mask, tolerance=0.3), mask.shape)[0], mask
    )


# -- property tests --------------------------------------------------------------------------
small_masks = arrays(bool, st.tuples(st.integers(1, 9), st.integers(1, 9)))
small_labels = arrays(
    np.uint16,
    st.tuples(st.integers(1, 9), st.integers(1, 9)),
    elements=st.sampled_from([0, 1, 2, 7, 300]),
)


@settings(max_examples=200, deadline=None)
@given(small_masks)
def test_property_exact_round_trip(mask):
    (poly,) = masks_to_polygons(mask, tolerance=0)
    assert poly.is_valid
    assert poly.area == mask.sum()
    np.testing.assert_array_equal(polygons_to_masks([poly], mask.shape)[0], mask)
    xy = shapely.get_coordinates(poly)
    np.testing.assert_array_equal(xy, np.round(xy))


@settings(max_examples=150, deadline=None)
@given(small_labels)
def test_property_label_image_round_trip(labels):
    polys = masks_to_polygons(labels, tolerance=0)
    expected = label_stack(labels)
    assert len(polys) == len(expected)
    assert all(p.is_valid for p in polys)
    np.testing.assert_array_equal(polygons_to_masks(polys, labels.shape), expected)


@settings(max_examples=150, deadline=None)
@given(small_masks)
def test_property_pycocotools_round_trip_without_holes(mask):
    (poly,) = masks_to_polygons(mask, tolerance=0)
    if any(len(p.interiors) for p in shapely.get_parts(poly)):
        return  # holes are written as RLE by the COCO writer
    np.testing.assert_array_equal(coco_rasterize(poly, mask.shape), mask)


@settings(max_examples=150, deadline=None)
@given(small_masks, st.sampled_from([0.1, 0.45, 0.5, 1.0, 2.0]))
def test_property_simplified_valid(mask, tolerance):
    (poly,) = masks_to_polygons(mask, tolerance=tolerance)
    assert poly.is_valid
    assert poly.geom_type in ("Polygon", "MultiPolygon")
    assert poly.is_empty == (not mask.any())


@settings(max_examples=100, deadline=None)
@given(small_labels, st.sampled_from([0.3, DEFAULT_TOLERANCE, 1.0]))
def test_property_label_image_simplified_valid_and_aligned(labels, tolerance):
    polys = masks_to_polygons(labels, tolerance=tolerance)
    ids = np.unique(labels)
    ids = ids[ids != 0]
    assert len(polys) == len(ids)
    assert all(p.is_valid and not p.is_empty for p in polys)
    # each polygon stays near its own object: its centroid is within the object's box
    for poly, k in zip(polys, ids, strict=True):
        rows, cols = np.nonzero(labels == k)
        x, y = poly.centroid.x, poly.centroid.y
        assert cols.min() <= x <= cols.max() + 1 and rows.min() <= y <= rows.max() + 1


@settings(max_examples=100, deadline=None)
@given(small_masks, st.integers(-50, 50), st.integers(-50, 50))
def test_property_integer_offset_is_a_translation(mask, dx, dy):
    (plain,) = masks_to_polygons(mask, tolerance=0)
    (moved,) = masks_to_polygons(mask, tolerance=0, offset=(dx, dy))
    assert same_geometry(moved, shapely.affinity.translate(plain, dx, dy))


# -- simplification quality ----------------------------------------------------------------------
def test_default_tolerance_quality_bar():
    ious = []
    n_simple = n_exact = 0
    for seed in range(3):
        labels = nuclei_labels(seed)
        simple = masks_to_polygons(labels)
        exact = masks_to_polygons(labels, tolerance=0)
        truth = label_stack(labels)
        for poly, m in zip(simple, truth, strict=True):
            assert poly.is_valid
            ious.append(iou(coco_rasterize(poly, labels.shape), m))
        n_simple += shapely.get_num_coordinates(simple).sum()
        n_exact += shapely.get_num_coordinates(exact).sum()
    ious = np.array(ious)
    assert len(ious) > 100
    assert ious.mean() >= 0.97, ious.mean()
    assert np.percentile(ious, 5) >= 0.93, np.percentile(ious, 5)
    assert n_simple < 0.5 * n_exact, (n_simple, n_exact)


def test_larger_tolerance_fewer_vertices():
    labels = nuclei_labels(7, shape=(96, 96), n=15)
    counts = [
        shapely.get_num_coordinates(masks_to_polygons(labels, tolerance=t)).sum()
        for t in (0, DEFAULT_TOLERANCE, 2.0)
    ]
    assert counts[0] > counts[1] > counts[2]


@pytest.mark.parametrize("tolerance", [0.6, 1.0])
@pytest.mark.parametrize("offset", [(0.0, 0.0), (30.25, 7.0)])
def test_simplified_outline_runs_along_the_array_border(tolerance, offset):
    rows = ["#..."] + ["##.."] + ["###."] * 3 + ["####"] * 3 + ["###."] * 3 + ["##..", "#..."]
    mask = np.array([[c == "#" for c in r] for r in ["...."] * 2 + rows + ["...."]])
    (poly,) = masks_to_polygons(mask, tolerance=tolerance, offset=offset)
    x0, y0 = offset
    assert poly.is_valid
    # the outline follows the left border x = x0 instead of the pixel centres next to it
    assert poly.bounds[0] == x0
    back = polygons_to_masks([shapely.affinity.translate(poly, -x0, -y0)], mask.shape)[0]
    # (without that, the whole column of 13 pixels is lost; a 1-pixel tip may go)
    assert np.count_nonzero(back[:, 0] != mask[:, 0]) <= 1
    assert iou(back, mask) > 0.85


def test_simplified_outline_inside_the_array_cuts_corners():
    mask = np.zeros((6, 6), dtype=bool)
    mask[1:5, 1:5] = True
    (poly,) = masks_to_polygons(mask, tolerance=0.3)
    # the edge-midpoint contour: each corner cut at half a pixel, an octagon
    expected = Polygon(
        [(1.5, 1), (4.5, 1), (5, 1.5), (5, 4.5), (4.5, 5), (1.5, 5), (1, 4.5), (1, 1.5)]
    )
    assert same_geometry(poly, expected), poly.wkt
    np.testing.assert_array_equal(polygons_to_masks([poly], mask.shape)[0], mask)


# -- polygons_to_masks -----------------------------------------------------------------------
def test_polygons_to_masks_empty_list():
    out = polygons_to_masks([], (3, 5))
    assert out.shape == (0, 3, 5) and out.dtype == bool


def test_polygons_to_masks_ndarray_input_and_empty_geometry():
    arr = np.array([box(0, 0, 2, 1), Polygon()], dtype=object)
    out = polygons_to_masks(arr, (2, 3))
    np.testing.assert_array_equal(out[0], [[1, 1, 0], [0, 0, 0]])
    assert not out[1].any()


def test_polygons_to_masks_pixel_centre_rule():
    # the triangle covers the centre (0.5, 0.5) but not (1.5, 0.5) or (0.5, 1.5)
    tri = Polygon([(0, 0), (1.9, 0), (0, 1.9)])
    out = polygons_to_masks([tri], (3, 3))[0]
    np.testing.assert_array_equal(out, [[1, 0, 0], [0, 0, 0], [0, 0, 0]])
    # a box that covers no pixel centre
    assert not polygons_to_masks([box(0.6, 0.6, 1.4, 1.4)], (3, 3)).any()


def test_polygons_to_masks_clips_outside_geometry():
    polys = [box(-2, -2, 1, 1), box(3, 1, 10, 2), box(20, 20, 30, 30)]
    out = polygons_to_masks(polys, (3, 4))
    np.testing.assert_array_equal(out[0], [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(out[1], [[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    assert not out[2].any()


@pytest.mark.parametrize(
    "bounds", [(0.5, 0.5, 2.5, 2.5), (1, 0.5, 3, 2.5), (0.5, 1, 2.5, 3), (1.5, 1.5, 1.5, 3)]
)
def test_polygons_to_masks_ties_like_pycocotools(bounds):
    # pixel centres exactly on the edges: both rasterizers take right and bottom edges
    poly = box(*bounds)
    got = polygons_to_masks([poly], (4, 4))[0]
    np.testing.assert_array_equal(got, coco_rasterize(poly, (4, 4)))


def test_polygons_to_masks_ties_hand_checked():
    got = polygons_to_masks([box(0.5, 0.5, 2.5, 2.5)], (4, 4))[0]
    expected = np.zeros((4, 4), dtype=bool)
    expected[1:3, 1:3] = True  # centres 1.5 and 2.5 on the far edges are in, 0.5 is out
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_property_polygons_to_masks_matches_contains(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 25)), int(rng.integers(1, 25)))
    geoms = []
    for _ in range(3):
        poly = shapely.make_valid(shapely.Polygon(rng.uniform(-4, 28, (7, 2))))
        hole = shapely.Point(rng.uniform(0, 20, 2)).buffer(rng.uniform(1, 5))
        geom = shapely.difference(poly, hole)
        parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon"]
        geoms.append(MultiPolygon(parts) if len(parts) > 1 else parts[0] if parts else Polygon())
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    expected = np.stack([shapely.contains_xy(g, xx, yy) for g in geoms])
    np.testing.assert_array_equal(polygons_to_masks(geoms, shape), expected)


def test_polygons_to_masks_zero_size_shape():
    assert polygons_to_masks([box(0, 0, 1, 1)], (0, 4)).shape == (1, 0, 4)


# -- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"masks": np.zeros((4, 4), dtype=float)}, TypeError, "bool or integer"),
        ({"masks": np.array([[None]])}, TypeError, "bool or integer"),
        ({"masks": np.zeros((1, 2, 3, 3), dtype=bool)}, ValueError, r"\(N, H, W\) stack"),
        ({"masks": np.zeros(5, dtype=bool)}, ValueError, r"\(N, H, W\) stack"),
        ({"masks": np.array([[0, -1]])}, ValueError, "negative ids"),
        ({"masks": np.full((1, 2, 2), 2, np.uint8)}, ValueError, "only 0 and 1"),
        ({"tolerance": -1}, ValueError, "tolerance must be finite and >= 0"),
        ({"tolerance": float("nan")}, ValueError, "tolerance must be finite"),
        ({"tolerance": "1"}, TypeError, "tolerance must be a real number"),
        ({"min_area": -0.5}, ValueError, "min_area must be finite and >= 0"),
        ({"offset": (1, 2, 3)}, ValueError, "offset must be a pair"),
        ({"offset": (1, float("inf"))}, ValueError, "offset must be a pair"),
        ({"offset": ("a", "b")}, TypeError, "offset must be a pair of numbers"),
    ],
)
def test_masks_to_polygons_errors(kwargs, exc, match):
    kwargs = {"masks": np.ones((3, 3), dtype=bool), **kwargs}
    masks = kwargs.pop("masks")
    with pytest.raises(exc, match=match):
        masks_to_polygons(masks, **kwargs)


@pytest.mark.parametrize(
    ("polygons", "shape", "exc", "match"),
    [
        ([box(0, 0, 1, 1)], (3,), ValueError, "shape must be"),
        ([box(0, 0, 1, 1)], (3, 2.5), ValueError, "shape must be"),
        ([box(0, 0, 1, 1)], (-1, 3), ValueError, "two integers >= 0"),
        ([box(0, 0, 1, 1)], None, ValueError, "shape must be"),
        (box(0, 0, 1, 1), (3, 3), TypeError, "wrap it in a list"),
        ([shapely.Point(1, 1)], (3, 3), TypeError, r"polygons\[0\] is Point"),
        ([[(0, 0), (1, 0), (1, 1)]], (3, 3), TypeError, r"polygons\[0\] is list"),
        (
            [box(0, 0, 1, 1), NAN_POLYGON],
            (3, 3),
            ValueError,
            r"polygons\[1\] has non-finite coordinates",
        ),
    ],
)
def test_polygons_to_masks_errors(polygons, shape, exc, match):
    with pytest.raises(exc, match=match):
        polygons_to_masks(polygons, shape)


@settings(max_examples=150, deadline=None)
@given(small_masks)
def test_property_small_tolerance_keeps_pixels(mask):
    # pixel centres are >= 0.3535 px from the edge-midpoint contour
    (poly,) = masks_to_polygons(mask, tolerance=0.35)
    assert poly.is_valid
    np.testing.assert_array_equal(polygons_to_masks([poly], mask.shape)[0], mask)


# -- tiny and thin objects are never dropped (issue #12, item 18) -------------------------------
TINY_SHAPES = [m for n in range(1, 5) for m in connected_shapes(n, diagonal=True)]


def test_one_pixel_in_the_corner_survives():
    # the reported case: the simplified outline was a triangle covering no pixel centre
    labels = np.zeros((16, 16), dtype=np.uint16)
    labels[0, 15] = 1
    (poly,) = masks_to_polygons(labels)
    assert poly.area == 1
    np.testing.assert_array_equal(polygons_to_masks([poly], labels.shape)[0], labels == 1)
    np.testing.assert_array_equal(coco_rasterize(poly, labels.shape), labels == 1)


@pytest.mark.parametrize(
    "shape", TINY_SHAPES, ids=["-".join(map(str, np.flatnonzero(m))) for m in TINY_SHAPES]
)
def test_every_shape_of_up_to_4_pixels_everywhere_survives_exactly(shape):
    # every connected (8-neighbour) shape of 1-4 pixels, at every position of a 6x6 image:
    # the corners, along every edge and inside; the default tolerance keeps it exactly
    h, w = shape.shape
    size = 6
    for r0 in range(size - h + 1):
        for c0 in range(size - w + 1):
            labels = np.zeros((size, size), dtype=np.uint8)
            labels[r0 : r0 + h, c0 : c0 + w][shape] = 7
            mask = labels == 7
            (from_labels,) = masks_to_polygons(labels)
            (from_mask,) = masks_to_polygons(mask[None])
            for poly in (from_labels, from_mask):
                assert poly.is_valid and not poly.is_empty
                assert poly.area == shape.sum(), (r0, c0, poly.wkt)  # the exact outline
                np.testing.assert_array_equal(polygons_to_masks([poly], mask.shape)[0], mask)
                np.testing.assert_array_equal(coco_rasterize(poly, mask.shape), mask)


def test_tiny_objects_keep_the_exact_outline_at_any_tolerance():
    mask = np.zeros((8, 8), dtype=bool)
    mask[3:6, 2:6] = True  # 12 pixels
    for tolerance in (0.3, DEFAULT_TOLERANCE, 2.0):
        (poly,) = masks_to_polygons(mask, tolerance=tolerance)
        assert same_geometry(poly, box(2, 3, 6, 6))
    mask[6, 2] = True  # 13 pixels: simplified as before
    (poly,) = masks_to_polygons(mask)
    assert poly.area != mask.sum()


def test_thin_diagonal_staircase_keeps_its_pixels():
    # a one-pixel-wide staircase from the top border to the right border: simplified, its
    # two sides straighten onto the pixel centres and pycocotools kept 1 pixel of 3
    mask = np.zeros((24, 24), dtype=bool)
    for k in range(7):
        mask[k, 17 + k] = True
        if k < 6:
            mask[k, 18 + k] = True
    assert mask.sum() > EXACT_MAX_PIXELS
    (poly,) = masks_to_polygons(mask)
    np.testing.assert_array_equal(coco_rasterize(poly, mask.shape), mask)
    np.testing.assert_array_equal(polygons_to_masks([poly], mask.shape)[0], mask)


def test_line_along_the_border_that_simplifies_to_a_sliver_gets_its_exact_outline():
    # a straight line one pixel wide along the right border: few corners, but the
    # simplified outline is a sliver with a quarter of the area less than its 16 pixels
    labels = np.zeros((24, 24), dtype=np.int32)
    labels[3:19, 23] = 1
    labels[2:20, 5:15] = 2  # a normal object next to it is simplified as usual
    line, blob = masks_to_polygons(labels)
    assert same_geometry(line, box(23, 3, 24, 19))
    np.testing.assert_array_equal(coco_rasterize(line, labels.shape), labels == 1)
    assert blob.area != (labels == 2).sum()  # cut corners


@settings(max_examples=200, deadline=None)
@given(small_labels)
def test_property_default_tolerance_never_drops_an_object(labels):
    polys = masks_to_polygons(labels)
    back = polygons_to_masks(polys, labels.shape)
    ids = np.unique(labels)
    ids = ids[ids != 0]
    for poly, raster, k in zip(polys, back, ids, strict=True):
        mask = labels == k
        assert not poly.is_empty
        assert (raster & mask).any()  # still covers some of its own pixels
        assert (coco_rasterize(poly, labels.shape) & mask).any()
        if mask.sum() <= EXACT_MAX_PIXELS:
            np.testing.assert_array_equal(raster, mask)
