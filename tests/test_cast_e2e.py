"""End to end: a real controller casts to a real kiosk on loopback and controls it."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from controller.client import ControllerIdentity, KioskClient
from controller.group import SYNC_MAX_LEAD_MS, Group
from media.lesson import Lesson
from protocol import limits
from protocol.codec import encode, encode_chunk
from protocol.errors import ConnectionFailedError, RemoteError, UnexpectedMessageError
from protocol.messages import Cast
from tests.conftest import TEACHER
from tests.helpers import RAW, blob_lesson, pair, raw_connect, recv_json, text_lesson
from tests.kiosks import KioskThread, ManualClock, admin, teacher


async def all_records(kiosk: KioskThread) -> list:
    records: list = []
    after = 0
    async with await admin(kiosk) as client:
        while True:
            batch = await client.usage_pull(after, 2)
            records += batch.records
            after = batch.last_seq
            if not batch.more:
                return records


async def test_lesson_of_every_kind_is_shown_item_by_item(
    kiosk: KioskThread, sample_lesson: Lesson
) -> None:
    kinds = {item.kind for item in sample_lesson.items}
    assert kinds == {"image", "pdf", "text", "video", "web"}
    async with await teacher(kiosk) as client:
        assert client.welcome is not None
        assert client.welcome.room == "Каб. 12"
        result = await client.cast(sample_lesson)
        assert result.bytes_sent == sample_lesson.total_bytes
        seen = []
        for i in range(len(sample_lesson.items)):
            status = await client.status()
            assert status.state == "playing"
            assert status.index == i
            assert status.count == len(sample_lesson.items)
            assert status.presenter == TEACHER.name
            seen.append((status.item_kind, status.item_title))
            if i + 1 < len(sample_lesson.items):
                await client.control("next")
        assert seen == [(it.kind, it.title) for it in sample_lesson.items]
        # The kiosk stored every blob intact, named by its hash.
        store = kiosk.app.store if kiosk.app else None
        assert store is not None
        for sha in sample_lesson.blob_paths():
            assert store.has(sha)
            assert store.verify(sha)
        shown = kiosk.sync(lambda: list(kiosk.display.shown))
        assert [title for _, title in shown] == [it.title for it in sample_lesson.items]
        await client.control("next")  # past the last item: back to idle
        idle = await client.status()
        assert idle.state == "idle"
        assert idle.lesson_id is None


async def test_recast_sends_no_blob_twice(kiosk: KioskThread, tmp_path: Path) -> None:
    lesson = blob_lesson(tmp_path, [3 * limits.CHUNK_SIZE_BYTES + 17, 1000])
    async with await teacher(kiosk) as client:
        first = await client.cast(lesson)
        assert first.bytes_sent == lesson.total_bytes
        assert first.blobs_sent == 2
        again = await client.cast(lesson)
        assert again.bytes_sent == 0
        assert again.blobs_sent == 0
        # A lesson sharing one blob sends only the new one.
        (tmp_path / "other").mkdir()
        other = blob_lesson(tmp_path / "other", [500])
        mixed = Lesson(
            lesson_id="mixed",
            title="Смешанный",
            items=(lesson.items[0], other.items[0]),
        )
        third = await client.cast(mixed)
        assert third.bytes_sent == 500
        assert (await client.status()).lesson_title == "Смешанный"


async def test_interrupted_transfer_resumes_where_it_stopped(
    kiosk: KioskThread, tmp_path: Path
) -> None:
    size = 3 * limits.CHUNK_SIZE_BYTES + 5
    lesson = blob_lesson(tmp_path, [size])
    (sha,) = lesson.blob_paths()
    data = lesson.blob_paths()[sha].read_bytes()
    creds = await pair(kiosk.address, kiosk.pin(), RAW)
    ws = await raw_connect(kiosk.address, token=creds.token)
    await ws.send(encode(Cast(id=2, lesson=lesson.manifest())))
    need = await recv_json(ws)
    assert need["type"] == "need"
    assert need["blobs"] == [{"sha256": sha, "have_bytes": 0, "size_bytes": size}]
    sent = 2 * limits.CHUNK_SIZE_BYTES
    await ws.send(encode_chunk(sha, 0, data[: limits.CHUNK_SIZE_BYTES]))
    await ws.send(encode_chunk(sha, limits.CHUNK_SIZE_BYTES, data[limits.CHUNK_SIZE_BYTES : sent]))
    # Ask for status so we know both chunks were handled, then drop the connection.
    await ws.send(json.dumps({"type": "get_status", "id": 3}))
    assert (await recv_json(ws))["type"] == "status"
    await ws.close()

    async with await teacher(kiosk) as client:
        result = await client.cast(lesson)
        assert result.bytes_sent == size - sent
        status = await client.status()
        assert status.state == "playing"
    assert kiosk.app is not None
    assert kiosk.app.store.verify(sha)


async def test_group_casts_and_controls_two_kiosks(tmp_path: Path, sample_lesson: Lesson) -> None:
    """Both panels get the lesson, wait for the moment the group set, and start at it."""
    clock = ManualClock()  # one time for both panels, moved only by the test
    with (
        KioskThread(tmp_path / "a", room="Каб. 1", clock=clock) as a,
        KioskThread(tmp_path / "b", room="Каб. 2", clock=clock) as b,
    ):
        creds = {
            a.address: await pair(a.address, a.pin(), TEACHER),
            b.address: await pair(b.address, b.pin(), TEACHER),
        }
        group = await Group.connect([a.address, b.address], TEACHER, credentials=creds.get)
        try:
            casting = asyncio.create_task(group.cast(sample_lesson))
            for client in group.clients.values():  # both have it all and wait to start
                await client.wait_for_status(
                    lambda s: s.state == "loading" and s.lesson_id == sample_lesson.lesson_id
                )
            assert not casting.done()
            # Past the start the group set (at most SYNC_MAX_LEAD_MS ahead), not past the
            # first item's 5 s: the item's time runs from the start.
            clock.advance(SYNC_MAX_LEAD_MS / 1000 + 0.001)
            a.tick()
            b.tick()
            outcomes = await casting
            # The panels' clocks stood still while each one's offset was measured: their
            # instants differ by when each was pinged.
            apart_ms = 1 + 3 * max(c.round_trip_ms or 0.0 for c in group.clients.values())
            assert sorted(o.target for o in outcomes) == sorted([a.address, b.address])
            assert all(o.ok for o in outcomes), outcomes
            assert all(
                o.value and o.value.bytes_sent == sample_lesson.total_bytes for o in outcomes
            )
            # At once: the panels' clocks stand still, so an instant would never come
            # (a group control at an instant: tests/test_sync.py).
            acks = await group.control("next", together=False)
            assert all(o.ok for o in acks), acks
            statuses = await group.status()
            assert {o.value.room for o in statuses if o.value} == {"Каб. 1", "Каб. 2"}
            assert all(o.value and o.value.index == 1 for o in statuses), statuses
        finally:
            await group.close()
        first = [(await all_records(kiosk))[0] for kiosk in (a, b)]
    assert [(r.item_index, r.end_reason) for r in first] == [(0, "next"), (0, "next")]
    starts = [datetime.fromisoformat(r.started_at).timestamp() * 1000 for r in first]
    assert abs(starts[0] - starts[1]) <= apart_ms  # the same moment on both panels


async def test_group_reports_an_offline_panel_and_serves_the_others(
    kiosk: KioskThread, tmp_path: Path
) -> None:
    creds = await pair(kiosk.address, kiosk.pin(), TEACHER)
    group = await Group.connect(
        [kiosk.address, "127.0.0.1:9"], TEACHER, credentials=lambda _: creds, timeout_s=2
    )
    try:
        outcomes = await group.cast(text_lesson("А", "Б"))
        by_target = {o.target: o for o in outcomes}
        assert by_target[kiosk.address].ok
        assert isinstance(by_target["127.0.0.1:9"].error, ConnectionFailedError)
    finally:
        await group.close()


async def test_usage_rows_after_next_prev_stop(kiosk: KioskThread) -> None:
    lesson = text_lesson("Один", "Два", "Три")
    async with await teacher(kiosk) as client:
        await client.cast(lesson)
        await client.control("next")
        await client.control("prev")
        await client.control("blank")
        await client.control("unblank")
        await client.control("goto", index=2)
        await client.control("stop")
        records = await all_records(kiosk)
    assert [(r.item_index, r.end_reason, r.hidden) for r in records] == [
        (0, "next", ""),
        (1, "prev", ""),
        (0, "blank", ""),
        (0, "shown", "blank"),  # the blanked time, logged as hidden
        (0, "goto", ""),
        (2, "stop", ""),
    ]
    assert [r.seq for r in records] == [1, 2, 3, 4, 5, 6]
    for r in records:
        assert r.teacher_id == TEACHER.controller_id
        assert r.teacher_name == TEACHER.name
        assert r.lesson_id == lesson.lesson_id
        assert r.lesson_title == lesson.title
        assert r.kind == "text"
        assert r.room == "Каб. 12"
        assert r.duration_ms >= 0
        assert r.ended_at is not None
        assert r.started_at <= r.ended_at
    assert records[1].content_title == "Слайд 2"


async def test_auto_advance_by_item_duration(kiosk: KioskThread) -> None:
    from media.lesson import LessonItem, make_lesson

    lesson = make_lesson(
        "Таймер",
        [
            LessonItem(kind="text", title="Быстрый", text="1", duration_ms=150),
            LessonItem(kind="text", title="Последний", text="2", duration_ms=150),
        ],
    )
    async with await teacher(kiosk) as client:
        await client.cast(lesson)
        status = await client.wait_for_status(lambda s: s.state == "idle", timeout_s=5)
        assert status.lesson_id is None
        records = await all_records(kiosk)
    assert [(r.item_index, r.end_reason) for r in records] == [(0, "auto"), (1, "end")]


async def test_start_at_delays_the_start(tmp_path: Path) -> None:
    """The panel's clock stands still until the test moves it. The start is 10 s after
    the controller's now: far beyond the few milliseconds its clock-offset measurement
    (three pings on the real clock) may be off."""
    clock = ManualClock()
    with KioskThread(tmp_path / "kiosk", clock=clock) as kiosk:
        async with await teacher(kiosk) as client:
            start_at_ms = int(time.time() * 1000) + 10_000
            await client.cast(text_lesson("А"), start_at_ms=start_at_ms)
            assert (await client.status()).state == "loading"
            clock.advance(5)
            kiosk.tick()
            assert (await client.status()).state == "loading"
            clock.advance(10)
            kiosk.tick()
            status = await client.wait_for_status(lambda s: s.state == "playing")
            assert status.index == 0


async def test_pushed_status_events_reach_every_controller(kiosk: KioskThread) -> None:
    async with (
        await teacher(kiosk) as presenter,
        await teacher(kiosk, ControllerIdentity("c-watcher", "Наблюдатель")) as watcher,
    ):
        await presenter.cast(text_lesson("А", "Б"))
        await presenter.control("next")
        status = await watcher.wait_for_status(lambda s: s.index == 1, timeout_s=5)
        assert status.item_title == "Слайд 2"


async def test_control_without_a_lesson_is_an_error_reply(kiosk: KioskThread) -> None:
    async with await teacher(kiosk) as client:
        with pytest.raises(RemoteError) as info:
            await client.control("next")
        assert info.value.code == "no_lesson"
        await client.cast(text_lesson("А"))
        with pytest.raises(RemoteError) as info:
            await client.control("goto", index=5)
        assert info.value.code == "bad_index"
        assert (await client.status()).index == 0


async def test_connect_to_nothing_is_a_clear_error() -> None:
    with pytest.raises(ConnectionFailedError, match="cannot connect"):
        await KioskClient.connect("127.0.0.1:9", TEACHER, timeout_s=2)


async def test_kiosk_gone_mid_request_is_a_clear_error(tmp_path: Path) -> None:
    k = KioskThread(tmp_path / "k").__enter__()
    client = await teacher(k)
    # Stop the kiosk from another thread so that this loop can answer its close frame.
    await asyncio.to_thread(k.__exit__, None, None, None)
    with pytest.raises(ConnectionFailedError):
        await client.status()
    await client.close()


async def test_quota_too_small_refuses_the_cast_and_keeps_showing(tmp_path: Path) -> None:
    with KioskThread(tmp_path / "k", quota_bytes=100_000) as k:
        async with await teacher(k) as client:
            await client.cast(text_lesson("Было"))
            big = blob_lesson(tmp_path, [200_000])
            with pytest.raises(RemoteError) as info:
                await client.cast(big)
            assert info.value.code == "quota_exceeded"
            status = await client.status()
            assert status.item_title == "Слайд 1"
            assert status.lesson_title == "Текстовый урок"


async def test_many_quick_controls_are_each_acked_in_order(kiosk: KioskThread) -> None:
    async with await teacher(kiosk) as client:
        await client.cast(text_lesson(*[str(i) for i in range(10)]))
        await asyncio.gather(*(client.control("next") for _ in range(5)))
        assert (await client.status()).index == 5


async def test_the_controller_sends_chunks_of_the_send_size(
    kiosk: KioskThread, tmp_path: Path
) -> None:
    size = 2 * limits.SEND_CHUNK_BYTES + 7
    lesson = blob_lesson(tmp_path, [size])
    steps: list[int] = []
    async with await teacher(kiosk) as client:
        await client.cast(lesson, progress=lambda sent, total: steps.append(sent))
    assert steps == [0, limits.SEND_CHUNK_BYTES, 2 * limits.SEND_CHUNK_BYTES, size]
    assert limits.SEND_CHUNK_BYTES < limits.CHUNK_SIZE_BYTES  # a kiosk takes larger ones too
    assert kiosk.app is not None
    assert kiosk.app.store.verify(next(iter(lesson.blob_paths())))


async def test_a_blob_whose_last_chunk_is_damaged_is_refused_and_nothing_kept(
    kiosk: KioskThread, tmp_path: Path
) -> None:
    """Chunks sent back to back, not waiting for the disk: the hash check still refuses
    the blob at its last chunk, nothing of it stays, and a request sent after the chunks
    is answered after the refusal (each connection's frames are handled in order)."""
    chunk = limits.SEND_CHUNK_BYTES
    size = 6 * chunk + 5
    lesson = blob_lesson(tmp_path, [size])
    (sha,) = lesson.blob_paths()
    data = bytearray(lesson.blob_paths()[sha].read_bytes())
    data[-1] ^= 0xFF  # damaged on the way
    creds = await pair(kiosk.address, kiosk.pin(), RAW)
    ws = await raw_connect(kiosk.address, token=creds.token)
    try:
        await ws.send(encode(Cast(id=2, lesson=lesson.manifest())))
        assert (await recv_json(ws))["type"] == "need"
        for offset in range(0, size, chunk):
            await ws.send(encode_chunk(sha, offset, bytes(data[offset : offset + chunk])))
        await ws.send(json.dumps({"type": "get_status", "id": 3}))
        refused = await recv_json(ws)
        assert (refused["type"], refused["re"], refused["code"]) == (
            "error",
            2,
            "checksum_mismatch",
        )
        assert (await recv_json(ws))["re"] == 3
    finally:
        await ws.close()
    assert kiosk.app is not None
    assert not kiosk.app.store.has(sha)
    assert kiosk.app.store.partial_bytes(sha) == 0
    assert kiosk.sync(lambda: kiosk.app.store.reservations if kiosk.app else None) == {}


async def test_other_connections_are_answered_while_a_blob_goes_to_disk(
    kiosk: KioskThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The long fsync of a received blob runs without the kiosk's lock: a slow disk holds
    up the transfer, not the other teachers' requests."""
    assert kiosk.app is not None
    store = kiosk.app.store
    writing, written = threading.Event(), threading.Event()
    flush = store.flush

    def slow_disk_flush(sha256: str) -> None:
        writing.set()
        written.wait(10)
        flush(sha256)

    monkeypatch.setattr(store, "flush", slow_disk_flush)
    lesson = blob_lesson(tmp_path, [2 * limits.SEND_CHUNK_BYTES + 3])
    async with await teacher(kiosk) as sender, await admin(kiosk) as other:
        cast = asyncio.create_task(sender.cast(lesson))
        try:
            assert await asyncio.to_thread(writing.wait, 10)
            status = await other.status()  # the loop and the service are free meanwhile
            assert status.lesson_title is None
            assert not cast.done()
        finally:
            written.set()
        await cast
    assert store.verify(next(iter(lesson.blob_paths())))


async def test_a_file_cut_short_while_it_is_sent_stops_the_cast(
    kiosk: KioskThread, tmp_path: Path
) -> None:
    lesson = blob_lesson(tmp_path, [2 * limits.SEND_CHUNK_BYTES + 7])
    (path,) = lesson.blob_paths().values()
    with path.open("r+b") as f:  # the teacher's file changed after the lesson was read
        f.truncate(limits.SEND_CHUNK_BYTES + 3)
    async with await teacher(kiosk) as client:
        with pytest.raises(UnexpectedMessageError, match="changed while it was being sent"):
            await client.cast(lesson)
    assert kiosk.app is not None
    assert not kiosk.app.store.has(next(iter(lesson.blob_paths())))
