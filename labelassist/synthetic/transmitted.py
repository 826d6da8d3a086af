"""Synthetic transmitted-light images: brightfield and phase-contrast-like cells on a bright field.

Objects are transparent: each is an optical thickness map (a dome over the object, thicker
over the nucleus, with granules). *Phase contrast* shows thickness minus its blurred
surroundings: dark cells in a bright halo. *Brightfield* shows weak absorption (a low
contrast interior), a dark refraction rim at the outline and a defocus term (a bright or dark
fringe). Both sit on a bright, unevenly lit field. `_transmitted` renders any label image
this way; `synthetic_rods` uses it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, overload

import numpy as np
from scipy import ndimage as ndi

from ..checks import check_shape
from ..instances import Instances
from .optics import (
    _blur,
    _camera_noise,
    _illumination,
    _labels_to_instances,
    _quantize,
    _relative_depth,
    _smooth_noise,
    _spots,
)
from .params import (
    _check_backgrounds,
    _check_count,
    _check_dtype,
    _check_options,
    _fraction,
    _image_size,
    _n_target,
    _range,
)
from .placement import _blobs, _min_pixels, _nuclei_inside, _place

__all__ = ["synthetic_brightfield", "TRANSMITTED_MODES"]

#: Contrast modes of transmitted-light images.
TRANSMITTED_MODES = ("brightfield", "phase")

_Seed = int | np.random.Generator | np.random.SeedSequence | None


@overload
def synthetic_brightfield(
    shape: tuple[int, int] = (256, 256),
    *,
    n: int | tuple[int, int] | None = None,
    size: float | tuple[float, float] = (10.0, 50.0),
    irregularity: float = 0.4,
    elongation: float | tuple[float, float] = (1.0, 2.0),
    touching: float = 0.4,
    overlap: float = 0.25,
    mode: str | Sequence[str] = TRANSMITTED_MODES,
    contrast: float | tuple[float, float] = (0.4, 1.0),
    texture: float = 0.4,
    blur: float | tuple[float, float] = (0.5, 1.2),
    noise: float | tuple[float, float] = (0.005, 0.02),
    background: str | Sequence[str] = ("gradient", "uneven"),
    dtype: Any = np.uint8,
    return_labels: Literal[False] = ...,
    seed: _Seed = None,
) -> tuple[np.ndarray, Instances]: ...


@overload
def synthetic_brightfield(
    shape: tuple[int, int] = (256, 256),
    *,
    n: int | tuple[int, int] | None = None,
    size: float | tuple[float, float] = (10.0, 50.0),
    irregularity: float = 0.4,
    elongation: float | tuple[float, float] = (1.0, 2.0),
    touching: float = 0.4,
    overlap: float = 0.25,
    mode: str | Sequence[str] = TRANSMITTED_MODES,
    contrast: float | tuple[float, float] = (0.4, 1.0),
    texture: float = 0.4,
    blur: float | tuple[float, float] = (0.5, 1.2),
    noise: float | tuple[float, float] = (0.005, 0.02),
    background: str | Sequence[str] = ("gradient", "uneven"),
    dtype: Any = np.uint8,
    return_labels: Literal[True],
    seed: _Seed = None,
) -> tuple[np.ndarray, Instances, np.ndarray]: ...


def synthetic_brightfield(
    shape: tuple[int, int] = (256, 256),
    *,
    n: int | tuple[int, int] | None = None,
    size: float | tuple[float, float] = (10.0, 50.0),
    irregularity: float = 0.4,
    elongation: float | tuple[float, float] = (1.0, 2.0),
    touching: float = 0.4,
    overlap: float = 0.25,
    mode: str | Sequence[str] = TRANSMITTED_MODES,
    contrast: float | tuple[float, float] = (0.4, 1.0),
    texture: float = 0.4,
    blur: float | tuple[float, float] = (0.5, 1.2),
    noise: float | tuple[float, float] = (0.005, 0.02),
    background: str | Sequence[str] = ("gradient", "uneven"),
    dtype: Any = np.uint8,
    return_labels: bool = False,
    seed: _Seed = None,
) -> tuple[np.ndarray, Instances] | tuple[np.ndarray, Instances, np.ndarray]:
    """A synthetic brightfield or phase-contrast image of cells and their exact instances.

    Parameters
    ----------
    shape : (int, int)
        ``(height, width)`` of the image.
    n : int, (int, int) or None
        Number of cells, or a range. None: cells cover 15-45 % of the image.
    size : float or (float, float)
        Cell diameter in pixels (of the disc of the same area), 2 or more; a typical size
        per image (log-uniform), cells vary by about 15 % around it.
    irregularity, elongation, touching, overlap
        Cell outlines and placement, as in `synthetic_cells`.
    mode : str or sequence of str
        ``"brightfield"`` or ``"phase"``, or modes to choose from per image.
    contrast : float or (float, float)
        Strength of the cells' contrast per image, within ``[0, 1]``.
    texture : float
        Granularity of the cells' interior, >= 0.
    blur, noise, background, dtype, return_labels, seed
        As in `synthetic_nuclei` (the noise of transmitted light is low: many photons).

    Returns
    -------
    image : ndarray of shape (H, W), dtype ``dtype``
        Bright background, cells darker (phase) or of low contrast (brightfield).
    instances : Instances
        One polygon per cell, labels 0, scores 1; ``instances[k]`` is id ``k + 1``.
    labels : ndarray of shape (H, W), int32
        Only with ``return_labels=True``.

    Examples
    --------
    >>> image, inst = synthetic_brightfield((96, 96), n=5, size=20, mode="phase", seed=0)
    >>> image.shape, len(inst)
    ((96, 96), 5)
    """
    shape = check_shape(shape, "shape", minimum=1)
    count = _check_count(n)
    size = _range("size", size, low=2.0)
    irregularity = _range("irregularity", irregularity, low=0.0, high=1.0)[0]
    elongation = _range("elongation", elongation, low=1.0)
    touching = _fraction("touching", touching)
    overlap = _fraction("overlap", overlap)
    if overlap >= 1.0:
        raise ValueError(f"overlap must be < 1 (a cell must stay visible), got {overlap}")
    modes = _check_options("mode", mode, TRANSMITTED_MODES)
    contrast = _range("contrast", contrast, low=0.0, high=1.0)
    texture = _range("texture", texture, low=0.0)[0]
    blur = _range("blur", blur, low=0.0)
    noise = _range("noise", noise, low=0.0, high=1.0)
    kinds = _check_backgrounds(background)
    dt = _check_dtype(dtype)

    rng = np.random.default_rng(seed)
    typical = _image_size(rng, size)
    cover = rng.uniform(0.15, 0.45) * shape[0] * shape[1] / (np.pi * typical**2 / 4)
    labels, _ = _place(
        rng, shape, _n_target(rng, count, cover),
        _blobs(shape, typical, size, elongation=elongation, irregularity=irregularity),
        touching=touching, overlap=overlap, min_pixels=_min_pixels(size[0]), what="cells",
    )  # fmt: skip
    nuclei = _nuclei_inside(rng, labels, scale=(0.3, 0.45))
    thickness = _thickness(rng, labels, nuclei, texture=texture)
    clean = _transmitted(
        rng, thickness, modes[rng.integers(len(modes))], rng.uniform(*contrast), typical
    )
    # lamp and condenser: milder than a fluorescence field's fall-off
    clean = clean * (0.5 + 0.5 * _illumination(rng, shape, kinds[rng.integers(len(kinds))]))
    clean = _camera_noise(rng, _blur(rng, clean, blur), noise)
    image = _quantize(rng, clean, dt)
    instances = _labels_to_instances(labels)
    return (image, instances, labels) if return_labels else (image, instances)


def _thickness(
    rng: np.random.Generator, labels: np.ndarray, nuclei: np.ndarray | None, *, texture: float
) -> np.ndarray:
    """Optical thickness (float64, about 0-1): a dome per object, a thicker nucleus, granules."""
    n = int(labels.max())
    if n == 0:
        return np.zeros(labels.shape)
    fg = labels > 0
    height = np.concatenate([[0.0], rng.uniform(0.5, 1.0, n)])
    dome = height[labels] * np.sqrt(_relative_depth(labels))
    if nuclei is not None:
        dome = dome + np.where(nuclei > 0, rng.uniform(0.1, 0.3), 0.0)
    granules = _spots(rng, fg, 0.02) + 0.3 * _smooth_noise(rng, labels.shape, 1.0)
    return np.where(fg, np.clip(dome + 0.08 * texture * granules, 0.0, None), 0.0)


def _transmitted(
    rng: np.random.Generator, thickness: np.ndarray, mode: str, contrast: float, size: float
) -> np.ndarray:
    """A transmitted-light image (float64, background about 0.5-0.85) of a thickness map."""
    bright = rng.uniform(0.5, 0.85)
    if mode == "phase":  # dark objects in a bright halo (thickness minus its surroundings)
        halo = thickness - ndi.gaussian_filter(thickness, rng.uniform(0.08, 0.2) * size + 1.0)
        return bright * (1.0 - contrast * rng.uniform(0.8, 1.4) * halo)
    rim = ndi.gaussian_gradient_magnitude(thickness, 1.0)  # refraction at the outline: dark
    defocus = ndi.gaussian_laplace(thickness, rng.uniform(1.0, 2.5))  # a bright or dark fringe
    absorb = rng.uniform(0.05, 0.2) * thickness
    return bright * (
        1.0 - contrast * (absorb + rng.uniform(1.0, 2.5) * rim - rng.uniform(-3.0, 3.0) * defocus)
    )
