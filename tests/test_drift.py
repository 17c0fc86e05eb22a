"""Keeping a video on time: kiosk.drift (pure; readings and times are given)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from kiosk.drift import (
    DRIFT_MS,
    FRAME_MS,
    RATE_STEP,
    READINGS,
    SEEK_MS,
    SETTLE_S,
    DriftAction,
    DriftCorrector,
    PlayClock,
    Seek,
    SetRate,
)


def test_the_play_clock_runs_stands_while_paused_and_moves_with_a_seek() -> None:
    clock = PlayClock()
    assert clock.position_ms(5.0) is None
    assert not clock.started
    clock.play(10.0)
    assert clock.position_ms(12.5) == 2500
    clock.pause(13.0)
    clock.pause(14.0)  # idempotent
    assert clock.position_ms(20.0) == 3000
    clock.seek(1000, 20.0)  # while paused: from the paused moment
    assert clock.position_ms(21.0) == 1000
    clock.play(21.0)
    assert clock.position_ms(22.0) == 2000
    clock.play(22.0)  # already playing: nothing changes
    assert clock.position_ms(23.0) == 3000
    clock.seek(500, 23.0)
    assert clock.position_ms(24.0) == 1500


def feed(corrector: DriftCorrector, at_s: float, drifts: list[float]) -> list[DriftAction | None]:
    """Readings published 250 ms apart from ``at_s`` (each given 20 ms after it was
    published), with these drifts; what each returned."""
    out: list[DriftAction | None] = []
    for n, drift in enumerate(drifts):
        at = at_s + 0.25 * n
        expected = at * 1000
        out.append(corrector.reading(expected, round(expected + drift), at_s=at, now=at + 0.02))
    return out


def test_the_same_reading_given_again_is_not_a_new_one() -> None:
    corrector = DriftCorrector()
    assert corrector.reading(400.0, 380, at_s=0.4, now=0.41) is None
    assert corrector.reading(400.0, 380, at_s=0.4, now=0.51) is None  # looked again
    assert corrector.reading(400.0, 380, at_s=0.4, now=0.61) is None
    assert (corrector.readings, corrector.drift_ms) == (1, -20.0)


@pytest.mark.parametrize(
    ("drift_ms", "action"),
    [
        (DRIFT_MS, None),
        (DRIFT_MS + 1, SetRate(1.0 - RATE_STEP)),
        (-DRIFT_MS, None),
        (-DRIFT_MS - 1, SetRate(1.0 + RATE_STEP)),
        (SEEK_MS - 1, SetRate(1.0 - RATE_STEP)),
        (SEEK_MS, Seek(10_520)),  # where it should be now, not when the reading was true
        (-SEEK_MS, Seek(10_520)),
    ],
)
def test_half_a_frame_off_nudges_the_rate_and_a_second_off_seeks(
    drift_ms: int, action: SetRate | Seek | None
) -> None:
    corrector = DriftCorrector()
    assert feed(corrector, 10.0, [drift_ms] * READINGS) == [None] * (READINGS - 1) + [action]
    assert corrector.rate == (action.rate if isinstance(action, SetRate) else 1.0)
    assert corrector.correcting == isinstance(action, SetRate)


def test_a_correction_is_held_exactly_as_long_as_it_takes_to_win_the_drift_back() -> None:
    corrector = DriftCorrector()
    assert feed(corrector, 1.0, [-200, -200, -200])[-1] == SetRate(1.0 + RATE_STEP)
    started = 1.5 + 0.02
    held_s = 0.2 / RATE_STEP  # 200 ms won back at 4 %: 5 s
    # Readings during the correction (even wild ones) do not end it early or extend it.
    assert feed(corrector, 2.0, [-150, 300, -100, -80]) == [None] * 4
    assert corrector.tick(started + held_s - 0.01) is None
    assert corrector.tick(started + held_s) == SetRate(1.0)
    assert not corrector.correcting
    assert corrector.tick(started + held_s + 1) is None


def test_a_decision_takes_the_median_so_one_wild_reading_changes_nothing() -> None:
    corrector = DriftCorrector()
    assert feed(corrector, 1.0, [5, -300, 10, 600, 0]) == [None] * 5
    assert corrector.rate == 1.0
    assert corrector.drift_ms == 0


def test_readings_published_just_after_a_change_are_not_used() -> None:
    corrector = DriftCorrector()
    feed(corrector, 1.0, [100, 100, 100])
    end = corrector.tick(100.0)
    assert end == SetRate(1.0)
    # libVLC may publish a position computed before the change: ignored for SETTLE_S.
    assert feed(corrector, 100.0, [400, 400]) == [None, None]
    assert corrector.readings == 3
    assert feed(corrector, 100.0 + SETTLE_S, [0, 0, 0]) == [None] * 3
    assert corrector.readings == 6


def test_a_pause_or_a_seek_stops_the_correction_and_starts_the_readings_afresh() -> None:
    corrector = DriftCorrector()
    assert corrector.reset(0.5) is None  # nothing under way
    feed(corrector, 1.0, [200, 200])
    assert corrector.reset(1.5) is None
    assert feed(corrector, 5.0, [200, 200]) == [None, None]  # two fresh ones only
    assert feed(corrector, 5.5, [200])[-1] == SetRate(1.0 - RATE_STEP)
    assert corrector.reset(6.0) == SetRate(1.0)  # back to the normal rate
    assert not corrector.correcting
    assert corrector.tick(100.0) is None


def test_without_a_rate_step_only_a_second_off_is_corrected() -> None:
    corrector = DriftCorrector(rate_step=0.0)
    assert feed(corrector, 1.0, [300, 300, 300]) == [None] * 3
    assert feed(corrector, 2.0, [SEEK_MS] * 2) == [None, Seek(2270)]  # the median


# ---------------------------------------------------------------- a simulated player


@dataclass
class Player:
    """A video as libVLC plays it, on a simulated monotonic clock.

    The position advances at the rate set (at once: measured, the frames' cadence
    follows a new rate within 0.1 %). libVLC publishes it every 250 ms, now and then
    500 ms, with a few ms of noise and a bias that shifts by ~10 ms with each change
    of rate; a reading published within 0.6 s of a change is off by up to 30 ms (as
    measured), within 0.25 s by up to 0.5 s; and the kiosk's main loop looks every
    100 ms, a little late.
    """

    seed: int
    late_ms: float = 0.0
    stall: tuple[float, float] | None = None
    """(from, to): the decoder stands still between these times (s)."""
    now: float = 0.0
    position_ms: float = 0.0
    rate: float = 1.0
    bias_ms: float = -10.0
    changed_at: float = -10.0
    published: tuple[float, int] | None = None
    next_publish: float = 0.25
    rates: list[float] = field(default_factory=list)
    seeks: list[int] = field(default_factory=list)
    true_drift: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.position_ms = -self.late_ms

    def step(self, dt: float) -> None:
        self.now += dt
        stalled = self.stall is not None and self.stall[0] <= self.now < self.stall[1]
        if not stalled:
            self.position_ms += dt * 1000 * self.rate
        if self.now >= self.next_publish:
            noise = self.rng.uniform(-4, 4)
            since_change_s = self.now - self.changed_at
            if since_change_s < 0.6:
                noise += self.rng.uniform(-30, 30)  # as measured after a change of rate
            if since_change_s < 0.25:
                noise += self.rng.uniform(-500, 500)  # computed before the change
            self.published = (self.now, round(self.position_ms + self.bias_ms + noise))
            self.next_publish += 0.5 if self.rng.random() < 0.2 else 0.25
        self.true_drift.append((self.now, self.position_ms - self.now * 1000))

    def carry_out(self, action: DriftAction | None) -> None:
        match action:
            case SetRate(rate):
                self.rates.append(rate)
                self.rate = rate
                self.bias_ms = -10.0 + self.rng.uniform(-10, 10)
                self.changed_at = self.now
            case Seek(position_ms):
                self.seeks.append(position_ms)
                self.rate = 1.0
                self.position_ms = position_ms
                self.changed_at = self.now
            case None:
                pass


def play(player: Player, seconds: float) -> DriftCorrector:
    """The scene's loop: every 100 ms (+ up to 30 ms late), the last reading published."""
    corrector = DriftCorrector()
    while player.now < seconds:
        player.step(0.1 + player.rng.uniform(0, 0.03))
        if player.published is None:
            continue
        at_s, position_ms = player.published
        action = corrector.reading(at_s * 1000, position_ms, at_s=at_s, now=player.now)
        player.carry_out(action)
    return corrector


def drift_after(player: Player, at_s: float) -> list[float]:
    return [abs(d) for t, d in player.true_drift if t >= at_s]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("late_ms", [200.0, -150.0, 60.0])
def test_a_video_started_off_time_converges_by_rate_and_stays(seed: int, late_ms: float) -> None:
    """With libVLC's jitter, its bias and its wild readings around a change of rate:
    within a frame after one or two corrections, and it stays there (no oscillation)."""
    player = Player(seed, late_ms=late_ms)
    corrector = play(player, 600.0)  # a lesson's ten minutes
    assert player.seeks == []
    assert 2 <= len(player.rates) <= 4  # a correction and back, maybe one more
    assert player.rates[-1] == 1.0
    assert not corrector.correcting
    settled_s = abs(late_ms) / 1000 / RATE_STEP + 5
    assert max(drift_after(player, settled_s)) <= FRAME_MS


@pytest.mark.parametrize("seed", range(3))
def test_a_stalled_decoder_is_put_back_with_one_seek(seed: int) -> None:
    """Two seconds without a new picture: one seek once a second behind (the stall may
    still last a little), then what is left is won back by rate."""
    player = Player(seed, stall=(30.0, 32.0))
    play(player, 120.0)
    assert len(player.seeks) == 1
    assert max(drift_after(player, 32.0)) < SEEK_MS  # no second seek needed
    assert max(drift_after(player, 60.0)) <= FRAME_MS
