"""RoI pooler scales: fixed from the architecture, not from the first image a model sees.

torchvision's ``MultiScaleRoIAlign`` infers its level scales on its first call and keeps
them; a small first image (a thumbnail, a small box prompt's crop) used to leave wrong
scales for every later call.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import one_thread  # noqa: F401 (autouse fixture)

from labelassist.model import build_maskrcnn, load_model
from labelassist.model.inference import set_roi_scales
from labelassist.synthetic import synthetic_nuclei


@pytest.mark.parametrize("arch", ["maskrcnn_resnet18_fpn", "maskrcnn_mobilenet_v2_fpn"])
def test_scales_are_the_backbone_strides(arch):
    net = build_maskrcnn(arch, 2)
    set_roi_scales(net)
    probe = torch.zeros(1, 3, 256, 256)
    with torch.no_grad():
        maps = net.eval().backbone(probe)
    pool = net.roi_heads.mask_roi_pool
    # the stride of each pooled level, measured on a 256 px image (divisible by 32)
    expected = [maps[name].shape[-1] / 256 for name in pool.featmap_names]
    assert pool.scales == pytest.approx(expected)
    assert net.roi_heads.box_roi_pool.scales == pytest.approx(expected)


def test_a_small_first_image_does_not_spoil_later_predictions():
    image = synthetic_nuclei((128, 128), n=8, seed=3)[0]
    fresh = load_model("starter", device="cpu")
    reference = fresh.predict(image)
    spoiled = load_model("starter", device="cpu")
    spoiled.predict(image[:40, :40])  # torchvision would infer its scales from this one
    again = spoiled.predict(image)
    assert len(reference) > 0
    assert len(again) == len(reference)
    np.testing.assert_allclose(np.sort(again.scores), np.sort(reference.scores), atol=1e-5)


def test_mode_is_kept():
    net = build_maskrcnn("maskrcnn_resnet18_fpn", 2).train()
    set_roi_scales(net)
    assert net.training
