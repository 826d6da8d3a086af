"""How exact proposals' outlines are against ground truth, and which mask threshold fits.

Each true object is matched to the proposal of highest mask IoU (both rasterized with
`labelassist.geometry.polygons_to_masks`, COCO pixel convention). An annotator accepts a
proposal as it is when its IoU reaches 0.9 (`ACCEPT_IOU`); `choose_mask_threshold` picks
the threshold that maximises that share on images with known truth (the starter's is
chosen on held-out synthetic images when it is built, ``examples/train_starter.py``) and
stores nothing itself: ``model.set_input(mask_threshold=...)`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .geometry import polygons_to_masks
from .instances import Instances

__all__ = ["ACCEPT_IOU", "Fidelity", "choose_mask_threshold", "mask_fidelity", "match_masks"]

#: The IoU at which a proposal is accepted as it is.
ACCEPT_IOU = 0.9


@dataclass(frozen=True)
class Fidelity:
    """Summary of `match_masks` over true objects.

    Attributes
    ----------
    objects : int
        True objects.
    found : float
        Share matched by a proposal at IoU >= 0.5.
    median_iou : float
        Median IoU of the found objects (nan when none).
    accepted : float
        Share of all true objects whose best proposal reaches `ACCEPT_IOU`.
    area_bias : float
        Median ``(proposal area - true area) / true area`` of the found objects (positive:
        masks too large; nan when none).
    """

    objects: int
    found: float
    median_iou: float
    accepted: float
    area_bias: float


def match_masks(predicted: Instances, truth: Instances) -> tuple[np.ndarray, np.ndarray]:
    """Per true object: the best mask IoU of any proposal and that proposal's area bias.

    Parameters
    ----------
    predicted, truth : Instances
        On the same image (same ``image_shape``).

    Returns
    -------
    iou, bias : ndarray of shape (len(truth),)
        IoU 0 and bias nan where no proposal overlaps.

    Examples
    --------
    >>> from shapely import box
    >>> truth = Instances([box(0, 0, 10, 10)], [0], [1.0], (20, 20))
    >>> pred = Instances([box(0, 0, 10, 11)], [0], [0.9], (20, 20))
    >>> iou, bias = match_masks(pred, truth)
    >>> round(float(iou[0]), 3), round(float(bias[0]), 3)
    (0.909, 0.1)
    """
    if tuple(predicted.image_shape) != tuple(truth.image_shape):
        raise ValueError(
            f"predicted and truth are on different images: image_shape "
            f"{predicted.image_shape} vs {truth.image_shape}"
        )
    n = len(truth)
    if n == 0 or len(predicted) == 0:
        return np.zeros(n), np.full(n, np.nan)
    t = polygons_to_masks(truth.polygons, truth.image_shape).reshape(n, -1).astype(np.float32)
    p = polygons_to_masks(predicted.polygons, predicted.image_shape)
    p = p.reshape(len(predicted), -1).astype(np.float32)
    inter = t @ p.T
    union = t.sum(1)[:, None] + p.sum(1)[None] - inter
    iou = inter / np.maximum(union, 1)
    best = iou.argmax(1)
    best_iou = iou[np.arange(n), best]
    with np.errstate(divide="ignore", invalid="ignore"):
        bias = (p.sum(1)[best] - t.sum(1)) / t.sum(1)
    bias[best_iou == 0] = np.nan
    return best_iou, bias


def mask_fidelity(pairs: Sequence[tuple[Instances, Instances]]) -> Fidelity:
    """`Fidelity` of (predicted, truth) pairs, one per image.

    Examples
    --------
    >>> from shapely import box
    >>> truth = Instances([box(0, 0, 10, 10), box(12, 12, 18, 18)], [0, 0], [1, 1], (20, 20))
    >>> pred = Instances([box(0, 0, 10, 10)], [0], [0.9], (20, 20))
    >>> f = mask_fidelity([(pred, truth)])
    >>> f.objects, f.found, f.median_iou, f.accepted, f.area_bias
    (2, 0.5, 1.0, 0.5, 0.0)
    """
    matched = [match_masks(p, t) for p, t in pairs]
    iou = np.concatenate([m[0] for m in matched]) if matched else np.zeros(0)
    bias = np.concatenate([m[1] for m in matched]) if matched else np.zeros(0)
    found = iou >= 0.5
    if not len(iou):
        return Fidelity(0, float("nan"), float("nan"), float("nan"), float("nan"))
    return Fidelity(
        objects=len(iou),
        found=float(found.mean()),
        median_iou=float(np.median(iou[found])) if found.any() else float("nan"),
        accepted=float((iou >= ACCEPT_IOU).mean()),
        area_bias=float(np.median(bias[found])) if found.any() else float("nan"),
    )


def choose_mask_threshold(
    model: Any,
    data: Sequence[tuple[np.ndarray, Instances]],
    thresholds: Sequence[float] = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7),
    **predict_options: Any,
) -> tuple[float, dict[float, Fidelity]]:
    """The mask threshold whose proposals are most often accepted as they are.

    Each image is predicted once per threshold (``model.predict(image,
    mask_threshold=t, **predict_options)``); the threshold with the largest share of true
    objects at IoU >= `ACCEPT_IOU` wins, ties going to the higher median IoU, then to the
    one nearest 0.5.

    Parameters
    ----------
    model : labelassist.Model
        The network to calibrate (not modified).
    data : sequence of (image, Instances)
        Images with their complete ground truth, never trained on.
    thresholds : sequence of float
        Candidates within (0, 1).
    **predict_options
        Passed to `Model.predict` (e.g. ``score_threshold``).

    Returns
    -------
    best : float
    table : dict
        `Fidelity` per threshold.

    Examples
    --------
    >>> from labelassist import load_model
    >>> from labelassist.synthetic import synthetic_nuclei
    >>> model = load_model("starter")
    >>> best, table = choose_mask_threshold(model, [synthetic_nuclei((96, 96), seed=5)],
    ...                                     thresholds=(0.5, 0.6))
    >>> best in table
    True
    """
    if not data:
        raise ValueError("choose_mask_threshold needs at least one (image, Instances) pair")
    if not thresholds:
        raise ValueError("thresholds is empty: give candidates such as (0.5, 0.6)")
    table = {}
    for t in thresholds:
        pairs = [(model.predict(img, mask_threshold=t, **predict_options), gt) for img, gt in data]
        table[float(t)] = mask_fidelity(pairs)

    def key(t: float) -> tuple[float, float, float]:
        f = table[t]
        return (f.accepted, np.nan_to_num(f.median_iou, nan=-1.0), -abs(t - 0.5))

    return max(table, key=key), table
