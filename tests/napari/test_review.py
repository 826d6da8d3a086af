"""The Review widget: edits reach the project store, accept-and-next, export (xvfb)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import shapely
from labelassist_napari._convert import layer_to_instances, rowcol_to_xy
from labelassist_napari._review import ReviewWidget
from labelassist_napari._sync import restore_unchanged
from review_helpers import edit_shape as _edit_shape
from review_helpers import wait_saved as _wait_saved

import labelassist as la

pytestmark = pytest.mark.gui


@pytest.fixture
def widget(review_widget):
    return review_widget


def test_open_project_shows_the_queue_head(widget):
    viewer = widget.viewer
    assert widget.record is not None
    assert widget.image_layer in viewer.layers and widget.shapes_layer in viewer.layers
    with la.Project.open(widget.project.folder) as project:
        stored = project.instances(widget.record["id"])
    assert layer_to_instances(widget.shapes_layer).replace(extra={}) == stored.replace(extra={})
    assert "3 images" in widget.summary.value


def test_edits_are_autosaved_with_provenance(widget, qtbot):
    layer = widget.shapes_layer
    image_id = widget.record["id"]
    ids = layer.features["instance"].tolist()
    n = len(set(ids))
    # 1. delete the first instance
    first = [k for k, i in enumerate(ids) if i == ids[0]]
    layer.selected_data = set(first)
    layer.remove_selected()
    # 2. move every vertex of the (new) first shape by one pixel to the right
    moved_id = int(layer.features["instance"].iloc[0])
    _edit_shape(layer, 0, layer.data[0] + np.array([0.0, 1.0]))
    # 3. draw a new one with the class "debris"
    layer.selected_data = set()
    widget.class_box.value = "debris"
    layer.add_polygons([np.array([[2.0, 2.0], [2.0, 8.0], [8.0, 8.0], [8.0, 2.0]])])
    assert widget.save_pending
    _wait_saved(qtbot, widget)

    with la.Project.open(widget.project.folder) as project:
        stored = project.instances(image_id)
    assert len(stored) == n  # n - 1 deleted + 1 drawn
    source = dict(zip(stored.extra["instance_id"].tolist(), stored.extra["source"], strict=True))
    assert source[moved_id] == "corrected"
    assert sorted(source.values()) == sorted(["corrected", "human"] + ["model"] * (n - 2))
    human = stored[stored.extra["source"] == "human"]
    assert human.labels.tolist() == [1]  # debris
    # napari (row, col) 2..8 are pixel centres: x, y = col + 0.5, row + 0.5
    assert human.polygons[0].equals(shapely.box(2.5, 2.5, 8.5, 8.5))
    # the layer shows what the project stored: ids and provenance follow
    assert set(layer.features["instance"]) == set(stored.extra["instance_id"].tolist())
    assert sorted(layer.features["provenance"]) == sorted(stored.extra["source"])


def test_relabel_selected_and_reopen_shows_corrections(widget, qtbot):
    layer = widget.shapes_layer
    image_id = widget.record["id"]
    layer.selected_data = {0}
    widget.class_box.value = "debris"
    _wait_saved(qtbot, widget)
    assert layer.features["class"].iloc[0] == "debris"
    widget.next_image()
    assert widget.record["id"] != image_id
    widget.open_image(image_id)
    reopened = layer_to_instances(widget.shapes_layer)
    assert reopened.labels[0] == 1
    assert reopened.extra["provenance"][0] == "corrected"


def test_accept_and_next_marks_reviewed_and_export_has_corrections(widget, qtbot, tmp_path):
    layer = widget.shapes_layer
    first_id = widget.record["id"]
    _edit_shape(layer, 0, layer.data[0] + np.array([1.0, 0.0]))
    edited = shapely.Polygon(rowcol_to_xy(layer.data[0]))
    widget.accept_and_next()  # saves pending edits first
    assert widget.record["id"] != first_id
    with la.Project.open(widget.project.folder) as project:
        assert project.image(first_id)["status"] == "reviewed"
    out = widget.export(tmp_path / "reviewed.json", which="reviewed images")
    exported = la.read_coco(out)
    assert len(exported) == 1
    [inst] = exported.instances.values()
    assert any(p.equals_exact(edited, 1e-3) or p.equals(edited) for p in inst.polygons)
    everything = la.read_coco(widget.export(tmp_path / "all.json", which="all images"))
    assert len(everything) == 3


def test_keyboard_shortcut_accepts(widget, qtbot):
    from qtpy.QtCore import Qt

    first_id = widget.record["id"]
    canvas = widget.viewer.window._qt_viewer.canvas.native
    qtbot.keyClick(canvas, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: widget.record["id"] != first_id, timeout=5000)
    assert widget.project.image(first_id)["status"] == "reviewed"


def test_queue_end_and_errors(widget, tmp_path):
    for _ in range(3):
        widget.accept_and_next()
    assert widget.record is not None and widget.accept_and_next() is None
    assert "no image left" in widget.status.value
    with pytest.raises(ValueError, match="must be a .json file"):
        widget.export(tmp_path / "x.txt")
    widget._guard(lambda: widget.export(tmp_path / "x.txt"))
    assert "must be a .json file" in widget.status.value


def test_without_project(make_napari_viewer, tmp_path):
    widget = ReviewWidget(make_napari_viewer())
    with pytest.raises(ValueError, match="open a project first"):
        widget.next_image()
    with pytest.raises(ValueError, match="open a project image first"):
        widget.accept_and_next()
    widget.new_classes.value = " , "
    with pytest.raises(ValueError, match="name the classes of the new project"):
        widget.open_project(tmp_path / "new")
    project = widget.open_project(tmp_path / "new2", classes=["cell"])
    assert project.classes == ["cell"] and widget.record is None
    assert "no image left" in widget.status.value


def test_restore_unchanged_keeps_edits():
    stored = shapely.box(0, 0, 2, 2)
    inst = la.Instances(
        [shapely.box(0, 0, 2.5, 2), shapely.box(0, 0, 2, 2)],
        [0, 0],
        None,
        (4, 4),
        extra={"instance_id": [7, 8]},
    )
    out = restore_unchanged(inst, {7: stored, 8: stored})
    assert out.polygons[0].equals(shapely.box(0, 0, 2.5, 2)) and out.polygons[1] is stored
    empty = la.Instances.empty((4, 4), extra_keys=("instance_id",))
    assert len(restore_unchanged(empty, {7: stored})) == 0


def test_deleting_the_layer_right_after_an_edit_keeps_the_edit(widget):
    layer = widget.shapes_layer
    image_id = widget.record["id"]
    n = len(set(layer.features["instance"]))
    layer.selected_data = {0}
    layer.remove_selected()
    assert widget.save_pending
    widget.viewer.layers.remove(layer)  # before the autosave timer fired
    assert not widget.save_pending and widget.shapes_layer is None
    with la.Project.open(widget.project.folder) as project:
        assert len(project.instances(image_id)) == n - 1


# -- the effort log (#14 item 5) --------------------------------------------------------------
def test_the_widget_shows_the_effort_after_an_edit(widget, qtbot):
    layer = widget.shapes_layer
    image_id = widget.record["id"]
    assert widget.effort.value.startswith("this image: no edits yet; 0 s active")
    ids = layer.features["instance"].tolist()
    layer.selected_data = {0}
    widget.class_box.value = "debris"  # relabels the selected shape
    last = [k for k, i in enumerate(ids) if i == ids[-1]]
    layer.selected_data = set(last)
    layer.remove_selected()  # deletes the last instance
    _wait_saved(qtbot, widget)
    lines = widget.effort.value.splitlines()
    assert re.fullmatch(r"this image: 1 deleted, 1 relabelled; \d+ s active", lines[0])
    assert re.fullmatch(r"project: 0 images accepted, 2 actions, \d+ s active", lines[1])
    with la.Project.open(widget.project.folder) as project:
        actions = project.effort(image=image_id)["rows"][0]["actions"]
    assert {a: n for a, n in actions.items() if n} == {"deleted": 1, "relabelled": 1}


def test_active_time_is_logged_with_idle_gaps_capped(widget, qtbot):
    from labelassist.project import ActivityClock

    layer = widget.shapes_layer
    image_id = widget.record["id"]
    n = len(set(layer.features["instance"]))
    now = [0.0]
    widget.clock = ActivityClock(clock=lambda: now[0])
    widget.clock.start()  # the image is open at t = 0
    now[0] = 10.0
    _edit_shape(layer, 0, layer.data[0] + np.array([0.0, 1.0]))  # 10 s
    now[0] = 500.0  # 490 s without any event: counts 60 s
    layer.selected_data = set()
    layer.add_polygons([np.array([[2.0, 2.0], [2.0, 8.0], [8.0, 8.0], [8.0, 2.0]])])
    _wait_saved(qtbot, widget)  # the autosave logs the 70 s
    assert widget.project.effort(image=image_id)["rows"][0]["seconds"] == 70.0
    now[0] = 520.0
    widget.accept_and_next()  # 20 s more, logged when leaving the image
    row = widget.project.effort(image=image_id)["rows"][0]
    assert row["seconds"] == 90.0
    actions = {a: k for a, k in row["actions"].items() if k}
    assert actions == {"edited": 1, "drawn": 1, "accepted": n - 1, "reviewed": 1}
    assert widget.effort.value.splitlines()[1].startswith("project: 1 images accepted")
