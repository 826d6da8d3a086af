"""The `Instances` type: one image's objects as parallel arrays.

Geometry is in COCO's continuous pixel coordinates ``(x, y)``: the pixel at row ``i``,
column ``j`` covers the square ``[j, j+1] x [i, i+1]``. Optional keypoints (landmarks) use
the same coordinates, with COCO's visibility flags; their names and skeleton are checked
by `check_keypoint_names` and `check_skeleton`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import shapely

from .checks import check_int, check_shape

# geometry is the layer below (it never imports this module): a plain top-level import
from .geometry import polygons_to_masks

__all__ = ["Instances", "check_keypoint_names", "check_skeleton"]

_POLYGON = 3
_MULTIPOLYGON = 6


def _as_geometry_array(polygons: Any) -> np.ndarray:
    if isinstance(polygons, shapely.Geometry):
        raise TypeError(
            "polygons must be a sequence of Polygon/MultiPolygon, got a single "
            f"{polygons.geom_type}; wrap it in a list: [polygon]"
        )
    arr = np.empty(len(polygons), dtype=object)
    arr[:] = list(polygons)
    if arr.size:
        is_geom = np.array([isinstance(g, shapely.Geometry) for g in arr])
        if not is_geom.all():
            i = int(np.flatnonzero(~is_geom)[0])
            raise TypeError(
                f"polygons[{i}] is {type(arr[i]).__name__}, expected a shapely "
                "Polygon or MultiPolygon"
            )
        types = shapely.get_type_id(arr)
        bad = (types != _POLYGON) & (types != _MULTIPOLYGON)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise TypeError(
                f"polygons[{i}] is a {arr[i].geom_type}, expected Polygon or MultiPolygon"
            )
    return arr


def _column(name: str, values: Any, n: int, dtype: Any | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=dtype)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(
            f"{name} must have shape ({n},) to match {n} polygons, got shape {arr.shape}"
        )
    return arr


def check_keypoint_names(names: Any, name: str = "keypoints") -> list[str]:
    """Keypoint names: a non-empty sequence of unique, non-empty str (returned as a list).

    Examples
    --------
    >>> check_keypoint_names(("head", "tail"))
    ['head', 'tail']
    >>> check_keypoint_names(["head", "head"])
    Traceback (most recent call last):
    ...
    ValueError: keypoints must be unique names, got 'head' twice
    """
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise TypeError(
            f"{name} must be a list of keypoint names like ['head', 'tail'], got {names!r}"
        )
    out = list(names)
    if not out:
        raise ValueError(f"{name} must name at least one keypoint, got an empty list")
    seen: set[str] = set()
    for k, value in enumerate(out):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name}[{k}] must be a non-empty str, got {value!r}")
        if value in seen:
            raise ValueError(f"{name} must be unique names, got {value!r} twice")
        seen.add(value)
    return out


def check_skeleton(
    skeleton: Any, n_keypoints: int, name: str = "skeleton"
) -> list[tuple[int, int]]:
    """A skeleton: pairs of 0-based keypoint indices ``(a, b)``, ``a != b``, no repeats.

    ``None`` is no skeleton (``[]``). COCO files store it 1-based; `labelassist.coco`
    converts.

    Examples
    --------
    >>> check_skeleton([(0, 1)], 2)
    [(0, 1)]
    >>> check_skeleton([(0, 2)], 2)
    Traceback (most recent call last):
    ...
    ValueError: skeleton[0] = (0, 2) must join two different keypoint indices in [0, 2) (0-based)
    """
    if skeleton is None:
        return []
    if isinstance(skeleton, (str, bytes)) or not isinstance(skeleton, Iterable):
        raise TypeError(f"{name} must be a list of (a, b) index pairs, got {skeleton!r}")
    out: list[tuple[int, int]] = []
    for k, pair in enumerate(skeleton):
        ok = (
            isinstance(pair, (tuple, list, np.ndarray))
            and len(pair) == 2
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair)
        )
        if not ok:
            raise ValueError(f"{name}[{k}] must be a pair of int indices (a, b), got {pair!r}")
        a, b = int(pair[0]), int(pair[1])
        if a == b or not (0 <= a < n_keypoints and 0 <= b < n_keypoints):
            raise ValueError(
                f"{name}[{k}] = {(a, b)} must join two different keypoint indices in "
                f"[0, {n_keypoints}) (0-based)"
            )
        if (a, b) in out:
            raise ValueError(f"{name} lists the edge {(a, b)} twice")
        out.append((a, b))
    return out


def _as_keypoints(values: Any, n: int) -> np.ndarray | None:
    """``values`` as a float64 (N, K, 3) keypoint array, validated; None stays None."""
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[0] != n or arr.shape[2] != 3 or arr.shape[1] < 1:
        raise ValueError(
            f"keypoints must have shape ({n}, K, 3) (x, y, visibility per keypoint, K >= 1) "
            f"to match {n} polygons, got shape {arr.shape}"
        )
    if not np.isfinite(arr[..., :2]).all():
        raise ValueError("keypoints x, y must be finite; mark a missing keypoint with v=0")
    if not np.isin(arr[..., 2], (0.0, 1.0, 2.0)).all():
        bad = arr[..., 2][~np.isin(arr[..., 2], (0.0, 1.0, 2.0))][0]
        raise ValueError(
            f"keypoint visibility must be 0 (not labelled), 1 (labelled, hidden) or 2 "
            f"(visible), as COCO defines it, got {bad!r}"
        )
    return arr


class Instances:
    """Instances (objects) of one image, stored as parallel arrays.

    Parameters
    ----------
    polygons : sequence of shapely.Polygon or shapely.MultiPolygon, length N
        One geometry per instance in COCO pixel coordinates ``(x, y)``. Holes and
        several parts are allowed.
    labels : array-like of int, shape (N,), optional
        0-based index into the class list. Defaults to zeros.
    scores : array-like of float, shape (N,), optional
        Confidence in ``[0, 1]``; 1.0 for human-made instances. Defaults to ones.
    image_shape : tuple of int
        ``(height, width)`` of the image the instances belong to.
    extra : mapping of str to array-like of length N, optional
        Additional per-instance columns (for example provenance). They stay aligned
        with the geometry under indexing and concatenation.
    keypoints : array-like of shape (N, K, 3), optional
        Landmarks of each instance: ``x, y`` in COCO pixel coordinates (the centre of
        pixel ``(i, j)`` is ``(j + 0.5, i + 0.5)``) and the visibility ``v`` as COCO
        defines it (0: not labelled, then x = y = 0; 1: labelled but not visible; 2:
        labelled and visible). Stored as float64; None (default) when there are none.
        The keypoint names live with the dataset or model (``Dataset.keypoints``,
        ``model.meta["keypoints"]``).

    Examples
    --------
    >>> import shapely
    >>> import labelassist as la
    >>> inst = la.Instances([shapely.box(0, 0, 4, 3)], [0], [0.9], (10, 10))
    >>> len(inst), inst.areas.tolist(), inst.boxes.tolist()
    (1, [12.0], [[0.0, 0.0, 4.0, 3.0]])
    >>> inst[inst.scores > 0.95]
    Instances(n=0, image_shape=(10, 10), extra=[])
    >>> worm = la.Instances([shapely.box(2, 4, 20, 8)], [0], [1.0], (32, 32),
    ...                     keypoints=[[[2.5, 6.5, 2], [19.5, 5.5, 2]]])
    >>> worm.keypoints.shape, worm
    ((1, 2, 3), Instances(n=1, image_shape=(32, 32), extra=[], keypoints=2))
    """

    __slots__ = ("polygons", "labels", "scores", "image_shape", "extra", "keypoints")

    polygons: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    image_shape: tuple[int, int]
    extra: dict[str, np.ndarray]
    keypoints: np.ndarray | None

    def __init__(
        self,
        polygons: Sequence[shapely.Polygon | shapely.MultiPolygon] | np.ndarray,
        labels: Iterable[int] | np.ndarray | None,
        scores: Iterable[float] | np.ndarray | None,
        image_shape: tuple[int, int],
        *,
        extra: Mapping[str, Any] | None = None,
        keypoints: Any = None,
    ) -> None:
        shape = check_shape(image_shape, "image_shape", minimum=1)
        geoms = _as_geometry_array(polygons)
        n = len(geoms)
        if labels is None:
            labels = np.zeros(n, dtype=np.int64)
        labels_arr = np.asarray(labels)
        if labels_arr.size and not np.issubdtype(labels_arr.dtype, np.integer):
            if not np.all(np.mod(labels_arr, 1) == 0):
                raise ValueError(f"labels must be integers, got dtype {labels_arr.dtype}")
        labels_arr = _column("labels", labels_arr, n, np.int64)
        if (labels_arr < 0).any():
            raise ValueError(
                "labels must be 0-based class indices (>= 0), got "
                f"{int(labels_arr.min())}; background is not a class here"
            )
        if scores is None:
            scores = np.ones(n, dtype=np.float32)
        scores_arr = _column("scores", scores, n, np.float32)
        if scores_arr.size and not (
            np.isfinite(scores_arr).all() and (scores_arr >= 0).all() and (scores_arr <= 1).all()
        ):
            raise ValueError("scores must be finite and within [0, 1]")
        columns = {}
        for key, values in (extra or {}).items():
            if key in self.__slots__:
                raise ValueError(f"extra column name {key!r} is reserved; choose another name")
            columns[str(key)] = _column(f"extra[{key!r}]", values, n)
        points = _as_keypoints(keypoints, n)
        object.__setattr__(self, "polygons", geoms)
        object.__setattr__(self, "labels", labels_arr)
        object.__setattr__(self, "scores", scores_arr)
        object.__setattr__(self, "image_shape", shape)
        object.__setattr__(self, "extra", columns)
        object.__setattr__(self, "keypoints", points)

    # -- constructors ---------------------------------------------------------------
    @classmethod
    def empty(
        cls,
        image_shape: tuple[int, int],
        *,
        extra_keys: Iterable[str] = (),
        keypoints: int | None = None,
    ) -> Instances:
        """No instances for an image of ``image_shape``.

        ``keypoints=K`` gives an empty (0, K, 3) keypoint array (an image without objects
        of a dataset with K keypoint names); None (default) gives no keypoints.

        Examples
        --------
        >>> len(Instances.empty((32, 32)))
        0
        >>> Instances.empty((32, 32), keypoints=2).keypoints.shape
        (0, 2, 3)
        """
        points = None
        if keypoints is not None:
            k = check_int(keypoints, "keypoints", minimum=1)
            points = np.zeros((0, k, 3))
        return cls([], None, None, image_shape, extra={k: [] for k in extra_keys}, keypoints=points)

    @classmethod
    def _trusted(
        cls,
        polygons: np.ndarray,
        labels: np.ndarray,
        scores: np.ndarray,
        image_shape: tuple[int, int],
        extra: dict[str, np.ndarray],
        keypoints: np.ndarray | None = None,
    ) -> Instances:
        """Instances from arrays that already are what `__init__` makes (private: no checks).

        For data that went through `Instances` before (a project's stored rows):
        ``polygons`` an (N,) object array of Polygon/MultiPolygon, ``labels`` (N,) int64
        >= 0, ``scores`` (N,) float32 in [0, 1], ``image_shape`` a tuple of two positive
        ints, ``extra`` a dict of str to (N,) arrays, ``keypoints`` None or (N, K, 3)
        float64. The arrays are kept, not copied.
        """
        self = object.__new__(cls)
        object.__setattr__(self, "polygons", polygons)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "image_shape", image_shape)
        object.__setattr__(self, "extra", extra)
        object.__setattr__(self, "keypoints", keypoints)
        return self

    @classmethod
    def concat(cls, items: Sequence[Instances]) -> Instances:
        """Concatenate instances of the same image (same ``image_shape`` and extra columns).

        Keypoints: all items with keypoints must have the same K; an item without
        keypoints is accepted only when it is empty (no objects).

        Examples
        --------
        >>> import shapely
        >>> a = Instances([shapely.box(0, 0, 1, 1)], [0], [1.0], (4, 4))
        >>> len(Instances.concat([a, a]))
        2
        """
        items = list(items)
        if not items:
            raise ValueError("concat needs at least one Instances to know the image_shape")
        shape = items[0].image_shape
        keys = set(items[0].extra)
        for k, it in enumerate(items):
            if not isinstance(it, Instances):
                raise TypeError(f"items[{k}] is {type(it).__name__}, expected Instances")
            if it.image_shape != shape:
                raise ValueError(
                    f"cannot concatenate instances of different images: items[0] has "
                    f"image_shape {shape}, items[{k}] has {it.image_shape}"
                )
            if set(it.extra) != keys:
                raise ValueError(
                    f"extra columns differ: items[0] has {sorted(keys)}, items[{k}] has "
                    f"{sorted(it.extra)}"
                )
        return cls(
            np.concatenate([it.polygons for it in items]),
            np.concatenate([it.labels for it in items]),
            np.concatenate([it.scores for it in items]),
            shape,
            extra={key: np.concatenate([it.extra[key] for it in items]) for key in keys},
            keypoints=_concat_keypoints(items),
        )

    def replace(self, **changes: Any) -> Instances:
        """A copy with some fields replaced (``polygons``, ``labels``, ``scores``,
        ``image_shape``, ``extra``, ``keypoints``).

        Examples
        --------
        >>> import shapely
        >>> a = Instances([shapely.box(0, 0, 1, 1)], [0], [0.5], (4, 4))
        >>> a.replace(labels=[1]).labels.tolist()
        [1]
        """
        unknown = set(changes) - set(self.__slots__)
        if unknown:
            raise TypeError(f"replace() got unknown fields {sorted(unknown)}")
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return Instances(
            fields["polygons"],
            fields["labels"],
            fields["scores"],
            fields["image_shape"],
            extra=fields["extra"],
            keypoints=fields["keypoints"],
        )

    # -- container protocol ------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.polygons)

    def __getitem__(self, key: Any) -> Instances:
        if isinstance(key, (int, np.integer)):
            n = len(self)
            if not -n <= key < n:
                raise IndexError(f"index {key} is out of range for {n} instances")
            key = [int(key)]
        elif not isinstance(key, slice):
            key = np.asarray(key)
            if key.dtype == bool:
                if key.shape != (len(self),):
                    raise IndexError(
                        f"boolean index must have shape ({len(self)},), got {key.shape}"
                    )
            elif key.size == 0:
                key = key.astype(np.intp)
            elif not np.issubdtype(key.dtype, np.integer):
                raise IndexError(
                    f"index with an int, slice, bool mask or int array, got dtype {key.dtype}"
                )
        return Instances(
            self.polygons[key],
            self.labels[key],
            self.scores[key],
            self.image_shape,
            extra={k: v[key] for k, v in self.extra.items()},
            keypoints=None if self.keypoints is None else self.keypoints[key],
        )

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Instances is immutable; use .replace(...) for a modified copy")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Instances):
            return NotImplemented
        if (
            self.image_shape != other.image_shape
            or len(self) != len(other)
            or set(self.extra) != set(other.extra)
        ):
            return False
        if not (
            np.array_equal(self.labels, other.labels) and np.array_equal(self.scores, other.scores)
        ):
            return False
        if not all(np.array_equal(v, other.extra[k]) for k, v in self.extra.items()):
            return False
        mine, theirs = self.keypoints, other.keypoints
        if mine is None or theirs is None:
            if (mine is None) != (theirs is None):
                return False
        elif not np.array_equal(mine, theirs):
            return False
        if len(self) == 0:
            return True
        a = shapely.normalize(self.polygons)
        b = shapely.normalize(other.polygons)
        return bool(np.all(shapely.equals_exact(a, b, tolerance=1e-9)))

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple:
        # immutable slots: rebuild through __init__ (pickle, multiprocessing, dask)
        return (
            _rebuild,
            (
                list(self.polygons),
                self.labels,
                self.scores,
                self.image_shape,
                self.extra,
                self.keypoints,
            ),
        )

    def __repr__(self) -> str:
        points = "" if self.keypoints is None else f", keypoints={self.keypoints.shape[1]}"
        return (
            f"Instances(n={len(self)}, image_shape={self.image_shape}, "
            f"extra={sorted(self.extra)}{points})"
        )

    # -- derived --------------------------------------------------------------------------
    @property
    def boxes(self) -> np.ndarray:
        """Bounding boxes, ndarray of shape (N, 4), float64, ``(x0, y0, x1, y1)``."""
        if len(self) == 0:
            return np.zeros((0, 4), dtype=np.float64)
        return shapely.bounds(self.polygons)

    @property
    def areas(self) -> np.ndarray:
        """Polygon areas in pixels², ndarray of shape (N,), float64."""
        return shapely.area(self.polygons).astype(np.float64, copy=False)

    def masks(self) -> np.ndarray:
        """Rasterize to masks, ndarray of shape (N, H, W), bool (see `polygons_to_masks`)."""
        return polygons_to_masks(self.polygons, self.image_shape)


def _concat_keypoints(items: Sequence[Instances]) -> np.ndarray | None:
    """The keypoints of concatenated ``items`` (see `Instances.concat`), or None."""
    ks = {it.keypoints.shape[1] for it in items if it.keypoints is not None}
    if not ks:
        return None
    if len(ks) > 1:
        raise ValueError(
            f"cannot concatenate instances with different numbers of keypoints {sorted(ks)}"
        )
    k = ks.pop()
    for j, it in enumerate(items):
        if it.keypoints is None and len(it):
            raise ValueError(
                f"items[{j}] has no keypoints but others have {k}; give it keypoints (v=0 "
                "for unlabelled ones) or drop the keypoints of the others"
            )
    return np.concatenate(
        [it.keypoints if it.keypoints is not None else np.zeros((0, k, 3)) for it in items]
    )


def _rebuild(polygons, labels, scores, image_shape, extra, keypoints=None) -> Instances:
    return Instances(polygons, labels, scores, image_shape, extra=extra, keypoints=keypoints)
