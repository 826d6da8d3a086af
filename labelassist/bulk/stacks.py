"""Stacks in a bulk run: a z-stack or time-lapse file is one item, saved and resumed plane by plane.

`preannotate` hands every TIFF input whose header names a ``T`` or ``Z`` axis
(`labelassist.io.stack_axes`) to `predict_stack_source` instead of the 2-D path: the file is
read with `labelassist.read_stack`, its planes go through the model in batches and are
linked into 3-D objects and tracks (`labelassist.stacks.predict_stack`). With an ``out``
file, each stack's objects are written next to it, in ``<out stem>.stacks/<file
name>.json``, as a COCO video file (TAO layout, `labelassist.stacks.write_coco_video`'s),
rewritten atomically after every batch of planes while the stack runs. Its ``info``
records the progress (``{"labelassist_preannotate": {"planes_done": k, "complete": bool,
"object_size": px}}``); until the stack is complete each instance is its own track. A run
that stops part-way through a stack resumes from its next plane: the planes done are read
back, only the rest is predicted (at the object size the first run used), and all are
linked. A complete file is read back, not predicted again.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..instances import Instances
from ..io import atomic_write, read_stack, stack_axes
from ..stacks import (
    OBJECT_ID,
    StackInstances,
    predict_stack,
    read_coco_video,
    stack_object_size,
    stack_to_coco_video,
)
from .batch import Options
from .sources import ImageSource, one_line

if TYPE_CHECKING:  # pragma: no cover
    from ..model import Model

__all__ = ["PROGRESS_KEY", "is_stack", "predict_stack_source", "stack_file", "stack_store"]

#: The key of a stack file's ``info`` that holds the progress of its run.
PROGRESS_KEY = "labelassist_preannotate"

_TIFF = (".tif", ".tiff")


def is_stack(source: ImageSource) -> bool:
    """True when ``source`` is a TIFF file whose header names a ``T`` or ``Z`` axis.

    Files whose header cannot be read are not stacks here: the 2-D path reports them.

    Examples
    --------
    >>> is_stack(ImageSource(0, "a.png", path="/nowhere/a.png"))
    False
    """
    if source.path is None or Path(source.path).suffix.lower() not in _TIFF:
        return False
    try:
        axes = stack_axes(source.path)
    except (OSError, ValueError):
        return False
    return "T" in axes or "Z" in axes


def stack_store(out: Path) -> Path:
    """The folder of the stack files of ``out``: ``<out stem>.stacks`` beside it.

    Examples
    --------
    >>> stack_store(Path("/data/proposals.json")).as_posix()
    '/data/proposals.stacks'
    """
    return out.with_name(out.stem + ".stacks")


def stack_file(out: Path, name: str) -> Path:
    """Where the objects of the stack named ``name`` (its dataset file name) are saved.

    Examples
    --------
    >>> stack_file(Path("/data/p.json"), "movies/a.tif").as_posix()
    '/data/p.stacks/movies/a.tif.json'
    """
    return stack_store(out) / (name + ".json")


def predict_stack_source(
    source: ImageSource,
    model: Model,
    options: Options,
    saved: Path | None,
) -> tuple[StackInstances | None, str | None]:
    """Predict one stack file: ``(objects, None)``, or ``(None, reason)`` when it fails.

    ``options`` are the run's (``object_size`` None means ``"auto"`` here, measured once
    per stack: `predict_stack`'s default). With ``saved`` (`stack_file`), progress is
    written there after every batch of planes and an earlier run's progress is used.
    """
    if source.path is None:
        return None, "no path"
    try:
        stack, axes = read_stack(source.path)
    except FileNotFoundError:
        return None, "file not found"
    except (OSError, ValueError, ImportError, MemoryError) as exc:
        return None, one_line(exc)
    classes = list(model.classes)
    earlier = _read_progress(saved, classes) if saved is not None else None
    layout = "".join(a for a in axes if a != "C")
    shape = tuple(int(n) for a, n in zip(axes, stack.shape, strict=True) if a != "C")
    if earlier is not None and (earlier[0].axes, earlier[0].shape) != (layout, shape):
        earlier = None  # the file changed since: start over
    if earlier is not None and earlier[1]["complete"]:
        return earlier[0], None
    done: list[Instances] = []
    size = options.object_size
    try:
        if earlier is not None:
            objects, progress = earlier
            done = [_without_ids(p) for p in objects.planes[: progress["planes_done"]]]
            size = progress["object_size"]
        elif size is None or size == "auto":
            size = stack_object_size(
                model, stack, axes=axes, channels=options.channels, tile_size=options.tile_size
            )

        def save(start: int, planes: list[Instances]) -> None:
            done.extend(planes)
            if saved is not None:
                _write(saved, source.name, classes, done, layout, shape, size, complete=False)

        objects = predict_stack(
            model,
            stack,
            axes=axes,
            score_threshold=options.score_threshold,
            tile_size=options.tile_size,
            batch_size=options.batch_size,
            channels=options.channels,
            object_size=size,
            progress=False,
            done=list(done),
            on_planes=save,
        )
    except (ValueError, TypeError, RuntimeError, MemoryError) as exc:
        return None, f"prediction failed: {type(exc).__name__}: {one_line(exc)}"
    if saved is not None:
        _write_objects(saved, source.name, classes, objects, size, len(objects.planes), True)
    return objects, None


def _without_ids(plane: Instances) -> Instances:
    extra = {k: v for k, v in plane.extra.items() if k != OBJECT_ID}
    return plane.replace(extra=extra)


def _write(
    path: Path,
    name: str,
    classes: Sequence[str],
    planes: Sequence[Instances],
    layout: str,
    shape: tuple[int, ...],
    size: Any,
    *,
    complete: bool,
) -> None:
    """The planes done so far, each instance its own track; the rest empty."""
    counter = itertools.count(1)
    image_shape = (shape[-2], shape[-1])
    n = math.prod(shape[:-2])
    full = [
        p.replace(extra={**p.extra, OBJECT_ID: np.array([next(counter) for _ in range(len(p))])})
        for p in planes
    ] + [Instances.empty(image_shape, extra_keys=[OBJECT_ID]) for _ in range(n - len(planes))]
    objects = StackInstances(full, shape, layout, {})
    _write_objects(path, name, classes, objects, size, len(planes), complete)


def _write_objects(
    path: Path,
    name: str,
    classes: Sequence[str],
    objects: StackInstances,
    size: Any,
    planes_done: int,
    complete: bool,
) -> None:
    coco = stack_to_coco_video(objects, classes, name=Path(name).name, file_name=name)
    coco["info"][PROGRESS_KEY] = {
        "planes_done": planes_done,
        "complete": complete,
        "object_size": None if size is None else float(size),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, suffix=".json") as fh:
        fh.write(json.dumps(coco, separators=(",", ":")).encode("utf-8"))


def _read_progress(path: Path, classes: list[str]) -> tuple[StackInstances, dict[str, Any]] | None:
    """An earlier run's objects and progress in ``path``; None when absent or unusable."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            info = json.load(fh).get("info", {})
        progress = info[PROGRESS_KEY]
        objects, names = read_coco_video(path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # not ours, or damaged: predicted again and overwritten
    ok = (
        isinstance(progress, dict)
        and isinstance(progress.get("planes_done"), int)
        and 0 <= progress["planes_done"] <= len(objects.planes)
        and isinstance(progress.get("complete"), bool)
    )
    if not ok or names != classes:
        return None
    return objects, progress
