"""Synthetic membrane-stained epithelium: packed cells whose boundaries alone are bright.

Cell centres sit on a jittered honeycomb; each pixel belongs to the nearest centre (a
Voronoi tessellation of a smoothly warped plane, so cell walls bend a little). A smooth
random field leaves part of the image without tissue. The membrane stain lights up the
pixels on both sides of every cell wall (a line 2-3 pixels wide, uneven along its length,
with puncta), the cytoplasm shows faintly with a darker nucleus. The instances are the
cells; touching cells share their wall, no pixel belongs to two cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, overload

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from ..checks import check_shape
from ..instances import Instances
from .optics import (
    _blur,
    _camera_noise,
    _edges,
    _illumination,
    _labels_to_instances,
    _quantize,
    _relabel,
    _relative_depth,
    _smooth_noise,
    _spots,
)
from .params import (
    BACKGROUNDS,
    _check_backgrounds,
    _check_dtype,
    _image_size,
    _range,
)
from .placement import _min_pixels

__all__ = ["synthetic_epithelium"]

_Seed = int | np.random.Generator | np.random.SeedSequence | None


@overload
def synthetic_epithelium(
    shape: tuple[int, int] = (256, 256),
    *,
    size: float | tuple[float, float] = (12.0, 40.0),
    regularity: float | tuple[float, float] = (0.3, 0.9),
    coverage: float | tuple[float, float] = (0.6, 1.0),
    membrane: float | tuple[float, float] = (2.0, 3.0),
    intensity: float | tuple[float, float] = (0.3, 0.8),
    texture: float = 0.4,
    blur: float | tuple[float, float] = (0.5, 1.5),
    noise: float | tuple[float, float] = (0.01, 0.05),
    background: str | Sequence[str] = BACKGROUNDS,
    dtype: Any = np.uint8,
    return_labels: Literal[False] = ...,
    seed: _Seed = None,
) -> tuple[np.ndarray, Instances]: ...


@overload
def synthetic_epithelium(
    shape: tuple[int, int] = (256, 256),
    *,
    size: float | tuple[float, float] = (12.0, 40.0),
    regularity: float | tuple[float, float] = (0.3, 0.9),
    coverage: float | tuple[float, float] = (0.6, 1.0),
    membrane: float | tuple[float, float] = (2.0, 3.0),
    intensity: float | tuple[float, float] = (0.3, 0.8),
    texture: float = 0.4,
    blur: float | tuple[float, float] = (0.5, 1.5),
    noise: float | tuple[float, float] = (0.01, 0.05),
    background: str | Sequence[str] = BACKGROUNDS,
    dtype: Any = np.uint8,
    return_labels: Literal[True],
    seed: _Seed = None,
) -> tuple[np.ndarray, Instances, np.ndarray]: ...


def synthetic_epithelium(
    shape: tuple[int, int] = (256, 256),
    *,
    size: float | tuple[float, float] = (12.0, 40.0),
    regularity: float | tuple[float, float] = (0.3, 0.9),
    coverage: float | tuple[float, float] = (0.6, 1.0),
    membrane: float | tuple[float, float] = (2.0, 3.0),
    intensity: float | tuple[float, float] = (0.3, 0.8),
    texture: float = 0.4,
    blur: float | tuple[float, float] = (0.5, 1.5),
    noise: float | tuple[float, float] = (0.01, 0.05),
    background: str | Sequence[str] = BACKGROUNDS,
    dtype: Any = np.uint8,
    return_labels: bool = False,
    seed: _Seed = None,
) -> tuple[np.ndarray, Instances] | tuple[np.ndarray, Instances, np.ndarray]:
    """A synthetic membrane-stained epithelium and its exact ground-truth cells.

    Parameters
    ----------
    shape : (int, int)
        ``(height, width)`` of the image.
    size : float or (float, float)
        Mean cell diameter in pixels (of the disc of the same area), 4 or more, drawn
        log-uniformly per image; the cells of an image vary around it with the jitter.
    regularity : float or (float, float)
        Per image, within ``[0, 1]``: ``1`` is a perfect honeycomb, ``0`` strongly
        jittered centres and bent walls.
    coverage : float or (float, float)
        Fraction of the image covered by tissue, per image, within ``(0, 1]``; cells cut
        to less than half by the tissue's edge are left out (no tissue there). Slivers of
        cells cut by the image border, under 4-12 pixels, are drawn but not labelled.
    membrane : float or (float, float)
        Width of the stained wall in pixels, within ``[2, 3]`` (2: the pixels on both
        sides of the wall; 3: one more).
    intensity : float or (float, float)
        Membrane brightness as a fraction of full scale, within ``[0, 1]``.
    texture : float
        Unevenness of the membranes and the cytoplasm, >= 0.
    blur, noise, background, dtype, return_labels, seed
        As in `synthetic_nuclei`.

    Returns
    -------
    image : ndarray of shape (H, W), dtype ``dtype``
    instances : Instances
        One polygon per cell (COCO pixel coordinates ``(x, y)``, exact pixel outlines),
        labels 0, scores 1; ``instances[k]`` is the cell with id ``k + 1``.
    labels : ndarray of shape (H, W), int32
        Only with ``return_labels=True``: 0 = no tissue, ``1..N`` = cells.

    Examples
    --------
    >>> image, inst, labels = synthetic_epithelium((64, 64), size=16, coverage=1,
    ...                                            return_labels=True, seed=0)
    >>> image.shape, bool((labels > 0).mean() > 0.95), len(inst) > 10
    ((64, 64), True, True)
    """
    shape = check_shape(shape, "shape", minimum=1)
    size = _range("size", size, low=4.0)
    regularity = _range("regularity", regularity, low=0.0, high=1.0)
    coverage = _range("coverage", coverage, low=0.0, high=1.0)
    if coverage[1] <= 0:
        raise ValueError(f"coverage must be > 0 (some tissue), got {coverage}")
    membrane = _range("membrane", membrane, low=2.0, high=3.0)
    intensity = _range("intensity", intensity, low=0.0, high=1.0)
    texture = _range("texture", texture, low=0.0)[0]
    blur = _range("blur", blur, low=0.0)
    noise = _range("noise", noise, low=0.0, high=1.0)
    kinds = _check_backgrounds(background)
    dt = _check_dtype(dtype)

    rng = np.random.default_rng(seed)
    typical = _image_size(rng, size)
    labels = _tessellate(rng, shape, typical, rng.uniform(*regularity))
    drawn, labels = _cut_tissue(rng, labels, rng.uniform(*coverage), _min_pixels(size[0]))
    width = rng.uniform(*membrane)
    signal = _membrane_signal(rng, drawn, width, intensity=intensity, texture=texture)
    illum = _illumination(rng, shape, kinds[rng.integers(len(kinds))])
    clean = illum * (rng.uniform(0.02, 0.1) + signal)
    clean = _camera_noise(rng, _blur(rng, clean, blur), noise)
    image = _quantize(rng, clean, dt)
    instances = _labels_to_instances(labels)
    return (image, instances, labels) if return_labels else (image, instances)


def _tessellate(
    rng: np.random.Generator, shape: tuple[int, int], diameter: float, regularity: float
) -> np.ndarray:
    """Voronoi cells (int32 ids from 1) of jittered honeycomb centres in a warped plane."""
    h, w = shape
    # a hexagon of spacing s has the area of a disc of diameter s * sqrt(2 sqrt(3) / pi)
    s = diameter / np.sqrt(2 * np.sqrt(3) / np.pi)
    rows = np.arange(-1.0, h / (s * np.sqrt(3) / 2) + 2)
    cols = np.arange(-1.0, w / s + 2)
    gy, gx = np.meshgrid(rows, cols, indexing="ij")
    centres = np.stack([(gx + 0.5 * (gy % 2)) * s, gy * s * np.sqrt(3) / 2], -1).reshape(-1, 2)
    centres += rng.normal(0.0, 0.3 * (1 - regularity) * s, centres.shape)
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    bend = 0.12 * (1 - regularity) * s  # wavy walls: warp the plane smoothly
    xx = xx + bend * _smooth_noise(rng, shape, max(s / 2, 1.0))
    yy = yy + bend * _smooth_noise(rng, shape, max(s / 2, 1.0))
    _, nearest = cKDTree(centres).query(np.stack([xx.ravel(), yy.ravel()], -1))
    ids = np.unique(nearest, return_inverse=True)[1]
    return (ids.reshape(shape) + 1).astype(np.int32)


def _cut_tissue(
    rng: np.random.Generator, labels: np.ndarray, coverage: float, min_pixels: int
) -> tuple[np.ndarray, np.ndarray]:
    """The cells at least half inside a random tissue region, one piece each.

    Returns ``(drawn, labelled)``: all those cells, and those of ``min_pixels`` or more
    (slivers at the image border are drawn but not labelled).
    """
    if coverage < 1:
        field = _smooth_noise(rng, labels.shape, max(labels.shape) / 6)
        tissue = field >= np.quantile(field, 1 - coverage)
    else:
        tissue = np.ones(labels.shape, dtype=bool)
    n = int(labels.max())
    full = np.bincount(labels.ravel(), minlength=n + 1)
    cut = np.where(tissue, labels, 0)
    out = np.zeros_like(labels)
    for k, box in enumerate(ndi.find_objects(cut), start=1):
        if box is None:
            continue
        piece, count = ndi.label(cut[box] == k)
        if count > 1:
            sizes = np.bincount(piece.ravel())[1:]
            piece = piece == int(np.argmax(sizes)) + 1
        else:
            piece = piece > 0
        if np.count_nonzero(piece) >= 0.5 * full[k]:
            out[box][piece] = k
    drawn = np.bincount(out.ravel(), minlength=n + 1) > 0
    drawn[0] = False
    big = drawn & (np.bincount(out.ravel(), minlength=n + 1) >= min_pixels)
    return _relabel(out, drawn), _relabel(out, big)


def _membrane_signal(
    rng: np.random.Generator,
    labels: np.ndarray,
    width: float,
    *,
    intensity: tuple[float, float],
    texture: float,
) -> np.ndarray:
    """Noise-free membrane stain (float64): bright walls, faint cytoplasm, dark nuclei."""
    fg = labels > 0
    walls = _edges(labels) & fg  # both sides of a wall; the inner side at the tissue's edge
    if width > 2.5:
        walls = ndi.binary_dilation(walls) & fg
    level = rng.uniform(*intensity)
    along = np.clip(1.0 + 0.5 * texture * _smooth_noise(rng, labels.shape, 3.0), 0.3, None)
    puncta = _spots(rng, walls, 0.04)
    wall_signal = level * along * (walls + 0.4 * texture * puncta)
    inside = fg & ~walls
    cytoplasm = level * rng.uniform(0.04, 0.2)
    grain = np.clip(1.0 + texture * _smooth_noise(rng, labels.shape, 1.0), 0.2, None)
    nucleus = np.where(
        _relative_depth(labels) > rng.uniform(0.55, 0.75), rng.uniform(0.3, 0.8), 1.0
    )
    return np.where(walls, wall_signal, np.where(inside, cytoplasm * grain * nucleus, 0.0))
