"""COCO instance-segmentation files: reading (`read_coco`, `Dataset`) and writing (`write_coco`)."""

from .read import CocoFormatError, Dataset, coco_to_instances, read_coco
from .write import instances_to_coco, write_coco

__all__ = [
    "CocoFormatError",
    "Dataset",
    "coco_to_instances",
    "instances_to_coco",
    "read_coco",
    "write_coco",
]
