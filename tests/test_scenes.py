"""Scenes of the panel window, rendered for real offscreen (EGL): kiosk.scenes.

One headless 640×480 window (4:3) serves the module, so the sample lesson's 16:9
pictures are letterboxed with bars above and below.
"""

from __future__ import annotations

import os

os.environ["PYGLET_HEADLESS"] = "true"  # before pyglet's first import

import io
from collections.abc import Iterator
from pathlib import Path

import pyglet
import pytest
import segno
from PIL import Image

from kiosk.player import Show
from kiosk.scenes import (
    ERROR_BACKGROUND,
    FONT_NAME,
    IDLE_BACKGROUND,
    PLACEHOLDER_BACKGROUND,
    IdleInfo,
    Scene,
    SceneContext,
    SceneRequest,
    fit_size,
    qr_pixels,
)
from kiosk.window import Frame, PygletWindow
from media.markdown import SLIDE_BACKGROUND, Block, parse_markdown
from media.store import BlobStore
from protocol.messages import LessonManifest, ManifestItem
from tests.window_panel import PanelWindow

pytestmark = pytest.mark.display

W, H = 640, 480
BAR = (H - W * 9 // 16) // 2  # 60 px above and below a 16:9 picture
GREEN = (46, 125, 50)  # 01-list.png's background, #2e7d32
BLUE = (21, 101, 192)  # 02-hloroplast.png, #1565c0
BLACK = (0, 0, 0)
WHITE = (255, 255, 255)


def rgb(color: tuple[int, int, int, int]) -> tuple[int, int, int]:
    return color[0], color[1], color[2]


class Panel(PanelWindow):
    """The module's window with the sample lesson in its store."""

    def show(self, item: ManifestItem, index: int = 0) -> Frame:
        lesson = LessonManifest("l-test", "Тест", [item])
        self.window.apply(Show(lesson, index, item))
        self.window.run_pending()
        return self.frames[-1]

    def item(self, n: int) -> ManifestItem:
        return self.lesson.items[n]

    def blob_item(self, data: bytes, kind: str = "image", title: str = "Файл") -> ManifestItem:
        sha = self.store.put_bytes(data)
        return ManifestItem(kind, title, sha256=sha, size_bytes=len(data))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    p = Panel(tmp_path_factory.mktemp("scenes"), (W, H))
    yield p
    p.window.close()


def png(image: Image.Image, **save: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", **save)
    return out.getvalue()


# --------------------------------------------------------------------------- pure helpers


def test_fit_size_keeps_the_aspect() -> None:
    assert fit_size(1280, 720, 640, 480) == (640, 360)
    assert fit_size(100, 200, 640, 480) == (240, 480)
    assert fit_size(10, 10, 640, 480) == (480, 480)


def test_markdown_subset() -> None:
    blocks = parse_markdown("# Заголовок\n\nПервая строка\nвторая **жирно**.\n\n- один\n- два\n")
    assert blocks == [
        Block("heading", (("Заголовок", False),), level=1),
        Block("paragraph", (("Первая строка вторая ", False), ("жирно", True), (".", False))),
        Block("item", (("один", False),)),
        Block("item", (("два", False),)),
    ]


def test_qr_code_has_a_quiet_zone_and_finder_patterns() -> None:
    text = "wss://192.168.1.5:8765"
    pixels = qr_pixels(text, 200)
    image = Image.frombytes("RGBA", (pixels.width, pixels.height), pixels.rgba).convert("L")
    modules = int(segno.make(text, error="m", micro=False).symbol_size(border=4)[0])
    scale = image.width // modules
    assert scale * modules == image.width <= 200

    def at(mx: int, my: int) -> object:
        return image.getpixel((mx * scale + scale // 2, my * scale + scale // 2))

    assert at(0, 0) == 255  # quiet zone
    for corner in [(4, 4), (10, 4), (4, 10), (10, 10)]:
        assert at(*corner) == 0  # the top left finder's ring
    assert at(5, 5) == 255  # the ring's white gap
    assert at(7, 7) == 0  # the finder's centre


def test_the_panel_font_has_cyrillic() -> None:
    assert pyglet.font.have_font(FONT_NAME)


# --------------------------------------------------------------------------- each kind


def test_image_is_letterboxed_with_black_bars(panel: Panel) -> None:
    frame = panel.show(panel.item(1))  # blue, 1280×720
    assert frame.pixel(W // 2, H // 2) == BLUE
    assert frame.pixel(W // 2, BAR + 1) == BLUE
    assert frame.pixel(W // 2, H - BAR - 2) == BLUE
    for y in (0, BAR - 2, H - BAR + 1, H - 1):
        assert frame.pixel(W // 2, y) == BLACK, y


def test_green_image_fills_the_width(panel: Panel) -> None:
    frame = panel.show(panel.item(0))
    assert frame.pixel(2, BAR + 3) == GREEN
    assert frame.pixel(W - 3, H - BAR - 4) == GREEN
    assert frame.pixel(2, BAR - 3) == BLACK


def test_exif_orientation_is_honoured(panel: Panel) -> None:
    # Stored landscape, left half red and right half blue, tagged "rotate 90° CW to view":
    # upright it is portrait, red on top.
    image = Image.new("RGB", (200, 100), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 100, 100))
    exif = Image.Exif()
    exif[0x0112] = 6
    frame = panel.show(panel.blob_item(png(image, exif=exif)))
    assert frame.pixel(W // 2, 40) == (255, 0, 0)
    assert frame.pixel(W // 2, H - 40) == (0, 0, 255)
    assert frame.pixel(40, H // 2) == BLACK  # portrait: bars left and right
    assert frame.pixel(W - 40, H // 2) == BLACK


def test_pdf_page_renders_white_with_content(panel: Panel) -> None:
    frame = panel.show(panel.item(2))
    assert frame.pixel(W // 2, H - BAR - 20) == WHITE  # the page's lower part is blank
    assert frame.pixel(W // 2, 2) == BLACK  # A4 landscape is wider than 4:3: bars
    assert not frame.is_uniform()
    page = frame.image().crop((0, BAR + 5, W, H - BAR - 5)).convert("L")
    darkest, lightest = page.getextrema()
    assert isinstance(darkest, int)
    assert darkest < 80  # dark text...
    assert lightest == 255  # ...on white


def test_text_slide_is_dark_type_on_a_light_page(panel: Panel) -> None:
    frame = panel.show(panel.item(4))  # 04-uravnenie.md (the PDF has two pages)
    assert frame.pixel(3, 3) == rgb(SLIDE_BACKGROUND)
    top = frame.image().crop((0, 0, W, H // 3)).convert("L")
    dark = sum(top.histogram()[:100])
    assert dark > 500  # the Cyrillic heading and the equation


def test_long_text_is_shrunk_to_fit(panel: Panel) -> None:
    text = "# Очень длинный слайд\n\n" + "\n\n".join(
        f"- Пункт номер {i}: съешь же ещё этих мягких французских булок" for i in range(30)
    )
    frame = panel.show(ManifestItem("text", "Длинный", text=text))
    assert frame.pixel(W // 2, H - 3) == rgb(SLIDE_BACKGROUND)  # nothing runs off the page
    bottom = frame.image().crop((0, H * 3 // 4, W, H - H // 12)).convert("L")
    assert sum(bottom.histogram()[:100]) > 0  # ...but the page is used


@pytest.mark.parametrize("kind", ["video", "web"])
def test_video_and_web_show_a_placeholder_card(panel: Panel, kind: str) -> None:
    item = ManifestItem(kind, "Опыт", url="https://example.org" if kind == "web" else None)  # type: ignore[arg-type]
    frame = panel.show(item)
    assert frame.pixel(3, 3) == rgb(PLACEHOLDER_BACKGROUND)
    assert not frame.is_uniform()


def test_corrupt_image_shows_the_error_slide(panel: Panel) -> None:
    frame = panel.show(panel.blob_item(b"\x89PNG\r\n\x1a\n not really", title="Сломанный"))
    assert frame.pixel(3, 3) == rgb(ERROR_BACKGROUND)
    assert not frame.is_uniform()


def test_missing_blob_shows_the_error_slide(panel: Panel) -> None:
    item = ManifestItem("image", "Пропавший", sha256="ab" * 32, size_bytes=10)
    frame = panel.show(item)
    assert frame.pixel(3, 3) == rgb(ERROR_BACKGROUND)


def test_missing_pdf_page_shows_the_error_slide(panel: Panel) -> None:
    item = panel.item(2)
    frame = panel.show(ManifestItem("pdf", item.title, sha256=item.sha256, page=99))
    assert frame.pixel(3, 3) == rgb(ERROR_BACKGROUND)


def test_the_error_slide_follows_the_language() -> None:
    from kiosk.i18n import tr

    assert tr("ru", "Could not show «{title}»", title="Лист") == "Не удалось показать «Лист»"
    assert tr("en", "Could not show «{title}»", title="Leaf") == "Could not show «Leaf»"


def test_a_registered_loader_replaces_the_placeholder(panel: Panel) -> None:
    class Red(Scene):
        background = (200, 0, 0, 255)

    def load_red(request: SceneRequest, ctx: SceneContext) -> object:
        return Red

    factory = panel.window.factory
    factory.register("video", load_red)  # type: ignore[arg-type]
    try:
        frame = panel.show(ManifestItem("video", "Красное видео", sha256="cd" * 32), index=7)
    finally:
        from kiosk.scenes import load_placeholder

        factory.register("video", load_placeholder)
    assert frame.is_uniform((200, 0, 0))


def test_idle_clock_is_in_the_panel_timezone() -> None:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    sunday_night = datetime(2026, 11, 29, 23, 30, tzinfo=UTC).timestamp()
    novosibirsk = IdleInfo("Школа", "Каб. 1", clock=lambda: sunday_night, tz=ZoneInfo(NSK))
    moscow = IdleInfo("Школа", "Каб. 1", clock=lambda: sunday_night, tz=ZoneInfo(MSK))
    assert (novosibirsk.clock_text(), moscow.clock_text()) == ("06:30", "02:30")


def test_idle_screen_draws_its_clock_in_the_panel_timezone(tmp_path: Path) -> None:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    moment = datetime(2026, 11, 29, 16, 45, tzinfo=UTC).timestamp()
    frames = []
    for zone in (NSK, MSK):
        window = PygletWindow(
            BlobStore(tmp_path / zone.replace("/", "-"), 10**6),
            IdleInfo("Школа", "Каб. 1", clock=lambda: moment, tz=ZoneInfo(zone)),
            mode="headless",
            size=(W, H),
        )
        try:
            window.run_pending()
            frames.append(window.read_pixels())
        finally:
            window.close()
    # 23:45 and 19:45: the same screen but for the clock's digits.
    assert frames[0] != frames[1]


NSK, MSK = "Asia/Novosibirsk", "Europe/Moscow"


def test_idle_screen_background(panel: Panel) -> None:
    from kiosk.player import ShowIdle

    panel.window.apply(ShowIdle())
    panel.window.run_pending()
    assert panel.frames[-1].pixel(3, 3) == rgb(IDLE_BACKGROUND)


# --------------------------------------------------------------------------- glyphs


@pytest.mark.parametrize("size", [0, 1, 7, 90 * 120])
def test_glyph_coverage_becomes_the_same_pixels_as_pyglet_makes_them(size: int) -> None:
    from pyglet.font.freetype import FreeTypeGlyphRenderer

    from kiosk.glyphs import PanelGlyphRenderer

    coverage = bytes((i * 37 + size) % 256 for i in range(size))
    for formats in (("R", "BGRA"), ("RG", "BGRA"), ("BGRA", "RGB")):
        ours = PanelGlyphRenderer._expand_to_rgba(None, coverage, *formats)  # type: ignore[arg-type]
        theirs = FreeTypeGlyphRenderer._expand_to_rgba(None, coverage, *formats)  # type: ignore[arg-type]
        assert ours == theirs, formats


def test_the_window_renders_glyphs_with_the_panel_renderer_and_the_same_pixels(
    panel: Panel,
) -> None:
    from pyglet.font.freetype import FreeTypeFont, FreeTypeGlyphRenderer

    from kiosk.glyphs import PanelGlyphRenderer

    assert FreeTypeFont.glyph_renderer_class is PanelGlyphRenderer  # PygletWindow installed it
    font = pyglet.font.load(FONT_NAME, 61, weight="bold")
    assert isinstance(font, FreeTypeFont)
    for char in "Ж5й":
        ours = PanelGlyphRenderer(font).render(char).get_image_data()  # type: ignore[no-untyped-call]
        theirs = FreeTypeGlyphRenderer(font).render(char).get_image_data()  # type: ignore[no-untyped-call]
        assert (ours.width, ours.height) == (theirs.width, theirs.height)
        assert ours.width > 10
        pitch = ours.width * 4
        assert ours.get_data("BGRA", pitch) == theirs.get_data("BGRA", pitch)
