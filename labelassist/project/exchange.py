"""COCO and label images in and out of a labeling project (`Project.export_coco`, ...).

Export: `iter_items` streams ``(record, Instances)`` pairs from one SELECT statement (a
consistent snapshot) through a connection of its own; `export_coco` hands them to
`labelassist.coco.write_coco`, so that memory does not grow with the project.

Import: `import_coco` and `import_label_images` check everything before writing: the
categories are project classes, every image file exists and decodes, its size is the
size the file states, and (when the project copies images) it lies inside the image root
(a symbolic link to a file elsewhere is refused, not copied).
"""

from __future__ import annotations

import os
import sqlite3
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from ..checks import check_choice
from ..coco import Dataset, read_coco, write_coco
from ..instances import Instances
from . import files as _files
from . import schema as _schema
from ._util import listed, progress_bar, split_filter, sql_where, status_filter
from .annotations import write_instances
from .images import (
    as_path,
    check_files,
    ids_of,
    insert_images,
    new_files,
    place_files,
    stored_sizes,
)
from .keypoints import import_mapping, read_names, remap_points, stack_points, write_names
from .store import Store, database_error

__all__ = ["dataset", "export_coco", "import_coco", "import_label_images", "iter_items"]

#: rows fetched at once by `iter_items` (images are decoded in blocks of about this size)
_FETCH_ROWS = 4096
#: images written per transaction by `import_coco`
_IMPORT_BATCH = 500
#: `export_coco` with ``workers=None`` converts in worker processes from this many
#: instances (starting them takes about a second), at most `_AUTO_WORKERS` of them
_PARALLEL_MIN_INSTANCES = 50_000
_AUTO_WORKERS = 4


# -- out ---------------------------------------------------------------------------------------
def iter_items(
    store: Store,
    status: Any,
    split: Any,
    root: Path | None = None,
    progress: bool = False,
    *,
    extra: bool = True,
    wkb: bool = False,
) -> Iterator[tuple[dict, Instances]]:
    """(record, Instances) per selected image, streamed from a connection of its own.

    One SELECT statement: a consistent snapshot, whatever other processes write
    meanwhile. Rows are decoded in blocks of whole images (one ``from_wkb`` per block).
    ``file_name`` is the image's path relative to ``root`` (POSIX), or its absolute path
    when ``root`` is None. ``extra=False`` leaves out the ``"source"`` and
    ``"instance_id"`` columns (not written to COCO); ``wkb=True`` leaves the geometry as
    WKB bytes (for worker processes to decode). In a project with keypoint names every
    `Instances` has ``(N, K, 3)`` keypoints.
    """
    # "+i." keeps SQLite from reading images through the status index: it then scans them
    # in id order, and the rows come out ordered without a sort of the whole result
    where, params = sql_where(status_filter(status), split_filter(split), prefix="+i.")
    columns = "a.instance_id, a.label, a.score, a.source" if extra else "a.label, a.score"
    file_name = _file_namer(store, root)
    con = store.reader()
    try:
        names, _ = read_names(con)
        k = None if names is None else len(names)
        points = "" if k is None else ", a.keypoints"
        n_images = None
        if progress:
            n_images = con.execute(f"SELECT count(*) FROM images i{where}", params).fetchone()[0]
        cursor = con.execute(
            f"SELECT i.id, i.path, i.height, i.width, {columns}, a.geometry{points} FROM images i"
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
                items = _block_items(pending[:cut], file_name, extra, wkb, k)
                yield from items
                bar.update(len(items))
                del pending[:cut]
        if pending:
            items = _block_items(pending, file_name, extra, wkb, k)
            yield from items
            bar.update(len(items))
        bar.close()
    except sqlite3.DatabaseError as exc:
        error = database_error(exc, store.folder, "read it")
        if error is None:
            raise
        raise error from exc
    finally:
        con.close()


def _block_items(
    rows: list[tuple],
    file_name: Callable[[str], str],
    extra: bool,
    wkb: bool = False,
    k: int | None = None,
) -> list[tuple[dict, Instances]]:
    """Rows of whole images (``iter_items``'s SELECT, in order) to (record, Instances);
    ``k``: the number of keypoint names (their column comes last), None: no keypoints."""
    cols: list[Sequence[Any]] = list(zip(*rows, strict=True))
    stored_points: Sequence[Any] = cols.pop() if k is not None else []
    blobs = cols[-1]
    image_ids = np.array(cols[0], dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, image_ids[1:] != image_ids[:-1]]).tolist()
    stops = [*starts[1:], len(rows)]
    present = None
    first: Sequence[int] = range(len(rows))
    if None in blobs:  # images without annotations have one row of NULLs
        present = np.array([b is not None for b in blobs])
        first = (np.cumsum(present) - present).tolist()  # annotation index of each row
        cols = [[v for v, ok in zip(col, present.tolist(), strict=True) if ok] for col in cols]
        if k is not None:
            stored_points = [v for v, ok in zip(stored_points, present.tolist(), strict=True) if ok]
    points = None if k is None else stack_points(stored_points, k)
    geoms = np.array(cols[-1], dtype=object)
    if not wkb:
        geoms = shapely.from_wkb(geoms)
    labels = np.array(cols[-4 if extra else -3], dtype=np.int64)
    scores = np.array(cols[-3 if extra else -2], dtype=np.float32)
    columns: dict[str, np.ndarray] = {}
    if extra:
        columns = {
            "source": np.array(cols[-2], dtype=str),
            "instance_id": np.array(cols[4], dtype=np.int64),
        }
    out = []
    for start, stop in zip(starts, stops, strict=True):
        image_id, stored, height, width = rows[start][:4]
        record = {"id": image_id, "file_name": file_name(stored), "height": height, "width": width}
        if present is not None and not present[start]:
            keys = ("source", "instance_id") if extra else ()
            out.append((record, Instances.empty((height, width), extra_keys=keys, keypoints=k)))
            continue
        a, b = first[start], first[start] + stop - start
        # the rows were Instances when saved: skip re-validating 100k images on export
        inst = Instances._trusted(
            geoms[a:b],
            labels[a:b],
            scores[a:b],
            (height, width),
            {key: values[a:b] for key, values in columns.items()},
            None if points is None else points[a:b],
        )
        out.append((record, inst))
    return out


def _file_namer(store: Store, root: Path | None) -> Callable[[str], str]:
    """``file_name(stored path)``: the image's path relative to ``root`` (POSIX), or its
    absolute path when ``root`` is None; string operations, not pathlib, per image."""
    absolute = store.absolute_str
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


def _selected_paths(store: Store, status: list[str] | None, split: str | None) -> list[str]:
    """Absolute (normalized) paths of the selected images."""
    where, params = sql_where(status, split)
    with store.read() as con:
        rows = con.execute(f"SELECT DISTINCT path FROM images{where}", params).fetchall()
    return [store.absolute_str(r[0]) for r in rows]


def _below(paths: list[str], root: Path) -> list[bool]:
    """Whether each (normalized absolute) path lies below the folder ``root``."""
    prefix = os.path.normcase(_folder_prefix(str(root)))
    return [os.path.normcase(p).startswith(prefix) for p in paths]


def _common_root(paths: list[str], candidates: list[Path]) -> Path:
    """The first candidate folder holding every path, else their deepest common folder."""
    for root in candidates:
        if all(_below(paths, root)):
            return root
    return Path(os.path.commonpath([os.path.dirname(p) for p in paths]))


def _export_root(
    store: Store, path: Path, status: list[str] | None, split: str | None, image_root: Any
) -> Path:
    paths = _selected_paths(store, status, split)
    if image_root is not None:
        root = as_path(image_root, "image_root")
        outside = [p for p, below in zip(paths, _below(paths, root), strict=True) if not below]
        if outside:
            raise ValueError(
                f"image_root {root} does not hold {len(outside)} of the exported images "
                f"(e.g. {outside[0]}); choose a folder above all of them"
            )
        return root
    root = _common_root(paths, [path.parent, store.folder])
    if root != path.parent:
        warnings.warn(
            f"the exported file_names are relative to {root} (not to the JSON's folder); "
            f"read the file with image_root={str(root)!r}",
            UserWarning,
            stacklevel=4,  # the caller of Project.export_coco
        )
    return root


def dataset(store: Store, *, status: Any = "reviewed", split: Any = None) -> Dataset:
    status_values, split_value = status_filter(status), split_filter(split)
    root = _common_root(_selected_paths(store, status_values, split_value), [store.folder])
    with store.read() as con:
        names, skeleton = read_names(con)
    items = list(iter_items(store, status_values, split_value, root))
    return Dataset(
        list(store.classes),
        [record for record, _ in items],
        {record["id"]: inst for record, inst in items},
        image_root=root,
        keypoints=names,
        skeleton=skeleton,
    )


def export_coco(
    store: Store,
    path: str | os.PathLike,
    *,
    status: Any = "reviewed",
    split: Any = None,
    segmentation: str = "polygon",
    image_root: str | os.PathLike | None = None,
    progress: bool = False,
    workers: int | None = 1,
) -> Path:
    check_choice(segmentation, "segmentation", ("polygon", "rle"))
    target = as_path(path, "path")
    status_values = status_filter(status)
    split_value = split_filter(split)
    root = _export_root(store, target, status_values, split_value, image_root)
    info = {
        "description": f"labelassist project {store.folder.name}",
        "date_created": _schema.now(),
        "image_root": root.as_posix(),
    }
    with store.read() as con:
        names, skeleton = read_names(con)
    if workers is None:
        workers = 1
        if _counts_at_least(store, status_values, split_value, _PARALLEL_MIN_INSTANCES):
            workers = min(os.cpu_count() or 1, _AUTO_WORKERS)
    items = iter_items(
        store,
        status_values,
        split_value,
        root,
        progress,
        extra=False,
        wkb=isinstance(workers, int) and workers > 1,
    )
    return write_coco(
        target,
        store.classes,
        items,
        segmentation=segmentation,
        info=info,
        workers=workers,
        keypoints=names,
        skeleton=skeleton,
    )


def _counts_at_least(store: Store, status: list[str] | None, split: str | None, n: int) -> bool:
    """Whether the selected images have at least ``n`` current instances (reads at most n)."""
    where, params = sql_where(status, split, prefix="i.")
    with store.read() as con:
        (count,) = con.execute(
            "SELECT count(*) FROM (SELECT 1 FROM images i JOIN annotations a"
            f" ON a.image_id = i.id AND a.version = i.version{where} LIMIT ?)",
            [*params, n],
        ).fetchone()
    return bool(count >= n)


# -- in ----------------------------------------------------------------------------------------
def _checked_sizes(
    store: Store, files: list[Path], what: str, progress: bool = False
) -> dict[str, tuple[int, int]]:
    """``(height, width)`` by origin of ``files``: stored for those in the project, decoded
    for the new ones; ValueError listing the files that cannot be read."""
    new, _ = new_files(store, files)
    sizes = stored_sizes(store, files)
    decoded, refused = check_files(new, progress=progress)
    if refused:
        raise ValueError(
            f"cannot read {len(refused)} image file(s) of {what}, nothing was imported: "
            + listed([reason for _, reason in refused])
        )
    sizes.update((path.as_posix(), size) for path, size in decoded.items())
    return sizes


def import_coco(
    store: Store,
    path: str | os.PathLike,
    *,
    image_root: str | os.PathLike | None = None,
    progress: bool = False,
) -> list[int]:
    store.require_writable("import COCO")
    source = Path(path).expanduser()
    data = read_coco(source, image_root=image_root)
    root = as_path(image_root if image_root is not None else source.parent, "image_root")
    mapping = _class_mapping(store.classes, list(data.categories), source)
    with store.read() as con:
        names, columns, skeleton = import_mapping(*read_names(con), data.keypoints, data.skeleton)
    files = [(root / record["file_name"]).resolve() for record in data.images]
    missing = [str(file) for file in files if not file.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} image file(s) of {source} not found, e.g. {missing[0]}; pass "
            "image_root= (CLI: --image-root) to say where the images are"
        )
    if store.copy_images:
        outside = [
            f"{record['file_name']} -> {file}"
            for file, record in zip(files, data.images, strict=True)
            if not file.is_relative_to(root)
        ]
        if outside:
            raise ValueError(
                f"{len(outside)} image file(s) of {source} lead outside the image root {root}"
                f" (symbolic links?), e.g. {outside[0]}; this project copies images and copies "
                "only files inside the image root: put the files themselves there"
            )
    sizes = _checked_sizes(store, files, str(source), progress)
    wrong = []
    for file, record in zip(files, data.images, strict=True):
        want, have = (int(record["height"]), int(record["width"])), sizes[file.as_posix()]
        if have != want:
            wrong.append(
                f"{record['file_name']} is {have[0]}x{have[1]} but its record says "
                f"{want[0]}x{want[1]}"
            )
    if wrong:
        raise ValueError(
            f"{len(wrong)} image(s) of {source} differ from their COCO height x width, nothing "
            f"was imported: {listed(wrong)}; fix the records' height and width"
        )
    new, _ = new_files(store, files)
    rows, copies = place_files(
        store, new, {p: sizes[p.as_posix()] for p in new}, copy=store.copy_images
    )
    placed = {row[2]: row for row in rows}
    items = list(zip(files, data.images, strict=True))
    bar = progress_bar(None, progress, "importing images", total=len(items))
    ids: list[int] = []
    try:
        for start in range(0, len(items), _IMPORT_BATCH):
            batch = items[start : start + _IMPORT_BATCH]
            with store.write("import COCO") as con:
                if names is not None and start == 0:
                    write_names(con, names, skeleton, where=str(store.folder))
                for file, record in batch:
                    row = placed.pop(file.as_posix(), None)
                    if row is not None:
                        insert_images(con, [row])
                    [number] = ids_of(con, [file.as_posix()])
                    inst = data.instances.get(record["id"])
                    if inst is None:
                        inst = Instances.empty((int(record["height"]), int(record["width"])))
                    inst = inst.replace(
                        labels=mapping[inst.labels],
                        extra={},
                        keypoints=remap_points(inst.keypoints, columns, names),
                    )
                    write_instances(con, number, inst, "human", None, status="reviewed")
                    ids.append(number)
            bar.update(len(batch))
    except BaseException:
        # the copies of images that were not added (earlier batches are committed)
        left = {store.absolute_str(row[1]) for row in placed.values()}
        _files.remove_copies([copy for copy in copies if str(copy) in left])
        raise
    finally:
        bar.close()
    return ids


def _class_mapping(classes: list[str], categories: list[str], path: Path) -> np.ndarray:
    unknown = [name for name in categories if name not in classes]
    if unknown:
        raise ValueError(
            f"categories {unknown} of {path} are not classes of this project "
            f"{classes}; rename them in the file or create a project with these classes"
        )
    return np.array([classes.index(name) for name in categories], dtype=np.int64)


def import_label_images(
    store: Store,
    images: Sequence[str | os.PathLike],
    label_images: Sequence[np.ndarray | str | os.PathLike],
    *,
    label: int = 0,
    tolerance: float = 0.0,
    status: str = "reviewed",
) -> list[int]:
    store.require_writable("import label images")
    if isinstance(images, (str, os.PathLike)) or isinstance(label_images, (str, os.PathLike)):
        raise TypeError(
            "images and label_images must be lists (one entry per image); for one image "
            "write [path]"
        )
    paths = [as_path(p, f"images[{k}]") for k, p in enumerate(images)]
    sources = list(label_images)
    if len(paths) != len(sources):
        raise ValueError(
            f"images has {len(paths)} entries but label_images has {len(sources)}; give "
            "one label image per image"
        )
    check_choice(status, "status", _schema.STATUSES)
    data = Dataset.from_label_images(
        sources, categories=store.classes, label=label, tolerance=tolerance
    )
    new, _ = new_files(store, paths)
    missing = [str(p) for p in new if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"image files not found: {', '.join(missing[:5])}")
    sizes = _checked_sizes(store, paths, "images")
    for k, path in enumerate(paths):
        size, record = sizes[path.as_posix()], data.images[k]
        if size != (record["height"], record["width"]):
            raise ValueError(
                f"label_images[{k}] is {record['height']}x{record['width']} but image "
                f"{path} is {size[0]}x{size[1]} (height x width); they must match"
            )
    rows, copies = place_files(
        store, new, {p: sizes[p.as_posix()] for p in new}, copy=store.copy_images
    )
    try:
        with store.write("import label images") as con:
            insert_images(con, rows)
            ids = ids_of(con, [p.as_posix() for p in paths])
            for k, number in enumerate(ids):
                inst = data.instances[k + 1]
                write_instances(con, number, inst, "human", None, status=status)
    except BaseException:
        _files.remove_copies(copies)
        raise
    return ids
