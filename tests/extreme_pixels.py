"""The pixels an annotator clicks in extreme clicking, for the prompt tests.

Test files import it (``tests/`` is on ``sys.path``)::

    from extreme_pixels import extreme_pixels
"""

from __future__ import annotations

import numpy as np


def extreme_pixels(mask: np.ndarray) -> np.ndarray:
    """Pixels ``(column, row)`` (4, 2) at the middle of a mask's leftmost, topmost, rightmost
    and bottommost runs (add 0.5 for the clicks' ``x, y`` at their centres)."""
    rows, cols = np.nonzero(mask)
    picks = []
    for along, across, end in ((cols, rows, cols.min()), (rows, cols, rows.min()),
                               (cols, rows, cols.max()), (rows, cols, rows.max())):  # fmt: skip
        run = np.sort(across[along == end])
        picks.append((end, run[len(run) // 2]) if along is cols else (run[len(run) // 2], end))
    return np.array(picks)
