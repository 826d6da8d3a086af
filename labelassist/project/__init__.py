"""Labeling projects: a folder with images and a SQLite store of every correction (`Project`).

`Project` is the facade; each job has its module: `store` (database, lock, transactions),
`schema`, `images`, `files`, `annotations`, `exchange` (COCO and label images), `queue`
(next image), `rounds`, `stats`, `actions`, `activity` and `effort` (the effort log),
`integrity` (``labelassist project check``) and `stacks` (z-stacks and time-lapse, planes
as images; `Project`'s stack methods are in `stack_methods`).
"""

from .activity import IDLE_CAP_S, ActivityClock, active_seconds
from .annotations import Revision
from .errors import (
    ProjectConflictError,
    ProjectDamagedError,
    ProjectReadOnlyError,
    UnreadableImagesWarning,
)
from .integrity import check_folder
from .project import SOURCES, STATUSES, Project
from .schema import ACTIONS
from .store import DB_NAME

__all__ = [
    "ACTIONS",
    "DB_NAME",
    "IDLE_CAP_S",
    "ActivityClock",
    "SOURCES",
    "STATUSES",
    "Project",
    "ProjectConflictError",
    "ProjectDamagedError",
    "ProjectReadOnlyError",
    "Revision",
    "UnreadableImagesWarning",
    "active_seconds",
    "check_folder",
]
