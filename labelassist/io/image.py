"""Reading images: PNG, JPEG and TIFF, 8/16-bit, float, gray, RGB and RGBA."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["read_image", "check_image", "IMAGE_SUFFIXES"]

#: File suffixes `read_image` understands (lower case).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

_SUPPORTED_DTYPES = "uint8, uint16, int8, int16, int32, float32, float64 or bool"


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a 2-D image from a PNG, JPEG, BMP or TIFF file.

    Parameters
    ----------
    path : str or os.PathLike
        The image file.

    Returns
    -------
    image : ndarray of shape (H, W), (H, W, 3) or (H, W, 4)
        Gray, RGB or RGBA with the file's own dtype (uint8, uint16, float32, ...).
        Planar (separate-channel) RGB TIFFs are returned channels-last; a trailing
        singleton channel is dropped.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file cannot be decoded, or holds a 3-D stack, a time series or an
        unsupported channel count (the message says how to pick a 2-D plane).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np, tifffile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "cells.tif"
    >>> tifffile.imwrite(path, np.arange(12, dtype=np.uint16).reshape(3, 4))
    >>> img = read_image(path)
    >>> img.shape, img.dtype
    ((3, 4), dtype('uint16'))
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, expected an image file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                image = series.asarray()
                rgb = tif.pages[0].photometric == tifffile.PHOTOMETRIC.RGB
                if series.axes.startswith("S") and image.ndim == 3 and rgb:
                    image = np.moveaxis(image, 0, -1)  # planar RGB(A)
        else:
            import imageio.v3 as iio

            image = iio.imread(path)
    except (OSError, ValueError, RuntimeError, SyntaxError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from exc
    except Exception as exc:  # decoders raise many types on corrupt files
        raise ValueError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from exc
    return check_image(np.asarray(image), name=str(path))


def check_image(image: np.ndarray, *, name: str = "image") -> np.ndarray:
    """Validate an in-memory image and return it as (H, W) or (H, W, 3 | 4).

    The same rules as `read_image`: a trailing singleton channel is dropped; stacks,
    channels-first arrays and other shapes raise a `ValueError` naming ``name``.

    Examples
    --------
    >>> check_image(np.zeros((2, 5, 6), dtype=np.uint8))
    Traceback (most recent call last):
    ...
    ValueError: image: a 3-D stack of shape (2, 5, 6) is not a 2-D image; ...
    """
    image = np.asarray(image)
    if image.dtype.kind not in "uifb" or image.dtype.itemsize > 8:
        raise ValueError(
            f"{name}: unsupported pixel type {image.dtype}; expected {_SUPPORTED_DTYPES}"
        )
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4)):
        if image.size == 0:
            raise ValueError(f"{name}: the image is empty (shape {image.shape})")
        return image
    if image.ndim == 3 and image.shape[-1] == 2:
        raise ValueError(
            f"{name}: 2-channel images (gray + alpha, shape {image.shape}) are not supported; "
            "save the first channel alone or convert to RGB"
        )
    if image.ndim >= 3:
        raise ValueError(
            f"{name}: a {image.ndim}-D stack of shape {image.shape} is not a 2-D image; "
            "labelassist annotates 2-D planes: read the stack with tifffile and pass one plane "
            "(e.g. stack[z]) or a projection (stack.max(axis=0)) as an array; for "
            "channels-first color use np.moveaxis(image, 0, -1)"
        )
    raise ValueError(f"{name}: expected a 2-D image, got shape {image.shape}")
