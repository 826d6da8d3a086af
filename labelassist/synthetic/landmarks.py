"""Synthetic objects with landmarks: rods and worms with a head and a tail, exact masks and ends.

Built on `synthetic_rods` (exact masks). The two ends of each object are found from its
mask (`mask_ends`): the two pixels farthest apart along paths inside the object (its
geodesic diameter, found by two sweeps of geodesic distances), so an end hidden by a
neighbour or the image border is the visible end. One end, chosen at random, is the
*head* and gets a bright polar marker inside the object (like a fluorescent pole marker or
a worm's pharynx), so a model can tell head from tail; the keypoints are the centres of
the end pixels, visibility 2. `landmark_dataset` writes such images with a COCO
keypoints file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..checks import check_int, check_number, check_shape
from ..coco import Dataset
from ..instances import Instances
from .dataset import _write_image_atomic
from .rods import WORMS, synthetic_rods

__all__ = [
    "LANDMARK_NAMES",
    "LANDMARK_SKELETON",
    "landmark_dataset",
    "mask_ends",
    "synthetic_landmarks",
]

#: The keypoint names of `synthetic_landmarks`.
LANDMARK_NAMES: tuple[str, ...] = ("head", "tail")
#: Its skeleton: head to tail (0-based).
LANDMARK_SKELETON: tuple[tuple[int, int], ...] = ((0, 1),)

_KINDS = ("rods", "worms")


def _farthest(mask: np.ndarray, start: tuple[int, int]) -> tuple[int, int]:
    """The pixel of ``mask`` farthest from ``start`` along paths inside it (8-connected
    steps of length 1 and sqrt(2)); the first in row-major order on ties."""
    from skimage.graph import MCP_Geometric  # heavy: scikit-image's graph module

    costs = np.where(mask, 1.0, -1.0)  # negative costs are impassable
    distances, _ = MCP_Geometric(costs, fully_connected=True).find_costs([start])
    distances = np.where(mask & np.isfinite(distances), distances, -1.0)
    r, c = np.unravel_index(int(np.argmax(distances)), mask.shape)
    return int(r), int(c)


def mask_ends(mask: np.ndarray) -> np.ndarray:
    """The two ends of an elongated object: the pixels farthest apart inside it.

    Two sweeps of geodesic distance (from the first pixel to the farthest one ``A``, from
    ``A`` to the farthest one ``B``) give the ends of the object's geodesic diameter,
    exact for the tube-like shapes of `synthetic_rods` (their tips; on a tip one pixel
    wide or more, one of its outermost pixels).

    Parameters
    ----------
    mask : ndarray of shape (H, W), bool
        One object (one 8-connected piece; the largest is used otherwise).

    Returns
    -------
    ndarray of shape (2, 2), float64
        ``[[x_a, y_a], [x_b, y_b]]``: the centres of the two end pixels in COCO pixel
        coordinates (pixel ``(i, j)`` has centre ``(j + 0.5, i + 0.5)``).

    Examples
    --------
    >>> rod = np.zeros((5, 12), bool)
    >>> rod[2, 1:11] = True
    >>> mask_ends(rod).tolist()
    [[10.5, 2.5], [1.5, 2.5]]
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be an (H, W) array, got shape {mask.shape}")
    if not mask.any():
        raise ValueError("mask has no pixel; an object needs at least one")
    lab, n = ndi.label(mask, structure=np.ones((3, 3)))
    if n > 1:
        mask = lab == 1 + int(np.argmax(np.bincount(lab.ravel())[1:]))
    rows, cols = np.nonzero(mask)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    box = mask[r0:r1, c0:c1]
    first = (int(rows[0] - r0), int(cols[0] - c0))
    a = _farthest(box, first)
    b = _farthest(box, a)
    return np.array([[a[1] + c0 + 0.5, a[0] + r0 + 0.5], [b[1] + c0 + 0.5, b[0] + r0 + 0.5]])


def synthetic_landmarks(
    shape: tuple[int, int] = (128, 128),
    *,
    kind: str = "rods",
    n: int | tuple[int, int] | None = None,
    marker: float = 0.5,
    seed: int | np.random.Generator | np.random.SeedSequence | None = None,
    **options: Any,
) -> tuple[np.ndarray, Instances]:
    """A synthetic image of rods or worms with a head and a tail each, and the exact truth.

    Parameters
    ----------
    shape : (int, int)
        ``(height, width)`` of the image.
    kind : {"rods", "worms"}
        Rod-shaped bacteria (`synthetic_rods` defaults) or worms (its `WORMS` settings).
    n : int, (int, int) or None
        Number of objects, or a range (None: as `synthetic_rods`).
    marker : float
        Brightness of the polar marker at the head, a fraction of full scale in
        ``[0, 1]`` (0: head and tail look alike).
    seed : int, Generator, SeedSequence or None
        Seed; the same seed gives the same image.
    **options
        More `synthetic_rods` options (``size``, ``aspect``, ``bend``, ``dtype``, ...);
        ``appearance`` defaults to ``"fluorescence"``.

    Returns
    -------
    image : ndarray of shape (H, W)
    instances : Instances
        Exact polygons (labels 0, scores 1) with ``keypoints`` of shape (N, 2, 3):
        `LANDMARK_NAMES` ``("head", "tail")``, x, y the centres of the end pixels
        (`mask_ends`), visibility 2.

    Examples
    --------
    >>> image, inst = synthetic_landmarks((96, 96), n=5, seed=0)
    >>> image.shape, inst.keypoints.shape
    ((96, 96), (5, 2, 3))
    """
    shape = check_shape(shape, "shape", minimum=1)
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {list(_KINDS)}, got {kind!r}")
    marker = check_number(marker, "marker", minimum=0, maximum=1)
    if "return_labels" in options:
        raise TypeError("synthetic_landmarks does not take return_labels")
    settings: dict[str, Any] = dict(WORMS) if kind == "worms" else {}
    settings["appearance"] = "fluorescence"
    settings.update(options)
    rng = np.random.default_rng(seed)
    image, instances, labels = synthetic_rods(shape, n=n, seed=rng, return_labels=True, **settings)
    points = np.zeros((len(instances), len(LANDMARK_NAMES), 3))
    heads = np.zeros((len(instances), 2))
    for k in range(len(instances)):
        ends = mask_ends(labels == k + 1)
        if rng.random() < 0.5:
            ends = ends[::-1]
        points[k, :, :2] = ends
        heads[k] = ends[0]
    points[:, :, 2] = 2.0
    if marker > 0 and len(instances):
        image = _add_markers(image, labels, heads, marker)
    return image, instances.replace(keypoints=points)


def _add_markers(
    image: np.ndarray, labels: np.ndarray, heads: np.ndarray, strength: float
) -> np.ndarray:
    """``image`` with a bright spot at each head, inside its own object only."""
    top = float(np.iinfo(image.dtype).max) if image.dtype.kind in "ui" else 1.0
    widths = 2.0 * ndi.maximum(
        ndi.distance_transform_edt(labels > 0), labels, np.arange(1, len(heads) + 1)
    )
    yy, xx = np.mgrid[: labels.shape[0], : labels.shape[1]] + 0.5
    spots = np.zeros(labels.shape)
    for k, ((x, y), width) in enumerate(zip(heads, widths, strict=True)):
        sigma = max(float(width), 2.0)
        spot = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
        spots = np.where(labels == k + 1, spot, spots)
    out = image.astype(np.float64) + strength * top * spots
    if image.dtype.kind in "ui":
        return np.clip(np.rint(out), 0, top).astype(image.dtype)
    return np.clip(out, 0.0, 1.0).astype(image.dtype)


def landmark_dataset(
    n_images: int,
    *,
    out: str | os.PathLike,
    shape: tuple[int, int] = (128, 128),
    seed: int = 0,
    kind: str = "rods",
    **kwargs: Any,
) -> Dataset:
    """Write ``n_images`` `synthetic_landmarks` images and a COCO keypoints file.

    Image ``k`` is ``synthetic_landmarks(shape, kind=kind, seed=child_k, **kwargs)``
    with child seeds spawned from ``seed``; the folder gets ``image_00000.png`` ... and
    ``annotations.json`` (category ``"rod"`` or ``"worm"``, keypoints ``head``,
    ``tail``, skeleton head-tail).

    Returns
    -------
    Dataset
        With ``keypoints`` and ``skeleton`` set, ``image_root=out``.

    Examples
    --------
    >>> import tempfile
    >>> ds = landmark_dataset(2, out=tempfile.mkdtemp(), shape=(64, 64), n=3)
    >>> ds.keypoints, ds.skeleton, [len(v) for v in ds.instances.values()]
    (['head', 'tail'], [(0, 1)], [3, 3])
    """
    n_images = check_int(n_images, "n_images", minimum=0)
    shape = check_shape(shape, "shape", minimum=1)
    synthetic_landmarks((8, 8), kind=kind, seed=0, **{**kwargs, "n": 0})  # options, early
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    images, instances = [], {}
    for k, child in enumerate(np.random.SeedSequence(seed).spawn(n_images)):
        image, inst = synthetic_landmarks(shape, kind=kind, seed=child, **kwargs)
        file_name = f"image_{k:05d}.png"
        _write_image_atomic(root / file_name, image)
        images.append({"id": k + 1, "file_name": file_name, "height": shape[0], "width": shape[1]})
        instances[k + 1] = inst
    dataset = Dataset(
        ["rod" if kind == "rods" else "worm"],
        images,
        instances,
        image_root=root,
        keypoints=list(LANDMARK_NAMES),
        skeleton=list(LANDMARK_SKELETON),
    )
    dataset.to_coco(root / "annotations.json")
    return dataset
