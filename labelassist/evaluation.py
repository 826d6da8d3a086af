"""COCO metrics (pycocotools ``COCOeval``) of predicted instances against a `Dataset`.

Both ``segm`` (mask IoU) and ``bbox`` (box IoU) are evaluated with up to
``max_detections`` detections per image (default 1000: microscopy images hold hundreds of
nuclei; COCO's default of 100 would silently cap recall). The figures are read from
``COCOeval.eval["precision"]`` / ``["recall"]`` at that limit and over all object sizes,
so they do not depend on the index positions hard-coded in ``COCOeval.summarize``.

Which images count: the dataset's *annotated* images, those with an entry in
``dataset.instances`` (an empty `Instances` is an annotated image without objects, where
every prediction is a false positive). Images without an entry are not annotated yet
and are skipped.

Keypoints: when the dataset names keypoints (`Dataset.keypoints`), OKS AP is reported
too (``keypoints_AP``, ... from ``COCOeval(iouType="keypoints")``), with per-keypoint
sigmas `DEFAULT_KEYPOINT_SIGMA` unless given. Predictions without keypoints count as
detections that match nothing there; ground truth without a labelled keypoint is ignored
there (COCO's rule for ``num_keypoints == 0``).

Which ground truth counts: what pycocotools rasterizes, the pixels of each instance
inside its image. Instances reaching outside the image are clipped to it and instances
covering no pixel (wholly outside, or slivers between pixel centres) are left out, each
with a warning. A dataset without any ground truth left raises ``ValueError``: AP is
undefined there, and no metric is ever NaN without one of these messages (only the
per-class figures of a category without ground truth are NaN, as documented).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tqdm.auto import tqdm

from .checks import check_int, check_number
from .coco import Dataset, instances_to_coco, read_coco
from .instances import Instances
from .io import read_image

__all__ = [
    "DEFAULT_KEYPOINT_SIGMA",
    "KEYPOINT_METRIC_KEYS",
    "METRIC_KEYS",
    "evaluate",
    "evaluate_predictions",
    "oks_sigmas",
]

#: The metric keys of `evaluate_predictions`, each a float in ``[0, 1]``.
METRIC_KEYS = tuple(
    f"{iou_type}_{name}" for iou_type in ("segm", "bbox") for name in ("AP", "AP50", "AP75", "AR")
)
#: The metric keys added when the dataset has keypoints (OKS instead of IoU).
KEYPOINT_METRIC_KEYS = tuple(f"keypoints_{name}" for name in ("AP", "AP50", "AP75", "AR"))

#: The default OKS sigma of every keypoint. OKS scores a predicted keypoint at distance
#: ``d`` from the truth as ``exp(-d**2 / (2 * area * (2 * sigma)**2))`` (``area``: the
#: object's mask area), so OKS 0.5 means ``d = 2.35 * sigma * sqrt(area)``. COCO measured
#: sigma from annotators' disagreement: 0.025-0.035 for sharp facial points, 0.06-0.11
#: for joints and hips. Landmarks of cells and animals (the tips of a rod, a head, a
#: pole) are sharp points on the outline but less crisp than an eye in blurred
#: microscopy; 0.05 asks, at OKS 0.5, for the point within ~1.2 px on a 20 x 5 px
#: bacterium and ~3 px on a 100 x 7 px worm, about how closely people click such tips.
DEFAULT_KEYPOINT_SIGMA = 0.05


def oks_sigmas(sigmas: Any, names: Sequence[str]) -> np.ndarray:
    """Per-keypoint OKS sigmas for ``names``: one float for all, a sequence (one per
    name) or a dict by name (missing names get `DEFAULT_KEYPOINT_SIGMA`); None: the
    default for all.

    Examples
    --------
    >>> oks_sigmas({"tail": 0.1}, ["head", "tail"]).tolist()
    [0.05, 0.1]
    """
    k = len(names)
    if sigmas is None:
        values = np.full(k, DEFAULT_KEYPOINT_SIGMA)
    elif isinstance(sigmas, Mapping):
        unknown = sorted(set(sigmas) - set(names))
        if unknown:
            raise ValueError(
                f"keypoint_sigmas names unknown keypoints {unknown}; known: {list(names)}"
            )
        values = np.array([sigmas.get(n, DEFAULT_KEYPOINT_SIGMA) for n in names], dtype=object)
    elif isinstance(sigmas, (int, float)) and not isinstance(sigmas, bool):
        values = np.full(k, float(sigmas))
    elif isinstance(sigmas, Sequence) and not isinstance(sigmas, str):
        if len(sigmas) != k:
            raise ValueError(
                f"keypoint_sigmas has {len(sigmas)} values for {k} keypoints {list(names)}; "
                "give one per keypoint, one float, or a dict by name"
            )
        values = np.array(list(sigmas), dtype=object)
    else:
        raise TypeError(
            "keypoint_sigmas must be a float, a list (one per keypoint) or a dict by name, "
            f"got {type(sigmas).__name__}"
        )
    out = np.zeros(k)
    for i, v in enumerate(values.tolist()):
        out[i] = check_number(v, f"keypoint_sigmas[{names[i]!r}]", minimum=0)
        if out[i] <= 0:
            raise ValueError(f"keypoint_sigmas[{names[i]!r}] must be > 0, got {v!r}")
    return out


# -- checks --------------------------------------------------------------------------------
def _as_dataset(dataset: Any, image_root: Any = None) -> Dataset:
    """A `Dataset`, or one read from a COCO json path."""
    if isinstance(dataset, (str, os.PathLike)):
        if not Path(dataset).exists():
            raise FileNotFoundError(f"dataset: COCO file not found: {dataset}")
        return read_coco(dataset, image_root=image_root)
    if not isinstance(dataset, Dataset):
        raise TypeError(
            "dataset must be a labelassist Dataset or the path of a COCO json file, got "
            f"{type(dataset).__name__}"
        )
    if image_root is not None:
        raise ValueError("image_root is only used when dataset is a COCO file path")
    return dataset


def _ground_truth(dataset: Dataset, stacklevel: int) -> tuple[list[int], list[dict]]:
    """``(ids of the annotated images, their ground truth as COCO RLE annotations)``.

    Warns about instances reaching outside their image (clipped) and instances covering
    no pixel of it (left out); raises ``ValueError`` when no ground truth is left.
    """
    ids = [i for i in dataset.image_ids if i in dataset.instances]
    clipped = sum(_reaching_outside(dataset.instances[i]) for i in ids)
    anns, dropped = _annotations(dataset.instances, ids)
    if clipped:
        warnings.warn(
            f"dataset: {clipped} ground-truth instance(s) reach outside their image; only "
            "their pixels inside it count (as pycocotools rasterizes them)",
            UserWarning,
            stacklevel=stacklevel + 1,
        )
    if dropped:
        warnings.warn(
            f"dataset: {dropped} ground-truth instance(s) cover no pixel of their image "
            "(outside it, or too thin to cover a pixel centre) and are left out; check "
            "their coordinates (x, y in pixels, inside [0, width] x [0, height])",
            UserWarning,
            stacklevel=stacklevel + 1,
        )
    if not any(a["iscrowd"] == 0 for a in anns):
        raise ValueError(
            "dataset has no ground-truth instances (crowd regions do not count, nor do "
            "instances covering no pixel of their image), so AP is undefined; evaluate on "
            "a dataset with annotated objects"
        )
    return ids, anns


def _reaching_outside(instances: Instances) -> int:
    """How many of ``instances`` lie partly outside their image (some area in, some out)."""
    h, w = instances.image_shape
    polygons = instances.polygons[~shapely.is_empty(instances.polygons)]
    x0, y0, x1, y1 = shapely.bounds(polygons).T
    out = polygons[(x0 < 0) | (y0 < 0) | (x1 > w) | (y1 > h)]
    if not len(out):
        return 0
    return int(np.count_nonzero(shapely.area(shapely.clip_by_rect(out, 0, 0, w, h)) > 0))


def _predictions_by_id(predictions: Any, dataset: Dataset, ids: list[int]) -> dict[int, Instances]:
    """Predictions as {image id: Instances} for the annotated images ``ids``, validated."""
    if isinstance(predictions, Mapping):
        known = set(dataset.image_ids)
        unknown = [k for k in predictions if k not in known]
        if unknown:
            raise ValueError(f"predictions has keys {unknown[:10]} that are not image ids")
        missing = [i for i in ids if i not in predictions]
        if missing:
            raise ValueError(
                f"predictions lack the annotated images {missing[:10]}; give "
                "Instances.empty((height, width)) for an image without detections, or "
                "evaluate on dataset.subset(ids)"
            )
        by_id = {i: predictions[i] for i in ids}
    elif isinstance(predictions, Sequence) and not isinstance(predictions, (str, bytes)):
        if len(predictions) != len(dataset.images):
            raise ValueError(
                f"predictions is a list of {len(predictions)} items but the dataset holds "
                f"{len(dataset.images)} images; give one Instances per image, in "
                "dataset.images order (or a dict keyed by image id)"
            )
        wanted = set(ids)
        by_id = {i: p for i, p in zip(dataset.image_ids, predictions, strict=True) if i in wanted}
    else:
        raise TypeError(
            "predictions must be a dict {image id: Instances} or a list of Instances, got "
            f"{type(predictions).__name__}"
        )
    n_classes = len(dataset.categories)
    for i, pred in by_id.items():
        if not isinstance(pred, Instances):
            raise TypeError(f"predictions for image {i} is {type(pred).__name__}, not Instances")
        record = dataset.image(i)
        if pred.image_shape != (record["height"], record["width"]):
            raise ValueError(
                f"predictions for image {i} have image_shape {pred.image_shape} but the "
                f"image is {(record['height'], record['width'])} (height, width)"
            )
        if len(pred) and pred.labels.max() >= n_classes:
            raise ValueError(
                f"predictions for image {i} have label {int(pred.labels.max())}, but the "
                f"dataset has {n_classes} categories {dataset.categories}"
            )
        k = len(dataset.keypoints or [])
        if pred.keypoints is not None and pred.keypoints.shape[1] != k:
            raise ValueError(
                f"predictions for image {i} have {pred.keypoints.shape[1]} keypoints per "
                f"instance, but the dataset names {k} {dataset.keypoints or ''}"
            )
    return by_id


# -- COCO objects -----------------------------------------------------------------------------
def _annotations(instances: Mapping[int, Instances], ids: list[int]) -> tuple[list[dict], int]:
    """COCO RLE annotations of ``instances`` for ``ids``, ids from 1, empty geometries
    dropped; and how many non-empty instances covered no pixel (dropped too)."""
    anns: list[dict] = []
    dropped = 0
    for i in ids:
        inst = instances[i]
        inst = inst[~shapely.is_empty(inst.polygons)] if len(inst) else inst
        with warnings.catch_warnings():  # counted here, reported by the caller
            warnings.simplefilter("ignore", UserWarning)
            new = instances_to_coco(inst, i, first_id=len(anns) + 1, segmentation="rle")
        dropped += len(inst) - len(new)
        anns += new
    return anns, dropped


def _coco(dataset: Dataset, ids: list[int], anns: list[dict]) -> COCO:
    categories: list[dict[str, Any]] = [
        {"id": k + 1, "name": name} for k, name in enumerate(dataset.categories)
    ]
    if dataset.keypoints is not None:
        for cat in categories:
            cat["keypoints"] = list(dataset.keypoints)
            cat["skeleton"] = [[a + 1, b + 1] for a, b in dataset.skeleton]
    coco = COCO()
    coco.dataset = {
        "images": [
            {"id": i, "height": dataset.image(i)["height"], "width": dataset.image(i)["width"]}
            for i in ids
        ],
        "categories": categories,
        "annotations": anns,
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _mean(values: np.ndarray) -> float:
    valid = values[values > -1]  # -1: a category without ground truth
    return float(valid.mean()) if valid.size else float("nan")


def _cocoeval(
    gt: COCO,
    dt: COCO,
    iou_type: str,
    ids: list[int],
    max_detections: int,
    categories: list[str] | None,
    sigmas: np.ndarray | None = None,
) -> dict[str, float]:
    ev = COCOeval(gt, dt, iou_type)
    if sigmas is not None:
        ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
    ev.params.imgIds = list(ids)
    ev.params.maxDets = [max_detections]
    ev.params.areaRng, ev.params.areaRngLbl = [[0.0, 1e10]], ["all"]
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][:, :, :, 0, 0]  # (IoU thresholds, recall, category)
    recall = ev.eval["recall"][:, :, 0, 0]  # (IoU thresholds, category)
    iou = ev.params.iouThrs
    metrics = {
        f"{iou_type}_AP": _mean(precision),
        f"{iou_type}_AP50": _mean(precision[np.isclose(iou, 0.5)]),
        f"{iou_type}_AP75": _mean(precision[np.isclose(iou, 0.75)]),
        f"{iou_type}_AR": _mean(recall),
    }
    for k, name in enumerate(categories or []):  # category id k + 1 is at position k
        metrics[f"{iou_type}_AP/{name}"] = _mean(precision[:, :, k])
        metrics[f"{iou_type}_AP50/{name}"] = _mean(precision[np.isclose(iou, 0.5), :, k])
    return metrics


def _metrics(
    by_id: dict[int, Instances],
    dataset: Dataset,
    ids: list[int],
    gt_anns: list[dict],
    max_detections: int,
    per_class: bool,
    sigmas: Any = None,
) -> dict[str, float]:
    """The metrics of validated predictions against `_ground_truth`'s annotations."""
    dt_anns, _ = _annotations(by_id, ids)  # predictions covering no pixel: nothing to match
    gt, dt = _coco(dataset, ids, gt_anns), _coco(dataset, ids, dt_anns)
    metrics: dict[str, float] = {}
    categories = dataset.categories if per_class else None
    for iou_type in ("segm", "bbox"):
        metrics.update(_cocoeval(gt, dt, iou_type, ids, max_detections, categories))
    if dataset.keypoints is not None:
        metrics.update(_keypoint_metrics(dataset, ids, gt, gt_anns, dt_anns, max_detections,
                                         categories, sigmas))  # fmt: skip
    metrics.update(n_images=len(ids), n_instances=len(gt_anns), n_predictions=len(dt_anns))
    return metrics


def _keypoint_metrics(
    dataset: Dataset,
    ids: list[int],
    gt: COCO,
    gt_anns: list[dict],
    dt_anns: list[dict],
    max_detections: int,
    categories: list[str] | None,
    sigmas: Any,
) -> dict[str, float]:
    """OKS metrics (``keypoints_AP``, ...) of the predictions that carry keypoints; empty
    with a warning when no ground truth has a labelled keypoint."""
    names = dataset.keypoints or []
    values = oks_sigmas(sigmas, names)
    if not any(a.get("num_keypoints", 0) > 0 and a["iscrowd"] == 0 for a in gt_anns):
        warnings.warn(
            "dataset names keypoints but no ground-truth instance has a labelled one "
            "(v > 0), so OKS AP is undefined and keypoints_AP is not reported",
            UserWarning,
            stacklevel=4,
        )
        return {}
    dt = _coco(dataset, ids, [a for a in dt_anns if "keypoints" in a])
    return _cocoeval(gt, dt, "keypoints", ids, max_detections, categories, values)


# -- public -----------------------------------------------------------------------------------
def evaluate_predictions(
    predictions: Mapping[int, Instances] | Sequence[Instances],
    dataset: Any,
    *,
    max_detections: int = 1000,
    per_class: bool = False,
    keypoint_sigmas: float | Sequence[float] | Mapping[str, float] | None = None,
) -> dict[str, float]:
    """COCO AP/AR of predictions against the ground truth of ``dataset``.

    Parameters
    ----------
    predictions : dict of int to Instances, or list of Instances
        Per image: a dict keyed by image id (every annotated image must be present), or
        a list aligned with ``dataset.images``. ``scores`` rank the detections, ``labels``
        index ``dataset.categories``; ``image_shape`` must be the image's
        ``(height, width)``.
    dataset : Dataset or path
        Ground truth, or the path of a COCO json file. Only annotated images (with an
        entry in ``dataset.instances``) count; crowd regions (``extra["iscrowd"]``) are
        ignored regions as in COCO.
    max_detections : int
        Detections per image taken into account (highest scores first).
    per_class : bool
        Also report ``segm_AP/<name>``, ``segm_AP50/<name>``, ``bbox_AP/<name>`` and
        ``bbox_AP50/<name>`` per category (NaN for a category without ground truth).
    keypoint_sigmas : float, list of float or dict of str to float, optional
        With keypoints: the OKS sigma of each keypoint (one for all, one per keypoint, or
        by name); default `DEFAULT_KEYPOINT_SIGMA` (0.05) each.

    Returns
    -------
    dict of str to float
        ``segm_AP, segm_AP50, segm_AP75, segm_AR, bbox_AP, bbox_AP50, bbox_AP75,
        bbox_AR`` (COCO definitions: AP averaged over IoU 0.50:0.95 and the categories
        that have ground truth; AR at ``max_detections``) in ``[0, 1]``; when the
        dataset has keypoints also ``keypoints_AP, keypoints_AP50, keypoints_AP75,
        keypoints_AR`` (the same over OKS thresholds 0.50:0.95, and per class with
        ``per_class``); plus the counts
        ``n_images`` (annotated images), ``n_instances`` (ground truth, crowd regions
        included) and ``n_predictions`` (non-empty predictions on those images).

    Raises
    ------
    ValueError
        If the dataset has no ground-truth instance covering a pixel of its image (AP is
        undefined), or predictions do not match the dataset (missing images, wrong shape
        or label).

    Warns
    -----
    UserWarning
        When ground-truth instances reach outside their image (only the pixels inside
        count) or cover no pixel of it (left out).

    Examples
    --------
    >>> import shapely
    >>> from labelassist.coco import Dataset
    >>> truth = Instances([shapely.box(2, 2, 10, 10), shapely.box(20, 20, 30, 26)],
    ...                   [0, 0], [1, 1], (32, 32))
    >>> ds = Dataset(["cell"], [{"id": 1, "file_name": "a.png", "height": 32,
    ...                          "width": 32}], {1: truth})
    >>> metrics = evaluate_predictions({1: truth}, ds)
    >>> metrics["segm_AP"], metrics["bbox_AP50"]
    (1.0, 1.0)
    >>> evaluate_predictions({1: truth[:1]}, ds)["segm_AR"]
    0.5
    """
    ds = _as_dataset(dataset)
    max_detections = check_int(max_detections, "max_detections", minimum=1)
    ids, gt_anns = _ground_truth(ds, stacklevel=2)
    if ds.keypoints is not None:
        oks_sigmas(keypoint_sigmas, ds.keypoints)  # bad sigmas fail early
    by_id = _predictions_by_id(predictions, ds, ids)
    return _metrics(by_id, ds, ids, gt_anns, max_detections, per_class, keypoint_sigmas)


def evaluate(
    model: Any,
    dataset: Any,
    *,
    score_threshold: float = 0.05,
    batch_size: int = 4,
    max_detections: int = 1000,
    per_class: bool = False,
    image_root: str | os.PathLike | None = None,
    progress: bool = True,
    keypoint_sigmas: float | Sequence[float] | Mapping[str, float] | None = None,
    **predict_kwargs: Any,
) -> dict[str, float]:
    """Predict the annotated images of ``dataset`` with ``model`` and compute COCO metrics.

    Parameters
    ----------
    model : Model
        Anything with ``predict(list_of_images, *, score_threshold, batch_size, ...)``
        returning one `Instances` per image (for example `labelassist.load_model`).
    dataset : Dataset or path
        Ground truth, or the path of a COCO json file; images are read with
        `labelassist.io.read_image` from ``dataset.image_path(id)``.
    score_threshold : float
        Passed to ``model.predict``. Keep it low: AP integrates over all scores.
    batch_size : int
        Images read and predicted at a time.
    max_detections : int
        Detections per image taken into account (see `evaluate_predictions`).
    per_class : bool
        Also report AP per category (see `evaluate_predictions`).
    image_root : path, optional
        With a COCO path: the folder its ``file_name`` entries are relative to (default:
        the json file's folder).
    progress : bool
        Show a tqdm progress bar.
    keypoint_sigmas : float, list of float or dict of str to float, optional
        OKS sigmas when the dataset has keypoints (see `evaluate_predictions`).
    **predict_kwargs
        More arguments for ``model.predict`` (for example ``tile_size``).

    Returns
    -------
    dict of str to float
        As `evaluate_predictions`.

    Examples
    --------
    >>> import tempfile
    >>> from labelassist import load_model
    >>> from labelassist.synthetic import synthetic_dataset
    >>> ds = synthetic_dataset(1, out=tempfile.mkdtemp(), shape=(64, 64), n=3)
    >>> model = load_model(None, classes=["nucleus"], device="cpu")  # untrained
    >>> metrics = evaluate(model, ds, score_threshold=0.99, progress=False)
    >>> metrics["n_instances"], metrics["segm_AP"]
    (3, 0.0)
    """
    ds = _as_dataset(dataset, image_root)
    max_detections = check_int(max_detections, "max_detections", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    score_threshold = check_number(score_threshold, "score_threshold", minimum=0, maximum=1)
    ids, gt_anns = _ground_truth(ds, stacklevel=2)  # fail before predicting anything
    if ds.keypoints is not None:
        oks_sigmas(keypoint_sigmas, ds.keypoints)
    predictions: dict[int, Instances] = {}
    with tqdm(total=len(ids), desc="evaluate", unit="image", disable=not progress) as bar:
        for start in range(0, len(ids), batch_size):
            batch = ids[start : start + batch_size]
            images = [read_image(ds.image_path(i)) for i in batch]
            preds = model.predict(
                images, score_threshold=score_threshold, batch_size=batch_size, **predict_kwargs
            )
            if isinstance(preds, Instances) or len(preds) != len(batch):
                raise ValueError(
                    f"model.predict returned {1 if isinstance(preds, Instances) else len(preds)} "
                    f"result(s) for a list of {len(batch)} images; it must return one "
                    "Instances per image"
                )
            predictions.update(zip(batch, preds, strict=True))
            bar.update(len(batch))
    by_id = _predictions_by_id(predictions, ds, ids)
    return _metrics(by_id, ds, ids, gt_anns, max_detections, per_class, keypoint_sigmas)
