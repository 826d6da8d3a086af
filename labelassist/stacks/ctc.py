"""Tracks in the Cell Tracking Challenge (CTC) format: ``res_track.txt`` and ``maskTTT.tif``.

The format (CTC "Naming and file content conventions"; the rules its validator checks,
py-ctcmetrics ``valid``):

- one label image per frame, ``mask000.tif``, ``mask001.tif``... (zero-based, three
  digits, four from frame 1000 on, as in the CTC's long sequences), 16-bit (``uint16``),
  0 = background; a 3-D (``Z, Y, X``) image per frame for 3-D time-lapse;
- ``res_track.txt``: one line ``L B E P`` per track: ``L`` its label (a positive 16-bit
  value, unique), ``B`` and ``E`` the first and last frame (zero-based, ``B <= E``),
  ``P`` the parent's label or 0;
- a track's label is in the mask of every frame from ``B`` to ``E`` and in no other;
- a parent ends before its children begin (``E_parent < B_child``).

A CTC track has no gaps, so `write_ctc` writes an object that is missing in some frames
as one track per run of frames, each later run the child of the one before (how the CTC
encodes a gap); `read_ctc` joins a parent with exactly one child back into one object, and
keeps parents with two or more children as divisions (``StackInstances.parents``). Labels
are the object ids when they fit in 16 bits, else renumbered from 1. Only frames where an
object has pixels (after `StackInstances.to_labels`) count.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import tifffile

from ..io import TempFile
from .label_tiff import write_tiff_atomic
from .stack_instances import StackInstances

__all__ = ["TRACK_FILE", "read_ctc", "write_ctc"]

#: The CTC track file's name in a result folder.
TRACK_FILE = "res_track.txt"

_MAX_LABEL = 2**16 - 1
_MASK_RE = re.compile(r"mask(\d+)\.tif$")


def write_ctc(stack: StackInstances, folder: str | os.PathLike) -> Path:
    """Write a time-lapse's tracks as a CTC result folder (masks and ``res_track.txt``).

    Parameters
    ----------
    stack : StackInstances
        With a ``T`` axis (``"TYX"`` or ``"TZYX"``).
    folder : str or os.PathLike
        Created if missing; every file is written atomically, ``res_track.txt`` last.

    Returns
    -------
    Path
        ``folder / "res_track.txt"``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> movie = np.zeros((3, 8, 8), np.uint16)
    >>> movie[0, 1:4, 1:4] = 5
    >>> movie[2, 1:4, 2:5] = 5    # missing in frame 1: a gap
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> print(write_ctc(StackInstances.from_labels(movie, "TYX"), folder).read_text())
    5 0 0 0
    6 2 2 5
    <BLANKLINE>
    >>> sorted(p.name for p in folder.glob("mask*.tif"))
    ['mask000.tif', 'mask001.tif', 'mask002.tif']
    """
    if not isinstance(stack, StackInstances):
        raise TypeError(f"stack must be a StackInstances, got {type(stack).__name__}")
    if "T" not in stack.axes:
        raise ValueError(
            f"the CTC format is for time-lapse; stack has axes {stack.axes!r}: write a "
            "z-stack with write_label_volume"
        )
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"folder={str(folder)!r} is a file; give a folder")
    volume = stack.to_labels(np.int64)
    n_frames = volume.shape[0]
    present = [np.unique(volume[t]) for t in range(n_frames)]
    runs = _runs(present)
    dropped = sorted(set(stack.object_ids.tolist()) - set(runs))
    if dropped:
        warnings.warn(
            f"objects {dropped[:10]} cover no pixel in any plane and are left out",
            stacklevel=2,
        )
    labels = _labels(runs)
    lines = []
    for oid, spans in runs.items():
        for k, (begin, end) in enumerate(spans):
            if k:
                parent = labels[(oid, k - 1)]
            else:
                mother = stack.parents.get(oid)
                parent = labels[(mother, len(runs[mother]) - 1)] if mother in runs else 0
            lines.append((labels[(oid, k)], begin, end, parent))
    digits = max(3, len(str(n_frames - 1)))
    for t in range(n_frames):
        lookup = np.zeros(int(present[t].max()) + 1, dtype=np.uint16)
        for oid in present[t][present[t] > 0].tolist():
            run = next(k for k, (b, e) in enumerate(runs[oid]) if b <= t <= e)
            lookup[oid] = labels[(oid, run)]
        write_tiff_atomic(folder / f"mask{t:0{digits}d}.tif", lookup[volume[t]])
    track_file = folder / TRACK_FILE
    text = "".join(f"{lab} {b} {e} {p}\n" for lab, b, e, p in sorted(lines))
    tmp = TempFile(track_file, suffix=".txt")
    try:
        tmp.file.write(text.encode("ascii"))
        tmp.commit()
    finally:
        tmp.discard()
    return track_file


def read_ctc(folder: str | os.PathLike, *, tolerance: float = 0.0) -> StackInstances:
    """Read a CTC result or ground-truth folder (``maskTTT.tif`` + a track file).

    Parameters
    ----------
    folder : str or os.PathLike
        Holding ``mask*.tif`` and ``res_track.txt`` (``man_track*.txt`` of ground truth
        folders is read when there is no ``res_track.txt``).
    tolerance : float
        Polygon simplification; 0 keeps exact pixel outlines.

    Returns
    -------
    StackInstances
        Axes ``"TYX"`` (2-D masks) or ``"TZYX"`` (3-D masks); continued tracks joined
        into one object id (the first track's label), divisions as ``parents``.

    Raises
    ------
    FileNotFoundError
        No folder, no mask files or no track file.
    ValueError
        A break of the format's rules (see the module notes), named with its line or file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> movie = np.zeros((4, 8, 8), np.uint16)
    >>> movie[0:2, 1:4, 1:4] = 1
    >>> movie[2:4, 0:3, 0:3] = 2; movie[2:4, 4:7, 4:7] = 3   # 1 divides into 2 and 3
    >>> stack = StackInstances.from_labels(movie, "TYX", parents={2: 1, 3: 1})
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_ctc(stack, folder)
    >>> read_ctc(folder) == stack
    True
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"CTC folder not found: {folder}")
    masks = _mask_files(folder)
    tracks = _read_tracks(_track_file(folder))
    frames = [tifffile.imread(path) for path in masks]
    shape = frames[0].shape
    for path, frame in zip(masks, frames, strict=True):
        if frame.shape != shape or frame.ndim not in (2, 3) or frame.dtype.kind not in "ui":
            raise ValueError(
                f"{path}: expected an integer label image of shape {shape} like "
                f"{masks[0].name}, got {frame.dtype} of shape {frame.shape}"
            )
    volume = np.stack(frames).astype(np.int64)
    _check_tracks(tracks, volume, masks)
    root, parents = _join(tracks)
    lookup = np.zeros(int(volume.max()) + 1, dtype=np.int64)
    for label, target in root.items():
        if label < len(lookup):
            lookup[label] = target
    axes = "TYX" if volume.ndim == 3 else "TZYX"
    return StackInstances.from_labels(lookup[volume], axes, parents=parents, tolerance=tolerance)


def _runs(present: list[np.ndarray]) -> dict[int, list[tuple[int, int]]]:
    """Per object id (in order of first frame, then id), its runs of consecutive frames."""
    runs: dict[int, list[tuple[int, int]]] = {}
    for t, ids in enumerate(present):
        for oid in ids[ids > 0].tolist():
            spans = runs.setdefault(oid, [])
            if spans and spans[-1][1] == t - 1:
                spans[-1] = (spans[-1][0], t)
            else:
                spans.append((t, t))
    return runs


def _labels(runs: dict[int, list[tuple[int, int]]]) -> dict[tuple[int, int], int]:
    """The CTC label of each (object id, run): the id for first runs when all fit."""
    extra = sum(len(spans) - 1 for spans in runs.values())
    top = max(runs, default=0)
    out: dict[tuple[int, int], int] = {}
    if top + extra <= _MAX_LABEL:
        following = top + 1
        for oid, spans in runs.items():
            out[(oid, 0)] = oid
            for k in range(1, len(spans)):
                out[(oid, k)] = following
                following += 1
        return out
    order = sorted(((s[0], oid, k) for oid, spans in runs.items() for k, s in enumerate(spans)))
    if len(order) > _MAX_LABEL:
        raise ValueError(
            f"{len(order)} tracks do not fit the CTC format's 16-bit labels (at most "
            f"{_MAX_LABEL}); split the time-lapse"
        )
    for label, (_, oid, k) in enumerate(order, start=1):
        out[(oid, k)] = label
    return out


def _mask_files(folder: Path) -> list[Path]:
    found = {}
    for path in folder.iterdir():
        m = _MASK_RE.fullmatch(path.name)
        if m:
            found[int(m.group(1))] = path
    if not found:
        raise FileNotFoundError(f"{folder} has no mask files (mask000.tif, mask001.tif, ...)")
    missing = sorted(set(range(max(found) + 1)) - set(found))
    if missing:
        raise ValueError(
            f"{folder}: mask files of frames {missing[:10]} are missing; the CTC masks are "
            "mask000.tif, mask001.tif, ... one per frame from 0"
        )
    return [found[t] for t in range(len(found))]


def _track_file(folder: Path) -> Path:
    candidates = [folder / TRACK_FILE, *sorted(folder.glob("man_track*.txt"))]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"{folder} has no {TRACK_FILE} (one line 'L B E P' per track)")


def _read_tracks(path: Path) -> np.ndarray:
    rows = []
    for number, line in enumerate(path.read_text(encoding="ascii").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            values = [int(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 4:
            raise ValueError(
                f"{path}:{number}: expected four integers 'L B E P', got {line.strip()!r}"
            )
        rows.append(values)
    return np.array(rows, dtype=np.int64).reshape(len(rows), 4)


def _check_tracks(tracks: np.ndarray, volume: np.ndarray, masks: list[Path]) -> None:
    where = masks[0].parent / TRACK_FILE
    labels = tracks[:, 0]
    if len(np.unique(labels)) != len(labels):
        raise ValueError(f"{where}: track labels are not unique")
    table = {int(r[0]): r for r in tracks}
    n_frames = volume.shape[0]
    for lab, begin, end, parent in tracks.tolist():
        if lab < 1 or lab > _MAX_LABEL or not 0 <= begin <= end < n_frames:
            raise ValueError(
                f"{where}: track '{lab} {begin} {end} {parent}' needs a label in [1, "
                f"{_MAX_LABEL}] and frames 0 <= B <= E < {n_frames}"
            )
        if parent:
            if parent not in table:
                raise ValueError(f"{where}: track {lab} has parent {parent}, which is no track")
            if table[parent][2] >= begin:
                raise ValueError(
                    f"{where}: parent {parent} ends at frame {table[parent][2]}, not before "
                    f"its child {lab} begins at frame {begin}"
                )
    for t in range(n_frames):
        found = set(np.unique(volume[t]).tolist()) - {0}
        expected = {int(r[0]) for r in tracks if r[1] <= t <= r[2]}
        if found != expected:
            extra = sorted(found - expected)[:5]
            lost = sorted(expected - found)[:5]
            raise ValueError(
                f"{masks[t]}: labels {extra} are in the mask but not listed for this frame, "
                f"labels {lost} are listed but not in the mask; each track's label is in "
                "every frame from B to E and no other"
            )


def _join(tracks: np.ndarray) -> tuple[dict[int, int], dict[int, int]]:
    """(label -> object id, divisions): single children continue their parent's object."""
    children: dict[int, list[int]] = {}
    for lab, _, _, parent in tracks.tolist():
        if parent:
            children.setdefault(parent, []).append(lab)
    root: dict[int, int] = {}
    parents: dict[int, int] = {}
    for lab, _, _, parent in sorted(tracks.tolist(), key=lambda r: (r[1], r[0])):
        if parent and len(children[parent]) == 1:
            root[lab] = root[parent]
        else:
            root[lab] = lab
            if parent:
                parents[lab] = root[parent]
    return root, parents
