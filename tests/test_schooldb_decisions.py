"""Open collection problems and an admin's decisions on them, on real SQLite files.

A record that does not continue a panel's chain is held: collection stops at it, and
it is listed with its panel, number and cause. An admin accepts it (stored, counted)
or quarantines it (stored, left out of reports); the chain goes on from it, the
decision is recorded with who and when, and ``verify`` no longer calls it a break.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.schooldb import (
    QUARANTINED_BY_ADMIN,
    SCHEMA_VERSION,
    Decision,
    KeyChangedError,
    NoSuchProblemError,
    SchoolDb,
)
from protocol.messages import USAGE_RECORD_FIELDS, usage_record
from tests.test_schooldb import Panel, downgrade_to_3, stored_seqs

NOW = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "school.sqlite"


@pytest.fixture
def db(db_path: Path) -> Iterator[SchoolDb]:
    school = SchoolDb(db_path)
    yield school
    school.close()


def edited_at(seq: int, count: int = 5) -> tuple[Panel, Panel]:
    """A panel with ``count`` records, and the same panel sending record ``seq`` edited."""
    panel = Panel(room="Каб. 7")
    panel.many(count)
    records = [*panel.records]
    records[seq - 1] = dataclasses.replace(records[seq - 1], duration_ms=3_600_000)
    tampered = Panel(panel.kiosk_id, panel.room)
    tampered.key, tampered.records = panel.key, records
    return panel, tampered


def test_the_record_collection_stops_at_is_held_and_listed(db: SchoolDb) -> None:
    _, tampered = edited_at(3)
    for _ in range(2):  # every collection stops at it again; it is listed once
        result = db.ingest(tampered.kiosk_id, tampered.batch(db.after_seq(tampered.kiosk_id)))
        assert result.refused is not None
    assert stored_seqs(db, tampered.kiosk_id) == [1, 2]  # the good records before it
    [held] = db.problems()
    assert (held.kiosk_id, held.room, held.seq, held.cause) == ("k-101", "Каб. 7", 3, "edited")


def test_the_panels_real_log_resolves_a_problem_by_itself(db: SchoolDb) -> None:
    panel, tampered = edited_at(3)
    db.ingest(tampered.kiosk_id, tampered.batch())
    assert len(db.problems()) == 1
    db.ingest(panel.kiosk_id, panel.batch(after_seq=2))
    assert db.problems() == []
    assert stored_seqs(db, panel.kiosk_id) == [1, 2, 3, 4, 5]


def test_an_accepted_record_is_stored_counted_and_the_chain_goes_on(db: SchoolDb) -> None:
    _, tampered = edited_at(3)
    db.ingest(tampered.kiosk_id, tampered.batch())
    decision = db.decide(tampered.kiosk_id, 3, "accept", "Завуч", NOW)
    assert decision == Decision(
        "k-101", "Каб. 7", 3, "accept", "edited", "Завуч", "2026-11-30T09:15:00.000Z"
    )
    assert db.problems() == []
    assert db.after_seq(tampered.kiosk_id) == 3
    result = db.ingest(tampered.kiosk_id, tampered.batch(after_seq=3))
    assert (result.added, result.refused) == (2, None)
    assert stored_seqs(db, tampered.kiosk_id) == [1, 2, 3, 4, 5]
    row = db.db.execute("SELECT day, invalid, duration_ms FROM plays WHERE seq = 3").fetchone()
    assert row == ("2026-11-23", None, 3_600_000)  # as the panel sent it, in reports
    assert db.verify() == []
    assert db.decisions() == [decision]


def test_a_quarantined_record_is_kept_out_of_reports_and_the_chain_goes_on(
    db: SchoolDb,
) -> None:
    _, tampered = edited_at(2)
    db.ingest(tampered.kiosk_id, tampered.batch())
    db.decide(tampered.kiosk_id, 2, "quarantine", "Администратор", NOW)
    assert db.ingest(tampered.kiosk_id, tampered.batch(after_seq=2)).added == 3
    row = db.db.execute("SELECT day, invalid FROM plays WHERE seq = 2").fetchone()
    assert row == ("", QUARANTINED_BY_ADMIN)
    assert db.verify() == []
    [decision] = db.decisions()
    assert (decision.action, decision.who, decision.seq) == ("quarantine", "Администратор", 2)


def test_a_decided_record_edited_afterwards_is_a_break_again(db_path: Path) -> None:
    _, tampered = edited_at(3)
    school = SchoolDb(db_path)
    school.ingest(tampered.kiosk_id, tampered.batch())
    school.decide(tampered.kiosk_id, 3, "quarantine", "Завуч", NOW)
    school.close()
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE plays SET day = '2026-11-23', invalid = NULL WHERE seq = 3")
    conn.commit()
    conn.close()
    school = SchoolDb(db_path)
    try:
        assert [(p.seq, p.kind) for p in school.verify()] == [(3, "edited")]
    finally:
        school.close()


def test_deciding_on_a_record_that_is_not_held_is_refused(db: SchoolDb) -> None:
    panel, tampered = edited_at(3)
    db.ingest(tampered.kiosk_id, tampered.batch())
    for kiosk_id, seq in ((panel.kiosk_id, 2), (panel.kiosk_id, 4), ("k-other", 3)):
        with pytest.raises(NoSuchProblemError):
            db.decide(kiosk_id, seq, "accept", "Завуч", NOW)
    assert stored_seqs(db, panel.kiosk_id) == [1, 2]
    assert db.decisions() == []


def test_a_schema_2_file_is_upgraded(db_path: Path) -> None:
    SchoolDb(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("DROP TABLE held")
    conn.execute("DROP TABLE decisions")
    conn.execute("DROP TABLE retired_keys")
    downgrade_to_3(conn)
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    school = SchoolDb(db_path)
    try:
        assert school.db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert school.problems() == []
        assert school.decisions() == []
    finally:
        school.close()


def test_another_panels_record_is_not_held_for_a_decision(db: SchoolDb) -> None:
    panel, other = Panel("k-a"), Panel("k-b")
    panel.many(2)
    other.many(3)
    result = db.ingest("k-a", panel.batch(records=[*panel.records, other.records[2]]))
    assert result.refused is not None
    assert (result.refused.seq, result.refused.kind) == (3, "foreign")
    assert db.problems() == []
    with pytest.raises(NoSuchProblemError):
        db.decide("k-a", 3, "accept", "Завуч", NOW)


def reinstall(panel: Panel, after: int) -> None:
    """The panel's signing key is lost and made anew; its chain goes on with ``after``
    more records."""
    panel.key = Ed25519PrivateKey.generate()
    panel.many(after, start="2026-11-24 08:00")


def test_a_reinstalled_panels_new_key_is_pinned_once_the_old_one_is_forgotten(
    db: SchoolDb,
) -> None:
    panel = Panel(room="Каб. 7")
    panel.many(3)
    db.ingest(panel.kiosk_id, panel.batch())
    reinstall(panel, after=2)
    with pytest.raises(KeyChangedError):
        db.ingest(panel.kiosk_id, panel.batch(after_seq=3))
    decision = db.forget_key(panel.kiosk_id, "Завуч", NOW)
    assert (decision.seq, decision.action, decision.cause) == (3, "forget_key", None)
    result = db.ingest(panel.kiosk_id, panel.batch(after_seq=3))
    assert (result.added, result.refused) == (2, None)
    assert db.kiosk(panel.kiosk_id).public_key == panel.public_key  # type: ignore[union-attr]
    assert db.verify() == []  # 1–3 under the old key, 4–5 under the new one
    assert db.decisions() == [decision]


def test_records_signed_before_the_reinstall_but_collected_after_still_verify(
    db: SchoolDb,
) -> None:
    panel = Panel()
    panel.many(3)
    db.ingest(panel.kiosk_id, panel.batch(limit=2))  # record 3 is signed, not yet sent
    reinstall(panel, after=2)
    db.forget_key(panel.kiosk_id, "Завуч", NOW)
    assert db.ingest(panel.kiosk_id, panel.batch(after_seq=2)).added == 3
    assert db.verify() == []


def test_a_record_under_the_forgotten_key_edited_later_is_still_caught(db_path: Path) -> None:
    panel = Panel()
    panel.many(3)
    school = SchoolDb(db_path)
    school.ingest(panel.kiosk_id, panel.batch())
    reinstall(panel, after=2)
    school.forget_key(panel.kiosk_id, "Завуч", NOW)
    school.ingest(panel.kiosk_id, panel.batch(after_seq=3))
    school.close()
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE plays SET teacher_name = 'Кто-то' WHERE seq = 2")
    conn.commit()
    conn.close()
    school = SchoolDb(db_path)
    try:
        assert [(p.seq, p.kind) for p in school.verify()] == [(2, "edited")]
    finally:
        school.close()


def test_forgetting_the_key_of_a_panel_never_collected_is_refused(db: SchoolDb) -> None:
    with pytest.raises(NoSuchProblemError):
        db.forget_key("k-nobody", "Завуч", NOW)
    assert db.decisions() == []


def test_a_record_held_as_a_row_of_values_before_is_decided_by_name(db: SchoolDb) -> None:
    """Held records are stored by field name; one stored earlier as a bare row of values
    (every field in order, the last two added later missing) is still read right."""
    _, tampered = edited_at(3)
    db.ingest(tampered.kiosk_id, tampered.batch())
    culprit = tampered.records[2]
    stored = json.loads(db.db.execute("SELECT record FROM held").fetchone()[0])
    assert stored == dataclasses.asdict(culprit)
    old_row = [getattr(culprit, name) for name in USAGE_RECORD_FIELDS[:-2]]
    db.db.execute("UPDATE held SET record = ?", [json.dumps(old_row, ensure_ascii=False)])
    db.decide(tampered.kiosk_id, 3, "accept", "Завуч", NOW)
    assert stored_seqs(db, tampered.kiosk_id) == [1, 2, 3]
    assert db.verify() == []


def test_a_usage_record_is_built_by_field_name() -> None:
    _, tampered = edited_at(1)
    record = tampered.records[0]
    by_name = dataclasses.asdict(record)
    assert usage_record(by_name) == record
    assert usage_record(list(by_name.values())) == record
    unsealed = [*list(by_name.values())[: USAGE_RECORD_FIELDS.index("prev_hash")], None, None]
    assert usage_record(unsealed).prev_hash == ""  # NULL in a text field that defaults ""
    with pytest.raises(TypeError):
        usage_record([*by_name.values(), "one too many"])
    with pytest.raises(TypeError):
        usage_record({**by_name, "colour": "red"})


def test_a_whole_row_reads_nulls_in_text_fields_as_empty_and_keeps_other_nulls() -> None:
    _, tampered = edited_at(1)
    record = dataclasses.replace(tampered.records[0], content_hash=None, ended_at=None)
    row: list[object] = list(dataclasses.asdict(record).values())
    for name in ("prev_hash", "record_hash", "signature", "hidden", "school_id"):
        row[USAGE_RECORD_FIELDS.index(name)] = None
    assert len(row) == len(USAGE_RECORD_FIELDS)  # the positional way
    read = usage_record(row)
    assert (read.prev_hash, read.record_hash, read.signature, read.hidden, read.school_id) == (
        ("",) * 5
    )
    assert (read.content_hash, read.ended_at) == (None, None)
    assert dataclasses.replace(read, prev_hash=record.prev_hash) == dataclasses.replace(
        record, record_hash="", signature="", hidden="", school_id=""
    )
