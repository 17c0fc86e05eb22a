"""Thumbnails of the lesson strip: a real picture of a video (libVLC in a child process,
bounded in time), text slides drawn as the panel lays them out."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pytest
from PIL import Image

from controller.webapp import lessons
from controller.webapp.lessons import (
    THUMB_SIZE,
    THUMB_WIDTH,
    _layout,
    render_thumbnail,
    slide_text,
    text_thumbnail,
    video_icon,
    video_thumbnail,
)
from media.lesson import load_lesson, sample_lesson_path
from media.markdown import SLIDE_BACKGROUND, SLIDE_HEADING, parse_markdown
from media.videoframe import FRAME_AT_MS, main, video_frame_png

ROOT = Path(__file__).resolve().parent.parent
VIDEO = sample_lesson_path() / "05-opyt.mp4"
BARS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0)}
"""Colour bars of the sample video (ffmpeg's testsrc)."""


def _close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=False))


def _colours(image: Image.Image) -> set[tuple[int, int, int]]:
    small = image.convert("RGB").resize((64, 48), Image.Resampling.NEAREST)
    return {small.getpixel((x, y)) for x in range(64) for y in range(48)}  # type: ignore[misc]


@pytest.mark.slow
def test_a_video_gets_a_picture_of_itself_not_the_icon() -> None:
    picture = video_thumbnail(VIDEO)
    assert picture.width == THUMB_WIDTH
    assert picture.tobytes() != video_icon().tobytes()
    colours = _colours(picture)
    for name, rgb in BARS.items():
        assert any(_close(c, rgb) for c in colours), f"no {name} in the video's picture"


@pytest.mark.slow
def test_the_lessons_video_item_renders_through_the_strip() -> None:
    lesson = load_lesson(sample_lesson_path())
    video = next(item for item in lesson.items if item.kind == "video")
    png = render_thumbnail(video)
    assert png is not None
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        assert any(_close(c, BARS["red"]) for c in _colours(image))


@pytest.mark.slow
def test_a_broken_video_gets_the_icon(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(VIDEO.read_bytes()[:600])  # the header, cut: no picture decodes
    assert video_frame_png(broken) is None
    assert video_thumbnail(broken).tobytes() == video_icon().tobytes()


def test_a_video_that_takes_too_long_gets_the_icon_and_its_child_is_killed() -> None:
    """The grabber waits at most ``timeout_s``: here less than a child needs to start."""
    assert video_frame_png(VIDEO, timeout_s=0.001) is None
    assert video_thumbnail(VIDEO, timeout_s=0.001).tobytes() == video_icon().tobytes()


def test_the_grabbers_child_refuses_wrong_arguments() -> None:
    assert main([]) == 2
    assert main(["a", "b", "not a number"]) == 1
    assert FRAME_AT_MS > 0


def test_python_vlc_is_imported_in_one_module_only() -> None:
    """The house rule: in the product's packages, ``import vlc`` lives in
    media/libvlc.py and nowhere else (the benchmarks time the import itself)."""
    importers = []
    packages = ("protocol", "i18n", "media", "kiosk", "controller", "scripts")
    for path in sorted(p for package in packages for p in (ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(n == "vlc" or n.startswith("vlc.") for n in names):
                importers.append(str(path.relative_to(ROOT)))
    assert importers == ["media/libvlc.py"]


# --------------------------------------------------------------------------- text slides

SLIDE = "# Уравнение\n\n**6 CO₂** и вода\n\n- Углекислый газ\n- Вода\n"


def test_a_text_slide_is_laid_out_without_its_markdown_markers() -> None:
    placed, used = _layout(parse_markdown(SLIDE), 10.0, 200.0)
    words = [piece for _, _, piece, _, _, _ in placed]
    text = "".join(words)
    assert "#" not in text
    assert "**" not in text
    assert "- " not in text
    assert text.count("•") == 2  # a bullet per list item
    heading = [p for p in placed if p[2].strip() == "Уравнение"]
    assert heading
    assert heading[0][3] is True  # bold
    assert heading[0][5] == SLIDE_HEADING[:3]
    bold = {p[2].strip(): p[3] for p in placed}
    assert bold["6"] is True
    assert bold["вода"] is False
    assert used > 0
    items = [p for p in placed if p[2].startswith("•")]
    assert all(p[0] > 0 for p in items)  # indented, as on the panel


def test_a_long_text_slide_shrinks_to_fit_and_wraps() -> None:
    long = "# Заголовок\n\n" + "слово " * 400
    placed, used = _layout(parse_markdown(long), 7.5, 200.0)
    assert len({p[1] for p in placed}) > 10  # wrapped onto many lines
    assert all(p[0] + lessons._font(False, 7.5).getlength(p[2].strip()) <= 200 for p in placed)
    _, smaller = _layout(parse_markdown(long), 7.5 * 0.85, 200.0)
    assert smaller < used  # what the thumbnail does until the slide fits
    picture = text_thumbnail(long, "Заголовок")
    assert picture.size == THUMB_SIZE


def test_a_text_slides_thumbnail_is_a_page_with_a_blue_heading() -> None:
    picture = text_thumbnail(SLIDE, "Уравнение")
    assert picture.size == THUMB_SIZE
    colours = _colours(picture)
    assert SLIDE_BACKGROUND[:3] in colours
    assert any(_close(c, SLIDE_HEADING[:3], 30) for c in colours)
    empty = text_thumbnail("", "Только название")  # the title, as the panel shows it
    assert any(_close(c, SLIDE_HEADING[:3], 30) for c in _colours(empty))


def test_a_slides_alt_text_has_its_words_only() -> None:
    assert slide_text(SLIDE) == "Уравнение 6 CO₂ и вода Углекислый газ Вода"


def test_without_dejavu_the_thumbnail_still_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    lessons._font.cache_clear()
    monkeypatch.setattr(lessons, "TEXT_FONT", "no-such-font.ttf")
    monkeypatch.setattr(lessons, "TEXT_FONT_BOLD", "no-such-font-bold.ttf")
    try:
        assert text_thumbnail(SLIDE, "x").size == THUMB_SIZE
    finally:
        lessons._font.cache_clear()
