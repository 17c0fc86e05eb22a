"""Tests of the usage reports (controller/reports.py) against a hand-built dataset.

Times below are UTC; the school is in Moscow (UTC+3), week 2026-W48 runs from Monday
23 to Sunday 29 November 2026.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from controller.reports import (
    COMPLIANCE_QUERY,
    ComplianceRow,
    Group,
    ReportRow,
    compliance,
    csv_cell,
    duration_text,
    format_csv,
    format_json,
    format_table,
    usage_query,
    usage_report,
)
from controller.schooldb import SchoolDb
from tests.test_schooldb import Panel, at

MON, SUN = date(2026, 11, 23), date(2026, 11, 29)
ANNA = ("t-1", "Анна Петровна")
BORIS = ("t-2", "Борис Иванович")
SRC = "https://lib.myschool.edu.ru/content/"


L1, L2, L3, L4 = ("L-1", "Фотосинтез"), ("L-2", "Дыхание"), ("L-3", "Дроби"), ("L-4", "Степени")
C1, C2, C3 = ("c-1", "Хлоропласт"), ("c-2", "Лист"), ("c-3", "Митохондрия")
C4, C9 = ("c-4", "Таблица"), ("c-9", "Другое")


def build(db: SchoolDb) -> None:
    """The hand-built dataset; expected figures are worked out in the tests."""
    a, b = Panel("k-101", "101"), Panel("k-202", "202")
    # Panel A, room 101.
    a.play("2026-11-23 05:00", 10, teacher=ANNA, lesson=L1, content=C1, source=SRC + "1")
    a.play("2026-11-23 05:10", 5, teacher=ANNA, lesson=L1, content=C2, source=None)
    # 5 minutes' pause: still the same lesson session (S1, 20 min).
    a.play("2026-11-23 05:20", 5, teacher=ANNA, lesson=L1, content=C1, source=SRC + "1")
    a.play("2026-11-24 06:00", 12, teacher=ANNA, lesson=L2, content=C3, source=SRC + "3")
    a.play("2026-11-24 07:00", 9.5, teacher=BORIS, lesson=L3, content=C1, source=SRC + "1")
    # Next week: outside every report below.
    a.play("2026-11-30 05:00", 10, teacher=ANNA, lesson=L1, content=C9, source=SRC + "9")
    # Panel B, room 202.
    b.play("2026-11-23 05:00", 10, teacher=ANNA, lesson=L1, content=C1, source=SRC + "1")
    b.play("2026-11-25 08:00", 30, teacher=BORIS, lesson=L4, content=C4, source=None)
    # 30 minutes' pause: a new session.
    b.play("2026-11-25 09:00", 10, teacher=BORIS, lesson=L4, content=C4, source=SRC + "4")
    a.collect(db)
    b.collect(db)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SchoolDb]:
    school = SchoolDb(tmp_path / "school.db")
    build(school)
    yield school
    school.close()


def figures(rows: list[ReportRow]) -> list[tuple[str, int, int, int]]:
    return [(r.label, r.lessons, r.display_ms, r.items) for r in rows]


MIN = 60_000


def test_by_room(db: SchoolDb) -> None:
    rows = usage_report(db, start=MON, end=SUN, by="room")
    # 202: S3 10 + S5a 30 + S5b 10; 101: S1 20 + S2 12 + S4 9.5.
    assert figures(rows) == [("202", 3, 50 * MIN, 2), ("101", 3, int(41.5 * MIN), 3)]
    assert rows[1].first_start_utc == "2026-11-23T05:00:00.000Z"
    assert rows[1].last_end_utc == "2026-11-24T07:09:30.000Z"
    assert rows[0].last_end_utc == "2026-11-25T09:10:00.000Z"


def test_by_teacher(db: SchoolDb) -> None:
    rows = usage_report(db, start=MON, end=SUN, by="teacher")
    assert figures(rows) == [
        ("Борис Иванович", 3, int(49.5 * MIN), 2),
        ("Анна Петровна", 2, 42 * MIN, 3),  # Monday's cast to both panels is one lesson
    ]
    # No roster: each controller is its own row, marked as not on the roster.
    assert [r.key for r in rows] == ["device:t-2", "device:t-1"]


def test_by_content(db: SchoolDb) -> None:
    rows = usage_report(db, start=MON, end=SUN, by="content")
    assert figures(rows) == [
        ("Таблица", 2, 40 * MIN, 1),
        ("Хлоропласт", 2, int(34.5 * MIN), 1),
        ("Митохондрия", 1, 12 * MIN, 1),
        ("Лист", 1, 5 * MIN, 1),
    ]


def test_by_day_and_week(db: SchoolDb) -> None:
    days = usage_report(db, start=MON, end=SUN, by="day")
    assert figures(days) == [
        ("2026-11-23", 1, 30 * MIN, 2),
        ("2026-11-24", 2, int(21.5 * MIN), 2),
        ("2026-11-25", 2, 40 * MIN, 1),
    ]
    weeks = usage_report(db, start=MON, end=date(2026, 12, 6), by="week")
    assert figures(weeks) == [("2026-W48", 5, int(91.5 * MIN), 4), ("2026-W49", 1, 10 * MIN, 1)]


def test_range_is_inclusive_and_empty_outside(db: SchoolDb) -> None:
    only_tuesday = usage_report(db, start=date(2026, 11, 24), end=date(2026, 11, 24), by="room")
    assert figures(only_tuesday) == [("101", 2, int(21.5 * MIN), 2)]
    assert usage_report(db, start=date(2025, 1, 1), end=date(2025, 1, 2), by="day") == []
    with pytest.raises(ValueError, match="before it starts"):
        usage_report(db, start=SUN, end=MON, by="day")
    with pytest.raises(ValueError, match="cannot group by"):
        usage_report(db, start=MON, end=SUN, by="district")  # type: ignore[arg-type]


def test_report_queries_use_the_covering_index(db: SchoolDb) -> None:
    params = {"first_day": "2026-11-23", "last_day": "2026-11-29", "gap_ms": 600_000}
    groups: tuple[Group, ...] = ("room", "teacher", "content", "day", "week", "library", "school")
    for sql in [usage_query(by) for by in groups]:
        plan = " | ".join(str(r[3]) for r in db.db.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert "SEARCH plays USING COVERING INDEX plays_report (day>? AND day<?)" in plan, plan
        assert "SCAN plays" not in plan, plan
    plan = " | ".join(
        str(r[3]) for r in db.db.execute("EXPLAIN QUERY PLAN " + COMPLIANCE_QUERY, params)
    )
    assert "USING COVERING INDEX plays_report" in plan, plan


# --------------------------------------------------------------------------- sessions


def one_panel(tmp_path: Path, plays: list[tuple[str, float, dict[str, object]]]) -> SchoolDb:
    school = SchoolDb(tmp_path / "one.db")
    panel = Panel()
    for start, minutes, extra in plays:
        panel.play(start, minutes, **extra)  # type: ignore[arg-type]
    panel.collect(school)
    return school


def test_session_gap_edges(tmp_path: Path) -> None:
    school = one_panel(
        tmp_path,
        [
            ("2026-11-23 05:00", 5, {}),
            ("2026-11-23 05:14:59", 5, {}),  # 9:59 after the end: same session
            ("2026-11-23 05:29:59", 5, {}),  # exactly 10:00 after: a new one
        ],
    )
    assert usage_report(school, start=MON, end=SUN, by="room")[0].lessons == 2
    assert usage_report(school, start=MON, end=SUN, by="room", gap_minutes=10.1)[0].lessons == 1
    school.close()


def test_another_lesson_in_between_does_not_split_a_session(tmp_path: Path) -> None:
    other: dict[str, object] = {"lesson": ("L-9", "Вставка")}
    school = one_panel(
        tmp_path,
        [("2026-11-23 05:00", 5, {}), ("2026-11-23 05:05", 2, other), ("2026-11-23 05:07", 5, {})],
    )
    rows = usage_report(school, start=MON, end=SUN, by="room")
    assert (rows[0].lessons, rows[0].display_ms) == (2, 12 * MIN)
    school.close()


def test_clock_offset_moves_a_record_to_the_previous_day(tmp_path: Path) -> None:
    # The panel's clock is 2 minutes fast: it logged 00:01 Tuesday, Moscow time.
    school = one_panel(tmp_path, [("2026-11-23 21:01", 1, {"offset_ms": 120_000})])
    rows = usage_report(school, start=MON, end=SUN, by="day")
    assert [(r.key, r.first_start_utc) for r in rows] == [
        ("2026-11-23", "2026-11-23T20:59:00.000Z")
    ]
    school.close()


# --------------------------------------------------------------------------- compliance


def test_compliance_on_the_dataset(db: SchoolDb) -> None:
    rows = compliance(db, week="2026-W48")
    assert rows == [
        ComplianceRow(
            week="2026-W48",
            teacher_id="t-1",
            teacher_name="Анна Петровна",
            lessons=2,  # Monday's cast to both panels at once is one lesson
            met=False,
            days=("2026-11-23", "2026-11-24"),
            sessions=2,
            too_short=0,
            without_source=0,
            display_ms=42 * MIN,  # 20 + 10 on Monday's two panels, 12 on Tuesday
            library_ms=37 * MIN,  # 10 + 5 + 10 of Хлоропласт, 12 of Митохондрия
            library_share=0.881,
        ),
        ComplianceRow(
            week="2026-W48",
            teacher_id="t-2",
            teacher_name="Борис Иванович",
            lessons=1,
            met=False,
            days=("2026-11-25",),
            sessions=3,
            too_short=1,  # 9.5 minutes
            without_source=1,  # 30 minutes, no library content
            display_ms=int(49.5 * MIN),
            library_ms=int(19.5 * MIN),
            library_share=0.394,
        ),
    ]


def test_compliance_parameters(db: SchoolDb) -> None:
    def lessons(week: str = "2026-W48", **kwargs: object) -> dict[str, tuple[int, bool]]:
        rows = compliance(db, week=week, **kwargs)  # type: ignore[arg-type]
        return {r.teacher_id: (r.lessons, r.met) for r in rows}

    # Monday's lesson on two panels lasts as long as its longer panel (20 minutes).
    assert lessons(min_minutes=11)["t-1"] == (2, False)
    assert lessons(min_minutes=12.5)["t-1"] == (1, False)
    assert lessons(min_minutes=20.5)["t-1"] == (0, False)
    assert lessons(min_minutes=9.5, require_source=False) == {"t-1": (2, False), "t-2": (3, True)}
    assert lessons(require_source=False, min_lessons=2)["t-2"] == (2, True)
    assert lessons(min_lessons=2)["t-1"] == (2, True)
    assert lessons(week="2026-W49") == {"t-1": (1, False)}
    with pytest.raises(ValueError, match="ISO week"):
        compliance(db, week="48")


def test_two_sessions_of_one_lesson_on_one_day_count_twice(tmp_path: Path) -> None:
    school = one_panel(
        tmp_path,
        [
            ("2026-11-23 05:00", 10, {}),
            ("2026-11-23 05:09", 1, {}),  # back within 10 minutes: merges, not a second lesson
            ("2026-11-23 10:00", 10, {}),  # the same lesson again in the afternoon
            ("2026-11-24 10:00", 10, {}),
        ],
    )
    (row,) = compliance(school, week="2026-W48")
    assert (row.lessons, row.met, row.days) == (3, True, ("2026-11-23", "2026-11-24"))
    school.close()


def test_just_under_min_minutes_does_not_count(tmp_path: Path) -> None:
    school = one_panel(
        tmp_path,
        [
            ("2026-11-23 05:00", 9.999, {}),
            ("2026-11-24 05:00", 10, {}),
            ("2026-11-25 05:00", 10, {"source": None}),
        ],
    )
    (row,) = compliance(school, week="2026-W48")
    assert (row.lessons, row.too_short, row.without_source, row.met) == (1, 1, 1, False)
    (row,) = compliance(school, week="2026-W48", require_source=False)
    assert (row.lessons, row.met) == (2, False)
    school.close()


def test_a_library_page_that_failed_to_open_is_no_content_source(tmp_path: Path) -> None:
    """A failed web item is logged with 0 ms (end reason ``failed``): its source does not
    make the lesson one with digital content."""
    school = one_panel(
        tmp_path,
        [
            ("2026-11-23 05:00", 0, {}),  # the library page that did not open
            ("2026-11-23 05:00", 10, {"source": None, "index": 1}),
        ],
    )
    (row,) = compliance(school, week="2026-W48")
    assert (row.lessons, row.without_source, row.display_ms) == (0, 1, 600_000)
    school.close()


def test_lesson_is_credited_to_the_week_of_its_day(tmp_path: Path) -> None:
    # Sunday 23:55 Moscow: week 48, though it is already Monday in Yekaterinburg.
    school = one_panel(tmp_path, [("2026-11-29 20:55", 12, {})])
    assert [r.lessons for r in compliance(school, week="2026-W48")] == [1]
    assert compliance(school, week="2026-W49") == []
    school.close()


# --------------------------------------------------------------------------- formats


def test_format_table_russian_and_english(db: SchoolDb) -> None:
    rows = usage_report(db, start=MON, end=SUN, by="room")
    text = format_table(rows, "ru")
    lines = text.splitlines()
    assert lines[0].split() == [
        "Кабинет",
        "Уроков",
        "Время",
        "показа",
        "Не",
        "показано",
        "Доля",
        "библиотек",
        "Материалов",
        "Первый",
        "показ",
        "Последний",
        "показ",
    ]
    assert "202" in lines[2]
    assert "50 мин" in lines[2]
    assert "2026-11-23 08:00" in lines[3]  # Moscow time
    assert "Room" in format_table(rows, "en")
    assert "41 min" in format_table(rows, "en") or "42 min" in format_table(rows, "en")
    comp = format_table(compliance(db, week="2026-W48", min_lessons=2), "ru")
    assert comp.splitlines()[0].startswith("Учитель")
    assert "да" in comp
    assert "нет" in comp
    assert format_table([], "ru") == "Нет данных\n"


def test_duration_text() -> None:
    assert duration_text(65 * MIN, "ru") == "1 ч 05 мин"
    assert duration_text(12 * MIN, "en") == "12 min"
    assert duration_text(int(56.5 * MIN), "ru") == "57 мин"  # half up, not to even
    assert duration_text(int(56.49 * MIN), "ru") == "56 мин"
    assert duration_text(2_450, "ru") == "2,5 с"
    assert duration_text(400, "en") == "0.4 s"
    assert duration_text(12_500, "ru") == "13 с"
    assert duration_text(0, "ru") == "0 мин"


def test_format_json_has_stable_keys(db: SchoolDb) -> None:
    data = json.loads(format_json(usage_report(db, start=MON, end=SUN, by="teacher")))
    assert list(data[0]) == [
        "group",
        "key",
        "label",
        "lessons",
        "display_ms",
        "items",
        "first_start_utc",
        "last_end_utc",
        "library_ms",
        "library_share",
        "library",
        "hidden_ms",
        "school",
    ]
    assert data[0]["label"] == "Борис Иванович"
    comp = json.loads(format_json(compliance(db, week="2026-W48")))
    assert comp[0]["days"] == ["2026-11-23", "2026-11-24"]
    assert comp[0]["met"] is False
    assert (comp[0]["library_ms"], comp[0]["library_share"]) == (37 * MIN, 0.881)
    assert format_json([]) == "[]\n"


def read_csv(text: str) -> list[list[str]]:
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff")), delimiter=";"))


def test_format_csv(db: SchoolDb) -> None:
    rows = read_csv(format_csv(usage_report(db, start=MON, end=SUN, by="day")))
    assert rows[0] == [
        "group",
        "key",
        "label",
        "lessons",
        "display_ms",
        "items",
        "first_start_utc",
        "last_end_utc",
        "library_ms",
        "library_share",
        "library",
        "hidden_ms",
        "school",
    ]
    assert rows[1][:6] == ["day", "2026-11-23", "2026-11-23", "1", str(30 * MIN), "2"]
    assert rows[1][8:] == [str(25 * MIN), "0,833", "", "0", ""]  # 25 of 30 min from the library
    comp = read_csv(format_csv(compliance(db, week="2026-W48", min_lessons=2)))
    assert comp[1][4:6] == ["true", "2026-11-23 2026-11-24"]
    assert comp[1][-5:] == [str(37 * MIN), "0,881", "0", "false", ""]  # Anna: no roster here
    assert format_csv([], compliance_rows=True).startswith("\ufeffweek;teacher_id")
    assert [csv_cell(1.5), csv_cell(42), csv_cell("Каб.\u202e 1")] == ["1,5", 42, "Каб. 1"]


def test_start_times_helper() -> None:
    assert at("2026-11-23 05:00") + timedelta(hours=3) == datetime.fromisoformat(
        "2026-11-23T08:00:00+00:00"
    )


def test_report_texts_come_from_the_controller_catalogue(
    db: SchoolDb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report's Russian is the .po's (no table of its own): another .mo, other words."""
    from babel.messages.catalog import Catalog
    from babel.messages.mofile import write_mo

    from controller.i18n import MESSAGES
    from i18n import Messages

    catalog = Catalog(locale="ru", domain=MESSAGES.domain)
    catalog.add("Display time", "Показывали")
    mo = tmp_path / "ru" / "LC_MESSAGES" / f"{MESSAGES.domain}.mo"
    mo.parent.mkdir(parents=True)
    with mo.open("wb") as f:
        write_mo(f, catalog)
    rows = usage_report(db, start=MON, end=SUN, by="room")
    assert "Время показа" in format_table(rows, "ru")
    monkeypatch.setattr(MESSAGES, "locale_dir", tmp_path)
    Messages.catalogue.cache_clear()
    try:
        heading = format_table(rows, "ru").splitlines()[0]
        assert "Показывали" in heading
        assert "Room" in heading  # not in that .mo: English, as the code writes it
    finally:
        monkeypatch.undo()
        Messages.catalogue.cache_clear()


# --------------------------------------------------------------------------- time zones

# Records around midnight and the week's end (UTC); each is its own 12-minute lesson.
# UTC          Moscow (UTC+3)         Novosibirsk (UTC+7)
# 11-22 20:30  Sun 11-22 23:30 W47    Mon 11-23 03:30 W48
# 11-24 16:59  Tue 11-24 19:59 W48    Tue 11-24 23:59 W48
# 11-24 17:00  Tue 11-24 20:00 W48    Wed 11-25 00:00 W48
# 11-29 16:30  Sun 11-29 19:30 W48    Sun 11-29 23:30 W48
# 11-29 17:30  Sun 11-29 20:30 W48    Mon 11-30 00:30 W49
# 11-29 23:30  Mon 11-30 02:30 W49    Mon 11-30 06:30 W49
NIGHT = (
    "2026-11-22 20:30",
    "2026-11-24 16:59",
    "2026-11-24 17:00",
    "2026-11-29 16:30",
    "2026-11-29 17:30",
    "2026-11-29 23:30",
)
NSK = "Asia/Novosibirsk"


def build_night(db: SchoolDb) -> None:
    panel = Panel("k-7", "7")
    for i, start in enumerate(NIGHT):
        panel.play(start, 12, teacher=ANNA, lesson=(f"N-{i}", "Ночь"), content=C1, source=SRC)
    panel.collect(db)


def day_rows(db: SchoolDb, start: date, end: date) -> list[tuple[str, int]]:
    return [(r.label, r.lessons) for r in usage_report(db, start=start, end=end, by="day")]


def week_days_of(db: SchoolDb, week: str) -> tuple[int, tuple[str, ...]]:
    (row,) = compliance(db, week=week)
    return row.lessons, row.days


MOSCOW_DAYS = [("2026-11-24", 2), ("2026-11-29", 2), ("2026-11-30", 1)]
NSK_DAYS = [
    ("2026-11-23", 1),
    ("2026-11-24", 1),
    ("2026-11-25", 1),
    ("2026-11-29", 1),
    ("2026-11-30", 2),
]


def test_days_and_weeks_are_cut_in_the_school_zone(tmp_path: Path) -> None:
    moscow, nsk = SchoolDb(tmp_path / "m.db"), SchoolDb(tmp_path / "n.db", tz=NSK)
    for school in (moscow, nsk):
        build_night(school)
    nov30 = date(2026, 11, 30)
    assert day_rows(moscow, MON, nov30) == MOSCOW_DAYS
    assert day_rows(nsk, MON, nov30) == NSK_DAYS
    assert week_days_of(moscow, "2026-W48") == (4, ("2026-11-24", "2026-11-29"))
    assert week_days_of(nsk, "2026-W48") == (
        4,
        ("2026-11-23", "2026-11-24", "2026-11-25", "2026-11-29"),
    )
    assert week_days_of(moscow, "2026-W49") == (1, ("2026-11-30",))
    assert week_days_of(nsk, "2026-W49") == (2, ("2026-11-30",))
    assert week_days_of(moscow, "2026-W47") == (1, ("2026-11-22",))
    assert compliance(nsk, week="2026-W47") == []
    moscow.close()
    nsk.close()


def test_a_report_in_another_zone_changes_nothing_stored(tmp_path: Path) -> None:
    school = SchoolDb(tmp_path / "m.db")
    build_night(school)
    nov30 = date(2026, 11, 30)
    with school.timezone_for_report(NSK, MON, nov30):
        assert school.tz_name == NSK
        assert day_rows(school, MON, nov30) == NSK_DAYS
    assert school.tz_name == "Europe/Moscow"
    assert not school.timezone_chosen
    assert day_rows(school, MON, nov30) == MOSCOW_DAYS
    school.close()
    again = SchoolDb(tmp_path / "m.db")
    assert (again.tz_name, again.timezone_chosen) == ("Europe/Moscow", False)
    assert day_rows(again, MON, nov30) == MOSCOW_DAYS
    again.close()


def cli(*args: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from controller.cli import cli as main

    result = CliRunner().invoke(main, ["--lang", "ru", *args])
    return result.exit_code, result.output


def test_cli_timezone_is_stored_once_then_overridden_per_report(tmp_path: Path) -> None:
    path = tmp_path / "school.db"
    school = SchoolDb(path)
    build_night(school)
    school.close()
    db = ("--db", str(path))
    code, out = cli("usage", "timezone", *db)
    assert code == 0
    assert "Часовой пояс: Europe/Moscow" in out
    assert "classcast usage timezone" in out  # the default: says how to set it
    # The first --tz is stored as the school's.
    code, out = cli("usage", "report", *db, "--week", "2026-W48", "--by", "day", "--tz", NSK)
    assert code == 0, out
    assert out.splitlines()[0] == f"Часовой пояс: {NSK}"
    assert [line.split()[0] for line in out.splitlines()[3:]] == [d for d, _ in NSK_DAYS[:4]]
    assert cli("usage", "timezone", *db)[1] == f"Часовой пояс: {NSK}\n"
    # Later, --tz is for one report only.
    code, out = cli(
        "usage", "report", *db, "--week", "2026-W48", "--by", "day", "--tz", "Europe/Moscow"
    )
    assert code == 0, out
    assert out.splitlines()[0] == "Часовой пояс: Europe/Moscow"
    assert [line.split()[0] for line in out.splitlines()[3:]] == ["2026-11-24", "2026-11-29"]
    code, out = cli("usage", "compliance", *db, "--week", "2026-W48", "--format", "json")
    assert json.loads(out)[0]["days"] == ["2026-11-23", "2026-11-24", "2026-11-25", "2026-11-29"]
    code, out = cli(
        "usage",
        "compliance",
        *db,
        "--week",
        "2026-W49",
        "--format",
        "json",
        "--tz",
        "Europe/Moscow",
    )
    assert (json.loads(out)[0]["lessons"], json.loads(out)[0]["days"]) == (1, ["2026-11-30"])
    page = tmp_path / "report.html"
    args = ("--week", "2026-W48", "--format", "html", "-o", str(page), "--tz", "Asia/Vladivostok")
    assert cli("usage", "report", *db, *args)[0] == 0
    assert "Часовой пояс: Asia/Vladivostok" in page.read_text("utf-8")
    assert cli("usage", "timezone", *db)[1] == f"Часовой пояс: {NSK}\n"
    # `usage timezone ZONE` changes the school's zone.
    assert cli("usage", "timezone", *db, "Asia/Vladivostok")[0] == 0
    assert cli("usage", "timezone", *db)[1] == "Часовой пояс: Asia/Vladivostok\n"


@pytest.mark.parametrize(
    "args",
    [
        ("usage", "timezone", "Mars/Olympus"),
        ("usage", "report", "--tz", "UTC+7"),
        ("usage", "compliance", "--tz", "Novosibirsk"),
    ],
)
def test_cli_unknown_zone_is_refused_in_russian(tmp_path: Path, args: tuple[str, ...]) -> None:
    path = tmp_path / "school.db"
    code, out = cli(*args, "--db", str(path))
    assert code == 2
    assert "не известный часовой пояс" in out
    assert "Asia/Novosibirsk" in out
    assert "Asia/Vladivostok" in out
    assert "Traceback" not in out


class _Cells(HTMLParser):
    """The cells of the tables of an HTML page: (text, ``sdval``: the number, if any)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[tuple[str, str | None]]] = []
        self._cell: list[str] | None = None
        self._value: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell, self._value = [], dict(attrs).get("sdval")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append(("".join(self._cell).strip(), self._value))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


@pytest.mark.slow
def test_csv_opens_in_libreoffice_with_cyrillic_and_numbers(db: SchoolDb, tmp_path: Path) -> None:
    soffice = shutil.which("soffice")
    if soffice is None:
        pytest.skip("LibreOffice is not installed")
    path = tmp_path / "отчёт.csv"
    path.write_text(format_csv(usage_report(db, start=MON, end=SUN, by="teacher")), "utf-8")
    # The options of LibreOffice's text import as a Russian locale fills them in: fields
    # separated by ";", quotes '"', Unicode (UTF-8), from line 1, language Russian (1049).
    done = subprocess.run(
        [
            soffice,
            f"-env:UserInstallation={(tmp_path / 'profile').as_uri()}",
            "--headless",
            "--infilter=CSV:59,34,76,1,,1049",
            "--convert-to",
            "html:HTML (StarCalc)",
            "--outdir",
            str(tmp_path / "out"),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    page = tmp_path / "out" / "отчёт.html"
    assert page.exists(), done.stdout + done.stderr
    cells = _Cells()
    cells.feed(page.read_text("utf-8"))
    rows = [row for row in cells.rows if row]
    # The BOM is read as such, not as a character of the first heading.
    assert [text for text, _ in rows[0]][:6] == [
        "group",
        "key",
        "label",
        "lessons",
        "display_ms",
        "items",
    ]
    assert rows[1][2] == ("Борис Иванович", None)
    assert rows[1][3] == ("3", "3")  # a number, not text
    assert rows[1][4][1] == str(int(49.5 * MIN))
    assert rows[2][2][0] == "Анна Петровна"


# --------------------------------------------------------------------------- one lesson, items


def test_one_cast_to_three_panels_is_one_lesson_for_the_teacher(tmp_path: Path) -> None:
    """The finding: one 10½-minute cast to three panels counted as several lessons."""
    school = SchoolDb(tmp_path / "three.db")
    for kiosk_id, room, late_s in (("k-1", "11", 0), ("k-2", "12", 1.2), ("k-3", "13", 0.4)):
        panel = Panel(kiosk_id, room)
        start = at("2026-11-23 06:00") + timedelta(seconds=late_s)
        panel.play(start, 6, index=0)
        panel.play(start + timedelta(minutes=6), 4.5, index=1, content=("c-2", "Лист"))
        panel.collect(school)
    try:
        (row,) = compliance(school, week="2026-W48", min_lessons=1)
        assert (row.lessons, row.sessions, row.met) == (1, 1, True)
        assert row.display_ms == 3 * int(10.5 * MIN)  # panel time: on three panels
        (teacher,) = usage_report(school, start=MON, end=SUN, by="teacher")
        assert teacher.lessons == 1
        (week,) = usage_report(school, start=MON, end=SUN, by="week")
        assert week.lessons == 1
        rooms = usage_report(school, start=MON, end=SUN, by="room")
        assert sorted((r.label, r.lessons) for r in rooms) == [("11", 1), ("12", 1), ("13", 1)]
    finally:
        school.close()


def test_one_lesson_given_in_two_rooms_one_after_the_other_is_two_lessons(
    tmp_path: Path,
) -> None:
    school = SchoolDb(tmp_path / "two.db")
    first, second = Panel("k-1", "11"), Panel("k-2", "12")
    first.play("2026-11-23 06:00", 40)
    second.play("2026-11-23 06:45", 40)  # the next period, 5 minutes' break
    first.collect(school)
    second.collect(school)
    try:
        (row,) = compliance(school, week="2026-W48")
        assert (row.lessons, row.sessions) == (2, 2)
        assert usage_report(school, start=MON, end=SUN, by="teacher")[0].lessons == 2
    finally:
        school.close()


def test_a_lesson_on_two_panels_lasts_as_long_as_its_longer_panel(tmp_path: Path) -> None:
    school = SchoolDb(tmp_path / "long.db")
    first, second = Panel("k-1", "11"), Panel("k-2", "12")
    first.play("2026-11-23 06:00", 9)
    second.play("2026-11-23 06:00", 11, source=None)  # the library item was on the first only
    first.collect(school)
    second.collect(school)
    try:
        (row,) = compliance(school, week="2026-W48", min_lessons=1)
        assert (row.lessons, row.too_short, row.without_source) == (1, 0, 0)
        (row,) = compliance(school, week="2026-W48", min_minutes=11.5)
        assert (row.lessons, row.too_short) == (0, 1)
    finally:
        school.close()


def test_every_pdf_page_and_every_title_is_an_item_of_its_own(tmp_path: Path) -> None:
    """The finding: PDF pages folded into the first page's row; «Материалов» 6 of 7."""
    school = SchoolDb(tmp_path / "items.db")
    panel = Panel()
    pdf = "d" * 64
    shown = [
        (pdf, "Дроби — с. 1"),
        (pdf, "Дроби — с. 2"),
        (pdf, "Дроби — с. 3"),
        ("e" * 64, "Круг"),
        ("e" * 64, "Окружность"),  # one picture under a second title
        (None, "Слайд 1"),
        (None, "Слайд 2"),
    ]
    for index, item in enumerate(shown):
        panel.play(
            at("2026-11-23 06:00") + timedelta(minutes=2 * index), 2, index=index, content=item
        )
    panel.collect(school)
    try:
        (room,) = usage_report(school, start=MON, end=SUN, by="room")
        assert room.items == 7
        content = usage_report(school, start=MON, end=SUN, by="content")
        assert sorted(r.label for r in content) == sorted(title for _, title in shown)
        assert {r.items for r in content} == {1}
        assert {r.key for r in content} >= {f"{pdf}/Дроби — с. 2", "/Слайд 1"}
    finally:
        school.close()


def test_the_library_report_splits_display_time_by_library(db: SchoolDb) -> None:
    rows = usage_report(db, start=MON, end=SUN, by="library")
    assert [(r.key, r.display_ms, r.library_ms) for r in rows] == [
        ("myschool", int(56.5 * MIN), int(56.5 * MIN)),
        ("", 35 * MIN, 0),
    ]
    assert format_table(rows, "ru").splitlines()[3].startswith("не из библиотеки")
