"""The usage writer thread: same records as the log, one transaction per burst."""

from __future__ import annotations

from pathlib import Path

from kiosk.usage import DisplayStart, UsageLog
from kiosk.usage_writer import UsageWriter


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
