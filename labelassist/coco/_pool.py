"""The worker pool of `write_coco` (private): where annotations are converted.

`_Annotations` converts chunks in this process, `_ParallelAnnotations` in a pool of
spawned worker processes (which import this module to run `_convert_wkb`). Both take
chunks of ``(image_id, Instances)`` in order and append their annotations' JSON text to
the binary file of the annotation section, with ids from 1; the file is the same whatever
the number of workers.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from typing import IO

import shapely

from ..instances import Instances
from ._convert import _chunk_columns, _convert_chunk, _convert_columns
from ._emit import _renumber


class _Annotations:
    """Converts chunks in this process and writes their annotations to ``side`` in order,
    with ids from 1 (the annotation part of `labelassist.coco.write._stream`)."""

    def __init__(self, side: IO[bytes], segmentation: str) -> None:
        self.side = side
        self.segmentation = segmentation
        self.next_id = 1
        self.skipped = 0

    def add(self, chunk: list[tuple[int, Instances]], size: int) -> None:
        """Convert and write a chunk of ``size`` instances."""
        converted, skipped = _convert_chunk(chunk, self.next_id, self.segmentation)
        self._write(converted.json().encode("utf-8"), len(converted.categories), skipped)

    def _write(self, text: bytes, n: int, skipped: int) -> None:
        if n:  # one write per chunk
            self.side.write(text if self.next_id == 1 else b",\n" + text)
            self.next_id += n
        self.skipped += skipped

    def finish(self) -> None:
        """Write what is still pending."""

    def abort(self) -> None:
        """Stop without writing (an error or an interrupt)."""


class _ParallelAnnotations(_Annotations):
    """`_Annotations` converting in ``workers`` processes (spawned: no fork of a host with
    threads), at most ``2 * workers`` chunks in flight; written in order as they finish.

    A chunk is sent as columns with WKB geometries (`_wkb_columns`; pickling shapely
    objects is a hundred times slower) and comes back as JSON bytes. Its ids are given up front,
    supposing that the chunks before it skip no instance; when some did, its text is
    renumbered (`_renumber`), so ids are those of the in-process conversion.
    """

    def __init__(self, side: IO[bytes], segmentation: str, workers: int) -> None:
        super().__init__(side, segmentation)
        context = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_ignore_sigint)
        self.window = 2 * workers
        self.pending: deque[tuple[Future, int, int]] = deque()  # (future, first id, instances)

    def add(self, chunk: list[tuple[int, Instances]], size: int) -> None:
        if size == 0:  # nothing to write, nothing skipped
            return
        first_id = self.next_id + sum(n for _, _, n in self.pending)
        columns = _wkb_columns(chunk)
        future = self.pool.submit(_convert_wkb, columns, first_id, self.segmentation)
        self.pending.append((future, first_id, size))
        while len(self.pending) >= self.window:
            self._take()

    def _take(self) -> None:
        future, first_id, _ = self.pending.popleft()
        text, n, skipped = future.result()  # a worker's exception is raised here, as it was
        if n and first_id != self.next_id:
            text = _renumber(text, self.next_id)
        self._write(text, n, skipped)

    def finish(self) -> None:
        while self.pending:
            self._take()
        self.pool.shutdown()

    def abort(self) -> None:
        # the workers finish the chunk they hold (a fraction of a second; they ignore
        # Ctrl-C) and exit; terminating one while it writes its result to the shared pipe
        # could leave the pool's reader thread blocked for ever
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pending.clear()


def _ignore_sigint() -> None:
    """Worker initializer: Ctrl-C stops the main process, which then ends the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _wkb_columns(chunk: list[tuple[int, Instances]]) -> tuple:
    """`_chunk_columns` with the geometries as WKB bytes (object array), cheap to pickle.

    Instances whose ``polygons`` already hold WKB bytes (a project's stored rows, see
    `labelassist.project.exchange`) are sent as they are.
    """
    image_ids, shapes, lengths, geoms, labels, scores, crowd, points = _chunk_columns(chunk)
    if len(geoms) and not isinstance(geoms[0], bytes):
        geoms = shapely.to_wkb(geoms)
    return image_ids, shapes, lengths, geoms, labels, scores, crowd, points


def _convert_wkb(columns: tuple, first_id: int, segmentation: str) -> tuple[bytes, int, int]:
    """Worker side of `_ParallelAnnotations`: a chunk of `_wkb_columns` to
    ``(JSON text as UTF-8, annotations written, instances skipped)``."""
    image_ids, shapes, lengths, wkb, labels, scores, crowd, points = columns
    geoms = shapely.from_wkb(wkb)
    converted, skipped = _convert_columns(
        (image_ids, shapes, lengths, geoms, labels, scores, crowd, points), first_id, segmentation
    )
    return converted.json().encode("utf-8"), len(converted.categories), skipped
