"""Image files of a labeling project: checking that they decode, and copying them in.

A project accepts only files that `labelassist.io.read_image` can read as a 2-D image, and
checks that when the file is added (`image_size`), not later when a model first reads it.
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from ..io import check_image, pixel_limit, read_image

__all__ = ["DECODE_LIMIT", "copy_into", "image_size", "remove_copies"]

#: TIFFs with more pixels than this are checked from their structure (axes, shape, data
#: offsets within the file) instead of being decoded; other files are always decoded.
DECODE_LIMIT = 2**26


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image file, after checking that it can be read.

    The file is decoded with `labelassist.io.read_image` (the reader every model uses), so
    a truncated file, a 3-D or 5-D stack or an unsupported pixel type is found here. TIFFs
    above `DECODE_LIMIT` pixels (whole slides) are checked without decoding: the same
    shape rule, and every strip or tile inside the file.

    Raises
    ------
    ValueError
        Naming the file and why it cannot be read.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, imageio.v3 as iio
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.png"
    >>> iio.imwrite(path, np.zeros((16, 24), np.uint8))
    >>> image_size(path)
    (16, 24)
    >>> _ = path.write_bytes(path.read_bytes()[:40])  # truncated
    >>> image_size(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: cannot read image ...a.png: ...
    """
    if not path.is_file():  # a folder, a FIFO (reading it would hang), a device
        raise ValueError(f"{path} is not a regular file")
    if path.suffix.lower() in (".tif", ".tiff"):
        shape = _tiff_shape(path)
        pixels, cap = math.prod(shape[:2]), pixel_limit()
        if cap is not None and pixels > cap:  # the limit read_image applies, from the header
            raise ValueError(
                f"{path}: {shape[0]} x {shape[1]} pixels is more than the limit of {cap:,}; "
                "raise it with LABELASSIST_MAX_IMAGE_PIXELS (0 = no limit) if you trust the file"
            )
        if pixels > DECODE_LIMIT:
            _check_tiff_data(path)
            return int(shape[0]), int(shape[1])
    image = read_image(path)
    return int(image.shape[0]), int(image.shape[1])


def _tiff_shape(path: Path) -> tuple[int, ...]:
    """The shape `read_image` would return for a TIFF, checked by the same rule, from the
    file's structure alone."""
    import tifffile  # heavy: 0.3 s to import, only needed for TIFFs

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise ValueError("the TIFF holds no image")
            series = tif.series[0]
            shape, axes, dtype = tuple(series.shape), series.axes, series.dtype
            rgb = tif.pages[0].photometric == tifffile.PHOTOMETRIC.RGB
    except ValueError as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from None
    except Exception as exc:  # tifffile raises many types on broken files
        raise ValueError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from None
    if axes.startswith("S") and len(shape) == 3 and rgb:  # planar RGB: read channels-last
        shape = (*shape[1:], shape[0])
    # a zero-strided view: the shape rule of check_image without allocating the pixels
    checked = check_image(np.broadcast_to(np.zeros((), dtype), shape), name=str(path))
    return tuple(checked.shape)


def _check_tiff_data(path: Path) -> None:
    """Every strip/tile of the first series lies inside the file (not truncated)."""
    import tifffile  # heavy: see _tiff_shape

    size = path.stat().st_size
    with tifffile.TiffFile(path) as tif:
        for page in tif.series[0].pages:
            if page is None:
                continue
            offsets = getattr(page, "dataoffsets", ())
            counts = getattr(page, "databytecounts", ())
            end = max((o + c for o, c in zip(offsets, counts, strict=False)), default=0)
            if end > size or any(c and not o for o, c in zip(offsets, counts, strict=False)):
                raise ValueError(
                    f"cannot read image {path}: the file is truncated (its image data ends "
                    f"at byte {end}, the file has {size} bytes)"
                )


def copy_into(source: Path, target_dir: Path, taken: set[str]) -> Path:
    """Copy ``source`` into ``target_dir`` atomically under a free name; return it.

    ``taken`` holds the lower-cased names already used (updated in place).
    """
    target_dir.mkdir(parents=True, exist_ok=True)
    stem, suffix = source.stem, source.suffix
    name, k = source.name, 1
    while name.lower() in taken or (target_dir / name).exists():
        name = f"{stem}_{k}{suffix}"
        k += 1
    taken.add(name.lower())
    # a fresh name (not mkstemp: its 0600 mode would differ from the other images)
    tmp = str(target_dir / f".tmp-{uuid.uuid4().hex}{suffix}")
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target_dir / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target_dir / name


def remove_copies(copies: list[Path]) -> None:
    """Delete image copies this project made (never a user's original file)."""
    for copy in copies:
        copy.unlink(missing_ok=True)
