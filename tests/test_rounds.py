"""Tests of labelassist.rounds: rounds of a real project on tiny synthetic images."""

from __future__ import annotations

import os

import imageio.v3 as iio
import numpy as np
import pytest
from tiny_models import fast_config, one_thread, tiny_model  # noqa: F401 (autouse fixture)

from labelassist.model import load_model
from labelassist.project import Project
from labelassist.rounds import plot_learning_curve, run_round
from labelassist.synthetic import synthetic_nuclei

CONFIG = fast_config()


def make_project(folder, n_images=4, reviewed=3):
    images = folder / "images"
    images.mkdir()
    truth = []
    for k in range(n_images):
        image, inst = synthetic_nuclei((64, 64), n=4, radius=(5, 8), seed=k)
        iio.imwrite(images / f"im{k}.png", image)
        truth.append(inst)
    project = Project.create(folder / "project", classes=["nucleus"])
    ids = project.add_images(images)
    for k, image_id in enumerate(ids[:reviewed]):
        project.save_instances(image_id, truth[k], source="human")
        project.set_status(image_id, "reviewed")
    return project, ids


def test_rounds_start_from_the_previous_round_replay_and_plot(tmp_path):
    project, ids = make_project(tmp_path)
    with project:
        project.set_split(ids[0], "val")  # one held-out reviewed image
        project.set_split(ids[1:], "train")
        first = run_round(project, base_model=tiny_model(), epochs=1, config=CONFIG, progress=False)
        assert first["round"] == 1 and first["parent"] is None
        assert first["checkpoint"].exists()
        assert ids[0] not in first["image_ids"]  # validation stays held out
        assert 0.0 <= first["metrics"]["segm_AP50"] <= 1.0
        assert first["n_images"] == len(first["image_ids"]) >= 1
        assert first["n_instances"] == sum(len(project.instances(i)) for i in first["image_ids"])

        # a newly reviewed image: round 2 trains on it and on the earlier ones (replay)
        image, inst = synthetic_nuclei((64, 64), n=4, radius=(5, 8), seed=3)
        project.save_instances(ids[3], inst, source="human")
        project.set_status(ids[3], "reviewed")
        second = run_round(project, epochs=1, config=CONFIG, progress=False)
        assert second["round"] == 2 and second["parent"] == 1
        assert set(first["image_ids"]) < set(second["image_ids"])
        assert [r["round"] for r in project.rounds()] == [1, 2]
        assert project.latest_checkpoint() == second["checkpoint"]
        loaded = load_model(second["checkpoint"], device="cpu")
        assert loaded.meta["round"] == 2
        assert len(loaded.meta["history"]) == 2  # round 1's epoch, then round 2's
        curve = project.folder / "learning_curve.png"
        assert curve.read_bytes()[:4] == b"\x89PNG"


def test_round_needs_reviewed_images(tmp_path):
    project, _ = make_project(tmp_path, n_images=2, reviewed=0)
    with project, pytest.raises(ValueError, match="no reviewed training images"):
        run_round(project, base_model=tiny_model(), epochs=1, config=CONFIG, progress=False)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_plot_learning_curve_from_plain_dicts(tmp_path):
    rounds = [
        {"round": k, "n_images": n, "n_instances": 20 * n, "metrics": {"segm_AP50": ap}}
        for k, (n, ap) in enumerate([(2, 0.3), (4, 0.5), (8, 0.7)], start=1)
    ]
    path = plot_learning_curve(rounds, tmp_path / "sub" / "curve.png")
    assert path == tmp_path / "sub" / "curve.png"
    image = iio.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100
    assert np.unique(image.reshape(-1, image.shape[-1]), axis=0).shape[0] > 10  # not blank
    assert not list((tmp_path / "sub").glob(".*"))  # no temp file left behind
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()  # usual permissions, not 0600
    # a round without metrics (not evaluated) is drawn as a gap, not an error
    plot_learning_curve([{"n_images": 1, "n_instances": 3, "metrics": {}}], tmp_path / "gap.png")


@pytest.mark.parametrize(
    ("rounds", "match"),
    [([], "rounds is empty"), ([{"n_images": 3}], r"rounds\[0\] lacks \['n_instances'\]")],
)
def test_plot_learning_curve_errors(tmp_path, rounds, match):
    with pytest.raises(ValueError, match=match):
        plot_learning_curve(rounds, tmp_path / "curve.png")
