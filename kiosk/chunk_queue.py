"""Received blob chunks, handed to one worker thread that hashes and writes them.

The network loop puts every decoded chunk here and reads on: it does not wait for the
disk, nor start a thread per chunk. One worker thread takes the chunks in the order they
came and runs the handler (the service: hash check, write, commit with fsync) on each;
hashing and file writes release the GIL, so a transfer uses both cores. After each
batch the worker tells the loop (one wake-up per batch, not per chunk), which then
flushes the replies.

The queue is bounded in bytes (:data:`MAX_QUEUED_CHUNK_BYTES`, all connections
together): a sender faster than the disk makes :meth:`ChunkQueue.put` wait, the loop
then stops reading that connection, websockets stops reading its socket after
``max_queue`` frames, and TCP holds the sender back. Memory never grows with the
sender's speed.

A connection's chunks and its other frames are handled in the order they came: before
a text or stream frame, and before a closed connection's session ends, the server
awaits :meth:`ChunkQueue.settled` for that connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Final

from protocol.codec import Chunk

logger = logging.getLogger(__name__)

MAX_QUEUED_CHUNK_BYTES: Final = 512 * 1024
"""Chunk bytes received and not yet handled by the worker, all connections together:
two chunks of ``SEND_CHUNK_BYTES``, so the next one is ready when the worker finishes
one (a larger chunk, from a sender using up to ``CHUNK_SIZE_BYTES``, passes alone).
A bound of 4 MiB measured no faster, and the frames it held grew the heap: 2-3 times
the page faults and 10 % more CPU per MB (``bench.transfer``)."""

_STOP: Final = None


class ChunkQueue:
    """A bounded queue of chunks and the worker thread that handles them.

    ``handle(sid, chunk)`` runs on the worker thread, one chunk at a time, in the order
    of :meth:`put`; it must catch its own errors (an escaping one is logged and the
    next chunk handled). ``batch_done()`` runs on the loop after every batch.
    Call :meth:`start` on the loop, :meth:`put` and :meth:`settled` from coroutines on
    it, and :meth:`stop` when no more chunks come.
    """

    def __init__(
        self,
        handle: Callable[[int, Chunk], None],
        batch_done: Callable[[], None],
        *,
        max_bytes: int = MAX_QUEUED_CHUNK_BYTES,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self.max_bytes = max_bytes
        self._handle = handle
        self._batch_done = batch_done
        self._items: queue.SimpleQueue[tuple[int, Chunk] | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        # The loop's bookkeeping (read and written on the loop only):
        self._queued_bytes = 0
        self._pending: dict[int, int] = {}
        self._settled: dict[int, asyncio.Event] = {}
        self._space = asyncio.Event()
        self.peak_bytes = 0
        """Most chunk bytes queued at once so far (never above ``max_bytes``, unless a
        single chunk is larger)."""

    @property
    def queued_bytes(self) -> int:
        """Chunk bytes put and not yet handled."""
        return self._queued_bytes

    def pending(self, sid: int) -> int:
        """Chunks of connection ``sid`` put and not yet handled."""
        return self._pending.get(sid, 0)

    def start(self) -> None:
        """Start the worker thread; call on the loop that will call :meth:`put`."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="kiosk-chunks", daemon=True)
        self._thread.start()

    async def put(self, sid: int, chunk: Chunk) -> None:
        """Queue ``chunk`` of connection ``sid``; waits while the queue is full.

        Once :meth:`stop` was called (the kiosk is stopping) the chunk is dropped: its
        blob stays partial, resumable by the next transfer.
        """
        if self._thread is None and not self._stopped:
            raise RuntimeError("ChunkQueue.put before start()")
        size = len(chunk.data)
        while self._queued_bytes and self._queued_bytes + size > self.max_bytes:
            self._space.clear()
            await self._space.wait()
        if self._stopped:
            return
        self._queued_bytes += size
        self.peak_bytes = max(self.peak_bytes, self._queued_bytes)
        self._pending[sid] = self._pending.get(sid, 0) + 1
        self._items.put((sid, chunk))

    async def settled(self, sid: int) -> None:
        """Return once every chunk of connection ``sid`` put so far has been handled."""
        while self._pending.get(sid) and self._running():
            event = self._settled.setdefault(sid, asyncio.Event())
            await event.wait()

    async def stop(self) -> None:
        """Handle what is queued, then end the worker thread."""
        thread, self._thread = self._thread, None
        self._stopped = True
        if thread is None:
            return
        self._items.put(_STOP)
        await asyncio.to_thread(thread.join)
        for event in self._settled.values():  # nothing is handled any more: stop waiting
            event.set()
        self._settled.clear()
        self._space.set()

    # ----------------------------------------------------------------- internals

    def _running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while True:
            item = self._items.get()
            batch = [item]
            while True:  # take whatever else is waiting: one wake-up of the loop for all
                try:
                    batch.append(self._items.get_nowait())
                except queue.Empty:
                    break
            done: list[tuple[int, int]] = []
            stop = False
            for entry in batch:
                if entry is None:
                    stop = True
                    continue
                sid, chunk = entry
                try:
                    self._handle(sid, chunk)
                except Exception:  # the handler's bug: log it and go on with the next chunk
                    logger.exception("session %d: a chunk failed", sid)
                done.append((sid, len(chunk.data)))
            self._tell_loop(done)
            if stop:
                return

    def _tell_loop(self, done: list[tuple[int, int]]) -> None:
        loop = self._loop
        if loop is None or not done:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(self._finished, done)

    def _finished(self, done: list[tuple[int, int]]) -> None:
        for sid, size in done:
            self._queued_bytes -= size
            left = self._pending.get(sid, 0) - 1
            if left > 0:
                self._pending[sid] = left
                continue
            self._pending.pop(sid, None)
            event = self._settled.pop(sid, None)
            if event is not None:
                event.set()
        self._space.set()
        self._batch_done()
