"""The effort log's records: what a person did to each instance, written by the call that did it.

Every entry has the image, the instance (its stable ``instance_id``; None for an image's
``"reviewed"``), the image version it made, a UTC time stamp and the training *round* it
counts for: 1 + the number of rounds recorded before it (the effort of labelling the images
that round ``k + 1`` will train on, made with round ``k``'s proposals; see
`labelassist.project.effort`). The functions here run inside the caller's write
transaction, so an action is recorded exactly when its save (or status change) is.

Which save records which action (`Change`, `actions_of`): a save with source
``"corrected"`` or ``"prompted"`` (an *edit*, see `EDIT_SOURCES`) is compared with the
version it replaces, instance by instance (by ``instance_id``):

==============  ====================================================================
action          recorded for
==============  ====================================================================
``deleted``     an instance of the replaced version that the save no longer has
``drawn``       a new instance (no known ``instance_id``), drawn by hand
``prompted``    a new instance added by a prompt: the save's source is ``"prompted"``,
                or the instance's ``extra["source"]`` says ``"prompted"``
``edited``      a kept instance whose geometry changed (vertices moved)
``relabelled``  a kept instance whose label changed (both may be recorded)
``refined``     an instance whose ``extra["refined"]`` is True (edge refinement since
                the version the edit started from, as `labelassist.refine_edges` marks
                it): a kept one whose geometry changed (instead of ``edited``), or a
                new one (besides ``drawn``/``prompted``)
``accepted``    when the image is accepted (status becomes ``"reviewed"``): each
                instance never changed since the model made it (source ``"model"``),
                once per instance
``reviewed``    when the image is accepted (per image, ``instance_id`` None)
==============  ====================================================================

Saves with source ``"model"`` or ``"human"`` (pre-annotation, COCO and label-image
imports) record nothing: they are not a person's edits. ``undo`` records nothing either
(the undone work was done).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import NamedTuple

from . import schema as _schema

__all__ = [
    "EDIT_SOURCES",
    "INSTANCE_ACTIONS",
    "Change",
    "actions_of",
    "current_round",
    "record_actions",
    "record_review",
    "record_time",
]

#: Save sources that are a person's edits (their actions are recorded).
EDIT_SOURCES = ("corrected", "prompted")
#: The per-instance actions (`schema.ACTIONS` without the image's ``"reviewed"``).
INSTANCE_ACTIONS = tuple(a for a in _schema.ACTIONS if a != "reviewed")


class Change(NamedTuple):
    """How one instance of an edit save differs from the version it replaces."""

    new: bool  # no known instance_id: drawn or prompted now
    relabelled: bool = False
    reshaped: bool = False


def actions_of(change: Change, *, source: str, refined: bool) -> list[str]:
    """The actions one instance of an edit save records (see the module docstring).

    ``source`` is the instance's provenance as stored (``"prompted"`` or ``"human"``
    for a new one); ``refined`` its ``extra["refined"]``.

    Examples
    --------
    >>> actions_of(Change(new=True), source="prompted", refined=True)
    ['prompted', 'refined']
    >>> actions_of(Change(new=False, relabelled=True, reshaped=True), source="corrected",
    ...            refined=False)
    ['relabelled', 'edited']
    >>> actions_of(Change(new=False), source="model", refined=True)
    []
    """
    if change.new:
        added = "prompted" if source == "prompted" else "drawn"
        return [added, "refined"] if refined else [added]
    out = ["relabelled"] if change.relabelled else []
    if change.reshaped:
        out.append("refined" if refined else "edited")
    return out


def current_round(con: sqlite3.Connection) -> int:
    """The round effort counts for now: 1 + the number of the latest recorded round."""
    (latest,) = con.execute("SELECT coalesce(max(round), 0) FROM rounds").fetchone()
    return int(latest) + 1


def record_actions(
    con: sqlite3.Connection, image: int, version: int, actions: Iterable[tuple[int | None, str]]
) -> int:
    """Record ``(instance_id, action)`` pairs of ``image`` made by ``version``; return
    how many (inside the caller's write transaction)."""
    stamp, number = _schema.now(), current_round(con)
    rows = [(image, instance, action, version, number, stamp) for instance, action in actions]
    con.executemany(
        "INSERT INTO actions (image_id, instance_id, action, version, round, created)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    return len(rows)


def record_review(con: sqlite3.Connection, image: int) -> int:
    """Record that ``image`` was accepted: ``"accepted"`` for each current instance of
    source ``"model"`` not accepted before, and ``"reviewed"``; return the number of
    instances accepted (inside the caller's write transaction)."""
    (version,) = con.execute("SELECT version FROM images WHERE id = ?", (image,)).fetchone()
    unchanged = [
        row[0]
        for row in con.execute(
            "SELECT a.instance_id FROM annotations a WHERE a.image_id = ? AND a.version = ?"
            " AND a.source = 'model' AND NOT EXISTS (SELECT 1 FROM actions x WHERE"
            " x.image_id = a.image_id AND x.action = 'accepted'"
            " AND x.instance_id = a.instance_id) ORDER BY a.id",
            (image, version),
        )
    ]
    pairs: list[tuple[int | None, str]] = [(i, "accepted") for i in unchanged]
    record_actions(con, image, version, [*pairs, (None, "reviewed")])
    return len(unchanged)


def record_time(con: sqlite3.Connection, image: int, seconds: float) -> None:
    """Record ``seconds`` of active work at ``image`` (inside the caller's transaction)."""
    con.execute(
        "INSERT INTO active_time (image_id, seconds, round, created) VALUES (?, ?, ?, ?)",
        (image, float(seconds), current_round(con), _schema.now()),
    )
