"""The errors a labeling project raises beyond ValueError/TypeError."""

from __future__ import annotations

__all__ = ["ProjectConflictError"]


class ProjectConflictError(RuntimeError):
    """An image's instances changed since they were read; nothing was written.

    Raised by `Project.save_instances` when ``expected_version`` is not the image's current
    version (another process or window saved in between). Read the image again, re-apply
    the edit, and save with the new version.
    """
