"""Usage-log writes on a writer thread, so the network loop never waits on fsync.

DESIGN §3: the main thread never waits on fsync, and the network loop should not either.
:class:`UsageWriter` has the same methods as :class:`~kiosk.usage.UsageLog`, but
``open``, ``close`` and ``heartbeat`` only queue the write and return at once (``open``
chooses the interval's uuid itself). One thread takes everything queued and commits it
in one transaction, and commits at most once every :data:`COMMIT_INTERVAL_S`: a write
after a quiet moment is committed at once, the writes of a burst of item switches wait
for the interval's end and share one fsync (group commit). The service makes each
switch inside :meth:`UsageWriter.batch`, so its close and the next item's open are
always committed together (a crash never falls between them).

A write that fails because of the file (disk full, ``SQLITE_FULL``, an I/O error, the
file locked) is not lost: it stays in memory, in order with everything queued after it,
and the thread retries with a growing delay (``RETRY_FIRST_S`` doubling up to
``RETRY_MAX_S``) until the file takes it. The first failure is logged once, and the
recovery once; each record then gets its ``seq`` and its place in the hash chain when it
is finally committed, exactly as if it had been written at once (its times were taken
when the call was made). Meanwhile a heartbeat replaces the earlier ones still waiting.
At most ``MAX_PENDING_INTERVALS`` intervals wait; past that, new intervals are not logged
until the file takes writes again (counted and logged once), so memory stays bounded.
A write that is wrong in itself (closing an unknown uuid, a bad value) is logged and
dropped: retrying it could never succeed.

Reads (``records_after``, ``last_seq``, ``open_count``) first wait until every write
queued before them is committed, so a ``usage_pull`` always sees the switch that came
before it; while writes wait for disk space, reads return what is committed (the waiting
records come later, with higher ``seq``). After a power loss, what had not reached the
disk is lost: the writes queued since the last commit (at most
:data:`COMMIT_INTERVAL_S` of a burst, a few milliseconds otherwise), or everything still
waiting for disk space; open intervals on disk are closed by ``recover``.

The thread is the kiosk's one disk-flushing thread. The copy of the saved presentation
that survives a power loss (:class:`kiosk.resume.PresentationWriter`) is a write like the
others (:meth:`UsageWriter.save_presentation`), queued inside the switch's
:meth:`UsageWriter.batch`, so it shares the switch's transaction and its one flush;
while the file refuses writes only the newest one waits. Other durable work that must
stay off the network loop is handed over with :meth:`UsageWriter.after_commit` and runs
right after the commit of the writes queued with it. A control then wakes one thread
once, and the loop and the writer hand the interpreter lock back and forth once,
instead of two threads doing so each (a context switch costs a panel's small CPU more
than the write itself).

The network loop goes further (:meth:`UsageWriter.hand_over_through`): a control's writes
are handed to the thread only once the control's replies are written to the socket. Woken
earlier, the writer would run its Python (the seal, the statements) while the loop encrypts
and sends the ``ok``, and each would wait for the other's interpreter lock. Nothing waits
longer for the disk for it: the hand-over comes within the same turn of the loop, and a
read or :meth:`UsageWriter.close_db` hands over whatever is still held first.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final, Literal

from kiosk.usage import DisplayStart, UsageLog, new_interval_uuid
from protocol.errors import UsageLogError
from protocol.messages import EndReason, UsageRecord

logger = logging.getLogger(__name__)

FLUSH_TIMEOUT_S: Final = 30.0
"""Longest a read waits for queued writes before it fails."""

RETRY_FIRST_S: Final = 0.5
"""Delay before the first retry of a write the file refused; it doubles after each try."""

RETRY_MAX_S: Final = 10.0
"""Longest delay between retries while the file refuses writes (a full disk)."""

MAX_PENDING_INTERVALS: Final = 10_000
"""Most display intervals kept in memory while the file refuses writes: about 14 hours
of slides changing every 5 s, a few MB. Past it, new intervals are not logged (each such
one is counted, and the count logged) until the file takes writes again."""

COMMIT_INTERVAL_S: Final = 0.5
"""Least time between two commits. A write that comes after a quiet moment is committed
at once; writes that come within this time of the last commit wait for its end and are
committed together, in one flush. A burst of switches (a teacher stepping through slides,
a group control) then costs a flush every half second instead of one per switch, and a
power cut in a burst loses at most this much of it: the heartbeat, every
:data:`kiosk.config.HEARTBEAT_INTERVAL_S`, already dates a power loss no closer."""

_Kind = Literal["recover", "open", "close", "heartbeat", "presentation"]


@dataclass(slots=True)
class _Write:
    """One queued write: what it does to the log, and what it is (for the backlog)."""

    kind: _Kind
    apply: Callable[[UsageLog], object]


@dataclass(slots=True)
class _Job:
    """Work for the writer thread after the commit of what was queued before it."""

    run: Callable[[], None]


@dataclass(slots=True)
class _Waiter:
    """A reader waiting for the writes queued before it."""

    give_up_when_stalled: bool
    done: threading.Event = field(default_factory=threading.Event)
    committed: bool = False


_Item = _Write | _Job | list[_Write | _Job] | _Waiter | None
"""What the queue carries: a write, a job, a batch, a reader's wait, or None (stop)."""


def _is_transient(exc: Exception) -> bool:
    """Whether ``exc`` comes from the file (retry the write) and not from the write."""
    cause = exc.__cause__
    if not isinstance(exc, UsageLogError) or not isinstance(cause, sqlite3.Error):
        return False
    return not isinstance(
        cause, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError
    )


class UsageWriter:
    """A :class:`UsageLog` whose writes happen on a dedicated thread, and are retried
    while the file refuses them.

    Call :meth:`recover` once at start, then ``open``/``close``/``heartbeat`` as
    :class:`UsageLog`; call :meth:`close_db` on shutdown.
    """

    def __init__(
        self,
        log: UsageLog,
        *,
        retry_first_s: float = RETRY_FIRST_S,
        retry_max_s: float = RETRY_MAX_S,
        max_pending_intervals: int = MAX_PENDING_INTERVALS,
        commit_interval_s: float = COMMIT_INTERVAL_S,
    ) -> None:
        """Start the writer thread for ``log``.

        Args:
            log: the usage log; the writer owns it from now on.
            retry_first_s: delay before the first retry of a refused write.
            retry_max_s: longest delay between retries.
            max_pending_intervals: most intervals kept in memory while writes fail.
            commit_interval_s: least time between two commits of writes that come in a
                burst (:data:`COMMIT_INTERVAL_S`).
        """
        self.log = log
        self._retry_first_s = retry_first_s
        self._retry_max_s = retry_max_s
        self._max_pending = max_pending_intervals
        self._commit_interval_s = commit_interval_s
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending_opens = 0
        """Opens queued and not yet committed (guarded by ``_lock``)."""
        self._dropped: set[str] = set()
        """Intervals not logged because too many were waiting (guarded by ``_lock``)."""
        self._dropped_count = 0
        self.unlogged_intervals = 0
        """Intervals never logged because ``MAX_PENDING_INTERVALS`` were waiting already."""
        self.retries = 0
        """How many times writes the file refused were tried again."""
        self._stalled = False
        """True while the file refuses writes (read by other threads; set by the writer)."""
        self._closed = False
        self._held: list[_Write | _Job] | None = None
        """Writes of the :meth:`batch` under way, queued together when it ends."""
        self._defer: Callable[[Callable[[], None]], None] | None = None
        self._waiting: list[_Write | _Job] = []
        """Writes made since the last hand-over, when one is deferred (``_lock``)."""
        self._urgent = threading.Event()
        """Set with a reader's wait or the stop: while writes wait for their commit's
        time, the thread waits on this, not on the queue, so that a write in a burst
        costs no wake-up of the thread."""
        self._thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
        self._thread.start()

    @property
    def public_key(self) -> str:
        """The public half of the log's signing key, as ``usage_batch`` sends it."""
        return self.log.public_key

    # ----------------------------------------------------------------- writes

    def recover(self) -> int:
        """Close intervals an earlier run left open; call once at start, before ``open``.

        Runs at once on the calling thread. When the file refuses the write (a full
        disk), it is queued ahead of everything else and retried like any write.

        Returns:
            How many intervals were closed (0 when the write was queued).

        Raises:
            UsageLogError: the file cannot be read at all.
        """
        try:
            return self.log.recover()
        except UsageLogError as exc:
            if not _is_transient(exc):
                raise
            logger.error("usage log: cannot recover open intervals now (%s); will retry", exc)
            self._queue.put(_Write("recover", lambda log: log.recover()))
            return 0

    def open(
        self, start: DisplayStart, *, wall_s: float, mono_s: float, clock_offset_ms: int = 0
    ) -> str:
        """Queue the start of a display interval; returns its uuid at once."""
        interval_uuid = new_interval_uuid(wall_s)
        with self._lock:
            if self._pending_opens >= self._max_pending:
                self._dropped.add(interval_uuid)
                self._dropped_count += 1
                self.unlogged_intervals += 1
                if self._dropped_count == 1:
                    logger.error(
                        "usage log: %d display intervals wait for disk space, the most kept "
                        "in memory; newer intervals are not logged until the disk has room",
                        self._pending_opens,
                    )
                return interval_uuid
            self._pending_opens += 1
        self._put(
            _Write(
                "open",
                lambda log: log.open(
                    start,
                    wall_s=wall_s,
                    mono_s=mono_s,
                    clock_offset_ms=clock_offset_ms,
                    uuid=interval_uuid,
                ),
            )
        )
        return interval_uuid

    def close(self, uuid: str, *, wall_s: float, mono_s: float, reason: EndReason) -> None:
        """Queue the end of the interval ``uuid``."""
        with self._lock:
            if uuid in self._dropped:
                self._dropped.discard(uuid)
                return
        self._put(
            _Write(
                "close", lambda log: log.close(uuid, wall_s=wall_s, mono_s=mono_s, reason=reason)
            )
        )

    def heartbeat(self, *, wall_s: float, mono_s: float) -> None:
        """Queue a heartbeat."""
        self._put(_Write("heartbeat", lambda log: log.heartbeat(wall_s=wall_s, mono_s=mono_s)))

    def save_presentation(self, data: bytes) -> None:
        """Queue :meth:`kiosk.usage.UsageLog.save_presentation`: inside :meth:`batch`,
        it is committed with the switch's records, in one flush."""
        self._put(_Write("presentation", lambda log: log.save_presentation(data)))

    def saved_presentation(self) -> bytes | None:
        """What was last committed by :meth:`save_presentation`, once queued writes are."""
        self._settle()
        return self.log.saved_presentation()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Queue the writes made inside the block together, so they commit in one
        transaction: a switch's close and the next item's open reach the disk together
        or not at all (a crash between two commits would lose the open).

        Call from the thread that makes the writes (the network loop); blocks nest.
        """
        if self._held is not None:
            yield
            return
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            if held:
                self._enqueue(held)

    def hand_over_through(self, defer: Callable[[Callable[[], None]], None]) -> None:
        """From now on, hand writes to the thread through ``defer``.

        ``defer(hand_over)`` is called once for the first write after each hand-over and
        must call ``hand_over`` soon, on any thread: the kiosk's network loop calls it
        once the replies of the message it is handling are written, so the writer thread
        does not compete with them for the interpreter lock. Writes keep their order;
        reads and :meth:`close_db` hand over what is held before they go on.
        """
        self._defer = defer

    def after_commit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on the writer thread right after the writes queued before it are
        committed (or, while the file refuses them, tried); returns at once.

        For durable work that must not wait on the network loop but need not wake a
        thread of its own: the saved presentation's fsyncs. Inside :meth:`batch` it goes
        out with the batch. ``job`` must not block for long and should catch its own
        errors (one that escapes is logged and the writer goes on); it is not run when
        queued after :meth:`close_db`.
        """
        self._put(_Job(job))

    def _put(self, write: _Write | _Job) -> None:
        if self._held is not None:
            self._held.append(write)
        else:
            self._enqueue([write])

    def _enqueue(self, writes: list[_Write | _Job]) -> None:
        """Give ``writes`` to the thread now, or with the next deferred hand-over."""
        defer = self._defer
        if defer is None:
            self._queue.put(writes)
            return
        with self._lock:
            first = not self._waiting
            self._waiting.extend(writes)
        if first:
            defer(self._hand_over)

    def _hand_over(self) -> None:
        """Give the thread, in one batch, every write held for a deferred hand-over."""
        with self._lock:
            writes, self._waiting = self._waiting, []
        if writes:
            self._queue.put(writes)

    # ----------------------------------------------------------------- reads

    @property
    def stalled(self) -> bool:
        """Whether writes are waiting in memory because the file refuses them."""
        return self._stalled

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        """Wait until every write queued so far is committed.

        Raises:
            UsageLogError: the file refuses writes (they wait in memory; see
                :meth:`wait_for_written`), or the writer did not get there within
                ``timeout_s``.
        """
        self._wait(timeout_s, give_up_when_stalled=True)

    def wait_for_written(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        """Wait until every write queued so far is committed, however long the file
        refuses them (up to ``timeout_s``).

        Raises:
            UsageLogError: they were not committed within ``timeout_s``.
        """
        self._wait(timeout_s, give_up_when_stalled=False)

    def records_after(self, after_seq: int, limit: int) -> list[UsageRecord]:
        self._settle()
        return self.log.records_after(after_seq, limit)

    def last_seq(self) -> int:
        self._settle()
        return self.log.last_seq()

    def open_count(self) -> int:
        self._settle()
        return self.log.open_count()

    def close_db(self) -> None:
        """Commit what is queued (one more try if the file refuses it), stop the thread,
        close the file."""
        if self._closed:
            return
        self._closed = True
        self._hand_over()
        self._queue.put(None)
        self._urgent.set()
        self._thread.join(FLUSH_TIMEOUT_S)
        self.log.close_db()

    def _wait(self, timeout_s: float, *, give_up_when_stalled: bool) -> None:
        waiter = _Waiter(give_up_when_stalled)
        self._hand_over()
        self._queue.put(waiter)
        self._urgent.set()
        if not waiter.done.wait(timeout_s):
            raise UsageLogError(f"usage log {self.log.path}: writes did not finish in time")
        if not waiter.committed:
            raise UsageLogError(
                f"usage log {self.log.path}: cannot write now (is the disk full?); "
                "the records wait in memory and are written when it has room"
            )

    def _settle(self) -> None:
        """Before a read: wait for queued writes, unless they wait for disk space (then
        the read sees what is committed; the rest comes later with higher ``seq``)."""
        try:
            self.flush()
        except UsageLogError:
            if not self._stalled:
                raise

    # ----------------------------------------------------------------- the thread

    def _run(self) -> None:
        backlog: deque[_Write] = deque()
        jobs: list[_Job] = []
        waiters: list[_Waiter] = []
        delay_s = self._retry_first_s
        retry_at = 0.0
        commit_at = 0.0  # the earliest next commit while the file takes writes
        stalled_since = 0.0
        stop = False
        while True:
            taken: list[_Item]
            if backlog or jobs:  # wait for the commit's time, or a reader or the stop
                due = retry_at if self._stalled else commit_at
                self._urgent.wait(max(0.0, due - time.monotonic()))
                self._urgent.clear()  # before taking: a later call sets it again
                taken = self._take(0.0)
            else:
                taken = self._take(None)  # idle: the next write wakes the thread
            for item in taken:
                if item is None:
                    stop = True
                elif isinstance(item, _Waiter):
                    waiters.append(item)
                else:
                    for write in item if isinstance(item, list) else [item]:
                        if isinstance(write, _Job):
                            jobs.append(write)
                            continue
                        if write.kind in ("heartbeat", "presentation") and self._stalled:
                            # A later one says all that an earlier waiting one would.
                            backlog = deque(w for w in backlog if w.kind != write.kind)
                        backlog.append(write)
            now = time.monotonic()
            if self._stalled:
                due_now = now >= retry_at or stop
            else:  # a reader or the stop does not wait for the interval
                due_now = now >= commit_at or stop or bool(waiters)
            if not due_now:
                waiters = self._release(waiters, written=False)  # those giving up
                continue
            if backlog:
                if self._stalled:
                    self.retries += 1
                else:
                    commit_at = now + self._commit_interval_s
                failure = self._commit(backlog)
                if failure is None:
                    if self._stalled:
                        self._recovered(now - stalled_since)
                    delay_s = self._retry_first_s
                elif not self._stalled:
                    self._stalled = True
                    stalled_since = now
                    logger.error(
                        "usage log %s: cannot write (%s); %d write(s) wait in memory and are "
                        "retried until the disk has room",
                        self.log.path,
                        failure,
                        len(backlog),
                    )
                    retry_at, delay_s = now + delay_s, min(delay_s * 2, self._retry_max_s)
                else:
                    retry_at, delay_s = now + delay_s, min(delay_s * 2, self._retry_max_s)
            for job in jobs:
                try:
                    job.run()
                except Exception:  # a job's failure must not stop the usage log
                    logger.exception("usage writer: a job after the commit failed")
            jobs = []
            waiters = self._release(waiters, written=not backlog)
            if stop:
                for waiter in waiters:
                    waiter.done.set()  # not committed: the reader gets an error
                if backlog:
                    logger.error(
                        "usage log %s: %d write(s) could not be written before exit (disk "
                        "full); intervals open on disk are closed as power_loss at next start",
                        self.log.path,
                        len(backlog),
                    )
                return

    def _take(self, timeout_s: float | None) -> list[_Item]:
        """Everything queued: wait up to ``timeout_s`` (None: forever) for the first."""
        try:
            items = [self._queue.get(timeout=timeout_s)]
        except queue.Empty:
            return []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _release(self, waiters: list[_Waiter], *, written: bool) -> list[_Waiter]:
        """Wake the readers that may go on; return those still waiting."""
        left = []
        for waiter in waiters:
            if written:
                waiter.committed = True
                waiter.done.set()
            elif waiter.give_up_when_stalled and self._stalled:
                waiter.done.set()
            else:
                left.append(waiter)
        return left

    def _recovered(self, stalled_s: float) -> None:
        self._stalled = False
        with self._lock:
            dropped, self._dropped_count = self._dropped_count, 0
        logger.warning(
            "usage log %s: written again after %.0f s; the waiting records are stored%s",
            self.log.path,
            stalled_s,
            f"; {dropped} interval(s) over the memory limit were not logged" if dropped else "",
        )

    def _commit(self, backlog: deque[_Write]) -> UsageLogError | None:
        """Commit the backlog in order, removing what was written or is hopeless.

        Returns:
            None when all of it was committed, else the error of the write the file
            refused (it and those after it stay in ``backlog``).
        """
        try:
            with self.log.transaction():
                for write in backlog:
                    write.apply(self.log)
        except Exception:  # find the culprit one by one below
            pass
        else:
            self._written(backlog)
            backlog.clear()
            return None
        # One by one: keep order, drop what can never be written, stop at the file.
        while backlog:
            write = backlog[0]
            try:
                with self.log.transaction():
                    write.apply(self.log)
            except (UsageLogError, ValueError) as exc:
                if isinstance(exc, UsageLogError) and _is_transient(exc):
                    return exc
                logger.exception("usage log: a %s write failed and is dropped", write.kind)
            except Exception:  # the one broad catch of the writer: the panel stays up
                logger.exception("usage log: a %s write failed and is dropped", write.kind)
            self._written([write])
            backlog.popleft()
        return None

    def _written(self, writes: deque[_Write] | list[_Write]) -> None:
        opens = sum(1 for write in writes if write.kind == "open")
        if opens:
            with self._lock:
                self._pending_opens -= opens
