"""The Train rounds widget runs a tiny round to completion in the background (xvfb)."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import shapely
from labelassist_napari._train import TrainWidget, plot_rounds, train_round_job

import labelassist as la

pytestmark = pytest.mark.gui


@pytest.fixture
def project_folder(tmp_path):
    """3 reviewed 64 x 64 synthetic images (2 train, 1 val) with their outlines, 1 new."""
    folder = tmp_path / "proj"
    with la.Project.create(folder, classes=["nucleus"]) as project:
        for seed in range(4):
            image, truth = la.synthetic_nuclei((64, 64), n=3, seed=seed)
            iio.imwrite(tmp_path / f"img{seed}.png", image)
            [image_id] = project.add_images(tmp_path / f"img{seed}.png")
            if seed < 3:
                project.save_instances(image_id, truth, source="human")
                project.set_status(image_id, "reviewed")
                project.set_split(image_id, "train" if seed < 2 else "val")
    return folder


@pytest.fixture
def widget(make_napari_viewer, project_folder):
    viewer = make_napari_viewer()
    w = TrainWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.folder.value = project_folder
    w.steps.value = 2
    w.device.value = "cpu"
    w.threshold.value = 0.0
    return w


@pytest.mark.slow
def test_train_round_runs_in_background_and_reannotates(widget, qtbot, project_folder):
    worker = widget.run()
    assert worker is not None and widget.busy and not widget.train_button.enabled
    qtbot.waitUntil(lambda: not widget.busy, timeout=600_000)
    assert widget.status.value.startswith("round 1"), widget.status.value
    with la.Project.open(project_folder) as project:
        [round_] = project.rounds()
        assert "segm_AP" in round_["metrics"] and round_["checkpoint"].is_file()
        assert round_["image_ids"] == [1, 2]  # the reviewed training images
        new = project.images()[3]
        assert new["status"] == "pre-annotated"
        assert project.history(new["id"])[-1]["model_id"] == "round 1"
    xs, ys = widget.figure.axes[0].lines[0].get_data()  # segm_AP
    assert list(xs) == [1] and ys[0] == pytest.approx(round_["metrics"]["segm_AP"])
    assert (project_folder / "learning_curve.png").is_file()
    assert widget.rounds_label.value == "1 rounds trained"


@pytest.mark.slow
def test_reannotation_keeps_an_image_a_person_saved_meanwhile(project_folder):
    """The job saves with the version it listed: a correction saved meanwhile stays."""
    job = train_round_job(project_folder, steps=2, device="cpu", score_threshold=0.0)
    message = ""
    while not message.startswith("re-annotating 1/1"):
        _, _, message = next(job)
    human = la.Instances([shapely.box(2, 2, 9, 9)], [0], [1.0], (64, 64))
    with la.Project.open(project_folder) as other:  # another window, while the model predicts
        new = other.images()[3]
        assert new["status"] == "new"
        other.save_instances(new["id"], human, source="human")
    with pytest.raises(StopIteration) as stop:
        while True:
            next(job)
    summary = stop.value.value
    assert summary["reannotated"] == 0 and summary["skipped"] == 1
    with la.Project.open(project_folder) as project:
        kept = project.instances(new["id"])
        assert [h["source"] for h in project.history(new["id"])] == ["human"]
    assert kept.replace(extra={}) == human


def test_cancel_stops_before_reannotating(widget, qtbot, project_folder):
    widget.run()
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.busy, timeout=600_000)
    assert "cancel" in widget.status.value
    with la.Project.open(project_folder) as project:
        assert project.images()[3]["status"] == "new"


def test_not_a_project(make_napari_viewer, tmp_path):
    widget = TrainWidget(make_napari_viewer())
    widget.folder.value = tmp_path
    assert widget.run() is None
    assert "is not a labelassist project" in widget.status.value


def test_plot_rounds_draws_ap_per_round():
    from matplotlib.figure import Figure

    axes = Figure().add_subplot()
    rounds = [
        {"round": 1, "metrics": {"segm_AP": 0.2, "segm_AP50": 0.4}},
        {"round": 2, "metrics": {"train_loss": 1.0}},  # not evaluated: no point
        {"round": 3, "metrics": {"segm_AP": 0.5, "segm_AP50": 0.7}},
    ]
    plot_rounds(axes, rounds)
    xs, ys = axes.lines[0].get_data()
    assert list(xs) == [1, 3] and list(ys) == [0.2, 0.5]
    assert list(axes.lines[1].get_data()[1]) == [0.4, 0.7]
    plot_rounds(axes, [])
    assert axes.get_title() == "no evaluated round yet"
    assert np.asarray(axes.lines[0].get_data()[0]).size == 0
