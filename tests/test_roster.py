"""Teachers as people: the school's roster, controllers bound to it, reports by person.

Records name a controller (``teacher_id``: a teacher's computer) and the name typed on
it. The roster (controller/roster.py, school database schema 4) says who the people
are; reports count people. Times are UTC; the school is in Moscow; week 2026-W48 runs
from Monday 23 to Sunday 29 November 2026.
"""

from __future__ import annotations

import getpass
import json
import os
import pty
import select
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from controller.cli import cli
from controller.home import Home
from controller.reports import compliance, format_table, usage_report
from controller.roster import (
    MAX_ROSTER_FILE_BYTES,
    MAX_ROSTER_ROWS,
    MAX_TEACHER_ID_CHARS,
    MAX_TEACHER_NAME_CHARS,
    Roster,
    RosterEntry,
    RosterError,
    RosterFileError,
    RowProblem,
    name_key,
    parse_roster_csv,
)
from controller.schooldb import SCHEMA_VERSION, SchoolDb
from tests.kiosks import KioskThread
from tests.test_schooldb import Panel

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
WEEK = "2026-W48"
MON, SUN = datetime(2026, 11, 23).date(), datetime(2026, 11, 29).date()
IVANOVA = "Иванова Мария Петровна"
ROSTER = [
    RosterEntry("0042", IVANOVA),
    RosterEntry("0107", "Смирнов Пётр Ильич"),
    RosterEntry("0200", "Кузнецова Ольга Юрьевна"),
]


def lessons(panel: Panel, day: int, device: str, name: str, count: int = 1) -> None:
    """``count`` 12-minute library lessons on 2026-11-``day`` from controller ``device``."""
    for n in range(count):
        panel.play(
            f"2026-11-{day:02d} {6 + 2 * n:02d}:00",
            12,
            teacher=(device, name),
            lesson=(f"L-{device}-{day}-{n}", "Урок"),
        )


@pytest.fixture
def school(tmp_path: Path) -> Iterator[SchoolDb]:
    """Иванова gives 2 lessons from her laptop and 1 from the school's computer, typing
    her name slightly differently there; Смирнов 1 lesson typed with initials only; an
    unknown «root» 1 lesson. Кузнецова never used a panel."""
    db = SchoolDb(tmp_path / "school.sqlite")
    panel = Panel("k-7", "Каб. 7")
    lessons(panel, 23, "c-laptop", IVANOVA, 2)
    lessons(panel, 24, "c-school", "  иванова мария петровна ")  # case, ё/е, spaces
    lessons(panel, 25, "c-smirnov", "Смирнов П. И.")
    lessons(panel, 26, "c-root", "root")
    panel.collect(db)
    yield db
    db.close()


def table(db: SchoolDb) -> list[tuple[str, str, int, bool, bool]]:
    """The week's compliance table: (id, name, lessons, goal met, on the roster)."""
    return [
        (r.teacher_id, r.teacher_name, r.lessons, r.met, r.on_roster)
        for r in compliance(db, week=WEEK)
    ]


# --------------------------------------------------------------------------- reports by person


def test_without_a_roster_each_computer_is_its_own_row_not_on_the_roster(school: SchoolDb) -> None:
    assert table(school) == [
        ("c-root", "root", 1, False, False),
        ("c-laptop", IVANOVA, 2, False, False),
        ("c-school", "  иванова мария петровна ", 1, False, False),
        ("c-smirnov", "Смирнов П. И.", 1, False, False),
    ]


def test_the_same_name_from_two_computers_is_one_teacher(school: SchoolDb) -> None:
    Roster(school).import_entries(ROSTER, "admin", NOW)
    # Written by hand: Иванова's 2 + 1 lessons are one row and meet the goal of 3;
    # Кузнецова never used a panel: 0; Смирнов typed initials: not bound (strict),
    # so his computer is its own row, as is «root».
    assert table(school) == [
        ("0042", IVANOVA, 3, True, True),
        ("0200", "Кузнецова Ольга Юрьевна", 0, False, True),
        ("0107", "Смирнов Пётр Ильич", 0, False, True),
        ("c-root", "root", 1, False, False),
        ("c-smirnov", "Смирнов П. И.", 1, False, False),
    ]
    by_teacher = usage_report(school, start=MON, end=SUN, by="teacher")
    assert [(r.key, r.label, r.lessons) for r in by_teacher] == [
        ("0042", IVANOVA, 3),
        ("device:c-root", "root", 1),
        ("device:c-smirnov", "Смирнов П. И.", 1),
        ("0107", "Смирнов Пётр Ильич", 0),
        ("0200", "Кузнецова Ольга Юрьевна", 0),
    ]
    assert by_teacher[-1].first_start_utc == ""
    text = format_table(by_teacher, "ru", tz=school.tz_name)
    assert "root (нет в списке учителей)" in text
    assert "Кузнецова Ольга Юрьевна" in text
    compliance_text = format_table(compliance(school, week=WEEK), "ru")
    assert "Смирнов П. И. (нет в списке учителей)" in compliance_text
    assert f"{IVANOVA} (нет" not in compliance_text


def test_bind_and_merge_change_the_compliance_table(school: SchoolDb) -> None:
    roster = Roster(school)
    roster.import_entries([*ROSTER, RosterEntry("0300", "Иванова М. П.")], "admin", NOW)
    roster.bind("c-smirnov", "0107", "Завуч (c-admin)", NOW)
    roster.bind("c-root", "0300", "Завуч (c-admin)", NOW)
    assert table(school) == [
        ("0300", "Иванова М. П.", 1, False, True),
        ("0042", IVANOVA, 3, True, True),
        ("0200", "Кузнецова Ольга Юрьевна", 0, False, True),
        ("0107", "Смирнов Пётр Ильич", 1, False, True),
    ]
    # 0300 is Иванова entered twice: one person, 4 lessons.
    roster.merge("0042", "0300", "Завуч (c-admin)", NOW)
    assert table(school) == [
        ("0042", IVANOVA, 4, True, True),
        ("0200", "Кузнецова Ольга Юрьевна", 0, False, True),
        ("0107", "Смирнов Пётр Ильич", 1, False, True),
    ]
    # An admin's binding wins over the name typed; unbind makes the computer nobody's.
    roster.bind("c-school", "0200", "Завуч (c-admin)", NOW)
    roster.unbind("c-laptop", "Завуч (c-admin)", NOW)
    assert table(school) == [
        ("0042", IVANOVA, 1, False, True),
        ("0200", "Кузнецова Ольга Юрьевна", 1, False, True),
        ("0107", "Смирнов Пётр Ильич", 1, False, True),
        ("c-laptop", IVANOVA, 2, False, False),
    ]
    assert [(a, d, tid) for a, d, tid, *_ in roster.log()] == [
        ("import", "", ""),
        ("bind", "c-smirnov", "0107"),
        ("bind", "c-root", "0300"),
        ("merge", "0300", "0042"),
        ("bind", "c-school", "0200"),
        ("unbind", "c-laptop", ""),
    ]
    assert all(who in ("admin", "Завуч (c-admin)") for *_, who, _ in roster.log())
    with pytest.raises(RosterError):
        roster.bind("c-unknown", "0042", "x", NOW)
    with pytest.raises(RosterError):
        roster.bind("c-root", "9999", "x", NOW)
    with pytest.raises(RosterError):
        roster.merge("0042", "0300", "x", NOW)  # one person already


def test_binding_by_name_is_strict_and_listed(school: SchoolDb) -> None:
    roster = Roster(school)
    roster.import_entries(
        [*ROSTER, RosterEntry("0500", "Смирнов П. И."), RosterEntry("0501", "Смирнов П. И.")],
        "admin",
        NOW,
    )
    devices = {d.device_id: d for d in roster.devices()}
    assert (devices["c-laptop"].how, devices["c-laptop"].teacher_id) == ("name", "0042")
    assert (devices["c-school"].how, devices["c-school"].teacher_id) == ("name", "0042")
    # A name two roster entries carry binds to neither.
    assert (devices["c-smirnov"].how, devices["c-smirnov"].teacher_id) == ("none", None)
    assert devices["c-root"].how == "none"
    assert name_key(" Пётр  ИЛЬИЧ ") == "петр ильич"
    assert name_key("П. И.") != name_key("Пётр Ильич")


def test_reimport_renames_by_id_and_keeps_teachers_who_left(school: SchoolDb) -> None:
    roster = Roster(school)
    roster.import_entries(ROSTER, "admin", NOW)
    result = roster.import_entries(
        [RosterEntry("0042", "Петрова Мария Петровна"), RosterEntry("0107", "Смирнов Пётр Ильич")],
        "admin",
        NOW,
    )
    assert (result.added, result.renamed, result.unchanged, result.left) == (0, 1, 1, 1)
    teachers = {t.teacher_id: t for t in roster.teachers()}
    assert teachers["0042"].name == "Петрова Мария Петровна"
    assert teachers["0200"].left_at == "2026-11-30T09:00:00.000Z"
    # Her computers stay hers (bound by the name she typed then? no: the name changed),
    # so they are bound by an admin; the teacher who left is not listed with 0.
    roster.bind("c-laptop", "0042", "admin", NOW)
    rows = {r.teacher_id: r.lessons for r in compliance(school, week=WEEK)}
    assert rows["0042"] == 2
    assert "0200" not in rows
    back = roster.import_entries(ROSTER, "admin", NOW)
    assert back.back == 1
    assert {r.teacher_id for r in compliance(school, week=WEEK)} >= {"0200"}


def test_schema_5_is_upgraded_to_the_roster(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    SchoolDb(path).close()
    conn = sqlite3.connect(path)
    for table_name in ("teachers", "teacher_bindings", "roster_log", "device_names"):
        conn.execute(f"DROP TABLE {table_name}")
    conn.execute("DROP INDEX plays_report")
    conn.execute("ALTER TABLE plays DROP COLUMN school_id")
    conn.execute(
        "CREATE INDEX plays_report ON plays (day, kiosk_id, teacher_id, lesson_id, start_ms, "
        "duration_ms, room, teacher_name, content_hash, content_title, content_source, "
        "iso_week, library, hidden)"
    )
    conn.execute("PRAGMA user_version = 5")
    conn.commit()
    conn.close()
    db = SchoolDb(path)
    assert Roster(db).teachers() == []
    Roster(db).import_entries(ROSTER[:1], "admin", NOW)
    db.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 7
    conn.close()


# --------------------------------------------------------------------------- the CSV file


def test_cp1251_with_semicolons_and_a_heading_line() -> None:
    text = (
        "Код;ФИО;Телефон\r\n"
        "0042;Иванова Мария Петровна;+7 900 000-00-00\r\n"
        "0107;Смирнов Пётр Ильич;\r\n"
    )
    entries = parse_roster_csv(text.encode("cp1251"))
    # Only the id and the name are read: the phone is not.
    assert [(e.teacher_id, e.name, e.line) for e in entries] == [
        ("0042", IVANOVA, 2),
        ("0107", "Смирнов Пётр Ильич", 3),
    ]


def test_utf8_bom_with_commas_and_no_heading_line() -> None:
    text = '\ufeff0042,Иванова Мария Петровна\n\n00107,"Смирнов, Пётр Ильич"\n'
    entries = parse_roster_csv(text.encode("utf-8"))
    assert [(e.teacher_id, e.name) for e in entries] == [
        ("0042", IVANOVA),
        ("00107", "Смирнов, Пётр Ильич"),  # leading zeros kept: ids are text
    ]


def test_names_in_three_columns() -> None:
    text = "Табельный номер;Фамилия;Имя;Отчество\n7;Иванова;Мария;Петровна\n"
    assert parse_roster_csv(text.encode("utf-8")) == [RosterEntry("7", IVANOVA, 2)]


def test_bad_rows_are_refused_whole_with_their_lines(school: SchoolDb) -> None:
    text = "id;name\n0042;Иванова Мария Петровна\n;Без кода\n0107;\n0042;Другая\nодин\n"
    with pytest.raises(RosterFileError) as refused:
        parse_roster_csv(text.encode("utf-8"))
    assert refused.value.problems == (
        RowProblem(3, "no_id"),
        RowProblem(4, "no_name"),
        RowProblem(5, "duplicate_id", 2),
        RowProblem(6, "one_column"),
    )
    for bad in (b"", b"\xff\xfe0\x000\x00", "0042;Иванова\x1b[2J\n".encode()):
        with pytest.raises(RosterFileError):
            parse_roster_csv(bad)


def test_the_limits_at_both_ends() -> None:
    at_most = "1;" + "Я" * MAX_TEACHER_NAME_CHARS
    assert parse_roster_csv(at_most.encode())[0].name == "Я" * MAX_TEACHER_NAME_CHARS
    with pytest.raises(RosterFileError) as long_name:
        parse_roster_csv((at_most + "Я").encode())
    assert long_name.value.problems == (RowProblem(1, "name_too_long"),)
    long_id = "1" * MAX_TEACHER_ID_CHARS
    assert parse_roster_csv(f"{long_id};Имя".encode())[0].teacher_id == long_id
    with pytest.raises(RosterFileError) as too_long_id:
        parse_roster_csv(f"{long_id}1;Имя".encode())
    assert too_long_id.value.problems == (RowProblem(1, "id_too_long"),)

    rows = "".join(f"{n};Учитель {n}\n" for n in range(MAX_ROSTER_ROWS))
    assert len(parse_roster_csv(rows.encode())) == MAX_ROSTER_ROWS
    with pytest.raises(RosterFileError) as too_many:
        parse_roster_csv((rows + "x;Ещё один\n").encode())
    assert too_many.value.reason == "too_many_rows"

    padding = "1;Ivanova\n" + "\n" * (MAX_ROSTER_FILE_BYTES - 10)
    assert len(padding.encode()) == MAX_ROSTER_FILE_BYTES
    assert len(parse_roster_csv(padding.encode())) == 1
    with pytest.raises(RosterFileError) as too_large:
        parse_roster_csv((padding + " ").encode())
    assert too_large.value.reason == "too_large"
    # A quote never closed makes the rest of the file one field: refused, named.
    with pytest.raises(RosterFileError) as unclosed:
        parse_roster_csv(('1;"Иванова\n' + "x" * 200_000).encode())
    assert unclosed.value.reason == "bad_csv"


# --------------------------------------------------------------------------- commands


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_roster_commands(school: SchoolDb, tmp_path: Path) -> None:
    db = school.path
    empty = run("usage", "roster", "--db", db)
    assert "Список учителей пуст" in empty.output
    listed = run("usage", "teachers", "--db", db)
    assert "не привязан" in listed.output
    assert "classcast usage teachers bind" in listed.output

    good = tmp_path / "учителя.csv"
    good.write_bytes(
        "Код;ФИО\r\n0042;Иванова Мария Петровна\r\n0107;Смирнов Пётр Ильич\r\n".encode("cp1251")
    )
    imported = run("usage", "roster", "import", str(good), "--db", db)
    assert imported.exit_code == 0, imported.output
    assert "добавлено 2" in imported.output
    assert "Иванова Мария Петровна" in run("usage", "roster", "--db", db).output

    bad = tmp_path / "плохой.csv"
    bad.write_text("0300;Новый Учитель\n;Без кода\n", encoding="utf-8")
    refused = run("usage", "roster", "import", str(bad), "--db", db)
    assert refused.exit_code == 1
    assert "строка 2: нет идентификатора учителя" in refused.output
    assert "Ничего не загружено" in refused.output
    assert "Новый Учитель" not in run("usage", "roster", "--db", db).output

    bound = run("usage", "teachers", "bind", "c-smirnov", "0107", "--db", db)
    assert bound.exit_code == 0, bound.output
    assert "привязан к учителю Смирнов Пётр Ильич (0107)" in bound.output
    devices = run("usage", "teachers", "--db", db).output
    assert "Иванова Мария Петровна (0042), по имени" in devices
    assert "Смирнов Пётр Ильич (0107), привязал Петрова Анна Сергеевна (" in devices
    unknown = run("usage", "teachers", "bind", "c-nobody", "0107", "--db", db)
    assert unknown.exit_code == 1
    assert "Компьютера c-nobody нет в журналах использования" in unknown.output
    merged = run("usage", "teachers", "merge", "0042", "0107", "--db", db)
    assert merged.exit_code == 0, merged.output
    assert "тот же человек, что Иванова" in run("usage", "roster", "--db", db).output
    unbound = run("usage", "teachers", "unbind", "c-root", "--db", db)
    assert "ни к кому не привязан" in unbound.output
    report = run("usage", "compliance", "--week", WEEK, "--db", db, "--format", "json")
    rows = json.loads(report.output)
    assert [(r["teacher_id"], r["lessons"], r["on_roster"]) for r in rows] == [
        ("0042", 4, True),
        ("c-root", 1, False),
    ]


# --------------------------------------------------------------------------- the teacher's name


def test_the_login_name_is_never_taken_as_the_teachers_name(tmp_path: Path) -> None:
    home = Home(tmp_path / "fresh")
    assert home.teacher_name() is None
    identity = home.identity()
    assert identity.name == ""
    assert identity.name != getpass.getuser()
    # A name an older version saved from the login name is not taken either.
    (home.root / "identity.json").write_text(
        json.dumps({"controller_id": "c-1", "name": getpass.getuser()}), encoding="utf-8"
    )
    assert home.teacher_name() is None
    assert home.identity().name == ""
    assert home.identity(IVANOVA).name == IVANOVA
    assert Home(home.root).teacher_name() == IVANOVA


def test_pairing_without_a_name_says_to_pass_teacher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLASSCAST_TEACHER")
    result = CliRunner().invoke(cli, ["pair", "127.0.0.1:9", "--pin", "123456"])
    assert result.exit_code == 2
    assert "не сохранено имя учителя" in result.output
    assert "--teacher" in result.output
    assert "Traceback" not in result.output
    assert Home(tmp_path / "home").teacher_name() is None


def _read_until(fd: int, wanted: str, timeout_s: float = 20.0) -> str:
    """What the terminal ``fd`` shows until ``wanted`` appears (or the program ends)."""
    seen = b""
    deadline = time.monotonic() + timeout_s
    while wanted.encode() not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the program ended: the terminal is closed
                break
            if not chunk:
                break
            seen += chunk
    return seen.decode("utf-8", errors="replace")


@pytest.mark.slow
def test_first_pairing_at_a_terminal_asks_for_the_name_and_saves_it(
    tmp_path: Path, kiosk: KioskThread
) -> None:
    """``classcast pair`` in a real terminal (a pty), with no name saved: it asks for the
    full name before the PIN and saves it: the next connections carry it."""
    home = tmp_path / "home"
    main, child = pty.openpty()
    env = {**os.environ, "CLASSCAST_HOME": str(home), "PYTHONPATH": os.getcwd()}
    del env["CLASSCAST_TEACHER"]
    process = subprocess.Popen(
        [sys.executable, "-c", "from controller.cli import main; main()", "pair", kiosk.address],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
        close_fds=True,
    )
    os.close(child)
    try:
        assert "как в школьном списке учителей" in _read_until(main, ":")
        os.write(main, "Иванова Мария Петровна\r".encode())
        assert "PIN" in _read_until(main, "PIN")
        os.write(main, f"{kiosk.pin()}\r".encode())
        assert "Сопряжено" in _read_until(main, "Сопряжено")
        assert process.wait(20) == 0
    finally:
        process.kill()
        process.wait()
        os.close(main)
    assert Home(home).teacher_name() == IVANOVA
    assert Home(home).identity().name == IVANOVA
