"""Overlay pictures: instance outlines drawn over an image (no matplotlib needed)."""

from __future__ import annotations

import numpy as np
import shapely
from scipy.ndimage import binary_erosion

from .geometry import polygons_to_masks
from .instances import Instances
from .io import check_image

__all__ = ["to_display", "draw_outlines"]

# A colour-blind friendly palette (Okabe-Ito), RGB uint8.
PALETTE = np.array(
    [
        [230, 159, 0],
        [86, 180, 233],
        [0, 158, 115],
        [240, 228, 66],
        [0, 114, 178],
        [213, 94, 0],
        [204, 121, 167],
    ],
    dtype=np.uint8,
)


def to_display(image: np.ndarray, *, percentiles: tuple[float, float] = (0.5, 99.8)) -> np.ndarray:
    """Convert any image to RGB uint8 for display, stretching contrast by percentiles.

    Parameters
    ----------
    image : ndarray of shape (H, W), (H, W, 3) or (H, W, 4)
        uint8 images are kept as they are; other dtypes (16-bit microscopy, float) are
        scaled so that the given percentiles map to 0 and 255.
    percentiles : (low, high)
        Percentiles (of all channels) mapped to black and white.

    Returns
    -------
    ndarray of shape (H, W, 3), uint8

    Examples
    --------
    >>> img = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    >>> to_display(img, percentiles=(0, 100))[..., 0].tolist()
    [[0, 64], [128, 255]]
    """
    image = check_image(image)
    if image.ndim == 3:
        image = image[..., :3]
    if image.dtype != np.uint8:
        values = image.astype(np.float32)
        lo, hi = np.percentile(values[:: max(1, values.shape[0] // 512)], percentiles)
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        image = np.clip((values - lo) * scale, 0, 255).round().astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image


def draw_outlines(
    image: np.ndarray,
    instances: Instances,
    *,
    colors: np.ndarray | None = None,
    by: str = "label",
) -> np.ndarray:
    """Draw the outline of every instance (exterior and holes) over an image.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3 | 4)
        The image, any dtype (see `to_display`).
    instances : Instances
        Geometry in COCO pixel coordinates; ``instances.image_shape`` must match.
    colors : ndarray of shape (K, 3), uint8, optional
        Palette; defaults to a colour-blind friendly one.
    by : {"label", "instance"}
        Colour by class label, or give every instance its own colour.

    Returns
    -------
    ndarray of shape (H, W, 3), uint8
        A new image; the input is not modified.

    Examples
    --------
    >>> import shapely
    >>> inst = Instances([shapely.box(2, 2, 6, 5)], [0], [1.0], (8, 8))
    >>> out = draw_outlines(np.zeros((8, 8), np.uint8), inst)
    >>> bool(out[2, 2].any()), bool(out[3, 3].any())
    (True, False)
    """
    if by not in ("label", "instance"):
        raise ValueError(f"by must be 'label' or 'instance', got {by!r}")
    out = to_display(image).copy()
    height, width = out.shape[:2]
    if (height, width) != instances.image_shape:
        raise ValueError(
            f"image shape {out.shape[:2]} does not match instances.image_shape "
            f"{instances.image_shape}"
        )
    palette = PALETTE if colors is None else np.asarray(colors, dtype=np.uint8)
    keys = instances.labels if by == "label" else np.arange(len(instances))
    boxes = instances.boxes
    for k, geom in enumerate(instances.polygons):
        # rasterize inside the box only; the outline is the instance's own boundary pixels
        x0, y0 = max(0, int(np.floor(boxes[k, 0]))), max(0, int(np.floor(boxes[k, 1])))
        x1, y1 = min(width, int(np.ceil(boxes[k, 2]))), min(height, int(np.ceil(boxes[k, 3])))
        if geom.is_empty or x1 <= x0 or y1 <= y0:
            continue
        local = shapely.transform(geom, lambda xy, dx=x0, dy=y0: xy - (dx, dy))
        mask = polygons_to_masks([local], (y1 - y0, x1 - x0))[0]
        edge = mask & ~binary_erosion(mask, border_value=0)
        out[y0:y1, x0:x1][edge] = palette[int(keys[k]) % len(palette)]
    return out
