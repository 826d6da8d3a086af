"""Save conflicts: another Project handle saves the image the Review widget is editing.

No mocks: a second, real `labelassist.Project` handle on the same folder saves in between
(as another napari window or a script would); the widget's save then raises
`ProjectConflictError` inside the project, and the test drives the user's choice.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from labelassist_napari._conflict import CONFLICT_CHOICES, instances_to_save
from labelassist_napari._convert import layer_to_instances
from review_helpers import edit_shape, wait_saved

import labelassist as la

THEIR_BOX = shapely.box(40, 40, 48, 48)  # what the other window adds (x, y)
THEIR_SECOND_BOX = shapely.box(50, 10, 58, 18)
MY_SQUARE = np.array([[2.0, 2.0], [2.0, 8.0], [8.0, 8.0], [8.0, 2.0]])  # what I draw (row, col)
MY_BOX = shapely.box(2.5, 2.5, 8.5, 8.5)  # the same square in (x, y)


# -- the rule, without a viewer ------------------------------------------------------------
def _inst(boxes, ids):
    polys = [shapely.box(*b) for b in boxes]
    return la.Instances(polys, [0] * len(polys), None, (32, 32), extra={"instance_id": ids})


def test_instances_to_save_rule():
    read = _inst([(0, 0, 2, 2), (4, 4, 6, 6)], [1, 2])
    # they moved 1, deleted 2 and added 7; I deleted 1, kept 2 and drew one (tracker id 3)
    theirs = _inst([(0, 0, 3, 3), (10, 10, 12, 12)], [1, 7])
    mine = _inst([(4, 4, 6, 6), (20, 20, 22, 22)], [2, 3])
    read_ids = read.extra["instance_id"].tolist()
    assert instances_to_save("reload", mine=mine, theirs=theirs, read_ids=read_ids) is None
    kept = instances_to_save("keep mine", mine=mine, theirs=theirs, read_ids=read_ids)
    assert kept.extra["instance_id"].tolist() == [2, -1]  # my drawing is new to the project
    assert kept.replace(extra={}) == mine.replace(extra={})
    merged = instances_to_save("merge", mine=mine, theirs=theirs, read_ids=read_ids)
    assert merged.extra["instance_id"].tolist() == [1, 7, -1]  # theirs, then what I drew
    assert merged.polygons[0].equals(shapely.box(0, 0, 3, 3))  # their move wins
    assert merged.polygons[2].equals(shapely.box(20, 20, 22, 22))


def test_instances_to_save_empty_sides_and_errors():
    empty = la.Instances.empty((32, 32), extra_keys=("instance_id",))
    drawn = _inst([(1, 1, 3, 3)], [-1])
    merged = instances_to_save("merge", mine=drawn, theirs=empty, read_ids=[])
    assert len(merged) == 1 and merged.extra["instance_id"].tolist() == [-1]
    assert len(instances_to_save("keep mine", mine=empty, theirs=drawn, read_ids=[5])) == 0
    with pytest.raises(ValueError, match=r"choice must be one of \['reload', 'keep mine'"):
        instances_to_save("theirs", mine=drawn, theirs=empty, read_ids=[])


# -- the Review widget -----------------------------------------------------------------------
@pytest.fixture
def widget(review_widget):
    return review_widget


def _their_save(folder, image_id, polygon=THEIR_BOX):
    """Another window: read, add a box, save with the version it read."""
    with la.Project.open(folder) as other:
        read = other.instances(image_id, with_version=True)
        box = la.Instances([polygon], [1], [1.0], read.instances.image_shape)
        stored = read.instances.replace(extra={"instance_id": read.instances.extra["instance_id"]})
        box = box.replace(extra={"instance_id": np.array([-1])})
        return other.save_instances(
            image_id,
            la.Instances.concat([stored, box]),
            source="corrected",
            expected_version=read.version,
        )


def _current(folder, image_id):
    with la.Project.open(folder) as project:
        return project.instances(image_id, with_version=True)


def _has(instances, polygon):
    return any(p.equals(polygon) for p in instances.polygons)


def _shown(control):
    """Whether a magicgui control is shown (the test viewer's window itself is hidden)."""
    return not control.native.isHidden()


def _conflicted(widget, qtbot):
    """Open an image, let another window save it, then draw a square: the save conflicts."""
    folder, image_id = widget.project.folder, widget.record["id"]
    read_version = widget.version
    theirs = _their_save(folder, image_id)
    assert theirs.version != read_version
    widget.shapes_layer.selected_data = set()
    widget.shapes_layer.add_polygons([MY_SQUARE])
    qtbot.waitUntil(lambda: widget.conflict is not None, timeout=10_000)
    return theirs


@pytest.mark.gui
def test_a_save_over_another_windows_save_is_refused_and_reported(widget, qtbot):
    folder, image_id = widget.project.folder, widget.record["id"]
    n = len(widget.project.instances(image_id))
    theirs = _conflicted(widget, qtbot)
    now = _current(folder, image_id)
    assert now.version == theirs.version  # nothing of mine was written
    assert now.instances == theirs.instances
    assert widget.save_pending and widget.conflict.image == image_id
    assert "changed by another window" in widget.conflict_label.value
    buttons = (widget.conflict_label, widget.reload_button, widget.keep_button, widget.merge_button)
    assert all(_shown(w) for w in buttons)
    assert "conflict" in widget.status.value
    # the widget stays on the image until the user chose
    with pytest.raises(ValueError, match="choose Reload theirs, Keep mine or Merge"):
        widget.accept_and_next()
    assert widget.project.image(image_id)["status"] != "reviewed"
    widget._guard(widget.next_image)
    assert widget.record["id"] == image_id and "choose Reload theirs" in widget.status.value
    # further edits wait too, and are not lost
    edit_shape(widget.shapes_layer, 0, widget.shapes_layer.data[0] + np.array([0.0, 1.0]))
    widget.save_now()
    assert _current(folder, image_id).version == theirs.version
    assert len(widget.conflict.mine) == n + 1
    with pytest.raises(ValueError, match="choice must be one of"):
        widget.resolve_conflict("mine")


@pytest.mark.gui
@pytest.mark.parametrize("choice", CONFLICT_CHOICES)
def test_resolving_a_conflict(widget, qtbot, choice):
    folder, image_id = widget.project.folder, widget.record["id"]
    n = len(widget.project.instances(image_id))
    theirs = _conflicted(widget, qtbot)
    revision = widget.resolve_conflict(choice)
    now = _current(folder, image_id)
    assert revision.version == now.version == widget.version
    assert widget.conflict is None and not widget.save_pending
    assert not _shown(widget.conflict_label) and not _shown(widget.merge_button)
    shown = layer_to_instances(widget.shapes_layer)
    assert shown.labels.tolist() == now.instances.labels.tolist()
    assert shapely.hausdorff_distance(shown.polygons, now.instances.polygons).max() < 1e-3
    mine = now.instances[now.instances.extra["source"] == "human"]
    if choice == "reload":  # theirs, my square dropped
        assert now.version == theirs.version and now.instances == theirs.instances
    elif choice == "keep mine":  # my square, not their box
        assert now.version > theirs.version and len(now.instances) == n + 1
        assert _has(mine, MY_BOX) and not _has(now.instances, THEIR_BOX)
    else:  # theirs plus my square
        assert now.version > theirs.version and len(now.instances) == n + 2
        assert _has(mine, MY_BOX) and _has(now.instances, THEIR_BOX)
    # the widget goes on from the version it shows: the next edit saves without conflict
    widget.shapes_layer.selected_data = {0}
    widget.shapes_layer.remove_selected()
    wait_saved(qtbot, widget)
    after = _current(folder, image_id)
    assert after.version > now.version and len(after.instances) == len(now.instances) - 1


@pytest.mark.gui
def test_the_merge_button_resolves(widget, qtbot):
    _conflicted(widget, qtbot)
    widget.merge_button.native.click()  # the real button, as a user clicks it
    assert widget.conflict is None
    now = _current(widget.project.folder, widget.record["id"])
    assert _has(now.instances, THEIR_BOX) and _has(now.instances, MY_BOX)


@pytest.mark.gui
def test_a_save_while_the_user_chooses_asks_again(widget, qtbot):
    folder, image_id = widget.project.folder, widget.record["id"]
    _conflicted(widget, qtbot)
    again = _their_save(folder, image_id, THEIR_SECOND_BOX)  # while the user decides
    assert widget.resolve_conflict("merge") is None  # nothing saved, asked again
    assert _current(folder, image_id).version == again.version
    assert widget.conflict is not None and "changed again" in widget.status.value
    widget.resolve_conflict("merge")
    now = _current(folder, image_id).instances
    assert _has(now, THEIR_BOX) and _has(now, THEIR_SECOND_BOX) and _has(now, MY_BOX)


@pytest.mark.gui
def test_resolving_when_the_layer_was_deleted_keeps_the_edits(widget, qtbot):
    folder, image_id = widget.project.folder, widget.record["id"]
    _conflicted(widget, qtbot)
    widget.viewer.layers.remove(widget.shapes_layer)  # the edits wait in the conflict
    widget.resolve_conflict("keep mine")
    now = _current(folder, image_id)
    assert _has(now.instances, MY_BOX) and not _has(now.instances, THEIR_BOX)
    assert widget.shapes_layer in widget.viewer.layers  # shown again


@pytest.mark.gui
def test_consecutive_saves_pass_the_version_they_saved(widget, qtbot):
    folder, image_id = widget.project.folder, widget.record["id"]
    start = _current(folder, image_id).version
    assert widget.version == start
    layer = widget.shapes_layer
    for step in range(3):
        edit_shape(layer, 0, layer.data[0] + np.array([0.0, 1.0]))
        wait_saved(qtbot, widget)
        assert widget.conflict is None
        assert widget.version == _current(folder, image_id).version == start + step + 1
        assert layer.metadata["labelassist"]["version"] == widget.version
    with pytest.raises(ValueError, match="no save conflict to resolve"):
        widget.resolve_conflict("merge")


@pytest.mark.gui
def test_a_reader_layer_changed_before_review_adopted_it_conflicts(
    make_napari_viewer, review_project, qtbot
):
    """The version travels with the layer: a stale layer never overwrites silently."""
    from labelassist_napari._review import ReviewWidget

    viewer = make_napari_viewer()
    _, shapes = viewer.open(str(review_project), plugin="labelassist")
    image_id = shapes.metadata["labelassist"]["image"]
    theirs = _their_save(review_project, image_id)  # after the reader read it
    widget = ReviewWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.open_project(review_project)
    assert widget.shapes_layer is shapes and widget.version < theirs.version
    shapes.selected_data = set()
    shapes.add_polygons([MY_SQUARE])
    qtbot.waitUntil(lambda: widget.conflict is not None, timeout=10_000)
    assert _current(review_project, image_id).instances == theirs.instances
    widget.resolve_conflict("merge")
    now = _current(review_project, image_id).instances
    assert _has(now, THEIR_BOX) and _has(now, MY_BOX)
