"""Stacks as COCO video files (the TAO convention): one image entry per plane, a track per object.

The layout is TAO's (Tracking Any Object, ``tao/toolkit/tao/tao.py``), a COCO file with
``videos`` and ``tracks`` next to ``images``, ``annotations`` and ``categories``:

- ``videos``: one entry, the stack: ``id``, ``name``, ``width``, ``height`` and
  ``metadata`` with labelassist's ``axes`` (``"ZYX"``, ``"TYX"``, ``"TZYX"``) and ``shape``;
- ``images``: one per plane, in plane order: ``id`` (1, 2, ...), ``video_id``,
  ``frame_index`` (the plane's position), ``file_name`` (the stack file, the same for
  every plane), ``width``, ``height`` and ``plane``, its index per stack axis
  (``{"T": 3, "Z": 10}``);
- ``tracks``: one per object: ``id`` (the object id), ``category_id``, ``video_id``, and
  ``parent_track_id`` for the daughters of a division (a labelassist addition);
- ``annotations``: one per object and plane: ``image_id``, ``video_id``, ``track_id``,
  ``category_id``, ``segmentation``, ``area``, ``bbox``, ``iscrowd``, ``score``.

labelassist's COCO rules hold (`labelassist.coco` states them; this module writes the
JSON itself because `labelassist.coco` sits above stacks): ids from 1, ``category_id =
label + 1``; ``area`` is the pixel count of the mask as pycocotools rasterizes it, and
``bbox`` its ``[x, y, width, height]``; ``iscrowd`` 0; polygons without holes as rings, an
instance with holes as compressed RLE (``counts`` a str). A track's ``category_id`` is
its instances' most common class; TAO's toolkit requires every annotation of a track to
share it. Instances that cover no pixel are left out (with a warning).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from ..checks import check_classes
from ..geometry import masks_to_polygons, polygons_to_masks
from ..instances import Instances
from ..io import atomic_write
from .stack_instances import OBJECT_ID, STACK_LAYOUTS, StackInstances

__all__ = ["read_coco_video", "stack_to_coco_video", "write_coco_video"]

_CHUNK = 64  # instances rasterized at once


def stack_to_coco_video(
    stack: StackInstances,
    classes: Sequence[str],
    *,
    name: str = "stack",
    file_name: str | None = None,
) -> dict[str, Any]:
    """The COCO video dict (TAO layout, module notes) of a stack's objects.

    Parameters
    ----------
    stack : StackInstances
        The objects; labels index ``classes``.
    classes : sequence of str
        Class names (`labelassist.checks.check_classes`).
    name : str
        The video's name.
    file_name : str, optional
        The stack's file, relative to the image root (default ``name``).

    Examples
    --------
    >>> volume = np.zeros((2, 6, 6), np.uint8)
    >>> volume[:, 1:3, 1:3] = 4
    >>> coco = stack_to_coco_video(StackInstances.from_labels(volume, "ZYX"), ["nucleus"])
    >>> [(a["image_id"], a["track_id"], a["area"]) for a in coco["annotations"]]
    [(1, 4, 4), (2, 4, 4)]
    >>> coco["images"][1]["plane"], coco["videos"][0]["metadata"]
    ({'Z': 1}, {'axes': 'ZYX', 'shape': [2, 6, 6]})
    """
    if not isinstance(stack, StackInstances):
        raise TypeError(f"stack must be a StackInstances, got {type(stack).__name__}")
    names = check_classes(classes)
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty str, got {name!r}")
    file_name = name if file_name is None else file_name
    if not isinstance(file_name, str) or not file_name:
        raise ValueError(f"file_name must be a non-empty str, got {file_name!r}")
    height, width = stack.image_shape
    lead = stack.axes[:-2]
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    track_labels: dict[int, Counter] = {}
    empty = 0
    for k, plane in enumerate(stack.planes):
        index = np.unravel_index(k, stack.stack_shape) if lead else ()
        images.append(
            {
                "id": k + 1,
                "video_id": 1,
                "frame_index": k,
                "file_name": file_name,
                "width": width,
                "height": height,
                "plane": {a: int(i) for a, i in zip(lead, index, strict=True)},
            }
        )
        if len(plane) and int(plane.labels.max()) >= len(names):
            raise ValueError(
                f"planes[{k}] has label {int(plane.labels.max())}, but classes has only "
                f"{len(names)} names"
            )
        for ann in _annotations(plane, k + 1):
            if ann is None:
                empty += 1
                continue
            ann["id"] = len(annotations) + 1
            annotations.append(ann)
            track_labels.setdefault(ann["track_id"], Counter())[ann["category_id"]] += 1
    if empty:
        warnings.warn(f"{empty} instances cover no pixel and are left out", stacklevel=2)
    tracks = []
    for oid in sorted(track_labels):
        track: dict[str, Any] = {
            "id": oid,
            "category_id": track_labels[oid].most_common(1)[0][0],
            "video_id": 1,
        }
        if oid in stack.parents and stack.parents[oid] in track_labels:
            track["parent_track_id"] = stack.parents[oid]
        tracks.append(track)
    return {
        "info": {"description": "labelassist stack (TAO video layout)"},
        "videos": [
            {
                "id": 1,
                "name": name,
                "width": width,
                "height": height,
                "metadata": {"axes": stack.axes, "shape": list(stack.shape)},
            }
        ],
        "images": images,
        "tracks": tracks,
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": n} for k, n in enumerate(names)],
    }


def write_coco_video(
    stack: StackInstances,
    path: str | os.PathLike,
    classes: Sequence[str],
    *,
    name: str = "stack",
    file_name: str | None = None,
) -> Path:
    """Write `stack_to_coco_video` as JSON, atomically; returns the path.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> volume = np.zeros((2, 6, 6), np.uint8)
    >>> volume[1, 1:3, 1:3] = 1
    >>> stack = StackInstances.from_labels(volume, "TYX")
    >>> path = write_coco_video(stack, pathlib.Path(tempfile.mkdtemp()) / "v.json", ["cell"])
    >>> read_coco_video(path) == (stack, ["cell"])
    True
    """
    coco = stack_to_coco_video(stack, classes, name=name, file_name=file_name)
    path = Path(path)
    with atomic_write(path, suffix=".json") as fh:
        fh.write(json.dumps(coco, separators=(",", ":")).encode("utf-8"))
    return path


def read_coco_video(
    path: str | os.PathLike, *, video_id: int | None = None
) -> tuple[StackInstances, list[str]]:
    """Read a COCO video file (TAO layout) back into `StackInstances` and class names.

    Files from other tools without labelassist's ``metadata`` are read as a time-lapse
    (``"TYX"``) with one frame per image, in ``frame_index`` order.

    Parameters
    ----------
    path : str or os.PathLike
        The JSON file.
    video_id : int, optional
        Which video, when the file holds several.

    Raises
    ------
    ValueError
        A file that is not COCO video JSON, or whose entries break the layout (named).
    """
    path = Path(path)
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from None
    if not isinstance(coco, dict) or not all(
        isinstance(coco.get(k), list) for k in ("videos", "images", "annotations", "categories")
    ):
        raise ValueError(
            f"{path} is not a COCO video file: it needs the lists videos, images, "
            "annotations and categories (TAO layout)"
        )
    video = _pick_video(coco["videos"], video_id, path)
    cats = sorted(coco["categories"], key=lambda c: c["id"])
    classes = check_classes([c["name"] for c in cats], f"{path} categories")
    label_of = {c["id"]: k for k, c in enumerate(cats)}
    images = sorted(
        (im for im in coco["images"] if im.get("video_id") == video["id"]),
        key=lambda im: im.get("frame_index", 0),
    )
    if not images:
        raise ValueError(f"{path}: video {video['id']} has no images")
    height, width = int(images[0]["height"]), int(images[0]["width"])
    meta = video.get("metadata") or {}
    axes = meta.get("axes", "TYX")
    shape = tuple(meta.get("shape", (len(images), height, width)))
    if axes not in STACK_LAYOUTS or math.prod(shape[:-2]) != len(images):
        raise ValueError(
            f"{path}: video {video['id']} has axes {axes!r} and shape {list(shape)} for "
            f"{len(images)} images; axes must be one of {list(STACK_LAYOUTS)} and the "
            "stack axes must hold one image per plane"
        )
    position = {im["id"]: k for k, im in enumerate(images)}
    per_plane: list[list[dict]] = [[] for _ in images]
    for ann in coco["annotations"]:
        if ann.get("image_id") in position:
            per_plane[position[ann["image_id"]]].append(ann)
    planes = [_plane(anns, (height, width), label_of, path) for anns in per_plane]
    parents = {
        int(t["id"]): int(t["parent_track_id"])
        for t in coco.get("tracks", [])
        if t.get("video_id") == video["id"] and t.get("parent_track_id")
    }
    return StackInstances(planes, shape, axes, parents), classes


def _annotations(plane: Instances, image_id: int) -> list[dict | None]:
    """Annotation dicts (no ``id`` yet) of a plane's instances; None for empty masks."""
    out: list[dict | None] = []
    if not len(plane):
        return out
    parts, owner = shapely.get_parts(plane.polygons, return_index=True)
    holes = shapely.get_num_interior_rings(parts)
    has_holes = np.bincount(owner, weights=holes, minlength=len(plane)) > 0
    masks = np.zeros((0, *plane.image_shape), dtype=bool)
    for k in range(len(plane)):
        if k % _CHUNK == 0:  # rasterized a few at a time: bounded memory on dense planes
            masks = polygons_to_masks(plane.polygons[k : k + _CHUNK], plane.image_shape)
        mask = masks[k % _CHUNK]
        area = int(mask.sum())
        if area == 0:
            out.append(None)
            continue
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        bbox = [
            int(cols[0]),
            int(rows[0]),
            int(cols[-1] - cols[0] + 1),
            int(rows[-1] - rows[0] + 1),
        ]
        out.append(
            {
                "image_id": image_id,
                "video_id": 1,
                "track_id": int(plane.extra[OBJECT_ID][k]),
                "category_id": int(plane.labels[k]) + 1,
                "segmentation": _rle(mask) if has_holes[k] else _rings(plane.polygons[k]),
                "area": area,
                "bbox": bbox,
                "iscrowd": 0,
                "score": float(plane.scores[k]),
            }
        )
    return out


def _rings(geom: shapely.Geometry) -> list[list[float]]:
    """The exterior ring of each part, flat ``[x0, y0, x1, y1, ...]`` (closing point dropped)."""
    rings = []
    for part in shapely.get_parts(geom):
        xy = np.asarray(part.exterior.coords)[:-1]
        rings.append([float(v) for v in xy.ravel()])
    return rings


def _rle(mask: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_utils  # heavy, compiled: only for masks with holes

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _pick_video(videos: list, video_id: int | None, path: Path) -> dict:
    if video_id is None:
        if len(videos) != 1:
            ids = [v.get("id") for v in videos]
            raise ValueError(f"{path} holds {len(videos)} videos {ids[:10]}; pick one: video_id=")
        return videos[0]
    for video in videos:
        if video.get("id") == video_id:
            return video
    raise ValueError(f"{path} has no video with id {video_id}")


def _plane(anns: list[dict], shape: tuple[int, int], label_of: dict, path: Path) -> Instances:
    polygons, labels, scores, ids = [], [], [], []
    for ann in anns:
        where = f"{path}: annotation {ann.get('id')}"
        if ann.get("category_id") not in label_of or "track_id" not in ann:
            raise ValueError(f"{where} needs a known category_id and a track_id")
        polygons.append(_geometry(ann.get("segmentation"), shape, where))
        labels.append(label_of[ann["category_id"]])
        scores.append(float(ann.get("score", 1.0)))
        ids.append(int(ann["track_id"]))
    return Instances(polygons, labels, scores, shape, extra={OBJECT_ID: np.array(ids, np.int64)})


def _geometry(seg: Any, shape: tuple[int, int], where: str) -> shapely.Geometry:
    if isinstance(seg, list) and seg and all(isinstance(r, list) and len(r) >= 6 for r in seg):
        parts = [shapely.Polygon(np.asarray(r, dtype=np.float64).reshape(-1, 2)) for r in seg]
        geom = shapely.union_all(shapely.make_valid(np.array(parts, dtype=object)))
        geom = shapely.MultiPolygon(
            [g for g in shapely.get_parts(geom) if isinstance(g, shapely.Polygon)]
        )
        return geom.geoms[0] if len(geom.geoms) == 1 else geom
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        from pycocotools import mask as mask_utils  # heavy, compiled: only for RLE

        rle = dict(seg)
        if isinstance(rle["counts"], list):
            rle = mask_utils.frPyObjects(rle, *rle["size"])
        elif isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
        mask = mask_utils.decode(rle).astype(bool)
        if mask.shape != shape:
            raise ValueError(f"{where}: RLE size {list(mask.shape)} is not the image's {shape}")
        return masks_to_polygons(mask, tolerance=0)[0]
    raise ValueError(f"{where}: segmentation must be polygon rings or an RLE dict")
