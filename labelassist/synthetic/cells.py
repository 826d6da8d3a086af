"""Synthetic whole cells in two fluorescence channels: cytoplasm and nucleus, touching, irregular.

Cells are irregular blobs (an ellipse perturbed by six Fourier modes) that lie apart or
press against each other (a later cell is cut along its neighbour's outline, so touching
cells share a boundary and never overlap). The cytoplasm channel is brightest around the
nucleus and fades towards the thin cell edge, with a smooth texture and vesicles; the
nucleus channel shows one nucleus per cell (the nuclei generator's texture). The instance
is the whole cell.

The image is RGB, (H, W, 3): labelassist's models and `labelassist.io.read_image` take
gray or RGB(A) images, not two channels, so the cytoplasm goes into one colour channel and
the nucleus into another (by default green and blue, Cellpose's ``channels=[2, 3]``) and
the third stays 0. ``image[..., [1, 2]]`` gives the (H, W, 2) pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, overload

import numpy as np

from ..checks import check_shape
from ..instances import Instances
from .nuclei import _nuclei_signal
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
    BACKGROUNDS,
    _check_backgrounds,
    _check_channels,
    _check_count,
    _check_dtype,
    _fraction,
    _image_size,
    _n_target,
    _range,
)
from .placement import _blobs, _min_pixels, _nuclei_inside, _place

__all__ = ["synthetic_cells"]

_Seed = int | np.random.Generator | np.random.SeedSequence | None


@overload
def synthetic_cells(
    shape: tuple[int, int] = (256, 256),
    *,
    n: int | tuple[int, int] | None = None,
    size: float | tuple[float, float] = (20.0, 60.0),
    irregularity: float = 0.5,
    elongation: float | tuple[float, float] = (1.0, 2.0),
    touching: float = 0.6,
    overlap: float = 0.35,
    intensity: float | tuple[float, float] = (0.15, 0.6),
    texture: float = 0.4,
    channels: tuple[int, int | None] = (1, 2),
    blur: float | tuple[float, float] = (0.5, 1.5),
    noise: float | tuple[float, float] = (0.01, 0.05),
    background: str | Sequence[str] = BACKGROUNDS,
    dtype: Any = np.uint8,
    return_labels: Literal[False] = ...,
    seed: _Seed = None,
) -> tuple[np.ndarray, Instances]: ...


@overload
def synthetic_cells(
    shape: tuple[int, int] = (256, 256),
    *,
    n: int | tuple[int, int] | None = None,
    size: float | tuple[float, float] = (20.0, 60.0),
    irregularity: float = 0.5,
    elongation: float | tuple[float, float] = (1.0, 2.0),
    touching: float = 0.6,
    overlap: float = 0.35,
    intensity: float | tuple[float, float] = (0.15, 0.6),
    texture: float = 0.4,
    channels: tuple[int, int | None] = (1, 2),
    blur: float | tuple[float, float] = (0.5, 1.5),
    noise: float | tuple[float, float] = (0.01, 0.05),
    background: str | Sequence[str] = BACKGROUNDS,
    dtype: Any = np.uint8,
    return_labels: Literal[True],
    seed: _Seed = None,
) -> tuple[np.ndarray, Instances, np.ndarray]: ...


def synthetic_cells(
    shape: tuple[int, int] = (256, 256),
    *,
    n: int | tuple[int, int] | None = None,
    size: float | tuple[float, float] = (20.0, 60.0),
    irregularity: float = 0.5,
    elongation: float | tuple[float, float] = (1.0, 2.0),
    touching: float = 0.6,
    overlap: float = 0.35,
    intensity: float | tuple[float, float] = (0.15, 0.6),
    texture: float = 0.4,
    channels: tuple[int, int | None] = (1, 2),
    blur: float | tuple[float, float] = (0.5, 1.5),
    noise: float | tuple[float, float] = (0.01, 0.05),
    background: str | Sequence[str] = BACKGROUNDS,
    dtype: Any = np.uint8,
    return_labels: bool = False,
    seed: _Seed = None,
) -> tuple[np.ndarray, Instances] | tuple[np.ndarray, Instances, np.ndarray]:
    """A synthetic two-channel image of whole cells and their exact ground-truth instances.

    Parameters
    ----------
    shape : (int, int)
        ``(height, width)`` of the image.
    n : int, (int, int) or None
        Number of cells, or a range to draw it from. None: cells cover 20-55 % of the
        image. Fewer are placed (with a logged warning) if they do not fit.
    size : float or (float, float)
        Cell diameter in pixels (of the disc of the same area), 2 or more. Each image draws
        a typical size log-uniformly from the range; its cells vary by about 15 % around it
        (within the range).
    irregularity : float
        Amplitude, in ``[0, 1]``, of the Fourier modes perturbing the outline (``0``:
        ellipses; ``1``: lobed cells with protrusions).
    elongation : float or (float, float)
        Ratio of the long to the short axis, >= 1.
    touching : float
        Probability, in ``[0, 1]``, that a cell is placed against an earlier one; other
        cells keep a gap of at least one pixel (``0``: no cell touches another).
    overlap : float
        Largest fraction, in ``[0, 1)``, of a touching cell that may be cut off by its
        neighbours (they press against each other; no pixel belongs to two cells).
    intensity : float or (float, float)
        Mean cytoplasm brightness of a cell, a fraction of full scale within ``[0, 1]``.
    texture : float
        Strength of the cytoplasm's and the nuclei's texture, >= 0.
    channels : (int, int or None)
        RGB channel of the cytoplasm and of the nucleus stain (distinct, 0, 1 or 2; the
        nucleus None: no nucleus channel). Default: green and blue.
    blur : float or (float, float)
        Standard deviation in pixels of the Gaussian point-spread function, >= 0.
    noise : float or (float, float)
        Camera noise as a fraction of full scale, within ``[0, 1]`` (see
        `synthetic_nuclei`).
    background : str or sequence of str
        Illumination kind, or kinds to choose from per image: ``"flat"``, ``"gradient"``
        or ``"uneven"``.
    dtype : np.uint8, np.uint16 or np.float32
        Output type (see `synthetic_nuclei`).
    return_labels : bool
        Also return the label image.
    seed : int, Generator, SeedSequence or None
        Random seed; the same seed gives an identical result.

    Returns
    -------
    image : ndarray of shape (H, W, 3), dtype ``dtype``
        The unused channel is 0.
    instances : Instances
        One polygon per cell (COCO pixel coordinates ``(x, y)``, exact pixel outlines),
        labels 0, scores 1; ``instances[k]`` is the cell with id ``k + 1``.
    labels : ndarray of shape (H, W), int32
        Only with ``return_labels=True``: 0 = background, ``1..N`` = cells.

    Examples
    --------
    >>> image, inst = synthetic_cells((96, 96), n=4, size=30, seed=0)
    >>> image.shape, image.dtype.name, len(inst)
    ((96, 96, 3), 'uint8', 4)
    >>> int(image[..., 0].max())  # red is unused
    0
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
    intensity = _range("intensity", intensity, low=0.0, high=1.0)
    texture = _range("texture", texture, low=0.0)[0]
    cyto_channel, nucleus_channel = _check_channels(channels)
    blur = _range("blur", blur, low=0.0)
    noise = _range("noise", noise, low=0.0, high=1.0)
    kinds = _check_backgrounds(background)
    dt = _check_dtype(dtype)

    rng = np.random.default_rng(seed)
    typical = _image_size(rng, size)
    cover = rng.uniform(0.2, 0.55) * shape[0] * shape[1] / (np.pi * typical**2 / 4)
    labels, _ = _place(
        rng, shape, _n_target(rng, count, cover),
        _blobs(shape, typical, size, elongation=elongation, irregularity=irregularity),
        touching=touching, overlap=overlap, min_pixels=_min_pixels(size[0]), what="cells",
    )  # fmt: skip
    nuclei = _nuclei_inside(rng, labels, scale=(0.3, 0.45))
    signal = np.stack(
        [
            _cytoplasm(rng, labels, nuclei, intensity=intensity, texture=texture),
            _nuclei_signal(
                rng, nuclei, np.zeros(int(nuclei.max()), dtype=bool),
                intensity=(0.25, 0.8), texture=texture,
            ),
        ],
        axis=-1,
    )  # fmt: skip
    illum = _illumination(rng, shape, kinds[rng.integers(len(kinds))])
    clean = illum[..., None] * (rng.uniform(0.02, 0.1, 2) + signal)
    clean = _camera_noise(rng, _blur(rng, clean, blur), noise)
    two = _quantize(rng, clean, dt)
    image = np.zeros((*shape, 3), dtype=dt)
    image[..., cyto_channel] = two[..., 0]
    if nucleus_channel is not None:
        image[..., nucleus_channel] = two[..., 1]
    instances = _labels_to_instances(labels)
    return (image, instances, labels) if return_labels else (image, instances)


def _cytoplasm(
    rng: np.random.Generator,
    labels: np.ndarray,
    nuclei: np.ndarray,
    *,
    intensity: tuple[float, float],
    texture: float,
) -> np.ndarray:
    """Noise-free cytoplasm signal (float64): thick around the nucleus, thin at the edge."""
    n = int(labels.max())
    if n == 0:
        return np.zeros(labels.shape)
    fg = labels > 0
    level = np.concatenate([[0.0], rng.uniform(*intensity, n)])
    edge = np.concatenate([[0.0], rng.uniform(0.15, 0.5, n)])  # brightness at the outline
    profile = edge[labels] + (1 - edge[labels]) * _relative_depth(labels) ** rng.uniform(0.4, 1.0)
    smooth = _smooth_noise(rng, labels.shape, rng.uniform(1.5, 4.0))
    fine = _smooth_noise(rng, labels.shape, 0.7)
    vesicles = _spots(rng, fg, 0.01)
    variation = np.clip(1.0 + texture * (0.5 * smooth + 0.25 * fine + 0.3 * vesicles), 0.2, None)
    # the cytoplasm stain is excluded from the nucleus, or piles up over it
    over_nucleus = np.where(nuclei > 0, rng.uniform(0.4, 1.3), 1.0)
    return np.where(fg, level[labels] * profile * variation * over_nucleus, 0.0)
