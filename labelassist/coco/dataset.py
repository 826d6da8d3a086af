"""The `Dataset` type: images with their instances and class names, as a COCO file holds.

A `Dataset` is validated when it is made (image records, ids, shapes and labels against
the categories), written with `Dataset.to_coco` (`labelassist.coco.write_coco`) and read
with `labelassist.coco.read_coco`; `Dataset.from_label_images` builds one from label
images (Cellpose, StarDist, ...).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..checks import check_classes
from ..geometry import masks_to_polygons
from ..instances import Instances, check_keypoint_names, check_skeleton
from ..io import read_image
from ._rules import _check_item_instances, _check_record, _escapes_root, _is_int
from .write import write_coco

__all__ = ["Dataset"]


def _read_label_image(source: Any, where: str) -> np.ndarray:
    if isinstance(source, (str, os.PathLike)):
        source = read_image(source)
    arr = np.asarray(source)
    if arr.ndim != 2:
        raise ValueError(f"{where} must be an (H, W) label image, got shape {arr.shape}")
    if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(
            f"{where} must hold integer ids (0 = background), got dtype {arr.dtype}; "
            "convert with labels.astype(np.int32) if the values are whole numbers"
        )
    return arr


class Dataset:
    """Images with their instances and the class names: what a COCO file holds.

    Parameters
    ----------
    categories : sequence of str
        Class names (unique, non-empty); `Instances.labels` index into this list.
    images : sequence of dict
        Image records with ``id`` (int, unique), ``file_name`` (str, relative to
        ``image_root``), ``height`` and ``width`` (positive ints); any other keys are kept
        as they are. Records are copied.
    instances : mapping of int to Instances, optional
        Image id -> its instances, with ``image_shape == (height, width)`` of the record.
        An image without an entry has no annotation yet; it is written without
        annotations, so `read_coco` gives it an empty `Instances` (a COCO file is a
        complete annotation of its images).
    image_root : str or os.PathLike, optional
        The folder ``file_name`` is relative to (see `image_path`). `to_coco` refuses
        absolute file names and names with ``..``, which `read_coco` would refuse.
    keypoints : sequence of str, optional
        Keypoint (landmark) names shared by all categories; every non-empty `Instances`
        then carries (N, K, 3) ``keypoints`` in this order (an empty one without
        keypoints gets an empty (0, K, 3) array). None (default): no keypoints.
    skeleton : sequence of (int, int), optional
        Edges between keypoints, 0-based indices into ``keypoints`` (COCO files store
        them 1-based; `read_coco` and `to_coco` convert).

    Attributes
    ----------
    categories : list of str
    images : list of dict
    instances : dict of int to Instances
    image_root : Path or None
    keypoints : list of str or None
    skeleton : list of (int, int)

    Examples
    --------
    >>> import shapely
    >>> inst = Instances([shapely.box(0, 0, 2, 2)], [1], [0.8], (4, 6))
    >>> ds = Dataset(["cell", "debris"], [{"id": 1, "file_name": "a.png", "height": 4,
    ...                                    "width": 6}], {1: inst})
    >>> len(ds), ds.categories, ds.instances[1].labels.tolist()
    (1, ['cell', 'debris'], [1])
    """

    def __init__(
        self,
        categories: Sequence[str],
        images: Sequence[Mapping[str, Any]],
        instances: Mapping[int, Instances] | None = None,
        *,
        image_root: str | os.PathLike | None = None,
        keypoints: Sequence[str] | None = None,
        skeleton: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        self.categories = check_classes(categories, "categories", allow_empty=True)
        if keypoints is None and skeleton:
            raise ValueError("skeleton needs keypoints=[...names] to index into")
        self.keypoints = None if keypoints is None else check_keypoint_names(keypoints)
        self.skeleton = (
            [] if self.keypoints is None else check_skeleton(skeleton, len(self.keypoints))
        )
        n_keypoints = None if self.keypoints is None else len(self.keypoints)
        if isinstance(images, Mapping) or not isinstance(images, Iterable):
            raise TypeError("images must be a list of image records (dicts)")
        self.images = [_check_record(r, f"images[{k}]") for k, r in enumerate(images)]
        ids = Counter(r["id"] for r in self.images)
        dupes = sorted(i for i, c in ids.items() if c > 1)
        if dupes:
            raise ValueError(f"image ids must be unique, got duplicates {dupes}")
        by_id = {r["id"]: r for r in self.images}
        if instances is None:
            instances = {}
        if not isinstance(instances, Mapping):
            raise TypeError(
                f"instances must be a dict of image id -> Instances, got {type(instances).__name__}"
            )
        self.instances = {}
        for key, inst in instances.items():
            if not _is_int(key) or int(key) not in by_id:
                raise ValueError(f"instances has key {key!r}, which is not an image id")
            record = by_id[int(key)]
            checked = _check_item_instances(
                inst, record, len(self.categories), f"instances[{key!r}]", n_keypoints
            )
            if checked is None:
                raise TypeError(f"instances[{key!r}] is None; leave the image out instead")
            self.instances[int(key)] = checked
        self.image_root = Path(image_root) if image_root is not None else None
        self._by_id = by_id

    # -- conveniences ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        n = sum(len(v) for v in self.instances.values())
        points = "" if self.keypoints is None else f", keypoints={self.keypoints}"
        return (
            f"Dataset(images={len(self.images)}, annotated={len(self.instances)}, "
            f"instances={n}, categories={self.categories}{points})"
        )

    def __eq__(self, other: object) -> bool:
        """Same categories, keypoints, image records and instances (``image_root`` is not
        compared)."""
        if not isinstance(other, Dataset):
            return NotImplemented
        return (
            self.categories == other.categories
            and self.keypoints == other.keypoints
            and self.skeleton == other.skeleton
            and self.images == other.images
            and self.instances.keys() == other.instances.keys()
            and all(v == other.instances[k] for k, v in self.instances.items())
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def image_ids(self) -> list[int]:
        """Image ids in record order."""
        return [r["id"] for r in self.images]

    def image(self, image_id: int) -> dict:
        """The record of ``image_id`` (``KeyError`` naming the id when unknown)."""
        try:
            return self._by_id[image_id]
        except (KeyError, TypeError):
            raise KeyError(f"no image with id {image_id!r} in this dataset") from None

    def items(self) -> Iterator[tuple[dict, Instances | None]]:
        """``(record, Instances or None)`` per image, in record order."""
        for record in self.images:
            yield record, self.instances.get(record["id"])

    def image_path(self, image_id: int) -> Path:
        """Path of the image file: ``image_root / file_name``.

        Raises ``ValueError`` when ``image_root`` is set and ``file_name`` is absolute or
        climbs out of it with ``..``. Without ``image_root`` the file name is returned as
        a path.

        Examples
        --------
        >>> ds = Dataset(["cell"], [{"id": 1, "file_name": "img/a.png", "height": 2,
        ...                          "width": 2}], image_root="/data")
        >>> ds.image_path(1).as_posix()
        '/data/img/a.png'
        """
        name = self.image(image_id)["file_name"]
        if self.image_root is None:
            return Path(name)
        if _escapes_root(name):
            raise ValueError(
                f"image {image_id}: file_name {name!r} is absolute or leaves image_root "
                f"{str(self.image_root)!r}; use a path relative to image_root"
            )
        return self.image_root / name

    def subset(self, image_ids: Iterable[int]) -> Dataset:
        """A new dataset with the images ``image_ids`` (in that order) and their instances.

        Examples
        --------
        >>> ds = Dataset(["cell"], [{"id": i, "file_name": f"{i}.png", "height": 2,
        ...                          "width": 2} for i in (1, 2, 3)])
        >>> ds.subset([3, 1]).image_ids
        [3, 1]
        """
        ids = list(image_ids)
        unknown = [i for i in ids if not _is_int(i) or i not in self._by_id]
        if unknown:
            raise ValueError(f"image_ids holds unknown image ids {unknown[:10]}")
        return Dataset(
            self.categories,
            [self._by_id[i] for i in ids],
            {i: self.instances[i] for i in ids if i in self.instances},
            image_root=self.image_root,
            keypoints=self.keypoints,
            skeleton=self.skeleton,
        )

    def to_coco(
        self,
        path: str | os.PathLike,
        *,
        segmentation: str = "polygon",
        info: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write the dataset as a COCO file (atomically); see `write_coco`.

        Examples
        --------
        >>> import tempfile, pathlib, shapely
        >>> donut = shapely.box(0, 0, 6, 6).difference(shapely.box(2, 2, 4, 4))
        >>> inst = Instances([donut, shapely.box(7, 0, 8, 2)], [0, 0], [1.0, 0.5], (8, 8))
        >>> ds = Dataset(["cell"], [{"id": 1, "file_name": "a.png", "height": 8, "width": 8}],
        ...              {1: inst})
        >>> out = ds.to_coco(pathlib.Path(tempfile.mkdtemp()) / "a.json")
        >>> from labelassist.coco import read_coco
        >>> read_coco(out) == ds  # the donut went through RLE, holes kept
        True
        """
        return write_coco(
            path,
            self.categories,
            self.items(),
            segmentation=segmentation,
            info=info,
            keypoints=self.keypoints,
            skeleton=self.skeleton,
        )

    @classmethod
    def from_label_images(
        cls,
        label_images: Sequence[np.ndarray | str | os.PathLike],
        *,
        file_names: Sequence[str] | None = None,
        categories: Sequence[str] = ("object",),
        label: int = 0,
        image_root: str | os.PathLike | None = None,
        tolerance: float = 0.0,
    ) -> Dataset:
        """A dataset from label images (Cellpose, StarDist, ...): one instance per id.

        Parameters
        ----------
        label_images : sequence of ndarray or path
            (H, W) integer images (any int dtype, 0 = background, gaps in the ids allowed)
            or paths to TIFF/PNG files holding them.
        file_names : sequence of str, optional
            The ``file_name`` of each image (the intensity image the labels belong to,
            relative to ``image_root``). Default: the label file's name for paths,
            ``image_0001.png``, ... for arrays.
        categories : sequence of str, optional
            Class names.
        label : int, optional
            The class index every instance gets.
        image_root : str or os.PathLike, optional
            Stored as `Dataset.image_root`.
        tolerance : float, optional
            Polygon simplification in pixels; 0 (default) keeps the exact pixel outlines.

        Returns
        -------
        Dataset
            Image ids ``1..N``; instances in ascending order of their ids, score 1.0.

        Examples
        --------
        >>> import numpy as np
        >>> labels = np.zeros((8, 8), dtype=np.uint16)
        >>> labels[1:3, 1:4] = 7
        >>> labels[5:8, 5:8] = 300
        >>> ds = Dataset.from_label_images([labels], categories=["nucleus"])
        >>> ds.instances[1].areas.tolist()
        [6.0, 9.0]
        """
        if isinstance(label_images, (str, os.PathLike)) or (
            isinstance(label_images, np.ndarray) and label_images.ndim == 2
        ):
            raise TypeError(
                "label_images must be a sequence of label images or paths; for one image "
                "wrap it in a list: [labels]"
            )
        sources = list(label_images)
        names = check_classes(categories, "categories", allow_empty=True)
        if not _is_int(label) or not 0 <= label < len(names):
            raise ValueError(f"label must be a class index in [0, {len(names)}), got {label!r}")
        if file_names is None:
            file_names = [
                Path(s).name if isinstance(s, (str, os.PathLike)) else f"image_{k + 1:04d}.png"
                for k, s in enumerate(sources)
            ]
        else:
            file_names = list(file_names)
            if len(file_names) != len(sources):
                raise ValueError(
                    f"file_names has {len(file_names)} names for {len(sources)} label images"
                )
        images, instances = [], {}
        for k, (source, name) in enumerate(zip(sources, file_names, strict=True)):
            labels_image = _read_label_image(source, f"label_images[{k}]")
            polygons = [
                p for p in masks_to_polygons(labels_image, tolerance=tolerance) if not p.is_empty
            ]
            h, w = labels_image.shape
            images.append({"id": k + 1, "file_name": name, "height": h, "width": w})
            instances[k + 1] = Instances(polygons, [label] * len(polygons), None, (h, w))
        return cls(names, images, instances, image_root=image_root)
