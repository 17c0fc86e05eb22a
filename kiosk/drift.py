"""Keeping a video on time: a pure rule, fed readings, that says how to correct it.

Panels that started a video at one instant (a synchronised start, or a group control)
each compare their video's position with the time it has played on their own
monotonic clock, the clock the instant was set on. A video that runs ahead or behind
by more than a frame is nudged with its playback rate until it is back within half a
frame (a few per cent faster or slower is not heard: libVLC keeps the pitch); one off
by a second or more (the decoder stalled) is put back with a seek. Nothing here reads a
clock or touches a player: the video scene feeds :meth:`DriftCorrector.reading` with
the time and the position, and carries out what it returns::

    clock = PlayClock()
    clock.play(now)                                   # at the instant
    action = corrector.reading(clock.position_ms(now), video.position_ms())
    match action: case SetRate(rate): ...; case Seek(position_ms): ...

libVLC updates its position only every few hundred ms; a reading whose position did
not change since the previous one is ignored (its age is unknown), and a decision takes
the median of the last :data:`READINGS` fresh ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

FRAME_MS: Final = 40
"""One frame at 25 fps: a video further off than this is corrected."""

SETTLED_MS: Final = FRAME_MS // 2
"""A corrected video is back on time within this."""

SEEK_MS: Final = 1_000
"""A video further off than this is put back with a seek (a rate would take too long)."""

RATE_STEP: Final = 0.04
"""How much faster or slower a video runs while corrected (40 ms caught up per second)."""

READINGS: Final = 3
"""Fresh readings (libVLC updates its position every few hundred ms) whose median drift
a decision takes."""


@dataclass(frozen=True, slots=True)
class SetRate:
    """Play at ``rate`` (1.0: normal) from now."""

    rate: float


@dataclass(frozen=True, slots=True)
class Seek:
    """Jump to ``position_ms`` (and play at the normal rate)."""

    position_ms: int


DriftAction = SetRate | Seek


class PlayClock:
    """How long a video should have played: runs from :meth:`play`, stands while
    paused, moves with a seek. Times are seconds of a monotonic clock."""

    def __init__(self) -> None:
        self._origin_s: float | None = None
        self._frozen_at_s: float | None = None

    @property
    def started(self) -> bool:
        return self._origin_s is not None

    def play(self, now: float) -> None:
        """The video plays from ``now`` (it started, or it was resumed)."""
        if self._origin_s is None:
            self._origin_s = now
        elif self._frozen_at_s is not None:
            self._origin_s += now - self._frozen_at_s
        self._frozen_at_s = None

    def pause(self, now: float) -> None:
        if self._origin_s is not None and self._frozen_at_s is None:
            self._frozen_at_s = now

    def seek(self, position_ms: int, now: float) -> None:
        at = self._frozen_at_s if self._frozen_at_s is not None else now
        self._origin_s = at - position_ms / 1000

    def position_ms(self, now: float) -> float | None:
        """Where the video should be at ``now``; None before :meth:`play`."""
        if self._origin_s is None:
            return None
        at = self._frozen_at_s if self._frozen_at_s is not None else now
        return (at - self._origin_s) * 1000


class DriftCorrector:
    """Decides how to bring a video back on time; see the module docstring.

    libVLC's positions are noisy (tens of ms; more on a loaded machine, and just after a
    change of rate), so each decision takes the median drift of :data:`READINGS` fresh
    readings, and after a correction the readings start afresh.
    """

    def __init__(self, *, rate_step: float = RATE_STEP) -> None:
        """``rate_step`` 0: never nudge the rate, only seek when a second off."""
        self.rate_step = rate_step
        self.rate = 1.0
        self.drift_ms: float | None = None
        """The last drift measured (position minus expected), for logs and benchmarks."""
        self.readings = 0
        """Readings taken (a new position each)."""
        self._last_position_ms: int | None = None
        self._window: list[float] = []

    def reading(self, expected_ms: float, position_ms: int) -> DriftAction | None:
        """A reading of the player's ``position_ms`` while it should be at ``expected_ms``.

        Returns:
            What to do to the player, or None: carry it out at once.
        """
        if position_ms == self._last_position_ms:
            return None
        first = self._last_position_ms is None
        self._last_position_ms = position_ms
        if first and position_ms == 0:
            return None  # libVLC has not reported a position yet
        drift = position_ms - expected_ms
        self.drift_ms = drift
        self.readings += 1
        self._window = [*self._window[-(READINGS - 1) :], drift]
        if len(self._window) < READINGS:
            return None
        median = sorted(self._window)[READINGS // 2]
        if abs(median) >= SEEK_MS:
            self.rate = 1.0
            self.reset()
            return Seek(max(0, round(expected_ms)))
        rate = self.rate
        if abs(median) > FRAME_MS:
            rate = 1.0 - self.rate_step if median > 0 else 1.0 + self.rate_step
        elif abs(median) <= SETTLED_MS or (median > 0) == (self.rate > 1.0):
            rate = 1.0  # back on time, or the correction overshot
        if rate == self.rate:
            return None
        self.rate = rate
        self._window = []
        return SetRate(rate)

    def reset(self) -> None:
        """The video was paused, resumed or moved: the next readings start afresh."""
        self._last_position_ms = None
        self._window = []
