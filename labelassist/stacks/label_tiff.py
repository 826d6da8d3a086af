"""Label volumes as TIFF files: `StackInstances` out as uint32 OME-TIFF, and label TIFFs in.

A label volume is the integer image Cellpose, StarDist and most segmentation tools read
and write: 0 is background, every other value an object id, the same id in several planes
the same 3-D object or track. `write_label_volume` writes it as an OME-TIFF (uint32; OME
keeps 32-bit integers, ImageJ hyperstacks do not) whose metadata names the axes
(``"ZYX"``, ``"TYX"``, ``"TZYX"``), atomically. `read_label_volume` reads any label TIFF
(`labelassist.io.read_stack`: ImageJ, OME or plain) into `StackInstances`, so another
tool's labels become pre-annotations.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ..io import TempFile, read_stack
from .stack_instances import StackInstances

__all__ = ["read_label_volume", "write_label_volume", "write_tiff_atomic"]


def write_label_volume(stack: StackInstances, path: str | os.PathLike) -> Path:
    """Write a stack's objects as a uint32 label volume (OME-TIFF with its axes).

    Parameters
    ----------
    stack : StackInstances
        The objects; pixels are painted by `StackInstances.to_labels`.
    path : str or os.PathLike
        The ``.tif``/``.tiff`` (or ``.ome.tif``) file; written atomically, folders created.

    Returns
    -------
    Path
        The written file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> volume = np.zeros((2, 8, 8), np.uint32)
    >>> volume[:, 2:5, 2:5] = 3
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "labels.ome.tif"
    >>> _ = write_label_volume(StackInstances.from_labels(volume, "ZYX"), path)
    >>> labels, axes = read_stack(path)
    >>> axes, labels.dtype.name, bool((labels == volume).all())
    ('ZYX', 'uint32', True)
    """
    if not isinstance(stack, StackInstances):
        raise TypeError(f"stack must be a StackInstances, got {type(stack).__name__}")
    path = _tiff_path(path)
    volume = stack.to_labels(np.uint32)
    write_tiff_atomic(path, volume, ome=True, metadata={"axes": stack.axes})
    return path


def read_label_volume(
    path: str | os.PathLike,
    *,
    axes: str | None = None,
    parents: Mapping[int, int] | None = None,
    tolerance: float = 0.0,
) -> StackInstances:
    """Read a label TIFF (0 = background, ids = objects) as `StackInstances`.

    Parameters
    ----------
    path : str or os.PathLike
        An integer TIFF: OME, ImageJ or plain (a plain 3-D file is read as ``"ZYX"``).
        Labels have no channels: a channel or sample axis (tifffile reads 3 or 4 planes
        saved without metadata as planar RGB) is read as ``Z`` when there is no ``Z``.
    axes : str, optional
        The file's axes when its metadata is missing or wrong (see `read_stack`).
    parents : mapping of int to int, optional
        Divisions ``{daughter_id: mother_id}`` for a time-lapse.
    tolerance : float
        Polygon simplification; 0 keeps exact pixel outlines.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "cellpose_masks.tif"
    >>> volume = np.zeros((5, 8, 8), np.uint16)
    >>> volume[1:3, 2:5, 2:5] = 1
    >>> tifffile.imwrite(path, volume)
    >>> read_label_volume(path).tracks.tolist()
    [[1, 0, 0, 0]]
    """
    volume, found = read_stack(path, axes=axes)
    if "C" in found and "Z" not in found and axes is None:
        # tifffile stores 3 or 4 planes without metadata as planar RGB(A) samples
        found = found.replace("C", "Z")
        order = [found.index(a) for a in sorted(found, key="TZYX".index)]
        volume, found = volume.transpose(order), "".join(sorted(found, key="TZYX".index))
    if "C" in found:
        raise ValueError(
            f"{path} has a channel axis (axes {found!r}); a label volume has one value per "
            "pixel: save one label image per channel, or pass axes= if C is wrong"
        )
    if np.dtype(volume.dtype).kind not in "ui":
        raise ValueError(
            f"{path} holds {volume.dtype} values, not integer labels (0 = background, ids "
            "= objects); is it an image rather than a label volume?"
        )
    return StackInstances.from_labels(volume, found, parents=parents, tolerance=tolerance)


def write_tiff_atomic(path: Path, data: np.ndarray, **options: Any) -> None:
    """``tifffile.imwrite(path, data, **options)`` through a temp file next to ``path``
    (`labelassist.io.TempFile`): readers never see a partial file."""
    tmp = TempFile(path, suffix=".tif")
    try:
        tifffile.imwrite(tmp.name, data, **options)
        tmp.commit()
    finally:
        tmp.discard()


def _tiff_path(path: Any) -> Path:
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        raise ValueError(f"path must end with .tif or .tiff (a label TIFF), got {str(path)!r}")
    if path.is_dir():
        raise IsADirectoryError(f"path={str(path)!r} is a folder; give a file like labels.tif")
    return path
