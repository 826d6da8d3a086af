"""Synthetic datasets on disk: images and their COCO annotations, written atomically.

The default dataset is fluorescence nuclei (`synthetic_nuclei`); ``kinds=`` mixes the image
kinds of `synthetic_image` (domain randomisation).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import tifffile

from ..checks import check_choice, check_classes, check_int, check_shape
from ..coco import Dataset
from ..io.atomic import atomic_write
from .kinds import KINDS, synthetic_image
from .nuclei import synthetic_nuclei
from .params import _check_options

__all__ = ["synthetic_dataset"]


def synthetic_dataset(
    n_images: int,
    *,
    out: str | os.PathLike,
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
    image_format: str = "png",
    kinds: str | Sequence[str] | None = None,
    category: str | None = None,
    **kwargs: Any,
) -> Dataset:
    """Write ``n_images`` synthetic images and their COCO annotations into a folder.

    Image ``k`` is ``synthetic_nuclei(shape, seed=child_k, **kwargs)`` where the child
    seeds are spawned from ``seed`` (`numpy.random.SeedSequence`), so datasets with the
    same ``seed`` are identical and images are independent. With ``kinds``, image ``k`` is
    ``synthetic_image(kind_k, shape, seed=rng_k, **kwargs)``, its kind drawn from ``kinds``
    by ``rng_k = np.random.default_rng(child_k)``: a domain-randomised mix, every kind
    with its own random appearance per image.

    Parameters
    ----------
    n_images : int
        Number of images, >= 0.
    out : path
        Folder to write into (created if missing): ``image_00000.png`` ... and
        ``annotations.json`` (COCO, one category ``"nucleus"``).
    shape : (int, int)
        ``(height, width)`` of every image.
    seed : int
        Seed of the whole dataset.
    image_format : {"png", "tif"}
        File format of the images (both keep 8 and 16 bits; float32 needs ``"tif"``).
    kinds : str, sequence of str or None
        None: fluorescence nuclei (`synthetic_nuclei`). Otherwise kinds of
        `labelassist.synthetic.KINDS` to draw from, one per image; the image records get
        a ``"kind"`` key.
    category : str, optional
        The one class name. Default ``"nucleus"`` without ``kinds``, ``"object"`` with.
    **kwargs
        Passed to the generator (for example ``dtype``, ``n`` or ``**DOMAIN_SHIFT``); with
        ``kinds``, every kind must take them (``size``, ``blur``, ``noise``,
        ``background``, ``dtype`` do; see `synthetic_image`). They are checked before
        anything is written.

    Returns
    -------
    Dataset
        With ``image_root=out``; ``dataset.instances[id]`` holds the ground truth.

    Examples
    --------
    >>> import tempfile
    >>> ds = synthetic_dataset(2, out=tempfile.mkdtemp(), shape=(64, 64), n=4)
    >>> len(ds.images), sorted(len(v) for v in ds.instances.values())
    (2, [4, 4])
    >>> mix = synthetic_dataset(3, out=tempfile.mkdtemp(), shape=(64, 64), kinds=KINDS)
    >>> mix.categories, all(r["kind"] in KINDS for r in mix.images)
    (['object'], True)
    """
    n_images = check_int(n_images, "n_images", minimum=0)
    image_format = check_choice(image_format, "image_format", ("png", "tif"))
    if np.dtype(kwargs.get("dtype", np.uint8)) == np.float32 and image_format == "png":
        raise ValueError("dtype=np.float32 cannot be stored as PNG; use image_format='tif'")
    if "return_labels" in kwargs:
        raise TypeError("synthetic_dataset does not take return_labels")
    shape = check_shape(shape, "shape", minimum=1)
    names = None if kinds is None else _check_options("kinds", kinds, KINDS)
    if category is None:
        category = "nucleus" if names is None else "object"
    category = check_classes([category], "category")[0]
    if names is not None:
        for kind in dict.fromkeys(names):  # every option of every kind, before any write
            synthetic_image(kind, (8, 8), seed=0, **kwargs)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    images, instances = [], {}
    for k, child in enumerate(np.random.SeedSequence(seed).spawn(int(n_images))):
        record: dict[str, Any] = {}
        if names is None:
            image, inst = synthetic_nuclei(shape, seed=child, **kwargs)
        else:
            rng = np.random.default_rng(child)
            record["kind"] = names[rng.integers(len(names))]
            image, inst = synthetic_image(record["kind"], shape, seed=rng, **kwargs)
        file_name = f"image_{k:05d}.{image_format}"
        _write_image_atomic(root / file_name, image)
        record = {
            "id": k + 1,
            "file_name": file_name,
            "height": shape[0],
            "width": shape[1],
        } | record
        images.append(record)
        instances[k + 1] = inst
    dataset = Dataset([category], images, instances, image_root=root)
    dataset.to_coco(root / "annotations.json")
    return dataset


def _write_image_atomic(path: Path, image: np.ndarray) -> None:
    """Write an image as PNG or TIFF (by the suffix), atomically."""
    if path.suffix == ".png":
        data = iio.imwrite("<bytes>", image, extension=".png")
    else:
        buffer = io.BytesIO()  # tifffile looks for a path in a file object's name
        tifffile.imwrite(buffer, image)
        data = buffer.getvalue()
    with atomic_write(path, suffix=path.suffix) as fh:
        fh.write(data)
