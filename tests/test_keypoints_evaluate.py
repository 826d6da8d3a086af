"""OKS AP of keypoints (pycocotools COCOeval, iouType="keypoints") next to mask and box AP."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from labelassist.coco import Dataset, read_coco
from labelassist.evaluation import (
    DEFAULT_KEYPOINT_SIGMA,
    KEYPOINT_METRIC_KEYS,
    METRIC_KEYS,
    evaluate_predictions,
    oks_sigmas,
)
from labelassist.instances import Instances
from labelassist.synthetic.landmarks import landmark_dataset

SHAPE = (40, 60)
RECORD = {"id": 1, "file_name": "a.png", "height": 40, "width": 60}


def _one(points=((10.5, 12.5, 2), (40.5, 12.5, 2))) -> Instances:
    """One 40 x 10 px box (area 400) with two keypoints."""
    return Instances([shapely.box(5, 8, 45, 18)], [0], [0.9], SHAPE, keypoints=[points])


def _dataset(inst: Instances) -> Dataset:
    return Dataset(["worm"], [RECORD], {1: inst}, keypoints=["head", "tail"], skeleton=[(0, 1)])


def test_ground_truth_written_read_and_evaluated_against_itself_gives_oks_ap_1(tmp_path):
    written = landmark_dataset(3, out=tmp_path, shape=(96, 96), kind="worms", n=(2, 4))
    truth = read_coco(tmp_path / "annotations.json")
    assert truth == written
    metrics = evaluate_predictions(truth.instances, truth)
    assert set(METRIC_KEYS + KEYPOINT_METRIC_KEYS) <= set(metrics)
    assert all(metrics[key] == pytest.approx(1.0) for key in METRIC_KEYS + KEYPOINT_METRIC_KEYS)


def test_oks_follows_its_definition():
    # OKS of a prediction with the tail moved by d: (1 + exp(-d^2 / (2 area (2 sigma)^2))) / 2
    # at 0.82 it matches at the OKS thresholds 0.50 ... 0.80 (7 of 10): AP 0.7, AP75 1
    area, sigma = 400.0, DEFAULT_KEYPOINT_SIGMA
    e = -math.log(2 * 0.82 - 1)
    d = math.sqrt(e * 2 * area * (2 * sigma) ** 2)
    moved = _one(((10.5, 12.5, 2), (40.5 + d, 12.5, 2)))
    metrics = evaluate_predictions({1: moved}, _dataset(_one()))
    assert metrics["segm_AP"] == pytest.approx(1.0)
    assert metrics["keypoints_AP"] == pytest.approx(0.7)
    assert metrics["keypoints_AP50"] == pytest.approx(1.0) and metrics[
        "keypoints_AP75"
    ] == pytest.approx(1.0)
    # a wider sigma for the tail forgives the same distance
    wide = evaluate_predictions({1: moved}, _dataset(_one()), keypoint_sigmas={"tail": 0.5})
    assert wide["keypoints_AP"] == pytest.approx(1.0)


def test_hidden_and_unlabelled_keypoints():
    # v=0 ground truth does not count: only the head is scored
    truth = _one(((10.5, 12.5, 2), (0.0, 0.0, 0)))
    pred = _one(((10.5, 12.5, 2), (55.5, 35.5, 2)))
    assert evaluate_predictions({1: pred}, _dataset(truth))["keypoints_AP"] == pytest.approx(1.0)
    # v=1 (labelled, hidden) counts like v=2
    truth = _one(((10.5, 12.5, 2), (40.5, 12.5, 1)))
    assert evaluate_predictions({1: pred}, _dataset(truth))["keypoints_AP"] < 0.5


def test_predictions_without_keypoints_match_nothing_in_oks():
    metrics = evaluate_predictions({1: _one().replace(keypoints=None)}, _dataset(_one()))
    assert metrics["segm_AP"] == pytest.approx(1.0) and metrics["keypoints_AP"] == 0.0


def test_no_keypoint_metrics_without_keypoints_or_labels():
    plain = Dataset(["worm"], [RECORD], {1: _one().replace(keypoints=None)})
    metrics = evaluate_predictions({1: plain.instances[1]}, plain)
    assert not set(KEYPOINT_METRIC_KEYS) & set(metrics)
    unlabelled = _dataset(_one(((0, 0, 0), (0, 0, 0))))
    with pytest.warns(UserWarning, match="no ground-truth instance has a labelled one"):
        metrics = evaluate_predictions({1: _one()}, unlabelled)
    assert metrics["segm_AP"] == pytest.approx(1.0) and "keypoints_AP" not in metrics


def test_per_class_keypoint_ap():
    metrics = evaluate_predictions({1: _one()}, _dataset(_one()), per_class=True)
    assert metrics["keypoints_AP/worm"] == pytest.approx(1.0) and metrics[
        "keypoints_AP50/worm"
    ] == pytest.approx(1.0)


def test_sigmas():
    assert oks_sigmas(None, ["a", "b"]).tolist() == [0.05, 0.05]
    assert oks_sigmas(0.1, ["a", "b"]).tolist() == [0.1, 0.1]
    assert oks_sigmas([0.1, 0.2], ["a", "b"]).tolist() == [0.1, 0.2]


BAD = [
    ("sigma count", {"keypoint_sigmas": [0.1]}, _one(), ValueError, "1 values for 2 keypoints"),
    ("sigma name", {"keypoint_sigmas": {"fin": 0.1}}, _one(), ValueError, r"unknown keypoints \['fin'\]"),
    ("sigma zero", {"keypoint_sigmas": 0.0}, _one(), ValueError, "must be > 0"),
    ("sigma type", {"keypoint_sigmas": "wide"}, _one(), TypeError, "must be a float, a list"),
    ("sigma nan", {"keypoint_sigmas": [0.1, float("nan")]}, _one(), ValueError, "keypoint_sigmas"),
    ("prediction K", {}, _one().replace(keypoints=np.zeros((1, 3, 3))), ValueError,
     "3 keypoints per instance, but the dataset names 2"),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "pred", "error", "match"), [c[1:] for c in BAD],
                         ids=[c[0] for c in BAD])  # fmt: skip
def test_bad_input(kwargs, pred, error, match):
    with pytest.raises(error, match=match):
        evaluate_predictions({1: pred}, _dataset(_one()), **kwargs)
