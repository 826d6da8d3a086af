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
pixel coordinates ``(x, y)``.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, overload

import imageio.v3 as iio
import numpy as np
import tifffile
from scipy import ndimage as ndi

from .checks import check_choice, check_int, check_number, check_shape
from .coco import Dataset
from .geometry import masks_to_polygons
from .instances import Instances
from .io.atomic import atomic_write

__all__ = ["synthetic_nuclei", "synthetic_dataset", "DOMAIN_SHIFT", "BACKGROUNDS"]

logger = logging.getLogger(__name__)

BACKGROUNDS = ("flat", "gradient", "uneven")

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

_N_MODES = 4  # Fourier modes perturbing the radius
_MIN_PIXELS = 12  # smaller visible remnants (e.g. cut by the border) are dropped
_DTYPES = (np.uint8, np.uint16, np.float32)
_CROSS = ndi.generate_binary_structure(2, 1)


# -- parameter checks ------------------------------------------------------------------------
def _range(name: str, value: Any, *, low: float, high: float = np.inf) -> tuple[float, float]:
    """A number or a ``(lo, hi)`` pair -> ``(lo, hi)`` floats within ``[low, high]``."""
    try:
        arr = np.atleast_1d(np.asarray(value, dtype=float))
    except (TypeError, ValueError):
        arr = np.array([np.nan])
    if arr.ndim != 1 or arr.size not in (1, 2) or not np.isfinite(arr).all():
        raise ValueError(f"{name} must be a number or a (low, high) pair, got {value!r}")
    lo, hi = float(arr[0]), float(arr[-1])
    if lo > hi:
        raise ValueError(f"{name} must be (low, high) with low <= high, got {value!r}")
    if lo < low or hi > high:
        raise ValueError(f"{name} must lie within [{low}, {high}], got {value!r}")
    return lo, hi


def _fraction(name: str, value: Any) -> float:
    return float(check_number(value, name, minimum=0, maximum=1))


def _check_count(n: Any) -> tuple[int, int] | None:
    if n is None:
        return None
    arr = np.atleast_1d(np.asarray(n))
    if (
        arr.ndim != 1
        or arr.size not in (1, 2)
        or not np.issubdtype(arr.dtype, np.integer)
        or arr.min() < 0
        or arr[0] > arr[-1]
    ):
        raise ValueError(f"n must be None, a count >= 0 or a (low, high) pair of counts, got {n!r}")
    return int(arr[0]), int(arr[-1])


def _check_backgrounds(background: Any) -> tuple[str, ...]:
    kinds = (background,) if isinstance(background, str) else tuple(background)
    bad = [k for k in kinds if k not in BACKGROUNDS]
    if not kinds or bad:
        raise ValueError(
            f"background must be one of {BACKGROUNDS} or a sequence of them, got {background!r}"
        )
    return kinds


def _check_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in [np.dtype(d) for d in _DTYPES]:
        raise TypeError(f"dtype must be np.uint8, np.uint16 or np.float32, got {dtype!r}")
    return dt


# -- shapes --------------------------------------------------------------------------------
# a blob: mean radius, axis ratio, orientation, Fourier amplitudes and phases
_Blob = tuple[float, float, float, np.ndarray, np.ndarray]


def _blob(rng: np.random.Generator, radius: float, elongation: float, irregularity: float) -> _Blob:
    """Random blob parameters: mean radius, axis ratio, orientation, Fourier modes."""
    amps = irregularity * rng.uniform(0, 1, _N_MODES) / np.arange(2, 2 + _N_MODES)
    phases = rng.uniform(0, 2 * np.pi, _N_MODES)
    return radius, elongation, float(rng.uniform(0, np.pi)), amps, phases


def _rasterize_blob(
    center: tuple[float, float], blob: _Blob, shape: tuple[int, int]
) -> tuple[np.ndarray, tuple[slice, slice], bool] | None:
    """Pixels whose centre lies inside the blob: (mask, (rows, cols), clipped) or None.

    ``clipped``: the box was cut by the image border.
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
    k = np.arange(2, 2 + _N_MODES)[:, None, None]
    bound = 1 + (amps[:, None, None] * np.cos(k * theta + phases[:, None, None])).sum(0)
    mask = rho <= bound
    clipped = r0 == 0 or c0 == 0 or r1 == shape[0] or c1 == shape[1]
    return (mask, (slice(r0, r1), slice(c0, c1)), clipped) if mask.any() else None


def _daughter(
    rng: np.random.Generator, center: tuple[float, float], blob: _Blob
) -> tuple[float, float]:
    """Centre of the sister chromatid bar of a dividing cell: parallel, a gap apart."""
    radius, elong, angle = blob[:3]
    minor = radius / np.sqrt(elong)
    dist = 2 * minor + rng.uniform(1.5, 4.0)
    return center[0] - dist * np.sin(angle), center[1] + dist * np.cos(angle)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndi.label(mask)  # 4-connectivity: one polygon per instance
    if n <= 1:
        return mask
    sizes = np.bincount(lab.ravel())[1:]
    return lab == (int(np.argmax(sizes)) + 1)


def _place_nuclei(rng, shape, n_target, *, radius, irregularity, elongation, touching,
                  overlap, dividing):  # fmt: skip
    """Label image (int32, 0 = background) and per-nucleus (is_dividing) flags."""
    labels = np.zeros(shape, dtype=np.int32)
    centers: list[tuple[float, float, float]] = []  # (x, y, radius)
    dividing_flags: list[bool] = []
    failures = 0  # consecutive failed placements: the image is full
    # (center, blob) of the second daughter of a just placed dividing cell
    sibling: tuple[tuple[float, float], _Blob] | None = None
    while len(centers) < n_target and failures < 200:
        failures += 1
        is_sibling = sibling is not None
        if sibling is not None:
            (center, blob), sibling, is_dividing = sibling, None, True
            r = blob[0]
        else:
            is_dividing = rng.random() < dividing
            r = rng.uniform(*radius)
            if is_dividing:  # a condensed, elongated, bright bar
                r, elong = r * rng.uniform(0.35, 0.55), rng.uniform(1.5, 3.0)
            else:
                elong = rng.uniform(*elongation)
            blob = _blob(rng, r, elong, min(irregularity, 0.3) if is_dividing else irregularity)
            if centers and rng.random() < touching:
                cx, cy, cr = centers[rng.integers(len(centers))]
                phi = rng.uniform(0, 2 * np.pi)
                dist = (cr + r) * rng.uniform(0.7, 0.95)
                center = (cx + dist * np.cos(phi), cy + dist * np.sin(phi))
            else:
                center = (rng.uniform(0, shape[1]), rng.uniform(0, shape[0]))
        drawn = _rasterize_blob(center, blob, shape)
        if drawn is None:
            continue
        mask, box, clipped = drawn
        # openings remove one-pixel slivers (thin lobes, cuts by the border or neighbours)
        mask = ndi.binary_opening(mask, _CROSS)
        occupied = labels[box] != 0
        total, hidden = np.count_nonzero(mask), np.count_nonzero(mask & occupied)
        if total < _MIN_PIXELS or hidden > overlap * total:
            continue
        if hidden or clipped:
            free = _largest_component(ndi.binary_opening(mask & ~occupied, _CROSS))
            if np.count_nonzero(free) < max(_MIN_PIXELS, (1 - overlap) * total):
                continue
            if hidden and not np.array_equal(ndi.binary_fill_holes(free), free):
                continue  # would wrap around another nucleus
        else:
            free = _largest_component(mask)
        labels[box][free] = len(centers) + 1
        centers.append((center[0], center[1], r))
        failures = 0
        dividing_flags.append(is_dividing)
        if is_dividing and not is_sibling and rng.random() < 0.5 and len(centers) < n_target:
            sibling = (_daughter(rng, center, blob), blob)  # anaphase: two parallel bars
    if len(centers) < n_target:
        logger.warning(
            "placed %d of %d nuclei in a %s image; lower n or radius, or raise overlap",
            len(centers), n_target, shape,
        )  # fmt: skip
    return labels, np.array(dividing_flags, dtype=bool)


# -- appearance ------------------------------------------------------------------------
def _illumination(rng, shape, kind):
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


def _quantize(rng, image, dtype):
    """Float image in [0, 1] -> dtype (16-bit: dark offset 0-150, full scale 250-4000)."""
    image = np.clip(image, 0.0, 1.0)
    if dtype == np.uint8:
        return np.round(image * 255).astype(np.uint8)
    if dtype == np.uint16:  # cameras use a small, varying part of the 16-bit range
        full = np.exp(rng.uniform(np.log(250), np.log(4000)))
        dark = rng.uniform(0, min(150, 0.1 * full))
        return np.round(dark + image * (full - dark)).astype(np.uint16)
    return image.astype(np.float32)


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
    sigma = rng.uniform(*blur)
    if sigma > 0:
        clean = ndi.gaussian_filter(clean, sigma)
    level = rng.uniform(*noise)
    if level > 0:
        photons = 1.0 / level**2  # shot noise std = level * sqrt(signal)
        clean = rng.poisson(np.clip(clean, 0, None) * photons) / photons
        clean = clean + rng.normal(0.0, level / 2, shape)
    image = _quantize(rng, clean, dt)
    instances = _labels_to_instances(labels)
    return (image, instances, labels) if return_labels else (image, instances)


def _labels_to_instances(labels: np.ndarray) -> Instances:
    n = int(labels.max())
    if n == 0:
        return Instances.empty(labels.shape)
    polygons = masks_to_polygons(labels, tolerance=0)
    return Instances(polygons, np.zeros(n, np.int64), np.ones(n, np.float32), labels.shape)


def synthetic_dataset(
    n_images: int,
    *,
    out: str | os.PathLike,
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
    image_format: str = "png",
    **kwargs: Any,
) -> Dataset:
    """Write ``n_images`` synthetic images and their COCO annotations into a folder.

    Image ``k`` is ``synthetic_nuclei(shape, seed=child_k, **kwargs)`` where the child
    seeds are spawned from ``seed`` (`numpy.random.SeedSequence`), so datasets with the
    same ``seed`` are identical and images are independent.

    Parameters
    ----------
    n_images : int
        Number of images, >= 0.
    out : path
        Folder to write into (created if missing): ``image_00000.png`` ... and
        ``annotations.json`` (COCO, one category ``"nucleus"``).
    shape : (int, int)
        ``(height, width)`` of every image.
    seed : int
        Seed of the whole dataset.
    image_format : {"png", "tif"}
        File format of the images (both keep 8 and 16 bits; float32 needs ``"tif"``).
    **kwargs
        Passed to `synthetic_nuclei` (for example ``dtype``, ``n`` or ``**DOMAIN_SHIFT``).

    Returns
    -------
    Dataset
        With ``image_root=out``; ``dataset.instances[id]`` holds the ground truth.

    Examples
    --------
    >>> import tempfile
    >>> ds = synthetic_dataset(2, out=tempfile.mkdtemp(), shape=(64, 64), n=4)
    >>> len(ds.images), sorted(len(v) for v in ds.instances.values())
    (2, [4, 4])
    """
    n_images = check_int(n_images, "n_images", minimum=0)
    image_format = check_choice(image_format, "image_format", ("png", "tif"))
    if np.dtype(kwargs.get("dtype", np.uint8)) == np.float32 and image_format == "png":
        raise ValueError("dtype=np.float32 cannot be stored as PNG; use image_format='tif'")
    if "return_labels" in kwargs:
        raise TypeError("synthetic_dataset does not take return_labels")
    shape = check_shape(shape, "shape", minimum=1)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    images, instances = [], {}
    for k, child in enumerate(np.random.SeedSequence(seed).spawn(int(n_images))):
        image, inst = synthetic_nuclei(shape, seed=child, **kwargs)
        file_name = f"image_{k:05d}.{image_format}"
        _write_image_atomic(root / file_name, image)
        images.append({"id": k + 1, "file_name": file_name, "height": shape[0], "width": shape[1]})
        instances[k + 1] = inst
    dataset = Dataset(["nucleus"], images, instances, image_root=root)
    dataset.to_coco(root / "annotations.json")
    return dataset


def _write_image_atomic(path: Path, image: np.ndarray) -> None:
    if path.suffix == ".png":
        data = iio.imwrite("<bytes>", image, extension=".png")
    else:
        buffer = io.BytesIO()  # tifffile looks for a path in a file object's name
        tifffile.imwrite(buffer, image)
        data = buffer.getvalue()
    with atomic_write(path, suffix=path.suffix) as fh:
        fh.write(data)
