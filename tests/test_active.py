"""Tests of labelassist.active."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import shapely
from tiny_models import tiny_model

from labelassist.active import _unflip, image_uncertainty, rank_images
from labelassist.instances import Instances
from labelassist.model import load_model
from labelassist.synthetic import synthetic_nuclei


def boxes(*scores, shape=(32, 32)):
    polys = [shapely.box(2 + 6 * k, 2, 6 + 6 * k, 6) for k in range(len(scores))]
    return Instances(polys, None, list(scores), shape)


def test_uncertainty_counts_doubtful_objects():
    assert image_uncertainty(Instances.empty((8, 8))) == 0.0
    assert image_uncertainty(Instances.empty((8, 8)), Instances.empty((8, 8))) == 0.0
    assert image_uncertainty(boxes(1.0, 1.0, 0.0)) == 0.0
    assert image_uncertainty(boxes(0.5, 0.5)) == pytest.approx(2.0)
    assert image_uncertainty(boxes(0.75)) == pytest.approx(0.5)
    sure = boxes(0.99, 0.99)
    # agreement costs nothing, a shifted twin costs 1 - IoU, a lone object its score
    assert image_uncertainty(sure, sure) == pytest.approx(2 * 0.02)
    moved = sure.replace(polygons=[shapely.box(3, 2, 7, 6), sure.polygons[1]])
    iou = 12 / 20
    assert image_uncertainty(sure, moved) == pytest.approx(0.04 + (1 - iou) * 0.99)
    assert image_uncertainty(sure, sure[:1]) == pytest.approx(0.04 + 0.99)


def test_unflip_mirrors_back():
    inst = Instances([shapely.box(1, 2, 4, 6)], [0], [0.9], (10, 20))
    back = _unflip(inst)
    assert back.boxes.tolist() == [[16.0, 2.0, 19.0, 6.0]]
    assert _unflip(back) == inst
    assert len(_unflip(Instances.empty((4, 4)))) == 0


def test_rank_images_shapes_and_inputs(tmp_path):
    model = tiny_model()
    assert rank_images(model, []).tolist() == []
    order, scores = rank_images(model, [], return_scores=True)
    assert order.shape == scores.shape == (0,)
    image, _ = synthetic_nuclei((48, 48), n=3, seed=0)
    path = tmp_path / "a.png"
    iio.imwrite(path, image)
    order, scores = rank_images(model, [image, str(path), image * 0], return_scores=True)
    assert sorted(order.tolist()) == [0, 1, 2] and scores.dtype == np.float64
    assert np.all(scores >= 0)
    assert scores[0] == pytest.approx(scores[1])  # the same image, from memory or a file
    assert np.all(np.diff(scores[order]) <= 0)  # most uncertain first


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"model": object()}, TypeError, "model must have a predict method"),
        ({"images": np.zeros((8, 8))}, TypeError, "wrap a single one"),
        ({"min_score": 1.0}, ValueError, "min_score must be within"),
        ({"batch_size": 0}, ValueError, "batch_size must be an integer"),
    ],
)
def test_rank_images_errors(kwargs, error, match):
    args = {"model": tiny_model(), "images": [np.zeros((8, 8), np.uint8)], **kwargs}
    with pytest.raises(error, match=match):
        rank_images(args.pop("model"), args.pop("images"), **args)


def test_image_uncertainty_errors():
    with pytest.raises(TypeError, match="prediction must be Instances"):
        image_uncertainty([])
    with pytest.raises(TypeError, match="mirrored must be Instances"):
        image_uncertainty(boxes(0.5), [])


@pytest.mark.slow
def test_trained_model_ranks_a_noisy_image_first():
    model = load_model("starter", device="cpu")
    rng = np.random.default_rng(0)
    clean, _ = synthetic_nuclei((128, 128), seed=123)
    clean = clean.astype(np.float32)
    noisy = clean + rng.normal(0, 0.6 * clean.std(), clean.shape)
    order, scores = rank_images(model, [clean, noisy], return_scores=True)
    assert order.tolist() == [1, 0], scores
    assert scores[1] > 1.5 * scores[0], scores  # clearly, not by a hair
