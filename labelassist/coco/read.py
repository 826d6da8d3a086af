"""COCO instance-segmentation files: read, write (streaming, atomic) and the `Dataset` type.

All COCO rules of labelassist are stated here:

- ids start at 1 on write: category ``k`` of ``categories`` is written with id ``k + 1``
  (``category_id = label + 1``), annotation ids are ``1..M``; image ids are the records' own.
- ``area`` is the pixel count of the annotation's mask as pycocotools rasterizes it (not
  the box area); ``bbox`` is ``[x, y, width, height]`` of that mask.
- annotator output is written with ``iscrowd=0``; instances whose ``extra["iscrowd"]`` is
  true are written back as ``iscrowd=1`` RLE.
- every annotation carries a ``score`` (1.0 for human-made instances); a missing
  ``score`` reads as 1.0.
- RLE ``counts`` are written compressed, as ``str``; masks handed to pycocotools are
  Fortran-ordered ``uint8``.
- COCO polygons cannot express holes (pycocotools unions the rings of one annotation), so
  with ``segmentation="polygon"`` an instance without holes is written as one ring per
  part and an instance **with holes is written as RLE**; ``segmentation="rle"`` writes
  every instance as RLE.

Geometry is in COCO's continuous pixel coordinates ``(x, y)``: the pixel at row ``i``,
column ``j`` covers the square ``[j, j+1] x [i, i+1]``.

This module reads (`read_coco`, `coco_to_instances`) and holds `Dataset`; the writer
(`write_coco`, `instances_to_coco`) lives in the private `labelassist._coco_write`, the
constants and checks both sides use in the private `labelassist._coco_common`. Every
public name is imported from here.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from ..instances import Instances
from ._rules import (
    _BACKGROUND_NAMES,
    _POLYGON_TYPE,
    _check_categories,
    _check_item_instances,
    _check_record,
    _escapes_root,
    _geometry,
    _is_int,
    _positive_int,
)
from .write import instances_to_coco, write_coco

__all__ = [
    "CocoFormatError",
    "Dataset",
    "read_coco",
    "write_coco",
    "instances_to_coco",
    "coco_to_instances",
]


class CocoFormatError(ValueError):
    """A COCO file is broken; the message names the file, the record and the problem."""


# -- reading --------------------------------------------------------------------------------
def _rle_string_counts(counts: bytes) -> list[int] | None:
    """Run lengths of pycocotools' compressed RLE string (None when malformed).

    Decoded in Python (LEB128-like, 5 bits per character, deltas from the run two back)
    so that untrusted input is validated: pycocotools' C decoder writes as many pixels as
    the counts say, without a bounds check.
    """
    out: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x = k = 0
        more = True
        while more:
            if p >= n or k > 12:
                return None
            c = counts[p] - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def _read_rle(seg: dict, shape: tuple[int, int], where: str) -> list[int]:
    """Validate an RLE dict (compressed or not); return its run lengths."""
    h, w = shape
    if "size" not in seg or "counts" not in seg:
        raise CocoFormatError(f"{where}: RLE segmentation needs 'size' and 'counts'")
    size = seg["size"]
    if not isinstance(size, list) or [_positive_int(s) for s in size] != [h, w]:
        raise CocoFormatError(
            f"{where}: RLE size {size!r} does not match the image's [height, width] = [{h}, {w}]"
        )
    counts = seg["counts"]
    if isinstance(counts, list):  # uncompressed RLE
        if not all(_is_int(c) and c >= 0 for c in counts):
            raise CocoFormatError(f"{where}: uncompressed RLE counts must be non-negative ints")
        decoded = [int(c) for c in counts]
    else:
        if isinstance(counts, str):
            try:
                counts = counts.encode("ascii")
            except UnicodeEncodeError:
                raise CocoFormatError(f"{where}: RLE counts string is not ASCII") from None
        if not isinstance(counts, bytes):
            raise CocoFormatError(
                f"{where}: RLE counts must be a str (compressed) or a list of ints "
                f"(uncompressed), got {type(counts).__name__}"
            )
        decoded = _rle_string_counts(counts)
        if decoded is None or min(decoded, default=0) < 0:
            raise CocoFormatError(f"{where}: RLE counts string is malformed")
    if sum(decoded) != h * w:
        raise CocoFormatError(
            f"{where}: RLE counts sum to {sum(decoded)}, expected height*width = {h * w}"
        )
    return decoded


def _rle_geometry(counts: list[int], shape: tuple[int, int]) -> shapely.Geometry:
    """Exact pixel-edge geometry of validated RLE run lengths (empty Polygon: no pixels).

    Runs alternate background/foreground, starting with background, over the pixels in
    column-major (Fortran) order. Only the band of columns the object spans is expanded.
    """
    h = shape[0]
    runs = np.asarray(counts, dtype=np.int64)
    ends = np.cumsum(runs)
    starts = ends - runs
    foreground = (np.arange(len(runs)) % 2 == 1) & (runs > 0)
    if not foreground.any():
        return shapely.Polygon()
    c0 = int(starts[foreground][0]) // h
    c1 = (int(ends[foreground][-1]) - 1) // h + 1
    lo, hi = c0 * h, c1 * h
    lengths = np.clip(ends, lo, hi) - np.clip(starts, lo, hi)
    band = np.repeat(np.arange(len(runs)) % 2 == 1, lengths).reshape(c1 - c0, h).T
    rows = np.flatnonzero(band.any(axis=1))
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    return _geometry().masks_to_polygons(band[None, r0:r1], tolerance=0, offset=(c0, r0))[0]


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    parts = shapely.get_parts(geom)
    parts = parts[(shapely.get_type_id(parts) == _POLYGON_TYPE) & ~shapely.is_empty(parts)]
    if len(parts) == 0:
        return shapely.Polygon()
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(list(parts))


def _ring(values: Any, where: str) -> np.ndarray:
    if not isinstance(values, list):
        raise CocoFormatError(
            f"{where}: a polygon segmentation must be a list of rings "
            "[[x0, y0, x1, y1, ...], ...], got an element of type "
            f"{type(values).__name__}"
        )
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise CocoFormatError(f"{where}: polygon coordinates must be numbers")
    xy = np.asarray(values, dtype=np.float64)
    if not np.isfinite(xy).all():
        raise CocoFormatError(f"{where}: polygon has NaN or infinite coordinates")
    if len(xy) % 2:
        raise CocoFormatError(
            f"{where}: polygon has an odd number of coordinates ({len(xy)}); expected x, y pairs"
        )
    if len(xy) < 6:
        raise CocoFormatError(f"{where}: polygon has {len(xy) // 2} point(s), fewer than 3")
    return xy.reshape(-1, 2)


def _polygon_geometry(rings: list, where: str) -> shapely.Geometry:
    """Rings of one annotation -> their union (pycocotools semantics), made valid."""
    polys = [shapely.Polygon(_ring(r, where)) for r in rings]
    geom = polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)
    if geom.is_valid:
        return geom
    return _polygonal(shapely.union_all(shapely.make_valid(np.asarray(polys, dtype=object))))


def _segmentation_geometry(
    seg: Any, shape: tuple[int, int], where: str
) -> tuple[shapely.Geometry | None, str | None]:
    """(geometry, None) or (None, reason to skip) for one annotation's segmentation."""
    if isinstance(seg, dict):
        geom = _rle_geometry(_read_rle(seg, shape, where), shape)
        return (None, "an empty segmentation") if geom.is_empty else (geom, None)
    if not isinstance(seg, list):
        raise CocoFormatError(
            f"{where}: segmentation must be a list of polygons or an RLE dict, got "
            f"{type(seg).__name__}"
        )
    if all(isinstance(r, list) and not r for r in seg):  # [] or [[]]
        return None, "an empty segmentation"
    geom = _polygon_geometry(seg, where)
    if geom.is_empty or geom.area == 0:
        return None, "a zero-area (degenerate) polygon"
    return geom, None


def _number(value: Any, default: float) -> float | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _annotations_to_instances(
    anns: Sequence[dict],
    record: dict,
    category_index: Mapping[int, int],
    crowd_column: bool,
    src: str,
) -> tuple[Instances, Counter]:
    shape = (record["height"], record["width"])
    geoms, labels, scores, crowd = [], [], [], []
    skipped: Counter = Counter()
    for ann in anns:
        where = f"{src}: annotation {ann.get('id')!r} (image {record['id']})"
        if "segmentation" not in ann:
            raise CocoFormatError(f"{where}: missing 'segmentation' (instance masks are needed)")
        if ann.get("category_id") not in category_index:
            raise CocoFormatError(f"{where}: unknown category_id {ann.get('category_id')!r}")
        score = _number(ann.get("score"), 1.0)
        if score is None or not 0.0 <= score <= 1.0:
            raise CocoFormatError(
                f"{where}: score must be a number in [0, 1], got {ann['score']!r}"
            )
        iscrowd = ann.get("iscrowd", 0)
        if not isinstance(iscrowd, int) or iscrowd not in (0, 1):
            raise CocoFormatError(f"{where}: iscrowd must be 0 or 1, got {iscrowd!r}")
        geom, reason = _segmentation_geometry(ann["segmentation"], shape, where)
        if reason is not None:
            skipped[reason] += 1
            continue
        geoms.append(geom)
        labels.append(category_index[ann["category_id"]])
        scores.append(score)
        crowd.append(bool(iscrowd))
    extra = {"iscrowd": np.asarray(crowd, dtype=bool)} if crowd_column else None
    return Instances(geoms, labels, scores, shape, extra=extra), skipped


def _warn_read(skipped: Counter, src: str, stacklevel: int) -> None:
    for reason, count in sorted(skipped.items()):
        warnings.warn(
            f"{src}: skipped {count} annotation(s) with {reason}",
            UserWarning,
            stacklevel=stacklevel + 1,
        )


def coco_to_instances(
    annotations: Sequence[Mapping[str, Any]],
    image_record: Mapping[str, Any],
    category_index: Mapping[int, int],
) -> Instances:
    """Convert one image's COCO annotations to `Instances`.

    Parameters
    ----------
    annotations : sequence of dict
        COCO annotations of one image. Polygon rings of one annotation are unioned
        (pycocotools semantics) and repaired with ``make_valid``; RLE (compressed with str
        or bytes counts, or uncompressed with list counts) becomes the exact pixel-edge
        polygon. A missing ``score`` reads as 1.0.
    image_record : dict
        The image's record with ``id``, ``height`` and ``width``.
    category_index : mapping of int to int
        COCO ``category_id`` -> 0-based label.

    Returns
    -------
    Instances
        With an ``extra["iscrowd"]`` bool column when any annotation has ``iscrowd=1``.
        Annotations with an empty segmentation or a zero-area polygon are skipped with a
        warning.

    Raises
    ------
    CocoFormatError
        If an annotation is broken (the message names it).

    Examples
    --------
    >>> ann = {"id": 1, "category_id": 5, "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]}
    >>> inst = coco_to_instances([ann], {"id": 1, "height": 4, "width": 4}, {5: 0})
    >>> inst.areas.tolist(), inst.labels.tolist(), inst.scores.tolist()
    ([4.0], [0], [1.0])
    """
    src = "annotations"
    if not isinstance(image_record, Mapping) or "id" not in image_record:
        raise CocoFormatError(
            f"image_record must be a dict with id, height and width, got {image_record!r}"
        )
    record = dict(image_record)
    for key in ("height", "width"):
        if _positive_int(record.get(key)) is None:
            raise CocoFormatError(
                f"image {record['id']!r}: {key} must be a positive int, got {record.get(key)!r}"
            )
        record[key] = _positive_int(record[key])
    anns = list(annotations)
    for k, ann in enumerate(anns):
        if not isinstance(ann, Mapping):
            raise CocoFormatError(f"annotations[{k}] must be a dict, got {type(ann).__name__}")
    crowd = any(ann.get("iscrowd") == 1 for ann in anns)
    instances, skipped = _annotations_to_instances(anns, record, category_index, crowd, src)
    _warn_read(skipped, src, stacklevel=2)
    return instances


def _records(data: dict, key: str, src: str) -> list[dict]:
    values = data[key]
    if not isinstance(values, list):
        raise CocoFormatError(f"{src}: '{key}' must be a list, got {type(values).__name__}")
    for k, value in enumerate(values):
        if not isinstance(value, dict):
            raise CocoFormatError(
                f"{src}: {key}[{k}] must be an object, got {type(value).__name__}"
            )
    return values


def _require(record: dict, keys: Sequence[str], where: str) -> None:
    missing = [k for k in keys if k not in record]
    if missing:
        raise CocoFormatError(f"{where}: missing key(s) {missing}")


def _check_new_id(value: Any, kind: str, seen: set[int], where: str, src: str) -> None:
    """Refuse an ``id`` that is not an int or is already in ``seen``; add it to ``seen``."""
    if not _is_int(value):
        raise CocoFormatError(f"{where}: id must be an int, got {value!r}")
    if value in seen:
        raise CocoFormatError(f"{src}: duplicate {kind} id {value}")
    seen.add(value)


def _read_categories(data: dict, src: str) -> tuple[list[str], dict[int, int], set[int]]:
    """(names in id order, category id -> label, ids of background categories)."""
    by_id: dict[int, str] = {}
    for k, cat in enumerate(_records(data, "categories", src)):
        where = f"{src}: category {cat.get('id', f'categories[{k}]')!r}"
        _require(cat, ("id", "name"), where)
        if not _is_int(cat["id"]):
            raise CocoFormatError(f"{where}: id must be an int, got {cat['id']!r}")
        if not isinstance(cat["name"], str) or not cat["name"]:
            raise CocoFormatError(f"{where}: name must be a non-empty str, got {cat['name']!r}")
        if cat["id"] in by_id:
            raise CocoFormatError(f"{src}: duplicate category id {cat['id']}")
        by_id[cat["id"]] = cat["name"]
    background = {i for i, name in by_id.items() if name in _BACKGROUND_NAMES}
    ids = sorted(i for i in by_id if i not in background)
    names = [by_id[i] for i in ids]
    dupes = sorted(n for n, c in Counter(names).items() if c > 1)
    if dupes:
        raise CocoFormatError(f"{src}: duplicate category names {dupes}")
    return names, {i: label for label, i in enumerate(ids)}, background


def _read_images(data: dict, src: str) -> list[dict]:
    images = []
    seen: set[int] = set()
    for k, img in enumerate(_records(data, "images", src)):
        where = f"{src}: image {img.get('id', f'images[{k}]')!r}"
        _require(img, ("id", "file_name", "height", "width"), where)
        _check_new_id(img["id"], "image", seen, where, src)
        name = img["file_name"]
        if not isinstance(name, str) or not name:
            raise CocoFormatError(f"{where}: file_name must be a non-empty str, got {name!r}")
        if _escapes_root(name):
            raise CocoFormatError(
                f"{where}: file_name {name!r} is absolute or leaves the image folder; "
                "COCO file names are relative to the image root"
            )
        record = dict(img)
        for key in ("height", "width"):
            size = _positive_int(img[key])
            if size is None:
                raise CocoFormatError(f"{where}: {key} must be a positive int, got {img[key]!r}")
            record[key] = size
        images.append(record)
    return images


def _group_annotations(
    data: dict, image_ids: set[int], category_ids: set[int], background: set[int], src: str
) -> tuple[dict[int, list[dict]], int, bool]:
    """Annotations by image id; (groups, count pointing at background, any iscrowd=1)."""
    groups: dict[int, list[dict]] = defaultdict(list)
    seen: set[int] = set()
    n_background = 0
    crowd = False
    for k, ann in enumerate(_records(data, "annotations", src)):
        where = f"{src}: annotation {ann.get('id', f'annotations[{k}]')!r}"
        _require(ann, ("id", "image_id", "category_id", "segmentation"), where)
        _check_new_id(ann["id"], "annotation", seen, where, src)
        if not _is_int(ann["image_id"]) or ann["image_id"] not in image_ids:
            raise CocoFormatError(f"{where}: unknown image_id {ann['image_id']!r}")
        if ann["category_id"] in background:
            n_background += 1
            continue
        if not _is_int(ann["category_id"]) or ann["category_id"] not in category_ids:
            raise CocoFormatError(f"{where}: unknown category_id {ann['category_id']!r}")
        crowd = crowd or ann.get("iscrowd") == 1
        groups[ann["image_id"]].append(ann)
    return groups, n_background, crowd


def read_coco(path: str | os.PathLike, image_root: str | os.PathLike | None = None) -> Dataset:
    """Read a COCO instance-segmentation file into a `Dataset`.

    Parameters
    ----------
    path : str or os.PathLike
        The COCO ``.json`` file.
    image_root : str or os.PathLike, optional
        The folder the images' ``file_name`` are relative to; default the file's folder.

    Returns
    -------
    Dataset
        Every image gets an `Instances` (empty when it has no annotations): a COCO file
        is a complete annotation of its images. Image records keep all their keys;
        annotation keys other than those labelassist uses are not kept. Labels are
        the index of the category in the categories sorted by id (gaps and any order
        allowed); a ``_background_`` category is dropped (annotations pointing at it are
        skipped with a warning). When the file has ``iscrowd=1`` annotations, every
        `Instances` has an ``extra["iscrowd"]`` bool column.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    CocoFormatError
        If the file is not a valid COCO file; the message names the file, the record and
        the problem.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ann.json"
    >>> _ = path.write_text(json.dumps({
    ...     "images": [{"id": 3, "file_name": "a.png", "height": 4, "width": 4}],
    ...     "categories": [{"id": 9, "name": "cell"}],
    ...     "annotations": [{"id": 1, "image_id": 3, "category_id": 9,
    ...                      "segmentation": {"size": [4, 4], "counts": [5, 2, 2, 2, 5]}}]}))
    >>> ds = read_coco(path)
    >>> ds.categories, ds.instances[3].polygons[0].bounds
    (['cell'], (1.0, 1.0, 3.0, 3.0))
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"COCO file not found: {path}")
    src = str(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CocoFormatError(f"{src}: not a JSON file ({exc})") from None
    if isinstance(data, list):
        raise CocoFormatError(
            f"{src}: holds a JSON list (a COCO results file?); expected an object with "
            "'images', 'annotations' and 'categories'"
        )
    if not isinstance(data, dict):
        raise CocoFormatError(f"{src}: expected a JSON object, got {type(data).__name__}")
    _require(data, ("images", "annotations", "categories"), src)
    names, category_index, background = _read_categories(data, src)
    images = _read_images(data, src)
    groups, n_background, crowd = _group_annotations(
        data, {r["id"] for r in images}, set(category_index), background, src
    )
    skipped: Counter = Counter()
    instances = {}
    for record in images:
        inst, counts = _annotations_to_instances(
            groups.get(record["id"], []), record, category_index, crowd, src
        )
        instances[record["id"]] = inst
        skipped += counts
    if n_background:
        skipped["a background category (dropped)"] = n_background
    _warn_read(skipped, src, stacklevel=2)
    root = Path(image_root) if image_root is not None else path.parent
    return Dataset(names, images, instances, image_root=root)


# -- Dataset ----------------------------------------------------------------------------------
def _read_label_image(source: Any, where: str) -> np.ndarray:
    if isinstance(source, (str, os.PathLike)):
        from ..io.image import read_image

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

    Attributes
    ----------
    categories : list of str
    images : list of dict
    instances : dict of int to Instances
    image_root : Path or None

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
    ) -> None:
        self.categories = _check_categories(categories)
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
                inst, record, len(self.categories), f"instances[{key!r}]"
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
        return (
            f"Dataset(images={len(self.images)}, annotated={len(self.instances)}, "
            f"instances={n}, categories={self.categories})"
        )

    def __eq__(self, other: object) -> bool:
        """Same categories, image records and instances (``image_root`` is not compared)."""
        if not isinstance(other, Dataset):
            return NotImplemented
        return (
            self.categories == other.categories
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
        >>> read_coco(out) == ds  # the donut went through RLE, holes kept
        True
        """
        return write_coco(path, self.categories, self.items(), segmentation=segmentation, info=info)

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
        names = _check_categories(categories)
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
                p
                for p in _geometry().masks_to_polygons(labels_image, tolerance=tolerance)
                if not p.is_empty
            ]
            h, w = labels_image.shape
            images.append({"id": k + 1, "file_name": name, "height": h, "width": w})
            instances[k + 1] = Instances(polygons, [label] * len(polygons), None, (h, w))
        return cls(names, images, instances, image_root=image_root)
