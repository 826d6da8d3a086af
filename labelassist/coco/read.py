"""Reading COCO files: `read_coco` (a validated file to a `Dataset`) and `coco_to_instances`.

A COCO file is untrusted input: every problem is a `CocoFormatError` whose message names
the file, the record and the fix, never an unrelated exception, a hang or a huge
allocation. The file must be a regular file of UTF-8 JSON (a byte-order mark is
accepted); JSON nested too deeply or holding numbers too long to convert is refused.
RLE masks are expanded only inside the box their runs cover, up to `MAX_MASK_PIXELS`
pixels; polygons that reach outside their image are clipped to it with a warning.
"""

from __future__ import annotations

import json
import os
import stat
import warnings
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..checks import BACKGROUND_NAMES, check_classes, check_int
from ..instances import Instances
from ._decode import segmentation_geometry
from ._keypoints import (
    _annotation_keypoints,
    _box_outline,
    _category_keypoints,
    _Keypoints,
    _no_mask,
)
from ._rules import _MAX_SIDE, _brief, _escapes_root, _is_id, _is_int, _positive_int
from .dataset import Dataset
from .errors import CocoFormatError

__all__ = ["MAX_MASK_PIXELS", "coco_to_instances", "read_coco"]

#: The largest box (in pixels) an RLE mask may cover when it is read: an 8192 x 8192 box,
#: about 0.6 GB at the peak of its conversion to a polygon. A file with a larger RLE mask
#: is refused with `CocoFormatError` before anything is allocated (a 259-byte annotation
#: can claim 10**10 pixels). Raise it, as ``labelassist.coco.read.MAX_MASK_PIXELS = ...``,
#: to read such masks; polygons are never expanded to pixels and have no limit.
MAX_MASK_PIXELS = 1 << 26


_CLIPPED = "clipped {} polygon annotation(s) to their image (the parts outside it dropped)"
_BOX_OUTLINE = "used the bbox as the outline of {} keypoint annotation(s) without a segmentation"
_DROPPED_KEYPOINTS = "dropped the keypoints of {} annotation(s) whose category names no keypoints"


def _annotations_to_instances(
    anns: Sequence[Mapping[str, Any]],
    record: Mapping[str, Any],
    category_index: Mapping[int, int],
    crowd_column: bool,
    src: str,
    keypoints: _Keypoints | None = None,
) -> tuple[Instances, Counter[str]]:
    """One image's annotations to `Instances`; the Counter holds the reasons of what was
    skipped or changed (for `_warn_read`). With ``keypoints`` every instance gets the
    file's keypoints (an annotation without keypoints: v=0 throughout); a keypoint
    annotation without segmentation gets its ``bbox`` as outline."""
    shape = (record["height"], record["width"])
    geoms, labels, scores, crowd, points = [], [], [], [], []
    notes: Counter[str] = Counter()
    n_points = len(keypoints.names) if keypoints is not None else 0
    for ann in anns:
        where = f"{src}: annotation {_brief(ann.get('id'))} (image {record['id']})"
        if "segmentation" not in ann and not ann.get("keypoints"):
            raise CocoFormatError(f"{where}: missing 'segmentation' (instance masks are needed)")
        category: Any = ann.get("category_id")
        if not _is_int(category) or int(category) not in category_index:
            raise CocoFormatError(f"{where}: unknown category_id {_brief(category)}")
        score = _number(ann.get("score"), 1.0)
        if score is None or not 0.0 <= score <= 1.0:
            raise CocoFormatError(
                f"{where}: score must be a number in [0, 1], got {_brief(ann['score'])}"
            )
        iscrowd = ann.get("iscrowd", 0)
        if not isinstance(iscrowd, int) or iscrowd not in (0, 1):
            raise CocoFormatError(f"{where}: iscrowd must be 0 or 1, got {_brief(iscrowd)}")
        kp = None
        if keypoints is not None:
            kp, dropped = _annotation_keypoints(
                ann, keypoints.columns.get(int(category)), n_points, where
            )
            notes[_DROPPED_KEYPOINTS] += dropped
        seg = ann.get("segmentation", [])
        geom, reason, clipped = segmentation_geometry(seg, shape, where, MAX_MASK_PIXELS)
        if reason is not None and kp is not None and (kp[:, 2] > 0).any() and _no_mask(seg):
            geom = _box_outline(ann, shape)  # a keypoint-only annotation (CVAT, Label Studio)
            if geom is not None:
                reason = None
                notes[_BOX_OUTLINE] += 1
        if clipped and reason is None:
            notes[_CLIPPED] += 1
        if reason is not None:
            notes[f"skipped {{}} annotation(s) with {reason}"] += 1
            continue
        geoms.append(geom)
        labels.append(category_index[int(category)])
        scores.append(score)
        crowd.append(bool(iscrowd))
        if kp is not None:
            points.append(kp)
    extra = {"iscrowd": np.asarray(crowd, dtype=bool)} if crowd_column else None
    array = None
    if keypoints is not None:
        array = np.asarray(points, dtype=np.float64).reshape(len(points), n_points, 3)
    notes = +notes  # drop zero counts
    return Instances(geoms, labels, scores, shape, extra=extra, keypoints=array), notes


def _number(value: Any, default: float) -> float | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:  # an int beyond float64
        return None


def _warn_read(notes: Counter[str], src: str, stacklevel: int) -> None:
    for message, count in sorted(notes.items()):
        warnings.warn(f"{src}: {message.format(count)}", UserWarning, stacklevel=stacklevel + 1)


def coco_to_instances(
    annotations: Sequence[Mapping[str, Any]],
    image_record: Mapping[str, Any],
    category_index: Mapping[int, int],
    *,
    keypoints: int | None = None,
) -> Instances:
    """Convert one image's COCO annotations to `Instances`.

    Parameters
    ----------
    annotations : sequence of dict
        COCO annotations of one image. Polygon rings of one annotation are unioned
        (pycocotools semantics), repaired with ``make_valid`` and clipped to the image;
        RLE (compressed with str or bytes counts, or uncompressed with list counts)
        becomes the exact pixel-edge polygon. A missing ``score`` reads as 1.0.
    image_record : dict
        The image's record with ``id``, ``height`` and ``width``.
    category_index : mapping of int to int
        COCO ``category_id`` -> 0-based label.
    keypoints : int, optional
        The number K of keypoints every category has (the length of its ``keypoints``
        names): the annotations' flat ``keypoints`` lists become an (N, K, 3) array (v=0
        throughout where an annotation has none). None (default): keypoints are not read.

    Returns
    -------
    Instances
        With an ``extra["iscrowd"]`` bool column when any annotation has ``iscrowd=1``.
        Annotations with an empty segmentation, a zero-area polygon or a polygon wholly
        outside the image are skipped, and polygons reaching outside the image are
        clipped to it, each with a warning.

    Raises
    ------
    CocoFormatError
        If an annotation is broken (the message names it), or an RLE mask covers a box
        of more than `MAX_MASK_PIXELS` pixels.

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
            f"image_record must be a dict with id, height and width, got {_brief(image_record)}"
        )
    record = dict(image_record)
    for key in ("height", "width"):
        size = _positive_int(record.get(key))
        if size is None:
            raise CocoFormatError(
                f"image {_brief(record['id'])}: {key} must be a positive int (at most {_MAX_SIDE}), "
                f"got {_brief(record.get(key))}"
            )
        record[key] = size
    anns = list(annotations)
    for k, ann in enumerate(anns):
        if not isinstance(ann, Mapping):
            raise CocoFormatError(f"annotations[{k}] must be a dict, got {type(ann).__name__}")
    crowd = any(ann.get("iscrowd") == 1 for ann in anns)
    layout = None
    if keypoints is not None:
        layout = _Keypoints()
        layout.names = [str(k) for k in range(check_int(keypoints, "keypoints", minimum=1))]
        layout.columns = {i: np.arange(keypoints) for i in category_index}
    instances, notes = _annotations_to_instances(anns, record, category_index, crowd, src, layout)
    _warn_read(notes, src, stacklevel=2)
    return instances


# -- the file -------------------------------------------------------------------------------------
def _load_json(path: Path, src: str) -> Any:
    """The JSON value of a regular UTF-8 file (BOM allowed); `CocoFormatError` otherwise."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"COCO file not found: {path}") from None
    if stat.S_ISDIR(mode):
        raise CocoFormatError(f"{src}: is a folder; give the COCO .json file inside it")
    if not stat.S_ISREG(mode):  # a FIFO or a device would block or never end
        raise CocoFormatError(f"{src}: is not a regular file; give a COCO .json file")
    raw = path.read_bytes()
    if not raw.strip():
        raise CocoFormatError(f"{src}: the file is empty; expected a COCO JSON object")
    try:
        text = raw.decode("utf-8-sig")  # a leading byte-order mark is dropped
    except UnicodeDecodeError as exc:
        raise CocoFormatError(
            f"{src}: not a JSON file (not UTF-8 text: byte {exc.start} is invalid)"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CocoFormatError(f"{src}: not a JSON file ({exc})") from None
    except RecursionError:
        raise CocoFormatError(f"{src}: not a COCO file (JSON nested too deeply to read)") from None
    except ValueError:  # an integer with more digits than Python converts (3.11+)
        raise CocoFormatError(
            f"{src}: not a COCO file (a JSON number has too many digits to convert)"
        ) from None


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
    if not _is_id(value):
        raise CocoFormatError(f"{where}: id must be an int (64-bit), got {_brief(value)}")
    if value in seen:
        raise CocoFormatError(f"{src}: duplicate {kind} id {value}")
    seen.add(value)


def _read_categories(
    data: dict, src: str
) -> tuple[list[str], dict[int, int], set[int], _Keypoints | None]:
    """(names in id order, category id -> label, ids of background categories, the
    keypoints of the categories or None when none names any).

    Categories named like background (`labelassist.checks.BACKGROUND_NAMES`, any case) are
    other tools' "no object" class: they are dropped, the rest must pass
    `labelassist.checks.check_classes`.
    """
    by_id: dict[int, str] = {}
    own: dict[int, tuple[list[str], list[tuple[int, int]]]] = {}
    for k, cat in enumerate(_records(data, "categories", src)):
        where = f"{src}: category {_brief(cat.get('id', f'categories[{k}]'))}"
        _require(cat, ("id", "name"), where)
        if not _is_id(cat["id"]):
            raise CocoFormatError(f"{where}: id must be an int (64-bit), got {_brief(cat['id'])}")
        if not isinstance(cat["name"], str) or not cat["name"]:
            raise CocoFormatError(
                f"{where}: name must be a non-empty str, got {_brief(cat['name'])}"
            )
        if cat["id"] in by_id:
            raise CocoFormatError(f"{src}: duplicate category id {cat['id']}")
        by_id[cat["id"]] = cat["name"]
        own[cat["id"]] = _category_keypoints(cat, where)
    background = {i for i, name in by_id.items() if name.strip().lower() in BACKGROUND_NAMES}
    ids = sorted(i for i in by_id if i not in background)
    names = [by_id[i] for i in ids]
    dupes = sorted(n for n, c in Counter(names).items() if c > 1)
    if dupes:
        raise CocoFormatError(f"{src}: duplicate category names {dupes}")
    try:
        names = check_classes(names, "categories", allow_empty=True)
    except (TypeError, ValueError) as exc:
        raise CocoFormatError(f"{src}: {exc}") from None
    layout = None
    if any(own[i][0] for i in ids):
        layout = _Keypoints()
        for i in ids:  # the union of the names, in category id order
            layout.names += [n for n in own[i][0] if n not in layout.names]
        for i in ids:
            cat_names, edges = own[i]
            cols = np.array([layout.names.index(n) for n in cat_names], dtype=np.intp)
            layout.columns[i] = cols if len(cols) else None
            for a, b in edges:
                edge = (int(cols[a]), int(cols[b]))
                if edge not in layout.skeleton:
                    layout.skeleton.append(edge)
    return names, {i: label for label, i in enumerate(ids)}, background, layout


def _read_images(data: dict, src: str) -> list[dict]:
    images = []
    seen: set[int] = set()
    for k, img in enumerate(_records(data, "images", src)):
        where = f"{src}: image {_brief(img.get('id', f'images[{k}]'))}"
        _require(img, ("id", "file_name", "height", "width"), where)
        _check_new_id(img["id"], "image", seen, where, src)
        name = img["file_name"]
        if not isinstance(name, str) or not name or "\x00" in name:
            raise CocoFormatError(
                f"{where}: file_name must be a non-empty str without NUL, got {_brief(name)}"
            )
        if _escapes_root(name):
            raise CocoFormatError(
                f"{where}: file_name {_brief(name)} is absolute or leaves the image folder; "
                "COCO file names are relative to the image root"
            )
        record = dict(img)
        for key in ("height", "width"):
            size = _positive_int(img[key])
            if size is None:
                raise CocoFormatError(
                    f"{where}: {key} must be a positive int (at most {_MAX_SIDE}), got {_brief(img[key])}"
                )
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
        where = f"{src}: annotation {_brief(ann.get('id', f'annotations[{k}]'))}"
        # a keypoint annotation may come without segmentation (its bbox is the outline)
        needed = ("id", "image_id", "category_id", "segmentation")
        _require(ann, needed[:3] if ann.get("keypoints") else needed, where)
        _check_new_id(ann["id"], "annotation", seen, where, src)
        if not _is_int(ann["image_id"]) or ann["image_id"] not in image_ids:
            raise CocoFormatError(f"{where}: unknown image_id {_brief(ann['image_id'])}")
        if _is_int(ann["category_id"]) and ann["category_id"] in background:
            n_background += 1
            continue
        if not _is_int(ann["category_id"]) or ann["category_id"] not in category_ids:
            raise CocoFormatError(f"{where}: unknown category_id {_brief(ann['category_id'])}")
        crowd = crowd or ann.get("iscrowd") == 1
        groups[ann["image_id"]].append(ann)
    return groups, n_background, crowd


def read_coco(path: str | os.PathLike, image_root: str | os.PathLike | None = None) -> Dataset:
    """Read a COCO instance-segmentation file into a `Dataset`.

    Parameters
    ----------
    path : str or os.PathLike
        The COCO ``.json`` file (UTF-8, with or without a byte-order mark).
    image_root : str or os.PathLike, optional
        The folder the images' ``file_name`` are relative to; default the file's folder.

    Returns
    -------
    Dataset
        Every image gets an `Instances` (empty when it has no annotations): a COCO file
        is a complete annotation of its images. Image records keep all their keys;
        annotation keys other than those labelassist uses are not kept. Labels are
        the index of the category in the categories sorted by id (gaps and any order
        allowed); a background category (``_background_``, ``background``, ...) is
        dropped (annotations pointing at it are skipped with a warning). When the file
        has ``iscrowd=1`` annotations, every `Instances` has an ``extra["iscrowd"]`` bool
        column. Polygons reaching outside their image are clipped to it (pycocotools
        counts only the pixels inside), with a warning; those wholly outside are skipped.
        Keypoints: when a category names ``keypoints``, the dataset's `Dataset.keypoints`
        is the union of all categories' names (in category id order; usually they all
        share one list) and `Dataset.skeleton` the union of their edges (0-based); every
        instance gets (N, K, 3) ``keypoints`` (v=0 for a keypoint its category lacks, or
        an annotation without keypoints). A keypoint annotation without segmentation
        (``[]``, as CVAT and Label Studio export skeletons) gets its ``bbox`` as outline,
        with a warning; keypoints of categories naming none are dropped with a warning.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    CocoFormatError
        If ``path`` is not a regular file holding a valid COCO file; the message names
        the file, the record and the problem. An RLE mask whose runs cover a box of more
        than `MAX_MASK_PIXELS` pixels is refused before it is expanded.

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
    src = str(path)
    data = _load_json(path, src)
    if isinstance(data, list):
        raise CocoFormatError(
            f"{src}: holds a JSON list (a COCO results file?); expected an object with "
            "'images', 'annotations' and 'categories'"
        )
    if not isinstance(data, dict):
        raise CocoFormatError(f"{src}: expected a JSON object, got {type(data).__name__}")
    _require(data, ("images", "annotations", "categories"), src)
    names, category_index, background, layout = _read_categories(data, src)
    images = _read_images(data, src)
    groups, n_background, crowd = _group_annotations(
        data, {r["id"] for r in images}, set(category_index), background, src
    )
    notes: Counter[str] = Counter()
    instances = {}
    for record in images:
        inst, counts = _annotations_to_instances(
            groups.get(record["id"], []), record, category_index, crowd, src, layout
        )
        instances[record["id"]] = inst
        notes += counts
    if n_background:
        notes["skipped {} annotation(s) with a background category (dropped)"] = n_background
    _warn_read(notes, src, stacklevel=2)
    root = Path(image_root) if image_root is not None else path.parent
    if layout is None:
        return Dataset(names, images, instances, image_root=root)
    return Dataset(
        names,
        images,
        instances,
        image_root=root,
        keypoints=layout.names,
        skeleton=layout.skeleton,
    )
