"""Prediction: images -> network input -> detections -> polygons (`Instances`).

`predict` takes a torchvision Mask R-CNN and its metadata (the network's label ids of the
classes, the image normalisation, the device), never the `labelassist.model.Model` wrapper
(which calls it). The pipeline never builds full-image masks: each RoI mask is traced
inside its box (`labelassist.model.roi_masks`). Large images can be cut into overlapping
tiles (`labelassist.model.tiling`); each object is taken from the tile that holds it
whole. The per-image detection limits grow with the image area
(`labelassist.model.inference.detection_limits`), so dense fields keep every object.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from ..checks import check_int, check_number
from ..instances import Instances
from .inference import DetectionLimits, detect, detection_limits, inference_setup
from .normalize import check_array_image, intensity_range, to_tensor
from .roi_masks import rois_to_polygons
from .tiling import (
    Tile,
    default_overlap,
    edge_distance,
    merge_tiles,
    select_candidates,
    tile_grid,
)

__all__ = ["predict", "to_tensor", "intensity_range", "tile_grid", "rois_to_polygons"]

_T = TypeVar("_T")


@dataclass
class _Pending:
    """Per-image accumulator of detections (in image coordinates)."""

    shape: tuple[int, int]
    tiled: bool
    polygons: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    interior: list[np.ndarray] = field(default_factory=list)


def _check_args(
    score_threshold: Any,
    mask_threshold: Any,
    tile_size: Any,
    tile_overlap: Any,
    batch_size: Any,
    max_detections: Any,
) -> None:
    check_number(score_threshold, "score_threshold", minimum=0, maximum=1)
    mask = check_number(mask_threshold, "mask_threshold", minimum=0, maximum=1)
    if mask in (0.0, 1.0):
        raise ValueError(f"mask_threshold must be within (0, 1), got {mask_threshold!r}")
    check_int(batch_size, "batch_size", minimum=1)
    check_int(max_detections, "max_detections", minimum=1, allow_none=True)
    if tile_size is None and tile_overlap is not None:
        raise ValueError(
            f"tile_overlap={tile_overlap!r} is only used with tile_size; pass tile_size too"
        )
    if tile_size is not None:
        size = check_int(tile_size, "tile_size", minimum=32, allow_none=True)
        try:
            check_int(tile_overlap, "tile_overlap", minimum=0, maximum=size // 2)
        except ValueError as exc:
            raise ValueError(
                f"{exc} (tile_size // 2 at most, larger than the largest object)"
            ) from None


def _as_list(image_or_list: Any) -> tuple[list[np.ndarray], bool]:
    if isinstance(image_or_list, (list, tuple)):
        return [check_array_image(im, f"images[{i}]") for i, im in enumerate(image_or_list)], False
    return [check_array_image(image_or_list)], True


def _jobs(
    images: list[np.ndarray], tile_size: int | None, tile_overlap: int
) -> Iterator[tuple[int, Tile, tuple[int, int] | None]]:
    for idx, image in enumerate(images):
        h, w = image.shape[:2]
        if tile_size is None or (h <= tile_size and w <= tile_size):
            yield idx, Tile(0, 0, h, w, (0.0, 0.0, float(w), float(h))), None
        else:
            for tile in tile_grid((h, w), tile_size, tile_overlap):
                yield idx, tile, (h, w)


def _batches(iterable: Iterable[_T], size: int) -> Iterator[list[_T]]:
    batch: list[_T] = []
    for item in iterable:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _label_lookup(net: nn.Module, label_ids: Sequence[int] | None) -> np.ndarray:
    """Network label -> 0-based class index (-1: not a class, e.g. COCO's "N/A")."""
    detector: Any = net
    num_classes = int(detector.roi_heads.box_predictor.cls_score.out_features)
    ids = list(range(1, num_classes)) if label_ids is None else [int(i) for i in label_ids]
    if not ids or not all(0 < i < num_classes for i in ids):
        raise ValueError(
            f"label_ids must be network labels in [1, {num_classes - 1}] (0 is background), "
            f"got {label_ids!r}"
        )
    lookup = np.full(num_classes, -1, dtype=np.int64)
    lookup[ids] = np.arange(len(ids))
    return lookup


def predict(
    net: nn.Module,
    image_or_list: np.ndarray | Sequence[np.ndarray],
    *,
    label_ids: Sequence[int] | None = None,
    normalization: Mapping[str, Any] | str | None = None,
    device: torch.device | str | None = None,
    score_threshold: float = 0.5,
    mask_threshold: float = 0.5,
    tile_size: int | None = None,
    tile_overlap: int | None = None,
    batch_size: int = 4,
    tolerance: float | None = None,
    max_detections: int | None = None,
) -> Instances | list[Instances]:
    """Predict instances with a torchvision Mask R-CNN.

    `labelassist.model.Model.predict` calls this with the model's network and metadata.

    Parameters
    ----------
    net : torch.nn.Module
        A torchvision ``MaskRCNN``; left in its original mode, threshold and limits.
    image_or_list : ndarray or list of ndarray
        Images of shape (H, W), (H, W, 3) or (H, W, 4), any dtype `to_tensor` takes.
    label_ids : sequence of int, optional
        Network label of each class: class ``k`` is network label ``label_ids[k]``; other
        network labels are dropped. Default: every non-background label, in order.
    normalization : dict or str, optional
        How intensities map to [0, 1] (`labelassist.model.normalize.intensity_range`).
    device : torch.device or str, optional
        Where ``net`` is. Default: the device of its parameters.
    score_threshold : float
        Keep detections scoring above this.
    mask_threshold : float
        Mask probability above which a pixel belongs to the object, within (0, 1).
    tile_size : int, optional
        Cut images larger than this into overlapping ``tile_size`` tiles (memory bounded,
        intensities normalised with one range per image). None: whole images.
    tile_overlap : int, optional
        Overlap of neighbouring tiles in pixels; must exceed the largest object. Default
        `labelassist.model.tiling.default_overlap` (``min(192, tile_size * 3 // 8)``).
    batch_size : int
        Images or tiles per network forward.
    tolerance : float, optional
        Polygon simplification (default `labelassist.geometry.DEFAULT_TOLERANCE`).
    max_detections : int, optional
        Detections kept per image or tile. Default: the network's own limit per 512 x 512
        px, scaled up with the area of larger images or tiles (with the RPN proposals,
        `labelassist.model.inference.detection_limits`), so dense fields keep every
        object. A warning says when an image or tile reaches its limit.

    Returns
    -------
    Instances or list of Instances
        An `Instances` for a single image, a list for a list. Labels are 0-based class
        indices (positions in ``label_ids``); detections whose mask is empty after
        thresholding are dropped; sorted by decreasing score.

    Examples
    --------
    >>> from labelassist.model import build_maskrcnn
    >>> net = build_maskrcnn(num_classes=2)
    >>> predict(net, [np.zeros((64, 64), np.uint8)], score_threshold=0.99)
    [Instances(n=0, image_shape=(64, 64), extra=[])]
    """
    if tile_overlap is None and tile_size is not None:
        tile_overlap = default_overlap(tile_size) if isinstance(tile_size, int) else 0
    _check_args(
        score_threshold, mask_threshold, tile_size, tile_overlap, batch_size, max_detections
    )
    overlap = int(tile_overlap or 0)
    images, single = _as_list(image_or_list)
    lookup = _label_lookup(net, label_ids)
    if device is None:
        device = next(net.parameters()).device
    device = torch.device(device)
    limits: dict[int, tuple[float, float]] = {}
    pending = [_Pending((int(im.shape[0]), int(im.shape[1])), False) for im in images]
    saturated: list[int] = []
    with inference_setup(net, score_threshold):
        for batch in _batches(_jobs(images, tile_size, overlap), batch_size):
            tensors = []
            for idx, tile, tiled_shape in batch:
                if tiled_shape is not None and idx not in limits:
                    limits[idx] = intensity_range(images[idx], normalization=normalization)
                window = images[idx][tile.y0 : tile.y1, tile.x0 : tile.x1]
                tensors.append(
                    to_tensor(window, normalization=normalization, limits=limits.get(idx))
                )
            area = max((t.y1 - t.y0) * (t.x1 - t.x0) for _, t, _ in batch)
            cap = detection_limits(net, area, max_detections=max_detections)
            for (idx, tile, tiled_shape), det in zip(
                batch, detect(net, tensors, device, limits=cap), strict=True
            ):
                if len(det["boxes"]) >= cap.detections:
                    saturated.append(cap.detections)
                _collect(
                    pending[idx], det, tile, tiled_shape, lookup, mask_threshold, tolerance, overlap
                )
    if saturated:
        _warn_saturated(saturated, max_detections, DetectionLimits.of(net).detections)
    results = [_finish(p) for p in pending]
    return results[0] if single else results


def _warn_saturated(caps: list[int], max_detections: int | None, configured: int) -> None:
    where = f"{len(caps)} image(s) or tile(s) reached"
    if max_detections is not None:
        message = (
            f"{where} max_detections={max_detections}, so objects may be missing: raise it "
            "or leave it out (the limit then grows with the image area)"
        )
    else:
        message = (
            f"{where} the model's limit of {max(caps)} detections ({configured} per 512 x 512 "
            "px, scaled with the area), so objects may be missing: pass a larger "
            "max_detections or a smaller tile_size (e.g. 512)"
        )
    warnings.warn(message, stacklevel=4)


def _collect(
    pending: _Pending,
    det: dict[str, torch.Tensor],
    tile: Tile,
    tiled_shape: tuple[int, int] | None,
    lookup: np.ndarray,
    mask_threshold: float,
    tolerance: float | None,
    overlap: int,
) -> None:
    """Add one image's or tile's detections (tile coordinates) to ``pending``."""
    boxes = det["boxes"].cpu()
    labels = lookup[det["labels"].cpu().numpy()]
    keep = labels >= 0
    if tiled_shape is not None:
        pending.tiled = True
        keep &= select_candidates(boxes.numpy(), tile, tiled_shape, overlap)
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        return
    sel = torch.from_numpy(idx)
    boxes_t = boxes[sel]
    polygons = rois_to_polygons(
        det["masks"][sel.to(det["masks"].device)],
        boxes_t,
        (tile.y1 - tile.y0, tile.x1 - tile.x0),
        mask_threshold=mask_threshold,
        tolerance=tolerance,
        offset=(tile.x0, tile.y0),
    )
    arr = np.empty(len(polygons), dtype=object)
    arr[:] = polygons
    nonempty = np.array([not p.is_empty for p in polygons], dtype=bool)
    if not nonempty.any():
        return
    boxes_np = boxes_t.numpy()[nonempty]
    pending.polygons.append(arr[nonempty])
    pending.labels.append(labels[idx][nonempty])
    pending.scores.append(det["scores"].cpu().numpy()[idx][nonempty].astype(np.float32))
    if tiled_shape is not None:
        pending.interior.append(edge_distance(boxes_np, tile, tiled_shape).astype(np.float32))
        pending.boxes.append(boxes_np + np.array([tile.x0, tile.y0, tile.x0, tile.y0], np.float32))


def _finish(pending: _Pending) -> Instances:
    """One image's `Instances`: tiled copies merged, sorted by decreasing score."""
    if not pending.polygons:
        return Instances.empty(pending.shape)
    polygons = np.concatenate(pending.polygons)
    labels = np.concatenate(pending.labels)
    scores = np.concatenate(pending.scores)
    if pending.tiled and len(polygons) > 1:
        keep = merge_tiles(np.concatenate(pending.boxes), np.concatenate(pending.interior), labels)
        polygons, labels, scores = polygons[keep], labels[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    return Instances(list(polygons[order]), labels[order], scores[order], pending.shape)
