"""Keeping a video on time: kiosk.drift (pure; readings and times are given)."""

from __future__ import annotations

import pytest

from kiosk.drift import (
    FRAME_MS,
    RATE_STEP,
    SEEK_MS,
    SETTLED_MS,
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


def test_no_position_yet_and_unchanged_positions_are_not_readings() -> None:
    corrector = DriftCorrector()
    assert corrector.reading(120.0, 0) is None  # libVLC has not reported yet
    assert corrector.readings == 0
    assert corrector.reading(400.0, 380) is None
    assert corrector.reading(500.0, 380) is None  # the same old position: ignored
    assert (corrector.readings, corrector.drift_ms) == (1, -20.0)
    corrector.reset()
    assert corrector.reading(1500.0, 380) == Seek(1500)  # after a reset it counts again


@pytest.mark.parametrize(
    ("drift_ms", "action"),
    [
        (FRAME_MS, None),
        (FRAME_MS + 1, SetRate(1.0 - RATE_STEP)),
        (-FRAME_MS, None),
        (-FRAME_MS - 1, SetRate(1.0 + RATE_STEP)),
        (SEEK_MS - 1, SetRate(1.0 - RATE_STEP)),
        (SEEK_MS, Seek(10_000)),
        (-SEEK_MS, Seek(10_000)),
    ],
)
def test_a_frame_off_nudges_the_rate_and_a_second_off_seeks(
    drift_ms: int, action: SetRate | Seek | None
) -> None:
    corrector = DriftCorrector()
    assert corrector.reading(10_000.0, 10_000 + drift_ms) == action
    assert corrector.rate == (action.rate if isinstance(action, SetRate) else 1.0)


def test_a_corrected_video_returns_to_the_normal_rate_once_on_time() -> None:
    corrector = DriftCorrector()
    assert corrector.reading(1000.0, 1100) == SetRate(1.0 - RATE_STEP)  # ahead: slower
    assert corrector.reading(1300.0, 1330) is None  # still ahead, within a frame: keep on
    assert corrector.reading(1600.0, 1600 + SETTLED_MS + 1) is None
    assert corrector.reading(1900.0, 1900 + SETTLED_MS) == SetRate(1.0)  # settled
    assert corrector.reading(2200.0, 2200 + FRAME_MS) is None  # hysteresis: no new nudge


def test_a_correction_that_overshoots_stops() -> None:
    corrector = DriftCorrector()
    assert corrector.reading(1000.0, 900) == SetRate(1.0 + RATE_STEP)  # behind: faster
    assert corrector.reading(1300.0, 1330) == SetRate(1.0)  # now ahead: stop at once
    assert corrector.reading(1600.0, 1565) is None  # behind within a frame: leave it
