"""Image formation shared by the generators: illumination, texture, point-spread blur, noise, bits.

A generator renders a noise-free signal in ``[0, 1]`` from its label image, then
`_illumination` shades it, `_blur` applies a Gaussian point-spread function, `_camera_noise`
adds Poisson shot noise and Gaussian read noise, and `_quantize` stores it in 8 or 16 bits
or float32. The helpers work on (H, W) and channel-last (H, W, C) arrays alike; the
ground truth, a label image, converts exactly to polygons (`_labels_to_instances`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..geometry import masks_to_polygons
from ..instances import Instances


def _illumination(rng: np.random.Generator, shape: tuple[int, int], kind: str) -> np.ndarray:
    """Multiplicative illumination field (float64, around 1) of the given kind."""
    h, w = shape
    if kind == "flat":
        return np.ones(shape)
    if kind == "gradient":
        phi = rng.uniform(0, 2 * np.pi)
        y, x = np.mgrid[0:h, 0:w]
        ramp = (x * np.cos(phi) + y * np.sin(phi)) / max(h, w)
        ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-9)
        return 1.0 - rng.uniform(0.2, 0.5) * ramp
    coarse = rng.uniform(0, 1, (4, 4))
    field = ndi.zoom(coarse, (h / 4, w / 4), order=3, mode="nearest", grid_mode=True)[:h, :w]
    field = (field - field.min()) / max(np.ptp(field), 1e-9)
    return 1.0 - rng.uniform(0.25, 0.55) * field


def _blur(rng: np.random.Generator, clean: np.ndarray, blur: tuple[float, float]) -> np.ndarray:
    """Gaussian point-spread function of a standard deviation drawn from ``blur`` (per image)."""
    sigma = rng.uniform(*blur)
    if sigma > 0:
        sigmas = (sigma, sigma) + (0.0,) * (clean.ndim - 2)
        clean = ndi.gaussian_filter(clean, sigmas)
    return clean


def _camera_noise(
    rng: np.random.Generator, clean: np.ndarray, noise: tuple[float, float]
) -> np.ndarray:
    """Poisson shot noise (std ``level * sqrt(signal)``) plus Gaussian read noise (``level / 2``)."""
    level = rng.uniform(*noise)
    if level > 0:
        photons = 1.0 / level**2  # shot noise std = level * sqrt(signal)
        clean = rng.poisson(np.clip(clean, 0, None) * photons) / photons
        clean = clean + rng.normal(0.0, level / 2, clean.shape)
    return clean


def _quantize(rng: np.random.Generator, image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float image in [0, 1] -> dtype (16-bit: dark offset 0-150, full scale 250-4000)."""
    image = np.clip(image, 0.0, 1.0)
    if dtype == np.uint8:
        return np.round(image * 255).astype(np.uint8)
    if dtype == np.uint16:  # cameras use a small, varying part of the 16-bit range
        full = np.exp(rng.uniform(np.log(250), np.log(4000)))
        dark = rng.uniform(0, min(150, 0.1 * full))
        return np.round(dark + image * (full - dark)).astype(np.uint16)
    return image.astype(np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise of unit standard deviation (float64)."""
    field = ndi.gaussian_filter(rng.standard_normal(shape), sigma)
    return field / max(float(field.std()), 1e-9)


def _spots(
    rng: np.random.Generator, where: np.ndarray, fraction: float, sigma: float = 0.8
) -> np.ndarray:
    """Small bright spots on a ``fraction`` of the ``where`` pixels, of mean height ~4."""
    spots = np.zeros(where.shape)
    idx = np.flatnonzero(where)
    count = rng.binomial(idx.size, fraction) if idx.size else 0
    spots.ravel()[rng.choice(idx, count, replace=False)] = rng.uniform(2, 6, count)
    return ndi.gaussian_filter(spots, sigma)


def _depth(labels: np.ndarray) -> np.ndarray:
    """Distance (float64) of each object pixel to its object's outline, neighbours included."""
    inner = (
        (labels > 0)
        & (ndi.grey_erosion(labels, size=3) == labels)
        & (ndi.grey_dilation(labels, size=3) == labels)
    )
    return ndi.distance_transform_edt(inner)


def _relative_depth(labels: np.ndarray) -> np.ndarray:
    """`_depth` divided by the deepest point of each object: 0 at the outline, 1 in the middle."""
    depth = _depth(labels) + (labels > 0)
    n = int(labels.max())
    if n == 0:
        return depth
    deepest = np.ones(n + 1)
    deepest[1:] = ndi.maximum(depth, labels, np.arange(1, n + 1))
    return depth / deepest[labels]


def _edges(labels: np.ndarray) -> np.ndarray:
    """Pixels (bool) with a 4-neighbour of another label (object outlines, both sides)."""
    up = ndi.grey_dilation(labels, footprint=ndi.generate_binary_structure(2, 1))
    down = ndi.grey_erosion(labels, footprint=ndi.generate_binary_structure(2, 1))
    return (up != labels) | (down != labels)


def _relabel(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Label image (int32) with ids ``keep`` (bool per id, index 0 ignored) renumbered 1..N."""
    ids = np.zeros(keep.size, dtype=np.int32)
    kept = np.flatnonzero(keep[1:]) + 1
    ids[kept] = np.arange(1, kept.size + 1, dtype=np.int32)
    return ids[labels]


def _labels_to_instances(labels: np.ndarray) -> Instances:
    """Exact polygons (``tolerance=0``) of the ids ``1..N`` of a label image, labels 0, scores 1."""
    n = int(labels.max())
    if n == 0:
        return Instances.empty((labels.shape[0], labels.shape[1]))
    polygons = masks_to_polygons(labels, tolerance=0)
    return Instances(polygons, np.zeros(n, np.int64), np.ones(n, np.float32), labels.shape)
