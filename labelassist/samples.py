"""Sample images that work offline: a real nuclei image and synthetic ones.

Used by ``labelassist demo``, the napari sample-data contribution, the examples and the
evaluation of the starter model on real data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, overload

import imageio.v3 as iio
import numpy as np
import tifffile

from .checks import check_int
from .synthetic import synthetic_nuclei

__all__ = ["real_nuclei", "write_sample_images"]

_DATA = Path(__file__).parent / "data"


@overload
def real_nuclei(*, labels: Literal[False] = ...) -> np.ndarray: ...


@overload
def real_nuclei(*, labels: Literal[True]) -> tuple[np.ndarray, np.ndarray]: ...


def real_nuclei(*, labels: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """A real fluorescence image of cell nuclei (16-bit, 512 x 512), offline.

    From the test data of the StarDist package (BSD-3-Clause; the 2018 Data Science Bowl
    collection, BBBC038), shipped in ``labelassist/data``. Its hand-made label image
    (125 nuclei) makes it a small real benchmark.

    Parameters
    ----------
    labels : bool
        Also return the ground-truth label image.

    Returns
    -------
    image : ndarray of shape (512, 512), uint16
    label_image : ndarray of shape (512, 512), uint16
        Only with ``labels=True``: 0 is background, each nucleus has its own id.

    Examples
    --------
    >>> image, label_image = real_nuclei(labels=True)
    >>> image.shape, image.dtype, len(np.unique(label_image)) - 1
    ((512, 512), dtype('uint16'), 125)
    """
    image = tifffile.imread(_DATA / "nuclei2d.tif")
    if not labels:
        return image
    return image, tifffile.imread(_DATA / "nuclei2d_labels.tif")


def write_sample_images(
    folder: str | os.PathLike, *, n_synthetic: int = 3, seed: int = 0
) -> list[Path]:
    """Write the demo's sample images into ``folder``: synthetic nuclei and the real image.

    Synthetic images alternate 8-bit PNG and 16-bit TIFF, so the demo exercises both.

    Parameters
    ----------
    folder : path
        Created if missing.
    n_synthetic : int
        Number of synthetic 256 x 256 images.
    seed : int
        Seed of the first synthetic image (image ``k`` uses ``seed + k``).

    Returns
    -------
    list of Path
        The written files, real image last.

    Examples
    --------
    >>> import tempfile
    >>> paths = write_sample_images(tempfile.mkdtemp(), n_synthetic=1)
    >>> [p.name for p in paths]
    ['synthetic_00.png', 'real_nuclei.tif']
    """
    n_synthetic = check_int(n_synthetic, "n_synthetic", minimum=0)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n_synthetic):
        sixteen = k % 2 == 1
        image, _ = synthetic_nuclei(
            (256, 256), dtype=np.uint16 if sixteen else np.uint8, seed=seed + k
        )
        if sixteen:
            path = folder / f"synthetic_{k:02d}.tif"
            tifffile.imwrite(path, image)
        else:
            path = folder / f"synthetic_{k:02d}.png"
            iio.imwrite(path, image)
        paths.append(path)
    path = folder / "real_nuclei.tif"
    tifffile.imwrite(path, real_nuclei())
    paths.append(path)
    return paths
