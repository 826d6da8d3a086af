"""Instances <-> napari Shapes conversion and the one (x, y) <-> (row, col) swap (no display)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import shapely
from gallery import GALLERY
from labelassist_napari._convert import (
    instances_to_layer_data,
    layer_to_instances,
    rowcol_to_xy,
    xy_to_rowcol,
)
from labelassist_napari._style import shapes_layer_kwargs
from napari.layers import Shapes

import labelassist as la


def _layer(instances, classes=("nucleus",), **kwargs):
    return Shapes(**shapes_layer_kwargs(instances, classes=list(classes), **kwargs))


def _iou(a, b):
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


def _masks_per_instance(layer, shape):
    """(N, H, W) masks from napari's own rasterizer, parts OR-ed per instance."""
    shape_masks = layer.to_masks(shape)
    ids = layer.features["instance"].to_numpy()
    return np.stack([shape_masks[ids == k].any(axis=0) for k in np.unique(ids)])


def test_pixel_centre_maps_to_integer_rowcol():
    # the centre of pixel (row 2, col 5) is (x, y) = (5.5, 2.5) in COCO coordinates
    assert xy_to_rowcol([[5.5, 2.5]]).tolist() == [[2.0, 5.0]]
    # the top-left corner of the image is (x, y) = (0, 0): half a pixel before napari's 0
    assert xy_to_rowcol([[0.0, 0.0]]).tolist() == [[-0.5, -0.5]]


def test_conversion_pair_is_inverse():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 100, (50, 2))
    np.testing.assert_allclose(rowcol_to_xy(xy_to_rowcol(xy)), xy, atol=1e-12)


def test_conversion_empty():
    assert xy_to_rowcol(np.zeros((0, 2))).shape == (0, 2)
    assert rowcol_to_xy(np.zeros((0, 2))).shape == (0, 2)


@pytest.mark.parametrize(("func", "name"), [(xy_to_rowcol, "xy"), (rowcol_to_xy, "rowcol")])
def test_conversion_rejects_wrong_shape(func, name):
    with pytest.raises(ValueError, match=rf"{name} must be an array of shape \(K, 2\)"):
        func(np.zeros((3, 3)))


@pytest.mark.parametrize("name", [n for n in GALLERY if n != "empty"])
def test_gallery_masks_survive_napari_rasterization(name):
    mask, polygon = GALLERY[name]
    inst = la.Instances([polygon], [0], [1.0], mask.shape)
    layer = _layer(inst)
    got = _masks_per_instance(layer, mask.shape)[0]
    np.testing.assert_array_equal(got, mask)


def test_synthetic_masks_roundtrip_through_layer_iou():
    image, truth, label_image = la.synthetic_nuclei((96, 128), seed=3, return_labels=True)
    ids = np.unique(label_image)
    ids = ids[ids > 0]
    polygons = la.masks_to_polygons(label_image)  # default tolerance simplifies
    inst = la.Instances(polygons, None, None, label_image.shape)
    layer = _layer(inst)
    got = _masks_per_instance(layer, label_image.shape)
    assert len(got) == len(ids) > 3
    ious = [_iou(g, label_image == k) for g, k in zip(got, ids, strict=True)]
    assert min(ious) >= 0.97 or np.mean(ious) >= 0.97 and min(ious) > 0.85
    total = _iou(got.any(axis=0), label_image > 0)
    assert total >= 0.97


def test_layer_to_instances_to_layer_is_identity():
    rng = np.random.default_rng(7)
    centres = rng.uniform(10, 50, (6, 2))
    angles = np.sort(rng.uniform(0, 2 * np.pi, (6, 5)), axis=1)
    data = [
        c + 4 * np.stack([np.sin(a), np.cos(a)], axis=1)
        for c, a in zip(centres, angles, strict=True)
    ]
    features = pd.DataFrame(
        {
            "instance": np.arange(6),
            "class": pd.Categorical(["a", "b", "a", "a", "b", "b"], categories=["a", "b"]),
            "score": rng.uniform(0, 1, 6),
            "provenance": ["model", "corrected", "human", "model", "model", "human"],
        }
    )
    layer = Shapes(data, shape_type="polygon", features=features)
    inst = layer_to_instances(layer, image_shape=(64, 64), classes=["a", "b"])
    data2, features2 = instances_to_layer_data(inst, classes=["a", "b"])
    assert len(data2) == len(layer.data)
    for before, after in zip(layer.data, data2, strict=True):
        np.testing.assert_array_equal(after, before)
    pd.testing.assert_frame_equal(features2, features, check_dtype=False)


def test_instances_to_layer_to_instances_keeps_holes_and_parts():
    polys = [GALLERY[n][1] for n in ("donut", "two_blobs", "l_shape", "island_in_hole")]
    inst = la.Instances(polys, [0, 1, 0, 1], [0.9, 0.4, 1.0, 0.6], (16, 16))
    layer = _layer(inst, classes=("a", "b"))
    back = layer_to_instances(layer)
    assert back.extra["provenance"].tolist() == ["model"] * 4
    assert back.replace(extra={}) == inst
    # parts of one instance share the instance id (two blobs -> 2 shapes, island -> 2)
    assert layer.features["instance"].tolist() == [0, 1, 1, 2, 3, 3]


def test_keyhole_ring_keeps_the_hole_area():
    donut = GALLERY["donut"][1]
    data, _ = instances_to_layer_data(la.Instances([donut], None, None, (5, 5)))
    assert len(data) == 1
    ring = shapely.Polygon(rowcol_to_xy(data[0]))
    assert ring.area == pytest.approx(donut.area)  # 9 - 1 = 8 px: the hole is not filled


def test_empty_instances_give_empty_layer_and_back():
    inst = la.Instances.empty((10, 12))
    data, features = instances_to_layer_data(inst, classes=["a"])
    assert data == [] and len(features) == 0
    layer = _layer(inst, classes=("a",))
    back = layer_to_instances(layer)
    assert len(back) == 0 and back.image_shape == (10, 12)


def test_empty_polygon_gives_no_shape():
    inst = la.Instances([shapely.Polygon(), shapely.box(0, 0, 1, 1)], [0, 0], None, (4, 4))
    data, features = instances_to_layer_data(inst, classes=["a"])
    assert len(data) == 1 and features["instance"].tolist() == [1]


def test_instances_to_layer_data_errors():
    inst = la.Instances([shapely.box(0, 0, 1, 1)], [2], None, (4, 4))
    with pytest.raises(ValueError, match="classes has 2 names but instances has label 2"):
        instances_to_layer_data(inst, classes=["a", "b"])
    with pytest.raises(TypeError, match="instances must be labelassist.Instances"):
        instances_to_layer_data([shapely.box(0, 0, 1, 1)])


def test_layer_to_instances_needs_image_shape():
    layer = Shapes([np.array([[0, 0], [0, 2], [2, 2]], float)], shape_type="polygon")
    with pytest.raises(ValueError, match="pass image_shape=\\(height, width\\)"):
        layer_to_instances(layer)


def test_layer_to_instances_rejects_unknown_class():
    features = pd.DataFrame({"class": ["zebra"]})
    layer = Shapes(
        [np.array([[0, 0], [0, 2], [2, 2]], float)], shape_type="polygon", features=features
    )
    with pytest.raises(ValueError, match="shape class 'zebra' is not one of the classes"):
        layer_to_instances(layer, image_shape=(4, 4), classes=["a"])


def test_plain_shapes_layer_other_shape_types(caplog):
    # a napari layer the user drew from scratch: rectangle, ellipse, line, path, bowtie
    layer = Shapes()
    layer.add_rectangles(np.array([[0.5, 0.5], [2.5, 3.5]]))  # rows 1-2, cols 1-3 -> 2 x 3 px
    layer.add_ellipses(np.array([[20.0, 20.0], [4.0, 6.0]]))  # centre (row 20, col 20), radii 4, 6
    layer.add_lines(np.array([[0.0, 0.0], [5.0, 5.0]]))
    layer.add_paths(np.array([[0.0, 0.0], [5.0, 5.0], [0.0, 9.0]]))
    layer.add_polygons(np.array([[30.5, 30.5], [34.5, 34.5], [30.5, 34.5], [34.5, 30.5]]))
    with caplog.at_level(logging.WARNING):
        inst = layer_to_instances(layer, image_shape=(40, 40), classes=["a"])
    assert "skipped 2 line/path shapes" in caplog.text
    assert len(inst) == 3
    assert inst.polygons[0].equals(shapely.box(1, 1, 4, 3))
    assert inst.areas[1] == pytest.approx(np.pi * 4 * 6, rel=0.02)
    assert inst.boxes[1].tolist() == pytest.approx([14.5, 16.5, 26.5, 24.5])
    assert inst.polygons[2].geom_type == "MultiPolygon"  # the bowtie, repaired
    assert inst.areas[2] == pytest.approx(8.0)
    assert inst.extra["provenance"].tolist() == ["human"] * 3
    assert inst.scores.tolist() == [1.0] * 3


def test_shapes_outside_the_image_are_clipped():
    layer = Shapes(
        [np.array([[-5.5, -5.5], [-5.5, 1.5], [1.5, 1.5], [1.5, -5.5]])], shape_type="polygon"
    )
    inst = layer_to_instances(layer, image_shape=(10, 10))
    assert inst.polygons[0].equals(shapely.box(0, 0, 2, 2))
    layer = Shapes([np.array([[20.0, 20.0], [20.0, 25.0], [25.0, 25.0]])], shape_type="polygon")
    assert len(layer_to_instances(layer, image_shape=(10, 10))) == 0


@pytest.mark.parametrize("name", [n for n in GALLERY if n != "empty"])
def test_gallery_polygons_roundtrip_through_layer(name):
    _, polygon = GALLERY[name]
    inst = la.Instances([polygon], [0], [0.5], (16, 16))
    back = layer_to_instances(_layer(inst))
    assert back.replace(extra={}) == inst


def test_project_ids_and_sources_become_features():
    inst = la.Instances(
        [shapely.box(0, 0, 2, 2), shapely.box(3, 3, 5, 5)],
        [0, 0],
        [0.5, 1.0],
        (8, 8),
        extra={"instance_id": [11, 42], "source": ["corrected", "human"]},
    )
    _, features = instances_to_layer_data(inst, classes=["a"])
    assert features["instance"].tolist() == [11, 42]
    assert features["provenance"].tolist() == ["corrected", "human"]
    back = layer_to_instances(_layer(inst, classes=("a",)))
    assert back.extra["instance_id"].tolist() == [11, 42]
