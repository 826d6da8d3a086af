"""Labeling projects: a folder with images and a SQLite store of every correction (`Project`)."""

from .errors import ProjectConflictError
from .project import DB_NAME, SOURCES, STATUSES, Project

__all__ = ["DB_NAME", "SOURCES", "STATUSES", "Project", "ProjectConflictError"]
