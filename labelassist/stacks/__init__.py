"""Z-stacks and time-lapse: objects per plane linked into 3-D objects and tracks.

`StackInstances` holds one `labelassist.Instances` per plane with an ``object_id`` column;
`link_planes` links planes by mask IoU (Hungarian matching, gap closing, divisions);
`predict_stack` runs a model over every plane in batches and links the result.

Modules: `stack_instances` (the type, label volumes in and out of arrays), `overlap`
(polygon overlaps, one-to-one matching), `link` (Z and T linking), `predict`
(`predict_stack`), `label_tiff` (label volumes as TIFF), `ctc` (Cell Tracking Challenge
folders), `coco_video` (COCO with one image per plane and a track per object, TAO layout).
"""

from .coco_video import read_coco_video, stack_to_coco_video, write_coco_video
from .ctc import read_ctc, write_ctc
from .label_tiff import read_label_volume, write_label_volume
from .link import link_planes
from .overlap import iou, match, polygon_overlaps
from .predict import predict_stack, stack_planes
from .stack_instances import OBJECT_ID, STACK_LAYOUTS, StackInstances

__all__ = [
    "OBJECT_ID",
    "STACK_LAYOUTS",
    "StackInstances",
    "iou",
    "link_planes",
    "match",
    "polygon_overlaps",
    "predict_stack",
    "read_coco_video",
    "read_ctc",
    "read_label_volume",
    "stack_planes",
    "stack_to_coco_video",
    "write_coco_video",
    "write_ctc",
    "write_label_volume",
]
