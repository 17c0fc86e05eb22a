"""The kiosk's share rules (kiosk.share.ShareGate), pure: time is passed in."""

from __future__ import annotations

import pytest

from kiosk.share import ShareGate, is_share, share_lesson
from protocol import limits
from protocol.codec import StreamFrame
from protocol.errors import NoShareError
from protocol.messages import ShareStart
from protocol.stream import Verdict

START = ShareStart(id=1, stream_id=9, width=640, height=480, title="  ")


def frame(seq: int, *, keyframe: bool = False, stream_id: int = 9) -> StreamFrame:
    return StreamFrame(stream_id, seq, keyframe, 0, b"x")


def test_frames_are_judged_only_for_the_sharing_session() -> None:
    gate = ShareGate()
    with pytest.raises(NoShareError, match="not sharing"):
        gate.frame(1, frame(0), now=0.0)
    gate.start(1, "c-1", START, now=0.0)
    assert gate.frame(1, frame(0, keyframe=True), now=0.0) == Verdict(True, False)
    with pytest.raises(NoShareError, match="not sharing"):
        gate.frame(2, frame(1), now=0.0)
    with pytest.raises(NoShareError, match="stream 8"):
        gate.frame(1, frame(1, stream_id=8), now=0.0)
    assert gate.end() is not None
    assert gate.end() is None


def test_rate_limit_refills_with_time() -> None:
    gate = ShareGate()
    gate.start(1, "c-1", START, now=0.0)
    burst = limits.STREAM_FRAME_BURST
    verdicts = [gate.frame(1, frame(i, keyframe=True), now=0.0) for i in range(burst)]
    assert None not in verdicts
    assert len(verdicts) == limits.STREAM_FRAME_BURST
    assert gate.frame(1, frame(burst), now=0.0) is None  # one over the burst
    later = 1 / limits.MAX_STREAM_FRAMES_PER_SECOND
    assert gate.frame(1, frame(burst), now=later) == Verdict(True, False)


def test_decoder_failure_asks_for_a_keyframe_once_per_interval() -> None:
    gate = ShareGate()
    assert gate.decoder_failed(now=0.0) is False  # no share
    gate.start(1, "c-1", START, now=0.0)
    gate.frame(1, frame(0, keyframe=True), now=0.0)
    assert gate.decoder_failed(now=1.0) is True
    assert gate.decoder_failed(now=1.0 + limits.KEYFRAME_REQUEST_INTERVAL_S / 2) is False


def test_share_lesson_is_one_screen_item() -> None:
    lesson = share_lesson("c-1", START)
    assert [(i.kind, i.title) for i in lesson.items] == [("screen", "Screen")]
    assert lesson.lesson_id == "screen:c-1:9"
    assert is_share(lesson)
    assert not is_share(None)
