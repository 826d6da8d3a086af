"""Labeling projects: a folder with images and a SQLite store of every correction (`Project`).

`Project` is the facade; each job has its module: `store` (database, lock, transactions),
`schema`, `images`, `files`, `annotations`, `exchange` (COCO and label images), `queue`
(next image), `rounds`, `stats` and `integrity` (``labelassist project check``).
"""

from .annotations import Revision
from .errors import (
    ProjectConflictError,
    ProjectDamagedError,
    ProjectReadOnlyError,
    UnreadableImagesWarning,
)
from .integrity import check_folder
from .project import SOURCES, STATUSES, Project
from .store import DB_NAME

__all__ = [
    "DB_NAME",
    "SOURCES",
    "STATUSES",
    "Project",
    "ProjectConflictError",
    "ProjectDamagedError",
    "ProjectReadOnlyError",
    "Revision",
    "UnreadableImagesWarning",
    "check_folder",
]
