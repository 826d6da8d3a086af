"""COCO instance-segmentation files: `read_coco`, `write_coco` and the `Dataset` they hold.

All COCO rules of labelassist are stated here:

- ids start at 1 on write: category ``k`` of ``categories`` is written with id ``k + 1``
  (``category_id = label + 1``), annotation ids are ``1..M``; image ids are the records' own.
- category names follow `labelassist.checks.check_classes` (unique, non-empty, no
  background); on read, other tools' background categories (``_background_``,
  ``background``, ...) are dropped and annotations pointing at them skipped with a warning.
- ``area`` is the pixel count of the annotation's mask as pycocotools rasterizes it (not
  the box area); ``bbox`` is ``[x, y, width, height]`` of that mask.
- annotator output is written with ``iscrowd=0``; instances whose ``extra["iscrowd"]`` is
  true are written back as ``iscrowd=1`` RLE.
- every annotation carries a ``score`` (1.0 for human-made instances); a missing
  ``score`` reads as 1.0.
- RLE ``counts`` are written compressed, as ``str``; masks handed to pycocotools are
  Fortran-ordered ``uint8``. On read an RLE mask is expanded only inside the box its runs
  cover, at most `labelassist.coco.read.MAX_MASK_PIXELS` pixels.
- COCO polygons cannot express holes (pycocotools unions the rings of one annotation), so
  with ``segmentation="polygon"`` an instance without holes is written as one ring per
  part and an instance **with holes is written as RLE**; ``segmentation="rle"`` writes
  every instance as RLE. On read, polygons reaching outside their image are clipped to it
  (pycocotools counts only the pixels inside) with a warning.
- ``file_name`` is relative to the image root: absolute names and ``..`` steps are refused
  on read and write.
- keypoints (landmarks, `Dataset.keypoints`): every category is written with the
  ``keypoints`` names and COCO's 1-based ``skeleton``; every annotation with its flat
  ``keypoints`` list ``[x1, y1, v1, ...]`` (x, y in the same pixel coordinates as the
  outlines, v 0/1/2 as COCO defines it) and ``num_keypoints`` (the count with v > 0).
  On read, categories' names are joined (union in category id order) and keypoint
  annotations without segmentation get their ``bbox`` as outline, with a warning.

Geometry is in COCO's continuous pixel coordinates ``(x, y)``: the pixel at row ``i``,
column ``j`` covers the square ``[j, j+1] x [i, i+1]``.

Modules: `read` (files in), `dataset` (`Dataset`), `write` (files out), `errors`
(`CocoFormatError`); private: `_decode` (a segmentation to geometry), `_convert`
(`Instances` to annotation columns), `_emit` (the JSON text), `_pool` (worker
processes), `_rules` (shared checks), `_keypoints` (keypoints of files read).
"""

from .dataset import Dataset
from .errors import CocoFormatError
from .read import coco_to_instances, read_coco
from .write import instances_to_coco, write_coco

__all__ = [
    "CocoFormatError",
    "Dataset",
    "coco_to_instances",
    "instances_to_coco",
    "read_coco",
    "write_coco",
]
