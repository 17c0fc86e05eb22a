"""The district database: schools pushed into a real PostgreSQL, reports across schools.

The server is started by the test session itself (``postgres_server`` in conftest.py:
initdb and pg_ctl in a temporary directory); each test has a schema of its own. The two
schools are the hand-built week of ``tests/test_weekly_norm.py``: «Лицей № 2» in
Novosibirsk and «Школа № 5» in Moscow, with their rosters.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from controller.cli import cli
from controller.district import (
    DistrictDb,
    DistrictError,
    district_compliance,
    district_report,
    push,
)
from controller.report_html import district_html
from controller.schooldb import SchoolDb
from tests.kiosks import KioskThread
from tests.test_schooldb import Panel
from tests.test_weekly_norm import FIELDS, LYCEUM, MON, SCHOOL_5, SUN, WEEK, moscow, novosibirsk

MIN = 60_000


@pytest.fixture
def schools(tmp_path: Path) -> Iterator[tuple[SchoolDb, SchoolDb]]:
    lyceum, school_5 = novosibirsk(tmp_path / "lyceum.sqlite"), moscow(tmp_path / "s5.sqlite")
    yield lyceum, school_5
    lyceum.close()
    school_5.close()


@pytest.fixture
def district(district_url: str) -> Iterator[DistrictDb]:
    with DistrictDb(district_url) as db:
        yield db


def rows_of(db: DistrictDb) -> list[tuple[object, ...]]:
    """Every stored record's key and hash, in order: what a repeated push must not change."""
    return db.conn.execute(
        "SELECT school, kiosk_id, seq, record_hash, day FROM plays ORDER BY 1, 2, 3"
    ).fetchall()


def test_two_schools_in_two_time_zones_give_the_hand_built_weekly_norm(
    schools: tuple[SchoolDb, SchoolDb], district: DistrictDb
) -> None:
    lyceum, school_5 = schools
    assert push(lyceum, district, school_id="lyceum-2")[1].added == 17
    assert push(school_5, district, school_id="school-5")[1].added == 3
    rows = district_compliance(district, week=WEEK)
    expected = [("lyceum-2", *e) for e in LYCEUM] + [("school-5", *e) for e in SCHOOL_5]
    assert [(r.school, *(getattr(r, f) for f in FIELDS)) for r in rows] == expected
    # Each school's roster id 0001 is another person: never one row.
    assert [r.teacher_name for r in rows if r.teacher_id == "0001"] == [
        "Иванова Мария Петровна",
        "Кузнецова Елена Викторовна",
    ]
    # One school alone, and the library share per school.
    only = district_compliance(district, week=WEEK, school="school-5")
    assert [(r.school, r.teacher_id, r.lessons) for r in only] == [("school-5", "0001", 3)]
    per_school = district_report(district, start=MON, end=SUN, by="school")
    assert [(r.key, r.lessons, r.display_ms, r.library_share) for r in per_school] == [
        ("lyceum-2", 9, int(144.5 * MIN), 0.803),
        ("school-5", 3, 32 * MIN, 1.0),
    ]
    # Days are each school's own: the Moscow Sunday-night lesson is on Sunday.
    days = district_report(district, start=MON, end=SUN, by="day", school="school-5")
    assert [(r.key, r.lessons) for r in days] == [
        ("2026-11-23", 1),
        ("2026-11-24", 1),
        ("2026-11-29", 1),
    ]


def test_a_push_repeated_stores_nothing_new(
    schools: tuple[SchoolDb, SchoolDb], district: DistrictDb
) -> None:
    lyceum, _ = schools
    push(lyceum, district, school_id="lyceum-2")
    before = rows_of(district)
    school_id, again = push(lyceum, district, school_id="lyceum-2")
    assert (school_id, again.added, again.failed) == ("lyceum-2", 0, [])
    assert rows_of(district) == before
    assert len(before) == 17


def test_an_interrupted_push_goes_on_where_it_stopped(tmp_path: Path, district: DistrictDb) -> None:
    panel = Panel("k-1", "Каб. 12", school_id="school-5")
    panel.many(25)
    school = SchoolDb(tmp_path / "s.sqlite")
    panel.collect(school)
    # Cut off after two batches of 4 records each.
    _, first = push(school, district, batch_size=4, max_batches=2)
    assert first.added == 8
    assert [p.kind for p in first.panels[0].problems] == ["pull_limit"]
    assert district.record_count() == 8
    # A record already stored comes again with the next batch (the district's chain end
    # was lost): stored once.
    district.conn.execute("UPDATE kiosks SET last_seq = 6, last_hash = %s", [
        panel.records[5].record_hash
    ])  # fmt: skip
    _, rest = push(school, district, batch_size=4)
    assert (rest.added, rest.panels[0].duplicates, rest.failed) == (17, 2, [])
    assert district.record_count() == 25
    assert [r[2] for r in rows_of(district)] == list(range(1, 26))
    school.close()


def test_a_school_file_edited_after_collection_is_refused_at_the_record(
    tmp_path: Path, district_url: str
) -> None:
    panel = Panel("k-7", "Каб. 7", school_id="school-5")
    panel.many(6)
    path = tmp_path / "s.sqlite"
    school = SchoolDb(path)
    panel.collect(school)
    school.close()
    conn = sqlite3.connect(path)  # an admin "corrects" a lesson's length by hand
    conn.execute("UPDATE plays SET duration_ms = duration_ms * 3 WHERE seq = 4")
    conn.commit()
    conn.close()

    result = CliRunner().invoke(
        cli, ["usage", "push", "--db", str(path), "--to", district_url, "--json"]
    )
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert (data["school"], data["added"], data["failed"]) == ("school-5", 3, 1)
    [problem] = data["panels"][0]["problems"]
    assert (problem["kind"], problem["seq"], problem["cause"], problem["not_stored"]) == (
        "refused",
        4,
        "edited",
        3,
    )
    result = CliRunner().invoke(cli, ["usage", "push", "--db", str(path), "--to", district_url])
    assert result.exit_code == 1
    assert "Каб. 7: запись №4 не сохранена" in result.output
    with DistrictDb(district_url) as district:
        assert district.record_count() == 3


def test_a_record_of_another_school_is_refused(tmp_path: Path, district: DistrictDb) -> None:
    panel = Panel("k-1", "Каб. 12", school_id="school-5")
    panel.many(2)
    panel.school_id = "school-7"  # the panel was moved to another school's settings
    panel.many(2, start="2026-11-24 08:00")
    school = SchoolDb(tmp_path / "s.sqlite")
    panel.collect(school)
    _, result = push(school, district, school_id="school-5")
    [problem] = result.panels[0].problems
    assert (problem.kind, problem.seq, problem.cause, problem.not_stored) == (
        "refused",
        3,
        "foreign",
        2,
    )
    assert district.record_count() == 2
    with pytest.raises(ValueError, match="several school ids"):
        push(school, district)
    school.close()


def test_two_schools_rooms_of_one_name_never_merge(
    tmp_path: Path, district: DistrictDb, district_url: str
) -> None:
    for school_id in ("school-5", "lyceum-2"):
        panel = Panel(f"k-{school_id}", "Каб. 12", school_id=school_id)
        panel.play("2026-11-23 08:00", 20)
        panel.play("2026-11-24 08:00", 20, lesson=("L-2", "Клетка"))
        school = SchoolDb(tmp_path / f"{school_id}.sqlite")
        panel.collect(school)
        push(school, district)
        school.close()
    rooms = district_report(district, start=MON, end=SUN, by="room")
    assert [(r.school, r.label, r.lessons) for r in rooms] == [
        ("lyceum-2", "Каб. 12", 2),
        ("school-5", "Каб. 12", 2),
    ]
    result = CliRunner().invoke(
        cli,
        ["usage", "report", "--db", district_url, "--week", WEEK, "--by", "room"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "Каб. 12" in line]
    assert [line.split()[0] for line in lines] == ["lyceum-2", "school-5"]


def test_the_command_line_reports_the_district_in_every_format(
    schools: tuple[SchoolDb, SchoolDb], district_url: str, tmp_path: Path
) -> None:
    for name, school_id in (("lyceum.sqlite", "lyceum-2"), ("s5.sqlite", "school-5")):
        result = CliRunner().invoke(
            cli,
            ["usage", "push", "--db", str(tmp_path / name), "--to", district_url,
             "--school", school_id],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        cli,
        ["usage", "compliance", "--db", district_url, "--week", WEEK, "--format", "json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [(d["school"], d["teacher_id"], d["lessons"], d["met"]) for d in data] == [
        ("lyceum-2", e[0], e[2], e[3]) for e in LYCEUM
    ] + [("school-5", e[0], e[2], e[3]) for e in SCHOOL_5]
    result = CliRunner().invoke(
        cli, ["usage", "compliance", "--db", district_url, "--week", WEEK, "--format", "csv"]
    )
    assert result.output.splitlines()[0].endswith(";school")
    table = CliRunner().invoke(cli, ["usage", "compliance", "--db", district_url, "--week", WEEK])
    assert "Школа" in table.output.splitlines()[1]  # the «School» column comes first
    page = tmp_path / "district.html"
    result = CliRunner().invoke(
        cli,
        ["usage", "report", "--db", district_url, "--week", WEEK, "--format", "html",
         "-o", str(page)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = page.read_text(encoding="utf-8")
    assert "Выполнили норму: 3 из 5 учителей" in text
    # Unknown school: refused with the schools the district has.
    result = CliRunner().invoke(
        cli, ["usage", "compliance", "--db", district_url, "--school", "school-9"]
    )
    assert result.exit_code == 2
    assert "lyceum-2, school-5" in result.output


def test_the_district_page_is_made_from_the_rows(
    schools: tuple[SchoolDb, SchoolDb], district: DistrictDb
) -> None:
    lyceum, school_5 = schools
    push(lyceum, district, school_id="lyceum-2")
    push(school_5, district, school_id="school-5")
    page = district_html(
        district_report(district, start=MON, end=SUN, by="school"),
        [(WEEK, district_compliance(district, week=WEEK))],
        start=MON,
        end=SUN,
        lang="ru",
    )
    assert "lyceum-2" in page
    assert "school-5" in page
    assert page.count("<tr>") == 2 + 2 + 5  # two headings, two schools, five teachers


@pytest.mark.slow
def test_a_large_school_collects_straight_into_the_district(
    tmp_path: Path, district_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_usage_collect import pair_admin, run, show

    monkeypatch.setattr("controller.cli.Ctx.discover_all", lambda self, wait_s=1.5: [])
    target = ["usage", "collect", "--db", district_url]
    with KioskThread(tmp_path / "kiosk", school_id="school-5") as kiosk:
        pair_admin(kiosk)
        show(kiosk, "1", "2", "3")
        refused = run(*target)
        assert refused.exit_code == 2
        assert "--school" in refused.output
        first = run(*target, "--school", "school-5", "--tz", "Asia/Omsk")
        assert first.exit_code == 0, first.output
        assert "Каб. 12: новых записей — 3" in first.output
        again = run(*target, "--school", "school-5")
        assert "Каб. 12: новых записей — 0" in again.output
    with DistrictDb(district_url) as district:
        assert district.record_count("school-5") == 3
        [school] = district.schools()
        assert (school.school_id, school.tz, school.panels) == ("school-5", "Asia/Omsk", 1)
        signed = district.conn.execute("SELECT DISTINCT school_id FROM plays").fetchall()
        assert signed == [("school-5",)]


def test_a_database_of_another_program_is_refused(district_url: str) -> None:
    with psycopg.connect(district_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id int)")
    with pytest.raises(DistrictError, match="not a ClassCast district database"):
        DistrictDb(district_url)


def test_weekly_partitions_hold_the_weeks(
    schools: tuple[SchoolDb, SchoolDb], district: DistrictDb
) -> None:
    lyceum, _ = schools
    push(lyceum, district, school_id="lyceum-2")
    parts = district.conn.execute(
        "SELECT c.relname, count(p.*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "LEFT JOIN plays p ON p.tableoid = c.oid "
        "WHERE i.inhparent = 'plays'::regclass GROUP BY 1 ORDER BY 1"
    ).fetchall()
    # Novosibirsk's Monday 00:30 lesson is the next week's.
    assert parts == [("plays_2026_w48", 16), ("plays_2026_w49", 1), ("plays_quarantined", 0)]
    plan = "\n".join(
        r[0]
        for r in district.conn.execute(
            "EXPLAIN SELECT kiosk_id FROM plays WHERE school = 'lyceum-2' "
            "AND day BETWEEN '2026-11-23' AND '2026-11-29'"
        )
    )
    assert "plays_2026_w49" not in plan, plan
    assert "plays_quarantined" not in plan, plan
    # The reports' queries read one school's rows of the week through the partition's
    # one index (school first): no other school's rows, no other week's.
    from controller.district import _PG_FROM, _SQLITE_FROM
    from controller.reports import COMPLIANCE_QUERY, usage_query

    district.conn.execute("SET enable_seqscan = off")
    district.conn.execute("SET enable_bitmapscan = off")
    for sql in (COMPLIANCE_QUERY, usage_query("content"), usage_query("room")):
        query = _SQLITE_FROM.sub(_PG_FROM, sql)
        params = {"school": "lyceum-2", "first_day": "2026-11-23", "last_day": "2026-11-29"}
        plan = "\n".join(r[0] for r in district.conn.execute("EXPLAIN " + query, params))
        assert "Index Scan using plays_2026_w48_school_kiosk_id_seq_day_key" in plan, plan
        assert "plays_2026_w49" not in plan, plan
    assert date(2026, 11, 23).isocalendar()[1] == 48


def test_a_reinstalled_panels_forgotten_key_travels_with_its_records(
    tmp_path: Path, district: DistrictDb
) -> None:
    from datetime import UTC, datetime

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    panel = Panel("k-1", "Каб. 12", school_id="school-5")
    panel.many(3)
    school = SchoolDb(tmp_path / "s.sqlite")
    panel.collect(school)
    old_key = panel.public_key
    # The panel is reinstalled: a new signing key; the school's admin forgets the old one.
    school.forget_key("k-1", "Завуч", datetime(2026, 11, 24, tzinfo=UTC))
    panel.key = Ed25519PrivateKey.generate()
    panel.many(2, start="2026-11-24 08:00")
    panel.collect(school)
    assert school.verify() == []
    _, result = push(school, district)
    assert (result.added, result.failed) == (5, [])
    retired = district.conn.execute("SELECT public_key, up_to_seq FROM retired_keys").fetchall()
    assert retired == [(old_key, 3)]
    assert district.school("school-5").kiosk("k-1") is not None
    pinned = district.conn.execute("SELECT public_key, last_seq FROM kiosks").fetchall()
    assert pinned == [(panel.public_key, 5)]
    school.close()


def test_the_command_line_refuses_what_does_not_fit_the_district(
    tmp_path: Path, district_url: str
) -> None:
    school = SchoolDb(tmp_path / "s.sqlite")
    panel = Panel("k-1", "Каб. 12")  # no school id set on the panel
    panel.many(2)
    panel.collect(school)
    school.close()
    db = str(tmp_path / "s.sqlite")
    result = CliRunner().invoke(cli, ["usage", "push", "--db", db, "--to", district_url])
    assert result.exit_code == 2
    assert "--school ID" in result.output
    result = CliRunner().invoke(cli, ["usage", "push", "--db", db, "--to", "district.sqlite"])
    assert result.exit_code == 2
    assert "postgresql://" in result.output
    result = CliRunner().invoke(
        cli, ["usage", "push", "--db", db, "--to", district_url, "--school", "Школа 5"]
    )
    assert result.exit_code == 2
    assert "не идентификатор школы" in result.output
    result = CliRunner().invoke(
        cli, ["usage", "compliance", "--db", district_url, "--tz", "Asia/Omsk"]
    )
    assert result.exit_code == 2
    assert "в её собственном часовом поясе" in result.output
    result = CliRunner().invoke(
        cli, ["usage", "push", "--db", db, "--to", "postgresql://nobody@127.0.0.1:1/none"]
    )
    assert result.exit_code == 1
    assert "Районную базу postgresql://nobody@127.0.0.1:1/none нельзя использовать" in (
        result.output
    )
    result = CliRunner().invoke(
        cli, ["usage", "push", "--db", db, "--to", district_url, "--school", "school-5"]
    )
    assert result.exit_code == 0, result.output
    assert "Школа school-5: новых записей в районной базе — 2." in result.output


def test_a_school_that_changes_its_time_zone_is_recounted_in_the_district(
    schools: tuple[SchoolDb, SchoolDb], district: DistrictDb
) -> None:
    from controller.reports import compliance

    lyceum, _ = schools
    push(lyceum, district, school_id="lyceum-2")
    lyceum.set_timezone("Europe/Moscow")
    push(lyceum, district, school_id="lyceum-2")
    assert district.school("lyceum-2").tz_name == "Europe/Moscow"
    expected = [(r.teacher_id, r.lessons, r.days) for r in compliance(lyceum, week=WEEK)]
    got = district_compliance(district, week=WEEK, school="lyceum-2")
    assert [(r.teacher_id, r.lessons, r.days) for r in got] == expected
    # Иванова's Monday-00:30 Novosibirsk lesson is Sunday evening in Moscow: this week.
    assert district.conn.execute(
        "SELECT count(*) FROM plays_2026_w49 WHERE school = 'lyceum-2'"
    ).fetchone() == (0,)
    assert district.record_count("lyceum-2") == 17


_PUSH_CHILD = """
import sys
from controller.district import DistrictDb, push
from controller.schooldb import SchoolDb

def stored(panel):
    print("stored", panel.last_seq, flush=True)
    sys.stdin.readline()  # the test lets it go on, or kills it here

push(SchoolDb(sys.argv[1]), DistrictDb(sys.argv[2]), batch_size=4, progress=stored)
print("done", flush=True)
"""


@pytest.mark.slow
def test_a_push_killed_midway_goes_on_where_it_stopped(tmp_path: Path, district_url: str) -> None:
    import os
    import signal
    import subprocess
    import sys

    from tests.processes import stop_process

    panel = Panel("k-1", "Каб. 12", school_id="school-5")
    panel.many(25)
    path = tmp_path / "s.sqlite"
    school = SchoolDb(path)
    panel.collect(school)
    child = subprocess.Popen(
        [sys.executable, "-c", _PUSH_CHILD, str(path), district_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    try:
        assert child.stdin is not None
        assert child.stdout is not None
        for expected in ("stored 4", "stored 8", "stored 12"):
            assert child.stdout.readline().strip() == expected
            if expected != "stored 12":
                child.stdin.write("\n")
                child.stdin.flush()
        child.send_signal(signal.SIGKILL)  # the power goes off at the admin's computer
        child.wait(10)
    finally:
        stop_process(child)
    with DistrictDb(district_url) as district:
        assert district.record_count() == 12
        _, rest = push(school, district, batch_size=4)
        assert (rest.added, rest.panels[0].duplicates, rest.failed) == (13, 0, [])
        assert [r[2] for r in rows_of(district)] == list(range(1, 26))
    school.close()


def test_a_district_database_of_schema_1_is_upgraded_and_keeps_its_records(
    schools: tuple[SchoolDb, SchoolDb], district_url: str
) -> None:
    lyceum, _ = schools
    with DistrictDb(district_url) as db:
        push(lyceum, db, school_id="lyceum-2")
        before = rows_of(db)
        # What schema 1 was: the uniqueness led by the panel, a covering report index, ids
        # in the server's collation.
        with db.conn.transaction():
            db.conn.execute("ALTER TABLE plays DROP CONSTRAINT plays_school_kiosk_id_seq_day_key")
            for column in ("school", "kiosk_id", "lesson_id", "teacher_id"):
                db.conn.execute(
                    f'ALTER TABLE plays ALTER COLUMN {column} TYPE text COLLATE "default"'.encode()
                )
            db.conn.execute(
                "ALTER TABLE plays ADD UNIQUE NULLS NOT DISTINCT (kiosk_id, school, seq, day)"
            )
            db.conn.execute(
                "CREATE INDEX plays_report ON plays (school, kiosk_id, teacher_id, lesson_id, "
                "start_ms) INCLUDE (day, duration_ms)"
            )
            db.conn.execute("UPDATE classcast_district SET value = '1' WHERE key = 'schema'")
    with DistrictDb(district_url) as db:
        indexes = db.conn.execute(
            "SELECT indexname FROM pg_indexes "
            "WHERE tablename = 'plays' AND schemaname = current_schema()"
        ).fetchall()
        assert indexes == [("plays_school_kiosk_id_seq_day_key",)]
        collations = db.conn.execute(
            "SELECT column_name, collation_name FROM information_schema.columns "
            "WHERE table_name = 'plays' AND table_schema = current_schema() "
            "AND collation_name IS NOT NULL ORDER BY 1"
        ).fetchall()
        assert collations == [(c, "C") for c in ("kiosk_id", "lesson_id", "school", "teacher_id")]
        schema = db.conn.execute("SELECT value FROM classcast_district WHERE key = 'schema'")
        assert schema.fetchone() == ("2",)
        assert rows_of(db) == before
        _, again = push(lyceum, db, school_id="lyceum-2")
        assert (again.added, again.failed) == (0, [])
        assert rows_of(db) == before
