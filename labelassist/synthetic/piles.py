"""Synthetic dense piles of similar objects (grains, seeds, pebbles) lit from one side, in RGB.

Objects are dropped one on top of another until they cover the image about ``density``
times, so later ones hide parts of earlier ones. Each is a shaded ellipsoid-like blob: its
own colour near the image's palette, Lambertian shading and a specular highlight from one
light, a cast shadow on what lies below, darkened crevices, and surface texture. The
instance is the *visible* part of an object (several pieces when something lies across
it); objects whose visible part is under ``max(4 px, 15 %)`` of their area are left
unlabelled (still drawn: an annotator would skip such slivers too).
"""

from __future__ import annotations

import colorsys
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
    _relabel,
    _smooth_noise,
)
from .params import (
    BACKGROUNDS,
    _check_backgrounds,
    _check_dtype,
    _image_size,
    _object_size,
    _range,
)
from .placement import _min_pixels
from .shapes import _blob_field, _sized_blob

__all__ = ["synthetic_piles"]

_Seed = int | np.random.Generator | np.random.SeedSequence | None
_MIN_VISIBLE = 0.15  # smaller visible fractions of an object are not labelled


@overload
def synthetic_piles(
    shape: tuple[int, int] = (256, 256),
    *,
    size: float | tuple[float, float] = (10.0, 40.0),
    density: float | tuple[float, float] = (1.0, 2.5),
    irregularity: float = 0.2,
    elongation: float | tuple[float, float] = (1.0, 1.8),
    color: bool = True,
    texture: float = 0.4,
    blur: float | tuple[float, float] = (0.3, 1.0),
    noise: float | tuple[float, float] = (0.005, 0.02),
    background: str | Sequence[str] = BACKGROUNDS,
    dtype: Any = np.uint8,
    return_labels: Literal[False] = ...,
    seed: _Seed = None,
) -> tuple[np.ndarray, Instances]: ...


@overload
def synthetic_piles(
    shape: tuple[int, int] = (256, 256),
    *,
    size: float | tuple[float, float] = (10.0, 40.0),
    density: float | tuple[float, float] = (1.0, 2.5),
    irregularity: float = 0.2,
    elongation: float | tuple[float, float] = (1.0, 1.8),
    color: bool = True,
    texture: float = 0.4,
    blur: float | tuple[float, float] = (0.3, 1.0),
    noise: float | tuple[float, float] = (0.005, 0.02),
    background: str | Sequence[str] = BACKGROUNDS,
    dtype: Any = np.uint8,
    return_labels: Literal[True],
    seed: _Seed = None,
) -> tuple[np.ndarray, Instances, np.ndarray]: ...


def synthetic_piles(
    shape: tuple[int, int] = (256, 256),
    *,
    size: float | tuple[float, float] = (10.0, 40.0),
    density: float | tuple[float, float] = (1.0, 2.5),
    irregularity: float = 0.2,
    elongation: float | tuple[float, float] = (1.0, 1.8),
    color: bool = True,
    texture: float = 0.4,
    blur: float | tuple[float, float] = (0.3, 1.0),
    noise: float | tuple[float, float] = (0.005, 0.02),
    background: str | Sequence[str] = BACKGROUNDS,
    dtype: Any = np.uint8,
    return_labels: bool = False,
    seed: _Seed = None,
) -> tuple[np.ndarray, Instances] | tuple[np.ndarray, Instances, np.ndarray]:
    """A synthetic pile of similar, occluding objects and the exact visible part of each.

    Parameters
    ----------
    shape : (int, int)
        ``(height, width)`` of the image.
    size : float or (float, float)
        Object diameter in pixels (of the disc of the same area, before occlusion), 2 or
        more; a typical size per image (log-uniform), objects vary by about 15 %.
    density : float or (float, float)
        Summed area of the objects over the image's area, per image, within ``[0, 5]``
        (above 1: a pile with hardly any floor showing).
    irregularity : float
        Amplitude, in ``[0, 1]``, of the Fourier modes perturbing the outlines.
    elongation : float or (float, float)
        Ratio of the long to the short axis, >= 1.
    color : bool
        RGB (H, W, 3) if True, gray (H, W) otherwise.
    texture : float
        Strength of the surface texture, >= 0.
    blur, noise, background, dtype, return_labels, seed
        As in `synthetic_nuclei`.

    Returns
    -------
    image : ndarray of shape (H, W, 3) or (H, W), dtype ``dtype``
    instances : Instances
        One geometry per labelled object (a MultiPolygon when it shows in several pieces,
        with holes where something lies on it), labels 0, scores 1.
    labels : ndarray of shape (H, W), int32
        Only with ``return_labels=True``: the visible part of each labelled object.

    Examples
    --------
    >>> image, inst = synthetic_piles((96, 96), size=16, seed=0)
    >>> image.shape, image.dtype.name, len(inst) > 10
    ((96, 96, 3), 'uint8', True)
    """
    shape = check_shape(shape, "shape", minimum=1)
    size = _range("size", size, low=2.0)
    density = _range("density", density, low=0.0, high=5.0)
    irregularity = _range("irregularity", irregularity, low=0.0, high=1.0)[0]
    elongation = _range("elongation", elongation, low=1.0)
    if not isinstance(color, (bool, np.bool_)):
        raise TypeError(f"color must be True (RGB) or False (gray), got {color!r}")
    texture = _range("texture", texture, low=0.0)[0]
    blur = _range("blur", blur, low=0.0)
    noise = _range("noise", noise, low=0.0, high=1.0)
    kinds = _check_backgrounds(background)
    dt = _check_dtype(dtype)

    rng = np.random.default_rng(seed)
    typical = _image_size(rng, size)
    n = int(round(rng.uniform(*density) * shape[0] * shape[1] / (np.pi * typical**2 / 4)))
    owner, height, slope, full = _drop(rng, shape, n, typical, size, elongation, irregularity)
    labels = _visible(owner, full, _min_pixels(size[0]))
    rgb = _shade(rng, owner, height, slope, typical, texture=texture)
    rgb = rgb * (0.6 + 0.4 * _illumination(rng, shape, kinds[rng.integers(len(kinds))]))[..., None]
    if not color:
        rgb = rgb @ np.array([0.299, 0.587, 0.114])
    clean = _camera_noise(rng, _blur(rng, rgb, blur), noise)
    image = _quantize(rng, clean, dt)
    instances = _labels_to_instances(labels)
    return (image, instances, labels) if return_labels else (image, instances)


def _drop(
    rng: np.random.Generator,
    shape: tuple[int, int],
    n: int,
    typical: float,
    size: tuple[float, float],
    elongation: tuple[float, float],
    irregularity: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Drop ``n`` objects: top owner (int32), surface height, its slope (H, W, 2), full areas."""
    owner = np.zeros(shape, dtype=np.int32)
    height = np.zeros(shape)
    slope = np.zeros((*shape, 2))
    full = np.zeros(n + 1, dtype=np.int64)
    margin = 0.4 * typical  # objects may hang over the border
    for k in range(1, n + 1):
        diameter = _object_size(rng, typical, size)
        blob = _sized_blob(rng, diameter, rng.uniform(*elongation), irregularity)
        center = (
            rng.uniform(-margin, shape[1] + margin),
            rng.uniform(-margin, shape[0] + margin),
        )
        field = _blob_field(center, blob, shape)
        if field is None:
            continue
        rho, bound, box, _ = field
        inside = rho <= bound
        if not inside.any():
            continue
        # an ellipsoid-like dome over the blob, flattened at random
        z = np.sqrt(np.clip(1.0 - (rho / np.maximum(bound, 1e-9)) ** 2, 0.0, 1.0))
        z *= 0.5 * diameter * rng.uniform(0.3, 0.7)
        gy, gx = np.gradient(z) if min(z.shape) > 1 else (np.zeros_like(z), np.zeros_like(z))
        lift = 0.05 * typical * k / n  # later objects lie higher
        owner[box][inside] = k
        height[box][inside] = lift + z[inside]
        slope[box][inside] = np.stack([gx[inside], gy[inside]], -1)
        full[k] = np.count_nonzero(inside)
    return owner, height, slope, full


def _visible(owner: np.ndarray, full: np.ndarray, min_pixels: int) -> np.ndarray:
    """Label image (int32, ids 1..N) of the objects that show enough of themselves."""
    seen = np.bincount(owner.ravel(), minlength=full.size)
    keep = (seen >= np.maximum(min_pixels, _MIN_VISIBLE * full)) & (seen > 0)
    keep[0] = False
    return _relabel(owner, keep)


def _shade(
    rng: np.random.Generator,
    owner: np.ndarray,
    height: np.ndarray,
    slope: np.ndarray,
    size: float,
    *,
    texture: float,
) -> np.ndarray:
    """RGB (float64, [0, 1]): palette colours, diffuse and specular light, shadows, texture."""
    shape = owner.shape
    n = int(owner.max())
    # the image's palette: mostly browns, ochres and greys, sometimes any hue
    hue = rng.uniform(0.02, 0.16) if rng.random() < 0.7 else rng.uniform(0, 1)
    sat, val = rng.uniform(0.15, 0.75), rng.uniform(0.45, 0.9)
    hsv = np.stack(
        [
            (hue + rng.normal(0, 0.02, n + 1)) % 1.0,
            np.clip(sat + rng.normal(0, 0.08, n + 1), 0, 1),
            np.clip(val + rng.normal(0, 0.1, n + 1), 0.05, 1),
        ],
        -1,
    )
    colours = np.array([colorsys.hsv_to_rgb(*row) for row in hsv]).reshape(n + 1, 3)
    floor_hsv = [rng.uniform(0, 1), rng.uniform(0, 0.3), rng.uniform(0.1, 0.9)]
    colours[0] = colorsys.hsv_to_rgb(*floor_hsv)
    # light from one side, 25-65 degrees above the floor
    azimuth, elevation = rng.uniform(0, 2 * np.pi), rng.uniform(0.45, 1.15)
    light = np.array(
        [
            np.cos(azimuth) * np.cos(elevation),
            np.sin(azimuth) * np.cos(elevation),
            np.sin(elevation),
        ]
    )
    normal = np.concatenate([-slope, np.ones((*shape, 1))], -1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    diffuse = np.clip(normal @ light, 0.0, 1.0)
    half = light + np.array([0.0, 0.0, 1.0])
    shine = np.clip(normal @ (half / np.linalg.norm(half)), 0.0, 1.0) ** rng.uniform(8, 40)
    # cast shadow: a point is shaded when the surface a step towards the light rises above
    # the ray from the point to the light
    step = 0.15 * size
    ahead = ndi.shift(
        height, (-step * np.sin(azimuth), -step * np.cos(azimuth)), order=1, mode="nearest"
    )
    rise = ahead - height - step * np.tan(elevation)
    shadow = np.clip(1.0 - rise / (0.1 * size), 0.55, 1.0)
    crevice = np.clip(
        1.0 - (ndi.gaussian_filter(height, 0.2 * size + 1) - height) / (0.3 * size), 0.5, 1.0
    )
    grain = 1.0 + texture * (
        0.12 * _smooth_noise(rng, shape, 0.8) + 0.1 * _smooth_noise(rng, shape, 0.05 * size + 1)
    )
    ambient = rng.uniform(0.3, 0.5)
    lit = (ambient + (1 - ambient) * diffuse) * shadow * crevice * grain
    floor = owner == 0
    floor_grain = 1.0 + 0.05 * texture * _smooth_noise(rng, shape, 2.0)
    lit = np.where(floor, shadow * crevice * floor_grain, lit)
    specular = np.where(floor, 0.0, rng.uniform(0.0, 0.35) * shine)
    return np.clip(colours[owner] * lit[..., None] + specular[..., None], 0.0, 1.0)
