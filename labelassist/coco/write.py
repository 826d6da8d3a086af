"""Writing COCO files: `write_coco` (streamed, atomic) and `instances_to_coco` (one image).

`write_coco` checks the items as they come and streams image records and annotations to
two temporary files next to the target, then replaces the target atomically. Instances
are converted in chunks of images (`labelassist.coco._convert`), in this process or in
worker processes (`labelassist.coco._pool`), and their JSON text is built from columns
(`labelassist.coco._emit`). The COCO rules followed are stated in the `labelassist.coco`
package docstring.
"""

from __future__ import annotations

import os
import shutil
import stat
import warnings
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from ..checks import check_classes
from ..instances import Instances, check_keypoint_names, check_skeleton
from ..io import TempFile
from ._convert import _convert
from ._emit import _dumps
from ._pool import _Annotations, _ParallelAnnotations
from ._rules import _check_item_instances, _check_record, _escapes_root, _is_int

__all__ = ["instances_to_coco", "write_coco"]

_SEGMENTATIONS = ("polygon", "rle")


def _check_segmentation_mode(segmentation: Any) -> str:
    if segmentation not in _SEGMENTATIONS:
        raise ValueError(f"segmentation must be 'polygon' or 'rle', got {segmentation!r}")
    return segmentation


def _warn_skipped(count: int, stacklevel: int) -> None:
    if count:
        warnings.warn(
            f"skipped {count} empty instance(s) (empty geometry or no pixel inside the "
            "image): COCO annotations need a non-empty segmentation",
            UserWarning,
            stacklevel=stacklevel + 1,
        )


def instances_to_coco(
    instances: Instances,
    image_id: int,
    *,
    first_id: int = 1,
    segmentation: str = "polygon",
) -> list[dict]:
    """Convert one image's instances to COCO annotation dicts.

    Parameters
    ----------
    instances : Instances
        The image's instances; ``labels`` become ``category_id = label + 1``. An
        ``extra["iscrowd"]`` bool column marks crowd regions (written as ``iscrowd=1`` RLE).
        Its ``keypoints``, when present, are written as COCO's flat ``keypoints`` list
        ``[x1, y1, v1, ...]`` with ``num_keypoints``.
    image_id : int
        The ``image_id`` of every annotation.
    first_id : int, optional
        Id of the first annotation; the others follow consecutively.
    segmentation : {"polygon", "rle"}, optional
        ``"polygon"`` writes one ring per part, except instances with holes (COCO polygons
        cannot express holes) and crowd regions, which are written as RLE. ``"rle"``
        writes every instance as compressed RLE with ``str`` counts.

    Returns
    -------
    list of dict
        Annotations with ``id, image_id, category_id, segmentation, area, bbox, iscrowd,
        score``. ``area`` is the pixel count of the mask pycocotools rasterizes from the
        segmentation, ``bbox`` is ``[x, y, w, h]`` of that mask. Instances that cover no
        pixel (empty geometry, or outside the image) are skipped with a warning. Extra
        columns other than ``iscrowd`` are not written.

    Examples
    --------
    >>> import shapely
    >>> inst = Instances([shapely.box(1, 1, 4, 3)], [0], [0.5], (5, 5))
    >>> ann = instances_to_coco(inst, image_id=7)[0]
    >>> ann["category_id"], ann["segmentation"], ann["area"], ann["bbox"]
    (1, [[4.0, 1.0, 4.0, 3.0, 1.0, 3.0, 1.0, 1.0]], 6.0, [1.0, 1.0, 3.0, 2.0])
    """
    if not isinstance(instances, Instances):
        raise TypeError(f"instances must be an Instances, got {type(instances).__name__}")
    if not _is_int(image_id):
        raise TypeError(f"image_id must be an int, got {image_id!r}")
    if not _is_int(first_id) or first_id < 1:
        raise ValueError(f"first_id must be an int >= 1 (COCO ids start at 1), got {first_id!r}")
    segmentation = _check_segmentation_mode(segmentation)
    converted, skipped = _convert(instances, int(image_id), int(first_id), segmentation)
    _warn_skipped(skipped, stacklevel=2)
    return converted.dicts()


def write_coco(
    path: str | os.PathLike,
    categories: Sequence[str],
    items: Iterable[tuple[Mapping[str, Any], Instances | None]],
    *,
    segmentation: str = "polygon",
    info: Mapping[str, Any] | None = None,
    workers: int = 1,
    keypoints: Sequence[str] | None = None,
    skeleton: Sequence[tuple[int, int]] | None = None,
) -> Path:
    """Write a COCO instance-segmentation file, streaming images and annotations.

    Images and annotations are written as they come, to temporary files in the target
    folder (`labelassist.io.TempFile`: those of a killed writer are removed by the next
    write there); the finished file then replaces ``path`` atomically (``os.replace``).
    Only one chunk of images (a few thousand instances) is held in memory, converted
    together (with ``workers > 1``: two chunks per worker), and if anything fails
    ``path`` is left as it was. An existing ``path`` keeps its permissions; a new one gets
    ``0o666`` minus the umask.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.json`` file to write; its folder is created when missing.
    categories : sequence of str
        Class names; category ``k`` is written with id ``k + 1``.
    items : iterable of (dict, Instances or None)
        Image records (``id`` int, ``file_name`` relative to the image root, ``height``,
        ``width``; other keys are written as they are) with their instances (None: no
        annotations). A generator is fine. Image ids must be unique; ``file_name`` must
        not be absolute nor contain ``..`` (`read_coco` refuses such files).
    segmentation : {"polygon", "rle"}, optional
        See `instances_to_coco`.
    info : dict, optional
        The COCO ``info`` block; by default a description and the creation time.
    workers : int, optional
        Processes converting chunks of instances to COCO (1: in this process). With more,
        this process reads ``items`` and writes the file while the others convert (started
        with "spawn", which takes about a second: worth it from some 50,000 instances).
        The file is the same whatever the number; an error in a worker is raised here.
    keypoints : sequence of str, optional
        Keypoint names (landmarks), written into every category as COCO's
        ``keypoints``; every non-empty `Instances` must then carry (N, K, 3)
        ``keypoints``, written per annotation as the flat ``keypoints`` list and
        ``num_keypoints``. None (default): no keypoints (instances must have none).
    skeleton : sequence of (int, int), optional
        Edges between keypoints, 0-based indices into ``keypoints``; written 1-based as
        COCO's ``skeleton`` (``[[1, 2]]`` for ``[(0, 1)]``).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        ``path`` is a folder or exists and is not a regular file (a FIFO, a device); an
        item breaks a rule above (duplicate id, ``file_name``, shape, label); a record
        holds a value JSON cannot write (NaN).
    TypeError
        An item, record or `Instances` of the wrong type.

    Examples
    --------
    >>> import shapely, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "labels.json"
    >>> record = {"id": 1, "file_name": "a.png", "height": 8, "width": 8}
    >>> inst = Instances([shapely.box(0, 0, 2, 2)], [0], [1.0], (8, 8))
    >>> write_coco(out, ["cell"], [(record, inst)]).name
    'labels.json'
    >>> from labelassist.coco import read_coco
    >>> len(read_coco(out).instances[1])
    1
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"path {str(path)!r} is a folder; give a .json file name in it")
    segmentation = _check_segmentation_mode(segmentation)
    names = check_classes(categories, "categories", allow_empty=True)
    if not _is_int(workers) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    workers = int(workers)
    if keypoints is None and skeleton:
        raise ValueError("skeleton needs keypoints=[...names] to index into")
    names_k = None if keypoints is None else check_keypoint_names(keypoints)
    edges = [] if names_k is None else check_skeleton(skeleton, len(names_k))
    if info is None:
        info = {
            "description": "written by labelassist",
            "date_created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    elif not isinstance(info, Mapping):
        raise TypeError(f"info must be a dict, got {type(info).__name__}")
    records: list[dict[str, Any]] = [
        {"id": k + 1, "name": name, "supercategory": ""} for k, name in enumerate(names)
    ]
    if names_k is not None:
        for cat in records:
            cat["keypoints"] = list(names_k)
            cat["skeleton"] = [[a + 1, b + 1] for a, b in edges]
    head = {"info": dict(info), "licenses": [], "categories": records}
    main = TempFile(path)  # creates the folder; removes temp files of killed writers
    side = None
    try:
        side = TempFile(path)
        main.file.write((_dumps(head)[:-1] + ',\n"images":[\n').encode("utf-8"))
        n_keypoints = None if names_k is None else len(names_k)
        skipped = _stream(main.file, side.file, names, items, segmentation, workers, n_keypoints)
        main.file.write(b'\n],\n"annotations":[\n')
        side.file.seek(0)
        shutil.copyfileobj(side.file, main.file, 1 << 16)
        main.file.write(b"\n]}\n")
        # an existing target keeps its mode; a new one gets 0o666 minus the umask
        main.commit(mode=stat.S_IMODE(path.stat().st_mode) if path.exists() else None)
    finally:
        main.discard()
        if side is not None:
            side.discard()
    _warn_skipped(skipped, stacklevel=2)
    return path


#: images are converted in chunks of this many instances (or `_CHUNK_IMAGES` images):
#: shapely and pycocotools are called once per chunk, and memory stays bounded by it
_CHUNK_INSTANCES = 2048
_CHUNK_IMAGES = 128


def _stream(
    main: IO[bytes],
    side: IO[bytes],
    names: list[str],
    items: Iterable[tuple[Mapping[str, Any], Instances | None]],
    segmentation: str,
    workers: int = 1,
    n_keypoints: int | None = None,
) -> int:
    """Write image records to ``main`` and annotations to ``side``; return skipped count.

    Items are checked one by one as they come; their instances are converted in chunks
    (`_convert_chunk`), so that memory holds one chunk, not the whole dataset; with
    ``workers > 1`` a few chunks per worker (`labelassist.coco._pool._ParallelAnnotations`).
    """
    seen: set[int] = set()
    records: list[str] = []
    chunk: list[tuple[int, Instances]] = []
    size = 0
    sink = _Annotations(side, segmentation) if workers == 1 else _ParallelAnnotations(
        side, segmentation, workers
    )  # fmt: skip

    def flush() -> None:
        nonlocal size
        main.write("".join(records).encode("utf-8"))
        records.clear()
        sink.add(chunk, size)
        chunk.clear()
        size = 0

    try:
        for k, item in enumerate(items):
            where = f"items[{k}]"
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise TypeError(f"{where} must be a pair (image record, Instances or None)")
            record = _check_record(item[0], f"{where} image record")
            if _escapes_root(record["file_name"]):
                raise ValueError(
                    f"{where}: file_name {record['file_name']!r} is absolute or leaves the "
                    "image folder; write it relative to the image root (e.g. 'images/a.png')"
                )
            if record["id"] in seen:
                raise ValueError(f"{where}: duplicate image id {record['id']}")
            seen.add(record["id"])
            instances = _check_item_instances(
                item[1], record, len(names), f"{where} instances", n_keypoints
            )
            records.append(("" if k == 0 else ",\n") + _dumps(record))
            if instances is None:
                continue
            chunk.append((record["id"], instances))
            size += len(instances)
            if size >= _CHUNK_INSTANCES or len(chunk) >= _CHUNK_IMAGES:
                flush()
        flush()
        sink.finish()
    except BaseException:
        sink.abort()
        raise
    return sink.skipped
