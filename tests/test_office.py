"""Office documents become pages on the controller, through the real LibreOffice.

Decks are written by hand (tests/office_docs.py); one warm converter serves the module.
A real kiosk process renders what the command line casts, and its screenshot shows the
slide's background colour.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import signal
import stat
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from controller.cli import cli
from controller.client import KioskClient
from controller.home import Home
from media import office
from media.lesson import load_lesson
from media.office import ConvertedCache, OfficeConverter, office_kind, slide_titles
from protocol.errors import FileTooLargeError, LessonError
from protocol.limits import MAX_BLOB_BYTES
from protocol.messages import StatusSnapshot
from tests.app_server import running_app
from tests.conftest import TEACHER
from tests.kiosks import ADMIN_SECRET, kiosk_process
from tests.office_docs import make_docx, make_odp, make_pptx
from tests.panel_screen import near, pixel, screen_until, status_until
from tests.test_messages_ru import assert_russian_with_a_next_step

SLIDES = [("Фотосинтез", "C62828"), ("Хлоропласт", "2E7D32"), ("Итоги урока", "1565C0")]
COLOURS = [tuple(bytes.fromhex(colour)) for _, colour in SLIDES]

needs_office = pytest.mark.skipif(shutil.which("soffice") is None, reason="needs LibreOffice")


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    make_pptx(folder / "Урок.pptx", SLIDES)
    make_odp(folder / "Повторение.odp", SLIDES[:2])
    make_docx(folder / "Конспект.docx", ["Фотосинтез идёт в хлоропластах.", "Итоги."])
    return folder


@pytest.fixture(scope="module")
def converter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfficeConverter]:
    with OfficeConverter(tmp_path_factory.mktemp("converted")) as conv:
        yield conv


def bottom(image: Image.Image) -> tuple[int, ...]:
    """A pixel below the slide's title, on its background."""
    return pixel(image, image.width // 2, image.height - 20)


def showing(index: int) -> Callable[[StatusSnapshot], bool]:
    return lambda status: status.index == index


def coloured(colour: tuple[int, ...]) -> Callable[[Image.Image], bool]:
    return lambda image: near(bottom(image), colour)


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="classcast", env=env)


# --------------------------------------------------------------------------- recognising


def test_documents_are_recognised_by_content(docs: Path, tmp_path: Path) -> None:
    def kind(path: Path) -> str | None:
        return office_kind(path, path.read_bytes()[:8])

    assert kind(docs / "Урок.pptx") == "presentation"
    assert kind(docs / "Повторение.odp") == "presentation"
    assert kind(docs / "Конспект.docx") == "text"
    renamed = tmp_path / "slides.zip"  # the name does not matter for zips
    shutil.copy(docs / "Урок.pptx", renamed)
    assert kind(renamed) == "presentation"
    rtf = tmp_path / "письмо.txt"
    rtf.write_bytes(b"{\\rtf1\\ansi hello}")
    assert kind(rtf) == "text"
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    for name, expected in [("old.ppt", "presentation"), ("old.doc", "text"), ("Thumbs.db", None)]:
        (tmp_path / name).write_bytes(ole)
        assert kind(tmp_path / name) == expected
    other = tmp_path / "archive.zip"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("readme.txt", "hi")
    assert kind(other) is None
    (tmp_path / "bad.pptx").write_bytes(b"PK\x03\x04 not a zip")
    assert kind(tmp_path / "bad.pptx") is None


def test_slide_titles_come_from_the_title_placeholders(docs: Path, tmp_path: Path) -> None:
    assert slide_titles(docs / "Урок.pptx") == ("Фотосинтез", "Хлоропласт", "Итоги урока")
    assert slide_titles(docs / "Повторение.odp") == ("Фотосинтез", "Хлоропласт")
    assert slide_titles(docs / "Конспект.docx") == ()
    hidden = make_pptx(tmp_path / "h.pptx", SLIDES, hidden=[1])
    assert slide_titles(hidden) == ("Фотосинтез", "Итоги урока")  # as the PDF has them
    (tmp_path / "junk.pptx").write_bytes(b"junk")
    assert slide_titles(tmp_path / "junk.pptx") == ()


def test_the_cache_keeps_under_its_size_by_dropping_the_least_recently_used(
    tmp_path: Path,
) -> None:
    cache = ConvertedCache(tmp_path / "c", max_bytes=300)
    for name in ("a", "b", "c"):
        made = tmp_path / f"{name}.pdf"
        made.write_bytes(b"x" * 100)
        cache.put(name, made, (name,))
        os.utime(cache.root / f"{name}.pdf", (len(name), ord(name)))  # a oldest, c newest
    assert cache.get("a") is not None  # exactly at the limit: all kept; a is now newest
    made = tmp_path / "d.pdf"
    made.write_bytes(b"x" * 100)
    cache.put("d", made, ("d",))  # one byte... a hundred over: the oldest (b) goes
    assert cache.get("b") is None
    assert not (cache.root / "b.json").exists()
    kept = cache.get("a")
    assert kept is not None
    assert kept.titles == ("a",)
    assert cache.get("c") is not None
    assert cache.get("d") is not None


def test_a_slide_xml_over_the_limit_gives_page_numbers_not_titles(
    docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deck = docs / "Урок.pptx"
    with zipfile.ZipFile(deck) as z:
        largest = max(z.getinfo(n).file_size for n in z.namelist() if n.startswith("ppt/"))
    monkeypatch.setattr(office, "MAX_TITLE_XML_BYTES", largest)
    assert slide_titles(deck) == ("Фотосинтез", "Хлоропласт", "Итоги урока")
    monkeypatch.setattr(office, "MAX_TITLE_XML_BYTES", largest - 1)
    assert slide_titles(deck) == ()


def test_a_document_over_the_file_limit_is_refused_unread(tmp_path: Path) -> None:
    huge = tmp_path / "Огромная.pptx"
    with huge.open("wb") as f:
        f.write(b"PK\x03\x04")
        f.truncate(MAX_BLOB_BYTES + 1)  # sparse: nothing is written
    with OfficeConverter(tmp_path / "c") as conv:
        with pytest.raises(FileTooLargeError):
            load_lesson(huge, converter=conv)
        assert conv.conversions == 0
        assert not conv.warm


# --------------------------------------------------------------------------- converting


@needs_office
@pytest.mark.slow
def test_deck_document_and_odp_become_titled_pages(docs: Path, converter: OfficeConverter) -> None:
    before = converter.conversions
    lesson = load_lesson(docs, converter=converter)
    assert converter.conversions == before + 3
    titles = [item.title for item in lesson.items]
    assert titles == [
        "Конспект — с. 1",
        "Фотосинтез",
        "Хлоропласт",
        "Фотосинтез",
        "Хлоропласт",
        "Итоги урока",
    ]
    assert {item.kind for item in lesson.items} == {"pdf"}
    # The warm LibreOffice listens on a pipe only this user may open, and on no port.
    assert converter.warm
    pipes = list(Path("/tmp").glob(f"OSL_PIPE_{os.getuid()}_classcast-{os.getpid()}-*"))
    assert pipes
    assert all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in pipes)
    # RTF, the old Word format's plain cousin, converts too.
    rtf = docs.parent / "Письмо.rtf"
    rtf.write_bytes(
        b"{\\rtf1\\ansi{\\fonttbl{\\f0 Liberation Serif;}}\\f0 "
        + "".join(f"\\u{ord(c)}?" for c in "Письмо").encode()
        + b"\\par}"
    )
    assert [item.title for item in load_lesson(rtf, converter=converter).items] == ["Письмо — с. 1"]
    # Hidden slides are not pages, and their titles are not used.
    hidden = make_pptx(docs.parent / "hidden.pptx", SLIDES, hidden=[1])
    titled = [item.title for item in load_lesson(hidden, converter=converter).items]
    assert titled == ["Фотосинтез", "Итоги урока"]
    # Loaded again, by another converter on the same cache: nothing is converted.
    with OfficeConverter(converter.cache.root.parent) as again:
        assert load_lesson(docs, converter=again).lesson_id == lesson.lesson_id
        assert again.conversions == 0
        assert not again.warm


@needs_office
@pytest.mark.slow
def test_a_document_libreoffice_cannot_open_is_named(
    tmp_path: Path, converter: OfficeConverter
) -> None:
    broken = tmp_path / "Схема.pptx"
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("[Content_Types].xml", "garbage")
        z.writestr("ppt/presentation.xml", "<<<")
    with pytest.raises(LessonError) as caught:
        load_lesson(broken, converter=converter)
    assert caught.value.reason == "office_failed"
    assert caught.value.path == str(broken)
    out = assert_russian_with_a_next_step(run("cast", str(broken), "--to", "x:1"))
    assert "Схема.pptx: LibreOffice не смог сделать страницы" in out


@needs_office
@pytest.mark.slow
def test_plain_soffice_converts_where_the_warm_converter_cannot_start(
    docs: Path, tmp_path: Path
) -> None:
    with OfficeConverter(tmp_path / "c", python=str(tmp_path / "no-python")) as conv:
        converted = conv.to_pdf(docs / "Повторение.odp", "odp")
        assert conv.conversions == 1
        assert not conv.warm
    assert converted.pdf.read_bytes().startswith(b"%PDF-")
    assert converted.titles == ("Фотосинтез", "Хлоропласт")


def descendants(pid: int) -> list[int]:
    """The processes under ``pid`` (Linux ``/proc``), children first."""
    parents: dict[int, int] = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat_file.parent.name)] = int(fields[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        children = [c for c, p in parents.items() if p in frontier]
        found += children
        frontier = children
    return found


@needs_office
@pytest.mark.slow
def test_when_libreoffice_dies_the_next_document_starts_a_new_one(
    docs: Path, tmp_path: Path
) -> None:
    with OfficeConverter(tmp_path / "c") as conv:
        conv.to_pdf(docs / "Урок.pptx", "a")
        worker = conv._worker
        assert worker is not None
        for pid in descendants(worker.pid):  # LibreOffice, not the worker
            os.kill(pid, signal.SIGKILL)
        assert conv.to_pdf(docs / "Повторение.odp", "b").titles == ("Фотосинтез", "Хлоропласт")
        worker = conv._worker
        assert worker is not None
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and LibreOffice
        assert conv.to_pdf(docs / "Конспект.docx", "c").pdf.is_file()
        assert conv.conversions == 3
        assert conv.warm


@needs_office
def test_a_conversion_over_its_time_is_stopped(docs: Path, tmp_path: Path) -> None:
    with OfficeConverter(tmp_path / "c", timeout_s=0.01) as conv:
        with pytest.raises(LessonError) as caught:
            conv.to_pdf(docs / "Урок.pptx", "x")
        assert caught.value.reason == "office_timeout"
        assert not conv.warm
        assert conv.cache.get("x") is None


def test_without_libreoffice_the_teacher_is_told_how_to_install_it(
    docs: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    out = assert_russian_with_a_next_step(
        run("cast", str(docs / "Урок.pptx"), "--to", "x:1", env={"PATH": str(empty)})
    )
    assert "LibreOffice" in out
    assert "не установлен" in out
    assert "`sudo apt install libreoffice-impress libreoffice-writer`" in out
    assert "Урок.pptx" in out
    with pytest.raises(LessonError, match="converter") as caught:
        load_lesson(docs / "Урок.pptx")
    assert caught.value.reason == "no_office"


def test_a_file_named_as_a_document_that_is_none_is_named_as_a_broken_document(
    docs: Path, tmp_path: Path
) -> None:
    not_a_deck = tmp_path / "Схема.pptx"  # a zip, but of something else
    with zipfile.ZipFile(not_a_deck, "w") as z:
        z.writestr("readme.txt", "не презентация")
    cut = tmp_path / "Письмо.docx"  # cut short in the download
    cut.write_bytes((docs / "Конспект.docx").read_bytes()[:200])
    empty = tmp_path / "bin"  # LibreOffice is not even needed to say so
    empty.mkdir()
    for path in (not_a_deck, cut):
        with pytest.raises(LessonError) as caught:
            load_lesson(path)
        assert (caught.value.reason, caught.value.path) == ("office_failed", str(path))
        out = assert_russian_with_a_next_step(
            run("cast", str(path), "--to", "x:1", env={"PATH": str(empty)})
        )
        assert f"{path}: LibreOffice не смог сделать страницы" in out
        assert "zip" not in out


# --------------------------------------------------------------------------- to a panel


@needs_office
@pytest.mark.slow
def test_a_deck_cast_from_the_command_line_shows_on_the_panel(docs: Path, tmp_path: Path) -> None:
    with kiosk_process(tmp_path / "state") as (_, address):
        paired = run("pair", address, "--admin", "--pin", ADMIN_SECRET)
        assert paired.exit_code == 0, paired.output
        deck = str(docs / "Урок.pptx")
        first = run("cast", deck, "--to", address)
        assert first.exit_code == 0, first.output
        assert "элементов — 3" in first.output
        converted = list(Home().converted_dir().glob("pdf/*.pdf"))
        assert len(converted) == 1

        async def look() -> list[str | None]:
            client = await KioskClient.connect(address, TEACHER)
            await client.pair(ADMIN_SECRET, role="admin")
            async with client:
                titles: list[str | None] = []
                for n, colour in enumerate(COLOURS):
                    status = await status_until(client, showing(n), f"slide {n + 1}", 10)
                    titles.append(status.item_title)
                    await screen_until(
                        client,
                        coloured(colour),
                        f"slide {n + 1} in #{SLIDES[n][1]}",
                        timeout_s=10,
                        failed_png=tmp_path / f"slide{n + 1}.png",
                    )
                    await client.control("next")
                return titles

        assert asyncio.run(look()) == ["Фотосинтез", "Хлоропласт", "Итоги урока"]
        # The re-cast converts nothing (LibreOffice is not even on PATH) and sends nothing.
        os.utime(converted[0], (0, 0))
        again = run("cast", deck, "--to", address, env={"PATH": str(tmp_path)})
        assert again.exit_code == 0, again.output
        assert "передано 0 Б (0 %)" in again.output.replace("\xa0", " "), again.output
        assert list(Home().converted_dir().glob("pdf/*.pdf")) == converted


# --------------------------------------------------------------------------- the app


@needs_office
@pytest.mark.slow
def test_a_deck_dropped_on_the_app_shows_its_slides_and_the_app_ends_libreoffice(
    docs: Path, tmp_path: Path
) -> None:
    from tests.test_app import begin, client, upload

    with running_app(tmp_path / "home") as app:
        with client(app) as c:
            key = begin(c, "Фотосинтез")
            deck = docs / "Урок.pptx"
            assert upload(c, key, deck.name, deck.read_bytes()).status_code == 204
            done = c.post(f"/lessons/{key}/done")
            assert done.status_code == 200
            assert done.text.count('class="item kind-pdf"') == 3
            for title in ("1. Фотосинтез", "2. Хлоропласт", "3. Итоги урока"):
                assert title in done.text
            thumb = c.get(f"/lessons/{key}/thumbs/0")
            assert thumb.status_code == 200
            page = Image.open(io.BytesIO(thumb.content)).convert("RGB")
            assert near(bottom(page), COLOURS[0])
        assert app.config.state is not None
        converter = app.config.state.converter
        assert converter.conversions == 1
        assert converter.warm
    assert not converter.warm  # the app's stop ended LibreOffice
