"""Synthetic elongated objects: rod-shaped bacteria and curved, tapering worms.

Each object is a disc swept along a smooth curve (`_tube`): straight or slightly bent
capsules with round caps (bacteria), or long, thin, C- and S-shaped tubes with pointed
ends (worms, with the `WORMS` settings). Neighbours lie apart or touch (side by side, end
to end), never sharing a pixel. An image is fluorescent (bright rods on a dark field), phase
contrast or brightfield (as `synthetic_brightfield`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, overload

import numpy as np

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
    BACKGROUNDS,
    _check_backgrounds,
    _check_count,
    _check_dtype,
    _check_options,
    _fraction,
    _image_size,
    _n_target,
    _object_size,
    _range,
)
from .placement import _place
from .shapes import _Drawn, _rasterize_tube, _tube
from .transmitted import _thickness, _transmitted

__all__ = ["synthetic_rods", "WORMS", "ROD_APPEARANCES"]

#: Appearances of a rods image.
ROD_APPEARANCES = ("fluorescence", "phase", "brightfield")

#: Settings that turn `synthetic_rods` into worms: long, thin, curved, pointed, brightfield.
WORMS: dict[str, Any] = {
    "size": (40.0, 100.0),
    "aspect": (10.0, 20.0),
    "bend": (0.5, 2.5),
    "taper": (0.6, 1.0),
    "appearance": ("brightfield", "phase"),
}

_Seed = int | np.random.Generator | np.random.SeedSequence | None


@overload
def synthetic_rods(
    shape: tuple[int, int] = (256, 256),
    *,
    n: int | tuple[int, int] | None = None,
    size: float | tuple[float, float] = (8.0, 30.0),
    aspect: float | tuple[float, float] = (2.5, 6.0),
    bend: float | tuple[float, float] = (0.0, 0.8),
    taper: float | tuple[float, float] = 0.0,
    touching: float = 0.4,
    overlap: float = 0.1,
    appearance: str | Sequence[str] = ROD_APPEARANCES,
    intensity: float | tuple[float, float] = (0.2, 0.7),
    texture: float = 0.2,
    blur: float | tuple[float, float] = (0.5, 1.2),
    noise: float | tuple[float, float] = (0.005, 0.04),
    background: str | Sequence[str] = BACKGROUNDS,
    dtype: Any = np.uint8,
    return_labels: Literal[False] = ...,
    seed: _Seed = None,
) -> tuple[np.ndarray, Instances]: ...


@overload
def synthetic_rods(
    shape: tuple[int, int] = (256, 256),
    *,
    n: int | tuple[int, int] | None = None,
    size: float | tuple[float, float] = (8.0, 30.0),
    aspect: float | tuple[float, float] = (2.5, 6.0),
    bend: float | tuple[float, float] = (0.0, 0.8),
    taper: float | tuple[float, float] = 0.0,
    touching: float = 0.4,
    overlap: float = 0.1,
    appearance: str | Sequence[str] = ROD_APPEARANCES,
    intensity: float | tuple[float, float] = (0.2, 0.7),
    texture: float = 0.2,
    blur: float | tuple[float, float] = (0.5, 1.2),
    noise: float | tuple[float, float] = (0.005, 0.04),
    background: str | Sequence[str] = BACKGROUNDS,
    dtype: Any = np.uint8,
    return_labels: Literal[True],
    seed: _Seed = None,
) -> tuple[np.ndarray, Instances, np.ndarray]: ...


def synthetic_rods(
    shape: tuple[int, int] = (256, 256),
    *,
    n: int | tuple[int, int] | None = None,
    size: float | tuple[float, float] = (8.0, 30.0),
    aspect: float | tuple[float, float] = (2.5, 6.0),
    bend: float | tuple[float, float] = (0.0, 0.8),
    taper: float | tuple[float, float] = 0.0,
    touching: float = 0.4,
    overlap: float = 0.1,
    appearance: str | Sequence[str] = ROD_APPEARANCES,
    intensity: float | tuple[float, float] = (0.2, 0.7),
    texture: float = 0.2,
    blur: float | tuple[float, float] = (0.5, 1.2),
    noise: float | tuple[float, float] = (0.005, 0.04),
    background: str | Sequence[str] = BACKGROUNDS,
    dtype: Any = np.uint8,
    return_labels: bool = False,
    seed: _Seed = None,
) -> tuple[np.ndarray, Instances] | tuple[np.ndarray, Instances, np.ndarray]:
    """A synthetic image of rods (bacteria) or worms and their exact ground-truth instances.

    ``synthetic_rods(shape, **WORMS)`` gives worms.

    Parameters
    ----------
    shape : (int, int)
        ``(height, width)`` of the image.
    n : int, (int, int) or None
        Number of objects, or a range. None: objects cover 8-30 % of the image.
    size : float or (float, float)
        Length in pixels along the curve, 2 or more; a typical length per image
        (log-uniform), objects vary by about 15 % around it.
    aspect : float or (float, float)
        Length / width per object, >= 1 (widths below 2 pixels are raised to 2).
    bend : float or (float, float)
        How far the curve turns from end to end, in radians, >= 0, per object.
    taper : float or (float, float)
        How much the width narrows to the ends, within ``[0, 1]`` (0: round caps, 1:
        pointed ends), per object.
    touching : float
        Probability, in ``[0, 1]``, that an object is placed against an earlier one;
        other objects keep a gap of at least one pixel.
    overlap : float
        Largest fraction, in ``[0, 1)``, of a touching object that may be cut off by
        earlier ones (no pixel belongs to two objects).
    appearance : str or sequence of str
        ``"fluorescence"``, ``"phase"`` or ``"brightfield"``, or appearances to choose from
        per image.
    intensity : float or (float, float)
        Brightness of a fluorescent object, a fraction of full scale within ``[0, 1]``;
        the strength of the contrast for phase and brightfield.
    texture : float
        Within-object variation (foci, granules), >= 0.
    blur, noise, background, dtype, return_labels, seed
        As in `synthetic_nuclei`.

    Returns
    -------
    image : ndarray of shape (H, W), dtype ``dtype``
    instances : Instances
        One polygon per object, labels 0, scores 1; ``instances[k]`` is id ``k + 1``.
    labels : ndarray of shape (H, W), int32
        Only with ``return_labels=True``.

    Examples
    --------
    >>> image, inst = synthetic_rods((96, 96), n=8, size=16, seed=0)
    >>> image.shape, len(inst)
    ((96, 96), 8)
    >>> image, inst = synthetic_rods((128, 128), n=2, seed=0, **WORMS)
    >>> len(inst)
    2
    """
    shape = check_shape(shape, "shape", minimum=1)
    count = _check_count(n)
    size = _range("size", size, low=2.0)
    aspect = _range("aspect", aspect, low=1.0)
    bend = _range("bend", bend, low=0.0)
    taper = _range("taper", taper, low=0.0, high=1.0)
    touching = _fraction("touching", touching)
    overlap = _fraction("overlap", overlap)
    if overlap >= 1.0:
        raise ValueError(f"overlap must be < 1 (an object must stay visible), got {overlap}")
    appearances = _check_options("appearance", appearance, ROD_APPEARANCES)
    intensity = _range("intensity", intensity, low=0.0, high=1.0)
    texture = _range("texture", texture, low=0.0)[0]
    blur = _range("blur", blur, low=0.0)
    noise = _range("noise", noise, low=0.0, high=1.0)
    kinds = _check_backgrounds(background)
    dt = _check_dtype(dtype)

    rng = np.random.default_rng(seed)
    typical = _image_size(rng, size)
    width = max(typical / np.sqrt(aspect[0] * aspect[1]), 2.0)
    cover = rng.uniform(0.08, 0.3) * shape[0] * shape[1] / (typical * width)
    smallest = size[0] * max(size[0] / aspect[1], 2.0)
    labels, _ = _place(
        rng, shape, _n_target(rng, count, cover), _tubes(shape, typical, size, aspect, bend, taper),
        touching=touching, overlap=overlap, min_pixels=int(np.clip(0.5 * smallest, 4, 12)),
        opening=False, what="rods",
    )  # fmt: skip
    look = appearances[rng.integers(len(appearances))]
    illum = _illumination(rng, shape, kinds[rng.integers(len(kinds))])
    if look == "fluorescence":
        signal = _rod_fluorescence(rng, labels, intensity=intensity, texture=texture)
        clean = illum * (rng.uniform(0.02, 0.12) + signal)
    else:
        thickness = _thickness(rng, labels, None, texture=texture)
        clean = _transmitted(rng, thickness, look, rng.uniform(*intensity) + 0.3, 2 * width)
        clean = clean * (0.5 + 0.5 * illum)
    clean = _camera_noise(rng, _blur(rng, clean, blur), noise)
    image = _quantize(rng, clean, dt)
    instances = _labels_to_instances(labels)
    return (image, instances, labels) if return_labels else (image, instances)


def _tubes(
    shape: tuple[int, int],
    typical: float,
    size: tuple[float, float],
    aspect: tuple[float, float],
    bend: tuple[float, float],
    taper: tuple[float, float],
) -> Callable[[np.random.Generator], tuple[float, Callable[[tuple[float, float]], _Drawn | None]]]:
    """A `_place` drawer of tubes of about ``typical`` length."""

    def draw(
        rng: np.random.Generator,
    ) -> tuple[float, Callable[[tuple[float, float]], _Drawn | None]]:
        length = _object_size(rng, typical, size)
        width = min(max(length / rng.uniform(*aspect), 2.0), length)
        tube = _tube(rng, length, width, rng.uniform(*bend), rng.uniform(*taper))
        return length / 2, lambda center: _rasterize_tube(center, tube, shape)

    return draw


def _rod_fluorescence(
    rng: np.random.Generator, labels: np.ndarray, *, intensity: tuple[float, float], texture: float
) -> np.ndarray:
    """Noise-free fluorescence (float64): a level per object, brighter along the axis, foci."""
    n = int(labels.max())
    if n == 0:
        return np.zeros(labels.shape)
    fg = labels > 0
    level = np.concatenate([[0.0], rng.uniform(*intensity, n)])
    profile = 0.6 + 0.4 * np.sqrt(_relative_depth(labels))
    foci = _spots(rng, fg, 0.02)
    variation = np.clip(
        1.0 + texture * (0.5 * _smooth_noise(rng, labels.shape, 1.5) + foci), 0.2, None
    )
    return np.where(fg, level[labels] * profile * variation, 0.0)
