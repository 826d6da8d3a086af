"""The Mask R-CNN model: architectures, checkpoints, the `Model` wrapper, loading, prediction.

Modules, each one idea: `build` (architectures, `build_maskrcnn`, `pick_device`),
`checkpoint` (the safe checkpoint format, `checkpoint_to_bytes`), `model` (`Model`),
`load` (`load_model` and its sources, `model_from_bytes`), `predict` (images to `Instances`,
taking the network and its metadata), `features` (`ImageFeatures`: an image's backbone +
FPN maps computed once, `Model.encode`) and `prompts` (box and point prompts through the
heads, `Model.segment`), with `normalize` (images to tensors), `inference` (the network
forward and its detection limits), `roi_masks` (RoI masks to polygons) and `tiling` (tiles
and which copy of an object to keep).
"""

from .build import ARCHITECTURES, DEFAULT_ARCH, build_maskrcnn, pick_device
from .checkpoint import checkpoint_to_bytes, read_checkpoint
from .features import ImageFeatures
from .load import SOURCES, STARTER_PATH, coco_weights_path, load_model, model_from_bytes
from .model import Model
from .normalize import DEFAULT_NORMALIZATION, intensity_range, to_tensor

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_ARCH",
    "DEFAULT_NORMALIZATION",
    "SOURCES",
    "STARTER_PATH",
    "ImageFeatures",
    "Model",
    "build_maskrcnn",
    "checkpoint_to_bytes",
    "coco_weights_path",
    "intensity_range",
    "load_model",
    "model_from_bytes",
    "pick_device",
    "read_checkpoint",
    "to_tensor",
]
