"""Reading image stacks (z-stacks, time-lapse, channels) from TIFF and OME-TIFF files.

`read_stack` returns the pixels of a file's series with its axes named by a string of the
letters ``T`` (time), ``Z`` (depth), ``C`` (channel), ``Y`` and ``X``, always in the order
``TZCYX`` (ImageJ's hyperstack order; absent axes are left out, e.g. ``"ZYX"``).

Axis letters
------------
tifffile names the axes of a series (from ImageJ, OME or its own metadata); they map to
labelassist's letters as follows:

============  ===========================================  ==============================
tifffile      meaning                                      `read_stack`
============  ===========================================  ==============================
``T Z C``     time, depth, channel                         kept
``Y X``       rows, columns                                kept
``S``         samples of a pixel (RGB, planar or not)      ``C`` (refused next to a ``C``)
``Q`` ``I``   unknown axis, a plain sequence of pages      ``Z`` when it is the only one
                                                           and the file has no ``Z``
others        ``E`` (lambda), ``R`` (tile), ``A`` ...      refused
============  ===========================================  ==============================

A file whose axes are missing or wrong (a 3-plane gray stack written without metadata is
read by tifffile as planar RGB ``SYX``; a time series saved as plain pages reads as
``QYX``) is read with ``axes=`` giving its real letters, one per axis of the file's
series (``read_stack(path, axes="TYX")``).

Lazy reading
------------
Stacks larger than `LAZY_BYTES` (1 GiB; set ``labelassist.io.stack.LAZY_BYTES`` to change
it) are not read into memory: the result is a dask array (``pip install
'labelassist[dask]'``) with one chunk per TIFF page (a plane), decoded only when computed
(``stack[z].compute()`` or ``np.asarray(stack[z])``). Uncompressed contiguous files are
memory-mapped; others keep the file open and decode the pages asked for. ``lazy=True`` or
``lazy=False`` chooses either way regardless of size. tifffile's zarr store (``aszarr``)
would need zarr 3, not a dependency of labelassist; dask wraps the pages directly.
Each plane is checked against the pixel limit of `labelassist.io.read_image`
(`labelassist.io.pixel_limit`) before anything is decoded.
"""

from __future__ import annotations

import math
import os
import stat
import threading
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from .image import MAX_PIXELS_ENV, pixel_limit

__all__ = ["LAZY_BYTES", "STACK_AXES", "read_stack", "stack_axes"]

#: The axis letters of `read_stack` results, in their order.
STACK_AXES = "TZCYX"

#: Stacks larger than this many bytes are returned as lazy dask arrays by `read_stack`.
LAZY_BYTES: int = 1 << 30

_TIFF_SUFFIXES = (".tif", ".tiff")
_UNKNOWN = "QI"  # tifffile's letters for an axis of unknown meaning
_OVERRIDE_LETTERS = "TZCYXS"


def read_stack(
    path: str | os.PathLike,
    *,
    axes: str | None = None,
    series: int = 0,
    lazy: bool | None = None,
) -> tuple[Any, str]:
    """Read an image stack from a TIFF or OME-TIFF file, with its axes.

    Parameters
    ----------
    path : str or os.PathLike
        A TIFF file (``.tif``/``.tiff``, OME-TIFF and ImageJ hyperstacks included).
    axes : str, optional
        The file's axes, one letter of ``TZCYXS`` per axis of the series in the file's own
        order, replacing what the file says (for files without or with wrong metadata).
    series : int
        Which series of the file to read (OME-TIFF files may hold several).
    lazy : bool, optional
        True: a lazy dask array; False: a numpy array; None (default): lazy when the
        stack is larger than `LAZY_BYTES`.

    Returns
    -------
    stack : ndarray or dask.array.Array
        The pixels, file dtype, axes in the order of ``axes_out``.
    axes_out : str
        Axis letters in the order ``TZCYX`` (a subset: ``"ZYX"``, ``"TCYX"``...). A 2-D
        image gives ``"YX"`` (``"CYX"`` for RGB).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Not a regular TIFF file, unreadable, empty, an unsupported pixel type, axes that
        cannot be named (several unknown axes, letters like ``E`` or ``R``, both ``C`` and
        ``S``), a wrong ``axes=``, or planes over the pixel limit.
    ImportError
        A lazy read without dask installed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np, tifffile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "stack.tif"
    >>> data = np.zeros((2, 5, 3, 16, 16), np.uint8)
    >>> tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZCYX"})
    >>> stack, axes = read_stack(path)
    >>> stack.shape, axes
    ((2, 5, 3, 16, 16), 'TZCYX')
    >>> tifffile.imwrite(path, np.zeros((6, 16, 16), np.uint16))  # no axes in the file
    >>> read_stack(path)[1], read_stack(path, axes="TYX")[1]
    ('ZYX', 'TYX')
    """
    path = _check_file(path)
    if lazy is not None and not isinstance(lazy, bool):
        raise ValueError(f"lazy must be True, False or None (by size), got {lazy!r}")
    tif = _open(path, series)
    keep_open = False
    try:
        s, shape, dtype, letters, order, out_axes = _series(tif, series, axes, path)
        nbytes = math.prod(shape) * dtype.itemsize
        if lazy or (lazy is None and nbytes > LAZY_BYTES):
            array = _lazy(tif, series, shape, dtype, path)
            keep_open = s.dataoffset is None  # pages are decoded later from the open file
        else:
            try:
                array = s.asarray()
            except MemoryError:
                raise
            except Exception as exc:  # decoders raise many types on corrupt files
                raise ValueError(f"cannot read stack {path}: {type(exc).__name__}: {exc}") from exc
            array = array.reshape(shape)
    finally:
        if not keep_open:
            tif.close()
    if not isinstance(array, np.ndarray) or array.dtype.isnative:
        return array.transpose(order), out_axes
    return array.astype(array.dtype.newbyteorder("=")).transpose(order), out_axes


def stack_axes(path: str | os.PathLike, *, axes: str | None = None, series: int = 0) -> str:
    """The axes `read_stack` would return for ``path``, from the file's header alone.

    Nothing but the TIFF header is read, so this is cheap for any size: e.g. to tell a
    z-stack or time-lapse (``"T"`` or ``"Z"`` in the result) from a 2-D image (``"YX"``,
    ``"CYX"``). Parameters and errors as `read_stack`'s.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np, tifffile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "movie.tif"
    >>> tifffile.imwrite(path, np.zeros((4, 16, 16), np.uint8), imagej=True,
    ...                  metadata={"axes": "TYX"})
    >>> stack_axes(path)
    'TYX'
    """
    path = _check_file(path)
    tif = _open(path, series)
    try:
        return _series(tif, series, axes, path)[5]
    finally:
        tif.close()


def _open(path: Path, series: Any) -> tifffile.TiffFile:
    if isinstance(series, bool) or not isinstance(series, int) or series < 0:
        raise ValueError(f"series must be an integer >= 0, got {series!r}")
    try:
        return tifffile.TiffFile(path)
    except (OSError, ValueError, RuntimeError, tifffile.TiffFileError) as exc:
        raise ValueError(f"cannot read stack {path}: {exc}") from None


def _series(
    tif: tifffile.TiffFile, series: int, axes: str | None, path: Path
) -> tuple[Any, tuple[int, ...], np.dtype, str, list[int], str]:
    """The checked series: (series, shape, dtype, file letters, order to TZCYX, out axes)."""
    if series >= len(tif.series):
        raise ValueError(
            f"{path} has {len(tif.series)} series; series must be in "
            f"[0, {len(tif.series) - 1}], got {series}"
        )
    s = tif.series[series]
    shape = tuple(int(n) for n in s.shape)
    dtype = np.dtype(s.dtype)
    if dtype.kind not in "uifb" or dtype.itemsize > 8:
        raise ValueError(
            f"{path}: unsupported pixel type {dtype}; expected integers, floats or bool"
        )
    if 0 in shape:
        raise ValueError(f"{path}: the stack is empty (shape {shape})")
    letters = _file_axes(str(s.axes), shape, axes, path)
    order = sorted(range(len(letters)), key=lambda i: STACK_AXES.index(letters[i]))
    out_axes = "".join(letters[i] for i in order)
    _check_plane(shape[letters.index("Y")], shape[letters.index("X")], path)
    return s, shape, dtype, letters, order, out_axes


def _check_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"stack file not found: {path}") from None
    except OSError as exc:
        raise ValueError(f"cannot read stack {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ValueError(f"{path} is a folder, expected a TIFF file")
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path} is not a regular file; expected a TIFF file")
    if path.suffix.lower() not in _TIFF_SUFFIXES:
        raise ValueError(
            f"{path}: read_stack reads TIFF and OME-TIFF files (.tif, .tiff); for a 2-D "
            f"PNG/JPEG image use labelassist.read_image"
        )
    if info.st_size == 0:
        raise ValueError(f"cannot read stack {path}: the file is empty (0 bytes)")
    return path


def _file_axes(file_axes: str, shape: tuple[int, ...], axes: str | None, path: Path) -> str:
    """The file's axes as letters of `STACK_AXES` (see the module notes)."""
    if axes is not None:
        if not isinstance(axes, str):
            raise ValueError(f"axes must be a str like 'ZYX', got {axes!r}")
        given = axes.upper()
        bad = sorted(set(given) - set(_OVERRIDE_LETTERS))
        if len(given) != len(shape) or bad or len(set(given)) != len(given):
            raise ValueError(
                f"axes={axes!r} does not fit {path}: its series has shape {shape} (tifffile "
                f"axes {file_axes!r}); give {len(shape)} distinct letters of "
                f"{_OVERRIDE_LETTERS!r}, one per axis in the file's order"
            )
        letters = given
    else:
        letters = file_axes.upper()
        unknown = [a for a in letters if a in _UNKNOWN]
        if len(unknown) > 1 or (unknown and "Z" in letters):
            raise ValueError(
                f"{path}: the axes {file_axes!r} (shape {shape}) include axes of unknown "
                f"meaning (Q, I); name them: read_stack(path, axes='TZYX') with one letter "
                f"of {_OVERRIDE_LETTERS!r} per axis"
            )
        letters = "".join("Z" if a in _UNKNOWN else a for a in letters)
        other = sorted(set(letters) - set(_OVERRIDE_LETTERS))
        if other:
            raise ValueError(
                f"{path}: axes {other} of {file_axes!r} (shape {shape}) are not supported "
                f"(labelassist reads T, Z, C, Y, X and samples S); pass axes= to rename "
                f"them, or save the planes you need as a TZCYX stack"
            )
    if "S" in letters:
        if "C" in letters:
            raise ValueError(
                f"{path}: axes {letters!r} hold both channels (C) and samples (S); "
                f"labelassist reads one channel axis: split the file by channel"
            )
        letters = letters.replace("S", "C")
    if "Y" not in letters or "X" not in letters:
        raise ValueError(
            f"{path}: axes {letters!r} (shape {shape}) lack Y and X; name the image axes with axes="
        )
    return letters


def _check_plane(height: int, width: int, path: Path) -> None:
    cap = pixel_limit()
    if cap is not None and height * width > cap:
        raise ValueError(
            f"{path}: each plane has {height} x {width} = {height * width:,} pixels, more "
            f"than the limit of {cap:,} (labelassist.io.image.MAX_IMAGE_PIXELS); if it is "
            f"genuine, raise the limit (or the environment variable {MAX_PIXELS_ENV})"
        )


def _lazy(
    tif: tifffile.TiffFile,
    series: int,
    shape: tuple[int, ...],
    dtype: np.dtype,
    path: Path,
) -> Any:
    """A dask array of the series: memory-mapped when contiguous, else one chunk per page."""
    try:
        import dask.array as da  # heavy, optional: the [dask] extra
    except ImportError:
        raise ImportError(
            f"{path} is read lazily (larger than LAZY_BYTES, or lazy=True), which needs "
            "dask: pip install 'labelassist[dask]', or pass lazy=False to read it into memory"
        ) from None
    s = tif.series[series]
    page_shape = tuple(int(n) for n in s.keyframe.shape)
    k = len(page_shape)
    lead = shape[: len(shape) - k]
    if s.dataoffset is not None:
        mapped = tifffile.memmap(path, series=series, mode="r")
        array = da.from_array(mapped.reshape(shape), chunks=(1,) * len(lead) + page_shape)
        return array if dtype.isnative else array.astype(dtype.newbyteorder("="))
    pages = [page for page in s.pages if page is not None]
    if shape[len(lead) :] != page_shape or len(pages) != math.prod(lead):
        # pages that do not map one-to-one onto the series (not seen with tifffile's ImageJ,
        # OME, shaped or generic series; other writers may): one chunk, decoded when used
        from dask import delayed  # heavy, optional: the [dask] extra

        whole = delayed(lambda: s.asarray().reshape(shape).astype(dtype.newbyteorder("=")))
        return da.from_delayed(whole(), shape=shape, dtype=dtype.newbyteorder("="))
    lock = threading.RLock()

    def read_page(block_id: tuple[int, ...]) -> np.ndarray:
        index = int(np.ravel_multi_index(block_id[: len(lead)], lead)) if lead else 0
        with lock:
            plane = pages[index].asarray()
        return plane.reshape((1,) * len(lead) + page_shape).astype(native, copy=False)

    native = dtype.newbyteorder("=")
    chunks = tuple((1,) * n for n in lead) + tuple((n,) for n in page_shape)
    return da.map_blocks(read_page, dtype=native, chunks=chunks)
