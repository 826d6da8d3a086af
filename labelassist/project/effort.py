"""The effort log summarised: action counts and active seconds per image and per training round.

What is recorded, and when, is `labelassist.project.actions`' job; how active time is
measured, `labelassist.project.activity`'s. Here: `log_time` (a front-end reports active
seconds) and `effort` (the summary `Project.effort` returns, plain JSON-able dicts).

Rounds
------
Every entry counts for the training round whose data was being made when it was
recorded: 1 + the number of the latest round recorded then. Round 1 is the work before
the first training round (on the starter model's proposals); round ``k + 1`` the work on
round ``k``'s proposals, which round ``k + 1`` then trains on. An image's ``round`` is the
round it was last accepted in (its ``"reviewed"`` action). A round's ``images`` are the
images accepted in it and ``seconds_per_image`` its active seconds divided by those: the
cost of one finished image with that round's model.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..checks import check_choice, check_int, check_number
from . import schema as _schema
from ._util import placeholders
from .actions import current_round, record_time
from .images import image_id, image_row
from .store import Store

__all__ = ["BY", "effort", "log_time"]

#: How `effort` groups its rows.
BY = ("image", "round")


def log_time(store: Store, image: Any, seconds: float) -> None:
    """Record ``seconds`` of active work at ``image`` (see `Project.log_time`)."""
    seconds = check_number(seconds, "seconds", minimum=0.0)
    number = image_id(image)
    with store.write("log active time") as con:
        image_row(con, number, "id")  # ValueError when missing
        if seconds > 0:
            record_time(con, number, seconds)


def effort(store: Store, *, image: Any = None, round: Any = None, by: str = "image") -> dict:
    """The effort summary `Project.effort` returns."""
    check_choice(by, "by", BY)
    number = None if image is None else image_id(image)
    chosen = check_int(round, "round", minimum=1, allow_none=True)
    clauses, params = [], []
    if number is not None:
        clauses.append("image_id = ?")
        params.append(number)
    if chosen is not None:
        clauses.append("round = ?")
        params.append(chosen)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    key = "image_id" if by == "image" else "round"
    with store.read() as con:
        if number is not None:
            image_row(con, number, "id")  # ValueError when missing
        counts = con.execute(
            f"SELECT {key}, action, count(*) FROM actions{where} GROUP BY {key}, action", params
        ).fetchall()
        seconds = dict(
            con.execute(
                f"SELECT {key}, sum(seconds) FROM active_time{where} GROUP BY {key}", params
            ).fetchall()
        )
        reviewed = _reviewed(con, where, params)
        groups = {g for g, _, _ in counts} | set(seconds)
        if by == "image":
            if number is not None:
                groups.add(number)
            names = _file_names(con, sorted(groups))
        else:
            groups |= set(range(1, current_round(con) + 1))
            if chosen is not None:
                groups = {chosen}
    actions: dict[Any, dict[str, int]] = {g: dict.fromkeys(_schema.ACTIONS, 0) for g in groups}
    for group, action, n in counts:
        actions[group][action] = n
    last_round: dict[int, int] = {}  # image -> the round it was last accepted in
    accepted: dict[int, set[int]] = {}  # round -> the images accepted in it
    for i, r in reviewed:
        last_round[i] = max(r, last_round.get(i, r))
        accepted.setdefault(r, set()).add(i)
    rows = []
    for group in sorted(groups):
        if by == "image":
            row = {"image": group, "file_name": names[group], "round": last_round.get(group)}
            row.update(actions=actions[group], seconds=_seconds(seconds.get(group)))
        else:
            images = len(accepted.get(group, ()))
            row = {"round": group, **_summary(images, actions[group], seconds.get(group))}
        rows.append(row)
    total_actions = dict.fromkeys(_schema.ACTIONS, 0)
    for _, action, n in counts:
        total_actions[action] += n
    total = _summary(len(last_round), total_actions, sum(seconds.values(), 0.0))
    return {"by": by, "rows": rows, "total": total}


def _reviewed(con: sqlite3.Connection, where: str, params: list[Any]) -> list[tuple[int, int]]:
    """``(image, round)`` of every acceptance selected by ``where``."""
    extra = f"{where} AND" if where else " WHERE"
    return [
        (int(i), int(r))
        for i, r in con.execute(
            f"SELECT DISTINCT image_id, round FROM actions{extra} action = 'reviewed'", params
        )
    ]


def _file_names(con: sqlite3.Connection, ids: list[int]) -> dict[int, str]:
    names: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        names.update(
            con.execute(
                f"SELECT id, file_name FROM images WHERE id IN ({placeholders(chunk)})",
                chunk,
            ).fetchall()
        )
    return names


def _seconds(value: float | None) -> float:
    return round(float(value or 0.0), 3)


def _summary(images: int, actions: dict[str, int], seconds: float | None) -> dict[str, Any]:
    """A round's (or the total's) summary: accepted images, actions, active seconds."""
    per = None if images == 0 else _seconds((seconds or 0.0) / images)
    return {
        "images": images,
        "actions": actions,
        "seconds": _seconds(seconds),
        "seconds_per_image": per,
    }
