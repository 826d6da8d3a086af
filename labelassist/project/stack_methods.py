"""The stack methods of `Project` (z-stacks and time-lapse), each one call into `stacks`.

A mixin: `labelassist.project.Project` inherits these methods; the work is done by
`labelassist.project.stacks` (see its docstring for how stacks are stored).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..instances import Instances
from ..stacks import StackInstances
from . import queue as _queue
from . import stacks as _stacks
from .store import Store

__all__ = ["StackMethods"]

StackRef = int | Mapping[str, Any]


class StackMethods:
    """`Project`'s methods for stacks.

    Examples
    --------
    A z-stack of 3 planes, pre-annotated from a label volume, one plane reviewed, the
    label volume back out:

    >>> import tempfile, pathlib, numpy as np
    >>> from labelassist.project import Project
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> volume = np.zeros((3, 16, 16), np.uint16)
    >>> volume[0:2, 2:6, 2:6] = 5
    >>> with Project.create(folder / "p", classes=["nucleus"]) as project:
    ...     s = project.add_stack(np.zeros((3, 16, 16), np.uint8), axes="ZYX", name="embryo")
    ...     _ = project.import_label_volume(s, volume)
    ...     first = project.plane(s, 0)
    ...     project.instances(first).extra["object_id"].tolist()
    ...     project.set_status(first, "reviewed")
    ...     project.stack(s)["status"]["reviewed"], project.next_image(stack=s)["plane"]
    ...     out = project.export_label_volume(s, folder / "labels.tif")
    [5]
    (1, 1)
    >>> from labelassist.io import read_stack
    >>> labels, axes = read_stack(out)
    >>> axes, bool((labels == volume).all())
    ('ZYX', True)
    """

    _store: Store

    def add_stack(
        self,
        stack: str | os.PathLike | Any,
        *,
        axes: str | None = None,
        name: str | None = None,
        channels: int | Sequence[int] | None = None,
        split: str | None = None,
    ) -> int:
        """Add a z-stack or time-lapse; return its stack id.

        Each plane becomes an image of the project (status ``"new"``, a record with
        ``stack`` and ``plane``), its pixels written once as a 2-D TIFF under
        ``planes/<name>/``.

        Parameters
        ----------
        stack : path or array
            A TIFF/OME-TIFF file (read with `labelassist.io.read_stack`), or an array
            (numpy, dask, zarr) with ``axes``.
        axes : str, optional
            For an array: one letter per axis from ``T Z C Y X``, any order (required).
            For a file: its axes when its metadata is missing or wrong (see
            `labelassist.io.read_stack`).
        name : str, optional
            The stack's name (default: the file's name without suffixes, or "stack").
        channels : int or sequence of int, optional
            Channels kept per plane (one: gray, three: RGB); default all (1, 3 or 4).
        split : {"train", "val"}, optional
            Split of every plane (a stack is never divided between splits).

        Raises
        ------
        ValueError
            Unreadable file, wrong axes, a 2-D image (use `add_images`), a stack already
            added (same file), or a channel count that is not 1, 3 or 4 (pass channels=).
        """
        return _stacks.add_stack(
            self._store,
            stack,
            axes=axes,
            name=name,
            channels=None if channels is None else np.atleast_1d(channels).tolist(),
            split=split,
        )

    def stacks(self) -> list[dict]:
        """Stack records, by id: ``id, name, source`` (the file, None for an array),
        ``axes`` (``"ZYX"``, ``"TYX"`` or ``"TZYX"``), ``shape`` (the label volume's),
        ``source_axes, channels, planes, status`` (status -> planes), ``n_instances,
        parents`` (divisions ``{daughter: mother}``) and ``created``."""
        return _stacks.list_stacks(self._store)

    def stack(self, stack: StackRef) -> dict:
        """The record of one stack (see `stacks`)."""
        return _stacks.get_stack(self._store, stack)

    def planes(self, stack: StackRef, *, status: str | Sequence[str] | None = None) -> list[dict]:
        """Image records of a stack's planes (optionally of some statuses), in plane order.

        Each is an image of the project: `instances`, `save_instances`, `history`,
        `undo`, `set_status` and `log_time` take it as they take any image.
        """
        return _stacks.plane_records(self._store, stack, status=status)

    def plane(self, stack: StackRef, index: int | Sequence[int]) -> dict:
        """The image record of one plane: ``index`` is its position in C order over the
        stack axes (int) or one index per stack axis (``(t, z)``)."""
        return _stacks.plane_record(self._store, stack, index)

    def stack_image(self, stack: StackRef) -> np.ndarray:
        """The stack's pixels as an ndarray, shape ``stack shape + (H, W)`` (``+ (C,)``
        with channels), read from the plane files."""
        return _stacks.stack_image(self._store, stack)

    def stack_instances(self, stack: StackRef) -> StackInstances:
        """Every plane's current instances as a `labelassist.StackInstances`.

        Instances that have no object id yet (drawn in a 2-D tool) get new ids above the
        stack's; divisions that no longer fit the tracks are left out.
        """
        return _stacks.stack_instances(self._store, stack)

    def save_stack_instances(
        self,
        stack: StackRef,
        objects: StackInstances,
        *,
        source: str = "model",
        model_id: str | None = None,
    ) -> list[int]:
        """Save ``objects`` (e.g. ``Model.predict_stack``'s result) as a new version of
        every plane, in one transaction; return the versions, one per plane.

        ``source`` as in `save_instances` (``"model"``: pre-annotations, moving new planes
        to ``"pre-annotated"``); object ids and divisions are kept.
        """
        return _stacks.save_stack_instances(
            self._store, stack, objects, source=source, model_id=model_id
        )

    def import_label_volume(
        self,
        stack: StackRef,
        labels: np.ndarray | str | os.PathLike,
        *,
        axes: str | None = None,
        label: int = 0,
        parents: Mapping[int, int] | None = None,
        tolerance: float = 0.0,
        source: str = "model",
    ) -> list[int]:
        """Import an integer label volume (0 background, one id per 3-D object or track:
        Cellpose, StarDist, a label TIFF) as the stack's instances (pre-annotations by
        default); return the versions. ``label`` is every object's class index."""
        return _stacks.import_label_volume(
            self._store,
            stack,
            labels,
            axes=axes,
            label=label,
            parents=parents,
            tolerance=tolerance,
            source=source,
        )

    def export_label_volume(self, stack: StackRef, path: str | os.PathLike) -> Path:
        """Write the stack's objects as a uint32 label TIFF with its axes
        (`labelassist.stacks.write_label_volume`); return the path."""
        return _stacks.export_label_volume(self._store, stack, path)

    def export_coco_video(self, stack: StackRef, path: str | os.PathLike) -> Path:
        """Write the stack's objects as COCO video JSON, one image per plane and a track
        per object (`labelassist.stacks.write_coco_video`, TAO layout); return the path."""
        return _stacks.export_coco_video(self._store, stack, path)

    def next_stack(
        self, *, strategy: str = "uncertainty", exclude: Iterable[StackRef] = ()
    ) -> dict | None:
        """The stack to review next (its record), or None when every plane is reviewed or
        skipped: ``"order"`` the lowest id, ``"uncertainty"`` the stack with the most
        uncertain open plane. Then ``next_image(stack=...)`` gives its planes in turn."""
        number = _queue.next_stack(self._store, strategy=strategy, exclude=exclude)
        return None if number is None else self.stack(number)

    def reviewed_planes(
        self, *, split: str | None = None
    ) -> Iterator[tuple[np.ndarray, Instances]]:
        """``(plane image, Instances)`` of each reviewed plane of every stack (optionally
        of one split), the training pairs `labelassist.finetune` accepts. Training
        rounds (`labelassist.rounds.run_round`) need no call: reviewed planes are
        reviewed images of `dataset`."""
        return _stacks.reviewed_planes(self._store, split=split)
