"""Image sources of a bulk run: what the user passed to `preannotate`, as named images.

`collect_sources` turns ``images`` (a folder, a glob pattern, or a list of paths, folders,
patterns and arrays) into `ImageSource` records with unique dataset file names, using
`labelassist.io.collect_image_paths`, the library's one rule for image paths. `load_source`
decodes one source and reports an unreadable image instead of raising: one bad file never
stops a run of thousands.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io.image import check_image, read_image
from ..io.paths import collect_image_paths

__all__ = ["ImageSource", "PreannotateWarning", "collect_sources", "load_source", "one_line"]


class PreannotateWarning(UserWarning):
    """Some images could not be read or predicted and were skipped."""


@dataclass(frozen=True)
class ImageSource:
    """One input image: its position in the input, its dataset ``file_name``, and where it is.

    Exactly one of ``path`` (an absolute path) and ``array`` is set.
    """

    index: int
    name: str
    path: str | None = None
    array: np.ndarray | None = None


def one_line(exc: BaseException) -> str:
    """``exc``'s message on one line (its type name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _expand(entry: str | os.PathLike, where: str, *, in_list: bool) -> list[str]:
    """The absolute image paths an entry stands for (see `collect_image_paths`).

    In a list, a path that does not exist is kept: it is reported as ``file not found``
    with the other unreadable images (it may exist where a Dask worker reads it).
    """
    text = os.fspath(entry)
    if not isinstance(text, str):
        raise TypeError(f"{where} must be a str path, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"{where} is an empty path; give a folder, a glob pattern or a file")
    try:
        paths = collect_image_paths(text, name=where)
    except FileNotFoundError:
        if not in_list:
            raise
        return [os.path.abspath(os.path.expanduser(text))]
    return [os.path.abspath(p) for p in paths]


def collect_sources(
    images: Any, *, prefer_root: str | os.PathLike | None = None
) -> tuple[list[ImageSource], str | None]:
    """Turn ``images`` into sources with unique file names, and the folder they are under.

    Parameters
    ----------
    images : str, os.PathLike or iterable of paths and ndarrays
        A folder, a glob pattern or a file, or a list of those and of image arrays (see
        `preannotate`). Nothing is opened: files are decoded later by `load_source`.
    prefer_root : str or os.PathLike, optional
        Name paths relative to this folder when it holds all of them.

    Returns
    -------
    sources : list of ImageSource
        In input order; a path listed twice is kept once (with a `PreannotateWarning`).
        Paths are named relative to ``prefer_root`` when it holds all of them, else to the
        deepest folder that does; arrays are named ``array_0000``, ``array_0001``, ... by
        their position.
    root : str or None
        The folder the names are relative to (None when there are no paths).

    Raises
    ------
    FileNotFoundError
        If ``images`` is one path that does not exist.
    ValueError
        If a folder holds no image files or a pattern matches nothing.
    TypeError
        If ``images`` or one of its items is not a path or an array.

    Examples
    --------
    >>> import numpy as np
    >>> sources, root = collect_sources([np.zeros((4, 4)), np.ones((8, 8))])
    >>> [s.name for s in sources], root
    (['array_0000', 'array_0001'], None)
    """
    in_list = not isinstance(images, (str, os.PathLike))
    if not in_list:
        entries: list[Any] = [images]
    elif isinstance(images, np.ndarray):
        raise TypeError("images is a single array; pass a list of arrays ([image]) or of paths")
    elif isinstance(images, (bytes, bytearray)) or not isinstance(images, Iterable):
        raise TypeError(
            f"images must be a folder, a glob pattern, or a list of paths or arrays, "
            f"got {type(images).__name__}"
        )
    else:
        entries = list(images)
    items: list[str | np.ndarray] = []
    for k, entry in enumerate(entries):
        if isinstance(entry, np.ndarray):
            items.append(entry)
        elif isinstance(entry, (str, os.PathLike)):
            where = f"images[{k}]" if in_list else "images"
            items.extend(_expand(entry, where, in_list=in_list))
        else:
            raise TypeError(
                f"images[{k}] is {type(entry).__name__}; expected a path (str or "
                "os.PathLike) or a numpy array"
            )
    return _named(items, prefer_root)


def _named(
    items: list[str | np.ndarray], prefer_root: str | os.PathLike | None
) -> tuple[list[ImageSource], str | None]:
    paths = [p for p in items if isinstance(p, str)]
    root = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else None
    if root is not None and prefer_root is not None:
        preferred = os.path.abspath(prefer_root)
        if os.path.commonpath([root, preferred]) == preferred:
            root = preferred
    sources: list[ImageSource] = []
    seen: set[str] = set()
    duplicates: list[str] = []
    for item in items:
        index = len(sources)
        if isinstance(item, str):
            name = Path(os.path.relpath(item, root)).as_posix()
            if name in seen:
                duplicates.append(name)
                continue
            sources.append(ImageSource(index, name, path=item))
        else:
            name = f"array_{index:04d}"
            sources.append(ImageSource(index, name, array=item))
        seen.add(name)
    if duplicates:
        warnings.warn(
            f"images: {len(duplicates)} duplicate path(s) listed more than once were used "
            f"once: {', '.join(duplicates[:5])}",
            PreannotateWarning,
            stacklevel=4,
        )
    return sources, root


def _not_regular(mode: int) -> str:
    kinds = {
        stat.S_ISDIR: "a folder",
        stat.S_ISFIFO: "a FIFO (named pipe)",
        stat.S_ISSOCK: "a socket",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
    }
    kind = next((name for test, name in kinds.items() if test(mode)), "not a file")
    return f"not a regular file ({kind}); give image files only"


def load_source(
    source: ImageSource, *, any_channels: bool = False
) -> tuple[np.ndarray | None, str | None]:
    """Decode one source: ``(image, None)``, or ``(None, reason)`` when it cannot be read.

    Only regular files are opened: a FIFO or a device named like an image is reported,
    never read (reading it could block forever). With ``any_channels`` (a run that picks
    ``channels``), arrays of shape (H, W, C) are accepted whatever ``C``; the channels
    are picked at prediction.

    Examples
    --------
    >>> import numpy as np
    >>> load_source(ImageSource(0, "array_0000", array=np.zeros((2, 3, 4, 5))))[1]
    'array_0000: a 4-D stack of shape (2, 3, 4, 5) is not a 2-D image; ...'
    """
    try:
        if source.array is not None:
            array = np.asarray(source.array)
            if any_channels and array.ndim == 3 and array.shape[-1] > 1:
                check_image(array[..., 0], name=source.name)  # dtype, emptiness
                return array, None
            return check_image(array, name=source.name), None
        if source.path is None:
            return None, "no path and no array"
        mode = os.stat(source.path).st_mode
        if not stat.S_ISREG(mode):
            return None, _not_regular(mode)
        return read_image(source.path), None
    except FileNotFoundError:
        return None, "file not found"
    except (OSError, ValueError, TypeError, MemoryError) as exc:
        return None, one_line(exc)
    except Exception as exc:  # noqa: BLE001 - a decoder's own error: one image fails alone
        return None, f"{type(exc).__name__}: {one_line(exc)}"
