"""The weekly norm a school can sign: a hand-built week in two schools, two time zones.

«Лицей № 2» is in Novosibirsk (UTC+7) and «Школа № 5» in Moscow (UTC+3); each has its
own school database and roster. The expected compliance tables are worked out by hand
below, record by record, and the same figures must come out of the table, CSV, JSON,
HTML and the command line. Week 2026-W48 is Monday 23 to Sunday 29 November 2026
(local days); all record times below are UTC.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import cli
from controller.report_html import report_html
from controller.reports import compliance, format_csv, format_json, usage_report
from controller.roster import Roster, RosterEntry
from controller.schooldb import SchoolDb
from tests.test_schooldb import Panel

WEEK = "2026-W48"
MON, SUN = date(2026, 11, 23), date(2026, 11, 29)
MIN = 60_000
LIB = "https://lib.myschool.edu.ru/content/drobi"
RESH = "https://resh.edu.ru/subject/lesson/7/"
QUIZ = "https://example.org/quiz"
NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)

IVANOVA_A = ("c-a", "Иванова Мария Петровна")  # her laptop
IVANOVA_B = ("c-b", "Иванова Мария Петровна")  # the staff-room computer
SIDOROVA = ("c-s", "сидорова  анна львовна")  # typed in lower case, two spaces
ROOT = ("c-x", "root")  # a computer whose name was never set: not a teacher
KUZNETSOVA = ("m-1", "Кузнецова Елена Викторовна")


def novosibirsk(path: Path) -> SchoolDb:
    """«Лицей № 2»: three rooms, a roster of three, a week of lessons."""
    school = SchoolDb(path, tz="Asia/Novosibirsk")
    Roster(school).import_entries(
        [
            RosterEntry("0001", "Иванова Мария Петровна"),
            RosterEntry("0002", "Петров Олег Ильич"),
            RosterEntry("0003", "Сидорова Анна Львовна"),
        ],
        "Завуч",
        NOW,
    )
    p11, p12, p13 = Panel("k-11", "11"), Panel("k-12", "12"), Panel("k-13", "13")
    # Иванова. 1: Monday 09:00 local, 12 min of library content: counts (11-23).
    p11.play("2026-11-23 02:00", 12, teacher=IVANOVA_A, lesson=("L-1", "Дроби"), source=LIB)
    # 2: Tuesday 10:00 local, one cast to three rooms: 6 min library + 4.5 min of a text
    # slide on each panel. One lesson of 10.5 min (11-24); 31.5 min of panel time.
    for panel in (p11, p12, p13):
        panel.play("2026-11-24 03:00", 6, teacher=IVANOVA_A, lesson=("L-2", "Степени"))
        panel.play(
            "2026-11-24 03:06", 4.5, teacher=IVANOVA_A, lesson=("L-2", "Степени"),
            content=(None, "Итог"), source=None, kind="text", index=1,
        )  # fmt: skip
    # 3: Wednesday, from the other computer, 15 min of РЭШ: counts (11-25).
    p12.play("2026-11-25 04:00", 15, teacher=IVANOVA_B, lesson=("L-3", "Корни"), source=RESH)
    # 4: Thursday, a text slide and a quiz from a site that is no library: 15 min, no
    # library content.
    p11.play(
        "2026-11-26 04:00", 5, teacher=IVANOVA_A, lesson=("L-4", "Опрос"),
        content=(None, "Вопросы"), source=None, kind="text",
    )  # fmt: skip
    p11.play(
        "2026-11-26 04:05", 10, teacher=IVANOVA_A, lesson=("L-4", "Опрос"),
        content=(None, QUIZ), source=QUIZ, kind="web", index=1,
    )  # fmt: skip
    # 5: Friday, 8 min of library content, then 6 min under an administrator's alert:
    # 8 min long, too short.
    p11.play("2026-11-27 04:00", 8, teacher=IVANOVA_A, lesson=("L-5", "Проценты"))
    p11.play("2026-11-27 04:08", 6, teacher=IVANOVA_A, lesson=("L-5", "Проценты"), hidden="alert")
    # 6: Sunday 17:30 UTC is Monday 00:30 in Novosibirsk: the next week.
    p11.play("2026-11-29 17:30", 20, teacher=IVANOVA_A, lesson=("L-6", "Повторение"))
    # Сидорова: the same lesson in two periods on Monday (two lessons), and Sunday
    # 23:55 local, still this week.
    p13.play("2026-11-23 06:00", 20, teacher=SIDOROVA, lesson=("L-7", "Клетка"))
    p13.play("2026-11-23 07:00", 20, teacher=SIDOROVA, lesson=("L-7", "Клетка"))
    p13.play("2026-11-29 16:55", 12, teacher=SIDOROVA, lesson=("L-8", "Ткани"))
    # A computer that sent the login name "root": not on the roster, its own row.
    p12.play("2026-11-24 05:00", 11, teacher=ROOT, lesson=("L-9", "Без имени"))
    for panel in (p11, p12, p13):
        panel.collect(school)
    return school


def moscow(path: Path) -> SchoolDb:
    """«Школа № 5»: one room; its roster's id 0001 is another person than the Lyceum's."""
    school = SchoolDb(path, tz="Europe/Moscow")
    Roster(school).import_entries(
        [RosterEntry("0001", "Кузнецова Елена Викторовна")], "Директор", NOW
    )
    panel = Panel("m-kab-3", "3")
    panel.play("2026-11-23 05:00", 10, teacher=KUZNETSOVA, lesson=("M-1", "Пушкин"))
    # Monday 21:30 UTC is Tuesday 00:30 in Moscow.
    panel.play("2026-11-23 21:30", 10, teacher=KUZNETSOVA, lesson=("M-2", "Лермонтов"))
    # Sunday 20:30 UTC is Sunday 23:30 in Moscow (this week; it would be next week's
    # Monday in Novosibirsk).
    panel.play("2026-11-29 20:30", 12, teacher=KUZNETSOVA, lesson=("M-3", "Гоголь"))
    panel.collect(school)
    return school


# (teacher id, name, lessons, met, days, all lessons, too short, without library,
#  display ms, library ms, hidden ms, on the roster), worked out from the comments above.
LYCEUM = [
    (
        "0001", "Иванова Мария Петровна", 3, True, ("2026-11-23", "2026-11-24", "2026-11-25"),
        5, 1, 1, int((12 + 31.5 + 15 + 15 + 8) * MIN), (12 + 18 + 15 + 8) * MIN, 6 * MIN, True,
    ),
    ("0002", "Петров Олег Ильич", 0, False, (), 0, 0, 0, 0, 0, 0, True),
    (
        "0003", "Сидорова Анна Львовна", 3, True, ("2026-11-23", "2026-11-29"),
        3, 0, 0, 52 * MIN, 52 * MIN, 0, True,
    ),
    ("c-x", "root", 1, False, ("2026-11-24",), 1, 0, 0, 11 * MIN, 11 * MIN, 0, False),
]  # fmt: skip
SCHOOL_5 = [
    (
        "0001", "Кузнецова Елена Викторовна", 3, True,
        ("2026-11-23", "2026-11-24", "2026-11-29"), 3, 0, 0, 32 * MIN, 32 * MIN, 0, True,
    ),
]  # fmt: skip
FIELDS = (
    "teacher_id",
    "teacher_name",
    "lessons",
    "met",
    "days",
    "sessions",
    "too_short",
    "without_source",
    "display_ms",
    "library_ms",
    "hidden_ms",
    "on_roster",
)


@pytest.fixture
def schools(tmp_path: Path) -> Iterator[tuple[SchoolDb, SchoolDb]]:
    lyceum, school_5 = novosibirsk(tmp_path / "lyceum.sqlite"), moscow(tmp_path / "s5.sqlite")
    yield lyceum, school_5
    lyceum.close()
    school_5.close()


def test_the_compliance_tables_are_the_ones_worked_out_by_hand(
    schools: tuple[SchoolDb, SchoolDb],
) -> None:
    lyceum, school_5 = schools
    for db, expected in ((lyceum, LYCEUM), (school_5, SCHOOL_5)):
        rows = compliance(db, week=WEEK)
        assert [tuple(getattr(r, f) for f in FIELDS) for r in rows] == expected
    # Иванова's two computers are one teacher in the usage report too.
    teachers = usage_report(lyceum, start=MON, end=SUN, by="teacher")
    ivanova = [r for r in teachers if r.label == "Иванова Мария Петровна"]
    assert [(r.key, r.lessons) for r in ivanova] == [("0001", 5)]


def test_the_same_week_through_csv_json_and_html(schools: tuple[SchoolDb, SchoolDb]) -> None:
    lyceum, _ = schools
    rows = compliance(lyceum, week=WEEK)
    data = json.loads(format_json(rows))
    assert [tuple(d[f] if f != "days" else tuple(d[f]) for f in FIELDS) for d in data] == LYCEUM
    text = format_csv(rows)
    table = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff")), delimiter=";"))
    assert [
        (r["teacher_name"], r["lessons"], r["met"], r["days"], r["on_roster"]) for r in table
    ] == [
        ("Иванова Мария Петровна", "3", "true", "2026-11-23 2026-11-24 2026-11-25", "true"),
        ("Петров Олег Ильич", "0", "false", "", "true"),
        ("Сидорова Анна Львовна", "3", "true", "2026-11-23 2026-11-29", "true"),
        ("root", "1", "false", "2026-11-24", "false"),
    ]
    assert table[0]["library_share"] == "0,65"  # 53 of 81.5 minutes
    page = report_html(lyceum, start=MON, end=SUN, lang="ru", now=NOW)
    start = page.index("Выполнение нормы, неделя 2026-W48")
    body = page[page.index("<tbody>", start) : page.index("</tbody>", start)]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in body.split("<tr>")[1:]]
    assert [c[:5] for c in cells] == [
        ["Иванова Мария Петровна", "3", "да", "11-23, 11-24, 11-25", "5"],
        ["Петров Олег Ильич", "0", "нет", "", "0"],
        ["Сидорова Анна Львовна", "3", "да", "11-23, 11-29", "3"],
        ["root (нет в списке учителей)", "1", "нет", "11-24", "1"],
    ]
    assert "Часовой пояс: Asia/Novosibirsk" in page
    assert "Выполнили норму: 2 из 4 учителей" in page


def test_the_command_line_gives_the_same_table_in_each_schools_time_zone(
    schools: tuple[SchoolDb, SchoolDb], tmp_path: Path
) -> None:
    for name, expected in (("lyceum.sqlite", LYCEUM), ("s5.sqlite", SCHOOL_5)):
        result = CliRunner().invoke(
            cli,
            ["usage", "compliance", "--db", str(tmp_path / name), "--week", WEEK,
             "--format", "json"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        assert [(d["teacher_id"], d["lessons"], d["met"]) for d in data] == [
            (e[0], e[2], e[3]) for e in expected
        ]
    # The Moscow school's Sunday-night lesson is next week's in Novosibirsk time.
    result = CliRunner().invoke(
        cli,
        ["usage", "compliance", "--db", str(tmp_path / "s5.sqlite"), "--week", WEEK,
         "--tz", "Asia/Novosibirsk", "--format", "json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert (row["lessons"], row["days"]) == (2, ["2026-11-23", "2026-11-24"])
