"""The training engine: one epoch (`train_one_epoch`), optimizer, LR schedule, validation.

In the spirit of torchvision's ``references/detection/engine.py``: short functions that a
training script (here `finetune`) strings together.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from ..evaluation import evaluate
from ..model import Model
from .config import TrainConfig
from .keypoint_loss import KeypointLoss

if TYPE_CHECKING:  # pragma: no cover - torchvision is untyped (Any) for mypy
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.rpn import RegionProposalNetwork

__all__ = [
    "WarmupCosine",
    "build_optimizer",
    "build_scheduler",
    "format_record",
    "train_one_epoch",
    "training_sampling",
    "validate",
]


def train_one_epoch(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable[tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]],
    *,
    device: torch.device | str = "cpu",
    epoch: int = 0,
    scheduler: Any = None,
    scaler: torch.amp.GradScaler | None = None,
    clip_grad_norm: float | None = None,
    frozen: Sequence[torch.nn.Module] = (),
    progress: bool = True,
    loss_weights: Mapping[str, float] | None = None,
    keypoint_loss: KeypointLoss | None = None,
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
    loss_weights : mapping of str to float, optional
        Weights of loss parts in the minimised sum (e.g. ``{"loss_keypoint": 2.0}``);
        parts not named weigh 1. The returned means are of the unweighted parts; ``loss``
        is the weighted sum.
    keypoint_loss : KeypointLoss, optional
        The captures of `labelassist.train.keypoint_loss.keypoint_loss_hooks` on ``net``:
        its loss replaces torchvision's ``loss_keypoint`` (a Gaussian heatmap target).

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
    >>> import math, torch
    >>> from labelassist.model import build_maskrcnn
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
    device = torch.device(device)
    _train_mode(net, frozen)
    sums: dict[str, float] = {}
    n = 0
    amp_scaler = scaler if scaler is not None and scaler.is_enabled() else None
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", disable=not progress, leave=False)
    for images, targets in bar:
        images = [img.to(device, non_blocking=True) for img in images]
        targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
        with torch.autocast(device.type, enabled=amp_scaler is not None):
            loss_dict = net(images, targets)
        if keypoint_loss is not None and (soft := keypoint_loss.take()) is not None:
            loss_dict["loss_keypoint"] = soft
        weights = loss_weights or {}
        losses = sum(v * weights[k] if k in weights else v for k, v in loss_dict.items())
        value = float(losses.detach())
        if not math.isfinite(value):
            parts = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in loss_dict.items())
            raise FloatingPointError(
                f"loss is {value} at epoch {epoch + 1}, iteration {n + 1} ({parts}); "
                "training stopped: lower the learning rate (lr) or check the annotations"
            )
        _step(net, optimizer, losses, amp_scaler, clip_grad_norm)
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


def _step(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    losses: torch.Tensor,
    scaler: torch.amp.GradScaler | None,
    clip_grad_norm: float | None,
) -> None:
    """Backward pass, optional gradient clipping, optimizer step (scaled under AMP)."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
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


def _trainable(net: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in net.parameters() if p.requires_grad]


def _train_mode(net: torch.nn.Module, frozen: Sequence[torch.nn.Module]) -> None:
    net.train()
    for module in frozen:
        module.eval()


# -- optimizer and schedule ------------------------------------------------------------------


class WarmupCosine:
    """LR factor per iteration: linear warm-up, then cosine decay (picklable, stateless).

    Examples
    --------
    >>> schedule = WarmupCosine(10, 110, warmup_factor=0.1, final=0.0)
    >>> schedule(0), schedule(10), round(schedule(60), 3), schedule(110)
    (0.1, 1.0, 0.5, 0.0)
    """

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


def build_optimizer(net: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum over the trainable parameters; no weight decay on norm layers
    and biases (the parameters with at most one dimension); the keypoint head's
    parameters at ``lr * config.keypoint_lr_factor`` (own groups only when that is not 1).
    """
    factor = config.keypoint_lr_factor
    groups: list[dict[str, Any]] = []
    for part in ("rest", "keypoint"):
        decay: list[torch.nn.Parameter] = []
        no_decay: list[torch.nn.Parameter] = []
        for name, p in net.named_parameters():
            keypoint = factor != 1.0 and ".keypoint_" in f".{name}"
            if not p.requires_grad or keypoint != (part == "keypoint"):
                continue
            (no_decay if p.ndim <= 1 else decay).append(p)
        lr = {"lr": config.lr * factor} if part == "keypoint" else {}
        if decay or part == "rest":
            groups.append({"params": decay, "weight_decay": config.weight_decay, **lr})
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0, **lr})
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, iterations: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration warm-up and cosine decay over ``iterations`` (all epochs); the
    warm-up is capped at a third of them."""
    schedule = WarmupCosine(
        min(config.warmup_iters, iterations // 3),
        iterations,
        config.warmup_factor,
        config.final_lr_factor,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


# -- sampling while training -----------------------------------------------------------------


@contextmanager
def training_sampling(
    net: MaskRCNN, *, roi_samples: int | None, rpn_proposals: int | None
) -> Iterator[None]:
    """Within the block, ``net`` samples ``roi_samples`` RoIs per image for the box and
    mask losses and keeps ``rpn_proposals`` RPN proposals while training (None: as it
    is); restored afterwards. Prediction (eval mode) is unaffected."""
    sampler = net.roi_heads.fg_bg_sampler
    old_roi = sampler.batch_size_per_image
    old_rpn = rpn_training_limits(net.rpn)
    if roi_samples is not None:
        sampler.batch_size_per_image = int(roi_samples)
    if rpn_proposals is not None:
        rpn_training_limits(net.rpn, (int(rpn_proposals), int(rpn_proposals)))
    try:
        yield
    finally:
        sampler.batch_size_per_image = old_roi
        rpn_training_limits(net.rpn, old_rpn)


def rpn_training_limits(
    rpn: RegionProposalNetwork, limits: tuple[int, int] | None = None
) -> tuple[int, int]:
    """The RPN's (pre-NMS, post-NMS) proposal counts in training mode; set ``limits``.

    torchvision 0.29 keeps these only in the private dicts ``rpn._pre_nms_top_n`` and
    ``rpn._post_nms_top_n`` (keys ``"training"``, ``"testing"``; the public
    ``pre_nms_top_n()`` only reads them). This is the one place labelassist touches them;
    ``tests/test_train.py::test_rpn_training_limits_reach_torchvision`` fails when
    torchvision changes them.
    """
    old = (int(rpn._pre_nms_top_n["training"]), int(rpn._post_nms_top_n["training"]))
    if limits is not None:
        rpn._pre_nms_top_n["training"], rpn._post_nms_top_n["training"] = limits
    return old


# -- validation ------------------------------------------------------------------------------


def validate(model: Model, val: Any, config: TrainConfig) -> dict[str, float]:
    """COCO metrics of ``model`` on the `Dataset` ``val``; counts are prefixed ``val_``."""
    model.net.eval()
    metrics = evaluate(model, val, score_threshold=config.val_score_threshold, progress=False)
    counts = ("n_images", "n_instances", "n_predictions")
    return {
        (f"val_{k}" if k in counts else k): float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float))
    }


def format_record(record: dict[str, Any]) -> str:
    """A one-line summary of an epoch's history record, for the log.

    Examples
    --------
    >>> format_record({"epoch": 1, "loss": 1.23456, "lr": 0.02, "time_s": 3.0})
    'loss=1.235 lr=0.02 time_s=3'
    """
    keys = ("loss", "lr", "segm_AP", "segm_AP50", "time_s")
    return " ".join(f"{k}={record[k]:.4g}" for k in keys if k in record)
