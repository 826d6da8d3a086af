"""Predicting one batch of decoded images, where an image that fails, fails alone.

Shared by the local loop (`labelassist.bulk.local`) and the Dask workers
(`labelassist.bulk.cluster`), so both give the same outcome for every image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..instances import Instances
from .sources import ImageSource, one_line

if TYPE_CHECKING:  # pragma: no cover
    from ..model import Model

__all__ = ["Loaded", "Options", "Outcome", "predict_batch", "prediction_failure"]

#: a source with its decoded image, or the reason it could not be decoded
Loaded = tuple[ImageSource, "np.ndarray | None", "str | None"]


@dataclass(frozen=True)
class Options:
    """The `Model.predict` options of a run (validated by `preannotate`)."""

    score_threshold: float
    tile_size: int | None
    batch_size: int
    tile_overlap: int | None = None
    #: the objects' size in the images (px) or "auto" (`Model.predict`'s ``object_size``)
    object_size: float | str | None = None
    #: the channels in effect (the run's, else the model's); None: images as they are
    channels: tuple[int, ...] | None = None
    #: the masks' probability threshold (None: the model's `Model.mask_threshold`)
    mask_threshold: float | None = None
    #: average each mask with the mirrored image's (`Model.predict`'s ``mirror``)
    mirror: bool = True


@dataclass(frozen=True)
class Outcome:
    """The result for one source: its instances and image shape, or why it failed."""

    source: ImageSource
    shape: tuple[int, int] | None = None
    instances: Instances | None = None
    error: str | None = None


def prediction_failure(exc: BaseException, *, where: str = "") -> str:
    """The one-line reason recorded for an image whose prediction raised ``exc``."""
    return f"prediction failed{where}: {type(exc).__name__}: {one_line(exc)}"


def _predict(model: Model, images: list[np.ndarray], options: Options) -> list[Instances]:
    result = model.predict(
        images,
        score_threshold=options.score_threshold,
        tile_size=options.tile_size,
        tile_overlap=options.tile_overlap,
        batch_size=options.batch_size,
        object_size=options.object_size,
        channels=options.channels,
        mask_threshold=options.mask_threshold,
        mirror=options.mirror,
    )
    return [result] if isinstance(result, Instances) else result


def _release_memory(model: Model) -> None:
    """After a failed forward pass (often out of memory), give cached GPU memory back."""
    if getattr(model.device, "type", None) == "cuda":
        import torch  # heavy: only reached with a CUDA model, where torch is loaded

        torch.cuda.empty_cache()


def predict_batch(model: Model, loaded: Sequence[Loaded], options: Options) -> list[Outcome]:
    """Predict a batch of decoded images; one `Outcome` per source, in input order.

    The images are predicted together; if that raises (any `Exception`: an image the
    model rejects, ``RuntimeError`` or `MemoryError` when one huge image does not fit in
    memory, a geometry error), they are predicted one by one and only the images that
    still fail get an error (``prediction failed: <type>: <message>``). Sources that
    could not be decoded keep their reason.
    """
    outcomes = [
        Outcome(src, error=err or "unreadable") for src, image, err in loaded if image is None
    ]
    good = [(src, image) for src, image, _ in loaded if image is not None]
    if not good:
        return outcomes
    predictions: list[Instances] | None = None
    reason = ""
    try:
        predictions = _predict(model, [image for _, image in good], options)
    except Exception as exc:  # noqa: BLE001 - narrowed down per image below
        reason = prediction_failure(exc)
    if predictions is None:  # out of the except block: the traceback (and its tensors) is gone
        _release_memory(model)
    for k, (src, image) in enumerate(good):
        shape = (int(image.shape[0]), int(image.shape[1]))
        if predictions is not None:
            outcomes.append(Outcome(src, shape, predictions[k]))
        elif len(good) == 1:
            outcomes.append(Outcome(src, error=reason))
        else:
            outcomes.append(_predict_one(model, src, image, options))
    return sorted(outcomes, key=lambda o: o.source.index)


def _predict_one(model: Model, src: ImageSource, image: np.ndarray, options: Options) -> Outcome:
    shape = (int(image.shape[0]), int(image.shape[1]))
    try:
        return Outcome(src, shape, _predict(model, [image], options)[0])
    except Exception as exc:  # noqa: BLE001 - recorded for this image, the run goes on
        reason = prediction_failure(exc)
    _release_memory(model)
    return Outcome(src, error=reason)
