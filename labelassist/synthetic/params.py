"""Checks of the synthetic generators' parameters: ranges, fractions, counts, choices, dtypes.

Every range parameter of a generator takes a number (fixed) or a ``(low, high)`` pair
(sampled uniformly); `_range` turns both into a ``(low, high)`` pair of floats. The messages
name the parameter and what would be accepted, like `labelassist.checks`.
"""

from __future__ import annotations

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
    options = (value,) if isinstance(value, str) else tuple(value)
    bad = [k for k in options if k not in choices]
    if not options or bad:
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
