"""The Dask mapping of a bulk run: chunks of images as tasks, the model loaded once per worker.

The model travels once to every worker as checkpoint bytes
(`labelassist.model.checkpoint.checkpoint_to_bytes`); a worker builds it on the first task
and keeps it, keyed by the bytes' SHA-256, for the later tasks and runs. Each task reads its
images and predicts them with `predict_batch`, exactly as a local run does. A task that
fails as a whole (its worker died, e.g. killed for memory) is split into one task per image,
so that only the image that kills workers is recorded as failed.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..instances import Instances
from .batch import Options, Outcome, predict_batch, prediction_failure
from .sources import ImageSource, load_source

if TYPE_CHECKING:  # pragma: no cover
    from ..model import Model

__all__ = ["import_distributed", "run_dask"]

_DASK_EXTRA = "pip install labelassist[dask]"

# -- on the workers -------------------------------------------------------------------------

_WORKER_MODELS: dict[str, Model] = {}
_WORKER_LOCK = threading.Lock()
_WORKER_LOADS = 0  # how many models this process loaded (tests check: once per worker)

#: what a task sends back for one image: index, shape, instance fields, error
Packed = tuple[int, "tuple[int, int] | None", "tuple | None", "str | None"]


class _ModelLoadError(RuntimeError):
    """A worker could not build the model: the run stops (no image is to blame)."""


def _worker_model(key: str, checkpoint: bytes) -> Model:
    """The model for ``key``, built from ``checkpoint`` bytes once per worker process."""
    global _WORKER_LOADS
    with _WORKER_LOCK:
        model = _WORKER_MODELS.get(key)
        if model is None:
            from ..model import model_from_bytes  # heavy: imports torch

            try:
                model = model_from_bytes(checkpoint)
            except Exception as exc:
                raise _ModelLoadError(f"a Dask worker could not load the model: {exc}") from exc
            if len(_WORKER_MODELS) >= 2:  # keep memory bounded across runs
                _WORKER_MODELS.pop(next(iter(_WORKER_MODELS)))
            _WORKER_MODELS[key] = model
            _WORKER_LOADS += 1
    return model


def _pack(outcome: Outcome) -> Packed:
    """`Instances` is not picklable (immutable, slots): ship its fields instead."""
    inst = outcome.instances
    fields = None
    if inst is not None:
        fields = (
            list(inst.polygons),
            inst.labels,
            inst.scores,
            inst.image_shape,
            inst.extra,
            inst.keypoints,
        )
    return (outcome.source.index, outcome.shape, fields, outcome.error)


def _unpack(packed: Packed, sources: dict[int, ImageSource]) -> Outcome:
    index, shape, fields, error = packed
    instances = None
    if fields is not None:
        polygons, labels, scores, image_shape, extra, keypoints = fields
        instances = Instances(
            polygons, labels, scores, image_shape, extra=extra, keypoints=keypoints
        )
    return Outcome(sources[index], shape, instances, error)


def _predict_on_worker(
    key: str, checkpoint: bytes, chunk: list[ImageSource], options: Options
) -> list[Packed]:
    model = _worker_model(key, checkpoint)
    any_channels = options.channels is not None
    loaded = [(src, *load_source(src, any_channels=any_channels)) for src in chunk]
    return [_pack(o) for o in predict_batch(model, loaded, options)]


# -- on the client ----------------------------------------------------------------------------


def import_distributed() -> Any:
    """The ``distributed`` module, or an `ImportError` naming the extra to install."""
    try:
        import distributed  # heavy: optional dependency
    except ImportError as exc:
        raise ImportError(f"preannotate(client=...) needs dask.distributed: {_DASK_EXTRA}") from exc
    return distributed


def model_key(checkpoint: bytes) -> str:
    """The cache key of a model on the workers: equal checkpoint bytes, equal key."""
    return hashlib.sha256(checkpoint).hexdigest()


def run_dask(
    sources: Sequence[ImageSource],
    model: Model,
    options: Options,
    client: Any,
    emit: Callable[[list[Outcome]], None],
) -> None:
    """Predict ``sources`` on ``client``'s cluster, ``options.batch_size`` images per task;
    ``emit`` each task's outcomes as it completes."""
    distributed = import_distributed()
    from ..model import checkpoint_to_bytes  # heavy: imports torch

    checkpoint = checkpoint_to_bytes(model)
    key = model_key(checkpoint)
    [checkpoint_future] = client.scatter([checkpoint], broadcast=True, hash=False)
    by_index = {s.index: s for s in sources}

    def submit(chunk: list[ImageSource]) -> Any:
        return client.submit(_predict_on_worker, key, checkpoint_future, chunk, options, pure=False)

    chunks: dict[Any, list[ImageSource]] = {}
    for i in range(0, len(sources), options.batch_size):
        chunk = list(sources[i : i + options.batch_size])
        chunks[submit(chunk)] = chunk
    completed = distributed.as_completed(list(chunks))
    try:
        for future in completed:
            chunk = chunks.pop(future)
            if future.status != "error":
                emit([_unpack(p, by_index) for p in future.result()])
                continue
            exc = future.exception()
            if isinstance(exc, _ModelLoadError):
                raise exc
            if len(chunk) > 1:  # find the image that makes the task fail
                for src in chunk:
                    single = submit([src])
                    chunks[single] = [src]
                    completed.add(single)
            else:
                emit([Outcome(chunk[0], error=prediction_failure(exc, where=" on a Dask worker"))])
    finally:
        client.cancel(list(chunks))
