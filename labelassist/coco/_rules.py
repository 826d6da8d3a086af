"""What the COCO reader and writer share (private): constants, the lazy geometry import
and small validators.

`labelassist.coco` (reading, `Dataset`) and `labelassist._coco_write` (writing) both
import this module; it imports neither of them. The validators check image records, file
names, category lists and per-image `Instances` for both `write_coco` and `Dataset`; they
raise ``TypeError`` / ``ValueError`` (not `labelassist.coco.CocoFormatError`, which is
for broken files being read).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from ..instances import Instances

#: category names that mean "background" in other tools; dropped on read
_BACKGROUND_NAMES = frozenset({"_background_", "__background__"})
_POLYGON_TYPE = 3


def _geometry():
    """`labelassist.geometry`, imported on first use: it loads scipy, which the worker
    processes of `write_coco` do not need (it would add half a second to their start)."""
    from .. import geometry

    return geometry


# -- small validators ---------------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _positive_int(value: Any) -> int | None:
    """``value`` as an int when it is a positive whole number (int or integral float)."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if _is_int(value):
        return int(value) if value > 0 else None
    if isinstance(value, float) and value.is_integer() and value > 0:
        return int(value)
    return None


def _escapes_root(file_name: str) -> bool:
    """True when ``file_name`` is absolute or climbs out of its root with ``..``."""
    if not (file_name.startswith(("/", "\\")) or ":" in file_name or ".." in file_name):
        return False  # the usual name: no root, drive, UNC share or parent step
    posix = PurePosixPath(file_name.replace("\\", "/"))
    win = PureWindowsPath(file_name)
    return posix.is_absolute() or bool(win.drive) or ".." in posix.parts


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
            raise ValueError(f"{where}: {key} must be a positive int, got {out[key]!r}")
        out[key] = size
    return out


def _check_categories(categories: Any) -> list[str]:
    if isinstance(categories, str) or not isinstance(categories, Iterable):
        raise TypeError(
            f"categories must be a list of class names, got {categories!r}; "
            "for one class write ['nucleus']"
        )
    names = list(categories)
    for k, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise ValueError(f"categories[{k}] must be a non-empty str, got {name!r}")
        if name in _BACKGROUND_NAMES:
            raise ValueError(
                f"categories[{k}] is {name!r}: background is not a class in labelassist "
                "(COCO readers drop it); list only object classes"
            )
    dupes = sorted(n for n, c in Counter(names).items() if c > 1)
    if dupes:
        raise ValueError(f"categories must be unique, got duplicates {dupes}")
    return names


def _check_item_instances(
    instances: Any, record: dict, n_categories: int, where: str
) -> Instances | None:
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
    return instances
