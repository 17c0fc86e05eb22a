"""Tests of the HTML usage report (controller/report_html.py), rendered by headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from PIL import Image

from controller.report_html import bar_chart, report_html
from controller.roster import Roster, RosterEntry
from controller.schooldb import SchoolDb
from tests.test_reports import MON, SUN, build

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
BAR_RGB = (0x2B, 0x6C, 0xB0)
MADE = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SchoolDb]:
    school = SchoolDb(tmp_path / "school.db")
    build(school)
    # The school's roster: both teachers, bound by the names typed on their computers.
    roster = [RosterEntry("0001", "Анна Петровна"), RosterEntry("0002", "Борис Иванович")]
    Roster(school).import_entries(roster, "Завуч", MADE)
    yield school
    school.close()


@pytest.fixture
def page(db: SchoolDb) -> str:
    return report_html(db, start=MON, end=SUN, lang="ru", now=MADE)


def test_page_is_russian_and_self_contained(page: str) -> None:
    assert "<title>Отчёт об использовании цифрового контента</title>" in page
    for label in ("Кабинет", "Учитель", "Уроков", "Время показа", "Материалов", "Библиотека"):
        assert f"<th>{label}</th>" in page
    assert "Время показа по дням" in page
    assert "Самые используемые материалы" in page
    assert "Время показа по библиотекам" in page
    assert "Сформирован 2026-11-30 09:00 (Europe/Moscow)" in page
    assert "Подпись" in page
    assert "<script" not in page
    assert not re.search(r"""(src|href)\s*=|url\(|@import""", page)


def test_page_has_one_bar_per_day_content_room_and_library(page: str) -> None:
    # 7 days + 4 content items + 2 rooms + 2 libraries («Моя школа», none).
    assert page.count('<rect class="bar"') == 7 + 4 + 2 + 2
    assert 'aria-label="Время показа по кабинетам (минут)"' in page


def cells(page: str, heading: str) -> list[list[str]]:
    """The cell texts of the table after the heading ``heading``, row by row."""
    start = page.index(heading)
    table = page[page.index("<table>", start) : page.index("</table>", start)]
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in table.split("<tr>")[1:]]


def test_the_page_has_the_weekly_norm_and_the_library_share(page: str) -> None:
    """The compliance table as worked out by hand in tests/test_reports.py."""
    assert "Материалы библиотек: 62 % времени показа (57 мин)" in page  # 56.5 of 91.5 min
    assert "Выполнение нормы, неделя 2026-W48 (23.11 – 29.11.2026)" in page
    assert "Урок засчитывается, если показ длился не меньше 10 мин" in page
    assert "сразу на нескольких панелях, считается один раз" in page
    assert "Выполнили норму: 0 из 2 учителей" in page
    assert cells(page, "Выполнение нормы, неделя 2026-W48") == [
        [
            "Учитель",
            "Засчитано уроков",
            "Норма выполнена",
            "Дни",
            "Всего уроков",
            "Короче нормы",
            "Без материалов библиотек",
            "Доля библиотек",
            "Не показано",
        ],
        ["Анна Петровна", "2", "нет", "11-23, 11-24", "2", "0", "0", "88 %", "0 мин"],
        ["Борис Иванович", "1", "нет", "11-25", "3", "1", "1", "39 %", "0 мин"],
    ]
    assert "<td class='unmet'>нет</td>" in page
    content = cells(page, "<h2>По материалам</h2>")
    assert content[0][:3] == ["Материал", "Библиотека", "Уроков"]
    assert [row[:2] for row in content[1:]] == [
        ["Таблица", "«Моя школа» (ЦОК)"],
        ["Хлоропласт", "«Моя школа» (ЦОК)"],
        ["Митохондрия", "«Моя школа» (ЦОК)"],
        ["Лист", "не из библиотеки"],
    ]


def test_a_month_has_the_norm_of_every_week_it_touches(db: SchoolDb) -> None:
    page = report_html(db, start=date(2026, 11, 1), end=date(2026, 11, 30), lang="ru")
    weeks = re.findall(r"Выполнение нормы, неделя (\d{4}-W\d\d)", page)
    assert weeks == ["2026-W44", "2026-W45", "2026-W46", "2026-W47", "2026-W48", "2026-W49"]


def test_english_page(db: SchoolDb) -> None:
    page = report_html(db, start=MON, end=SUN, lang="en")
    assert "<title>Digital content usage report</title>" in page
    assert "<th>Room</th>" in page
    assert "Weekly norm, week 2026-W48" in page
    assert "My School (ЦОК)" in page


def test_empty_page(db: SchoolDb) -> None:
    page = report_html(db, start=date(2025, 1, 1), end=date(2025, 1, 3), lang="ru")
    assert "Нет данных" in page
    assert page.count('<rect class="bar"') == 3  # three empty days, zero width


def test_bar_chart_scales_to_the_largest() -> None:
    svg = bar_chart("t", [("a", 10.0, "10"), ("b", 5.0, "5"), ("<b>", 0.0, "0")])
    widths = [float(w) for w in re.findall(r'class="bar"[^>]*width="([\d.]+)"', svg)]
    assert widths == [420.0, 210.0, 0.0]
    assert "&lt;b&gt;" in svg


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    env = dict(os.environ, HOME=str(tmp))
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={tmp / 'profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_chromium_renders_the_charts(page: str, tmp_path: Path) -> None:
    html_file = tmp_path / "report.html"
    html_file.write_text(page, encoding="utf-8")
    dom = chromium("--dump-dom", html_file.as_uri(), tmp=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('class="bar"') == 15
    assert "Отчёт об использовании цифрового контента" in dom.stdout

    shot = tmp_path / "shot.png"
    result = chromium(
        f"--screenshot={shot}", "--window-size=1000,1000", html_file.as_uri(), tmp=tmp_path
    )
    assert shot.exists(), result.stderr[-2000:]
    with Image.open(shot) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1_000_000)
        assert colours is not None
        assert len(colours) > 10, "the screenshot is blank"
        bar_pixels = sum(count for count, colour in colours if colour == BAR_RGB)
    # The day chart alone draws bars of 420 × 16 px at most; expect several thousand.
    assert bar_pixels > 2_000, f"only {bar_pixels} bar-coloured pixels"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_chromium_prints_the_report_on_a4_with_cyrillic_and_charts(
    page: str, tmp_path: Path
) -> None:
    """What an inspector files: the page printed to PDF by Chromium, then read back."""
    import pypdfium2 as pdfium  # type: ignore[import-untyped]

    html_file = tmp_path / "report.html"
    html_file.write_text(page, encoding="utf-8")
    pdf_file = tmp_path / "report.pdf"
    result = chromium(
        f"--print-to-pdf={pdf_file}", "--no-pdf-header-footer", html_file.as_uri(), tmp=tmp_path
    )
    assert pdf_file.exists(), result.stderr[-2000:]
    pdf = pdfium.PdfDocument(pdf_file)
    try:
        assert len(pdf) >= 2  # the weekly norm starts a page of its own
        for number in range(len(pdf)):
            width, height = pdf[number].get_size()
            assert (round(width), round(height)) == (595, 842)  # A4 in points
        text = "".join(pdf[n].get_textpage().get_text_range() for n in range(len(pdf)))
        squashed = " ".join(text.split())
        for words in (
            "Отчёт об использовании цифрового контента",
            "Выполнение нормы, неделя 2026-W48",
            "Анна Петровна",
            "Борис Иванович",
            "Доля библиотек",
            "«Моя школа» (ЦОК)",
            "Подпись",
        ):
            assert words in squashed, words
        last = pdf[len(pdf) - 1].get_textpage().get_text_range()
        assert "Выполнение нормы" in " ".join(pdf[1].get_textpage().get_text_range().split()) or (
            "Выполнение нормы" in " ".join(last.split())
        )
        image = pdf[0].render(scale=1).to_pil().convert("RGB")
    finally:
        pdf.close()
    image.save(tmp_path / "page1.png")
    colours = image.getcolors(maxcolors=1_000_000)
    assert colours is not None
    bar_pixels = sum(count for count, colour in colours if colour == BAR_RGB)
    assert bar_pixels > 1_000, f"only {bar_pixels} bar-coloured pixels: the charts did not print"
