"""The Mask R-CNN model: building, checkpoints, loading (`load_model`) and prediction."""

from .model import (
    ARCHITECTURES,
    DEFAULT_ARCH,
    STARTER_PATH,
    Model,
    build_maskrcnn,
    coco_weights_path,
    load_model,
    pick_device,
)

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_ARCH",
    "STARTER_PATH",
    "Model",
    "build_maskrcnn",
    "coco_weights_path",
    "load_model",
    "pick_device",
]
