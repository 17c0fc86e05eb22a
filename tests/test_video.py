"""VlcVideo with real libVLC decoding the sample lesson's video (2 s, 320x240, 25 fps).

Headless (DESIGN §9): ``--aout=dummy --vout=dummy``; the frame-callback output needs
no display. The embedded output is tested under a private Xvfb when one is installed.
Waits are on events with timeouts, never sleeps in a loop.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kiosk.video import (
    CHROMA,
    FRAME_COPIES,
    HEADLESS_VLC_ARGS,
    VideoFrame,
    VideoOut,
    VlcVideo,
    configure_vlc,
)
from media.lesson import sample_lesson_path
from protocol.errors import CorruptContentError
from tests.threads import native_threads, python_threads, threads_left
from tests.xvfb import vlc_has_x11_output, xlib
from tests.xvfb import xvfb as x_server

SAMPLE = sample_lesson_path() / "05-opyt.mp4"
SAMPLE_DURATION_MS = 2000
TIMEOUT_S = 5.0


@pytest.fixture(scope="module", autouse=True)
def _headless_vlc() -> None:
    configure_vlc(HEADLESS_VLC_ARGS)


class Recorder:
    """Collects what a VlcVideo reports from libVLC's threads."""

    def __init__(self, video: VlcVideo) -> None:
        self.video = video
        self.frame = threading.Condition()
        self.frames = 0
        self.ended = threading.Event()
        self.errored = threading.Event()
        self.errors: list[CorruptContentError] = []
        video.on_frame = self._on_frame
        video.on_end = self.ended.set
        video.on_error = self._on_error

    def _on_frame(self) -> None:
        with self.frame:
            self.frames += 1
            self.frame.notify_all()

    def _on_error(self, error: CorruptContentError) -> None:
        self.errors.append(error)
        self.errored.set()

    def wait_for_frames(self, count: int, timeout_s: float = TIMEOUT_S) -> VideoFrame:
        """Wait until ``count`` more frames arrived; return the newest."""
        with self.frame:
            target = self.frames + count
            assert self.frame.wait_for(lambda: self.frames >= target, timeout_s), (
                f"only {self.frames} of {target} frames"
            )
        frame = self.video.latest_frame()
        assert frame is not None
        return frame


@pytest.fixture
def video() -> Iterator[VlcVideo]:
    v = VlcVideo()
    yield v
    v.close()


@pytest.fixture
def rec(video: VlcVideo) -> Recorder:
    return Recorder(video)


def _satisfies_protocol(v: VlcVideo) -> VideoOut:
    return v  # mypy checks that VlcVideo implements VideoOut


def _colours(frame: VideoFrame) -> set[bytes]:
    """The distinct B, G, R triples on a coarse grid of the picture."""
    found = set()
    data = bytes(frame.data)
    for y in range(0, frame.height, 8):
        for x in range(0, frame.width, 8):
            offset = y * frame.pitch + x * 4
            found.add(data[offset : offset + 3])
    return found


@pytest.mark.slow
def test_frames_advance_and_show_the_test_pattern(video: VlcVideo, rec: Recorder) -> None:
    assert video.latest_frame() is None
    video.load(SAMPLE)
    video.play()
    first = rec.wait_for_frames(3)
    later = rec.wait_for_frames(3)
    assert later.number > first.number >= 3
    assert (later.width, later.height) == (320, 240)
    assert CHROMA == "RV32"
    assert later.pitch >= 320 * 4
    assert len(later.data) == later.pitch * later.height
    assert video.latest_frame() is video.latest_frame()  # no copy until a new frame
    colours = _colours(later)
    assert len(colours) > 8, "a colour test pattern, not a black or flat picture"
    assert b"\x00\x00\x00" not in colours or len(colours) > 8
    assert video.duration_ms() == SAMPLE_DURATION_MS


@pytest.mark.slow
def test_pause_stops_frames_and_play_resumes(video: VlcVideo, rec: Recorder) -> None:
    video.load(SAMPLE)
    video.play()
    rec.wait_for_frames(2)
    video.pause()
    video.pause()  # idempotent
    time.sleep(0.1)  # a picture already queued before the pause may still show
    paused_at = rec.frames
    position_ms = video.position_ms()
    with rec.frame:
        assert not rec.frame.wait_for(lambda: rec.frames > paused_at, 0.3)
    assert video.position_ms() == position_ms
    video.play()
    rec.wait_for_frames(2, timeout_s=2.0)
    assert video.position_ms() >= position_ms


@pytest.mark.slow
def test_seek_moves_the_position(video: VlcVideo, rec: Recorder) -> None:
    video.load(SAMPLE)
    video.play()
    rec.wait_for_frames(1)
    assert video.position_ms() < 800
    started = time.monotonic()
    video.seek(1000)
    with rec.frame:
        assert rec.frame.wait_for(lambda: video.position_ms() >= 1000, 1.0)
    assert time.monotonic() - started < 0.8, "the seek, not playback, moved the position"
    assert video.position_ms() < SAMPLE_DURATION_MS


@pytest.mark.slow
def test_seek_while_paused_shows_the_new_picture(video: VlcVideo, rec: Recorder) -> None:
    video.load(SAMPLE)
    video.play()
    rec.wait_for_frames(5)  # playing for real: libVLC ignores a seek while opening
    video.pause()
    before = bytes(rec.wait_for_frames(0).data)
    number = video.latest_frame().number  # type: ignore[union-attr]
    video.seek(1000)
    after = rec.wait_for_frames(1, timeout_s=2.0)
    assert after.number > number
    assert bytes(after.data) != before
    assert 1000 <= video.position_ms() < 1100  # still paused


@pytest.mark.slow
def test_the_end_calls_on_end(video: VlcVideo, rec: Recorder) -> None:
    video.set_volume(150)  # clamped to 100; the dummy audio output ignores it
    video.load(SAMPLE)
    started = time.monotonic()
    video.play()
    assert rec.ended.wait(SAMPLE_DURATION_MS / 1000 + 1.5)
    assert time.monotonic() - started > SAMPLE_DURATION_MS / 1000 - 0.3
    assert not rec.errored.is_set()
    assert rec.frames >= 45  # 50 frames in the file


def _random_mp4(tmp: Path) -> Path:
    path = tmp / "random.mp4"
    path.write_bytes(os.urandom(100_000))
    return path


def _truncated_mp4(tmp: Path) -> Path:
    path = tmp / "truncated.mp4"
    path.write_bytes(SAMPLE.read_bytes()[: SAMPLE.stat().st_size * 2 // 3])
    return path


def _empty_mp4(tmp: Path) -> Path:
    path = tmp / "empty.mp4"
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize("make", [_random_mp4, _truncated_mp4, _empty_mp4])
def test_a_corrupt_file_reports_an_error(
    video: VlcVideo, rec: Recorder, tmp_path: Path, make: object
) -> None:
    assert callable(make)
    path = make(tmp_path)
    video.load(path)
    video.play()
    assert rec.errored.wait(TIMEOUT_S)
    assert not rec.ended.is_set()
    error = rec.errors[0]
    assert error.path == str(path)
    assert error.code == "corrupt_content"
    # the player is still usable afterwards
    video.load(SAMPLE)
    video.play()
    rec.wait_for_frames(2)


def test_a_missing_file_raises(video: VlcVideo, tmp_path: Path) -> None:
    with pytest.raises(CorruptContentError, match="not found") as caught:
        video.load(tmp_path / "nope.mp4")
    assert caught.value.path == str(tmp_path / "nope.mp4")


@pytest.mark.slow
def test_close_releases_the_player_and_its_threads() -> None:
    VlcVideo().close()  # the shared instance exists before the baseline is taken
    python, native = python_threads(), native_threads()
    for _ in range(2):
        video = VlcVideo()
        rec = Recorder(video)
        video.load(SAMPLE)
        video.play()
        rec.wait_for_frames(2)
        assert native_threads() - native  # the player's
        video.close()
        video.close()  # idempotent
    assert python_threads() == python
    assert threads_left(native) == set()
    # a closed video ignores commands and refuses new media
    video.play()
    video.pause()
    video.seek(10)
    assert video.position_ms() == 0
    assert video.duration_ms() is None
    with pytest.raises(RuntimeError, match="closed"):
        video.load(SAMPLE)


def test_frames_are_copied_into_reused_buffers(video: VlcVideo, rec: Recorder) -> None:
    # A frame read is not a new allocation of its size (3.7 MB at 720p, 30 times a
    # second): the copies take turns among FRAME_COPIES buffers.
    video.load(SAMPLE)
    video.play()
    frames = [rec.wait_for_frames(1) for _ in range(2 * FRAME_COPIES)]
    buffers = {id(f.data) for f in frames}
    assert len(buffers) == FRAME_COPIES
    assert frames[0].data is frames[FRAME_COPIES].data
    assert [f.number for f in frames] == sorted({f.number for f in frames})


def test_a_closed_video_frees_its_frames_without_the_garbage_collector() -> None:
    # A kiosk shows videos all day: each one's three decode buffers (11 MB at 720p)
    # must go when it closes, not at some later collection of reference cycles.
    gc.disable()
    try:
        video = VlcVideo()
        rec = Recorder(video)
        video.on_started = lambda: None  # as the scene sets it
        video.load(SAMPLE)
        video.play()
        rec.wait_for_frames(2)
        sink = video._sink
        assert sink is not None
        assert sink.latest() is not None
        gone = weakref.ref(video)
        video.close()
        del video, rec
        assert gone() is None
        assert sink.latest() is None
        assert sink._buffers == []
    finally:
        gc.enable()


def test_the_embedded_output_can_be_constructed_without_a_display() -> None:
    video = VlcVideo(xwindow=0x200001)
    try:
        assert video.embedded
        assert video.latest_frame() is None
        assert _satisfies_protocol(video) is video
    finally:
        video.close()


# ------------------------------------------------------------ embedded output, Xvfb


@pytest.fixture(scope="module")
def xvfb() -> Iterator[str]:
    if not vlc_has_x11_output():
        pytest.skip("no X11 output in libVLC (apt-get install vlc-plugin-video-output)")
    with x_server() as display:
        yield display


@contextlib.contextmanager
def x_window(display: str, *, mapped: bool) -> Iterator[tuple[Any, Any, int]]:
    """A 320x240 window on ``display`` (mapped or not): libX11, the connection, the window."""
    x11 = xlib()
    dpy = x11.XOpenDisplay(display.encode())
    assert dpy
    try:
        window = x11.XCreateSimpleWindow(dpy, x11.XDefaultRootWindow(dpy), 0, 0, 320, 240, 0, 0, 0)
        if mapped:
            x11.XMapWindow(dpy, window)
        x11.XSync(dpy, 0)
        yield x11, dpy, window
    finally:
        x11.XCloseDisplay(dpy)


@pytest.mark.slow
def test_the_embedded_output_draws_into_an_x11_window(
    xvfb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPLAY", xvfb)
    with x_window(xvfb, mapped=True) as (x11, dpy, window):
        video = VlcVideo(xwindow=window)
        rec = Recorder(video)
        try:
            video.load(SAMPLE)
            video.play()
            deadline = time.monotonic() + TIMEOUT_S
            colours: set[int] = set()
            while len(colours) < 4 and time.monotonic() < deadline and not rec.errored.is_set():
                rec.ended.wait(0.1)  # Xvfb cannot tell us when VLC drew: look every 100 ms
                image = x11.XGetImage(dpy, window, 0, 0, 320, 240, 0xFFFFFFFF, 2)  # ZPixmap
                assert image
                colours = {x11.XGetPixel(image, x, 120) & 0xFFFFFF for x in range(0, 320, 20)}
                x11.XDestroyImage(image)
            assert not rec.errors
            assert len(colours) >= 4, f"the window shows {colours}, not the test pattern"
            assert rec.frames == 0  # no frame callbacks with the embedded output
        finally:
            video.close()


@pytest.mark.slow
def test_the_embedded_output_opens_and_waits_paused_in_a_hidden_window(
    xvfb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a video primed for an instant does with the embedded output: VLC opens its
    output in the unmapped surface and waits there, paused at the start; resumed, it
    plays on and draws once the window is mapped."""
    monkeypatch.setenv("DISPLAY", xvfb)
    with x_window(xvfb, mapped=False) as (x11, dpy, window):
        video = VlcVideo(xwindow=window)
        started = threading.Event()
        video.on_started = started.set
        try:
            video.load(SAMPLE)
            video.set_volume(0)
            video.play()
            assert started.wait(TIMEOUT_S), "VLC opened no output in the hidden window"
            video.pause()
            video.seek(0)
            time.sleep(0.5)
            assert video.position_ms() <= 40  # waits at the start
            x11.XMapWindow(dpy, window)
            x11.XSync(dpy, 0)
            video.play()
            deadline = time.monotonic() + TIMEOUT_S
            while video.position_ms() < 500:
                assert time.monotonic() < deadline, "the video did not play on"
                time.sleep(0.05)
        finally:
            video.close()


@pytest.mark.slow
def test_a_position_reading_carries_the_time_libvlc_published_it(
    video: VlcVideo, rec: Recorder
) -> None:
    """Stamped when published, a reading agrees with the frames' own timing: the
    position it names is where the video was then, not a value held for up to 0.5 s."""
    video.load(SAMPLE)
    assert video.position_reading() is None
    stamps: list[float] = []
    video.on_frame = lambda: stamps.append(time.monotonic())
    video.play()
    deadline = time.monotonic() + TIMEOUT_S
    while (reading := video.position_reading()) is None or reading.position_ms < 500:
        assert time.monotonic() < deadline, "no position published"
        time.sleep(0.02)
    assert reading.at_s <= time.monotonic()
    # The first picture (position 0) showed at stamps[0]: by the reading's time the
    # video had played that long, within a frame or two (not 250-500 ms behind).
    played_ms = (reading.at_s - stamps[0]) * 1000
    assert abs(reading.position_ms - played_ms) < 100
    video.seek(1500)
    after = video.position_reading()  # libVLC publishes the target at once, or nothing
    assert after is None or after.position_ms >= 1500
