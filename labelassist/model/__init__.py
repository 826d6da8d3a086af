"""The Mask R-CNN model: architectures, checkpoints, the `Model` wrapper, loading, prediction.

Modules, each one idea: `build` (architectures, `build_maskrcnn`, `pick_device`),
`checkpoint` (the safe checkpoint format, `checkpoint_to_bytes`), `model` (`Model`),
`load` (`load_model` and its sources, `model_from_bytes`), `predict` (images to `Instances`,
taking the network and its metadata), `features` (`ImageFeatures`: an image's backbone +
FPN maps computed once, `Model.encode`) and `prompts` (box and point prompts through the
heads, `Model.segment`), with `normalize` (images to tensors, `select_channels`),
`inference` (the network forward and its detection limits), `passes` (images through the
network, results on the original pixels), `roi_masks` (RoI masks to polygons), `tiling`
(tiles and which copy of an object to keep), `scale` (object sizes and rescaling: the
``object_size`` option) and `inputs` (the object size and channels a model expects).
"""

from .build import ARCHITECTURES, DEFAULT_ARCH, build_maskrcnn, pick_device
from .checkpoint import checkpoint_to_bytes, read_checkpoint
from .features import ImageFeatures
from .load import SOURCES, STARTER_PATH, coco_weights_path, load_model, model_from_bytes
from .model import Model
from .normalize import DEFAULT_NORMALIZATION, intensity_range, select_channels, to_tensor
from .scale import median_object_size, object_sizes, rescale_image, rescale_instances

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
    "median_object_size",
    "model_from_bytes",
    "object_sizes",
    "pick_device",
    "read_checkpoint",
    "rescale_image",
    "rescale_instances",
    "select_channels",
    "to_tensor",
]
