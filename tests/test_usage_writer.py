"""The usage writer thread: same records as the log, one transaction per burst."""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import uuid as uuid_module
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from kiosk.usage import DisplayStart, UsageLog
from kiosk.usage_writer import UsageWriter
from protocol.errors import UsageLogError
from protocol.usage_chain import load_public_key, verify_chain


def start(i: int) -> DisplayStart:
    return DisplayStart(
        lesson_id="l1",
        lesson_title="Урок",
        item_index=i,
        kind="text",
        content_hash=None,
        content_title=f"Слайд {i}",
        content_source=None,
        teacher_id="c-1",
        teacher_name="Учитель",
    )


def test_writes_are_committed_in_order_and_reads_see_them(tmp_path: Path) -> None:
    writer = UsageWriter(UsageLog(tmp_path / "u.sqlite", kiosk_id="k", room="r"))
    try:
        uuids = []
        previous = None
        for i in range(50):
            if previous is not None:
                writer.close(previous, wall_s=1000.0 + i, mono_s=float(i), reason="next")
            previous = writer.open(start(i), wall_s=1000.0 + i, mono_s=float(i))
            uuids.append(previous)
        records = writer.records_after(0, 100)
        assert [r.uuid for r in records] == uuids[:-1]
        assert [r.item_index for r in records] == list(range(49))
        assert all(r.duration_ms == 1000 for r in records)
        assert writer.open_count() == 1
        assert writer.last_seq() == 49
    finally:
        writer.close_db()


def test_close_db_commits_what_is_queued(tmp_path: Path) -> None:
    path = tmp_path / "u.sqlite"
    writer = UsageWriter(UsageLog(path, kiosk_id="k", room="r"))
    uuid = writer.open(start(0), wall_s=1000.0, mono_s=0.0)
    writer.close(uuid, wall_s=1002.0, mono_s=2.0, reason="stop")
    writer.close_db()
    writer.close_db()  # idempotent
    log = UsageLog(path, kiosk_id="k", room="r")
    try:
        (record,) = log.records_after(0, 10)
        assert record.uuid == uuid
        assert record.end_reason == "stop"
    finally:
        log.close_db()


def test_a_failing_write_is_logged_and_the_others_are_kept(tmp_path: Path, caplog: object) -> None:
    writer = UsageWriter(UsageLog(tmp_path / "u.sqlite", kiosk_id="k", room="r"))
    try:
        good = writer.open(start(0), wall_s=1000.0, mono_s=0.0)
        writer.close("no-such-uuid", wall_s=1001.0, mono_s=1.0, reason="next")  # fails
        writer.close(good, wall_s=1001.0, mono_s=1.0, reason="next")
        records = writer.records_after(0, 10)
        assert [r.uuid for r in records] == [good]
    finally:
        writer.close_db()


def test_heartbeat_goes_through_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "u.sqlite"
    writer = UsageWriter(UsageLog(path, kiosk_id="k", room="r"))
    writer.open(start(0), wall_s=1000.0, mono_s=0.0)
    writer.heartbeat(wall_s=1030.0, mono_s=30.0)
    writer.flush()
    writer.log.close_db()  # as after a power loss: the interval stays open on disk
    log = UsageLog(path, kiosk_id="k", room="r")
    try:
        assert log.recover() == 1
        (record,) = log.records_after(0, 10)
        assert record.end_reason == "power_loss"
        assert record.duration_ms == 30_000
    finally:
        log.close_db()


# --------------------------------------------------------------------------- a full disk


def fill_up(log: UsageLog) -> None:
    """Make the file refuse to grow, as on a full disk: SQLITE_FULL on the next page.

    ``max_page_count`` belongs to the connection, so it is set on the log's own one.
    """
    with log._lock:
        pages = log._db.execute("PRAGMA page_count").fetchone()[0]
        log._db.execute(f"PRAGMA max_page_count = {pages}")


def free_up(log: UsageLog) -> None:
    """Give the file room again, as when space is freed on the disk."""
    with log._lock:
        log._db.execute("PRAGMA max_page_count = 1073741823")


def run_until_stalled(writer: UsageWriter, next_index: list[int]) -> list[str]:
    """Log intervals (each opened and closed) until the file refuses them."""
    uuids = []
    for _ in range(500):
        i = next_index[0]
        next_index[0] += 1
        uuid = writer.open(start(i), wall_s=1000.0 + i, mono_s=float(i))
        writer.close(uuid, wall_s=1000.5 + i, mono_s=i + 0.5, reason="next")
        uuids.append(uuid)
        try:
            writer.flush()
        except UsageLogError:
            assert writer.stalled
            return uuids
    raise AssertionError("the file never filled up")


def wait_for_retries(writer: UsageWriter, n: int) -> None:
    tick = threading.Event()
    for _ in range(500):
        if writer.retries >= n:
            return
        tick.wait(0.01)
    raise AssertionError(f"only {writer.retries} retries")


def test_writes_refused_by_a_full_disk_wait_and_all_arrive_chained(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = UsageLog(tmp_path / "u.sqlite", kiosk_id="k", room="r")
    writer = UsageWriter(log, retry_first_s=0.001, retry_max_s=0.002)
    try:
        index = [0]
        before = writer.records_after(0, 1000)
        fill_up(log)
        shown = run_until_stalled(writer, index)
        committed = writer.records_after(0, 1000)  # does not wait: reads what is on disk
        for _ in range(34):  # intervals shown while the disk stays full
            shown += run_until_stalled(writer, index)
        heartbeats = 20
        for h in range(heartbeats):
            writer.heartbeat(wall_s=5000.0 + h, mono_s=4000.0 + h)
        wait_for_retries(writer, 3)
        assert writer.records_after(0, 1000) == committed

        free_up(log)
        writer.wait_for_written(5)

        records = writer.records_after(0, 1000)
        assert not writer.stalled
        assert before == []
        assert [r.uuid for r in records] == [r.uuid for r in committed] + shown[
            len(shown) - (len(records) - len(committed)) :
        ]
        assert {r.uuid for r in records} >= set(shown)
        assert [r.seq for r in records] == list(range(1, len(records) + 1))
        assert [r.item_index for r in records] == sorted(r.item_index for r in records)
        assert all(r.duration_ms == 500 for r in records)
        key = load_public_key(writer.public_key)
        assert verify_chain(records, key) == []
        assert writer.open_count() == 0
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]  # once, not per retry
        assert "wait in memory" in errors[0].getMessage()
        assert any("written again" in r.getMessage() for r in caplog.records)
    finally:
        writer.close_db()


def test_a_read_while_the_disk_is_full_returns_what_is_committed(tmp_path: Path) -> None:
    log = UsageLog(tmp_path / "u.sqlite", kiosk_id="k", room="r")
    writer = UsageWriter(log, retry_first_s=60.0, retry_max_s=60.0)
    try:
        fill_up(log)
        run_until_stalled(writer, [0])
        with pytest.raises(UsageLogError, match="wait in memory"):
            writer.flush()
        with pytest.raises(UsageLogError, match="did not finish in time"):
            writer.wait_for_written(0.01)
        assert writer.last_seq() == len(writer.records_after(0, 1000))
    finally:
        free_up(log)
        writer.close_db()


def test_intervals_past_the_memory_bound_are_counted_not_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = UsageLog(tmp_path / "u.sqlite", kiosk_id="k", room="r")
    writer = UsageWriter(log, retry_first_s=0.001, retry_max_s=0.002, max_pending_intervals=3)
    try:
        fill_up(log)
        index = [0]
        shown = run_until_stalled(writer, index)
        for i in range(10):
            uuid = writer.open(start(100 + i), wall_s=2000.0 + i, mono_s=100.0 + i)
            writer.close(uuid, wall_s=2000.5 + i, mono_s=100.5 + i, reason="next")
            shown.append(uuid)
        assert 7 <= writer.unlogged_intervals <= 10
        free_up(log)
        writer.wait_for_written(5)
        records = writer.records_after(0, 1000)
        assert len(records) + writer.unlogged_intervals == len(shown)
        assert verify_chain(records, load_public_key(writer.public_key)) == []
        assert writer.open_count() == 0  # no close of an unlogged interval went astray
        assert any("not logged" in r.getMessage() for r in caplog.records)
    finally:
        writer.close_db()


def test_a_switch_reaches_the_disk_whole(tmp_path: Path) -> None:
    """A switch's close and the next open are committed together: a crash between two
    commits would leave the item just shown out of the log."""
    writer = UsageWriter(UsageLog(tmp_path / "u.sqlite", kiosk_id="k", room="r"))
    try:
        first = writer.open(start(0), wall_s=1000.0, mono_s=0.0)
        writer.flush()
        with writer.batch():
            writer.close(first, wall_s=1001.0, mono_s=1.0, reason="next")
            with writer.batch():  # blocks nest
                assert writer.records_after(0, 10) == []  # held: nothing written alone
            second = writer.open(start(1), wall_s=1001.0, mono_s=1.0)
            assert writer.records_after(0, 10) == []
        assert [r.uuid for r in writer.records_after(0, 10)] == [first]
        assert writer.open_count() == 1
        writer.close(second, wall_s=1002.0, mono_s=2.0, reason="stop")
        assert [r.uuid for r in writer.records_after(0, 10)] == [first, second]
    finally:
        writer.close_db()


class _CountingQueue(queue.SimpleQueue[object]):
    """The writer's queue, counting the hand-overs (each one wakes the writer thread)."""

    puts = 0

    def put(self, item: object, block: bool = True, timeout: float | None = None) -> None:
        self.puts += 1
        super().put(item, block, timeout)


def test_a_job_runs_on_the_writer_thread_after_the_writes_before_it_are_committed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "u.sqlite"
    writer = UsageWriter(UsageLog(path, kiosk_id="k", room="r"))
    seen: list[tuple[str, int]] = []

    def job() -> None:
        # Another connection sees only what is committed.
        with closing(sqlite3.connect(path)) as db:
            (count,) = db.execute("SELECT count(*) FROM plays").fetchone()
        seen.append((threading.current_thread().name, count))

    try:
        writer.open(start(0), wall_s=1000.0, mono_s=0.0)
        writer.after_commit(job)
        writer.flush()
        assert seen == [("usage-writer", 1)]
    finally:
        writer.close_db()


def test_a_job_inside_a_batch_goes_out_with_it_in_one_hand_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:  # the writer's queue counts its hand-overs
        patch.setattr(queue, "SimpleQueue", _CountingQueue)
        writer = UsageWriter(UsageLog(tmp_path / "u.sqlite", kiosk_id="k", room="r"))
    counting = writer._queue
    assert isinstance(counting, _CountingQueue)
    ran: list[int] = []
    try:
        uuid = writer.open(start(0), wall_s=1000.0, mono_s=0.0)
        writer.flush()
        puts = counting.puts
        with writer.batch():  # a switch: close, open, and the presentation's flush
            writer.close(uuid, wall_s=1001.0, mono_s=1.0, reason="next")
            writer.open(start(1), wall_s=1001.0, mono_s=1.0)
            writer.after_commit(lambda: ran.append(writer.log.open_count()))
        assert counting.puts == puts + 1
        writer.flush()
        assert ran == [1]
        assert [r.item_index for r in writer.records_after(0, 10)] == [0]
    finally:
        writer.close_db()


def test_a_failing_job_is_logged_and_the_writer_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = UsageWriter(UsageLog(tmp_path / "u.sqlite", kiosk_id="k", room="r"))

    def broken() -> None:
        raise OSError("disk gone")

    try:
        with caplog.at_level(logging.ERROR, logger="kiosk.usage_writer"):
            writer.after_commit(broken)
            uuid = writer.open(start(0), wall_s=1000.0, mono_s=0.0)
            writer.close(uuid, wall_s=1001.0, mono_s=1.0, reason="stop")
            assert [r.uuid for r in writer.records_after(0, 10)] == [uuid]
        assert "a job after the commit failed" in caplog.text
    finally:
        writer.close_db()


def test_a_deferred_hand_over_keeps_the_writes_until_it_runs_and_keeps_their_order(
    tmp_path: Path,
) -> None:
    path = tmp_path / "u.sqlite"
    writer = UsageWriter(UsageLog(path, kiosk_id="k", room="r"))
    deferred: list[object] = []
    writer.hand_over_through(deferred.append)

    def committed() -> int:
        with closing(sqlite3.connect(path)) as db:
            return int(db.execute("SELECT count(*) FROM plays").fetchone()[0])

    try:
        with writer.batch():
            first = writer.open(start(0), wall_s=1000.0, mono_s=0.0)
        writer.heartbeat(wall_s=1000.5, mono_s=0.5)
        assert len(deferred) == 1  # one hand-over for everything made before it runs
        writer.flush()  # a read hands over what is held before it waits
        assert committed() == 1
        with writer.batch():
            writer.close(first, wall_s=1001.0, mono_s=1.0, reason="next")
            second = writer.open(start(1), wall_s=1001.0, mono_s=1.0)
        assert len(deferred) == 2
        with closing(sqlite3.connect(path)) as db:
            assert db.execute("SELECT count(*) FROM plays WHERE seq IS NOT NULL").fetchone()[0] == 0
        run = deferred[-1]
        assert callable(run)
        run()  # the loop calls it once the replies are written
        run()  # a second call finds nothing held
        writer.close(second, wall_s=1002.0, mono_s=2.0, reason="stop")
        writer.close_db()  # hands over the close still held
        with closing(sqlite3.connect(path)) as db:
            rows = db.execute("SELECT uuid, end_reason FROM plays ORDER BY seq").fetchall()
        assert rows == [(first, "next"), (second, "stop")]
    finally:
        writer.close_db()


# --------------------------------------------------------------------------- group commit


class CountingLog(UsageLog):
    """A real usage log that counts its transactions (each is one commit, one flush)."""

    commits = 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.commits += 1
        with super().transaction():
            yield


def on_disk(path: Path) -> int:
    """Rows another connection sees: what is committed."""
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT count(*) FROM plays").fetchone()[0])


def wait_for_rows(path: Path, count: int) -> None:
    pause = threading.Event()
    for _ in range(1000):
        if on_disk(path) >= count:
            return
        pause.wait(0.01)
    raise AssertionError(f"{count} rows were not committed in 10 s")


def switch(writer: UsageWriter, previous: str, i: int) -> str:
    """A teacher's switch to item ``i`` at second ``i``, as the service makes it."""
    with writer.batch():
        writer.close(previous, wall_s=1000.0 + i, mono_s=float(i), reason="next")
        return writer.open(start(i), wall_s=1000.0 + i, mono_s=float(i))


def counting_writer(path: Path, interval_s: float) -> tuple[CountingLog, UsageWriter]:
    log = CountingLog(path, kiosk_id="k", room="r")
    return log, UsageWriter(log, commit_interval_s=interval_s)


def test_a_write_after_a_quiet_moment_is_committed_at_once(tmp_path: Path) -> None:
    path = tmp_path / "u.sqlite"
    _, writer = counting_writer(path, 3600.0)
    try:
        writer.open(start(0), wall_s=1000.0, mono_s=0.0)
        wait_for_rows(path, 1)  # not an hour later
    finally:
        writer.close_db()


def test_writes_within_the_interval_wait_for_it_and_share_one_commit(tmp_path: Path) -> None:
    path = tmp_path / "u.sqlite"
    log, writer = counting_writer(path, 3600.0)
    try:
        previous = writer.open(start(0), wall_s=1000.0, mono_s=0.0)
        wait_for_rows(path, 1)
        assert log.commits == 1
        for i in range(1, 4):  # a teacher stepping through three slides
            previous = switch(writer, previous, i)
        threading.Event().wait(0.3)
        assert on_disk(path) == 1  # they wait for the interval's end...
        records = writer.records_after(0, 10)  # ...or a reader, which does not wait
        assert [r.item_index for r in records] == [0, 1, 2]
        assert on_disk(path) == 4
        assert log.commits == 2
    finally:
        writer.close_db()


def test_writes_waiting_for_the_interval_are_committed_when_it_ends(tmp_path: Path) -> None:
    path = tmp_path / "u.sqlite"
    _, writer = counting_writer(path, 0.2)
    try:
        writer.open(start(0), wall_s=1000.0, mono_s=0.0)
        writer.open(start(1), wall_s=1000.0, mono_s=0.0)
        writer.open(start(2), wall_s=1000.0, mono_s=0.0)
        wait_for_rows(path, 3)  # with no reader and no stop
    finally:
        writer.close_db()


def test_close_db_does_not_wait_for_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "u.sqlite"
    writer = UsageWriter(UsageLog(path, kiosk_id="k", room="r"), commit_interval_s=3600.0)
    writer.open(start(0), wall_s=1000.0, mono_s=0.0)
    wait_for_rows(path, 1)
    writer.open(start(1), wall_s=1001.0, mono_s=1.0)
    closer = threading.Thread(target=writer.close_db)
    closer.start()
    closer.join(20.0)
    assert not closer.is_alive()
    assert on_disk(path) == 2


def _status(thread: threading.Thread, field: str) -> str:
    """A field of ``thread``'s Linux status (``/proc/self/task/TID/status``)."""
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    (line,) = [ln for ln in status.splitlines() if ln.startswith(field + ":")]
    return line.split()[1]


def _wake_ups(thread: threading.Thread) -> int:
    """How many times ``thread`` went to sleep and was woken (Linux counts them)."""
    return int(_status(thread, "voluntary_ctxt_switches"))


def _wait_settled(thread: threading.Thread) -> None:
    """Wait until ``thread`` sleeps and stays asleep.

    A thread waiting for the interpreter lock also sleeps, so one sleeping look
    is not enough: the count of wake-ups must also hold still for a while.
    """
    pause = threading.Event()
    for _ in range(200):
        before = _wake_ups(thread)
        pause.wait(0.02)
        if _status(thread, "State") == "S" and _wake_ups(thread) == before:
            return
    raise AssertionError("the writer thread never settled")


def test_writes_waiting_for_the_interval_do_not_wake_the_writer_thread(tmp_path: Path) -> None:
    path = tmp_path / "u.sqlite"
    writer = UsageWriter(UsageLog(path, kiosk_id="k", room="r"), commit_interval_s=3600.0)
    try:
        previous = writer.open(start(0), wall_s=1000.0, mono_s=0.0)
        wait_for_rows(path, 1)
        _wait_settled(writer._thread)  # committed: it waits for the next write
        before = _wake_ups(writer._thread)
        pause = threading.Event()
        for i in range(1, 41):  # a burst
            previous = switch(writer, previous, i)
            pause.wait(0.005)  # a switch every 5 ms, as a teacher's quick clicks
        _wait_settled(writer._thread)
        # Not once per switch (40): a few hand-overs of the interpreter lock at most.
        assert _wake_ups(writer._thread) - before <= 6
        assert len(writer.records_after(0, 100)) == 40  # a reader still wakes it
    finally:
        writer.close_db()


def test_the_writer_gives_an_interval_a_time_ordered_uuid_at_once(tmp_path: Path) -> None:
    writer = UsageWriter(UsageLog(tmp_path / "u.sqlite", kiosk_id="k", room="r"))
    try:
        made = [writer.open(start(i), wall_s=1000.0 + i / 1000, mono_s=float(i)) for i in range(20)]
        assert made == sorted(made)
        assert {uuid_module.UUID(u).version for u in made} == {7}
        assert uuid_module.UUID(made[0]).int >> 80 == 1_000_000  # the start, in ms
        writer.close(made[-1], wall_s=1001.0, mono_s=30.0, reason="stop")
        assert writer.records_after(0, 10)[0].uuid == made[-1]
    finally:
        writer.close_db()
