"""Keypoint models: Mask R-CNN with torchvision's keypoint head, checkpoints, outputs, training."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import shapely
import torch

from labelassist.instances import Instances
from labelassist.model import build_maskrcnn, checkpoint_to_bytes, load_model
from labelassist.model.keypoints import (
    attach_keypoint_head,
    box_outlines,
    configure_heads,
    has_keypoint_head,
    has_mask_head,
    keypoint_meta,
    keypoint_targets,
    keypoints_to_image,
    num_keypoints,
)
from labelassist.model.load import COCO_PERSON_SKELETON, keypoint_weights_path, model_from_bytes
from labelassist.synthetic.landmarks import LANDMARK_NAMES, synthetic_landmarks


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_load_model_with_keypoints_runs_mask_and_keypoint_heads(one_thread):
    model = load_model(None, classes=["worm"], keypoints=["head", "tail"], skeleton=[(0, 1)],
                       device="cpu")  # fmt: skip
    assert has_keypoint_head(model.net) and has_mask_head(model.net)
    assert model.meta["keypoints"] == ["head", "tail"] and model.meta["skeleton"] == [[0, 1]]
    assert model.meta["masks"] is True
    torch.manual_seed(0)
    model.net.roi_heads.score_thresh = 0.0
    model.net.roi_heads.detections_per_img = 20
    with torch.no_grad():
        out = model.net([torch.rand(3, 64, 64)])[0]
    n = len(out["boxes"])
    assert n > 0
    assert out["masks"].shape[0] == n and out["keypoints"].shape == (n, 2, 3)
    # torchvision puts each predicted keypoint inside its box (a heatmap cell centre)
    kp, boxes = out["keypoints"], out["boxes"]
    assert (kp[:, :, 0] >= boxes[:, None, 0]).all() and (kp[:, :, 0] <= boxes[:, None, 2]).all()


def test_keypoints_only_model_and_checkpoint_round_trip(tmp_path, one_thread):
    model = load_model(None, classes=["worm"], keypoints=["head", "tail"], masks=False,
                       device="cpu")  # fmt: skip
    assert has_keypoint_head(model.net) and not has_mask_head(model.net)
    assert num_keypoints(model.net) == 2
    path = model.save(tmp_path / "k.pt")
    back = load_model(path, device="cpu")
    assert back.meta["keypoints"] == ["head", "tail"] and back.meta["skeleton"] == []
    assert back.meta["masks"] is False and back.meta["keypoint_head"] == model.meta["keypoint_head"]
    assert not has_mask_head(back.net) and has_keypoint_head(back.net)
    state, loaded = model.net.state_dict(), back.net.state_dict()
    assert state.keys() == loaded.keys()
    assert any(k.startswith("roi_heads.keypoint_predictor.") for k in loaded)
    key = "roi_heads.keypoint_predictor.kps_score_lowres.weight"
    assert torch.equal(state[key].cpu(), loaded[key].cpu())
    again = model_from_bytes(checkpoint_to_bytes(back), device="cpu")
    assert again.meta["keypoints"] == ["head", "tail"]


def test_configure_heads_refuses_damaged_meta():
    with pytest.raises(ValueError, match=r"meta\['keypoints'\]\[0\] must be a non-empty str"):
        configure_heads(build_maskrcnn(num_classes=2), {"keypoints": [3]})
    with pytest.raises(ValueError, match=r"meta\['masks'\] must be true or false"):
        configure_heads(build_maskrcnn(num_classes=2), {"keypoints": ["a"], "masks": "no"})
    with pytest.raises(ValueError, match=r"meta\['skeleton'\]\[0\]"):
        configure_heads(build_maskrcnn(num_classes=2), {"keypoints": ["a"], "skeleton": [[0, 4]]})
    with pytest.raises(ValueError, match=r"meta\['masks'\] is False but"):
        configure_heads(build_maskrcnn(num_classes=2), {"masks": False})
    with pytest.raises(ValueError, match=r"meta\['keypoint_head'\] must be"):
        configure_heads(build_maskrcnn(num_classes=2), {"keypoints": ["a"], "keypoint_head": 3})


def test_damaged_keypoint_checkpoint_is_refused(tmp_path):
    from labelassist.model.checkpoint import make_checkpoint, save_checkpoint

    model = load_model(None, classes=["worm"], keypoints=["head", "tail"], device="cpu")
    data = make_checkpoint(model.net, {**model.meta, "keypoints": ["head", "head"]})
    path = save_checkpoint(data, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="damaged labelassist checkpoint: .*'head' twice"):
        load_model(path, device="cpu")


BAD = [
    ("skeleton alone", {"classes": ["a"], "skeleton": [(0, 1)]}, ValueError, "skeleton= needs keypoints"),
    ("masks alone", {"classes": ["a"], "masks": False}, ValueError, "masks=False needs keypoints"),
    ("masks type", {"classes": ["a"], "keypoints": ["h"], "masks": 0}, TypeError, "masks must be"),
    ("names", {"classes": ["a"], "keypoints": "head"}, TypeError, "list of keypoint names"),
    ("edge", {"classes": ["a"], "keypoints": ["h", "t"], "skeleton": [(0, 2)]}, ValueError,
     r"skeleton\[0\] = \(0, 2\)"),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "error", "match"), [c[1:] for c in BAD],
                         ids=[c[0] for c in BAD])  # fmt: skip
def test_bad_keypoint_models(kwargs, error, match):
    with pytest.raises(error, match=match):
        load_model(None, device="cpu", **kwargs)


def test_keypoints_are_for_new_models_only():
    with pytest.raises(ValueError, match="only used with source=None"):
        load_model("starter", keypoints=["head"], device="cpu")


# -- torchvision's person keypoint weights (offline: placed where torchvision caches them) -----


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "torch"


def test_keypoint_weights_offline_error_names_file_and_url(offline_hub):
    path, url = keypoint_weights_path()
    assert path.parent == offline_hub / "hub" / "checkpoints"
    with pytest.raises(RuntimeError, match="Offline.*place the file at") as info:
        load_model("torchvision-keypoints")
    assert str(path) in str(info.value) and url in str(info.value)


def test_keypoint_weights_from_cache(offline_hub, one_thread):
    from torchvision.models.detection import (
        KeypointRCNN_ResNet50_FPN_Weights,
        keypointrcnn_resnet50_fpn,
    )

    torch.manual_seed(0)
    net = keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2)
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    path, _ = keypoint_weights_path()
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    model = load_model("torchvision-keypoints", device="cpu")
    weights = KeypointRCNN_ResNet50_FPN_Weights.COCO_V1
    assert model.classes == ["person"]
    assert model.meta["keypoints"] == weights.meta["keypoint_names"]
    assert len(model.meta["skeleton"]) == len(COCO_PERSON_SKELETON) == 19
    assert model.meta["skeleton"][0] == [15, 13]  # COCO's [16, 14], 0-based
    assert model.meta["masks"] is False and not has_mask_head(model.net)
    key = "roi_heads.keypoint_predictor.kps_score_lowres.weight"
    assert torch.equal(model.net.state_dict()[key], state[key])


# -- outputs and targets -----------------------------------------------------------------------


def test_keypoints_to_image_maps_like_boxes():
    from torchvision.models.detection.transform import resize_boxes

    kp = torch.tensor([[[10.0, 20.0, 1.0], [30.0, 5.0, 1.0]]])
    boxes = torch.tensor([[10.0, 5.0, 30.0, 20.0]])
    mapped = keypoints_to_image(kp, net_size=(100, 80), size=(50, 160), offset=(7, 3))
    expected_box = resize_boxes(boxes, [100, 80], [50, 160])[0].numpy() + [7, 3, 7, 3]
    np.testing.assert_allclose(mapped[0, 0, :2], expected_box[[0, 3]])  # (x0, y1) corner
    np.testing.assert_allclose(mapped[0, 1, :2], expected_box[[2, 1]])  # (x1, y0) corner
    assert mapped[..., 2].tolist() == [[2.0, 2.0]] and mapped.dtype == np.float64
    assert keypoints_to_image(torch.zeros((0, 2, 3))).shape == (0, 2, 3)
    unscaled = keypoints_to_image(kp, offset=(1, 0))
    assert unscaled[0, :, :2].tolist() == [[11.0, 20.0], [31.0, 5.0]]
    with pytest.raises(ValueError, match=r"shape \(N, K, 3\)"):
        keypoints_to_image(torch.zeros((2, 3)))
    with pytest.raises(ValueError, match="both net_size and size"):
        keypoints_to_image(kp, size=(8, 8))


def test_box_outlines_and_targets():
    outlines = box_outlines(torch.tensor([[1.0, 2.0, 5.0, 4.0], [0.0, 0.0, 1.0, 1.0]]))
    assert [p.bounds for p in outlines] == [(1, 2, 5, 4), (0, 0, 1, 1)]
    inst = Instances([shapely.box(0, 0, 4, 4)], [0], [1.0], (8, 8),
                     keypoints=[[[0.5, 0.5, 2], [3.5, 3.5, 1]]])  # fmt: skip
    target = keypoint_targets(inst)
    assert target.dtype == torch.float32 and target.tolist() == [[[0.5, 0.5, 2], [3.5, 3.5, 1]]]
    with pytest.raises(ValueError, match="instances have no keypoints"):
        keypoint_targets(inst.replace(keypoints=None))
    with pytest.raises(TypeError, match="must be an Instances"):
        keypoint_targets([1])


def test_head_options_are_kept():
    net = build_maskrcnn(num_classes=2)
    head = attach_keypoint_head(net, 3, channels=32, layers=2)
    assert head == {"channels": 32, "layers": 2}
    rebuilt = build_maskrcnn(num_classes=2)
    configure_heads(rebuilt, keypoint_meta(["a", "b", "c"], head=head))
    assert rebuilt.load_state_dict(net.state_dict()) is not None
    with pytest.raises(ValueError, match="num_keypoints must be an integer >= 1"):
        attach_keypoint_head(net, 0)


# -- training: the losses flow through mask and keypoint heads together --------------------------


def _targets(inst: Instances) -> dict[str, torch.Tensor]:
    return {
        "boxes": torch.as_tensor(inst.boxes, dtype=torch.float32),
        "labels": torch.as_tensor(inst.labels + 1),
        "masks": torch.as_tensor(inst.masks(), dtype=torch.uint8),
        "keypoints": keypoint_targets(inst),
    }


@pytest.mark.slow
def test_mask_and_keypoint_heads_train_on_synthetic_landmarks(one_thread):
    torch.manual_seed(0)
    tiny = {"fpn_channels": 32, "representation_size": 64, "mask_channels": 16, "mask_layers": 1}
    net = build_maskrcnn(num_classes=2, **tiny)
    attach_keypoint_head(net, len(LANDMARK_NAMES), channels=32, layers=2)
    data = [synthetic_landmarks((96, 96), n=4, size=(16, 24), seed=s) for s in range(2)]
    images = [torch.as_tensor(im, dtype=torch.float32).div(255).expand(3, -1, -1) for im, _ in data]
    targets = [_targets(inst) for _, inst in data]
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    net.train()
    history = []
    for _ in range(25):
        losses = net(images, targets)
        total = sum(losses.values())
        assert torch.isfinite(total)
        optimizer.zero_grad()
        total.backward()
        grad = net.roi_heads.keypoint_predictor.kps_score_lowres.weight.grad
        assert grad is not None and grad.abs().sum() > 0
        optimizer.step()
        history.append({k: float(v.detach()) for k, v in losses.items()})
    assert {"loss_mask", "loss_keypoint", "loss_classifier"} <= set(history[0])
    first = history[0]["loss_keypoint"]
    last = np.mean([h["loss_keypoint"] for h in history[-5:]])
    assert last < first
    net.eval()
    with torch.no_grad():
        out = net(images[:1])[0]
    assert out["keypoints"].shape[1:] == (2, 3) and "masks" in out
