"""Synthetic fluorescence nuclei: images with exact ground-truth instances.

The generator draws irregular, elongated, randomly oriented blobs (an ellipse whose radius
is perturbed by a few random Fourier modes), lets neighbours touch and partly occlude each
other (each pixel belongs to at most one nucleus), gives every nucleus its own brightness,
texture (smooth variation, chromatin spots, a brighter rim or a dome profile), adds a few
small bright dividing cells, a background offset with flat, gradient or uneven
illumination, a Gaussian point-spread function and Poisson + Gaussian camera noise, and
quantizes to 8 or 16 bits (16-bit images use a small, realistic part of the range: a dark
offset of 0-150 and a full scale of 250-4000) or returns float32.

Ground truth is the label image, converted exactly (``tolerance=0``) to polygons in COCO
pixel coordinates ``(x, y)``. Its output for a given seed never changes: the shipped
starter model was trained on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, overload

import numpy as np
from scipy import ndimage as ndi

from ..checks import check_shape
from ..instances import Instances
from .optics import _blur, _camera_noise, _illumination, _labels_to_instances, _quantize
from .params import (
    BACKGROUNDS,
    _check_backgrounds,
    _check_count,
    _check_dtype,
    _fraction,
    _range,
)
from .placement import _place_nuclei

__all__ = ["synthetic_nuclei", "DOMAIN_SHIFT"]

#: Keyword arguments for a shifted domain: bigger, dimmer, more irregular and elongated
#: nuclei, stronger blur and noise, uneven illumination. Use it to test how a model
#: trained on the default settings generalises: ``synthetic_nuclei(**DOMAIN_SHIFT)``.
DOMAIN_SHIFT: dict[str, Any] = {
    "radius": (12.0, 24.0),
    "irregularity": 0.4,
    "elongation": (1.2, 2.6),
    "intensity": (0.08, 0.3),
    "texture": 0.5,
    "blur": (1.2, 2.5),
    "noise": (0.03, 0.08),
    "background": ("uneven",),
}


def _nuclei_signal(rng, labels, dividing, *, intensity, texture):
    """Noise-free nuclear signal (float64) for a label image."""
    n = int(labels.max())
    if n == 0:
        return np.zeros(labels.shape)
    fg = labels > 0
    level = np.concatenate([[0.0], rng.uniform(*intensity, n)])
    rim = np.concatenate([[0.0], rng.uniform(-0.35, 0.5, n)])  # < 0: dome, > 0: bright rim
    tex = np.concatenate([[0.0], np.full(n, texture)])
    level[1:][dividing] = rng.uniform(1.3, 1.8, int(dividing.sum())) * intensity[1]
    tex[1:][dividing] *= 0.2  # condensed chromatin: bright and uniform
    rim[1:][dividing] = 0.0
    # distance to the nucleus outline (touching neighbours included)
    inner = (
        fg
        & (ndi.grey_erosion(labels, size=3) == labels)
        & (ndi.grey_dilation(labels, size=3) == labels)
    )
    depth = ndi.distance_transform_edt(inner)
    profile = 1.0 + rim[labels] * np.exp(-depth / 2.0)
    smooth = ndi.gaussian_filter(rng.standard_normal(labels.shape), 1.5)
    smooth /= max(float(smooth.std()), 1e-9)
    spots = np.zeros(labels.shape)
    idx = np.flatnonzero(fg)
    n_spots = rng.binomial(idx.size, 0.02) if texture > 0 else 0
    spots.ravel()[rng.choice(idx, n_spots, replace=False)] = rng.uniform(2, 6, n_spots)
    spots = ndi.gaussian_filter(spots, 0.8)
    variation = np.clip(1.0 + tex[labels] * (0.6 * smooth + spots), 0.2, None)
    return np.where(fg, level[labels] * profile * variation, 0.0)


# -- public ------------------------------------------------------------------------------
@overload
def synthetic_nuclei(
    shape: tuple[int, int] = (256, 256),
    *,
    n: int | tuple[int, int] | None = None,
    radius: float | tuple[float, float] = (5.0, 14.0),
    irregularity: float = 0.2,
    elongation: float | tuple[float, float] = (1.0, 2.2),
    touching: float = 0.3,
    overlap: float = 0.15,
    intensity: float | tuple[float, float] = (0.15, 0.6),
    texture: float = 0.3,
    dividing: float = 0.05,
    blur: float | tuple[float, float] = (0.5, 1.5),
    noise: float | tuple[float, float] = (0.01, 0.05),
    background: str | Sequence[str] = BACKGROUNDS,
    dtype: Any = np.uint8,
    return_labels: Literal[False] = ...,
    seed: int | np.random.Generator | np.random.SeedSequence | None = None,
) -> tuple[np.ndarray, Instances]: ...


@overload
def synthetic_nuclei(
    shape: tuple[int, int] = (256, 256),
    *,
    n: int | tuple[int, int] | None = None,
    radius: float | tuple[float, float] = (5.0, 14.0),
    irregularity: float = 0.2,
    elongation: float | tuple[float, float] = (1.0, 2.2),
    touching: float = 0.3,
    overlap: float = 0.15,
    intensity: float | tuple[float, float] = (0.15, 0.6),
    texture: float = 0.3,
    dividing: float = 0.05,
    blur: float | tuple[float, float] = (0.5, 1.5),
    noise: float | tuple[float, float] = (0.01, 0.05),
    background: str | Sequence[str] = BACKGROUNDS,
    dtype: Any = np.uint8,
    return_labels: Literal[True],
    seed: int | np.random.Generator | np.random.SeedSequence | None = None,
) -> tuple[np.ndarray, Instances, np.ndarray]: ...


def synthetic_nuclei(
    shape: tuple[int, int] = (256, 256),
    *,
    n: int | tuple[int, int] | None = None,
    radius: float | tuple[float, float] = (5.0, 14.0),
    irregularity: float = 0.2,
    elongation: float | tuple[float, float] = (1.0, 2.2),
    touching: float = 0.3,
    overlap: float = 0.15,
    intensity: float | tuple[float, float] = (0.15, 0.6),
    texture: float = 0.3,
    dividing: float = 0.05,
    blur: float | tuple[float, float] = (0.5, 1.5),
    noise: float | tuple[float, float] = (0.01, 0.05),
    background: str | Sequence[str] = BACKGROUNDS,
    dtype: Any = np.uint8,
    return_labels: bool = False,
    seed: int | np.random.Generator | np.random.SeedSequence | None = None,
) -> tuple[np.ndarray, Instances] | tuple[np.ndarray, Instances, np.ndarray]:
    """A synthetic fluorescence nuclei image and its exact ground-truth instances.

    Every range parameter takes a number (fixed) or a ``(low, high)`` pair (sampled
    uniformly, per nucleus or per image).

    Parameters
    ----------
    shape : (int, int)
        ``(height, width)`` of the image.
    n : int, (int, int) or None
        Number of nuclei, or a range to draw it from. None: a density of 10-35 % of the
        image area. Fewer are placed (with a logged warning) if they do not fit.
    radius : float or (float, float)
        Mean radius in pixels (the area of a regular nucleus is ``pi * radius**2``).
    irregularity : float
        Amplitude of the random Fourier modes perturbing the outline, ``0`` = ellipse.
        Within ``[0, 1]``.
    elongation : float or (float, float)
        Ratio of the long to the short axis, >= 1.
    touching : float
        Probability, in ``[0, 1]``, that a nucleus is placed against an earlier one
        (clusters of touching nuclei).
    overlap : float
        Largest fraction, in ``[0, 1)``, of a new nucleus that may be hidden behind
        earlier ones; placements hiding more are rejected. Each pixel belongs to at most
        one nucleus.
    intensity : float or (float, float)
        Mean brightness of a nucleus as a fraction of full scale, within ``[0, 1]``.
    texture : float
        Strength of within-nucleus variation (smooth texture and chromatin spots), >= 0.
        Each nucleus also gets a random brighter rim or darker edge.
    dividing : float
        Fraction, in ``[0, 1]``, of dividing cells: small, bar-shaped, very bright
        nuclei, half of them with a parallel sister bar (each bar is one instance).
    blur : float or (float, float)
        Standard deviation in pixels of the Gaussian point-spread function, >= 0.
    noise : float or (float, float)
        Camera noise level as a fraction of full scale, within ``[0, 1]``: Gaussian read
        noise of ``noise / 2`` plus Poisson shot noise of standard deviation
        ``noise * sqrt(signal)``. ``0``: no noise.
    background : str or sequence of str
        Illumination kind, or kinds to choose from per image: ``"flat"``, ``"gradient"``
        (a linear fall-off) or ``"uneven"`` (a smooth random field). A background
        offset of 2-15 % of full scale is always added.
    dtype : np.uint8, np.uint16 or np.float32
        Output type: 8-bit full range, 16-bit with a dark offset of 0-150 and a full
        scale of 250-4000 (log-uniform), or float32 within ``[0, 1]``.
    return_labels : bool
        Also return the label image.
    seed : int, Generator, SeedSequence or None
        Random seed; the same seed gives an identical result.

    Returns
    -------
    image : ndarray of shape (H, W), dtype ``dtype``
    instances : Instances
        One polygon per nucleus (COCO pixel coordinates ``(x, y)``, exact pixel outlines),
        labels 0, scores 1. ``instances[k]`` is the nucleus with id ``k + 1`` in the
        label image.
    labels : ndarray of shape (H, W), int32
        Only with ``return_labels=True``: 0 = background, ``1..N`` = nuclei.

    Examples
    --------
    >>> image, inst = synthetic_nuclei((64, 64), n=5, seed=0)
    >>> image.shape, image.dtype, len(inst)
    ((64, 64), dtype('uint8'), 5)
    >>> image, inst, labels = synthetic_nuclei((64, 64), n=3, dtype=np.uint16,
    ...                                        return_labels=True, seed=1)
    >>> int(labels.max()), image.dtype.name
    (3, 'uint16')
    """
    shape = check_shape(shape, "shape", minimum=1)
    count = _check_count(n)
    radius = _range("radius", radius, low=0.5)
    irregularity = _range("irregularity", irregularity, low=0.0, high=1.0)[0]
    elongation = _range("elongation", elongation, low=1.0)
    touching = _fraction("touching", touching)
    overlap = _fraction("overlap", overlap)
    if overlap >= 1.0:
        raise ValueError(f"overlap must be < 1 (a nucleus must stay visible), got {overlap}")
    intensity = _range("intensity", intensity, low=0.0, high=1.0)
    texture = _range("texture", texture, low=0.0)[0]
    dividing = _fraction("dividing", dividing)
    blur = _range("blur", blur, low=0.0)
    noise = _range("noise", noise, low=0.0, high=1.0)
    kinds = _check_backgrounds(background)
    dt = _check_dtype(dtype)

    rng = np.random.default_rng(seed)
    if count is None:
        mean_area = np.pi * np.mean(np.square(radius))
        n_target = int(round(rng.uniform(0.10, 0.35) * shape[0] * shape[1] / mean_area))
    else:
        n_target = int(rng.integers(count[0], count[1] + 1))
    labels, is_dividing = _place_nuclei(
        rng, shape, n_target, radius=radius, irregularity=irregularity,
        elongation=elongation, touching=touching, overlap=overlap, dividing=dividing,
    )  # fmt: skip

    signal = _nuclei_signal(rng, labels, is_dividing, intensity=intensity, texture=texture)
    illum = _illumination(rng, shape, kinds[rng.integers(len(kinds))])
    clean = illum * (rng.uniform(0.02, 0.15) + signal)
    clean = _camera_noise(rng, _blur(rng, clean, blur), noise)
    image = _quantize(rng, clean, dt)
    instances = _labels_to_instances(labels)
    return (image, instances, labels) if return_labels else (image, instances)
