import numpy as np
import pytest
import shapely
from hypothesis import given
from hypothesis import strategies as st

from labelassist.instances import Instances

SQUARE = shapely.box(1, 1, 3, 3)
DONUT = shapely.box(0, 0, 6, 6).difference(shapely.box(2, 2, 4, 4))
TWO_PARTS = shapely.MultiPolygon([shapely.box(0, 0, 1, 1), shapely.box(5, 5, 7, 6)])


def make(n=3, shape=(10, 12), **extra):
    polys = [SQUARE, DONUT, TWO_PARTS][:n]
    return Instances(polys, np.arange(n), np.linspace(0.2, 0.9, n), shape, extra=extra)


def test_defaults_and_dtypes():
    inst = Instances([SQUARE, DONUT], None, None, (8, 8))
    assert inst.labels.dtype == np.int64 and inst.labels.tolist() == [0, 0]
    assert inst.scores.dtype == np.float32 and inst.scores.tolist() == [1.0, 1.0]
    assert inst.image_shape == (8, 8)
    assert len(inst) == 2


def test_derived_boxes_and_areas():
    inst = make()
    np.testing.assert_array_equal(inst.boxes, [[1, 1, 3, 3], [0, 0, 6, 6], [0, 0, 7, 6]])
    np.testing.assert_array_equal(inst.areas, [4, 32, 3])


def test_masks_match_pixel_areas():
    inst = make()
    masks = inst.masks()
    assert masks.shape == (3, 10, 12) and masks.dtype == bool
    np.testing.assert_array_equal(masks.sum(axis=(1, 2)), [4, 32, 3])
    assert not masks[1, 2:4, 2:4].any()  # the hole stays a hole


def test_empty():
    inst = Instances.empty((5, 6), extra_keys=["source"])
    assert len(inst) == 0
    assert inst.boxes.shape == (0, 4)
    assert inst.areas.shape == (0,)
    assert inst.masks().shape == (0, 5, 6)
    assert inst.extra["source"].shape == (0,)
    assert inst[np.zeros(0, bool)] == inst
    assert inst[[]] == inst


@pytest.mark.parametrize(
    "key, expected",
    [
        (0, [0]),
        (-1, [2]),
        (slice(1, None), [1, 2]),
        (np.array([True, False, True]), [0, 2]),
        ([2, 0], [2, 0]),
        (np.array([], dtype=int), []),
    ],
)
def test_indexing_keeps_columns_aligned(key, expected):
    inst = make(source=np.array(["model", "human", "corrected"]))
    sub = inst[key]
    assert sub.labels.tolist() == expected
    assert sub.extra["source"].tolist() == [["model", "human", "corrected"][i] for i in expected]
    assert [p.equals(inst.polygons[i]) for i, p in zip(expected, sub.polygons, strict=True)] == [
        True
    ] * len(expected)
    assert sub.image_shape == inst.image_shape


def test_concat_and_equality():
    a, b = make(1, source=["model"]), make(3, source=["h", "h", "c"])[1:]
    both = Instances.concat([a, b])
    assert len(both) == 3
    assert both.extra["source"].tolist() == ["model", "h", "c"]
    assert both == make(3, source=["model", "h", "c"])
    assert both != make(3, source=["model", "h", "x"])
    assert make() != make().replace(labels=[0, 0, 0])


def test_equality_ignores_vertex_order():
    a = Instances([shapely.Polygon([(0, 0), (2, 0), (2, 2), (0, 2)])], [0], [1.0], (4, 4))
    b = Instances([shapely.Polygon([(2, 2), (0, 2), (0, 0), (2, 0)])], [0], [1.0], (4, 4))
    assert a == b
    assert a != b.replace(image_shape=(5, 4))


def test_replace_returns_new_object_and_is_immutable():
    inst = make()
    new = inst.replace(scores=[1, 1, 1])
    assert inst.scores.tolist() != [1, 1, 1]
    assert new.scores.tolist() == [1, 1, 1]
    with pytest.raises(AttributeError, match="immutable"):
        inst.labels = np.zeros(3)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"polygons": SQUARE}, TypeError, "single Polygon; wrap it in a list"),
        ({"polygons": [SQUARE, "x"]}, TypeError, r"polygons\[1\] is str"),
        ({"polygons": [shapely.Point(0, 0)]}, TypeError, r"polygons\[0\] is a Point"),
        ({"labels": [0, 1]}, ValueError, r"labels must have shape \(1,\).*got shape \(2,\)"),
        ({"labels": [-1]}, ValueError, "0-based class indices"),
        ({"labels": [0.5]}, ValueError, "labels must be integers"),
        ({"scores": [1.5]}, ValueError, r"within \[0, 1\]"),
        ({"scores": [np.nan]}, ValueError, "finite"),
        ({"scores": [[0.5]]}, ValueError, "scores must have shape"),
        ({"image_shape": (0, 4)}, ValueError, "two integers >= 1"),
        ({"image_shape": (4.5, 4)}, ValueError, r"image_shape must be \(height, width\)"),
        ({"image_shape": (4, 4, 3)}, ValueError, r"\(height, width\)"),
        ({"extra": {"src": ["a", "b"]}}, ValueError, r"extra\['src'\] must have shape \(1,\)"),
        ({"extra": {"labels": ["a"]}}, ValueError, "reserved"),
    ],
)
def test_validation_errors(kwargs, exc, match):
    args = {"polygons": [SQUARE], "labels": [0], "scores": [0.5], "image_shape": (4, 4)}
    args.update(kwargs)
    extra = args.pop("extra", None)
    with pytest.raises(exc, match=match):
        Instances(**args, extra=extra)


@pytest.mark.parametrize(
    ("key", "exc", "match"),
    [
        (5, IndexError, "out of range for 3"),
        (np.array([True, False]), IndexError, r"boolean index must have shape \(3,\)"),
        (np.array([0.5]), IndexError, "int, slice, bool mask or int array"),
    ],
)
def test_bad_indices(key, exc, match):
    with pytest.raises(exc, match=match):
        make()[key]


def test_concat_errors():
    with pytest.raises(ValueError, match="at least one"):
        Instances.concat([])
    with pytest.raises(ValueError, match="different images"):
        Instances.concat([make(1), make(1, shape=(3, 3))])
    with pytest.raises(ValueError, match="extra columns differ"):
        Instances.concat([make(1), make(1, source=["m"])])
    with pytest.raises(TypeError, match=r"items\[1\] is list"):
        Instances.concat([make(1), []])
    with pytest.raises(TypeError, match="unknown fields"):
        make().replace(colour=[1, 2, 3])


@given(
    st.lists(st.booleans(), min_size=3, max_size=3), st.lists(st.booleans(), min_size=3, max_size=3)
)
def test_filter_then_concat_is_consistent(m1, m2):
    inst = make(source=["a", "b", "c"])
    m1, m2 = np.array(m1), np.array(m2)
    joined = Instances.concat([inst[m1], inst[m2]])
    order = np.concatenate([np.flatnonzero(m1), np.flatnonzero(m2)])
    assert joined == inst[order]


def test_pickle_round_trip():
    import pickle

    inst = make(source=np.array(["model", "human", "corrected"]))
    assert pickle.loads(pickle.dumps(inst)) == inst
    empty = Instances.empty((3, 4))
    assert pickle.loads(pickle.dumps(empty)) == empty
