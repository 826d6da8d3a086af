"""Fine-tuning Mask R-CNN on reviewed annotations.

`finetune` trains a `Model` on a COCO dataset (a `Dataset` or a COCO json path) with SGD,
linear warm-up and a cosine schedule, data augmentation for microscopy (flips, 90°
rotations, scale jitter, intensity/contrast/gamma jitter), mixed precision on CUDA,
atomic per-epoch checkpoints with exact resume, and DistributedDataParallel when run
under ``torchrun``. `train_one_epoch` is the epoch loop on its own.

Classes are matched by name: data classes the model lacks get new predictor heads for
the union of both class lists (torchvision's fine-tuning idiom); all other weights, and the
predictor rows of the classes the model already knew, are kept.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from ..instances import Instances
from ..io.atomic import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    from ..coco.read import Dataset
    from ..model.model import Model

__all__ = ["TrainConfig", "TrainResult", "finetune", "train_one_epoch", "FREEZE_CHOICES"]

logger = logging.getLogger(__name__)

#: Values of `TrainConfig.freeze`: which part of the network is not trained.
FREEZE_CHOICES = ("none", "backbone", "features", "heads")
_CHECKPOINT = "last.pt"
_STATE = "last.state.pt"


@dataclass
class TrainConfig:
    """Settings of `finetune`; every field is JSON-able and stored in the checkpoint.

    Parameters
    ----------
    epochs : int
        Passes over the training images.
    batch_size : int
        Images per optimizer step (per process under DDP).
    lr : float
        Peak learning rate of SGD (reached after ``warmup_iters``).
    momentum, weight_decay : float
        SGD settings (weight decay is not applied to norm layers and biases).
    warmup_iters : int
        Iterations of linear warm-up from ``lr * warmup_factor`` (capped at a third of
        all iterations for short runs).
    warmup_factor : float
        Start of the warm-up as a fraction of ``lr``.
    final_lr_factor : float
        The cosine schedule ends at ``lr * final_lr_factor``.
    freeze : {"none", "backbone", "features", "heads"}
        ``"backbone"`` freezes the backbone body (the FPN still trains), ``"features"``
        the whole backbone including the FPN, ``"heads"`` everything except the box and
        mask predictors.
    augment : float
        Augmentation strength, 0 (off) to 1 (full); ``True`` means 1.
    scale_range : tuple of float
        Scale jitter range at full strength.
    num_workers : int or None
        Data loading processes; None means ``min(2, cpu count)``.
    seed : int
        Seeds weights of new heads, shuffling, augmentation and sampling. Every epoch is
        re-seeded from ``(seed, epoch)`` so a resumed run repeats a straight one.
    amp : bool
        Mixed precision with a gradient scaler (CUDA only; ignored on CPU).
    clip_grad_norm : float or None
        Clip the gradient norm (None: off).
    val_score_threshold : float
        Score threshold of the predictions evaluated on ``val``.
    roi_samples : int or None
        RoIs sampled per image for the box and mask losses while training (torchvision's
        ``box_batch_size_per_image``, 512); fewer train faster on a CPU. None: the model's.
    rpn_proposals : int or None
        RPN proposals kept per image while training (torchvision: 2000). None: the model's.
        Both only change training; prediction is unaffected.

    Examples
    --------
    >>> TrainConfig(epochs=2, lr=0.01).batch_size
    4
    """

    epochs: int = 10
    batch_size: int = 4
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 100
    warmup_factor: float = 0.001
    final_lr_factor: float = 0.05
    freeze: str = "none"
    augment: float = 1.0
    scale_range: tuple[float, float] = (0.75, 1.33)
    num_workers: int | None = None
    seed: int = 0
    amp: bool = True
    clip_grad_norm: float | None = 10.0
    val_score_threshold: float = 0.05
    roi_samples: int | None = None
    rpn_proposals: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.augment, bool):
            self.augment = 1.0 if self.augment else 0.0
        _check_int("epochs", self.epochs, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("warmup_iters", self.warmup_iters, 0)
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        if self.freeze not in FREEZE_CHOICES:
            raise ValueError(f"freeze must be one of {FREEZE_CHOICES}, got {self.freeze!r}")
        if not 0.0 <= float(self.augment) <= 1.0:
            raise ValueError(f"augment must be within [0, 1] (or a bool), got {self.augment!r}")
        lo, hi = self.scale_range
        if not 0 < lo <= 1 <= hi:
            raise ValueError(f"scale_range must be (low <= 1, high >= 1), got {self.scale_range!r}")
        for name in ("num_workers", "roi_samples", "rpn_proposals"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 0 if name == "num_workers" else 1)


@dataclass
class TrainResult:
    """What `finetune` returns.

    Attributes
    ----------
    model : Model
        The trained model (a new object; its classes are the model's followed by the
        data classes it lacked).
    history : list of dict
        One dict per epoch: ``epoch``, ``loss`` and each loss part (means over the epoch),
        ``lr``, ``iterations``, ``time_s``, and the `evaluate` metrics (``segm_AP``,
        ``segm_AP50``, ...) when ``val`` was given.
    checkpoint : Path or None
        The last checkpoint written (None without ``out``).
    """

    model: Model
    history: list[dict] = field(default_factory=list)
    checkpoint: Path | None = None


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


# -- data ------------------------------------------------------------------------------------


def _resolve_data(
    data: Any, image_root: str | os.PathLike | None, name: str
) -> tuple[list[tuple[Any, Instances]], list[str] | None]:
    """(image path or array, Instances) pairs and the category names of ``data``."""
    if isinstance(data, (str, os.PathLike)):
        from ..coco.read import read_coco

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
        return pairs, [str(c) for c in data.categories]
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        pairs = []
        for k, item in enumerate(data):
            if not (
                isinstance(item, Sequence) and len(item) == 2 and isinstance(item[1], Instances)
            ):
                raise TypeError(
                    f"{name}[{k}] must be an (image, Instances) pair, got {type(item).__name__}"
                )
            pairs.append((item[0], item[1]))
        return pairs, None
    raise TypeError(
        f"{name} must be a Dataset, a COCO json path or a list of (image, Instances) pairs, "
        f"got {type(data).__name__}"
    )


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


class _TrainImages(TorchDataset):
    """Torch dataset: image tensor (C, H, W) float32 and a torchvision target dict.

    Targets: ``boxes`` (N, 4) float32 xyxy in pixels, ``labels`` (N,) int64 network label
    ids (``label_ids[class index]``; background is 0), ``masks`` (N, H, W) uint8. Instances that
    augmentation crops away or thins to slivers are dropped; images without instances are
    kept as negatives.
    """

    def __init__(
        self,
        pairs: Sequence[tuple[Any, Instances]],
        *,
        normalization: Any,
        label_ids: Sequence[int],
        augment: float = 0.0,
        scale_range: tuple[float, float] = (0.75, 1.33),
        seed: int = 0,
    ) -> None:
        self.pairs = list(pairs)
        self.normalization = normalization
        self.label_ids = torch.as_tensor(list(label_ids), dtype=torch.int64)
        self.augment = float(augment)
        self.scale_range = tuple(scale_range)
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        source, instances = self.pairs[index]
        image = _load_tensor(source, self.normalization)
        if tuple(image.shape[-2:]) != tuple(instances.image_shape):
            raise ValueError(
                f"training image {index} ({_describe(source)}) has shape "
                f"{tuple(image.shape[-2:])} but its annotations say {instances.image_shape}"
            )
        target = _instances_to_target(instances, self.label_ids)
        if self.augment > 0:
            # augmentation randomness depends only on (seed, epoch, index): the same for any
            # number of workers or processes, and repeatable on resume
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(_mix_seed(self.seed, self.epoch, index))
                image, target = _augment(image, target, self.augment, self.scale_range)
        return image, _sanitize(target)


def _describe(source: Any) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else "in-memory array"


def _mix_seed(*parts: int) -> int:
    seed = 0x9E3779B9
    for p in parts:
        seed = (seed * 1_000_003 + int(p) + 1) % (2**63 - 1)
    return seed


def _load_tensor(source: Any, normalization: Any) -> torch.Tensor:
    """Read (if a path) and convert exactly as prediction does (`predict.to_tensor`)."""
    from ..model.predict import to_tensor

    if isinstance(source, (str, os.PathLike)):
        from ..io.image import read_image

        source = read_image(source)
    return to_tensor(np.asarray(source), normalization=normalization)


def _instances_to_target(instances: Instances, label_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    from torchvision import tv_tensors

    from ..geometry import polygons_to_masks

    h, w = instances.image_shape
    n = len(instances)
    if n:
        masks = polygons_to_masks(instances.polygons, (h, w))
    else:
        masks = np.zeros((0, h, w), dtype=bool)
    return {
        "boxes": tv_tensors.BoundingBoxes(
            torch.as_tensor(instances.boxes, dtype=torch.float32).reshape(-1, 4),
            format="XYXY",
            canvas_size=(h, w),
        ),
        "masks": tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(masks)).to(torch.uint8)),
        "labels": label_ids[torch.as_tensor(instances.labels, dtype=torch.int64)],
    }


def _augment(
    image: torch.Tensor, target: dict, strength: float, scale_range: tuple[float, float]
) -> tuple[torch.Tensor, dict]:
    """Random geometric (image, boxes and masks together) and intensity augmentation."""
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import functional as F

    image = tv_tensors.Image(image)
    sample = (image, target)
    if torch.rand(()) < 0.5:
        sample = F.horizontal_flip(sample[0]), _map_target(sample[1], F.horizontal_flip)
    if torch.rand(()) < 0.5:
        sample = F.vertical_flip(sample[0]), _map_target(sample[1], F.vertical_flip)
    k = int(torch.randint(0, 4, ()))
    if k:
        rot = lambda x: F.rotate(x, 90.0 * k, expand=True)  # noqa: E731
        sample = rot(sample[0]), _map_target(sample[1], rot)
    if torch.rand(()) < 0.5 * strength:
        lo, hi = scale_range
        lo, hi = 1 - (1 - lo) * strength, 1 + (hi - 1) * strength
        scale = math.exp(float(torch.empty(()).uniform_(math.log(lo), math.log(hi))))
        h, w = sample[0].shape[-2:]
        max_dx, max_dy = abs(scale - 1) * w / 2, abs(scale - 1) * h / 2
        dx = float(torch.empty(()).uniform_(-max_dx, max_dx)) if max_dx else 0.0
        dy = float(torch.empty(()).uniform_(-max_dy, max_dy)) if max_dy else 0.0

        def aff(x):
            return F.affine(x, angle=0.0, translate=[dx, dy], scale=scale, shear=[0.0, 0.0])

        sample = aff(sample[0]), _map_target(sample[1], aff)
    image, target = sample
    image = _intensity_jitter(image.as_subclass(torch.Tensor), strength)
    return image, target


def _map_target(target: dict, fn: Any) -> dict:
    out = dict(target)
    out["boxes"] = fn(target["boxes"])
    out["masks"] = fn(target["masks"])
    return out


def _intensity_jitter(image: torch.Tensor, strength: float) -> torch.Tensor:
    """Gamma, contrast, brightness and noise jitter for a float image in about [0, 1]."""
    if torch.rand(()) < 0.8 * strength:
        gamma = math.exp(float(torch.empty(()).uniform_(-0.4, 0.4)) * strength)
        image = image.clamp(min=0) ** gamma
    if torch.rand(()) < 0.8 * strength:
        contrast = 1 + float(torch.empty(()).uniform_(-0.4, 0.4)) * strength
        brightness = float(torch.empty(()).uniform_(-0.1, 0.1)) * strength
        mean = image.mean()
        image = (image - mean) * contrast + mean + brightness
    if torch.rand(()) < 0.3 * strength:
        sigma = float(torch.empty(()).uniform_(0.0, 0.05)) * strength
        image = image + sigma * torch.randn_like(image)
    return image.clamp(0.0, 1.0).contiguous()  # the range `predict.to_tensor` gives


def _sanitize(target: dict, min_pixels: int = 4) -> dict[str, torch.Tensor]:
    """Boxes recomputed from the (augmented) masks, in continuous pixel coordinates; masks
    with fewer than ``min_pixels`` pixels (cropped away, slivers) are dropped; plain tensors
    for torchvision's model."""
    from torchvision.ops import masks_to_boxes

    masks = target["masks"].as_subclass(torch.Tensor).to(torch.uint8)
    labels = target["labels"]
    keep = masks.flatten(1).sum(1) >= min_pixels
    masks, labels = masks[keep], labels[keep]
    boxes = masks_to_boxes(masks).float() if len(masks) else torch.zeros((0, 4))
    boxes[:, 2:] += 1.0  # pixel j covers [j, j + 1]
    return {"boxes": boxes, "labels": labels, "masks": masks}


def _collate(batch: list) -> tuple[list, list]:
    images, targets = zip(*batch, strict=True)
    return list(images), list(targets)


# -- classes and heads -----------------------------------------------------------------------


def _class_mapping(model: Model, data_classes: list[str] | None) -> tuple[list[str], np.ndarray]:
    """The class list the trained model needs and the map data label -> model class index."""
    model_classes = [str(c) for c in model.classes]
    if data_classes is None:
        return model_classes, np.arange(len(model_classes))
    classes = list(model_classes)
    for name in data_classes:
        if name not in classes:
            classes.append(name)
    return classes, np.array([classes.index(n) for n in data_classes], dtype=np.int64)


def _remap(pairs: list, mapping: np.ndarray) -> list:
    """Relabel the instances of ``pairs`` from data class indices to model class indices."""
    out = []
    for k, (source, instances) in enumerate(pairs):
        if len(instances):
            if instances.labels.max() >= len(mapping):
                raise ValueError(
                    f"train image {k} has an instance with label {int(instances.labels.max())} "
                    f"but there are only {len(mapping)} classes; fix the labels or categories"
                )
            instances = instances.replace(labels=mapping[instances.labels])
        out.append((source, instances))
    return out


def _extend_heads(net: torch.nn.Module, n_old: int, n_new: int) -> None:
    """Replace the box and mask predictors of ``net`` by ones with ``n_new`` outputs
    (background included), copying the ``n_old`` outputs the old predictors had."""
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

    heads = net.roi_heads
    old_box, old_mask = heads.box_predictor, heads.mask_predictor
    new_box = FastRCNNPredictor(old_box.cls_score.in_features, n_new)
    new_mask = MaskRCNNPredictor(
        old_mask.conv5_mask.in_channels, old_mask.conv5_mask.out_channels, n_new
    )
    with torch.no_grad():
        new_box.cls_score.weight[:n_old] = old_box.cls_score.weight
        new_box.cls_score.bias[:n_old] = old_box.cls_score.bias
        new_box.bbox_pred.weight[: 4 * n_old] = old_box.bbox_pred.weight
        new_box.bbox_pred.bias[: 4 * n_old] = old_box.bbox_pred.bias
        new_mask.conv5_mask.load_state_dict(old_mask.conv5_mask.state_dict())
        new_mask.mask_fcn_logits.weight[:n_old] = old_mask.mask_fcn_logits.weight
        new_mask.mask_fcn_logits.bias[:n_old] = old_mask.mask_fcn_logits.bias
    device = old_box.cls_score.weight.device
    heads.box_predictor = new_box.to(device)
    heads.mask_predictor = new_mask.to(device)


def _with_classes(model: Model, classes: list[str]) -> Model:
    """A copy of ``model`` to train (the input stays as it is), with predictor heads for
    ``classes``: classes it lacks get new network label ids after the existing ones."""
    import copy

    from ..model.model import Model

    net = copy.deepcopy(model.net)
    meta = copy.deepcopy(model.meta)
    added = len(classes) - len(model.classes)
    if added:
        n_out = int(net.roi_heads.box_predictor.cls_score.out_features)
        _extend_heads(net, n_out, n_out + added)
        meta["label_ids"] = list(meta["label_ids"]) + list(range(n_out, n_out + added))
        meta["classes"] = list(classes)
        logger.info("new classes %s: predictor heads extended", classes[len(model.classes) :])
    return Model(
        net, classes, arch=model.arch, options=meta.get("options"), meta=meta, device=model.device
    )


# -- optimisation ----------------------------------------------------------------------------


def _freeze(net: torch.nn.Module, mode: str) -> list[torch.nn.Module]:
    """Turn off gradients for the frozen part; return the frozen modules (kept in eval
    mode so their normalisation statistics stay fixed)."""
    if mode == "none":
        frozen = []
    elif mode == "backbone":
        frozen = [net.backbone.body]
    elif mode == "features":
        frozen = [net.backbone]
    else:  # heads: only the predictors train
        frozen = [m for name, m in net.named_children() if name != "roi_heads"] + [
            m for name, m in net.roi_heads.named_children() if not name.endswith("_predictor")
        ]
    for p in net.parameters():
        p.requires_grad_(True)
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)
    return frozen


def _training_sampling(net: torch.nn.Module, config: TrainConfig) -> dict[str, Any]:
    """Apply ``roi_samples``/``rpn_proposals``; return the old values for `_restore`."""
    rpn, sampler = net.rpn, net.roi_heads.fg_bg_sampler
    old = {
        "roi": sampler.batch_size_per_image,
        "pre": rpn._pre_nms_top_n["training"],
        "post": rpn._post_nms_top_n["training"],
    }
    if config.roi_samples is not None:
        sampler.batch_size_per_image = int(config.roi_samples)
    if config.rpn_proposals is not None:
        rpn._pre_nms_top_n["training"] = int(config.rpn_proposals)
        rpn._post_nms_top_n["training"] = int(config.rpn_proposals)
    return old


def _restore_sampling(net: torch.nn.Module, old: dict[str, Any]) -> None:
    net.roi_heads.fg_bg_sampler.batch_size_per_image = old["roi"]
    net.rpn._pre_nms_top_n["training"] = old["pre"]
    net.rpn._post_nms_top_n["training"] = old["post"]


def _train_mode(net: torch.nn.Module, frozen: list[torch.nn.Module]) -> None:
    net.train()
    for module in frozen:
        module.eval()


class _WarmupCosine:
    """LR factor per iteration: linear warm-up, then cosine decay (picklable, stateless)."""

    def __init__(self, warmup: int, total: int, warmup_factor: float, final: float) -> None:
        self.warmup = int(warmup)
        self.total = max(int(total), 1)
        self.warmup_factor = float(warmup_factor)
        self.final = float(final)

    def __call__(self, it: int) -> float:
        if it < self.warmup:
            alpha = it / self.warmup
            return self.warmup_factor * (1 - alpha) + alpha
        span = max(self.total - self.warmup, 1)
        progress = min((it - self.warmup) / span, 1.0)
        return self.final + (1 - self.final) * 0.5 * (1 + math.cos(math.pi * progress))


def _build_optimizer(net: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in net.parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)


# -- the epoch -------------------------------------------------------------------------------


def train_one_epoch(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Any,
    *,
    device: torch.device | str = "cpu",
    epoch: int = 0,
    scheduler: Any = None,
    scaler: torch.amp.GradScaler | None = None,
    clip_grad_norm: float | None = None,
    frozen: Sequence[torch.nn.Module] = (),
    progress: bool = True,
) -> dict[str, float]:
    """Train ``net`` for one pass over ``loader``; return the mean losses.

    Parameters
    ----------
    net : torch.nn.Module
        A torchvision detection model (``net(images, targets)`` returns a loss dict),
        possibly wrapped in DistributedDataParallel.
    optimizer : torch.optim.Optimizer
        Steps once per batch.
    loader : iterable of (list of Tensor, list of dict)
        Batches of images (C, H, W) float32 and torchvision target dicts.
    device : torch.device or str
        Where images and targets are moved.
    epoch : int
        0-based epoch number, for messages.
    scheduler : torch.optim.lr_scheduler.LRScheduler, optional
        Stepped after every batch (per-iteration warm-up and decay).
    scaler : torch.amp.GradScaler, optional
        Enables mixed precision (CUDA).
    clip_grad_norm : float, optional
        Maximum gradient norm.
    frozen : sequence of Module
        Modules kept in eval mode while the rest trains.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    dict of str to float
        ``loss`` and each loss part (``loss_classifier``, ``loss_box_reg``,
        ``loss_mask``, ``loss_objectness``, ``loss_rpn_box_reg``) averaged over the
        batches, ``lr`` (at the end) and ``iterations``.

    Raises
    ------
    FloatingPointError
        When the loss is not finite; the message names the epoch, the iteration and the
        loss parts.

    Examples
    --------
    >>> import torch
    >>> from labelassist.models import build_maskrcnn
    >>> net = build_maskrcnn("maskrcnn_resnet18_fpn", num_classes=2)
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.001)
    >>> target = {"boxes": torch.tensor([[8.0, 8.0, 24.0, 24.0]]), "labels": torch.tensor([1]),
    ...           "masks": torch.zeros(1, 64, 64, dtype=torch.uint8)}
    >>> target["masks"][0, 8:24, 8:24] = 1
    >>> loader = [([torch.rand(3, 64, 64)], [target])]
    >>> stats = train_one_epoch(net, opt, loader, progress=False)
    >>> stats["iterations"], math.isfinite(stats["loss"])
    (1, True)
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    _train_mode(net, list(frozen))
    sums: dict[str, float] = {}
    n = 0
    use_amp = scaler is not None and scaler.is_enabled()
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", disable=not progress, leave=False)
    for images, targets in bar:
        images = [img.to(device, non_blocking=True) for img in images]
        targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
        with torch.autocast(device.type, enabled=use_amp):
            loss_dict = net(images, targets)
        losses = sum(loss_dict.values())
        value = float(losses.detach())
        if not math.isfinite(value):
            parts = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in loss_dict.items())
            raise FloatingPointError(
                f"loss is {value} at epoch {epoch + 1}, iteration {n + 1} ({parts}); "
                "training stopped: lower the learning rate (lr) or check the annotations"
            )
        optimizer.zero_grad(set_to_none=True)
        if use_amp:
            scaler.scale(losses).backward()
            if clip_grad_norm:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(_trainable(net), clip_grad_norm)
            scaler.step(optimizer)
            scaler.update()
        else:
            losses.backward()
            if clip_grad_norm:
                torch.nn.utils.clip_grad_norm_(_trainable(net), clip_grad_norm)
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        n += 1
        sums["loss"] = sums.get("loss", 0.0) + value
        for k, v in loss_dict.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        bar.set_postfix(loss=f"{value:.3f}", lr=f"{optimizer.param_groups[0]['lr']:.4g}")
    stats = {k: v / max(n, 1) for k, v in sums.items()}
    stats["lr"] = float(optimizer.param_groups[0]["lr"])
    stats["iterations"] = n
    return stats


def _trainable(net: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in net.parameters() if p.requires_grad]


# -- distributed -----------------------------------------------------------------------------


def _dist_setup(device: torch.device) -> tuple[int, int, bool]:
    """(rank, world size, whether this call initialised the process group)."""
    import torch.distributed as dist

    if not dist.is_available():
        return 0, 1, False
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or "RANK" not in os.environ:
        return 0, 1, False
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), True


def _sync_buffers(net: torch.nn.Module, world: int) -> None:
    """Give every rank rank 0's buffers (batch-norm statistics drift apart per rank)."""
    if world <= 1:
        return
    import torch.distributed as dist

    for buf in net.buffers():
        dist.broadcast(buf.data, src=0)


# -- checkpoints -----------------------------------------------------------------------------


def _atomic_torch_save(obj: Any, path: Path) -> None:
    with atomic_write(path) as fh:
        torch.save(obj, fh)


def _rng_state() -> dict[str, Any]:
    """Torch (CPU, CUDA) and Python RNG states as tensors and primitives."""
    state = {"torch": torch.get_rng_state(), "python": _to_lists(random.getstate())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _to_lists(obj: Any) -> Any:
    return [_to_lists(x) for x in obj] if isinstance(obj, (tuple, list)) else obj


def _to_tuples(obj: Any) -> Any:
    return tuple(_to_tuples(x) for x in obj) if isinstance(obj, list) else obj


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _json_config(config: TrainConfig) -> dict[str, Any]:
    out = asdict(config)
    out["scale_range"] = list(config.scale_range)
    return out


# -- finetune --------------------------------------------------------------------------------


def finetune(
    model: Model,
    train: Dataset | str | os.PathLike | Sequence[tuple[Any, Instances]],
    *,
    val: Dataset | str | os.PathLike | None = None,
    image_root: str | os.PathLike | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    freeze: str | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    config: TrainConfig | None = None,
    callback: Callable[[dict], bool | None] | None = None,
) -> TrainResult:
    """Fine-tune ``model`` on annotated images.

    Parameters
    ----------
    model : Model
        The starting point (``load_model("starter")``, a checkpoint, or
        ``load_model(None, classes=[...])`` for training from scratch). It is not
        modified: a copy is trained (with extended heads when the data brings new
        classes) and returned in the result.
    train : Dataset, COCO json path, or list of (image, Instances)
        Training images with their instances. Images are read with
        `labelassist.read_image` and converted like `Model.predict` does. In a list of
        pairs, images are arrays (H, W[, C]) or paths and labels index ``model.classes``.
    val : Dataset or COCO json path, optional
        Held-out images; evaluated after every epoch (mask and box AP via COCOeval).
    image_root : str or os.PathLike, optional
        Folder the ``file_name`` of ``train`` (and ``val``) resolve against; default: next
        to the json file.
    epochs, batch_size, lr, freeze : optional
        Shortcuts overriding the same fields of ``config``.
    out : str or os.PathLike, optional
        Folder for checkpoints: ``last.pt`` (the model, history in its metadata) and
        ``last.state.pt`` (optimizer, scheduler, scaler, epoch, RNG states; tensors and
        primitives only), both written atomically after every epoch.
    resume : bool
        Continue the run stored in ``out`` where it stopped (the model and optimizer state
        come from the checkpoint; ``model`` only supplies nothing but a fallback).
    progress : bool
        Show tqdm progress bars (rank 0 only under DDP).
    config : TrainConfig, optional
        All other settings.
    callback : callable, optional
        Called on rank 0 with each epoch's history record after its checkpoint is
        written; returning ``False`` stops training there (a GUI's cancel button). The
        run can be continued later with ``resume=True``.

    Returns
    -------
    TrainResult
        The trained model, the per-epoch history and the checkpoint path.

    Raises
    ------
    ValueError
        On an empty ``train``, bad settings or ``resume`` without a checkpoint.
    FloatingPointError
        When the loss becomes non-finite.

    Examples
    --------
    >>> from labelassist import load_model, synthetic_nuclei
    >>> model = load_model(None, classes=["nucleus"], device="cpu")  # or "starter"
    >>> pairs = [synthetic_nuclei((64, 64), n=3, seed=0)]  # or a COCO json path
    >>> config = TrainConfig(num_workers=0, roi_samples=32, rpn_proposals=100)
    >>> result = finetune(model, pairs, epochs=1, progress=False, config=config)
    >>> len(result.history), result.model.classes, result.model is model
    (1, ['nucleus'], False)
    """
    config = _merge_config(config, epochs=epochs, batch_size=batch_size, lr=lr, freeze=freeze)
    if not hasattr(model, "net") or not hasattr(model, "classes"):
        raise TypeError(
            f"model must be a labelassist Model (load_model(...)), got {type(model).__name__}"
        )
    out_dir = Path(out) if out is not None else None
    if resume and out_dir is None:
        raise ValueError("resume=True needs out=<folder of the run to resume>")
    pairs, data_classes = _resolve_data(train, image_root, "train")
    if not pairs:
        raise ValueError("train has no images; annotate (review) some images first")
    val_data = _resolve_val(val, image_root)

    state = None
    if resume:
        model, state = _load_resume(out_dir, model)
    device = torch.device(model.device)
    rank, world, owns_group = _dist_setup(device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
        model.to(device)

    torch.manual_seed(config.seed)  # initial weights of new heads
    classes, mapping = _class_mapping(model, data_classes)
    model = _with_classes(model, classes)
    pairs = _remap(pairs, mapping)
    # contiguous weights: prediction leaves them channels-last on the CPU (faster there
    # for inference, not for training)
    net = model.net.to(device, memory_format=torch.contiguous_format)
    frozen = _freeze(net, config.freeze)
    optimizer = _build_optimizer(net, config)
    dataset = _TrainImages(
        pairs,
        normalization=model.meta.get("normalization"),
        label_ids=model.meta["label_ids"],
        augment=config.augment,
        scale_range=config.scale_range,
        seed=config.seed,
    )
    sampler = None
    if world > 1:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, seed=config.seed)
    n_per_rank = len(sampler) if sampler is not None else len(dataset)
    total = math.ceil(n_per_rank / config.batch_size) * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        _WarmupCosine(
            min(config.warmup_iters, total // 3),
            total,
            config.warmup_factor,
            config.final_lr_factor,
        ),
    )
    scaler = torch.amp.GradScaler(device.type, enabled=bool(config.amp and device.type == "cuda"))
    train_net: torch.nn.Module = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        train_net = DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )

    prior = list(model.meta.get("history") or [])
    history: list[dict] = []
    start_epoch = 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        start_epoch = int(state["epoch"])
        prior, history = list(state["prior_history"]), list(state["history"])
        if start_epoch >= config.epochs:
            logger.warning("the run in %s already finished %d epochs", out_dir, start_epoch)

    num_workers = config.num_workers
    if num_workers is None:
        num_workers = min(2, os.cpu_count() or 1)
    checkpoint = None
    if out_dir is not None and rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    show = progress and rank == 0
    sampling = _training_sampling(net, config)
    try:
        for epoch in range(start_epoch, config.epochs):
            t0 = time.perf_counter()
            # every epoch is seeded from (seed, epoch): a resumed run repeats a straight one
            torch.manual_seed(_mix_seed(config.seed, epoch, rank))
            dataset.epoch = epoch
            if sampler is not None:
                sampler.set_epoch(epoch)
            loader = DataLoader(
                dataset,
                batch_size=config.batch_size,
                shuffle=sampler is None,
                sampler=sampler,
                num_workers=num_workers,
                collate_fn=_collate,
                generator=torch.Generator().manual_seed(_mix_seed(config.seed, epoch)),
                pin_memory=device.type == "cuda",
            )
            stats = train_one_epoch(
                train_net,
                optimizer,
                loader,
                device=device,
                epoch=epoch,
                scheduler=scheduler,
                scaler=scaler,
                clip_grad_norm=config.clip_grad_norm,
                frozen=frozen,
                progress=show,
            )
            _sync_buffers(net, world)
            record = {"epoch": epoch + 1, **stats, "n_train_images": len(dataset)}
            record["time_s"] = round(time.perf_counter() - t0, 3)
            if val_data is not None and rank == 0:
                record.update(_validate(model, val_data, config))
            history.append(record)
            logger.info("epoch %d: %s", epoch + 1, _format_record(record))
            if out_dir is not None and rank == 0:
                checkpoint = _write_checkpoint(
                    out_dir,
                    model,
                    (prior, history),
                    config,
                    epoch + 1,
                    (optimizer, scheduler, scaler),
                )
            if _stop_requested(callback, record, rank, world, device):
                logger.info("training stopped by the callback after epoch %d", epoch + 1)
                break
    finally:
        _restore_sampling(net, sampling)
        net.eval()
        if owns_group:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()
    _set_history(model, prior + history, config)
    if checkpoint is None and out_dir is not None and (out_dir / _CHECKPOINT).exists():
        checkpoint = out_dir / _CHECKPOINT
    return TrainResult(model=model, history=history, checkpoint=checkpoint)


def _stop_requested(
    callback: Any, record: dict, rank: int, world: int, device: torch.device
) -> bool:
    """Rank 0 asks ``callback``; under DDP every rank learns the answer."""
    stop = bool(callback is not None and rank == 0 and callback(dict(record)) is False)
    if world > 1:
        import torch.distributed as dist

        flag = torch.tensor([int(stop)], device=device)
        dist.broadcast(flag, src=0)
        stop = bool(flag.item())
    return stop


def _merge_config(config: TrainConfig | None, **overrides: Any) -> TrainConfig:
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    config = config if config is not None else TrainConfig()
    changes = {k: v for k, v in overrides.items() if v is not None}
    return replace(config, **changes) if changes else replace(config)


def _resolve_val(val: Any, image_root: Any) -> Any:
    if val is None:
        return None
    if isinstance(val, (str, os.PathLike)):
        from ..coco.read import read_coco

        if not Path(val).exists():
            raise FileNotFoundError(f"val: COCO file not found: {val}")
        return read_coco(val, image_root=image_root)
    if not _is_dataset(val):
        raise TypeError(f"val must be a Dataset or a COCO json path, got {type(val).__name__}")
    return val


def _validate(model: Model, val: Any, config: TrainConfig) -> dict[str, float]:
    from ..evaluate import evaluate

    model.net.eval()
    metrics = evaluate(model, val, score_threshold=config.val_score_threshold, progress=False)
    counts = ("n_images", "n_instances", "n_predictions")
    return {
        (f"val_{k}" if k in counts else k): float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float))
    }


def _format_record(record: dict) -> str:
    keys = ("loss", "lr", "segm_AP", "segm_AP50", "time_s")
    return " ".join(f"{k}={record[k]:.4g}" for k in keys if k in record)


def _set_history(model: Model, history: list[dict], config: TrainConfig) -> None:
    meta = getattr(model, "meta", None)
    if isinstance(meta, dict):
        meta["history"] = history
        meta["train_config"] = _json_config(config)


def _write_checkpoint(
    out_dir: Path,
    model: Model,
    histories: tuple[list[dict], list[dict]],
    config: TrainConfig,
    epoch: int,
    training: tuple[Any, Any, Any],
) -> Path:
    """Atomically write ``last.pt`` (the model) and ``last.state.pt`` (the rest)."""
    prior, history = histories
    optimizer, scheduler, scaler = training
    _set_history(model, prior + history, config)
    path = out_dir / _CHECKPOINT
    model.save(path)
    state = {
        "epoch": epoch,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": _rng_state(),
        "prior_history": prior,
        "history": history,
        "config": _json_config(config),
    }
    _atomic_torch_save(state, out_dir / _STATE)
    return path


def _load_resume(out_dir: Path, model: Model) -> tuple[Model, dict]:
    from ..model.model import load_model

    path, state_path = out_dir / _CHECKPOINT, out_dir / _STATE
    if not (path.exists() and state_path.exists()):
        raise ValueError(
            f"resume=True but {out_dir} holds no checkpoint ({_CHECKPOINT} and {_STATE}); "
            "start without resume"
        )
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    loaded = load_model(path, device=getattr(model, "device", None))
    return loaded, state
