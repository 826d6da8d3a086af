"""Class colours, low-score flags, contrast limits and layer kwargs (no display)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from labelassist_napari._style import (
    contrast_limits,
    image_layer_kwargs,
    shape_colors,
    shapes_layer_kwargs,
)

import labelassist as la


def test_features_and_colours():
    inst = la.Instances(
        [shapely.box(0, 0, 2, 2), shapely.box(3, 3, 5, 5)], [1, 0], [0.2, 0.9], (8, 8)
    )
    kwargs = shapes_layer_kwargs(inst, classes=["a", "b"], low_score=0.5, metadata={"image": 7})
    features = kwargs["features"]
    assert features["class"].tolist() == ["b", "a"]
    assert features["score"].tolist() == pytest.approx([0.2, 0.9])
    assert kwargs["metadata"]["labelassist"]["image"] == 7
    edge, face = shape_colors(features, ["a", "b"], low_score=0.5)
    assert not np.allclose(edge[0], edge[1])  # different classes, different colours
    assert face[0, 3] > 0 and face[1, 3] == 0  # only the low-score shape is filled


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_contrast_limits_follow_the_data(dtype):
    rng = np.random.default_rng(0)
    image = (rng.normal(1000, 50, (64, 64))).clip(0, 4000).astype(dtype)
    if dtype == np.uint8:
        image = rng.integers(20, 60, (64, 64)).astype(dtype)
    low, high = contrast_limits(image)
    assert image.min() <= low < high <= image.max()
    assert high - low < float(np.iinfo(dtype).max if dtype != np.float32 else 1e9)


def test_contrast_limits_constant_and_empty():
    assert contrast_limits(np.full((4, 4), 7, np.uint16)) == (7.0, 8.0)
    assert contrast_limits(np.full((4, 4), np.nan)) == (0.0, 1.0)
    with pytest.raises(ValueError, match="image is empty"):
        contrast_limits(np.zeros((0, 4)))


def test_image_layer_kwargs():
    image = np.zeros((8, 8, 3), np.uint8)
    assert image_layer_kwargs(image)["rgb"] is True
    kwargs = image_layer_kwargs(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    low, high = kwargs["contrast_limits"]
    assert 0 <= low < high <= 63000 and high - low > 30000
    with pytest.raises(ValueError, match=r"image must have shape \(H, W\) or \(H, W, 3\|4\)"):
        image_layer_kwargs(np.zeros((2, 8, 8)))
