"""More pictures on a real headless panel window (EGL): an animated GIF animates on
pyglet's clock (time injected, never slept), BMP and TIFF show, an SVG shows as its
rendering, and a picture of a kind the panel does not read gives the error slide."""

from __future__ import annotations

import os

os.environ["PYGLET_HEADLESS"] = "true"  # before pyglet's first import

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pyglet
import pytest
from PIL import Image

import kiosk.scenes
from kiosk.player import Show
from kiosk.scenes import (
    ERROR_BACKGROUND,
    SHORT_FRAME_S,
    AnimationScene,
    IdleInfo,
    decode_animation,
)
from kiosk.window import Frame, PygletWindow
from media.lesson import load_lesson
from media.store import BlobStore
from protocol.messages import LessonManifest, ManifestItem

pytestmark = pytest.mark.display

W, H = 320, 240
RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
BLACK = (0, 0, 0)


class Panel:
    def __init__(self, root: Path) -> None:
        self.store = BlobStore(root, 10**9)
        self.window = PygletWindow(
            self.store, IdleInfo("Школа № 5", "Каб. 12"), mode="headless", size=(W, H)
        )
        self.frames: list[Frame] = []
        self.window.frame_hooks.append(lambda: self.frames.append(self.window.read_pixels()))
        self.window.run_pending()

    def show(self, data: bytes, title: str = "Картинка") -> Frame:
        sha = self.store.put_bytes(data)
        item = ManifestItem("image", title, sha256=sha, size_bytes=len(data))
        self.window.apply(Show(LessonManifest("l-pic", "Тест", [item]), 0, item))
        self.window.run_pending()
        return self.frames[-1]


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    p = Panel(tmp_path_factory.mktemp("pictures"))
    yield p
    p.window.close()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """pyglet's clock on a time the test moves: ``advance(seconds)``."""
    default = pyglet.clock.get_default()
    now = [default.time() + 1.0]
    monkeypatch.setattr(default, "time", lambda: now[0])
    default.tick()  # the clock's last tick is now

    def advance(seconds: float) -> None:
        now[0] += seconds

    return advance


def encoded(image: Image.Image, fmt: str, **save: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def gif(colours: list[tuple[int, int, int]], durations_ms: list[int]) -> bytes:
    frames = [Image.new("RGB", (160, 120), c) for c in colours]
    return encoded(
        frames[0], "GIF", save_all=True, append_images=frames[1:], duration=durations_ms, loop=0
    )


def test_an_animated_gif_animates_on_the_panel(
    panel: Panel, clock: Callable[[float], None]
) -> None:
    frame = panel.show(gif([RED, GREEN, BLUE], [100, 200, 100]))
    assert frame.pixel(W // 2, H // 2) == RED
    assert frame.pixel(W - 2, H // 2) == RED  # 4:3 in 4:3: fitted to the whole window
    drawn = len(panel.frames)
    clock(0.09)
    panel.window.run_pending()
    assert len(panel.frames) == drawn  # not yet due: no frame drawn, no CPU
    clock(0.02)
    panel.window.run_pending()
    assert len(panel.frames) == drawn + 1
    assert panel.frames[-1].pixel(W // 2, H // 2) == GREEN
    clock(0.2)
    panel.window.run_pending()
    assert panel.frames[-1].pixel(W // 2, H // 2) == BLUE
    clock(0.1)
    panel.window.run_pending()
    assert panel.frames[-1].pixel(W // 2, H // 2) == RED  # it loops


def test_other_redraws_do_not_put_the_next_frame_off(
    panel: Panel, clock: Callable[[float], None]
) -> None:
    panel.show(gif([RED, GREEN], [100, 100]))
    for _ in range(3):  # a screenshot, an overlay: frames drawn in between
        clock(0.03)
        panel.window.request_redraw()
        panel.window.run_pending()
        assert panel.frames[-1].pixel(W // 2, H // 2) == RED
    clock(0.02)
    panel.window.run_pending()
    assert panel.frames[-1].pixel(W // 2, H // 2) == GREEN  # due at 0.1 s, as the GIF says


def test_an_animation_stops_while_blanked_and_when_replaced(
    panel: Panel, clock: Callable[[float], None]
) -> None:
    from kiosk.player import SetBlank

    panel.show(gif([BLUE, GREEN], [100, 100]))  # a GIF of its own: a scene of its own
    scene = panel.window.current
    assert isinstance(scene, AnimationScene)
    assert scene.frame_index == 0
    panel.window.apply(SetBlank(True))
    panel.window.run_pending()
    drawn = len(panel.frames)
    clock(1.0)
    panel.window.run_pending()
    assert len(panel.frames) == drawn  # blanked: the animation waits
    assert scene.frame_index == 0
    panel.window.apply(SetBlank(False))
    panel.window.run_pending()
    clock(0.1)
    panel.window.run_pending()
    assert scene.frame_index == 1
    panel.show(encoded(Image.new("RGB", (160, 120), BLUE), "PNG"))
    drawn = len(panel.frames)
    clock(1.0)
    panel.window.run_pending()
    assert len(panel.frames) == drawn  # a still picture now: nothing more is drawn


def test_a_gif_of_one_frame_is_a_still_picture(panel: Panel) -> None:
    frame = panel.show(encoded(Image.new("RGB", (160, 120), GREEN), "GIF"))
    assert frame.pixel(W // 2, H // 2) == GREEN
    assert not isinstance(panel.window.current, AnimationScene)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF"])
def test_bmp_and_tiff_are_shown(panel: Panel, fmt: str) -> None:
    image = Image.new("RGB", (320, 120), BLUE)  # wide: bars above and below
    frame = panel.show(encoded(image, fmt))
    assert frame.pixel(W // 2, H // 2) == BLUE
    assert frame.pixel(W // 2, 5) == BLACK


def test_the_first_page_of_a_tiff_is_shown(panel: Panel) -> None:
    pages = [Image.new("RGB", (160, 120), c) for c in (GREEN, RED)]
    frame = panel.show(encoded(pages[0], "TIFF", save_all=True, append_images=pages[1:]))
    assert frame.pixel(W // 2, H // 2) == GREEN


def test_an_svg_is_shown_as_its_rendering(panel: Panel, tmp_path: Path) -> None:
    (tmp_path / "flag.svg").write_text(
        "<svg xmlns='http://www.w3.org/2000/svg' width='40' height='30'>"
        "<rect width='40' height='15' fill='#00ff00'/>"
        "<rect y='15' width='40' height='15' fill='#0000ff'/></svg>"
    )
    [item] = load_lesson(tmp_path).items
    assert item.path is not None
    frame = panel.show(item.path.read_bytes())
    assert frame.pixel(W // 2, H // 4) == GREEN
    assert frame.pixel(W // 2, H * 3 // 4) == BLUE


def test_an_svg_sent_to_the_panel_as_is_is_not_parsed(panel: Panel) -> None:
    data = b"<svg xmlns='http://www.w3.org/2000/svg'><rect width='9' height='9'/></svg>"
    assert panel.show(data).pixel(3, 3) == ERROR_BACKGROUND[:3]


def test_a_picture_of_a_kind_the_panel_does_not_read_is_the_error_slide(panel: Panel) -> None:
    data = encoded(Image.new("RGB", (32, 32), RED), "ICO")  # Pillow reads ICO; a panel not
    assert panel.show(data).pixel(3, 3) == ERROR_BACKGROUND[:3]


def test_a_long_animation_is_kept_within_its_pixel_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kiosk.scenes, "MAX_ANIMATION_PIXELS", 4 * 100 * 100)
    for side, kept_side in [(100, 100), (120, 100)]:  # at the budget, and over it
        frames = [Image.new("RGB", (side, side), (i * 60, 0, 0)) for i in range(4)]
        path = tmp_path / f"{side}.gif"
        frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], duration=50)
        decoded = decode_animation(str(path), 400, 300)
        assert decoded is not None
        assert [(p.width, p.height) for p in decoded.pixels] == [(kept_side, kept_side)] * 4
        assert decoded.shown_size == (300, 300)  # drawn fitted to the window all the same


def test_frames_past_the_limit_are_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kiosk.scenes, "MAX_ANIMATION_FRAMES", 5)
    for count, kept in [(5, 5), (6, 5)]:
        frames = [Image.new("RGB", (4, 4), (i * 40, 0, 0)) for i in range(count)]
        path = tmp_path / f"{count}.gif"
        frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], duration=0)
        decoded = decode_animation(str(path), W, H)
        assert decoded is not None
        assert len(decoded.pixels) == kept
        assert set(decoded.durations_s) == {SHORT_FRAME_S}  # a delay of 0, as browsers show it
