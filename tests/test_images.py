"""Pictures teachers have: GIF, BMP, TIFF, AVIF and SVG (media.probe, media.svg), and
lesson folders as teachers keep them (media.lesson): real files made in each test."""

from __future__ import annotations

import http.server
import io
import os
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

import media.svg
from media.lesson import OFFICE_SUFFIXES, is_system_file, load_lesson
from media.probe import SVG_MIME, Probe, looks_like_svg, probe_file
from media.svg import SVG_RENDER_BOX, render_svg, sanitized_svg, trim_render_cache
from protocol.errors import (
    CorruptContentError,
    FileTooLargeError,
    LessonError,
    UnknownContentError,
)
from tests.office_docs import make_pptx

RED = (255, 0, 0)
GREEN = (0, 255, 0)
WHITE = (255, 255, 255)


def picture(path: Path, fmt: str, color: tuple[int, int, int] = RED, **save: object) -> Path:
    Image.new("RGB", (32, 24), color).save(path, fmt, **save)
    return path


def animated_gif(path: Path) -> Path:
    frames = [Image.new("RGB", (32, 24), c) for c in (RED, GREEN)]
    frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


# --------------------------------------------------------------------------- raster


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("GIF", "image/gif"), ("BMP", "image/bmp"), ("TIFF", "image/tiff"), ("AVIF", "image/avif")],
)
def test_more_picture_types_are_probed_by_content(tmp_path: Path, fmt: str, mime: str) -> None:
    path = picture(tmp_path / "picture.bin", fmt)
    assert probe_file(path) == Probe("image", mime)


def test_an_animated_gif_is_an_image(tmp_path: Path) -> None:
    assert probe_file(animated_gif(tmp_path / "a.gif")) == Probe("image", "image/gif")


def test_a_tiff_of_several_pages_is_an_image(tmp_path: Path) -> None:
    path = tmp_path / "scan.tif"
    pages = [Image.new("RGB", (32, 24), c) for c in (RED, GREEN)]
    pages[0].save(path, "TIFF", save_all=True, append_images=pages[1:])
    assert probe_file(path) == Probe("image", "image/tiff")


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_a_truncated_picture_is_damaged(tmp_path: Path, fmt: str) -> None:
    good = picture(tmp_path / "good", fmt).read_bytes()
    path = tmp_path / "broken.img"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(CorruptContentError, match=r"broken\.img"):
        probe_file(path)


def test_text_that_starts_with_bm_is_text(tmp_path: Path) -> None:
    path = tmp_path / "bmw.txt"
    path.write_text("BMW и Мерседес: сравнение двигателей внутреннего сгорания\n")
    assert probe_file(path) == Probe("text", "text/plain")


def test_heic_is_refused_with_its_own_words(tmp_path: Path) -> None:
    path = tmp_path / "photo.heic"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")
    with pytest.raises(UnknownContentError, match="HEIF"):
        probe_file(path)


# --------------------------------------------------------------------------- SVG


def svg(body: str, width: int = 200, height: int = 100, prologue: str = "") -> bytes:
    return (
        f"{prologue}<svg xmlns='http://www.w3.org/2000/svg' "
        f"xmlns:xlink='http://www.w3.org/1999/xlink' width='{width}' height='{height}'>"
        f"{body}</svg>"
    ).encode()


FULL_RED = "<rect width='100%' height='100%' fill='#ff0000'/>"


@pytest.mark.parametrize(
    "prologue",
    [
        "",
        "\ufeff<?xml version='1.0' encoding='UTF-8'?>\n",
        "<?xml version='1.0'?>\n<!-- Inkscape -->\n"
        "<!DOCTYPE svg PUBLIC '-//W3C//DTD SVG 1.1//EN' "
        "'http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd'>\n",
        "<!DOCTYPE svg [<!ENTITY ns_svg 'http://www.w3.org/2000/svg'> <!ENTITY red '#f00'>]>",
    ],
)
def test_svg_is_recognised_by_content(tmp_path: Path, prologue: str) -> None:
    path = tmp_path / "drawing.txt"
    path.write_bytes(svg(FULL_RED, prologue=prologue))
    assert probe_file(path) == Probe("image", SVG_MIME)


def test_html_and_xml_that_are_not_svg_are_not_svg() -> None:
    assert not looks_like_svg(b"<!doctype html><svg></svg>")
    assert not looks_like_svg(b"<?xml version='1.0'?><note>svg</note>")
    assert looks_like_svg(b"<svg>")


def pixel(png: Path, xy: tuple[int, int]) -> tuple[int, ...]:
    with Image.open(png) as image:
        return tuple(image.convert("RGB").getpixel(xy))  # type: ignore[arg-type]


def test_svg_is_rendered_to_a_png_of_the_panels_size(tmp_path: Path) -> None:
    source = tmp_path / "flag.svg"
    source.write_bytes(svg(FULL_RED))
    png = render_svg(source)
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert image.size == (SVG_RENDER_BOX[0], SVG_RENDER_BOX[0] // 2)  # 2:1, fitted
    assert pixel(png, (10, 10)) == RED


def test_transparent_parts_of_an_svg_are_white(tmp_path: Path) -> None:
    source = tmp_path / "dot.svg"
    source.write_bytes(svg("<circle cx='100' cy='50' r='10' fill='#f00'/>"))
    png = render_svg(source)
    assert pixel(png, (5, 5)) == WHITE
    assert pixel(png, (SVG_RENDER_BOX[0] // 2, SVG_RENDER_BOX[0] // 4)) == RED


def test_an_svg_is_rendered_once_and_its_png_is_the_same_every_time(tmp_path: Path) -> None:
    source = tmp_path / "flag.svg"
    source.write_bytes(svg(FULL_RED))
    first = render_svg(source)
    data = first.read_bytes()
    first.write_bytes(data)  # touch: a second render would rewrite it
    mtime = first.stat().st_mtime_ns
    copy = tmp_path / "copy.svg"
    copy.write_bytes(source.read_bytes())
    assert render_svg(copy) == first
    assert first.stat().st_mtime_ns == mtime
    other = tmp_path / "other"
    assert render_svg(source, other).read_bytes() == data  # rendered anew, byte for byte


def test_the_render_cache_keeps_under_its_size_dropping_the_least_recently_used(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "render"
    cache.mkdir()
    for age, name in enumerate(["c", "b", "a"]):  # a oldest, c newest (explicit times)
        (cache / f"{name}.png").write_bytes(b"x" * 100)
        os.utime(cache / f"{name}.png", (1000 - age, 1000 - age))
    trim_render_cache(cache, 300)  # exactly at the limit: all kept
    assert sorted(p.name for p in cache.iterdir()) == ["a.png", "b.png", "c.png"]
    (cache / "d.png").write_bytes(b"x" * 100)
    trim_render_cache(cache, 300, keep=cache / "d.png")  # 100 bytes over: the oldest goes
    assert sorted(p.name for p in cache.iterdir()) == ["b.png", "c.png", "d.png"]


@pytest.mark.slow
def test_render_svg_refreshes_what_it_reuses_and_keeps_what_it_made(tmp_path: Path) -> None:
    cache = tmp_path / "render"
    cache.mkdir()
    for age, name in enumerate(["c", "b"]):  # long unused
        (cache / f"{name}.png").write_bytes(b"x" * 100)
        os.utime(cache / f"{name}.png", (1000 - age, 1000 - age))
    source = tmp_path / "flag.svg"
    source.write_bytes(svg(FULL_RED))
    png = render_svg(source, cache, max_cache_bytes=10**9)
    size = png.stat().st_size
    os.utime(png, (1, png.stat().st_mtime))  # long unused...
    assert render_svg(source, cache, max_cache_bytes=10**9) == png  # ...used again now
    other = tmp_path / "dot.svg"
    other.write_bytes(svg("<circle cx='100' cy='50' r='10' fill='#f00'/>"))
    budget = size + other_size(other) + 100  # the two PNGs and one old one: b goes
    made = render_svg(other, cache, max_cache_bytes=budget)
    assert sorted(p.name for p in cache.iterdir()) == sorted(["c.png", png.name, made.name])
    made.unlink()
    render_svg(other, cache, max_cache_bytes=1)  # over on its own: still kept, all else goes
    assert [p.name for p in cache.iterdir()] == [made.name]


def other_size(source: Path) -> int:
    """The size of ``source``'s PNG, rendered in a cache of its own."""
    return render_svg(source, source.parent / "sizes").stat().st_size


def test_svg_size_limit_at_both_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = svg(FULL_RED)
    monkeypatch.setattr(media.svg, "MAX_SVG_BYTES", len(data))
    at = tmp_path / "at.svg"
    at.write_bytes(data)
    assert render_svg(at).is_file()
    over = tmp_path / "over.svg"
    over.write_bytes(data + b" ")
    with pytest.raises(FileTooLargeError, match=r"over\.svg") as caught:
        render_svg(over)
    assert (caught.value.size_bytes, caught.value.limit_bytes) == (len(data) + 1, len(data))


class Requests(http.server.BaseHTTPRequestHandler):
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        body = io.BytesIO()
        Image.new("RGB", (4, 4), GREEN).save(body, "PNG")
        self.send_header("Content-Length", str(len(body.getvalue())))
        self.end_headers()
        self.wfile.write(body.getvalue())

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[tuple[str, list[str]]]:
    """A web server on 127.0.0.1 that counts the requests it gets."""
    seen: list[str] = []
    handler = type("Handler", (Requests,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_external_pictures_in_an_svg_are_neither_read_nor_fetched(
    tmp_path: Path, web: tuple[str, list[str]]
) -> None:
    url, seen = web
    secret = picture(tmp_path / "secret.png", "PNG", GREEN)
    inner = svg(f"<image width='200' height='100' href='{secret}'/>").decode()
    links = [
        str(secret),  # an absolute path: the renderer would read it
        f"file://{secret}",
        f"{url}/picture.png",
        "secret.png",  # relative to the SVG
        "data:image/svg+xml;utf8," + urllib.parse.quote(inner),  # an SVG with its own link
    ]
    body = FULL_RED + "".join(
        f"<image x='0' y='0' width='200' height='100' {attr}=\"{link}\"/>"
        for link in links
        for attr in ("href", "xlink:href")
    )
    source = tmp_path / "links.svg"
    source.write_bytes(svg(body))
    png = render_svg(source)
    with Image.open(png) as image:
        colours = {c for _, c in image.convert("RGB").getcolors(1 << 24) or []}
    assert colours == {RED}  # no green from the secret picture anywhere
    assert seen == []
    assert str(secret) not in sanitized_svg(source.read_bytes())


def test_an_embedded_raster_picture_and_a_fragment_stay(tmp_path: Path) -> None:
    body = (
        "<defs><rect id='r' width='200' height='100' fill='#f00'/></defs><use href='#r'/>"
        "<image width='1' height='1' href='data:image/png;base64,iVBORw0KGgo='/>"
    )
    text = sanitized_svg(svg(body))
    assert "#r" in text
    assert "data:image/png;base64" in text


@pytest.mark.parametrize("target", ["file:///etc/hostname", "{url}/entity"])
def test_an_external_entity_is_never_loaded(
    tmp_path: Path, web: tuple[str, list[str]], target: str
) -> None:
    url, seen = web
    source = tmp_path / "xxe.svg"
    source.write_bytes(
        svg(
            "<text y='50'>&xxe;</text>",
            prologue=f"<!DOCTYPE svg [<!ENTITY xxe SYSTEM '{target.format(url=url)}'>]>",
        )
    )
    assert probe_file(source) == Probe("image", SVG_MIME)
    with pytest.raises(CorruptContentError, match=r"xxe\.svg"):
        render_svg(source)
    assert seen == []


def test_an_entity_bomb_is_refused(tmp_path: Path) -> None:
    entities = "<!ENTITY a0 'ha'>" + "".join(
        f"<!ENTITY a{n} '{('&a' + str(n - 1) + ';') * 10}'>" for n in range(1, 10)
    )
    source = tmp_path / "bomb.svg"
    source.write_bytes(svg("<text>&a9;</text>", prologue=f"<!DOCTYPE svg [{entities}]>"))
    with pytest.raises(CorruptContentError, match=r"bomb\.svg"):
        render_svg(source)


def test_xml_that_is_not_an_svg_picture_is_damaged(tmp_path: Path) -> None:
    source = tmp_path / "fake.svg"
    source.write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'><rect></svg>")
    with pytest.raises(CorruptContentError, match=r"fake\.svg"):
        render_svg(source)


def test_an_svg_in_a_lesson_is_an_image_of_its_rendering(tmp_path: Path) -> None:
    (tmp_path / "flag.svg").write_bytes(svg(FULL_RED))
    [item] = load_lesson(tmp_path).items
    assert item.kind == "image"
    assert item.title == "flag"
    assert item.path is not None
    assert item.path.suffix == ".png"
    assert pixel(item.path, (0, 0)) == RED


# --------------------------------------------------------------------------- folders


@pytest.mark.parametrize(
    "name",
    [
        "Thumbs.db",
        "thumbs.db",
        "desktop.ini",
        "Desktop.ini",
        ".DS_Store",
        "._slide.png",
        "~$deck.pptx",
    ],
)
def test_system_files(name: str) -> None:
    assert is_system_file(name)


@pytest.mark.parametrize("name", ["slide.png", "thumbs.png", "deck~$.pptx", "урок.pdf"])
def test_teachers_files_are_not_system_files(name: str) -> None:
    assert not is_system_file(name)


def teachers_folder(root: Path) -> Path:
    """A folder as it comes from a teacher's Windows and Mac computers."""
    folder = root / "Урок"
    folder.mkdir()
    picture(folder / "01-red.png", "PNG", RED)
    animated_gif(folder / "02-moving.gif")
    picture(folder / "03-scan.bmp", "BMP", GREEN)
    (folder / "04-broken.png").write_bytes(
        picture(root / "whole.png", "PNG").read_bytes()[:40] + b"\0" * 40
    )
    (folder / "05-flag.svg").write_bytes(svg(FULL_RED))
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504)
    (folder / "desktop.ini").write_text("[.ShellClassInfo]\r\nIconResource=x\r\n")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + b"\0" * 100)
    (folder / "~$deck.pptx").write_bytes(b"\x0bteacher" + b"\0" * 150)
    (folder / "__MACOSX").mkdir()
    (folder / "__MACOSX" / "._01-red.png").write_bytes(b"\0\5\26\7" + b"\0" * 80)
    return folder


def test_a_teachers_folder_skips_the_junk_silently_and_the_broken_file_with_a_warning(
    tmp_path: Path,
) -> None:
    lesson = load_lesson(teachers_folder(tmp_path))
    assert [(i.kind, i.title) for i in lesson.items] == [
        ("image", "01-red"),
        ("image", "02-moving"),
        ("image", "03-scan"),
        ("image", "05-flag"),
    ]
    [skipped] = lesson.skipped
    assert skipped.path.name == "04-broken.png"
    assert isinstance(skipped.problem, CorruptContentError)


def test_a_folder_of_junk_only_is_empty(tmp_path: Path) -> None:
    (tmp_path / "Thumbs.db").write_bytes(b"\0" * 10)
    (tmp_path / "desktop.ini").write_text("[.ShellClassInfo]\n")
    with pytest.raises(LessonError, match="no files") as caught:
        load_lesson(tmp_path)
    assert caught.value.reason == "empty_folder"


def test_an_office_document_that_cannot_be_shown_is_left_out_with_a_warning(
    tmp_path: Path,
) -> None:
    picture(tmp_path / "1.png", "PNG")
    make_pptx(tmp_path / "deck.pptx", [("Схема", "2E7D32")])
    assert ".pptx" in OFFICE_SUFFIXES
    lesson = load_lesson(tmp_path)  # no converter: as where LibreOffice is missing
    assert [s.path.name for s in lesson.skipped] == ["deck.pptx"]
    assert len(lesson.items) == 1


def test_a_folder_of_office_documents_alone_says_what_the_converter_needs(
    tmp_path: Path,
) -> None:
    make_pptx(tmp_path / "deck.pptx", [("Схема", "2E7D32")])
    with pytest.raises(LessonError) as info:
        load_lesson(tmp_path)  # no converter: as where LibreOffice is missing
    assert info.value.reason == "no_office"


def test_an_explicitly_named_broken_file_still_stops_the_load(tmp_path: Path) -> None:
    folder = teachers_folder(tmp_path)
    with pytest.raises(CorruptContentError, match=r"04-broken\.png"):
        load_lesson([folder / "01-red.png", folder / "04-broken.png"])
