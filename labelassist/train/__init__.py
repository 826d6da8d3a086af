"""Fine-tuning Mask R-CNN on corrected annotations (`finetune`, `TrainConfig`, `TrainResult`)."""

from .loop import FREEZE_CHOICES, TrainConfig, TrainResult, finetune, train_one_epoch

__all__ = ["FREEZE_CHOICES", "TrainConfig", "TrainResult", "finetune", "train_one_epoch"]
