"""`preannotate`, the bulk entry point: check the options, resume, run locally or on Dask.

It puts the pieces of `labelassist.bulk` together: `collect_sources` names the images,
`read_previous` finds what an earlier run on the same ``out`` did, `run_local` or `run_dask`
predicts the rest, and a `Collector` saves the outcomes as they come.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from ..checks import check_int, check_number
from .batch import Options
from .cluster import run_dask
from .output import (
    Collector,
    PreannotateResult,
    Previous,
    assign_ids,
    check_out,
    check_out_writable,
    read_previous,
)
from .sources import collect_sources
from .stacks import is_stack, predict_stack_source, stack_file

if TYPE_CHECKING:  # pragma: no cover
    from ..model import Model

__all__ = ["preannotate"]

logger = logging.getLogger(__name__)


def _as_model(model: Any) -> Model:
    from ..model import Model, load_model  # heavy: imports torch

    if isinstance(model, Model):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load_model(model)
    raise TypeError(
        f"model must be a labelassist Model or a source for load_model ('starter', a "
        f"checkpoint path), got {type(model).__name__}"
    )


def preannotate(
    images: str | os.PathLike | Sequence[str | os.PathLike | np.ndarray],
    model: Model | str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    score_threshold: float = 0.5,
    tile_size: int | None = None,
    tile_overlap: int | None = None,
    object_size: float | str | None = None,
    channels: int | Sequence[int] | None = None,
    mask_threshold: float | None = None,
    mirror: bool = True,
    batch_size: int = 4,
    num_workers: int | None = None,
    client: Any = None,
    flush_every: int = 50,
    retry_failed: bool = False,
    progress: bool = True,
) -> PreannotateResult:
    """Pre-annotate many images with a model; optionally resumable and on a Dask cluster.

    One bad image never stops the run: an image that cannot be read, or whose prediction
    raises (a corrupt file, ``RuntimeError``/`MemoryError` when one huge image does not
    fit in memory), is recorded with the reason and skipped; the others are done and saved.

    A z-stack or time-lapse (a TIFF file whose header names a ``T`` or ``Z`` axis, see
    `labelassist.read_stack`) is one item: its planes are predicted in batches and linked
    into 3-D objects and tracks (`labelassist.stacks.predict_stack`), after the 2-D images
    and in this process (also with ``client``). Its objects are in the result's ``stacks``;
    with ``out`` they are saved after every batch of planes in ``<out stem>.stacks/<file
    name>.json`` (a COCO video file, TAO layout), and an interrupted run resumes from the
    stack's next plane (`labelassist.bulk.stacks`).

    Parameters
    ----------
    images : str, os.PathLike or sequence of paths or ndarrays
        A folder (its ``.png``, ``.jpg``, ``.jpeg``, ``.tif``, ``.tiff``, ``.bmp`` files,
        sorted by name, not recursive), a glob pattern (``"data/**/*.tif"``), or a list of
        paths (folders and patterns in it are expanded, see
        `labelassist.io.collect_image_paths`) or of images as arrays of shape (H, W),
        (H, W, 3) or (H, W, 4). Files are named (``file_name``) relative to the folder of
        ``out`` when it holds them all (so that ``read_coco(out)`` finds them), else to the
        deepest folder holding them all; that folder is the dataset's ``image_root``.
        Arrays are named ``array_0000``, ... by their position.
    model : Model or str or os.PathLike
        A loaded `Model`, or a source for `load_model` (``"starter"``, a checkpoint path).
    out : str or os.PathLike, optional
        A COCO json file. Results are written to it atomically every ``flush_every``
        images and at the end (also when the run stops with an error or Ctrl-C). If it
        exists, the run resumes: images whose file name it already holds are not
        predicted again (its other images are kept), nor are the images it records as
        failed (unless ``retry_failed``). ``info`` in the file records ``image_root`` and
        the failed images (``"failed": [[file_name, reason], ...]``).
    score_threshold : float, default 0.5
        Keep detections scoring above this, in ``[0, 1]``.
    tile_size : int, optional
        Predict large images in overlapping tiles of this size (see `Model.predict`).
    tile_overlap : int, optional
        Overlap of neighbouring tiles in pixels (default: `Model.predict`'s,
        ``min(192, tile_size * 3 // 8)``).
    object_size : float or "auto", optional
        The objects' median diameter in these images, in pixels: each image is rescaled
        so that its objects have the size the model was trained at (``model.object_size``)
        and the results come back on its own pixels. ``"auto"``: estimated per image. None:
        the model's ``data_object_size`` (no rescaling when the model knows no sizes). See
        `Model.predict` and docs/object_size.md. For a stack, None and ``"auto"`` both
        measure it once per stack (`labelassist.stacks.predict_stack`'s default).
    channels : int or sequence of int, optional
        Channels of (H, W, C) images to use, in order (one: gray; two, e.g. cytoplasm
        and nucleus: green and blue; three: RGB). None: ``model.channels`` (images as they
        are when that is None). Arrays may then have any number of channels.
    mask_threshold : float, optional
        Mask probability above which a pixel is inside, within (0, 1). None: the model's
        own (`Model.mask_threshold`, chosen for its edges).
    mirror : bool, default True
        Average each mask with the one predicted on the left-right mirrored image (closer
        edges, about 1.5x the time; see `Model.predict`). Not used for stacks.
    batch_size : int, default 4
        Images per forward pass (and per Dask task).
    num_workers : int, optional
        Processes decoding images (torch ``DataLoader`` workers) while the model runs
        in this process; 0 decodes in this process. Default: 0 when the model runs on
        the CPU (its threads already use every core) or the images are arrays; else up
        to 4, one less than the CPU count. Ignored with ``client``.
    client : dask.distributed.Client, optional
        Run on this Dask cluster instead: images are read and predicted by the workers
        (paths must be readable there), each worker loads the model once. A task whose
        worker dies is retried one image per task, so only the image to blame fails.
    flush_every : int, default 50
        Write ``out`` after this many newly processed images. Each write rewrites the
        whole file, which grows with the run; once a write takes over a second (many
        thousands of images), writes are spaced out so that they take at most 10 % of
        the run time.
    retry_failed : bool, default False
        Try again the images that ``out`` records as failed by an earlier run.
    progress : bool, default True
        Show a tqdm progress bar.

    Returns
    -------
    dataset : PreannotateResult
        A `Dataset`: ``categories`` are ``model.classes``; one image record (``id``,
        ``file_name``, ``height``, ``width``) and one `Instances` per image done, in input
        order (ids are the input positions + 1, unless a resumed ``out`` had taken them).
        ``dataset.failed`` lists ``(file_name, reason)`` for each image that could not be
        read or predicted (also those recorded in ``out`` by an earlier run); a
        `PreannotateWarning` lists them too.

    Raises
    ------
    FileNotFoundError
        If ``images`` is a path that does not exist. (A missing file inside a list is
        reported in ``dataset.failed`` instead.)
    ValueError
        If a folder holds no images, a pattern matches nothing, an option is out of range,
        ``out`` is a folder or another non-file, or holds results for other classes than
        the model's.
    TypeError
        If ``images``, ``model``, ``out`` or ``client`` has the wrong type.
    OSError
        If ``out``'s folder cannot be written (checked before any work).

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
    >>> model.set_input(object_size=20)  # doctest: +ELLIPSIS
    Model(...)
    >>> two = np.zeros((60, 60, 2), np.uint16)  # e.g. cytoplasm + nucleus
    >>> ds = la.preannotate([two], model, object_size=40, channels=[0, 1], score_threshold=0.99,
    ...                     progress=False)
    >>> ds.images[0]["height"], ds.failed
    (60, [])
    """
    score_threshold = check_number(score_threshold, "score_threshold", minimum=0, maximum=1)
    tile_size = check_int(tile_size, "tile_size", minimum=1, allow_none=True)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    num_workers = check_int(num_workers, "num_workers", minimum=0, allow_none=True)
    flush_every = check_int(flush_every, "flush_every", minimum=1)
    if not isinstance(retry_failed, (bool, np.bool_)):
        raise TypeError(f"retry_failed must be True or False, got {retry_failed!r}")
    if client is not None and not hasattr(client, "submit"):
        raise TypeError(f"client must be a dask.distributed.Client, got {type(client).__name__}")
    out_path = check_out(out)
    sources, root = collect_sources(
        images, prefer_root=out_path.parent if out_path is not None else None
    )
    if isinstance(object_size, (list, tuple)):
        raise ValueError(
            "object_size must be one size for all images (a number, 'auto' or None), got a "
            f"{type(object_size).__name__}"
        )
    model = _as_model(model)
    # let Model.predict validate its options once, before any work
    model.predict(
        [],
        score_threshold=score_threshold,
        tile_size=tile_size,
        tile_overlap=tile_overlap,
        batch_size=batch_size,
        object_size=object_size,
        channels=channels,
        mask_threshold=mask_threshold,
        mirror=mirror,
    )
    previous = Previous()
    if out_path is not None:
        previous = read_previous(out_path, model.classes)
        check_out_writable(out_path)
    pending = previous.left_to_do(sources, retry_failed=bool(retry_failed))
    pending_names = {s.name for s in pending}
    stacks = [s for s in pending if is_stack(s)]
    if stacks:
        pending = [s for s in pending if s not in stacks]
    from ..model.normalize import check_channels  # heavy: imports torch (loaded by now)

    picked = check_channels(channels)
    options = Options(
        score_threshold,
        tile_size,
        batch_size,
        tile_overlap,
        None if object_size is None else object_size,
        picked if picked is not None else model.channels,
        None if mask_threshold is None else float(mask_threshold),
        bool(mirror),
    )

    start = time.perf_counter()
    with tqdm(
        total=len(sources),
        initial=len(sources) - len(pending),
        disable=not progress,
        unit="img",
        desc="preannotate",
    ) as bar:
        collector = Collector(
            model.classes,
            root,
            assign_ids(sources, previous.ids),
            {s.name: s.index for s in sources},
            previous,
            out_path,
            flush_every,
            bar,
            keypoints=model.meta.get("keypoints"),
            skeleton=model.meta.get("skeleton"),
        )
        try:
            if pending and client is not None:
                run_dask(pending, model, options, client, collector.emit)
            elif pending:
                from .local import default_num_workers, run_local  # heavy: imports torch

                if num_workers is None:
                    num_workers = default_num_workers(pending, model)
                run_local(pending, model, options, num_workers, collector.emit)
            for src in stacks:  # in this process, also with a client (see the docstring)
                saved = stack_file(out_path, src.name) if out_path is not None else None
                objects, error = predict_stack_source(src, model, options, saved)
                collector.emit_stack(src, objects, error, saved)
        except BaseException:
            if out_path is not None and collector.unflushed:
                try:  # keep what is done, so that a re-run resumes from here
                    collector.flush()
                except Exception:  # noqa: BLE001 - the original error matters more
                    logger.exception("preannotate: could not save results to %s", out_path)
            raise
        if out_path is not None and (collector.unflushed or not out_path.exists()):
            collector.flush()
    result = collector.dataset()
    logger.info(
        "preannotate: %d images (%d new) in %.1f s, %d failed",
        len(result.images),
        len(pending) - sum(1 for name, _ in result.failed if name in pending_names),
        time.perf_counter() - start,
        len(result.failed),
    )
    collector.warn_failed()
    return result
