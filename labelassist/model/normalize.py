"""Image normalisation: numpy images to the float tensors a detector takes (`to_tensor`).

The single conversion used for prediction and training, so both see the same input: gray
is repeated to three channels, alpha is dropped, intensities map to [0, 1] by the model's
``normalization`` (`intensity_range`). The caller's array is never modified, and read-only
arrays (e.g. ``np.asarray(PIL.Image.open(...))``) convert without warnings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..io.image import check_image

__all__ = [
    "DEFAULT_NORMALIZATION",
    "NORMALIZATION_MODES",
    "check_channels",
    "intensity_range",
    "select_channels",
    "to_tensor",
]

#: Image normalisation recorded in new models (see `to_tensor`).
DEFAULT_NORMALIZATION: dict[str, Any] = {"mode": "auto", "percentiles": [1.0, 99.8]}
#: Modes of ``normalization["mode"]``.
NORMALIZATION_MODES = ("auto", "percentile", "scale")
_MAX_SAMPLE_PIXELS = 1 << 20
# |intensities| beyond this may overflow float32 arithmetic (max ~3.4e38): such images are
# scaled in float64 (halved first, so even float64's extremes cannot overflow)
_FLOAT32_SAFE = 1e37


def check_array_image(image: Any, name: str = "image") -> np.ndarray:
    """``image`` as a valid (H, W) or (H, W, 3 | 4) numpy array (`labelassist.io.check_image`),
    with a `TypeError` for tensors and other objects."""
    if isinstance(image, torch.Tensor):
        raise TypeError(f"{name} must be a numpy array (H, W[, C]), got a torch.Tensor")
    if not hasattr(image, "shape") or not hasattr(image, "dtype"):
        raise TypeError(f"{name} must be a numpy array (H, W[, C]), got {type(image).__name__}")
    return check_image(image, name=name)


def check_channels(channels: Any, name: str = "channels") -> tuple[int, ...] | None:
    """``channels`` as a tuple of 1, 2 or 3 distinct channel indices (or None).

    Examples
    --------
    >>> check_channels(1), check_channels([1, 0]), check_channels(None)
    ((1,), (1, 0), None)
    >>> check_channels([0, 0])
    Traceback (most recent call last):
    ...
    ValueError: channels must be 1, 2 or 3 distinct channel indices >= 0 (e.g. 0, or 1,2 for cytoplasm + nucleus), got [0, 0]
    """
    if channels is None:
        return None
    message = (
        f"{name} must be 1, 2 or 3 distinct channel indices >= 0 (e.g. 0, or 1,2 for "
        f"cytoplasm + nucleus), got {channels!r}"
    )
    if isinstance(channels, (str, bytes)):
        raise ValueError(message)
    picked = [channels] if isinstance(channels, (int, np.integer)) else channels
    try:
        picked = list(picked)
    except TypeError:
        raise ValueError(message) from None
    if not 1 <= len(picked) <= 3 or len(set(map(str, picked))) != len(picked):
        raise ValueError(message)
    for c in picked:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)) or c < 0:
            raise ValueError(message)
    return tuple(int(c) for c in picked)


def select_channels(image: Any, channels: int | Sequence[int]) -> np.ndarray:
    """Pick and order the channels of an (H, W, C) image for the network's 3 input channels.

    Parameters
    ----------
    image : ndarray of shape (H, W, C)
        Any number of channels ``C`` (2-channel and many-channel microscopy included).
    channels : int or sequence of 1, 2 or 3 distinct ints
        Indices into the last axis:

        - one channel: a gray (H, W) image (repeated to the 3 inputs by `to_tensor`);
        - two channels, e.g. ``(cytoplasm, nucleus)``: an (H, W, 3) image with red 0,
          green the first and blue the second (Cellpose's ``channels=[2, 3]`` layout,
          and that of ``labelassist.synthetic`` "cells" images, where ``(1, 2)`` keeps
          the image as it is);
        - three channels: (H, W, 3) in that order as red, green, blue.

    Returns
    -------
    ndarray of shape (H, W) or (H, W, 3), the image's dtype
        A view for one channel, a new array otherwise; the image is never modified.

    Examples
    --------
    >>> image = np.stack([np.full((2, 2), v, np.uint8) for v in (10, 20, 30, 40)], axis=-1)
    >>> select_channels(image, 2)[0, 0], select_channels(image, [3, 0])[0, 0].tolist()
    (np.uint8(30), [0, 40, 10])
    >>> select_channels(image, 4)
    Traceback (most recent call last):
    ...
    ValueError: channels=4 is out of range: the image has 4 channels (indices 0-3)
    """
    picked = check_channels(channels)
    if picked is None:
        raise ValueError("channels must be given (an int or a sequence of ints), got None")
    if isinstance(image, torch.Tensor) or not hasattr(image, "shape"):
        raise TypeError(f"image must be a numpy array (H, W, C), got {type(image).__name__}")
    arr = np.asarray(image)
    if arr.ndim == 2:
        raise ValueError(
            f"channels={channels!r} needs a multichannel (H, W, C) image, but the image is "
            f"gray, shape {arr.shape}; leave channels out (None) for gray images"
        )
    if arr.ndim != 3:
        raise ValueError(f"channels={channels!r} needs an (H, W, C) image, got shape {arr.shape}")
    n = int(arr.shape[2])
    if max(picked) >= n:
        raise ValueError(
            f"channels={channels!r} is out of range: the image has {n} channels (indices 0-{n - 1})"
        )
    if len(picked) == 1:
        return arr[..., picked[0]]
    out = np.zeros(arr.shape[:2] + (3,), dtype=arr.dtype)
    if len(picked) == 2:
        out[..., 1] = arr[..., picked[0]]
        out[..., 2] = arr[..., picked[1]]
    else:
        out[...] = arr[..., list(picked)]
    return out


def _mode(normalization: Mapping[str, Any] | str | None) -> tuple[str, tuple[float, float]]:
    if normalization is None:
        normalization = {}
    if isinstance(normalization, str):
        normalization = {"mode": normalization}
    if not isinstance(normalization, Mapping):
        raise TypeError(
            f"normalization must be a dict like {{'mode': 'auto'}} or a mode name, got "
            f"{type(normalization).__name__}"
        )
    mode = normalization.get("mode", "auto")
    if mode not in NORMALIZATION_MODES:
        raise ValueError(
            f"normalization mode {mode!r} is unknown; use one of {NORMALIZATION_MODES}"
        )
    pct = normalization.get("percentiles", (1.0, 99.8))
    lo, hi = (float(p) for p in pct)
    if not 0.0 <= lo < hi <= 100.0:
        raise ValueError(
            f"normalization percentiles must satisfy 0 <= low < high <= 100, got {pct}"
        )
    return mode, (lo, hi)


def intensity_range(
    image: np.ndarray,
    *,
    normalization: Mapping[str, Any] | str | None = None,
    max_pixels: int = _MAX_SAMPLE_PIXELS,
) -> tuple[float, float]:
    """The ``(low, high)`` intensities that `to_tensor` maps to 0 and 1.

    Percentiles are computed on a strided subsample of at most ``max_pixels`` pixels, so a
    huge (even memory-mapped) image is never copied as a whole. Alpha is ignored.

    Parameters
    ----------
    image : ndarray of shape (H, W), (H, W, 3) or (H, W, 4)
    normalization : dict or str, optional
        ``{"mode": "auto" | "percentile" | "scale", "percentiles": [low, high]}``.
        ``"auto"`` (default): uint8 / 255, bool 0/1, anything else percentiles (1, 99.8).
        ``"percentile"``: always percentiles. ``"scale"``: integer dtypes divided by their
        maximum, floats taken as already in [0, 1].
    max_pixels : int
        Size of the subsample used for percentiles.

    Returns
    -------
    (float, float)
        Finite, ``low < high``. A constant image (any finite value, even 1e38) gives a
        range starting at its value, so it maps to 0.

    Examples
    --------
    >>> intensity_range(np.array([[0, 255]], np.uint8))
    (0.0, 255.0)
    >>> intensity_range(np.arange(1001, dtype=np.uint16).reshape(7, 143), normalization="percentile")
    (10.0, 998.0)
    >>> intensity_range(np.full((2, 2), 5.0))
    (5.0, 6.0)
    """
    image = check_array_image(image)
    mode, (p_lo, p_hi) = _mode(normalization)
    dtype = image.dtype
    if dtype.kind == "b":
        return 0.0, 1.0
    if mode == "scale" or (mode == "auto" and dtype == np.uint8):
        if dtype.kind in "ui":
            return 0.0, float(np.iinfo(dtype).max)
        return 0.0, 1.0
    step = max(1, math.ceil(math.sqrt(image.shape[0] * image.shape[1] / max_pixels)))
    sample = np.asarray(image[::step, ::step])
    if sample.ndim == 3:
        sample = sample[..., :3]
    if sample.dtype.kind != "f":
        finite = sample.astype(np.float32).ravel()
    else:
        finite = sample[np.isfinite(sample)]
        if finite.size and max(finite.max(), -finite.min()) > _FLOAT32_SAFE:
            # beyond float32: percentiles in float64, of half the values (no overflow
            # even between float64's extremes)
            half = np.percentile(finite.astype(np.float64) / 2, [p_lo, p_hi])
            return _ordered(2 * float(half[0]), 2 * float(half[1]))
        finite = finite.astype(np.float32, copy=False)
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, [p_lo, p_hi]))
    return _ordered(lo, hi)


def _ordered(lo: float, hi: float) -> tuple[float, float]:
    """``(lo, hi)``, or for a constant image (``hi == lo``) a range just above ``lo`` (``lo
    + 1``, or a relative step where 1 is below the float spacing, e.g. at 1e38): the image
    maps to 0."""
    if hi > lo:
        return lo, hi
    if lo + 1.0 > lo:
        return lo, lo + 1.0
    up = lo + abs(lo) * 2.0**-20
    if math.isfinite(up):
        return lo, up
    return math.nextafter(lo, -math.inf), lo  # the largest float itself


def to_tensor(
    image: np.ndarray,
    *,
    normalization: Mapping[str, Any] | str | None = None,
    limits: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Convert an image to the float tensor a torchvision detector expects.

    Parameters
    ----------
    image : ndarray of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)
        uint8, uint16, other integers, float or bool (see `labelassist.io.read_image`).
        Gray is repeated to 3 channels; alpha is dropped. Never modified; may be read-only.
    normalization : dict or str, optional
        How intensities map to [0, 1]; see `intensity_range`. Record it in
        ``model.meta["normalization"]``.
    limits : (float, float), optional
        Precomputed `intensity_range` of the whole image (used for tiles so every tile
        is normalised alike). Default: computed from ``image``.

    Returns
    -------
    torch.Tensor of shape (3, H, W), float32, values in [0, 1]
        NaN becomes 0, +-inf 1 / 0.

    Examples
    --------
    >>> t = to_tensor(np.array([[0, 128, 255]], np.uint8))
    >>> tuple(t.shape), t.dtype, [round(v, 3) for v in t[0, 0].tolist()]
    ((3, 1, 3), torch.float32, [0.0, 0.502, 1.0])
    >>> huge = np.array([[-3e38, 0.0, 3e38]], np.float32)
    >>> to_tensor(huge, limits=(-3e38, 3e38))[0, 0].tolist()
    [0.0, 0.5, 1.0]
    """
    image = check_array_image(image)
    if limits is None:
        limits = intensity_range(image, normalization=normalization)
    else:
        _mode(normalization)
    lo, hi = float(limits[0]), float(limits[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"limits must be finite (low, high) with low < high, got {limits!r}")
    arr = np.asarray(image)
    if arr.ndim == 3:
        arr = arr[..., :3]
    if max(abs(lo), abs(hi)) > _FLOAT32_SAFE:
        wide = np.array(arr, dtype=np.float64)
        wide = np.clip((wide / 2 - lo / 2) / (hi / 2 - lo / 2), 0.0, 1.0)
        tensor = torch.from_numpy(wide.astype(np.float32))
    else:
        # a new, writable float32 copy: the caller's array is never touched, and torch
        # never sees a read-only array (it warns about those)
        with np.errstate(over="ignore"):  # float64 beyond float32's range: +-inf, clamped
            tensor = torch.from_numpy(np.array(arr, dtype=np.float32, order="C"))
        tensor = tensor.sub_(lo).mul_(1.0 / (hi - lo)).clamp_(0.0, 1.0)
    tensor = torch.nan_to_num_(tensor, nan=0.0)
    if tensor.ndim == 2:
        return tensor.unsqueeze(0).expand(3, -1, -1).contiguous()
    return tensor.permute(2, 0, 1).contiguous()
