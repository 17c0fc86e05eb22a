"""The admin's pages of the teacher's app, against a real server on 127.0.0.1.

A hand-built week in a Moscow school (UTC+3) is collected into a real school database;
its weekly norm is worked out by hand below, record by record, and must come out of the
page and of the CSV download (which must be the command line's CSV to the byte). Every
attack is made with a plain HTTP client: no secret, another site, a teacher's computer,
a phone remote's grant, a room named ``<script>``.

Week 2026-W48 is Monday 23 to Sunday 29 November 2026; 2026-W49 starts on the 30th.
All record times are UTC.
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from click.testing import CliRunner

from controller.cli import cli
from controller.client import Credentials
from controller.home import Home, SavedPanel
from controller.reports import CSV_BOM, ComplianceRow, Rows, compliance
from controller.roster import Roster, RosterEntry
from controller.schooldb import SchoolDb
from controller.webapp.admin import (
    CSV_REPORTS,
    MAX_WEEKS_LISTED,
    PanelCollection,
    School,
    SchoolSource,
    WeekReport,
)
from controller.webapp.security import COOKIE
from tests.app_server import RunningApp, running_app
from tests.test_app import FORBIDDEN, client
from tests.test_schooldb import Panel

W48, W49 = "2026-W48", "2026-W49"
NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
LIB = "https://lib.myschool.edu.ru/content/drobi"
RESH = "https://resh.edu.ru/subject/lesson/7/"
QUIZ = "https://example.org/quiz"
SCRIPT_ROOM = "<script>alert(1)</script>"
IVANOVA = ("c-a", "Иванова Мария Петровна")
PETROV = ("c-p", "Петров Олег Ильич")
STRANGER = ("c-x", "<b>Хакер</b>")  # a computer bound to nobody, a name with markup
NOT_ADMIN = "Эти страницы — для администратора школы"


def build_school(path: Path) -> SchoolDb:
    """The hand-built week (and one lesson of the next, and a panel with a held record)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    school = SchoolDb(path, tz="Europe/Moscow")
    Roster(school).import_entries(
        [RosterEntry("0001", IVANOVA[1]), RosterEntry("0002", PETROV[1])], "Завуч", NOW
    )
    k12, k14 = Panel("k-12", "Каб. 12"), Panel("k-14", SCRIPT_ROOM)
    # Иванова: Monday 09:00 Moscow, 12 min of library content: counts (11-23).
    k12.play("2026-11-23 06:00", 12, teacher=IVANOVA, lesson=("L-1", "Дроби"), source=LIB)
    # Tuesday, 15 min of РЭШ: counts (11-24).
    k12.play("2026-11-24 06:00", 15, teacher=IVANOVA, lesson=("L-2", "Степени"), source=RESH)
    # Wednesday, 8 min: too short.
    k12.play("2026-11-25 06:00", 8, teacher=IVANOVA, lesson=("L-3", "Корни"), source=LIB)
    # Thursday, in the <script> room, 20 min of library content: counts (11-26).
    k14.play("2026-11-26 06:00", 20, teacher=IVANOVA, lesson=("L-4", "Проценты"), source=LIB)
    # Петров: Tuesday, 11 min of a quiz from a site that is no library: no lesson counts.
    k14.play(
        "2026-11-24 08:00", 11, teacher=PETROV, lesson=("L-5", "Опрос"),
        content=(None, QUIZ), source=QUIZ, kind="web",
    )  # fmt: skip
    # The stranger: Friday, exactly 10 min of library content: one lesson, not the norm.
    k12.play("2026-11-27 08:00", 10, teacher=STRANGER, lesson=("L-6", "Без имени"), source=LIB)
    # Иванова, next week: Monday 30th, 25 min: one lesson of three in 2026-W49.
    k12.play("2026-11-30 06:00", 25, teacher=IVANOVA, lesson=("L-7", "Уравнения"), source=LIB)
    for panel in (k12, k14):
        panel.collect(school)
    # «Каб. 7» sends its second record edited: collection stops there (October's week).
    k7 = Panel("k-7", "Каб. 7")
    k7.many(3, start="2026-10-05 08:00")
    records = [*k7.records]
    records[1] = dataclasses.replace(records[1], duration_ms=3_600_000)
    school.ingest(k7.kiosk_id, k7.batch(0, records=records))
    return school


MIN = 60_000
# (teacher id, name, lessons, met, days, all lessons, too short, without library,
#  display ms, library ms), worked out from the comments above.
NORM_W48 = [
    ("0001", IVANOVA[1], 3, True, ("2026-11-23", "2026-11-24", "2026-11-26"), 4, 1, 0,
     55 * MIN, 55 * MIN),
    ("0002", PETROV[1], 0, False, (), 1, 0, 1, 11 * MIN, 0),
    ("c-x", STRANGER[1], 1, False, ("2026-11-27",), 1, 0, 0, 10 * MIN, 10 * MIN),
]  # fmt: skip
NORM_W49 = [
    ("0001", IVANOVA[1], 1, False, ("2026-11-30",), 1, 0, 0, 25 * MIN, 25 * MIN),
    ("0002", PETROV[1], 0, False, (), 0, 0, 0, 0, 0),
]  # fmt: skip
# The page's norm table: teacher, counted, met, days, all, too short, without library.
PAGE_W48 = [
    [IVANOVA[1], "3", "да", "11-23, 11-24, 11-26", "4", "1", "0"],
    [PETROV[1], "0", "нет", "", "1", "0", "1"],
    [f"{STRANGER[1]} (нет в списке учителей)", "1", "нет", "11-27", "1", "0", "0"],
]
PAGE_W49 = [
    [IVANOVA[1], "1", "нет", "11-30", "1", "0", "0"],
    [PETROV[1], "0", "нет", "", "0", "0", "0"],
]


def figures(rows: list[ComplianceRow]) -> list[tuple[object, ...]]:
    return [
        (
            r.teacher_id, r.teacher_name, r.lessons, r.met, r.days, r.sessions, r.too_short,
            r.without_source, r.display_ms, r.library_ms,
        )
        for r in rows
    ]  # fmt: skip


def make_admin(home: Home) -> None:
    """This computer paired as admin with a saved panel (nothing listens there)."""
    home.save_panel(SavedPanel("127.0.0.1:9", room="Каб. 1", kiosk_id="k-admin"))
    home.save_credentials("k-admin", Credentials("token", "ab" * 32, "admin"))


@pytest.fixture
def app(tmp_path: Path) -> Iterator[RunningApp]:
    with running_app(tmp_path / "home") as running:
        build_school(running.config.home.root / "school.sqlite").close()
        yield running


@pytest.fixture
def admin_app(app: RunningApp) -> RunningApp:
    make_admin(app.config.home)
    return app


def norm_table(page: str) -> list[list[str]]:
    """The cells of the page's weekly-norm table, unescaped, the first seven columns."""
    body = page.split('id="norm"')[1].split("</table>")[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body.split("<tbody>")[1], re.S)
    return [
        [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)][:7] for r in rows
    ]


# --------------------------------------------------------------------------- the figures


def test_the_hand_built_week_is_what_the_report_engine_counts(tmp_path: Path) -> None:
    school = build_school(tmp_path / "school.sqlite")
    try:
        assert figures(compliance(school, week=W48)) == NORM_W48
        assert figures(compliance(school, week=W49)) == NORM_W49
    finally:
        school.close()


def test_the_weekly_norm_of_the_week_on_the_page(admin_app: RunningApp) -> None:
    with client(admin_app) as c:
        page = c.get("/admin", params={"week": W48})
        assert page.status_code == 200, page.text
        assert norm_table(page.text) == PAGE_W48
        assert 'data-week="2026-W48"' in page.text
        text = html.unescape(page.text)
        assert "Неделя 2026-W48 (23.11 – 29.11.2026)" in text
        # 45 min in Каб. 12 (12 + 15 + 8 + 10), 31 in the <script> room (20 + 11):
        # 76 min, 65 of them library content (86 %), 6 lessons over the days.
        assert "Уроков 6 · время показа 1 ч 16 мин · панелей 2" in text
        assert "Материалы библиотек: 86 % времени показа (1 ч 05 мин)" in text
        assert "Выполнили норму: 1 из 3 учителей" in text
        assert text.count('<rect class="bar"') == 3 + 7 + 2  # teachers, days, rooms
        filtered = c.get("/admin/report", params={"week": W49})  # what the filter loads
        assert norm_table(filtered.text) == PAGE_W49
        assert "<html" not in filtered.text  # a fragment
        old = c.get("/admin", params={"week": "2024-W10"})  # not in the filter: by address
        assert old.status_code == 200
        assert '<option value="2024-W10" selected>' in old.text
        assert "Нет данных" in old.text


def test_names_from_usage_records_stay_text(admin_app: RunningApp) -> None:
    with client(admin_app) as c:
        page = c.get("/admin", params={"week": W48}).text
        fragment = c.get("/admin/report", params={"week": W48}).text
    for text in (page, fragment):
        assert "<script>alert" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert "<b>Хакер" not in text
        assert "&lt;b&gt;Хакер&lt;/b&gt;" in text


@pytest.mark.parametrize("what", CSV_REPORTS)
def test_the_csv_download_is_the_commands_csv(
    admin_app: RunningApp, tmp_path: Path, what: str
) -> None:
    db = admin_app.config.home.root / "school.sqlite"
    with client(admin_app) as c:
        answer = c.get("/admin/report.csv", params={"week": W48, "what": what})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["cross-origin-resource-policy"] == "same-origin"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="classcast-{what}-{W48}.csv"'
    )
    runner = CliRunner()
    if what == "norm":
        result = runner.invoke(
            cli, ["usage", "compliance", "--db", str(db), "--week", W48, "--format", "csv"]
        )
        assert result.exit_code == 0, result.output
        assert answer.text == CSV_BOM + result.output  # the terminal drops the BOM
    else:
        out = tmp_path / "report.csv"
        args = ["usage", "report", "--db", str(db), "--week", W48, "--by", what]
        result = runner.invoke(cli, [*args, "--format", "csv", "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert answer.content == out.read_bytes()
    assert answer.text.startswith("\ufeff")


def test_collection_shows_each_panel_and_the_record_waiting_for_a_decision(
    admin_app: RunningApp,
) -> None:
    with client(admin_app) as c:
        page = c.get("/admin", params={"week": W48}).text
    section = html.unescape(page.split('id="collection"')[1])
    rows = re.findall(r'<tr class="([^"]*)" data-kiosk="([^"]+)">(.*?)</tr>', section, re.S)
    assert [(kiosk, cls) for cls, kiosk, _ in rows] == [
        ("k-7", "problem"),  # the held record first, then by room
        ("k-14", ""),  # «<script>…»
        ("k-12", ""),
    ]
    held = rows[0][2]
    assert "запись №2: её содержимое не совпадает с подписанным панелью (запись изменена)" in held
    assert '<td class="n">1</td>' in held  # the record before it was stored
    k12 = rows[2][2]
    assert '<td class="n">5</td>' in k12  # five records collected
    assert re.search(r"<td>\d\d\.\d\d\.\d{4} \d\d:\d\d</td>", k12)  # when
    assert "<code>classcast usage accept k-7 2</code>" in held  # the commands to decide
    assert "<code>classcast usage quarantine k-7 2</code>" in held
    assert "Проверьте панель и решите" in section


def test_a_week_or_school_that_does_not_exist_is_refused_in_russian(
    admin_app: RunningApp,
) -> None:
    with client(admin_app) as c:
        for params in (
            {"week": "2026-W54"},
            {"week": "2026-48"},
            {"week": "<script>"},
            {"week": W48, "school": "school-9"},  # one school: nothing to choose
        ):
            for path in ("/admin", "/admin/report", "/admin/report.csv"):
                answer = c.get(path, params=params)
                assert answer.status_code == 400, (path, params)
                assert "Запрос не понят" in answer.text
                assert "Traceback" not in answer.text
        assert c.get("/admin/report.csv", params={"what": "plays"}).status_code == 404


def test_without_a_school_database_the_pages_say_what_to_do(tmp_path: Path) -> None:
    with running_app(tmp_path / "home") as app, client(app) as c:
        make_admin(app.config.home)
        page = c.get("/admin")
        assert page.status_code == 200
        assert "Ни одна панель ещё не собрана: выполните `classcast usage collect`." in (
            html.unescape(page.text)
        )
        assert "Нет данных" in page.text
        assert not (app.config.home.root / "school.sqlite").exists()  # not created


# --------------------------------------------------------------------------- who may see them

ADMIN_PATHS = [
    "/admin",
    f"/admin/report?week={W48}",
    f"/admin/report.csv?week={W48}&what=norm",
    "/admin/panels",
    "/admin/events",
]


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_the_admin_pages_need_the_apps_secret(admin_app: RunningApp, path: str) -> None:
    with httpx.Client(base_url=admin_app.base, timeout=10) as plain:
        for cookie in ("", f"{COOKIE}=guess", f"{COOKIE}={admin_app.config.secret[:-1]}"):
            answer = plain.get(path, headers={"cookie": cookie} if cookie else {})
            assert answer.status_code == 403, (path, cookie)
            assert FORBIDDEN in answer.text
            assert "Иванова" not in answer.text


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_a_teachers_computer_does_not_open_the_admin_pages(app: RunningApp, path: str) -> None:
    with client(app) as c:
        answer = c.get(path)
        assert answer.status_code == 403
        assert NOT_ADMIN in answer.text
        assert "Иванова" not in answer.text
        assert 'href="/admin"' not in c.get("/").text  # no way there on the teacher's page


def test_the_teachers_page_links_an_admin_to_the_dashboard(admin_app: RunningApp) -> None:
    with client(admin_app) as c:
        assert 'href="/admin"' in c.get("/").text


def test_the_csv_is_not_handed_to_another_site(admin_app: RunningApp) -> None:
    """A page of another site open in the admin's browser links or fetches the CSV: the
    cookie is SameSite=Strict, and even with it the request says where it came from."""
    port = admin_app.base.rsplit(":", 1)[1]
    path = f"/admin/report.csv?week={W48}&what=norm"
    with client(admin_app) as c:
        c.headers.pop("origin")
        for headers in (
            {"sec-fetch-site": "cross-site"},
            {"sec-fetch-site": "same-site"},
            {"origin": "http://evil.example"},
            {"origin": "null"},
            {"origin": f"{admin_app.base}.evil.example"},
        ):
            answer = c.get(path, headers=headers)
            assert answer.status_code == 403, headers
            assert "Иванова" not in answer.text
        rebound = c.get(path, headers={"host": f"evil.example:{port}"})
        assert rebound.status_code == 400  # DNS rebinding
        for headers in ({}, {"sec-fetch-site": "same-origin"}, {"sec-fetch-site": "none"}):
            assert c.get(path, headers=headers).status_code == 200, headers
        assert c.get(path, headers={"origin": admin_app.base}).status_code == 200


def test_the_admin_pages_change_nothing_from_another_origin(admin_app: RunningApp) -> None:
    with client(admin_app) as c:
        c.headers["origin"] = "http://evil.example"
        for path in ADMIN_PATHS:
            assert c.post(path).status_code == 403
        c.headers["origin"] = admin_app.base
        assert c.post("/admin").status_code == 405  # the pages only read


@pytest.mark.slow
async def test_a_phone_remote_grant_never_reaches_the_admin_pages(tmp_path: Path) -> None:
    """The phone holds a redeemed grant: on its own listener the admin's paths do not
    exist; on the app, its cookie is not the app's secret."""
    from tests.test_remote_http import start

    lan = await start()
    try:
        phone, _csrf = await lan.phone()
        for path in ADMIN_PATHS:
            answer = await phone.get(path)
            assert answer.status_code == 404, path
            assert "Иванова" not in answer.text
        with running_app(tmp_path / "home") as app:
            build_school(app.config.home.root / "school.sqlite").close()
            make_admin(app.config.home)
            async with httpx.AsyncClient(
                base_url=app.base, cookies=phone.cookies, timeout=10
            ) as same_cookies:
                for path in ADMIN_PATHS:
                    answer = await same_cookies.get(path)
                    assert answer.status_code == 403, path
                    assert "Иванова" not in answer.text
        await phone.aclose()
    finally:
        await lan.server.close()


# --------------------------------------------------------------------------- schools


class TwoSchools(SchoolSource):
    """The school database, listed as a district of two schools (as a district source
    lists its own): the page must offer them and pass the choice back."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.asked: list[str | None] = []

    def schools(self) -> tuple[School, ...]:
        return (School("lyceum-2", "Лицей № 2"), School("school-5", "<i>Школа № 5</i>"))

    def week_report(self, week: str, school: str | None) -> WeekReport:
        self.asked.append(school)
        return super().week_report(week, school)

    def rows(self, week: str, school: str | None, what: str) -> Rows:
        self.asked.append(school)
        return super().rows(week, school, what)

    def collection(self) -> list[PanelCollection]:
        return super().collection()


@pytest.mark.slow
def test_a_source_with_schools_gets_a_school_selector(tmp_path: Path) -> None:
    with running_app(tmp_path / "home") as app, client(app) as c:
        make_admin(app.config.home)
        path = app.config.home.root / "school.sqlite"
        build_school(path).close()
        plain = c.get("/admin", params={"week": W48}).text
        assert 'id="school"' not in plain  # one school: no selector
        source = TwoSchools(path)
        app.config.reports = source
        page = c.get("/admin", params={"week": W48, "school": "school-5"}).text
        assert 'id="school"' in page
        assert '<option value="school-5" selected>&lt;i&gt;Школа № 5&lt;/i&gt;</option>' in page
        assert "Все школы" in page
        assert "school=school-5&amp;what=norm" in page  # the downloads keep the school
        c.get("/admin/report.csv", params={"week": W48, "what": "room", "school": "lyceum-2"})
        assert source.asked == ["school-5", "lyceum-2"]
        assert c.get("/admin", params={"school": "school-9"}).status_code == 400


def test_the_dashboard_speaks_english_when_asked(
    admin_app: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLASSCAST_LANG", "en")
    with client(admin_app) as c:
        page = html.unescape(c.get("/admin", params={"week": W48}).text)
    assert "The admin's dashboard" in page
    assert "Week 2026-W48 (23.11 – 29.11.2026)" in page
    assert norm_table(page)[0][:3] == [IVANOVA[1], "3", "yes"]
    assert "Панель администратора" not in page


def test_an_unreadable_school_database_is_a_sentence_not_a_traceback(tmp_path: Path) -> None:
    with running_app(tmp_path / "home") as app, client(app) as c:
        make_admin(app.config.home)
        (app.config.home.root / "school.sqlite").write_bytes(b"not a database" * 100)
        page = c.get("/admin", params={"week": W48})
        assert page.status_code == 200
        assert "Не удаётся прочитать базу школы" in page.text
        assert "Traceback" not in page.text
        csv = c.get("/admin/report.csv", params={"week": W48})
        assert csv.status_code == 500
        assert "Не удаётся прочитать базу школы" in csv.text


@pytest.mark.slow
def test_a_panel_that_went_away_shows_when_it_was_last_seen(
    app: RunningApp, tmp_path: Path
) -> None:
    from tests.kiosks import ADMIN_SECRET, KioskThread
    from tests.test_app import _run, _wait_for_rows

    state = app.config.state
    assert state is not None
    with client(app) as c:
        with KioskThread(tmp_path / "k1", room="Каб. 12") as k1:
            c.post("/panels/add", data={"address": k1.address})
            _wait_for_rows(app, k1.address)
            c.post("/pair", data={"address": k1.address, "pin": ADMIN_SECRET, "admin": "1"})
            _run(app, state.hub.wait_for_links([k1.address], 5.0))
            card = c.get("/admin/panels").text.split(f'data-address="{k1.address}"')[1]
            assert '<dd class="seen">сейчас</dd>' in card
            gone = k1.address

        async def offline() -> None:
            while (link := state.hub.links.get(gone)) is None or link.online:
                await state.hub.wait_for_change(state.hub.version, 1.0)

        _run(app, offline())
        card = c.get("/admin/panels").text.split(f'data-address="{gone}"')[1].split("</article>")[0]
        assert "нет связи" in card
        seen = re.search(r'<dd class="seen">(\d\d\.\d\d\.\d{4} \d\d:\d\d)</dd>', card)
        assert seen is not None, card
        link = state.hub.links[gone]
        assert link.seen_at is not None
        moscow = datetime.fromtimestamp(link.seen_at, UTC).astimezone(ZoneInfo("Europe/Moscow"))
        assert seen.group(1) == moscow.strftime("%d.%m.%Y %H:%M")  # the school's time


@pytest.mark.parametrize("weeks", [MAX_WEEKS_LISTED, MAX_WEEKS_LISTED + 1])
def test_the_filter_lists_at_most_two_years_of_weeks(tmp_path: Path, weeks: int) -> None:
    """One lesson a week for ``weeks`` weeks: the filter offers the newest
    MAX_WEEKS_LISTED; an older one still opens by its address (tested above)."""
    path = tmp_path / "school.sqlite"
    school = SchoolDb(path, tz="Europe/Moscow")
    panel = Panel("k-12", "Каб. 12")
    first = datetime(2024, 1, 1, 6, 0, tzinfo=UTC)  # a Monday: 2024-W01
    for n in range(weeks):
        panel.play(first + timedelta(weeks=n), 12, lesson=(f"L-{n}", "Урок"))
    panel.collect(school)
    school.close()
    last = first + timedelta(weeks=weeks - 1)
    current = f"{last.isocalendar().year}-W{last.isocalendar().week:02d}"
    listed = SchoolSource(path).weeks(current)
    assert len(listed) == MAX_WEEKS_LISTED
    assert listed[0] == current
    assert listed == sorted(listed, reverse=True)
    assert ("2024-W01" in listed) == (weeks == MAX_WEEKS_LISTED)
