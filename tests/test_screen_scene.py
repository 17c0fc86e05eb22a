"""The screen-share scene in a real headless window, fed real H.264 (kiosk.screen_scene)."""

from __future__ import annotations

import os

os.environ["PYGLET_HEADLESS"] = "true"  # before pyglet's first import

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controller.share import H264Encoder, Picture
from kiosk.player import Show, ShowIdle
from kiosk.scenes import PLACEHOLDER_BACKGROUND, IdleInfo
from kiosk.screen_scene import ScreenLoader, ScreenScene, ScreenStream
from kiosk.share import share_lesson
from kiosk.window import PygletWindow
from media.store import BlobStore
from protocol.codec import StreamFrame
from protocol.messages import ShareStart
from tests.window_panel import run_window

pytestmark = [pytest.mark.display, pytest.mark.slow]

W, H = 640, 360
PIC_W, PIC_H = 320, 240  # 4:3 in 16:9: shown 480 wide, bars of 80 left and right
RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def halves(left: tuple[int, int, int], right: tuple[int, int, int]) -> Picture:
    row = b"".join(
        bytes((b, g, r, 255)) for r, g, b in [left] * (PIC_W // 2) + [right] * (PIC_W // 2)
    )
    return Picture(PIC_W, PIC_H, row * PIC_H)


def near(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=False))


class Panel:
    def __init__(self, root: Path) -> None:
        self.window = PygletWindow(
            BlobStore(root, 10**8), IdleInfo("Школа", "Каб. 1"), mode="headless", size=(W, H)
        )
        self.stream = ScreenStream(self.window.request_redraw, stall_s=0.5)
        self.window.factory.register("screen", ScreenLoader(self.stream))
        self.encoder = H264Encoder(PIC_W, PIC_H)
        self.seq = 0
        self.window.run_pending()

    def show(self) -> None:
        start = ShareStart(id=1, stream_id=5, width=PIC_W, height=PIC_H, title="Экран")
        lesson = share_lesson("c-1", start)
        self.stream.start(5, PIC_W, PIC_H)
        self.window.apply(Show(lesson, 0, lesson.items[0]))

    def send(self, picture: Picture, *, keyframe: bool = False) -> bool:
        ok = True
        for e in self.encoder.encode(picture, keyframe=keyframe, capture_us=self.seq):
            ok = self.stream.feed(StreamFrame(5, self.seq, e.keyframe, e.capture_us, e.data))
            self.seq += 1
        return ok

    def run_until(self, until: Callable[[], bool], timeout_s: float = 10.0) -> None:
        run_window(self.window, timeout_s, until)
        assert until(), "timed out"

    def scene(self) -> ScreenScene:
        scene = self.window.current
        assert isinstance(scene, ScreenScene)
        return scene

    def shows(self, left: tuple[int, int, int], right: tuple[int, int, int]) -> bool:
        frame = self.window.read_pixels()
        return (
            near(frame.pixel(W // 2 - 100, H // 2), left)
            and near(frame.pixel(W // 2 + 100, H // 2), right)
            and frame.pixel(20, H // 2) == (0, 0, 0)  # the letterbox bar
        )


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    p = Panel(tmp_path_factory.mktemp("screen-scene"))
    yield p
    p.window.apply(ShowIdle())
    p.window.run_pending()
    p.stream.close()
    p.window.close()


def test_pictures_are_shown_letterboxed_and_changes_follow(panel: Panel) -> None:
    panel.show()
    assert panel.send(halves(RED, BLUE), keyframe=True)
    panel.run_until(
        lambda: isinstance(panel.window.current, ScreenScene) and panel.shows(RED, BLUE)
    )
    shown = panel.scene().frames_shown
    assert panel.send(halves(GREEN, GREEN))
    panel.run_until(lambda: panel.shows(GREEN, GREEN))
    assert panel.scene().frames_shown > shown


def test_a_stalled_stream_shows_the_paused_card_and_recovers(panel: Panel) -> None:
    panel.run_until(lambda: panel.stream.stalled)
    panel.window.request_redraw()
    panel.run_until(lambda: panel.window.read_pixels().pixel(5, 5) == PLACEHOLDER_BACKGROUND[:3])
    assert panel.send(halves(BLUE, RED))
    panel.run_until(lambda: panel.shows(BLUE, RED))


def test_a_bad_picture_makes_the_next_feed_ask_for_a_keyframe(panel: Panel) -> None:
    garbage = StreamFrame(5, panel.seq, False, 0, b"\x00\x00\x00\x01\x41" + bytes(range(256)) * 4)
    panel.seq += 1
    panel.stream.feed(garbage)
    deadline = time.monotonic() + 5
    asked = False
    while not asked and time.monotonic() < deadline:
        time.sleep(0.02)
        asked = not panel.send(halves(RED, RED))  # a P picture: refused while it waits
    assert asked
    assert panel.send(halves(GREEN, BLUE), keyframe=True)  # a keyframe is taken again
    panel.run_until(lambda: panel.shows(GREEN, BLUE))


def test_a_picture_larger_than_the_share_limit_is_not_shown(panel: Panel) -> None:
    big = H264Encoder(1920, 1088)
    picture = Picture(1920, 1088, bytes((0, 255, 0, 255)) * (1920 * 1088))
    [encoded] = big.encode(picture, keyframe=True, capture_us=0)
    panel.stream.feed(StreamFrame(5, panel.seq, True, 0, encoded.data))
    panel.seq += 1
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and panel.send(halves(RED, RED)):
        time.sleep(0.02)
    assert panel.shows(GREEN, BLUE)  # still the last good picture
    big.close()


def test_pictures_superseded_while_queued_are_decoded_but_not_converted(panel: Panel) -> None:
    """A panel that decodes slower than the screen changes converts only the newest of
    the pictures waiting, and catches up instead of dropping them."""
    latest = panel.stream.latest()
    converted = latest.number if latest is not None else 0
    with panel.stream._lock:  # the decoder waits: the pictures queue up behind it
        assert panel.send(halves(RED, GREEN), keyframe=True)
        for color in (BLUE, GREEN, RED):
            assert panel.send(halves(color, color))
    last = panel.seq - 1

    def newest_decoded() -> bool:
        picture = panel.stream.latest()
        return picture is not None and picture.capture_us == last

    panel.run_until(newest_decoded)
    latest = panel.stream.latest()
    assert latest is not None
    assert latest.number == converted + 1  # only the newest of the four
    panel.run_until(lambda: panel.shows(RED, RED))
    assert panel.send(halves(GREEN, BLUE))  # nothing was dropped: no keyframe is needed
    panel.run_until(lambda: panel.shows(GREEN, BLUE))
