"""labelassist: model-assisted annotation for instance segmentation.

Mask R-CNN proposals become editable polygons; corrections are stored, exported as COCO
and used to fine-tune the model (a human-in-the-loop cycle).

Heavy modules (torch, pycocotools, dask) are imported on first use, so that
``import labelassist`` and ``labelassist --help`` stay fast.

Examples
--------
>>> import labelassist as la
>>> la.Instances.empty((8, 8))
Instances(n=0, image_shape=(8, 8), extra=[])
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Instances": "instances",
    "masks_to_polygons": "geometry",
    "polygons_to_masks": "geometry",
    "DEFAULT_TOLERANCE": "geometry",
    "read_image": "io",
    "Dataset": "coco",
    "read_coco": "coco",
    "CocoFormatError": "coco",
    "synthetic_nuclei": "synthetic",
    "synthetic_dataset": "synthetic",
    "Model": "models",
    "load_model": "models",
    "preannotate": "bulk",
    "PreannotateWarning": "bulk",
    "finetune": "train",
    "evaluate": "evaluate",
    "evaluate_predictions": "evaluate",
    "TrainResult": "train",
    "TrainConfig": "train",
    "run_round": "rounds",
    "plot_learning_curve": "rounds",
    "rank_images": "active",
    "Project": "project",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'labelassist' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
