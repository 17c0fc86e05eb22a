"""Usage-log writes on a writer thread, so the network loop never waits on fsync.

DESIGN §3: the main thread never waits on fsync, and the network loop should not either.
:class:`UsageWriter` has the same methods as :class:`~kiosk.usage.UsageLog`, but
``open``, ``close`` and ``heartbeat`` only queue the write and return at once (``open``
chooses the interval's uuid itself). One thread takes everything queued and commits it
in one transaction, so a burst of item switches costs one fsync, not two per switch.

Reads (``records_after``, ``last_seq``, ``open_count``) first wait until every write
queued before them is committed, so a ``usage_pull`` always sees the switch that came
before it. A write that fails is logged; the lesson goes on (a classroom screen must
stay up). After a power loss, what had not reached the disk is at most the last few
milliseconds of queued writes; open intervals on disk are closed by ``recover``.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid as uuid_module
from collections.abc import Callable

from kiosk.usage import DisplayStart, UsageLog
from protocol.errors import UsageLogError
from protocol.messages import EndReason, UsageRecord

logger = logging.getLogger(__name__)

_Write = Callable[[UsageLog], object]

FLUSH_TIMEOUT_S = 30.0
"""Longest a read waits for queued writes before it fails."""


class UsageWriter:
    """A :class:`UsageLog` whose writes happen on a dedicated thread."""

    def __init__(self, log: UsageLog) -> None:
        self.log = log
        self.public_key = log.public_key
        self._queue: queue.SimpleQueue[_Write | threading.Event | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
        self._thread.start()
        self._closed = False

    # ----------------------------------------------------------------- writes

    def recover(self) -> int:
        """Close intervals an earlier run left open (synchronously; call at start)."""
        return self.log.recover()

    def open(
        self, start: DisplayStart, *, wall_s: float, mono_s: float, clock_offset_ms: int = 0
    ) -> str:
        """Queue the start of a display interval; returns its uuid at once."""
        interval_uuid = str(uuid_module.uuid4())
        self._queue.put(
            lambda log: log.open(
                start,
                wall_s=wall_s,
                mono_s=mono_s,
                clock_offset_ms=clock_offset_ms,
                uuid=interval_uuid,
            ),
        )
        return interval_uuid

    def close(self, uuid: str, *, wall_s: float, mono_s: float, reason: EndReason) -> None:
        """Queue the end of the interval ``uuid``."""
        self._queue.put(lambda log: log.close(uuid, wall_s=wall_s, mono_s=mono_s, reason=reason))

    def heartbeat(self, *, wall_s: float, mono_s: float) -> None:
        """Queue a heartbeat."""
        self._queue.put(lambda log: log.heartbeat(wall_s=wall_s, mono_s=mono_s))

    # ----------------------------------------------------------------- reads

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        """Wait until every write queued so far is committed.

        Raises:
            UsageLogError: the writer did not get there within ``timeout_s``.
        """
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(timeout_s):
            raise UsageLogError(f"usage log {self.log.path}: writes did not finish in time")

    def records_after(self, after_seq: int, limit: int) -> list[UsageRecord]:
        self.flush()
        return self.log.records_after(after_seq, limit)

    def last_seq(self) -> int:
        self.flush()
        return self.log.last_seq()

    def open_count(self) -> int:
        self.flush()
        return self.log.open_count()

    def close_db(self) -> None:
        """Commit what is queued, stop the thread, close the file."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(FLUSH_TIMEOUT_S)
        self.log.close_db()

    # ----------------------------------------------------------------- the thread

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[_Write] = []
            waiters: list[threading.Event] = []
            stop = False
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    batch.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._commit(batch)
            for event in waiters:
                event.set()
            if stop:
                return

    def _commit(self, batch: list[_Write]) -> None:
        try:
            with self.log.transaction():
                for write in batch:
                    write(self.log)
        except (UsageLogError, ValueError):
            logger.exception(
                "usage log: a batch of %d writes failed; retrying one by one", len(batch)
            )
            for write in batch:
                try:
                    with self.log.transaction():
                        write(self.log)
                except Exception:  # the one broad catch of the writer: the panel stays up
                    logger.exception("usage log: a write failed")
