"""Screen-share parts of protocol v1: stream frames, share messages, the receiver's rules."""

from __future__ import annotations

import pytest

from protocol.codec import (
    decode,
    decode_chunk,
    decode_stream_frame,
    encode,
    encode_stream_frame,
    is_stream_frame,
    stream_header,
)
from protocol.constants import STREAM_HEADER_BYTES, STREAM_MAGIC
from protocol.errors import MalformedMessageError
from protocol.limits import (
    KEYFRAME_REQUEST_INTERVAL_S,
    MAX_FRAME_BYTES,
    MAX_SHARE_HEIGHT,
    MAX_SHARE_WIDTH,
    MAX_STREAM_FRAME_BYTES,
    MIN_SHARE_SIDE,
    STREAM_STALL_S,
)
from protocol.messages import Cast, LessonManifest, ManifestItem, ShareStart
from protocol.stream import StreamReceiver, Verdict

DECODE = Verdict(decode=True, ask_keyframe=False)
SKIP = Verdict(decode=False, ask_keyframe=False)
ASK = Verdict(decode=False, ask_keyframe=True)


# --------------------------------------------------------------------------- frames


def test_stream_frame_round_trip() -> None:
    frame = encode_stream_frame(7, 42, b"\x00\x00\x01pic", keyframe=True, capture_us=123_456)
    assert is_stream_frame(frame)
    got = decode_stream_frame(frame)
    assert (got.stream_id, got.seq, got.keyframe, got.capture_us) == (7, 42, True, 123_456)
    assert bytes(got.data) == b"\x00\x00\x01pic"
    assert len(frame) == STREAM_HEADER_BYTES + 6


def test_seq_wraps_and_header_matches_frame() -> None:
    header = stream_header(1, 2**32 + 5, keyframe=False, capture_us=0)
    assert decode_stream_frame(header + b"x").seq == 5


def test_a_chunk_is_never_a_stream_frame() -> None:
    chunk = bytes(32) + bytes(8) + b"data"
    assert not is_stream_frame(chunk)
    with pytest.raises(MalformedMessageError, match="not a stream frame"):
        decode_stream_frame(chunk)
    # and a stream frame is refused as a chunk only by the chunk's own rules: the kiosk
    # routes by the magic before it ever decodes a chunk
    assert decode_chunk(STREAM_MAGIC + bytes(40)).sha256.startswith(STREAM_MAGIC.hex())


def test_stream_frame_size_limit_at_both_ends() -> None:
    at_limit = encode_stream_frame(1, 0, bytes(MAX_STREAM_FRAME_BYTES), keyframe=True, capture_us=0)
    assert len(at_limit) <= MAX_FRAME_BYTES  # the websocket layer lets it through
    assert len(decode_stream_frame(at_limit).data) == MAX_STREAM_FRAME_BYTES
    with pytest.raises(MalformedMessageError, match="over the limit"):
        encode_stream_frame(1, 0, bytes(MAX_STREAM_FRAME_BYTES + 1), keyframe=True, capture_us=0)
    over = stream_header(1, 0, keyframe=True, capture_us=0) + bytes(MAX_STREAM_FRAME_BYTES + 1)
    with pytest.raises(MalformedMessageError, match="over the limit"):
        decode_stream_frame(over)


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (STREAM_MAGIC, "no picture"),
        (stream_header(1, 0, keyframe=False, capture_us=0), "no picture"),
        (STREAM_MAGIC + bytes(8) + b"\x02" + bytes(8) + b"x", "unknown flags"),
    ],
)
def test_bad_stream_frames(frame: bytes, match: str) -> None:
    with pytest.raises(MalformedMessageError, match=match):
        decode_stream_frame(frame)


def test_share_start_size_limits() -> None:
    ok = ShareStart(id=1, stream_id=1, width=MAX_SHARE_WIDTH, height=MAX_SHARE_HEIGHT, title="x")
    assert decode(encode(ok)) == ok
    small = ShareStart(id=1, stream_id=1, width=MIN_SHARE_SIDE, height=MIN_SHARE_SIDE, title="x")
    assert decode(encode(small)) == small
    for width, height in [
        (MAX_SHARE_WIDTH + 1, 1080),
        (1920, MAX_SHARE_HEIGHT + 1),
        (MIN_SHARE_SIDE - 1, 100),
    ]:
        bad = ShareStart(id=1, stream_id=1, width=width, height=height, title="x")
        with pytest.raises(MalformedMessageError, match="pixels"):
            decode(encode(bad))
    with pytest.raises(MalformedMessageError, match="stream_id"):
        decode(encode(ShareStart(id=1, stream_id=2**32, width=100, height=100, title="x")))


def test_a_screen_item_cannot_be_cast() -> None:
    lesson = LessonManifest("l", "L", [ManifestItem(kind="screen", title="Экран")])
    with pytest.raises(MalformedMessageError, match="share_start"):
        decode(encode(Cast(id=1, lesson=lesson)))


# --------------------------------------------------------------------------- receiver


def test_joining_waits_for_a_keyframe_and_asks_once_per_interval() -> None:
    rx = StreamReceiver(7, now=0.0)
    assert rx.receive(seq=5, keyframe=False, now=0.0) == ASK
    assert rx.receive(seq=6, keyframe=False, now=0.1) == SKIP  # asked 0.1 s ago
    assert rx.receive(seq=7, keyframe=False, now=KEYFRAME_REQUEST_INTERVAL_S) == ASK
    assert rx.receive(seq=8, keyframe=True, now=0.6) == DECODE
    assert rx.receive(seq=9, keyframe=False, now=0.7) == DECODE
    assert (rx.decoded, rx.skipped, rx.state) == (2, 3, "in_sync")


def test_a_gap_stops_decoding_until_a_keyframe() -> None:
    rx = StreamReceiver(7, now=0.0)
    assert rx.receive(seq=0, keyframe=True, now=0.0) == DECODE
    assert rx.receive(seq=2, keyframe=False, now=0.1) == ASK  # 1 went missing
    assert rx.state == "waiting"
    assert rx.receive(seq=3, keyframe=False, now=0.2) == SKIP
    assert rx.receive(seq=4, keyframe=True, now=0.3) == DECODE


def test_a_keyframe_after_a_gap_is_decoded_and_old_frames_are_skipped() -> None:
    rx = StreamReceiver(7, now=0.0)
    rx.receive(seq=10, keyframe=True, now=0.0)
    assert rx.receive(seq=15, keyframe=True, now=0.1) == DECODE
    assert rx.receive(seq=15, keyframe=False, now=0.1) == SKIP
    assert rx.receive(seq=3, keyframe=True, now=0.1) == SKIP
    assert rx.state == "in_sync"


def test_seq_wraps_around() -> None:
    rx = StreamReceiver(7, now=0.0)
    rx.receive(seq=2**32 - 1, keyframe=True, now=0.0)
    assert rx.receive(seq=0, keyframe=False, now=0.1) == DECODE


def test_decoder_failure_waits_for_a_keyframe() -> None:
    rx = StreamReceiver(7, now=0.0)
    rx.receive(seq=0, keyframe=True, now=0.0)
    assert rx.decode_failed(now=1.0) is True
    assert rx.decode_failed(now=1.1) is False
    assert rx.receive(seq=1, keyframe=False, now=1.2) == SKIP
    assert rx.receive(seq=2, keyframe=True, now=1.3) == DECODE


def test_stall() -> None:
    rx = StreamReceiver(7, now=10.0)
    assert not rx.stalled(now=10.0 + STREAM_STALL_S - 0.01)
    assert rx.stalled(now=10.0 + STREAM_STALL_S)
    rx.receive(seq=0, keyframe=True, now=20.0)
    assert rx.stall_deadline_s() == 20.0 + STREAM_STALL_S
    assert not rx.stalled(now=21.0)
