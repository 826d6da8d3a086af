"""Prediction: images -> network input -> detections -> polygons (`Instances`).

`predict` takes a torchvision Mask R-CNN and its metadata (the network's label ids of the
classes, the image normalisation, the device), never the `labelassist.model.Model` wrapper
(which calls it). The pipeline never builds full-image masks: each RoI mask is traced
inside its box (`labelassist.model.roi_masks`). Large images can be cut into overlapping
tiles (`labelassist.model.tiling`); each object is taken from the tile that holds it
whole. The per-image detection limits grow with the image area
(`labelassist.model.inference.detection_limits`), so dense fields keep every object. The
passes themselves are `labelassist.model.passes`.

Input options (`labelassist.model.scale`, `labelassist.model.normalize.select_channels`):
``channels`` picks and orders an image's channels first; ``object_size`` then rescales
each image by ``net_object_size / object_size`` so that its objects have the size the
network was trained at (``"auto"``: estimated from a first pass at native scale). Tiling
works in the rescaled image; the RoI masks are placed on the ORIGINAL pixels
(`labelassist.model.roi_masks.boxes_to_original`), so the polygons are exact
pixel-boundary polygons of the original grid and ``image_shape`` is the original one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checks import check_bool, check_int, check_number
from ..instances import Instances
from .normalize import (
    check_array_image,
    check_channels,
    intensity_range,
    select_channels,
    to_tensor,
)
from .passes import Runner, _collect, _finish, _Pending  # noqa: F401 (tests reach them here)
from .roi_masks import rois_to_polygons
from .scale import check_object_size, median_object_size, scale_factor
from .tiling import default_overlap, tile_grid

__all__ = [
    "AUTO_MIN_SCORE",
    "AUTO_ROUNDS",
    "AUTO_TOLERANCE",
    "estimate_object_sizes",
    "predict",
    "to_tensor",
    "intensity_range",
    "tile_grid",
    "rois_to_polygons",
]

#: ``object_size="auto"``: the detections of the first pass that scores at least this
#: (or the caller's ``score_threshold`` if higher) give the objects' median size.
AUTO_MIN_SCORE = 0.5
#: ``object_size="auto"``: a pass whose detections give a scale factor within this
#: fraction of the one it ran at is kept (no further pass).
AUTO_TOLERANCE = 0.1
#: ``object_size="auto"``: passes after the native-scale one, at most (each at the scale
#: the previous pass measured: objects far off the network's size come out fragmented or
#: merged at first, so one estimate is not enough; measured in docs/object_size.md).
AUTO_ROUNDS = 2


def _check_args(
    score_threshold: Any,
    mask_threshold: Any,
    tile_size: Any,
    tile_overlap: Any,
    batch_size: Any,
    max_detections: Any,
) -> None:
    check_number(score_threshold, "score_threshold", minimum=0, maximum=1)
    mask = check_number(mask_threshold, "mask_threshold", minimum=0, maximum=1)
    if mask in (0.0, 1.0):
        raise ValueError(f"mask_threshold must be within (0, 1), got {mask_threshold!r}")
    check_int(batch_size, "batch_size", minimum=1)
    check_int(max_detections, "max_detections", minimum=1, allow_none=True)
    if tile_size is None and tile_overlap is not None:
        raise ValueError(
            f"tile_overlap={tile_overlap!r} is only used with tile_size; pass tile_size too"
        )
    if tile_size is not None:
        size = check_int(tile_size, "tile_size", minimum=32, allow_none=True)
        try:
            check_int(tile_overlap, "tile_overlap", minimum=0, maximum=size // 2)
        except ValueError as exc:
            raise ValueError(
                f"{exc} (tile_size // 2 at most, larger than the largest object)"
            ) from None


def _as_list(image_or_list: Any, channels: Any = None) -> tuple[list[np.ndarray], bool]:
    picked = check_channels(channels)
    single = not isinstance(image_or_list, (list, tuple))
    raw = [image_or_list] if single else list(image_or_list)
    out = []
    for i, image in enumerate(raw):
        name = "image" if single else f"images[{i}]"
        if picked is not None:
            try:
                image = select_channels(image, channels)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        out.append(check_array_image(image, name))
    return out, single


def _object_sizes(
    object_size: Any, n: int, single: bool, net_object_size: float | None
) -> list[Any]:
    """Per image: a size in pixels, ``"auto"`` or None (validated)."""
    if isinstance(object_size, (list, tuple)) and not single:
        if len(object_size) != n:
            raise ValueError(
                f"object_size has {len(object_size)} entries for {n} images; give one size "
                "(or None, or 'auto') per image, or a single one for all"
            )
        sizes = [
            check_object_size(s, f"object_size[{i}]", allow_auto=True)
            for i, s in enumerate(object_size)
        ]
        given = next((s for s in sizes if s is not None), None)
    else:
        sizes = [check_object_size(object_size, "object_size", allow_auto=True)] * n
        given = object_size
    if given is not None and net_object_size is None:
        raise ValueError(
            f"object_size={given!r} needs the object size the model was trained at, which "
            "this model does not know: set it with model.set_input(object_size=...) or "
            "fine-tune it (or leave object_size out)"
        )
    return sizes


def _label_lookup(net: nn.Module, label_ids: Sequence[int] | None) -> np.ndarray:
    """Network label -> 0-based class index (-1: not a class, e.g. COCO's "N/A")."""
    detector: Any = net
    num_classes = int(detector.roi_heads.box_predictor.cls_score.out_features)
    ids = list(range(1, num_classes)) if label_ids is None else [int(i) for i in label_ids]
    if not ids or not all(0 < i < num_classes for i in ids):
        raise ValueError(
            f"label_ids must be network labels in [1, {num_classes - 1}] (0 is background), "
            f"got {label_ids!r}"
        )
    lookup = np.full(num_classes, -1, dtype=np.int64)
    lookup[ids] = np.arange(len(ids))
    return lookup


def predict(
    net: nn.Module,
    image_or_list: np.ndarray | Sequence[np.ndarray],
    *,
    label_ids: Sequence[int] | None = None,
    normalization: Mapping[str, Any] | str | None = None,
    device: torch.device | str | None = None,
    score_threshold: float = 0.5,
    mask_threshold: float = 0.5,
    tile_size: int | None = None,
    tile_overlap: int | None = None,
    batch_size: int = 4,
    tolerance: float | None = None,
    max_detections: int | None = None,
    object_size: float | str | Sequence[float | str | None] | None = None,
    channels: int | Sequence[int] | None = None,
    net_object_size: float | None = None,
    default_object_size: float | None = None,
    mirror: bool = True,
) -> Instances | list[Instances]:
    """Predict instances with a torchvision Mask R-CNN.

    `labelassist.model.Model.predict` calls this with the model's network and metadata.

    Parameters
    ----------
    net : torch.nn.Module
        A torchvision ``MaskRCNN``; left in its original mode, threshold and limits.
    image_or_list : ndarray or list of ndarray
        Images of shape (H, W), (H, W, 3) or (H, W, 4), any dtype `to_tensor` takes
        (with ``channels``: (H, W, C), any ``C``).
    label_ids : sequence of int, optional
        Network label of each class: class ``k`` is network label ``label_ids[k]``; other
        network labels are dropped. Default: every non-background label, in order.
    normalization : dict or str, optional
        How intensities map to [0, 1] (`labelassist.model.normalize.intensity_range`).
    device : torch.device or str, optional
        Where ``net`` is. Default: the device of its parameters.
    score_threshold : float
        Keep detections scoring above this.
    mask_threshold : float
        Mask probability above which a pixel belongs to the object, within (0, 1).
    tile_size : int, optional
        Cut images larger than this into overlapping ``tile_size`` tiles (memory bounded,
        intensities normalised with one range per image). None: whole images. With
        ``object_size``, in the rescaled image's pixels.
    tile_overlap : int, optional
        Overlap of neighbouring tiles in pixels (of the rescaled image, with
        ``object_size``); must exceed the largest object. Default
        `labelassist.model.tiling.default_overlap` (``min(192, tile_size * 3 // 8)``).
    batch_size : int
        Images or tiles per network forward.
    tolerance : float, optional
        Polygon simplification (default `labelassist.geometry.DEFAULT_TOLERANCE`).
    max_detections : int, optional
        Detections kept per image or tile. Default: the network's own limit per 512 x 512
        px, scaled up with the area of larger images or tiles (with the RPN proposals,
        `labelassist.model.inference.detection_limits`), so dense fields keep every
        object. A warning says when an image or tile reaches its limit.
    object_size : float, "auto", None, or a list of them (one per image)
        The objects' median diameter in this image, in its pixels
        (`labelassist.model.scale.object_sizes`). The image is rescaled by
        ``net_object_size / object_size`` (clipped to [1/8, 8]) before the network and
        the results come back on the original pixels. ``"auto"``: estimated per image
        from a first pass at native scale (`estimate_object_sizes`), refined by up to
        `AUTO_ROUNDS` passes at the estimated scale, each re-measuring the size, until a
        pass agrees with its scale within `AUTO_TOLERANCE` (10 %). None:
        ``default_object_size`` (no rescaling when that is None too). Needs
        ``net_object_size``.
    channels : int or sequence of int, optional
        Channels of (H, W, C) images to use, in order
        (`labelassist.model.normalize.select_channels`: 1 gray, 2 into green and blue,
        3 RGB). None: images as they are.
    net_object_size : float, optional
        The object size the network was trained at (`labelassist.model.Model.object_size`).
    default_object_size : float, optional
        The ``object_size`` used when it is None (`labelassist.model.Model.data_object_size`).
    mirror : bool
        Average each mask with the mask head's on the left-right mirrored image
        (test-time augmentation, `labelassist.model.inference.detect`): closer edges
        (median mask IoU on held-out synthetic nuclei 0.897 -> 0.905 with the starter) for
        about 1.5x the time. Boxes, labels and scores are unchanged.

    Returns
    -------
    Instances or list of Instances
        An `Instances` for a single image, a list for a list. Labels are 0-based class
        indices (positions in ``label_ids``); detections whose mask is empty after
        thresholding are dropped; sorted by decreasing score. Coordinates and
        ``image_shape`` are the original image's, whatever the rescaling.

    Examples
    --------
    >>> from labelassist.model import build_maskrcnn
    >>> net = build_maskrcnn(num_classes=2)
    >>> predict(net, [np.zeros((64, 64), np.uint8)], score_threshold=0.99)
    [Instances(n=0, image_shape=(64, 64), extra=[])]
    >>> two = np.zeros((50, 70, 2), np.uint16)  # e.g. cytoplasm + nucleus
    >>> predict(net, two, object_size=40, net_object_size=20, channels=[0, 1],
    ...         score_threshold=0.99).image_shape
    (50, 70)
    """
    run, images, single = _prepare(
        net,
        image_or_list,
        label_ids=label_ids,
        normalization=normalization,
        device=device,
        score_threshold=score_threshold,
        mask_threshold=mask_threshold,
        tile_size=tile_size,
        tile_overlap=tile_overlap,
        batch_size=batch_size,
        tolerance=tolerance,
        max_detections=max_detections,
        channels=channels,
        mirror=mirror,
    )
    if net_object_size is not None:
        net_object_size = check_object_size(net_object_size, "net_object_size")
    default_object_size = check_object_size(default_object_size, "default_object_size")
    sizes = _object_sizes(object_size, len(images), single, net_object_size)
    results: list[Instances | None] = [None] * len(images)
    auto = [i for i, s in enumerate(sizes) if s == "auto"]
    if auto:
        floor = max(AUTO_MIN_SCORE, float(score_threshold))
        found, _ = _auto_passes(run, [images[i] for i in auto], net_object_size, floor)
        for i, one in zip(auto, found, strict=True):
            results[i] = one
    todo = [i for i in range(len(images)) if results[i] is None]
    factors = [
        scale_factor(net_object_size, default_object_size if sizes[i] is None else sizes[i])
        for i in todo
    ]
    for i, one in zip(todo, run([images[i] for i in todo], factors), strict=True):
        results[i] = one
    out = [r for r in results if r is not None]
    return out[0] if single else out


def _prepare(
    net: nn.Module, image_or_list: Any, **options: Any
) -> tuple[Runner, list[np.ndarray], bool]:
    """Check the options; the runner, the images (channels picked) and whether it was one."""
    tile_size, tile_overlap = options["tile_size"], options["tile_overlap"]
    if tile_overlap is None and tile_size is not None:
        tile_overlap = default_overlap(tile_size) if isinstance(tile_size, int) else 0
    _check_args(
        options["score_threshold"],
        options["mask_threshold"],
        tile_size,
        tile_overlap,
        options["batch_size"],
        options["max_detections"],
    )
    images, single = _as_list(image_or_list, options["channels"])
    lookup = _label_lookup(net, options["label_ids"])
    device = options["device"]
    if device is None:
        device = next(net.parameters()).device
    run = Runner(
        net,
        lookup,
        normalization=options["normalization"],
        device=torch.device(device),
        score_threshold=float(options["score_threshold"]),
        mask_threshold=float(options["mask_threshold"]),
        tile_size=tile_size,
        overlap=int(tile_overlap or 0),
        batch_size=int(options["batch_size"]),
        tolerance=options["tolerance"],
        max_detections=options["max_detections"],
        mirror=check_bool(options.get("mirror", False), "mirror"),
    )
    return run, images, single


def _median_size(found: Instances, floor: float) -> float | None:
    """The median size of the detections scoring at least ``floor`` (all if none does)."""
    confident = found[found.scores >= floor]
    return median_object_size(confident if len(confident) else found)


def _auto_passes(
    run: Runner, images: list[np.ndarray], net_object_size: float | None, floor: float
) -> tuple[list[Instances], list[float | None]]:
    """``object_size="auto"``: per image the last pass's results and the size it measured.

    A first pass at native scale; then, up to `AUTO_ROUNDS` times, the images whose
    measured size calls for a scale more than `AUTO_TOLERANCE` off the one they ran at
    run again at that scale (one pass without ``net_object_size``).
    """
    factors = [1.0] * len(images)
    results: list[Instances | None] = [None] * len(images)
    sizes: list[float | None] = [None] * len(images)
    todo = list(range(len(images)))
    found = run(images, factors)
    for round_ in range(AUTO_ROUNDS + 1):
        redo = []
        for i, one in zip(todo, found, strict=True):
            results[i], sizes[i] = one, _median_size(one, floor)
            factor = scale_factor(net_object_size, sizes[i])
            if round_ < AUTO_ROUNDS and abs(factor / factors[i] - 1.0) > AUTO_TOLERANCE:
                redo.append(i)
                factors[i] = factor
        todo = redo
        if not todo:
            break
        found = run([images[i] for i in todo], [factors[i] for i in todo])
    return [r for r in results if r is not None], sizes


def estimate_object_sizes(
    net: nn.Module,
    images: Sequence[np.ndarray],
    *,
    net_object_size: float | None = None,
    score_threshold: float = AUTO_MIN_SCORE,
    label_ids: Sequence[int] | None = None,
    normalization: Mapping[str, Any] | str | None = None,
    device: torch.device | str | None = None,
    channels: int | Sequence[int] | None = None,
    tile_size: int | None = None,
    batch_size: int = 4,
) -> list[float | None]:
    """The objects' median size (px) in each image, measured on the network's detections.

    What ``object_size="auto"`` does: the median `labelassist.model.scale.object_sizes`
    of the detections scoring at least ``score_threshold`` (all detections where none
    does) in a pass at native scale; with ``net_object_size``, re-measured on passes at
    the scale each measure implies, until one agrees within `AUTO_TOLERANCE` (at most
    `AUTO_ROUNDS` more passes: objects far off the network's size are found fragmented
    or merged at native scale).

    Parameters
    ----------
    net : torch.nn.Module
        A torchvision ``MaskRCNN``.
    images : sequence of ndarray
        Images (see `predict`).
    net_object_size : float, optional
        The object size the network was trained at (`labelassist.model.Model.object_size`).
    score_threshold : float
        Detections counted.
    label_ids, normalization, device, channels, tile_size, batch_size
        As in `predict`.

    Returns
    -------
    list of float or None
        In each image's own pixels; None for an image where nothing was found.

    Examples
    --------
    >>> from labelassist.model import build_maskrcnn
    >>> net = build_maskrcnn(num_classes=2)  # untrained
    >>> estimate_object_sizes(net, [np.zeros((64, 64), np.uint8)], score_threshold=0.99)
    [None]
    """
    if net_object_size is not None:
        net_object_size = check_object_size(net_object_size, "net_object_size")
    run, prepared, _ = _prepare(
        net,
        list(images),
        label_ids=label_ids,
        normalization=normalization,
        device=device,
        score_threshold=score_threshold,
        mask_threshold=0.5,
        mirror=False,  # sizes only
        tile_size=tile_size,
        tile_overlap=None,
        batch_size=batch_size,
        tolerance=None,
        max_detections=None,
        channels=channels,
    )
    return _auto_passes(run, prepared, net_object_size, float(score_threshold))[1]
