"""Keypoint heads on a Mask R-CNN: attaching torchvision's keypoint head, and its outputs.

torchvision's ``RoIHeads`` runs a mask head and a keypoint head side by side when both are
set (``mask_roi_pool``/``mask_head``/``mask_predictor`` and
``keypoint_roi_pool``/``keypoint_head``/``keypoint_predictor``): Mask R-CNN's pose variant,
each keypoint a one-hot ``56 x 56`` heatmap in the RoI. `attach_keypoint_head` sets the
keypoint head (`remove_mask_head` drops the mask head for a keypoints-only model);
`keypoint_meta` is what a `labelassist.model.Model` keeps in ``meta`` so that a
checkpoint rebuilds the same heads (`configure_heads`).

Coordinates: torchvision's keypoints are continuous pixel coordinates like its boxes (a
heatmap cell covers ``[x0 + i w / 56, x0 + (i + 1) w / 56]`` of its box and a prediction
is a cell centre), which is labelassist's COCO convention: keypoints are mapped to the
image exactly as boxes are (`keypoints_to_image`), no half-pixel shift.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import shapely
import torch
from torch import nn

from ..checks import check_int, check_number
from ..instances import Instances, check_keypoint_names, check_skeleton

__all__ = [
    "attach_keypoint_head",
    "box_outlines",
    "configure_heads",
    "extend_keypoint_head",
    "GrownRoIAlign",
    "grow_boxes",
    "has_keypoint_head",
    "has_mask_head",
    "keypoint_meta",
    "keypoint_targets",
    "keypoints_to_image",
    "num_keypoints",
    "remove_mask_head",
]


def has_keypoint_head(net: nn.Module) -> bool:
    """Whether ``net``'s RoI heads predict keypoints (torchvision ``RoIHeads.has_keypoint``).

    Examples
    --------
    >>> from labelassist.model import build_maskrcnn
    >>> has_keypoint_head(build_maskrcnn(num_classes=2))
    False
    """
    heads: Any = getattr(net, "roi_heads", None)
    return bool(heads is not None and heads.has_keypoint())


def num_keypoints(net: nn.Module) -> int | None:
    """K, the keypoints ``net`` predicts per object (None without a keypoint head); for an
    image without detections, ``Instances.empty(shape, keypoints=num_keypoints(net))``.

    Examples
    --------
    >>> from labelassist.model import build_maskrcnn
    >>> net = build_maskrcnn(num_classes=2)
    >>> num_keypoints(net) is None, attach_keypoint_head(net, 3) and num_keypoints(net)
    (True, 3)
    """
    if not has_keypoint_head(net):
        return None
    detector: Any = net
    return int(detector.roi_heads.keypoint_predictor.kps_score_lowres.out_channels)


def has_mask_head(net: nn.Module) -> bool:
    """Whether ``net``'s RoI heads predict masks (torchvision ``RoIHeads.has_mask``)."""
    heads: Any = getattr(net, "roi_heads", None)
    return bool(heads is not None and heads.has_mask())


def _head_defaults(net: nn.Module) -> tuple[int, int]:
    """(channels, layers) of the keypoint head for ``net``: torchvision's 8 x 512 on the
    256-channel ResNet-50 FPN, 4 x 128 on narrower (light) backbones."""
    detector: Any = net
    wide = int(getattr(detector.backbone, "out_channels", 256)) >= 256
    return (512, 8) if wide else (128, 4)


def attach_keypoint_head(
    net: nn.Module,
    num_keypoints: int,
    *,
    channels: int | None = None,
    layers: int | None = None,
    margin: float = 0.0,
) -> dict[str, Any]:
    """Set torchvision's keypoint head on ``net.roi_heads`` (in place), untrained.

    The RoI pooler reads the same feature maps as the box head (14 x 14 RoIs, sampling
    ratio 2, as torchvision's ``KeypointRCNN``); ``KeypointRCNNHeads`` is ``layers`` 3 x 3
    convolutions of ``channels``, and ``KeypointRCNNPredictor`` upsamples to one
    56 x 56 heatmap per keypoint. A mask head, if any, stays: both run together.

    Parameters
    ----------
    net : torch.nn.Module
        A torchvision ``MaskRCNN``/``FasterRCNN`` (`labelassist.model.build_maskrcnn`).
    num_keypoints : int
        K, the number of keypoint names.
    channels, layers : int, optional
        Width and depth of the head; default 512 x 8 (torchvision's) on 256-channel
        backbones, 128 x 4 on the light ``maskrcnn_resnet18_fpn``.
    margin : float
        The keypoint RoI is the box grown by ``margin`` times its longer side on every
        side (`GrownRoIAlign`), so that keypoints at the ends of an object, which lie on
        its box's edge, stay inside the heatmap when the box is a little short. 0:
        torchvision's (the box itself).

    Returns
    -------
    dict
        ``{"channels": ..., "layers": ...}`` (and ``"margin"`` when not 0), the head's
        options (`keypoint_meta` keeps them so that a checkpoint rebuilds the head).

    Examples
    --------
    >>> from labelassist.model import build_maskrcnn
    >>> net = build_maskrcnn(num_classes=2)
    >>> attach_keypoint_head(net, 2)
    {'channels': 128, 'layers': 4}
    >>> has_keypoint_head(net), has_mask_head(net)
    (True, True)
    """
    from torchvision.models.detection.keypoint_rcnn import (  # heavy: torchvision
        KeypointRCNNHeads,
        KeypointRCNNPredictor,
    )
    from torchvision.ops import MultiScaleRoIAlign

    k = check_int(num_keypoints, "num_keypoints", minimum=1)
    default_channels, default_layers = _head_defaults(net)
    width = check_int(channels, "channels", minimum=1, allow_none=True) or default_channels
    depth = check_int(layers, "layers", minimum=1, allow_none=True) or default_layers
    grow = float(check_number(margin, "margin", minimum=0, maximum=1))
    detector: Any = net
    heads = detector.roi_heads
    names = list(heads.box_roi_pool.featmap_names)
    in_channels = int(detector.backbone.out_channels)
    pool = MultiScaleRoIAlign(names, output_size=14, sampling_ratio=2)
    heads.keypoint_roi_pool = GrownRoIAlign(pool, grow) if grow else pool
    heads.keypoint_head = KeypointRCNNHeads(in_channels, [width] * depth)
    heads.keypoint_predictor = KeypointRCNNPredictor(width, k)
    return {"channels": width, "layers": depth, **({"margin": grow} if grow else {})}


class GrownRoIAlign(nn.Module):
    """The keypoint RoI pooler of a head with a ``margin``: each box grown by ``margin``
    times its longer side on every side, then ``pool`` (torchvision's
    ``MultiScaleRoIAlign``).

    The grown boxes are written back into the list it is given, because torchvision's
    ``RoIHeads`` passes that same list on to the keypoint loss (training) and to the
    heatmap decoding (prediction): both then use the grown boxes, consistently with the
    pooled features (``tests/test_keypoint_loss.py`` checks that torchvision still does).

    Examples
    --------
    >>> boxes = [torch.tensor([[10.0, 10.0, 30.0, 20.0]])]
    >>> grow_boxes(boxes, 0.1)[0].tolist()
    [[8.0, 8.0, 32.0, 22.0]]
    """

    def __init__(self, pool: nn.Module, margin: float) -> None:
        super().__init__()
        self.pool = pool
        self.margin = float(margin)

    def forward(
        self, x: dict[str, torch.Tensor], boxes: list[torch.Tensor], image_shapes: Any
    ) -> torch.Tensor:
        boxes[:] = grow_boxes(boxes, self.margin)
        return self.pool(x, boxes, image_shapes)


def grow_boxes(boxes: Sequence[torch.Tensor], margin: float) -> list[torch.Tensor]:
    """Boxes (M, 4) ``x0, y0, x1, y1`` grown by ``margin`` times their longer side on
    every side (new tensors)."""
    out = []
    for b in boxes:
        pad = margin * torch.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])[:, None]
        out.append(b + torch.cat([-pad, -pad, pad, pad], dim=1))
    return out


def extend_keypoint_head(net: nn.Module, num_keypoints: int) -> None:
    """Give the keypoint predictor of ``net`` ``num_keypoints`` heatmaps (in place),
    keeping the weights of the ones it had: new keypoint names are appended, as new classes
    are (`labelassist.train.heads.extend_heads`); the new heatmaps start untrained.

    Raises ``ValueError`` when ``net`` has no keypoint head or would lose keypoints.

    Examples
    --------
    >>> from labelassist.model import build_maskrcnn
    >>> net = build_maskrcnn(num_classes=2)
    >>> _ = attach_keypoint_head(net, 2)
    >>> extend_keypoint_head(net, 3)
    >>> num_keypoints(net)
    3
    """
    from torchvision.models.detection.keypoint_rcnn import (  # heavy: torchvision
        KeypointRCNNPredictor,
    )

    detector: Any = net
    old_k = (
        int(detector.roi_heads.keypoint_predictor.kps_score_lowres.out_channels)
        if has_keypoint_head(net)
        else None
    )
    new_k = check_int(num_keypoints, "num_keypoints", minimum=1)
    if old_k is None:
        raise ValueError("net has no keypoint head to extend; attach one (attach_keypoint_head)")
    if new_k < old_k:
        raise ValueError(
            f"cannot shrink a keypoint head of {old_k} keypoints to {new_k}; new keypoint "
            "names are appended, old ones kept"
        )
    old = detector.roi_heads.keypoint_predictor
    layer = old.kps_score_lowres
    new = KeypointRCNNPredictor(int(layer.in_channels), new_k)
    with torch.no_grad():
        new.kps_score_lowres.weight[:, :old_k] = layer.weight
        new.kps_score_lowres.bias[:old_k] = layer.bias
    detector.roi_heads.keypoint_predictor = new.to(layer.weight.device)


def remove_mask_head(net: nn.Module) -> None:
    """Drop the mask head of ``net`` (in place): a keypoints-only model (KeypointRCNN).

    Examples
    --------
    >>> from labelassist.model import build_maskrcnn
    >>> net = build_maskrcnn(num_classes=2)
    >>> remove_mask_head(net)
    >>> has_mask_head(net)
    False
    """
    heads: Any = net.roi_heads
    heads.mask_roi_pool = None
    heads.mask_head = None
    heads.mask_predictor = None


def keypoint_meta(
    keypoints: Sequence[str],
    skeleton: Sequence[tuple[int, int]] | None = None,
    *,
    masks: bool = True,
    head: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``Model.meta`` entries of a keypoint model (JSON-able, written into checkpoints).

    ``keypoints``: the names; ``skeleton``: 0-based ``[a, b]`` pairs; ``masks``: whether
    the mask head is kept; ``keypoint_head``: the head's options (`attach_keypoint_head`).

    Examples
    --------
    >>> keypoint_meta(["head", "tail"], [(0, 1)], head={"channels": 128, "layers": 4})
    {'keypoints': ['head', 'tail'], 'skeleton': [[0, 1]], 'masks': True, 'keypoint_head': {'channels': 128, 'layers': 4}}
    """
    names = check_keypoint_names(keypoints)
    edges = check_skeleton(skeleton, len(names))
    return {
        "keypoints": names,
        "skeleton": [[a, b] for a, b in edges],
        "masks": bool(masks),
        "keypoint_head": {
            k: float(v) if k == "margin" else int(v) for k, v in (head or {}).items()
        },
    }


def configure_heads(net: nn.Module, meta: Mapping[str, Any]) -> None:
    """Give ``net`` the heads ``meta`` describes (`keypoint_meta`), before loading a state
    dict: the keypoint head when ``meta["keypoints"]`` names keypoints, no mask head when
    ``meta["masks"]`` is False. A meta without keypoints leaves ``net`` as it is.

    Raises ``ValueError`` naming the entry when the keypoint entries are damaged.

    Examples
    --------
    >>> from labelassist.model import build_maskrcnn
    >>> net = build_maskrcnn(num_classes=2)
    >>> configure_heads(net, keypoint_meta(["head", "tail"], masks=False))
    >>> has_keypoint_head(net), has_mask_head(net)
    (True, False)
    """
    if meta.get("keypoints") is None:
        if meta.get("masks", True) is False:
            raise ValueError("meta['masks'] is False but meta['keypoints'] names no keypoints")
        return
    names = check_keypoint_names(meta["keypoints"], "meta['keypoints']")
    check_skeleton(
        [tuple(e) if isinstance(e, list) else e for e in meta.get("skeleton") or []],
        len(names),
        "meta['skeleton']",
    )
    masks = meta.get("masks", True)
    if not isinstance(masks, bool):
        raise ValueError(f"meta['masks'] must be true or false, got {masks!r}")
    head = meta.get("keypoint_head") or {}
    if not isinstance(head, Mapping) or set(head) - {"channels", "layers", "margin"}:
        raise ValueError(
            f"meta['keypoint_head'] must be {{'channels', 'layers'[, 'margin']}}, got {head!r}"
        )
    attach_keypoint_head(
        net,
        len(names),
        channels=head.get("channels"),
        layers=head.get("layers"),
        margin=head.get("margin", 0.0),
    )
    if not masks:
        remove_mask_head(net)


# -- outputs and targets -----------------------------------------------------------------------


def keypoints_to_image(
    keypoints: torch.Tensor,
    *,
    net_size: Sequence[int] | None = None,
    size: Sequence[int] | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """torchvision's predicted keypoints as labelassist keypoints in image coordinates.

    The same mapping as the boxes': scaled from the network's input size to the image
    (or tile) size (torchvision's ``resize_keypoints``, as ``resize_boxes``), then moved
    by the tile's offset.

    Parameters
    ----------
    keypoints : Tensor of shape (N, K, 3)
        ``detections[i]["keypoints"]`` of torchvision's ``RoIHeads`` (x, y in the
        network's resized input, third column 1), or already resized.
    net_size, size : (int, int), optional
        ``(height, width)`` the network saw, and of the image or tile it came from; both
        or neither (neither: no scaling, the keypoints were resized already).
    offset : (float, float)
        ``(x0, y0)`` of the tile in the image.

    Returns
    -------
    ndarray of shape (N, K, 3), float64
        x, y in COCO pixel coordinates of the image; visibility 2 (predicted, visible).

    Examples
    --------
    >>> kp = torch.tensor([[[10.0, 20.0, 1.0], [30.0, 5.0, 1.0]]])
    >>> keypoints_to_image(kp, net_size=(100, 100), size=(50, 200), offset=(4, 0)).tolist()
    [[[24.0, 10.0, 2.0], [64.0, 2.5, 2.0]]]
    """
    from torchvision.models.detection.transform import resize_keypoints  # heavy: torchvision

    points = keypoints.detach().float().cpu()
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"keypoints must have shape (N, K, 3), got {tuple(points.shape)}")
    if (net_size is None) != (size is None):
        raise ValueError("give both net_size and size (to scale keypoints), or neither")
    if points.shape[0] and net_size is not None and size is not None:
        points = resize_keypoints(points, list(net_size), list(size))
    out = points.numpy().astype(np.float64)
    out[:, :, 0] += float(offset[0])
    out[:, :, 1] += float(offset[1])
    out[:, :, 2] = 2.0
    return out


def box_outlines(boxes: np.ndarray | torch.Tensor) -> np.ndarray:
    """Boxes ``(x0, y0, x1, y1)`` as polygons: the outlines of a keypoints-only model's
    detections (no mask head), so that they are still `Instances`.

    Examples
    --------
    >>> box_outlines(np.array([[1.0, 2.0, 5.0, 4.0]]))[0].bounds
    (1.0, 2.0, 5.0, 4.0)
    """
    arr = np.asarray(boxes.detach().cpu() if isinstance(boxes, torch.Tensor) else boxes, float)
    return shapely.box(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]).astype(object)


def keypoint_targets(instances: Instances) -> torch.Tensor:
    """The ``"keypoints"`` training target of one image for torchvision's keypoint head.

    Parameters
    ----------
    instances : Instances
        With (N, K, 3) ``keypoints``; x, y are used as they are (torchvision's coordinates
        are labelassist's), visibility 1 and 2 count as labelled, 0 not.

    Returns
    -------
    Tensor of shape (N, K, 3), float32

    Examples
    --------
    >>> inst = Instances([shapely.box(0, 0, 4, 4)], [0], [1.0], (8, 8),
    ...                  keypoints=[[[0.5, 0.5, 2], [3.5, 3.5, 0]]])
    >>> keypoint_targets(inst)[0, :, 2].tolist()
    [2.0, 0.0]
    """
    if not isinstance(instances, Instances):
        raise TypeError(f"instances must be an Instances, got {type(instances).__name__}")
    if instances.keypoints is None:
        raise ValueError(
            "instances have no keypoints; a keypoint model trains on Instances with "
            "(N, K, 3) keypoints (v=0 where not labelled)"
        )
    return torch.as_tensor(instances.keypoints, dtype=torch.float32)
