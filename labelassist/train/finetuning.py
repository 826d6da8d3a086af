"""`finetune`: fine-tune a Mask R-CNN on annotated images, from the data to the checkpoint.

The orchestration only: the data (`data`, `augment`), the heads (`heads`), the epoch and
the schedule (`engine`), checkpoints and resuming (`state`) and DDP (`distributed`) live
in their own modules. SGD with linear warm-up and a cosine schedule, augmentation for
microscopy, mixed precision on CUDA, atomic per-epoch checkpoints with exact resume, and
DistributedDataParallel when run under ``torchrun``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..coco import Dataset
from ..instances import Instances
from ..model import Model
from .config import TrainConfig, TrainResult, merge_config
from .data import Pair, TrainImages, check_images, epoch_loader, resolve_data, resolve_val
from .distributed import Group, distributed_sampler, process_group, stop_requested, sync_buffers
from .distributed import wrap as wrap_ddp
from .engine import (
    build_optimizer,
    build_scheduler,
    format_record,
    train_one_epoch,
    training_sampling,
    validate,
)
from .heads import class_mapping, freeze, relabel, with_classes
from .state import (
    CHECKPOINT,
    STATE,
    Optimisation,
    mix_seed,
    read_resume,
    restore,
    set_history,
    write_checkpoint,
)

if TYPE_CHECKING:  # pragma: no cover - torchvision is untyped (Any) for mypy
    from torchvision.models.detection import MaskRCNN

__all__ = ["finetune"]

logger = logging.getLogger(__name__)

History = list[dict[str, Any]]


def finetune(
    model: Model,
    train: Dataset | str | os.PathLike[str] | Sequence[tuple[Any, Instances]],
    *,
    val: Dataset | str | os.PathLike[str] | None = None,
    image_root: str | os.PathLike[str] | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    freeze: str | None = None,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    config: TrainConfig | None = None,
    callback: Callable[[dict[str, Any]], bool | None] | None = None,
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
        Every image is read once before training starts, so a missing or damaged file
        fails at once.
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
        come from the checkpoint; ``model`` only supplies the device).
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
        On an empty ``train``, bad settings, an image that cannot be read or whose size
        differs from its annotations, ``resume`` without a checkpoint, or a resume state
        that is damaged or does not fit the run.
    FileNotFoundError
        When a COCO file or image files are missing (the message names them).
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
    config = merge_config(config, epochs=epochs, batch_size=batch_size, lr=lr, freeze=freeze)
    _check_model(model)
    out_dir = _run_folder(out, resume)
    pairs, data_classes, val_data = _read_data(train, val, image_root)
    state = None
    if resume and out_dir is not None:
        model, state = read_resume(out_dir, model)
    with process_group(torch.device(model.device)) as group:
        model, pairs = _model_for_data(model, pairs, data_classes, config, group)
        run = _Run.start(model, pairs, config, group)
        first, prior, history = _first_epoch(run, state, out_dir)
        limits = {"roi_samples": config.roi_samples, "rpn_proposals": config.rpn_proposals}
        with training_sampling(run.net, **limits):
            epochs_left = range(first, config.epochs)
            checkpoint = _train_epochs(
                run, epochs_left, (prior, history), val_data, out_dir, callback, progress
            )
    set_history(model, prior + history, config)
    if checkpoint is None and out_dir is not None and (out_dir / CHECKPOINT).exists():
        checkpoint = out_dir / CHECKPOINT
    return TrainResult(model=model, history=history, checkpoint=checkpoint)


def _check_model(model: Any) -> None:
    if not hasattr(model, "net") or not hasattr(model, "classes"):
        raise TypeError(
            f"model must be a labelassist Model (load_model(...)), got {type(model).__name__}"
        )


def _run_folder(out: str | os.PathLike[str] | None, resume: bool) -> Path | None:
    if resume and out is None:
        raise ValueError("resume=True needs out=<folder of the run to resume>")
    return Path(out) if out is not None else None


def _read_data(
    train: Any, val: Any, image_root: str | os.PathLike[str] | None
) -> tuple[list[Pair], list[str] | None, Dataset | None]:
    """Training pairs, their class names and the validation dataset, every image checked."""
    pairs, data_classes = resolve_data(train, image_root, "train")
    if not pairs:
        raise ValueError("train has no images; annotate (review) some images first")
    val_data = resolve_val(val, image_root)
    check_images(pairs, "train")
    if val_data is not None:
        check_images(resolve_data(val_data, None, "val")[0], "val")
    return pairs, data_classes, val_data


def _model_for_data(
    model: Model,
    pairs: list[Pair],
    data_classes: list[str] | None,
    config: TrainConfig,
    group: Group,
) -> tuple[Model, list[Pair]]:
    """The copy of ``model`` to train, with heads for every data class, and the pairs
    relabelled to its classes."""
    if group.device != model.device:  # cuda:LOCAL_RANK under DDP
        model.to(group.device)
    torch.manual_seed(config.seed)  # initial weights of new heads
    classes, mapping = class_mapping(model.classes, data_classes)
    return with_classes(model, classes), relabel(pairs, mapping)


def _first_epoch(
    run: _Run, state: dict[str, Any] | None, out_dir: Path | None
) -> tuple[int, History, History]:
    """The epoch to start from, the history of earlier runs and of this run so far
    (restored from ``state`` when resuming); creates ``out_dir``."""
    first = 0
    prior: History = list(run.model.meta.get("history") or [])
    history: History = []
    if state is not None and out_dir is not None:
        first, prior, history = restore(state, run.optimisation, out_dir / STATE, run.config.epochs)
    if out_dir is not None and run.group.main:
        out_dir.mkdir(parents=True, exist_ok=True)
    return first, prior, history


@dataclass
class _Run:
    """What one training run works on: the model, its network (DDP-wrapped for training),
    the frozen modules, optimizer/scheduler/scaler and the data."""

    model: Model
    net: MaskRCNN
    train_net: torch.nn.Module
    frozen: list[torch.nn.Module]
    optimisation: Optimisation
    dataset: TrainImages
    sampler: Any
    config: TrainConfig
    group: Group

    @classmethod
    def start(cls, model: Model, pairs: list[Pair], config: TrainConfig, group: Group) -> _Run:
        """Everything set up for epoch 0 (or for `restore`)."""
        # contiguous weights: prediction leaves them channels-last on the CPU (faster there
        # for inference, not for training)
        net = model.net.to(group.device).to(memory_format=torch.contiguous_format)
        frozen = freeze(net, config.freeze)
        optimizer = build_optimizer(net, config)
        dataset = TrainImages(
            pairs,
            normalization=model.meta.get("normalization"),
            label_ids=model.meta["label_ids"],
            augment=config.augment,
            scale_range=config.scale_range,
            seed=config.seed,
        )
        sampler = distributed_sampler(dataset, group, config.seed)
        n_images = len(sampler) if sampler is not None else len(dataset)
        per_epoch = math.ceil(n_images / config.batch_size)
        scheduler = build_scheduler(optimizer, config, per_epoch * config.epochs)
        amp = bool(config.amp and group.device.type == "cuda")
        scaler = torch.amp.GradScaler(group.device.type, enabled=amp)
        train_net = wrap_ddp(net, group)
        optimisation = (optimizer, scheduler, scaler)
        return cls(model, net, train_net, frozen, optimisation, dataset, sampler, config, group)


def _train_epochs(
    run: _Run,
    epochs: range,
    histories: tuple[History, History],
    val: Dataset | None,
    out_dir: Path | None,
    callback: Callable[[dict[str, Any]], bool | None] | None,
    progress: bool,
) -> Path | None:
    """Train ``epochs``, validate and checkpoint after each; return the last checkpoint.

    Appends each epoch's record to ``histories[1]``; leaves the network in eval mode."""
    prior, history = histories
    main = run.group.main
    checkpoint = None
    try:
        for epoch in epochs:
            record = _train_epoch(run, epoch, progress=progress and main)
            if val is not None and main:
                record.update(validate(run.model, val, run.config))
            history.append(record)
            logger.info("epoch %d: %s", epoch + 1, format_record(record))
            if out_dir is not None and main:
                checkpoint = write_checkpoint(
                    out_dir, run.model, (prior, history), run.config, epoch + 1, run.optimisation
                )
            if stop_requested(callback, record, run.group):
                logger.info("training stopped by the callback after epoch %d", epoch + 1)
                break
    finally:
        run.net.eval()
    return checkpoint


def _train_epoch(run: _Run, epoch: int, *, progress: bool) -> dict[str, Any]:
    """One epoch; its history record (without validation metrics)."""
    t0 = time.perf_counter()
    config, device = run.config, run.group.device
    # every epoch is seeded from (seed, epoch): a resumed run repeats a straight one
    torch.manual_seed(mix_seed(config.seed, epoch, run.group.rank))
    loader = epoch_loader(
        run.dataset,
        batch_size=config.batch_size,
        num_workers=_num_workers(config),
        seed=config.seed,
        epoch=epoch,
        sampler=run.sampler,
        pin_memory=device.type == "cuda",
    )
    optimizer, scheduler, scaler = run.optimisation
    stats = train_one_epoch(
        run.train_net,
        optimizer,
        loader,
        device=device,
        epoch=epoch,
        scheduler=scheduler,
        scaler=scaler,
        clip_grad_norm=config.clip_grad_norm,
        frozen=run.frozen,
        progress=progress,
    )
    sync_buffers(run.net, run.group)
    record: dict[str, Any] = {"epoch": epoch + 1, **stats, "n_train_images": len(run.dataset)}
    record["time_s"] = round(time.perf_counter() - t0, 3)
    return record


def _num_workers(config: TrainConfig) -> int:
    if config.num_workers is not None:
        return config.num_workers
    return min(2, os.cpu_count() or 1)
