"""The `StackInstances` type: the objects of a z-stack or time-lapse, one `Instances` per plane.

Every plane's `Instances` has an ``extra["object_id"]`` column (int64, ids >= 1, unique
within the plane): the same id in several planes is the same 3-D object (``Z``) or the
same track (``T``). Divisions are parent links between tracks (`StackInstances.parents`).
Planes are in C order over the stack axes: for ``"TZYX"`` plane ``t * Z + z``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..geometry import masks_to_polygons, polygons_to_masks
from ..instances import Instances

__all__ = ["OBJECT_ID", "STACK_LAYOUTS", "StackInstances"]

#: The ``extra`` column of each plane's `Instances` that holds the object (track) id.
OBJECT_ID = "object_id"

#: The axes a `StackInstances` may have (canonical order, channels removed).
STACK_LAYOUTS = ("YX", "ZYX", "TYX", "TZYX")

_PAINT_CHUNK = 64  # objects rasterized at once by `to_labels` (bounds the mask memory)


@dataclass(frozen=True, eq=False)
class StackInstances:
    """The objects of a stack: one `Instances` per plane, linked by ``extra["object_id"]``.

    Parameters
    ----------
    planes : sequence of Instances
        One per plane, in C order over the stack axes (``shape[:-2]``); each with
        ``image_shape == shape[-2:]`` and an int ``extra["object_id"]`` column (ids >= 1,
        unique within the plane).
    shape : tuple of int
        The label volume's shape, e.g. ``(Z, H, W)``; one entry per letter of ``axes``.
    axes : str
        One of `STACK_LAYOUTS`: ``"YX"``, ``"ZYX"``, ``"TYX"`` or ``"TZYX"``.
    parents : mapping of int to int, optional
        Divisions: ``{daughter_id: mother_id}``; only with a ``T`` axis. The mother's last
        frame comes before the daughter's first (the Cell Tracking Challenge rule).

    Attributes
    ----------
    tracks : ndarray of shape (N, 4), int64
        One row per object: ``(id, first frame, last frame, parent id or 0)``, the Cell
        Tracking Challenge's ``L B E P`` (frames along ``T``; 0 without a ``T`` axis).

    Examples
    --------
    >>> import numpy as np
    >>> volume = np.zeros((3, 8, 8), np.uint32)
    >>> volume[0:2, 1:4, 1:4] = 7
    >>> volume[2, 5:7, 5:7] = 9
    >>> stack = StackInstances.from_labels(volume, "ZYX")
    >>> len(stack), stack.object_ids.tolist(), [len(p) for p in stack.planes]
    (3, [7, 9], [1, 1, 1])
    >>> bool((stack.to_labels() == volume).all())
    True
    """

    planes: list[Instances]
    shape: tuple[int, ...]
    axes: str
    parents: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        axes = self.axes
        if axes not in STACK_LAYOUTS:
            raise ValueError(
                f"axes must be one of {list(STACK_LAYOUTS)} (channels removed, in this "
                f"order), got {axes!r}"
            )
        shape = _check_shape(self.shape, axes)
        planes = list(self.planes)
        n = math.prod(shape[:-2])
        if len(planes) != n:
            raise ValueError(
                f"planes has {len(planes)} entries, but shape {shape} ({axes}) has {n} planes"
            )
        planes = [_check_plane(plane, k, shape[-2:]) for k, plane in enumerate(planes)]
        object.__setattr__(self, "planes", planes)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "parents", self._checked_parents(self.parents))

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_labels(
        cls,
        volume: Any,
        axes: str,
        *,
        parents: Mapping[int, int] | None = None,
        tolerance: float = 0.0,
        label: int = 0,
    ) -> StackInstances:
        """Objects of a label volume (0 = background, id = object): pre-annotations from
        Cellpose, StarDist or any tool that writes integer labels.

        Parameters
        ----------
        volume : array-like of int, shape matching ``axes``
            Numpy or dask; each plane's distinct ids become its instances.
        axes : str
            One of `STACK_LAYOUTS`.
        parents : mapping of int to int, optional
            Divisions, ``{daughter_id: mother_id}`` (``T`` axes only).
        tolerance : float
            Polygon simplification (`labelassist.geometry.masks_to_polygons`); 0: exact
            pixel outlines, so `to_labels` gives ``volume`` back.
        label : int
            The class index of every instance.

        Examples
        --------
        >>> import numpy as np
        >>> movie = np.zeros((2, 6, 6), np.uint16)
        >>> movie[0, 0:2, 0:2] = 1
        >>> movie[1, 0:2, 1:3] = 1
        >>> StackInstances.from_labels(movie, "TYX").tracks.tolist()
        [[1, 0, 1, 0]]
        """
        if axes not in STACK_LAYOUTS:
            raise ValueError(f"axes must be one of {list(STACK_LAYOUTS)}, got {axes!r}")
        shape = tuple(int(n) for n in getattr(volume, "shape", np.shape(volume)))
        if len(shape) != len(axes):
            raise ValueError(
                f"volume has {len(shape)} dimensions (shape {shape}) but axes {axes!r} has "
                f"{len(axes)} letters"
            )
        dtype = np.dtype(getattr(volume, "dtype", np.asarray(volume).dtype))
        if dtype.kind not in "ui":
            raise ValueError(
                f"volume must hold integer labels (0 = background), got dtype {dtype}; "
                "convert masks with skimage.measure.label first"
            )
        planes = []
        for index in np.ndindex(*shape[:-2]):
            plane = np.asarray(volume[index])
            if plane.size and dtype.kind == "i" and plane.min() < 0:
                raise ValueError(
                    f"volume{list(index)} holds negative labels ({plane.min()}); use 0 for "
                    "background and positive ids"
                )
            ids = np.unique(plane)
            ids = ids[ids != 0].astype(np.int64)
            polygons = masks_to_polygons(plane, tolerance=tolerance) if len(ids) else []
            planes.append(
                Instances(
                    polygons,
                    np.full(len(ids), label, dtype=np.int64),
                    None,
                    (shape[-2], shape[-1]),
                    extra={OBJECT_ID: ids},
                )
            )
        return cls(planes, shape, axes, dict(parents or {}))

    # -- container -----------------------------------------------------------------------
    def __len__(self) -> int:
        """The number of planes."""
        return len(self.planes)

    def __repr__(self) -> str:
        return (
            f"StackInstances(axes={self.axes!r}, shape={self.shape}, "
            f"objects={len(self.object_ids)}, divisions={len(self.parents)})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StackInstances):
            return NotImplemented
        return (
            self.axes == other.axes
            and self.shape == other.shape
            and self.parents == other.parents
            and all(a == b for a, b in zip(self.planes, other.planes, strict=True))
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def image_shape(self) -> tuple[int, int]:
        """``(height, width)`` of every plane."""
        return self.shape[-2], self.shape[-1]

    @property
    def stack_shape(self) -> tuple[int, ...]:
        """The shape of the stack axes (``shape[:-2]``, e.g. ``(T, Z)``)."""
        return self.shape[:-2]

    @property
    def object_ids(self) -> np.ndarray:
        """The distinct object ids, ascending, int64."""
        if not self.planes:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate([p.extra[OBJECT_ID] for p in self.planes]))

    def plane_index(self, index: Sequence[int]) -> int:
        """The position in `planes` of the plane at ``index`` over `stack_shape`.

        Examples
        --------
        >>> import numpy as np
        >>> stack = StackInstances.from_labels(np.zeros((2, 3, 4, 4), np.uint8), "TZYX")
        >>> stack.plane_index((1, 2))
        5
        """
        return int(np.ravel_multi_index(tuple(index), self.stack_shape)) if self.stack_shape else 0

    def frames(self) -> np.ndarray:
        """The frame (index along ``T``) of each plane, ndarray of shape (len,), int64;
        zeros without a ``T`` axis."""
        if "T" not in self.axes:
            return np.zeros(len(self.planes), dtype=np.int64)
        per_frame = math.prod(self.stack_shape[1:])
        return np.arange(len(self.planes), dtype=np.int64) // per_frame

    @property
    def tracks(self) -> np.ndarray:
        """``(id, first frame, last frame, parent)`` per object (see the class notes)."""
        frames = self.frames()
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        for frame, plane in zip(frames.tolist(), self.planes, strict=True):
            for oid in plane.extra[OBJECT_ID].tolist():
                first.setdefault(oid, frame)
                last[oid] = frame
        rows = [(oid, first[oid], last[oid], self.parents.get(oid, 0)) for oid in sorted(first)]
        return np.array(rows, dtype=np.int64).reshape(len(rows), 4)

    # -- conversion ----------------------------------------------------------------------
    def to_labels(self, dtype: Any = np.uint32) -> np.ndarray:
        """The label volume: ndarray of `shape`, 0 = background, each pixel the
        ``object_id`` of the instance covering it.

        Pixels are those whose centre lies in the polygon (`polygons_to_masks`); where
        instances of a plane overlap, the higher score wins (on ties, the later one).

        Examples
        --------
        >>> import numpy as np
        >>> volume = np.zeros((2, 4, 4), np.uint32)
        >>> volume[:, 1:3, 1:3] = 5
        >>> StackInstances.from_labels(volume, "ZYX").to_labels().max()
        np.uint32(5)
        """
        dt = np.dtype(dtype)
        if dt.kind not in "ui":
            raise ValueError(f"dtype must be an integer type like np.uint32, got {dt}")
        top = int(self.object_ids.max()) if len(self.object_ids) else 0
        if top > np.iinfo(dt).max:
            raise ValueError(
                f"object id {top} does not fit in {dt}; use dtype=np.uint32 or np.int64"
            )
        out = np.zeros(self.shape, dtype=dt)
        flat = out.reshape((-1, *self.image_shape))
        for k, plane in enumerate(self.planes):
            if not len(plane):
                continue
            order = np.argsort(plane.scores, kind="stable")
            ids = plane.extra[OBJECT_ID]
            for start in range(0, len(order), _PAINT_CHUNK):
                chunk = order[start : start + _PAINT_CHUNK]
                masks = polygons_to_masks(plane.polygons[chunk], self.image_shape)
                for mask, oid in zip(masks, ids[chunk].tolist(), strict=True):
                    flat[k][mask] = oid
        return out

    def _checked_parents(self, parents: Any) -> dict[int, int]:
        if not isinstance(parents, Mapping):
            raise TypeError(
                f"parents must be a dict {{daughter_id: mother_id}}, got {type(parents).__name__}"
            )
        if not parents:
            return {}
        if "T" not in self.axes:
            raise ValueError(
                f"parents (divisions) need a time axis; axes is {self.axes!r}: pass parents "
                "only for TYX or TZYX stacks"
            )
        table = {int(row[0]): (int(row[1]), int(row[2])) for row in self.tracks}
        out: dict[int, int] = {}
        for child, mother in parents.items():
            c, m = _as_id(child, "parents key"), _as_id(mother, f"parents[{child!r}]")
            for oid in (c, m):
                if oid not in table:
                    raise ValueError(
                        f"parents {{{c}: {m}}} names object {oid}, which is in no plane"
                    )
            if table[m][1] >= table[c][0]:
                raise ValueError(
                    f"parents {{{c}: {m}}}: mother {m} lasts until frame {table[m][1]} but "
                    f"daughter {c} starts at frame {table[c][0]}; a mother must end before "
                    "its daughters begin"
                )
            out[c] = m
        return out


def _as_id(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int object id, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be an object id >= 1, got {value}")
    return int(value)


def _check_shape(shape: Any, axes: str) -> tuple[int, ...]:
    try:
        values = tuple(int(n) for n in shape)
        ok = all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in shape)
    except TypeError:
        values, ok = (), False
    if not ok or len(values) != len(axes) or min(values) < 1:
        raise ValueError(
            f"shape must be {len(axes)} integers >= 1, one per letter of axes {axes!r}, "
            f"got {shape!r}"
        )
    return values


def _check_plane(plane: Any, k: int, image_shape: tuple[int, ...]) -> Instances:
    """``plane`` checked, with its object ids as int64 (a new `Instances` if converted)."""
    if not isinstance(plane, Instances):
        raise TypeError(f"planes[{k}] is {type(plane).__name__}, expected Instances")
    if plane.image_shape != image_shape:
        raise ValueError(
            f"planes[{k}] has image_shape {plane.image_shape}, but the stack's planes are "
            f"{image_shape}"
        )
    if OBJECT_ID not in plane.extra:
        raise ValueError(
            f"planes[{k}] has no extra[{OBJECT_ID!r}] column; link the planes "
            "(labelassist.stacks.link_planes) or give each instance its object id"
        )
    ids = plane.extra[OBJECT_ID]
    if not len(ids):
        ids = ids.astype(np.int64)
    if ids.dtype.kind not in "ui" or (len(ids) and ids.min() < 1):
        raise ValueError(
            f"planes[{k}].extra[{OBJECT_ID!r}] must hold integer ids >= 1, got {ids[:5]!r}"
        )
    if len(np.unique(ids)) != len(ids):
        raise ValueError(
            f"planes[{k}] has an object id twice; an object has one (Multi)Polygon per plane"
        )
    if plane.extra[OBJECT_ID].dtype != np.int64:
        plane = plane.replace(extra={**plane.extra, OBJECT_ID: ids.astype(np.int64)})
    return plane
