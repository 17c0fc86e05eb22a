"""Each panel knows its school: a signed ``school_id`` on every usage record.

The id is part of the record's canonical form only when set, so every record signed
before it existed keeps its hash; the kiosk's log and the school database upgrade their
files and store it per record.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.reports import COMPLIANCE_QUERY, usage_query
from controller.schooldb import SCHEMA_VERSION, SchoolDb
from kiosk.usage import SCHEMA_VERSION as LOG_SCHEMA_VERSION
from kiosk.usage import DisplayStart, UsageLog
from protocol.limits import MAX_SCHOOL_ID_CHARS
from protocol.messages import UsageBatch
from protocol.text import school_id_problem
from protocol.usage_chain import (
    GENESIS_HASH,
    canonical_bytes,
    load_public_key,
    public_key_text,
    record_hash,
    seal,
    verify_chain,
)
from tests.test_schooldb import Panel

START = DisplayStart("L-1", "Дроби", 0, "text", None, "Слайд", None, "c-1", "Анна")


def test_the_school_id_is_signed_and_left_out_when_empty() -> None:
    panel = Panel("k-12", "Каб. 12", school_id="school-5")
    record = panel.play("2026-11-23 08:00", 10)
    assert b'"school_id":"school-5"' in canonical_bytes(record)
    unset = dataclasses.replace(record, school_id="")
    assert b"school_id" not in canonical_bytes(unset)  # as records signed before it existed
    public = load_public_key(panel.public_key)
    assert verify_chain([record], public) == []
    # Passing one school's record off as another's, or as no school's, breaks its hash.
    for forged in (dataclasses.replace(record, school_id="school-7"), unset):
        assert [p.kind for p in verify_chain([forged], public)] == ["edited"]
    assert record_hash(seal(unset, GENESIS_HASH, panel.key)) != record.record_hash


def test_school_ids_are_checked_at_both_ends() -> None:
    assert school_id_problem("a") is None
    assert school_id_problem("x" * MAX_SCHOOL_ID_CHARS) is None
    assert school_id_problem("x" * (MAX_SCHOOL_ID_CHARS + 1)) is not None
    assert school_id_problem("") is not None
    assert school_id_problem("Школа") is not None


def test_a_kiosk_log_of_schema_3_is_upgraded_and_stamps_the_school(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite"
    key = Ed25519PrivateKey.generate()
    log = UsageLog(path, kiosk_id="k-1", room="Каб. 12", signing_key=key)
    log.close(log.open(START, wall_s=1.7e9, mono_s=1.0), wall_s=1.7e9 + 9, mono_s=10.0,
              reason="next")  # fmt: skip
    log.close_db()
    conn = sqlite3.connect(path)  # the file as version 3 wrote it
    conn.execute("ALTER TABLE plays DROP COLUMN school_id")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()

    log = UsageLog(path, kiosk_id="k-1", room="Каб. 12", school_id="school-5", signing_key=key)
    log.close(log.open(START, wall_s=1.7e9 + 9, mono_s=10.0), wall_s=1.7e9 + 20, mono_s=21.0,
              reason="stop")  # fmt: skip
    records = log.records_after(0, 10)
    log.close_db()
    assert [(r.seq, r.school_id) for r in records] == [(1, ""), (2, "school-5")]
    assert verify_chain(records, load_public_key(public_key_text(key))) == []
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone() == (LOG_SCHEMA_VERSION,)
    assert LOG_SCHEMA_VERSION == 4


def downgrade_to_6(conn: sqlite3.Connection) -> None:
    """Make a school database file look as schema version 6 left it (no ``school_id``)."""
    conn.execute("DROP INDEX plays_report")
    conn.execute("ALTER TABLE plays DROP COLUMN school_id")
    conn.execute(
        "CREATE INDEX plays_report ON plays (day, kiosk_id, teacher_id, lesson_id, start_ms, "
        "duration_ms, room, teacher_name, content_hash, content_title, content_source, "
        "iso_week, library, hidden)"
    )
    conn.execute("PRAGMA user_version = 6")


def test_a_school_database_of_schema_6_is_upgraded_and_stores_the_school(
    tmp_path: Path,
) -> None:
    path = tmp_path / "school.sqlite"
    panel = Panel("k-12", "Каб. 12")
    panel.play("2026-11-23 08:00", 10)  # logged before the panel had a school id
    school = SchoolDb(path)
    panel.collect(school)
    school.close()
    conn = sqlite3.connect(path)
    downgrade_to_6(conn)
    conn.commit()
    conn.close()

    school = SchoolDb(path)
    try:
        assert school.db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (7,)
        panel.school_id = "school-5"
        panel.play("2026-11-23 08:10", 10)
        batch = UsageBatch(1, panel.kiosk_id, panel.records[1:], 2, False, panel.public_key)
        result = school.ingest(panel.kiosk_id, batch)
        assert (result.added, result.refused) == (1, None)
        rows = school.db.execute("SELECT seq, school_id FROM plays ORDER BY seq").fetchall()
        assert rows == [(1, ""), (2, "school-5")]
        assert school.verify() == []
        params = {"first_day": "2000-01-01", "last_day": "2100-01-01"}
        for sql in (usage_query("content"), usage_query("school"), COMPLIANCE_QUERY):
            plan = " | ".join(
                str(r[3]) for r in school.db.execute("EXPLAIN QUERY PLAN " + sql, params)
            )
            assert "USING COVERING INDEX plays_report" in plan, plan
    finally:
        school.close()
