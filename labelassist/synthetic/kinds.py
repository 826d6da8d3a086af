"""One entry point for every synthetic image kind: `synthetic_image` and the `KINDS` it knows.

Each kind is a generator function of this package; ``"worms"`` is `synthetic_rods` with
the `WORMS` settings. ``size`` means the object size in pixels for every kind (for nuclei
it sets ``radius = size / 2``), so a domain-randomised mix can share it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Literal, overload

import numpy as np

from ..checks import check_choice, check_shape
from ..instances import Instances
from .cells import synthetic_cells
from .epithelium import synthetic_epithelium
from .histology import synthetic_histology
from .nuclei import synthetic_nuclei
from .params import _range
from .piles import synthetic_piles
from .rods import WORMS, synthetic_rods
from .transmitted import synthetic_brightfield

__all__ = ["KINDS", "synthetic_image"]

#: The image kinds of `synthetic_image`.
KINDS = ("nuclei", "cells", "epithelium", "brightfield", "histology", "rods", "worms", "piles")

_GENERATORS: dict[str, Callable[..., Any]] = {
    "nuclei": synthetic_nuclei,
    "cells": synthetic_cells,
    "epithelium": synthetic_epithelium,
    "brightfield": synthetic_brightfield,
    "histology": synthetic_histology,
    "rods": synthetic_rods,
    "worms": synthetic_rods,
    "piles": synthetic_piles,
}
_PRESETS: dict[str, dict[str, Any]] = {"worms": WORMS}
_Seed = int | np.random.Generator | np.random.SeedSequence | None


def _options(kind: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``kind``'s generator: preset, ``size`` mapped, names checked."""
    generator = _GENERATORS[kind]
    takes = set(inspect.signature(generator).parameters) - {"shape", "seed", "return_labels"}
    options = {**_PRESETS.get(kind, {}), **kwargs}
    if kind == "nuclei" and "size" in options:
        if "radius" in kwargs:
            raise TypeError("synthetic_image('nuclei') takes size or radius, not both")
        low, high = _range("size", options.pop("size"), low=2.0)
        options["radius"] = (low / 2, high / 2)
    unknown = sorted(set(options) - takes)
    if unknown:
        accepted = sorted(takes | ({"size"} if kind == "nuclei" else set()))
        raise TypeError(
            f"synthetic_image({kind!r}) does not take {', '.join(unknown)}; it takes {accepted}"
        )
    return options


@overload
def synthetic_image(
    kind: str,
    shape: tuple[int, int] = (256, 256),
    *,
    seed: _Seed = None,
    return_labels: Literal[False] = ...,
    **kwargs: Any,
) -> tuple[np.ndarray, Instances]: ...


@overload
def synthetic_image(
    kind: str,
    shape: tuple[int, int] = (256, 256),
    *,
    seed: _Seed = None,
    return_labels: Literal[True],
    **kwargs: Any,
) -> tuple[np.ndarray, Instances, np.ndarray]: ...


def synthetic_image(
    kind: str,
    shape: tuple[int, int] = (256, 256),
    *,
    seed: _Seed = None,
    return_labels: bool = False,
    **kwargs: Any,
) -> tuple[np.ndarray, Instances] | tuple[np.ndarray, Instances, np.ndarray]:
    """A synthetic image of one of the `KINDS` and its exact ground-truth instances.

    =============== ================================================ ==============
    kind            generator                                        image
    =============== ================================================ ==============
    ``nuclei``      `synthetic_nuclei`: fluorescent nuclei           (H, W)
    ``cells``       `synthetic_cells`: cytoplasm + nucleus channels  (H, W, 3)
    ``epithelium``  `synthetic_epithelium`: membrane-stained tissue  (H, W)
    ``brightfield`` `synthetic_brightfield`: brightfield / phase     (H, W)
    ``histology``   `synthetic_histology`: H&E-like nuclei           (H, W, 3)
    ``rods``        `synthetic_rods`: bacteria                       (H, W)
    ``worms``       `synthetic_rods` with `WORMS`                    (H, W)
    ``piles``       `synthetic_piles`: occluding grains, visible     (H, W, 3)
    =============== ================================================ ==============

    Parameters
    ----------
    kind : str
        One of `KINDS`.
    shape : (int, int)
        ``(height, width)`` of the image.
    seed : int, Generator, SeedSequence or None
        Random seed; the same seed gives an identical result.
    return_labels : bool
        Also return the label image.
    **kwargs
        Options of the kind's generator. ``size`` (a number or a ``(low, high)`` pair, in
        pixels) works for every kind; for ``"nuclei"`` it sets ``radius = size / 2``.

    Returns
    -------
    image : ndarray of shape (H, W) or (H, W, 3)
    instances : Instances
    labels : ndarray of shape (H, W), int32
        Only with ``return_labels=True``.

    Raises
    ------
    TypeError
        When the kind's generator does not take one of ``kwargs``.

    Examples
    --------
    >>> image, inst = synthetic_image("histology", (64, 64), size=12, seed=0)
    >>> image.shape
    (64, 64, 3)
    >>> image, inst = synthetic_image("nuclei", (64, 64), n=3, size=(10, 16), seed=0)
    >>> len(inst)
    3
    """
    kind = check_choice(kind, "kind", KINDS)
    shape = check_shape(shape, "shape", minimum=1)
    options = _options(kind, kwargs)
    return _GENERATORS[kind](shape, seed=seed, return_labels=return_labels, **options)
