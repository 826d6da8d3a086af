"""The labeling project store: a folder with a SQLite database, images and checkpoints.

A project folder holds

- ``project.db``: the truth. Images (status, split, size), every saved version of each
  image's instances (exact shapely WKB geometry, label, score and provenance per
  instance), training rounds with their metrics and checkpoints;
- ``images/``: copies of the images when the project copies them (otherwise the database
  refers to the files where they are, relative to the project folder when possible);
- ``checkpoints/``: model checkpoints of the training rounds.

Every edit is one SQLite transaction, committed durably (WAL, ``synchronous=FULL``): a
crash loses nothing that `Project.save_instances` returned from. Several processes may
use a project at once (the napari plugin saving, a training process reading): writers
queue on a busy timeout, readers never wait. COCO is the exchange format in and out
(`Project.export_coco`, `Project.import_coco`).

Geometry is in COCO's continuous pixel coordinates ``(x, y)``: the pixel at row ``i``,
column ``j`` covers the square ``[j, j+1] x [i, i+1]``.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from ..instances import Instances
from . import exchange as _coco
from . import files as _files
from . import schema as _schema
from ._util import (
    UNCERTAIN_BAND,
    check_choice,
    check_classes,
    instance_ids_of,
    json_dumps_checked,
    looks_like_sqlite,
    progress_bar,
    remove_copies,
    rows_to_instances,
    same_geometry,
    split_filter,
    sql_where,
    status_filter,
    uncertain_fraction,
    update_counts,
)

__all__ = ["Project", "STATUSES", "SOURCES", "UNCERTAIN_BAND"]

logger = logging.getLogger(__name__)

STATUSES = _schema.STATUSES
SOURCES = _schema.SOURCES
DB_NAME = _coco.DB_NAME
_IMAGE_COLUMNS = "id, file_name, path, height, width, status, split, n_instances, updated, version"


class Project:
    """A labeling project: images, their instances with history, and training rounds.

    Create one with `Project.create` or open one with `Project.open`; use it as a context
    manager or call `close`. Methods taking an ``image`` accept an image id (int) or an
    image record (a dict with ``"id"``, as returned by `images`). Threads may share one
    `Project` (its calls are serialized); each process opens its own.

    Attributes
    ----------
    folder : Path
        The project folder (absolute).
    classes : list of str
        Class names; instance labels are 0-based indices into this list.
    checkpoint_dir : Path
        Where training rounds keep their checkpoints (``folder / "checkpoints"``).
    copy_images : bool
        Whether `add_images` copies images into ``folder / "images"`` by default.

    Examples
    --------
    >>> import tempfile, numpy as np, imageio.v3 as iio, shapely
    >>> import labelassist as la
    >>> folder = tempfile.mkdtemp()
    >>> iio.imwrite(f"{folder}/a.png", np.zeros((32, 48), np.uint8))
    >>> with la.Project.create(f"{folder}/proj", classes=["nucleus"]) as project:
    ...     [image_id] = project.add_images(f"{folder}/a.png")
    ...     inst = la.Instances([shapely.box(2, 2, 9, 8)], [0], [0.6], (32, 48))
    ...     project.save_instances(image_id, inst, source="model")
    ...     project.images()[0]["status"], len(project.instances(image_id))
    ('pre-annotated', 1)
    """

    def __init__(self, folder: Path, con: sqlite3.Connection) -> None:
        # private: use Project.create or Project.open
        self.folder = folder
        self._folder_str = str(folder)
        self._con: sqlite3.Connection | None = con
        self._lock = threading.RLock()
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        self.classes: list[str] = json.loads(meta["classes"])
        self.copy_images: bool = meta.get("copy_images") == "1"
        self.checkpoint_dir = folder / "checkpoints"
        self.images_dir = folder / "images"

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def create(
        cls, folder: str | os.PathLike, *, classes: Sequence[str], copy_images: bool = False
    ) -> Project:
        """Create a project in ``folder`` (created when missing).

        Parameters
        ----------
        folder : str or os.PathLike
            The project folder. It may exist and hold other files; it must not hold a
            project with images or rounds already (an empty project with the same classes
            is opened instead, so that ``init`` can be repeated).
        classes : sequence of str
            Non-empty, unique class names.
        copy_images : bool, optional
            Whether `add_images` copies images into the project by default.

        Returns
        -------
        Project

        Examples
        --------
        >>> import tempfile
        >>> project = Project.create(tempfile.mkdtemp(), classes=["nucleus", "debris"])
        >>> project.classes, project.images()
        (['nucleus', 'debris'], [])
        >>> project.close()
        """
        names = check_classes(classes)
        if not isinstance(copy_images, (bool, np.bool_)):
            raise TypeError(f"copy_images must be True or False, got {copy_images!r}")
        folder = Path(folder).expanduser().resolve()
        if folder.exists() and not folder.is_dir():
            raise FileExistsError(f"folder {folder} is a file; choose a folder for the project")
        db = folder / DB_NAME
        if db.exists():
            project = cls.open(folder)
            stats = project.stats()
            if stats["images"] or stats["rounds"] or project.classes != names:
                project.close()
                raise FileExistsError(
                    f"{folder} already holds a labelassist project with {stats['images']} "
                    f"images and classes {project.classes}; open it with Project.open or "
                    "choose another folder"
                )
            return project
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "checkpoints").mkdir(exist_ok=True)
        # a fresh name (not mkstemp: its 0600 mode would lock out the team)
        tmp = str(folder / f".project-{uuid.uuid4().hex}.db")
        try:
            con = _schema.connect(Path(tmp))
            try:
                from .._version import __version__

                _schema.create_schema(
                    con,
                    {
                        "classes": json.dumps(names),
                        "copy_images": "1" if copy_images else "0",
                        "created": _schema.now(),
                        "created_by": f"labelassist {__version__}",
                    },
                )
            finally:
                con.close()  # checkpoints the WAL into the file
            os.replace(tmp, db)
        finally:
            for leftover in (tmp, tmp + "-wal", tmp + "-shm"):
                Path(leftover).unlink(missing_ok=True)
        return cls.open(folder)

    @classmethod
    def open(cls, folder: str | os.PathLike) -> Project:
        """Open the project in ``folder``, migrating an older schema version.

        Raises
        ------
        FileNotFoundError
            If ``folder`` does not exist.
        ValueError
            If ``folder`` is not a labelassist project, or was created by a newer
            labelassist (upgrade labelassist to open it).

        Examples
        --------
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> Project.create(folder, classes=["cell"]).close()
        >>> with Project.open(folder) as project:
        ...     project.classes
        ['cell']
        """
        folder = Path(folder).expanduser().resolve()
        if not folder.is_dir():
            raise FileNotFoundError(f"no such project folder: {folder}")
        db = folder / DB_NAME
        if not db.is_file():
            raise ValueError(
                f"{folder} is not a labelassist project (no {DB_NAME}); create one with "
                "Project.create or `labelassist project init`"
            )
        con = _schema.connect(db) if looks_like_sqlite(db) else None
        if con is None:
            raise ValueError(f"{folder} is not a labelassist project ({DB_NAME} is not SQLite)")
        try:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            fmt = con.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        except sqlite3.DatabaseError:
            fmt, version = None, 0
        if fmt is None or fmt[0] != _schema.FORMAT:
            con.close()
            raise ValueError(
                f"{folder} is not a labelassist project ({DB_NAME} has no project data)"
            )
        if version > _schema.SCHEMA_VERSION:
            con.close()
            raise ValueError(
                f"project {folder} was created by a newer labelassist (schema version "
                f"{version}, this labelassist reads up to {_schema.SCHEMA_VERSION}); upgrade: "
                "pip install -U labelassist"
            )
        if version < _schema.SCHEMA_VERSION:
            if version not in _schema.MIGRATIONS:
                con.close()
                raise ValueError(f"project {folder} has unknown schema version {version}")
            logger.info(
                "migrating project %s from schema %d to %d", folder, version, _schema.SCHEMA_VERSION
            )
            _schema.migrate(con, version, folder)
        return cls(folder, con)

    def close(self) -> None:
        """Close the database connection (idempotent)."""
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._con is None else f"classes={self.classes}"
        return f"Project({str(self.folder)!r}, {state})"

    @property
    def con(self) -> sqlite3.Connection:
        """The open SQLite connection (for advanced queries; use the methods to write)."""
        if self._con is None:
            raise ValueError("the project is closed; open it again with Project.open")
        return self._con

    # -- images --------------------------------------------------------------------------
    def add_images(
        self,
        paths_or_folder_or_glob: str | os.PathLike | Iterable[str | os.PathLike],
        *,
        copy: bool | None = None,
        split: str | None = None,
        progress: bool = False,
    ) -> list[int]:
        """Add image files to the project (status ``"new"``).

        Parameters
        ----------
        paths_or_folder_or_glob : path, folder, glob pattern, or a list of those
            A folder adds its files with an image suffix (.png, .jpg, .jpeg, .tif, .tiff,
            .bmp; not recursive); a glob pattern (``**`` recurses) adds what it matches.
        copy : bool, optional
            Copy the files into ``folder / "images"``; default: the project's
            ``copy_images``. Otherwise the project refers to the files where they are.
        split : {"train", "val"}, optional
            Split of the added images.
        progress : bool, optional
            Show a progress bar while reading image sizes.

        Returns
        -------
        list of int
            Ids of the added images. Files already in the project (same resolved path)
            are skipped with one warning giving their count.

        Raises
        ------
        FileNotFoundError
            If a path, folder or pattern matches no file.
        ValueError
            If files cannot be read as images: the message lists them and nothing is
            added (fix or remove them, then add again).

        Examples
        --------
        >>> import tempfile, numpy as np, imageio.v3 as iio
        >>> folder = tempfile.mkdtemp()
        >>> for name in ("a.png", "b.png"):
        ...     iio.imwrite(f"{folder}/{name}", np.zeros((16, 24), np.uint8))
        >>> with Project.create(f"{folder}/proj", classes=["cell"]) as project:
        ...     project.add_images(folder), project.images()[1]["height"]
        ([1, 2], 16)
        """
        if copy is None:
            copy = self.copy_images
        if split is not None:
            check_choice(split, "split", _schema.SPLITS)
        paths = _files.collect_paths(paths_or_folder_or_glob)
        new, n_dupes = self._new_files(paths)
        sizes, bad = {}, []
        for path in progress_bar(new, progress, "reading image sizes"):
            try:
                sizes[path] = _files.image_size(path)
            except Exception as exc:  # any decoder error: report it with the file
                bad.append(f"{path} ({type(exc).__name__}: {exc})")
        if bad:
            shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise ValueError(
                f"cannot read {len(bad)} of {len(new)} image files, nothing was added: {shown}"
            )
        if n_dupes:
            warnings.warn(
                f"skipped {n_dupes} image(s) already in the project (same file)",
                UserWarning,
                stacklevel=2,
            )
        rows, copies = self._place_files(new, sizes, copy=copy)
        try:
            with self._lock, _schema.write_transaction(self.con) as con:
                ids = []
                stamp = _schema.now()
                for file_name, path, origin, (height, width) in rows:
                    cur = con.execute(
                        "INSERT INTO images (file_name, path, origin, height, width, split,"
                        " updated) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (file_name, path, origin, height, width, split, stamp),
                    )
                    ids.append(int(cur.lastrowid))
        except BaseException:
            remove_copies(copies)  # the copies of images that were not added
            raise
        return ids

    def _new_files(self, paths: list[Path]) -> tuple[list[Path], int]:
        """Resolved ``paths`` not yet in the project, and how many were duplicates."""
        resolved = [p.resolve() for p in paths]
        seen: set[str] = set()
        unique = []
        for path in resolved:
            if path.as_posix() not in seen:
                seen.add(path.as_posix())
                unique.append(path)
        known: set[str] = set()
        keys = [p.as_posix() for p in unique]
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                known.update(
                    row[0]
                    for row in self.con.execute(
                        f"SELECT origin FROM images WHERE origin IN ({', '.join('?' * len(chunk))})",
                        chunk,
                    )
                )
        new = [p for p in unique if p.as_posix() not in known]
        return new, len(paths) - len(new)

    def _place_files(
        self, paths: list[Path], sizes: dict[Path, tuple[int, int]], *, copy: bool
    ) -> tuple[list[tuple[str, str, str, tuple[int, int]]], list[Path]]:
        """(file_name, stored path, origin, size) per file, copying when asked; and the
        copies made (for `remove_copies` when the database write fails)."""
        rows, copies = [], []
        taken: set[str] = set()
        images_dir = self.images_dir.resolve()
        try:
            for path in paths:
                target = path
                if copy and images_dir not in path.parents:
                    target = _files.copy_into(path, images_dir, taken)
                    copies.append(target)
                stored = _files.stored_path(target, self.folder)
                rows.append((target.name, stored, path.as_posix(), sizes[path]))
        except BaseException:
            remove_copies(copies)
            raise
        return rows, copies

    def images(
        self, *, status: str | Sequence[str] | None = None, split: str | None = None
    ) -> list[dict]:
        """Image records, ordered by id.

        Parameters
        ----------
        status : str or sequence of str, optional
            Keep images with this status (or any of these); None or ``"all"``: every image.
        split : {"train", "val", "unassigned"}, optional
            Keep images of this split; None: any split.

        Returns
        -------
        list of dict
            ``id, file_name, path`` (absolute, str), ``height, width, status, split``
            (``"train"``, ``"val"`` or None), ``n_instances, updated`` (ISO 8601 UTC) and
            ``version`` (the current annotation version, 0 before the first save).

        Examples
        --------
        >>> import tempfile
        >>> with Project.create(tempfile.mkdtemp(), classes=["cell"]) as project:
        ...     project.images(status="reviewed")
        []
        """
        where, params = sql_where(status_filter(status), split_filter(split))
        with self._lock:
            rows = self.con.execute(
                f"SELECT {_IMAGE_COLUMNS} FROM images{where} ORDER BY id", params
            ).fetchall()
        return [self._record(row) for row in rows]

    def _record(self, row: Sequence[Any]) -> dict:
        image_id, file_name, path, height, width, status, split, n, updated, version = row
        return {
            "id": image_id,
            "file_name": file_name,
            "path": self._absolute_str(path),
            "height": height,
            "width": width,
            "status": status,
            "split": split,
            "n_instances": n,
            "updated": updated,
            "version": version,
        }

    def _absolute(self, stored: str) -> Path:
        return Path(self._absolute_str(stored))

    def _absolute_str(self, stored: str) -> str:
        # plain os.path: images() builds 100k of these
        return os.path.normpath(os.path.join(self._folder_str, stored))

    def _image_id(self, image: Any) -> int:
        if isinstance(image, Mapping):
            if "id" not in image:
                raise ValueError("image record has no 'id'; pass a record from Project.images()")
            image = image["id"]
        if isinstance(image, (bool, np.bool_)) or not isinstance(image, (int, np.integer)):
            raise TypeError(
                f"image must be an image id (int) or a record from Project.images(), got {image!r}"
            )
        return int(image)

    def _image_row(self, image: Any, columns: str = _IMAGE_COLUMNS) -> tuple:
        image_id = self._image_id(image)
        row = self.con.execute(f"SELECT {columns} FROM images WHERE id = ?", (image_id,)).fetchone()
        if row is None:
            raise ValueError(f"image {image_id} is not in this project; see Project.images()")
        return row

    def image(self, image: int | Mapping) -> dict:
        """The current record of one image (see `images`).

        Examples
        --------
        >>> import tempfile
        >>> with Project.create(tempfile.mkdtemp(), classes=["cell"]) as project:
        ...     project.image(1)
        Traceback (most recent call last):
        ...
        ValueError: image 1 is not in this project; see Project.images()
        """
        with self._lock:
            return self._record(self._image_row(image))

    def image_path(self, image: int | Mapping) -> Path:
        """Absolute path of an image file.

        Examples
        --------
        >>> import tempfile, numpy as np, imageio.v3 as iio
        >>> folder = tempfile.mkdtemp()
        >>> iio.imwrite(f"{folder}/a.png", np.zeros((8, 8), np.uint8))
        >>> with Project.create(f"{folder}/p", classes=["cell"], copy_images=True) as project:
        ...     project.image_path(project.add_images(f"{folder}/a.png")[0]).parent.name
        'images'
        """
        with self._lock:
            (stored,) = self._image_row(image, "path")
        return self._absolute(stored)

    def set_status(self, image: int | Mapping, status: str) -> None:
        """Set the review status: ``"new"``, ``"pre-annotated"``, ``"in-review"``,
        ``"reviewed"`` or ``"skipped"``.

        Examples
        --------
        >>> import tempfile, numpy as np, imageio.v3 as iio
        >>> folder = tempfile.mkdtemp()
        >>> iio.imwrite(f"{folder}/a.png", np.zeros((8, 8), np.uint8))
        >>> with Project.create(f"{folder}/p", classes=["cell"]) as project:
        ...     [i] = project.add_images(f"{folder}/a.png")
        ...     project.set_status(i, "reviewed")
        ...     project.image(i)["status"]
        'reviewed'
        """
        check_choice(status, "status", STATUSES)
        image_id = self._image_id(image)
        with self._lock, _schema.write_transaction(self.con) as con:
            cur = con.execute(
                "UPDATE images SET status = ?, updated = ? WHERE id = ?",
                (status, _schema.now(), image_id),
            )
            if cur.rowcount == 0:
                raise ValueError(f"image {image_id} is not in this project; see Project.images()")

    def set_split(self, images: int | Mapping | Iterable[int | Mapping], split: str | None) -> None:
        """Put one image or several into ``split`` (``"train"``, ``"val"`` or None).

        Examples
        --------
        >>> import tempfile, numpy as np, imageio.v3 as iio
        >>> folder = tempfile.mkdtemp()
        >>> iio.imwrite(f"{folder}/a.png", np.zeros((8, 8), np.uint8))
        >>> with Project.create(f"{folder}/p", classes=["cell"]) as project:
        ...     project.set_split(project.add_images(folder), "val")
        ...     [r["split"] for r in project.images()]
        ['val']
        """
        if split is not None:
            check_choice(split, "split", _schema.SPLITS)
        if isinstance(images, (Mapping, int, np.integer)):
            images = [images]
        ids = [self._image_id(image) for image in images]
        with self._lock, _schema.write_transaction(self.con) as con:
            stamp = _schema.now()
            for image_id in ids:
                cur = con.execute(
                    "UPDATE images SET split = ?, updated = ? WHERE id = ?",
                    (split, stamp, image_id),
                )
                if cur.rowcount == 0:
                    raise ValueError(
                        f"image {image_id} is not in this project; see Project.images()"
                    )

    def assign_splits(
        self, *, val_fraction: float = 0.2, seed: int = 0, overwrite: bool = False
    ) -> dict[str, int]:
        """Randomly split images without a split (all images with ``overwrite``) into
        train and val; return how many went into each.

        ``round(val_fraction * n)`` of the ``n`` images go to val, chosen by a
        ``numpy.random.default_rng(seed)`` permutation (reproducible).

        Examples
        --------
        >>> import tempfile, numpy as np, imageio.v3 as iio
        >>> folder = tempfile.mkdtemp()
        >>> for k in range(5):
        ...     iio.imwrite(f"{folder}/{k}.png", np.zeros((8, 8), np.uint8))
        >>> with Project.create(f"{folder}/p", classes=["cell"]) as project:
        ...     _ = project.add_images(folder)
        ...     project.assign_splits(val_fraction=0.4, seed=1)
        {'train': 3, 'val': 2}
        """
        if not isinstance(val_fraction, (int, float, np.floating)) or not 0 <= val_fraction <= 1:
            raise ValueError(f"val_fraction must be a number in [0, 1], got {val_fraction!r}")
        with self._lock, _schema.write_transaction(self.con) as con:
            where = "" if overwrite else " WHERE split IS NULL"
            ids = np.array([r[0] for r in con.execute(f"SELECT id FROM images{where} ORDER BY id")])
            order = np.random.default_rng(seed).permutation(len(ids))
            n_val = int(round(val_fraction * len(ids)))
            val = set(ids[order[:n_val]].tolist())
            stamp = _schema.now()
            con.executemany(
                "UPDATE images SET split = ?, updated = ? WHERE id = ?",
                [("val" if i in val else "train", stamp, int(i)) for i in ids],
            )
        return {"train": len(ids) - n_val, "val": n_val}

    # -- instances -----------------------------------------------------------------------
    def save_instances(
        self,
        image: int | Mapping,
        instances: Instances,
        *,
        source: str = "model",
        model_id: str | None = None,
    ) -> None:
        """Replace an image's instances, keeping the previous version in its history.

        The save is one transaction, durable when this returns.

        Parameters
        ----------
        image : int or dict
            Image id or record.
        instances : Instances
            The image's instances now; ``image_shape`` must be the image's
            ``(height, width)``, labels index `classes`. An ``extra["instance_id"]`` column
            (as returned by `instances`) ties instances to their previous versions; other
            extra columns are not stored.
        source : {"model", "corrected", "human"}
            Who made this version. ``"model"`` and ``"human"`` mark every instance so.
            ``"corrected"`` (a person edited the instances) marks each instance by
            comparison with the current version: unchanged (same ``instance_id``, label and
            geometry) keeps its source, changed becomes ``"corrected"``, new (no known
            ``instance_id``) becomes ``"human"``.
        model_id : str, optional
            Which model made the instances (a checkpoint name, a round), kept in the history.

        Notes
        -----
        Saving ``"model"`` output moves a ``"new"`` image to ``"pre-annotated"``; saving
        ``"corrected"`` or ``"human"`` moves a new or pre-annotated image to
        ``"in-review"``. Other statuses stay.

        Examples
        --------
        >>> import tempfile, numpy as np, imageio.v3 as iio, shapely
        >>> folder = tempfile.mkdtemp()
        >>> iio.imwrite(f"{folder}/a.png", np.zeros((16, 16), np.uint8))
        >>> with Project.create(f"{folder}/p", classes=["cell"]) as project:
        ...     [i] = project.add_images(folder)
        ...     proposal = Instances([shapely.box(1, 1, 5, 5), shapely.box(8, 8, 12, 12)],
        ...                          [0, 0], [0.9, 0.4], (16, 16))
        ...     project.save_instances(i, proposal, source="model")
        ...     current = project.instances(i)
        ...     fixed = current[[0]]  # the annotator deletes the second proposal
        ...     project.save_instances(i, fixed, source="corrected")
        ...     project.instances(i).extra["source"].tolist(), len(project.history(i))
        (['model'], 2)
        """
        if not isinstance(instances, Instances):
            raise TypeError(f"instances must be an Instances, got {type(instances).__name__}")
        check_choice(source, "source", SOURCES)
        if model_id is not None and not isinstance(model_id, str):
            raise TypeError(f"model_id must be a str or None, got {model_id!r}")
        self._check_labels(instances)
        image_id = self._image_id(image)
        with self._lock, _schema.write_transaction(self.con) as con:
            self._write_instances(con, image_id, instances, source, model_id)

    def _check_labels(self, instances: Instances) -> None:
        if len(instances) and int(instances.labels.max()) >= len(self.classes):
            raise ValueError(
                f"instances have label {int(instances.labels.max())}, but the project has "
                f"{len(self.classes)} classes {self.classes} (labels are 0-based indices)"
            )

    def _write_instances(
        self,
        con: sqlite3.Connection,
        image_id: int,
        instances: Instances,
        source: str,
        model_id: str | None,
        status: str | None = None,
    ) -> None:
        """Write a new version inside the caller's write transaction."""
        row = con.execute(
            "SELECT height, width, status, version FROM images WHERE id = ?", (image_id,)
        ).fetchone()
        if row is None:
            raise ValueError(f"image {image_id} is not in this project; see Project.images()")
        height, width, old_status, current = row
        if tuple(instances.image_shape) != (height, width):
            raise ValueError(
                f"instances have image_shape {instances.image_shape}, but image {image_id} is "
                f"(height, width) = ({height}, {width})"
            )
        wkb = shapely.to_wkb(instances.polygons) if len(instances) else []
        previous = con.execute(
            "SELECT instance_id, label, source, geometry FROM annotations"
            " WHERE image_id = ? AND version = ?",
            (image_id, current),
        ).fetchall()
        ids, sources = self._provenance(con, image_id, instances, source, previous)
        version = (
            1
            + con.execute(
                "SELECT coalesce(max(version), 0) FROM edits WHERE image_id = ?", (image_id,)
            ).fetchone()[0]
        )
        stamp = _schema.now()
        n = len(instances)
        con.execute(
            "INSERT INTO edits (image_id, version, parent, source, model_id, n_instances, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (image_id, version, current, source, model_id, n, stamp),
        )
        con.executemany(
            "INSERT INTO annotations (image_id, version, instance_id, label, score, source,"
            " geometry) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    image_id,
                    version,
                    ids[k],
                    int(instances.labels[k]),
                    float(instances.scores[k]),
                    sources[k],
                    wkb[k],
                )
                for k in range(n)
            ],
        )
        if None in ids:
            con.execute(
                "UPDATE annotations SET instance_id = id WHERE image_id = ? AND version = ?"
                " AND instance_id IS NULL",
                (image_id, version),
            )
        update_counts(con, [(r[1], r[2]) for r in previous], -1)
        update_counts(con, zip(instances.labels.tolist(), sources, strict=True), +1)
        if status is None:
            status = old_status
            if source == "model" and old_status == "new":
                status = "pre-annotated"
            elif source != "model" and old_status in ("new", "pre-annotated"):
                status = "in-review"
        con.execute(
            "UPDATE images SET version = ?, n_instances = ?, uncertainty = ?, status = ?,"
            " updated = ? WHERE id = ?",
            (version, n, uncertain_fraction(instances.scores, sources), status, stamp, image_id),
        )

    def _provenance(
        self,
        con: sqlite3.Connection,
        image_id: int,
        instances: Instances,
        source: str,
        previous: list[tuple],
    ) -> tuple[list[int | None], list[str]]:
        """Instance ids (None: new) and per-instance sources of a save."""
        wanted = instance_ids_of(instances)
        known = set()
        if any(i is not None for i in wanted):
            known = {
                r[0]
                for r in con.execute(
                    "SELECT DISTINCT instance_id FROM annotations WHERE image_id = ?", (image_id,)
                )
            }
        ids: list[int | None] = []
        used: set[int] = set()
        for value in wanted:
            keep = value is not None and value in known and value not in used
            ids.append(value if keep else None)
            if keep:
                used.add(value)
        if source != "corrected":
            return ids, [source] * len(instances)
        before = {r[0]: r for r in previous}
        sources = []
        for k, instance_id in enumerate(ids):
            old = before.get(instance_id)
            if instance_id is None:
                sources.append("human")
            elif (
                old is not None
                and old[1] == int(instances.labels[k])
                and same_geometry(shapely.from_wkb(old[3]), instances.polygons[k])
            ):
                sources.append(old[2])
            else:
                sources.append("corrected")
        return ids, sources

    def instances(self, image: int | Mapping, *, version: int | None = None) -> Instances:
        """The instances of an image (its current version, or ``version`` from `history`).

        Returns
        -------
        Instances
            With extra columns ``"source"`` (str: ``"model"``, ``"corrected"`` or
            ``"human"``) and ``"instance_id"`` (int64, stable across versions: pass it back
            to `save_instances` so that edits are tracked per instance).

        Examples
        --------
        >>> import tempfile, numpy as np, imageio.v3 as iio
        >>> folder = tempfile.mkdtemp()
        >>> iio.imwrite(f"{folder}/a.png", np.zeros((8, 8), np.uint8))
        >>> with Project.create(f"{folder}/p", classes=["cell"]) as project:
        ...     project.instances(project.add_images(folder)[0])
        Instances(n=0, image_shape=(8, 8), extra=['instance_id', 'source'])
        """
        with self._lock, _schema.read_transaction(self.con) as con:
            image_id, height, width, current = self._image_row(image, "id, height, width, version")
            if version is None:
                version = current
            elif not isinstance(version, (int, np.integer)) or (
                version != 0
                and con.execute(
                    "SELECT 1 FROM edits WHERE image_id = ? AND version = ?", (image_id, version)
                ).fetchone()
                is None
            ):
                raise ValueError(
                    f"image {image_id} has no version {version!r}; see Project.history({image_id})"
                )
            rows = con.execute(
                "SELECT instance_id, label, score, source, geometry FROM annotations"
                " WHERE image_id = ? AND version = ? ORDER BY id",
                (image_id, int(version)),
            ).fetchall()
        return rows_to_instances(rows, (height, width))

    def history(self, image: int | Mapping) -> list[dict]:
        """Saved versions of an image's instances, oldest first.

        Returns
        -------
        list of dict
            ``version`` (1, 2, ...), ``parent`` (the version it replaced; 0: none),
            ``source``, ``model_id``, ``n_instances``, ``created`` and ``current`` (bool).
            Fetch one with ``instances(image, version=...)``.

        Examples
        --------
        >>> import tempfile, numpy as np, imageio.v3 as iio
        >>> folder = tempfile.mkdtemp()
        >>> iio.imwrite(f"{folder}/a.png", np.zeros((8, 8), np.uint8))
        >>> with Project.create(f"{folder}/p", classes=["cell"]) as project:
        ...     project.history(project.add_images(folder)[0])
        []
        """
        with self._lock, _schema.read_transaction(self.con) as con:
            image_id, current = self._image_row(image, "id, version")
            rows = con.execute(
                "SELECT version, parent, source, model_id, n_instances, created FROM edits"
                " WHERE image_id = ? ORDER BY version",
                (image_id,),
            ).fetchall()
        keys = ("version", "parent", "source", "model_id", "n_instances", "created")
        return [dict(zip(keys, row, strict=True), current=row[0] == current) for row in rows]

    def undo(self, image: int | Mapping) -> Instances:
        """Go back to the version the current one replaced; return the instances now.

        The undone version stays in the history. The image's status does not change.

        Raises
        ------
        ValueError
            If the image has no saved version to go back from.

        Examples
        --------
        >>> import tempfile, numpy as np, imageio.v3 as iio, shapely
        >>> folder = tempfile.mkdtemp()
        >>> iio.imwrite(f"{folder}/a.png", np.zeros((8, 8), np.uint8))
        >>> with Project.create(f"{folder}/p", classes=["cell"]) as project:
        ...     [i] = project.add_images(folder)
        ...     project.save_instances(i, Instances([shapely.box(0, 0, 2, 2)], [0], [1.0], (8, 8)))
        ...     len(project.undo(i))
        0
        """
        image_id = self._image_id(image)
        with self._lock, _schema.write_transaction(self.con) as con:
            current = self._image_row(image_id, "version")[0]
            if current == 0:
                raise ValueError(f"nothing to undo: image {image_id} has no saved instances")
            (parent,) = con.execute(
                "SELECT parent FROM edits WHERE image_id = ? AND version = ?", (image_id, current)
            ).fetchone()
            rows = con.execute(
                "SELECT version, label, source, score FROM annotations"
                " WHERE image_id = ? AND version IN (?, ?)",
                (image_id, current, parent),
            ).fetchall()
            update_counts(con, [(r[1], r[2]) for r in rows if r[0] == current], -1)
            kept = [r for r in rows if r[0] == parent]
            update_counts(con, [(r[1], r[2]) for r in kept], +1)
            con.execute(
                "UPDATE images SET version = ?, n_instances = ?, uncertainty = ?, updated = ?"
                " WHERE id = ?",
                (
                    parent,
                    len(kept),
                    uncertain_fraction(np.array([r[3] for r in kept]), [r[2] for r in kept]),
                    _schema.now(),
                    image_id,
                ),
            )
        return self.instances(image_id)

    # -- datasets and COCO ---------------------------------------------------------------

    def dataset(self, *, status: str | Sequence[str] | None = "reviewed", split: str | None = None):
        """The selected images and their current instances as a `labelassist.coco.Dataset`.

        Image records have the project's image ``id``, ``file_name`` relative to the
        dataset's ``image_root`` (the project folder when every selected image lies in
        it, else the images' deepest common folder), ``height`` and ``width``; every image
        has an `Instances` (maybe empty) with the ``"source"`` and ``"instance_id"`` extra
        columns.

        Parameters
        ----------
        status : str or sequence of str, optional
            Images with this status (default ``"reviewed"``); None or ``"all"``: every image.
        split : {"train", "val", "unassigned"}, optional
            Only images of this split.

        Examples
        --------
        >>> import tempfile
        >>> with Project.create(tempfile.mkdtemp(), classes=["cell"]) as project:
        ...     len(project.dataset().images)
        0
        """
        return _coco.dataset(self, status=status, split=split)

    def export_coco(
        self,
        path: str | os.PathLike,
        *,
        status: str | Sequence[str] | None = "reviewed",
        split: str | None = None,
        segmentation: str = "polygon",
        image_root: str | os.PathLike | None = None,
        progress: bool = False,
        workers: int | None = 1,
    ) -> Path:
        """Write the selected images and their current instances to a COCO file.

        The file is streamed (`labelassist.coco.write_coco`): memory does not grow with the
        project, and the file appears atomically when complete.

        Parameters
        ----------
        path : str or os.PathLike
            The ``.json`` file to write.
        status, split
            Which images, as in `dataset` (default: reviewed images).
        segmentation : {"polygon", "rle"}, optional
            See `labelassist.coco.instances_to_coco`.
        image_root : str or os.PathLike, optional
            Folder the ``file_name`` entries are relative to. Default: the JSON's folder
            when every image lies under it, else the project folder, else the images'
            deepest common folder; the choice is written to ``info["image_root"]``, and a
            warning tells to pass it when reading when it is not the JSON's folder.
        progress : bool, optional
            Show a progress bar (tqdm) of the exported images.
        workers : int or None, optional
            Processes converting instances to COCO while this one reads the project and
            writes the file (see `labelassist.coco.write_coco`); 1 (default): all in this
            process. ``None``: ``min(os.cpu_count(), 4)`` from 50,000 selected instances
            (starting the processes takes about a second), else 1; ``labelassist project
            export`` does that. The file is the same either way. The processes are
            *spawned*: like any spawn-based multiprocessing, a script passing
            ``workers != 1`` needs the ``if __name__ == "__main__":`` guard.

        Returns
        -------
        Path
            ``path``.

        Examples
        --------
        >>> import tempfile, json, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> with Project.create(folder / "p", classes=["cell"]) as project:
        ...     out = project.export_coco(folder / "labels.json")
        >>> sorted(json.loads(out.read_text()))
        ['annotations', 'categories', 'images', 'info', 'licenses']
        """
        return _coco.export_coco(
            self,
            path,
            status=status,
            split=split,
            segmentation=segmentation,
            image_root=image_root,
            progress=progress,
            workers=workers,
        )

    def import_coco(
        self,
        path: str | os.PathLike,
        *,
        image_root: str | os.PathLike | None = None,
        progress: bool = False,
    ) -> list[int]:
        """Import a COCO file's images and annotations as reviewed, human-made labels.

        Images already in the project (same file) get the file's instances as a new
        version; the others are added (copied when the project copies images). Category
        names must be project classes.

        Parameters
        ----------
        path : str or os.PathLike
            The COCO ``.json``.
        image_root : str or os.PathLike, optional
            Folder the ``file_name`` entries are relative to; default: the JSON's folder.
        progress : bool, optional
            Show a progress bar.

        Returns
        -------
        list of int
            Project image ids of the file's images, in the file's order.

        Raises
        ------
        ValueError
            If a category is not a project class.
        FileNotFoundError
            If image files are missing (the message names them; pass ``image_root``).

        Examples
        --------
        >>> import tempfile, pathlib, numpy as np, imageio.v3 as iio, shapely
        >>> from labelassist.coco import write_coco
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> iio.imwrite(folder / "a.png", np.zeros((8, 8), np.uint8))
        >>> record = {"id": 5, "file_name": "a.png", "height": 8, "width": 8}
        >>> inst = Instances([shapely.box(1, 1, 4, 4)], [0], [1.0], (8, 8))
        >>> _ = write_coco(folder / "in.json", ["cell"], [(record, inst)])
        >>> with Project.create(folder / "p", classes=["cell"]) as project:
        ...     ids = project.import_coco(folder / "in.json")
        ...     project.image(ids[0])["status"], len(project.instances(ids[0]))
        ('reviewed', 1)
        """
        return _coco.import_coco(self, path, image_root=image_root, progress=progress)

    def import_label_images(
        self,
        images: Sequence[str | os.PathLike],
        label_images: Sequence[np.ndarray | str | os.PathLike],
        *,
        label: int = 0,
        tolerance: float = 0.0,
        status: str = "reviewed",
    ) -> list[int]:
        """Import instance label images (Cellpose, StarDist, ...) as human-made labels.

        Each label image holds one integer id per object (0 = background); it becomes the
        instances of the matching intensity image, which is added to the project when
        new. Uses `labelassist.coco.Dataset.from_label_images`.

        Parameters
        ----------
        images : sequence of path
            The intensity images, one per label image.
        label_images : sequence of ndarray or path
            (H, W) integer label images (or files holding them), the size of their image.
        label : int, optional
            Class index of every imported instance.
        tolerance : float, optional
            Polygon simplification in pixels; 0 keeps the exact pixel outlines.
        status : str, optional
            Status of the imported images (default ``"reviewed"``).

        Returns
        -------
        list of int
            Project image ids, in the order of ``images``.

        Examples
        --------
        >>> import tempfile, pathlib, numpy as np, imageio.v3 as iio
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> iio.imwrite(folder / "a.png", np.zeros((8, 8), np.uint8))
        >>> labels = np.zeros((8, 8), np.uint16)
        >>> labels[1:3, 1:4], labels[5:8, 5:8] = 7, 300
        >>> with Project.create(folder / "p", classes=["nucleus"]) as project:
        ...     [i] = project.import_label_images([folder / "a.png"], [labels])
        ...     project.instances(i).areas.tolist(), project.image(i)["status"]
        ([6.0, 9.0], 'reviewed')
        """
        return _coco.import_label_images(
            self, images, label_images, label=label, tolerance=tolerance, status=status
        )

    # -- choosing what to label next -------------------------------------------------------
    def next_image(
        self,
        *,
        strategy: str = "uncertainty",
        model: Any = None,
        exclude: Iterable[int | Mapping] = (),
    ) -> dict | None:
        """The image to label next, or None when every image is reviewed or skipped.

        Parameters
        ----------
        strategy : {"uncertainty", "order"}
            ``"order"``: the lowest id. ``"uncertainty"``: with a ``model``, the image that
            `labelassist.active.rank_images` ranks first; without one, the image with the
            largest fraction of model instances whose score lies in `UNCERTAIN_BAND`
            (stored scores, no inference), then images without predictions in order.
        model : labelassist.Model, optional
            Rank candidates by running this model (slow: it predicts every candidate).
        exclude : iterable of int or dict
            Images not to return (for example the one on screen).

        Examples
        --------
        >>> import tempfile
        >>> with Project.create(tempfile.mkdtemp(), classes=["cell"]) as project:
        ...     project.next_image() is None
        True
        """
        check_choice(strategy, "strategy", ("uncertainty", "order"))
        skip = {self._image_id(image) for image in exclude}
        # partial indexes over the images still to label; DESC puts NULL (never predicted)
        # last
        index, order = (
            ("images_todo", "id")
            if strategy == "order"
            else ("images_queue", "uncertainty DESC, id")
        )
        if strategy == "uncertainty" and model is not None:
            return self._rank_with_model(model, skip)
        with self._lock:
            rows = self.con.execute(
                f"SELECT {_IMAGE_COLUMNS} FROM images INDEXED BY {index} WHERE {_schema.QUEUE}"
                f" ORDER BY {order}"
                f" LIMIT {len(skip) + 1}"
            ).fetchall()
        for row in rows:
            if row[0] not in skip:
                return self._record(row)
        return None

    def _rank_with_model(self, model: Any, skip: set[int]) -> dict | None:
        from ..active import rank_images

        candidates = [
            r
            for r in self.images(status=["new", "pre-annotated", "in-review"])
            if r["id"] not in skip
        ]
        if not candidates:
            return None
        order = rank_images(model, [r["path"] for r in candidates])
        return candidates[int(order[0])]

    # -- training rounds -----------------------------------------------------------------
    def add_round(
        self,
        *,
        checkpoint: str | os.PathLike,
        parent: int | None = None,
        image_ids: Iterable[int],
        metrics: Mapping[str, Any],
        n_instances: int | None = None,
    ) -> int:
        """Record a training round; return its number (1, 2, ...).

        Parameters
        ----------
        checkpoint : str or os.PathLike
            The round's checkpoint file (stored relative to the project when inside it).
        parent : int, optional
            The round whose checkpoint this one started from.
        image_ids : iterable of int
            The images it trained on.
        metrics : dict
            JSON-serializable metrics (e.g. ``{"segm_AP": 0.41}``).
        n_instances : int, optional
            Training instances; default: the current instance count of ``image_ids``.

        Examples
        --------
        >>> import tempfile
        >>> with Project.create(tempfile.mkdtemp(), classes=["cell"]) as project:
        ...     r = project.add_round(checkpoint=project.checkpoint_dir / "r1.pt",
        ...                           image_ids=[], metrics={"segm_AP": 0.5})
        ...     r, project.latest_checkpoint().name, project.rounds()[0]["metrics"]
        (1, 'r1.pt', {'segm_AP': 0.5})
        """
        if not isinstance(checkpoint, (str, os.PathLike)):
            raise TypeError(f"checkpoint must be a path, got {type(checkpoint).__name__}")
        if not isinstance(metrics, Mapping):
            raise TypeError(f"metrics must be a dict, got {type(metrics).__name__}")
        metrics_json = json_dumps_checked(dict(metrics), "metrics")
        ids = [self._image_id(i) for i in image_ids]
        if n_instances is not None and (
            isinstance(n_instances, bool)
            or not isinstance(n_instances, (int, np.integer))
            or n_instances < 0
        ):
            raise ValueError(f"n_instances must be an int >= 0 or None, got {n_instances!r}")
        stored = _files.stored_path(Path(checkpoint).expanduser().resolve(), self.folder)
        with self._lock, _schema.write_transaction(self.con) as con:
            if (
                parent is not None
                and con.execute("SELECT 1 FROM rounds WHERE round = ?", (parent,)).fetchone()
                is None
            ):
                raise ValueError(f"parent round {parent!r} does not exist; see Project.rounds()")
            counts = {}
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                counts.update(
                    con.execute(
                        f"SELECT id, n_instances FROM images WHERE id IN ({', '.join('?' * len(chunk))})",
                        chunk,
                    ).fetchall()
                )
            missing = sorted(set(ids) - set(counts))
            if missing:
                raise ValueError(f"image_ids {missing[:10]} are not in this project")
            if n_instances is None:
                n_instances = sum(counts.values())
            cur = con.execute(
                "INSERT INTO rounds (checkpoint, parent, image_ids, metrics, n_images,"
                " n_instances, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    stored,
                    parent,
                    json.dumps(ids),
                    metrics_json,
                    len(ids),
                    int(n_instances),
                    _schema.now(),
                ),
            )
            return int(cur.lastrowid)

    def rounds(self) -> list[dict]:
        """Training rounds, oldest first: ``round, checkpoint`` (absolute Path), ``parent,
        image_ids, metrics, n_images, n_instances, created``.

        Examples
        --------
        >>> import tempfile
        >>> with Project.create(tempfile.mkdtemp(), classes=["cell"]) as project:
        ...     project.rounds()
        []
        """
        with self._lock:
            rows = self.con.execute(
                "SELECT round, checkpoint, parent, image_ids, metrics, n_images, n_instances,"
                " created FROM rounds ORDER BY round"
            ).fetchall()
        return [
            {
                "round": r[0],
                "checkpoint": self._absolute(r[1]),
                "parent": r[2],
                "image_ids": json.loads(r[3]),
                "metrics": json.loads(r[4]),
                "n_images": r[5],
                "n_instances": r[6],
                "created": r[7],
            }
            for r in rows
        ]

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint of the latest round (absolute), or None before the first round.

        Examples
        --------
        >>> import tempfile
        >>> with Project.create(tempfile.mkdtemp(), classes=["cell"]) as project:
        ...     project.latest_checkpoint() is None
        True
        """
        with self._lock:
            row = self.con.execute(
                "SELECT checkpoint FROM rounds ORDER BY round DESC LIMIT 1"
            ).fetchone()
        return None if row is None else self._absolute(row[0])

    # -- statistics ----------------------------------------------------------------------
    def stats(self) -> dict:
        """Counts: ``images``, ``instances`` (current versions), ``rounds``, and dicts
        ``status`` (every status), ``split`` (train, val, unassigned), ``classes`` (class
        name -> instances) and ``source`` (model/corrected/human -> instances).

        Cheap at any size: the per-class counts are kept up to date by every save.

        Examples
        --------
        >>> import tempfile
        >>> with Project.create(tempfile.mkdtemp(), classes=["cell"]) as project:
        ...     s = project.stats()
        >>> s["images"], s["status"]["new"], s["classes"]
        (0, 0, {'cell': 0})
        """
        with self._lock, _schema.read_transaction(self.con) as con:
            status: dict[str, int] = {}
            split: dict[str | None, int] = {}
            for s, t, n in con.execute(  # one pass over the covering index
                "SELECT status, split, count(*) FROM images GROUP BY status, split"
            ):
                status[s] = status.get(s, 0) + n
                split[t] = split.get(t, 0) + n
            counts = con.execute("SELECT label, source, n FROM instance_counts").fetchall()
            (n_rounds,) = con.execute("SELECT count(*) FROM rounds").fetchone()
        classes = dict.fromkeys(self.classes, 0)
        sources = dict.fromkeys(SOURCES, 0)
        for label, source, n in counts:
            name = self.classes[label] if label < len(self.classes) else str(label)
            classes[name] = classes.get(name, 0) + n
            sources[source] = sources.get(source, 0) + n
        return {
            "images": sum(status.values()),
            "instances": sum(sources.values()),
            "rounds": n_rounds,
            "status": {s: status.get(s, 0) for s in STATUSES},
            "split": {
                "train": split.get("train", 0),
                "val": split.get("val", 0),
                "unassigned": split.get(None, 0),
            },
            "classes": classes,
            "source": sources,
        }


# -- module helpers ------------------------------------------------------------------------
