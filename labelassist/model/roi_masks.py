"""RoI masks to polygons: Mask R-CNN's per-box mask probabilities traced without full-image masks.

Each ``M x M`` probability map is resized into its own (integer) box exactly like
torchvision's ``paste_masks_in_image``, thresholded there and traced with
`labelassist.geometry.masks_to_polygons`; many small crops are traced in a few stacked calls.
"""

from __future__ import annotations

import numpy as np
import shapely
import torch
import torch.nn.functional as F
from shapely.geometry.base import BaseGeometry

from ..geometry import DEFAULT_TOLERANCE, masks_to_polygons

__all__ = ["rois_to_polygons"]


def rois_to_polygons(
    mask_probs: torch.Tensor,
    boxes: torch.Tensor,
    image_shape: tuple[int, int],
    *,
    mask_threshold: float = 0.5,
    tolerance: float | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
) -> list[BaseGeometry]:
    """Convert Mask R-CNN RoI mask probabilities to polygons without full-image masks.

    Each ``M x M`` map is placed in its box exactly like torchvision's
    ``paste_masks_in_image`` (1-pixel padding, box expanded accordingly and truncated to
    integers, bilinear resize to the integer box size, clipped to the image), thresholded
    (``> mask_threshold``) and traced inside the box.

    Parameters
    ----------
    mask_probs : Tensor of shape (N, 1, M, M), float
        Per-detection mask probabilities (torchvision's ``detections["masks"]`` before
        pasting).
    boxes : Tensor of shape (N, 4), float
        Boxes ``(x0, y0, x1, y1)`` in the image's pixel coordinates.
    image_shape : (int, int)
        ``(height, width)`` the pasted masks would have.
    mask_threshold : float
        Probability above which a pixel is inside.
    tolerance : float, optional
        Polygon simplification tolerance (default `labelassist.geometry.DEFAULT_TOLERANCE`).
    offset : (float, float)
        Added to every vertex ``(x, y)`` (e.g. a tile's origin).

    Returns
    -------
    list of shapely.Polygon or MultiPolygon, length N
        An empty Polygon where nothing is above the threshold.

    Examples
    --------
    A full RoI mask covers its box grown by torchvision's 1-pixel padding (x 1.75-9.25,
    y 2.86-7.14), truncated to whole pixels like ``paste_masks_in_image``:

    >>> probs = torch.ones(1, 1, 28, 28)
    >>> [p.bounds for p in rois_to_polygons(probs, torch.tensor([[2.0, 3.0, 9.0, 7.0]]), (16, 16))]
    [(1.0, 2.0, 10.0, 8.0)]
    """
    from torchvision.models.detection.roi_heads import (  # heavy: torchvision
        expand_boxes,
        expand_masks,
    )

    tolerance = DEFAULT_TOLERANCE if tolerance is None else tolerance
    n = int(boxes.shape[0])
    if n == 0:
        return []
    im_h, im_w = (int(s) for s in image_shape)
    padded, scale = expand_masks(mask_probs.float().cpu(), padding=1)
    int_boxes = expand_boxes(boxes.float().cpu(), scale).to(torch.int64).tolist()
    crops: list[np.ndarray | None] = []
    origins = np.zeros((n, 2), dtype=np.float64)
    for i, (bx0, by0, bx1, by1) in enumerate(int_boxes):
        w, h = max(bx1 - bx0 + 1, 1), max(by1 - by0 + 1, 1)
        x0, x1 = max(bx0, 0), min(bx1 + 1, im_w)
        y0, y1 = max(by0, 0), min(by1 + 1, im_h)
        if x1 <= x0 or y1 <= y0:
            crops.append(None)
            continue
        resized = F.interpolate(
            padded[i : i + 1], size=(h, w), mode="bilinear", align_corners=False
        )
        crop = resized[0, 0, y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0] > mask_threshold
        crops.append(crop.numpy())
        origins[i] = (x0, y0)
    return _trace_crops(crops, origins + np.asarray(offset, dtype=np.float64), tolerance)


def _trace_crops(
    crops: list[np.ndarray | None], origins: np.ndarray, tolerance: float, budget: int = 1 << 22
) -> list[BaseGeometry]:
    """Polygons of many small masks with few `masks_to_polygons` calls: crops of similar
    size are packed into zero-padded stacks (at most ``budget`` pixels each) and the
    results shifted to each crop's origin ``(x, y)``."""
    out = np.empty(len(crops), dtype=object)
    out[:] = [shapely.Polygon()] * len(crops)
    present = [(i, c) for i, c in enumerate(crops) if c is not None]
    present.sort(key=lambda item: item[1].size)
    start = 0
    while start < len(present):
        stop, height, width = start, 0, 0
        while stop < len(present):
            h, w = present[stop][1].shape
            if stop > start and (stop - start + 1) * max(height, h) * max(width, w) > budget:
                break
            height, width, stop = max(height, h), max(width, w), stop + 1
        chunk = present[start:stop]
        stack = np.zeros((len(chunk), height, width), dtype=bool)
        for k, (_, crop) in enumerate(chunk):
            h, w = crop.shape
            stack[k, :h, :w] = crop
        out[[i for i, _ in chunk]] = masks_to_polygons(stack, tolerance=tolerance)
        start = stop
    coords, index = shapely.get_coordinates(out, return_index=True)
    if len(coords):
        out = shapely.set_coordinates(out.copy(), coords + origins[index])
    return list(out)
