"""Keypoints in napari (#16 item 7): a Points layer linked to the polygons, the skeleton as
lines, editing autosaved through the project, the reader, the writer and pre-annotation
(xvfb), and the screenshot docs/napari_keypoints.png (with ``LABELASSIST_SCREENSHOTS=1``).
"""

from __future__ import annotations

import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from labelassist_napari._convert import rowcol_to_xy, xy_to_rowcol
from labelassist_napari._io import project_layer_data, read_coco_layers, write_coco
from labelassist_napari._keypoints_layer import (
    keypoint_colors,
    points_layer_kwargs,
    points_to_keypoints,
    set_visibility,
)
from labelassist_napari._review import ReviewWidget
from labelassist_napari._style import shapes_layer_kwargs
from napari.layers import Points, Shapes
from review_helpers import wait_saved

import labelassist as la
from labelassist.synthetic.landmarks import synthetic_landmarks

pytestmark = pytest.mark.gui

DOCS = Path(__file__).resolve().parents[2] / "docs"
NAMES = ["head", "tail"]


@pytest.fixture
def keypoint_project(tmp_path):
    """A project naming head and tail, 2 synthetic worm images saved with their truth."""
    folder = tmp_path / "proj"
    truths = []
    with la.Project.create(folder, classes=["worm"], keypoints=NAMES, skeleton=[(0, 1)]) as p:
        for seed in range(2):
            image, truth = synthetic_landmarks((96, 96), kind="worms", seed=seed)
            iio.imwrite(tmp_path / f"w{seed}.png", image)
            [number] = p.add_images(tmp_path / f"w{seed}.png")
            p.save_instances(number, truth, source="model")
            truths.append(truth)
    return folder, truths


@pytest.fixture
def widget(make_napari_viewer, keypoint_project):
    viewer = make_napari_viewer()
    widget = ReviewWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.open_project(keypoint_project[0])
    return widget


def _stored(widget):
    return widget.project.instances(widget.record["id"])


def _row(layer, instance, name):
    features = layer.features
    [row] = np.flatnonzero(
        (features["instance"].to_numpy() == instance) & (features["keypoint"] == name)
    )
    return int(row)


def test_the_points_layer_shows_the_stored_keypoints(widget):
    points = widget.keypoints.points_layer
    assert isinstance(points, Points) and points in widget.viewer.layers
    stored = _stored(widget)
    ids = stored.extra["instance_id"]
    assert list(points.features.columns) == ["instance", "keypoint", "visibility"]
    assert len(points.data) == int((stored.keypoints[:, :, 2] > 0).sum())
    for p, (instance, name, v) in enumerate(points.features.itertuples(index=False)):
        truth = stored.keypoints[list(ids).index(instance), NAMES.index(name)]
        assert v == truth[2] == 2
        assert rowcol_to_xy(points.data[p : p + 1])[0].tolist() == truth[:2].tolist()
        # napari puts pixel centres on integers: the keypoint at pixel (i, j) sits at (i, j)
        assert points.data[p].tolist() == [truth[1] - 0.5, truth[0] - 0.5]
    colors = keypoint_colors(NAMES)
    from napari.utils.colormaps.standardize_color import transform_color

    for p, name in enumerate(points.features["keypoint"]):
        assert np.allclose(points.face_color[p], transform_color(colors[name])[0])
    # one skeleton line per worm, from its head to its tail
    bones = widget.keypoints.skeleton_layer
    assert isinstance(bones, Shapes) and len(bones.data) == len(stored)
    assert set(bones.shape_type) == {"line"}
    heads = {tuple(points.data[_row(points, i, "head")]) for i in ids}
    assert {tuple(line[0]) for line in bones.data} == heads
    assert not widget.keypoint_box.native.isHidden()  # the viewer is not shown: not .visible
    assert not widget.hide_button.native.isHidden()
    assert widget.keypoint_box.choices == tuple(NAMES)
    # the skeleton layer is not taken for the image's instances
    assert widget.shapes_layer is not bones


def test_move_hide_delete_and_add_points_are_autosaved(widget, qtbot):
    points = widget.keypoints.points_layer
    before = _stored(widget)
    ids = before.extra["instance_id"].tolist()
    first, second = ids[0], ids[1]
    # 1. move the first worm's head by 1.5 px down (napari's move tool sets the data)
    data = points.data.copy()
    head = _row(points, first, "head")
    data[head] += (1.5, 0.0)
    points.data = data
    wait_saved(qtbot, widget)
    after = _stored(widget)
    moved = before.keypoints[0, 0] + (0, 1.5, 0)
    assert after.keypoints[0, 0].tolist() == moved.tolist()
    assert after.extra["source"].tolist()[:2] == ["corrected", "model"]
    assert after.keypoints[1:].tolist() == before.keypoints[1:].tolist()
    assert widget.project.effort(image=widget.record["id"])["rows"][0]["actions"]["edited"] == 1
    bones = widget.keypoints.skeleton_layer  # the skeleton follows the point
    assert any(np.allclose(line[0], data[head]) for line in bones.data)
    # 2. hide the second worm's tail (Shift-H acts on the selected points)
    tail = _row(points, second, "tail")
    points.selected_data = {tail}
    assert widget.toggle_hidden() == 1
    assert str(points.symbol[tail]) == "ring"
    wait_saved(qtbot, widget)
    assert _stored(widget).keypoints[1, 1, 2] == 1
    # 3. delete the first worm's tail
    points.selected_data = {_row(points, first, "tail")}
    points.remove_selected()
    wait_saved(qtbot, widget)
    assert _stored(widget).keypoints[0, 1].tolist() == [0, 0, 0]
    # 4. add a tail back, inside the first worm's outline: it goes to that worm
    widget.keypoint_box.value = "tail"
    inside = before.polygons[0].representative_point()
    spot = xy_to_rowcol(np.array([[inside.x, inside.y]]))
    points.selected_data = set()
    points.add(spot)
    wait_saved(qtbot, widget)
    stored = _stored(widget)
    assert stored.keypoints[0, 1].tolist() == [inside.x, inside.y, 2]
    assert points.features["instance"].iloc[-1] == first  # the point knows its worm now
    assert [h["source"] for h in widget.project.history(widget.record["id"])] == [
        "model",
        *["corrected"] * 4,
    ]
    # undo in the project, reopen: the points of the version before
    widget.project.undo(widget.record["id"])
    widget.open_image(widget.record["id"])
    points = widget.keypoints.points_layer
    assert len(points.data) == int((stored.keypoints[:, :, 2] > 0).sum()) - 1


def test_deleting_an_outline_deletes_its_points(widget, qtbot):
    layer, points = widget.shapes_layer, widget.keypoints.points_layer
    victim = int(layer.features["instance"].iloc[0])
    n_points = len(points.data)
    layer.selected_data = {
        k for k, i in enumerate(layer.features["instance"].tolist()) if i == victim
    }
    layer.remove_selected()
    wait_saved(qtbot, widget)
    assert victim not in _stored(widget).extra["instance_id"].tolist()
    assert len(points.data) == n_points - 2
    assert victim not in points.features["instance"].tolist()
    assert len(widget.keypoints.skeleton_layer.data) == len(_stored(widget))


def test_a_point_outside_every_outline_is_not_saved(widget, qtbot):
    points = widget.keypoints.points_layer
    n = len(points.data)
    background = np.argwhere(_background(widget))[0]  # a pixel far from every worm
    points.add(background[None].astype(float))
    wait_saved(qtbot, widget)
    assert "lie in no outline" in widget.status.value
    assert len(points.data) == n
    assert int((_stored(widget).keypoints[:, :, 2] > 0).sum()) == n


def _background(widget):
    """Pixels farther than 5 px from every stored outline."""
    from scipy import ndimage

    masks = _stored(widget).masks()  # (N, H, W)
    return ndimage.distance_transform_edt(~masks.any(axis=0)) > 5


def test_preannotation_shows_the_new_keypoints(widget):
    """As the Pre-annotate widget does: save model output, add its Shapes layer."""
    image = widget.record["id"]
    proposal = _stored(widget)
    proposal = proposal.replace(keypoints=proposal.keypoints + np.array([1.0, 0.0, 0.0]), extra={})
    revision = widget.project.save_instances(image, proposal, source="model")
    old = widget.shapes_layer
    widget.viewer.layers.remove(old)
    kwargs = shapes_layer_kwargs(
        revision.instances,
        classes=widget.project.classes,
        metadata={"project": str(widget.project.folder), "image": image,
                  "version": revision.version},
    )  # fmt: skip
    widget.viewer.add_shapes(**kwargs)
    points = widget.keypoints.points_layer
    assert widget.version == revision.version
    shown, _, dropped = points_to_keypoints(points, revision.instances, NAMES)
    assert dropped == 0 and shown.tolist() == revision.instances.keypoints.tolist()
    assert sum(isinstance(layer, Points) for layer in widget.viewer.layers) == 1


def test_a_project_without_keypoints_has_no_keypoint_layers(review_widget):
    assert review_widget.keypoints.points_layer is None
    assert review_widget.keypoint_box.native.isHidden()
    assert review_widget.hide_button.native.isHidden()
    assert not any(isinstance(layer, Points) for layer in review_widget.viewer.layers)
    with pytest.raises(ValueError, match="has no keypoints"):
        review_widget.toggle_hidden()


def test_reader_and_writer_carry_keypoints(keypoint_project, tmp_path, make_napari_viewer):
    folder, truths = keypoint_project
    with la.Project.open(folder) as project:
        record = project.images()[0]
        layers = project_layer_data(project, record)
        assert [kind for _, _, kind in layers] == ["image", "shapes", "shapes", "points"]
    viewer = make_napari_viewer()
    for data, kwargs, kind in layers:
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    # the writer: the instances' Shapes layer and its Points layer (the skeleton is skipped)
    saved = [
        layer.as_layer_data_tuple()
        for layer in viewer.layers
        if layer.__class__.__name__ != "Image"
    ]
    out = write_coco(str(tmp_path / "out.json"), saved)
    back = la.read_coco(out[0])
    assert back.keypoints == NAMES and back.skeleton == [(0, 1)]
    [inst] = back.instances.values()
    assert inst.keypoints.tolist() == truths[0].keypoints.tolist()
    # a COCO file with keypoints opens with its points
    coco_layers = read_coco_layers(out[0])
    points = [(d, k) for d, k, kind in coco_layers if kind == "points"]
    assert len(points) == 1 and len(points[0][0]) == int((truths[0].keypoints[:, :, 2] > 0).sum())
    # a Review widget opened on the reader's layers replaces them by its own
    widget = ReviewWidget(viewer)
    widget.open_project(folder)
    assert sum(isinstance(layer, Points) for layer in viewer.layers) == 1
    assert widget.keypoints.points_layer in viewer.layers


def test_the_points_are_drawn_in_their_colours_and_the_screenshot(
    make_napari_viewer, keypoint_project, qtbot
):
    """Heads (red) and tails (blue) are drawn where they are; with
    ``LABELASSIST_SCREENSHOTS=1`` the window is saved as docs/napari_keypoints.png."""
    viewer = make_napari_viewer(show=True)
    widget = ReviewWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.open_project(keypoint_project[0])
    points = widget.keypoints.points_layer
    points.selected_data = {_row(points, int(points.features["instance"].iloc[0]), "tail")}
    widget.toggle_hidden()  # one hidden point, drawn as a ring
    points.selected_data = set()
    viewer.window._qt_window.resize(1500, 950)
    qtbot.wait(300)
    viewer.reset_view()
    qtbot.wait(300)
    canvas = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    points.visible = False
    without = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    points.visible = True
    for name, rgb in (("head", (214, 39, 40)), ("tail", (31, 119, 180))):
        near = np.abs(canvas - np.array(rgb)).sum(-1) < 60
        before = np.abs(without - np.array(rgb)).sum(-1) < 60
        assert (near & ~before).sum() > 20, name  # the points drew pixels of their colour
    if os.environ.get("LABELASSIST_SCREENSHOTS"):
        qtbot.wait(300)
        shot = viewer.screenshot(canvas_only=False, flash=False)
        iio.imwrite(DOCS / "napari_keypoints.png", shot[..., :3])


def _one_worm():
    _, truth = synthetic_landmarks((64, 64), kind="worms", seed=3)
    return truth[:1]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: points_layer_kwargs(_one_worm(), ["head"]),
            ValueError,
            r"2 keypoints per object but 1 names",
        ),
        (
            lambda: set_visibility(Points(np.zeros((1, 2))), [0], 3),
            ValueError,
            "visibility must be 1 \\(hidden\\) or 2 \\(visible\\)",
        ),
        (
            lambda: write_coco(
                "x.json",
                [
                    ([np.array([[0.0, 0], [0, 4], [4, 4]])], {"name": "s"}, "shapes"),
                    _points_data(["head", "tail"]),
                    _points_data(["pole", "tail"]),
                ],
            ),
            ValueError,
            "the Points layers name different keypoints",
        ),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def _points_data(names):
    kwargs = points_layer_kwargs(_one_worm(), names)
    kwargs.pop("feature_defaults")
    return kwargs.pop("data"), kwargs, "points"


def test_hiding_needs_selected_points(widget):
    widget.keypoints.points_layer.selected_data = set()
    with pytest.raises(ValueError, match="select keypoints first"):
        widget.toggle_hidden()
    widget._guard(widget.toggle_hidden)  # the button: the message in the status line
    assert "select keypoints first" in widget.status.value
