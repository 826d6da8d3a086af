"""Fine-tuning Mask R-CNN on corrected annotations (`finetune`, `TrainConfig`, `TrainResult`).

The package follows torchvision's ``references/detection``:

========================  ====================================================================
``config.py``             `TrainConfig`, `TrainResult`, `FREEZE_CHOICES` (plain data, no torch)
``recipe.py``             the plan of a run: step or epoch recipe, chunks, auto freeze, sizes
``data.py``               training pairs from a Dataset/COCO file, image checks, torch dataset
``crops.py``              the step recipe's data: crops around objects, copy-paste
``paste.py``              copy-paste: pasted objects with masks and keypoints, occlusion
``augment.py``            flips (left/right keypoints swapped), rotations, scale, intensity
``keypoint_loss.py``      the Gaussian keypoint heatmap loss and its training hooks
``heads.py``              predictors extended for new classes (or renamed), freezing
``engine.py``             `train_one_epoch`, optimizer, LR schedule, validation
``state.py``              checkpoints, resuming, seeds and RNG state
``distributed.py``        DistributedDataParallel (torchrun) helpers
``finetuning.py``         `finetune`, which strings them together
========================  ====================================================================

`TrainConfig` is imported without torch (a GUI or a command line can build and check one
first); `finetune` and `train_one_epoch` import torch when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import FREEZE_CHOICES, TrainConfig, TrainResult

if TYPE_CHECKING:  # pragma: no cover - the torch modules, for type checkers only
    from .engine import train_one_epoch
    from .finetuning import finetune

__all__ = ["FREEZE_CHOICES", "TrainConfig", "TrainResult", "finetune", "train_one_epoch"]


def __getattr__(name: str) -> Any:
    """`finetune` and `train_one_epoch`, imported on first use (they import torch)."""
    if name == "finetune":
        from .finetuning import finetune  # heavy: torch

        return finetune
    if name == "train_one_epoch":
        from .engine import train_one_epoch  # heavy: torch

        return train_one_epoch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
