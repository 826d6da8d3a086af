"""`finetune`: fine-tune a Mask R-CNN on annotated images, from the data to the checkpoint.

The orchestration only: the plan (`recipe`), the data (`data`, `crops`, `augment`), the
heads (`heads`), the epoch and the schedule (`engine`), checkpoints and resuming (`state`)
and DDP (`distributed`) live in their own modules. SGD with linear warm-up and a cosine
schedule, the few-shot step recipe (crops around objects, copy-paste, object-size
normalisation) or the epoch recipe, mixed precision on CUDA, atomic checkpoints with
exact resume, and DistributedDataParallel when run under ``torchrun``.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..coco import Dataset
from ..instances import Instances
from ..io import read_image
from ..model import Model
from .config import CALIBRATION_IMAGES, TrainConfig, TrainResult, merge_config
from .crops import CropImages
from .data import (
    Keypoints,
    Pair,
    TrainImages,
    check_images,
    epoch_loader,
    resolve_data,
    resolve_val,
)
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
from .heads import class_mapping, fit_keypoints, freeze, pair_keypoints, relabel, with_classes
from .keypoint_loss import KeypointLoss, training_keypoint_loss
from .recipe import (
    Plan,
    fit_time,
    keep_best,
    num_workers,
    plan_run,
    record_input,
    training_dataset,
)
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
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    freeze: str | None = None,
    channels: int | Sequence[int] | None = None,
    keypoints: Sequence[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    config: TrainConfig | None = None,
    callback: Callable[[dict[str, Any]], bool | None] | None = None,
) -> TrainResult:
    """Fine-tune ``model`` on annotated images.

    By default this is the few-shot **step recipe** (`TrainConfig`): ``steps`` optimizer
    steps on random crops around the annotated objects, with copy-paste, flips, 90°
    rotations, scale and intensity jitter, at the model's object size, the freezing chosen
    from the amount of data. Two corrected images get as many steps as two hundred. Crops
    stay inside the annotated region of each image (`TrainConfig.crop_region`), so the
    unreviewed rest of a partly annotated image is never learnt as background. Giving
    ``epochs`` selects the epoch recipe of labelassist 1.x (whole images, no crops, no
    rescaling).

    **Keypoints** train with the masks when the model has a keypoint head
    (``load_model(None, classes=..., keypoints=[...])``, a keypoint checkpoint) or the
    data names keypoints (a `Dataset` or COCO file with ``keypoints``, a project of keypoint
    names, or ``keypoints=`` for a list of pairs): keypoint names the model lacks get new
    heatmaps in its keypoint head, a model without one gets torchvision's (untrained),
    as new classes get new rows. Every augmentation moves the keypoints with the pixels
    (crops, flips, 90° rotations, scale, size normalisation, copy-paste); a keypoint
    outside the crop or hidden by a pasted object gets visibility 0 (not labelled). A
    keypoint model trains ``steps * keypoint_steps`` steps (three times the budget by default)
    with ``keypoint_roi_samples`` RoIs per image, and a head attached here pools the box
    grown by ``keypoint_margin`` (`TrainConfig`); mask-only models are not affected.

    Why no training instances are held out to stop early when there is no ``val``: in
    Mask R-CNN, an object left out of the targets is a *background* example, so holding
    out instances of the one or two training images would teach the model to miss them,
    and the few left would give a noisy AP. The step budget and the cosine schedule are
    instead fixed by the domain benchmark (``bench/bench_domains.py``: AP no longer rises
    past the default budget). With ``val``, ``select="best"`` keeps the best chunk.

    Parameters
    ----------
    model : Model
        The starting point (``load_model("starter")``, a checkpoint, or
        ``load_model(None, classes=[...])`` for training from scratch). It is not
        modified: a copy is trained (with extended heads when the data brings new
        classes; a one-class model is renamed to one-class data, see
        `labelassist.train.heads.class_mapping`) and returned in the result.
    train : Dataset, COCO json path, or list of (image, Instances)
        Training images with their instances. Images are read with
        `labelassist.read_image` and converted like `Model.predict` does. In a list of
        pairs, images are arrays (H, W[, C]) or paths and labels index ``model.classes``.
        Every image is read once before training starts, so a missing or damaged file
        fails at once.
    val : Dataset or COCO json path, optional
        Held-out images; evaluated after every epoch or chunk (mask and box AP via
        COCOeval); with ``select="best"`` the best chunk's weights are returned.
    image_root : str or os.PathLike, optional
        Folder the ``file_name`` of ``train`` (and ``val``) resolve against; default: next
        to the json file.
    steps, epochs, batch_size, lr, freeze, channels : optional
        Shortcuts overriding the same fields of ``config`` (``epochs`` selects the epoch
        recipe).
    keypoints : sequence of str, optional
        For a list of pairs: the names of the columns of their (N, K, 3) ``keypoints``
        (default: the model's keypoints, in its order). A `Dataset` or COCO file brings
        its own names.
    out : str or os.PathLike, optional
        Folder for checkpoints: ``last.pt`` (the model, history in its metadata) and
        ``last.state.pt`` (optimizer, scheduler, scaler, epoch, RNG states; tensors and
        primitives only), both written atomically after every epoch or chunk; ``best.pt``
        when ``select="best"`` returned an earlier chunk.
    resume : bool
        Continue the run stored in ``out`` where it stopped (the model and optimizer state
        come from the checkpoint; ``model`` only supplies the device).
    progress : bool
        Show tqdm progress bars (rank 0 only under DDP).
    config : TrainConfig, optional
        All other settings.
    callback : callable, optional
        Called on rank 0 with each epoch's (chunk's) history record after its checkpoint
        is written; returning ``False`` stops training there (a GUI's cancel button). The
        run can be continued later with ``resume=True``.

    Returns
    -------
    TrainResult
        The trained model (with ``object_size``, ``data_object_size`` and ``channels``
        set, see `TrainConfig.size_norm`, and ``mask_threshold``, see
        `TrainConfig.mask_threshold`), the per-epoch history and the checkpoint path.

    Raises
    ------
    ValueError
        On an empty ``train``, bad settings, an image that cannot be read or whose size
        differs from its annotations, keypoints whose names are unknown or whose number
        differs from the names, ``resume`` without a checkpoint, or a resume state that is
        damaged or does not fit the run.
    FileNotFoundError
        When a COCO file or image files are missing (the message names them).
    FloatingPointError
        When the loss becomes non-finite.

    Examples
    --------
    >>> from labelassist import load_model, synthetic_nuclei
    >>> model = load_model(None, classes=["nucleus"], device="cpu")  # or "starter"
    >>> pairs = [synthetic_nuclei((64, 64), n=3, seed=0)]  # or a COCO json path
    >>> config = TrainConfig(steps=2, crop_size=64, roi_samples=32, rpn_proposals=100)
    >>> result = finetune(model, pairs, progress=False, config=config)
    >>> len(result.history), result.history[-1]["step"], result.model is model
    (1, 2, False)
    """
    config = merge_config(
        config,
        steps=steps,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        freeze=freeze,
        channels=channels,
    )
    _check_model(model)
    out_dir = _run_folder(out, resume)
    pairs, data_classes, data_points, val_data = _read_data(train, val, image_root)
    originals = pairs  # as read: the threshold is chosen on the user's own pixels
    data_points = pair_keypoints(keypoints, data_points, train)
    state = None
    if resume and out_dir is not None:
        model, state = read_resume(out_dir, model)
    with process_group(torch.device(model.device)) as group:
        model, pairs = _model_for_data(model, pairs, (data_classes, data_points), config, group)
        config = _keypoint_budget(model, config)
        run = _Run.start(model, pairs, config, group)
        is_main = group.main
        first, prior, history = _first_epoch(run, state, out_dir)
        limits = {"roi_samples": config.roi_samples, "rpn_proposals": config.rpn_proposals}
        with (
            training_sampling(run.net, **limits),
            training_keypoint_loss(run.net, config.keypoint_sigma) as run.keypoint_loss,
        ):
            checkpoint = _train_epochs(
                run, first, (prior, history), val_data, out_dir, callback, progress
            )
    set_history(model, prior + history, config)
    if checkpoint is None and out_dir is not None and (out_dir / CHECKPOINT).exists():
        checkpoint = out_dir / CHECKPOINT
    if _store_mask_threshold(model, originals, config) and checkpoint is not None and is_main:
        model.save(checkpoint)  # the checkpoint returned is the model returned
    return TrainResult(model=model, history=history, checkpoint=checkpoint)


def _store_mask_threshold(model: Model, pairs: list[Pair], config: TrainConfig) -> bool:
    """Set `TrainConfig.mask_threshold` on the trained ``model``; True if it changed.

    ``"auto"`` predicts the training images with the most instances (at most
    `CALIBRATION_IMAGES`) at each candidate threshold and keeps the one whose proposals
    most often match the annotations at IoU >= 0.9 (`choose_mask_threshold`); the
    training images are the only annotations a round has, and their outlines are the
    annotator's edge convention, which the threshold decides."""
    if config.mask_threshold is None:
        return False
    before = model.mask_threshold
    if config.mask_threshold == "auto":
        from ..fidelity import choose_mask_threshold

        ranked = sorted(pairs, key=lambda pair: -len(pair[1]))[:CALIBRATION_IMAGES]
        ranked = [
            (read_image(image) if isinstance(image, (str, os.PathLike)) else image, inst)
            for image, inst in ranked
            if len(inst)
        ]
        if not ranked:
            return False
        with warnings.catch_warnings():  # a missed object counts alike at every threshold
            warnings.filterwarnings("ignore", message=r".*the model's limit of \d+ detections")
            best, table = choose_mask_threshold(model, ranked)
        model.meta["mask_threshold_choice"] = {
            "images": len(ranked),
            "accepted": {str(t): round(f.accepted, 4) for t, f in table.items()},
        }
        logger.info(
            "mask threshold %.2f (was %.2f) chosen on %d training images", best, before, len(ranked)
        )
    else:
        best = float(config.mask_threshold)
    model.set_input(mask_threshold=best)
    return best != before


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
) -> tuple[list[Pair], list[str] | None, Keypoints | None, Dataset | None]:
    """Training pairs, their class names, keypoint names and skeleton, and the validation
    dataset, every image checked."""
    pairs, data_classes, data_points = resolve_data(train, image_root, "train")
    if not pairs:
        raise ValueError("train has no images; annotate (review) some images first")
    val_data = resolve_val(val, image_root)
    check_images(pairs, "train")
    if val_data is not None:
        check_images(resolve_data(val_data, None, "val")[0], "val")
    return pairs, data_classes, data_points, val_data


def _model_for_data(
    model: Model,
    pairs: list[Pair],
    data_names: tuple[list[str] | None, Keypoints | None],
    config: TrainConfig,
    group: Group,
) -> tuple[Model, list[Pair]]:
    """The copy of ``model`` to train, with heads for every data class and keypoint name,
    and the pairs relabelled to its classes, their keypoints in its keypoint order."""
    if group.device != model.device:  # cuda:LOCAL_RANK under DDP
        model.to(group.device)
    torch.manual_seed(config.seed)  # initial weights of new heads
    data_classes, data_points = data_names
    classes, mapping = class_mapping(model.classes, data_classes)
    return fit_keypoints(
        with_classes(model, classes),
        relabel(pairs, mapping),
        data_points,
        margin=config.keypoint_margin,
    )


def _keypoint_budget(model: Model, config: TrainConfig) -> TrainConfig:
    """``config`` with the step budget and RoI samples of a keypoint model in the step
    recipe (`TrainConfig.keypoint_steps`, ``keypoint_roi_samples``), recorded as plain
    ``steps`` and ``roi_samples`` so that the stored settings repeat the run."""
    from ..model.keypoints import has_keypoint_head  # heavy: torchvision

    if not config.by_steps or not has_keypoint_head(model.net):
        return config
    steps = max(1, round(config.steps * config.keypoint_steps))
    rois = config.keypoint_roi_samples or config.roi_samples
    return replace(
        config, steps=steps, keypoint_steps=1.0, roi_samples=rois, keypoint_roi_samples=None
    )


def _first_epoch(
    run: _Run, state: dict[str, Any] | None, out_dir: Path | None
) -> tuple[int, History, History]:
    """The epoch to start from, the history of earlier runs and of this run so far
    (restored from ``state`` when resuming); creates ``out_dir``."""
    first = 0
    prior: History = list(run.model.meta.get("history") or [])
    history: History = []
    if state is not None and out_dir is not None:
        first, prior, history = restore(state, run.optimisation, out_dir / STATE, run.plan.epochs)
    if out_dir is not None and run.group.main:
        out_dir.mkdir(parents=True, exist_ok=True)
    return first, prior, history


@dataclass
class _Run:
    """What one training run works on: the model, its network (DDP-wrapped for training),
    the frozen modules, optimizer/scheduler/scaler, the data and the plan."""

    model: Model
    net: MaskRCNN
    train_net: torch.nn.Module
    frozen: list[torch.nn.Module]
    optimisation: Optimisation
    dataset: TrainImages | CropImages
    sampler: Any
    config: TrainConfig
    group: Group
    plan: Plan
    keypoint_loss: KeypointLoss | None = None

    @classmethod
    def start(cls, model: Model, pairs: list[Pair], config: TrainConfig, group: Group) -> _Run:
        """Everything set up for epoch 0 (or for `restore`)."""
        world = max(group.world, 1)
        plan = plan_run(model, pairs, config, world)
        record_input(model, plan)
        if config.freeze == "auto":
            logger.info("freeze='auto': %r for %d instances", plan.freeze, plan.n_instances)
        # contiguous weights: prediction leaves them channels-last on the CPU (faster there
        # for inference, not for training)
        net = model.net.to(group.device).to(memory_format=torch.contiguous_format)
        frozen = freeze(net, plan.freeze)
        optimizer = build_optimizer(net, config)
        dataset = training_dataset(model, pairs, config, plan, world)
        sampler = distributed_sampler(dataset, group, config.seed)
        scheduler = build_scheduler(optimizer, config, plan.iterations)
        amp = bool(config.amp and group.device.type == "cuda")
        scaler = torch.amp.GradScaler(group.device.type, enabled=amp)
        train_net = wrap_ddp(net, group)
        optimisation = (optimizer, scheduler, scaler)
        return cls(
            model, net, train_net, frozen, optimisation, dataset, sampler, config, group, plan
        )


def _train_epochs(
    run: _Run,
    first: int,
    histories: tuple[History, History],
    val: Dataset | None,
    out_dir: Path | None,
    callback: Callable[[dict[str, Any]], bool | None] | None,
    progress: bool,
) -> Path | None:
    """Train the epochs (chunks) from ``first`` on, validate and checkpoint after each;
    return the checkpoint of the returned weights.

    Appends each epoch's record to ``histories[1]``; leaves the network in eval mode with
    the weights `TrainConfig.select` chose."""
    prior, history = histories
    main = run.group.main
    checkpoint = None
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    planned = run.plan.epochs
    t0 = time.perf_counter()
    try:
        epoch = first
        while epoch < planned:
            record = _train_epoch(run, epoch, progress=progress and main)
            if val is not None and main:
                record.update(validate(run.model, val, run.config))
                best = keep_best(run.net, run.config, record, epoch, best)
            history.append(record)
            logger.info("epoch %d: %s", epoch + 1, format_record(record))
            if out_dir is not None and main:
                checkpoint = write_checkpoint(
                    out_dir, run.model, (prior, history), run.config, epoch + 1, run.optimisation
                )
            epoch += 1
            if stop_requested(callback, record, run.group):
                logger.info("training stopped by the callback after epoch %d", epoch)
                break
            if run.config.by_steps and run.group.world == 1:  # ranks must agree: no cap
                elapsed = time.perf_counter() - t0
                planned = fit_time(
                    run.optimisation[1], planned, epoch - first, elapsed, run.config.max_minutes
                )
    finally:
        run.net.eval()
    if best is not None and best[1] != epoch - 1:
        run.net.load_state_dict(best[2])
        run.model.meta["selected_epoch"] = best[1] + 1
        logger.info("select='best': the weights of epoch %d (chunk) are returned", best[1] + 1)
        if out_dir is not None and main:
            set_history(run.model, prior + history, run.config)
            checkpoint = out_dir / "best.pt"
            run.model.save(checkpoint)
    return checkpoint


def _train_epoch(run: _Run, epoch: int, *, progress: bool) -> dict[str, Any]:
    """One epoch (chunk); its history record (without validation metrics)."""
    t0 = time.perf_counter()
    config, device = run.config, run.group.device
    # every epoch is seeded from (seed, epoch): a resumed run repeats a straight one
    torch.manual_seed(mix_seed(config.seed, epoch, run.group.rank))
    loader = epoch_loader(
        run.dataset,
        batch_size=config.batch_size,
        num_workers=num_workers(config),
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
        loss_weights={"loss_keypoint": config.keypoint_weight},
        keypoint_loss=run.keypoint_loss,
    )
    sync_buffers(run.net, run.group)
    record: dict[str, Any] = {
        "epoch": epoch + 1,
        "step": (epoch + 1) * run.plan.per_epoch,
        **stats,
        "n_train_images": run.plan.n_images,
        "freeze": run.plan.freeze,
    }
    record["time_s"] = round(time.perf_counter() - t0, 3)
    return record
