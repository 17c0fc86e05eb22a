"""Transfer planning and the chunk assembler: media.chunks (pure, full branch coverage)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from media.chunks import (
    AppendBytes,
    BlobVerified,
    ChunkAssembler,
    chunk_ranges,
    plan_needs,
)
from protocol.codec import Chunk
from protocol.errors import BlobTooLargeError, ChecksumMismatchError, UnexpectedMessageError
from protocol.limits import CHUNK_SIZE_BYTES, MAX_BLOB_BYTES
from protocol.messages import BlobNeed, ItemKind, LessonManifest, ManifestItem

DATA = bytes(range(256)) * 4 + b"tail"  # 1028 bytes
SHA = hashlib.sha256(DATA).hexdigest()
OTHER = hashlib.sha256(b"other").hexdigest()


def hasher(prefix: bytes = b"") -> hashlib._Hash:
    return hashlib.sha256(prefix)


# --------------------------------------------------------------------------- plan_needs


def manifest(*items: ManifestItem) -> LessonManifest:
    return LessonManifest(lesson_id="l" * 32, title="T", items=list(items))


def blob(name: str, size: int, kind: ItemKind = "image", page: int | None = None) -> ManifestItem:
    return ManifestItem(kind, f"item {name[:4]}", sha256=name, size_bytes=size, page=page)


def test_plan_needs_lists_missing_blobs_once_in_order() -> None:
    a, b, c, d = (f"{n:064x}" for n in range(1, 5))
    lesson = manifest(
        blob(b, 100, "pdf", 0),
        ManifestItem("text", "t", text="x"),
        blob(a, 200),
        blob(b, 100, "pdf", 1),
        ManifestItem("web", "w", url="https://example.ru"),
        blob(c, 300),
        blob(d, 50),
    )
    partial = {a: 20, c: 999, d: -5}

    needs = plan_needs(lesson, have=lambda s: s == c, partial_bytes=lambda s: partial.get(s, 0))

    assert needs == [
        BlobNeed(sha256=b, have_bytes=0, size_bytes=100),
        BlobNeed(sha256=a, have_bytes=20, size_bytes=200),
        BlobNeed(sha256=d, have_bytes=0, size_bytes=50),
    ]


def test_plan_needs_clamps_partial_to_size() -> None:
    needs = plan_needs(manifest(blob(SHA, 10)), have=lambda s: False, partial_bytes=lambda s: 99)
    assert needs == [BlobNeed(SHA, 10, 10)]


def test_plan_needs_nothing_missing() -> None:
    assert plan_needs(manifest(blob(SHA, 10)), lambda s: True, lambda s: 0) == []


# --------------------------------------------------------------------------- chunk_ranges


def test_chunk_ranges_from_have_bytes() -> None:
    need = BlobNeed(SHA, have_bytes=3, size_bytes=10)
    assert list(chunk_ranges(need, 4)) == [(3, 4), (7, 3)]


def test_chunk_ranges_exact_multiple_and_default_size() -> None:
    assert list(chunk_ranges(BlobNeed(SHA, 0, 8), 4)) == [(0, 4), (4, 4)]
    big = BlobNeed(SHA, 0, CHUNK_SIZE_BYTES * 2 + 1)
    assert list(chunk_ranges(big)) == [
        (0, CHUNK_SIZE_BYTES),
        (CHUNK_SIZE_BYTES, CHUNK_SIZE_BYTES),
        (2 * CHUNK_SIZE_BYTES, 1),
    ]


def test_chunk_ranges_nothing_to_send() -> None:
    assert list(chunk_ranges(BlobNeed(SHA, 10, 10), 4)) == []


@pytest.mark.parametrize("size", [0, -1, CHUNK_SIZE_BYTES + 1])
def test_chunk_ranges_bad_chunk_size(size: int) -> None:
    with pytest.raises(ValueError, match="chunk_size_bytes"):
        list(chunk_ranges(BlobNeed(SHA, 0, 10), size))


# --------------------------------------------------------------------------- assembler


def feed_all(assembler: ChunkAssembler, start: int, size: int) -> list[object]:
    events: list[object] = []
    for offset, length in chunk_ranges(BlobNeed(SHA, start, len(DATA)), size):
        events.extend(assembler.feed(Chunk(SHA, offset, DATA[offset : offset + length])))
    return events


def test_whole_blob_in_several_chunks() -> None:
    assembler = ChunkAssembler()
    assert assembler.expect(SHA, len(DATA), 0, hasher()) == []
    assert assembler.pending() == frozenset({SHA})

    first = assembler.feed(Chunk(SHA, 0, DATA[:500]))
    assert first == [AppendBytes(SHA, 0, DATA[:500])]
    assert assembler.received_bytes(SHA) == 500

    rest = feed_all(assembler, 500, 300)
    assert rest == [
        AppendBytes(SHA, 500, DATA[500:800]),
        AppendBytes(SHA, 800, DATA[800:1028]),
        BlobVerified(SHA, len(DATA)),
    ]
    assert assembler.pending() == frozenset()
    assert assembler.received_bytes(SHA) == 0


def test_resume_from_have_bytes() -> None:
    assembler = ChunkAssembler()
    assembler.expect(SHA, len(DATA), 600, hasher(DATA[:600]))
    assert assembler.received_bytes(SHA) == 600
    events = feed_all(assembler, 600, 1024)
    assert events == [AppendBytes(SHA, 600, DATA[600:]), BlobVerified(SHA, len(DATA))]


def test_expect_with_everything_already_received() -> None:
    assembler = ChunkAssembler()
    assert assembler.expect(SHA, len(DATA), len(DATA), hasher(DATA)) == [
        BlobVerified(SHA, len(DATA))
    ]
    assert assembler.pending() == frozenset()


def test_expect_with_everything_received_but_wrong() -> None:
    assembler = ChunkAssembler()
    with pytest.raises(ChecksumMismatchError) as info:
        assembler.expect(SHA, 4, 4, hasher(b"nope"))
    assert info.value.sha256 == SHA
    assert assembler.pending() == frozenset()


def test_checksum_mismatch_forgets_the_blob() -> None:
    assembler = ChunkAssembler()
    assembler.expect(SHA, len(DATA), 0, hasher())
    damaged = b"X" + DATA[1:]
    assembler.feed(Chunk(SHA, 0, damaged[:1000]))
    with pytest.raises(ChecksumMismatchError, match=f"blob {SHA}") as info:
        assembler.feed(Chunk(SHA, 1000, damaged[1000:]))
    assert info.value.sha256 == SHA
    assert info.value.code == "checksum_mismatch"
    assert assembler.pending() == frozenset()


def test_chunk_for_unknown_blob() -> None:
    assembler = ChunkAssembler()
    assembler.expect(SHA, len(DATA), 0, hasher())
    with pytest.raises(UnexpectedMessageError, match=f"blob {OTHER}, which was not requested"):
        assembler.feed(Chunk(OTHER, 0, b"x"))
    assert assembler.pending() == frozenset({SHA})


def test_chunk_at_wrong_offset() -> None:
    assembler = ChunkAssembler()
    assembler.expect(SHA, len(DATA), 0, hasher())
    assembler.feed(Chunk(SHA, 0, DATA[:10]))
    with pytest.raises(UnexpectedMessageError, match="offset 20; expected offset 10"):
        assembler.feed(Chunk(SHA, 20, DATA[20:30]))
    with pytest.raises(UnexpectedMessageError, match="offset 0; expected offset 10"):
        assembler.feed(Chunk(SHA, 0, DATA[:10]))
    assert assembler.received_bytes(SHA) == 10  # still waiting, nothing lost


def test_chunk_past_announced_size() -> None:
    assembler = ChunkAssembler()
    assembler.expect(SHA, len(DATA), 1000, hasher(DATA[:1000]))
    with pytest.raises(BlobTooLargeError, match="ends at byte 1029, past its announced size"):
        assembler.feed(Chunk(SHA, 1000, DATA[1000:] + b"!"))
    assert assembler.pending() == frozenset()


def test_expect_over_blob_limit() -> None:
    with pytest.raises(BlobTooLargeError) as info:
        ChunkAssembler().expect(SHA, MAX_BLOB_BYTES + 1, 0, hasher())
    assert info.value.sha256 == SHA


@pytest.mark.parametrize(("size", "have"), [(0, 0), (-1, 0), (10, -1), (10, 11)])
def test_expect_bad_sizes(size: int, have: int) -> None:
    with pytest.raises(ValueError, match="have_bytes"):
        ChunkAssembler().expect(SHA, size, have, hasher())


def test_expect_again_restarts_the_blob() -> None:
    assembler = ChunkAssembler()
    assembler.expect(SHA, len(DATA), 0, hasher())
    assembler.feed(Chunk(SHA, 0, DATA[:100]))
    assembler.expect(SHA, len(DATA), 0, hasher())
    assert assembler.received_bytes(SHA) == 0


def test_forget_and_clear() -> None:
    assembler = ChunkAssembler()
    assembler.expect(SHA, len(DATA), 0, hasher())
    assembler.expect(OTHER, 5, 0, hasher())
    assembler.forget(SHA)
    assembler.forget(SHA)  # no error when absent
    assert assembler.pending() == frozenset({OTHER})
    assembler.clear()
    assert assembler.pending() == frozenset()
    with pytest.raises(UnexpectedMessageError):
        assembler.feed(Chunk(OTHER, 0, b"other"))


def test_importing_chunks_loads_no_heavy_or_io_library() -> None:
    code = (
        "import sys, media.chunks\n"
        "bad = {'PIL', 'pypdfium2', 'pyglet', 'websockets', 'zeroconf', 'vlc', 'asyncio'}\n"
        "print(sorted(bad & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    assert out.strip() == "[]"


def test_a_sent_chunk_frame_stays_under_the_panels_mmap_threshold() -> None:
    """Each copy the kiosk's websocket layer makes of a frame is then reused from the heap,
    not mapped and unmapped anew (see ``protocol.limits.SEND_CHUNK_BYTES``)."""
    from kiosk.memory import MMAP_THRESHOLD_BYTES
    from protocol.constants import CHUNK_HEADER_BYTES
    from protocol.limits import SEND_CHUNK_BYTES

    largest_websocket_header = 14  # 2 bytes, an 8-byte length, a 4-byte mask
    frame = largest_websocket_header + CHUNK_HEADER_BYTES + SEND_CHUNK_BYTES
    assert frame < MMAP_THRESHOLD_BYTES
    assert SEND_CHUNK_BYTES <= CHUNK_SIZE_BYTES
    assert list(chunk_ranges(BlobNeed(SHA, 0, 2 * SEND_CHUNK_BYTES + 1), SEND_CHUNK_BYTES)) == [
        (0, SEND_CHUNK_BYTES),
        (SEND_CHUNK_BYTES, SEND_CHUNK_BYTES),
        (2 * SEND_CHUNK_BYTES, 1),
    ]
