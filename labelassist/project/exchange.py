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
import shapely

from ..instances import Instances
from . import files as _files
from . import schema as _schema
from ._util import (
    check_choice,
    progress_bar,
    split_filter,
    sql_where,
    status_filter,
)

if TYPE_CHECKING:  # pragma: no cover
    from .project import Project

DB_NAME = "project.db"
_IMPORT_BATCH = 500


def iter_items(
    project: Project,
    status: Any,
    split: Any,
    root: Path | None = None,
    progress: bool = False,
    *,
    extra: bool = True,
    wkb: bool = False,
) -> Iterator[tuple[dict, Instances]]:
    """(record, Instances) per selected image, streamed from a private connection.

    One SELECT statement: a consistent snapshot, whatever other processes write
    meanwhile. Rows are decoded in blocks of whole images (one ``from_wkb`` per block).
    ``file_name`` is the image's path relative to ``root`` (POSIX), or its absolute path
    when ``root`` is None. ``extra=False`` leaves out the ``"source"`` and
    ``"instance_id"`` columns (not written to COCO).
    """
    # "+i." keeps SQLite from reading images through the status index: it then scans them
    # in id order, and the rows come out ordered without a sort of the whole result
    where, params = sql_where(status_filter(status), split_filter(split), prefix="+i.")
    columns = "a.instance_id, a.label, a.score, a.source" if extra else "a.label, a.score"
    file_name = _file_namer(project, root)
    con = _schema.connect(project.folder / DB_NAME)
    try:
        n_images = None
        if progress:
            n_images = con.execute(f"SELECT count(*) FROM images i{where}", params).fetchone()[0]
        cursor = con.execute(
            f"SELECT i.id, i.path, i.height, i.width, {columns}, a.geometry FROM images i"
            " LEFT JOIN annotations a ON a.image_id = i.id AND a.version = i.version"
            f"{where} ORDER BY i.id, a.id",
            params,
        )
        bar = progress_bar(None, progress, "exporting images", total=n_images)
        pending: list[tuple] = []
        while rows := cursor.fetchmany(_FETCH_ROWS):
            pending += rows
            # the last image may go on in the next rows: hold it back
            cut = len(pending) - 1
            while cut > 0 and pending[cut - 1][0] == pending[-1][0]:
                cut -= 1
            if cut:
                items = _block_items(pending[:cut], file_name, extra, wkb)
                yield from items
                bar.update(len(items))
                del pending[:cut]
        if pending:
            items = _block_items(pending, file_name, extra, wkb)
            yield from items
            bar.update(len(items))
        bar.close()
    finally:
        con.close()


#: rows fetched at once by `iter_items` (images are decoded in blocks of about this size)
_FETCH_ROWS = 4096


def _block_items(
    rows: list[tuple], file_name: Any, extra: bool, wkb: bool = False
) -> list[tuple[dict, Instances]]:
    """Rows of whole images (``iter_items``'s SELECT, in order) to (record, Instances)."""
    cols = list(zip(*rows, strict=True))
    blobs = cols[-1]
    image_ids = np.array(cols[0], dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, image_ids[1:] != image_ids[:-1]]).tolist()
    stops = [*starts[1:], len(rows)]
    if None in blobs:  # images without annotations have one row of NULLs
        present = np.array([b is not None for b in blobs])
        first = (np.cumsum(present) - present).tolist()  # annotation index of each row
        cols = [[v for v, ok in zip(col, present.tolist(), strict=True) if ok] for col in cols]
    else:
        present = None
        first = range(len(rows))
    geoms = np.array(cols[-1], dtype=object)
    if not wkb:
        geoms = shapely.from_wkb(geoms)
    labels = np.array(cols[-4 if extra else -3], dtype=np.int64)
    scores = np.array(cols[-3 if extra else -2], dtype=np.float32)
    if extra:
        sources = np.array(cols[-2], dtype=str)
        instance_ids = np.array(cols[4], dtype=np.int64)
    out = []
    for start, stop in zip(starts, stops, strict=True):
        image_id, stored, height, width = rows[start][:4]
        record = {"id": image_id, "file_name": file_name(stored), "height": height, "width": width}
        if present is not None and not present[start]:
            keys = ("source", "instance_id") if extra else ()
            out.append((record, Instances.empty((height, width), extra_keys=keys)))
            continue
        a, b = first[start], first[start] + stop - start
        columns = {"source": sources[a:b], "instance_id": instance_ids[a:b]} if extra else {}
        inst = Instances._trusted(geoms[a:b], labels[a:b], scores[a:b], (height, width), columns)
        out.append((record, inst))
    return out


def _file_namer(project, root: Path | None) -> Any:
    """``file_name(stored path)``: the image's path relative to ``root`` (POSIX), or its
    absolute path when ``root`` is None; string operations, not pathlib, per image."""
    absolute = project._absolute_str
    if root is None:
        return absolute
    root_str = str(root)
    prefix = _folder_prefix(root_str)

    def file_name(stored: str) -> str:
        path = absolute(stored)
        if os.sep == "/" and path.startswith(prefix):
            return path[len(prefix) :]
        return Path(os.path.relpath(path, root_str)).as_posix()

    return file_name


def _folder_prefix(folder: str) -> str:
    """``folder`` with one trailing separator: paths below it start with this."""
    return folder if folder.endswith(os.sep) else folder + os.sep


def selected_paths(project, status: list[str] | None, split: str | None) -> list[str]:
    """Absolute (normalized) paths of the selected images."""
    where, params = sql_where(status, split)
    with project._lock:
        rows = project.con.execute(f"SELECT DISTINCT path FROM images{where}", params)
        return [project._absolute_str(r[0]) for r in rows]


def _below(paths: list[str], root: Path) -> list[bool]:
    """Whether each (normalized absolute) path lies below the folder ``root``."""
    prefix = os.path.normcase(_folder_prefix(str(root)))
    return [os.path.normcase(p).startswith(prefix) for p in paths]


def common_root(paths: list[str], candidates: list[Path]) -> Path:
    """The first candidate folder holding every path, else their deepest common folder."""
    for root in candidates:
        if all(_below(paths, root)):
            return root
    return Path(os.path.commonpath([os.path.dirname(p) for p in paths]))


def export_root(
    project, path: Path, status: list[str] | None, split: str | None, image_root: Any
) -> Path:
    paths = selected_paths(project, status, split)
    if image_root is not None:
        root = Path(image_root).expanduser().resolve()
        outside = [p for p, below in zip(paths, _below(paths, root), strict=True) if not below]
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
    from ..coco.read import Dataset

    status_values, split_value = status_filter(status), split_filter(split)
    root = common_root(selected_paths(project, status_values, split_value), [project.folder])
    with project._lock:
        project.con  # noqa: B018  (raises when closed)
        items = list(iter_items(project, status_values, split_value, root))
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
    workers: int | None = 1,
) -> Path:
    from ..coco.read import write_coco

    check_choice(segmentation, "segmentation", ("polygon", "rle"))
    path = Path(path).expanduser().resolve()
    status_values = status_filter(status)
    split_value = split_filter(split)
    root = export_root(project, path, status_values, split_value, image_root)

    info = {
        "description": f"labelassist project {project.folder.name}",
        "date_created": _schema.now(),
        "image_root": root.as_posix(),
    }
    with project._lock:
        project.con  # noqa: B018  (raises when closed)
    if workers is None:
        workers = 1
        if _counts_at_least(project, status_values, split_value, _PARALLEL_MIN_INSTANCES):
            workers = min(os.cpu_count() or 1, _AUTO_WORKERS)
    items = iter_items(
        project, status_values, split_value, root, progress, extra=False, wkb=workers > 1
    )
    return write_coco(
        path, project.classes, items, segmentation=segmentation, info=info, workers=workers
    )


#: `export_coco` with ``workers=None`` converts in worker processes from this many
#: instances (starting them takes about a second), at most `_AUTO_WORKERS` of them
_PARALLEL_MIN_INSTANCES = 50_000
_AUTO_WORKERS = 4


def _counts_at_least(project, status: list[str] | None, split: str | None, n: int) -> bool:
    """Whether the selected images have at least ``n`` current instances (reads at most n)."""
    where, params = sql_where(status, split, prefix="i.")
    with project._lock:
        (count,) = project.con.execute(
            "SELECT count(*) FROM (SELECT 1 FROM images i JOIN annotations a"
            f" ON a.image_id = i.id AND a.version = i.version{where} LIMIT ?)",
            [*params, n],
        ).fetchone()
    return count >= n


def import_coco(
    project,
    path: str | os.PathLike,
    *,
    image_root: str | os.PathLike | None = None,
    progress: bool = False,
) -> list[int]:
    from ..coco.read import read_coco

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
    from ..coco.read import Dataset

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
