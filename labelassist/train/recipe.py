"""The plan of a training run: recipe, chunks of steps, freezing, object size and channels.

`plan_run` turns a `TrainConfig` and the training data into numbers: how many "epochs"
(passes over the images for the epoch recipe, chunks of ``chunk_steps`` optimizer steps
for the step recipe) of how many iterations, the freeze mode ``"auto"`` stands for, the
factor that brings the objects to the model's object size, and the input channels.
`training_dataset` builds the matching torch dataset; `record_input` stores the sizes and
channels on the trained model; `fit_time` shortens a step run to ``max_minutes``.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Any

import torch

from ..model import Model
from ..model.keypoint_flips import flip_order
from .config import TrainConfig, auto_freeze
from .crops import CropImages, prepare_images, training_factor
from .data import Pair, TrainImages
from .engine import WarmupCosine

__all__ = [
    "Plan",
    "fit_time",
    "keep_best",
    "num_workers",
    "plan_run",
    "record_input",
    "training_dataset",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What a run does.

    Attributes
    ----------
    epochs : int
        Epochs (epoch recipe) or chunks of steps (step recipe).
    per_epoch : int
        Optimizer steps per epoch or chunk (per process).
    freeze : str
        The resolved freeze mode (never ``"auto"``).
    factor : float
        Rescaling of the training images (1: none).
    data_object_size : float or None
        Median object size of the training instances in their own pixels.
    channels : tuple of int or None
        Input channels picked from the images.
    n_instances : int
        Training instances.
    n_images : int
        Training images.
    """

    epochs: int
    per_epoch: int
    freeze: str
    factor: float
    data_object_size: float | None
    channels: tuple[int, ...] | None
    n_instances: int
    n_images: int

    @property
    def iterations(self) -> int:
        """All optimizer steps of the run."""
        return self.epochs * self.per_epoch


def plan_run(model: Model, pairs: list[Pair], config: TrainConfig, world_size: int = 1) -> Plan:
    """The `Plan` of training ``model`` on ``pairs`` with ``config``.

    Examples
    --------
    >>> from labelassist import load_model, synthetic_nuclei
    >>> model = load_model(None, classes=["nucleus"], device="cpu")
    >>> plan = plan_run(model, [synthetic_nuclei((64, 64), n=3, seed=0)], TrainConfig(steps=120))
    >>> plan.epochs, plan.per_epoch, plan.freeze, plan.factor
    (3, 40, 'none', 1.0)
    """
    instances = [inst for _, inst in pairs]
    n_instances = sum(len(inst) for inst in instances)
    channels = config.channels if config.channels is not None else model.channels
    rescale = config.by_steps and config.size_norm
    factor, data_size = training_factor(model.object_size if rescale else None, instances)
    freeze = auto_freeze(n_instances) if config.freeze == "auto" else config.freeze
    if config.epochs is not None:
        n_images = math.ceil(len(pairs) / world_size)
        return Plan(
            config.epochs,
            math.ceil(n_images / config.batch_size),
            freeze,
            1.0,
            data_size,
            channels,
            n_instances,
            len(pairs),
        )
    chunks = math.ceil(config.steps / config.chunk_steps)
    per_chunk = math.ceil(config.steps / chunks)
    return Plan(chunks, per_chunk, freeze, factor, data_size, channels, n_instances, len(pairs))


def training_dataset(
    model: Model, pairs: list[Pair], config: TrainConfig, plan: Plan, world_size: int = 1
) -> TrainImages | CropImages:
    """The torch dataset of the run: whole images (epoch recipe) or crops (step recipe)."""
    normalization = model.meta.get("normalization")
    order = flip_order(model.meta.get("keypoints") or [])
    if config.epochs is not None:
        return TrainImages(
            pairs,
            normalization=normalization,
            label_ids=model.meta["label_ids"],
            augment=config.augment,
            scale_range=config.scale_range,
            seed=config.seed,
            channels=plan.channels,
            flip_order=order,
        )
    prepared = prepare_images(
        pairs,
        normalization=normalization,
        label_ids=model.meta["label_ids"],
        factor=plan.factor,
        channels=plan.channels,
        region=config.crop_region,
    )
    return CropImages(
        prepared,
        length=plan.per_epoch * config.batch_size * world_size,
        crop_size=config.crop_size,
        augment=config.augment,
        scale_range=config.scale_range,
        crop_on_objects=config.crop_on_objects,
        copy_paste=config.copy_paste,
        paste_max=config.paste_max,
        seed=config.seed,
        flip_order=order,
    )


def record_input(model: Model, plan: Plan) -> None:
    """Store the object sizes and channels the run trained with on ``model``.

    Trained at the model's object size (``factor != 1``, or the sizes agree): the model
    keeps ``object_size`` and gets the data's median as ``data_object_size``. Trained at
    the data's own scale: both become the data's median. Unknown data size: unchanged.
    """
    if plan.channels is not None:
        model.set_input(channels=plan.channels)
    size = plan.data_object_size
    if size is None:
        return
    if model.object_size is not None and plan.factor != 1.0:
        model.set_input(data_object_size=size)
    elif model.object_size is not None and math.isclose(model.object_size, size, rel_tol=1e-6):
        model.set_input(data_object_size=size)
    else:
        model.set_input(object_size=size, data_object_size=size)


def fit_time(
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    plan_chunks: int,
    done: int,
    elapsed_s: float,
    max_minutes: float | None,
) -> int:
    """The number of chunks that fit into ``max_minutes`` after ``done`` chunks took
    ``elapsed_s``; when fewer than ``plan_chunks``, the cosine schedule is shortened to end
    there (at least one more chunk runs if none is done yet)."""
    if max_minutes is None or done == 0 or not hasattr(scheduler, "lr_lambdas"):
        return plan_chunks
    per_chunk = elapsed_s / done
    fit = max(int((max_minutes * 60) // per_chunk), done)
    if fit >= plan_chunks:
        return plan_chunks
    for schedule in {id(f): f for f in scheduler.lr_lambdas}.values():  # groups share one
        if not isinstance(schedule, WarmupCosine):
            continue
        per = schedule.total // plan_chunks
        schedule.total = max(per * fit, 1)
        schedule.warmup = min(schedule.warmup, schedule.total // 3)
    logger.info("max_minutes: the run is shortened to %d of %d chunks", fit, plan_chunks)
    return fit


def keep_best(
    net: torch.nn.Module,
    config: TrainConfig,
    record: dict[str, Any],
    epoch: int,
    best: tuple[float, int, dict[str, torch.Tensor]] | None,
) -> tuple[float, int, dict[str, torch.Tensor]] | None:
    """The best ``(val mask AP50, epoch, weights)`` so far under ``select="best"``."""
    score = record.get("segm_AP50")
    if config.select != "best" or score is None:
        return best
    if best is None or score > best[0]:
        weights = {k: v.detach().clone() for k, v in net.state_dict().items()}
        return (float(score), epoch, weights)
    return best


def num_workers(config: TrainConfig) -> int:
    """Data loading processes: ``config.num_workers``, else 0 for the step recipe (its
    images are prepared in memory, crops are cheap) and ``min(2, cpu count)`` otherwise."""
    if config.num_workers is not None:
        return config.num_workers
    if config.by_steps:
        return 0
    return min(2, os.cpu_count() or 1)
