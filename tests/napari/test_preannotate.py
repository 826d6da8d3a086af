"""The Pre-annotate widget in a real viewer (run under ``xvfb-run -a``)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from labelassist_napari._convert import layer_to_instances
from labelassist_napari._preannotate import PreannotateWidget, predict_job
from napari.layers import Shapes

import labelassist as la

pytestmark = pytest.mark.gui


@pytest.fixture
def viewer(make_napari_viewer):
    import torch

    torch.manual_seed(0)  # untrained models: the same weights every run
    return make_napari_viewer()


@pytest.fixture
def widget(viewer):
    w = PreannotateWidget(viewer)
    viewer.window.add_dock_widget(w)
    return w


def _wait(qtbot, widget, timeout=120_000):
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)


def _shapes_layers(viewer):
    return [layer for layer in viewer.layers if isinstance(layer, Shapes)]


def test_untrained_model_proposals_become_a_shapes_layer(viewer, widget, qtbot):
    image, _ = la.synthetic_nuclei((96, 96), seed=0)
    viewer.add_image(image, name="nuclei")
    assert widget.image.value is viewer.layers["nuclei"]
    widget.model.value = "untrained (testing)"
    widget.classes.value = "nucleus"
    widget.threshold.value = 0.0
    widget.device.value = "cpu"
    worker = widget.run()
    assert worker is not None and widget.busy and not widget.run_button.enabled
    _wait(qtbot, widget)
    [layer] = _shapes_layers(viewer)
    assert list(layer.features.columns) == ["instance", "class", "score", "provenance"]
    # the layer holds exactly what the same model predicts
    [model] = widget._models.values()
    expected = model.predict(image, score_threshold=0.0)
    got = layer_to_instances(layer)
    assert len(got) == len(expected)
    np.testing.assert_allclose(got.scores, expected.scores, rtol=1e-6)
    np.testing.assert_allclose(got.areas, expected.areas, rtol=1e-4, atol=1e-3)
    assert set(layer.features["provenance"]) <= {"model"}
    # low scores are filled (flagged), the others are not
    low = layer.features["score"].to_numpy() < widget.low_score.value
    assert (layer.face_color[low, 3] > 0).all() and (layer.face_color[~low, 3] == 0).all()
    assert widget.run_button.enabled and not widget.progress.visible


def test_predict_job_yields_progress_and_uses_the_cache():
    model = la.load_model(None, classes=["nucleus"], device="cpu")
    spec = (None, ("nucleus",), "cpu")
    job = predict_job(
        spec,
        np.zeros((64, 64), np.uint8),
        score_threshold=0.99,
        tile_size=None,
        cache={spec: model},
    )
    messages = []
    try:
        while True:
            messages.append(next(job))
    except StopIteration as stop:
        got_model, instances = stop.value
    assert got_model is model  # cached: no loading step
    assert [m[2] for m in messages][0].startswith("predicting")
    assert instances.image_shape == (64, 64)


def test_project_image_proposals_are_saved_to_the_project(viewer, widget, qtbot, tmp_path):
    import imageio.v3 as iio

    image, _ = la.synthetic_nuclei((64, 64), seed=1)
    iio.imwrite(tmp_path / "a.png", image)
    with la.Project.create(tmp_path / "proj", classes=["nucleus"]) as project:
        [image_id] = project.add_images(tmp_path / "a.png")
        project.save_instances(
            image_id, la.Instances([shapely.box(1, 1, 5, 5)], [0], [1.0], (64, 64)), source="human"
        )
    link = {"project": str((tmp_path / "proj").resolve()), "image": image_id}
    viewer.add_image(image, name="a", metadata={"labelassist": link})
    old = viewer.add_shapes(
        [np.array([[0, 0], [0, 3], [3, 3.0]])], shape_type="polygon", metadata={"labelassist": link}
    )
    widget.model.value = "untrained (testing)"
    widget.threshold.value = 0.0
    widget.device.value = "cpu"
    widget.run()
    _wait(qtbot, widget)
    [layer] = _shapes_layers(viewer)  # the old layer of this image was replaced
    assert layer is not old
    with la.Project.open(tmp_path / "proj") as project:
        stored, version = project.instances(image_id, with_version=True)
        assert project.image(image_id)["status"] in ("pre-annotated", "in-review")
    assert layer.metadata["labelassist"]["version"] == version  # what a save must expect
    assert set(stored.extra["source"]) <= {"model"}
    # shapes of a multi-part instance share its id
    assert list(dict.fromkeys(layer.features["instance"])) == stored.extra["instance_id"].tolist()
    shown = layer_to_instances(layer)
    assert shown.labels.tolist() == stored.labels.tolist()
    np.testing.assert_allclose(shown.scores, stored.scores)
    # napari keeps float32 vertices: the same polygons within 1e-3 px
    assert shapely.hausdorff_distance(shown.polygons, stored.polygons).max() < 1e-3


def test_review_edits_proposals_of_its_image_without_conflict(
    viewer, widget, review_project, qtbot
):
    """Pre-annotating the image under review: the Review widget edits the new version."""
    from labelassist_napari._review import ReviewWidget
    from review_helpers import wait_saved

    review = ReviewWidget(viewer)
    viewer.window.add_dock_widget(review)
    review.open_project(review_project)
    image_id, before = review.record["id"], review.version
    widget.image.value = review.image_layer
    widget.model.value = "untrained (testing)"
    widget.classes.value = "nucleus"
    widget.threshold.value = 0.0
    widget.device.value = "cpu"
    widget.run()
    _wait(qtbot, widget)
    layer = review.shapes_layer  # the proposals, adopted by the Review widget
    assert layer is not None and layer.name.endswith("proposals")
    assert review.version > before and review.version == layer.metadata["labelassist"]["version"]
    layer.selected_data = set()
    layer.add_polygons([np.array([[2.0, 2.0], [2.0, 8.0], [8.0, 8.0], [8.0, 2.0]])])
    wait_saved(qtbot, review)
    assert review.conflict is None
    with la.Project.open(review_project) as project:
        stored, version = project.instances(image_id, with_version=True)
    assert version == review.version == before + 2  # the proposals, then my square
    assert "human" in set(stored.extra["source"])


def test_bad_inputs_are_reported_not_raised(viewer, widget):
    assert widget.run() is None  # no image layer
    viewer.add_image(np.zeros((3, 16, 16)), name="stack")
    widget.model.value = "untrained (testing)"
    assert widget.run() is None
    assert "needs one 2-D plane" in widget.status.value
    viewer.add_image(np.zeros((16, 16)), name="plane")
    widget.classes.value = " , "
    assert widget.run() is None
    assert "classes is empty" in widget.status.value
    widget.model.value = "checkpoint file"
    assert widget.run() is None and "is not a file" in widget.status.value
    widget.model.value = "project's latest round"
    assert widget.run() is None and "not part of a project" in widget.status.value


def _starter_shipped() -> bool:
    from labelassist.model import STARTER_PATH

    return STARTER_PATH.exists()


@pytest.mark.skipif(not _starter_shipped(), reason="the starter model is not in this build yet")
def test_starter_model_finds_the_synthetic_nuclei(viewer, widget, qtbot):
    image, truth = la.synthetic_nuclei((128, 128), seed=5)
    viewer.add_image(image, name="nuclei")
    widget.model.value = "starter (shipped)"
    widget.device.value = "cpu"
    widget.run()
    _wait(qtbot, widget)
    [layer] = _shapes_layers(viewer)
    got = layer_to_instances(layer)
    # most true nuclei overlap a proposal by IoU >= 0.5
    ious = shapely.area(
        shapely.intersection(truth.polygons[:, None], got.polygons[None])
    ) / shapely.area(shapely.union(truth.polygons[:, None], got.polygons[None]))
    assert len(got) > 0 and (ious.max(axis=1) >= 0.5).mean() > 0.5
