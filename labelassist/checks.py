"""Checks of the inputs every public entry point shares: ints, shapes, class lists, choices.

One place for each rule, so that the same bad input gets the same message everywhere (a
project, a model and a COCO file all reject a class called ``"background"`` the same way).
Each check returns the normalised value and raises `ValueError` or `TypeError` naming the
parameter and what would be accepted.

Examples
--------
>>> from labelassist.checks import check_classes, check_int
>>> check_classes(("nucleus", "cell"))
['nucleus', 'cell']
>>> check_int(4, "batch_size", minimum=1)
4
>>> check_int(0, "batch_size", minimum=1)
Traceback (most recent call last):
...
ValueError: batch_size must be an integer >= 1, got 0
"""

from __future__ import annotations

import numbers
import operator
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "BACKGROUND_NAMES",
    "check_bool",
    "check_choice",
    "check_classes",
    "check_int",
    "check_number",
    "check_shape",
]

#: Class names that mean "no object"; never a class in labelassist (torchvision's label 0 is
#: implicit, and COCO readers drop such categories).
BACKGROUND_NAMES = frozenset({"background", "__background__", "_background_"})

_T = TypeVar("_T")


def check_int(
    value: Any,
    name: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    allow_none: bool = False,
) -> Any:
    """An integer (Python or numpy, not bool) within ``[minimum, maximum]``, as ``int``.

    Returns None when ``value`` is None and ``allow_none``.

    Examples
    --------
    >>> check_int(None, "tile_size", minimum=64, allow_none=True) is None
    True
    >>> check_int(2.0, "workers")
    Traceback (most recent call last):
    ...
    ValueError: workers must be an integer, got 2.0
    """
    if value is None and allow_none:
        return None
    bounds = ""
    if minimum is not None and maximum is not None:
        bounds = f" in [{minimum}, {maximum}]"
    elif minimum is not None:
        bounds = f" >= {minimum}"
    elif maximum is not None:
        bounds = f" <= {maximum}"
    none = " or None" if allow_none else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer{bounds}{none}, got {value!r}")
    out = int(value)
    if (minimum is not None and out < minimum) or (maximum is not None and out > maximum):
        raise ValueError(f"{name} must be an integer{bounds}{none}, got {value!r}")
    return out


def check_number(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    allow_none: bool = False,
) -> Any:
    """A finite real number (not bool) within ``[minimum, maximum]``, as ``float``.

    Examples
    --------
    >>> check_number(0.5, "score_threshold", minimum=0, maximum=1)
    0.5
    >>> check_number(float("nan"), "score_threshold", minimum=0, maximum=1)
    Traceback (most recent call last):
    ...
    ValueError: score_threshold must be a finite number in [0, 1], got nan
    """
    if value is None and allow_none:
        return None
    bounds = ""
    if minimum is not None and maximum is not None:
        bounds = f" in [{minimum}, {maximum}]"
    elif minimum is not None:
        bounds = f" >= {minimum}"
    elif maximum is not None:
        bounds = f" <= {maximum}"
    none = " or None" if allow_none else ""
    message = f"{name} must be a finite number{bounds}{none}, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(message)
    out = float(value)
    if out != out or out in (float("inf"), float("-inf")):
        raise ValueError(message)
    if (minimum is not None and out < minimum) or (maximum is not None and out > maximum):
        raise ValueError(message)
    return out


def check_shape(shape: Any, name: str = "shape", *, minimum: int = 0) -> tuple[int, int]:
    """``(height, width)``: two integers, each ``>= minimum``.

    Examples
    --------
    >>> check_shape([16, 32])
    (16, 32)
    >>> check_shape((0, 8), "image_shape", minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: image_shape must be (height, width) with two integers >= 1, got (0, 8)
    """
    message = f"{name} must be (height, width) with two integers >= {minimum}, got {shape!r}"
    if isinstance(shape, (str, bytes)):
        raise ValueError(message)
    try:
        values = tuple(operator.index(s) for s in shape)
    except TypeError:
        raise ValueError(message) from None
    if len(values) != 2 or min(values) < minimum:
        raise ValueError(message)
    return values[0], values[1]


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is True or False (numpy's bools too), else `TypeError`.

    Examples
    --------
    >>> check_bool(True, "mirror")
    True
    >>> check_bool("no", "mirror")
    Traceback (most recent call last):
    ...
    TypeError: mirror must be True or False, got 'no'
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(value: Any, name: str, choices: Sequence[_T]) -> _T:
    """``value`` if it is one of ``choices``.

    Examples
    --------
    >>> check_choice("rle", "segmentation", ("polygon", "rle"))
    'rle'
    >>> check_choice("mask", "segmentation", ("polygon", "rle"))
    Traceback (most recent call last):
    ...
    ValueError: segmentation must be one of ['polygon', 'rle'], got 'mask'
    """
    try:
        ok = value in choices
    except TypeError:  # an unhashable value against a set
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_classes(classes: Any, name: str = "classes", *, allow_empty: bool = False) -> list[str]:
    """A list of unique, non-empty class names, none of them a background name.

    The one rule for the classes of a model, a project and a COCO file's categories.

    Examples
    --------
    >>> check_classes(["cell", "background"])
    Traceback (most recent call last):
    ...
    ValueError: classes[1] is 'background': background is not a class in labelassist (it is implicit); list only object classes
    >>> check_classes("nucleus")
    Traceback (most recent call last):
    ...
    TypeError: classes must be a list of class names, got 'nucleus'; for one class write ['nucleus']
    """
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Iterable):
        raise TypeError(
            f"{name} must be a list of class names, got {classes!r}; for one class write "
            "['nucleus']"
        )
    names = list(classes)
    if not names and not allow_empty:
        raise ValueError(f"{name} must name at least one class, e.g. ['nucleus']")
    for k, value in enumerate(names):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name}[{k}] must be a non-empty str, got {value!r}")
        if value.strip().lower() in BACKGROUND_NAMES:
            raise ValueError(
                f"{name}[{k}] is {value!r}: background is not a class in labelassist "
                "(it is implicit); list only object classes"
            )
    dupes = sorted(n for n, c in Counter(names).items() if c > 1)
    if dupes:
        raise ValueError(f"{name} must be unique, got duplicates {dupes}")
    return names
