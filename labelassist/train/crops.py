"""Training crops of the step recipe: images prepared once, random crops around objects.

`prepare_images` reads each training image once (channels picked, rescaled to the
model's object size, normalised as `Model.predict` does, stored as uint8) and keeps each
instance as its pixel box and exact mask patch (and its keypoints, scaled with the image),
plus the image's crop region (see `TrainConfig.crop_region`). `CropImages` is the torch
dataset of one chunk of steps: each item is a random crop (centred on a random object most
of the time), with copy-paste (`labelassist.train.paste`), scale jitter, flips, 90°
rotations and intensity jitter; keypoints follow every geometric step, and those outside
the crop or hidden by a pasted object get visibility 0. Its randomness depends only on
``(seed, epoch, index)``, so a resumed run repeats a straight one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
import torch
from torch.utils.data import Dataset as TorchDataset

from ..geometry import polygons_to_masks
from ..instances import Instances
from ..io import read_image
from ..model.normalize import select_channels, to_tensor
from ..model.scale import median_object_size, rescale_image, rescale_instances, scale_factor
from .augment import intensity_jitter, rotate_points, swap_sides
from .data import Target, sanitize
from .paste import copy_paste, occlude_points, paste_points
from .state import mix_seed

__all__ = [
    "CropImages",
    "PreparedImage",
    "copy_paste",
    "crop_region",
    "prepare_images",
    "training_factor",
]


@dataclass
class PreparedImage:
    """One training image in the network's space.

    Attributes
    ----------
    image : Tensor of shape (3, H, W), uint8
        The normalised image (`labelassist.model.normalize.to_tensor` times 255).
    labels : ndarray of shape (N,), int64
        Network label ids.
    boxes : ndarray of shape (N, 4), int64
        ``x0, y0, x1, y1`` pixel box of each mask (end exclusive).
    masks : list of ndarray of bool
        Each instance's mask inside its box.
    region : (int, int, int, int)
        ``x0, y0, x1, y1`` of the region crops may cover (end exclusive).
    keypoints : ndarray of shape (N, K, 3), float64, or None
        Each instance's keypoints in this image's pixels (None: the instances had none).
    """

    image: torch.Tensor
    labels: np.ndarray
    boxes: np.ndarray
    masks: list[np.ndarray]
    region: tuple[int, int, int, int]
    keypoints: np.ndarray | None = None


def prepare_images(
    pairs: Sequence[tuple[Any, Instances]],
    *,
    normalization: Any,
    label_ids: Sequence[int],
    factor: float = 1.0,
    channels: tuple[int, ...] | None = None,
    region: str = "annotated",
) -> list[PreparedImage]:
    """Each (image, Instances) pair read, channels picked, rescaled by ``factor`` and
    normalised, with its instances as exact mask patches (see `PreparedImage`).

    Instances that shrink to nothing are dropped; labels index ``label_ids``. Keypoints
    are scaled like the image: ``(x, y)`` to ``(x * fx, y * fy)``, ``(fx, fy)`` the new size
    over the old (the map `labelassist.model.scale.rescale_instances` applies to polygons).
    """
    ids = np.asarray(list(label_ids), dtype=np.int64)
    out = []
    for source, instances in pairs:
        image = read_image(source) if isinstance(source, (str, os.PathLike)) else source
        image = np.asarray(image)
        if channels is not None:
            image = select_channels(image, channels)
        points = instances.keypoints
        if factor != 1.0:
            old_h, old_w = image.shape[:2]
            image = rescale_image(image, factor)
            instances = rescale_instances(instances, factor, tuple(image.shape[:2]))
            if points is not None:
                points = points * [image.shape[1] / old_w, image.shape[0] / old_h, 1.0]
        tensor = to_tensor(image, normalization=normalization)
        image_u8 = (tensor * 255).round_().to(torch.uint8)
        boxes, masks, keep = _mask_patches(instances)
        labels = ids[np.asarray(instances.labels, dtype=np.int64)[keep]]
        shape = (int(image_u8.shape[1]), int(image_u8.shape[2]))
        bounds = crop_region(boxes, shape) if region == "annotated" else (0, 0, shape[1], shape[0])
        kept = None if points is None else np.asarray(points, dtype=np.float64)[keep]
        out.append(PreparedImage(image_u8, labels, boxes, masks, bounds, kept))
    return out


def _mask_patches(instances: Instances) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Pixel boxes and mask patches of the non-empty instances, and which those are."""
    h, w = instances.image_shape
    boxes, masks, keep = [], [], []
    for k, polygon in enumerate(instances.polygons):
        if polygon is None or shapely.is_empty(polygon):
            continue
        minx, miny, maxx, maxy = polygon.bounds
        x0, y0 = max(int(math.floor(minx)), 0), max(int(math.floor(miny)), 0)
        x1, y1 = min(int(math.ceil(maxx)), w), min(int(math.ceil(maxy)), h)
        if x1 <= x0 or y1 <= y0:
            continue
        shifted = shapely.transform(polygon, lambda xy, x0=x0, y0=y0: xy - np.array([x0, y0]))
        mask = polygons_to_masks([shifted], (y1 - y0, x1 - x0))[0]
        if not mask.any():
            continue
        boxes.append((x0, y0, x1, y1))
        masks.append(mask)
        keep.append(k)
    return np.array(boxes, dtype=np.int64).reshape(-1, 4), masks, np.array(keep, dtype=np.int64)


def crop_region(boxes: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The region of an image that crops may cover: the box around all instance boxes
    grown by their median size (the median of ``sqrt(width * height)``) on every side,
    clipped to the image; the whole image when there are no instances (an image reviewed
    as empty is background everywhere).

    Parameters
    ----------
    boxes : ndarray of shape (N, 4)
        ``x0, y0, x1, y1`` pixel boxes of the instances.
    shape : (int, int)
        ``(height, width)`` of the image.

    Examples
    --------
    >>> crop_region(np.array([[10, 10, 20, 20], [30, 10, 40, 20]]), (100, 100))
    (0, 0, 50, 30)
    >>> crop_region(np.zeros((0, 4)), (100, 80))
    (0, 0, 80, 100)
    """
    h, w = shape
    if len(boxes) == 0:
        return (0, 0, w, h)
    boxes = np.asarray(boxes, dtype=np.float64)
    size = float(np.median(np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))))
    margin = int(math.ceil(size))
    x0 = max(int(boxes[:, 0].min()) - margin, 0)
    y0 = max(int(boxes[:, 1].min()) - margin, 0)
    x1 = min(int(boxes[:, 2].max()) + margin, w)
    y1 = min(int(boxes[:, 3].max()) + margin, h)
    return (x0, y0, x1, y1)


class CropImages(TorchDataset[tuple[torch.Tensor, Target]]):
    """Torch dataset of ``length`` random training crops of `PreparedImage` s.

    An item is a float32 image (3, h, w) in [0, 1] and a torchvision target (``boxes``,
    ``labels``, ``masks``, and ``keypoints`` (M, K, 3) when the images have keypoints;
    slivers under 4 pixels dropped). Set `epoch` before each chunk. ``flip_order`` swaps
    left and right keypoints in mirror images (`labelassist.model.keypoint_flips.flip_order`).
    """

    def __init__(
        self,
        images: Sequence[PreparedImage],
        *,
        length: int,
        crop_size: int | None,
        augment: float,
        scale_range: tuple[float, float],
        crop_on_objects: float,
        copy_paste: float,
        paste_max: int,
        seed: int,
        flip_order: Sequence[int] | None = None,
    ) -> None:
        self.images = list(images)
        self.flip_order = None if flip_order is None else list(flip_order)
        self.length = int(length)
        self.crop_size = crop_size
        self.augment = float(augment)
        self.scale_range = scale_range
        self.crop_on_objects = float(crop_on_objects)
        self.copy_paste = float(copy_paste)
        self.paste_max = int(paste_max)
        self.seed = int(seed)
        self.epoch = 0
        self.pool = [(i, k) for i, p in enumerate(self.images) for k in range(len(p.labels))]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        seed = mix_seed(self.seed, self.epoch, index)
        rng = np.random.default_rng(seed)
        prepared = self.images[int(rng.integers(len(self.images)))]
        scale = self._scale(rng)
        x0, y0, x1, y1 = self._window(prepared, rng, scale)
        image = prepared.image[:, y0:y1, x0:x1]
        masks, labels, points = _window_masks(prepared, (x0, y0, x1, y1))
        if self.pool and rng.random() < self.copy_paste:
            image, masks, labels, points = self._paste(image, masks, labels, points, rng)
        out = image.float().div_(255.0)
        if scale != 1.0:
            out, masks, points = _resize(out, masks, scale, points)
        out, masks, points = _flip_rotate(out, masks, rng, points, self.flip_order)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = intensity_jitter(out, self.augment)
        target = {"masks": masks, "labels": labels}
        if points is not None:
            target["keypoints"] = points
        return out, sanitize(target)

    def _scale(self, rng: np.random.Generator) -> float:
        lo, hi = self.scale_range
        lo, hi = 1 - (1 - lo) * self.augment, 1 + (hi - 1) * self.augment
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi)))) if hi > lo else 1.0

    def _window(
        self, prepared: PreparedImage, rng: np.random.Generator, scale: float
    ) -> tuple[int, int, int, int]:
        """The crop window ``x0, y0, x1, y1`` inside the image's region."""
        rx0, ry0, rx1, ry1 = prepared.region
        if self.crop_size is None:
            return rx0, ry0, rx1, ry1
        side = max(int(round(self.crop_size / scale)), 1)
        ww, wh = min(side, rx1 - rx0), min(side, ry1 - ry0)
        if len(prepared.labels) and rng.random() < self.crop_on_objects:
            bx0, by0, bx1, by1 = prepared.boxes[int(rng.integers(len(prepared.labels)))]
            cx = (bx0 + bx1) / 2 + rng.uniform(-side / 4, side / 4)
            cy = (by0 + by1) / 2 + rng.uniform(-side / 4, side / 4)
        else:
            cx, cy = rng.uniform(rx0, rx1), rng.uniform(ry0, ry1)
        x0 = int(np.clip(round(cx - ww / 2), rx0, rx1 - ww))
        y0 = int(np.clip(round(cy - wh / 2), ry0, ry1 - wh))
        return x0, y0, x0 + ww, y0 + wh

    def _paste(
        self,
        image: torch.Tensor,
        masks: torch.Tensor,
        labels: torch.Tensor,
        points: torch.Tensor | None,
        rng: np.random.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        n = int(rng.integers(1, self.paste_max + 1))
        h, w = image.shape[-2:]
        pastes, positions, pasted_points = [], [], []
        for j in rng.integers(len(self.pool), size=n):
            i, k = self.pool[int(j)]
            source = self.images[i]
            bx0, by0, bx1, by1 = (int(v) for v in source.boxes[k])
            pixels, mask = source.image[:, by0:by1, bx0:bx1], source.masks[k]
            flip_x, flip_y = bool(rng.random() < 0.5), False
            if flip_x:
                pixels, mask = pixels.flip(-1), mask[:, ::-1]
            if rng.random() < 0.5:
                pixels, mask, flip_y = pixels.flip(-2), mask[::-1], True
            ph, pw = mask.shape
            position = (
                int(rng.integers(-(pw // 2), max(w - pw // 2, 1))),
                int(rng.integers(-(ph // 2), max(h - ph // 2, 1))),
            )
            positions.append(position)
            pastes.append((pixels, mask, int(source.labels[k])))
            if points is not None and source.keypoints is not None:
                box = (bx0, by0, bx1, by1)
                moved = paste_points(
                    source.keypoints[k],
                    box,
                    position,
                    flip_x=flip_x,
                    flip_y=flip_y,
                    flip_order=self.flip_order,
                )
                pasted_points.append(torch.as_tensor(moved, dtype=torch.float32))
        first = len(masks)
        image, masks, labels = copy_paste(image, masks, labels, pastes, positions)
        if points is not None:
            points = occlude_points(torch.cat([points, torch.stack(pasted_points)]), masks, first)
        return image, masks, labels, points


def _window_masks(
    prepared: PreparedImage, window: tuple[int, int, int, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The (M, h, w) uint8 masks, labels and (M, K, 3) keypoints (in the window's pixels;
    None without keypoints) of the instances overlapping ``window``."""
    x0, y0, x1, y1 = window
    boxes = prepared.boxes
    hit = np.flatnonzero(
        (boxes[:, 0] < x1) & (boxes[:, 2] > x0) & (boxes[:, 1] < y1) & (boxes[:, 3] > y0)
    )
    masks = torch.zeros((len(hit), y1 - y0, x1 - x0), dtype=torch.uint8)
    for m, k in enumerate(hit):
        bx0, by0, bx1, by1 = (int(v) for v in boxes[k])
        xa, ya, xb, yb = max(bx0, x0), max(by0, y0), min(bx1, x1), min(by1, y1)
        patch = prepared.masks[k][ya - by0 : yb - by0, xa - bx0 : xb - bx0]
        masks[m, ya - y0 : yb - y0, xa - x0 : xb - x0] = torch.from_numpy(patch)
    labels = torch.as_tensor(prepared.labels[hit], dtype=torch.int64)
    if prepared.keypoints is None:
        return masks, labels, None
    points = torch.as_tensor(prepared.keypoints[hit], dtype=torch.float32)
    points[..., 0] -= x0
    points[..., 1] -= y0
    return masks, labels, points


def _resize(
    image: torch.Tensor, masks: torch.Tensor, scale: float, points: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Image (bilinear, antialiased) and masks (nearest) resized by ``scale``; keypoints
    scaled by the new size over the old."""
    h, w = image.shape[-2:]
    size = (max(int(round(h * scale)), 1), max(int(round(w * scale)), 1))
    image = torch.nn.functional.interpolate(
        image[None], size=size, mode="bilinear", antialias=scale < 1, align_corners=False
    )[0]
    if len(masks):
        masks = torch.nn.functional.interpolate(masks[None], size=size, mode="nearest-exact")[0]
    else:
        masks = masks.new_zeros((0, *size))
    if points is not None:
        points = points.clone()
        points[..., 0] *= size[1] / w
        points[..., 1] *= size[0] / h
    return image, masks, points


def _flip_rotate(
    image: torch.Tensor,
    masks: torch.Tensor,
    rng: np.random.Generator,
    points: torch.Tensor | None = None,
    flip_order: Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Random horizontal and vertical flips and a random multiple of 90° rotation, of the
    image, the masks and the keypoints (``x -> W - x``, ``y -> H - y``, `rotate_points`;
    one flip mirrors, so left and right keypoints swap by ``flip_order``; two are a half
    turn)."""
    dims: list[int] = [
        d for d, flip in ((-1, rng.random() < 0.5), (-2, rng.random() < 0.5)) if flip
    ]
    h, w = image.shape[-2:]
    if dims:
        image, masks = image.flip(dims), masks.flip(dims)
        if points is not None:
            points = points.clone()
            if -1 in dims:
                points[..., 0] = w - points[..., 0]
            if -2 in dims:
                points[..., 1] = h - points[..., 1]
            if len(dims) == 1:
                points = swap_sides(points, flip_order)
    k = int(rng.integers(4))
    if k:
        image, masks = image.rot90(k, (-2, -1)), masks.rot90(k, (-2, -1))
        if points is not None:
            points = rotate_points(points, (int(h), int(w)), k)
    return image.contiguous(), masks.contiguous(), points


def training_factor(
    model_object_size: float | None, instances: Sequence[Instances]
) -> tuple[float, float | None]:
    """The factor that brings the training objects to ``model_object_size`` (1 when either
    size is unknown) and their median size in the data's own pixels (None: no objects).

    Examples
    --------
    >>> import shapely
    >>> inst = Instances([shapely.box(0, 0, 20, 20)], [0], None, (64, 64))
    >>> factor, size = training_factor(11.28, [inst])
    >>> round(factor, 2), round(size, 2)
    (0.5, 22.57)
    """
    data_size = median_object_size(list(instances))
    return scale_factor(model_object_size, data_size), data_size
