"""Keypoints in rounds: a project of keypoint names trains them; ``project init --keypoints``."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
from tiny_models import fast_config, one_thread, tiny_model  # noqa: F401 (autouse fixture)

from labelassist.cli import main
from labelassist.model import load_model
from labelassist.model.keypoints import num_keypoints
from labelassist.project import Project
from labelassist.rounds import run_round
from labelassist.synthetic.landmarks import synthetic_landmarks

CONFIG = fast_config(steps=2, chunk_steps=2, crop_size=64, roi_samples=16, rpn_proposals=50)


def landmark_project(folder, n_images=3):
    images = folder / "images"
    images.mkdir()
    truth = []
    for k in range(n_images):
        image, inst = synthetic_landmarks((64, 64), n=3, seed=k, size=(14.0, 24.0))
        iio.imwrite(images / f"im{k}.png", image)
        truth.append(inst)
    project = Project.create(
        folder / "project", classes=["rod"], keypoints=["head", "tail"], skeleton=[(0, 1)]
    )
    ids = project.add_images(images)
    for image_id, inst in zip(ids, truth, strict=True):
        project.save_instances(image_id, inst, source="human")
        project.set_status(image_id, "reviewed")
    return project, ids, truth


def test_a_round_of_a_keypoint_project_trains_the_keypoints(tmp_path):
    project, ids, truth = landmark_project(tmp_path)
    with project:
        project.set_split(ids[0], "val")
        project.set_split(ids[1:], "train")
        base = tiny_model(["rod"])  # a mask model: the round gives it the project's keypoints
        first = run_round(project, base_model=base, config=CONFIG, progress=False, plot=False)
        model = load_model(first["checkpoint"], device="cpu")
        assert model.meta["keypoints"] == ["head", "tail"]
        assert model.meta["skeleton"] == [[0, 1]]
        assert num_keypoints(model.net) == 2
        assert np.isfinite(first["history"][-1]["loss_keypoint"])
        assert 0.0 <= first["metrics"]["keypoints_AP50"] <= 1.0  # val scored with OKS
        # round 2 continues from round 1's keypoint head
        second = run_round(project, config=CONFIG, progress=False, plot=False)
        again = load_model(second["checkpoint"], device="cpu")
        assert again.meta["keypoints"] == ["head", "tail"] and second["parent"] == 1


def test_project_init_with_keypoints_and_skeleton(tmp_path, capsys):
    folder = tmp_path / "worms"
    code = main(
        ["project", "init", str(folder), "--classes", "worm", "--keypoints", "head, tail",
         "--skeleton", "0-1"]
    )  # fmt: skip
    assert code == 0
    assert "keypoints head, tail; skeleton head-tail" in capsys.readouterr().out
    with Project.open(folder) as project:
        assert project.keypoints == ["head", "tail"] and project.skeleton == [(0, 1)]


def test_project_init_help_shows_a_keypoints_example(capsys):
    assert main(["project", "--help"]) == 0
    assert "--keypoints head,tail --skeleton 0-1" in capsys.readouterr().out


BAD_INIT = [
    (["--skeleton", "0-1"], "--skeleton needs --keypoints (the names its indices refer to)"),
    (
        ["--keypoints", "head,tail", "--skeleton", "0:1"],
        "--skeleton edge '0:1' must be two 0-based keypoint indices like 0-1",
    ),
    (
        ["--keypoints", "head,tail", "--skeleton", "0-2"],
        "skeleton[0] = (0, 2) must join two different keypoint indices in [0, 2) (0-based)",
    ),
    (["--keypoints", "head,head"], "keypoints must be unique names, got 'head' twice"),
    (["--keypoints", ","], "keypoints must name at least one keypoint, got an empty list"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_INIT, ids=[" ".join(b[0]) for b in BAD_INIT])
def test_project_init_bad_keypoints(tmp_path, capsys, extra, message):
    folder = tmp_path / "p"
    assert main(["project", "init", str(folder), "--classes", "worm", *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"labelassist project: error: {message}"
    assert not (folder / "project.db").exists()
