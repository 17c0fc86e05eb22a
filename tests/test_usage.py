"""Tests of the kiosk's usage log (kiosk/usage.py) against real SQLite."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
import uuid as uuid_module
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from kiosk.usage import SCHEMA_VERSION, DisplayStart, UsageLog
from protocol.errors import ClassCastError, UsageLogError
from protocol.limits import MAX_USAGE_BATCH
from protocol.usage_chain import UsageKey, load_public_key, public_key_text, verify_chain

REPO = Path(__file__).resolve().parents[1]

START = DisplayStart(
    lesson_id="lesson-7",
    lesson_title="Фотосинтез",
    item_index=2,
    kind="video",
    content_hash="ab" * 32,
    content_title="Хлоропласт",
    content_source="https://library.example/items/42",
    teacher_id="t-1",
    teacher_name="Анна Петровна",
)
WALL = 1_725_265_800.0  # 2024-09-02T08:30:00Z


def item(index: int) -> DisplayStart:
    return dataclasses.replace(START, item_index=index)


@pytest.fixture
def log() -> Iterator[UsageLog]:
    usage = UsageLog(None, kiosk_id="kiosk-1", room="Каб. 12")
    yield usage
    usage.close_db()


def make_file_log(path: Path) -> UsageLog:
    return UsageLog(path, kiosk_id="kiosk-1", room="Каб. 12")


# --------------------------------------------------------------------------- open / close


def test_open_close_fields_and_monotonic_duration(log: UsageLog) -> None:
    uuid = log.open(START, wall_s=WALL + 0.25, mono_s=500.0, clock_offset_ms=-12)
    assert log.open_count() == 1
    assert log.records_after(0, 10) == []  # open intervals are not collected

    # The wall clock jumps back an hour; the duration still comes from the monotonic clock.
    log.close(uuid, wall_s=WALL - 3600.0, mono_s=512.3456, reason="next")

    [record] = log.records_after(0, 10)
    assert record.uuid == uuid
    assert record.seq == 1
    assert (record.kiosk_id, record.room) == ("kiosk-1", "Каб. 12")
    assert (record.lesson_id, record.lesson_title, record.item_index) == (
        "lesson-7",
        "Фотосинтез",
        2,
    )
    assert record.kind == "video"
    assert record.content_hash == "ab" * 32
    assert record.content_title == "Хлоропласт"
    assert record.content_source == "https://library.example/items/42"
    assert (record.teacher_id, record.teacher_name) == ("t-1", "Анна Петровна")
    assert record.started_at == "2024-09-02T08:30:00.250Z"
    assert record.ended_at == "2024-09-02T07:30:00.000Z"
    assert record.duration_ms == 12346
    assert record.end_reason == "next"
    assert record.clock_offset_ms == -12
    assert log.open_count() == 0


def test_optional_fields_stay_none(log: UsageLog) -> None:
    start = dataclasses.replace(START, kind="text", content_hash=None, content_source=None)
    log.close(log.open(start, wall_s=WALL, mono_s=1.0), wall_s=WALL, mono_s=0.5, reason="stop")
    [record] = log.records_after(0, 1)
    assert (record.content_hash, record.content_source, record.kind) == (None, None, "text")
    assert record.duration_ms == 0  # a monotonic end before the start is clamped
    assert record.clock_offset_ms == 0


def test_seq_assigned_at_close_in_close_order(log: UsageLog) -> None:
    first = log.open(item(0), wall_s=WALL, mono_s=0.0)
    second = log.open(item(1), wall_s=WALL + 1, mono_s=1.0)
    third = log.open(item(2), wall_s=WALL + 2, mono_s=2.0)
    assert log.last_seq() == 0
    for uuid in (third, first, second):
        log.close(uuid, wall_s=WALL + 3, mono_s=3.0, reason="stop")
    records = log.records_after(0, 10)
    assert [r.uuid for r in records] == [third, first, second]
    assert [r.seq for r in records] == [1, 2, 3]
    assert log.last_seq() == 3


def test_interval_closed_late_is_collected_after_a_later_one_was_pulled(log: UsageLog) -> None:
    video = log.open(item(0), wall_s=WALL, mono_s=0.0)  # opened first, stays on screen
    slide = log.open(item(1), wall_s=WALL + 5, mono_s=5.0)
    log.close(slide, wall_s=WALL + 10, mono_s=10.0, reason="next")

    pulled = log.records_after(0, 100)
    assert [r.uuid for r in pulled] == [slide]
    collected_up_to = pulled[-1].seq

    log.close(video, wall_s=WALL + 60, mono_s=60.0, reason="end")
    late = log.records_after(collected_up_to, 100)
    assert [r.uuid for r in late] == [video]
    assert late[0].seq > collected_up_to
    assert late[0].duration_ms == 60_000


def test_records_after_pages(log: UsageLog) -> None:
    uuids = [log.open(item(i), wall_s=WALL + i, mono_s=float(i)) for i in range(5)]
    for i, uuid in enumerate(uuids):
        log.close(uuid, wall_s=WALL + i + 1, mono_s=i + 1.0, reason="auto")
    pages: list[list[int]] = []
    after = 0
    while page := log.records_after(after, 2):
        pages.append([r.seq for r in page])
        after = page[-1].seq
    assert pages == [[1, 2], [3, 4], [5]]
    assert [r.item_index for r in log.records_after(0, MAX_USAGE_BATCH)] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(("after_seq", "limit"), [(-1, 10), (0, 0), (0, MAX_USAGE_BATCH + 1)])
def test_records_after_rejects_bad_arguments(log: UsageLog, after_seq: int, limit: int) -> None:
    with pytest.raises(ValueError, match=r"after_seq|limit"):
        log.records_after(after_seq, limit)


def test_close_unknown_uuid_raises(log: UsageLog) -> None:
    with pytest.raises(UsageLogError, match="no interval with uuid nope") as info:
        log.close("nope", wall_s=WALL, mono_s=1.0, reason="stop")
    assert isinstance(info.value, ClassCastError)
    assert info.value.code == "usage_log"


def test_double_close_is_a_noop(log: UsageLog) -> None:
    uuid = log.open(START, wall_s=WALL, mono_s=0.0)
    log.close(uuid, wall_s=WALL + 2, mono_s=2.0, reason="next")
    log.close(uuid, wall_s=WALL + 9, mono_s=9.0, reason="stop")
    [record] = log.records_after(0, 10)
    assert (record.end_reason, record.duration_ms, record.seq) == ("next", 2000, 1)
    assert log.last_seq() == 1


def test_bad_times_and_reasons_are_refused(log: UsageLog) -> None:
    with pytest.raises(ValueError, match="finite"):
        log.open(START, wall_s=float("nan"), mono_s=0.0)
    with pytest.raises(ValueError, match="epoch"):
        log.heartbeat(wall_s=-1.0, mono_s=0.0)
    with pytest.raises(ValueError, match="kind"):
        log.open(dataclasses.replace(START, kind="audio"), wall_s=WALL, mono_s=0.0)  # type: ignore[arg-type]
    uuid = log.open(START, wall_s=WALL, mono_s=0.0)
    with pytest.raises(ValueError, match="reason"):
        log.close(uuid, wall_s=WALL, mono_s=1.0, reason="bored")  # type: ignore[arg-type]
    assert log.open_count() == 1


def test_use_after_close_db_raises(log: UsageLog) -> None:
    log.close_db()
    log.close_db()  # twice is harmless
    with pytest.raises(UsageLogError, match="memory"):
        log.open_count()


# --------------------------------------------------------------------------- heartbeat / recover


def test_recover_on_clean_log_is_zero(tmp_path: Path, log: UsageLog) -> None:
    assert log.recover() == 0
    usage = make_file_log(tmp_path / "usage.db")
    assert usage.recover() == 0
    usage.close_db()


def test_heartbeat_then_recover_closes_at_last_heartbeat(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    crashed = make_file_log(path)
    beaten = crashed.open(item(0), wall_s=WALL, mono_s=100.0)
    crashed.heartbeat(wall_s=WALL + 10, mono_s=110.0)
    crashed.heartbeat(wall_s=WALL + 30.5, mono_s=130.5)
    never_beaten = crashed.open(item(1), wall_s=WALL + 40, mono_s=140.0)
    done = crashed.open(item(2), wall_s=WALL + 41, mono_s=141.0)
    crashed.close(done, wall_s=WALL + 42, mono_s=142.0, reason="next")
    crashed.close_db()  # the process dies: nothing closes the open intervals

    usage = make_file_log(path)
    assert usage.open_count() == 2
    assert usage.recover() == 2
    assert usage.open_count() == 0
    assert usage.recover() == 0

    by_uuid = {r.uuid: r for r in usage.records_after(0, 10)}
    assert by_uuid[done].seq == 1
    recovered = by_uuid[beaten]
    assert recovered.end_reason == "power_loss"
    assert recovered.ended_at == "2024-09-02T08:30:30.500Z"
    assert recovered.duration_ms == 30_500
    assert recovered.seq == 2
    unbeaten = by_uuid[never_beaten]
    assert (unbeaten.end_reason, unbeaten.duration_ms, unbeaten.seq) == ("power_loss", 0, 3)
    assert unbeaten.ended_at == unbeaten.started_at == "2024-09-02T08:30:40.000Z"
    usage.close_db()


def test_runs_do_not_touch_each_others_open_intervals(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    earlier = make_file_log(path)
    old = earlier.open(item(0), wall_s=WALL, mono_s=100.0)
    earlier.close_db()

    usage = make_file_log(path)
    current = usage.open(item(1), wall_s=WALL + 50, mono_s=5.0)
    # A heartbeat of this run (monotonic clock of a new boot) must not move the old row.
    usage.heartbeat(wall_s=WALL + 60, mono_s=15.0)
    with pytest.raises(UsageLogError, match="earlier run"):
        usage.close(old, wall_s=WALL + 60, mono_s=15.0, reason="stop")
    # Recover closes the earlier run's interval only, never one still on screen.
    assert usage.recover() == 1
    assert usage.open_count() == 1
    [recovered] = usage.records_after(0, 10)
    assert (recovered.uuid, recovered.duration_ms) == (old, 0)
    assert recovered.ended_at == "2024-09-02T08:30:00.000Z"
    usage.close(current, wall_s=WALL + 70, mono_s=25.0, reason="shutdown")
    assert usage.records_after(1, 10)[0].duration_ms == 20_000
    usage.close_db()


def test_heartbeat_records_kiosk_last_seen(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    usage = make_file_log(path)
    usage.heartbeat(wall_s=WALL, mono_s=1.5)
    usage.close_db()
    with sqlite3.connect(path) as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    assert meta["last_seen_at"] == "2024-09-02T08:30:00.000Z"
    assert meta["last_seen_mono_s"] == 1.5


# --------------------------------------------------------------------------- the file


def test_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    first = make_file_log(path)
    uuid = first.open(START, wall_s=WALL, mono_s=0.0)
    first.close(uuid, wall_s=WALL + 1, mono_s=1.0, reason="next")
    first.close_db()

    second = make_file_log(path)
    assert [r.uuid for r in second.records_after(0, 10)] == [uuid]
    assert second.last_seq() == 1
    later = second.open(START, wall_s=WALL + 2, mono_s=2.0)
    second.close(later, wall_s=WALL + 3, mono_s=3.0, reason="stop")
    assert [r.seq for r in second.records_after(0, 10)] == [1, 2]
    second.close_db()


def test_each_write_is_on_disk_when_its_call_returns_and_a_block_is_all_or_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "usage.db"
    usage = make_file_log(path)
    with closing(sqlite3.connect(path)) as reader:

        def stored() -> list[str]:
            return [row[0] for row in reader.execute("SELECT uuid FROM plays ORDER BY id")]

        first = usage.open(START, wall_s=WALL, mono_s=0.0)
        assert stored() == [first]  # committed, seen by another connection
        with usage.transaction():
            second = usage.open(item(1), wall_s=WALL, mono_s=1.0)
            usage.close(second, wall_s=WALL + 1, mono_s=2.0, reason="next")
            with usage.transaction():  # nested: part of the outer one
                third = usage.open(item(2), wall_s=WALL + 1, mono_s=2.0)
            assert stored() == [first]  # not before the block's end
        assert stored() == [first, second, third]

        def failing_block(index: int) -> None:
            with usage.transaction():
                usage.open(item(index), wall_s=WALL + 2, mono_s=3.0)
                raise RuntimeError("the caller failed")

        with pytest.raises(RuntimeError):
            failing_block(3)
        with usage.transaction():
            with pytest.raises(RuntimeError):
                failing_block(4)  # nested: only its own writes are undone
            fifth = usage.open(item(5), wall_s=WALL + 2, mono_s=3.0)
        assert stored() == [first, second, third, fifth]
        assert [r.uuid for r in usage.records_after(0, 10)] == [second]
    usage.close_db()


def test_seq_is_never_reused_after_rows_are_deleted(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    usage = make_file_log(path)
    for i in range(3):
        usage.close(
            usage.open(item(i), wall_s=WALL, mono_s=0.0), wall_s=WALL, mono_s=1.0, reason="auto"
        )
    usage.close_db()
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM plays")
    conn.close()

    usage = make_file_log(path)
    usage.close(usage.open(START, wall_s=WALL, mono_s=0.0), wall_s=WALL, mono_s=1.0, reason="auto")
    assert [r.seq for r in usage.records_after(0, 10)] == [4]
    usage.close_db()


def test_wal_and_synchronous_full_are_set(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    usage = make_file_log(path)
    conn = usage._db.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    usage.close_db()
    with sqlite3.connect(path) as other:  # WAL is a property of the file itself
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()


def test_corrupt_file_raises_with_path(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"\x00\xffnot a database at all\x13" * 200)
    with pytest.raises(UsageLogError, match=str(path)):
        make_file_log(path)


def test_foreign_database_raises_with_path(tmp_path: Path) -> None:
    path = tmp_path / "foreign.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE plays (id INTEGER PRIMARY KEY, song TEXT)")
    conn.close()
    with pytest.raises(UsageLogError, match=f"{path} is not a ClassCast usage log"):
        make_file_log(path)


def test_unknown_schema_version_raises(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    make_file_log(path).close_db()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(UsageLogError, match="schema version"):
        make_file_log(path)


def test_damaged_plays_table_raises(tmp_path: Path) -> None:
    path = tmp_path / "damaged.db"
    make_file_log(path).close_db()
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE plays DROP COLUMN teacher_name")
    conn.close()
    with pytest.raises(UsageLogError, match="damaged"):
        make_file_log(path)


def test_unopenable_path_raises(tmp_path: Path) -> None:
    path = tmp_path / "missing-dir" / "usage.db"
    with pytest.raises(UsageLogError, match=str(path)):
        make_file_log(path)


CHILD = textwrap.dedent(
    """
    import sys
    from kiosk.usage import DisplayStart, UsageLog

    log = UsageLog(sys.argv[1], kiosk_id="kiosk-1", room="r")
    start = DisplayStart("l", "Lesson", 0, "image", None, "Slide", None, "t", "Teacher")
    uuid = log.open(start, wall_s=1725265800.0, mono_s=1000.0)
    log.heartbeat(wall_s=1725265807.0, mono_s=1007.25)
    print(uuid, flush=True)
    sys.stdin.readline()  # wait here until killed
    """
)


@pytest.mark.slow
def test_sigkill_mid_interval_is_recovered_as_power_loss(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        uuid = child.stdout.readline().strip()
        assert uuid, "child did not open an interval"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()

    usage = make_file_log(path)
    assert usage.open_count() == 1
    assert usage.recover() == 1
    [record] = usage.records_after(0, 10)
    assert record.uuid == uuid
    assert record.end_reason == "power_loss"
    assert record.ended_at == "2024-09-02T08:30:07.000Z"
    assert record.duration_ms == 7250
    assert record.seq == 1
    usage.close_db()


# --------------------------------------------------------------------------- batches


def _writes(usage: UsageLog, batched: bool) -> None:
    """One lesson's writes: alone each, or in one transaction with a nested block that
    fails (its writes are then not kept)."""

    def switch(old: str, new: int, at: float) -> None:
        usage.close(old, wall_s=WALL + at, mono_s=at, reason="next")
        usage.open(item(new), wall_s=WALL + at, mono_s=at, uuid=f"u{new}")

    def failing() -> None:
        with usage.transaction():
            usage.close("u1", wall_s=WALL + 9, mono_s=9.0, reason="stop")
            usage.heartbeat(wall_s=WALL + 9, mono_s=9.0)
            usage.save_presentation(b"never")
            raise RuntimeError("the caller failed")

    usage.open(item(0), wall_s=WALL, mono_s=0.0, uuid="u0")
    if batched:
        usage.save_presentation(b"first")
        with usage.transaction():
            usage.heartbeat(wall_s=WALL + 1, mono_s=1.0)
            switch("u0", 1, 2.0)
            usage.save_presentation(b"second")
            with pytest.raises(RuntimeError):
                failing()
            switch("u1", 2, 3.5)
            usage.heartbeat(wall_s=WALL + 4, mono_s=4.0)
            with usage.transaction():
                switch("u2", 3, 5.0)
            usage.open(item(4), wall_s=WALL + 6, mono_s=6.0, uuid="u4")
            usage.close("u4", wall_s=WALL + 6.5, mono_s=6.5, reason="stop")
            usage.close("u4", wall_s=WALL + 7, mono_s=7.0, reason="stop")  # the first stands
            usage.heartbeat(wall_s=WALL + 8, mono_s=8.0)
            usage.save_presentation(b"third")
    else:
        usage.save_presentation(b"first")
        usage.heartbeat(wall_s=WALL + 1, mono_s=1.0)
        switch("u0", 1, 2.0)
        usage.save_presentation(b"second")
        switch("u1", 2, 3.5)
        usage.heartbeat(wall_s=WALL + 4, mono_s=4.0)
        switch("u2", 3, 5.0)
        usage.open(item(4), wall_s=WALL + 6, mono_s=6.0, uuid="u4")
        usage.close("u4", wall_s=WALL + 6.5, mono_s=6.5, reason="stop")
        usage.close("u4", wall_s=WALL + 7, mono_s=7.0, reason="stop")
        usage.heartbeat(wall_s=WALL + 8, mono_s=8.0)
        usage.save_presentation(b"third")


def test_a_transaction_stores_exactly_what_the_writes_alone_store(tmp_path: Path) -> None:
    key = UsageKey.generate()
    stored = []
    for batched in (False, True):
        path = tmp_path / f"{batched}.sqlite"
        usage = UsageLog(path, kiosk_id="kiosk-1", room="101", signing_key=key)
        _writes(usage, batched)
        records = usage.records_after(0, 100)
        usage.close_db()
        with closing(sqlite3.connect(path)) as conn:
            columns = [
                row[1] for row in conn.execute("PRAGMA table_info(plays)") if row[1] != "run_id"
            ]
            rows = conn.execute(f"SELECT {', '.join(columns)} FROM plays ORDER BY id").fetchall()
            meta = conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall()
        stored.append((records, rows, meta))
    alone, in_one = stored
    assert [r.item_index for r in alone[0]] == [0, 1, 2, 4]
    assert alone[0] == in_one[0]  # the same records, hashes and signatures
    assert alone[1] == in_one[1]  # the same rows, ids included; item 3 still open
    assert alone[2] == in_one[2]  # the same chain head, last seen and presentation
    assert verify_chain(alone[0], load_public_key(public_key_text(key))) == []


def test_a_burst_in_one_transaction_costs_about_one_statement_per_switch(
    tmp_path: Path,
) -> None:
    usage = make_file_log(tmp_path / "u.sqlite")
    previous = usage.open(item(0), wall_s=WALL, mono_s=0.0)
    statements: list[str] = []
    usage._db.conn.set_trace_callback(statements.append)
    with usage.transaction():
        for i in range(1, 21):
            usage.close(previous, wall_s=WALL + i, mono_s=float(i), reason="next")
            previous = usage.open(item(i), wall_s=WALL + i, mono_s=float(i))
            usage.save_presentation(b"slot %d" % i)
    usage._db.conn.set_trace_callback(None)
    # One insert per new interval, and a few statements for the whole burst (the first
    # close, the chain's head, the presentation), where each write alone takes its own.
    assert len(statements) <= 20 + 8, statements
    assert [r.item_index for r in usage.records_after(0, 100)] == list(range(20))
    usage.close_db()


# --------------------------------------------------------------------------- uuids


def test_an_interval_uuid_is_a_version_7_uuid_of_its_start(log: UsageLog) -> None:
    made = [log.open(item(i), wall_s=WALL + 0.0015, mono_s=float(i)) for i in range(50)]
    for text in made:
        value = uuid_module.UUID(text)
        assert value.version == 7
        assert value.variant == uuid_module.RFC_4122
        assert value.int >> 80 == int((WALL + 0.0015) * 1000)  # the start, in ms
    assert len(set(made)) == 50  # unique within one millisecond


def test_later_intervals_sort_after_earlier_ones(log: UsageLog) -> None:
    made = [log.open(item(i), wall_s=WALL + i / 1000, mono_s=float(i)) for i in range(300)]
    assert made == sorted(made)


def _pages_written(wal: Path) -> list[int]:
    """The page number of each frame in a WAL file (its format: sqlite.org/fileformat2)."""
    data = wal.read_bytes()
    (page_size,) = struct.unpack(">I", data[8:12])
    frames = range(32, len(data) - 24 + 1, 24 + page_size)
    return [struct.unpack(">I", data[at : at + 4])[0] for at in frames]


def test_a_burst_rewrites_one_or_two_pages_of_the_uuid_index(tmp_path: Path) -> None:
    path = tmp_path / "u.sqlite"
    usage = make_file_log(path)
    previous = usage.open(item(0), wall_s=WALL, mono_s=0.0)
    for day in range(30):  # a log some weeks old: its uuid index spans many pages
        with usage.transaction():
            for i in range(1, 101):
                at = WALL + day * 86_400 + i
                usage.close(previous, wall_s=at, mono_s=at - WALL, reason="next")
                previous = usage.open(item(i), wall_s=at, mono_s=at - WALL)
    conn = usage._db.conn
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with usage.transaction():  # a teacher's burst of clicks
        for i in range(5):
            at = WALL + 31 * 86_400 + i
            usage.close(previous, wall_s=at, mono_s=at - WALL, reason="next")
            previous = usage.open(item(i), wall_s=at, mono_s=at - WALL)
    (index,) = [
        name
        for _, name, _, origin, _ in conn.execute("PRAGMA index_list(plays)")
        if origin == "u" and [r[2] for r in conn.execute(f"PRAGMA index_info({name})")] == ["uuid"]
    ]
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as reader:
        pages = {p for (p,) in reader.execute("SELECT pageno FROM dbstat WHERE name = ?", [index])}
    assert len(pages) > 20  # the index is large enough for random uuids to scatter
    written = set(_pages_written(path.with_name("u.sqlite-wal"))) & pages
    assert 1 <= len(written) <= 2, written  # its last leaf (and a parent when it splits)
    usage.close_db()
