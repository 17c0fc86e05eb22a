"""The admin's pages over a district, against a real PostgreSQL server and a real app.

The district holds the two hand-built schools of ``tests/test_weekly_norm.py`` («Лицей
№ 2» in Novosibirsk, «Школа № 5» in Moscow), pushed as ``classcast usage push`` does.
The page must list both in its school selector, give each school's weekly norm as it
was worked out by hand (in the school's own time zone), both together for «all
schools», and CSV downloads that are the command line's CSV to the byte. Every attack
is made with a plain HTTP client, as for a school's pages (tests/test_app_admin.py).
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from controller.cli import cli
from controller.district import DistrictDb, push
from controller.home import Home
from controller.reports import CSV_BOM
from controller.webapp.district import DistrictSource
from controller.webapp.security import COOKIE
from tests.app_server import RunningApp, running_app
from tests.postgres import PostgresServer, postgres_bin
from tests.test_app import FORBIDDEN, client
from tests.test_app_admin import NOT_ADMIN, make_admin, norm_table
from tests.test_app_admin_browser import norm_rows, until
from tests.test_app_browser import CHROMIUM, browser
from tests.test_weekly_norm import LYCEUM, SCHOOL_5, WEEK, moscow, novosibirsk

__all__ = ["browser"]  # the Chromium of the teacher's page tests

NAMES = {"lyceum-2": "Лицей № 2", "school-5": "Школа № 5"}


def push_schools(url: str, tmp_path: Path) -> None:
    """Both hand-built schools into the district at ``url``."""
    with DistrictDb(url) as district:
        for school_id, build in (("lyceum-2", novosibirsk), ("school-5", moscow)):
            school = build(tmp_path / f"{school_id}.sqlite")
            try:
                push(school, district, school_id=school_id, name=NAMES[school_id])
            finally:
                school.close()


def page_rows(school: str, expected: Sequence[Sequence[Any]]) -> list[list[str]]:
    """The page's norm table for the hand-built rows of one school: school, teacher,
    counted, met, days, all lessons, too short."""
    return [
        [
            school,
            str(e[1]) + ("" if e[11] else " (нет в списке учителей)"),
            str(e[2]),
            "да" if e[3] else "нет",
            ", ".join(d[5:] for d in e[4]),
            str(e[5]),
            str(e[6]),
        ]
        for e in expected
    ]


@pytest.fixture
def district_app(district_url: str, tmp_path: Path) -> Iterator[RunningApp]:
    push_schools(district_url, tmp_path)
    with running_app(tmp_path / "home") as app:
        app.config.reports = DistrictSource(district_url)
        make_admin(app.config.home)
        yield app


@pytest.mark.slow
def test_the_selector_lists_the_districts_schools_and_each_norm_is_the_hand_built_one(
    district_app: RunningApp,
) -> None:
    with client(district_app) as c:
        page = c.get("/admin", params={"week": WEEK})
        assert page.status_code == 200, page.text
        text = page.text
        selector = text.split('id="school"')[1].split("</select>")[0]
        assert re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', selector) == [
            ("", "Все школы"),
            ("lyceum-2", "Лицей № 2"),
            ("school-5", "Школа № 5"),
        ]
        # «All schools»: both schools' teachers, each school's week in its own zone.
        assert norm_table(text) == page_rows("lyceum-2", LYCEUM) + page_rows("school-5", SCHOOL_5)
        assert "Дни и недели каждой школы — в её часовом поясе; время — UTC." in text
        assert '<option value="2026-W48" selected>' in text  # a week with records
        # One school: its teachers alone.
        one = c.get("/admin/report", params={"week": WEEK, "school": "school-5"}).text
        assert norm_table(one) == page_rows("school-5", SCHOOL_5)
        assert "Выполнили норму: 1 из 1 учителей" in html.unescape(one)
        lyceum = c.get("/admin", params={"week": WEEK, "school": "lyceum-2"}).text
        assert norm_table(lyceum) == page_rows("lyceum-2", LYCEUM)
        assert '<option value="lyceum-2" selected>' in lyceum
        assert "school=lyceum-2&amp;what=school" in lyceum  # the downloads keep the school
        assert c.get("/admin", params={"school": "school-9"}).status_code == 400


def test_the_weeks_offered_are_those_that_hold_records(district_url: str, tmp_path: Path) -> None:
    push_schools(district_url, tmp_path)
    # The Lyceum's Sunday 17:30 UTC lesson is Monday 30 November in Novosibirsk: 2026-W49.
    assert DistrictSource(district_url).weeks("2027-W01") == ["2027-W01", "2026-W49", WEEK]


def test_collection_shows_each_schools_last_push(district_app: RunningApp) -> None:
    with client(district_app) as c:
        page = html.unescape(c.get("/admin", params={"week": WEEK}).text)
    section = page.split('id="collection"')[1]
    rows = re.findall(r'<tr data-school="([^"]+)">(.*?)</tr>', section, re.S)
    assert [school for school, _ in rows] == ["lyceum-2", "school-5"]
    # Panels and records: the Lyceum's three panels (17 records), the school's one (3).
    counts = [re.findall(r'<td class="n">(\d+)</td>', cells) for _, cells in rows]
    assert counts == [["3", "17"], ["1", "3"]]
    for _, cells in rows:
        assert re.search(r"<td>\d\d\.\d\d\.\d{4} \d\d:\d\d</td>", cells)  # pushed, in UTC
    assert "хранятся в базе каждой школы" in section
    assert "classcast usage collect" not in section  # not the school's advice


@pytest.mark.parametrize("what", ["school", "norm", "room"])
def test_the_csv_download_is_the_district_commands_csv(
    district_app: RunningApp, district_url: str, tmp_path: Path, what: str
) -> None:
    with client(district_app) as c:
        answer = c.get("/admin/report.csv", params={"week": WEEK, "what": what})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="classcast-{what}-{WEEK}.csv"'
    )
    runner = CliRunner()
    if what == "norm":
        args = ["usage", "compliance", "--db", district_url, "--week", WEEK, "--format", "csv"]
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert answer.text == CSV_BOM + result.output  # the terminal drops the BOM
    else:
        out = tmp_path / "report.csv"
        args = ["usage", "report", "--db", district_url, "--week", WEEK, "--by", what]
        result = runner.invoke(cli, [*args, "--format", "csv", "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert answer.content == out.read_bytes()
    if what == "school":
        lines = answer.text.splitlines()
        assert [line.split(";")[1:4] for line in lines[1:]] == [
            ["lyceum-2", "lyceum-2", "9"],  # key, label, lessons (tests/test_district.py)
            ["school-5", "school-5", "3"],
        ]


def test_an_empty_district_says_where_collection_lives(district_url: str, tmp_path: Path) -> None:
    with running_app(tmp_path / "home") as app, client(app) as c:
        app.config.reports = DistrictSource(district_url)
        make_admin(app.config.home)
        page = c.get("/admin", params={"week": WEEK})
    assert page.status_code == 200, page.text
    assert 'id="school"' not in page.text  # no school pushed yet: nothing to choose
    assert 'id="pushes"' not in page.text
    assert "хранятся в базе каждой школы" in page.text
    assert "Нет данных" in page.text


ADMIN_PATHS = ["/admin", f"/admin/report?week={WEEK}", f"/admin/report.csv?week={WEEK}"]


def test_the_districts_pages_need_the_apps_secret(district_app: RunningApp) -> None:
    with httpx.Client(base_url=district_app.base, timeout=10) as plain:
        for path in ADMIN_PATHS:
            for cookie in ("", f"{COOKIE}=guess"):
                answer = plain.get(path, headers={"cookie": cookie} if cookie else {})
                assert answer.status_code == 403, (path, cookie)
                assert FORBIDDEN in answer.text
                assert "Кузнецова" not in answer.text


def test_a_teachers_computer_does_not_open_the_districts_pages(
    district_url: str, tmp_path: Path
) -> None:
    push_schools(district_url, tmp_path)
    with running_app(tmp_path / "home") as app, client(app) as c:
        app.config.reports = DistrictSource(district_url)
        for path in ADMIN_PATHS:
            answer = c.get(path)
            assert answer.status_code == 403, path
            assert NOT_ADMIN in answer.text
            assert "Кузнецова" not in answer.text


@pytest.mark.slow
def test_a_stopped_district_server_is_a_sentence_not_a_traceback(tmp_path: Path) -> None:
    """The district's own server, stopped while the app runs: each page says so in
    Russian, without the database password."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed: run scripts/setup.sh --test")
    server = PostgresServer(bin_dir)
    running = False
    try:
        server.start()
        running = True
        url = server.url.replace("postgres@", "postgres:s3cret-pw@")
        push_schools(url, tmp_path)
        with running_app(tmp_path / "home") as app, client(app) as c:
            app.config.reports = DistrictSource(url)
            make_admin(app.config.home)
            assert "Кузнецова" in c.get("/admin", params={"week": WEEK}).text
            server.stop()
            running = False
            for path in ADMIN_PATHS:
                answer = c.get(path)
                text = html.unescape(answer.text)
                assert answer.status_code == (500 if "report.csv" in path else 200), path
                assert "Не удаётся прочитать базу района" in text, path
                assert "Проверьте адрес, права пользователя и что там работает PostgreSQL" in (text)
                assert "Traceback" not in text
                assert "s3cret-pw" not in text
    finally:
        if running:
            server.stop()


@pytest.mark.slow
def test_classcast_app_with_a_postgresql_db_shows_the_district(
    district_url: str, tmp_path: Path
) -> None:
    """``classcast app --db postgresql://…`` as the admin runs it: the dashboard lists the
    district's schools."""
    push_schools(district_url, tmp_path)
    home = tmp_path / "admin-home"
    make_admin(Home(home))
    proc = subprocess.Popen(
        [sys.executable, "-c", "from controller.cli import main; main()", "app",
         "--no-browser", "--db", district_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CLASSCAST_HOME": str(home)},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        with httpx.Client(timeout=10) as browser:
            assert browser.get(url).status_code == 303
            base = url.split("/", 3)
            page = browser.get(f"{base[0]}//{base[2]}/admin", params={"week": WEEK})
        assert page.status_code == 200, page.text
        assert '<option value="school-5">Школа № 5</option>' in page.text
        assert norm_table(page.text) == page_rows("lyceum-2", LYCEUM) + page_rows(
            "school-5", SCHOOL_5
        )
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.stderr is not None
    assert "Traceback" not in proc.stderr.read()


# --------------------------------------------------------------------------- in Chromium


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
def test_the_admin_chooses_a_school_in_chromium(
    browser: Any, district_app: RunningApp, district_url: str, tmp_path: Path
) -> None:
    """The selector in a real browser: choosing a school reloads the report in place with
    that school's norm, the address keeps it, and the CSV is that school's command CSV."""
    app = district_app
    context = browser.new_context(locale="ru-RU", accept_downloads=True, bypass_csp=True)
    try:
        page = context.new_page()
        page.goto(app.url)
        page.goto(f"{app.base}/admin?week={WEEK}")
        options = page.locator("#school option")
        assert options.all_inner_texts() == ["Все школы", "Лицей № 2", "Школа № 5"]
        every = page_rows("lyceum-2", LYCEUM) + page_rows("school-5", SCHOOL_5)
        assert norm_rows(page) == every

        page.select_option("#school", "school-5")
        until(page, lambda: len(norm_rows(page)) == 1, "the school filter did nothing")
        assert norm_rows(page) == page_rows("school-5", SCHOOL_5)
        assert page.url == f"{app.base}/admin?week={WEEK}&school=school-5"

        with page.expect_download() as info:
            page.click('#report a[data-what="school"]')
        got = Path(info.value.path()).read_bytes()
        out = tmp_path / "school.csv"
        result = CliRunner().invoke(
            cli,
            ["usage", "report", "--db", district_url, "--week", WEEK, "--by", "school",
             "--school", "school-5", "--format", "csv", "-o", str(out)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert got == out.read_bytes()

        page.select_option("#school", "")
        until(page, lambda: len(norm_rows(page)) == len(every), "«all schools» did nothing")
        assert norm_rows(page) == every
    finally:
        context.close()
