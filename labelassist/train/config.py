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

__all__ = ["FREEZE_CHOICES", "TrainConfig", "TrainResult", "json_config", "merge_config"]

#: Values of `TrainConfig.freeze`: which part of the network is not trained.
FREEZE_CHOICES = ("none", "backbone", "features", "heads")


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

    Raises
    ------
    ValueError
        On a value out of range or of the wrong type; the message names the field.

    Examples
    --------
    >>> TrainConfig(epochs=2, lr=0.01).batch_size
    4
    >>> TrainConfig(freeze="all")
    Traceback (most recent call last):
    ...
    ValueError: freeze must be one of ['none', 'backbone', 'features', 'heads'], got 'all'
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
        self.epochs = check_int(self.epochs, "epochs", minimum=1)
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
        self.num_workers = check_int(self.num_workers, "num_workers", minimum=0, allow_none=True)
        self.seed = check_int(self.seed, "seed")
        if not isinstance(self.amp, bool):
            raise ValueError(f"amp must be True or False, got {self.amp!r}")
        if self.clip_grad_norm is not None:
            self.clip_grad_norm = _positive(self.clip_grad_norm, "clip_grad_norm", none=True)
        self.val_score_threshold = check_number(
            self.val_score_threshold, "val_score_threshold", minimum=0, maximum=1
        )
        self.roi_samples = check_int(self.roi_samples, "roi_samples", minimum=1, allow_none=True)
        self.rpn_proposals = check_int(
            self.rpn_proposals, "rpn_proposals", minimum=1, allow_none=True
        )


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
    >>> merge_config(TrainConfig(lr=0.01), epochs=3, lr=None).epochs
    3
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
    >>> json_config(TrainConfig())["scale_range"]
    [0.75, 1.33]
    """
    out = asdict(config)
    out["scale_range"] = list(config.scale_range)
    return out
