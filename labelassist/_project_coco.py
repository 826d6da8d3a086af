"""COCO in and out of a labeling project (private; the public methods are on `Project`).

`iter_items` streams ``(record, Instances)`` pairs from one SELECT statement (a consistent
snapshot) through a private connection; `export_coco` hands them to
`labelassist.coco.write_coco`, so that memory does not grow with the project.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _project_files as _files
from . import _project_schema as _schema
from ._project_util import (
    check_choice,
    progress_bar,
    rows_to_instances,
    split_filter,
    sql_where,
    status_filter,
)
from .instances import Instances

if TYPE_CHECKING:  # pragma: no cover
    from .project import Project

DB_NAME = "project.db"
_IMPORT_BATCH = 500


def iter_items(
    project: Project, status: Any, split: Any, file_name: Any = None, progress: bool = False
) -> Iterator[tuple[dict, Instances]]:
    """(record, Instances) per selected image, streamed from a private connection.

    One SELECT statement: a consistent snapshot, whatever other processes write
    meanwhile. ``file_name(path)`` maps the absolute path to the record's file_name.
    """
    where, params = sql_where(status_filter(status), split_filter(split), prefix="i.")
    con = _schema.connect(project.folder / DB_NAME)
    try:
        n_images = None
        if progress:
            n_images = con.execute(f"SELECT count(*) FROM images i{where}", params).fetchone()[0]
        rows = con.execute(
            "SELECT i.id, i.path, i.height, i.width, a.instance_id, a.label, a.score,"
            " a.source, a.geometry FROM images i LEFT JOIN annotations a ON"
            f" a.image_id = i.id AND a.version = i.version{where} ORDER BY i.id, a.id",
            params,
        )
        bar = progress_bar(None, progress, "exporting images", total=n_images)
        group: list[tuple] = []
        for row in rows:
            if group and row[0] != group[0][0]:
                yield _item(project, group, file_name)
                bar.update(1)
                group = []
            group.append(row)
        if group:
            yield _item(project, group, file_name)
            bar.update(1)
        bar.close()
    finally:
        con.close()


def _item(project, group: list[tuple], file_name: Any) -> tuple[dict, Instances]:
    image_id, stored, height, width = group[0][:4]
    path = project._absolute(stored)
    record = {
        "id": image_id,
        "file_name": file_name(path) if file_name else str(path),
        "height": height,
        "width": width,
    }
    rows = [r[4:] for r in group if r[4] is not None]
    return record, rows_to_instances(rows, (height, width))


def selected_paths(project, status: list[str] | None, split: str | None) -> list[Path]:
    """Absolute paths of the selected images."""
    where, params = sql_where(status, split)
    with project._lock:
        rows = project.con.execute(f"SELECT DISTINCT path FROM images{where}", params)
        return [project._absolute(r[0]) for r in rows]


def common_root(paths: list[Path], candidates: list[Path]) -> Path:
    """The first candidate folder holding every path, else their deepest common folder."""
    for root in candidates:
        if all(root in p.parents for p in paths):
            return root
    return Path(os.path.commonpath([p.parent for p in paths]))


def export_root(
    project, path: Path, status: list[str] | None, split: str | None, image_root: Any
) -> Path:
    paths = selected_paths(project, status, split)
    if image_root is not None:
        root = Path(image_root).expanduser().resolve()
        outside = [p for p in paths if root not in p.parents]
        if outside:
            raise ValueError(
                f"image_root {root} does not hold {len(outside)} of the exported images "
                f"(e.g. {outside[0]}); choose a folder above all of them"
            )
        return root
    root = common_root(paths, [path.parent, project.folder])
    if root != path.parent:
        warnings.warn(
            f"the exported file_names are relative to {root} (not to the JSON's folder); "
            f"read the file with image_root={str(root)!r}",
            UserWarning,
            stacklevel=3,
        )
    return root


def _sizes_of(project, paths: list[Path]) -> dict[str, tuple[int, int]]:
    """(height, width) of the images among ``paths`` that are in the project."""
    keys = [p.as_posix() for p in paths]
    out = {}
    with project._lock:
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = project.con.execute(
                "SELECT origin, height, width FROM images WHERE origin IN"
                f" ({', '.join('?' * len(chunk))})",
                chunk,
            )
            out.update((origin, (h, w)) for origin, h, w in rows)
    return out


def _class_mapping(project, categories: list[str], path: Path) -> np.ndarray:
    unknown = [name for name in categories if name not in project.classes]
    if unknown:
        raise ValueError(
            f"categories {unknown} of {path} are not classes of this project "
            f"{project.classes}; rename them in the file or create a project with these classes"
        )
    return np.array([project.classes.index(name) for name in categories], dtype=np.int64)


def dataset(project, *, status: str | Sequence[str] | None = "reviewed", split: str | None = None):
    from .coco import Dataset

    status_values, split_value = status_filter(status), split_filter(split)
    root = common_root(selected_paths(project, status_values, split_value), [project.folder])

    def file_name(image: Path) -> str:
        return Path(os.path.relpath(image, root)).as_posix()

    with project._lock:
        project.con  # noqa: B018  (raises when closed)
        items = list(iter_items(project, status_values, split_value, file_name))
    return Dataset(
        list(project.classes),
        [record for record, _ in items],
        {record["id"]: inst for record, inst in items},
        image_root=root,
    )


def export_coco(
    project,
    path: str | os.PathLike,
    *,
    status: str | Sequence[str] | None = "reviewed",
    split: str | None = None,
    segmentation: str = "polygon",
    image_root: str | os.PathLike | None = None,
    progress: bool = False,
) -> Path:
    from .coco import write_coco

    check_choice(segmentation, "segmentation", ("polygon", "rle"))
    path = Path(path).expanduser().resolve()
    status_values = status_filter(status)
    split_value = split_filter(split)
    root = export_root(project, path, status_values, split_value, image_root)

    def file_name(image: Path) -> str:
        return Path(os.path.relpath(image, root)).as_posix()

    info = {
        "description": f"labelassist project {project.folder.name}",
        "date_created": _schema.now(),
        "image_root": root.as_posix(),
    }
    with project._lock:
        project.con  # noqa: B018  (raises when closed)
    items = iter_items(project, status_values, split_value, file_name, progress)
    return write_coco(path, project.classes, items, segmentation=segmentation, info=info)


def import_coco(
    project,
    path: str | os.PathLike,
    *,
    image_root: str | os.PathLike | None = None,
    progress: bool = False,
) -> list[int]:
    from .coco import read_coco

    path = Path(path).expanduser()
    root = Path(image_root).expanduser() if image_root is not None else path.parent
    data = read_coco(path, image_root=image_root)
    mapping = _class_mapping(project, list(data.categories), path)
    files, missing = [], []
    for record in data.images:
        file = (root / record["file_name"]).resolve()
        files.append(file)
        if not file.is_file():
            missing.append(str(file))
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} image file(s) of {path} not found, e.g. {missing[0]}; pass "
            "image_root= (CLI: --image-root) to say where the images are"
        )
    new, _ = project._new_files(files)
    sizes = {
        file: (int(r["height"]), int(r["width"]))
        for file, r in zip(files, data.images, strict=True)
    }
    rows, _ = project._place_files(new, sizes, copy=project.copy_images)
    placed = {row[2]: row for row in rows}
    ids: list[int] = []
    items = list(zip(files, data.images, strict=True))
    bar = progress_bar(None, progress, "importing images", total=len(items))
    for start in range(0, len(items), _IMPORT_BATCH):
        batch = items[start : start + _IMPORT_BATCH]
        with project._lock, _schema.write_transaction(project.con) as con:
            stamp = _schema.now()
            for file, record in batch:
                row = placed.pop(file.as_posix(), None)
                if row is not None:
                    file_name, stored, origin, (height, width) = row
                    con.execute(
                        "INSERT INTO images (file_name, path, origin, height, width, updated)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (file_name, stored, origin, height, width, stamp),
                    )
                (image_id,) = con.execute(
                    "SELECT id FROM images WHERE origin = ?", (file.as_posix(),)
                ).fetchone()
                inst = data.instances.get(record["id"])
                if inst is None:
                    inst = Instances.empty((int(record["height"]), int(record["width"])))
                inst = Instances(inst.polygons, mapping[inst.labels], inst.scores, inst.image_shape)
                project._write_instances(con, image_id, inst, "human", None, status="reviewed")
                ids.append(image_id)
        bar.update(len(batch))
    bar.close()
    return ids


def import_label_images(
    project,
    images: Sequence[str | os.PathLike],
    label_images: Sequence[np.ndarray | str | os.PathLike],
    *,
    label: int = 0,
    tolerance: float = 0.0,
    status: str = "reviewed",
) -> list[int]:
    from .coco import Dataset

    if isinstance(images, (str, os.PathLike)) or isinstance(label_images, (str, os.PathLike)):
        raise TypeError(
            "images and label_images must be lists (one entry per image); for one image "
            "write [path]"
        )
    paths = [Path(p).expanduser().resolve() for p in images]
    sources = list(label_images)
    if len(paths) != len(sources):
        raise ValueError(
            f"images has {len(paths)} entries but label_images has {len(sources)}; give "
            "one label image per image"
        )
    check_choice(status, "status", _schema.STATUSES)
    data = Dataset.from_label_images(
        sources, categories=project.classes, label=label, tolerance=tolerance
    )
    new, _ = project._new_files(paths)
    missing = [str(p) for p in new if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"image files not found: {', '.join(missing[:5])}")
    known = _sizes_of(project, paths)
    for k, path in enumerate(paths):
        size = known.get(path.as_posix()) or _files.image_size(path)
        record = data.images[k]
        if size != (record["height"], record["width"]):
            raise ValueError(
                f"label_images[{k}] is {record['height']}x{record['width']} but image "
                f"{path} is {size[0]}x{size[1]} (height x width); they must match"
            )
    if new:
        project.add_images(new)
    with project._lock, _schema.write_transaction(project.con) as con:
        ids = []
        for k, path in enumerate(paths):
            (image_id,) = con.execute(
                "SELECT id FROM images WHERE origin = ?", (path.as_posix(),)
            ).fetchone()
            inst = data.instances[k + 1]
            project._write_instances(con, image_id, inst, "human", None, status=status)
            ids.append(image_id)
    return ids
