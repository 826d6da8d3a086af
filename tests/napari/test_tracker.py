"""The EditTracker keeps ids, classes and provenance right while the user edits (no display)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from gallery import GALLERY
from labelassist_napari._convert import layer_to_instances
from labelassist_napari._style import shapes_layer_kwargs
from labelassist_napari._tracker import EditTracker
from napari.layers import Shapes

import labelassist as la


def _layer(instances, classes=("nucleus",), **kwargs):
    return Shapes(**shapes_layer_kwargs(instances, classes=list(classes), **kwargs))


def _tracked(classes=("a", "b")):
    polys = [shapely.box(1, 1, 5, 5), GALLERY["two_blobs"][1], shapely.box(10, 10, 14, 14)]
    inst = la.Instances(polys, [0, 0, 1], [0.9, 0.8, 0.3], (20, 20))
    layer = _layer(inst, classes=classes)
    calls = []
    tracker = EditTracker(layer, on_change=lambda: calls.append(1))
    return layer, tracker, calls


def test_added_shape_is_human_with_current_class_and_new_id():
    layer, tracker, calls = _tracked()
    tracker.current_class = "b"
    layer.add_polygons([np.array([[15.0, 1.0], [15.0, 4.0], [18.0, 4.0]])])
    row = layer.features.iloc[-1]
    assert (row["class"], row["provenance"], row["score"]) == ("b", "human", 1.0)
    assert row["instance"] == 3  # ids 0..2 were taken
    np.testing.assert_allclose(layer.edge_color[-1], tracker.colors["b"])
    assert calls
    inst = layer_to_instances(layer)
    assert len(inst) == 4 and inst.extra["provenance"][-1] == "human"


def test_changed_model_shape_becomes_corrected_and_removed_shape_disappears():
    layer, tracker, calls = _tracked()
    layer.selected_data = {0}
    layer.remove_selected()
    assert len(calls) == 1
    # move the (former) third shape: napari emits a "changed" data event
    data = list(layer.data)
    data[-1] = data[-1] + 1.0
    layer.data = data
    assert len(calls) == 2
    assert layer.features["provenance"].tolist() == ["corrected"] * 3
    inst = layer_to_instances(layer)
    assert len(inst) == 2
    assert inst.extra["provenance"].tolist() == ["corrected", "corrected"]


def test_set_class_relabels_all_parts_and_marks_corrected():
    layer, tracker, calls = _tracked()
    tracker.set_class([1], "b")  # shape 1 is one part of the two-blob instance
    assert layer.features["class"].tolist() == ["a", "b", "b", "b"]
    assert layer.features["provenance"].tolist() == ["model", "corrected", "corrected", "model"]
    np.testing.assert_allclose(layer.edge_color[2], tracker.colors["b"])
    assert calls == [1]
    tracker.set_class([], "a")  # nothing selected: nothing happens
    assert calls == [1]


def test_current_class_applies_to_the_selection():
    layer, tracker, _ = _tracked()
    layer.selected_data = {0}
    tracker.current_class = "b"
    assert layer.features["class"].tolist()[0] == "b"
    assert layer.feature_defaults["class"][0] == "b"


def test_tracker_errors():
    layer, tracker, _ = _tracked()
    with pytest.raises(ValueError, match="class 'zebra' is not one of"):
        tracker.set_class([0], "zebra")
    with pytest.raises(ValueError, match="class 'zebra' is not one of"):
        tracker.current_class = "zebra"
    with pytest.raises(IndexError, match="shape indices must be within"):
        tracker.set_class([99], "a")


def test_tracker_disconnect():
    layer, tracker, calls = _tracked()
    tracker.disconnect()
    layer.add_polygons([np.array([[15.0, 1.0], [15.0, 4.0], [18.0, 4.0]])])
    assert calls == [] and layer.features["instance"].iloc[-1] == -1


def test_new_ids_never_reuse_deleted_ids():
    layer, tracker, _ = _tracked()
    layer.selected_data = {3}  # the shape of instance 2 (highest id)
    layer.remove_selected()
    layer.add_polygons([np.array([[15.0, 1.0], [15.0, 4.0], [18.0, 4.0]])])
    assert layer.features["instance"].iloc[-1] == 3
