"""The nD Shapes layer of a stack without a viewer (`labelassist_napari._stack_layer`):
shapes on their planes, one plane's save with new object ids, the stored ids written back,
the copy to the next plane."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from labelassist_napari._convert import plane_instances, shape_planes
from labelassist_napari._stack_layer import (
    apply_saved,
    next_plane_object,
    plane_to_save,
    stack_shapes_kwargs,
)
from napari.layers import Shapes

from labelassist.instances import Instances

CLASSES = ["cell", "debris"]
SHAPE = (16, 16)


def _plane(boxes, objects, labels=None) -> Instances:
    polys = [shapely.box(*b) for b in boxes]
    return Instances(
        polys, labels or [0] * len(polys), None, SHAPE,
        extra={"object_id": np.array(objects), "instance_id": np.arange(1, len(polys) + 1) + 10 * len(objects)},
    )  # fmt: skip


@pytest.fixture
def layer():
    planes = [
        _plane([(1, 1, 5, 5)], [1]),
        Instances.empty(SHAPE, extra_keys=("object_id",)),
        _plane([(1, 1, 5, 5), (8, 8, 12, 14)], [1, 2], [0, 1]),
        _plane([(2, 2, 6, 6)], [1]),
    ]  # a (T=2, Z=2) stack
    kwargs = stack_shapes_kwargs(planes, (2, 2), classes=CLASSES, name="s", metadata={})
    return Shapes(kwargs.pop("data"), **kwargs)


def test_shapes_sit_on_their_planes(layer):
    assert layer.ndim == 4
    assert shape_planes(list(layer.data), (2, 2)).tolist() == [0, 2, 2, 3]
    assert [v[0, :2].tolist() for v in layer.data] == [[0, 0], [1, 0], [1, 0], [1, 1]]
    inst, rows = plane_instances(layer, 2, (2, 2), image_shape=SHAPE, classes=CLASSES)
    assert rows.tolist() == [1, 2] and inst.extra["object_id"].tolist() == [1, 2]
    assert inst.labels.tolist() == [0, 1]
    assert shapely.equals_exact(inst.polygons[1], shapely.box(8, 8, 12, 14), tolerance=1e-6)


def test_a_drawn_shape_gets_a_new_object_and_the_stored_ids(layer):
    layer.add_polygons([np.array([[1, 1, 2, 2], [1, 1, 2, 6], [1, 1, 6, 6]], float)])
    assert layer.features["object"].iloc[-1] == 0  # drawn: no object yet
    layer.features.iloc[-1, layer.features.columns.get_loc("instance")] = 99
    mine, rows = plane_to_save(layer, 3, (2, 2), image_shape=SHAPE, classes=CLASSES, originals={})
    assert rows.tolist() == [3, 4]
    assert mine.extra["object_id"].tolist() == [1, 3]  # above the layer's largest (2)
    assert layer.features["object"].iloc[-1] == 3
    assert mine.extra["source"].tolist() == ["model", "human"]
    stored = mine.replace(
        extra={"instance_id": np.array([40, 41]), "source": np.array(["model", "human"])}
    )
    apply_saved(layer, rows, mine.extra["instance_id"], stored)
    assert layer.features["instance"].iloc[3:].tolist() == [40, 41]


def test_copy_to_the_next_plane_without_a_model(layer):
    target, data, features = next_plane_object(layer, 0, (2, 2), image_shape=SHAPE, classes=CLASSES)
    assert target == 1 and len(data) == 1
    assert data[0][:, :2].tolist() == [[0, 1]] * len(data[0])
    assert features[["object", "provenance", "instance"]].values.tolist() == [[1, "human", -1]]
    back = Shapes(data, shape_type="polygon", features=features)
    inst, _ = plane_instances(back, 1, (2, 2), image_shape=SHAPE, classes=CLASSES)
    assert shapely.equals_exact(
        shapely.normalize(inst.polygons[0]), shapely.normalize(shapely.box(1, 1, 5, 5)), 1e-6
    )
    with pytest.raises(ValueError, match="plane 3 is the last along its axis"):
        next_plane_object(layer, 3, (2, 2), image_shape=SHAPE, classes=CLASSES)


def test_copy_to_the_next_plane_keeps_off_the_objects_there():
    """With the starter as the prompt model, the copy is a box prompt (the outline's box
    grown by 2 px) on the next plane that leaves out the other objects already there."""
    import labelassist as la

    image, truth = la.synthetic_nuclei((128, 128), n=40, seed=1, touching=0.9, overlap=0.0)
    model = la.load_model("starter", device="cpu")
    polys = list(truth.polygons)
    boxes = np.clip(truth.boxes + [-2, -2, 2, 2], 0, 128)
    plain = model.segment(image, boxes=boxes).polygons
    # the object whose grown-box prompt spills most into a neighbour, and that neighbour
    spill = [
        [0.0 if j == k else plain[k].intersection(polys[j]).area for j in range(len(polys))]
        for k in range(len(polys))
    ]
    k, j = np.unravel_index(np.argmax(spill), (len(polys), len(polys)))
    assert spill[k][j] >= 3  # the data tests the case
    planes = [
        Instances([polys[k]], [0], None, (128, 128), extra={"object_id": np.array([1])}),
        Instances([polys[j]], [0], None, (128, 128), extra={"object_id": np.array([2])}),
    ]
    kwargs = stack_shapes_kwargs(planes, (2,), classes=CLASSES, name="s", metadata={})
    layer = Shapes(kwargs.pop("data"), **kwargs)
    target, data, features = next_plane_object(
        layer, 0, (2,), image_shape=(128, 128), classes=CLASSES, model=model,
        pixels=lambda plane: image,
    )  # fmt: skip
    assert target == 1 and features["provenance"].tolist() == ["prompted"]
    back = Shapes(data, shape_type="polygon", features=features)
    [copied] = plane_instances(back, 1, (2,), image_shape=(128, 128), classes=CLASSES)[0].polygons
    assert copied.intersection(polys[j]).area < 1e-6
    assert copied.intersection(polys[k]).area / polys[k].area >= 0.7
