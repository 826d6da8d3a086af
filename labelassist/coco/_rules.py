"""What the COCO reader, `Dataset` and the writer share (private): constants and checks.

The checks of image records, file names and per-image `Instances`, and the constants they
use; the COCO rules themselves are stated in the `labelassist.coco` package docstring. The
checks raise ``TypeError`` / ``ValueError`` for `write_coco` and `Dataset` (the reader
turns problems of a file into `labelassist.coco.CocoFormatError`). Class lists are checked
by `labelassist.checks.check_classes`, the one rule for projects, models and COCO files.
"""

from __future__ import annotations

import os
import reprlib
from collections.abc import Mapping
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from ..instances import Instances

#: shapely's type id of a Polygon (`shapely.get_type_id`)
_POLYGON_TYPE = 3

#: the largest image height or width accepted (pycocotools stores sizes and run lengths in
#: 32 bits; it also keeps ``height * width`` far from int64 overflow)
_MAX_SIDE = 2**31 - 1


#: ids are stored as 64-bit integers (SQLite, pycocotools' index, numpy arrays)
_ID_RANGE = (-(2**63), 2**63 - 1)

_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlong, _REPR.maxlist, _REPR.maxdict = 200, 60, 40, 8, 8


def _brief(value: Any) -> str:
    """``repr(value)``, shortened when long (values from an untrusted file go in messages)."""
    return _REPR.repr(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_id(value: Any) -> bool:
    """An int (not bool) that fits in 64 bits."""
    return _is_int(value) and _ID_RANGE[0] <= value <= _ID_RANGE[1]


def _positive_int(value: Any) -> int | None:
    """``value`` as an int when it is a whole number in ``[1, _MAX_SIDE]`` (int or
    integral float), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if _is_int(value):
        return int(value) if 0 < value <= _MAX_SIDE else None
    if isinstance(value, float) and value.is_integer() and 0 < value <= _MAX_SIDE:
        return int(value)
    return None


def _escapes_root(file_name: str) -> bool:
    """True when ``file_name`` is absolute or climbs out of its root with ``..``.

    Absolute means a POSIX root (``/a``), a Windows root or drive root (``\\a``,
    ``C:\\a``, ``C:/a``) or a UNC share. A drive-relative name such as ``a:b.png`` is an
    ordinary file name on POSIX and is accepted there; on Windows it names another drive
    and escapes.
    """
    if not (file_name.startswith(("/", "\\")) or ":" in file_name or ".." in file_name):
        return False  # the usual name: no root, drive, UNC share or parent step
    posix = PurePosixPath(file_name.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts:
        return True
    win = PureWindowsPath(file_name)
    if win.root or win.drive.startswith(("\\\\", "//")):
        return True
    return bool(win.drive) and os.name == "nt"


def _check_record(record: Any, where: str) -> dict:
    """Validate one image record (for the writer and `Dataset`); return a shallow copy."""
    if not isinstance(record, Mapping):
        raise TypeError(f"{where} must be a dict with id, file_name, height, width")
    missing = [k for k in ("id", "file_name", "height", "width") if k not in record]
    if missing:
        raise ValueError(f"{where} is missing {missing}; records need id, file_name, height, width")
    out = dict(record)
    if not _is_int(out["id"]):
        raise TypeError(f"{where}: id must be an int, got {out['id']!r}")
    out["id"] = int(out["id"])
    if not isinstance(out["file_name"], str) or not out["file_name"]:
        raise ValueError(f"{where}: file_name must be a non-empty str, got {out['file_name']!r}")
    for key in ("height", "width"):
        size = _positive_int(out[key])
        if size is None:
            raise ValueError(
                f"{where}: {key} must be a positive int (at most {_MAX_SIDE}), got {out[key]!r}"
            )
        out[key] = size
    return out


def _check_item_instances(
    instances: Any, record: dict, n_categories: int, where: str, n_keypoints: int | None = None
) -> Instances | None:
    """``instances`` checked against its image record, the categories and the keypoint
    names (``n_keypoints``: how many, None for none); an empty `Instances` without
    keypoints gets an empty (0, K, 3) array when the dataset has keypoints."""
    if instances is None:
        return None
    if not isinstance(instances, Instances):
        raise TypeError(f"{where} must be an Instances or None, got {type(instances).__name__}")
    expected = (record["height"], record["width"])
    if instances.image_shape != expected:
        raise ValueError(
            f"{where} has image_shape {instances.image_shape}, but image {record['id']} is "
            f"(height, width) = {expected}"
        )
    if len(instances) and int(instances.labels.max()) >= n_categories:
        raise ValueError(
            f"{where} has label {int(instances.labels.max())}, but there are only "
            f"{n_categories} categories (labels index into categories)"
        )
    points = instances.keypoints
    if n_keypoints is None and points is not None:
        raise ValueError(
            f"{where} has keypoints ({points.shape[1]} per instance) but no keypoint names "
            "were given; pass keypoints=[...names] (and skeleton=) too"
        )
    if n_keypoints is not None:
        if points is None and len(instances) == 0:
            return instances.replace(keypoints=np.zeros((0, n_keypoints, 3)))
        if points is None or points.shape[1] != n_keypoints:
            got = "none" if points is None else f"{points.shape[1]} per instance"
            raise ValueError(
                f"{where} has keypoints {got}, but {n_keypoints} keypoint names were given; "
                "give every instance (N, K, 3) keypoints, v=0 where not labelled"
            )
    return instances
