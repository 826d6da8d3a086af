"""Network passes: images (each rescaled by its factor) through the detector, results on the original pixels.

`Runner` cuts the (rescaled) images into tiles when asked, batches them through
`labelassist.model.inference.detect`, places each RoI mask on the original image's pixels
(`labelassist.model.roi_masks`) and merges the tiles' copies of an object
(`labelassist.model.tiling`). `labelassist.model.predict` checks the options and decides
the factors.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from ..instances import Instances
from ..io.image import MAX_PIXELS_ENV, pixel_limit
from .inference import DetectionLimits, detect, detection_limits, inference_setup
from .keypoints import box_outlines, keypoints_to_image, num_keypoints
from .normalize import intensity_range, to_tensor
from .roi_masks import boxes_to_original, original_window, rois_to_polygons
from .scale import rescale_image
from .tiling import Tile, edge_distance, merge_tiles, select_candidates, tile_grid

__all__ = ["Runner"]

_T = TypeVar("_T")


@dataclass
class _Pending:
    """Per-image accumulator of detections (in image coordinates)."""

    shape: tuple[int, int]
    tiled: bool
    scaled: tuple[int, int] | None = None  # the rescaled image's (height, width), if any
    polygons: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    interior: list[np.ndarray] = field(default_factory=list)
    keypoints: list[np.ndarray] = field(default_factory=list)
    n_keypoints: int | None = None


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


def _check_rescaled_size(shape: tuple[int, ...], factor: float) -> None:
    """A one-line error when rescaling would exceed the image pixel limit
    (`labelassist.io.pixel_limit`)."""
    limit = pixel_limit()
    h, w = int(shape[0]), int(shape[1])
    nh, nw = max(1, round(h * factor)), max(1, round(w * factor))
    if limit is not None and factor > 1 and nh * nw > limit:
        raise ValueError(
            f"object_size would enlarge the {h} x {w} image by {factor:.3g} to {nh} x {nw} "
            f"pixels, over the limit of {limit} ({MAX_PIXELS_ENV}); give a larger "
            "object_size or crop the image"
        )


@dataclass
class Runner:
    """The network over images, each rescaled by its factor, results on the original pixels."""

    net: nn.Module
    lookup: np.ndarray
    normalization: Mapping[str, Any] | str | None
    device: torch.device
    score_threshold: float
    mask_threshold: float
    tile_size: int | None
    overlap: int
    batch_size: int
    tolerance: float | None
    max_detections: int | None
    mirror: bool = False

    def __call__(self, originals: list[np.ndarray], factors: list[float]) -> list[Instances]:
        if not originals:
            return []
        net, tile_size, overlap = self.net, self.tile_size, self.overlap
        for image, factor in zip(originals, factors, strict=True):
            _check_rescaled_size(image.shape[:2], factor)
        images = [rescale_image(im, f) for im, f in zip(originals, factors, strict=True)]
        limits: dict[int, tuple[float, float]] = {}
        pending = [
            _Pending(
                (int(orig.shape[0]), int(orig.shape[1])),
                False,
                None if im is orig else (int(im.shape[0]), int(im.shape[1])),
            )
            for orig, im in zip(originals, images, strict=True)
        ]
        for p in pending:
            p.n_keypoints = num_keypoints(net)
        saturated: list[int] = []
        with inference_setup(net, self.score_threshold):
            for batch in _batches(_jobs(images, tile_size, overlap), self.batch_size):
                tensors = []
                for idx, tile, tiled_shape in batch:
                    if tiled_shape is not None and idx not in limits:
                        limits[idx] = intensity_range(images[idx], normalization=self.normalization)
                    window = images[idx][tile.y0 : tile.y1, tile.x0 : tile.x1]
                    tensors.append(
                        to_tensor(window, normalization=self.normalization, limits=limits.get(idx))
                    )
                # a shrunk image keeps the detections its original area allows (dense
                # fields of small objects lose none); an enlarged one gets its new area's
                area = max(_tile_area(pending[i], t) for i, t, _ in batch)
                cap = detection_limits(net, area, max_detections=self.max_detections)
                for (idx, tile, tiled_shape), det in zip(
                    batch,
                    detect(net, tensors, self.device, limits=cap, mirror=self.mirror),
                    strict=True,
                ):
                    if len(det["boxes"]) >= cap.detections:
                        saturated.append(cap.detections)
                    _collect(
                        pending[idx],
                        det,
                        tile,
                        tiled_shape,
                        self.lookup,
                        self.mask_threshold,
                        self.tolerance,
                        overlap,
                    )
        if saturated:
            _warn_saturated(saturated, self.max_detections, DetectionLimits.of(net).detections)
        return [_finish(p) for p in pending]


def _tile_area(pending: _Pending, tile: Tile) -> float:
    """A tile's area, in original pixels when that is larger (the image was shrunk)."""
    area = float((tile.y1 - tile.y0) * (tile.x1 - tile.x0))
    if pending.scaled is None:
        return area
    shrink = (pending.shape[0] * pending.shape[1]) / (pending.scaled[0] * pending.scaled[1])
    return area * max(1.0, shrink)


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
    warnings.warn(message, stacklevel=5)


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
    masks = det["masks"]
    if masks is None:  # a keypoints-only model: the boxes are the outlines
        shift = np.array([tile.x0, tile.y0, tile.x0, tile.y0], np.float64)
        boxes_img = boxes_t.numpy().astype(np.float64) + shift
        if pending.scaled is not None:
            fx = pending.scaled[1] / pending.shape[1]
            fy = pending.scaled[0] / pending.shape[0]
            boxes_img = boxes_img / np.array([fx, fy, fx, fy])
        polygons = list(box_outlines(boxes_img))
    elif pending.scaled is None:
        masks = masks[sel.to(masks.device)]
        polygons = rois_to_polygons(
            masks,
            boxes_t,
            (tile.y1 - tile.y0, tile.x1 - tile.x0),
            mask_threshold=mask_threshold,
            tolerance=tolerance,
            offset=(tile.x0, tile.y0),
        )
    else:  # masks placed on the original pixels (see roi_masks)
        masks = masks[sel.to(masks.device)]
        shift = np.array([tile.x0, tile.y0, tile.x0, tile.y0], np.float64)
        factors = (
            pending.scaled[1] / pending.shape[1],
            pending.scaled[0] / pending.shape[0],
        )
        original = boxes_to_original(boxes_t.numpy().astype(np.float64) + shift, factors)
        polygons = rois_to_polygons(
            masks,
            torch.from_numpy(original),
            pending.shape,
            mask_threshold=mask_threshold,
            tolerance=tolerance,
            window=original_window(
                (tile.x0, tile.y0, tile.x1, tile.y1), pending.shape, pending.scaled
            ),
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
    if "keypoints" in det:
        points = keypoints_to_image(det["keypoints"][sel], offset=(tile.x0, tile.y0))
        if pending.scaled is not None:  # continuous coordinates: scaled, no half-pixel shift
            points[:, :, 0] *= pending.shape[1] / pending.scaled[1]
            points[:, :, 1] *= pending.shape[0] / pending.scaled[0]
        pending.keypoints.append(points[nonempty])
    if tiled_shape is not None:
        pending.interior.append(edge_distance(boxes_np, tile, tiled_shape).astype(np.float32))
        pending.boxes.append(boxes_np + np.array([tile.x0, tile.y0, tile.x0, tile.y0], np.float32))


def _finish(pending: _Pending) -> Instances:
    """One image's `Instances`: tiled copies merged, sorted by decreasing score."""
    if not pending.polygons:
        return Instances.empty(pending.shape, keypoints=pending.n_keypoints)
    polygons = np.concatenate(pending.polygons)
    labels = np.concatenate(pending.labels)
    scores = np.concatenate(pending.scores)
    points = np.concatenate(pending.keypoints) if pending.keypoints else None
    if pending.tiled and len(polygons) > 1:
        keep = merge_tiles(np.concatenate(pending.boxes), np.concatenate(pending.interior), labels)
        polygons, labels, scores = polygons[keep], labels[keep], scores[keep]
        points = None if points is None else points[keep]
    order = np.argsort(-scores, kind="stable")
    return Instances(
        list(polygons[order]),
        labels[order],
        scores[order],
        pending.shape,
        keypoints=None if points is None else points[order],
    )
