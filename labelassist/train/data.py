"""Training data: (image, Instances) pairs from a Dataset or COCO file, checked, as tensors.

`resolve_data` turns what `finetune` accepts (a `Dataset`, a COCO json path, a list of
pairs) into ``(image source, Instances)`` pairs; `check_images` reads every image once in
this process, so a missing or damaged file is one clear error before any DataLoader worker
starts; `TrainImages` is the torch dataset (image tensor and torchvision target, augmented
when asked); `epoch_loader` the DataLoader of one epoch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from ..coco import Dataset, read_coco
from ..geometry import polygons_to_masks
from ..instances import Instances
from ..io import check_image, read_image
from ..model.normalize import select_channels
from ..model.predict import to_tensor
from .augment import augment
from .state import mix_seed

__all__ = [
    "Pair",
    "TrainImages",
    "check_images",
    "collate",
    "epoch_loader",
    "instances_to_target",
    "resolve_data",
    "resolve_val",
    "sanitize",
]

#: An image (array, or path of an image file) and its instances.
Pair = tuple[Any, Instances]
Target = dict[str, torch.Tensor]
#: Keypoint names and the 0-based skeleton edges between them.
Keypoints = tuple[list[str], list[tuple[int, int]]]

_MAX_LISTED = 3  # files named in a "not found" message


def resolve_data(
    data: Any, image_root: str | os.PathLike[str] | None, name: str
) -> tuple[list[Pair], list[str] | None, Keypoints | None]:
    """(image source, Instances) pairs, the category names of ``data`` (None for pairs) and
    its keypoint names with their 0-based skeleton (None for pairs and for datasets
    without keypoints).

    Images of a dataset that are not annotated yet (no entry in ``instances``) are left
    out; an empty `Instances` is a negative example and kept.
    """
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.exists():
            raise FileNotFoundError(f"{name}: COCO file not found: {path}")
        data = read_coco(path, image_root=image_root)
        image_root = None
    if _is_dataset(data):
        root = Path(image_root) if image_root is not None else None
        pairs = []
        for record in data.images:
            instances = data.instances.get(_get(record, "id"))
            if instances is None:  # not annotated yet (an empty Instances is a negative)
                continue
            pairs.append((_image_source(data, record, root), instances))
        names = getattr(data, "keypoints", None)
        points = None
        if names is not None:
            edges = [(int(a), int(b)) for a, b in getattr(data, "skeleton", None) or []]
            points = ([str(n) for n in names], edges)
        return pairs, [str(c) for c in data.categories], points
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        for k, item in enumerate(data):
            if not (
                isinstance(item, Sequence) and len(item) == 2 and isinstance(item[1], Instances)
            ):
                raise TypeError(
                    f"{name}[{k}] must be an (image, Instances) pair, got {type(item).__name__}"
                )
        return [(item[0], item[1]) for item in data], None, None
    raise TypeError(
        f"{name} must be a Dataset, a COCO json path or a list of (image, Instances) pairs, "
        f"got {type(data).__name__}"
    )


def resolve_val(val: Any, image_root: str | os.PathLike[str] | None) -> Dataset | None:
    """``val`` as a `Dataset` (read if a COCO path), or None."""
    if val is None:
        return None
    if isinstance(val, (str, os.PathLike)):
        if not Path(val).exists():
            raise FileNotFoundError(f"val: COCO file not found: {val}")
        return read_coco(val, image_root=image_root)
    if not _is_dataset(val):
        raise TypeError(f"val must be a Dataset or a COCO json path, got {type(val).__name__}")
    return val


def _is_dataset(data: Any) -> bool:
    return all(hasattr(data, k) for k in ("categories", "images", "instances"))


def _get(record: Any, key: str) -> Any:
    return record[key] if isinstance(record, dict) else getattr(record, key)


def _image_source(dataset: Any, record: Any, root: Path | None) -> Any:
    """The image of ``record``: an in-memory array if the dataset holds one, else a path."""
    image = record.get("image") if isinstance(record, dict) else getattr(record, "image", None)
    if image is not None:
        return image
    file_name = Path(_get(record, "file_name"))
    if root is None and hasattr(dataset, "image_path"):
        return Path(dataset.image_path(_get(record, "id")))
    if root is None:
        root = getattr(dataset, "image_root", None)
    if file_name.is_absolute() or root is None:
        return file_name
    return Path(root) / file_name


def _describe(source: Any) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else "in-memory array"


# -- checking the images up front ------------------------------------------------------------


def check_images(pairs: Sequence[Pair], name: str = "train") -> None:
    """Read every image of ``pairs`` once and compare its size with its annotations.

    Runs in the calling process (files are read in a few threads), so that a wrong
    ``image_root`` or a damaged file is one clear error, not a traceback from inside a
    DataLoader worker halfway through an epoch.

    Raises
    ------
    FileNotFoundError
        If image files are missing; the message names the first ones and the fix.
    ValueError
        If an image cannot be decoded or its size differs from its annotations'
        ``image_shape``; the message names the first such image.

    Examples
    --------
    >>> from labelassist.instances import Instances
    >>> check_images([("missing/a.png", Instances.empty((8, 8)))])
    Traceback (most recent call last):
    ...
    FileNotFoundError: train: 1 of 1 image files not found: missing/a.png; give the folder that holds them as image_root (--image-root on the command line)
    """
    missing = [
        str(src)
        for src, _ in pairs
        if isinstance(src, (str, os.PathLike)) and not Path(src).exists()
    ]
    if missing:
        listed = ", ".join(missing[:_MAX_LISTED]) + (", ..." if len(missing) > _MAX_LISTED else "")
        raise FileNotFoundError(
            f"{name}: {len(missing)} of {len(pairs)} image files not found: {listed}; give the "
            "folder that holds them as image_root (--image-root on the command line)"
        )
    threads = max(1, min(8, os.cpu_count() or 1, len(pairs)))
    with ThreadPoolExecutor(threads) as pool:
        problems = [p for p in pool.map(_image_problem, pairs, range(len(pairs))) if p]
    if problems:
        more = (
            f" ({len(problems)} of {len(pairs)} images have problems)" if len(problems) > 1 else ""
        )
        raise ValueError(f"{name} {problems[0]}{more}; fix or remove the image, then train again")


def _image_problem(pair: Pair, index: int) -> str | None:
    """Why image ``index`` cannot be trained on (one line), or None."""
    source, instances = pair
    if isinstance(source, (str, os.PathLike)) and not Path(source).is_file():
        return f"image {index} ({source}) is not a regular file"  # a folder, a FIFO...
    try:
        if isinstance(source, (str, os.PathLike)):
            image = read_image(source)
        else:
            image = check_image(np.asarray(source), name="in-memory array")
    except (ValueError, OSError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        return f"image {index} ({_describe(source)}) cannot be read: {reason}"
    if tuple(image.shape[:2]) != tuple(instances.image_shape):
        return (
            f"image {index} ({_describe(source)}) has shape {tuple(image.shape[:2])} but its "
            f"annotations say {instances.image_shape}"
        )
    return None


# -- the torch dataset -----------------------------------------------------------------------


class TrainImages(TorchDataset[tuple[torch.Tensor, Target]]):
    """Torch dataset: image tensor (C, H, W) float32 and a torchvision target dict.

    Targets: ``boxes`` (N, 4) float32 xyxy in pixels, ``labels`` (N,) int64 network label
    ids (``label_ids[class index]``; background is 0), ``masks`` (N, H, W) uint8, and
    ``keypoints`` (N, K, 3) float32 when the instances have keypoints. Instances that
    augmentation crops away or thins to slivers are dropped; images without instances are
    kept as negatives. Augmentation randomness depends only on ``(seed, epoch, index)``:
    set `epoch` before each epoch. ``flip_order`` swaps left and right keypoints in mirror
    images (`labelassist.model.keypoint_flips.flip_order`).
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        *,
        normalization: Any,
        label_ids: Sequence[int],
        augment: float = 0.0,
        scale_range: tuple[float, float] = (0.75, 1.33),
        seed: int = 0,
        channels: tuple[int, ...] | None = None,
        flip_order: Sequence[int] | None = None,
    ) -> None:
        self.pairs = list(pairs)
        self.channels = channels
        self.flip_order = None if flip_order is None else list(flip_order)
        self.normalization = normalization
        self.label_ids = torch.as_tensor(list(label_ids), dtype=torch.int64)
        self.augment = float(augment)
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        source, instances = self.pairs[index]
        image = _load_tensor(source, self.normalization, self.channels)
        if tuple(image.shape[-2:]) != tuple(instances.image_shape):
            raise ValueError(
                f"training image {index} ({_describe(source)}) has shape "
                f"{tuple(image.shape[-2:])} but its annotations say {instances.image_shape}"
            )
        target: dict[str, Any] = instances_to_target(instances, self.label_ids)
        if self.augment > 0:
            # augmentation randomness depends only on (seed, epoch, index): the same for any
            # number of workers or processes, and repeatable on resume
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(mix_seed(self.seed, self.epoch, index))
                image, target = augment(
                    image, target, self.augment, self.scale_range, flip_order=self.flip_order
                )
        return image, sanitize(target)


def _load_tensor(
    source: Any, normalization: Any, channels: tuple[int, ...] | None = None
) -> torch.Tensor:
    """Read (if a path), pick ``channels`` and convert exactly as prediction does
    (`predict.to_tensor`)."""
    if isinstance(source, (str, os.PathLike)):
        source = read_image(source)
    image = np.asarray(source)
    if channels is not None:
        image = select_channels(image, channels)
    return to_tensor(image, normalization=normalization)


def instances_to_target(instances: Instances, label_ids: torch.Tensor) -> Target:
    """torchvision target of ``instances``: ``boxes`` (``tv_tensors.BoundingBoxes``, xyxy),
    ``masks`` (``tv_tensors.Mask``, uint8), ``labels`` (network label ids) and, when the
    instances have keypoints, ``keypoints`` (N, K, 3) float32: x, y in COCO pixel
    coordinates, visibility (0: not labelled)."""
    from torchvision import tv_tensors  # heavy: torchvision

    h, w = instances.image_shape
    if len(instances):
        masks = polygons_to_masks(instances.polygons, (h, w))
    else:
        masks = np.zeros((0, h, w), dtype=bool)
    target: Target = {
        "boxes": tv_tensors.BoundingBoxes(
            torch.as_tensor(instances.boxes, dtype=torch.float32).reshape(-1, 4),
            format="XYXY",
            canvas_size=(h, w),
        ),
        "masks": tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(masks)).to(torch.uint8)),
        "labels": label_ids[torch.as_tensor(instances.labels, dtype=torch.int64)],
    }
    if instances.keypoints is not None:
        target["keypoints"] = torch.as_tensor(instances.keypoints, dtype=torch.float32)
    return target


def sanitize(target: dict[str, Any], min_pixels: int = 4) -> Target:
    """Boxes recomputed from the (augmented) masks, in continuous pixel coordinates; masks
    with fewer than ``min_pixels`` pixels (cropped away, slivers) are dropped with their
    keypoints; keypoints outside the image get visibility 0; plain tensors for
    torchvision's model.

    Examples
    --------
    >>> masks = torch.zeros(2, 8, 8, dtype=torch.uint8)
    >>> masks[0, 2:4, 1:5] = 1
    >>> masks[1, 7, 7] = 1  # one pixel: dropped
    >>> points = torch.tensor([[[1.5, 2.5, 2.0], [9.0, 3.0, 2.0]], [[7.5, 7.5, 2.0]] * 2])
    >>> out = sanitize({"masks": masks, "labels": torch.tensor([1, 1]), "keypoints": points})
    >>> out["boxes"].tolist(), out["keypoints"].tolist()
    ([[1.0, 2.0, 5.0, 4.0]], [[[1.5, 2.5, 2.0], [9.0, 3.0, 0.0]]])
    """
    from torchvision.ops import masks_to_boxes  # heavy: torchvision

    masks = target["masks"].as_subclass(torch.Tensor).to(torch.uint8)
    labels = target["labels"]
    keep = masks.flatten(1).sum(1) >= min_pixels
    masks, labels = masks[keep], labels[keep]
    boxes = masks_to_boxes(masks).float() if len(masks) else torch.zeros((0, 4))
    boxes[:, 2:] += 1.0  # pixel j covers [j, j + 1]
    out = {"boxes": boxes, "labels": labels, "masks": masks}
    if "keypoints" in target:
        points = target["keypoints"].as_subclass(torch.Tensor).float()[keep].clone()
        h, w = masks.shape[-2:]
        x, y = points[..., 0], points[..., 1]
        outside = (x < 0) | (y < 0) | (x > w) | (y > h)
        points[..., 2] = torch.where(outside, torch.zeros_like(x), points[..., 2])
        out["keypoints"] = points
    return out


def collate(
    batch: Sequence[tuple[torch.Tensor, Target]],
) -> tuple[list[torch.Tensor], list[Target]]:
    """A batch as (list of images, list of targets): detection images differ in size."""
    images, targets = zip(*batch, strict=True)
    return list(images), list(targets)


def epoch_loader(
    dataset: Any,
    *,
    batch_size: int,
    num_workers: int,
    seed: int,
    epoch: int,
    sampler: Any = None,
    pin_memory: bool = False,
) -> DataLoader[tuple[torch.Tensor, Target]]:
    """The DataLoader of one epoch of ``dataset`` (a `TrainImages` or the step recipe's
    `labelassist.train.crops.CropImages`); its shuffling (and the dataset's augmentation) is
    seeded from ``(seed, epoch)``, so a resumed run sees the same batches."""
    dataset.epoch = epoch
    if sampler is not None:
        sampler.set_epoch(epoch)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(mix_seed(seed, epoch)),
        pin_memory=pin_memory,
    )
