"""Pre-annotation with a keypoint model saves the keypoints into the linked project."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

import labelassist as la

pytest.importorskip("napari")

from labelassist_napari._preannotate import _save_to_project  # noqa: E402


def _proposals(points: np.ndarray) -> la.Instances:
    return la.Instances(
        [shapely.box(2, 2, 20, 10), shapely.box(30, 30, 50, 44)], [0, 0], [0.9, 0.8], (64, 64),
        keypoints=points,
    )  # fmt: skip


def _project(tmp_path, **kwargs) -> tuple[dict, int]:
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "a.png", np.zeros((64, 64), np.uint8))
    with la.Project.create(tmp_path / "proj", classes=["rod"], **kwargs) as project:
        [image_id] = project.add_images(tmp_path / "a.png")
    return {"project": str(tmp_path / "proj"), "image": image_id}, image_id


POINTS = np.array([[[3, 3, 2], [19, 9, 2]], [[31, 31, 2], [49, 43, 1]]], float)


def test_keypoints_name_a_project_without_any(tmp_path):
    link, image_id = _project(tmp_path)
    revision, _ = _save_to_project(
        link, _proposals(POINTS), ["rod"], model_id="m", keypoints=["head", "tail"],
        skeleton=[[0, 1]],
    )  # fmt: skip
    with la.Project.open(link["project"]) as project:
        assert project.keypoints == ["head", "tail"] and project.skeleton == [(0, 1)]
        stored = project.instances(image_id)
    np.testing.assert_allclose(stored.keypoints, POINTS)


def test_keypoints_go_to_the_project_columns_of_the_same_name(tmp_path):
    link, image_id = _project(tmp_path, keypoints=["tail", "middle"], skeleton=[(0, 1)])
    _save_to_project(
        link, _proposals(POINTS), ["rod"], model_id="m", keypoints=["head", "tail"], skeleton=None
    )
    with la.Project.open(link["project"]) as project:
        assert project.keypoints == ["tail", "middle", "head"]  # "head" appended
        assert project.skeleton == [(0, 1)]  # kept
        stored = project.instances(image_id)
    np.testing.assert_allclose(stored.keypoints[:, 0], POINTS[:, 1])  # tail
    np.testing.assert_allclose(stored.keypoints[:, 2], POINTS[:, 0])  # head
    assert (stored.keypoints[:, 1, 2] == 0).all()  # middle: not labelled
