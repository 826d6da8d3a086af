"""Prediction: images -> network input -> detections -> polygons (`Instances`).

The pipeline never builds full-image masks: each 28x28 RoI mask probability map is
resized into its own (integer) box exactly like torchvision's ``paste_masks_in_image``,
thresholded there and traced to a polygon with `labelassist.geometry.masks_to_polygons`.
Large images are cut into overlapping tiles; each object is taken from the tile where
its box is farthest from the tile's inner edges (candidates: box centre in or near the
tile's core region, copies cut by a tile edge excluded), duplicates across tiles are
suppressed.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from ..instances import Instances

if TYPE_CHECKING:  # pragma: no cover
    from .model import Model

__all__ = ["to_tensor", "intensity_range", "predict", "tile_grid", "rois_to_polygons"]

_MODES = ("auto", "percentile", "scale")
_MAX_SAMPLE_PIXELS = 1 << 20


# -- image -> tensor --------------------------------------------------------------------


def _check(image: Any, name: str = "image") -> np.ndarray:
    from ..io.image import check_image

    if isinstance(image, torch.Tensor):
        raise TypeError(f"{name} must be a numpy array (H, W[, C]), got a torch.Tensor")
    if not hasattr(image, "shape") or not hasattr(image, "dtype"):
        raise TypeError(f"{name} must be a numpy array (H, W[, C]), got {type(image).__name__}")
    return check_image(image, name=name)


def _mode(normalization: Mapping[str, Any] | str | None) -> tuple[str, tuple[float, float]]:
    if normalization is None:
        normalization = {}
    if isinstance(normalization, str):
        normalization = {"mode": normalization}
    if not isinstance(normalization, Mapping):
        raise TypeError(
            f"normalization must be a dict like {{'mode': 'auto'}} or a mode name, got "
            f"{type(normalization).__name__}"
        )
    mode = normalization.get("mode", "auto")
    if mode not in _MODES:
        raise ValueError(f"normalization mode {mode!r} is unknown; use one of {_MODES}")
    pct = normalization.get("percentiles", (1.0, 99.8))
    lo, hi = (float(p) for p in pct)
    if not 0.0 <= lo < hi <= 100.0:
        raise ValueError(
            f"normalization percentiles must satisfy 0 <= low < high <= 100, got {pct}"
        )
    return mode, (lo, hi)


def intensity_range(
    image: np.ndarray,
    *,
    normalization: Mapping[str, Any] | str | None = None,
    max_pixels: int = _MAX_SAMPLE_PIXELS,
) -> tuple[float, float]:
    """The ``(low, high)`` intensities that `to_tensor` maps to 0 and 1.

    Percentiles are computed on a strided subsample of at most ``max_pixels`` pixels, so a
    huge (even memory-mapped) image is never copied as a whole. Alpha is ignored.

    Parameters
    ----------
    image : ndarray of shape (H, W), (H, W, 3) or (H, W, 4)
    normalization : dict or str, optional
        ``{"mode": "auto" | "percentile" | "scale", "percentiles": [low, high]}``.
        ``"auto"`` (default): uint8 / 255, bool 0/1, anything else percentiles (1, 99.8).
        ``"percentile"``: always percentiles. ``"scale"``: integer dtypes divided by their
        maximum, floats taken as already in [0, 1].
    max_pixels : int
        Size of the subsample used for percentiles.

    Returns
    -------
    (float, float)
        ``low < high``.

    Examples
    --------
    >>> intensity_range(np.array([[0, 255]], np.uint8))
    (0.0, 255.0)
    >>> intensity_range(np.arange(1001, dtype=np.uint16).reshape(7, 143), normalization="percentile")
    (10.0, 998.0)
    """
    image = _check(image)
    mode, (p_lo, p_hi) = _mode(normalization)
    dtype = image.dtype
    if dtype.kind == "b":
        return 0.0, 1.0
    if mode == "scale" or (mode == "auto" and dtype == np.uint8):
        if dtype.kind in "ui":
            return 0.0, float(np.iinfo(dtype).max)
        return 0.0, 1.0
    step = max(1, math.ceil(math.sqrt(image.shape[0] * image.shape[1] / max_pixels)))
    sample = np.asarray(image[::step, ::step])
    if sample.ndim == 3:
        sample = sample[..., :3]
    sample = sample.astype(np.float32, copy=False)
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, [p_lo, p_hi]))
    if not hi > lo:
        hi = lo + 1.0  # constant image: everything maps to 0
    return lo, hi


def to_tensor(
    image: np.ndarray,
    *,
    normalization: Mapping[str, Any] | str | None = None,
    limits: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Convert an image to the float tensor a torchvision detector expects.

    The single conversion used for prediction and training, so both see the same input.

    Parameters
    ----------
    image : ndarray of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)
        uint8, uint16, other integers, float or bool (see `labelassist.io.read_image`).
        Gray is repeated to 3 channels; alpha is dropped.
    normalization : dict or str, optional
        How intensities map to [0, 1]; see `intensity_range`. Record it in
        ``model.meta["normalization"]``.
    limits : (float, float), optional
        Precomputed `intensity_range` of the whole image (used for tiles so every tile
        is normalised alike). Default: computed from ``image``.

    Returns
    -------
    torch.Tensor of shape (3, H, W), float32, values in [0, 1]

    Examples
    --------
    >>> t = to_tensor(np.array([[0, 128, 255]], np.uint8))
    >>> tuple(t.shape), t.dtype, [round(v, 3) for v in t[0, 0].tolist()]
    ((3, 1, 3), torch.float32, [0.0, 0.502, 1.0])
    """
    image = _check(image)
    if limits is None:
        limits = intensity_range(image, normalization=normalization)
    else:
        _mode(normalization)
    lo, hi = float(limits[0]), float(limits[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"limits must be finite (low, high) with low < high, got {limits!r}")
    if image.ndim == 3:
        image = image[..., :3]
    arr = np.asarray(image)
    if arr.dtype.kind == "b" or (arr.dtype.kind == "u" and arr.dtype.itemsize > 1):
        arr = arr.astype(np.float32)
    tensor = torch.from_numpy(np.ascontiguousarray(arr)).to(torch.float32)
    tensor = tensor.sub_(lo).mul_(1.0 / (hi - lo)).clamp_(0.0, 1.0)
    tensor = torch.nan_to_num_(tensor, nan=0.0)
    if tensor.ndim == 2:
        return tensor.unsqueeze(0).expand(3, -1, -1).contiguous()
    return tensor.permute(2, 0, 1).contiguous()


# -- tiles ------------------------------------------------------------------------------


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride)) + [length - tile]
    return sorted(set(starts))


def _cores(starts: list[int], tile: int, length: int) -> list[tuple[float, float]]:
    """Core interval of each tile: from the middle of the overlap with the previous tile
    to the middle of the overlap with the next one (a partition of ``[0, length]``)."""
    bounds = [0.0]
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        bounds.append((b + min(a + tile, length)) / 2.0)
    bounds.append(float(length))
    return list(zip(bounds[:-1], bounds[1:], strict=True))


@dataclass(frozen=True)
class Tile:
    """One window of an image: pixel ``[y0:y1, x0:x1]`` and its core region (x, y)."""

    y0: int
    x0: int
    y1: int
    x1: int
    core: tuple[float, float, float, float] = field(default=(0.0, 0.0, 0.0, 0.0))


def tile_grid(shape: tuple[int, int], tile_size: int, overlap: int) -> list[Tile]:
    """Overlapping tiles covering an image; their core regions partition it.

    Parameters
    ----------
    shape : (int, int)
        ``(height, width)`` of the image.
    tile_size : int
        Tile side in pixels (tiles are smaller only where the image is).
    overlap : int
        Overlap between neighbouring tiles; must exceed the largest object size so that
        every object lies whole in the tile whose core holds its centre.

    Returns
    -------
    list of Tile
        ``core`` is ``(x0, y0, x1, y1)`` in image coordinates.

    Examples
    --------
    >>> [(t.x0, t.x1) for t in tile_grid((100, 250), 100, 20)]
    [(0, 100), (80, 180), (150, 250)]
    >>> [t.core[::2] for t in tile_grid((100, 250), 100, 20)]
    [(0.0, 90.0), (90.0, 165.0), (165.0, 250.0)]
    """
    h, w = (int(s) for s in shape)
    ys, xs = _starts(h, tile_size, overlap), _starts(w, tile_size, overlap)
    cy, cx = _cores(ys, tile_size, h), _cores(xs, tile_size, w)
    return [
        Tile(y0, x0, min(y0 + tile_size, h), min(x0 + tile_size, w), (c[0], r[0], c[1], r[1]))
        for y0, r in zip(ys, cy, strict=True)
        for x0, c in zip(xs, cx, strict=True)
    ]


# -- RoI masks -> polygons --------------------------------------------------------------


def rois_to_polygons(
    mask_probs: torch.Tensor,
    boxes: torch.Tensor,
    image_shape: tuple[int, int],
    *,
    mask_threshold: float = 0.5,
    tolerance: float | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
) -> list:
    """Convert Mask R-CNN RoI mask probabilities to polygons without full-image masks.

    Each ``M x M`` map is placed in its box exactly like torchvision's
    ``paste_masks_in_image`` (1-pixel padding, box expanded accordingly and truncated to
    integers, bilinear resize to the integer box size, clipped to the image), thresholded
    (``> mask_threshold``) and traced inside the box.

    Parameters
    ----------
    mask_probs : Tensor of shape (N, 1, M, M), float
        Per-detection mask probabilities (torchvision's ``detections["masks"]`` before
        pasting).
    boxes : Tensor of shape (N, 4), float
        Boxes ``(x0, y0, x1, y1)`` in the image's pixel coordinates.
    image_shape : (int, int)
        ``(height, width)`` the pasted masks would have.
    mask_threshold : float
        Probability above which a pixel is inside.
    tolerance : float, optional
        Polygon simplification tolerance (default `labelassist.geometry.DEFAULT_TOLERANCE`).
    offset : (float, float)
        Added to every vertex ``(x, y)`` (e.g. a tile's origin).

    Returns
    -------
    list of shapely.Polygon or MultiPolygon, length N
        An empty Polygon where nothing is above the threshold.

    Examples
    --------
    A full RoI mask covers its box grown by torchvision's 1-pixel padding (x 1.75-9.25,
    y 2.86-7.14), truncated to whole pixels like ``paste_masks_in_image``:

    >>> probs = torch.ones(1, 1, 28, 28)
    >>> [p.bounds for p in rois_to_polygons(probs, torch.tensor([[2.0, 3.0, 9.0, 7.0]]), (16, 16))]
    [(1.0, 2.0, 10.0, 8.0)]
    """
    from torchvision.models.detection.roi_heads import expand_boxes, expand_masks

    from ..geometry import DEFAULT_TOLERANCE

    tolerance = DEFAULT_TOLERANCE if tolerance is None else tolerance
    n = int(boxes.shape[0])
    if n == 0:
        return []
    im_h, im_w = (int(s) for s in image_shape)
    padded, scale = expand_masks(mask_probs.float().cpu(), padding=1)
    int_boxes = expand_boxes(boxes.float().cpu(), scale).to(torch.int64).tolist()
    crops: list[np.ndarray | None] = []
    origins = np.zeros((n, 2), dtype=np.float64)
    for i, (bx0, by0, bx1, by1) in enumerate(int_boxes):
        w, h = max(bx1 - bx0 + 1, 1), max(by1 - by0 + 1, 1)
        x0, x1 = max(bx0, 0), min(bx1 + 1, im_w)
        y0, y1 = max(by0, 0), min(by1 + 1, im_h)
        if x1 <= x0 or y1 <= y0:
            crops.append(None)
            continue
        resized = F.interpolate(
            padded[i : i + 1], size=(h, w), mode="bilinear", align_corners=False
        )
        crop = resized[0, 0, y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0] > mask_threshold
        crops.append(crop.numpy())
        origins[i] = (x0, y0)
    return _trace_crops(crops, origins + np.asarray(offset, dtype=np.float64), tolerance)


def _trace_crops(
    crops: list[np.ndarray | None], origins: np.ndarray, tolerance: float, budget: int = 1 << 22
) -> list:
    """Polygons of many small masks with few `masks_to_polygons` calls: crops of similar
    size are packed into zero-padded stacks (at most ``budget`` pixels each) and the
    results shifted to each crop's origin ``(x, y)``."""
    import shapely

    from ..geometry import masks_to_polygons

    out = np.empty(len(crops), dtype=object)
    out[:] = [shapely.Polygon()] * len(crops)
    present = [i for i, c in enumerate(crops) if c is not None]
    present.sort(key=lambda i: crops[i].size)
    start = 0
    while start < len(present):
        stop, height, width = start, 0, 0
        while stop < len(present):
            h, w = crops[present[stop]].shape
            if stop > start and (stop - start + 1) * max(height, h) * max(width, w) > budget:
                break
            height, width, stop = max(height, h), max(width, w), stop + 1
        chunk = present[start:stop]
        stack = np.zeros((len(chunk), height, width), dtype=bool)
        for k, i in enumerate(chunk):
            h, w = crops[i].shape
            stack[k, :h, :w] = crops[i]
        out[chunk] = masks_to_polygons(stack, tolerance=tolerance)
        start = stop
    coords, index = shapely.get_coordinates(out, return_index=True)
    if len(coords):
        out = shapely.set_coordinates(out.copy(), coords + origins[index])
    return list(out)


# -- the network ------------------------------------------------------------------------


class _ThreadedRoIPool(torch.nn.Module):
    """A torchvision ``MultiScaleRoIAlign`` run on chunks of the RoIs in parallel threads.

    torchvision's CPU ``roi_align`` kernel is single-threaded and took a third of the
    light model's forward here (1,000 box proposals); it releases the GIL, so chunks of
    the RoIs pooled in threads give the same tensor (every RoI is pooled independently,
    the level assignment depends on its own box only) in less time. Used for inference
    on the CPU only (`_inference_setup`); the wrapped pooler is left untouched.
    """

    _executor: Any = None
    min_rois = 64  # per thread; fewer RoIs are pooled in the caller's thread

    def __init__(self, pool: torch.nn.Module, threads: int) -> None:
        super().__init__()
        self.pool, self.threads = pool, int(threads)

    @classmethod
    def _pool_executor(cls) -> Any:
        if cls._executor is None:
            from concurrent.futures import ThreadPoolExecutor

            cls._executor = ThreadPoolExecutor(
                max_workers=max(2, torch.get_num_threads()), thread_name_prefix="roi_align"
            )
        return cls._executor

    def _chunk(self, x: dict, boxes: list[torch.Tensor], image_shapes: list) -> torch.Tensor:
        with torch.inference_mode():  # the mode is per thread
            return self.pool(x, boxes, image_shapes)

    def forward(
        self, x: dict, boxes: list[torch.Tensor], image_shapes: list[tuple[int, int]]
    ) -> torch.Tensor:
        counts = [int(b.shape[0]) for b in boxes]
        n = min(self.threads, sum(counts) // self.min_rois)
        if n < 2 or getattr(self.pool, "scales", None) is None:
            return self.pool(x, boxes, image_shapes)  # the first call also sets the scales
        # one contiguous copy per level instead of one per chunk inside roi_align
        x = {k: v.contiguous() for k, v in x.items()}
        bounds = [[c * k // n for k in range(n + 1)] for c in counts]
        jobs = [
            [b[bd[k] : bd[k + 1]] for b, bd in zip(boxes, bounds, strict=True)] for k in range(n)
        ]
        parts = list(self._pool_executor().map(lambda job: self._chunk(x, job, image_shapes), jobs))
        # chunk k holds, image after image, rows bd[k]:bd[k + 1] of each image's boxes
        pieces, offsets = [], [0] * n
        for bd in bounds:
            for k in range(n):
                m = bd[k + 1] - bd[k]
                pieces.append(parts[k][offsets[k] : offsets[k] + m])
                offsets[k] += m
        return torch.cat(pieces)


@contextlib.contextmanager
def _inference_setup(net: torch.nn.Module, score_threshold: float) -> Iterator[None]:
    """Eval mode and the caller's score threshold, restored afterwards.

    On the CPU the convolution weights are switched to channels-last memory format (once;
    ``finetune`` switches back): oneDNN's NHWC convolutions make inference ~15 % faster
    here with the same results (max score difference ~1e-5). Training measured no gain.
    With more than one thread, the RoI poolers run in threads (`_ThreadedRoIPool`, same
    results) for the duration.
    """
    was_training = net.training
    old_thresh = net.roi_heads.score_thresh
    heads = net.roi_heads
    pools = {name: getattr(heads, name, None) for name in ("box_roi_pool", "mask_roi_pool")}
    net.eval()
    on_cpu = next(net.parameters()).device.type == "cpu"
    if on_cpu:
        net.to(memory_format=torch.channels_last)
    threads = torch.get_num_threads()
    net.roi_heads.score_thresh = float(score_threshold)
    try:
        if on_cpu and threads > 1:
            for name, pool in pools.items():
                if pool is not None and not isinstance(pool, _ThreadedRoIPool):
                    setattr(heads, name, _ThreadedRoIPool(pool, threads))
        with torch.inference_mode():
            yield
    finally:
        for name, pool in pools.items():
            if pool is not None:
                setattr(heads, name, pool)
        net.roi_heads.score_thresh = old_thresh
        net.train(was_training)


def _detect(
    net: torch.nn.Module, images: list[torch.Tensor], device: torch.device
) -> list[dict[str, torch.Tensor]]:
    """Run the detector like ``GeneralizedRCNN.forward`` but keep the RoI masks
    (boxes are rescaled to the input size; masks are not pasted)."""
    from collections import OrderedDict

    from torchvision.models.detection.transform import resize_boxes

    images = [img.to(device, non_blocking=True) for img in images]
    sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in images]
    amp = (
        torch.autocast("cuda", dtype=torch.float16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )
    with amp:
        image_list, _ = net.transform(images)
        features = net.backbone(image_list.tensors)
        if isinstance(features, torch.Tensor):
            features = OrderedDict([("0", features)])
        proposals, _ = net.rpn(image_list, features)
        detections, _ = net.roi_heads(features, proposals, image_list.image_sizes)
    out = []
    for det, net_size, size in zip(detections, image_list.image_sizes, sizes, strict=True):
        out.append(
            {
                "boxes": resize_boxes(det["boxes"].float(), net_size, size),
                "scores": det["scores"].float(),
                "labels": det["labels"],
                "masks": det["masks"].float(),
            }
        )
    return out


# -- predict ----------------------------------------------------------------------------


@dataclass
class _Pending:
    """Per-image accumulator of detections (in image coordinates)."""

    shape: tuple[int, int]
    tiled: bool
    polygons: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    boxes: list = field(default_factory=list)
    interior: list = field(default_factory=list)


def _check_args(
    score_threshold: float,
    mask_threshold: float,
    tile_size: int | None,
    tile_overlap: int | None,
    batch_size: int,
) -> None:
    if not 0.0 <= float(score_threshold) <= 1.0:
        raise ValueError(f"score_threshold must be within [0, 1], got {score_threshold!r}")
    if not 0.0 < float(mask_threshold) < 1.0:
        raise ValueError(f"mask_threshold must be within (0, 1), got {mask_threshold!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if tile_size is None and tile_overlap is not None:
        raise ValueError(
            f"tile_overlap={tile_overlap!r} is only used with tile_size; pass tile_size too"
        )
    if tile_size is not None:
        if isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size < 32:
            raise ValueError(f"tile_size must be None or an int >= 32 pixels, got {tile_size!r}")
        if not isinstance(tile_overlap, int) or not 0 <= tile_overlap <= tile_size // 2:
            raise ValueError(
                f"tile_overlap must be an int within [0, tile_size // 2] = [0, {tile_size // 2}] "
                f"(and larger than the largest object), got {tile_overlap!r}"
            )


def _as_list(image_or_list: Any) -> tuple[list[np.ndarray], bool]:
    if isinstance(image_or_list, (list, tuple)):
        return [_check(im, f"images[{i}]") for i, im in enumerate(image_or_list)], False
    return [_check(image_or_list)], True


def _jobs(
    images: list[np.ndarray], tile_size: int | None, tile_overlap: int
) -> Iterator[tuple[int, Tile, tuple[float, float] | None]]:
    for idx, image in enumerate(images):
        h, w = image.shape[:2]
        if tile_size is None or (h <= tile_size and w <= tile_size):
            yield idx, Tile(0, 0, h, w, (0.0, 0.0, float(w), float(h))), None
        else:
            for tile in tile_grid((h, w), tile_size, tile_overlap):
                yield idx, tile, (h, w)


def _batches(iterable: Iterator, size: int) -> Iterator[list]:
    batch = []
    for item in iterable:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# Selection of tiled detections (fractions of the overlap): a detection is a candidate when
# its box centre lies within the tile's core widened by ``_CORE_MARGIN * overlap`` and its
# box keeps ``_EDGE_GAP * overlap`` pixels from every tile edge that is not an image edge
# (a box touching such an edge is cut by the tile and a whole copy exists in a neighbour);
# among overlapping candidates of different tiles the one farthest from its tile's edges
# wins (``_finish``).
_CORE_MARGIN = 0.5
_EDGE_GAP = 0.25


def _keep_in_core(boxes: np.ndarray, tile: Tile, margin: float) -> np.ndarray:
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 + tile.x0
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 + tile.y0
    x0, y0, x1, y1 = tile.core
    return (cx >= x0 - margin) & (cx < x1 + margin) & (cy >= y0 - margin) & (cy < y1 + margin)


def _candidates(boxes: np.ndarray, tile: Tile, shape: tuple[int, int], overlap: int) -> np.ndarray:
    """Detections of a tile (boxes in tile coordinates) that may represent their object:
    centre in the core, or in the widened core with the box clear of the tile's edges."""
    wide = _keep_in_core(boxes, tile, overlap * _CORE_MARGIN)
    if _EDGE_GAP > 0:
        wide &= _interior(boxes, tile, shape) >= overlap * _EDGE_GAP
    return _keep_in_core(boxes, tile, 0.0) | wide


def _interior(boxes: np.ndarray, tile: Tile, shape: tuple[int, int]) -> np.ndarray:
    """Distance of each box (tile coordinates) to the nearest tile edge that is not an
    image edge: larger means less likely to be cut by the tile."""
    h, w = shape
    big = np.float32(1e9)
    d = [
        boxes[:, 0] if tile.x0 > 0 else np.full(len(boxes), big),
        boxes[:, 1] if tile.y0 > 0 else np.full(len(boxes), big),
        (tile.x1 - tile.x0) - boxes[:, 2] if tile.x1 < w else np.full(len(boxes), big),
        (tile.y1 - tile.y0) - boxes[:, 3] if tile.y1 < h else np.full(len(boxes), big),
    ]
    return np.min(np.stack(d), axis=0)


def _finish(pending: _Pending, label_count: int) -> Instances:
    if not pending.polygons:
        return Instances.empty(pending.shape)
    polygons = np.concatenate(pending.polygons)
    labels = np.concatenate(pending.labels)
    scores = np.concatenate(pending.scores)
    if pending.tiled and len(polygons) > 1:
        from torchvision.ops import batched_nms

        boxes = torch.from_numpy(np.concatenate(pending.boxes)).float()
        interior = torch.from_numpy(np.concatenate(pending.interior)).float()
        keep = batched_nms(boxes, interior, torch.from_numpy(labels), 0.5).numpy()
        keep = np.sort(keep)
        polygons, labels, scores = polygons[keep], labels[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    return Instances(list(polygons[order]), labels[order], scores[order], pending.shape)


def predict(
    model: Model,
    image_or_list: np.ndarray | Sequence[np.ndarray],
    *,
    score_threshold: float = 0.5,
    mask_threshold: float = 0.5,
    tile_size: int | None = None,
    tile_overlap: int | None = None,
    batch_size: int = 4,
    tolerance: float | None = None,
) -> Instances | list[Instances]:
    """Predict instances with a `labelassist.models.Model`.

    Parameters
    ----------
    model : Model
    image_or_list : ndarray or list of ndarray
        Images of shape (H, W), (H, W, 3) or (H, W, 4), any dtype `to_tensor` takes.
    score_threshold : float
        Keep detections scoring above this.
    mask_threshold : float
        Mask probability above which a pixel belongs to the object.
    tile_size : int, optional
        Cut images larger than this into overlapping ``tile_size`` tiles (memory bounded,
        intensities normalised with one range per image). None: whole images.
    tile_overlap : int, optional
        Overlap of neighbouring tiles in pixels; must exceed the largest object. Default
        ``min(192, tile_size * 3 // 8)``: objects are taken at least ~96 px from a tile
        edge, where the starter's masks agree with untiled prediction (99.5 % at IoU 0.9
        on 2048 px images with 512 px tiles; 98.5-99.0 % with overlap 128, 1.5x faster).
    batch_size : int
        Images or tiles per network forward.
    tolerance : float, optional
        Polygon simplification (default `labelassist.geometry.DEFAULT_TOLERANCE`).

    Returns
    -------
    Instances or list of Instances
        An `Instances` for a single image, a list for a list. Labels are 0-based indices
        into ``model.classes``; detections whose mask is empty after thresholding are
        dropped; sorted by decreasing score.

    Examples
    --------
    >>> from labelassist.models import load_model
    >>> model = load_model(None, classes=["nucleus"], device="cpu")
    >>> predict(model, [np.zeros((64, 64), np.uint8)], score_threshold=0.99)
    [Instances(n=0, image_shape=(64, 64), extra=[])]
    """
    if tile_overlap is None and tile_size is not None:
        tile_overlap = min(192, int(tile_size) * 3 // 8) if isinstance(tile_size, int) else 0
    _check_args(score_threshold, mask_threshold, tile_size, tile_overlap, batch_size)
    tile_overlap = tile_overlap or 0
    images, single = _as_list(image_or_list)
    net, device = model.net, model.device
    normalization = model.meta.get("normalization")
    label_ids = model.meta["label_ids"]
    lookup = np.full(int(model.meta["num_classes"]), -1, dtype=np.int64)
    lookup[label_ids] = np.arange(len(label_ids))
    limits: dict[int, tuple[float, float]] = {}
    pending = [_Pending(im.shape[:2], False) for im in images]
    cap, saturated = int(net.roi_heads.detections_per_img), 0
    with _inference_setup(net, score_threshold):
        for batch in _batches(_jobs(images, tile_size, tile_overlap), batch_size):
            tensors = []
            for idx, tile, tiled_shape in batch:
                if tiled_shape is not None and idx not in limits:
                    limits[idx] = intensity_range(images[idx], normalization=normalization)
                window = images[idx][tile.y0 : tile.y1, tile.x0 : tile.x1]
                tensors.append(
                    to_tensor(window, normalization=normalization, limits=limits.get(idx))
                )
            for (idx, tile, tiled_shape), det in zip(
                batch, _detect(net, tensors, device), strict=True
            ):
                saturated += len(det["boxes"]) >= cap
                _collect(
                    pending[idx],
                    det,
                    tile,
                    tiled_shape,
                    lookup,
                    mask_threshold,
                    tolerance,
                    tile_overlap,
                )
    if saturated:
        warnings.warn(
            f"{saturated} image(s) or tile(s) reached the model's limit of {cap} detections, "
            "so objects may be missing: pass a smaller tile_size (e.g. 512) or raise "
            "the limit (model.net.roi_heads.detections_per_img)",
            stacklevel=3,
        )
    results = [_finish(p, len(label_ids)) for p in pending]
    return results[0] if single else results


def _collect(
    pending: _Pending,
    det: dict[str, torch.Tensor],
    tile: Tile,
    tiled_shape: tuple[int, int] | None,
    lookup: np.ndarray,
    mask_threshold: float,
    tolerance: float | None,
    overlap: int,
) -> None:
    boxes = det["boxes"].cpu()
    labels = lookup[det["labels"].cpu().numpy()]
    keep = labels >= 0
    if tiled_shape is not None:
        pending.tiled = True
        keep &= _candidates(boxes.numpy(), tile, tiled_shape, overlap)
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        return
    sel = torch.from_numpy(idx)
    boxes_t = boxes[sel]
    polygons = rois_to_polygons(
        det["masks"][sel.to(det["masks"].device)],
        boxes_t,
        (tile.y1 - tile.y0, tile.x1 - tile.x0),
        mask_threshold=mask_threshold,
        tolerance=tolerance,
        offset=(tile.x0, tile.y0),
    )
    arr = np.empty(len(polygons), dtype=object)
    arr[:] = polygons
    nonempty = np.array([not p.is_empty for p in polygons], dtype=bool)
    if not nonempty.any():
        return
    boxes_np = boxes_t.numpy()[nonempty]
    pending.polygons.append(arr[nonempty])
    pending.labels.append(labels[idx][nonempty])
    pending.scores.append(det["scores"].cpu().numpy()[idx][nonempty].astype(np.float32))
    if tiled_shape is not None:
        pending.interior.append(_interior(boxes_np, tile, tiled_shape).astype(np.float32))
        pending.boxes.append(boxes_np + np.array([tile.x0, tile.y0, tile.x0, tile.y0], np.float32))
