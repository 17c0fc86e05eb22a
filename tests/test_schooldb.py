"""Tests of the school's usage database (controller/schooldb.py) on real SQLite files.

:class:`Panel` is a small builder of signed usage records, as a kiosk seals them; the
report tests use it too.
"""

from __future__ import annotations

import dataclasses
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.schooldb import (
    DERIVED_COLUMNS,
    RECORD_COLUMNS,
    ChainError,
    KeyChangedError,
    SchoolDb,
    TamperError,
    _Calendar,
    _day_and_week,
    _epoch_ms,
    iso_utc_ms,
    week_days,
)
from kiosk.usage import UsageLog
from protocol.errors import ClassCastError, UsageLogError
from protocol.messages import EndReason, HiddenReason, ItemKind, UsageBatch, UsageRecord
from protocol.usage_chain import GENESIS_HASH, public_key_text, seal


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def downgrade_to_3(conn: sqlite3.Connection) -> None:
    """Make a new school database file look as schema version 3 left it (no libraries,
    no hidden time, no roster, no school id)."""
    for table_name in ("teachers", "teacher_bindings", "roster_log", "device_names"):
        conn.execute(f"DROP TABLE {table_name}")
    conn.execute("DROP INDEX plays_report")
    conn.execute("ALTER TABLE plays DROP COLUMN school_id")
    conn.execute("ALTER TABLE plays DROP COLUMN hidden")
    conn.execute("ALTER TABLE plays DROP COLUMN library")
    conn.execute(
        "CREATE INDEX plays_report ON plays (day, kiosk_id, teacher_id, lesson_id, start_ms, "
        "duration_ms, room, teacher_name, content_hash, content_title, content_source, iso_week)"
    )
    conn.execute("PRAGMA user_version = 3")


def at(text: str) -> datetime:
    """A UTC moment from ``"2026-11-23 08:30"`` (UTC)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Panel:
    """A kiosk that seals usage records with its own key, in seq order."""

    def __init__(self, kiosk_id: str = "k-101", room: str = "101", school_id: str = "") -> None:
        self.kiosk_id = kiosk_id
        self.room = room
        self.school_id = school_id
        self.key = Ed25519PrivateKey.generate()
        self.records: list[UsageRecord] = []

    @property
    def public_key(self) -> str:
        return public_key_text(self.key)

    def play(
        self,
        start: datetime | str,
        minutes: float = 5.0,
        *,
        teacher: tuple[str, str] = ("t-1", "Анна Петровна"),
        lesson: tuple[str, str] = ("L-1", "Фотосинтез"),
        content: tuple[str | None, str] = ("c-1", "Хлоропласт"),
        source: str | None = "https://lib.myschool.edu.ru/content/1",
        kind: ItemKind = "image",
        offset_ms: int = 0,
        index: int = 0,
        hidden: HiddenReason = "",
        end_reason: EndReason = "next",
    ) -> UsageRecord:
        """Seal one display interval starting at ``start`` (kiosk clock) lasting ``minutes``."""
        begin = at(start) if isinstance(start, str) else start
        duration_ms = round(minutes * 60_000)
        seq = len(self.records) + 1
        record = UsageRecord(
            uuid=f"{self.kiosk_id}-{seq:06d}",
            seq=seq,
            kiosk_id=self.kiosk_id,
            room=self.room,
            lesson_id=lesson[0],
            lesson_title=lesson[1],
            item_index=index,
            kind=kind,
            content_hash=content[0],
            content_title=content[1],
            content_source=source,
            teacher_id=teacher[0],
            teacher_name=teacher[1],
            started_at=iso(begin),
            ended_at=iso(begin + timedelta(milliseconds=duration_ms)),
            duration_ms=duration_ms,
            end_reason=end_reason,
            clock_offset_ms=offset_ms,
            hidden=hidden,
            school_id=self.school_id,
        )
        prev = self.records[-1].record_hash if self.records else GENESIS_HASH
        sealed = seal(record, prev, self.key)
        self.records.append(sealed)
        return sealed

    def many(self, n: int, start: str = "2026-11-23 08:00", minutes: float = 1.0) -> None:
        """Seal ``n`` back-to-back one-item intervals."""
        begin = at(start)
        for i in range(n):
            self.play(begin + timedelta(minutes=i * minutes), minutes, index=i)

    def batch(
        self, after_seq: int = 0, limit: int | None = None, records: list[UsageRecord] | None = None
    ) -> UsageBatch:
        """What the kiosk answers to ``usage_pull after_seq limit``."""
        chosen = [r for r in self.records if r.seq > after_seq] if records is None else records
        if limit is not None:
            chosen = chosen[:limit]
        last = chosen[-1].seq if chosen else after_seq
        return UsageBatch(
            re=1,
            kiosk_id=self.kiosk_id,
            records=chosen,
            last_seq=last,
            more=False,
            public_key=self.public_key,
        )

    def collect(self, db: SchoolDb, limit: int = 1000) -> int:
        """Pull everything new the way the controller does; returns records added."""
        added = 0
        while True:
            result = db.ingest(self.kiosk_id, self.batch(db.after_seq(self.kiosk_id), limit))
            added += result.added
            if result.added == 0:
                return added


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "school.db"


@pytest.fixture
def db(db_path: Path):
    school = SchoolDb(db_path)
    yield school
    school.close()


def stored_seqs(db: SchoolDb, kiosk_id: str) -> list[int]:
    return [
        int(r[0])
        for r in db.db.execute("SELECT seq FROM plays WHERE kiosk_id = ? ORDER BY seq", [kiosk_id])
    ]


# --------------------------------------------------------------------------- opening


def test_new_file_is_wal_and_reopens(db_path: Path) -> None:
    first = SchoolDb(db_path)
    assert first.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert first.tz_name == "Europe/Moscow"
    first.close()
    again = SchoolDb(db_path)
    assert again.kiosks() == []
    again.close()


def test_corrupt_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(UsageLogError, match=str(path)) as info:
        SchoolDb(path)
    assert isinstance(info.value, ClassCastError)


def test_foreign_sqlite_db_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(UsageLogError, match=r"not a ClassCast school database.*customers"):
        SchoolDb(path)


def test_kiosk_usage_log_is_not_a_school_db(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.db"
    UsageLog(path, kiosk_id="k", room="1").close_db()
    with pytest.raises(UsageLogError, match="not a ClassCast school database"):
        SchoolDb(path)


def test_other_schema_version_is_refused(db_path: Path) -> None:
    SchoolDb(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(UsageLogError, match="schema version 99"):
        SchoolDb(db_path)


def test_unknown_timezone_is_refused() -> None:
    with pytest.raises(UsageLogError, match="unknown timezone"):
        SchoolDb(None, tz="Mars/Olympus")


# --------------------------------------------------------------------------- ingest


def test_ingest_then_repeat_adds_nothing(db: SchoolDb) -> None:
    panel = Panel()
    panel.many(6)
    first = db.ingest(panel.kiosk_id, panel.batch(), room="101", school="Школа 5")
    assert (first.added, first.duplicates, first.last_seq) == (6, 0, 6)
    again = db.ingest(panel.kiosk_id, panel.batch())
    assert (again.added, again.duplicates, again.last_seq) == (0, 6, 6)
    assert stored_seqs(db, panel.kiosk_id) == [1, 2, 3, 4, 5, 6]
    info = db.kiosk(panel.kiosk_id)
    assert info is not None
    assert (info.room, info.school, info.last_seq) == ("101", "Школа 5", 6)
    assert info.last_hash == panel.records[-1].record_hash
    assert db.verify() == []


def test_interrupted_collection_loses_and_duplicates_nothing(db: SchoolDb) -> None:
    panel = Panel()
    panel.many(10)
    half = db.ingest(panel.kiosk_id, panel.batch(limit=5))
    assert (half.added, half.last_seq) == (5, 5)
    assert db.after_seq(panel.kiosk_id) == 5
    # The controller lost the reply and pulls everything again.
    full = db.ingest(panel.kiosk_id, panel.batch())
    assert (full.added, full.duplicates, full.last_seq) == (5, 5, 10)
    assert stored_seqs(db, panel.kiosk_id) == list(range(1, 11))
    assert db.verify() == []


def test_panel_offline_for_one_collection_is_collected_later(db: SchoolDb) -> None:
    a, b = Panel("k-a", "201"), Panel("k-b", "202")
    a.many(3)
    b.many(2)
    assert a.collect(db) == 3
    assert b.collect(db) == 2
    a.many(3, start="2026-11-24 08:00")
    b.many(4, start="2026-11-24 08:00")
    assert a.collect(db) == 3  # b is switched off this time
    b.many(1, start="2026-11-25 08:00")
    assert b.collect(db, limit=2) == 5  # collected the next day, in small batches
    assert stored_seqs(db, "k-a") == [1, 2, 3, 4, 5, 6]
    assert stored_seqs(db, "k-b") == [1, 2, 3, 4, 5, 6, 7]
    assert [k.kiosk_id for k in db.kiosks()] == ["k-a", "k-b"]
    assert db.verify() == []


def test_empty_batch_pins_the_key(db: SchoolDb) -> None:
    panel = Panel()
    assert db.ingest(panel.kiosk_id, panel.batch()).added == 0
    info = db.kiosk(panel.kiosk_id)
    assert info is not None
    assert info.public_key == panel.public_key
    assert db.after_seq(panel.kiosk_id) == 0
    assert db.after_seq("never-seen") == 0


def test_key_change_is_refused_and_nothing_stored(db: SchoolDb) -> None:
    panel = Panel()
    panel.many(2)
    panel.collect(db)
    impostor = Panel(panel.kiosk_id, panel.room)
    impostor.many(3)
    with pytest.raises(KeyChangedError, match=r"panel k-101 \(101\).*another key") as info:
        db.ingest(panel.kiosk_id, impostor.batch(after_seq=2))
    assert isinstance(info.value, TamperError)
    assert info.value.pinned == panel.public_key
    assert db.record_count() == 2


def test_missing_key_is_refused(db: SchoolDb) -> None:
    panel = Panel()
    panel.many(1)
    batch = dataclasses.replace(panel.batch(), public_key="")
    with pytest.raises(TamperError, match="no usable signing key"):
        db.ingest(panel.kiosk_id, batch)


def test_edited_record_in_batch_is_refused_naming_it_and_the_records_before_it_kept(
    db: SchoolDb,
) -> None:
    panel = Panel()
    panel.many(5)
    records = list(panel.records)
    records[2] = dataclasses.replace(records[2], duration_ms=3_600_000)
    result = db.ingest(panel.kiosk_id, panel.batch(records=records))
    assert result.refused is not None
    assert (result.refused.seq, result.refused.kind) == (3, "edited")
    assert (result.added, result.not_stored, result.last_seq) == (2, 3, 2)
    assert stored_seqs(db, panel.kiosk_id) == [1, 2]
    assert db.verify() == []
    # The panel's real log comes next time: the rest follows on from #2.
    assert db.ingest(panel.kiosk_id, panel.batch(after_seq=2)).added == 3
    assert db.verify() == []


def _bad_signature(record: UsageRecord) -> UsageRecord:
    """``record`` with its signature field damaged (still base64 of 64 bytes)."""
    flipped = "A" if record.signature[0] != "A" else "B"
    return dataclasses.replace(record, signature=flipped + record.signature[1:])


def test_a_bad_signature_on_the_batch_head_is_refused_and_the_records_before_kept(
    db: SchoolDb,
) -> None:
    # Only the last record's signature is checked when a batch is accepted: it must be.
    panel = Panel()
    panel.many(5)
    records = [*panel.records[:4], _bad_signature(panel.records[4])]
    result = db.ingest(panel.kiosk_id, panel.batch(records=records))
    assert result.refused is not None
    assert (result.refused.seq, result.refused.kind) == (5, "bad_signature")
    assert (result.added, result.not_stored, result.last_seq) == (4, 1, 4)
    assert stored_seqs(db, panel.kiosk_id) == [1, 2, 3, 4]
    assert [(h.seq, h.cause) for h in db.problems()] == [(5, "bad_signature")]
    assert db.verify() == []


def test_a_damaged_signature_inside_the_chain_is_stored_and_named_by_verify(
    db: SchoolDb,
) -> None:
    # The head's signature vouches for every record linked before it, so a record whose
    # signature field alone is damaged is still the panel's: it is stored, and verify,
    # which checks every signature, names it.
    panel = Panel()
    panel.many(5)
    records = list(panel.records)
    records[2] = _bad_signature(records[2])
    result = db.ingest(panel.kiosk_id, panel.batch(records=records))
    assert (result.added, result.refused) == (5, None)
    assert [(p.seq, p.kind) for p in db.verify()] == [(3, "bad_signature")]


def test_chain_break_across_collections_is_refused(db: SchoolDb) -> None:
    panel = Panel()
    panel.many(6)
    db.ingest(panel.kiosk_id, panel.batch(limit=3))
    result = db.ingest(panel.kiosk_id, panel.batch(records=panel.records[4:]))  # no #4
    assert result.refused is not None
    assert (result.refused.seq, result.refused.kind) == (5, "deleted")
    assert (result.added, result.not_stored) == (0, 2)
    assert db.after_seq(panel.kiosk_id) == 3


def test_foreign_records_are_refused(db: SchoolDb) -> None:
    panel, other = Panel("k-a"), Panel("k-b")
    panel.many(2)
    other.many(1)
    with pytest.raises(ChainError, match="panel k-b"):
        db.ingest("k-b", panel.batch())
    assert db.record_count() == 0
    mixed = panel.batch(records=[*panel.records, *other.records])
    result = db.ingest("k-a", mixed)
    assert result.refused is not None
    assert result.refused.kind == "foreign"
    assert (result.added, result.not_stored) == (2, 1)


def test_stored_seq_returning_as_another_record_is_refused(db: SchoolDb) -> None:
    panel = Panel()
    panel.many(3)
    panel.collect(db)
    reset = Panel(panel.kiosk_id)
    reset.key = panel.key  # the same key, but the log was wiped and restarted at seq 1
    reset.many(4, start="2026-12-01 08:00")
    for record in reset.records:
        object.__setattr__(record, "uuid", "new-" + record.uuid)
    result = db.ingest(panel.kiosk_id, reset.batch())
    assert [(p.seq, p.kind) for p in result.conflicts] == [(s, "inserted") for s in (1, 2, 3)]
    assert result.refused is not None
    assert (result.refused.seq, result.refused.kind) == (4, "edited")  # uuid changed above
    assert (result.added, result.duplicates) == (0, 0)
    assert db.record_count() == 3


def test_clock_offset_moves_a_record_to_the_previous_day(db: SchoolDb) -> None:
    panel = Panel()
    # The panel's clock is 2 minutes fast: it says 00:01 Moscow (21:01 UTC) on the 24th.
    record = panel.play("2026-11-23 21:01", 1, offset_ms=120_000)
    db.ingest(panel.kiosk_id, panel.batch())
    start_utc, start_ms, end_utc, day, week, library, invalid = db.derive(record)
    assert library == "myschool"
    assert invalid is None
    assert start_utc == "2026-11-23T20:59:00.000Z"
    assert end_utc == "2026-11-23T21:00:00.000Z"
    assert start_ms == int(at("2026-11-23 20:59").timestamp() * 1000)
    assert (day, week) == ("2026-11-23", "2026-W48")
    row = db.db.execute("SELECT start_utc, day, iso_week FROM plays").fetchone()
    assert row == ("2026-11-23T20:59:00.000Z", "2026-11-23", "2026-W48")


def test_set_timezone_recomputes_days(db_path: Path) -> None:
    panel = Panel()
    panel.play("2026-11-29 20:30", 5)  # Sunday 23:30 Moscow, Monday 01:30 in Yekaterinburg
    school = SchoolDb(db_path)
    panel.collect(school)
    assert school.db.execute("SELECT day, iso_week FROM plays").fetchone() == (
        "2026-11-29",
        "2026-W48",
    )
    school.close()
    school = SchoolDb(db_path, tz="Asia/Yekaterinburg")
    assert school.db.execute("SELECT day, iso_week FROM plays").fetchone() == (
        "2026-11-30",
        "2026-W49",
    )
    assert school.verify() == []
    school.close()
    assert SchoolDb(db_path).tz_name == "Asia/Yekaterinburg"


def test_helpers() -> None:
    assert iso_utc_ms(0) == "1970-01-01T00:00:00.000Z"
    assert week_days("2026-W48") == (datetime(2026, 11, 23).date(), datetime(2026, 11, 29).date())
    with pytest.raises(ValueError, match="ISO week"):
        week_days("2026-48")


# --------------------------------------------------------------------------- verify


@pytest.fixture
def collected(db_path: Path) -> tuple[Panel, Path]:
    """A database file holding 6 records of one panel, closed."""
    panel = Panel()
    panel.many(6)
    school = SchoolDb(db_path)
    panel.collect(school)
    school.close()
    return panel, db_path


def tamper(path: Path, *statements: str, params: tuple[object, ...] = ()) -> None:
    """Edit the file behind ClassCast's back, as an attacker with sqlite3 would."""
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement, params if "?" in statement else ())
    conn.commit()
    conn.close()


def verify(path: Path) -> list[tuple[int, str]]:
    school = SchoolDb(path)
    try:
        return [(p.seq, p.kind) for p in school.verify()]
    finally:
        school.close()


def insert_raw(path: Path, record: UsageRecord) -> None:
    school = SchoolDb(path)
    row = (*[getattr(record, c) for c in RECORD_COLUMNS], *school.derive(record))
    school.close()
    columns = RECORD_COLUMNS + DERIVED_COLUMNS
    tamper(
        path,
        f"INSERT INTO plays ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        params=row,
    )


def test_verify_intact(collected: tuple[Panel, Path]) -> None:
    assert verify(collected[1]) == []


def test_verify_finds_an_edited_field(collected: tuple[Panel, Path]) -> None:
    tamper(collected[1], "UPDATE plays SET duration_ms = duration_ms * 10 WHERE seq = 3")
    assert verify(collected[1]) == [(3, "edited")]


def test_verify_finds_an_edited_derived_column(collected: tuple[Panel, Path]) -> None:
    tamper(collected[1], "UPDATE plays SET day = '2026-11-20' WHERE seq = 4")
    school = SchoolDb(collected[1])
    problems = school.verify()
    school.close()
    assert [(p.seq, p.kind) for p in problems] == [(4, "edited")]
    assert "day" in problems[0].message


def test_verify_finds_an_edit_with_recomputed_hash(collected: tuple[Panel, Path]) -> None:
    panel, path = collected
    forged = dataclasses.replace(panel.records[2], duration_ms=3_600_000)
    resealed = seal(forged, forged.prev_hash, Ed25519PrivateKey.generate())
    tamper(
        path,
        "UPDATE plays SET duration_ms = ?, record_hash = ?, signature = ? WHERE seq = 3",
        params=(resealed.duration_ms, resealed.record_hash, resealed.signature),
    )
    assert verify(path) == [(3, "bad_signature")]


def test_verify_finds_a_deleted_row(collected: tuple[Panel, Path]) -> None:
    tamper(collected[1], "DELETE FROM plays WHERE seq = 3")
    assert verify(collected[1]) == [(3, "deleted")]


def test_verify_finds_deleted_rows_at_the_end(collected: tuple[Panel, Path]) -> None:
    tamper(collected[1], "DELETE FROM plays WHERE seq >= 5")
    school = SchoolDb(collected[1])
    problems = school.verify()
    school.close()
    assert [(p.seq, p.kind) for p in problems] == [(5, "deleted")]
    assert "5–6" in problems[0].message


def test_verify_finds_an_inserted_forged_row(collected: tuple[Panel, Path]) -> None:
    panel, path = collected
    attacker = Panel(panel.kiosk_id)
    attacker.records = list(panel.records)
    attacker.key = Ed25519PrivateKey.generate()
    forged = attacker.play("2026-11-23 09:00", 45)
    insert_raw(path, forged)
    assert verify(path) == [(7, "bad_signature"), (7, "inserted")]


def test_verify_finds_a_replaced_row(collected: tuple[Panel, Path]) -> None:
    panel, path = collected
    forged = seal(
        dataclasses.replace(panel.records[2], uuid="forged", teacher_name="Другой"),
        panel.records[1].record_hash,
        Ed25519PrivateKey.generate(),
    )
    tamper(path, "DELETE FROM plays WHERE seq = 3")
    insert_raw(path, forged)
    assert verify(path) == [(3, "bad_signature")]


def test_verify_finds_swapped_seqs(collected: tuple[Panel, Path]) -> None:
    tamper(
        collected[1],
        "UPDATE plays SET seq = -1 WHERE seq = 3",
        "UPDATE plays SET seq = 3 WHERE seq = 4",
        "UPDATE plays SET seq = 4 WHERE seq = -1",
    )
    school = SchoolDb(collected[1])
    problems = school.verify()
    school.close()
    assert [(p.seq, p.kind) for p in problems] == [(3, "reordered"), (4, "reordered")]
    assert "changed from 3 to 4" in problems[0].message


def test_verify_finds_a_changed_seq(collected: tuple[Panel, Path]) -> None:
    tamper(collected[1], "UPDATE plays SET seq = 100 WHERE seq = 3")
    school = SchoolDb(collected[1])
    problems = school.verify()
    school.close()
    assert [(p.seq, p.kind) for p in problems] == [(3, "reordered")]
    assert "from 3 to 100" in problems[0].message


def test_verify_finds_rows_stored_out_of_order(collected: tuple[Panel, Path]) -> None:
    panel, path = collected
    tamper(path, "DELETE FROM plays WHERE seq = 2")
    insert_raw(path, panel.records[1])  # put back, now after seq 6
    assert verify(path) == [(2, "reordered")]


def test_verify_finds_a_bad_signature(collected: tuple[Panel, Path]) -> None:
    panel, path = collected
    tamper(
        path,
        "UPDATE plays SET signature = ? WHERE seq = 5",
        params=(panel.records[4].signature[:-4] + "AAA=",),
    )
    assert verify(path) == [(5, "bad_signature")]


def test_verify_finds_rows_of_an_unknown_panel(collected: tuple[Panel, Path]) -> None:
    stranger = Panel("k-ghost")
    insert_raw(collected[1], stranger.play("2026-11-23 10:00", 5))
    assert verify(collected[1]) == [(1, "inserted")]


def test_verify_finds_a_damaged_key(collected: tuple[Panel, Path]) -> None:
    tamper(collected[1], "UPDATE kiosks SET public_key = 'garbage'")
    assert verify(collected[1]) == [(0, "edited")]


# --------------------------------------------------------------------------- derived columns


def _old_iso_utc_ms(ms: int) -> str:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_utc_texts_match_datetime_over_the_whole_range() -> None:
    low = -(datetime(1970, 1, 1, tzinfo=UTC) - datetime(2, 1, 1, tzinfo=UTC)) // timedelta(
        milliseconds=1
    )
    high = (datetime(9998, 12, 31, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        milliseconds=1
    )
    rng = random.Random(13)
    samples = [low, high, -1, 0, 1, 86_399_999, 86_400_000, 951_782_400_000 - 1]
    samples += [rng.randint(low, high) for _ in range(5000)]
    for ms in samples:
        text = iso_utc_ms(ms)
        assert text == _old_iso_utc_ms(ms), ms
        assert _epoch_ms(text) == ms
    assert _epoch_ms("2026-11-23T11:30:00.250+03:00") == _epoch_ms("2026-11-23T08:30:00.250Z")
    assert _epoch_ms("2026-11-23T08:30:00.2509") == _epoch_ms("2026-11-23T08:30:00.250Z")
    assert _epoch_ms("1969-12-31T23:59:59.9999Z") == -1


@pytest.mark.parametrize(
    ("zone", "year"),
    [
        ("Europe/Moscow", 2011),  # summer time for good (March)
        ("Europe/Moscow", 2014),  # back to UTC+3 (October)
        ("Australia/Lord_Howe", 2025),  # half-hour summer time
        ("Pacific/Chatham", 2025),  # UTC+12:45 / +13:45
        ("Pacific/Apia", 2011),  # skipped 30 December 2011
        ("America/St_Johns", 2026),  # UTC-3:30 with summer time
        ("Africa/Casablanca", 2026),  # summer time off during Ramadan
        ("Asia/Tehran", 2022),  # summer time changes at 20:30 UTC, in mid-hour
        ("Asia/Kolkata", 1942),  # +5:30 to +6:30 at 18:30 UTC, in mid-hour
    ],
)
def test_days_and_weeks_match_the_exact_computation_every_hour(zone: str, year: int) -> None:
    tz = ZoneInfo(zone)
    calendar = _Calendar(tz)
    first = int(datetime(year, 1, 1, tzinfo=UTC).timestamp()) * 1000 - 86_400_000
    hour = 3_600_000
    for start in range(first, first + 368 * 86_400_000, hour):
        for ms in (start, start + 1_799_999, start + hour - 1):
            assert calendar.day_and_week(ms) == _day_and_week(ms, tz), (zone, iso_utc_ms(ms))


def test_the_day_cache_starts_afresh_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("controller.schooldb.CALENDAR_CACHE_ENTRIES", 3)
    tz = ZoneInfo("Asia/Novosibirsk")
    calendar = _Calendar(tz)
    for day in range(10):
        ms = 1_795_000_000_000 + day * 86_400_000
        assert calendar.day_and_week(ms) == _day_and_week(ms, tz)
        assert len(calendar._offsets) <= 3
        assert len(calendar._days) <= 3


@pytest.mark.parametrize(
    ("started_at", "ended_at", "offset_ms", "start_utc", "end_utc"),
    [
        # The panels' own form, not corrected: stored as it came.
        (
            "2026-11-23T05:30:00.250Z",
            "2026-11-23T05:31:00.000Z",
            0,
            "2026-11-23T05:30:00.250Z",
            "2026-11-23T05:31:00.000Z",
        ),
        # Corrected by the panel's clock offset: written again.
        (
            "2026-11-23T05:30:00.250Z",
            "2026-11-23T05:31:00.000Z",
            1_500,
            "2026-11-23T05:29:58.750Z",
            "2026-11-23T05:30:58.500Z",
        ),
        # Another ISO 8601 form (an offset, no milliseconds): written in the one form.
        (
            "2026-11-23T08:30:00+03:00",
            None,
            0,
            "2026-11-23T05:30:00.000Z",
            None,
        ),
        (
            "2026-11-23T05:30:00Z",
            "2026-11-23T05:31:00.5Z",
            0,
            "2026-11-23T05:30:00.000Z",
            "2026-11-23T05:31:00.500Z",
        ),
    ],
)
def test_derived_utc_times_are_in_the_one_form_whatever_form_came(
    started_at: str, ended_at: str | None, offset_ms: int, start_utc: str, end_utc: str | None
) -> None:
    from controller.libraries import DEFAULT_LIBRARIES, LibraryMatcher
    from controller.schooldb import derive_columns

    record = UsageRecord(
        uuid="u-1", seq=1, kiosk_id="k-1", room="Каб. 12", lesson_id="L-1",
        lesson_title="Урок", item_index=0, kind="image", content_hash=None,
        content_title="Слайд", content_source=None, teacher_id="c-1",
        teacher_name="Учитель", started_at=started_at, ended_at=ended_at,
        duration_ms=60_000, end_reason="next", clock_offset_ms=offset_ms,
    )  # fmt: skip
    derived = derive_columns(record, ZoneInfo("Europe/Moscow"), LibraryMatcher(DEFAULT_LIBRARIES))
    start_ms = _epoch_ms(started_at) - offset_ms
    assert derived[:3] == (start_utc, start_ms, end_utc)
    assert derived[0] == iso_utc_ms(start_ms)
    assert derived[3:5] == _day_and_week(start_ms, ZoneInfo("Europe/Moscow"))
