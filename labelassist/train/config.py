"""Settings and result of a training run: `TrainConfig`, `TrainResult`, `FREEZE_CHOICES`.

Everything here is plain data (no torch), so that a GUI or a command line can build and
validate a configuration before the heavy modules are imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checks import check_choice, check_int, check_number

if TYPE_CHECKING:  # pragma: no cover - the model package imports torch
    from ..model import Model

__all__ = [
    "AUTO_FREEZE_INSTANCES",
    "CALIBRATION_IMAGES",
    "FREEZE_CHOICES",
    "REGION_CHOICES",
    "SELECT_CHOICES",
    "TrainConfig",
    "TrainResult",
    "auto_freeze",
    "json_config",
    "merge_config",
]

#: Values of `TrainConfig.freeze`: which part of the network is not trained (``"auto"``:
#: chosen from the amount of training data, see `auto_freeze`).
FREEZE_CHOICES = ("auto", "none", "backbone", "features", "heads")

#: Values of `TrainConfig.crop_region`: where the crops of the step recipe may lie.
REGION_CHOICES = ("annotated", "image")

#: Values of `TrainConfig.select`: which weights a run returns.
SELECT_CHOICES = ("last", "best")

#: `auto_freeze`: with fewer training instances than this, the backbone body is frozen.
AUTO_FREEZE_INSTANCES = 0

#: ``mask_threshold="auto"`` chooses the threshold on at most this many training images.
CALIBRATION_IMAGES = 4


@dataclass
class TrainConfig:
    """Settings of `finetune`; every field is JSON-able and stored in the checkpoint.

    Two recipes share these settings. The default, the **step recipe** for few-shot
    rounds, trains a budget of optimizer ``steps`` on random crops around the annotated
    objects (with copy-paste, flips, 90° rotations, scale and intensity jitter), at the
    model's object size. Giving ``epochs`` selects the **epoch recipe** of labelassist
    1.x: passes over the whole images with the `augment` pipeline, no crops, no
    copy-paste, no rescaling (two images are then only a few steps: use it for large
    datasets or to repeat an old run; labelassist 1.x also used ``batch_size=4, lr=0.02``).

    Parameters
    ----------
    epochs : int or None
        None (default): the step recipe. An int: that many passes over the whole images
        (the epoch recipe).
    steps : int
        Optimizer steps of the step recipe, however many images there are (two images
        still get hundreds of steps).
    max_minutes : float or None
        Time cap of the step recipe: after each chunk of ``chunk_steps``, when the chunks
        left would end after this many minutes, the schedule is shortened so the run ends
        in time (cosine decay finished). None: no cap (a run then repeats exactly).
    chunk_steps : int
        Steps per history record, checkpoint and callback call of the step recipe (an
        "epoch" of the step recipe; ``steps`` is rounded up to whole equal chunks).
    batch_size : int
        Images (crops) per optimizer step (per process under DDP).
    lr : float
        Peak learning rate of SGD (reached after ``warmup_iters``). 0.005 for batches of 2
        (torchvision's 0.02 for 16 images, scaled; 0.02 made the starter forget nuclei).
    momentum, weight_decay : float
        SGD settings (weight decay is not applied to norm layers and biases).
    warmup_iters : int
        Iterations of linear warm-up from ``lr * warmup_factor`` (capped at a third of
        all iterations for short runs).
    warmup_factor : float
        Start of the warm-up as a fraction of ``lr``.
    final_lr_factor : float
        The cosine schedule ends at ``lr * final_lr_factor``.
    freeze : {"auto", "none", "backbone", "features", "heads"}
        ``"backbone"`` freezes the backbone body (the FPN still trains), ``"features"``
        the whole backbone including the FPN, ``"heads"`` everything except the box and
        mask predictors; ``"auto"`` chooses from the number of training instances
        (`auto_freeze`).
    augment : float
        Augmentation strength, 0 (off) to 1 (full); ``True`` means 1.
    scale_range : tuple of float
        Scale jitter range at full strength.
    crop_size : int or None
        Side of the square training crops of the step recipe, in the network's pixels
        (after size normalisation). None: whole images.
    crop_on_objects : float
        Fraction of crops centred on a random annotated object (jittered by up to a
        quarter crop); the others are placed uniformly in the crop region.
    crop_region : {"annotated", "image"}
        Where crops may lie. ``"annotated"``: within the bounding box of the image's
        annotated instances grown by one median object size on each side, because the
        rest of a partly annotated image was not reviewed and must not be learnt as
        background; an image reviewed as empty (no instances) is used whole.
        ``"image"``: anywhere in the image.
    copy_paste : float
        Probability that a crop receives copy-paste augmentation (Ghiasi et al., "Simple
        Copy-Paste", CVPR 2021): annotated instances of any training image pasted with
        their exact masks (the parts they hide are removed from the masks below). 0: off.
    paste_max : int
        Most instances pasted into one crop.
    size_norm : bool
        Train at the model's object size: images and instances are rescaled by
        ``model.object_size / median object size of the training instances`` (clipped,
        `labelassist.model.scale.scale_factor`). The trained model stores that median as
        ``data_object_size``. A model without ``object_size`` is not rescaled; it gets the
        data's median as both sizes. The epoch recipe never rescales.
    channels : tuple of int or None
        Input channels picked from multichannel images (see
        `labelassist.model.normalize.select_channels`), stored with the trained model as
        ``model.channels``. None: the model's ``channels`` (if any), else the image as it is.
    select : {"last", "best"}
        Which weights the run returns. ``"best"``: with ``val`` given to `finetune`, the
        weights of the chunk (epoch) with the best validation mask AP50; without ``val``
        the last (see `finetune` for why no training instances are held out).
    num_workers : int or None
        Data loading processes; None means ``min(2, cpu count)`` for the epoch recipe and
        0 for the step recipe (its images are prepared in memory once).
    seed : int
        Seeds weights of new heads, shuffling, augmentation and sampling. Every epoch
        (chunk) is re-seeded from ``(seed, epoch)`` so a resumed run repeats a straight one.
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
    keypoint_weight : float
        Weight of the keypoint loss (``loss_keypoint``) in the sum that is minimised, when
        the model has a keypoint head (torchvision: 1).
    keypoint_lr_factor : float
        The keypoint head (``roi_heads.keypoint_head`` and ``keypoint_predictor``) trains at
        ``lr`` times this (a head new to the model may learn faster than the rest).
    keypoint_steps : float
        The step budget of a model that trains a keypoint head is ``steps`` times this
        (the keypoint head, new to the model and trained from a one-pixel target, learns
        more slowly than the masks; 3: 600 steps for the default ``steps``); models without
        keypoints train ``steps``. The run
        records ``steps`` as the budget it trained, and this factor as 1.
    keypoint_roi_samples : int or None
        ``roi_samples`` of the step recipe when the model trains a keypoint head (the
        keypoint head learns from the positive RoIs, a quarter of the samples: 128 gives
        it 32 per image); None: ``roi_samples``. Recorded as ``roi_samples``, like
        ``keypoint_steps``.
    keypoint_margin : float
        A keypoint head that `finetune` attaches (the model had none) pools its RoI from
        the box grown by this fraction of its longer side on every side
        (`labelassist.model.keypoints.attach_keypoint_head`): keypoints at an object's ends
        lie on its box's edge and a slightly short box would cut them off. 0:
        torchvision's RoI. A model's existing keypoint head keeps its own.
    keypoint_sigma : float
        The keypoint heatmap target: a Gaussian of this many heatmap cells (a cell is
        1/56 of the RoI's width and height) around each keypoint, trained with a soft
        cross-entropy (`labelassist.train.keypoint_loss`); 0: torchvision's one-hot cell.
    mask_threshold : float, None or "auto"
        The mask threshold the trained model stores (`labelassist.Model.mask_threshold`,
        the default of its `predict` and `segment`). A number: that value; the default 0.5
        is the probability at which a round teaches the mask head your outlines (binary
        cross-entropy on them), and measured best after a round on three of four new
        modalities (the starter's own 0.6 was chosen for nuclei as they are; see
        bench/results_fidelity.md). None: the model's, unchanged. ``"auto"``: after
        training, the one whose proposals on the training images (up to
        `CALIBRATION_IMAGES` of them, those with the most instances) most often match the
        annotations at IoU >= 0.9 (`labelassist.fidelity.choose_mask_threshold`); the
        trained network fits its training images' edges near 0.5, so this measured no gain
        on held-out images.

    Raises
    ------
    ValueError
        On a value out of range or of the wrong type; the message names the field.

    Examples
    --------
    >>> config = TrainConfig()
    >>> config.epochs is None, config.steps, config.freeze
    (True, 200, 'auto')
    >>> TrainConfig(freeze="all")
    Traceback (most recent call last):
    ...
    ValueError: freeze must be one of ['auto', 'none', 'backbone', 'features', 'heads'], got 'all'
    """

    epochs: int | None = None
    steps: int = 200
    max_minutes: float | None = None
    chunk_steps: int = 50
    batch_size: int = 2
    lr: float = 0.005
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 50
    warmup_factor: float = 0.001
    final_lr_factor: float = 0.05
    freeze: str = "auto"
    augment: float = 1.0
    scale_range: tuple[float, float] = (0.75, 1.33)
    crop_size: int | None = 192
    crop_on_objects: float = 0.8
    crop_region: str = "annotated"
    copy_paste: float = 0.5
    paste_max: int = 8
    size_norm: bool = True
    channels: tuple[int, ...] | None = None
    select: str = "best"
    num_workers: int | None = None
    seed: int = 0
    amp: bool = True
    clip_grad_norm: float | None = 10.0
    val_score_threshold: float = 0.05
    roi_samples: int | None = 64
    rpn_proposals: int | None = 300
    keypoint_weight: float = 1.0
    keypoint_lr_factor: float = 1.0
    keypoint_steps: float = 3.0
    keypoint_roi_samples: int | None = 128
    keypoint_margin: float = 0.1
    keypoint_sigma: float = 0.0
    mask_threshold: float | str | None = 0.5

    def __post_init__(self) -> None:
        self.epochs = check_int(self.epochs, "epochs", minimum=1, allow_none=True)
        self.steps = check_int(self.steps, "steps", minimum=1)
        if self.max_minutes is not None:
            self.max_minutes = _positive(self.max_minutes, "max_minutes", none=True)
        self.chunk_steps = check_int(self.chunk_steps, "chunk_steps", minimum=1)
        self.batch_size = check_int(self.batch_size, "batch_size", minimum=1)
        self.lr = _positive(self.lr, "lr")
        self.momentum = check_number(self.momentum, "momentum", minimum=0, maximum=1)
        self.weight_decay = check_number(self.weight_decay, "weight_decay", minimum=0)
        self.warmup_iters = check_int(self.warmup_iters, "warmup_iters", minimum=0)
        self.warmup_factor = check_number(self.warmup_factor, "warmup_factor", minimum=0, maximum=1)
        self.final_lr_factor = check_number(
            self.final_lr_factor, "final_lr_factor", minimum=0, maximum=1
        )
        check_choice(self.freeze, "freeze", FREEZE_CHOICES)
        self.augment = _strength(self.augment)
        self.scale_range = _scale_range(self.scale_range)
        self.crop_size = check_int(self.crop_size, "crop_size", minimum=32, allow_none=True)
        self.crop_on_objects = check_number(
            self.crop_on_objects, "crop_on_objects", minimum=0, maximum=1
        )
        check_choice(self.crop_region, "crop_region", REGION_CHOICES)
        self.copy_paste = check_number(self.copy_paste, "copy_paste", minimum=0, maximum=1)
        self.paste_max = check_int(self.paste_max, "paste_max", minimum=1)
        self.size_norm = _flag(self.size_norm, "size_norm")
        self.channels = _channels(self.channels)
        check_choice(self.select, "select", SELECT_CHOICES)
        self.num_workers = check_int(self.num_workers, "num_workers", minimum=0, allow_none=True)
        self.seed = check_int(self.seed, "seed")
        self.amp = _flag(self.amp, "amp")
        if self.clip_grad_norm is not None:
            self.clip_grad_norm = _positive(self.clip_grad_norm, "clip_grad_norm", none=True)
        self.val_score_threshold = check_number(
            self.val_score_threshold, "val_score_threshold", minimum=0, maximum=1
        )
        self.roi_samples = check_int(self.roi_samples, "roi_samples", minimum=1, allow_none=True)
        self.rpn_proposals = check_int(
            self.rpn_proposals, "rpn_proposals", minimum=1, allow_none=True
        )
        self.keypoint_weight = float(
            check_number(self.keypoint_weight, "keypoint_weight", minimum=0)
        )
        self.keypoint_lr_factor = _positive(self.keypoint_lr_factor, "keypoint_lr_factor")
        self.keypoint_steps = _positive(self.keypoint_steps, "keypoint_steps")
        self.keypoint_roi_samples = check_int(
            self.keypoint_roi_samples, "keypoint_roi_samples", minimum=1, allow_none=True
        )
        self.keypoint_margin = float(
            check_number(self.keypoint_margin, "keypoint_margin", minimum=0, maximum=1)
        )
        self.keypoint_sigma = float(check_number(self.keypoint_sigma, "keypoint_sigma", minimum=0))
        self.mask_threshold = _mask_threshold(self.mask_threshold)

    @property
    def by_steps(self) -> bool:
        """True for the step recipe (``epochs`` is None).

        Examples
        --------
        >>> TrainConfig().by_steps, TrainConfig(epochs=3).by_steps
        (True, False)
        """
        return self.epochs is None


def _mask_threshold(value: Any) -> float | str | None:
    if value is None or value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(
            f"mask_threshold must be 'auto', None or a probability within (0, 1), got {value!r}"
        )
    return float(value)


def auto_freeze(n_instances: int) -> str:
    """The ``freeze`` mode ``"auto"`` stands for, given the number of training instances.

    With fewer than `AUTO_FREEZE_INSTANCES` instances the backbone body is frozen (too
    little data to move features learnt on many images); otherwise nothing is frozen.

    Examples
    --------
    >>> auto_freeze(10_000)
    'none'
    """
    return "backbone" if n_instances < AUTO_FREEZE_INSTANCES else "none"


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def _channels(channels: Any) -> tuple[int, ...] | None:
    """1 to 3 distinct channel indices >= 0 as a tuple (an int is one channel), or None."""
    if channels is None:
        return None
    message = (
        "channels must be 1, 2 or 3 distinct channel indices >= 0 (e.g. (1, 2) for "
        f"cytoplasm + nucleus) or None, got {channels!r}"
    )
    picked = (
        [channels] if isinstance(channels, int) and not isinstance(channels, bool) else channels
    )
    if isinstance(picked, (str, bytes)) or not isinstance(picked, Sequence):
        raise ValueError(message)
    ok = all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in picked)
    if not (ok and 1 <= len(picked) <= 3 and len(set(picked)) == len(picked)):
        raise ValueError(message)
    return tuple(int(c) for c in picked)


def _positive(value: Any, name: str, *, none: bool = False) -> float:
    """A finite number > 0, as float."""
    try:
        out = check_number(value, name, minimum=0)
    except ValueError:
        out = 0.0
    if out <= 0:
        alternative = " or None" if none else ""
        raise ValueError(f"{name} must be a positive finite number{alternative}, got {value!r}")
    return float(out)


def _strength(augment: Any) -> float:
    """``augment`` as a float in [0, 1] (``True`` is 1, ``False`` is 0)."""
    if isinstance(augment, bool):
        return 1.0 if augment else 0.0
    try:
        return float(check_number(augment, "augment", minimum=0, maximum=1))
    except ValueError:
        raise ValueError(f"augment must be within [0, 1] (or a bool), got {augment!r}") from None


def _scale_range(scale_range: Any) -> tuple[float, float]:
    """``(low <= 1, high >= 1)`` with ``low > 0``, as a tuple of floats."""
    message = f"scale_range must be (low <= 1, high >= 1) with low > 0, got {scale_range!r}"
    if isinstance(scale_range, (str, bytes)) or not isinstance(scale_range, Sequence):
        raise ValueError(message)
    if len(scale_range) != 2:
        raise ValueError(message)
    try:
        lo, hi = (check_number(v, "scale_range") for v in scale_range)
    except ValueError:
        raise ValueError(message) from None
    if not 0 < lo <= 1 <= hi:
        raise ValueError(message)
    return (float(lo), float(hi))


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
    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Path | None = None


def merge_config(config: TrainConfig | None, **overrides: Any) -> TrainConfig:
    """A new `TrainConfig`: ``config`` (default settings if None) with the ``overrides``
    that are not None.

    Examples
    --------
    >>> merge_config(TrainConfig(lr=0.01), steps=30, lr=None).steps
    30
    """
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    config = config if config is not None else TrainConfig()
    changes = {k: v for k, v in overrides.items() if v is not None}
    return replace(config, **changes)


def json_config(config: TrainConfig) -> dict[str, Any]:
    """``config`` as a JSON-able dict (as stored in checkpoints).

    Examples
    --------
    >>> json_config(TrainConfig(channels=(1, 2)))["channels"]
    [1, 2]
    """
    out = asdict(config)
    out["scale_range"] = list(config.scale_range)
    out["channels"] = None if config.channels is None else list(config.channels)
    return out
