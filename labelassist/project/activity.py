"""Active time at an image: the time between a person's events, each idle gap capped.

A front-end (the napari Review widget, a script, another GUI) measures how long a person
actively worked on an image and reports it with `Project.log_time`. The rule, the same
for every front-end:

    active seconds = the sum, over consecutive events, of ``min(gap, idle_cap)``

where the events are opening the image, every interaction with it (an edit, a pan or
zoom, a mouse move over the canvas), and leaving it (next image, accept, close); each
gap counts at most ``idle_cap`` seconds (`IDLE_CAP_S`, 60 s by default). So a minute of
looking without touching anything still counts as work, while a coffee break counts one
minute, not thirty. Time is read from a monotonic clock (never wall-clock time, which
jumps).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from ..checks import check_number

__all__ = ["IDLE_CAP_S", "ActivityClock", "active_seconds"]

#: Longest gap between two events counted in full, in seconds.
IDLE_CAP_S = 60.0


def active_seconds(times: Iterable[float], *, idle_cap: float = IDLE_CAP_S) -> float:
    """Active seconds of a sequence of event times (seconds, non-decreasing).

    Parameters
    ----------
    times : iterable of float
        Times of the events, first (opening the image) to last (leaving it).
    idle_cap : float
        Most seconds one gap counts (> 0).

    Examples
    --------
    >>> active_seconds([0.0, 10.0, 25.0, 400.0, 405.0])  # a 375 s break counts 60 s
    90.0
    >>> active_seconds([3.0])
    0.0
    """
    cap = check_number(idle_cap, "idle_cap", minimum=0.0)
    values = [check_number(t, "times") for t in times]
    gaps = [b - a for a, b in zip(values, values[1:], strict=False)]
    if any(gap < 0 for gap in gaps):
        raise ValueError("times must not decrease: give the event times in order")
    return float(sum(min(gap, cap) for gap in gaps))


class ActivityClock:
    """Measure the active time at one image at a time (see the module docstring).

    `start` when the image opens, `touch` on every interaction, `lap` to take the time
    accumulated so far (for example at each autosave, so that a crash loses little), and
    `stop` when leaving. `lap` and `stop` count the time up to now as one more event.

    Parameters
    ----------
    idle_cap : float
        Most seconds one gap between events counts.
    clock : callable, optional
        Returns the time in seconds; default `time.monotonic` (tests pass their own).

    Examples
    --------
    >>> now = [0.0]
    >>> clock = ActivityClock(clock=lambda: now[0])
    >>> clock.start()
    >>> now[0] = 20.0; clock.touch()
    >>> now[0] = 500.0; clock.touch()   # 480 s idle: counts 60
    >>> now[0] = 510.0; clock.lap()
    90.0
    >>> now[0] = 515.0; clock.stop(), clock.running
    (5.0, False)
    """

    def __init__(
        self, *, idle_cap: float = IDLE_CAP_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.idle_cap = check_number(idle_cap, "idle_cap", minimum=0.0)
        self._clock = clock
        self._last: float | None = None
        self._seconds = 0.0

    @property
    def running(self) -> bool:
        """Whether an image is being timed (between `start` and `stop`)."""
        return self._last is not None

    def start(self) -> None:
        """Start timing (an image opened); time not taken with `lap` is dropped."""
        self._last = self._clock()
        self._seconds = 0.0

    def touch(self) -> None:
        """An interaction: count the gap since the previous event (capped); no-op when
        not running."""
        if self._last is None:
            return
        now = self._clock()
        self._seconds += min(max(now - self._last, 0.0), self.idle_cap)
        self._last = now

    def lap(self) -> float:
        """The active seconds since `start` or the previous `lap`, up to now; keeps
        running (0.0 when not running)."""
        self.touch()
        seconds, self._seconds = self._seconds, 0.0
        return seconds

    def stop(self) -> float:
        """Like `lap`, then stop timing."""
        seconds = self.lap()
        self._last = None
        return seconds
