"""Finding image files: folders, glob patterns and lists of paths, one rule everywhere.

`collect_image_paths` is what `preannotate`, `Project.add_images` and the command line use
to turn what a user typed into image files, so an empty folder or a mistyped path gets the
same answer wherever it is given.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .image import IMAGE_SUFFIXES

__all__ = ["collect_image_paths"]


def _expand(text: str, where: str) -> list[Path]:
    if not text.strip():
        raise ValueError(f"{where} is an empty path; give a file, a folder or a glob pattern")
    path = Path(text).expanduser()
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
        )
        if not files:
            raise ValueError(
                f"{where}: folder {text!r} holds no image files ({', '.join(IMAGE_SUFFIXES)}); "
                "check the path"
            )
        return files
    if path.exists():
        return [path]
    if glob.has_magic(text):
        found = sorted(glob.glob(os.path.expanduser(text), recursive=True))
        files = [Path(p) for p in found if os.path.isfile(p)]
        if not files:
            raise ValueError(f"{where}: the pattern {text!r} matches no files; check the pattern")
        return files
    raise FileNotFoundError(f"{where}: no such image file or folder: {text!r}")


def collect_image_paths(images: Any, *, name: str = "images") -> list[Path]:
    """Expand a folder, a glob pattern, a file, or a list of those into image paths.

    - a folder gives its files with an image suffix (``IMAGE_SUFFIXES``, not recursive),
      sorted; hidden files (``.name``: temp files being written, macOS ``._name``
      resource forks) are skipped, as a glob pattern skips them; a folder with none is an
      error;
    - a glob pattern gives the files it matches, sorted (``**`` recurses); no match is an
      error;
    - an existing path is taken as it is (whatever its suffix: the reader decides);
    - a missing path is an error.

    Order follows the input; duplicates are kept for the caller to count.

    Parameters
    ----------
    images : str, os.PathLike or iterable of those
    name : str
        The parameter's name in error messages.

    Returns
    -------
    list of Path

    Raises
    ------
    FileNotFoundError
        A path that does not exist (and is not a pattern).
    ValueError
        A folder without image files, or a pattern that matches nothing.
    TypeError
        Something that is not a path.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for n in ("b.png", "a.tif", "notes.txt"):
    ...     _ = (folder / n).write_bytes(b"")
    >>> [p.name for p in collect_image_paths(folder)]
    ['a.tif', 'b.png']
    >>> [p.name for p in collect_image_paths(str(folder / "*.png"))]
    ['b.png']
    """
    if isinstance(images, (str, os.PathLike)):
        return _expand(os.fspath(images), name)
    if isinstance(images, (bytes, bytearray)) or not isinstance(images, Iterable):
        raise TypeError(
            f"{name} must be a folder, a glob pattern, a file or a list of those, "
            f"got {type(images).__name__}"
        )
    items = list(images)
    for k, item in enumerate(items):
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(
                f"{name}[{k}] is {type(item).__name__}; expected a path (str or os.PathLike)"
            )
    out: list[Path] = []
    for k, item in enumerate(items):
        out.extend(_expand(os.fspath(item), f"{name}[{k}]"))
    return out
