"""Checks of the synthetic generators' parameters: ranges, fractions, counts, choices, dtypes.

Every range parameter of a generator takes a number (fixed) or a ``(low, high)`` pair
(sampled uniformly); `_range` turns both into a ``(low, high)`` pair of floats. The messages
name the parameter and what would be accepted, like `labelassist.checks`.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..checks import check_number

#: Illumination fields of a synthetic image (see `_illumination`).
BACKGROUNDS = ("flat", "gradient", "uneven")

_DTYPES = (np.uint8, np.uint16, np.float32)


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
    """A number within ``[0, 1]``."""
    return float(check_number(value, name, minimum=0, maximum=1))


def _check_count(n: Any) -> tuple[int, int] | None:
    """None, a count >= 0 or a ``(low, high)`` pair of counts -> None or ``(low, high)``."""
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


def _check_options(name: str, value: Any, choices: Sequence[str]) -> tuple[str, ...]:
    """One of ``choices`` or a non-empty sequence of them -> a tuple to choose from."""
    try:
        options = (value,) if isinstance(value, str) else tuple(value)
    except TypeError:  # not a sequence
        options = ()
    if not options or any(k not in choices for k in options):
        raise ValueError(
            f"{name} must be one of {tuple(choices)} or a sequence of them, got {value!r}"
        )
    return options


def _check_backgrounds(background: Any) -> tuple[str, ...]:
    """``background``: one of `BACKGROUNDS` or a sequence of them."""
    return _check_options("background", background, BACKGROUNDS)


def _check_dtype(dtype: Any) -> np.dtype:
    """np.uint8, np.uint16 or np.float32 as a numpy dtype."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in [np.dtype(d) for d in _DTYPES]:
        raise TypeError(f"dtype must be np.uint8, np.uint16 or np.float32, got {dtype!r}")
    return dt


def _n_target(rng: np.random.Generator, count: tuple[int, int] | None, default: float) -> int:
    """The number of objects to place: from ``count``, or ``default`` (an expected count)."""
    if count is None:
        return int(round(default))
    return int(rng.integers(count[0], count[1] + 1))


def _image_size(rng: np.random.Generator, size: tuple[float, float]) -> float:
    """The typical object size of one image: log-uniform within ``size``."""
    return float(np.exp(rng.uniform(np.log(size[0]), np.log(size[1]))))


def _object_size(rng: np.random.Generator, typical: float, size: tuple[float, float]) -> float:
    """One object's size: the image's ``typical`` size +- about 15 %, within ``size``."""
    return float(np.clip(typical * np.exp(rng.normal(0.0, 0.15)), size[0], size[1]))


def _check_channels(channels: Any) -> tuple[int, int | None]:
    """``(cytoplasm, nucleus)``: distinct RGB indices 0-2; the nucleus may be None."""
    message = (
        "channels must be (cytoplasm, nucleus) with distinct RGB indices 0, 1 or 2 "
        f"(the nucleus may be None), got {channels!r}"
    )
    if isinstance(channels, (str, bytes)) or not isinstance(channels, Sequence):
        raise ValueError(message)
    values = tuple(channels)
    if len(values) != 2 or values[0] is None:
        raise ValueError(message)
    for v in values:
        if v is not None and (
            isinstance(v, bool) or not isinstance(v, numbers.Integral) or not 0 <= int(v) <= 2
        ):
            raise ValueError(message)
    if values[0] == values[1]:
        raise ValueError(message)
    return int(values[0]), None if values[1] is None else int(values[1])
