"""The media quota, the usage log's disk floor and a full disk, attacked with plain clients.

Attackers are bare websockets clients (``tests.helpers.raw_connect``), paired like any
teacher: pairing is not the weakness here, the panel's disk is. Tests that need a real
small disk mount a tmpfs of their own (root only; skipped with the reason otherwise).
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from websockets.asyncio.client import ClientConnection

from controller.cli import cli
from controller.schooldb import SchoolDb
from controller.texts import error_text
from kiosk.config import ConfigError, KioskConfig, load_config
from kiosk.usage import DisplayStart, UsageLog
from kiosk.usage_writer import UsageWriter
from media.lesson import Lesson, sample_lesson_path
from media.store import STALE_PARTIAL_S, USAGE_LOG_FLOOR_BYTES, BlobStore
from protocol import limits
from protocol.codec import encode, encode_chunk
from protocol.errors import (
    DiskFullError,
    QuotaExceededError,
    RemoteError,
    UsageLogError,
    remote_error,
)
from protocol.messages import Prepare
from protocol.usage_chain import load_public_key, verify_chain
from tests.helpers import RAW, blob_lesson, pair, raw_connect, recv_json, text_lesson
from tests.kiosks import KioskThread, admin, teacher

MiB = 1024 * 1024
CHUNK = limits.CHUNK_SIZE_BYTES


# --------------------------------------------------------------------------- helpers


async def send_prepare(ws: ClientConnection, lesson: Lesson, req_id: int = 2) -> dict[str, Any]:
    """Send ``prepare`` for ``lesson``; return the kiosk's answer (``need`` or ``error``)."""
    await ws.send(encode(Prepare(id=req_id, lesson=lesson.manifest())))
    return await recv_json(ws)


async def send_blob(ws: ClientConnection, lesson: Lesson, *, upto: int | None = None) -> None:
    """Send the chunks of the lesson's only blob (up to byte ``upto``) without waiting."""
    ((sha, path),) = lesson.blob_paths().items()
    data = path.read_bytes()[:upto]
    for offset in range(0, len(data), CHUNK):
        await ws.send(encode_chunk(sha, offset, data[offset : offset + CHUNK]))


async def until_reply(ws: ClientConnection, req_id: int) -> dict[str, Any]:
    """The reply to request ``req_id`` (``ok`` or ``error``), skipping other frames."""
    while True:
        msg = await recv_json(ws)
        if msg.get("re") == req_id and msg["type"] in ("ok", "error"):
            return msg


async def round_trip(ws: ClientConnection) -> None:
    """Wait until the kiosk handled everything sent before (a ``get_status`` answered)."""
    await ws.send(json.dumps({"type": "get_status", "id": 99}))
    await until_status(ws)


async def until_status(ws: ClientConnection) -> None:
    while True:
        msg = await recv_json(ws)
        if msg["type"] == "status" and msg.get("re") == 99:
            return


def lessons(tmp_path: Path, *sizes: int) -> list[Lesson]:
    """One single-blob lesson per size, each of distinct random bytes."""
    out = []
    for i, size in enumerate(sizes):
        folder = tmp_path / f"lesson{i}"
        folder.mkdir()
        out.append(blob_lesson(folder, [size], title=f"Урок {i}"))
    return out


def only_sha(lesson: Lesson) -> str:
    (sha,) = lesson.blob_paths()
    return sha


# --------------------------------------------------------------------------- the quota


async def test_concurrent_prepares_cannot_together_exceed_the_quota(tmp_path: Path) -> None:
    quota = 5 * MiB
    four = lessons(tmp_path, *[2 * MiB] * 4)
    with KioskThread(tmp_path / "k", quota_bytes=quota) as kiosk:
        assert kiosk.app is not None
        store = kiosk.app.store
        creds = await pair(kiosk.address, kiosk.pin(), RAW)
        conns = [await raw_connect(kiosk.address, token=creds.token) for _ in four]
        try:
            answers = await asyncio.gather(
                *(send_prepare(ws, lesson) for ws, lesson in zip(conns, four, strict=True))
            )
            kinds = sorted(a["type"] for a in answers)
            assert kinds == ["error", "error", "need", "need"]
            for answer in answers:
                if answer["type"] == "error":
                    assert answer["code"] == "quota_exceeded"
                    assert "send a smaller lesson" in answer["message"]
            # Every connection sends its bytes anyway, all at once.
            await asyncio.gather(
                *(send_blob(ws, lesson) for ws, lesson in zip(conns, four, strict=True))
            )
            for ws, answer in zip(conns, answers, strict=True):
                if answer["type"] == "need":
                    assert (await until_reply(ws, 2))["type"] == "ok"
                else:
                    await round_trip(ws)
            stored = [lesson for lesson in four if store.has(only_sha(lesson))]
            assert len(stored) == 2
            assert kiosk.sync(store.used_bytes) == 4 * MiB <= quota
            assert kiosk.sync(lambda: store.reservations) == {}
        finally:
            for ws in conns:
                await ws.close()


async def test_a_refused_prepare_keeps_the_lesson_on_screen(tmp_path: Path) -> None:
    shown, held, refused = lessons(tmp_path, 2 * MiB, 2 * MiB, 2 * MiB)
    with KioskThread(tmp_path / "k", quota_bytes=5 * MiB) as kiosk:
        assert kiosk.app is not None
        store = kiosk.app.store
        async with await teacher(kiosk) as client:
            await client.cast(shown)
        creds = await pair(kiosk.address, kiosk.pin(), RAW)
        holder = await raw_connect(kiosk.address, token=creds.token)
        other = await raw_connect(kiosk.address, token=creds.token)
        try:
            assert (await send_prepare(holder, held))["type"] == "need"  # holds 2 MiB
            answer = await send_prepare(other, refused)
            assert answer["type"] == "error"
            assert answer["code"] == "quota_exceeded"
            assert "wait for the other transfer to finish" in answer["message"]
            assert store.has(only_sha(shown))
            on_screen = kiosk.sync(lambda: kiosk.display.current)
            assert on_screen is not None
            assert on_screen.sha256 == only_sha(shown)
            # Once the holder is done, its blob may make room; the one on screen may not.
            await send_blob(holder, held)
            assert (await until_reply(holder, 2))["type"] == "ok"
            assert (await send_prepare(other, refused, req_id=3))["type"] == "need"
            assert not store.has(only_sha(held))
            assert store.has(only_sha(shown))
        finally:
            await holder.close()
            await other.close()


async def test_reservations_end_with_the_connection_and_with_a_failed_transfer(
    tmp_path: Path,
) -> None:
    first, second, third = lessons(tmp_path, 2 * MiB, 2 * MiB, 1 * MiB)
    with KioskThread(tmp_path / "k", quota_bytes=3 * MiB) as kiosk:
        assert kiosk.app is not None
        store = kiosk.app.store
        creds = await pair(kiosk.address, kiosk.pin(), RAW)
        ws = await raw_connect(kiosk.address, token=creds.token)
        assert (await send_prepare(ws, first))["type"] == "need"
        await send_blob(ws, first, upto=CHUNK)
        await round_trip(ws)
        assert kiosk.sync(lambda: store.reservations) == {only_sha(first): 2 * MiB}
        await ws.close()  # gone half-way: 1 MiB stays as a resumable partial

        ws = await raw_connect(kiosk.address, token=creds.token)
        try:
            assert (await send_prepare(ws, second))["type"] == "need"  # 1 + 2 MiB fit
            data = bytearray(next(iter(second.blob_paths().values())).read_bytes())
            data[-1] ^= 0xFF  # damaged on the way: the hash check fails at the end
            sha = only_sha(second)
            await ws.send(encode_chunk(sha, 0, bytes(data[:CHUNK])))
            await ws.send(encode_chunk(sha, CHUNK, bytes(data[CHUNK:])))
            failed = await until_reply(ws, 2)
            assert failed["code"] == "checksum_mismatch"
            assert kiosk.sync(lambda: store.reservations) == {}
            assert (await send_prepare(ws, third, req_id=3))["type"] == "need"
        finally:
            await ws.close()


# --------------------------------------------------------------------------- stale partials


class Clock:
    """A wall clock in nanoseconds that starts now and moves only when told."""

    def __init__(self) -> None:
        self.now_ns = time.time_ns()

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += round(seconds * 1e9)


def test_a_stale_unreserved_partial_is_evicted_like_a_complete_blob(tmp_path: Path) -> None:
    clock = Clock()
    store = BlobStore(tmp_path, quota_bytes=1000, floor_bytes=0, clock_ns=clock)
    abandoned = "a" * 64
    store.reserve({abandoned: 600})
    store.append(abandoned, 0, b"x" * 500)
    store.unreserve(abandoned)  # its connection closed
    clock.advance(1)
    recent = store.put_bytes(b"r" * 300)  # a complete blob used after the partial
    new = "b" * 64

    clock.advance(STALE_PARTIAL_S - 2)
    with pytest.raises(QuotaExceededError):
        store.reserve({new: 600})  # the partial may still be resumed
    assert store.partial_bytes(abandoned) == 500
    assert store.reservations == {}

    clock.advance(2)
    assert store.reserve({new: 600}) == [abandoned]  # least recently used first
    assert store.partial_bytes(abandoned) == 0
    assert store.has(recent)
    assert store.reservations == {new: 600}


def test_a_partial_reserved_by_a_live_transfer_is_never_evicted(tmp_path: Path) -> None:
    clock = Clock()
    store = BlobStore(tmp_path, quota_bytes=1000, floor_bytes=0, clock_ns=clock)
    slow = "c" * 64
    store.reserve({slow: 600})
    store.append(slow, 0, b"x" * 100)
    clock.advance(10 * STALE_PARTIAL_S)
    with pytest.raises(QuotaExceededError):
        store.reserve({"d" * 64: 600})
    store.append(slow, 100, b"y" * 500)
    assert store.partial_bytes(slow) == 600


async def test_an_abandoned_transfer_no_longer_blocks_later_prepares(tmp_path: Path) -> None:
    abandoned, later = lessons(tmp_path, 3 * MiB, 3 * MiB)
    with KioskThread(tmp_path / "k", quota_bytes=4 * MiB) as kiosk:
        assert kiosk.app is not None
        store = kiosk.app.store
        creds = await pair(kiosk.address, kiosk.pin(), RAW)
        ws = await raw_connect(kiosk.address, token=creds.token)
        assert (await send_prepare(ws, abandoned))["type"] == "need"
        await send_blob(ws, abandoned, upto=2 * CHUNK)
        await round_trip(ws)
        await ws.close()

        ws = await raw_connect(kiosk.address, token=creds.token)
        try:
            assert (await send_prepare(ws, later))["code"] == "quota_exceeded"
            # Time passes without an append: the partial's mtime is its last append.
            part = store.root / "partial" / f"{only_sha(abandoned)}.part"
            old = part.stat().st_mtime - STALE_PARTIAL_S - 1
            os.utime(part, (old, old))
            assert (await send_prepare(ws, later, req_id=3))["type"] == "need"
            assert not part.exists()
            await send_blob(ws, later)
            assert (await until_reply(ws, 3))["type"] == "ok"
            assert store.has(only_sha(later))
        finally:
            await ws.close()


# --------------------------------------------------------------------------- the floor


class Disk:
    """A disk of ``size_bytes`` holding the store and whatever else is put on it."""

    def __init__(self, root: Path, size_bytes: int) -> None:
        self.root = root
        self.size_bytes = size_bytes
        self.others_bytes = 0

    def free_bytes(self) -> int:
        used = sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())
        return self.size_bytes - used - self.others_bytes


def test_reserve_never_takes_the_floor(tmp_path: Path) -> None:
    disk = Disk(tmp_path, 2000)
    store = BlobStore(tmp_path, quota_bytes=10_000, floor_bytes=1000, free_bytes=disk.free_bytes)
    old = store.put_bytes(b"o" * 400)
    with pytest.raises(DiskFullError) as info:
        store.reserve({"e" * 64: 1700})  # the quota has room; the disk does not
    assert info.value.code == "no_space"
    assert "free disk space on the panel or send a smaller lesson" in str(info.value)
    assert store.has(old)  # nothing evicted when room cannot be made
    assert store.reservations == {}
    assert store.reserve({"e" * 64: 1000}) == [old]  # evicting the old blob is enough
    assert disk.free_bytes() - store.reserved_bytes() == store.floor_bytes
    with pytest.raises(DiskFullError):
        store.reserve({"f" * 64: 1})  # one byte more would be the usage log's


def test_append_refuses_bytes_below_the_floor(tmp_path: Path) -> None:
    disk = Disk(tmp_path, 3000)
    store = BlobStore(tmp_path, quota_bytes=10_000, floor_bytes=1000, free_bytes=disk.free_bytes)
    sha = "e" * 64
    store.reserve({sha: 1500})
    store.append(sha, 0, b"x" * 500)
    disk.others_bytes = 1200  # something else filled the disk meanwhile
    with pytest.raises(DiskFullError) as info:
        store.append(sha, 500, b"y" * 500)
    assert info.value.sha256 == sha
    assert store.partial_bytes(sha) == 500


def test_put_bytes_keeps_the_floor(tmp_path: Path) -> None:
    disk = Disk(tmp_path, 1500)
    store = BlobStore(tmp_path, quota_bytes=10_000, floor_bytes=1000, free_bytes=disk.free_bytes)
    store.pin([store.put_bytes(b"a" * 500)])
    with pytest.raises(DiskFullError):
        store.put_bytes(b"b")
    store.pin([])
    store.put_bytes(b"b")  # by evicting the older blob


def test_the_floor_is_a_setting(tmp_path: Path) -> None:
    config = tmp_path / "kiosk.toml"
    assert KioskConfig().usage_floor_bytes == USAGE_LOG_FLOOR_BYTES == 64 * MiB
    config.write_text("usage_floor_mb = 16\n")
    assert load_config(config).usage_floor_bytes == 16 * MiB
    config.write_text("usage_floor_mb = -1\n")
    with pytest.raises(ConfigError, match="usage_floor_mb must not be negative"):
        load_config(config)
    with pytest.raises(ValueError, match="floor_bytes"):
        BlobStore(tmp_path, 1000, floor_bytes=-1)


# --------------------------------------------------------------------------- a real small disk


@contextmanager
def small_disk(path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` MiB mounted at ``path`` for the test (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    path.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(path: Path) -> Path:
    """Write a file at ``path`` until its disk is full; return it (delete it to free)."""
    block = b"\0" * (64 * 1024)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    return path
                block = block[: len(block) // 2]
    finally:
        os.close(fd)


@pytest.mark.slow
async def test_media_never_takes_the_usage_logs_floor_on_a_small_disk(tmp_path: Path) -> None:
    big, shown, another, small = lessons(tmp_path, 26 * MiB, 12 * MiB, 14 * MiB, 2 * MiB)
    with (
        small_disk(tmp_path / "disk", 32) as disk,
        KioskThread(disk / "k", quota_bytes=10**9, usage_floor_bytes=8 * MiB) as kiosk,
    ):
        assert kiosk.app is not None
        async with await teacher(kiosk) as client:
            with pytest.raises(RemoteError, match="disk is nearly full") as info:
                await client.prepare(big)  # the quota has room; the disk has not
            assert info.value.code == "no_space"
            await client.cast(shown)
            with pytest.raises(RemoteError, match="free disk space on the panel") as info:
                await client.prepare(another)
            assert info.value.code == "no_space"
            st = os.statvfs(disk)
            assert st.f_bavail * st.f_frsize >= 8 * MiB
            assert kiosk.app.store.has(only_sha(shown))
        # Room was reserved, then something else fills the disk: the chunks are refused.
        creds = await pair(kiosk.address, kiosk.pin(), RAW)
        ws = await raw_connect(kiosk.address, token=creds.token)
        try:
            assert (await send_prepare(ws, small))["type"] == "need"
            filler = fill(disk / "filler")
            await send_blob(ws, small)
            refused = await until_reply(ws, 2)
            assert refused["code"] == "no_space"
            assert kiosk.sync(lambda: kiosk.app.store.reservations) == {}
            assert kiosk.app.store.partial_bytes(only_sha(small)) == 0
            filler.unlink()
        finally:
            await ws.close()
        async with await teacher(kiosk) as client:
            await client.cast(text_lesson("А", "Б"))
            await client.control("next")
        async with await admin(kiosk) as collector:
            records = (await collector.usage_pull(0, 100)).records
        assert [r.content_title for r in records] == ["Видео 1", "Слайд 1"]


@pytest.mark.slow
async def test_a_full_disk_loses_no_display_interval(tmp_path: Path) -> None:
    slides = [f"Слайд {i}" for i in range(120)]
    with (
        small_disk(tmp_path / "disk", 16) as disk,
        KioskThread(disk / "k", quota_bytes=10**9, usage_floor_bytes=0) as kiosk,
    ):
        assert kiosk.app is not None
        writer = kiosk.app.usage
        assert isinstance(writer, UsageWriter)
        async with await admin(kiosk) as collector, await teacher(kiosk) as client:
            await client.cast(text_lesson(*slides))
            for _ in range(10):
                await client.control("next")
            filler = fill(disk / "filler")
            for _ in range(60):  # shown while nothing can be written
                await client.control("next")
            with pytest.raises(UsageLogError, match="cannot write now"):
                await asyncio.to_thread(writer.flush, 5)
            assert writer.stalled
            early = (await collector.usage_pull(0, 1000)).records  # what is on disk
            filler.unlink()
            for _ in range(20):
                await client.control("next")
            await client.control("stop")
            await asyncio.to_thread(writer.wait_for_written, 10)
            records, after = [], 0
            while True:
                batch = await collector.usage_pull(after, 50)
                records += batch.records
                after = batch.last_seq
                if not batch.more:
                    break
        shown = 1 + 10 + 60 + 20
        assert len(records) == shown, f"{shown - len(records)} intervals lost"
        assert len(early) < shown
        assert [r.item_index for r in records] == list(range(shown))
        assert [r.seq for r in records] == list(range(1, shown + 1))
        assert verify_chain(records, load_public_key(batch.public_key)) == []
        school = SchoolDb(tmp_path / "school.sqlite")
        try:
            whole = dataclasses.replace(
                batch, records=records, last_seq=records[-1].seq, more=False
            )
            school.ingest(batch.kiosk_id, whole)
            assert school.verify() == []
        finally:
            school.close()


@pytest.mark.slow
def test_recover_refused_by_a_full_disk_is_kept_and_runs_first(tmp_path: Path) -> None:
    start = DisplayStart("l", "Урок", 0, "text", None, "Слайд", None, "t", "Учитель")
    with small_disk(tmp_path / "disk", 4) as disk:
        path = disk / "usage.sqlite"
        first = UsageLog(path, kiosk_id="k", room="r")
        first.open(start, wall_s=1000.0, mono_s=0.0)
        first.heartbeat(wall_s=1010.0, mono_s=10.0)
        first.close_db()  # a power loss: the interval stays open
        log = UsageLog(path, kiosk_id="k", room="r")
        filler = fill(disk / "filler")
        writer = UsageWriter(log, retry_first_s=0.001, retry_max_s=0.002)
        try:
            assert writer.recover() == 0  # refused by the disk: queued, not lost
            uuid = writer.open(start, wall_s=1100.0, mono_s=100.0)
            writer.close(uuid, wall_s=1101.0, mono_s=101.0, reason="stop")
            filler.unlink()
            writer.wait_for_written(5)
            records = writer.records_after(0, 10)
            assert [r.end_reason for r in records] == ["power_loss", "stop"]
            assert [r.duration_ms for r in records] == [10_000, 1_000]
            assert verify_chain(records, load_public_key(writer.public_key)) == []
        finally:
            writer.close_db()


def test_the_teacher_reads_what_to_do_in_russian(tmp_path: Path) -> None:
    with KioskThread(tmp_path / "k", quota_bytes=50_000) as kiosk:
        pin = kiosk.pin()
        paired = CliRunner().invoke(cli, ["pair", kiosk.address, "--pin", pin])
        assert paired.exit_code == 0, paired.output
        result = CliRunner().invoke(cli, ["cast", str(sample_lesson_path()), "--to", kiosk.address])
    assert result.exit_code == 1
    assert "В кэше панели сейчас нет места для этого урока" in result.output
    assert "отправьте урок поменьше" in result.output
    full = error_text(remote_error("no_space", "Каб. 12: the panel's disk is nearly full"))
    assert full.startswith("Диск панели почти заполнен")
