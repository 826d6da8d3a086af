"""Predictions of keypoint models carry keypoints: whole, tiled, rescaled, keypoints-only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelassist.model import load_model


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(3)
    return (rng.random((160, 192)) * 255).astype(np.uint8)


def _model(masks: bool = True):
    torch.manual_seed(0)
    model = load_model(
        None, classes=["rod"], keypoints=["head", "tail"], skeleton=[(0, 1)], masks=masks,
        device="cpu",
    )  # fmt: skip
    # an untrained box head scores everything alike; a bias makes detections certain
    with torch.no_grad():
        model.net.roi_heads.box_predictor.cls_score.bias[1] = 10.0
    return model


def _check(inst, shape) -> None:
    assert inst.image_shape == shape
    assert inst.keypoints is not None and inst.keypoints.shape == (len(inst), 2, 3)
    assert len(inst) > 0
    xy = inst.keypoints[:, :, :2]
    assert (xy[..., 0] >= 0).all() and (xy[..., 0] <= shape[1]).all()
    assert (xy[..., 1] >= 0).all() and (xy[..., 1] <= shape[0]).all()
    boxes = inst.boxes
    # torchvision places each keypoint inside its own box (a heatmap cell of the RoI)
    assert (xy[..., 0] >= boxes[:, None, 0] - 1).all() and (
        xy[..., 0] <= boxes[:, None, 2] + 1
    ).all()
    assert (xy[..., 1] >= boxes[:, None, 1] - 1).all() and (
        xy[..., 1] <= boxes[:, None, 3] + 1
    ).all()
    assert set(np.unique(inst.keypoints[:, :, 2])) <= {0.0, 1.0, 2.0}


@pytest.mark.parametrize("masks", [True, False], ids=["masks+keypoints", "keypoints-only"])
def test_predict_carries_keypoints(image, masks) -> None:
    inst = _model(masks).predict(image, score_threshold=0.5, max_detections=20)
    _check(inst, image.shape)


def test_tiled_predict_carries_keypoints(image) -> None:
    inst = _model().predict(image, score_threshold=0.5, tile_size=96, max_detections=20)
    _check(inst, image.shape)


def test_rescaled_predict_maps_keypoints_to_the_original_grid(image) -> None:
    model = _model().set_input(object_size=10.0)
    inst = model.predict(image, score_threshold=0.5, object_size=20.0, max_detections=20)
    _check(inst, image.shape)


def test_empty_prediction_has_keypoint_columns() -> None:
    model = _model()
    with torch.no_grad():
        model.net.roi_heads.box_predictor.cls_score.bias[1] = -50.0
    inst = model.predict(np.zeros((64, 64), np.uint8), score_threshold=0.5, max_detections=20)
    assert len(inst) == 0 and inst.keypoints is not None and inst.keypoints.shape == (0, 2, 3)


@pytest.mark.filterwarnings("ignore:.*limit of")
def test_preannotate_writes_coco_keypoints(image, tmp_path) -> None:
    import json

    from labelassist.bulk import preannotate
    from labelassist.coco import read_coco

    model = _model()
    out = tmp_path / "proposals.json"
    result = preannotate([image], model, out=out, score_threshold=0.5, progress=False)
    assert result.keypoints == ["head", "tail"] and result.skeleton == [(0, 1)]
    raw = json.loads(out.read_text())
    assert raw["categories"][0]["keypoints"] == ["head", "tail"]
    assert raw["categories"][0]["skeleton"] == [[1, 2]]  # COCO's 1-based indices
    ann = raw["annotations"][0]
    assert len(ann["keypoints"]) == 6 and ann["num_keypoints"] >= 0
    back = read_coco(out)
    (inst,) = back.instances.values()
    assert inst.keypoints is not None and inst.keypoints.shape == (len(inst), 2, 3)
