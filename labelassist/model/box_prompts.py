"""Box prompts: the Mask R-CNN heads on each box at the model's object size, the mask kept in its box.

A box ``x0, y0, x1, y1`` (COCO pixel coordinates) says where an object is and how large it
is. Two things follow, both measured (``bench/bench_prompts.py``, docs/prompts.md):

- **Object size.** A network segments objects best at the size it was trained at
  (``Model.object_size``, the Cellpose idea behind ``predict(object_size=...)``). A box of
  width ``w`` and height ``h`` holds an object of about ``sqrt(w * h)`` pixels, so with
  ``box_scale="auto"`` a box smaller than the model's object size is served from a crop
  around it enlarged by ``object_size / sqrt(w * h)`` (at most `MAX_BOX_SCALE`; never
  shrunk): the crop (the box plus twice its size on each side, at least `CONTEXT` pixels of the
  enlarged crop across) is resampled (`labelassist.model.scale.rescale_image`),
  normalised with the whole image's intensity range and encoded on its own. The mask
  probabilities are relative to the box, so they are read back on the original pixels
  with the box mapped back exactly (`labelassist.model.roi_masks.boxes_to_original`),
  as ``predict`` does for rescaled images. The crop's mask probabilities are averaged with
  the mask head's on the mirrored crop (as ``predict(mirror=True)`` does; one more small
  backbone pass): on held-out synthetic nuclei 60.0 -> 66.7 % of the 30 objects the starter
  missed reach IoU 0.8, on the real sample 53.8 -> 61.5 % of 13 (bench/results_prompts.md).
  Boxes at or above the object size use the image's features as they are.
- **The object lies in its box.** The pixels whose centres lie outside the prompt box
  are cut from its mask (`labelassist.model.roi_masks.rois_to_polygons`'s ``clip``):
  the mask head reads a box's edges as pixel centres, so without the cut a tight box's
  mask spills one column and one row past its right and bottom edges.
- **A tight box says more** (``segment(..., tight=True)``). A box from extreme clicking
  (four clicks on the object's leftmost, topmost, rightmost and bottommost pixels) touches
  the object on all four sides, so the mask should too: each box's threshold is chosen
  among `tight_thresholds` as the one whose mask's bounding box fills the box best (ties to
  the model's own). With the neighbours annotated, exact box prompts on the objects the
  starter missed reach mask IoU 0.8 for 73.3 -> 86.7 % (held-out synthetic) and 69.2 ->
  76.9 % (real sample); it fills a loose box, so it is only for tight ones
  (docs/prompts.md, bench/results_prompts.md).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from shapely.geometry.base import BaseGeometry
from torch import nn

from .features import EncodedWindow, ImageFeatures, autocast
from .roi_masks import boxes_to_original, rois_to_polygons
from .scale import grid_factors, rescale_image

__all__ = [
    "BOX_SCALES",
    "CONTEXT",
    "MAX_BOX_SCALE",
    "NEIGHBOUR_GAP",
    "TIGHT_THRESHOLDS",
    "box_scales",
    "extreme_boxes",
    "pixel_windows",
    "tight_thresholds",
]

#: The choices of ``box_scale`` besides a number.
BOX_SCALES = ("auto",)
#: The largest enlargement of a box's crop (`box_scales`).
MAX_BOX_SCALE = 8.0
#: The least width and height, in pixels of the enlarged crop, of a box's crop.
CONTEXT = 96
#: How far an extreme-point prompt's mask may reach beyond the convex hull of its four clicks,
#: in half the geometric mean of its box's width and height: ``1 - 1 / sqrt(2)``, as far as a
#: disc of radius ``r`` reaches beyond the square through its extreme points, ``0.29 r``
#: (`labelassist.model.roi_masks.rois_to_polygons`'s ``hull_margin``). Chosen on held-out
#: synthetic nuclei (seeds 9100-9299, no benchmark's; 401 objects the starter missed, the
#: others annotated): mask IoU >= 0.8 for 80.0 % without it, 81.0 % at 0.2, 89.5 % at 0.25,
#: 90.8 % at ``1 - 1 / sqrt(2)``, 90.0 % at 0.35, 88.8 % at 0.4 (bench/probe_hull_margin.py);
#: on fresh seeds 9300-9499 (432 missed objects) 78.0 % without it, 93.3 % with it.
HULL_MARGIN = 1 - 1 / math.sqrt(2)
#: An extreme-point prompt's mask takes the pixels of a gap at most this many pixels wide
#: between it and an annotated neighbour (``exclude``; `labelassist.model.roi_masks.
#: rois_to_polygons`'s ``gap_width``): touching nuclei share their outline, and the mask head
#: stops a pixel or two short of a neighbour. Chosen on held-out synthetic nuclei (seeds
#: 9500-9599, no benchmark's; 230 objects the starter missed, the others annotated; mask IoU
#: >= 0.8 / >= 0.9): 95.2 / 61.3 % without it, 97.0 / 70.9 % at 2, 97.4 / 70.4 % at 3,
#: 97.0 / 69.6 % at 4, 96.5 / 67.4 % at 6; on fresh seeds 9600-9699 (201 objects) 93.5 /
#: 51.7 % without it, 98.0 / 66.7 % at 2, 98.5 / 69.2 % at 3 (bench/probe_neighbour_gap.py).
NEIGHBOUR_GAP = 3
#: The mask thresholds a tight box's mask may use besides the model's (`tight_thresholds`).
TIGHT_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def tight_thresholds(mask_threshold: float) -> list[float]:
    """The mask thresholds tried for a tight box: `TIGHT_THRESHOLDS` and ``mask_threshold``.

    Chosen on held-out synthetic nuclei (40 images, seeds 9100-9139, not those of the
    benchmarks): of the 81 objects the starter missed, box prompts on their exact boxes
    (the other objects annotated) reach mask IoU 0.8 for 51.9 % at the model's threshold
    (0.6), 67.9 % choosing within +-0.2 of it, 72.8 % within +-0.3, 75.3 % among 0.1-0.9;
    the threshold chosen with the truth, an upper bound: 86.4 %.

    Examples
    --------
    >>> tight_thresholds(0.6)
    [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    >>> tight_thresholds(0.45)
    [0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9]
    """
    return sorted({*TIGHT_THRESHOLDS, float(mask_threshold)})


def extreme_boxes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The tight boxes of extreme clicks and the pixels clicked.

    Extreme clicking (Papadopoulos et al., ICCV 2017): four clicks on an object's leftmost,
    topmost, rightmost and bottommost pixels, in any order. Each click ``x, y`` (COCO pixel
    coordinates) is snapped to the pixel it falls in, ``(floor(x), floor(y))``, and the box
    covers those pixels whole, so it touches the object on all four sides.

    Parameters
    ----------
    points : ndarray of shape (N, 4, 2)
        ``x, y`` of each object's four clicks.

    Returns
    -------
    boxes : ndarray of shape (N, 4), float64
        ``x0, y0, x1, y1``.
    pixels : ndarray of shape (N, 4, 2), int64
        The ``(column, row)`` of each click's pixel.

    Examples
    --------
    Clicks in pixels (column, row) (2, 5), (6, 1), (8, 4) and (5, 7):

    >>> boxes, pixels = extreme_boxes(np.array([[[2.1, 5.2], [6.4, 1.0], [8.6, 4.3], [5.0, 7.8]]]))
    >>> boxes.tolist(), pixels[0].tolist()
    ([[2.0, 1.0, 9.0, 8.0]], [[2, 5], [6, 1], [8, 4], [5, 7]])
    """
    pixels = np.floor(np.asarray(points, dtype=np.float64).reshape(-1, 4, 2))
    boxes = np.concatenate([pixels.min(axis=1), pixels.max(axis=1) + 1], axis=1)
    return boxes, pixels.astype(np.int64)


def box_scales(boxes: np.ndarray, object_size: float | None, box_scale: Any) -> np.ndarray:
    """The enlargement of each box's crop, (N,) float64 (1: the image's own features).

    ``box_scale="auto"``: ``object_size / sqrt(w * h)`` clipped to ``[1, MAX_BOX_SCALE]``
    (1 everywhere when ``object_size`` is None); a number: that factor for every box.

    Examples
    --------
    >>> box_scales(np.array([[0, 0, 12, 12], [0, 0, 40, 30]]), 24.0, "auto").tolist()
    [2.0, 1.0]
    >>> box_scales(np.array([[0, 0, 12, 12]]), None, "auto").tolist()
    [1.0]
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if isinstance(box_scale, str):
        if box_scale not in BOX_SCALES:
            raise ValueError(f"box_scale must be 'auto' or a number >= 1, got {box_scale!r}")
        if object_size is None:
            return np.ones(len(boxes))
        side = np.sqrt(np.maximum(boxes[:, 2] - boxes[:, 0], 1e-6) * (boxes[:, 3] - boxes[:, 1]))
        return np.clip(float(object_size) / np.maximum(side, 1e-6), 1.0, MAX_BOX_SCALE)
    if isinstance(box_scale, (bool, np.bool_)) or not isinstance(box_scale, (int, float)):
        raise ValueError(f"box_scale must be 'auto' or a number >= 1, got {box_scale!r}")
    factor = float(box_scale)
    if not (math.isfinite(factor) and 1.0 <= factor <= MAX_BOX_SCALE):
        raise ValueError(
            f"box_scale must be 'auto' or a number from 1 to {MAX_BOX_SCALE:g}, got {box_scale!r}"
        )
    return np.full(len(boxes), factor)


def pixel_windows(boxes: np.ndarray) -> np.ndarray:
    """The pixels whose centres lie in each box, as ``(x0, y0, x1, y1)`` (N, 4) int64:
    columns ``x0 .. x1 - 1``, rows ``y0 .. y1 - 1`` (COCO convention: pixel ``j`` has its
    centre at ``j + 0.5``).

    Examples
    --------
    >>> pixel_windows(np.array([[2.0, 3.0, 10.0, 8.0], [2.4, 3.6, 9.6, 8.4]])).tolist()
    [[2, 3, 10, 8], [2, 4, 10, 8]]
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    lo = np.ceil(boxes[:, :2] - 0.5)
    hi = np.floor(boxes[:, 2:] - 0.5) + 1
    return np.concatenate([lo, hi], axis=1).astype(np.int64)


def rois(enc: EncodedWindow, boxes: np.ndarray, device: torch.device) -> torch.Tensor:
    """Image boxes (N, 4) as the network's RoIs of window ``enc`` (float32 tensor)."""
    return torch.as_tensor(enc.to_network(boxes), dtype=torch.float32, device=device)


def mask_probs(
    net: nn.Module, enc: EncodedWindow, rois: torch.Tensor, cols: torch.Tensor, device: torch.device
) -> torch.Tensor:
    """Mask probabilities (N, 1, M, M) of class column ``cols[i]`` inside ``rois[i]``."""
    heads: Any = net.roi_heads
    with autocast(device):
        x = heads.mask_head(heads.mask_roi_pool(enc.features, [rois], [enc.net_size]))
        logits = heads.mask_predictor(x)
    return logits.float()[torch.arange(len(rois), device=logits.device), cols][:, None].sigmoid()


def box_head(
    net: nn.Module,
    enc: EncodedWindow,
    rois: torch.Tensor,
    allowed: np.ndarray,
    refine: bool,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The box head on ``rois``: the RoIs (refined by the chosen class's regression when
    ``refine``), the chosen class columns (the best of ``allowed``) and their scores."""
    from torchvision.ops import boxes as box_ops  # heavy: torchvision

    heads: Any = net.roi_heads
    with autocast(device):
        x = heads.box_head(heads.box_roi_pool(enc.features, [rois], [enc.net_size]))
        logits, deltas = heads.box_predictor(x)
    probs = torch.softmax(logits.float(), -1)
    allowed_t = torch.as_tensor(allowed, device=probs.device)
    cols = allowed_t[probs[:, allowed_t].argmax(dim=1)]
    rows = torch.arange(len(rois), device=probs.device)
    scores = probs[rows, cols]
    if refine:
        decoded = heads.box_coder.decode(deltas.float(), [rois]).reshape(len(rois), -1, 4)
        refined = box_ops.clip_boxes_to_image(decoded[rows, cols], enc.net_size)
        ok = (refined[:, 2] - refined[:, 0] > 1e-2) & (refined[:, 3] - refined[:, 1] > 1e-2)
        rois = torch.where(ok[:, None], refined, rois)
    return rois, cols, scores


def window_polygons(
    net: nn.Module,
    enc: EncodedWindow,
    rois: torch.Tensor,
    cols: torch.Tensor,
    device: torch.device,
    opts: dict[str, Any],
    clip: np.ndarray | None = None,
    pixels: np.ndarray | None = None,
) -> list[BaseGeometry]:
    """The mask head's polygons (image coordinates) of ``rois`` (network coordinates of
    ``enc``), each cut to its ``clip`` pixel window (image coordinates) if given; ``pixels``
    (image ``(column, row)``, (N, K, 2)): pixels each object covers (`rois_to_polygons`'s
    ``fit_pixels``)."""
    probs = mask_probs(net, enc, rois, cols, device)
    origin = np.tile(enc.origin, 2)
    local = enc.to_image(rois.float().cpu().numpy()) - origin
    if pixels is not None:
        opts = {
            **opts,
            "fit_pixels": pixels - np.asarray(enc.origin, dtype=np.int64),
            "hull_margin": HULL_MARGIN,
            "gap_width": NEIGHBOUR_GAP,
        }
    return rois_to_polygons(
        probs,
        torch.from_numpy(local.astype(np.float32)),
        enc.shape,
        offset=(float(enc.origin[0]), float(enc.origin[1])),
        clip=None if clip is None else clip - origin,
        **opts,
    )


def segment_window(
    net: nn.Module,
    enc: EncodedWindow,
    boxes: np.ndarray,
    allowed: np.ndarray,
    refine: bool,
    device: torch.device,
    opts: dict[str, Any],
    pixels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Box prompts served by one window's features: polygons, network labels, scores."""
    found, cols, scores = box_head(net, enc, rois(enc, boxes, device), allowed, refine, device)
    polygons = np.empty(len(boxes), dtype=object)
    polygons[:] = window_polygons(net, enc, found, cols, device, opts, pixel_windows(boxes), pixels)
    return polygons, cols.cpu().numpy(), scores.cpu().numpy().astype(np.float32)


def _crop_window(box: np.ndarray, factor: float, shape: tuple[int, int]) -> tuple[int, ...]:
    """``(x0, y0, x1, y1)``: the box plus twice its size on each side, at least `CONTEXT` pixels
    of the enlarged crop across, clipped to the image."""
    h, w = shape
    x0, y0, x1, y1 = (float(v) for v in box)
    half = max(CONTEXT / (2 * factor), 2.0 * max(x1 - x0, y1 - y0))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (
        max(math.floor(cx - half), 0),
        max(math.floor(cy - half), 0),
        min(math.ceil(cx + half), w),
        min(math.ceil(cy + half), h),
    )


def _mirrored_probs(
    net: nn.Module, mirrored: ImageFeatures, rois: torch.Tensor, cols: torch.Tensor, width: int
) -> torch.Tensor:
    """The mask head's probabilities on the mirror of ``rois`` (network coordinates of an
    unpadded window ``width`` wide) in the mirrored image's features, flipped back.

    Index coordinate ``u`` (``aligned=False``: the centre of pixel ``u``) is ``width - 1 - u``
    in the mirror (`labelassist.model.inference` does the same for ``predict``).
    """
    enc = mirrored.encode_window(mirrored.window_for((0, 0, 0, 0)))
    flipped = torch.stack(
        [width - 1 - rois[:, 2], rois[:, 1], width - 1 - rois[:, 0], rois[:, 3]], dim=1
    )
    return mask_probs(net, enc, flipped, cols, mirrored.device).flip(-1)


def segment_scaled(
    net: nn.Module,
    feats: ImageFeatures,
    box: np.ndarray,
    factor: float,
    allowed: np.ndarray,
    refine: bool,
    opts: dict[str, Any],
    pixels: np.ndarray | None = None,
) -> tuple[BaseGeometry, int, float]:
    """One box prompt served from a crop around it enlarged by ``factor`` (see the module
    notes): its polygon (image coordinates), network label and score; ``pixels`` (K, 2):
    image ``(column, row)`` the object covers (`rois_to_polygons`'s ``fit_pixels``)."""
    x0, y0, x1, y1 = _crop_window(box, factor, feats.image_shape)
    crop = feats.image[y0:y1, x0:x1]
    fx, fy = grid_factors((y1 - y0, x1 - x0), factor)
    image = rescale_image(crop, factor)
    big = ImageFeatures(
        net,
        image,
        normalization=feats.normalization,
        device=feats.device,
        limits=feats.limits,
    )
    enc = big.encode_window(big.window_for((0, 0, 0, 0)))
    scale = np.array([fx, fy, fx, fy])
    local = (np.asarray(box, np.float64) - np.array([x0, y0, x0, y0])) * scale
    found, cols, scores = box_head(
        net, enc, rois(enc, local[None], feats.device), allowed, refine, feats.device
    )
    probs = mask_probs(net, enc, found, cols, feats.device)
    mirrored = ImageFeatures(
        net,
        np.ascontiguousarray(image[:, ::-1]),
        normalization=feats.normalization,
        device=feats.device,
        limits=feats.limits,
    )
    probs = (probs + _mirrored_probs(net, mirrored, found, cols, enc.net_size[1])) / 2
    back = boxes_to_original(enc.to_image(found.float().cpu().numpy()), (fx, fy))
    if pixels is not None:
        opts = {
            **opts,
            "fit_pixels": (np.asarray(pixels) - np.array([x0, y0]))[None],
            "hull_margin": HULL_MARGIN,
            "gap_width": NEIGHBOUR_GAP,
        }
    polygon = rois_to_polygons(
        probs,
        torch.from_numpy(back.astype(np.float32)),
        (y1 - y0, x1 - x0),
        offset=(float(x0), float(y0)),
        clip=pixel_windows(np.asarray(box)[None]) - np.array([x0, y0, x0, y0]),
        **opts,
    )[0]
    return polygon, int(cols[0]), float(scores[0])
