"""Small helpers of the project store (private): validation, SQL filters, rows to
`Instances`, counters, progress bars."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from ..instances import Instances
from . import schema as _schema

STATUSES = _schema.STATUSES
#: Model scores in ``[low, high)`` count as uncertain for ``next_image``'s stored-score proxy.
UNCERTAIN_BAND = (0.3, 0.8)


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


def check_classes(classes: Any) -> list[str]:
    if isinstance(classes, str) or not isinstance(classes, Iterable):
        raise TypeError(
            f"classes must be a list of class names, got {classes!r}; for one class "
            "write classes=['nucleus']"
        )
    names = list(classes)
    if not names:
        raise ValueError("classes must name at least one class, e.g. classes=['nucleus']")
    for k, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"classes[{k}] must be a non-empty str, got {name!r}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"classes must be unique, got duplicates {dupes}")
    return names


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def status_filter(status: Any) -> list[str] | None:
    """None for every status, else the list of statuses asked for."""
    if status is None or status == "all":
        return None
    values = [status] if isinstance(status, str) else list(status)
    for value in values:
        check_choice(value, "status", (*STATUSES, "all"))
    return values


def split_filter(split: Any) -> str | None:
    if split is None:
        return None
    return check_choice(split, "split", (*_schema.SPLITS, "unassigned"))


def sql_where(status: list[str] | None, split: str | None, prefix: str = "") -> tuple[str, list]:
    clauses, params = [], []
    if status is not None:
        clauses.append(f"{prefix}status IN ({', '.join('?' * len(status))})")
        params.extend(status)
    if split == "unassigned":
        clauses.append(f"{prefix}split IS NULL")
    elif split is not None:
        clauses.append(f"{prefix}split = ?")
        params.append(split)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def instance_ids_of(instances: Instances) -> list[int | None]:
    """The caller's ``extra["instance_id"]`` as ints (None where missing or not positive)."""
    column = instances.extra.get("instance_id")
    if column is None:
        return [None] * len(instances)
    out: list[int | None] = []
    for value in column:
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):
            number = 0
        out.append(number if number > 0 else None)
    return out


def same_geometry(a: shapely.Geometry, b: shapely.Geometry) -> bool:
    return bool(shapely.equals_exact(shapely.normalize(a), shapely.normalize(b), tolerance=1e-9))


def remove_copies(copies: list[Path]) -> None:
    """Delete image copies this project made (never a user's original file)."""
    for copy in copies:
        copy.unlink(missing_ok=True)


def looks_like_sqlite(path: Path) -> bool:
    with open(path, "rb") as f:
        header = f.read(16)
    return header == b"SQLite format 3\x00"


def rows_to_instances(rows: list[tuple], shape: tuple[int, int]) -> Instances:
    """Annotation rows ``(instance_id, label, score, source, wkb)`` to Instances."""
    if not rows:
        return Instances.empty(shape, extra_keys=("source", "instance_id"))
    ids, labels, scores, sources, wkb = zip(*rows, strict=True)
    return Instances(
        shapely.from_wkb(np.array(wkb, dtype=object)),
        np.array(labels, dtype=np.int64),
        np.array(scores, dtype=np.float32),
        shape,
        extra={
            "source": np.array(sources, dtype=str),
            "instance_id": np.array(ids, dtype=np.int64),
        },
    )


def uncertain_fraction(scores: np.ndarray, sources: Sequence[str]) -> float:
    """Fraction of instances made by the model whose score lies in `UNCERTAIN_BAND`."""
    if len(sources) == 0:
        return 0.0
    scores = np.asarray(scores, dtype=np.float64)
    model = np.array([s == "model" for s in sources])
    low, high = UNCERTAIN_BAND
    return float(np.mean(model & (scores >= low) & (scores < high)))


def update_counts(con: sqlite3.Connection, pairs: Iterable[tuple[int, str]], sign: int) -> None:
    tally: dict[tuple[int, str], int] = {}
    for label, source in pairs:
        tally[(int(label), source)] = tally.get((int(label), source), 0) + sign
    con.executemany(
        "INSERT INTO instance_counts (label, source, n) VALUES (?, ?, ?)"
        " ON CONFLICT (label, source) DO UPDATE SET n = n + excluded.n",
        [(label, source, n) for (label, source), n in tally.items()],
    )


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __iter__(self):  # pragma: no cover - not used
        return iter(())


def progress_bar(iterable: Any, enabled: bool, desc: str, total: int | None = None) -> Any:
    """A tqdm bar over ``iterable`` (or a manual one when None) when ``enabled``."""
    if not enabled:
        return iterable if iterable is not None else _NoBar()
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit="image", leave=False)
