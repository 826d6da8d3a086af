"""Synthetic images with exact ground-truth instances: nuclei, cells, tissue, rods and piles.

Each generator takes the image shape first and keyword-only options, is seeded, and returns
``(image, instances)`` (or ``(image, instances, labels)`` with ``return_labels=True``):
the instances are the label image converted exactly (``tolerance=0``) to polygons in COCO
pixel coordinates ``(x, y)``, so every polygon rasterises back to exactly its object's
pixels. `synthetic_image` draws any of the `KINDS`; `synthetic_dataset` writes a COCO
dataset of one kind or a domain-randomised mix. docs/synthetic.md shows every kind.

=================== ======================================================================
module              holds
=================== ======================================================================
``nuclei``          `synthetic_nuclei` (its output is pinned: the starter was trained on it)
``cells``           `synthetic_cells`: whole cells, cytoplasm and nucleus channels
``epithelium``      `synthetic_epithelium`: packed cells, only the membranes bright
``transmitted``     `synthetic_brightfield`: brightfield and phase contrast
``histology``       `synthetic_histology`: H&E-like nuclei on stroma
``rods``            `synthetic_rods`, `WORMS`: bacteria and worms
``landmarks``       `synthetic_landmarks`, `landmark_dataset`: rods and worms with head and tail
``piles``           `synthetic_piles`: occluding grains, the visible part of each
``kinds``           `synthetic_image`, `KINDS`
``dataset``         `synthetic_dataset`
``shapes``          outlines (perturbed ellipses, tubes) rasterised exactly
``placement``       apart, touching or partly hidden objects, one owner per pixel
``optics``          illumination, texture, blur, camera noise, quantisation, label -> polygons
``params``          checks of the generators' parameters
=================== ======================================================================
"""

from __future__ import annotations

from .cells import synthetic_cells
from .dataset import _write_image_atomic as _write_image_atomic  # bench/ writes with it
from .dataset import synthetic_dataset
from .epithelium import synthetic_epithelium
from .histology import synthetic_histology
from .kinds import KINDS, synthetic_image
from .landmarks import LANDMARK_NAMES, landmark_dataset, mask_ends, synthetic_landmarks
from .nuclei import DOMAIN_SHIFT, synthetic_nuclei
from .params import BACKGROUNDS
from .piles import synthetic_piles
from .rods import WORMS, synthetic_rods
from .transmitted import synthetic_brightfield

__all__ = [
    "synthetic_nuclei",
    "synthetic_dataset",
    "DOMAIN_SHIFT",
    "BACKGROUNDS",
    "KINDS",
    "WORMS",
    "synthetic_image",
    "synthetic_cells",
    "synthetic_epithelium",
    "synthetic_brightfield",
    "synthetic_histology",
    "synthetic_rods",
    "synthetic_piles",
    "synthetic_landmarks",
    "landmark_dataset",
    "mask_ends",
    "LANDMARK_NAMES",
]
