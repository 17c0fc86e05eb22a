"""The panel window, rendered for real offscreen (EGL): kiosk.window.

Effects, gapless switching, the error slide, blanking, the panel's keys and taps, the
idle screen, screenshots, and a still slide costing no frames. One headless window
serves the module.
"""

from __future__ import annotations

import os

os.environ["PYGLET_HEADLESS"] = "true"  # before pyglet's first import

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyglet
import pytest
from PIL import Image
from pyglet.window import key

from kiosk import window as window_module
from kiosk.effects import PinChanged
from kiosk.player import Preload, SetBlank, Show, ShowIdle, VideoCommand
from kiosk.scenes import (
    ERROR_BACKGROUND,
    IDLE_BACKGROUND,
    Scene,
    SceneContext,
    load_placeholder,
)
from kiosk.window import Frame
from protocol.messages import LessonManifest, ManifestItem
from tests.window_panel import PanelWindow

pytestmark = pytest.mark.display

W, H = 640, 480
GREEN = (46, 125, 50)
BLUE = (21, 101, 192)
BLACK = (0, 0, 0)


class Panel(PanelWindow):
    """The module's window (sample lesson), what it drew and asked for, on a moved clock."""

    def __init__(self, root: Path) -> None:
        self.controls: list[str] = []
        self.ended: list[int] = []
        self.now = 1000.0
        """The window's clock: a test moves it."""
        super().__init__(
            root,
            (W, H),
            control=self.controls.append,
            item_ended=self.ended.append,
            clock=lambda: self.now,
        )

    def apply(self, *effects: object) -> Frame:
        for effect in effects:
            self.window.apply(effect)  # type: ignore[arg-type]
        self.window.run_pending()
        return self.frames[-1]

    def show(self, index: int, *, preload: bool = True) -> Frame:
        items = self.lesson.items
        effects: list[object] = [Show(self.lesson, index, items[index])]
        if preload and index + 1 < len(items):
            effects.append(Preload(self.lesson, index + 1, items[index + 1]))
        return self.apply(*effects)

    def press(self, symbol: int) -> None:
        self.window.window.dispatch_event("on_key_press", symbol, 0)
        self.window.window.dispatch_events()
        self.window.run_pending()

    def tap(self, x: int) -> None:
        self.window.window.dispatch_event("on_mouse_press", x, H // 2, 1, 0)
        self.window.window.dispatch_events()


@pytest.fixture(scope="module")
def module_panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    p = Panel(tmp_path_factory.mktemp("window"))
    yield p
    p.window.close()


@pytest.fixture
def panel(module_panel: Panel) -> Iterator[Panel]:
    module_panel.controls.clear()
    module_panel.frames.clear()
    yield module_panel
    module_panel.apply(SetBlank(False), ShowIdle())


def png_bytes(data: bytes) -> ManifestItem:
    return ManifestItem("image", "x", sha256="0" * 64, size_bytes=len(data))


# --------------------------------------------------------------------------- idle


def test_idle_screen_shows_the_current_pin(panel: Panel) -> None:
    first = panel.apply(PinChanged("111111"))
    assert first.pixel(3, 3) == (21, 42, 64)
    again = panel.apply(PinChanged("111111"))  # unchanged PIN: no new frame
    assert again is first
    second = panel.apply(PinChanged("975310"))
    assert second.rgba != first.rgba
    # Only the PIN's region changed: the lower left quarter.
    diff = Image.frombytes(
        "RGBA", (W, H), bytes(a ^ b for a, b in zip(first.rgba, second.rgba, strict=True))
    )
    bbox = diff.transpose(Image.Transpose.FLIP_TOP_BOTTOM).convert("L").getbbox()
    assert bbox is not None
    left, top, right, _ = bbox
    assert left < W // 2
    assert right < W // 2 + 60
    assert top > H // 2


def test_idle_screen_shows_the_address_as_a_qr_code(panel: Panel) -> None:
    panel.window.set_address("wss://192.168.1.5:8765")
    frame = panel.apply()
    box = panel.window.idle.qr_box
    assert box is not None
    x, y, w, h = box
    region = frame.image().crop((x, H - y - h, x + w, H - y)).convert("L")
    histogram = region.histogram()
    assert histogram[0] > w * h // 5  # black modules
    assert histogram[255] > w * h // 3  # white modules and quiet zone
    assert sum(histogram) - histogram[0] - histogram[255] == 0  # crisp: nothing between
    assert x > W // 2
    assert x + w < W


# --------------------------------------------------------------------------- switching


def test_show_preloaded_item_swaps_in_one_frame(panel: Panel) -> None:
    panel.show(0)
    assert panel.frames[-1].pixel(W // 2, H // 2) != BLACK
    before = panel.window.frames
    frame = panel.show(1)
    assert frame.pixel(W // 2, H // 2) == BLUE
    assert panel.window.frames - before == 1  # no intermediate frame


def test_no_black_frame_between_switches(panel: Panel) -> None:
    panel.show(0, preload=False)
    panel.frames.clear()
    items = panel.lesson.items
    # Show the PDF page without preloading it, and redraw as often as possible while it
    # loads (as an expose would): every frame is the old picture or the new one.
    panel.window.apply(Show(panel.lesson, 3, items[3]))
    deadline = time.monotonic() + 5
    while not any(f.pixel(W // 2, H - 80) == (255, 255, 255) for f in panel.frames[-1:]):
        panel.window.request_redraw()
        pyglet.app.platform_event_loop.dispatch_posted_events()
        pyglet.clock.tick()
        assert time.monotonic() < deadline
    panel.window.run_pending()
    assert len(panel.frames) >= 2
    for frame in panel.frames:
        assert not frame.is_uniform(BLACK)
        middle = frame.pixel(W // 2, H // 2)
        assert middle == (255, 255, 255) or frame.pixel(2, 70) == GREEN


def test_a_show_at_an_instant_keeps_the_picture_and_flips_at_the_instant(
    panel: Panel, caplog: pytest.LogCaptureFixture
) -> None:
    """During a synchronised start's lead the panel keeps what it shows (not the idle
    screen with its PIN) while the item is built; at the instant the pyglet clock calls
    the flip, which draws the new item in one frame and logs when it flipped."""
    first = panel.show(0, preload=False)
    items = panel.lesson.items
    at_s = panel.now + 60  # the test plays the clock's part (no waiting)
    panel.apply(Show(panel.lesson, 1, items[1], at_s=at_s))
    panel.window.request_redraw()
    panel.window.run_pending()
    kept = panel.frames[-1]
    assert kept.pixel(W // 2, H // 2) == first.pixel(W // 2, H // 2) != BLUE
    assert kept.pixel(3, 3) != IDLE_BACKGROUND[:3]
    assert not panel.window.busy  # built ahead: nothing left to load at the instant
    before = panel.window.frames
    with caplog.at_level("INFO", logger="kiosk.window"):
        panel.window._flip()  # what pyglet.clock.schedule_once calls at ``at_s``
    assert panel.window.frames - before == 1  # drawn at once, not on the next redraw
    assert panel.frames[-1].pixel(W // 2, H // 2) == BLUE
    assert "flipped to item 2 at monotonic" in caplog.text
    # The player's own Show at the instant (from the network thread) changes nothing.
    before = panel.window.frames
    assert panel.apply(Show(panel.lesson, 1, items[1])).pixel(W // 2, H // 2) == BLUE


def test_a_show_whose_instant_has_passed_flips_at_once_and_logs_how_late(
    panel: Panel, caplog: pytest.LogCaptureFixture
) -> None:
    items = panel.lesson.items
    panel.show(0)  # item 1 is built ahead
    with caplog.at_level("INFO", logger="kiosk.window"):
        frame = panel.apply(Show(panel.lesson, 1, items[1], at_s=panel.now - 0.25))
    assert frame.pixel(W // 2, H // 2) == BLUE
    [line] = [r.getMessage() for r in caplog.records if "flipped to item 2" in r.getMessage()]
    late_ms = float(line.split(", ")[1].split(" ms after")[0])
    assert late_ms >= 250


def test_a_show_or_idle_before_the_instant_cancels_the_flip(panel: Panel) -> None:
    items = panel.lesson.items
    panel.show(1, preload=False)
    panel.apply(Show(panel.lesson, 0, items[0], at_s=panel.now + 60))
    frame = panel.apply(ShowIdle())  # a stop during the lead
    assert frame.pixel(3, 3) == IDLE_BACKGROUND[:3]
    panel.window._flip()  # the timer was cancelled; a stray call does nothing
    panel.window.request_redraw()
    panel.window.run_pending()
    assert panel.frames[-1].pixel(3, 3) == IDLE_BACKGROUND[:3]


def test_corrupt_image_shows_the_error_slide_and_the_lesson_goes_on(panel: Panel) -> None:
    bad_sha = panel.store.put_bytes(b"GIF89a broken")
    items = [
        ManifestItem("image", "Битая картинка", sha256=bad_sha, size_bytes=13),
        panel.lesson.items[1],
    ]
    lesson = LessonManifest("l-bad", "Урок", items)
    frame = panel.apply(Show(lesson, 0, items[0]), Preload(lesson, 1, items[1]))
    assert frame.pixel(3, 3) == ERROR_BACKGROUND[:3]
    frame = panel.apply(Show(lesson, 1, items[1]))
    assert frame.pixel(W // 2, H // 2) == BLUE


def test_blank_and_unblank(panel: Panel) -> None:
    panel.show(1)
    assert panel.apply(SetBlank(True)).is_uniform(BLACK)
    assert panel.apply(SetBlank(False)).pixel(W // 2, H // 2) == BLUE


def test_blanked_screen_stays_black_when_the_item_changes(panel: Panel) -> None:
    panel.apply(SetBlank(True))
    frame = panel.show(0)
    assert frame.is_uniform(BLACK)


def test_video_commands_and_the_end_reach_the_scene(panel: Panel) -> None:
    received: list[VideoCommand] = []

    class FakeVideo(Scene):
        def __init__(self, ctx: SceneContext, index: int) -> None:
            self.ctx, self.index = ctx, index

        def video(self, command: VideoCommand) -> None:
            received.append(command)
            if command.action == "seek":
                self.ctx.item_ended(self.index)

    factory = panel.window.factory
    factory.register("video", lambda req, ctx: lambda: FakeVideo(ctx, req.index))
    try:
        item = ManifestItem("video", "Опыт", sha256="e" * 64)
        lesson = LessonManifest("l-video", "Видео", [item])
        panel.apply(Show(lesson, 0, item), VideoCommand("pause"), VideoCommand("seek", 5000))
    finally:
        from kiosk.scenes import load_placeholder

        factory.register("video", load_placeholder)
    assert received == [VideoCommand("pause"), VideoCommand("seek", 5000)]
    assert panel.ended == [0]


def test_a_scene_is_left_after_the_next_frame_is_up_never_while_drawing(panel: Panel) -> None:
    """Leaving stops VLC or Chromium: it happens once the next item's frame is drawn and
    flipped, never inside on_draw (which only draws)."""
    events: list[str] = []
    drawing = [False]

    class Recorded(Scene):
        background = (0, 120, 0, 255)

        def enter(self) -> None:
            events.append("enter")

        def leave(self) -> None:
            events.append("leave while drawing" if drawing[0] else "leave")

    draw = panel.window.on_draw

    def on_draw() -> None:
        drawing[0] = True
        try:
            draw()
        finally:
            drawing[0] = False

    panel.window.on_draw = on_draw  # type: ignore[method-assign]
    panel.window.frame_hooks.append(lambda: events.append("frame"))
    factory = panel.window.factory
    factory.register("video", lambda req, ctx: Recorded)
    try:
        item = ManifestItem("video", "Уходит", sha256="d" * 64)  # a scene of its own
        panel.apply(Show(LessonManifest("l-left", "Видео", [item]), 0, item))
        events.clear()
        frame = panel.show(1)  # the blue picture replaces it
        assert frame.pixel(W // 2, H // 2) == BLUE
        assert events[:2] == ["frame", "leave"]
    finally:
        del panel.window.on_draw
        panel.window.frame_hooks.pop()
        factory.register("video", load_placeholder)


# --------------------------------------------------------------------------- input


@pytest.mark.parametrize(
    ("symbol", "action"),
    [
        (key.RIGHT, "next"),
        (key.PAGEDOWN, "next"),
        (key.SPACE, "next"),
        (key.LEFT, "prev"),
        (key.PAGEUP, "prev"),
        (key.B, "blank"),
    ],
)
def test_keys(panel: Panel, symbol: int, action: str) -> None:
    panel.press(symbol)
    assert panel.controls == [action]


def test_b_unblanks_a_blank_screen(panel: Panel) -> None:
    panel.apply(SetBlank(True))
    panel.press(key.B)
    assert panel.controls == ["unblank"]


def test_escape_stops_only_after_a_confirmation(panel: Panel) -> None:
    panel.show(1)
    plain = panel.frames[-1]
    panel.press(key.ESCAPE)
    assert panel.controls == []
    hint = panel.frames[-1]
    assert hint.rgba != plain.rgba  # the hint banner
    assert hint.pixel(W // 2, 60) == BLUE  # ...at the bottom only
    panel.press(key.ESCAPE)
    assert panel.controls == ["stop"]
    assert panel.frames[-1].rgba == plain.rgba  # the hint is gone
    assert not panel.window.window.has_exit  # Esc never closes the window


def test_escape_confirmation_expires(panel: Panel) -> None:
    panel.press(key.ESCAPE)
    panel.now += window_module.ESC_CONFIRM_S
    panel.press(key.ESCAPE)
    assert panel.controls == ["stop"]  # the second Esc at the very end still counts
    panel.press(key.ESCAPE)
    panel.now += window_module.ESC_CONFIRM_S + 0.001
    panel.press(key.ESCAPE)
    assert panel.controls == ["stop"]  # too late: this Esc only shows the hint again


def test_taps_on_the_thirds(panel: Panel) -> None:
    panel.tap(W - 10)
    panel.tap(10)
    panel.tap(W // 2)
    assert panel.controls == ["next", "prev"]


# --------------------------------------------------------------------------- the loop


def _safety_net(dt: float) -> None:
    """Ends a test's real loop that would otherwise hang (unscheduled after the run)."""
    pyglet.app.exit()


@pytest.mark.slow
def test_still_slide_draws_nothing_and_an_effect_wakes_the_loop(panel: Panel) -> None:
    """In the real loop: no frame while a slide stands; a Show from another thread is
    drawn at once (the loop is woken, not polling)."""
    panel.show(1)
    start_frames = panel.window.frames
    marks: dict[str, float] = {}

    def from_network() -> None:
        time.sleep(0.3)
        marks["frames_still"] = panel.window.frames
        marks["sent"] = time.monotonic()
        panel.window.apply(Show(panel.lesson, 0, panel.lesson.items[0]))

    def on_frame() -> None:
        if "sent" in marks and "drawn" not in marks:
            marks["drawn"] = time.monotonic()
            pyglet.clock.schedule_once(lambda dt: pyglet.app.exit(), 0)

    panel.window.frame_hooks.append(on_frame)
    thread = threading.Thread(target=from_network)
    cpu = time.process_time()
    thread.start()
    pyglet.clock.schedule_once(_safety_net, 5)
    try:
        panel.window.run()
    finally:
        pyglet.clock.unschedule(_safety_net)  # or it ends a later test's loop
        panel.window.frame_hooks.remove(on_frame)
        thread.join()
    cpu = time.process_time() - cpu
    assert marks["frames_still"] == start_frames  # 0 frames while the slide stood
    assert marks["drawn"] - marks["sent"] < 0.5
    assert panel.frames[-1].pixel(2, 70) == GREEN
    assert cpu < 0.25  # the 0.3 s still period costs next to nothing


def test_screenshot_from_another_thread(panel: Panel) -> None:
    panel.show(1)
    result: dict[str, bytes | None] = {}

    def ask() -> None:
        result["png"] = panel.window.screenshot_png(max_width=320)
        panel.window.exit()

    thread = threading.Thread(target=ask)
    thread.start()
    pyglet.clock.schedule_once(_safety_net, 5)
    try:
        panel.window.run()
    finally:
        pyglet.clock.unschedule(_safety_net)
    thread.join()
    png = result["png"]
    assert png is not None
    image = Image.open(io.BytesIO(png))
    assert image.size == (320, 240)
    assert image.convert("RGB").getpixel((160, 120)) == BLUE
    assert image.convert("RGB").getpixel((160, 5)) == BLACK


def test_screenshot_on_the_main_thread(panel: Panel) -> None:
    panel.apply(ShowIdle())
    png = panel.window.screenshot_png()
    assert png is not None
    image = Image.open(io.BytesIO(png))
    assert image.width == 480
    assert image.convert("RGB").getpixel((2, 2)) == IDLE_BACKGROUND[:3]


# --------------------------------------------------------------------------- announcements


def test_announcements_draw_over_the_slide_and_go_away(panel: Panel) -> None:
    from kiosk.effects import HideAnnouncement, ShowAnnouncement
    from kiosk.scenes import ALERT_RED

    slide = panel.show(0)
    top = slide.pixel(W // 4, 10)  # pixels count from the top left
    bottom_left = (5, H - 5)
    info = panel.apply(ShowAnnouncement("Урок окончен", "info", None))
    # A banner along the bottom (blue, a little translucent); the slide stays above it.
    r, _g, b = info.pixel(*bottom_left)
    assert b > 120
    assert b > r + 60
    assert info.pixel(W // 4, 10) == top
    alert = panel.apply(ShowAnnouncement("Эвакуация", "alert", None))
    assert alert.pixel(5, 5) == ALERT_RED[:3]
    assert alert.pixel(W - 5, H - 5) == ALERT_RED[:3]
    # An alert shows even over a blanked screen.
    blanked = panel.apply(SetBlank(True))
    assert blanked.pixel(5, 5) == ALERT_RED[:3]
    cleared = panel.apply(SetBlank(False), HideAnnouncement())
    assert cleared.pixel(W // 4, 10) == top
    assert cleared.pixel(*bottom_left) == slide.pixel(*bottom_left)


# --------------------------------------------------------------------------- first picture


class _NeverReady(Scene):
    """A scene that never gets its first picture (a video libVLC cannot start)."""

    background = (200, 0, 0, 255)
    first_picture_wait_s = 0.3

    @property
    def ready(self) -> bool:
        return False


def test_a_scene_without_a_first_picture_shows_after_the_wait(panel: Panel) -> None:
    panel.show(1)  # the blue picture
    panel.window.factory.register("video", lambda request, ctx: _NeverReady)
    try:
        item = panel.lesson.items[5]
        frame = panel.apply(Show(panel.lesson, 5, item))
        assert frame.pixel(W // 2, H // 2) == BLUE  # the previous item stays meanwhile
        panel.now += _NeverReady.first_picture_wait_s - 0.01
        panel.window.request_redraw()  # any redraw meanwhile (an expose)
        assert panel.apply().pixel(W // 2, H // 2) == BLUE
        panel.now += 0.02  # the wait is over (the window's timer redraws then)
        panel.window.request_redraw()
        assert panel.apply().pixel(W // 2, H // 2) == (200, 0, 0)
    finally:
        panel.window.factory.register("video", load_placeholder)
