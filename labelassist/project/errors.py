"""The errors and warnings a labeling project raises beyond ValueError/TypeError.

Each one is a subclass of the built-in exception a caller would already catch
(`RuntimeError`, `PermissionError`, `UserWarning`), so the command line reports it as one
line, and code that does not know these names still handles it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ProjectConflictError",
    "ProjectDamagedError",
    "ProjectReadOnlyError",
    "UnreadableImagesWarning",
]


class ProjectConflictError(RuntimeError):
    """An image's instances changed since they were read; nothing was written.

    Raised by `Project.save_instances` when ``expected_version`` is not the image's current
    version (another process or window saved in between). Read the image again with
    ``Project.instances(image, with_version=True)``, re-apply the edit, and save with the
    new version.
    """


class ProjectReadOnlyError(PermissionError):
    """A write to a project that was opened read-only (no write access to its database).

    Reading (status, images, instances, export, next image) works; every write raises this
    before it changes anything.
    """


class ProjectDamagedError(RuntimeError):
    """The project database is damaged (SQLite reports a malformed or non-database file).

    The message points to ``labelassist project check FOLDER``, which lists what is wrong.
    """


class UnreadableImagesWarning(UserWarning):
    """`Project.add_images` refused files it cannot read as images; the others were added.

    Attributes
    ----------
    refused : list of (Path, str)
        Each refused file and why it cannot be read.
    """

    def __init__(self, message: str, refused: list[tuple[Path, str]]) -> None:
        super().__init__(message)
        self.refused = refused
