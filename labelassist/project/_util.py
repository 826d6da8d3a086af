"""Small helpers shared by the project modules (private): filters, JSON, progress bars."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..checks import check_choice
from . import schema as _schema


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays as plain JSON values (metrics often hold them)."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def json_dumps_checked(value: Any, name: str) -> str:
    try:
        return json.dumps(value, allow_nan=False, sort_keys=True, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be JSON-serializable (finite numbers): {exc}") from None


def status_filter(status: Any) -> list[str] | None:
    """None for every status, else the list of statuses asked for."""
    if status is None or status == "all":
        return None
    values = [status] if isinstance(status, str) else list(status)
    for value in values:
        check_choice(value, "status", (*_schema.STATUSES, "all"))
    return values


def split_filter(split: Any) -> str | None:
    if split is None:
        return None
    return check_choice(split, "split", (*_schema.SPLITS, "unassigned"))


def sql_where(
    status: list[str] | None, split: str | None, prefix: str = ""
) -> tuple[str, list[Any]]:
    """`` WHERE ...`` (or "") and its parameters selecting ``status`` and ``split``."""
    clauses: list[str] = []
    params: list[Any] = []
    if status is not None:
        clauses.append(f"{prefix}status IN ({', '.join('?' * len(status))})")
        params.extend(status)
    if split == "unassigned":
        clauses.append(f"{prefix}split IS NULL")
    elif split is not None:
        clauses.append(f"{prefix}split = ?")
        params.append(split)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def placeholders(values: list[Any]) -> str:
    """``?, ?, ?`` for an SQL ``IN (...)`` of ``values``."""
    return ", ".join("?" * len(values))


def listed(items: Sequence[str], limit: int = 5) -> str:
    """The first ``limit`` items joined by ``"; "``, and how many more there are."""
    more = f"; and {len(items) - limit} more" if len(items) > limit else ""
    return "; ".join(items[:limit]) + more


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(iterable: Any, enabled: bool, desc: str, total: int | None = None) -> Any:
    """A tqdm bar over ``iterable`` (or a manual one when None) when ``enabled``."""
    if not enabled:
        return iterable if iterable is not None else _NoBar()
    from tqdm.auto import tqdm  # heavy-ish (65 ms): imported only when a bar is shown

    return tqdm(iterable, desc=desc, total=total, unit="image", leave=False)
