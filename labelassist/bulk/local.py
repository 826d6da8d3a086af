"""Bulk pre-annotation: run a model over many images, on one machine or a Dask cluster.

`preannotate` turns a folder, a glob pattern or a list of images into a `Dataset` of
model proposals. Images are decoded in worker processes while the model runs in the main
process (or, with a ``dask.distributed.Client``, on the cluster's workers, the model
loaded once per worker). Unreadable images are reported and skipped. With ``out``, results
are written atomically to a COCO json every ``flush_every`` images and a re-run resumes
where the last one stopped.
"""

from __future__ import annotations

import glob
import hashlib
import io
import logging
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..instances import Instances
from ..io.image import IMAGE_SUFFIXES, check_image, read_image

if TYPE_CHECKING:  # pragma: no cover
    from ..coco.read import Dataset
    from ..model.model import Model

__all__ = ["preannotate", "PreannotateWarning"]

logger = logging.getLogger(__name__)

_DASK_EXTRA = "pip install labelassist[dask]"
#: at most this share of a run's time goes to rewriting ``out`` (see ``flush_every``)
_MAX_FLUSH_SHARE = 0.1
#: writes faster than this are never delayed
_SLOW_FLUSH_SECONDS = 1.0


class PreannotateWarning(UserWarning):
    """Some images could not be read or predicted and were skipped."""


# -- image sources -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """One input image: its position in the input, its dataset file_name, and where it is."""

    index: int
    name: str
    path: str | None = None
    array: np.ndarray | None = None


def _expand_entry(entry: str | os.PathLike, *, param: str) -> list[str]:
    """A folder -> its image files (sorted); a glob -> its matches (sorted); else the path."""
    text = os.fspath(entry)
    path = Path(text).expanduser()
    if path.is_dir():
        files = sorted(
            str(p) for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise ValueError(
                f"{param}: folder {text!r} holds no image files "
                f"({', '.join(IMAGE_SUFFIXES)}); check the path"
            )
        return files
    if not path.exists() and glob.has_magic(text):
        matches = sorted(
            m for m in glob.glob(os.path.expanduser(text), recursive=True) if os.path.isfile(m)
        )
        if not matches:
            raise ValueError(f"{param}: the pattern {text!r} matches no files; check the pattern")
        return matches
    return [str(path)]


def _resolve_sources(
    images: Any, *, prefer_root: str | None = None
) -> tuple[list[_Source], str | None]:
    """Turn ``images`` into sources with unique file names, and the folder they are under.

    Paths are named relative to ``prefer_root`` when it holds all of them, else to the
    deepest folder that does (returned as the ``image_root``); arrays are named
    ``array_0000``, ``array_0001``, ... by their position.
    """
    single = isinstance(images, (str, os.PathLike))
    if single:
        if not Path(os.fspath(images)).expanduser().exists() and not glob.has_magic(
            os.fspath(images)
        ):
            raise FileNotFoundError(f"images: {os.fspath(images)!r} does not exist")
        entries: list[Any] = [images]
    elif isinstance(images, np.ndarray):
        raise TypeError("images is a single array; pass a list of arrays ([image]) or of paths")
    elif isinstance(images, Iterable):
        entries = list(images)
    else:
        raise TypeError(
            f"images must be a folder, a glob pattern, or a list of paths or arrays, "
            f"got {type(images).__name__}"
        )
    items: list[str | np.ndarray] = []
    for k, entry in enumerate(entries):
        if isinstance(entry, np.ndarray):
            items.append(entry)
        elif isinstance(entry, (str, os.PathLike)):
            param = "images" if single else f"images[{k}]"
            items.extend(os.path.abspath(p) for p in _expand_entry(entry, param=param))
        else:
            raise TypeError(
                f"images[{k}] is {type(entry).__name__}; expected a path (str or "
                "os.PathLike) or a numpy array"
            )
    paths = [p for p in items if isinstance(p, str)]
    root = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else None
    if root is not None and prefer_root is not None:
        prefer_root = os.path.abspath(prefer_root)
        if os.path.commonpath([root, prefer_root]) == prefer_root:
            root = prefer_root
    sources: list[_Source] = []
    seen: set[str] = set()
    duplicates: list[str] = []
    for item in items:
        index = len(sources)
        if isinstance(item, str):
            name = Path(os.path.relpath(item, root)).as_posix()
            if name in seen:
                duplicates.append(name)
                continue
            sources.append(_Source(index, name, path=item))
        else:
            name = f"array_{index:04d}"
            sources.append(_Source(index, name, array=item))
        seen.add(name)
    if duplicates:
        warnings.warn(
            f"images: {len(duplicates)} duplicate path(s) listed more than once were used "
            f"once: {', '.join(duplicates[:5])}",
            PreannotateWarning,
            stacklevel=3,
        )
    return sources, root


def _load(source: _Source) -> tuple[np.ndarray | None, str | None]:
    """Decode one source: ``(image, None)``, or ``(None, reason)`` when it cannot be read."""
    try:
        if source.array is not None:
            return check_image(source.array, name=source.name), None
        return read_image(source.path), None
    except FileNotFoundError:
        return None, "file not found"
    except (OSError, ValueError, TypeError, MemoryError) as exc:
        return None, " ".join(str(exc).split()) or type(exc).__name__  # one line


# -- prediction ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    score_threshold: float
    tile_size: int | None
    batch_size: int
    tile_overlap: int | None = None


@dataclass(frozen=True)
class _Outcome:
    """The result for one source: instances and image shape, or the reason it failed."""

    source: _Source
    shape: tuple[int, int] | None = None
    instances: Instances | None = None
    error: str | None = None


def _predict(model: Model, images: list[np.ndarray], options: _Options) -> list[Instances]:
    return model.predict(
        images,
        score_threshold=options.score_threshold,
        tile_size=options.tile_size,
        tile_overlap=options.tile_overlap,
        batch_size=options.batch_size,
    )


def _predict_loaded(
    model: Model, loaded: Sequence[tuple[_Source, np.ndarray | None, str | None]], options: _Options
) -> list[_Outcome]:
    """Predict a batch of decoded images; an image the model rejects fails alone."""
    outcomes = [_Outcome(src, error=err) for src, image, err in loaded if image is None]
    good = [(src, image) for src, image, _ in loaded if image is not None]
    if not good:
        return outcomes
    try:
        predictions = _predict(model, [image for _, image in good], options)
    except (ValueError, TypeError):
        predictions = None  # find the culprit(s) one image at a time
    for k, (src, image) in enumerate(good):
        shape = (int(image.shape[0]), int(image.shape[1]))
        if predictions is not None:
            outcomes.append(_Outcome(src, shape, predictions[k]))
            continue
        try:
            outcomes.append(_Outcome(src, shape, _predict(model, [image], options)[0]))
        except (ValueError, TypeError) as exc:
            outcomes.append(_Outcome(src, error=f"prediction failed: {exc}"))
    return sorted(outcomes, key=lambda o: o.source.index)


class _LoaderDataset:
    """A map-style dataset for `torch.utils.data.DataLoader`: decodes in worker processes."""

    def __init__(self, sources: Sequence[_Source]) -> None:
        self.sources = list(sources)

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, k: int) -> tuple[_Source, np.ndarray | None, str | None]:
        source = self.sources[k]
        return (source, *_load(source))


def _collate(batch: list[Any]) -> list[Any]:
    return batch


def _default_num_workers(sources: Sequence[_Source], model: Model) -> int:
    """Decoding processes: none for arrays, and none when the model runs on the CPU (its
    threads already use every core; extra processes only compete with it, see
    bench/results_bulk.md); else up to 4, one less than the CPU count."""
    if all(s.path is None for s in sources) or len(sources) < 2:
        return 0
    if getattr(model.device, "type", str(model.device)) == "cpu":
        return 0
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def _run_local(
    sources: Sequence[_Source],
    model: Model,
    options: _Options,
    num_workers: int,
    emit: Callable[[list[_Outcome]], None],
) -> None:
    from torch.utils.data import DataLoader

    loader = DataLoader(
        _LoaderDataset(sources),
        batch_size=options.batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate,
    )
    for batch in loader:
        emit(_predict_loaded(model, batch, options))


# -- dask ---------------------------------------------------------------------------------------

_WORKER_MODELS: dict[str, Model] = {}
_WORKER_LOCK = threading.Lock()
_WORKER_LOADS = 0  # how many models this process loaded (tests check: once per worker)


def _worker_model(key: str, checkpoint: bytes) -> Model:
    """The model for ``key``, loaded from ``checkpoint`` bytes once per worker process."""
    global _WORKER_LOADS
    with _WORKER_LOCK:
        model = _WORKER_MODELS.get(key)
        if model is None:
            from ..model.model import load_model

            with tempfile.TemporaryDirectory(prefix="labelassist-") as tmp:
                path = os.path.join(tmp, "model.pt")
                with open(path, "wb") as f:
                    f.write(checkpoint)
                model = load_model(path)
            if len(_WORKER_MODELS) >= 2:  # keep memory bounded across runs
                _WORKER_MODELS.pop(next(iter(_WORKER_MODELS)))
            _WORKER_MODELS[key] = model
            _WORKER_LOADS += 1
    return model


def _checkpoint_bytes(model: Model) -> tuple[str, bytes]:
    """The model as checkpoint bytes and their SHA-256: equal weights give equal keys."""
    import torch

    data = model.checkpoint()
    data["meta"].pop("created", None)  # a timestamp would make every call a new model
    buffer = io.BytesIO()
    torch.save(data, buffer)
    checkpoint = buffer.getvalue()
    return hashlib.sha256(checkpoint).hexdigest(), checkpoint


def _pack(outcome: _Outcome) -> tuple:
    """`Instances` is not picklable (immutable, slots): ship its fields instead."""
    inst = outcome.instances
    fields = None
    if inst is not None:
        fields = (list(inst.polygons), inst.labels, inst.scores, inst.image_shape, inst.extra)
    return (outcome.source.index, outcome.shape, fields, outcome.error)


def _unpack(packed: tuple, sources: dict[int, _Source]) -> _Outcome:
    index, shape, fields, error = packed
    instances = None
    if fields is not None:
        polygons, labels, scores, image_shape, extra = fields
        instances = Instances(polygons, labels, scores, image_shape, extra=extra)
    return _Outcome(sources[index], shape, instances, error)


def _predict_on_worker(
    key: str, checkpoint: bytes, chunk: list[_Source], options: _Options
) -> list[tuple]:
    model = _worker_model(key, checkpoint)
    loaded = [(src, *_load(src)) for src in chunk]
    return [_pack(o) for o in _predict_loaded(model, loaded, options)]


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - dask is installed in dev
        raise ImportError(f"preannotate(client=...) needs dask.distributed: {_DASK_EXTRA}") from exc
    return distributed


def _run_dask(
    sources: Sequence[_Source],
    model: Model,
    options: _Options,
    client: Any,
    emit: Callable[[list[_Outcome]], None],
) -> None:
    distributed = _import_distributed()
    key, checkpoint = _checkpoint_bytes(model)
    [checkpoint_future] = client.scatter([checkpoint], broadcast=True, hash=False)
    by_index = {s.index: s for s in sources}
    chunks = [
        list(sources[i : i + options.batch_size])
        for i in range(0, len(sources), options.batch_size)
    ]
    futures = [
        client.submit(_predict_on_worker, key, checkpoint_future, chunk, options, pure=False)
        for chunk in chunks
    ]
    try:
        for future in distributed.as_completed(futures):
            emit([_unpack(p, by_index) for p in future.result()])
    finally:
        client.cancel(futures)


# -- collecting, flushing, resuming ----------------------------------------------------------


def _read_done(out: Path, classes: Sequence[str]) -> Dataset | None:
    """The dataset already written to ``out`` by an earlier run, or None."""
    if not out.exists():
        return None
    from ..coco.read import read_coco

    done = read_coco(out)
    if list(done.categories) != list(classes):
        raise ValueError(
            f"out: {str(out)!r} holds results for classes {list(done.categories)}, but the "
            f"model predicts {list(classes)}; pass another out path or delete the file"
        )
    return done


def _assign_ids(sources: Sequence[_Source], taken: dict[str, int]) -> dict[str, int]:
    """Image ids: ``index + 1`` (as in an uninterrupted run) unless an earlier run took it."""
    ids = dict(taken)
    used = set(taken.values())
    clashes = []
    for src in sources:
        if src.name in ids:
            continue
        if src.index + 1 in used:
            clashes.append(src)
        else:
            ids[src.name] = src.index + 1
    next_id = max([*ids.values(), 0]) + 1
    for src in clashes:
        ids[src.name] = next_id
        next_id += 1
    return ids


class _Collector:
    """Gathers outcomes into image records and instances; flushes them to ``out``."""

    def __init__(
        self,
        classes: Sequence[str],
        root: str | None,
        ids: dict[str, int],
        done: Dataset | None,
        out: Path | None,
        flush_every: int,
        bar: Any,
    ) -> None:
        self.classes = list(classes)
        self.root = root
        self.ids = ids
        self.out = out
        self.flush_every = flush_every
        self.bar = bar
        self.records: dict[int, dict] = {}
        self.instances: dict[int, Instances] = {}
        self.failed: list[tuple[str, str]] = []
        self.unflushed = 0
        self.flush_seconds = 0.0  # how long the last flush took
        self.flushed_at = time.perf_counter()
        if out is not None:
            from ..coco import read as coco  # noqa: F401 - imported now, not timed in the first flush
        if done is not None:
            for record in done.images:
                record = dict(record)
                self.records[int(record["id"])] = record
                self.instances[int(record["id"])] = done.instances.get(
                    int(record["id"]), Instances.empty((record["height"], record["width"]))
                )

    def emit(self, outcomes: list[_Outcome]) -> None:
        for o in outcomes:
            if o.error is not None:
                self.failed.append((o.source.name, o.error))
                continue
            image_id = self.ids[o.source.name]
            height, width = o.shape
            self.records[image_id] = {
                "id": image_id,
                "file_name": o.source.name,
                "height": height,
                "width": width,
            }
            self.instances[image_id] = o.instances
        self.unflushed += len(outcomes)
        self.bar.update(len(outcomes))
        if self.out is not None and self.unflushed >= self.flush_every and self._flush_due():
            self.flush()

    def _flush_due(self) -> bool:
        """Each flush rewrites the whole file, which grows with the run: flush less often
        than every ``flush_every`` images when needed to keep flushing under
        `_MAX_FLUSH_SHARE` of the run time."""
        if self.flush_seconds < _SLOW_FLUSH_SECONDS:
            return True
        since = time.perf_counter() - self.flushed_at
        return since >= self.flush_seconds * (1.0 / _MAX_FLUSH_SHARE - 1.0)

    def dataset(self) -> Dataset:
        from ..coco.read import Dataset

        ids = sorted(self.records)
        return Dataset(
            self.classes,
            [self.records[i] for i in ids],
            {i: self.instances[i] for i in ids},
            image_root=self.root,
        )

    def flush(self) -> None:
        """Write everything so far to ``out`` (`write_coco` is atomic: temp + `os.replace`)."""
        assert self.out is not None
        info = {
            "description": "model proposals written by labelassist preannotate",
            "date_created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "image_root": self.root,
            "failed": [list(f) for f in self.failed],
        }
        start = time.perf_counter()
        self.dataset().to_coco(self.out, info=info)
        self.flushed_at = time.perf_counter()
        self.flush_seconds = self.flushed_at - start
        self.unflushed = 0
        logger.debug("preannotate: wrote %d images to %s", len(self.records), self.out)


def _warn_failed(failed: Sequence[tuple[str, str]], total: int) -> None:
    lines = "\n".join(f"  {name}: {reason}" for name, reason in failed)
    warnings.warn(
        f"preannotate: {len(failed)} of {total} images could not be read or predicted and "
        f"were skipped:\n{lines}",
        PreannotateWarning,
        stacklevel=3,
    )


def _check_int(name: str, value: Any, minimum: int, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        none = " or None" if allow_none else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{none}, got {value!r}")


def _as_model(model: Any) -> Model:
    from ..model.model import Model, load_model

    if isinstance(model, Model):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load_model(model)
    raise TypeError(
        f"model must be a labelassist Model or a source for load_model ('starter', a "
        f"checkpoint path), got {type(model).__name__}"
    )


# -- public ------------------------------------------------------------------------------------


def preannotate(
    images: str | os.PathLike | Sequence[str | os.PathLike | np.ndarray],
    model: Model | str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    score_threshold: float = 0.5,
    tile_size: int | None = None,
    tile_overlap: int | None = None,
    batch_size: int = 4,
    num_workers: int | None = None,
    client: Any = None,
    flush_every: int = 50,
    progress: bool = True,
) -> Dataset:
    """Pre-annotate many images with a model; optionally resumable and on a Dask cluster.

    Parameters
    ----------
    images : str, os.PathLike or sequence of paths or ndarrays
        A folder (its ``.png``, ``.jpg``, ``.jpeg``, ``.tif``, ``.tiff``, ``.bmp`` files,
        sorted by name, not recursive), a glob pattern (``"data/**/*.tif"``), or a list of
        paths (folders and patterns in it are expanded) or of images as arrays of shape
        (H, W), (H, W, 3) or (H, W, 4). Files are named (``file_name``) relative to the
        folder of ``out`` when it holds them all (so that ``read_coco(out)`` finds them),
        else to the deepest folder holding them all; that folder is the dataset's
        ``image_root``. Arrays are named ``array_0000``, ... by their position.
    model : Model or str or os.PathLike
        A loaded `Model`, or a source for `load_model` (``"starter"``, a checkpoint path).
    out : str or os.PathLike, optional
        A COCO json file. Results are written to it atomically every ``flush_every``
        images and at the end (also when the run stops with an error or Ctrl-C). If it
        exists, the run resumes: images whose file name it already holds are not
        predicted again (its other images are kept). ``info`` in the file records
        ``image_root`` and the failed images.
    score_threshold : float, default 0.5
        Keep detections scoring above this, in ``[0, 1]``.
    tile_size : int, optional
        Predict large images in overlapping tiles of this size (see `Model.predict`).
    tile_overlap : int, optional
        Overlap of neighbouring tiles in pixels (default: `Model.predict`'s,
        ``min(192, tile_size * 3 // 8)``).
    batch_size : int, default 4
        Images per forward pass (and per Dask task).
    num_workers : int, optional
        Processes decoding images (torch ``DataLoader`` workers) while the model runs
        in this process; 0 decodes in this process. Default: 0 when the model runs on
        the CPU (its threads already use every core) or the images are arrays; else up
        to 4, one less than the CPU count. Ignored with ``client``.
    client : dask.distributed.Client, optional
        Run on this Dask cluster instead: images are read and predicted by the workers
        (paths must be readable there), each worker loads the model once.
    flush_every : int, default 50
        Write ``out`` after this many newly processed images. Each write rewrites the
        whole file, which grows with the run; once a write takes over a second (many
        thousands of images), writes are spaced out so that they take at most 10 % of
        the run time.
    progress : bool, default True
        Show a tqdm progress bar.

    Returns
    -------
    dataset : Dataset
        ``categories`` are ``model.classes``; one image record (``id``, ``file_name``,
        ``height``, ``width``) and one `Instances` per image read, in input order (ids
        are the input positions + 1, unless a resumed ``out`` had taken them).
        ``dataset.failed`` lists ``(file_name, reason)``
        for each image that could not be read or predicted; those are skipped (and
        retried by a re-run with the same ``out``). A `PreannotateWarning` lists them too.

    Raises
    ------
    FileNotFoundError
        If ``images`` is a path that does not exist. (A missing file inside a list is
        reported in ``dataset.failed`` instead.)
    ValueError
        If a folder holds no images, a pattern matches nothing, an option is out of range,
        or ``out`` holds results for other classes than the model's.
    TypeError
        If ``images`` or ``model`` has the wrong type.

    Examples
    --------
    >>> import numpy as np
    >>> import labelassist as la
    >>> model = la.load_model(None, classes=["nucleus"])  # untrained, for the example
    >>> images = [np.zeros((64, 64), np.uint8), np.zeros((48, 80, 3), np.uint8)]
    >>> ds = la.preannotate(images, model, score_threshold=0.99, progress=False)
    >>> [(im["file_name"], im["height"], im["width"]) for im in ds.images]
    [('array_0000', 64, 64), ('array_0001', 48, 80)]
    >>> ds.failed
    []
    """
    if isinstance(score_threshold, bool) or not isinstance(score_threshold, (int, float)):
        raise TypeError(f"score_threshold must be a number in [0, 1], got {score_threshold!r}")
    if not 0.0 <= float(score_threshold) <= 1.0:
        raise ValueError(f"score_threshold must be within [0, 1], got {score_threshold}")
    _check_int("tile_size", tile_size, 1, allow_none=True)
    _check_int("batch_size", batch_size, 1)
    _check_int("num_workers", num_workers, 0, allow_none=True)
    _check_int("flush_every", flush_every, 1)
    if client is not None and not hasattr(client, "submit"):
        raise TypeError(f"client must be a dask.distributed.Client, got {type(client).__name__}")
    out_path = Path(out).expanduser() if out is not None else None
    if out_path is not None and out_path.is_dir():
        raise ValueError(f"out: {str(out)!r} is a folder; give a .json file path")
    sources, root = _resolve_sources(
        images, prefer_root=str(out_path.parent) if out_path is not None else None
    )
    model = _as_model(model)
    # let Model.predict validate the options once, before any work
    model.predict(
        [],
        score_threshold=score_threshold,
        tile_size=tile_size,
        tile_overlap=tile_overlap,
        batch_size=batch_size,
    )
    done = _read_done(out_path, model.classes) if out_path is not None else None
    taken = {} if done is None else {r["file_name"]: int(r["id"]) for r in done.images}
    pending = [s for s in sources if s.name not in taken]
    options = _Options(float(score_threshold), tile_size, int(batch_size), tile_overlap)

    from tqdm.auto import tqdm

    start = time.perf_counter()
    with tqdm(
        total=len(sources),
        initial=len(sources) - len(pending),
        disable=not progress,
        unit="img",
        desc="preannotate",
    ) as bar:
        collector = _Collector(
            model.classes, root, _assign_ids(sources, taken), done, out_path, flush_every, bar
        )
        try:
            if pending and client is not None:
                _run_dask(pending, model, options, client, collector.emit)
            elif pending:
                workers = (
                    _default_num_workers(pending, model) if num_workers is None else num_workers
                )
                _run_local(pending, model, options, workers, collector.emit)
        except BaseException:
            if out_path is not None and collector.unflushed:
                try:  # keep what is done, so that a re-run resumes from here
                    collector.flush()
                except Exception:  # noqa: BLE001 - the original error matters more
                    logger.exception("preannotate: could not save results to %s", out_path)
            raise
        if out_path is not None and (collector.unflushed or not out_path.exists()):
            collector.flush()
    logger.info(
        "preannotate: %d images (%d new) in %.1f s, %d failed",
        len(collector.records),
        len(pending) - len(collector.failed),
        time.perf_counter() - start,
        len(collector.failed),
    )
    if collector.failed:
        _warn_failed(collector.failed, len(sources))
    dataset = collector.dataset()
    dataset.failed = list(collector.failed)
    return dataset
