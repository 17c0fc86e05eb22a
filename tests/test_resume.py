"""A kiosk restarted mid-lesson shows the same item again: kiosk.resume and its wiring.

The file itself (round trip, damage, when it is rewritten), then real kiosks on loopback
restarted on the same state directory: in-process, and as a child process killed with
SIGKILL, whose usage log must stay continuous across the restart.
"""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
import stat
import sys
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

import kiosk.resume as resume
from controller.client import ControllerIdentity, KioskClient
from controller.schooldb import SchoolDb
from kiosk.access import Access
from kiosk.headless import HeadlessDisplay
from kiosk.player import Identity, Presenter, VideoCommand
from kiosk.resume import (
    FILE_NAME,
    LEGACY_FILE_NAME,
    MAX_FILE_BYTES,
    RESAVE_INTERVAL_S,
    RESUME_MAX_AGE_S,
    SLOT_BYTES,
    SLOTS,
    CastText,
    PresentationFile,
    PresentationWriter,
    SavedPresentation,
    decode_saved,
    decode_slot,
    encode_saved,
    encode_slot,
    needs_writing,
    refusal,
)
from kiosk.service import KioskService
from kiosk.tokens import TokenStore
from kiosk.usage import UsageLog
from kiosk.usage_writer import UsageWriter
from media.store import BlobStore
from protocol.codec import encode as codec_encode
from protocol.errors import RemoteError
from protocol.messages import Cast, LessonManifest, ManifestItem
from tests.conftest import TEACHER
from tests.helpers import text_lesson
from tests.kiosks import (
    ADMIN_SECRET,
    KioskThread,
    ManualClock,
    admin,
    kiosk_process,
    open_play,
    teacher,
    wait_for_heartbeats,
)

OTHER = ControllerIdentity("c-test-other", "Иванов Пётр Ильич")
NOW_S = 1_790_000_000.0
LESSON = text_lesson("Один", "Два", "Три", "Четыре").manifest()
VIDEO_LESSON = LessonManifest(
    lesson_id="film",
    title="Фильм",
    items=[
        ManifestItem("video", "Фильм", sha256="ab" * 32, size_bytes=10),
        ManifestItem("text", "После", text="конец"),
    ],
)


def saved(
    lesson: LessonManifest = LESSON,
    index: int = 2,
    *,
    saved_at_s: float = NOW_S,
    presenter: ControllerIdentity = TEACHER,
    **fields: object,
) -> SavedPresentation:
    return SavedPresentation(
        lesson=lesson,
        index=index,
        presenter=Presenter(presenter.controller_id, presenter.name),
        saved_at_s=saved_at_s,
        **fields,  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- the file


def test_a_saved_presentation_reads_back_the_same(tmp_path: Path) -> None:
    file = PresentationFile(tmp_path / FILE_NAME)
    value = saved(
        VIDEO_LESSON,
        0,
        paused=True,
        blanked=True,
        position_ms=61_500,
        clock_offset_ms=-1_234,
        volume=40,
    )
    file.write(value)
    assert file.load() == value
    assert stat.S_IMODE(file.path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME]  # no temp file left
    # The lesson is stored as the codec encodes a cast.
    cast = json.loads(encode_saved(value))["cast"]
    assert (cast["type"], cast["start_index"], cast["clock_offset_ms"]) == ("cast", 0, -1_234)
    file.clear()
    assert file.load() is None
    file.clear()  # nothing to remove: harmless


def test_no_file_means_nothing_to_resume(tmp_path: Path) -> None:
    assert PresentationFile(tmp_path / FILE_NAME).load() is None


def _damaged(good: dict[str, object]) -> list[object]:
    bad_index = {**good, "cast": {**good["cast"], "start_index": 9}}  # type: ignore[dict-item]
    no_items = {**good, "cast": {**good["cast"], "lesson": {"lesson_id": "x", "title": "x"}}}  # type: ignore[dict-item]
    return [
        b"{not json",
        b"\xff\xfe",
        [1, 2],
        {**good, "format": 2},
        {**good, "cast": {"type": "control", "id": 1, "action": "next"}},
        bad_index,
        no_items,
        {**good, "paused": "yes"},
        {**good, "position_ms": -1},
        {**good, "volume": 101},
        {**good, "saved_at_s": True},
        {**good, "presenter_name": "x" * 1001},
        {k: v for k, v in good.items() if k != "presenter_id"},
    ]


@pytest.mark.parametrize("case", range(13))
def test_a_damaged_file_is_not_trusted_and_removed(
    tmp_path: Path, case: int, caplog: pytest.LogCaptureFixture
) -> None:
    file = PresentationFile(tmp_path / FILE_NAME)
    good = json.loads(encode_saved(saved()))
    content = _damaged(good)[case]
    raw = content if isinstance(content, bytes) else json.dumps(content).encode()
    file.path.write_bytes(encode_slot(raw, 1))
    with caplog.at_level(logging.WARNING, logger="kiosk.resume"):
        assert file.load() is None
    assert "damaged, not resuming" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kiosk.resume"):
        assert PresentationFile(file.path).load() is None  # "nothing to resume" is newest
    assert caplog.text == ""


def slot_generations(path: Path) -> dict[int, int]:
    """The generation of each slot of the file whose checksum holds."""
    found = {}
    raw = path.read_bytes()
    for slot in range(SLOTS):
        header = raw[slot * SLOT_BYTES : slot * SLOT_BYTES + 20]
        if len(header) < 20:
            continue
        generation, length = int.from_bytes(header[4:12]), int.from_bytes(header[12:16])
        body = raw[slot * SLOT_BYTES : slot * SLOT_BYTES + 20 + length]
        if length <= MAX_FILE_BYTES and body == encode_slot(body[20:], generation):
            found[slot] = generation
    return found


def test_a_write_cut_short_leaves_the_version_before_it(tmp_path: Path) -> None:
    file = PresentationFile(tmp_path / FILE_NAME)
    file.replace(saved(index=1))
    file.replace(saved(index=2))  # killed in the middle of the next write:
    generations = slot_generations(file.path)
    newest = max(generations, key=lambda slot: generations[slot])
    with file.path.open("r+b") as f:
        f.seek(newest * SLOT_BYTES + 30)
        f.write(b"\0" * 16)
    assert PresentationFile(file.path).load() == saved(index=1)


def test_the_last_flushed_version_is_kept_until_a_newer_one_is_flushed(tmp_path: Path) -> None:
    def version(n: int) -> SavedPresentation:
        return saved(index=n % 4, saved_at_s=NOW_S + n)

    file = PresentationFile(tmp_path / FILE_NAME)
    file.write(version(0))  # flushed: generation 1
    for n in range(1, 8):  # not flushed: a power loss may damage every one of them
        file.replace(version(n))
        assert 1 in slot_generations(file.path).values()
    file.sync()
    file.replace(version(8))
    file.replace(version(9))
    assert 8 in slot_generations(file.path).values()  # version 7, flushed last
    assert PresentationFile(file.path).load() == version(9)


def test_a_slot_claiming_more_than_the_largest_presentation_is_skipped(tmp_path: Path) -> None:
    file = PresentationFile(tmp_path / FILE_NAME)
    file.write(saved(index=1))
    big = bytearray(encode_slot(b"{}", 99))
    big[12:16] = (MAX_FILE_BYTES + 1).to_bytes(4)
    with file.path.open("r+b") as f:
        f.seek(3 * SLOT_BYTES)
        f.write(big)
    assert PresentationFile(file.path).load() == saved(index=1)


def test_a_presentation_saved_by_an_earlier_version_is_read_once(tmp_path: Path) -> None:
    (tmp_path / LEGACY_FILE_NAME).write_bytes(encode_saved(saved(index=2)))
    assert PresentationFile(tmp_path / FILE_NAME).load() == saved(index=2)
    assert not (tmp_path / LEGACY_FILE_NAME).exists()
    assert PresentationFile(tmp_path / FILE_NAME).load() is None


def test_a_new_run_goes_on_from_the_newest_generation(tmp_path: Path) -> None:
    first = PresentationFile(tmp_path / FILE_NAME)
    for index in range(5):
        first.write(saved(index=index))
    first.close()
    second = PresentationFile(tmp_path / FILE_NAME)
    second.replace(saved(index=1))
    assert PresentationFile(tmp_path / FILE_NAME).load() == saved(index=1)


def test_decode_accepts_an_integer_time() -> None:
    obj = json.loads(encode_saved(saved()))
    obj["saved_at_s"] = 1_790_000_000
    assert decode_saved(json.dumps(obj).encode()).saved_at_s == NOW_S


def test_refusal() -> None:
    def stored(sha: str) -> bool:
        return sha != "ab" * 32

    assert refusal(saved(), wall_s=NOW_S + RESUME_MAX_AGE_S, has_blob=stored) is None
    assert refusal(saved(), wall_s=NOW_S - 5, has_blob=stored) is None  # clock stepped back
    too_old = refusal(saved(), wall_s=NOW_S + RESUME_MAX_AGE_S + 1, has_blob=stored)
    assert too_old is not None
    assert "saved 601 s ago" in too_old
    assert refusal(saved(), wall_s=NOW_S - RESUME_MAX_AGE_S - 1, has_blob=stored) is not None
    missing = refusal(saved(VIDEO_LESSON, 1), wall_s=NOW_S, has_blob=stored)
    assert missing is not None
    assert "'Фильм'" in missing
    assert refusal(saved(VIDEO_LESSON, 1), wall_s=NOW_S, has_blob=lambda sha: True) is None


def test_needs_writing() -> None:
    slide = saved(position_ms=1_000)
    assert not needs_writing(None, None)
    assert needs_writing(None, slide)
    assert needs_writing(slide, None)
    # A still slide: only its time and position changed, within the resave interval.
    later = replace(slide, saved_at_s=NOW_S + RESAVE_INTERVAL_S - 1, position_ms=60_000)
    assert not needs_writing(later, slide)
    assert needs_writing(replace(later, saved_at_s=NOW_S + RESAVE_INTERVAL_S), slide)
    assert needs_writing(replace(later, saved_at_s=NOW_S - 1), slide)  # clock stepped back
    assert needs_writing(replace(slide, index=3), slide)
    assert needs_writing(replace(slide, blanked=True), slide)
    # A video continues from its position: a new position is written.
    film = saved(VIDEO_LESSON, 0, position_ms=1_000)
    assert needs_writing(replace(film, saved_at_s=NOW_S + 2, position_ms=3_000), film)
    assert not needs_writing(replace(film, saved_at_s=NOW_S + 2), film)


def test_the_writer_writes_the_newest_and_removes_on_none(tmp_path: Path) -> None:
    writer = PresentationWriter(PresentationFile(tmp_path / FILE_NAME))
    try:
        for index in range(4):
            writer.save(saved(index=index))
        assert writer.flush()
        assert writer.file.load() == saved(index=3)
        writer.save(None)
        assert writer.flush()
        assert PresentationFile(writer.file.path).load() is None
    finally:
        writer.close()


def test_the_writer_removes_a_file_left_by_an_earlier_run(tmp_path: Path) -> None:
    PresentationFile(tmp_path / FILE_NAME).write(saved())
    writer = PresentationWriter(PresentationFile(tmp_path / FILE_NAME))
    writer.save(None)
    writer.close()
    assert PresentationFile(tmp_path / FILE_NAME).load() is None


def test_a_failing_write_is_logged_once_and_the_next_one_succeeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "state"
    writer = PresentationWriter(PresentationFile(folder / FILE_NAME))  # folder missing
    try:
        with caplog.at_level(logging.INFO, logger="kiosk.resume"):
            writer.save(saved(index=0))
            assert writer.flush()
            writer.save(saved(index=1))
            assert writer.flush()
            folder.mkdir()
            writer.save(saved(index=1))
            assert writer.flush()
        failures = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(failures) == 1
        assert "cannot save the presentation" in failures[0].getMessage()
        assert "saved again" in caplog.text
        assert writer.file.load() == saved(index=1)
    finally:
        writer.close()


# --------------------------------------------------------------------------- kiosks


def write_saved(state: Path, value: SavedPresentation) -> None:
    state.mkdir(parents=True, exist_ok=True)
    PresentationFile(state / FILE_NAME).write(value)


async def test_casting_and_moving_keep_the_file_and_stop_removes_it(kiosk: KioskThread) -> None:
    assert kiosk.app is not None
    writer = kiosk.app.presentation
    async with await teacher(kiosk) as client:
        await client.cast(text_lesson("Один", "Два", "Три", "Четыре"))
        await client.control("goto", index=2)
        # Replaced before the status went out: a kill now would bring back item 3.
        early = PresentationFile(writer.file.path).load()
        assert early is not None
        assert early.index == 2
        await client.control("blank")
        assert writer.flush()
        value = writer.file.load()
        assert value is not None
        assert (value.lesson, value.index, value.blanked) == (LESSON, 2, True)
        assert value.presenter == Presenter(TEACHER.controller_id, TEACHER.name)
        assert abs(value.saved_at_s - time.time()) < 60
        await client.control("stop")
        assert writer.flush()
        assert PresentationFile(writer.file.path).load() is None
        await client.cast(text_lesson("Один"))
        assert writer.flush()
        assert PresentationFile(writer.file.path).load() is not None
        await client.control("next")  # past the last item: the lesson ends
        assert writer.flush()
        assert PresentationFile(writer.file.path).load() is None


async def test_a_kiosk_restarted_mid_lesson_shows_the_same_item(tmp_path: Path) -> None:
    state = tmp_path / "kiosk"
    with KioskThread(state) as kiosk:
        async with await teacher(kiosk) as client:
            await client.cast(text_lesson("Один", "Два", "Три", "Четыре"))
            await client.control("goto", index=2)
            await client.control("pause")
    with KioskThread(state) as kiosk:
        assert kiosk.display.index == 2
        assert kiosk.display.current is not None
        assert kiosk.display.current.title == "Слайд 3"
        async with await admin(kiosk) as client:
            status = await client.status()
            assert (status.state, status.lesson_id, status.index) == ("paused", LESSON.lesson_id, 2)
            assert status.presenter == TEACHER.name
            records = (await client.usage_pull(0)).records
    # The first run closed its interval at its stop; the second opened a new one.
    assert [(r.item_index, r.end_reason) for r in records] == [(0, "goto"), (2, "shutdown")]


async def test_the_presenter_keeps_the_resumed_panel_within_the_grace(tmp_path: Path) -> None:
    state = tmp_path / "kiosk"
    write_saved(state, saved(saved_at_s=time.time()))
    with KioskThread(state) as kiosk:
        async with await teacher(kiosk, OTHER) as other:
            with pytest.raises(RemoteError) as info:
                await other.control("next")
            assert info.value.code == "busy"
            assert TEACHER.name in str(info.value)
        async with await teacher(kiosk) as presenter:
            await presenter.control("next")
            assert (await presenter.status()).index == 3


async def test_after_the_grace_another_teacher_may_take_the_resumed_panel(tmp_path: Path) -> None:
    state = tmp_path / "kiosk"
    write_saved(state, saved(saved_at_s=time.time()))
    with KioskThread(state, presenter_grace_s=0.0) as kiosk:
        async with await teacher(kiosk, OTHER) as other:
            await other.cast(text_lesson("Моё"))
            assert (await other.status()).presenter == OTHER.name


def test_a_video_continues_from_its_position_and_heartbeats_keep_it(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "media", 10**6)
    sha = store.put_bytes(b"not really a video")
    item = ManifestItem("video", "Фильм", sha256=sha, size_bytes=18)
    lesson = LessonManifest("film", "Фильм", [item, ManifestItem("text", "Т", text="т")])
    clock = ManualClock(mono_s=100.0, wall_s=NOW_S)
    display = HeadlessDisplay()
    writer = PresentationWriter(PresentationFile(tmp_path / FILE_NAME))
    service = KioskService(
        Identity("k-test", "Каб. 1", "Школа", "1"),
        store=store,
        usage=UsageLog(None, kiosk_id="k-test", room="Каб. 1"),
        display=display,
        access=Access(
            TokenStore(tmp_path / "tokens.json"),
            kiosk_id="k-test",
            fingerprint="f",
            admin_secret=None,
            now=clock.monotonic(),
        ),
        clock=clock,
        heartbeat_s=2.0,
        presentation=writer,
    )
    try:
        assert service.resume(saved(lesson, 0, position_ms=5_000, volume=30))
        assert display.index == 0
        assert display.video_commands == [
            VideoCommand("volume", volume=30),
            VideoCommand("seek", 5_000),
        ]
        assert store.pinned == frozenset({sha})
        service.tick()  # the first heartbeat: nothing moved yet, nothing written
        clock.advance(2.5)
        service.tick()  # a heartbeat: the playing video's position is saved
        value = writer.file.load()
        assert value is not None
        assert (value.index, value.position_ms, value.volume) == (0, 7_500, 30)
        assert value.saved_at_s == NOW_S + 2.5
    finally:
        writer.close()


async def test_a_lesson_whose_media_is_gone_is_not_resumed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "kiosk"
    write_saved(state, saved(VIDEO_LESSON, 0, saved_at_s=time.time()))
    with caplog.at_level(logging.WARNING, logger="kiosk.service"), KioskThread(state) as kiosk:
        assert kiosk.app is not None
        assert kiosk.display.current is None
        assert kiosk.sync(kiosk.app.service.status).state == "idle"
        assert kiosk.app.presentation.flush()
        assert PresentationFile(state / FILE_NAME).load() is None
    assert "no longer stored" in caplog.text


async def test_a_presentation_saved_long_ago_is_not_resumed(tmp_path: Path) -> None:
    state = tmp_path / "kiosk"
    write_saved(state, saved(saved_at_s=time.time() - RESUME_MAX_AGE_S - 60))
    with KioskThread(state) as kiosk:
        assert kiosk.app is not None
        assert kiosk.sync(kiosk.app.service.status).state == "idle"


# --------------------------------------------------------------------------- kill -9


@pytest.mark.slow
async def test_a_killed_kiosk_comes_back_on_the_same_item_with_a_continuous_log(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    config = "heartbeat_s = 0.1\n"
    with kiosk_process(state, config=config) as (proc, address):
        async with await KioskClient.connect(address, TEACHER) as client:
            creds = await client.pair(ADMIN_SECRET, role="admin")
            await client.cast(text_lesson("Один", "Два", "Три", "Четыре"))
            await client.control("goto", index=2)
            await wait_for_heartbeats(state, 2, count=2)  # item 3 on screen for a while
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    play = open_play(state, 2)  # as the power cut left it
    assert play is not None
    start_mono_s, last_seen_at, last_seen_mono_s = play
    assert last_seen_mono_s is not None
    started = time.monotonic()
    with kiosk_process(state, config=config) as (_, address):
        async with await KioskClient.connect(address, TEACHER, credentials=creds) as client:
            assert client.welcome is not None
            status = client.welcome.status
            elapsed_s = time.monotonic() - started
            print(f"\nprocess start → item 3 reported playing: {elapsed_s:.2f} s", file=sys.stderr)
            assert (status.state, status.lesson_id, status.index) == (
                "playing",
                LESSON.lesson_id,
                2,
            )
            assert status.presenter == TEACHER.name
            await client.control("next")  # closes the resumed interval
            batch = await client.usage_pull(0)
    records = batch.records
    assert [(r.lesson_id, r.item_index, r.end_reason) for r in records] == [
        (LESSON.lesson_id, 0, "goto"),
        (LESSON.lesson_id, 2, "power_loss"),
        (LESSON.lesson_id, 2, "next"),
    ]
    killed, resumed = records[1], records[2]
    # Closed at its last heartbeat, not at its start.
    assert killed.ended_at is not None
    assert killed.ended_at == last_seen_at
    assert killed.duration_ms == round((last_seen_mono_s - start_mono_s) * 1000) > 0
    assert resumed.started_at > killed.ended_at  # nothing counted twice
    assert resumed.clock_offset_ms == killed.clock_offset_ms
    assert resumed.teacher_id == killed.teacher_id == TEACHER.controller_id
    db = SchoolDb(None)
    stored = db.ingest(batch.kiosk_id, batch)
    assert (stored.added, stored.duplicates) == (3, 0)
    assert db.verify() == []


def test_a_burst_of_saves_hands_over_one_flush_to_the_usage_writer(tmp_path: Path) -> None:
    usage = UsageWriter(UsageLog(tmp_path / "u.sqlite", kiosk_id="k", room="r"))
    handed: list[Callable[[], None]] = []

    def run_after(job: Callable[[], None]) -> None:
        handed.append(job)
        usage.after_commit(job)

    writer = PresentationWriter(PresentationFile(tmp_path / FILE_NAME), run_after=run_after)
    try:
        with usage.batch():  # as the service does: the flush waits for the batch
            for index in range(4):
                writer.save(saved(index=index))
            assert len(handed) == 1
            assert not writer.flush(0.0)  # held in the batch: not flushed yet
        assert writer.flush()
        assert writer.file.load() == saved(index=3)
        writer.save(None)
        writer.close()  # flushes on the usage writer's thread
        assert len(handed) == 2
        assert PresentationFile(writer.file.path).load() is None
    finally:
        usage.close_db()
    assert "presentation-sync" not in {thread.name for thread in threading.enumerate()}


async def test_a_kiosk_commits_its_presentation_with_the_usage_records(tmp_path: Path) -> None:
    state = tmp_path / "kiosk"
    with KioskThread(state) as kiosk:
        assert kiosk.app is not None
        names = {thread.name for thread in threading.enumerate()}
        assert "usage-writer" in names
        assert "presentation-sync" not in names  # one flushing thread, not two
        async with await teacher(kiosk) as presenter:
            await presenter.cast(text_lesson("один", "два", "три"))
            await presenter.control("next")
            assert kiosk.app.presentation.flush()
            with closing(sqlite3.connect(state / "usage.sqlite")) as db:
                (row,) = db.execute("SELECT value FROM meta WHERE key = 'presentation'")
            copy = decode_slot(row[0])
            assert copy is not None
            assert copy == PresentationFile(state / FILE_NAME).newest()
            assert decode_saved(copy[1]).index == 1


def test_a_power_loss_that_lost_the_file_brings_back_the_logs_copy(tmp_path: Path) -> None:
    def writer_on(usage: UsageWriter) -> PresentationWriter:
        return PresentationWriter(PresentationFile(tmp_path / FILE_NAME), log=usage)

    usage = UsageWriter(UsageLog(tmp_path / "u.sqlite", kiosk_id="k", room="r"))
    writer = writer_on(usage)
    for index in range(4):
        with usage.batch():
            writer.save(saved(index=index))
    assert writer.flush()
    writer.close()
    usage.close_db()
    (tmp_path / FILE_NAME).unlink()  # never flushed: a power loss may take it all
    usage = UsageWriter(UsageLog(tmp_path / "u.sqlite", kiosk_id="k", room="r"))
    try:
        writer = writer_on(usage)
        assert writer.load() == saved(index=3)
        writer.save(saved(index=1))  # numbered after the log's copy
        assert writer.flush()
        assert writer_on(usage).load() == saved(index=1)
        writer.close()
    finally:
        usage.close_db()


def test_a_kill_before_the_commit_brings_back_the_files_newer_version(tmp_path: Path) -> None:
    log = UsageLog(tmp_path / "u.sqlite", kiosk_id="k", room="r")
    try:
        log.save_presentation(encode_slot(encode_saved(saved(index=1)), 1))
        file = PresentationFile(tmp_path / FILE_NAME)
        file.advance_to(1)
        file.replace(saved(index=2))  # written before the status went out, then killed
        file.close()
        writer = PresentationWriter(PresentationFile(tmp_path / FILE_NAME), log=_Committed(log))
        assert writer.load() == saved(index=2)
        writer.close()
    finally:
        log.close_db()


class _Committed:
    """A usage log as the presentation writer sees it, writing at once (no thread)."""

    def __init__(self, log: UsageLog) -> None:
        self.log = log

    def save_presentation(self, data: bytes) -> None:
        self.log.save_presentation(data)

    def saved_presentation(self) -> bytes | None:
        return self.log.saved_presentation()

    def flush(self, timeout_s: float = 0.0) -> None:
        pass


@pytest.fixture
def encoded(monkeypatch: pytest.MonkeyPatch) -> list[Cast]:
    """Every ``cast`` the saved presentation has the codec encode, in order."""
    casts: list[Cast] = []

    def counting(msg: Cast) -> str:
        casts.append(msg)
        return codec_encode(msg)

    monkeypatch.setattr(resume, "encode", counting)
    return casts


def test_saves_of_one_lesson_encode_it_once_and_read_back_as_the_codec_wrote_them(
    encoded: list[Cast],
) -> None:
    lesson = text_lesson("Один", "Два «три»", "Четыре").manifest()
    presenter = Presenter("c-1", "Учитель")
    cast_text = CastText()
    for index, offset in [(0, 0), (2, -1500), (1, 250)]:
        saved = SavedPresentation(
            lesson=lesson,
            index=index,
            presenter=presenter,
            saved_at_s=1000.5,
            position_ms=7,
            clock_offset_ms=offset,
        )
        raw = encode_saved(saved, cast_text)
        cast = Cast(id=0, lesson=lesson, start_index=index, clock_offset_ms=offset)
        assert json.loads(raw)["cast"] == json.loads(codec_encode(cast))
        assert decode_saved(raw) == saved
    assert len(encoded) == 1  # the lesson's text was made once for three saves


def test_kiosks_sharing_a_process_each_encode_their_own_lesson_once(
    tmp_path: Path, encoded: list[Cast]
) -> None:
    files = [PresentationFile(tmp_path / f"{n}.slots") for n in range(2)]
    lessons = [text_lesson("Один", "Два").manifest(), text_lesson("Три", "Четыре").manifest()]
    try:
        for index in [0, 1, 0, 1]:  # the two panels' controls come in turns
            for file, lesson in zip(files, lessons, strict=True):
                file.write(saved(lesson, index))
                loaded = file.load()
                assert loaded is not None
                assert (loaded.lesson, loaded.index) == (lesson, index)
        assert len(encoded) == 2  # once per panel's lesson, not once per save
    finally:
        for file in files:
            file.close()
