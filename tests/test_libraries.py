"""Library content recognised by the school database from what the panel showed.

The rule (docs/admin.md 3.1): a record is library content when its ``content_source`` is
an http(s) address on a recognised library's site or under one; for a web page that is
the page the panel opened, for a file the source the lesson declared.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import cli
from controller.libraries import (
    DEFAULT_LIBRARIES,
    MAX_HOSTS_PER_LIBRARY,
    MAX_LIBRARIES,
    MAX_LIBRARY_ID_CHARS,
    LibraryMatcher,
    checked_list,
    libraries_from_json,
    libraries_to_json,
    library,
)
from controller.reports import compliance
from controller.schooldb import SCHEMA_VERSION, SchoolDb
from media.lesson import LessonItem, make_lesson
from tests.kiosks import KioskThread, teacher
from tests.test_cast_e2e import all_records
from tests.test_schooldb import Panel, downgrade_to_3

LIB = "https://lib.myschool.edu.ru/content/5a3b"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "school.sqlite"


@pytest.mark.parametrize(
    ("source", "found"),
    [
        (LIB, "myschool"),
        ("https://myschool.edu.ru/", "myschool"),
        ("HTTPS://WWW.MySchool.EDU.RU/a", "myschool"),
        ("http://resh.edu.ru/subject/lesson/1/", "resh"),
        ("https://myschool.edu.ru.evil.example/", ""),
        ("https://evilmyschool.edu.ru/", ""),
        ("https://myschool.edu.ru@evil.example/", ""),  # the host is evil.example
        ("https://evil.example/?u=https://myschool.edu.ru/", ""),
        ("ftp://myschool.edu.ru/a.pdf", ""),
        ("javascript://myschool.edu.ru/%0aalert(1)", ""),
        ("myschool.edu.ru/a", ""),  # no scheme: not an address
        ("https://[::1/", ""),  # not parseable
        ("https://example.org/quiz", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_only_an_address_on_a_library_site_is_library_content(
    source: str | None, found: str
) -> None:
    assert LibraryMatcher(DEFAULT_LIBRARIES).library_of(source) == found


def test_the_libraries_setting_is_checked_and_bounded_at_both_ends() -> None:
    assert library("uchi", ["Uchi.RU", "uchi.ru"]).hosts == ("uchi.ru",)
    assert library("a" * MAX_LIBRARY_ID_CHARS, ["a.ru"]).id == "a" * MAX_LIBRARY_ID_CHARS
    for bad_id in ("a" * (MAX_LIBRARY_ID_CHARS + 1), "Учи", "", "-x", "a b"):
        with pytest.raises(ValueError, match="library id"):
            library(bad_id, ["a.ru"])
    hosts = [f"h{i}.ru" for i in range(MAX_HOSTS_PER_LIBRARY)]
    assert len(library("x", hosts).hosts) == MAX_HOSTS_PER_LIBRARY
    for bad_hosts in ([], [*hosts, "one-more.ru"]):
        with pytest.raises(ValueError, match="hosts"):
            library("x", bad_hosts)
    with pytest.raises(ValueError, match="host"):
        library("x", ["https://a.ru/path"])
    many = [library(f"l{i}", [f"l{i}.ru"]) for i in range(MAX_LIBRARIES)]
    assert len(checked_list(many)) == MAX_LIBRARIES
    with pytest.raises(ValueError, match="over"):
        checked_list([*many, library("extra", ["extra.ru"])])
    with pytest.raises(ValueError, match="same id"):
        checked_list([library("x", ["a.ru"]), library("x", ["b.ru"])])
    assert libraries_from_json(libraries_to_json(many)) == tuple(many)
    for damaged in ("{", "{}", '[{"hosts": []}]', '[{"id": "x", "hosts": "a.ru"}]'):
        with pytest.raises(ValueError, match=r"JSON|list|id|hosts"):
            libraries_from_json(damaged)


# --------------------------------------------------------------------------- the school database


def test_each_record_says_which_library_its_content_came_from(db_path: Path) -> None:
    panel = Panel()
    panel.play("2026-11-23 08:00", 5, source=LIB)
    panel.play("2026-11-23 08:05", 5, source="https://resh.edu.ru/subject/lesson/7")
    panel.play("2026-11-23 08:10", 5, source="https://example.org/quiz", kind="web")
    panel.play("2026-11-23 08:15", 5, source=None, kind="text")
    school = SchoolDb(db_path)
    try:
        panel.collect(school)
        rows = school.db.execute("SELECT seq, library FROM plays ORDER BY seq").fetchall()
        assert rows == [(1, "myschool"), (2, "resh"), (3, ""), (4, "")]
        assert school.verify() == []
    finally:
        school.close()


def test_a_district_setting_re_marks_every_record_and_survives_reopening(db_path: Path) -> None:
    panel = Panel()
    panel.play("2026-11-23 08:00", 12, source="https://uchi.ru/lesson/5", kind="web")
    panel.play("2026-11-23 08:12", 3, source="https://resh.edu.ru/x", kind="web")
    school = SchoolDb(db_path)
    panel.collect(school)
    assert school.set_libraries([*DEFAULT_LIBRARIES, library("uchi", ["uchi.ru"])]) == 1
    assert [lib.id for lib in school.libraries] == ["myschool", "resh", "uchi"]
    school.close()
    school = SchoolDb(db_path)
    try:
        assert school.libraries_chosen
        rows = school.db.execute("SELECT library FROM plays ORDER BY seq").fetchall()
        assert rows == [("uchi",), ("resh",)]
        # Records collected later are marked by the setting too.
        panel.play("2026-11-23 09:00", 1, source="https://www.uchi.ru/b", kind="web")
        panel.collect(school)
        assert school.db.execute("SELECT library FROM plays WHERE seq = 3").fetchone() == ("uchi",)
        assert school.verify() == []
        assert school.set_libraries(None) == 2
        assert not school.libraries_chosen
        assert school.libraries == DEFAULT_LIBRARIES
    finally:
        school.close()


def test_an_edited_library_mark_is_found_by_verify(db_path: Path) -> None:
    panel = Panel()
    panel.play("2026-11-23 08:00", 12, source="https://example.org/quiz", kind="web")
    school = SchoolDb(db_path)
    try:
        panel.collect(school)
        school.db.execute("UPDATE plays SET library = 'myschool'")
        problems = school.verify()
        assert [(p.seq, p.kind) for p in problems] == [(1, "edited")]
        assert "library" in problems[0].message
    finally:
        school.close()


def test_a_schema_3_file_is_upgraded_and_its_records_marked(db_path: Path) -> None:
    panel = Panel()
    panel.play("2026-11-23 08:00", 12, source=LIB)
    panel.play("2026-11-23 08:12", 12, source="https://example.org/quiz", kind="web")
    school = SchoolDb(db_path)
    panel.collect(school)
    school.close()
    conn = sqlite3.connect(db_path)
    downgrade_to_3(conn)
    conn.commit()
    conn.close()
    school = SchoolDb(db_path)
    try:
        assert school.db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        rows = school.db.execute("SELECT library FROM plays ORDER BY seq").fetchall()
        assert rows == [("myschool",), ("",)]
        plan = " ".join(
            str(r)
            for r in school.db.execute(
                "EXPLAIN QUERY PLAN SELECT library FROM plays "
                "INDEXED BY plays_report WHERE day = '2026-11-23'"
            )
        )
        assert "COVERING INDEX plays_report" in plan
        assert school.verify() == []
    finally:
        school.close()


def test_a_text_slide_and_a_page_from_any_site_is_not_a_library_lesson(db_path: Path) -> None:
    """The finding: a text slide plus https://example.org/quiz counted as library content."""
    panel = Panel()
    quiz, teacher_id = "https://example.org/quiz", ("t-1", "Анна Петровна")
    for day in ("23", "24", "25"):
        panel.play(f"2026-11-{day} 08:00", 5, source=None, kind="text", teacher=teacher_id)
        panel.play(f"2026-11-{day} 08:05", 10, source=quiz, kind="web", teacher=teacher_id)
    panel.play("2026-11-26 08:00", 12, source=LIB, kind="web", teacher=teacher_id)
    school = SchoolDb(db_path)
    try:
        panel.collect(school)
        (row,) = compliance(school, week="2026-W48")
        assert (row.lessons, row.met, row.sessions, row.without_source) == (1, False, 4, 3)
        (anything,) = compliance(school, week="2026-W48", require_source=False)
        assert (anything.lessons, anything.met) == (4, True)
    finally:
        school.close()


# --------------------------------------------------------------------------- the panel


async def test_the_panel_logs_the_page_it_opened_not_a_declared_source(
    kiosk: KioskThread,
) -> None:
    """A web item declaring a library source but opening another site is not library content."""
    lesson = make_lesson(
        "Викторина",
        [
            LessonItem(
                kind="web",
                title="Викторина",
                url="https://example.org/quiz",
                source_url="https://lib.myschool.edu.ru/content/1",
            ),
            LessonItem(kind="text", title="Итог", text="Итог", source_url=LIB),
        ],
    )
    async with await teacher(kiosk) as client:
        await client.cast(lesson)
        await client.control("next")
        await client.control("stop")
    records = await all_records(kiosk)
    assert [(r.kind, r.content_source) for r in records] == [
        ("web", "https://example.org/quiz"),
        ("text", LIB),
    ]
    matcher = LibraryMatcher(DEFAULT_LIBRARIES)
    assert [matcher.library_of(r.content_source) for r in records] == ["", "myschool"]


# --------------------------------------------------------------------------- the command line


def test_classcast_usage_libraries_lists_adds_removes_and_resets(tmp_path: Path) -> None:
    db = str(tmp_path / "school.sqlite")
    panel = Panel()
    panel.play("2026-11-23 08:00", 12, source="https://uchi.ru/a", kind="web")
    school = SchoolDb(db)
    panel.collect(school)
    school.close()

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, ["usage", "libraries", *args, "--db", db])
        return result.exit_code, result.output

    code, out = run()
    assert code == 0
    assert "«Моя школа» (ЦОК)" in out
    assert "myschool.edu.ru" in out
    assert "Это список по умолчанию" in out
    code, out = run("add", "uchi", "uchi.ru")
    assert code == 0
    assert "uchi.ru" in out
    assert "Записей, у которых изменилась библиотека: 1." in out
    code, out = run("add", "Учи", "uchi.ru")
    assert code == 1
    assert "Код библиотеки — короткое латинское имя" in out
    assert "Traceback" not in out
    code, out = run("add", "x", "https://x.ru/path")
    assert code == 1
    assert "без https://" in out
    code, out = run("remove", "nope")
    assert (code, "Библиотеки nope нет") == (
        1,
        out.split(":")[1].strip()[: len("Библиотеки nope нет")],
    )
    code, out = run("remove", "uchi")
    assert code == 0
    assert "Записей, у которых изменилась библиотека: 1." in out
    code, out = run("reset")
    assert code == 0
    assert "Это список по умолчанию" in out
