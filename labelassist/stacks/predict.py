"""Prediction on stacks: every plane through a model's batched ``predict``, then linking.

`predict_stack` takes any object with the public ``Model.predict`` interface (a list of
images in, a list of `Instances` out; it never imports `labelassist.model`), sends the
planes in batches of ``batch_size`` (one network forward each), turns a ``C`` axis into
each plane's channels, and links the planes (`labelassist.stacks.link_planes`). Planes of
lazy stacks (dask, zarr, memory-mapped) are read one batch at a time.

``object_size`` goes to ``Model.predict`` (each plane rescaled by the model's
``object_size`` over it, results on the stack's own pixels; None: the model's default, as
``Model.predict``). ``"auto"``, the default, is measured once per stack, on `AUTO_PLANES`
planes spread over it (``Model.estimate_object_size``), so that every plane runs at one
scale: per plane, the few small tip sections of the top and bottom planes of a z-stack
would each get a scale of their own, and a plane with nothing in it a guess. It is the
default for stacks (unlike ``Model.predict``, whose default is the model's own size)
because a stack is many planes of one specimen: the estimate costs a few planes' passes,
and objects at the model's size are what linking needs (bench/bench_stacks.py: 0.95 ->
0.98 correct links with the shipped starter on 15-16 px nuclei).
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..checks import check_int, check_number
from ..instances import Instances
from .link import link_planes
from .stack_instances import StackInstances

__all__ = ["AUTO_PLANES", "predict_stack", "stack_object_size", "stack_planes"]

#: ``object_size="auto"``: planes (evenly spread over the stack) whose median object size,
#: measured by ``model.estimate_object_size``, sets the one scale of every plane.
AUTO_PLANES = 8

_LETTERS = "TZCYX"


def predict_stack(
    model: Any,
    stack: Any,
    *,
    axes: str,
    score_threshold: float = 0.5,
    tile_size: int | None = None,
    stitch_threshold: float = 0.25,
    batch_size: int = 8,
    channels: int | Sequence[int] | None = None,
    division_threshold: float = 0.4,
    max_gap: int = 1,
    merge_threshold: float | None = 0.8,
    min_planes: int = 2,
    object_size: float | str | None = "auto",
    progress: bool = True,
    done: Sequence[Instances] = (),
    on_planes: Callable[[int, list[Instances]], None] | None = None,
) -> StackInstances:
    """Predict the objects of a z-stack, time-lapse or both, linked into 3-D objects and tracks.

    Parameters
    ----------
    model : labelassist.Model or alike
        Anything whose ``predict(list_of_images, *, score_threshold, tile_size,
        batch_size)`` returns a list of `Instances`.
    stack : array-like
        Numpy, dask, zarr or memory-mapped array with the axes ``axes``.
    axes : str
        One letter per axis of ``stack``, from ``T`` (time), ``Z`` (depth), ``C``
        (channels), ``Y``, ``X``, in any order (``"ZYX"``, ``"TCYX"``, ``"ZYXC"``...).
    score_threshold, tile_size : see ``Model.predict``
    stitch_threshold : float
        IoU at which instances of neighbouring planes (Z) and frames (T) are one object
        (`labelassist.stacks.link_planes`).
    batch_size : int
        Planes per ``model.predict`` call (one network forward).
    channels : int or sequence of int, optional
        Channels (indices along ``C``) to give the model: one (gray) or three (RGB); a
        `labelassist.Model` also takes two (see `labelassist.model.normalize.select_channels`).
        Default: the model's stored ``channels`` if it has any, else all, which must be 1,
        3 or 4 (RGBA).
    division_threshold, max_gap, merge_threshold, min_planes : see `labelassist.stacks.link_planes`
    object_size : float, "auto" or None, default "auto"
        The objects' median diameter in the planes, in pixels: every plane is rescaled by
        the model's ``object_size`` over it, as ``Model.predict(object_size=...)`` does
        (docs/object_size.md). ``"auto"``: measured once for the whole stack, the median
        of ``model.estimate_object_size`` on `AUTO_PLANES` planes spread over it (a model
        that knows no ``object_size`` of its own, e.g. untrained, or is not a
        `labelassist.Model`, then predicts at its own scale). None: the model's default (its ``data_object_size``; no rescaling
        when it knows none), as ``Model.predict``.
    progress : bool
        Show a tqdm progress bar over the planes.
    done : sequence of Instances, optional
        The first planes' instances, already predicted (e.g. by an interrupted run, with
        the same options): prediction resumes after them and all are linked.
    on_planes : callable, optional
        Called after each batch as ``on_planes(first_plane_index, instances)`` (e.g. to
        save progress; `labelassist.preannotate` does).

    Returns
    -------
    StackInstances
        Axes ``"ZYX"``, ``"TYX"``, ``"TZYX"`` or ``"YX"`` (the stack's, channels removed,
        in that order); per plane the model's `Instances` with ``extra["object_id"]``.

    Examples
    --------
    >>> import numpy as np
    >>> from labelassist import load_model
    >>> model = load_model(None, classes=["nucleus"], device="cpu")
    >>> stack = np.zeros((3, 64, 64), np.uint8)
    >>> result = predict_stack(model, stack, axes="ZYX", score_threshold=0.99, progress=False)
    >>> result.axes, result.shape, len(result)
    ('ZYX', (3, 64, 64), 3)
    """
    if not callable(getattr(model, "predict", None)):
        raise TypeError(
            f"model must have a predict(images, ...) method (a labelassist.Model), got "
            f"{type(model).__name__}"
        )
    check_number(score_threshold, "score_threshold", minimum=0, maximum=1)
    batch = check_int(batch_size, "batch_size", minimum=1)
    size = _check_object_size(object_size)
    planes, layout, stack_shape, options = _model_planes(model, stack, axes, channels)
    results: list[Instances] = _check_done(done, len(planes))
    if size == "auto":
        size = _stack_object_size(model, planes, tile_size=tile_size, options=options)
    if size is not None:
        options["object_size"] = size
    with tqdm(
        total=len(planes), initial=len(results), desc="predict", unit="plane",
        disable=not progress,
    ) as bar:  # fmt: skip
        for start in range(len(results), len(planes), batch):
            images = [plane() for plane in planes[start : start + batch]]
            out = model.predict(
                images,
                score_threshold=score_threshold,
                tile_size=tile_size,
                batch_size=batch,
                **options,
            )
            if not isinstance(out, list) or len(out) != len(images):
                raise TypeError(
                    f"model.predict returned {type(out).__name__} for a list of {len(images)} "
                    "images; expected a list of Instances, one per image"
                )
            results.extend(out)
            bar.update(len(images))
            if on_planes is not None:
                on_planes(start, list(out))
    return link_planes(
        results,
        axes=layout,
        stack_shape=stack_shape,
        stitch_threshold=stitch_threshold,
        division_threshold=division_threshold,
        max_gap=max_gap,
        merge_threshold=merge_threshold,
        min_planes=min_planes,
    )


def stack_planes(
    stack: Any,
    *,
    axes: str,
    channels: int | Sequence[int] | None = None,
    keep_channels: bool = False,
) -> tuple[list[Any], str, tuple[int, ...]]:
    """The planes of a stack as loaders, in C order over ``T`` then ``Z``.

    Parameters
    ----------
    stack : array-like
        Numpy, dask, zarr or memory-mapped array with the axes ``axes``.
    axes : str
        One letter per axis, from ``TZCYX``, in any order.
    channels : int or sequence of int, optional
        See `predict_stack`.
    keep_channels : bool
        Every channel of a plane, last, unchecked (for a model that picks them itself,
        e.g. with `labelassist.model.normalize.select_channels`); ``channels`` is ignored.

    Returns
    -------
    planes : list of callables
        ``planes[k]()`` reads plane ``k`` as an ndarray (H, W) or (H, W, C).
    layout : str
        The `StackInstances` axes: ``"YX"``, ``"ZYX"``, ``"TYX"`` or ``"TZYX"``.
    stack_shape : tuple of int
        The sizes of the stack axes, in the order of ``layout``.

    Examples
    --------
    >>> planes, layout, shape = stack_planes(np.zeros((4, 2, 8, 8)), axes="ZCYX", channels=0)
    >>> len(planes), layout, shape, planes[0]().shape
    (4, 'ZYX', (4,), (8, 8))
    """
    shape = getattr(stack, "shape", None)
    if shape is None or not hasattr(stack, "__getitem__"):
        raise TypeError(f"stack must be an array (numpy, dask, zarr), got {type(stack).__name__}")
    shape = tuple(int(n) for n in shape)
    letters = _check_axes(axes, shape)
    select = (
        None
        if keep_channels
        else _channel_selection(channels, shape[letters.index("C")] if "C" in letters else None)
    )
    lead = [a for a in "TZ" if a in letters]
    lead_shape = tuple(shape[letters.index(a)] for a in lead)
    image_axes = [a for a in letters if a in "YXC"]  # their order in each indexed plane
    perm = [image_axes.index(a) for a in "YXC" if a in image_axes]

    def loader(index: tuple[int, ...]) -> Any:
        key = tuple(index[lead.index(a)] if a in lead else slice(None) for a in letters)

        def load() -> np.ndarray:
            plane = np.asarray(stack[key]).transpose(perm)
            if select is not None:
                plane = plane[..., select]
            return plane[..., 0] if plane.ndim == 3 and plane.shape[-1] == 1 else plane

        return load

    planes = [loader(index) for index in np.ndindex(*lead_shape)] if lead else [loader(())]
    return planes, "".join(lead) + "YX", lead_shape


def _check_object_size(value: Any) -> float | str | None:
    if value is None or (isinstance(value, str) and value == "auto"):
        return value
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(
            f"object_size must be a positive number of pixels (the objects' median diameter), "
            f'"auto" (measured on the stack) or None, got {value!r}'
        )
    return float(value)


def stack_object_size(
    model: Any,
    stack: Any,
    *,
    axes: str,
    channels: int | Sequence[int] | None = None,
    tile_size: int | None = None,
) -> float | None:
    """The object size ``predict_stack(..., object_size="auto")`` uses for ``stack`` (px).

    The median of ``model.estimate_object_size`` on `AUTO_PLANES` planes spread over the
    stack; None when the model cannot estimate sizes or knows no size of its own, or no
    plane shows an object (with a warning). Parameters as `predict_stack`'s.

    Examples
    --------
    >>> import numpy as np
    >>> from labelassist import load_model
    >>> model = load_model(None, classes=["nucleus"], device="cpu")  # knows no size
    >>> stack_object_size(model, np.zeros((3, 32, 32), np.uint8), axes="ZYX") is None
    True
    """
    planes, _, _, options = _model_planes(model, stack, axes, channels)
    return _stack_object_size(model, planes, tile_size=tile_size, options=options)


def _model_planes(
    model: Any, stack: Any, axes: str, channels: int | Sequence[int] | None
) -> tuple[list[Any], str, tuple[int, ...], dict[str, Any]]:
    """`stack_planes` for ``model``, and the options its ``predict`` gets for them.

    A model that picks channels itself (labelassist.Model: its stored ``channels`` when
    none are given) gets every channel of a plane, so the choice is applied once.
    """
    picks = channels if channels is not None else getattr(model, "channels", None)
    if hasattr(model, "channels") and picks is not None and "C" in str(axes).upper():
        planes, layout, shape = stack_planes(stack, axes=axes, keep_channels=True)
        return planes, layout, shape, {"channels": picks}
    planes, layout, shape = stack_planes(stack, axes=axes, channels=channels)
    return planes, layout, shape, {}


def _check_done(done: Any, n: int) -> list[Instances]:
    if isinstance(done, (str, bytes)) or not isinstance(done, Sequence):
        raise TypeError(f"done must be a sequence of Instances, got {type(done).__name__}")
    if len(done) > n or not all(isinstance(d, Instances) for d in done):
        raise ValueError(
            f"done must hold at most {n} Instances (the stack's planes), got {len(done)} "
            "entries; pass the instances of the planes an earlier run predicted"
        )
    return list(done)


def _stack_object_size(
    model: Any, planes: list[Any], *, tile_size: int | None, options: dict[str, Any]
) -> float | None:
    """The median object size of `AUTO_PLANES` planes spread over the stack (None: none)."""
    estimate = getattr(model, "estimate_object_size", None)
    if not callable(estimate) or getattr(model, "object_size", None) is None:
        return None  # not a labelassist.Model, or one that knows no size: its own scale
    picks = np.unique(np.linspace(0, len(planes) - 1, min(AUTO_PLANES, len(planes))).round())
    images = [planes[int(k)]() for k in picks]
    sizes = estimate(images, tile_size=tile_size, **options)
    found = [float(s) for s in sizes if s is not None]
    if not found:
        warnings.warn(
            f'object_size="auto" found no objects in {len(images)} planes of the stack; '
            "predicting at the model's default scale (give object_size in pixels to choose one)",
            stacklevel=3,
        )
        return None
    return float(np.median(found))


def _check_axes(axes: Any, shape: tuple[int, ...]) -> str:
    if not isinstance(axes, str):
        raise ValueError(f"axes must be a str like 'ZYX', got {axes!r}")
    letters = axes.upper()
    if (
        len(letters) != len(shape)
        or set(letters) - set(_LETTERS)
        or len(set(letters)) != len(letters)
        or "Y" not in letters
        or "X" not in letters
    ):
        raise ValueError(
            f"axes={axes!r} does not fit a stack of shape {shape}: give {len(shape)} distinct "
            f"letters of 'TZCYX' (Y and X included), one per axis, e.g. 'ZYX' or 'TCYX'"
        )
    if 0 in shape:
        raise ValueError(f"the stack is empty (shape {shape})")
    return letters


def _channel_selection(channels: Any, n: int | None) -> list[int] | None:
    if channels is None:
        if n is not None and n not in (1, 3, 4):
            raise ValueError(
                f"the stack has {n} channels; models take 1 (gray), 3 (RGB) or 4 (RGBA): "
                "pick them with channels=0 or channels=[0, 1, 2]"
            )
        return None
    if n is None:
        raise ValueError(f"channels={channels!r} needs a C axis in axes")
    picked = [channels] if isinstance(channels, (int, np.integer)) else list(channels)
    for c in picked:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < n:
            raise ValueError(f"channels must be indices in [0, {n - 1}], got {channels!r}")
    if len(picked) not in (1, 3):
        raise ValueError(
            f"channels must pick 1 (gray) or 3 (RGB) channels, got {len(picked)}: {channels!r}"
        )
    return [int(c) for c in picked]
