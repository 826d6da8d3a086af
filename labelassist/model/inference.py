"""Running the network: one detector forward that keeps the RoI masks, in inference mode.

`detect` is torchvision's ``GeneralizedRCNN.forward`` without the mask pasting (boxes
rescaled to the input size, masks left as 28x28 RoI probabilities). `inference_setup`
puts a network in eval mode with the caller's score threshold and CPU speed-ups;
`detection_limits` scales its per-image limits (detections kept, RPN proposals) with the
input's area so that dense fields keep every object.

``detect(..., mirror=True)`` is test-time augmentation of the masks: each detection's mask
probabilities are averaged with the mask head's on the left-right mirrored image (the
backbone run again on the mirrored input, the detection's box mirrored with it), which
smooths the head's edge noise. Measured on held-out synthetic nuclei with the starter
(bench/bench_fidelity.py): median mask IoU 0.897 -> 0.905, proposals accepted at IoU 0.9
45.8 -> 49.5 %, for about 1.5x the time of a forward on the CPU.
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = [
    "REFERENCE_AREA",
    "DetectionLimits",
    "detect",
    "detection_limits",
    "inference_setup",
    "set_roi_scales",
]

#: The image area (pixels) a network's configured limits are meant for; larger inputs get
#: proportionally more (the budgets that tiles of 512 x 512 px would have in total).
REFERENCE_AREA = 512 * 512


class _ThreadedRoIPool(torch.nn.Module):
    """A torchvision ``MultiScaleRoIAlign`` run on chunks of the RoIs in parallel threads.

    torchvision's CPU ``roi_align`` kernel is single-threaded and took a third of the
    light model's forward here (1,000 box proposals); it releases the GIL, so chunks of
    the RoIs pooled in threads give the same tensor (every RoI is pooled independently,
    the level assignment depends on its own box only) in less time. Used for inference
    on the CPU only (`inference_setup`); the wrapped pooler is left untouched.
    """

    _executor: Any = None
    min_rois = 64  # per thread; fewer RoIs are pooled in the caller's thread

    def __init__(self, pool: torch.nn.Module, threads: int) -> None:
        super().__init__()
        self.pool, self.threads = pool, int(threads)

    @classmethod
    def _pool_executor(cls) -> Any:
        if cls._executor is None:
            cls._executor = ThreadPoolExecutor(
                max_workers=max(2, torch.get_num_threads()), thread_name_prefix="roi_align"
            )
        return cls._executor

    def _chunk(self, x: dict, boxes: list[torch.Tensor], image_shapes: list) -> torch.Tensor:
        with torch.inference_mode():  # the mode is per thread
            return self.pool(x, boxes, image_shapes)

    def forward(
        self, x: dict, boxes: list[torch.Tensor], image_shapes: list[tuple[int, int]]
    ) -> torch.Tensor:
        counts = [int(b.shape[0]) for b in boxes]
        n = min(self.threads, sum(counts) // self.min_rois)
        if n < 2 or getattr(self.pool, "scales", None) is None:
            return self.pool(x, boxes, image_shapes)  # the first call also sets the scales
        # one contiguous copy per level instead of one per chunk inside roi_align
        x = {k: v.contiguous() for k, v in x.items()}
        bounds = [[c * k // n for k in range(n + 1)] for c in counts]
        jobs = [
            [b[bd[k] : bd[k + 1]] for b, bd in zip(boxes, bounds, strict=True)] for k in range(n)
        ]
        parts = list(self._pool_executor().map(lambda job: self._chunk(x, job, image_shapes), jobs))
        # chunk k holds, image after image, rows bd[k]:bd[k + 1] of each image's boxes
        pieces: list[torch.Tensor] = []
        offsets = [0] * n
        for bd in bounds:
            for k in range(n):
                m = bd[k + 1] - bd[k]
                pieces.append(parts[k][offsets[k] : offsets[k] + m])
                offsets[k] += m
        return torch.cat(pieces)


@dataclass(frozen=True)
class DetectionLimits:
    """Per-image limits of a Mask R-CNN forward.

    Attributes
    ----------
    detections : int
        Detections kept per image (torchvision ``roi_heads.detections_per_img``).
    pre_nms : int
        RPN proposals kept per feature level before NMS (``rpn_pre_nms_top_n_test``).
    post_nms : int
        RPN proposals kept per image after NMS (``rpn_post_nms_top_n_test``).
    """

    detections: int
    pre_nms: int
    post_nms: int

    @classmethod
    def of(cls, net: nn.Module) -> DetectionLimits:
        """The limits ``net`` is configured with (for inference)."""
        detector: Any = net
        return cls(
            int(detector.roi_heads.detections_per_img),
            int(detector.rpn._pre_nms_top_n["testing"]),
            int(detector.rpn._post_nms_top_n["testing"]),
        )

    def apply(self, net: nn.Module) -> None:
        """Set these limits on ``net`` (torchvision keeps the RPN's in private dicts)."""
        detector: Any = net
        detector.roi_heads.detections_per_img = self.detections
        detector.rpn._pre_nms_top_n["testing"] = self.pre_nms
        detector.rpn._post_nms_top_n["testing"] = self.post_nms


def detection_limits(
    net: nn.Module, area: float, *, max_detections: int | None = None
) -> DetectionLimits:
    """The limits for an input of ``area`` pixels.

    A network's configured limits hold for `REFERENCE_AREA` (512 x 512 px); a larger input
    gets proportionally more detections and RPN proposals (what its 512 px tiles would
    have in total), so a dense field keeps every object. ``max_detections`` caps the
    detections instead (the proposals grow with it where it is higher).

    Chosen by measurement over tiling automatically: on dense synthetic nuclei fields with
    the starter (2 CPU threads), the fixed limit kept 300 of 600 objects at 1024 px and
    300 of 2,400 at 2048 px; the scaled limits found 608 (recall 0.91) and 2,482 (0.96),
    like 512 px tiles (609, 2,487) in 0.4-0.6x the tiles' time. Memory still grows with
    the area (peak RSS +1.4 GB at 2048 px, fixed limit +0.9 GB, 512 px tiles +0.4 GB): pass
    ``tile_size`` to bound it.

    Examples
    --------
    >>> from labelassist.model import build_maskrcnn
    >>> net = build_maskrcnn(num_classes=2)
    >>> detection_limits(net, 256 * 256)
    DetectionLimits(detections=300, pre_nms=1000, post_nms=1000)
    >>> detection_limits(net, 1024 * 1024)
    DetectionLimits(detections=1200, pre_nms=4000, post_nms=4000)
    >>> detection_limits(net, 256 * 256, max_detections=600)
    DetectionLimits(detections=600, pre_nms=2000, post_nms=2000)
    """
    base = DetectionLimits.of(net)
    factor = max(1.0, float(area) / REFERENCE_AREA)
    if max_detections is None:
        detections = math.ceil(base.detections * factor)
    else:
        detections = int(max_detections)
        factor = max(factor, detections / max(base.detections, 1))
    return DetectionLimits(
        detections, math.ceil(base.pre_nms * factor), math.ceil(base.post_nms * factor)
    )


def set_roi_scales(net: nn.Module, probe: int = 128) -> None:
    """Fix the feature-map scales of ``net``'s RoI poolers from a ``probe`` px image.

    torchvision's ``MultiScaleRoIAlign`` infers the scale of each feature level from the
    image of its *first* call (feature size over image size, rounded to a power of two)
    and keeps it. A first image that is small and padded (a thumbnail, the crop of a small
    box prompt) gives wrong scales that then hold for every later call: every RoI is pooled
    from the wrong place. A square power-of-two probe gives the exact strides. Poolers that
    are not ``MultiScaleRoIAlign`` are left alone; the network's mode is kept.

    Examples
    --------
    >>> from labelassist.model import build_maskrcnn
    >>> net = build_maskrcnn("maskrcnn_resnet18_fpn", 2)
    >>> set_roi_scales(net)
    >>> net.roi_heads.mask_roi_pool.scales
    [0.25, 0.125, 0.0625]
    """
    from torchvision.ops import MultiScaleRoIAlign  # heavy: torchvision

    heads: Any = getattr(net, "roi_heads", None)
    names = ("box_roi_pool", "mask_roi_pool", "keypoint_roi_pool")
    found = [getattr(heads, name, None) for name in names]
    pools: list[Any] = [p for p in found if isinstance(p, MultiScaleRoIAlign)]
    if not pools:
        return
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            backbone: Any = net.backbone
            maps: Any = backbone(torch.zeros(1, 3, probe, probe, device=device))
            if isinstance(maps, torch.Tensor):
                maps = OrderedDict([("0", maps)])
            for pool in pools:
                pool.scales, pool.map_levels = None, None
                pool(maps, [torch.zeros((0, 4), device=device)], [(probe, probe)])
    finally:
        net.train(was_training)


@contextlib.contextmanager
def inference_setup(net: nn.Module, score_threshold: float) -> Iterator[None]:
    """Eval mode and the caller's score threshold, restored afterwards.

    On the CPU the convolution weights are switched to channels-last memory format (once;
    ``finetune`` switches back): oneDNN's NHWC convolutions make inference ~15 % faster
    here with the same results (max score difference ~1e-5). Training measured no gain.
    With more than one thread, the RoI poolers run in threads (`_ThreadedRoIPool`, same
    results) for the duration.
    """
    detector: Any = net
    was_training = net.training
    heads = detector.roi_heads
    old_thresh = heads.score_thresh
    pools = {name: getattr(heads, name, None) for name in ("box_roi_pool", "mask_roi_pool")}
    net.eval()
    on_cpu = next(net.parameters()).device.type == "cpu"
    if on_cpu:
        detector.to(memory_format=torch.channels_last)
    threads = torch.get_num_threads()
    heads.score_thresh = float(score_threshold)
    try:
        if on_cpu and threads > 1:
            for name, pool in pools.items():
                if pool is not None and not isinstance(pool, _ThreadedRoIPool):
                    setattr(heads, name, _ThreadedRoIPool(pool, threads))
        with torch.inference_mode():
            yield
    finally:
        for name, pool in pools.items():
            if pool is not None:
                setattr(heads, name, pool)
        heads.score_thresh = old_thresh
        net.train(was_training)


def _average_mirrored(detector: Any, image_list: Any, detections: list[dict]) -> None:
    """Average each detection's ``masks`` (in place) with the mask head's on the
    left-right mirrored input.

    Pixel ``j`` of the padded batch (width ``W``) is pixel ``W - 1 - j`` of its mirror, and
    in RoI coordinates (``aligned=False``: index ``j`` is the centre of pixel ``j``) a box
    ``x0 .. x1`` becomes ``W - 1 - x1 .. W - 1 - x0``; its mask bins come out in mirrored
    order and are flipped back before averaging.
    """
    counts = [len(d["boxes"]) for d in detections]
    if sum(counts) == 0 or any("masks" not in d for d in detections):
        return
    heads = detector.roi_heads
    width = float(image_list.tensors.shape[-1])
    features = detector.backbone(torch.flip(image_list.tensors, [-1]))
    if isinstance(features, torch.Tensor):
        features = OrderedDict([("0", features)])
    boxes = []
    for det in detections:
        b = det["boxes"]
        boxes.append(torch.stack([width - 1 - b[:, 2], b[:, 1], width - 1 - b[:, 0], b[:, 3]], 1))
    logits = heads.mask_predictor(
        heads.mask_head(heads.mask_roi_pool(features, boxes, image_list.image_sizes))
    )
    labels = torch.cat([d["labels"] for d in detections])
    probs = logits[torch.arange(len(labels), device=labels.device), labels][:, None].sigmoid()
    for det, mirrored in zip(detections, probs.flip(-1).split(counts), strict=True):
        det["masks"] = (det["masks"] + mirrored.to(det["masks"].dtype)) / 2


def detect(
    net: nn.Module,
    images: Sequence[torch.Tensor],
    device: torch.device,
    *,
    limits: DetectionLimits | None = None,
    mirror: bool = False,
) -> list[dict[str, torch.Tensor]]:
    """Run the detector like ``GeneralizedRCNN.forward`` but keep the RoI masks.

    Parameters
    ----------
    net : torch.nn.Module
        A torchvision ``MaskRCNN`` in eval mode (see `inference_setup`).
    images : sequence of Tensor of shape (3, H, W)
        Network input (`labelassist.model.to_tensor`).
    device : torch.device
        Where ``net`` is; CUDA runs in float16 autocast.
    limits : DetectionLimits, optional
        Limits for this forward (restored afterwards); default the network's own.
    mirror : bool
        Average each mask with the mask head's on the mirrored image (see the module
        notes); the boxes, labels and scores are the unmirrored forward's.

    Returns
    -------
    list of dict
        Per image ``boxes`` (N, 4) in the input's pixel coordinates, ``scores`` (N,),
        ``labels`` (N,) network labels and ``masks`` (N, 1, M, M) RoI mask probabilities
        (not pasted).
    """
    from torchvision.models.detection.transform import (  # heavy: torchvision
        resize_boxes,
        resize_keypoints,
    )

    detector: Any = net

    inputs = [img.to(device, non_blocking=True) for img in images]
    sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in inputs]
    amp: contextlib.AbstractContextManager[Any] = (
        torch.autocast("cuda", dtype=torch.float16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )
    saved = DetectionLimits.of(net)
    try:
        if limits is not None:
            limits.apply(net)
        with amp:
            image_list, _ = detector.transform(inputs)
            features = detector.backbone(image_list.tensors)
            if isinstance(features, torch.Tensor):
                features = OrderedDict([("0", features)])
            proposals, _ = detector.rpn(image_list, features)
            detections, _ = detector.roi_heads(features, proposals, image_list.image_sizes)
            if mirror:
                del features, proposals  # memory: the mirrored pass computes its own
                _average_mirrored(detector, image_list, detections)
    finally:
        saved.apply(net)
    out = []
    for det, net_size, size in zip(detections, image_list.image_sizes, sizes, strict=True):
        out.append(
            {
                "boxes": resize_boxes(det["boxes"].float(), net_size, size),
                "scores": det["scores"].float(),
                "labels": det["labels"],
                "masks": det["masks"].float() if "masks" in det else None,
            }
        )
        if "keypoints" in det:  # the pose variant: mapped like the boxes
            out[-1]["keypoints"] = resize_keypoints(det["keypoints"].float(), net_size, size)
    return out
