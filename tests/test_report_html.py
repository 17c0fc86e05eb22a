"""Tests of the HTML usage report (controller/report_html.py), rendered by headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from PIL import Image

from controller.report_html import bar_chart, compliance_rule_text, report_html
from controller.reports import compliance
from controller.schooldb import SchoolDb
from tests.test_reports import MON, SUN, build

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
BAR_RGB = (0x2B, 0x6C, 0xB0)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SchoolDb]:
    school = SchoolDb(tmp_path / "school.db")
    build(school)
    yield school
    school.close()


@pytest.fixture
def page(db: SchoolDb) -> str:
    rows = compliance(db, week="2026-W48")
    return report_html(
        db,
        start=MON,
        end=SUN,
        lang="ru",
        compliance_rows=rows,
        compliance_note=compliance_rule_text(lang="ru"),
    )


def test_page_is_russian_and_self_contained(page: str) -> None:
    assert "<title>Отчёт об использовании цифрового контента</title>" in page
    for label in ("Кабинет", "Учитель", "Уроков", "Время показа", "Материалов"):
        assert f"<th>{label}</th>" in page
    assert "Время показа по дням" in page
    assert "Самые используемые материалы" in page
    assert "Выполнение нормы, неделя 2026-W48" in page
    assert "<script" not in page
    assert not re.search(r"""(src|href)\s*=|url\(|@import""", page)


def test_page_has_one_bar_per_day_content_and_room(page: str) -> None:
    # 7 days + 4 content items + 2 rooms.
    assert page.count('<rect class="bar"') == 7 + 4 + 2
    assert 'aria-label="Время показа по кабинетам (минут)"' in page


def test_english_page(db: SchoolDb) -> None:
    page = report_html(db, start=MON, end=SUN, lang="en")
    assert "<title>Digital content usage report</title>" in page
    assert "<th>Room</th>" in page
    assert "Compliance" not in page


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
    assert dom.stdout.count('class="bar"') == 13
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
