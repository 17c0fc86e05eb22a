"""Keeping a video on time: a pure rule, fed readings, that says how to correct it.

Panels that started a video at one instant (a synchronised start, or a group control)
each compare their video's position with the time it has played on their own
monotonic clock, the clock the instant was set on. A video more than half a frame
(:data:`DRIFT_MS`) ahead or behind is nudged with its playback rate until it is back
within a few ms (a few per cent faster or slower is not heard: libVLC keeps the
pitch); one off by a second or more (the decoder stalled) is put back with a seek.
Nothing here reads a clock or touches a player: the video scene feeds
:meth:`DriftCorrector.reading` with a position, the time it was true at and the time
now, and carries out what it returns::

    clock = PlayClock()
    clock.play(now)                                   # at the instant
    at_s, position_ms = video.position_reading()      # stamped when libVLC published it
    action = corrector.reading(clock.position_ms(at_s), position_ms, at_s=at_s, now=now)
    match action: case SetRate(rate): ...; case Seek(position_ms): ...

**The reading must carry the time it was true at.** libVLC publishes its position only
every 250 ms (sometimes 500 ms) and holds it in between, so a position read at a random
moment is up to 0.5 s old: measured with libVLC 3.0, positions polled every 10 ms were
0–500 ms behind the video (a sawtooth, 132 ms standard deviation), while the same
positions stamped when libVLC published them kept a constant distance (±1 ms) to the
pictures shown, except for 0.6 s after a change of rate (:data:`SETTLE_S`). A
correction driven by polled positions chases that sawtooth and oscillates. (That
distance depends on the file, from -10 to +40 ms in the files measured: every panel
playing the file sees the same, so they stay together.)

The rule itself measures, corrects for a computed time, and measures again: a decision
takes the median drift of :data:`READINGS` fresh readings taken at the normal rate;
beyond :data:`DRIFT_MS` it sets the rate :data:`RATE_STEP` faster or slower and holds
it exactly as long as it takes to win that drift back (the rate takes effect at once:
the frames' cadence follows it within 0.1 %), then returns to the normal rate. Readings
published within :data:`SETTLE_S` of a change (of rate, or a seek, pause or resume:
:meth:`DriftCorrector.reset`) are ignored and the readings start afresh. Driven by the
readings during a correction instead (stop once on time), it would stop late by the
readings' spacing (250–500 ms) and overshoot by a frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

FRAME_MS: Final = 40
"""One frame at 25 fps."""

DRIFT_MS: Final = FRAME_MS // 2
"""A video further off than this (half a frame) is corrected by rate."""

SEEK_MS: Final = 1_000
"""A video further off than this is put back with a seek (a rate would take too long)."""

RATE_STEP: Final = 0.04
"""How much faster or slower a video runs while corrected (40 ms caught up per second)."""

READINGS: Final = 3
"""Fresh readings (libVLC publishes its position every 250 ms) whose median drift a
decision takes."""

SETTLE_S: Final = 0.75
"""After a change of rate, a seek, a pause or a resume, readings published within this
are ignored: measured with libVLC 3.0 against the pictures it shows, its positions are
off by up to 30 ms for some 0.6 s after a change of rate (a seek publishes its target
at once, before the picture is there)."""


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

    The caller gives it every fresh reading (:meth:`reading`) and the time now and then
    (:meth:`tick`, e.g. every :data:`~kiosk.video_scene.DRIFT_CHECK_S`), and tells it
    when the video was paused, resumed or moved (:meth:`reset`).
    """

    def __init__(self, *, rate_step: float = RATE_STEP) -> None:
        """``rate_step`` 0: never nudge the rate, only seek when a second off."""
        self.rate_step = rate_step
        self.rate = 1.0
        self.drift_ms: float | None = None
        """The last drift measured (position minus expected), for logs and benchmarks."""
        self.readings = 0
        """Readings taken (fresh ones, outside the settling time)."""
        self._last_at_s: float | None = None
        self._quiet_until_s = float("-inf")
        self._hold_until_s: float | None = None
        self._window: list[float] = []

    @property
    def correcting(self) -> bool:
        """Whether a correction by rate is under way (the rate is not 1.0)."""
        return self._hold_until_s is not None

    def reading(
        self, expected_ms: float, position_ms: int, *, at_s: float, now: float
    ) -> DriftAction | None:
        """The player was at ``position_ms`` at ``at_s`` (monotonic seconds, when it
        published it) while it should have been at ``expected_ms``; it is ``now``.

        The same reading given again (same ``at_s``) is ignored, so the caller may
        look as often as it likes.

        Returns:
            What to do to the player, or None: carry it out at once.
        """
        if at_s == self._last_at_s:
            return self.tick(now)
        self._last_at_s = at_s
        if at_s < self._quiet_until_s:
            return self.tick(now)
        drift = position_ms - expected_ms
        self.drift_ms = drift
        self.readings += 1
        self._window = [*self._window[-(READINGS - 1) :], drift]
        if len(self._window) < READINGS:
            return self.tick(now)
        median = sorted(self._window)[READINGS // 2]
        if abs(median) >= SEEK_MS:
            self._settle(now)
            return Seek(max(0, round(expected_ms + (now - at_s) * 1000)))
        if self.correcting:
            return self.tick(now)  # measured once the rate is back to normal
        if abs(median) <= DRIFT_MS or self.rate_step <= 0:
            return None
        # The rate takes effect at once and exactly (the frames' cadence follows it):
        # hold it as long as it takes to win back the drift, then measure again.
        self.rate = 1.0 - self.rate_step if median > 0 else 1.0 + self.rate_step
        self._hold_until_s = now + abs(median) / 1000 / self.rate_step
        self._window = []
        return SetRate(self.rate)

    def tick(self, now: float) -> SetRate | None:
        """It is ``now``: returns :class:`SetRate` (1.0) once a correction has run its
        time, else None."""
        if self._hold_until_s is None or now < self._hold_until_s:
            return None
        self._settle(now)
        return SetRate(1.0)

    def reset(self, now: float) -> SetRate | None:
        """The video was paused, resumed or moved at ``now``: the correction under way
        stops (carry out the :class:`SetRate` returned, if any), and the readings start
        afresh after :data:`SETTLE_S`."""
        correcting = self.correcting
        self._settle(now)
        return SetRate(1.0) if correcting else None

    def _settle(self, now: float) -> None:
        self.rate = 1.0
        self._hold_until_s = None
        self._quiet_until_s = now + SETTLE_S
        self._window = []
