"""The kiosk's queue of received chunks (kiosk.chunk_queue): bounded, in order, one worker."""

from __future__ import annotations

import asyncio
import hashlib
import threading

import pytest

from kiosk.chunk_queue import MAX_QUEUED_CHUNK_BYTES, ChunkQueue
from protocol import limits
from protocol.codec import Chunk

SHA = hashlib.sha256(b"blob").hexdigest()


def chunk(offset: int, size: int) -> Chunk:
    return Chunk(SHA, offset, memoryview(bytes(size)))


async def turns(n: int = 20) -> None:
    """Let the loop run other tasks ``n`` times (no clock involved)."""
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_sender_faster_than_the_disk_is_held_at_the_bound() -> None:
    gate = threading.Event()  # the "disk": nothing is handled until it opens
    handled: list[tuple[int, int]] = []
    batches: list[int] = []

    def handle(sid: int, c: Chunk) -> None:
        gate.wait()
        handled.append((sid, c.offset_bytes))

    queue = ChunkQueue(handle, lambda: batches.append(len(handled)), max_bytes=4 * 1000)
    queue.start()

    async def sender() -> None:
        for n in range(20):
            await queue.put(7, chunk(n * 1000, 1000))

    task = asyncio.create_task(sender())
    await turns()
    # Four chunks are in (one with the worker, three waiting); the fifth waits for room.
    assert not task.done()
    assert queue.queued_bytes == 4000
    assert queue.pending(7) == 4
    gate.set()
    await task
    await queue.settled(7)
    assert handled == [(7, n * 1000) for n in range(20)]
    assert queue.peak_bytes == 4000
    assert queue.queued_bytes == 0
    assert queue.pending(7) == 0
    assert batches[-1] == 20  # the loop was told after the last batch, replies flushed
    await queue.stop()


async def test_a_chunk_larger_than_the_bound_passes_alone() -> None:
    """An older controller's mebibyte chunk still goes through a smaller bound."""
    handled: list[int] = []
    queue = ChunkQueue(lambda sid, c: handled.append(len(c.data)), lambda: None, max_bytes=1000)
    queue.start()
    await queue.put(1, chunk(0, 3000))
    await queue.put(1, chunk(3000, 10))
    await queue.settled(1)
    assert handled == [3000, 10]
    await queue.stop()


async def test_settled_waits_only_for_its_own_connection() -> None:
    gate = threading.Event()
    seen: list[int] = []

    def handle(sid: int, c: Chunk) -> None:
        if sid == 1:
            gate.wait()
        seen.append(sid)

    queue = ChunkQueue(handle, lambda: None)
    queue.start()
    await queue.put(1, chunk(0, 10))
    await queue.settled(2)  # nothing of connection 2 is queued: no wait
    waiting = asyncio.create_task(queue.settled(1))
    await turns()
    assert not waiting.done()
    gate.set()
    await waiting
    assert seen == [1]
    await queue.stop()


async def test_a_failing_handler_does_not_stop_the_worker() -> None:
    seen: list[int] = []

    def handle(sid: int, c: Chunk) -> None:
        seen.append(c.offset_bytes)
        if c.offset_bytes == 0:
            raise RuntimeError("a bug")

    queue = ChunkQueue(handle, lambda: None)
    queue.start()
    await queue.put(1, chunk(0, 10))
    await queue.put(1, chunk(10, 10))
    await queue.settled(1)
    assert seen == [0, 10]
    await queue.stop()


def test_the_bound_is_positive_and_holds_chunks_of_either_size() -> None:
    with pytest.raises(ValueError, match="max_bytes must be positive"):
        ChunkQueue(lambda sid, c: None, lambda: None, max_bytes=0)
    assert MAX_QUEUED_CHUNK_BYTES >= 2 * limits.SEND_CHUNK_BYTES  # the next chunk is ready
    assert MAX_QUEUED_CHUNK_BYTES <= limits.CHUNK_SIZE_BYTES  # little memory held


async def test_a_chunk_put_while_the_kiosk_stops_is_dropped() -> None:
    gate = threading.Event()
    handled: list[int] = []

    def handle(sid: int, c: Chunk) -> None:
        gate.wait()
        handled.append(c.offset_bytes)

    queue = ChunkQueue(handle, lambda: None, max_bytes=10)
    queue.start()
    await queue.put(1, chunk(0, 10))
    late = asyncio.create_task(queue.put(1, chunk(10, 10)))  # waits for room
    await turns()
    stopping = asyncio.create_task(queue.stop())
    await turns()
    gate.set()
    await stopping
    await late  # no error: dropped, the partial blob stays resumable
    await queue.settled(1)
    assert handled == [0]
