"""Fine-tuning Mask R-CNN on corrected annotations (`finetune`, `TrainConfig`, `TrainResult`).

The package follows torchvision's ``references/detection``:

========================  ====================================================================
``config.py``             `TrainConfig`, `TrainResult`, `FREEZE_CHOICES` (plain data, no torch)
``data.py``               training pairs from a Dataset/COCO file, image checks, torch dataset
``augment.py``            flips, rotations, scale and intensity jitter
``heads.py``              predictors extended for new classes, freezing
``engine.py``             `train_one_epoch`, optimizer, LR schedule, validation
``state.py``              checkpoints, resuming, seeds and RNG state
``distributed.py``        DistributedDataParallel (torchrun) helpers
``finetuning.py``         `finetune`, which strings them together
========================  ====================================================================
"""

from .config import FREEZE_CHOICES, TrainConfig, TrainResult
from .engine import train_one_epoch
from .finetuning import finetune

__all__ = ["FREEZE_CHOICES", "TrainConfig", "TrainResult", "finetune", "train_one_epoch"]
