"""Reading images: PNG, JPEG, BMP and TIFF, 8/16-bit, float, gray, RGB and RGBA.

`read_image` reads regular files only (a FIFO or a device named ``x.png`` is refused, not
waited on) and never decodes more than `MAX_IMAGE_PIXELS` pixels: the size is read from
the file's header (Pillow for PNG, JPEG and BMP, tifffile for TIFF) and checked before any
pixel is decoded, so a small file declaring a huge image is refused at once.

Raising the limit
-----------------
The limit is one module constant for every format. In Python::

    import labelassist.io.image
    labelassist.io.image.MAX_IMAGE_PIXELS = 1_000_000_000   # or None: no limit

On the command line (and in worker processes, which start from a fresh interpreter), set
the environment variable ``LABELASSIST_MAX_IMAGE_PIXELS`` (an integer; ``0`` or ``none``:
no limit); when set, it takes precedence over the constant. Pillow's own
decompression-bomb check is replaced by this one for the files `read_image` reads.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

__all__ = ["read_image", "check_image", "pixel_limit", "IMAGE_SUFFIXES", "MAX_IMAGE_PIXELS"]

#: File suffixes `read_image` understands (lower case).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

#: The largest image (height x width, whatever the channels) `read_image` decodes: about
#: 13,400 x 13,400, the same number as Pillow's own limit, so PNG and JPEG keep the limit
#: they always had and TIFF gets it too. None: no limit. See the module notes to change it.
MAX_IMAGE_PIXELS: int | None = 178_956_970

#: Environment variable that overrides `MAX_IMAGE_PIXELS` (command line, worker processes).
MAX_PIXELS_ENV = "LABELASSIST_MAX_IMAGE_PIXELS"

_SUPPORTED_DTYPES = "uint8, uint16, int8, int16, int32, float32, float64 or bool"

# Pillow modes whose channels are not RGB(A): converted with Pillow's own colour conversion
_TO_RGB = frozenset({"CMYK", "YCbCr", "LAB", "HSV"})

# Pillow's limit is a global: lifted (for our reads only) under this lock
_PIL_LOCK = threading.Lock()


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a 2-D image from a PNG, JPEG, BMP or TIFF file.

    Parameters
    ----------
    path : str or os.PathLike
        The image file (a regular file; not a folder, FIFO or device).

    Returns
    -------
    image : ndarray of shape (H, W), (H, W, 3) or (H, W, 4)
        Gray, RGB or RGBA with the file's own dtype (uint8, uint16, float32, ...).
        Planar (separate-channel) RGB TIFFs are returned channels-last; a trailing
        singleton channel is dropped; palette images are expanded to RGB(A); CMYK and
        other non-RGB colour spaces are converted to RGB.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is not a regular file, is empty or cannot be decoded; if the image
        has more than `MAX_IMAGE_PIXELS` pixels (checked from the header, before
        decoding); or if it holds a 3-D stack, a time series or an unsupported channel
        count (the message says how to pick a 2-D plane).

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
    try:
        info = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    except OSError as exc:
        raise ValueError(f"cannot read image {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ValueError(f"{path} is a folder, expected an image file")
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(
            f"{path} is not a regular file ({_file_kind(info.st_mode)}); expected an image file"
        )
    if info.st_size == 0:
        raise ValueError(f"cannot read image {path}: the file is empty (0 bytes)")
    cap = pixel_limit()
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            image = _read_tiff(path, cap)
        else:
            image = _read_pillow(path, cap)
    except _Refused as exc:
        raise ValueError(f"{path}: {exc}") from None
    except MemoryError:
        raise
    except (OSError, ValueError, RuntimeError, SyntaxError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from exc
    except Exception as exc:  # decoders raise many types on corrupt files
        raise ValueError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from exc
    return check_image(image, name=str(path))


class _Refused(Exception):
    """A file that decodes but is not accepted (too large, a stack): message as is."""


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a plain file"


def pixel_limit() -> int | None:
    """The pixel limit `read_image` applies now: ``LABELASSIST_MAX_IMAGE_PIXELS`` if set,
    else `MAX_IMAGE_PIXELS`; None: no limit.

    For code that checks an image's size without decoding it (from its header).

    Examples
    --------
    >>> pixel_limit() == MAX_IMAGE_PIXELS or MAX_PIXELS_ENV in os.environ
    True
    """
    text = os.environ.get(MAX_PIXELS_ENV)
    if text is None or not text.strip():
        return MAX_IMAGE_PIXELS
    if text.strip().lower() in ("0", "none"):
        return None
    try:
        value = int(text.strip().replace("_", ""))
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(
            f"{MAX_PIXELS_ENV}={text!r}: expected a number of pixels, or 0 for no limit"
        )
    return value


def _check_size(height: int, width: int, cap: int | None) -> None:
    if cap is not None and height * width > cap:
        raise _Refused(_too_large(f"{height} x {width} = {height * width:,} pixels", cap))


def _too_large(size: str, cap: int) -> str:
    return (
        f"the image has {size}, more than the limit of {cap:,} (MAX_IMAGE_PIXELS); "
        f"if it is genuine, raise the limit (labelassist.io.image.MAX_IMAGE_PIXELS, or the "
        f"environment variable {MAX_PIXELS_ENV}) or cut the image into tiles"
    )


def _read_tiff(path: Path, cap: int | None) -> np.ndarray:
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        shape = tuple(int(s) for s in series.shape)
        rgb = tif.pages[0].photometric == tifffile.PHOTOMETRIC.RGB
        planar = series.axes.startswith("S") and len(shape) == 3 and rgb
        if planar:  # planar RGB(A): returned channels-last
            shape = (*shape[1:], shape[0])
        problem = _shape_problem(shape, np.dtype(series.dtype))
        if problem:  # refused from the header: a large stack is never decoded
            raise _Refused(problem)
        if len(shape) >= 2:
            _check_size(shape[0], shape[1], cap)
        image = series.asarray()
    return np.moveaxis(image, 0, -1) if planar else image


def _read_pillow(path: Path, cap: int | None) -> np.ndarray:
    with _without_pillow_limit():
        im = Image.open(path)  # reads the header only
    with im:
        width, height = im.size
        frames = int(getattr(im, "n_frames", 1))
        if frames > 1 and im.format in ("GIF", "PNG"):  # an animation (APNG, GIF)
            channels = len(im.getbands())
            problem = _shape_problem((frames, height, width, channels), np.dtype(np.uint8))
            raise _Refused(problem or f"an animation of {frames} frames is not a 2-D image")
        _check_size(height, width, cap)
        pic: Image.Image = im
        if pic.mode in ("P", "PA"):
            pic = pic.convert(pic.palette.mode if pic.palette else "RGB")
        elif pic.mode in _TO_RGB:
            pic = pic.convert("RGB")
        elif pic.mode == "I" and im.format == "PNG":  # 16-bit gray PNG
            pic = pic.convert("I;16")
        image = np.asarray(pic)
    if not image.dtype.isnative:
        image = image.astype(image.dtype.newbyteorder("="))
    return image


@contextlib.contextmanager
def _without_pillow_limit() -> Iterator[None]:
    """Pillow's own decompression-bomb check off while a header is read: ours applies.

    Pillow warns above ``PIL.Image.MAX_IMAGE_PIXELS`` and refuses above twice that when
    it opens a file, before the caller sees the size; `read_image` checks the size itself
    right after (`MAX_IMAGE_PIXELS`, by default Pillow's own refusal limit), so one limit
    holds for every format and none warns. Pillow's setting is a global: it is changed
    and restored under a lock, for the header read only (no pixel is decoded then).
    """
    with _PIL_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _shape_problem(shape: tuple[int, ...], dtype: np.dtype) -> str | None:
    """Why an array of ``shape`` and ``dtype`` is not an image, or None."""
    if dtype.kind not in "uifb" or dtype.itemsize > 8:
        return f"unsupported pixel type {dtype}; expected {_SUPPORTED_DTYPES}"
    if len(shape) == 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) == 2 or (len(shape) == 3 and shape[-1] in (3, 4)):
        if 0 in shape:
            return f"the image is empty (shape {shape})"
        return None
    if len(shape) == 3 and shape[-1] == 2:
        return (
            f"2-channel images (gray + alpha, shape {shape}) are not supported; "
            "save the first channel alone or convert to RGB"
        )
    if len(shape) >= 3:
        return (
            f"a {len(shape)}-D stack of shape {shape} is not a 2-D image; "
            "read stacks with labelassist.read_stack(path) (returns the array and its axes) "
            "and predict them with labelassist.stacks.predict_stack, or pass one plane "
            "(stack[z]) or a projection (stack.max(axis=0)) as an array; for channels-first "
            "color use np.moveaxis(image, 0, -1)"
        )
    return f"expected a 2-D image, got shape {shape}"


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
    problem = _shape_problem(image.shape, image.dtype)
    if problem:
        raise ValueError(f"{name}: {problem}")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return image
