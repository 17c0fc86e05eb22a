"""Keeping a video on time: kiosk.drift (pure; readings and times are given)."""

from __future__ import annotations

import pytest

from kiosk.drift import (
    FRAME_MS,
    RATE_STEP,
    READINGS,
    SEEK_MS,
    SETTLED_MS,
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


def feed(corrector: DriftCorrector, at_ms: float, drifts: list[float]) -> list[DriftAction | None]:
    """Readings 300 ms apart from ``at_ms``, with these drifts; what each returned."""
    out: list[DriftAction | None] = []
    for n, drift in enumerate(drifts):
        expected = at_ms + 300 * n
        out.append(corrector.reading(expected, round(expected + drift)))
    return out


def test_no_position_yet_and_unchanged_positions_are_not_readings() -> None:
    corrector = DriftCorrector()
    assert corrector.reading(120.0, 0) is None  # libVLC has not reported yet
    assert corrector.readings == 0
    assert corrector.reading(400.0, 380) is None
    assert corrector.reading(500.0, 380) is None  # the same old position: ignored
    assert (corrector.readings, corrector.drift_ms) == (1, -20.0)


@pytest.mark.parametrize(
    ("drift_ms", "action"),
    [
        (FRAME_MS, None),
        (FRAME_MS + 1, SetRate(1.0 - RATE_STEP)),
        (-FRAME_MS, None),
        (-FRAME_MS - 1, SetRate(1.0 + RATE_STEP)),
        (SEEK_MS - 1, SetRate(1.0 - RATE_STEP)),
        (SEEK_MS, Seek(10_600)),
        (-SEEK_MS, Seek(10_600)),
    ],
)
def test_a_frame_off_nudges_the_rate_and_a_second_off_seeks(
    drift_ms: int, action: SetRate | Seek | None
) -> None:
    corrector = DriftCorrector()
    assert feed(corrector, 10_000.0, [drift_ms] * READINGS) == [None] * (READINGS - 1) + [action]
    assert corrector.rate == (action.rate if isinstance(action, SetRate) else 1.0)


def test_a_decision_takes_the_median_so_one_wild_reading_changes_nothing() -> None:
    corrector = DriftCorrector()
    assert feed(corrector, 1000.0, [5, -300, 10, 600, 0]) == [None] * 5
    assert corrector.rate == 1.0
    assert corrector.drift_ms == 0


def test_a_corrected_video_returns_to_the_normal_rate_once_on_time() -> None:
    corrector = DriftCorrector()
    assert feed(corrector, 1000.0, [100, 100, 100])[-1] == SetRate(1.0 - RATE_STEP)
    assert feed(corrector, 2000.0, [30, 30, 30]) == [None] * 3  # within a frame: keep on
    assert feed(corrector, 3000.0, [SETTLED_MS] * 3)[:2] == [None, SetRate(1.0)]  # median
    assert feed(corrector, 4000.0, [FRAME_MS] * 5) == [None] * 5  # hysteresis


def test_a_correction_that_overshoots_stops() -> None:
    corrector = DriftCorrector()
    assert feed(corrector, 1000.0, [-100, -100, -100])[-1] == SetRate(1.0 + RATE_STEP)
    assert feed(corrector, 2000.0, [30, 30, 30])[-1] == SetRate(1.0)  # now ahead: stop
    assert feed(corrector, 3000.0, [-35, -35, -35]) == [None] * 3  # within a frame: leave it


def test_a_pause_or_a_seek_starts_the_readings_afresh() -> None:
    corrector = DriftCorrector()
    feed(corrector, 1000.0, [200, 200])
    corrector.reset()
    assert feed(corrector, 5000.0, [200, 200]) == [None, None]  # two fresh ones only
    assert feed(corrector, 5600.0, [200])[-1] == SetRate(1.0 - RATE_STEP)


def test_without_a_rate_step_only_a_second_off_is_corrected() -> None:
    corrector = DriftCorrector(rate_step=0.0)
    assert feed(corrector, 1000.0, [300, 300, 300]) == [None] * 3
    assert feed(corrector, 2000.0, [SEEK_MS] * 2) == [None, Seek(2300)]  # the median
