"""Image files of a labeling project: finding, measuring and copying them (private)."""

from __future__ import annotations

import glob
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

__all__ = ["IMAGE_SUFFIXES", "collect_paths", "image_size", "copy_into", "stored_path"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_GLOB_CHARS = set("*?[")


def collect_paths(paths_or_folder_or_glob: str | os.PathLike | Iterable) -> list[Path]:
    """Expand a folder, a glob pattern or a list of those into image files (sorted
    within each folder/pattern, duplicates kept for the caller to count).

    A folder contributes its files with an image suffix (`IMAGE_SUFFIXES`, not
    recursive); a glob (``**`` recurses) and an explicit file are taken as they are.
    """
    if isinstance(paths_or_folder_or_glob, (str, os.PathLike)):
        items = [paths_or_folder_or_glob]
    else:
        try:
            items = list(paths_or_folder_or_glob)
        except TypeError:
            raise TypeError(
                "paths_or_folder_or_glob must be a path, a folder, a glob pattern or a list "
                f"of those, got {type(paths_or_folder_or_glob).__name__}"
            ) from None
    out: list[Path] = []
    missing: list[str] = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(
                f"paths_or_folder_or_glob holds a {type(item).__name__}; expected paths"
            )
        text = os.fspath(item)
        path = Path(text).expanduser()
        if path.is_dir():
            out.extend(
                sorted(
                    p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                )
            )
        elif path.is_file():
            out.append(path)
        elif _GLOB_CHARS & set(text):
            found = sorted(glob.glob(os.path.expanduser(text), recursive=True))
            files = [Path(p) for p in found if Path(p).is_file()]
            if not files:
                missing.append(f"{text} (pattern matches no file)")
            out.extend(files)
        else:
            missing.append(text)
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise FileNotFoundError(f"no such image file or folder: {shown}")
    return out


def _tiff_size(path: Path) -> tuple[int, int]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes, shape = series.axes, series.shape
    if "Y" in axes and "X" in axes:
        return int(shape[axes.index("Y")]), int(shape[axes.index("X")])
    raise ValueError(f"TIFF axes {axes!r} have no Y and X")


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image file, from its header where possible.

    Raises ``ValueError`` (or ``OSError``) when the file cannot be read as an image.
    """
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        return _tiff_size(path)
    try:
        from PIL import Image

        with Image.open(path) as im:  # reads the header only
            width, height = im.size
        return int(height), int(width)
    except Exception as exc:
        if suffix in IMAGE_SUFFIXES:  # a format PIL reads: the file is broken
            raise ValueError(f"not a readable {suffix} image ({exc})") from None
        from ..io.image import read_image  # another format: let the full reader try

        image = read_image(path)
        return int(image.shape[0]), int(image.shape[1])


def stored_path(path: Path, folder: Path) -> str:
    """``path`` as stored in the database: relative to the project ``folder`` when
    possible (POSIX separators), absolute otherwise (another drive on Windows)."""
    try:
        return Path(os.path.relpath(path, folder)).as_posix()
    except ValueError:
        return path.as_posix()


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
