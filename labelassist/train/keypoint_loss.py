"""The keypoint loss of training: a Gaussian heatmap target in place of torchvision's one-hot cell.

torchvision's ``keypointrcnn_loss`` (Mask R-CNN's pose variant) trains each keypoint as a
cross-entropy over the ``56 x 56`` cells of its RoI's heatmap with a **one-hot** target, the
cell the keypoint falls in. With a few images that target learns slowly: a prediction one
cell off is as wrong as one across the RoI. `gaussian_keypoint_loss` is the same loss with a
soft target, a Gaussian of ``sigma`` cells around the keypoint (normalised over the grid; the
cross-entropy of the soft target), as top-down pose estimators train heatmaps; ``sigma=0`` is
torchvision's loss exactly (the same cells, the same valid keypoints, the same mean).

`keypoint_loss_hooks` puts it into a training run without touching torchvision: forward
hooks on *one* network's RoI heads capture what torchvision's keypoint branch saw (the
transformed targets, the positive proposals, the heatmap logits); after ``net(images,
targets)`` the run replaces ``loss_dict["loss_keypoint"]`` by `KeypointLoss.take`. The hooks
are removed when the block ends; prediction never runs them (eval mode has no loss).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..checks import check_number

__all__ = [
    "KeypointLoss",
    "gaussian_keypoint_loss",
    "keypoint_loss_hooks",
    "training_keypoint_loss",
]


def gaussian_keypoint_loss(
    keypoint_logits: torch.Tensor,
    proposals: Sequence[torch.Tensor],
    gt_keypoints: Sequence[torch.Tensor],
    matched_idxs: Sequence[torch.Tensor],
    *,
    sigma: float = 1.5,
) -> torch.Tensor:
    """Cross-entropy of keypoint heatmaps against Gaussian targets, as torchvision's
    ``keypointrcnn_loss`` with a soft target.

    Parameters
    ----------
    keypoint_logits : Tensor of shape (N, K, S, S)
        Heatmap logits of the N positive RoIs (all images, in order).
    proposals : sequence of Tensor of shape (N_i, 4)
        The positive RoIs of each image, ``(x0, y0, x1, y1)``.
    gt_keypoints : sequence of Tensor of shape (G_i, K, 3)
        The ground-truth keypoints of each image (x, y, visibility; v > 0 is labelled).
    matched_idxs : sequence of Tensor of shape (N_i,), int64
        The ground-truth object of each RoI.
    sigma : float
        Standard deviation of the target in heatmap cells (the RoI's width / S per cell in x,
        its height / S in y); 0: torchvision's one-hot target (the cell ``floor``).

    Returns
    -------
    Tensor
        The mean over the labelled keypoints inside their RoI (torchvision's rule: a
        keypoint on the right or bottom edge counts as the last cell, one outside is left
        out); zero (keeping the graph) when there is none.

    Examples
    --------
    >>> logits = torch.zeros(1, 1, 56, 56)  # a uniform heatmap
    >>> box, point = [torch.tensor([[0.0, 0.0, 56.0, 56.0]])], [torch.tensor([[[10.5, 20.5, 2.0]]])]
    >>> loss = gaussian_keypoint_loss(logits, box, point, [torch.tensor([0])], sigma=0)
    >>> round(float(loss), 4) == round(float(torch.log(torch.tensor(56.0 * 56))), 4)
    True
    """
    sigma = float(check_number(sigma, "sigma", minimum=0))
    n, k, h, w = keypoint_logits.shape
    if h != w:
        raise ValueError(f"keypoint_logits must be square heatmaps (N, K, S, S), got {(h, w)}")
    cx, cy, valid = _heatmap_positions(proposals, gt_keypoints, matched_idxs, h)
    if n == 0 or not bool(valid.any()):
        return keypoint_logits.sum() * 0
    logits = keypoint_logits.reshape(n * k, h * w)[valid].float()
    cx, cy = cx[valid], cy[valid]
    if sigma == 0:
        x = _cell(cx, h)
        y = _cell(cy, h)
        return nn.functional.cross_entropy(logits, y * w + x)
    cells = torch.arange(h, dtype=torch.float32, device=logits.device) + 0.5
    gx = torch.exp(-0.5 * ((cells[None] - cx[:, None]) / sigma) ** 2)
    gy = torch.exp(-0.5 * ((cells[None] - cy[:, None]) / sigma) ** 2)
    gx = gx / gx.sum(1, keepdim=True)
    gy = gy / gy.sum(1, keepdim=True)
    target = (gy[:, :, None] * gx[:, None, :]).reshape(len(cx), h * w)
    return -(target * torch.log_softmax(logits, dim=1)).sum(1).mean()


def _heatmap_positions(
    proposals: Sequence[torch.Tensor],
    gt_keypoints: Sequence[torch.Tensor],
    matched_idxs: Sequence[torch.Tensor],
    size: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Continuous heatmap coordinates (cells, flattened over RoIs x keypoints) of every
    keypoint in its RoI, and which are valid (labelled, inside: torchvision's rule)."""
    xs, ys, valids = [], [], []
    for boxes, points, idx in zip(proposals, gt_keypoints, matched_idxs, strict=True):
        kp = points[idx].float()
        boxes = boxes.float()
        x0, y0 = boxes[:, 0:1], boxes[:, 1:2]
        x1, y1 = boxes[:, 2:3], boxes[:, 3:4]
        x = (kp[..., 0] - x0) * (size / (x1 - x0))
        y = (kp[..., 1] - y0) * (size / (y1 - y0))
        # torchvision: a keypoint on the right/bottom edge is in the last cell
        x = torch.where(kp[..., 0] == x1, torch.full_like(x, size - 0.5), x)
        y = torch.where(kp[..., 1] == y1, torch.full_like(y, size - 0.5), y)
        inside = (x.floor() >= 0) & (y.floor() >= 0) & (x.floor() < size) & (y.floor() < size)
        xs.append(x.reshape(-1))
        ys.append(y.reshape(-1))
        valids.append((inside & (kp[..., 2] > 0)).reshape(-1))
    if not xs:
        empty = torch.zeros(0)
        return empty, empty, empty.bool()
    return torch.cat(xs), torch.cat(ys), torch.cat(valids)


def _cell(coordinate: torch.Tensor, size: int) -> torch.Tensor:
    """The cell index of a continuous heatmap coordinate (torchvision's ``floor``)."""
    return coordinate.floor().long().clamp(0, size - 1)


class KeypointLoss:
    """What `keypoint_loss_hooks` captured in one forward pass, and the loss it gives.

    ``take()`` returns `gaussian_keypoint_loss` of the last training forward pass and
    forgets it (a pass whose keypoint branch did not run gives None).
    """

    def __init__(self, sigma: float) -> None:
        self.sigma = float(check_number(sigma, "keypoint_sigma", minimum=0))
        self.targets: list[dict[str, torch.Tensor]] | None = None
        self.matched: list[torch.Tensor] | None = None
        self.proposals: list[torch.Tensor] | None = None
        self.logits: torch.Tensor | None = None

    def take(self) -> torch.Tensor | None:
        """The keypoint loss of the captured pass (None if nothing was captured)."""
        targets, matched, proposals, logits = (
            self.targets,
            self.matched,
            self.proposals,
            self.logits,
        )
        self.targets = self.matched = self.proposals = self.logits = None
        if targets is None or matched is None or proposals is None or logits is None:
            return None
        return gaussian_keypoint_loss(
            logits,
            proposals,
            [t["keypoints"] for t in targets],
            _matches(matched, [t["boxes"] for t in targets]),
            sigma=self.sigma,
        )


def _matches(
    proposals: Sequence[torch.Tensor], gt_boxes: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """The ground-truth object of each positive RoI, as torchvision's ``Matcher`` assigns it
    (the highest IoU; the same ``box_iou(...).max(dim=0)`` on the same boxes)."""
    from torchvision.ops import box_iou  # heavy: torchvision

    out = []
    for boxes, truth in zip(proposals, gt_boxes, strict=True):
        if len(boxes) == 0 or len(truth) == 0:
            out.append(torch.zeros(len(boxes), dtype=torch.int64, device=boxes.device))
        else:
            out.append(box_iou(truth, boxes).max(dim=0).indices)
    return out


@contextmanager
def keypoint_loss_hooks(net: nn.Module, sigma: float) -> Iterator[KeypointLoss]:
    """Within the block, training passes of ``net`` (a torchvision detection model with a
    keypoint head, not DDP-wrapped: pass the inner module) are captured for
    `gaussian_keypoint_loss`; replace ``loss_dict["loss_keypoint"]`` by ``take()``.

    Examples
    --------
    >>> from labelassist.model import build_maskrcnn
    >>> from labelassist.model.keypoints import attach_keypoint_head
    >>> net = build_maskrcnn(num_classes=2)
    >>> _ = attach_keypoint_head(net, 1)
    >>> with keypoint_loss_hooks(net, 1.5) as captured:
    ...     captured.take() is None
    True
    """
    captured = KeypointLoss(sigma)
    heads: Any = net.roi_heads

    def on_heads(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        targets = args[3] if len(args) > 3 else kwargs.get("targets")
        captured.targets = list(targets) if targets is not None and module.training else None
        captured.matched = captured.proposals = captured.logits = None

    def before_pool(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # the positive proposals as matched to the objects
        boxes = args[1] if len(args) > 1 else kwargs.get("boxes")
        captured.matched = list(boxes) if boxes is not None else None

    def after_pool(
        _module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], _output: Any
    ) -> None:
        # the RoIs as pooled (a head with a margin writes its grown boxes back)
        boxes = args[1] if len(args) > 1 else kwargs.get("boxes")
        captured.proposals = list(boxes) if boxes is not None else None

    def on_logits(_module: nn.Module, _args: tuple[Any, ...], output: torch.Tensor) -> None:
        captured.logits = output

    handles = [
        heads.register_forward_pre_hook(on_heads, with_kwargs=True),
        heads.keypoint_roi_pool.register_forward_pre_hook(before_pool, with_kwargs=True),
        heads.keypoint_roi_pool.register_forward_hook(after_pool, with_kwargs=True),
        heads.keypoint_predictor.register_forward_hook(on_logits),
    ]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def training_keypoint_loss(net: nn.Module, sigma: float) -> Iterator[KeypointLoss | None]:
    """`keypoint_loss_hooks` on ``net`` when it has a keypoint head and ``sigma > 0``;
    otherwise nothing (None: torchvision's own loss stays, mask-only models are untouched).

    Examples
    --------
    >>> from labelassist.model import build_maskrcnn
    >>> with training_keypoint_loss(build_maskrcnn(num_classes=2), 1.5) as captured:
    ...     captured is None
    True
    """
    from ..model.keypoints import has_keypoint_head  # heavy: torchvision

    if sigma <= 0 or not has_keypoint_head(net):
        yield None
        return
    with keypoint_loss_hooks(net, sigma) as captured:
        yield captured
