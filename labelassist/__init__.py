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
from typing import TYPE_CHECKING, Any

from ._version import __version__

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
    "synthetic_image": "synthetic",
    "synthetic_cells": "synthetic",
    "synthetic_epithelium": "synthetic",
    "synthetic_brightfield": "synthetic",
    "synthetic_histology": "synthetic",
    "synthetic_rods": "synthetic",
    "synthetic_piles": "synthetic",
    "synthetic_landmarks": "synthetic",
    "landmark_dataset": "synthetic",
    "Model": "model",
    "load_model": "model",
    "ImageFeatures": "model",
    "select_channels": "model",
    "median_object_size": "model",
    "preannotate": "bulk",
    "PreannotateResult": "bulk",
    "PreannotateWarning": "bulk",
    "finetune": "train",
    "evaluate": "evaluation",
    "evaluate_predictions": "evaluation",
    "TrainResult": "train",
    "TrainConfig": "train",
    "run_round": "rounds",
    "plot_learning_curve": "rounds",
    "rank_images": "active",
    "refine_edges": "refine",
    "Project": "project",
    "read_stack": "io",
    "StackInstances": "stacks",
    "predict_stack": "stacks",
    "link_planes": "stacks",
    "write_label_volume": "stacks",
    "read_label_volume": "stacks",
    "write_ctc": "stacks",
    "read_ctc": "stacks",
    "write_coco_video": "stacks",
    "read_coco_video": "stacks",
    "synthetic_zstack": "synthetic_stacks",
    "synthetic_timelapse": "synthetic_stacks",
    "ProjectConflictError": "project",
    "ProjectDamagedError": "project",
    "ProjectReadOnlyError": "project",
    "Revision": "project",
    "UnreadableImagesWarning": "project",
}

if TYPE_CHECKING:  # what the lazy exports resolve to, for IDEs and type checkers
    from .active import rank_images as rank_images
    from .bulk import PreannotateResult as PreannotateResult
    from .bulk import PreannotateWarning as PreannotateWarning
    from .bulk import preannotate as preannotate
    from .coco import CocoFormatError as CocoFormatError
    from .coco import Dataset as Dataset
    from .coco import read_coco as read_coco
    from .evaluation import evaluate as evaluate
    from .evaluation import evaluate_predictions as evaluate_predictions
    from .geometry import DEFAULT_TOLERANCE as DEFAULT_TOLERANCE
    from .geometry import masks_to_polygons as masks_to_polygons
    from .geometry import polygons_to_masks as polygons_to_masks
    from .instances import Instances as Instances
    from .io import read_image as read_image
    from .io import read_stack as read_stack
    from .model import ImageFeatures as ImageFeatures
    from .model import Model as Model
    from .model import load_model as load_model
    from .model import median_object_size as median_object_size
    from .model import select_channels as select_channels
    from .project import Project as Project
    from .project import ProjectConflictError as ProjectConflictError
    from .project import ProjectDamagedError as ProjectDamagedError
    from .project import ProjectReadOnlyError as ProjectReadOnlyError
    from .project import Revision as Revision
    from .project import UnreadableImagesWarning as UnreadableImagesWarning
    from .refine import refine_edges as refine_edges
    from .rounds import plot_learning_curve as plot_learning_curve
    from .rounds import run_round as run_round
    from .stacks import StackInstances as StackInstances
    from .stacks import link_planes as link_planes
    from .stacks import predict_stack as predict_stack
    from .stacks import read_coco_video as read_coco_video
    from .stacks import read_ctc as read_ctc
    from .stacks import read_label_volume as read_label_volume
    from .stacks import write_coco_video as write_coco_video
    from .stacks import write_ctc as write_ctc
    from .stacks import write_label_volume as write_label_volume
    from .synthetic import landmark_dataset as landmark_dataset
    from .synthetic import synthetic_brightfield as synthetic_brightfield
    from .synthetic import synthetic_cells as synthetic_cells
    from .synthetic import synthetic_dataset as synthetic_dataset
    from .synthetic import synthetic_epithelium as synthetic_epithelium
    from .synthetic import synthetic_histology as synthetic_histology
    from .synthetic import synthetic_image as synthetic_image
    from .synthetic import synthetic_landmarks as synthetic_landmarks
    from .synthetic import synthetic_nuclei as synthetic_nuclei
    from .synthetic import synthetic_piles as synthetic_piles
    from .synthetic import synthetic_rods as synthetic_rods
    from .synthetic_stacks import synthetic_timelapse as synthetic_timelapse
    from .synthetic_stacks import synthetic_zstack as synthetic_zstack
    from .train import TrainConfig as TrainConfig
    from .train import TrainResult as TrainResult
    from .train import finetune as finetune


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
