"""The exception for a broken COCO file: `CocoFormatError`."""

from __future__ import annotations

__all__ = ["CocoFormatError"]


class CocoFormatError(ValueError):
    """A COCO file is broken; the message names the file, the record and the problem.

    A subclass of ``ValueError``, so ``except ValueError`` catches it too.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from labelassist.coco import read_coco
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "empty.json"
    >>> _ = path.write_text("")
    >>> try:
    ...     read_coco(path)
    ... except CocoFormatError as error:
    ...     print(str(error).endswith("empty.json: the file is empty; expected a COCO JSON object"))
    True
    """
