"""Box and point prompts and edge refinement in the Review widget, with the shipped starter.

The prompts are driven by napari's own mouse-event path (``mouse_press_callbacks`` with
read-only mouse events, as napari's tests do); the objects must match the synthetic truth,
be autosaved with provenance ``"prompted"`` and show up in the effort log.
Run under ``xvfb-run -a``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import shapely
from labelassist_napari._assist import assist_model_spec
from labelassist_napari._convert import layer_to_instances, rowcol_to_xy, xy_to_rowcol
from labelassist_napari._prompts import (
    click_to_point,
    prompt_message,
    rectangle_to_box,
    sources_to_save,
)
from napari.utils._test_utils import read_only_mouse_event
from napari.utils.interactions import (
    mouse_move_callbacks,
    mouse_press_callbacks,
    mouse_release_callbacks,
)
from review_helpers import wait_saved

import labelassist as la

DOCS = Path(__file__).resolve().parents[2] / "docs"


# -- Qt-free conversions -------------------------------------------------------------------
def test_rectangle_and_click_use_the_plugins_one_conversion():
    box = np.array([3.25, 4.5, 17.0, 12.75])  # x0, y0, x1, y1
    corners = xy_to_rowcol(np.array([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]]]))
    corners = np.vstack([corners, xy_to_rowcol(np.array([[box[0], box[3]]]))])
    assert rectangle_to_box(corners).tolist() == box.tolist()
    assert rectangle_to_box(corners[::-1]).tolist() == box.tolist()  # any drag direction
    assert click_to_point((2.0, 5.0, 7.0)).tolist() == rowcol_to_xy([[5.0, 7.0]])[0].tolist()


@pytest.mark.parametrize(
    ("vertices", "match"),
    [(np.zeros((4,)), "rectangle needs"), (np.zeros((1, 2)), "rectangle needs")],
)
def test_rectangle_bad_input(vertices, match):
    with pytest.raises(ValueError, match=match):
        rectangle_to_box(vertices)


@pytest.mark.parametrize(
    "score, text",
    [
        (0.987, "score 0.99)"),
        (0.01, "score 0.01)"),
        (0.0093, "score 0.0093: the model is unsure"),
        (0.00091, "score 0.00091: the model is unsure"),
    ],
)
def test_prompt_message_never_shows_a_kept_low_score_as_zero(score, text):
    message = prompt_message("nucleus", score)
    assert message.startswith("added a nucleus (") and text in message


def test_sources_keep_prompted_until_the_first_save():
    # an unsaved prompted object edited before its first save is still prompted
    out = sources_to_save(["corrected", "corrected", "human", "model"], [3, 9, 10, 4], {3, 4})
    assert out.tolist() == ["corrected", "prompted", "human", "model"]


def test_restore_objects_undoes_only_unchanged_refinements():
    """`restore_objects` puts back the outline and provenance of a refined shape, and leaves
    a shape edited since its refinement as the user left it."""
    from labelassist_napari._prompts import add_object, replace_objects, restore_objects
    from labelassist_napari._style import shapes_layer_kwargs
    from labelassist_napari._tracker import tracker_for
    from napari.layers import Shapes

    classes = ["cell", "debris"]
    layer = Shapes(**shapes_layer_kwargs(la.Instances.empty((32, 32)), classes=classes))
    tracker_for(layer)
    for k, box in enumerate([(2, 2, 12, 12), (16, 16, 28, 30)]):
        one = la.Instances([shapely.box(*box)], [0], [0.9 - 0.1 * k], (32, 32))
        add_object(layer, one, provenance=("model", "prompted")[k], class_name=classes[k])
    before = layer_to_instances(layer, classes=classes)
    shrunk = [p.buffer(-1, join_style="mitre") for p in before.polygons]
    refined = before.replace(polygons=shrunk, extra={**before.extra, "refined": np.ones(2, bool)})
    assert sorted(replace_objects(layer, refined)) == [0, 1]
    after = layer_to_instances(layer, classes=classes)
    assert sorted(after.extra["provenance"].tolist()) == ["corrected", "corrected"]

    # the user moves the second object's outline after the refinement
    row = int(np.flatnonzero(layer.features["instance"].to_numpy() == 1)[0])
    data = list(layer.data)
    data[row] = data[row] + 0.5
    layer.data = data
    edited = layer_to_instances(layer, classes=classes)
    moved = edited.polygons[list(edited.extra["instance_id"]).index(1)]

    assert restore_objects(layer, before, after) == [0]
    now = layer_to_instances(layer, classes=classes)
    by_id = {int(i): k for k, i in enumerate(now.extra["instance_id"])}
    assert now.polygons[by_id[0]].symmetric_difference(shapely.box(2, 2, 12, 12)).area < 1e-9
    assert now.extra["provenance"][by_id[0]] == "model"
    assert now.labels[by_id[0]] == 0 and abs(now.scores[by_id[0]] - 0.9) < 1e-6
    assert now.polygons[by_id[1]].equals_exact(moved, 1e-9)  # the edit is kept
    assert now.extra["provenance"][by_id[1]] == "corrected"
    assert restore_objects(layer, before, after) == []  # nothing left to restore


@pytest.mark.parametrize(
    ("kind", "kwargs", "error", "match"),
    [
        ("checkpoint", {"checkpoint": None}, ValueError, "choose a .pt file"),
        ("checkpoint", {"checkpoint": Path("/no/such.pt")}, ValueError, "is not a file"),
        ("bogus", {}, ValueError, "model must be one of"),
    ],
)
def test_model_spec_bad_input(kind, kwargs, error, match):
    with pytest.raises(error, match=match):
        assist_model_spec(kind, **kwargs)


# -- in the viewer -------------------------------------------------------------------------
@pytest.fixture
def prompt_project(tmp_path):
    """A project with one synthetic 96 x 96 image without annotations, and its truth."""
    import imageio.v3 as iio

    image, truth = la.synthetic_nuclei((96, 96), n=5, seed=3)[:2]
    iio.imwrite(tmp_path / "img.png", image)
    folder = tmp_path / "proj"
    with la.Project.create(folder, classes=["nucleus", "debris"]) as project:
        project.add_images(tmp_path / "img.png")
    return folder, truth


def _open(make_napari_viewer, folder, qtbot, *, show=False):
    from labelassist_napari._review import ReviewWidget

    viewer = make_napari_viewer(show=show)
    widget = ReviewWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.open_project(folder)
    qtbot.waitUntil(lambda: widget.assist.ready, timeout=120_000)  # encoded in a worker
    return viewer, widget


def _drag(layer, start, end):
    mouse_press_callbacks(layer, read_only_mouse_event(type="mouse_press", position=start))
    move = read_only_mouse_event(type="mouse_move", is_dragging=True, position=end)
    mouse_move_callbacks(layer, move)
    mouse_release_callbacks(layer, read_only_mouse_event(type="mouse_release", position=end))


def _click(layer, position, modifiers=()):
    kwargs = {"position": position, "modifiers": list(modifiers)}
    mouse_press_callbacks(layer, read_only_mouse_event(type="mouse_press", **kwargs))
    mouse_release_callbacks(layer, read_only_mouse_event(type="mouse_release", **kwargs))


def _iou(a, b):
    return shapely.area(shapely.intersection(a, b)) / shapely.area(shapely.union(a, b))


def _prompted(widget):
    inst = layer_to_instances(widget.shapes_layer, classes=widget.project.classes)
    return inst[inst.extra["provenance"] == "prompted"]


def _prompt_largest(qtbot, widget, truth):
    """Box-prompt the largest nucleus with a 2-px-loose box, wait for the autosave; its
    polygon."""
    k = int(np.argmax(truth.areas))
    widget.assist.prompt(boxes=[truth.boxes[k] + np.array([-2, -2, 2, 2])])
    wait_saved(qtbot, widget)
    [polygon] = _prompted(widget).polygons
    return polygon


@pytest.mark.gui
def test_box_prompt_adds_the_object_saved_as_prompted(make_napari_viewer, prompt_project, qtbot):
    folder, truth = prompt_project
    viewer, widget = _open(make_napari_viewer, folder, qtbot, show=True)
    layer = widget.shapes_layer
    widget.assist.box_mode.value = True
    assert layer.mode == "add_rectangle"
    k = int(np.argmax(truth.areas))
    x0, y0, x1, y1 = truth.boxes[k] + np.array([-2, -2, 2, 2])  # a loose box, as users drag
    start, end = xy_to_rowcol(np.array([[x0, y0], [x1, y1]]))
    _drag(layer, start, end)  # napari's rectangle tool, driven by mouse events
    qtbot.waitUntil(lambda: len(_prompted(widget)) == 1, timeout=30_000)
    assert "rectangle" not in list(layer.shape_type)  # the rectangle became the object
    [polygon] = _prompted(widget).polygons
    assert _iou(polygon, truth.polygons[k]) >= 0.7

    wait_saved(qtbot, widget)
    stored = widget.project.instances(widget.record["id"])
    assert stored.extra["source"].tolist() == ["prompted"]
    assert _iou(stored.polygons[0], truth.polygons[k]) >= 0.7
    actions = widget.project.effort(image=widget.record["id"])["rows"][0]["actions"]
    assert actions["prompted"] == 1 and actions["drawn"] == 0 and actions["deleted"] == 0

    if os.environ.get("LABELASSIST_SCREENSHOTS"):  # regenerate docs/napari_prompts.png
        import imageio.v3 as iio

        viewer.reset_view()
        qtbot.wait(200)
        iio.imwrite(DOCS / "napari_prompts.png", viewer.screenshot(canvas_only=False, flash=False))


@pytest.mark.gui
def test_a_dragged_rectangle_is_segmented_as_a_loose_box(make_napari_viewer, prompt_project, qtbot):
    """A rectangle dragged 8 px wide of a nucleus on every side: the plugin asks for
    ``loose=True`` (a second look in the first mask's bounds), whose result differs from the
    plain prompt's here and is nearer the truth."""
    folder, truth = prompt_project
    viewer, widget = _open(make_napari_viewer, folder, qtbot)
    layer, assist = widget.shapes_layer, widget.assist
    k = int(np.argmax(truth.areas))
    box = np.clip(truth.boxes[k] + np.array([-8, -8, 8, 8]), 0, 96)
    exclude = layer_to_instances(layer).polygons if len(layer.data) else None
    common = {"boxes": [box], "exclude": exclude}
    loose = assist.model.segment(assist.features, loose=True, **common).polygons[0]
    plain = assist.model.segment(assist.features, **common).polygons[0]
    assert not loose.equals(plain)
    assert _iou(loose, truth.polygons[k]) > _iou(plain, truth.polygons[k])
    assist.box_mode.value = True
    start, end = xy_to_rowcol(box.reshape(2, 2))
    _drag(layer, start, end)
    qtbot.waitUntil(lambda: len(_prompted(widget)) == 1, timeout=30_000)
    [polygon] = _prompted(widget).polygons
    assert _iou(polygon, loose) > 0.99


@pytest.mark.gui
def test_point_prompts_and_negative_points(make_napari_viewer, prompt_project, qtbot):
    folder, truth = prompt_project
    viewer, widget = _open(make_napari_viewer, folder, qtbot)
    layer = widget.shapes_layer
    widget.assist.point_mode.value = True
    assert layer.mode == "pan_zoom"
    order = np.argsort(truth.areas)[::-1]
    inside = [shapely.point_on_surface(truth.polygons[k]) for k in order[:2]]
    # a click on the biggest nucleus adds it
    _click(layer, xy_to_rowcol(np.array([[inside[0].x, inside[0].y]]))[0])
    qtbot.waitUntil(lambda: len(_prompted(widget)) == 1, timeout=30_000)
    assert _iou(_prompted(widget).polygons[0], truth.polygons[order[0]]) >= 0.7

    # an Alt-click is a negative point, shown until the next click uses it
    negative = xy_to_rowcol(np.array([[inside[1].x, inside[1].y]]))[0]
    _click(layer, negative, modifiers=["Alt"])
    assert widget.assist.points_layer is not None
    np.testing.assert_allclose(widget.assist.points_layer.data, [negative])
    assert viewer.layers.selection.active is layer  # clicks still go to the shapes
    _click(layer, negative)  # the same spot: the candidate covering it is excluded
    assert widget.assist.points_layer is None and widget.assist.negatives == []
    for polygon in _prompted(widget).polygons:
        assert not polygon.covers(inside[1])

    wait_saved(qtbot, widget)
    sources = widget.project.instances(widget.record["id"]).extra["source"]
    assert set(sources.tolist()) == {"prompted"}


@pytest.mark.gui
def test_refine_edges_replaces_the_outline_and_records_it(
    make_napari_viewer, prompt_project, qtbot
):
    folder, truth = prompt_project
    viewer, widget = _open(make_napari_viewer, folder, qtbot)
    layer = widget.shapes_layer
    before = _prompt_largest(qtbot, widget, truth)
    ids_before = set(layer.features["instance"].tolist())

    layer.selected_data = {0}
    assert widget.assist.refine() is not None
    qtbot.waitUntil(lambda: widget.assist.refine_worker is None, timeout=60_000)
    inst = layer_to_instances(layer, classes=widget.project.classes)
    [after] = inst.polygons
    assert not after.equals(before)  # the outline moved
    assert set(layer.features["instance"].tolist()) == ids_before  # same instance
    assert inst.extra["provenance"].tolist() == ["corrected"]

    wait_saved(qtbot, widget)
    actions = widget.project.effort(image=widget.record["id"])["rows"][0]["actions"]
    assert actions["refined"] == 1 and actions["edited"] == 0 and actions["prompted"] == 1
    stored = widget.project.instances(widget.record["id"])
    assert stored.extra["source"].tolist() == ["corrected"]
    assert stored.polygons[0].equals_exact(after, 1e-3)


@pytest.mark.gui
def test_undo_refine_puts_the_outline_back_before_and_after_a_save(
    make_napari_viewer, prompt_project, qtbot
):
    """Shift-U restores what the last refinement replaced (geometry, provenance), the
    save then records no refinement; after an autosave it saves the old outline again."""
    folder, truth = prompt_project
    viewer, widget = _open(make_napari_viewer, folder, qtbot)
    layer = widget.shapes_layer
    before = _prompt_largest(qtbot, widget, truth)
    [instance_id] = layer.features["instance"].tolist()

    def refine():
        layer.selected_data = {0}
        assert widget.assist.refine() is not None
        qtbot.waitUntil(lambda: widget.assist.refine_worker is None, timeout=60_000)
        [after] = layer_to_instances(layer, classes=widget.project.classes).polygons
        assert not after.equals(before)
        return after

    assert not widget.assist.undo_button.enabled  # nothing refined yet
    refine()
    assert instance_id in widget._refined
    assert widget.assist.undo_button.enabled
    assert widget.assist.undo_refine() == [instance_id]  # before the autosave
    assert not widget.assist.undo_button.enabled
    inst = layer_to_instances(layer, classes=widget.project.classes)
    assert inst.polygons[0].equals_exact(before, 1e-6)
    assert inst.extra["provenance"].tolist() == ["prompted"]
    assert inst.extra["instance_id"].tolist() == [instance_id]
    assert instance_id not in widget._refined
    assert widget.assist.undo_refine() == []  # one level
    wait_saved(qtbot, widget)
    actions = widget.project.effort(image=widget.record["id"])["rows"][0]["actions"]
    assert actions["refined"] == 0
    assert widget.project.instances(widget.record["id"]).polygons[0].equals_exact(before, 1e-3)

    after = refine()
    wait_saved(qtbot, widget)  # the refined outline is stored, then undone
    assert widget.project.instances(widget.record["id"]).polygons[0].equals_exact(after, 1e-3)
    assert widget.assist.undo_refine() == [instance_id]
    wait_saved(qtbot, widget)
    stored = widget.project.instances(widget.record["id"])
    assert stored.polygons[0].equals_exact(before, 1e-3)
    actions = widget.project.effort(image=widget.record["id"])["rows"][0]["actions"]
    assert actions["refined"] == 1 and actions["edited"] == 1


@pytest.mark.gui
def test_undo_refine_leaves_deleted_shapes_deleted(make_napari_viewer, prompt_project, qtbot):
    folder, truth = prompt_project
    viewer, widget = _open(make_napari_viewer, folder, qtbot)
    layer = widget.shapes_layer
    _prompt_largest(qtbot, widget, truth)
    layer.selected_data = {0}
    widget.assist.refine()
    qtbot.waitUntil(lambda: widget.assist.refine_worker is None, timeout=60_000)
    layer.selected_data = {0}
    layer.remove_selected()
    assert widget.assist.undo_refine() == []
    assert len(layer.data) == 0
    assert "0 outlines (1 edited or deleted since: kept)" in widget.assist.assist_status.value


@pytest.mark.gui
def test_prompted_objects_keep_off_existing_shapes(make_napari_viewer, prompt_project, qtbot):
    """With "Keep off existing shapes" (on by default) a box over an object half covered by
    a shape drawn earlier gives only the uncovered half; unchecked, the whole object."""
    folder, truth = prompt_project
    viewer, widget = _open(make_napari_viewer, folder, qtbot)
    layer = widget.shapes_layer
    assert widget.assist.keep_apart.value
    k = int(np.argmax(truth.areas))
    x0, y0, x1, y1 = truth.boxes[k]
    half = shapely.box(x0 - 1, y0 - 1, (x0 + x1) / 2, y1 + 1)
    layer.add(xy_to_rowcol(np.asarray(half.exterior.coords)[:-1]), shape_type="polygon")
    box = truth.boxes[k] + np.array([-2, -2, 2, 2])
    assert widget.assist.prompt(boxes=[box])
    [kept] = _prompted(widget).polygons
    assert kept.intersection(half).area < 1e-6
    assert _iou(kept, truth.polygons[k].difference(half)) >= 0.7

    widget.assist.keep_apart.value = False
    assert widget.assist.prompt(boxes=[box])
    [whole] = [p for p in _prompted(widget).polygons if not p.equals(kept)]
    assert whole.intersection(half).area > 0.3 * truth.polygons[k].area
    assert _iou(whole, truth.polygons[k]) >= 0.7


@pytest.mark.gui
def test_empty_prompt_adds_nothing_and_says_so(make_napari_viewer, prompt_project, qtbot):
    folder, truth = prompt_project
    viewer, widget = _open(make_napari_viewer, folder, qtbot)
    background = np.ones((96, 96), bool)
    for polygon in truth.polygons:
        x0, y0, x1, y1 = np.asarray(polygon.bounds).astype(int)
        background[max(y0 - 4, 0) : y1 + 4, max(x0 - 4, 0) : x1 + 4] = False
    ys, xs = np.nonzero(background)
    assert widget.assist.prompt(points=[[xs[0] + 0.5, ys[0] + 0.5]]) == []
    assert len(widget.shapes_layer.data) == 0
    assert "nothing found" in widget.assist.assist_status.value


def test_an_edited_or_relabelled_prompted_shape_becomes_corrected():
    from labelassist_napari._prompts import add_object
    from labelassist_napari._style import shapes_layer_kwargs
    from labelassist_napari._tracker import tracker_for
    from napari.layers import Shapes
    from review_helpers import edit_shape

    layer = Shapes(**shapes_layer_kwargs(la.Instances.empty((32, 32)), classes=["a", "b"]))
    tracker = tracker_for(layer)
    box = la.Instances(
        [shapely.box(2, 2, 9, 9), shapely.box(12, 12, 20, 20)], [0, 0], [0.9, 0.8], (32, 32)
    )
    add_object(layer, box[[0]])
    add_object(layer, box[[1]])
    assert layer.features["provenance"].tolist() == ["prompted", "prompted"]
    edit_shape(layer, 0, layer.data[0] + 1.0)
    tracker.set_class([1], "b")
    assert layer.features["provenance"].tolist() == ["corrected", "corrected"]
    assert layer.features["class"].tolist() == ["a", "b"]


@pytest.mark.gui
def test_shrink_and_grow_move_the_selected_outline_and_undo_the_series(
    make_napari_viewer, prompt_project, qtbot
):
    """Shift-S / Shift-G move the selected outline by the step (it stays selected for the
    next press), the save records a refinement, and Undo refine takes the whole series back."""
    from labelassist_napari._assist import GROW_KEY, SHRINK_KEY
    from napari.utils.key_bindings import coerce_keybinding

    folder, truth = prompt_project
    viewer, widget = _open(make_napari_viewer, folder, qtbot)
    layer = widget.shapes_layer
    before = _prompt_largest(qtbot, widget, truth)
    [instance_id] = layer.features["instance"].tolist()

    def outline():
        [polygon] = layer_to_instances(layer, classes=widget.project.classes).polygons
        return polygon

    assert widget.assist.nudge(-1) == []  # nothing selected
    assert "select the shapes" in widget.assist.assist_status.value
    layer.selected_data = {0}
    widget.assist.nudge_step.value = 0.5
    viewer.keymap[coerce_keybinding(SHRINK_KEY)](viewer)  # the key binding, as a key press calls it
    once = outline()
    assert once.within(before) and not once.equals(before)
    gap = shapely.distance(shapely.points(shapely.get_coordinates(once.exterior)), before.exterior)
    assert gap.min() >= 0.5 - 1e-4  # the layer holds float32 coordinates
    assert layer.selected_data == {0}  # still selected: press again
    assert widget.assist.nudge(-1) == [instance_id]
    twice = outline()
    assert twice.within(once) and twice.area < once.area
    assert layer_to_instances(layer, classes=widget.project.classes).extra[
        "provenance"
    ].tolist() == ["corrected"]
    assert widget.assist.undo_button.enabled
    assert widget.assist.undo_refine() == [instance_id]  # both presses at once
    assert outline().equals_exact(before, 1e-6)

    layer.selected_data = {0}
    viewer.keymap[coerce_keybinding(GROW_KEY)](viewer)
    grown = outline()
    assert before.within(grown) and grown.area > before.area
    wait_saved(qtbot, widget)
    actions = widget.project.effort(image=widget.record["id"])["rows"][0]["actions"]
    assert actions["refined"] == 1 and actions["edited"] == 0
    assert widget.project.instances(widget.record["id"]).polygons[0].equals_exact(grown, 1e-3)


def test_extreme_clicks_make_the_tight_box_of_the_pixels_clicked():
    from labelassist_napari._prompts import extreme_clicks_to_xy

    from labelassist.model.box_prompts import extreme_boxes

    # clicks anywhere in pixels (row, col) (3, 0), (0, 4), (6, 7), (9, 2): the box covers
    # columns 0-7 and rows 0-9 whole, and the pixels clicked are those (column, row)
    clicks = [[3.4, -0.5], [-0.2, 4.0], [6.0, 7.49], [9.3, 2.0]]
    boxes, pixels = extreme_boxes(extreme_clicks_to_xy(clicks)[None])
    assert boxes.tolist() == [[0.0, 0.0, 8.0, 10.0]]
    assert pixels[0].tolist() == [[0, 3], [4, 0], [7, 6], [2, 9]]
    with pytest.raises(ValueError, match="needs 4 clicks"):
        extreme_clicks_to_xy(clicks[:3])


@pytest.mark.gui
def test_four_extreme_clicks_prompt_a_tight_box(make_napari_viewer, prompt_project, qtbot):
    """Shift-X, then clicks on the leftmost, topmost, rightmost and bottommost pixels of a
    nucleus (shown until the fourth) add it, touching the box on all four sides (which the
    plain box prompt on the same box does not)."""
    from labelassist_napari._assist import EXTREME_KEY
    from napari.utils.key_bindings import coerce_keybinding

    folder, truth = prompt_project
    shots = bool(os.environ.get("LABELASSIST_SCREENSHOTS"))  # regenerate docs/napari_extreme.png
    viewer, widget = _open(make_napari_viewer, folder, qtbot, show=shots)
    layer = widget.shapes_layer
    viewer.keymap[coerce_keybinding(EXTREME_KEY)](viewer)
    assert widget.assist.extreme_mode.value and layer.mode == "pan_zoom"
    # a nucleus whose plain box prompt falls a pixel short of a side of its box
    model, feats = widget.assist.model, widget.assist.features
    plain = model.segment(feats, boxes=truth.boxes).polygons
    short = [j for j, p in enumerate(plain) if not np.allclose(p.bounds, truth.boxes[j])]
    assert short, "the image needs a nucleus whose plain prompt misses a side"
    k = short[0]
    mask = truth[[k]].masks()[0]
    rows, cols = np.nonzero(mask)
    extremes = [
        (rows[cols == cols.min()][0], cols.min()),
        (rows.min(), cols[rows == rows.min()][0]),
        (rows[cols == cols.max()][0], cols.max()),
        (rows.max(), cols[rows == rows.max()][0]),
    ]
    for n, rowcol in enumerate(extremes[:3], start=1):
        _click(layer, np.array(rowcol, dtype=float))
        assert len(widget.assist.extremes_layer.data) == n
    assert len(_prompted(widget)) == 0
    if shots:
        import imageio.v3 as iio

        viewer.reset_view()
        qtbot.wait(200)
        iio.imwrite(DOCS / "napari_extreme.png", viewer.screenshot(canvas_only=False, flash=False))
    _click(layer, np.array(extremes[3], dtype=float))
    qtbot.waitUntil(lambda: len(_prompted(widget)) == 1, timeout=30_000)
    assert widget.assist.extremes == [] and widget.assist.extremes_layer is None
    [polygon] = _prompted(widget).polygons
    assert _iou(polygon, truth.polygons[k]) >= 0.8
    np.testing.assert_allclose(polygon.bounds, truth.polygons[k].bounds)  # touches all 4 sides
    xy = np.array(extremes, dtype=float)[:, ::-1] + 0.5  # the clicks as the library's x, y
    expected = model.segment(feats, extreme_points=[xy]).polygons[0]
    assert _iou(polygon, expected) > 0.99  # the panel sends the clicks themselves
    viewer.keymap[coerce_keybinding(EXTREME_KEY)](viewer)  # off again
    assert not widget.assist.extreme_mode.value and layer.mode == "select"


@pytest.mark.gui
def test_undo_refine_of_the_selected_shapes_only(make_napari_viewer, prompt_project, qtbot):
    """Refine two outlines at once, select one, Undo refine: only it goes back; the other
    stays refined and undoable; a second Undo (nothing selected) takes it back too."""
    folder, truth = prompt_project
    viewer, widget = _open(make_napari_viewer, folder, qtbot)
    layer = widget.shapes_layer
    for k in np.argsort(truth.areas)[::-1][:2]:
        assert widget.assist.prompt(boxes=[truth.boxes[k] + np.array([-2, -2, 2, 2])])
    before = layer_to_instances(layer, classes=widget.project.classes)
    ids = before.extra["instance_id"].tolist()
    layer.selected_data = set(range(len(layer.data)))
    widget.assist.refine()
    qtbot.waitUntil(lambda: widget.assist.refine_worker is None, timeout=60_000)
    refined = layer_to_instances(layer, classes=widget.project.classes)

    def outline(inst, instance_id):
        return inst.polygons[inst.extra["instance_id"].tolist().index(instance_id)]

    assert all(not outline(refined, i).equals(outline(before, i)) for i in ids)
    first, second = ids
    layer.selected_data = {layer.features["instance"].tolist().index(first)}
    assert widget.assist.undo_refine() == [first]
    now = layer_to_instances(layer, classes=widget.project.classes)
    assert outline(now, first).equals_exact(outline(before, first), 1e-6)
    assert outline(now, second).equals_exact(outline(refined, second), 1e-6)
    assert widget.assist.undo_button.enabled
    layer.selected_data = set()
    assert widget.assist.undo_refine() == [second]
    now = layer_to_instances(layer, classes=widget.project.classes)
    assert outline(now, second).equals_exact(outline(before, second), 1e-6)
    assert not widget.assist.undo_button.enabled
