"""The Review stacks widget (#15 item 5): a project stack in nD, per-plane autosave, object
ids as colour and text, copy to the next plane (copy and box prompt), label volume export,
and the screenshot docs/napari_stack.png. Run under ``xvfb-run -a``.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import shapely

import labelassist as la
from labelassist.io import read_stack
from labelassist.synthetic_stacks import synthetic_zstack

pytestmark = pytest.mark.gui

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
def stack_project(tmp_path):
    """A project with one 5 x 64 x 64 synthetic z-stack pre-annotated with its true objects."""
    image, objects, labels = synthetic_zstack((5, 64, 64), n=4, seed=2)
    with la.Project.create(tmp_path / "proj", classes=["nucleus", "debris"]) as project:
        stack = project.add_stack(image, axes="ZYX", name="embryo")
        project.save_stack_instances(stack, objects)
    return tmp_path / "proj", objects, labels


@pytest.fixture
def widget(make_napari_viewer, stack_project):
    from labelassist_napari._stack_review import StackReviewWidget

    viewer = make_napari_viewer(show=True)
    widget = StackReviewWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Review stacks")
    widget.open_project(stack_project[0])
    return widget


def _shot(viewer) -> np.ndarray:
    return viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)


def test_a_stack_opens_with_its_axes_and_objects_per_plane(widget, stack_project):
    _, objects, labels = stack_project
    viewer, layer = widget.viewer, widget.shapes_layer
    assert widget.image_layer.data.shape == (5, 64, 64)
    assert tuple(viewer.dims.axis_labels) == ("z", "y", "x")
    assert layer.ndim == 3
    # one shape per (simple) polygon, each on its plane, with its object id
    planes = np.array([int(round(v[0, 0])) for v in layer.data])
    for k, plane in enumerate(objects.planes):
        assert sorted(layer.features["object"][planes == k]) == sorted(
            plane.extra["object_id"].tolist()
        )
    assert layer.text.string.format == "{object}"
    # each object has its own edge colour
    colours = {tuple(c) for c in np.round(layer.edge_color, 3).tolist()}
    assert len(colours) == len(objects.object_ids)
    # the sliders show each plane's objects: with the image hidden, planes 0 and 4 (other
    # outlines) look different, and the same once the shapes are hidden too
    assert (labels[0] != labels[4]).any()
    widget.image_layer.visible = False
    viewer.reset_view()
    shots = []
    for plane in (0, 4, 0):
        widget.show_plane(plane)
        shots.append(_shot(viewer))
    assert np.abs(shots[0] - shots[1]).sum(-1).max() > 60
    assert np.abs(shots[0] - shots[2]).max() == 0
    layer.visible = False
    widget.show_plane(4)
    hidden = _shot(viewer)
    widget.show_plane(0)
    assert np.abs(_shot(viewer) - hidden).max() == 0


def test_edits_are_saved_per_plane(widget, stack_project):
    folder, objects, _ = stack_project
    layer = widget.shapes_layer
    widget.show_plane(1)
    planes = np.array([int(round(v[0, 0])) for v in layer.data])
    first = int(np.flatnonzero(planes == 1)[0])
    deleted_object = int(layer.features["object"].iloc[first])
    layer.selected_data = {first}
    layer.remove_selected()
    assert widget.save_pending
    # a new outline drawn on plane 3
    widget.show_plane(3)
    layer.add_polygons([np.array([[3, 2, 2], [3, 2, 9], [3, 9, 9], [3, 9, 2]], float)])
    assert widget.save_now() == [1, 3]
    assert not widget.save_pending
    with la.Project.open(folder) as project:
        plane1, plane3 = project.plane(1, 1), project.plane(1, 3)
        assert [project.image(project.plane(1, k))["version"] for k in range(5)] == [1, 2, 1, 2, 1]
        stored = project.instances(plane1)
        assert len(stored) == len(objects.planes[1]) - 1
        assert deleted_object not in stored.extra["object_id"].tolist()
        assert project.effort(image=plane1)["rows"][0]["actions"]["deleted"] == 1
        drawn = project.instances(plane3)
        assert drawn.extra["source"].tolist().count("human") == 1
        new_object = int(drawn.extra["object_id"][drawn.extra["source"] == "human"][0])
        assert new_object > int(objects.object_ids.max())
        assert project.effort(image=plane3)["rows"][0]["actions"]["drawn"] == 1
        box = drawn.polygons[drawn.extra["source"] == "human"][0]
        assert shapely.equals_exact(shapely.normalize(box), shapely.normalize(
            shapely.box(2.5, 2.5, 9.5, 9.5)), tolerance=1e-6)  # fmt: skip
    # the layer now holds the stored ids (the next save of plane 3 changes nothing)
    assert new_object in layer.features["object"].tolist()


def test_an_edit_is_saved_on_the_plane_of_its_shape(widget, stack_project):
    folder, objects, _ = stack_project
    layer = widget.shapes_layer
    widget.show_plane(0)  # the sliders elsewhere: the shape's own plane counts
    planes = np.array([int(round(v[0, 0])) for v in layer.data])
    row = int(np.flatnonzero(planes == 4)[0])
    layer.selected_data = {row}
    layer.remove_selected()
    assert widget.save_now() == [4]
    with la.Project.open(folder) as project:
        assert len(project.instances(project.plane(1, 4))) == len(objects.planes[4]) - 1
        assert project.effort(image=project.plane(1, 4))["rows"][0]["actions"]["deleted"] == 1
        assert project.image(project.plane(1, 0))["version"] == 1


def test_a_time_lapse_opens_with_its_time_axis(make_napari_viewer, tmp_path):
    from labelassist_napari._stack_review import StackReviewWidget

    from labelassist.synthetic_stacks import synthetic_timelapse

    movie, tracks, _ = synthetic_timelapse((4, 48, 48), n=3, seed=0)
    with la.Project.create(tmp_path / "p", classes=["nucleus"]) as project:
        project.save_stack_instances(project.add_stack(movie, axes="TYX"), tracks)
    widget = StackReviewWidget(make_napari_viewer())
    widget.open_project(tmp_path / "p")
    assert tuple(widget.viewer.dims.axis_labels) == ("t", "y", "x")
    oid = int(tracks.planes[0].extra["object_id"][0])
    _select(widget, oid, 0)
    assert widget.copy_to_next_plane() == 1  # the next frame
    widget.save_now()
    with la.Project.open(tmp_path / "p") as project:
        frame = project.instances(project.plane(1, 1))
        assert frame.extra["object_id"].tolist().count(oid) == 1 + (
            oid in tracks.planes[1].extra["object_id"].tolist()
        )


def _remove(widget, oid, plane):
    """Delete an object's outline on one plane (through the layer, as a user would)."""
    layer = widget.shapes_layer
    planes = np.array([int(round(v[0, 0])) for v in layer.data])
    rows = np.flatnonzero((planes == plane) & (layer.features["object"].to_numpy() == oid))
    assert rows.size
    widget.show_plane(plane)
    layer.selected_data = set(rows.tolist())
    layer.remove_selected()


def _select(widget, oid, plane):
    layer = widget.shapes_layer
    planes = np.array([int(round(v[0, 0])) for v in layer.data])
    rows = np.flatnonzero((planes == plane) & (layer.features["object"].to_numpy() == oid))
    widget.show_plane(plane)
    layer.selected_data = {int(rows[0])}


def test_copy_to_next_plane_copies_without_a_model(widget, stack_project):
    folder, objects, _ = stack_project
    oid, plane = int(objects.planes[1].extra["object_id"][0]), 1
    polygon = objects.planes[1].polygons[0]
    _remove(widget, oid, plane + 1)
    _select(widget, oid, plane)
    assert widget.copy_to_next_plane() == plane + 1
    assert widget.current_plane == plane + 1
    widget.save_now()
    with la.Project.open(folder) as project:
        there = project.instances(project.plane(1, plane + 1))
        copied = there[there.extra["object_id"] == oid]
        assert len(copied) == 1 and copied.extra["source"].tolist() == ["human"]
        assert shapely.equals_exact(
            shapely.normalize(copied.polygons[0]), shapely.normalize(polygon), tolerance=1e-4
        )
        assert project.stack_instances(1).planes[plane + 1].extra["object_id"].tolist().count(
            oid
        ) == 1  # fmt: skip


def test_copy_to_next_plane_is_a_box_prompt_with_a_model(widget, stack_project):
    folder, objects, labels = stack_project
    # an object present on both planes: the prompt should find its next outline
    oid = int(objects.object_ids[0])
    planes = [k for k, p in enumerate(objects.planes) if oid in p.extra["object_id"]]
    assert len(planes) >= 2
    plane = planes[0]
    # remove the object's outline on the next plane, then copy it there by prompt
    _remove(widget, oid, plane + 1)
    widget.load_model(la.load_model("starter", device="cpu"))
    _select(widget, oid, plane)
    assert widget.copy_to_next_plane() == plane + 1
    widget.save_now()
    with la.Project.open(folder) as project:
        there = project.instances(project.plane(1, plane + 1))
        got = there[there.extra["object_id"] == oid]
        assert got.extra["source"].tolist() == ["prompted"]
        truth = la.masks_to_polygons(labels[plane + 1][None] == oid)[0]
        iou = got.polygons[0].intersection(truth).area / got.polygons[0].union(truth).area
        assert iou > 0.6, iou  # the model's outline on the next plane
        source = objects.planes[plane].polygons[objects.planes[plane].extra["object_id"] == oid][0]
        assert not shapely.equals_exact(
            shapely.normalize(got.polygons[0]), shapely.normalize(source), tolerance=1e-3
        )  # not a copy


def test_export_label_volume_and_the_screenshot(widget, stack_project, tmp_path):
    folder, objects, labels = stack_project
    out = widget.export_labels(tmp_path / "labels.tif")
    volume, axes = read_stack(out)
    assert axes == "ZYX" and volume.dtype == np.uint32 and np.array_equal(volume, labels)
    with pytest.raises(ValueError, match="must be a .tif file"):
        widget.export_labels(tmp_path / "labels.json")
    # the screenshot for docs/stacks.md: the stack reviewed at its middle plane
    widget.show_plane(2)
    widget.viewer.reset_view()
    shot = widget.viewer.screenshot(canvas_only=False, flash=False)
    assert shot.shape[0] > 300 and shot[..., :3].std() > 10
    iio.imwrite(DOCS / "napari_stack.png", shot[..., :3])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda w: w.copy_to_next_plane(), "select an object"),
        (lambda w: w.export_labels("x.png"), "must be a .tif file"),
        (lambda w: w.open_stack(9), "stack 9 is not in this project"),
    ],
)
def test_bad_actions_say_what_to_do(widget, call, match):
    widget.shapes_layer.selected_data = set()
    with pytest.raises(ValueError, match=match):
        call(widget)


def test_without_a_project_the_widget_says_so(make_napari_viewer):
    from labelassist_napari._stack_review import StackReviewWidget

    widget = StackReviewWidget(make_napari_viewer())
    with pytest.raises(ValueError, match="open a project first"):
        widget.next_stack()
    widget._guard(widget.accept_plane)
    assert "open a project first" in widget.status.value
