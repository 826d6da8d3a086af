"""Synthetic H&E-like histology: haematoxylin-stained nuclei on eosin-pink stroma, in RGB.

Stain densities are rendered, then coloured by the Beer-Lambert law with the
reference stain vectors of Macenko et al. (2009), perturbed per image (stain colour, strength and white
balance vary from slide to slide). The haematoxylin map holds the nuclei (dark, with
chromatin texture and a darker nuclear membrane; small round dark ones and big pale ones)
and a faint basophilic tint; the eosin map holds fibrous stroma (oriented streaks), pink
cytoplasm around the nuclei and white spaces (lumina, fat) with no stain. The instances are
the nuclei.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, overload

import numpy as np
from scipy import ndimage as ndi

from ..checks import check_shape
from ..instances import Instances
from .nuclei import _nuclei_signal
from .optics import (
    _blur,
    _camera_noise,
    _illumination,
    _labels_to_instances,
    _quantize,
    _smooth_noise,
)
from .params import (
    _check_backgrounds,
    _check_count,
    _check_dtype,
    _fraction,
    _image_size,
    _n_target,
    _range,
)
from .placement import _blobs, _min_pixels, _place

__all__ = ["synthetic_histology"]

_Seed = int | np.random.Generator | np.random.SeedSequence | None
# optical density per unit stain in (R, G, B): the reference vectors of Macenko et al. 2009
_HAEMATOXYLIN = np.array([0.5626, 0.7201, 0.4062])
_EOSIN = np.array([0.2159, 0.8012, 0.5581])


@overload
def synthetic_histology(
    shape: tuple[int, int] = (256, 256),
    *,
    n: int | tuple[int, int] | None = None,
    size: float | tuple[float, float] = (8.0, 24.0),
    irregularity: float = 0.3,
    elongation: float | tuple[float, float] = (1.0, 2.5),
    touching: float = 0.4,
    overlap: float = 0.1,
    stain: float = 0.5,
    blur: float | tuple[float, float] = (0.4, 1.0),
    noise: float | tuple[float, float] = (0.005, 0.02),
    background: str | Sequence[str] = ("flat", "uneven"),
    dtype: Any = np.uint8,
    return_labels: Literal[False] = ...,
    seed: _Seed = None,
) -> tuple[np.ndarray, Instances]: ...


@overload
def synthetic_histology(
    shape: tuple[int, int] = (256, 256),
    *,
    n: int | tuple[int, int] | None = None,
    size: float | tuple[float, float] = (8.0, 24.0),
    irregularity: float = 0.3,
    elongation: float | tuple[float, float] = (1.0, 2.5),
    touching: float = 0.4,
    overlap: float = 0.1,
    stain: float = 0.5,
    blur: float | tuple[float, float] = (0.4, 1.0),
    noise: float | tuple[float, float] = (0.005, 0.02),
    background: str | Sequence[str] = ("flat", "uneven"),
    dtype: Any = np.uint8,
    return_labels: Literal[True],
    seed: _Seed = None,
) -> tuple[np.ndarray, Instances, np.ndarray]: ...


def synthetic_histology(
    shape: tuple[int, int] = (256, 256),
    *,
    n: int | tuple[int, int] | None = None,
    size: float | tuple[float, float] = (8.0, 24.0),
    irregularity: float = 0.3,
    elongation: float | tuple[float, float] = (1.0, 2.5),
    touching: float = 0.4,
    overlap: float = 0.1,
    stain: float = 0.5,
    blur: float | tuple[float, float] = (0.4, 1.0),
    noise: float | tuple[float, float] = (0.005, 0.02),
    background: str | Sequence[str] = ("flat", "uneven"),
    dtype: Any = np.uint8,
    return_labels: bool = False,
    seed: _Seed = None,
) -> tuple[np.ndarray, Instances] | tuple[np.ndarray, Instances, np.ndarray]:
    """A synthetic H&E-like RGB image and its exact ground-truth nuclei.

    Parameters
    ----------
    shape : (int, int)
        ``(height, width)`` of the image.
    n : int, (int, int) or None
        Number of nuclei, or a range. None: nuclei cover 10-35 % of the image.
    size : float or (float, float)
        Nucleus diameter in pixels (of the disc of the same area), 2 or more; a typical
        size per image (log-uniform), nuclei vary by about 15 % around it.
    irregularity, elongation, touching, overlap
        Nucleus outlines and placement, as in `synthetic_cells` (nuclei in a cluster may
        partly hide each other, like nuclei in a thick section).
    stain : float
        Slide-to-slide stain variation, within ``[0, 1]``: how far the stain colours,
        strengths and the white balance stray from the textbook ones (``0``: none).
    blur, noise, background, dtype, return_labels, seed
        As in `synthetic_nuclei` (scanners' noise is low).

    Returns
    -------
    image : ndarray of shape (H, W, 3), dtype ``dtype``
        RGB: white where there is no tissue.
    instances : Instances
        One polygon per nucleus, labels 0, scores 1; ``instances[k]`` is id ``k + 1``.
    labels : ndarray of shape (H, W), int32
        Only with ``return_labels=True``.

    Examples
    --------
    >>> image, inst = synthetic_histology((96, 96), n=6, size=12, seed=0)
    >>> image.shape, image.dtype.name, len(inst)
    ((96, 96, 3), 'uint8', 6)
    """
    shape = check_shape(shape, "shape", minimum=1)
    count = _check_count(n)
    size = _range("size", size, low=2.0)
    irregularity = _range("irregularity", irregularity, low=0.0, high=1.0)[0]
    elongation = _range("elongation", elongation, low=1.0)
    touching = _fraction("touching", touching)
    overlap = _fraction("overlap", overlap)
    if overlap >= 1.0:
        raise ValueError(f"overlap must be < 1 (a nucleus must stay visible), got {overlap}")
    stain = _fraction("stain", stain)
    blur = _range("blur", blur, low=0.0)
    noise = _range("noise", noise, low=0.0, high=1.0)
    kinds = _check_backgrounds(background)
    dt = _check_dtype(dtype)

    rng = np.random.default_rng(seed)
    typical = _image_size(rng, size)
    white = _white_space(rng, shape, rng.uniform(0.0, 0.25))
    cover = rng.uniform(0.1, 0.35) * shape[0] * shape[1] / (np.pi * typical**2 / 4)
    labels, _ = _place(
        rng, shape, _n_target(rng, count, cover),
        _blobs(shape, typical, size, elongation=elongation, irregularity=irregularity),
        touching=touching, overlap=overlap, min_pixels=_min_pixels(size[0]),
        blocked=ndi.binary_dilation(white, iterations=2), what="nuclei",
    )  # fmt: skip
    haematoxylin, eosin = _stains(rng, labels, white, typical)
    illum = _illumination(rng, shape, kinds[rng.integers(len(kinds))])
    clean = _colour(rng, haematoxylin, eosin, stain) * (0.85 + 0.15 * illum)[..., None]
    clean = _camera_noise(rng, _blur(rng, clean, blur), noise)
    image = _quantize(rng, clean, dt)
    instances = _labels_to_instances(labels)
    return (image, instances, labels) if return_labels else (image, instances)


def _white_space(rng: np.random.Generator, shape: tuple[int, int], fraction: float) -> np.ndarray:
    """Smooth unstained regions (lumina, fat) covering about ``fraction`` of the image."""
    if fraction <= 0:
        return np.zeros(shape, dtype=bool)
    field = _smooth_noise(rng, shape, max(shape) / rng.uniform(6, 14))
    return field > np.quantile(field, 1 - fraction)


def _fibres(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Oriented streaks of unit standard deviation: collagen fibres of the stroma."""
    h, w = shape
    side = int(np.ceil(np.hypot(h, w))) + 4  # any rotation of it covers the image
    noise = rng.standard_normal((side, side))
    streaks = ndi.gaussian_filter(noise, (rng.uniform(0.8, 1.5), rng.uniform(4.0, 10.0)))
    streaks = ndi.rotate(streaks, rng.uniform(0, 180), reshape=False, order=1)
    r0, c0 = (side - h) // 2, (side - w) // 2
    streaks = streaks[r0 : r0 + h, c0 : c0 + w]
    return streaks / max(float(streaks.std()), 1e-9)


def _stains(
    rng: np.random.Generator, labels: np.ndarray, white: np.ndarray, size: float
) -> tuple[np.ndarray, np.ndarray]:
    """Haematoxylin and eosin densities (float64, about 0-1) of nuclei, stroma and cytoplasm."""
    shape = labels.shape
    n = int(labels.max())
    nuclei = _nuclei_signal(
        rng, labels, np.zeros(n, dtype=bool), intensity=(0.55, 1.0), texture=0.4
    )
    if n:  # smaller nuclei are darker (lymphocytes), bigger ones paler (vesicular)
        area = np.bincount(labels.ravel(), minlength=n + 1).astype(float)
        rel = np.clip(np.sqrt(area / (np.pi * size**2 / 4)), 0.5, 2.0)
        nuclei = nuclei * np.where(labels > 0, rel[labels] ** -0.5, 0.0)
    tint = rng.uniform(0.02, 0.08) * (1 + 0.3 * _smooth_noise(rng, shape, 4.0))
    haematoxylin = nuclei + np.where(labels > 0, 0.0, tint)
    bundles = np.clip(0.6 + 0.6 * _smooth_noise(rng, shape, rng.uniform(6.0, 16.0)), 0.2, 1.2)
    stroma = rng.uniform(0.2, 0.5) * np.clip(
        bundles * (0.8 + 0.35 * _fibres(rng, shape)) + 0.1 * _smooth_noise(rng, shape, 1.0),
        0.05,
        None,
    )
    near = ndi.distance_transform_edt(labels == 0)
    cytoplasm = rng.uniform(0.1, 0.4) * np.exp(-near / rng.uniform(2.0, 0.6 * size + 2.0))
    eosin = np.where(labels > 0, 0.3 * stroma, stroma + cytoplasm)
    # unstained white space, with soft edges
    tissue = np.clip(ndi.distance_transform_edt(~white) / 2.0, 0.0, 1.0)
    return haematoxylin * tissue, eosin * tissue


def _colour(
    rng: np.random.Generator, haematoxylin: np.ndarray, eosin: np.ndarray, stain: float
) -> np.ndarray:
    """RGB (float64 in [0, 1]) of two stain densities by Beer-Lambert, with stain variation."""
    h_vec = np.abs(_HAEMATOXYLIN + rng.normal(0.0, 0.1 * stain, 3))
    e_vec = np.abs(_EOSIN + rng.normal(0.0, 0.1 * stain, 3))
    h_vec /= np.linalg.norm(h_vec)
    e_vec /= np.linalg.norm(e_vec)
    h_strength = rng.uniform(0.9, 1.5) * np.exp(rng.normal(0.0, 0.25 * stain))
    e_strength = rng.uniform(0.4, 0.9) * np.exp(rng.normal(0.0, 0.25 * stain))
    white = 1.0 - rng.uniform(0.0, 0.12 * stain + 0.02, 3)
    density = (h_strength * haematoxylin)[..., None] * h_vec + (e_strength * eosin)[
        ..., None
    ] * e_vec
    return white * np.power(10.0, -density)
