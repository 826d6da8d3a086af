"""Overlay pictures: instance outlines drawn over an image (no matplotlib needed)."""

from __future__ import annotations

import numpy as np
import shapely

from .instances import Instances

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
    [[0, 63], [127, 255]]
    """
    from .io import check_image

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
    from skimage.draw import polygon_perimeter

    if by not in ("label", "instance"):
        raise ValueError(f"by must be 'label' or 'instance', got {by!r}")
    out = to_display(image).copy()
    if out.shape[:2] != instances.image_shape:
        raise ValueError(
            f"image shape {out.shape[:2]} does not match instances.image_shape "
            f"{instances.image_shape}"
        )
    palette = PALETTE if colors is None else np.asarray(colors, dtype=np.uint8)
    keys = instances.labels if by == "label" else np.arange(len(instances))
    for geom, key in zip(instances.polygons, keys, strict=True):
        color = palette[int(key) % len(palette)]
        for ring in _rings(geom):
            # COCO (x, y) -> pixel indices: a vertex at x lies on the left edge of column x;
            # draw on the pixels just inside the outline.
            xy = np.asarray(ring.coords)
            rows, cols = polygon_perimeter(
                np.clip(xy[:, 1] - 0.5, 0, out.shape[0] - 1),
                np.clip(xy[:, 0] - 0.5, 0, out.shape[1] - 1),
                shape=out.shape[:2],
                clip=True,
            )
            out[rows, cols] = color
    return out


def _rings(geom: shapely.Geometry) -> list[shapely.LinearRing]:
    rings = []
    for part in shapely.get_parts(geom):
        if part.is_empty:
            continue
        rings.append(part.exterior)
        rings.extend(part.interiors)
    return rings
