"""Z-stacks and time-lapse: objects per plane linked into 3-D objects and tracks.

`StackInstances` holds one `labelassist.Instances` per plane with an ``object_id`` column;
`link_planes` links planes by mask IoU (Hungarian matching, gap closing, divisions);
`predict_stack` runs a model over every plane in batches and links the result.

Modules: `stack_instances` (the type, label volumes in and out of arrays), `overlap`
(polygon overlaps, one-to-one matching), `link` (Z and T linking), `predict`
(`predict_stack`), `merges` (cutting merged and dropping nested per-plane instances before
linking), `label_tiff` (label volumes as TIFF), `ctc` (Cell Tracking Challenge folders),
`tracking_metrics` (the CTC's AOGM, TRA and DET), `coco_video` (COCO with one image per
plane and a track per object, TAO layout).
"""

from .coco_video import read_coco_video, stack_to_coco_video, write_coco_video
from .ctc import read_ctc, write_ctc
from .label_tiff import read_label_volume, write_label_volume
from .link import link_planes
from .merges import drop_nested, split_merges
from .overlap import iou, match, polygon_overlaps
from .predict import predict_stack, stack_object_size, stack_planes
from .stack_instances import OBJECT_ID, STACK_LAYOUTS, StackInstances
from .tracking_metrics import DET_WEIGHTS, TRA_WEIGHTS, TrackingScores, tracking_scores

__all__ = [
    "DET_WEIGHTS",
    "OBJECT_ID",
    "STACK_LAYOUTS",
    "TRA_WEIGHTS",
    "StackInstances",
    "TrackingScores",
    "drop_nested",
    "iou",
    "link_planes",
    "match",
    "polygon_overlaps",
    "predict_stack",
    "stack_object_size",
    "read_coco_video",
    "read_ctc",
    "read_label_volume",
    "split_merges",
    "stack_planes",
    "stack_to_coco_video",
    "tracking_scores",
    "write_coco_video",
    "write_ctc",
    "write_label_volume",
]
