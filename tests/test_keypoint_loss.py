"""The Gaussian keypoint loss: torchvision's loss at sigma 0, soft targets, the training hooks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tiny_models import one_thread, tiny_model  # noqa: F401 (autouse fixture)
from torchvision.models.detection.roi_heads import keypointrcnn_loss

from labelassist.model.keypoints import attach_keypoint_head, keypoint_targets
from labelassist.synthetic.landmarks import synthetic_landmarks
from labelassist.train.data import TrainImages
from labelassist.train.keypoint_loss import gaussian_keypoint_loss, keypoint_loss_hooks

NORM = {"mode": "auto", "percentiles": [0.0, 100.0]}


def random_case(seed, n_images=2, k=3, size=56):
    """Random positive RoIs, their ground truth (some keypoints unlabelled, outside their RoI
    or exactly on its right/bottom edge) and logits."""
    g = torch.Generator().manual_seed(seed)
    proposals, points, matched = [], [], []
    for _ in range(n_images):
        n_gt, n_roi = 3, 5
        xy0 = torch.rand(n_roi, 2, generator=g) * 50
        wh = 4 + torch.rand(n_roi, 2, generator=g) * 30
        boxes = torch.cat([xy0, xy0 + wh], dim=1)
        idx = torch.randint(0, n_gt, (n_roi,), generator=g)
        kp = torch.rand(n_gt, k, 3, generator=g) * 90 - 5
        kp[..., 2] = torch.randint(0, 3, (n_gt, k), generator=g).float()
        kp[idx[0], 0, 0] = boxes[0, 2]  # on the right edge of RoI 0
        kp[idx[0], 0, 2] = 2
        kp[idx[1], 1, :2] = (boxes[1, :2] + boxes[1, 2:]) / 2  # inside RoI 1
        kp[idx[1], 1, 2] = 1
        proposals.append(boxes)
        points.append(kp)
        matched.append(idx)
    logits = torch.randn(n_images * 5, k, size, size, generator=g)
    return logits, proposals, points, matched


@pytest.mark.parametrize("seed", range(5))
def test_sigma_zero_is_torchvisions_loss(seed):
    logits, proposals, points, matched = random_case(seed)
    ours = gaussian_keypoint_loss(logits, proposals, points, matched, sigma=0)
    theirs = keypointrcnn_loss(logits, proposals, points, matched)
    assert float(ours) == pytest.approx(float(theirs), rel=1e-6)


def test_a_tiny_sigma_tends_to_torchvisions_loss():
    """The Gaussian target of a keypoint away from cell edges becomes its one-hot cell."""
    logits = torch.randn(1, 1, 56, 56, generator=torch.Generator().manual_seed(0))
    box, point, idx = [torch.tensor([[0.0, 0.0, 28.0, 28.0]])], [torch.tensor([[[7.25, 3.25, 2]]])], [torch.tensor([0])]  # fmt: skip
    theirs = float(keypointrcnn_loss(logits, box, point, idx))
    assert float(gaussian_keypoint_loss(logits, box, point, idx, sigma=0.05)) == pytest.approx(
        theirs, rel=1e-5
    )
    assert float(gaussian_keypoint_loss(logits, box, point, idx, sigma=1.5)) != pytest.approx(
        theirs, rel=1e-2
    )


def test_the_gaussian_target_by_hand():
    """Logits equal to the log of a Gaussian around the keypoint minimise the loss, and the
    minimum is the target's entropy (computed here from the formula, with numpy)."""
    sigma, size = 1.5, 56
    cx, cy = 20.3, 31.7  # in cells: RoI (0, 0, 56, 56) has cells of one pixel
    centres = np.arange(size) + 0.5
    gx = np.exp(-0.5 * ((centres - cx) / sigma) ** 2)
    gy = np.exp(-0.5 * ((centres - cy) / sigma) ** 2)
    target = np.outer(gy / gy.sum(), gx / gx.sum())
    entropy = -(target * np.log(target + 1e-300)).sum()
    box, idx = [torch.tensor([[0.0, 0.0, 56.0, 56.0]])], [torch.tensor([0])]
    point = [torch.tensor([[[cx, cy, 2.0]]])]
    best = torch.log(torch.as_tensor(target, dtype=torch.float32) + 1e-30)[None, None]
    loss = float(gaussian_keypoint_loss(best, box, point, idx, sigma=sigma))
    assert loss == pytest.approx(entropy, rel=1e-4)
    shifted = torch.roll(best, shifts=3, dims=-1)
    assert float(gaussian_keypoint_loss(shifted, box, point, idx, sigma=sigma)) > loss + 1.0
    uniform = torch.zeros(1, 1, size, size)
    assert float(gaussian_keypoint_loss(uniform, box, point, idx, sigma=sigma)) == pytest.approx(
        math.log(size * size), rel=1e-5
    )


def test_no_labelled_keypoint_gives_zero_with_a_graph():
    logits = torch.randn(2, 1, 56, 56, requires_grad=True)
    boxes = [torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 20.0, 20.0]])]
    points = [torch.tensor([[[3.0, 3.0, 0.0]]])]  # not labelled
    loss = gaussian_keypoint_loss(logits, boxes, points, [torch.tensor([0, 0])], sigma=1.0)
    assert float(loss.detach()) == 0.0
    loss.backward()
    empty = gaussian_keypoint_loss(torch.zeros(0, 1, 56, 56), [torch.zeros(0, 4)], [torch.zeros(0, 1, 3)], [torch.zeros(0, dtype=torch.int64)])  # fmt: skip
    assert float(empty) == 0.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: gaussian_keypoint_loss(torch.zeros(1, 1, 56, 28), [], [], [], sigma=1.0),
         r"^keypoint_logits must be square heatmaps \(N, K, S, S\), got \(56, 28\)"),
        (lambda: gaussian_keypoint_loss(torch.zeros(1, 1, 56, 56), [], [], [], sigma=-1.0),
         "^sigma must be a finite number >= 0"),
    ],
)  # fmt: skip
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("margin", [0.0, 0.25])
def test_hooks_reproduce_torchvisions_loss_of_a_training_pass(margin):
    """In a real training pass of a keypoint Mask R-CNN (with grown RoIs too), the captured
    RoIs, matches and logits give torchvision's own ``loss_keypoint`` at sigma 0, and a
    Gaussian loss with a gradient at sigma 1.5; outside the block nothing is captured."""
    image, inst = synthetic_landmarks((64, 64), n=3, seed=0, size=(14.0, 24.0))
    dataset = TrainImages([(image, inst)], normalization=NORM, label_ids=[1])
    img, target = dataset[0]
    assert torch.equal(target["keypoints"], keypoint_targets(inst))
    model = tiny_model(["rod"])
    attach_keypoint_head(model.net, 2, channels=8, layers=1, margin=margin)
    net = model.net.train()
    for sigma in (0.0, 1.5):
        with keypoint_loss_hooks(net, sigma) as captured:
            torch.manual_seed(0)
            loss_dict = net([img], [target])
            ours = captured.take()
            assert captured.take() is None
        assert ours is not None
        if sigma == 0:
            assert float(ours.detach()) == pytest.approx(
                float(loss_dict["loss_keypoint"].detach()), rel=1e-5
            )
        else:
            assert abs(float(ours.detach()) - float(loss_dict["loss_keypoint"].detach())) > 1e-3
            ours.backward()
            grad = net.roi_heads.keypoint_predictor.kps_score_lowres.weight.grad
            assert grad is not None and float(grad.abs().sum()) > 0
    net([img], [target])
    assert not net.roi_heads._forward_pre_hooks
    assert not net.roi_heads.keypoint_predictor._forward_hooks
    net.eval()
    with keypoint_loss_hooks(net, 1.5) as captured, torch.no_grad():
        net([img])
        assert captured.take() is None


def test_grown_rois_reach_torchvisions_loss_and_decoding():
    """A head with a margin pools grown boxes, and torchvision's ``RoIHeads`` trains and
    decodes the heatmaps on those same grown boxes (the list the pooler writes back): the
    training loss is the one-hot loss on grown RoIs (not on the proposals), and predicted
    keypoints lie inside the grown detection boxes, some outside the boxes themselves."""
    from labelassist.model.keypoints import grow_boxes

    image, inst = synthetic_landmarks((64, 64), n=3, seed=0, size=(14.0, 24.0))
    img, target = TrainImages([(image, inst)], normalization=NORM, label_ids=[1])[0]
    model = tiny_model(["rod"])
    attach_keypoint_head(model.net, 2, channels=8, layers=1, margin=0.25)
    net = model.net.train()
    seen = {}
    pool = net.roi_heads.keypoint_roi_pool
    before = pool.register_forward_pre_hook(lambda m, a: seen.update(rois=list(a[1])))
    after = net.roi_heads.keypoint_predictor.register_forward_hook(
        lambda m, a, out: seen.update(logits=out)
    )
    torch.manual_seed(0)
    loss = float(net([img], [target])["loss_keypoint"].detach())
    rois, logits = seen["rois"], seen["logits"]
    from torchvision.ops import box_iou

    matched = [box_iou(target["boxes"], rois[0]).max(dim=0).indices]
    points = [target["keypoints"]]
    logits = logits.detach()
    grown = float(keypointrcnn_loss(logits, grow_boxes(rois, 0.25), points, matched))
    plain = float(keypointrcnn_loss(logits, rois, points, matched))
    assert loss == pytest.approx(grown, rel=1e-5) and loss != pytest.approx(plain, rel=1e-3)
    before.remove()
    after.remove()
    net.eval()
    with torch.no_grad():
        out = net([img])[0]
    boxes, xy = out["boxes"], out["keypoints"][..., :2]
    assert len(boxes) > 0
    big = grow_boxes([boxes], 0.25)[0]

    def inside(b):
        return (xy[..., 0] >= b[:, None, 0] - 1e-3) & (xy[..., 0] <= b[:, None, 2] + 1e-3) & (
            xy[..., 1] >= b[:, None, 1] - 1e-3) & (xy[..., 1] <= b[:, None, 3] + 1e-3)  # fmt: skip

    assert bool(inside(big).all()) and not bool(inside(boxes).all())
