"""Object outlines of the synthetic generators: perturbed ellipses and curved tubes, rasterised.

A *blob* is an ellipse whose radius is perturbed by a few random Fourier modes (nuclei,
cells, grains); a *tube* is a disc swept along a smooth curve (bacteria, worms). Both are
rasterised exactly: a pixel belongs to the object when its centre ``(j + 0.5, i + 0.5)``
lies inside, so the label image, and not a drawing, is the ground truth.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

_N_MODES = 4  # Fourier modes perturbing the radius of a nucleus
_CROSS = ndi.generate_binary_structure(2, 1)

# a blob: mean radius, axis ratio, orientation, Fourier amplitudes and phases
_Blob = tuple[float, float, float, np.ndarray, np.ndarray]
# a rasterised object: mask within its box, the box, whether the image border cut the box
_Drawn = tuple[np.ndarray, tuple[slice, slice], bool]


def _blob(rng: np.random.Generator, radius: float, elongation: float, irregularity: float) -> _Blob:
    """Random blob parameters: mean radius, axis ratio, orientation, Fourier modes."""
    amps = irregularity * rng.uniform(0, 1, _N_MODES) / np.arange(2, 2 + _N_MODES)
    phases = rng.uniform(0, 2 * np.pi, _N_MODES)
    return radius, elongation, float(rng.uniform(0, np.pi)), amps, phases


def _sized_blob(
    rng: np.random.Generator, size: float, elongation: float, irregularity: float, modes: int = 6
) -> _Blob:
    """A blob whose area is that of a disc of diameter ``size`` (whatever its modes)."""
    amps = irregularity * rng.uniform(0, 1, modes) / np.arange(2, 2 + modes)
    phases = rng.uniform(0, 2 * np.pi, modes)
    # the area of r(t) = R (1 + sum a_k cos(k t + p_k)) is pi R^2 (1 + sum a_k^2 / 2)
    radius = 0.5 * size / np.sqrt(1.0 + 0.5 * float(np.sum(amps**2)))
    return radius, elongation, float(rng.uniform(0, np.pi)), amps, phases


def _blob_field(
    center: tuple[float, float], blob: _Blob, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice], bool] | None:
    """Normalised radius ``rho`` and outline ``bound`` over the blob's box (inside: rho <= bound).

    Returns ``(rho, bound, (rows, cols), clipped)`` or None when the box is outside the image.
    """
    radius, elong, angle, amps, phases = blob
    a, b = radius * np.sqrt(elong), radius / np.sqrt(elong)  # area pi * radius**2
    reach = a * (1 + amps.sum()) + 1
    cx, cy = center
    r0, r1 = max(int(np.floor(cy - reach)), 0), min(int(np.ceil(cy + reach)) + 1, shape[0])
    c0, c1 = max(int(np.floor(cx - reach)), 0), min(int(np.ceil(cx + reach)) + 1, shape[1])
    if r0 >= r1 or c0 >= c1:
        return None
    y = np.arange(r0, r1)[:, None] + 0.5 - cy
    x = np.arange(c0, c1)[None, :] + 0.5 - cx
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = (x * cos + y * sin) / a, (-x * sin + y * cos) / b
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    k = np.arange(2, 2 + amps.size)[:, None, None]
    bound = 1 + (amps[:, None, None] * np.cos(k * theta + phases[:, None, None])).sum(0)
    clipped = r0 == 0 or c0 == 0 or r1 == shape[0] or c1 == shape[1]
    return rho, bound, (slice(r0, r1), slice(c0, c1)), clipped


def _rasterize_blob(
    center: tuple[float, float], blob: _Blob, shape: tuple[int, int]
) -> _Drawn | None:
    """Pixels whose centre lies inside the blob: (mask, (rows, cols), clipped) or None.

    ``clipped``: the box was cut by the image border.
    """
    field = _blob_field(center, blob, shape)
    if field is None:
        return None
    rho, bound, box, clipped = field
    mask = rho <= bound
    return (mask, box, clipped) if mask.any() else None


def _daughter(
    rng: np.random.Generator, center: tuple[float, float], blob: _Blob
) -> tuple[float, float]:
    """Centre of the sister chromatid bar of a dividing cell: parallel, a gap apart."""
    radius, elong, angle = blob[:3]
    minor = radius / np.sqrt(elong)
    dist = 2 * minor + rng.uniform(1.5, 4.0)
    return center[0] - dist * np.sin(angle), center[1] + dist * np.cos(angle)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of a bool mask (the mask itself if it has one)."""
    lab, n = ndi.label(mask)  # 4-connectivity: one polygon per instance
    if n <= 1:
        return mask
    sizes = np.bincount(lab.ravel())[1:]
    return lab == (int(np.argmax(sizes)) + 1)


# -- tubes ---------------------------------------------------------------------------------
# a tube: centre line (M, 2) of (x, y) points relative to its centre, width, taper
_Tube = tuple[np.ndarray, float, float]


def _tube(
    rng: np.random.Generator, length: float, width: float, bend: float, taper: float
) -> _Tube:
    """A random tube: a curve of ``length`` turning by about ``bend`` radians, ``width`` wide.

    The turning angle grows linearly along the curve with a random sinuous part, so long
    tubes with a large bend look like worms (C- and S-shapes), short ones like bacteria.
    """
    steps = max(8, int(np.ceil(length / 2)))
    s = np.linspace(0.0, 1.0, steps)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    wiggle = rng.uniform(-0.4, 0.4) * bend
    angle = rng.uniform(0, 2 * np.pi) + sign * bend * (s - 0.5) + wiggle * np.sin(2 * np.pi * s)
    core = max(length - width, 0.0)  # the round caps add width / 2 at each end
    step = core / (steps - 1)
    xy = np.zeros((steps, 2))
    xy[1:, 0] = np.cumsum(step * np.cos(angle[:-1]))
    xy[1:, 1] = np.cumsum(step * np.sin(angle[:-1]))
    return xy - xy.mean(0), width, taper


def _rasterize_tube(
    center: tuple[float, float], tube: _Tube, shape: tuple[int, int]
) -> _Drawn | None:
    """Pixels whose centre lies within the tube's local half-width of its centre line.

    The half-width is ``width / 2`` along the line, narrowing to the ends by ``taper`` (0:
    a capsule with round caps, 1: pointed ends).
    """
    xy, width, taper = tube
    pts = xy + np.asarray(center)
    reach = width / 2 + 1
    r0 = max(int(np.floor(pts[:, 1].min() - reach)), 0)
    r1 = min(int(np.ceil(pts[:, 1].max() + reach)) + 1, shape[0])
    c0 = max(int(np.floor(pts[:, 0].min() - reach)), 0)
    c1 = min(int(np.ceil(pts[:, 0].max() + reach)) + 1, shape[1])
    if r0 >= r1 or c0 >= c1:
        return None
    # the centre line densely resampled (every 0.2 px): distances and positions along it
    seg = np.hypot(*np.diff(pts, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    at = np.linspace(0.0, arc[-1], max(int(np.ceil(arc[-1] / 0.2)) + 1, 2))
    dense = np.stack([np.interp(at, arc, pts[:, 0]), np.interp(at, arc, pts[:, 1])], -1)
    yy, xx = np.mgrid[r0:r1, c0:c1] + 0.5
    dist, nearest = cKDTree(dense).query(
        np.stack([xx.ravel(), yy.ravel()], -1), distance_upper_bound=width / 2 + 0.5
    )
    dist = dist.reshape(xx.shape)
    s = (nearest.reshape(xx.shape) / (len(dense) - 1)).clip(0.0, 1.0)
    half = 0.5 * width * ((1 - taper) + taper * np.sqrt(np.clip(1 - np.abs(2 * s - 1) ** 4, 0, 1)))
    mask = dist <= half
    clipped = r0 == 0 or c0 == 0 or r1 == shape[0] or c1 == shape[1]
    return (mask, (slice(r0, r1), slice(c0, c1)), clipped) if mask.any() else None
