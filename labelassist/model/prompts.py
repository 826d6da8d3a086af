"""Prompts: box and point prompts through the Mask R-CNN heads, one instance per prompt (`segment`).

The backbone and FPN run once per image (`labelassist.model.features.encode`); each prompt
then costs only the heads:

- a **box** ``x0, y0, x1, y1`` (COCO pixel coordinates) is pooled from the FPN maps
  (the network's ``box_roi_pool``, the box mapped to the network's coordinates), the box
  head gives the class scores (and with ``refine_box`` the box regression of that class,
  applied once, then pooled again), and the mask head the object's mask inside the box,
  traced to a polygon in the RoI (`labelassist.model.roi_masks.rois_to_polygons`, no
  full-image mask) and cut to the pixels of the box. A box smaller than the model's
  object size is served from a crop around it enlarged to that size
  (`labelassist.model.box_prompts`, ``box_scale``);
- a **point** ``x, y`` picks, among the image's detections (RPN + box head, computed once
  per image or tile, kept down to a score of `CANDIDATE_SCORE`) whose *mask* covers the
  point and none of the ``negative_points``, the one whose mask is centred nearest the
  point, distances divided by the square root of the score.

Nothing found (a box scoring below ``score_threshold``, an empty mask, no candidate at a
point) gives an empty polygon with score 0 in the prompt's place, never an exception.
Extreme clicks say an object is there, so their mask is kept however low the box head
scores it (a nucleus cut to a sliver by the image border can score 0.004), and ``exclude``
does not keep them off the annotated objects under their clicked pixels (an accepted outline
that swallowed a small missed neighbour would leave nothing of it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
import torch
from shapely.geometry.base import BaseGeometry
from torch import nn

from ..checks import check_number
from ..instances import Instances
from .box_prompts import (
    box_scales,
    extreme_boxes,
    segment_scaled,
    segment_window,
    tight_thresholds,
    window_polygons,
)
from .features import EncodedWindow, ImageFeatures, autocast, encode
from .inference import DetectionLimits, detection_limits, inference_setup
from .normalize import check_array_image
from .predict import _label_lookup

__all__ = [
    "CANDIDATE_SCORE",
    "DEFAULT_SCORE_THRESHOLD",
    "LOOSE_FILL",
    "check_exclude",
    "segment",
]

#: Point prompts choose among detections scoring above this (torchvision's own default
#: ``box_score_thresh``), computed once per image or tile.
CANDIDATE_SCORE = 0.05
#: Default ``score_threshold`` of `segment`: results scoring below it count as nothing found.
#: Low, because a box is the annotator's statement that an object is there: boxes on
#: background score < 0.001, those on objects the model missed 0.3-0.4 (median).
DEFAULT_SCORE_THRESHOLD = 0.01
#: ``segment(..., loose=True)`` segments a box again, in the bounding box of its mask, when
#: that covers less than this share of the box's area (chosen on held-out synthetic nuclei:
#: boxes 0-8 px too large per side gain 88.7 -> 92.6 % at mask IoU 0.8, exact boxes and
#: boxes a pixel off lose nothing; docs/prompts.md).
LOOSE_FILL = 0.7


def _coords(value: Any, name: str, width: int, what: str) -> np.ndarray:
    """``value`` as a finite float64 array of shape (N, width)."""
    if value is None:
        return np.zeros((0, width))
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers of shape (N, {width}) ({what})") from None
    if arr.size == 0:
        return np.zeros((0, width))
    if arr.ndim != 2 or arr.shape[1] != width:
        raise ValueError(
            f"{name} must have shape (N, {width}) ({what}), got shape {arr.shape}; for one "
            f"prompt write [[{what}]]"
        )
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{i}] = {arr[i].tolist()} is not finite")
    return arr


def _check_boxes(boxes: Any, shape: tuple[int, int]) -> np.ndarray:
    """Boxes (N, 4), each with x1 > x0 and y1 > y0, clipped to the image; one outside it
    raises."""
    arr = _coords(boxes, "boxes", 4, "x0, y0, x1, y1")
    h, w = shape
    for i, (x0, y0, x1, y1) in enumerate(arr):
        if not (x1 > x0 and y1 > y0):
            raise ValueError(
                f"boxes[{i}] = {arr[i].tolist()} must have x1 > x0 and y1 > y0 (boxes are "
                "x0, y0, x1, y1 in pixel coordinates)"
            )
    clipped = np.clip(arr, 0.0, [w, h, w, h])
    empty = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise ValueError(
            f"boxes[{i}] = {arr[i].tolist()} lies outside the image (width {w}, height {h}); "
            "give boxes that overlap it (parts outside are clipped)"
        )
    return clipped


def _check_extreme_points(points: Any, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Extreme clicks (N, 4, 2) inside the image: their tight boxes and pixels
    (`labelassist.model.box_prompts.extreme_boxes`)."""
    if points is None:
        return np.zeros((0, 4)), np.zeros((0, 4, 2), dtype=np.int64)
    try:
        arr = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            "extreme_points must be numbers of shape (N, 4, 2): x, y of the four clicks on "
            "each object's leftmost, topmost, rightmost and bottommost pixels"
        ) from None
    if arr.size == 0:
        arr = arr.reshape(0, 4, 2)
    if arr.ndim == 2 and arr.shape == (4, 2):
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (4, 2):
        raise ValueError(
            f"extreme_points must have shape (N, 4, 2): x, y of the four clicks on each object, "
            f"got shape {arr.shape}"
        )
    h, w = shape
    bad = ~np.isfinite(arr).all(axis=2) | (arr < 0).any(axis=2) | (arr > [w, h]).any(axis=2)
    if bad.any():
        i, k = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(
            f"extreme_points[{i}][{k}] = {arr[i, k].tolist()} lies outside the image (x in "
            f"[0, {w}], y in [0, {h}]); click on the object's extreme pixels"
        )
    flat = np.minimum(arr.reshape(-1, 2), [w - 1e-6, h - 1e-6])  # the far edge: the last pixel
    return extreme_boxes(flat.reshape(-1, 4, 2))


def _check_points(points: Any, name: str, shape: tuple[int, int]) -> np.ndarray:
    """Points (N, 2) ``x, y`` inside ``[0, W] x [0, H]``."""
    arr = _coords(points, name, 2, "x, y")
    h, w = shape
    outside = (arr[:, 0] < 0) | (arr[:, 0] > w) | (arr[:, 1] < 0) | (arr[:, 1] > h)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"{name}[{i}] = {arr[i].tolist()} lies outside the image (x in [0, {w}], "
            f"y in [0, {h}]); give points on the image"
        )
    return arr


def _check_label(label: Any, classes: Sequence[str] | None, n_classes: int) -> int | None:
    """``label`` (a class name or 0-based index) as a class index."""
    if label is None:
        return None
    if isinstance(label, str):
        if classes is not None and label in classes:
            return list(classes).index(label)
        raise ValueError(f"label={label!r} is not a class of the model; use one of {classes}")
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
        raise ValueError(f"label must be a class name or a 0-based class index, got {label!r}")
    if not 0 <= int(label) < n_classes:
        raise ValueError(f"label={label!r} is not a class index; use 0 to {n_classes - 1}")
    return int(label)


def _features(
    net: nn.Module, image_or_features: Any, normalization: Any, device: Any
) -> ImageFeatures | np.ndarray:
    if isinstance(image_or_features, ImageFeatures):
        if image_or_features.net is not net:
            raise ValueError(
                "image_or_features was encoded by another model; encode the image with "
                "this model (model.encode(image))"
            )
        here = torch.device(device) if device is not None else next(net.parameters()).device
        there = image_or_features.device
        if (there.type, there.index or 0) != (here.type, here.index or 0):
            raise ValueError(
                f"image_or_features is on {image_or_features.device} but the model is on "
                f"{here}; encode the image again after moving the model"
            )
        return image_or_features
    return check_array_image(image_or_features, "image_or_features")


def segment(
    net: nn.Module,
    image_or_features: np.ndarray | ImageFeatures,
    *,
    label_ids: Sequence[int] | None = None,
    classes: Sequence[str] | None = None,
    normalization: Any = None,
    device: torch.device | str | None = None,
    boxes: Any = None,
    points: Any = None,
    negative_points: Any = None,
    label: str | int | None = None,
    refine_box: bool = False,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    mask_threshold: float = 0.5,
    tolerance: float | None = None,
    object_size: float | None = None,
    box_scale: float | str = "auto",
    exclude: Any = None,
    tight: bool = False,
    loose: bool = False,
    extreme_points: Any = None,
) -> Instances:
    """Segment the objects that box and point prompts designate, one instance per prompt.

    `labelassist.model.Model.segment` calls this with the model's network and metadata;
    see it for the parameters. ``label_ids`` and ``normalization`` are as in
    `labelassist.model.predict.predict`; ``classes`` are the names ``label`` may use.
    ``object_size`` is the model's (``Model.object_size``); ``box_scale`` enlarges the
    crop a box is segmented in (`labelassist.model.box_prompts.box_scales`): ``"auto"``
    brings a box smaller than ``object_size`` to that size, a number >= 1 is one factor
    for every box (1: the image's own features). ``exclude``: polygons (or an `Instances`)
    whose pixels no result takes (`check_exclude`), but for an extreme-point prompt those under
    its clicked pixels (the clicks claim them). ``tight``: the boxes touch their objects
    on all four sides (`labelassist.model.box_prompts.tight_thresholds`). ``loose``: the
    boxes hold their objects with some slack: a box whose mask's bounding box covers less
    than `LOOSE_FILL` of it is segmented again in that bounding box. ``extreme_points``
    (N, 4, 2): each object's four extreme clicks, a tight box whose threshold also keeps the
    clicked pixels (`labelassist.model.box_prompts.extreme_boxes`) and whose mask stays
    within `labelassist.model.box_prompts.HULL_MARGIN` of the clicks' hull, taking the gaps
    up to `labelassist.model.box_prompts.NEIGHBOUR_GAP` pixels wide to ``exclude``'s
    objects, kept whatever their score (``score_threshold`` applies to boxes and points);
    their results come after the boxes' and before the points'.

    Examples
    --------
    >>> from labelassist.model import build_maskrcnn
    >>> net = build_maskrcnn(num_classes=2)
    >>> segment(net, np.zeros((64, 64), np.uint8), boxes=np.zeros((0, 4)))
    Instances(n=0, image_shape=(64, 64), extra=[])
    """
    source = _features(net, image_or_features, normalization, device)
    shape = source.image_shape if isinstance(source, ImageFeatures) else source.shape[:2]
    shape = (int(shape[0]), int(shape[1]))
    box_arr = _check_boxes(boxes, shape)
    ext_boxes, ext_pixels = _check_extreme_points(extreme_points, shape)
    point_arr = _check_points(points, "points", shape)
    negatives = _check_points(negative_points, "negative_points", shape)
    if len(negatives) and not len(point_arr):
        raise ValueError("negative_points only steer point prompts; pass points too")
    if not isinstance(refine_box, (bool, np.bool_)):
        raise ValueError(f"refine_box must be True or False, got {refine_box!r}")
    if not isinstance(tight, (bool, np.bool_)):
        raise ValueError(f"tight must be True or False, got {tight!r}")
    if not isinstance(loose, (bool, np.bool_)):
        raise ValueError(f"loose must be True or False, got {loose!r}")
    if tight and loose:
        raise ValueError("a box is either tight or loose: pass tight=True or loose=True, not both")
    lookup = _label_lookup(net, label_ids)
    columns = np.flatnonzero(lookup >= 0)
    forced = _check_label(label, classes, len(columns))
    threshold = check_number(score_threshold, "score_threshold", minimum=0, maximum=1)
    mask = check_number(mask_threshold, "mask_threshold", minimum=0, maximum=1)
    if mask in (0.0, 1.0):
        raise ValueError(f"mask_threshold must be within (0, 1), got {mask_threshold!r}")
    check_number(tolerance, "tolerance", minimum=0, allow_none=True)
    check_number(object_size, "object_size", minimum=0, allow_none=True)
    box_scales(box_arr, object_size, box_scale)  # checks box_scale
    taken = check_exclude(exclude, shape)
    n = len(box_arr) + len(ext_boxes) + len(point_arr)
    if n == 0:
        return Instances.empty(shape)
    feats = (
        source
        if isinstance(source, ImageFeatures)
        else encode(net, source, normalization=normalization, device=device)
    )
    allowed = columns if forced is None else np.array([int(np.flatnonzero(lookup == forced)[0])])
    polygons = np.empty(n, dtype=object)
    polygons[:] = [shapely.Polygon()] * n
    cols = np.zeros(n, dtype=np.int64)
    scores = np.zeros(n, dtype=np.float32)
    opts = {"mask_threshold": mask, "tolerance": tolerance}
    box_opts = opts if taken is None else {**opts, "exclude": taken}
    if tight:
        box_opts = {**box_opts, "fit_thresholds": tight_thresholds(mask)}
    with inference_setup(net, CANDIDATE_SCORE):
        nb = len(box_arr)
        scales = _scales(net, box_arr, object_size, box_scale)
        polygons[:nb], cols[:nb], scores[:nb] = _segment_boxes(
            net, feats, box_arr, scales, allowed, refine_box, box_opts
        )
        if loose and nb:
            inner = shapely.bounds(polygons[:nb]).reshape(-1, 4)
            fill = _area(inner) / _area(box_arr)
            again = np.flatnonzero(
                ~np.isnan(fill) & (fill < LOOSE_FILL) & (scores[:nb] >= threshold)
            )
            if len(again):
                inner = inner[again]
                scales = _scales(net, inner, object_size, box_scale)
                polygons[again], cols[again], scores[again] = _segment_boxes(
                    net, feats, inner, scales, allowed, False, box_opts
                )
        skips = _clicked_objects(taken, ext_pixels)
        for skip, idx in _groups(skips).items():  # each group keeps off the same objects
            fit_opts = {**opts, "fit_thresholds": tight_thresholds(mask)}
            rest = None if taken is None else np.delete(taken, list(skip))
            if rest is not None and len(rest):
                fit_opts["exclude"] = rest
            scales = _scales(net, ext_boxes[idx], object_size, box_scale)
            polygons[nb + idx], cols[nb + idx], scores[nb + idx] = _segment_boxes(
                net, feats, ext_boxes[idx], scales, allowed, refine_box, fit_opts, ext_pixels[idx]
            )
        negs = shapely.points(negatives)
        for window, idx in _by_window(feats, np.tile(point_arr, 2)).items():
            enc = feats.encode_window(window)
            for i in idx:
                found = _pick(net, enc, point_arr[i], negs, allowed, threshold, feats.device, opts)
                if found is not None:
                    k = len(box_arr) + len(ext_boxes) + i
                    polygons[k], cols[k], scores[k] = found
    if taken is not None:  # boxes lost the pixels already; this removes simplification slivers
        tree = shapely.STRtree(taken)
        skip_of: list[tuple[int, ...]] = [()] * n
        skip_of[nb : nb + len(ext_boxes)] = skips
        polygons[:] = [_cut(p, taken, tree, k) for p, k in zip(polygons, skip_of, strict=True)]
    low = scores < threshold
    low[len(box_arr) : len(box_arr) + len(ext_boxes)] = False  # the clicks say it is there
    none = low | shapely.is_empty(polygons)
    polygons[none] = shapely.Polygon()
    scores[none] = 0.0
    labels = np.where(lookup[cols] >= 0, lookup[cols], forced or 0)
    return Instances(list(polygons), labels, scores, shape)


def _area(boxes: np.ndarray) -> np.ndarray:
    """Areas of ``x0, y0, x1, y1`` boxes (NaN for the bounds of an empty geometry)."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _scales(
    net: nn.Module, boxes: np.ndarray, object_size: float | None, box_scale: Any
) -> np.ndarray:
    """`box_scales`, all 1 when the network's own transform sets the scale its heads see."""
    scales = box_scales(boxes, object_size, box_scale)
    if (scales > 1).any() and _transform_resizes(net):
        scales[:] = 1.0
    return scales


def _segment_boxes(
    net: nn.Module,
    feats: ImageFeatures,
    boxes: np.ndarray,
    scales: np.ndarray,
    allowed: np.ndarray,
    refine_box: bool,
    opts: dict[str, Any],
    pixels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Box prompts: polygons (object array), network label columns and scores, in box order;
    boxes with a scale above 1 from their enlarged crops, the others from the image's windows.
    ``pixels`` (N, K, 2): image pixels each object covers (extreme clicks)."""
    polygons = np.empty(len(boxes), dtype=object)
    cols = np.zeros(len(boxes), dtype=np.int64)
    scores = np.zeros(len(boxes), dtype=np.float32)
    native = np.flatnonzero(scales <= 1.0)
    for window, idx in _by_window(feats, boxes[native]).items():
        enc, idx = feats.encode_window(window), native[idx]
        polygons[idx], cols[idx], scores[idx] = segment_window(
            net, enc, boxes[idx], allowed, refine_box, feats.device, opts,
            None if pixels is None else pixels[idx],
        )  # fmt: skip
    for i in np.flatnonzero(scales > 1.0):
        polygons[i], cols[i], scores[i] = segment_scaled(
            net, feats, boxes[i], float(scales[i]), allowed, refine_box, opts,
            None if pixels is None else pixels[i],
        )  # fmt: skip
    return polygons, cols, scores


def check_exclude(exclude: Any, shape: tuple[int, int]) -> np.ndarray | None:
    """The polygons of `segment`'s ``exclude`` as an object array (None when there are none).

    ``exclude`` is None, an `Instances` of the same image, or a sequence of shapely Polygons
    and MultiPolygons in COCO pixel coordinates (empty ones are skipped): typically the
    objects already annotated in the image, so that a prompted object never overlaps them.

    Examples
    --------
    >>> check_exclude([shapely.box(0, 0, 4, 4), shapely.Polygon()], (8, 8)).shape
    (1,)
    >>> check_exclude(None, (8, 8)) is None
    True
    """
    if exclude is None:
        return None
    if isinstance(exclude, Instances):
        if tuple(exclude.image_shape) != tuple(shape):
            raise ValueError(
                f"exclude is an Instances of a {exclude.image_shape} image, the prompts' image is "
                f"{shape}; pass the instances of this image"
            )
        items = list(exclude.polygons)
    elif isinstance(exclude, (shapely.Geometry, str, bytes)) or not hasattr(exclude, "__iter__"):
        raise ValueError(
            f"exclude must be a sequence of shapely polygons or an Instances, got "
            f"{type(exclude).__name__}; wrap a single polygon in a list: [polygon]"
        )
    else:
        items = list(exclude)
    for k, geom in enumerate(items):
        if not isinstance(geom, (shapely.Polygon, shapely.MultiPolygon)):
            raise ValueError(
                f"exclude[{k}] must be a shapely Polygon or MultiPolygon, got {type(geom).__name__}"
            )
    geoms = np.empty(len(items), dtype=object)
    geoms[:] = items
    geoms = geoms[~shapely.is_empty(geoms)] if len(geoms) else geoms
    return geoms if len(geoms) else None


def _clicked_objects(taken: np.ndarray | None, pixels: np.ndarray) -> list[tuple[int, ...]]:
    """Per extreme-point prompt, the indices of the ``taken`` objects under one of its
    clicked pixels' centres: the annotator says those pixels are the new object's, so the
    prompt does not keep off those objects (an accepted outline may cover a small
    neighbour that the model missed)."""
    if taken is None or not len(pixels):
        return [()] * len(pixels)
    centres = shapely.points(pixels.reshape(-1, 2) + 0.5)
    point, obj = shapely.STRtree(taken).query(centres, predicate="within")
    under: list[set[int]] = [set() for _ in range(len(pixels))]
    for i, k in zip(point // pixels.shape[1], obj, strict=True):
        under[int(i)].add(int(k))
    return [tuple(sorted(u)) for u in under]


def _groups(keys: list[tuple[int, ...]]) -> dict[tuple[int, ...], np.ndarray]:
    """Indices of ``keys`` grouped by value (in first-use order)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return {key: np.array(idx, dtype=np.int64) for key, idx in groups.items()}


def _cut(
    polygon: BaseGeometry, taken: np.ndarray, tree: shapely.STRtree, skip: tuple[int, ...] = ()
) -> BaseGeometry:
    """``polygon`` without the parts that ``taken`` (indexed by ``tree``) covers, but for
    the objects ``skip``: its polygonal parts of at least half a pixel."""
    hits = tree.query(polygon, predicate="intersects")
    if skip:
        hits = hits[~np.isin(hits, skip)]
    if len(hits) == 0:
        return polygon
    rest = shapely.difference(polygon, shapely.union_all(taken[hits]))
    parts = [p for p in shapely.get_parts(rest) if isinstance(p, shapely.Polygon) and p.area >= 0.5]
    if not parts:
        return shapely.Polygon()
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def _transform_resizes(net: nn.Module) -> bool:
    """Whether the network's transform resizes images (torchvision's default one does;
    labelassist's native-resolution architectures do not)."""
    transform: Any = net.transform
    probe = torch.zeros(3, 16, 16)
    return tuple(transform.resize(probe)[0].shape[-2:]) != (16, 16)


def _by_window(feats: ImageFeatures, boxes: np.ndarray) -> dict[Any, np.ndarray]:
    """Prompt indices grouped by the window that serves them (in first-use order)."""
    groups: dict[Any, list[int]] = {}
    for i, box in enumerate(boxes):
        groups.setdefault(feats.window_for(box), []).append(i)
    return {w: np.array(idx, dtype=np.int64) for w, idx in groups.items()}


def _candidates(net: nn.Module, enc: EncodedWindow, device: torch.device) -> dict[str, Any]:
    """The window's detections scoring above `CANDIDATE_SCORE` (cached on the window):
    ``rois`` (K, 4) network coordinates, ``boxes`` (K, 4) image coordinates, ``scores``,
    ``cols`` (network labels), ``polygons`` (per mask threshold and tolerance, filled on
    demand)."""
    from torchvision.models.detection.image_list import ImageList  # heavy: torchvision

    cached = enc.cache.get("candidates")
    if cached is not None:
        return cached
    detector: Any = net
    heads = detector.roi_heads
    h, w = enc.shape
    # the RPN reads only the padded batch's size, dtype and device from the images
    blank = torch.zeros(1, 1, 1, 1, device=device).expand(1, 3, *enc.padded_size)
    images = ImageList(blank, [enc.net_size])
    saved = DetectionLimits.of(net)
    try:
        detection_limits(net, h * w).apply(net)
        with autocast(device):
            proposals, _ = detector.rpn(images, enc.features)
            x = heads.box_head(heads.box_roi_pool(enc.features, proposals, [enc.net_size]))
            logits, deltas = heads.box_predictor(x)
        boxes, scores, labels = heads.postprocess_detections(
            logits.float(), deltas.float(), [p.float() for p in proposals], [enc.net_size]
        )
    finally:
        saved.apply(net)
    rois = boxes[0].float()
    out = {
        "rois": rois,
        "boxes": enc.to_image(rois.cpu().numpy()),
        "scores": scores[0].float().cpu().numpy(),
        "cols": labels[0].cpu().numpy(),
        "polygons": {},
    }
    enc.cache["candidates"] = out
    return out


def _pick(
    net: nn.Module,
    enc: EncodedWindow,
    point: np.ndarray,
    negatives: np.ndarray,
    allowed: np.ndarray,
    threshold: float,
    device: torch.device,
    opts: dict[str, Any],
) -> tuple[BaseGeometry, int, float] | None:
    """Among the candidates whose mask covers ``point`` and no negative point, the one
    whose mask is centred nearest the point, distances divided by the square root of the
    score: an annotator clicks near the middle of an object, and a confident detection
    beats a fragment centred a little nearer. Chosen by measurement (bench_prompts.py
    ``--rules``, docs/prompts.md) over the highest score (which picks a confident
    neighbour over a missed object), the nearest centre alone (which picks fragments) and a
    Gaussian click model."""
    cand = _candidates(net, enc, device)
    x, y = float(point[0]), float(point[1])
    b = cand["boxes"]
    near = (
        (cand["scores"] >= threshold)
        & np.isin(cand["cols"], allowed)
        & (b[:, 0] <= x)
        & (x <= b[:, 2])
        & (b[:, 1] <= y)
        & (y <= b[:, 3])
    )
    order = np.flatnonzero(near)
    order = order[np.argsort(-cand["scores"][order], kind="stable")]
    cache: dict[int, BaseGeometry] = cand["polygons"].setdefault(
        (opts["mask_threshold"], opts["tolerance"]), {}
    )
    todo = [int(k) for k in order if int(k) not in cache]
    if todo:
        sel = torch.as_tensor(todo, device=cand["rois"].device)
        cols = torch.as_tensor(cand["cols"][todo], device=cand["rois"].device)
        polys = window_polygons(net, enc, cand["rois"][sel], cols, device, opts)
        cache.update(zip(todo, polys, strict=True))
    target = shapely.Point(x, y)
    polygons = np.empty(len(order), dtype=object)
    polygons[:] = [cache[int(k)] for k in order]
    ok = shapely.covers(polygons, target)
    if len(negatives) and ok.any():
        ok &= ~shapely.covers(polygons[:, None], negatives[None, :]).any(axis=1)
    if not ok.any():
        return None
    hits = np.flatnonzero(ok)
    distance = shapely.distance(shapely.centroid(polygons[hits]), target)
    weighted = distance / np.sqrt(cand["scores"][order[hits]])
    best = int(order[hits[np.argmin(weighted)]])  # argmin keeps the first (higher score) of ties
    return cache[best], int(cand["cols"][best]), float(cand["scores"][best])
