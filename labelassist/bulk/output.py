"""The result of a bulk run: outcomes gathered into a dataset, saved to ``out``, resumed from it.

`Collector` turns each batch's outcomes into image records and instances and rewrites the
COCO file ``out`` (atomically) every so often; ``info["failed"]`` in that file lists the
images that could not be read or predicted, with the reason. `read_previous` reads such a
file back, so that a re-run only does what is left: images done before are kept, and images
that failed before are not tried again unless asked.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..coco.read import Dataset, read_coco
from ..instances import Instances
from ..stacks import StackInstances
from .batch import Outcome
from .sources import ImageSource, PreannotateWarning

__all__ = [
    "Collector",
    "PreannotateResult",
    "Previous",
    "assign_ids",
    "check_out",
    "check_out_writable",
    "read_previous",
]

logger = logging.getLogger(__name__)

#: at most this share of a run's time goes to rewriting ``out`` (see ``flush_every``)
_MAX_FLUSH_SHARE = 0.1
#: writes faster than this are never delayed
_SLOW_FLUSH_SECONDS = 1.0


class PreannotateResult(Dataset):
    """The `Dataset` `preannotate` returns, plus the images it could not do.

    Attributes
    ----------
    failed : list of (str, str)
        ``(file_name, reason)`` of each image that could not be read or predicted, in
        input order (images that failed in an earlier run on the same ``out`` and were not
        tried again come first). Not part of equality: two results are equal when their
        categories, images and instances are.
    stacks : dict of str to StackInstances
        The z-stacks and time-lapses among the inputs (TIFF files with a ``T`` or ``Z``
        axis), by file name: their objects linked over the planes. They are not among
        ``images``; with ``out`` each is saved in its own COCO video file, listed in
        ``out``'s ``info["stacks"]`` (`labelassist.bulk.stacks`). Not part of equality.

    Examples
    --------
    >>> result = PreannotateResult(["cell"], [], failed=[("a.png", "file not found")])
    >>> len(result), result.failed
    (0, [('a.png', 'file not found')])
    """

    def __init__(
        self,
        categories: Sequence[str],
        images: Sequence[Mapping[str, Any]],
        instances: Mapping[int, Instances] | None = None,
        *,
        image_root: str | os.PathLike | None = None,
        failed: Sequence[tuple[str, str]] = (),
        keypoints: Sequence[str] | None = None,
        skeleton: Sequence[tuple[int, int]] | None = None,
        stacks: Mapping[str, StackInstances] | None = None,
    ) -> None:
        super().__init__(
            categories,
            images,
            instances,
            image_root=image_root,
            keypoints=keypoints,
            skeleton=skeleton,
        )
        self.failed: list[tuple[str, str]] = list(failed)
        self.stacks: dict[str, StackInstances] = dict(stacks or {})


# -- the out file ---------------------------------------------------------------------------


def check_out(out: Any) -> Path | None:
    """``out`` as a path, or a one-line error when it cannot be a COCO file to write."""
    if out is None:
        return None
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a path to a .json file (str or os.PathLike), got {out!r}")
    text = os.fspath(out)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"out must be a path to a .json file, got {out!r}")
    path = Path(text).expanduser()
    if path.is_dir():
        raise ValueError(f"out: {text!r} is a folder; give a .json file path")
    if path.exists() and not path.is_file():
        raise ValueError(f"out: {text!r} is not a regular file; give a .json file path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(
                    f"out: {text!r} cannot be created: {str(parent)!r} is a file, not a folder"
                )
            break
    return path


def check_out_writable(out: Path) -> None:
    """Create ``out``'s folder and try writing in it: fail now, not after hours of work."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".probe", dir=out.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise type(exc)(
            f"out: cannot write in {str(out.parent)!r} ({exc.strerror or exc}); "
            "choose a writable folder"
        ) from exc


@dataclass
class Previous:
    """What an earlier run left in ``out``: the images done, the images that failed, and
    the files of its stacks (file name -> path relative to ``out``'s folder)."""

    done: Dataset | None = None
    failed: list[tuple[str, str]] = field(default_factory=list)
    stacks: dict[str, str] = field(default_factory=dict)

    @property
    def ids(self) -> dict[str, int]:
        """``file_name -> id`` of the images done."""
        if self.done is None:
            return {}
        return {r["file_name"]: int(r["id"]) for r in self.done.images}

    def left_to_do(
        self, sources: Sequence[ImageSource], *, retry_failed: bool
    ) -> list[ImageSource]:
        """The sources neither done nor failed before. With ``retry_failed``, the sources
        that failed before are left to do again (and their old failures forgotten)."""
        if retry_failed:
            names = {s.name for s in sources}
            self.failed = [(n, r) for n, r in self.failed if n not in names]
        skip = set(self.ids) | {name for name, _ in self.failed}
        return [s for s in sources if s.name not in skip]


def _read_info(out: Path) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """``info["failed"]`` and ``info["stacks"]`` of a COCO file written by `preannotate`
    (empty when absent)."""
    with open(out, encoding="utf-8-sig") as f:
        data = json.load(f)
    info = data.get("info") if isinstance(data, dict) else None
    entries = info.get("failed") if isinstance(info, dict) else None
    stacks = info.get("stacks") if isinstance(info, dict) else None
    failed = [
        (entry[0], entry[1])
        for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, list) and len(entry) == 2 and all(isinstance(e, str) for e in entry)
    ]
    files = {
        k: v
        for k, v in (stacks.items() if isinstance(stacks, dict) else [])
        if isinstance(k, str) and isinstance(v, str)
    }
    return failed, files


def read_previous(out: Path, classes: Sequence[str]) -> Previous:
    """The results an earlier run wrote to ``out`` (nothing when it does not exist)."""
    if not out.exists():
        return Previous()
    done = read_coco(out)
    if list(done.categories) != list(classes):
        raise ValueError(
            f"out: {str(out)!r} holds results for classes {list(done.categories)}, but the "
            f"model predicts {list(classes)}; pass another out path or delete the file"
        )
    names = {r["file_name"] for r in done.images}
    failed, stacks = _read_info(out)
    failed = [(name, reason) for name, reason in failed if name not in names]
    return Previous(done, failed, stacks)


def assign_ids(sources: Sequence[ImageSource], taken: dict[str, int]) -> dict[str, int]:
    """Image ids: ``index + 1`` (as in an uninterrupted run) unless an earlier run took it."""
    ids = dict(taken)
    used = set(taken.values())
    clashes = []
    for src in sources:
        if src.name in ids:
            continue
        if src.index + 1 in used:
            clashes.append(src)
        else:
            ids[src.name] = src.index + 1
    next_id = max([*ids.values(), 0]) + 1
    for src in clashes:
        ids[src.name] = next_id
        next_id += 1
    return ids


# -- collecting ---------------------------------------------------------------------------------


class Collector:
    """Gathers outcomes into image records, instances and failures; flushes them to ``out``.

    ``order`` maps file names to input positions (failures are listed in that order);
    ``previous`` is what an earlier run left in ``out``.
    """

    def __init__(
        self,
        classes: Sequence[str],
        root: str | None,
        ids: dict[str, int],
        order: Mapping[str, int],
        previous: Previous,
        out: Path | None,
        flush_every: int,
        bar: Any,
        *,
        keypoints: Sequence[str] | None = None,
        skeleton: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        self.classes = list(classes)
        self.keypoints = None if keypoints is None else list(keypoints)
        self.skeleton = None if skeleton is None else [(int(a), int(b)) for a, b in skeleton]
        self.root = root
        self.ids = ids
        self.order = dict(order)
        self.out = out
        self.flush_every = flush_every
        self.bar = bar
        self.records: dict[int, dict] = {}
        self.instances: dict[int, Instances] = {}
        self.failed: dict[str, str] = dict(previous.failed)
        self.stacks: dict[str, StackInstances] = {}
        self.stack_files: dict[str, str] = dict(previous.stacks)
        # inputs of this run that failed in an earlier one and are not tried again
        self.carried = sum(1 for name in self.failed if name in self.order)
        self.unflushed = 0
        self.flush_seconds = 0.0  # how long the last flush took
        self.flushed_at = time.perf_counter()
        done = previous.done
        if done is not None:
            for record in done.images:
                image_id = int(record["id"])
                self.records[image_id] = dict(record)
                self.instances[image_id] = done.instances.get(
                    image_id, Instances.empty((record["height"], record["width"]))
                )

    def emit(self, outcomes: list[Outcome]) -> None:
        """Record one batch's outcomes; flush ``out`` when due."""
        for o in outcomes:
            name = o.source.name
            if o.error is not None or o.instances is None or o.shape is None:
                self.failed[name] = o.error or "no result"
                continue
            self.failed.pop(name, None)  # tried again, and done this time
            image_id = self.ids[name]
            height, width = o.shape
            self.records[image_id] = {
                "id": image_id,
                "file_name": name,
                "height": height,
                "width": width,
            }
            self.instances[image_id] = o.instances
        self.unflushed += len(outcomes)
        self.bar.update(len(outcomes))
        if self.out is not None and self.unflushed >= self.flush_every and self._flush_due():
            self.flush()

    def emit_stack(
        self,
        source: ImageSource,
        objects: StackInstances | None,
        error: str | None,
        saved: Path | None,
    ) -> None:
        """Record one stack's objects (saved in the file ``saved``) or why it failed;
        flush ``out``."""
        name = source.name
        if objects is None:
            self.failed[name] = error or "no result"
        else:
            self.failed.pop(name, None)
            self.stacks[name] = objects
            if saved is not None and self.out is not None:
                self.stack_files[name] = Path(os.path.relpath(saved, self.out.parent)).as_posix()
        self.bar.update(1)
        self.unflushed += 1
        if self.out is not None:
            self.flush()

    def _flush_due(self) -> bool:
        """Each flush rewrites the whole file, which grows with the run: flush less often
        than every ``flush_every`` images when needed to keep flushing under
        `_MAX_FLUSH_SHARE` of the run time."""
        if self.flush_seconds < _SLOW_FLUSH_SECONDS:
            return True
        since = time.perf_counter() - self.flushed_at
        return since >= self.flush_seconds * (1.0 / _MAX_FLUSH_SHARE - 1.0)

    def failures(self) -> list[tuple[str, str]]:
        """``(file_name, reason)`` of the failed images: earlier runs' other inputs first,
        then in input order."""
        return sorted(self.failed.items(), key=lambda item: self.order.get(item[0], -1))

    def dataset(self) -> PreannotateResult:
        """Everything so far, images in id order."""
        ids = sorted(self.records)
        return PreannotateResult(
            self.classes,
            [self.records[i] for i in ids],
            {i: self.instances[i] for i in ids},
            image_root=self.root,
            failed=self.failures(),
            keypoints=self.keypoints,
            skeleton=self.skeleton,
            stacks=self.stacks,
        )

    def flush(self) -> None:
        """Write everything so far to ``out`` (`write_coco` is atomic: temp + `os.replace`)."""
        if self.out is None:
            raise RuntimeError("Collector.flush needs an out path")
        info: dict[str, Any] = {
            "description": "model proposals written by labelassist preannotate",
            "date_created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "image_root": self.root,
            "failed": [list(f) for f in self.failures()],
        }
        if self.stack_files:
            info["stacks"] = dict(sorted(self.stack_files.items()))
        start = time.perf_counter()
        self.dataset().to_coco(self.out, info=info)
        self.flushed_at = time.perf_counter()
        self.flush_seconds = self.flushed_at - start
        self.unflushed = 0
        logger.debug("preannotate: wrote %d images to %s", len(self.records), self.out)

    def warn_failed(self) -> None:
        """A `PreannotateWarning` listing the failed images, if any."""
        failed = self.failures()
        if not failed:
            return
        total = len(self.records) + len(failed)
        lines = "\n".join(f"  {name}: {reason}" for name, reason in failed)
        earlier = ""
        if self.carried:
            earlier = (
                f"; {self.carried} of them failed in an earlier run (recorded in {self.out}) "
                "and were not tried again: pass retry_failed=True to retry them"
            )
        warnings.warn(
            f"preannotate: {len(failed)} of {total} images could not be read or predicted "
            f"and were skipped{earlier}:\n{lines}",
            PreannotateWarning,
            stacklevel=3,
        )
