"""`Project`: the one object a user holds, a facade over the modules of this package.

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
queue on a busy timeout, readers never wait. COCO is the exchange format in and out.

Where each job lives: `store` (the database, its lock and transactions, read-only
opening), `schema` (tables, migrations), `images` (adding files, records, status,
splits), `files` (checking and copying image files), `annotations` (saving versions,
provenance, history, undo), `exchange` (COCO and label images in and out), `queue`
(which image next), `rounds` (training rounds), `stats` (counts), `actions`,
`activity` and `effort` (the effort log: what people did, for how long), `integrity`
(the health check), `stacks` (z-stacks and time-lapse: each plane an image; the methods
are in `stack_methods`). `Project` checks nothing and stores nothing itself: each method
is one call into those modules.

Geometry is in COCO's continuous pixel coordinates ``(x, y)``: the pixel at row ``i``,
column ``j`` covers the square ``[j, j+1] x [i, i+1]``.
"""

from __future__ import annotations

import os
import sqlite3
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from ..checks import check_classes
from ..coco import Dataset
from ..instances import Instances, check_keypoint_names, check_skeleton
from . import annotations as _annotations
from . import effort as _effort
from . import exchange as _exchange
from . import images as _images
from . import integrity as _integrity
from . import keypoints as _keypoints
from . import queue as _queue
from . import rounds as _rounds
from . import schema as _schema
from . import stats as _stats
from ._util import listed
from .annotations import UNCERTAIN_BAND, Revision
from .errors import UnreadableImagesWarning
from .stack_methods import StackMethods
from .store import DB_NAME, Store, create_database

__all__ = ["DB_NAME", "SOURCES", "STATUSES", "UNCERTAIN_BAND", "Project"]

STATUSES = _schema.STATUSES
SOURCES = _schema.SOURCES

ImageRef = int | Mapping[str, Any]


class Project(StackMethods):
    """A labeling project: images, their instances with history, and training rounds.

    Create one with `Project.create` or open one with `Project.open`; use it as a context
    manager or call `close`. Methods taking an ``image`` accept an image id (int) or an
    image record (a dict with ``"id"``, as returned by `images`). Threads may share one
    `Project` (its calls are serialized); each process opens its own.

    A project whose database cannot be written (an archived, shared or read-only folder)
    opens read-only: reading, `export_coco` and `next_image` work, and every write raises
    `ProjectReadOnlyError` before it changes anything. A damaged database raises
    `ProjectDamagedError`, which points to ``labelassist project check FOLDER``
    (`check`).

    **Editing from several places** (two windows, a script and the napari plugin): read
    with ``instances(image, with_version=True)``, which returns a `Revision` (the
    instances and their version), and save with ``save_instances(..., expected_version=
    revision.version)``. When someone else saved the image in between, the save raises
    `ProjectConflictError` and writes nothing: read again, re-apply the edit, save again.
    Without ``expected_version`` the last save wins.

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
    read_only : bool
        Whether the project was opened read-only.

    Examples
    --------
    >>> import tempfile, numpy as np, imageio.v3 as iio, shapely
    >>> import labelassist as la
    >>> folder = tempfile.mkdtemp()
    >>> iio.imwrite(f"{folder}/a.png", np.zeros((32, 48), np.uint8))
    >>> with la.Project.create(f"{folder}/proj", classes=["nucleus"]) as project:
    ...     [image_id] = project.add_images(f"{folder}/a.png")
    ...     inst = la.Instances([shapely.box(2, 2, 9, 8)], [0], [0.6], (32, 48))
    ...     saved = project.save_instances(image_id, inst, source="model")
    ...     project.images()[0]["status"], len(project.instances(image_id)), saved.version
    ('pre-annotated', 1, 1)
    """

    def __init__(self, store: Store) -> None:
        # private: use Project.create or Project.open
        self._store = store
        self.folder = store.folder
        self.classes = store.classes
        self.copy_images = store.copy_images
        self.checkpoint_dir = store.checkpoint_dir
        self.images_dir = store.images_dir
        self.read_only = store.read_only

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        folder: str | os.PathLike,
        *,
        classes: Sequence[str],
        copy_images: bool = False,
        keypoints: Sequence[str] | None = None,
        skeleton: Sequence[tuple[int, int]] | None = None,
    ) -> Project:
        """Create a project in ``folder`` (created when missing).

        Parameters
        ----------
        folder : str or os.PathLike
            The project folder. It may exist and hold other files; it must not hold a
            project with images or rounds already (an empty project with the same classes
            is opened instead, so that ``init`` can be repeated).
        classes : sequence of str
            Class names, as `labelassist.checks.check_classes` accepts them: non-empty,
            unique, none of them a background name.
        copy_images : bool, optional
            Whether `add_images` copies images into the project by default.
        keypoints : sequence of str, optional
            Keypoint (landmark) names, e.g. ``["head", "tail"]``: every instance then
            keeps ``(K, 3)`` keypoints (see `set_keypoints`). None (default): none yet
            (the first COCO import with keypoints, or `set_keypoints`, names them).
        skeleton : sequence of (int, int), optional
            Edges between keypoints, 0-based indices into ``keypoints``.

        Examples
        --------
        >>> import tempfile
        >>> project = Project.create(tempfile.mkdtemp(), classes=["nucleus", "debris"])
        >>> project.classes, project.images(), project.keypoints
        (['nucleus', 'debris'], [], None)
        >>> project.close()
        >>> with Project.create(tempfile.mkdtemp(), classes=["worm"],
        ...                     keypoints=["head", "tail"], skeleton=[(0, 1)]) as project:
        ...     project.keypoints, project.skeleton
        (['head', 'tail'], [(0, 1)])
        """
        names = check_classes(classes)
        if not isinstance(copy_images, (bool, np.bool_)):
            raise TypeError(f"copy_images must be True or False, got {copy_images!r}")
        if keypoints is None and skeleton:
            raise ValueError("skeleton needs keypoints=[...names] to index into")
        points = None if keypoints is None else check_keypoint_names(keypoints)
        edges = [] if points is None else check_skeleton(skeleton, len(points))
        root = Path(folder).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise FileExistsError(f"folder {root} is a file; choose a folder for the project")
        if (root / DB_NAME).exists():
            project = cls.open(root)
            counts = project.stats()
            have = project.keypoints
            if (
                counts["images"]
                or counts["rounds"]
                or project.classes != names
                or (points is not None and (have, project.skeleton) != (points, edges))
            ):
                project.close()
                raise FileExistsError(
                    f"{root} already holds a labelassist project with {counts['images']} "
                    f"images, classes {project.classes} and keypoints {have}; "
                    "open it with Project.open or choose another folder"
                )
            return project
        create_database(
            root, classes=names, copy_images=bool(copy_images), keypoints=points, skeleton=edges
        )
        return cls.open(root)

    @classmethod
    def open(cls, folder: str | os.PathLike) -> Project:
        """Open the project in ``folder``, migrating an older schema version.

        Opens read-only when the database cannot be written (see `Project`).

        Raises
        ------
        FileNotFoundError
            If ``folder`` does not exist.
        ValueError
            If ``folder`` is not a labelassist project, or was created by a newer
            labelassist (upgrade labelassist to open it).
        ProjectDamagedError
            If the database is damaged.

        Examples
        --------
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> Project.create(folder, classes=["cell"]).close()
        >>> with Project.open(folder) as project:
        ...     project.classes, project.read_only
        (['cell'], False)
        """
        return cls(Store.open(folder))

    def close(self) -> None:
        """Close the database connection (idempotent)."""
        self._store.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._store.closed else f"classes={self.classes}"
        mode = ", read-only" if self.read_only and not self._store.closed else ""
        return f"Project({str(self.folder)!r}, {state}{mode})"

    @property
    def con(self) -> sqlite3.Connection:
        """The open SQLite connection (for advanced queries; use the methods to write)."""
        return self._store.con

    @property
    def store(self) -> Store:
        """The `labelassist.project.store.Store` the methods work on (advanced use)."""
        return self._store

    @property
    def keypoints(self) -> list[str] | None:
        """The keypoint names (None: the project has no keypoints); see `set_keypoints`."""
        with self._store.read() as con:
            return _keypoints.read_names(con)[0]

    @property
    def skeleton(self) -> list[tuple[int, int]]:
        """The skeleton: edges between keypoints, 0-based indices into `keypoints`."""
        with self._store.read() as con:
            return _keypoints.read_names(con)[1]

    def set_keypoints(
        self, keypoints: Sequence[str], skeleton: Sequence[tuple[int, int]] | None = None
    ) -> None:
        """Name the project's keypoints (landmarks), or append names, or set the skeleton.

        Once named, every saved instance keeps ``(K, 3)`` keypoints per version (x, y in
        COCO pixel coordinates, visibility 0/1/2): `instances` returns them (``v = 0``
        where none is labelled), `export_coco` writes COCO keypoints. Names can only be
        appended (stored points keep their columns; new columns read ``v = 0``).

        Parameters
        ----------
        keypoints : sequence of str
            The names, starting with the current ones (if any).
        skeleton : sequence of (int, int), optional
            Edges between keypoints, 0-based indices into ``keypoints``; replaces the
            current skeleton (None: no edges).

        Examples
        --------
        >>> import tempfile
        >>> with Project.create(tempfile.mkdtemp(), classes=["cell"]) as project:
        ...     project.set_keypoints(["pole 1", "pole 2"], skeleton=[(0, 1)])
        ...     project.set_keypoints(["pole 1", "pole 2", "centre"], skeleton=[(0, 1)])
        ...     project.keypoints
        ['pole 1', 'pole 2', 'centre']
        """
        with self._store.write("set keypoints") as con:
            _keypoints.write_names(con, keypoints, skeleton)

    def check(self) -> list[str]:
        """Check the project: SQLite integrity, schema, counters, image files present.

        Returns
        -------
        list of str
            One line per problem; empty when none was found. ``labelassist project
            check FOLDER`` prints the same (and also works when the project cannot open).

        Examples
        --------
        >>> import tempfile
        >>> with Project.create(tempfile.mkdtemp(), classes=["cell"]) as project:
        ...     project.check()
        []
        """
        with self._store.lock:
            return _integrity.check_database(self._store.con, self.folder)

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

        Every new file is decoded first (`labelassist.project.files.image_size`): files
        that cannot be read as a 2-D image (truncated, a 3-D stack, not an image) are
        refused, listed in one `UnreadableImagesWarning`, and the others are added.

        Parameters
        ----------
        paths_or_folder_or_glob : path, folder, glob pattern, or a list of those
            As `labelassist.io.collect_image_paths` expands them: a folder adds its files
            with an image suffix (not recursive; a folder without any is an error), a
            glob pattern (``**`` recurses) what it matches (no match is an error).
        copy : bool, optional
            Copy the files into ``folder / "images"``; default: the project's
            ``copy_images``. Otherwise the project refers to the files where they are.
        split : {"train", "val"}, optional
            Split of the added images.
        progress : bool, optional
            Show a progress bar while checking the files.

        Returns
        -------
        list of int
            Ids of the added images. Files already in the project (same resolved path)
            are skipped with one warning giving their count.

        Raises
        ------
        FileNotFoundError
            If a path does not exist.
        ValueError
            If a folder holds no image or a pattern matches nothing, or when none of the
            new files can be read (then nothing is added; the message lists them).

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
        added = _images.add_images(
            self._store, paths_or_folder_or_glob, copy=copy, split=split, progress=progress
        )
        if added.refused:
            reasons = [reason for _, reason in added.refused]
            message = (
                f"refused {len(added.refused)} of {added.checked} image files that cannot be "
                f"read (the other {len(added.ids)} were added): {listed(reasons)}"
            )
            warnings.warn(UnreadableImagesWarning(message, added.refused), stacklevel=2)
        if added.duplicates:
            warnings.warn(
                f"skipped {added.duplicates} image(s) already in the project (same file)",
                UserWarning,
                stacklevel=2,
            )
        return added.ids

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
            ``version`` (the current annotation version, 0 before the first save). The
            planes of a stack (`add_stack`) are images too; their records also have
            ``stack`` (the stack id) and ``plane`` (the plane's index in the stack).

        Examples
        --------
        >>> import tempfile
        >>> with Project.create(tempfile.mkdtemp(), classes=["cell"]) as project:
        ...     project.images(status="reviewed")
        []
        """
        return _images.list_images(self._store, status=status, split=split)

    def image(self, image: ImageRef) -> dict:
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
        return _images.get_image(self._store, image)

    def image_path(self, image: ImageRef) -> Path:
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
        return _images.image_path(self._store, image)

    def set_status(self, image: ImageRef, status: str) -> None:
        """Set the review status: ``"new"``, ``"pre-annotated"``, ``"in-review"``,
        ``"reviewed"`` or ``"skipped"``.

        Setting ``"reviewed"`` (accepting the image) records it in the effort log, with
        an ``"accepted"`` action for each instance still as the model made it (see
        `effort`).

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
        _images.set_status(self._store, image, status)

    def set_split(self, images: ImageRef | Iterable[ImageRef], split: str | None) -> None:
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
        _images.set_split(self._store, images, split)

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
        return _images.assign_splits(
            self._store, val_fraction=val_fraction, seed=seed, overwrite=overwrite
        )

    # -- instances -----------------------------------------------------------------------
    def save_instances(
        self,
        image: ImageRef,
        instances: Instances,
        *,
        source: str = "model",
        model_id: str | None = None,
        expected_version: int | None = None,
    ) -> Revision:
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
        source : {"model", "corrected", "human", "prompted"}
            Who made this version. ``"model"`` and ``"human"`` mark every instance so.
            ``"corrected"`` (a person edited the instances) marks each instance by
            comparison with the current version: unchanged (same ``instance_id``, label and
            geometry) keeps its source, changed becomes ``"corrected"``, new (no known
            ``instance_id``) becomes ``"human"``, or ``"prompted"`` where its
            ``extra["source"]`` says ``"prompted"`` (added by a box or point prompt).
            ``"prompted"`` is the same comparison with every new instance ``"prompted"``.
            These two *edit* sources also record the person's actions in the effort log,
            in the same transaction (deleted, drawn, prompted, edited, relabelled,
            refined: see `effort`); a bool ``extra["refined"]`` marks instances whose
            edges were refined since the version the edit started from.
        model_id : str, optional
            Which model made the instances (a checkpoint name, a round), kept in the history.
        expected_version : int, optional
            The version the edit started from (``instances(image, with_version=True)
            .version``; 0 before the first save). When the image's current version
            differs, nothing is written and `ProjectConflictError` is raised; the check
            and the write are one transaction.

        Returns
        -------
        Revision
            ``(instances, version)``: the instances as stored, exactly what `instances`
            returns now (with the ``"source"`` and ``"instance_id"`` columns), and the new
            version number.

        Notes
        -----
        Saving ``"model"`` output moves a ``"new"`` image to ``"pre-annotated"``; saving
        any other source moves a new or pre-annotated image to ``"in-review"``. Other
        statuses stay.

        Examples
        --------
        >>> import tempfile, numpy as np, imageio.v3 as iio, shapely
        >>> folder = tempfile.mkdtemp()
        >>> iio.imwrite(f"{folder}/a.png", np.zeros((16, 16), np.uint8))
        >>> with Project.create(f"{folder}/p", classes=["cell"]) as project:
        ...     [i] = project.add_images(folder)
        ...     proposal = Instances([shapely.box(1, 1, 5, 5), shapely.box(8, 8, 12, 12)],
        ...                          [0, 0], [0.9, 0.4], (16, 16))
        ...     current, version = project.save_instances(i, proposal, source="model")
        ...     fixed = current[[0]]  # the annotator deletes the second proposal
        ...     saved = project.save_instances(i, fixed, source="corrected",
        ...                                    expected_version=version)
        ...     saved.instances.extra["source"].tolist(), saved.version
        (['model'], 2)
        """
        return _annotations.save_instances(
            self._store,
            image,
            instances,
            source=source,
            model_id=model_id,
            expected_version=expected_version,
        )

    @overload
    def instances(
        self, image: ImageRef, *, version: int | None = ..., with_version: Literal[False] = ...
    ) -> Instances: ...

    @overload
    def instances(
        self, image: ImageRef, *, version: int | None = ..., with_version: Literal[True]
    ) -> Revision: ...

    def instances(
        self, image: ImageRef, *, version: int | None = None, with_version: bool = False
    ) -> Instances | Revision:
        """The instances of an image (its current version, or ``version`` from `history`).

        Parameters
        ----------
        image : int or dict
            Image id or record.
        version : int, optional
            A version from `history` (0: before the first save); default: the current one.
        with_version : bool, optional
            Return a `Revision` ``(instances, version)`` read in one transaction: pass
            its ``version`` as ``expected_version`` to `save_instances`.

        Returns
        -------
        Instances or Revision
            With extra columns ``"source"`` (str: ``"model"``, ``"corrected"``,
            ``"human"`` or ``"prompted"``) and ``"instance_id"`` (int64, stable across versions: pass it back
            to `save_instances` so that edits are tracked per instance).

        Examples
        --------
        >>> import tempfile, numpy as np, imageio.v3 as iio
        >>> folder = tempfile.mkdtemp()
        >>> iio.imwrite(f"{folder}/a.png", np.zeros((8, 8), np.uint8))
        >>> with Project.create(f"{folder}/p", classes=["cell"]) as project:
        ...     [i] = project.add_images(folder)
        ...     project.instances(i), project.instances(i, with_version=True).version
        (Instances(n=0, image_shape=(8, 8), extra=['instance_id', 'source']), 0)
        """
        return _annotations.instances(
            self._store, image, version=version, with_version=with_version
        )

    def history(self, image: ImageRef) -> list[dict]:
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
        return _annotations.history(self._store, image)

    def undo(self, image: ImageRef) -> Instances:
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
        ...     _ = project.save_instances(i, Instances([shapely.box(0, 0, 2, 2)], [0], [1.0], (8, 8)))
        ...     len(project.undo(i))
        0
        """
        return _annotations.undo(self._store, image)

    # -- datasets, COCO and label images ---------------------------------------------------
    def dataset(
        self, *, status: str | Sequence[str] | None = "reviewed", split: str | None = None
    ) -> Dataset:
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
        return _exchange.dataset(self._store, status=status, split=split)

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
        return _exchange.export_coco(
            self._store,
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
        names must be project classes. Nothing is written unless every image checks out:
        the file exists, decodes, has the ``height`` and ``width`` its record states,
        and, when the project copies images, lies inside ``image_root`` (a symbolic link
        to a file elsewhere is refused).

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
            If a category is not a project class, or an image is unreadable, of another
            size than its record, or (copying) outside ``image_root``.
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
        return _exchange.import_coco(self._store, path, image_root=image_root, progress=progress)

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
        new (in the same transaction). Uses `labelassist.coco.Dataset.from_label_images`.

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
        return _exchange.import_label_images(
            self._store, images, label_images, label=label, tolerance=tolerance, status=status
        )

    # -- choosing what to label next -------------------------------------------------------
    def next_image(
        self,
        *,
        strategy: str = "uncertainty",
        model: Any = None,
        exclude: Iterable[ImageRef] = (),
        stack: int | Mapping[str, Any] | None = None,
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
        stack : int or dict, optional
            Only the planes of this stack (the queue by plane; `next_stack` is the queue
            by stack); ``"order"`` then goes by plane index.

        Examples
        --------
        >>> import tempfile
        >>> with Project.create(tempfile.mkdtemp(), classes=["cell"]) as project:
        ...     project.next_image() is None
        True
        """
        return _queue.next_image(
            self._store, strategy=strategy, model=model, exclude=exclude, stack=stack
        )

    # -- training rounds -----------------------------------------------------------------
    def add_round(
        self,
        *,
        checkpoint: str | os.PathLike,
        parent: int | None = None,
        image_ids: Iterable[ImageRef],
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
        return _rounds.add_round(
            self._store,
            checkpoint=checkpoint,
            parent=parent,
            image_ids=image_ids,
            metrics=metrics,
            n_instances=n_instances,
        )

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
        return _rounds.rounds(self._store)

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint of the latest round (absolute), or None before the first round.

        Examples
        --------
        >>> import tempfile
        >>> with Project.create(tempfile.mkdtemp(), classes=["cell"]) as project:
        ...     project.latest_checkpoint() is None
        True
        """
        return _rounds.latest_checkpoint(self._store)

    # -- statistics ----------------------------------------------------------------------
    def stats(self) -> dict:
        """Counts: ``images``, ``instances`` (current versions), ``rounds``, and dicts
        ``status`` (every status), ``split`` (train, val, unassigned), ``classes`` (class
        name -> instances) and ``source`` (model/corrected/human/prompted -> instances).

        Cheap at any size: the per-class counts are kept up to date by every save.

        Examples
        --------
        >>> import tempfile
        >>> with Project.create(tempfile.mkdtemp(), classes=["cell"]) as project:
        ...     s = project.stats()
        >>> s["images"], s["status"]["new"], s["classes"]
        (0, 0, {'cell': 0})
        """
        return _stats.stats(self._store)

    # -- the effort log ------------------------------------------------------------------
    def log_time(self, image: ImageRef, seconds: float) -> None:
        """Record ``seconds`` of a person's active work at ``image``.

        A front-end measures active time by the rule of `labelassist.project.activity`
        (`~labelassist.project.activity.ActivityClock`: the time between opening an
        image and leaving it, every gap between two interactions counted at most 60 s)
        and reports it here, as often as it likes (the napari Review widget reports at
        each autosave and when leaving the image); the entries add up. 0 records nothing.

        Raises
        ------
        ValueError
            If ``seconds`` is negative or not finite, or the image is not in the project.

        Examples
        --------
        >>> import tempfile, numpy as np, imageio.v3 as iio
        >>> folder = tempfile.mkdtemp()
        >>> iio.imwrite(f"{folder}/a.png", np.zeros((8, 8), np.uint8))
        >>> with Project.create(f"{folder}/p", classes=["cell"]) as project:
        ...     [i] = project.add_images(folder)
        ...     project.log_time(i, 12.5); project.log_time(i, 30)
        ...     project.effort(image=i)["rows"][0]["seconds"]
        42.5
        """
        _effort.log_time(self._store, image, seconds)

    def effort(
        self, *, image: ImageRef | None = None, round: int | None = None, by: str = "image"
    ) -> dict:
        """Summary of the effort log: what people did, per image or per training round.

        Every edit save (source ``"corrected"`` or ``"prompted"``) records one action
        per changed instance, accepting an image (`set_status` ``"reviewed"``) records
        ``"accepted"`` for each instance left as the model made it plus ``"reviewed"``
        for the image, and `log_time` the active seconds. The actions
        (`labelassist.project.actions`): ``accepted`` (unchanged), ``deleted``,
        ``drawn`` (by hand), ``prompted`` (added by a prompt), ``edited`` (vertices
        moved), ``relabelled`` (class changed), ``refined`` (edges refined),
        ``reviewed`` (image accepted).

        Parameters
        ----------
        image : int or dict, optional
            Only this image (its row is returned even when it has no entries).
        round : int, optional
            Only the entries of this round. Each entry counts for 1 + the latest round
            recorded when it was made: round 1 is the work before the first training
            round, round ``k + 1`` the work on round ``k``'s proposals (which that round
            trains on).
        by : {"image", "round"}
            Rows per image (those with entries, ordered by id) or per round (1 to the
            current round, empty ones included).

        Returns
        -------
        dict
            Plain JSON-able values: ``by``; ``rows``, a list of dicts with
            ``image, file_name, round`` (the round it was last accepted in, None when
            never), ``actions`` (action -> count) and ``seconds`` (by image), or
            ``round, images`` (images accepted in the round), ``actions``, ``seconds`` and
            ``seconds_per_image`` (seconds / images; None without images) (by round);
            and ``total``, the same as a round's row over everything selected, without
            ``round``.

        Examples
        --------
        >>> import tempfile, numpy as np, imageio.v3 as iio, shapely
        >>> folder = tempfile.mkdtemp()
        >>> iio.imwrite(f"{folder}/a.png", np.zeros((16, 16), np.uint8))
        >>> with Project.create(f"{folder}/p", classes=["cell"]) as project:
        ...     [i] = project.add_images(folder)
        ...     proposal = Instances([shapely.box(1, 1, 5, 5), shapely.box(8, 8, 12, 12)],
        ...                          [0, 0], [0.9, 0.4], (16, 16))
        ...     current, version = project.save_instances(i, proposal, source="model")
        ...     _ = project.save_instances(i, current[[0]], source="corrected")  # deletes one
        ...     project.log_time(i, 20.0)
        ...     project.set_status(i, "reviewed")  # accepts the other one as it is
        ...     summary = project.effort(by="round")
        >>> summary  # doctest: +NORMALIZE_WHITESPACE
        {'by': 'round',
         'rows': [{'round': 1, 'images': 1,
                   'actions': {'accepted': 1, 'deleted': 1, 'drawn': 0, 'prompted': 0,
                               'edited': 0, 'relabelled': 0, 'refined': 0, 'reviewed': 1},
                   'seconds': 20.0, 'seconds_per_image': 20.0}],
         'total': {'images': 1,
                   'actions': {'accepted': 1, 'deleted': 1, 'drawn': 0, 'prompted': 0,
                               'edited': 0, 'relabelled': 0, 'refined': 0, 'reviewed': 1},
                   'seconds': 20.0, 'seconds_per_image': 20.0}}
        """
        return _effort.effort(self._store, image=image, round=round, by=by)
