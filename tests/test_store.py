"""The content-addressed blob store: media.store."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from media.chunks import AppendBytes, BlobVerified, ChunkAssembler
from media.store import WRITEBACK_BYTES, BlobStore, start_writeback
from protocol.codec import Chunk
from protocol.errors import (
    BlobTooLargeError,
    MediaError,
    QuotaExceededError,
    UnexpectedMessageError,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Clock:
    """A fake wall clock in nanoseconds that moves only when told."""

    def __init__(self) -> None:
        self.now_ns = 1_000_000_000

    def __call__(self) -> int:
        return self.now_ns


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> BlobStore:
    return BlobStore(tmp_path / "store", quota_bytes=1000, floor_bytes=0, clock_ns=clock)


# --------------------------------------------------------------------------- receiving


def test_append_commit_has_path(store: BlobStore, tmp_path: Path) -> None:
    data = b"hello, classroom"
    name = sha(data)
    assert not store.has(name)
    store.reserve({name: len(data)})
    store.append(name, 0, data[:5])
    store.append(name, 5, data[5:])
    assert store.partial_bytes(name) == len(data)
    assert not store.has(name)

    path = store.commit(name, len(data))

    assert path == tmp_path / "store" / "blobs" / name[:2] / name
    assert store.has(name)
    assert store.path(name) == path
    assert path.read_bytes() == data
    assert store.partial_bytes(name) == 0
    assert store.verify(name)


def test_flush_before_the_last_chunk_leaves_commit_unchanged(store: BlobStore) -> None:
    data = b"flushed first, committed after"
    name = sha(data)
    assert store.reservation(name) == 0
    store.reserve({name: len(data)})
    assert store.reservation(name) == len(data)
    store.append(name, 0, data[:10])
    store.flush(name)  # what the kiosk does without its lock before the last chunk
    store.append(name, 10, data[10:])
    assert store.commit(name, len(data)).read_bytes() == data
    assert store.reservation(name) == 0
    store.flush(name)  # the partial is gone (committed, or discarded meanwhile): no error
    assert store.has(name)


def test_the_disk_is_asked_to_write_each_full_window_of_a_partial(tmp_path: Path) -> None:
    asked: list[tuple[int, int]] = []
    store = BlobStore(
        tmp_path,
        quota_bytes=4 * WRITEBACK_BYTES,
        floor_bytes=0,
        writeback=lambda fd, offset, length: asked.append((offset, length)),
    )
    piece = 1024 * 1024
    data = bytes(2 * WRITEBACK_BYTES + piece)
    name = sha(data)
    store.reserve({name: len(data)})
    offset = 0
    for _ in range(WRITEBACK_BYTES // piece - 1):  # one piece short of the first window
        store.append(name, offset, data[offset : offset + piece])
        offset += piece
    assert asked == []
    store.append(name, offset, data[offset : offset + piece + 1])  # a byte past it
    offset += piece + 1
    assert asked == [(0, WRITEBACK_BYTES)]
    while offset < len(data):
        end = min(offset + piece, len(data))
        store.append(name, offset, data[offset:end])
        offset = end
    assert asked == [(0, WRITEBACK_BYTES), (WRITEBACK_BYTES, WRITEBACK_BYTES)]
    assert store.commit(name, len(data)).read_bytes() == data


def test_the_systems_writeback_leaves_the_bytes_as_written(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, quota_bytes=2 * WRITEBACK_BYTES, floor_bytes=0)
    data = hashlib.sha256(b"seed").digest() * ((WRITEBACK_BYTES + 4096) // 32)
    name = sha(data)
    store.reserve({name: len(data)})
    half = len(data) // 2
    store.append(name, 0, data[:half])
    store.append(name, half, data[half:])  # crosses the window: the real call is made
    assert store.commit(name, len(data)).read_bytes() == data
    assert store.verify(name)
    start_writeback(-1, 0, WRITEBACK_BYTES)  # a bad descriptor: nothing happens, no error


def test_append_at_wrong_offset(store: BlobStore) -> None:
    name = sha(b"abc")
    store.reserve({name: 3})
    store.append(name, 0, b"a")
    with pytest.raises(UnexpectedMessageError, match="offset 0"):
        store.append(name, 0, b"a")
    with pytest.raises(UnexpectedMessageError, match="holds 1 bytes"):
        store.append(name, 2, b"c")
    assert store.partial_bytes(name) == 1


def test_partial_resumes_after_restart(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40
    name = sha(data)
    first = BlobStore(tmp_path, quota_bytes=100_000)
    first.reserve({name: len(data)})
    first.append(name, 0, data[:3000])

    second = BlobStore(tmp_path, quota_bytes=100_000)

    assert second.partial_bytes(name) == 3000
    assert second.partial_hasher(name).hexdigest() == sha(data[:3000])
    assert second.partial_hasher(sha(b"other")).hexdigest() == sha(b"")


def test_commit_with_wrong_size_keeps_partial(store: BlobStore) -> None:
    name = sha(b"abcdef")
    store.reserve({name: 6})
    store.append(name, 0, b"abc")
    with pytest.raises(MediaError, match="has 3 bytes, expected 6"):
        store.commit(name, 6)
    assert not store.has(name)
    assert store.partial_bytes(name) == 3


def test_commit_without_partial(store: BlobStore) -> None:
    with pytest.raises(MediaError, match="no partial"):
        store.commit(sha(b"x"), 1)


def test_discard(store: BlobStore) -> None:
    name = sha(b"abc")
    store.reserve({name: 3})
    store.append(name, 0, b"ab")
    store.discard(name)
    store.discard(name)
    assert store.partial_bytes(name) == 0
    assert store.reservations == {}


def test_path_of_missing_blob(store: BlobStore) -> None:
    with pytest.raises(MediaError, match="not in the store"):
        store.path(sha(b"missing"))
    with pytest.raises(MediaError, match="not in the store"):
        store.verify(sha(b"missing"))
    with pytest.raises(MediaError, match="not in the store"):
        store.touch(sha(b"missing"))


@pytest.mark.parametrize(
    "bad",
    ["../../etc/passwd", "A" * 64, "0" * 63, "0" * 65, "", "0" * 62 + "/x", "g" * 64],
)
def test_bad_sha256_never_becomes_a_path(store: BlobStore, bad: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: store.has(bad),
        lambda: store.path(bad),
        lambda: store.partial_bytes(bad),
        lambda: store.partial_hasher(bad),
        lambda: store.append(bad, 0, b"x"),
        lambda: store.commit(bad, 1),
        lambda: store.discard(bad),
        lambda: store.touch(bad),
        lambda: store.verify(bad),
        lambda: store.pin([bad]),
        lambda: store.reserve({bad: 1}),
    ]
    for call in calls:
        with pytest.raises(MediaError, match="not a lowercase hex sha256"):
            call()


def test_verify_detects_damage(store: BlobStore) -> None:
    name = store.put_bytes(b"precious")
    store.path(name).write_bytes(b"damaged!")
    assert not store.verify(name)


def test_put_bytes_is_idempotent(store: BlobStore) -> None:
    name = store.put_bytes(b"data")
    assert name == sha(b"data")
    assert store.put_bytes(b"data") == name
    assert store.used_bytes() == 4
    assert list((store.root / "partial").iterdir()) == []


def test_put_bytes_over_blob_limit(store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import media.store as store_module

    monkeypatch.setattr(store_module, "MAX_BLOB_BYTES", 3)
    with pytest.raises(BlobTooLargeError, match="over the limit"):
        store.put_bytes(b"four")


def test_quota_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        BlobStore(tmp_path, quota_bytes=0)


# --------------------------------------------------------------------------- quota and LRU


def put(store: BlobStore, clock: Clock, tag: str, size: int) -> str:
    clock.now_ns += 1_000
    return store.put_bytes(tag.encode().ljust(size, b"."))


def test_used_bytes_counts_partials(store: BlobStore, clock: Clock) -> None:
    put(store, clock, "a", 100)
    store.reserve({sha(b"partial"): 10})
    store.append(sha(b"partial"), 0, b"1234")
    assert store.used_bytes() == 104
    assert store.reserved_bytes() == 6


def test_lru_eviction_order(store: BlobStore, clock: Clock) -> None:
    a = put(store, clock, "a", 300)
    b = put(store, clock, "b", 300)
    c = put(store, clock, "c", 300)
    clock.now_ns += 1_000
    store.touch(a)  # a is now the most recently used

    assert store.make_room(100) == []
    assert store.make_room(200) == [b]
    assert store.make_room(500) == [c]
    assert store.has(a)
    assert store.used_bytes() == 300


def test_touch_orders_even_when_the_clock_stands_still(store: BlobStore) -> None:
    a = store.put_bytes(b"a" * 300)
    b = store.put_bytes(b"b" * 300)
    store.touch(a)
    assert store.make_room(500) == [b]


def test_pinned_blobs_are_never_evicted(store: BlobStore, clock: Clock) -> None:
    a = put(store, clock, "a", 300)
    b = put(store, clock, "b", 300)
    c = put(store, clock, "c", 300)
    store.pin([a, b])
    assert store.pinned == frozenset({a, b})

    assert store.make_room(300) == [c]
    with pytest.raises(QuotaExceededError, match="cannot make 100 bytes more room") as info:
        store.make_room(500)
    assert info.value.code == "quota_exceeded"
    assert "send a smaller lesson" in str(info.value)
    assert store.has(a)
    assert store.has(b)

    store.pin([b])  # replaces the previous pins
    assert store.make_room(500) == [a]


def test_quota_exceeded_evicts_nothing(store: BlobStore, clock: Clock) -> None:
    a = put(store, clock, "a", 300)
    store.reserve({sha(b"incoming"): 200})
    store.append(sha(b"incoming"), 0, b"x" * 100)
    with pytest.raises(QuotaExceededError, match=r"200 bytes are taken by transfers in progress"):
        store.make_room(900)
    assert store.has(a)
    assert store.partial_bytes(sha(b"incoming")) == 100


def test_put_bytes_makes_room(store: BlobStore, clock: Clock) -> None:
    a = put(store, clock, "a", 600)
    b = put(store, clock, "b", 600)
    assert not store.has(a)
    assert store.has(b)
    store.pin([b])
    with pytest.raises(QuotaExceededError):
        put(store, clock, "c", 600)


def test_stray_files_are_ignored(store: BlobStore, clock: Clock) -> None:
    put(store, clock, "a", 10)
    (store.root / "blobs" / "README").write_text("not a blob")
    (store.root / "blobs" / "ab").mkdir(exist_ok=True)
    (store.root / "blobs" / "ab" / "notes.txt").write_text("not a blob")
    (store.root / "partial" / "x.tmp").write_text("leftover")
    assert store.used_bytes() == 10


# --------------------------------------------------------------------------- with the assembler


def test_resumed_transfer_through_assembler_and_store(store: BlobStore) -> None:
    """A transfer cut at 7 bytes resumes with the store's hasher and commits."""
    data = b"0123456789abcdefghij"
    name = sha(data)
    store.reserve({name: len(data)})
    store.append(name, 0, data[:7])

    assembler = ChunkAssembler()
    have = store.partial_bytes(name)
    assert assembler.expect(name, len(data), have, store.partial_hasher(name)) == []
    for offset in itertools.count(have, 5):
        if offset >= len(data):
            break
        for event in assembler.feed(Chunk(name, offset, data[offset : offset + 5])):
            match event:
                case AppendBytes():
                    store.append(event.sha256, event.offset_bytes, event.data)
                case BlobVerified():
                    store.commit(event.sha256, event.size_bytes)
    assert store.path(name).read_bytes() == data
    assert assembler.pending() == frozenset()
