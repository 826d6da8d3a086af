"""Active learning: which unreviewed images would gain most from a human review.

An image is worth reviewing when the model is unsure about it. `rank_images` scores each
image by two signs of doubt, both counted in "objects likely to need a correction":

- **score uncertainty**: every detection above ``min_score`` adds ``1 - |2 s - 1|`` (1 at
  a score of 0.5, 0 at 0 or 1), so many detections in the uncertain band rank an image
  high;
- **flip disagreement**: the image is predicted again mirrored left-right, the result is
  mirrored back and matched to the first prediction (box IoU, Hungarian matching); a
  matched pair adds ``(1 - IoU) * max(score)``, an object found only once adds its score.
  A model that is sure of an object finds it the same way both times.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .instances import Instances
from .io import read_image

if TYPE_CHECKING:  # pragma: no cover
    from .model import Model

__all__ = ["rank_images", "image_uncertainty"]


def rank_images(
    model: Model,
    images: Sequence[np.ndarray | str | os.PathLike],
    *,
    min_score: float = 0.05,
    flip: bool = True,
    batch_size: int = 4,
    return_scores: bool = False,
    progress: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Rank images by how much a review would help, most useful first.

    Parameters
    ----------
    model : Model
        The current model (anything with ``predict(list, *, score_threshold, batch_size)``
        returning one `Instances` per image).
    images : sequence of ndarray or path
        Images (H, W[, C]) or image files (read with `labelassist.read_image`).
    min_score : float
        Detections below this score are ignored (in [0, 1)).
    flip : bool
        Also measure the disagreement with the prediction on the mirrored image (twice the
        inference time).
    batch_size : int
        Images predicted at a time.
    return_scores : bool
        Also return the per-image uncertainty scores.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    order : ndarray of shape (N,), int64
        Indices into ``images``, most uncertain first (ties keep the input order).
    scores : ndarray of shape (N,), float64
        Only with ``return_scores``: the uncertainty of each image (aligned with
        ``images``, not with ``order``); 0 means the model is sure of everything.

    Examples
    --------
    >>> import numpy as np
    >>> from labelassist import load_model
    >>> model = load_model(None, classes=["nucleus"], device="cpu")
    >>> rank_images(model, [])
    array([], dtype=int64)
    >>> order, scores = rank_images(model, [np.zeros((32, 32), np.uint8)] * 2,
    ...                             flip=False, return_scores=True)
    >>> order.tolist(), scores.shape
    ([0, 1], (2,))
    """
    if not hasattr(model, "predict"):
        raise TypeError(f"model must have a predict method (a Model), got {type(model).__name__}")
    if isinstance(images, (str, os.PathLike, np.ndarray)):
        raise TypeError("images must be a list of images or paths; wrap a single one in [ ]")
    if not (isinstance(min_score, (int, float)) and 0 <= min_score < 1):
        raise ValueError(f"min_score must be within [0, 1), got {min_score!r}")
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    images = list(images)
    scores = np.zeros(len(images), dtype=np.float64)
    from tqdm.auto import tqdm

    with tqdm(total=len(images), desc="rank", unit="image", disable=not progress) as bar:
        for start in range(0, len(images), batch_size):
            batch = [_load(im) for im in images[start : start + batch_size]]
            inputs = batch + [np.ascontiguousarray(im[:, ::-1]) for im in batch] if flip else batch
            preds = model.predict(
                inputs, score_threshold=min_score, batch_size=batch_size, mirror=False
            )
            for k in range(len(batch)):
                mirrored = _unflip(preds[len(batch) + k]) if flip else None
                scores[start + k] = image_uncertainty(preds[k], mirrored)
            bar.update(len(batch))
    order = np.argsort(-scores, kind="stable").astype(np.int64)
    return (order, scores) if return_scores else order


def image_uncertainty(prediction: Instances, mirrored: Instances | None = None) -> float:
    """Uncertainty of one image's prediction (see the module docstring).

    Parameters
    ----------
    prediction : Instances
        The prediction on the image.
    mirrored : Instances, optional
        The prediction on the mirrored image, mirrored back into the image's coordinates.

    Returns
    -------
    float
        >= 0; roughly the number of objects likely to need a correction.

    Examples
    --------
    >>> import shapely
    >>> sure = Instances([shapely.box(0, 0, 8, 8)], [0], [1.0], (16, 16))
    >>> unsure = sure.replace(scores=[0.5])
    >>> image_uncertainty(sure, sure), image_uncertainty(unsure, unsure)
    (0.0, 1.0)
    >>> image_uncertainty(sure, Instances.empty((16, 16)))  # found once only
    1.0
    """
    if not isinstance(prediction, Instances):
        raise TypeError(f"prediction must be Instances, got {type(prediction).__name__}")
    s = prediction.scores.astype(np.float64)
    total = float(np.sum(1.0 - np.abs(2.0 * s - 1.0)))
    if mirrored is None:
        return total
    if not isinstance(mirrored, Instances):
        raise TypeError(f"mirrored must be Instances or None, got {type(mirrored).__name__}")
    t = mirrored.scores.astype(np.float64)
    if len(s) and len(t):
        import torch
        from scipy.optimize import linear_sum_assignment
        from torchvision.ops import box_iou

        iou = box_iou(
            torch.as_tensor(prediction.boxes, dtype=torch.float64),
            torch.as_tensor(mirrored.boxes, dtype=torch.float64),
        ).numpy()
        rows, cols = linear_sum_assignment(-iou)
        matched = iou[rows, cols] > 0
        rows, cols = rows[matched], cols[matched]
        total += float(np.sum((1.0 - iou[rows, cols]) * np.maximum(s[rows], t[cols])))
        total += float(np.delete(s, rows).sum() + np.delete(t, cols).sum())
    else:
        total += float(s.sum() + t.sum())
    return total


def _load(image: Any) -> np.ndarray:
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    return np.asarray(image)


def _unflip(instances: Instances) -> Instances:
    """Mirror left-right predictions of a mirrored image back (x -> W - x)."""
    import shapely

    width = instances.image_shape[1]
    if not len(instances):
        return instances
    polygons = shapely.transform(
        instances.polygons, lambda xy: np.column_stack([width - xy[:, 0], xy[:, 1]])
    )
    return instances.replace(polygons=shapely.orient_polygons(polygons))
