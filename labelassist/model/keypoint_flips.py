"""Left and right keypoints of mirror images: `flip_pairs` and `flip_order` from the names.

A flipped image shows an object's left side where its right side was, so augmentation that
flips an image must swap the columns of left/right keypoints (COCO's and mmpose's
``flip_pairs``; `labelassist.train.augment.swap_sides` applies the order).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["flip_order", "flip_pairs"]

#: A name's parts: capitalised or lower-case words, upper-case runs, digits, separators.
_PARTS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+|[^A-Za-z0-9]+")
_SIDES = {"left": "right", "right": "left"}


def flip_pairs(names: Sequence[str]) -> list[tuple[int, int]]:
    """The pairs of keypoints that swap names in a mirror image: ``left_eye`` and
    ``right_eye`` (COCO's person keypoints), ``eye_left``/``eye_right``, ``Left ear``/``Right
    ear``, ``leftPaw``/``rightPaw`` (the words "left" and "right" as a name part).

    A flipped image shows an object's left side where its right was, so after a flip the
    point marked ``left_eye`` *is* the right eye: training augmentation swaps the columns of
    each pair (COCO's and mmpose's ``flip_pairs``). Names without a side, or whose partner is
    not among ``names``, are not swapped (head, tail, poles).

    Examples
    --------
    >>> flip_pairs(["nose", "left_eye", "right_eye", "left_ear", "tail"])
    [(1, 2)]
    >>> flip_pairs(["LeftPaw", "RightPaw", "head"]), flip_pairs(["head", "tail"])
    ([(0, 1)], [])
    """
    names = [str(n) for n in names]
    index = {n: i for i, n in enumerate(names)}
    pairs = []
    for i, name in enumerate(names):
        mirrored = _mirrored(name)
        j = None if mirrored is None else index.get(mirrored)
        if j is not None and i < j:
            pairs.append((i, j))
    return pairs


def _mirrored(name: str) -> str | None:
    """``name`` with its side words swapped (None when it has none)."""
    parts = _PARTS.findall(name)
    if "".join(parts) != name or not any(p.lower() in _SIDES for p in parts):
        return None
    out = []
    for part in parts:
        other = _SIDES.get(part.lower())
        if other is None:
            out.append(part)
        elif part.isupper():
            out.append(other.upper())
        else:
            out.append(other.capitalize() if part[0].isupper() else other)
    return "".join(out)


def flip_order(names: Sequence[str]) -> list[int] | None:
    """The keypoint column order after a mirror image (`flip_pairs` swapped), or None when no
    name has a partner (nothing to swap): ``points[..., flip_order(names), :]``.

    Examples
    --------
    >>> flip_order(["nose", "left_eye", "right_eye"]), flip_order(["head", "tail"])
    ([0, 2, 1], None)
    """
    pairs = flip_pairs(names)
    if not pairs:
        return None
    order = list(range(len(names)))
    for i, j in pairs:
        order[i], order[j] = j, i
    return order
