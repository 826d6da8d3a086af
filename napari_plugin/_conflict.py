"""What to save when an image changed since the Review widget read it: reload, keep mine, merge.

The Review widget always saves with the version it read (``expected_version``). When
another window or process saved the image in between, the project refuses the save and
writes nothing (`labelassist.ProjectConflictError`); the user then chooses one of
`CONFLICT_CHOICES`:

``"reload"``
    Drop my unsaved edits and show their version.
``"keep mine"``
    Save my version over theirs: the image becomes exactly what I see (theirs stays in
    the image's history).
``"merge"``
    Their version plus the instances I *added* since I read the image (the shapes I drew).
    Theirs win everywhere else: my changes to, relabellings and deletions of instances
    that existed when I read the image are dropped (choose "keep mine" to keep those).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from labelassist.instances import Instances

__all__ = ["CONFLICT_CHOICES", "instances_to_save"]

CONFLICT_CHOICES = ("reload", "keep mine", "merge")


def instances_to_save(
    choice: str, *, mine: Instances, theirs: Instances, read_ids: Iterable[int]
) -> Instances | None:
    """The instances to save for a conflict resolution `choice` (None: save nothing).

    Parameters
    ----------
    choice : {"reload", "keep mine", "merge"}
        See the module docstring.
    mine : Instances
        What the user sees (from the layer), with ``extra["instance_id"]``.
    theirs : Instances
        The image's current instances in the project, with ``extra["instance_id"]``.
    read_ids : iterable of int
        The instance ids of the version the user read (or last saved).

    Returns
    -------
    Instances or None
        None for ``"reload"``. Otherwise instances whose only extra column is
        ``instance_id``; the instances I added get ``-1`` (new to the project), so they
        are never taken for an instance the other side created meanwhile.

    Examples
    --------
    >>> import shapely
    >>> read = Instances([shapely.box(0, 0, 2, 2)], [0], [1.0], (8, 8),
    ...                  extra={"instance_id": [5]})
    >>> theirs = Instances.concat([read, read.replace(extra={"instance_id": [9]})])
    >>> mine = Instances.concat([read, read.replace(extra={"instance_id": [6]})])
    >>> instances_to_save("merge", mine=mine, theirs=theirs, read_ids=[5]).extra["instance_id"]
    array([ 5,  9, -1])
    >>> instances_to_save("keep mine", mine=mine, theirs=theirs, read_ids=[5]).extra
    {'instance_id': array([ 5, -1])}
    """
    if choice not in CONFLICT_CHOICES:
        raise ValueError(f"choice must be one of {list(CONFLICT_CHOICES)}, got {choice!r}")
    if choice == "reload":
        return None
    mine = _ids_only(mine)
    ids = mine.extra["instance_id"]
    added = ~np.isin(ids, np.fromiter(read_ids, dtype=np.int64))
    mine = mine.replace(extra={"instance_id": np.where(added, -1, ids)})
    if choice == "keep mine":
        return mine
    return Instances.concat([_ids_only(theirs), mine[added]])


def _ids_only(instances: Instances) -> Instances:
    ids = instances.extra.get("instance_id")
    ids = np.full(len(instances), -1) if ids is None else np.asarray(ids, dtype=np.int64)
    return instances.replace(extra={"instance_id": ids.astype(np.int64)})
