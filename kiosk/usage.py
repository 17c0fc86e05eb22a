"""The kiosk's crash-safe usage log: one SQLite row per display interval (DESIGN §6).

A display interval is written the moment it starts (:meth:`UsageLog.open`) and closed
when it ends (:meth:`UsageLog.close`). Between the two, the caller calls
:meth:`UsageLog.heartbeat` every few seconds so each open row knows when the panel was
last alive. After a crash or power loss, :meth:`UsageLog.recover` (call it once at
start-up, before the first ``open``) closes every interval a previous run left open at
its last heartbeat, with end reason ``power_loss``.

Durability: the file runs in WAL mode with ``synchronous=FULL`` (panels are switched
off at the wall) and every write is its own transaction, so after a crash the file
holds every row whose call returned.

The same file keeps the kiosk's copy of the presentation it shows that survives a power
loss (:meth:`UsageLog.save_presentation`, a ``meta`` row outside the records and their
chain, never collected): committed in the transaction of the switch that changed it, it
costs no flush of its own (:mod:`kiosk.resume`).

Time is always passed in: ``wall_s`` from :func:`time.time` (stored as ISO 8601 UTC
with milliseconds and ``Z``) and ``mono_s`` from :func:`time.monotonic` (used for
durations only, so a wall-clock jump never makes an interval longer or shorter). The
log never reads a clock itself. ``started_at`` is stored as the ``wall_s`` given;
``clock_offset_ms`` is carried as measured by the caller and not applied here.

Why ``seq`` is assigned at close
--------------------------------
Collection (``usage_pull after_seq, limit``) returns only closed records and resumes
from the highest ``seq`` it has seen. If ``seq`` were fixed when a row is inserted, an
interval opened first but closed last (a video left playing while another item was
logged and collected) would get a ``seq`` below what the collector already holds and
would never be collected. So an open row has only a private ``id``; its public
``seq`` is taken from a counter in the ``meta`` table in the same transaction that
closes it (``close`` or ``recover``). Closed rows therefore appear in ``seq`` order
exactly in the order they became collectable, a ``seq`` is never reused (the counter
only grows, even if rows were deleted), and "give me ``seq`` > N" never skips a row.

Runs: each :class:`UsageLog` object is one *run* with a random id stored on the rows it
opens. ``heartbeat`` touches only this run's rows, and ``recover`` closes only rows of
earlier runs, because monotonic times of different runs (or boots) cannot be compared
and a live interval must not be closed as ``power_loss``.

Errors: every failure to open, read or write the file raises
:class:`protocol.errors.UsageLogError` (ours) with the path in its message; when the
file itself failed (disk full, I/O error, locked) its ``__cause__`` is the
:class:`sqlite3.Error`, and a failed write left nothing behind, so it may be retried
as is (:mod:`kiosk.usage_writer` does). One without such a cause is about the call (a
uuid never opened) and would fail again. Invalid
arguments (a negative ``after_seq``, a ``limit`` out of range, a non-finite time) raise
:class:`ValueError`: they are a bug in the caller, not a state of the log.

A :class:`UsageLog` may be used from any thread; calls are serialised by a lock.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import uuid as uuid_module
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, get_args

from protocol.clock import iso_utc_ms
from protocol.errors import UsageLogError
from protocol.limits import MAX_USAGE_BATCH
from protocol.messages import (
    USAGE_RECORD_FIELDS,
    EndReason,
    HiddenReason,
    ItemKind,
    UsageRecord,
    usage_record,
)
from protocol.usage_chain import (
    GENESIS_HASH,
    SigningKey,
    UsageKey,
    public_key_text,
    record_hash,
    sign_digest,
)

__all__ = ["SCHEMA_VERSION", "DisplayStart", "UsageLog"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 4
"""Stored in ``PRAGMA user_version``; a file of version 2 or 3 is upgraded when opened
(:data:`_UPGRADES`), one with another non-zero version is refused."""

_MEMORY: Final = ":memory:"
_LAST_SEQ: Final = "last_seq"
_LAST_HASH: Final = "last_hash"
_LAST_SEEN_AT: Final = "last_seen_at"
_LAST_SEEN_MONO_S: Final = "last_seen_mono_s"
_PRESENTATION: Final = "presentation"

_SCHEMA: Final = f"""
CREATE TABLE plays (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER UNIQUE,
    uuid TEXT NOT NULL UNIQUE,
    run_id TEXT NOT NULL,
    kiosk_id TEXT NOT NULL,
    room TEXT NOT NULL,
    lesson_id TEXT NOT NULL,
    lesson_title TEXT NOT NULL,
    item_index INTEGER NOT NULL,
    kind TEXT NOT NULL,
    content_hash TEXT,
    content_title TEXT NOT NULL,
    content_source TEXT,
    teacher_id TEXT NOT NULL,
    teacher_name TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    start_mono_s REAL NOT NULL,
    last_seen_at TEXT,
    last_seen_mono_s REAL,
    duration_ms INTEGER,
    end_reason TEXT,
    clock_offset_ms INTEGER NOT NULL DEFAULT 0,
    prev_hash TEXT,
    record_hash TEXT,
    signature TEXT,
    hidden TEXT NOT NULL DEFAULT '',
    school_id TEXT NOT NULL DEFAULT '',
    CHECK ((seq IS NULL) = (ended_at IS NULL))
);
CREATE INDEX plays_open ON plays (run_id) WHERE ended_at IS NULL;
CREATE TABLE meta (key TEXT PRIMARY KEY, value);
INSERT INTO meta (key, value) VALUES ('{_LAST_SEQ}', 0);
INSERT INTO meta (key, value) VALUES ('{_LAST_HASH}', '{GENESIS_HASH}');
PRAGMA user_version = {SCHEMA_VERSION};
"""

_UPGRADES: Final[dict[int, tuple[str, ...]]] = {
    2: (
        "ALTER TABLE plays ADD COLUMN hidden TEXT NOT NULL DEFAULT ''",
        "PRAGMA user_version = 3",
    ),
    # Version 4: the school's id on each record (``''`` on every record logged before).
    3: (
        "ALTER TABLE plays ADD COLUMN school_id TEXT NOT NULL DEFAULT ''",
        "PRAGMA user_version = 4",
    ),
}
"""Statements that bring a log of each older version to the next one, in a transaction."""

_PLAYS_COLUMNS: Final = frozenset(
    {*USAGE_RECORD_FIELDS, "id", "run_id", "start_mono_s", "last_seen_at", "last_seen_mono_s"}
)
"""Every column of ``plays``: a record's fields, and how the panel tracks an open one."""

_RECORD_COLUMNS: Final = ", ".join(USAGE_RECORD_FIELDS)
_FIELD_AT: Final = {name: at for at, name in enumerate(USAGE_RECORD_FIELDS)}

_ROW_COLUMNS: Final = (
    *USAGE_RECORD_FIELDS,
    "run_id",
    "start_mono_s",
    "last_seen_at",
    "last_seen_mono_s",
)
"""The columns of a ``plays`` row written whole (all but ``id``): a record's fields first."""
_ROW_AT: Final = {name: at for at, name in enumerate(_ROW_COLUMNS)}
_INSERT_ROW: Final = (
    f"INSERT INTO plays ({', '.join(_ROW_COLUMNS)}) VALUES ({', '.join('?' * len(_ROW_COLUMNS))})"
)

_ITEM_KINDS: Final = frozenset(get_args(ItemKind))
_END_REASONS: Final = frozenset(get_args(EndReason))
_HIDDEN_REASONS: Final = frozenset(get_args(HiddenReason))


@dataclass(frozen=True, slots=True)
class DisplayStart:
    """What began to show: everything a usage record needs except its times.

    Build one when an item appears on screen and pass it to :meth:`UsageLog.open`.
    """

    lesson_id: str
    lesson_title: str
    item_index: int
    kind: ItemKind
    content_hash: str | None
    content_title: str
    content_source: str | None
    teacher_id: str
    teacher_name: str
    hidden: HiddenReason = ""
    """Why the item cannot be seen during this interval (``""``: it can)."""


def new_interval_uuid(wall_s: float) -> str:
    """A new interval's uuid: time-ordered (RFC 9562 version 7), from ``wall_s``.

    The first 48 bits are the start's Unix time in milliseconds, the other 74 are
    random (besides the version and variant bits), so uuids stay unique while those of
    later intervals sort after earlier ones. Each new row then goes to the end of the
    log's uuid index: a commit rewrites one or two of its pages, where a random (version
    4) uuid lands on a random page of an index that grows all year (RFC 9562 §6.2).
    """
    ms = max(0, min(int(wall_s * 1000), (1 << 48) - 1)) if math.isfinite(wall_s) else 0
    rand = int.from_bytes(os.urandom(10))  # 80 bits: 12 for rand_a, 62 for rand_b
    rand_a, rand_b = (rand >> 62) & 0xFFF, rand & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid_module.UUID(int=value))


def _iso_utc(wall_s: float) -> str:
    """Seconds since the epoch (:func:`time.time`) in the usage log's form
    (:func:`protocol.clock.iso_utc_ms`), to the millisecond below."""
    return iso_utc_ms(math.floor(wall_s * 1000))


def _check_times(wall_s: float, mono_s: float) -> None:
    """Refuse times that cannot be stored.

    Args:
        wall_s: Seconds since the epoch.
        mono_s: Seconds of the monotonic clock.

    Raises:
        ValueError: Either time is not finite, or ``wall_s`` is before the epoch.
    """
    if not (math.isfinite(wall_s) and math.isfinite(mono_s)):
        raise ValueError(f"times must be finite, got wall_s={wall_s!r} mono_s={mono_s!r}")
    if wall_s < 0:
        raise ValueError(f"wall_s must not be before the epoch, got {wall_s!r}")


def _duration_ms(start_mono_s: float, end_mono_s: float) -> int:
    """Milliseconds between two monotonic readings, never negative.

    Args:
        start_mono_s: Monotonic seconds when the interval began.
        end_mono_s: Monotonic seconds when it ended.

    Returns:
        The rounded difference in milliseconds, or 0 if the end precedes the start.
    """
    return max(0, round((end_mono_s - start_mono_s) * 1000))


class _Db:
    """The log's SQLite connection, in autocommit mode (``isolation_level=None``): a
    statement outside :meth:`atomic` is a transaction of its own, committed when it
    returns; :meth:`atomic` blocks are one transaction, and nested ones savepoints in it.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, parameters)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Run the block in one transaction (committed at its end), or in a savepoint of
        the open one; on an exception nothing of the block is kept."""
        if self.conn.in_transaction:
            self.conn.execute("SAVEPOINT nested")
            try:
                yield
            except BaseException:
                if self.conn.in_transaction:  # an error may have ended it already
                    self.conn.execute("ROLLBACK TO SAVEPOINT nested")
                    self.conn.execute("RELEASE SAVEPOINT nested")
                raise
            self.conn.execute("RELEASE SAVEPOINT nested")
            return
        self.conn.execute("BEGIN")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()


@dataclass(slots=True)
class _Pending:
    """The writes of one transaction that are made to the file only at its end: the
    intervals it opened (one ``INSERT`` each, already closed when the transaction closed
    them too), the chain's head, and the ``meta`` rows, each written once however often
    the transaction changed it. A transaction nested in another has its own, merged into
    the outer one when it succeeds and dropped when it fails (with its savepoint).
    """

    parent: _Pending | None = None
    head: tuple[int, str] | None = None
    """The chain's head (last ``seq``, last hash) after these writes; None until read."""
    read: tuple[int, str] | None = None
    """The head as read from the file (outermost transaction only)."""
    rows: dict[str, list[Any]] = field(default_factory=dict)
    """Intervals opened here, by uuid in the order they opened: rows of :data:`_ROW_COLUMNS`."""
    meta: dict[str, Any] = field(default_factory=dict)
    """``meta`` rows to write: the last value of each key."""

    def row(self, uuid: str) -> list[Any] | None:
        """The pending row of ``uuid``, here or in an outer transaction (then copied here,
        so that a failure of this one leaves the outer one's as it was), or None."""
        row = self.rows.get(uuid)
        outer = self.parent
        while row is None and outer is not None:
            if (found := outer.rows.get(uuid)) is not None:
                row = self.rows[uuid] = list(found)
            outer = outer.parent
        return row

    def uuids(self) -> list[str]:
        """Every interval pending here and in the outer transactions."""
        seen: dict[str, None] = {}
        pending: _Pending | None = self
        while pending is not None:
            seen.update(dict.fromkeys(pending.rows))
            pending = pending.parent
        return list(seen)

    def merge(self) -> None:
        """Hand these writes to the outer transaction (this one succeeded)."""
        assert self.parent is not None
        self.parent.rows.update(self.rows)
        self.parent.meta.update(self.meta)
        if self.head is not None:
            self.parent.head = self.head


class UsageLog:
    """The kiosk's usage log in one SQLite file.

    Create it once at start-up, call :meth:`recover`, then :meth:`open` an interval each
    time an item appears, :meth:`heartbeat` every few seconds, and :meth:`close` the
    interval when the item goes away. The collector reads closed records with
    :meth:`records_after`. Call :meth:`close_db` on shutdown.
    """

    def __init__(
        self,
        path: Path | str | None,
        *,
        kiosk_id: str,
        room: str,
        school_id: str = "",
        signing_key: SigningKey | None = None,
    ) -> None:
        """Open (or create) the log file and check that it is ours.

        Args:
            path: The SQLite file; ``None`` keeps the log in memory (for tests).
            kiosk_id: Stamped on every record this log writes.
            room: Stamped on every record this log writes.
            school_id: The school's id (``kiosk.toml`` ``school_id``; ``""`` when not
                set), stamped on every record this log writes.
            signing_key: The kiosk's Ed25519 key that signs each closed record (a new
                one when omitted, for tests).

        Raises:
            UsageLogError: The file cannot be opened, is not a SQLite database, belongs
                to another program, or has a schema version this code does not know.
        """
        self.kiosk_id = kiosk_id
        self.room = room
        self.school_id = school_id
        self.path = _MEMORY if path is None else str(path)
        self._run_id = uuid_module.uuid4().hex
        self._lock = threading.RLock()
        self._key = signing_key if signing_key is not None else UsageKey.generate()
        self._public_key: str | None = None
        self._pending: _Pending | None = None
        """The writes of the transaction under way, made to the file at its end."""
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise UsageLogError(f"cannot open usage log {self.path}: {exc}") from exc
        try:
            self._db = _Db(conn)
            self._prepare(file_backed=path is not None)
        except UsageLogError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise UsageLogError(f"cannot open usage log {self.path}: {exc}") from exc

    @property
    def public_key(self) -> str:
        """The public half of the signing key, as ``usage_batch`` sends it."""
        if self._public_key is None:  # libsodium loaded now: an idle panel has no need of it
            self._public_key = public_key_text(self._key)
        return self._public_key

    # ------------------------------------------------------------------ set-up

    def _prepare(self, *, file_backed: bool) -> None:
        """Set the durability pragmas, then create or check the schema.

        Args:
            file_backed: False for an in-memory log, where WAL does not apply.

        Raises:
            UsageLogError: The file is not ours or has an unknown schema version.
            sqlite3.Error: SQLite refused (for example: the file is not a database).
        """
        self._db.execute("PRAGMA synchronous=FULL")
        mode = str(self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
        if file_backed and mode != "wal":
            logger.warning("usage log %s: journal_mode is %s, not wal", self.path, mode)
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        tables = {
            str(row[0])
            for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if version == 0 and not tables:
            with self._db.atomic():
                for statement in _SCHEMA.strip().split(";\n"):
                    self._db.execute(statement)
            return
        if version == 0:
            raise UsageLogError(
                f"{self.path} is not a ClassCast usage log (it has tables "
                f"{', '.join(sorted(tables))} and no schema version)"
            )
        while version in _UPGRADES:
            with self._db.atomic():
                for statement in _UPGRADES[version]:
                    self._db.execute(statement)
            logger.info("usage log %s: upgraded from schema version %d", self.path, version)
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version != SCHEMA_VERSION:
            raise UsageLogError(
                f"{self.path} has usage log schema version {version}; "
                f"this kiosk understands version {SCHEMA_VERSION}"
            )
        columns = {str(row[1]) for row in self._db.execute("PRAGMA table_info(plays)")}
        missing = _PLAYS_COLUMNS - columns if "plays" in tables else None
        if missing is None or missing or "meta" not in tables:
            raise UsageLogError(f"{self.path} is not a ClassCast usage log (plays table damaged)")

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Serialise a call and turn SQLite failures into :class:`UsageLogError`.

        Args:
            action: What the call does, for the error message.

        Raises:
            UsageLogError: SQLite failed (disk full, file removed, log closed, ...).
        """
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise UsageLogError(f"usage log {self.path}: cannot {action}: {exc}") from exc

    @contextmanager
    def _writing(self, action: str) -> Iterator[_Pending]:
        """A write: part of the :meth:`transaction` under way, or a transaction of its own.

        Args:
            action: What the call does, for the error message.

        Raises:
            UsageLogError: SQLite failed; nothing of the write is kept.
        """
        with self._guard(action):
            if self._pending is not None:
                yield self._pending
                return
            with self._block() as pending:
                yield pending

    @contextmanager
    def _block(self) -> Iterator[_Pending]:
        """A transaction whose writes are kept in memory (a savepoint of the one under
        way, when nested): made to the file at the end of the outermost one, handed to
        the outer one when nested, dropped on an exception."""
        with self._db.atomic():
            outer = self._pending
            pending = self._pending = _Pending(parent=outer)
            try:
                yield pending
                if outer is None:
                    self._write_out(pending)
                else:
                    pending.merge()
            finally:
                self._pending = outer

    def _write_out(self, pending: _Pending) -> None:
        """Make the writes of the outermost transaction to the file, before its commit:
        its new intervals in one ``executemany``, the chain's head and each ``meta`` row
        once."""
        if pending.rows:
            self._db.executemany(_INSERT_ROW, pending.rows.values())
        if pending.head is not None and pending.head != pending.read:
            seq, digest = pending.head
            self._db.execute(
                "UPDATE meta SET value = CASE key WHEN ? THEN ? ELSE ? END WHERE key IN (?, ?)",
                [_LAST_SEQ, seq, digest, _LAST_SEQ, _LAST_HASH],
            )
        if pending.meta:
            self._db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", pending.meta.items()
            )

    def _head(self, pending: _Pending) -> tuple[int, str]:
        """The chain's head (last ``seq``, last hash) as the writes so far left it."""
        if pending.head is None:
            if pending.parent is not None:
                pending.head = self._head(pending.parent)
            else:
                meta = dict(
                    self._db.execute(
                        "SELECT key, value FROM meta WHERE key IN (?, ?)", [_LAST_SEQ, _LAST_HASH]
                    ).fetchall()
                )
                pending.head = pending.read = (int(meta[_LAST_SEQ]), str(meta[_LAST_HASH]))
        return pending.head

    def _seal(self, pending: _Pending, values: list[Any], end: dict[str, Any]) -> dict[str, Any]:
        """Close the interval whose record fields are ``values`` (a row of
        :data:`USAGE_RECORD_FIELDS`, changed in place): with ``end`` (column: value) set,
        give it the next ``seq``, link it into the chain and sign it.

        Returns:
            Every column the close sets, with its value.
        """
        last_seq, last_hash = self._head(pending)
        closed = {**end, "seq": last_seq + 1, "prev_hash": last_hash}
        for name, value in closed.items():
            if name in _FIELD_AT:
                values[_FIELD_AT[name]] = value
        values[_FIELD_AT["record_hash"]] = values[_FIELD_AT["signature"]] = ""
        digest = record_hash(usage_record(values))
        closed["record_hash"] = digest
        closed["signature"] = sign_digest(digest, self._key)
        pending.head = (last_seq + 1, digest)
        return closed

    def _update(self, row_id: int, closed: dict[str, Any]) -> None:
        """Write a close (:meth:`_seal`) to the row ``row_id`` on file."""
        self._db.execute(
            f"UPDATE plays SET {', '.join(f'{name} = ?' for name in closed)} WHERE id = ?",
            [*closed.values(), row_id],
        )

    # ------------------------------------------------------------------ writes

    def recover(self) -> int:
        """Close every interval an earlier run left open, as a power loss.

        Call once at start-up, before the first :meth:`open`. Each such interval ends at
        its last heartbeat (or its start if it never had one), its duration is the
        monotonic time between start and last heartbeat, its end reason is
        ``power_loss``, and it gets its collection ``seq`` now. Intervals opened by this
        object are left alone.

        Returns:
            How many intervals were closed.

        Raises:
            UsageLogError: The file cannot be read or written.
        """
        with self._writing("recover open intervals") as pending:
            rows = self._db.execute(
                "SELECT id, started_at, start_mono_s, last_seen_at, last_seen_mono_s, "
                f"{_RECORD_COLUMNS} FROM plays WHERE ended_at IS NULL AND run_id != ? "
                "ORDER BY id",
                [self._run_id],
            ).fetchall()
            for row_id, started_at, start_mono_s, last_seen_at, last_seen_mono_s, *values in rows:
                end_mono_s = start_mono_s if last_seen_mono_s is None else last_seen_mono_s
                end = {
                    "ended_at": last_seen_at or started_at,
                    "duration_ms": _duration_ms(start_mono_s, end_mono_s),
                    "end_reason": "power_loss",
                }
                self._update(row_id, self._seal(pending, values, end))
        if rows:
            logger.info("usage log %s: closed %d interval(s) as power_loss", self.path, len(rows))
        return len(rows)

    def open(
        self,
        start: DisplayStart,
        *,
        wall_s: float,
        mono_s: float,
        clock_offset_ms: int = 0,
        uuid: str | None = None,
    ) -> str:
        """Record that an item began to show; the row is durable when this returns.

        Keep the returned uuid and pass it to :meth:`close` when the item goes away.

        Args:
            start: What began to show.
            wall_s: Seconds since the epoch when it began (:func:`time.time`).
            mono_s: Monotonic seconds when it began (:func:`time.monotonic`).
            clock_offset_ms: The kiosk clock's measured offset, stored with the record.
            uuid: The interval's uuid, when the caller chose it (a writer thread does);
                a new one by default.

        Returns:
            The new interval's uuid.

        Raises:
            ValueError: A time is not finite or ``start.kind`` is not an ItemKind.
            UsageLogError: The file cannot be written.
        """
        _check_times(wall_s, mono_s)
        if start.kind not in _ITEM_KINDS:
            raise ValueError(f"unknown item kind {start.kind!r}")
        if start.hidden not in _HIDDEN_REASONS:
            raise ValueError(f"unknown hidden reason {start.hidden!r}")
        new_uuid = uuid or new_interval_uuid(wall_s)
        at = _iso_utc(wall_s)
        opened = {
            "uuid": new_uuid,
            "run_id": self._run_id,
            "kiosk_id": self.kiosk_id,
            "room": self.room,
            "lesson_id": start.lesson_id,
            "lesson_title": start.lesson_title,
            "item_index": start.item_index,
            "kind": start.kind,
            "content_hash": start.content_hash,
            "content_title": start.content_title,
            "content_source": start.content_source,
            "teacher_id": start.teacher_id,
            "teacher_name": start.teacher_name,
            "started_at": at,
            "start_mono_s": mono_s,
            "last_seen_at": at,
            "last_seen_mono_s": mono_s,
            "clock_offset_ms": clock_offset_ms,
            "hidden": start.hidden,
            "school_id": self.school_id,
        }
        row = [opened.get(name) for name in _ROW_COLUMNS]  # the rest NULL until closed
        with self._writing("open an interval") as pending:
            if pending.row(new_uuid) is not None:
                raise UsageLogError(f"usage log {self.path}: interval {new_uuid} exists")
            pending.rows[new_uuid] = row
        return new_uuid

    def close(self, uuid: str, *, wall_s: float, mono_s: float, reason: EndReason) -> None:
        """Record that an interval ended and make it collectable.

        Closing an interval that is already closed does nothing (the first end stands).

        Args:
            uuid: What :meth:`open` returned.
            wall_s: Seconds since the epoch when it ended.
            mono_s: Monotonic seconds when it ended; the duration is measured with it.
            reason: Why it ended.

        Raises:
            ValueError: A time is not finite or ``reason`` is not an EndReason.
            UsageLogError: No interval has this uuid, it was opened by an earlier run
                (call :meth:`recover` instead), or the file cannot be written.
        """
        _check_times(wall_s, mono_s)
        if reason not in _END_REASONS:
            raise ValueError(f"unknown end reason {reason!r}")
        at = _iso_utc(wall_s)
        with self._writing("close an interval") as pending:
            row = pending.row(uuid)
            if row is not None:  # opened in this transaction: closed before it is written
                if row[_ROW_AT["ended_at"]] is None:
                    end = self._end(at, row[_ROW_AT["start_mono_s"]], mono_s, reason)
                    closed = self._seal(pending, row[: len(USAGE_RECORD_FIELDS)], end)
                    for name, value in closed.items():
                        row[_ROW_AT[name]] = value
                return
            found = self._db.execute(
                f"SELECT id, ended_at, start_mono_s, run_id, {_RECORD_COLUMNS} "
                "FROM plays WHERE uuid = ?",
                [uuid],
            ).fetchone()
            if found is None:
                raise UsageLogError(f"usage log {self.path}: no interval with uuid {uuid}")
            row_id, ended_at, start_mono_s, run_id, *values = found
            if ended_at is not None:
                return
            if run_id != self._run_id:
                raise UsageLogError(
                    f"usage log {self.path}: interval {uuid} was opened by an earlier run; "
                    "recover() closes it"
                )
            end = self._end(at, start_mono_s, mono_s, reason)
            self._update(row_id, self._seal(pending, values, end))

    @staticmethod
    def _end(at: str, start_mono_s: float, mono_s: float, reason: EndReason) -> dict[str, Any]:
        """The columns a close by :meth:`close` sets before it is sealed."""
        return {
            "ended_at": at,
            "duration_ms": _duration_ms(start_mono_s, mono_s),
            "end_reason": reason,
            "last_seen_at": at,
            "last_seen_mono_s": mono_s,
        }

    @contextmanager
    def batch(self) -> Iterator[None]:
        """As :meth:`kiosk.usage_writer.UsageWriter.batch`; here every write is
        committed when it is made, so the block changes nothing."""
        yield

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several writes into one transaction (one fsync); a block nested in it
        is a savepoint of its own.

        The writes inside are kept in memory and made to the file at the block's end, in
        the fewest statements: an interval opened in the block is inserted once (closed
        already if the block closed it), the chain's head and each ``meta`` row are
        written once. A write that fails fails the whole block, so let its exception leave
        the block, and make the writes again one by one if some of them must be kept (as
        :class:`~kiosk.usage_writer.UsageWriter` does). Reads inside the block see what was
        written before it.

        Raises:
            UsageLogError: SQLite failed; none of the writes in the block is kept.
        """
        with self._guard("write a batch"), self._block():
            yield

    def heartbeat(self, *, wall_s: float, mono_s: float) -> None:
        """Record that the kiosk is alive now.

        Call every few seconds while the kiosk runs; a power loss is dated at the last
        heartbeat. Updates the last-seen time of every interval this object opened and
        is still open, and the kiosk-wide last-seen time in ``meta``.

        Args:
            wall_s: Seconds since the epoch now.
            mono_s: Monotonic seconds now.

        Raises:
            ValueError: A time is not finite.
            UsageLogError: The file cannot be written.
        """
        _check_times(wall_s, mono_s)
        at = _iso_utc(wall_s)
        with self._writing("record a heartbeat") as pending:
            self._db.execute(
                "UPDATE plays SET last_seen_at = ?, last_seen_mono_s = ? "
                "WHERE ended_at IS NULL AND run_id = ?",
                [at, mono_s, self._run_id],
            )
            for uuid in pending.uuids():
                row = pending.row(uuid)
                if row is not None and row[_ROW_AT["ended_at"]] is None:
                    row[_ROW_AT["last_seen_at"]] = at
                    row[_ROW_AT["last_seen_mono_s"]] = mono_s
            pending.meta[_LAST_SEEN_AT] = at
            pending.meta[_LAST_SEEN_MONO_S] = mono_s

    def save_presentation(self, data: bytes) -> None:
        """Keep ``data`` (the presentation the panel shows, as
        :func:`kiosk.resume.encode_slot` encodes it) in the file's ``meta`` table,
        outside the records and their chain; inside :meth:`transaction` it is committed
        with the records of the same change, in one flush.

        Raises:
            UsageLogError: The file cannot be written.
        """
        with self._writing("save the presentation") as pending:
            pending.meta[_PRESENTATION] = data

    def saved_presentation(self) -> bytes | None:
        """What :meth:`save_presentation` last committed, or None.

        Raises:
            UsageLogError: The file cannot be read.
        """
        with self._guard("read the presentation"):
            row = self._db.execute(
                "SELECT value FROM meta WHERE key = ?", [_PRESENTATION]
            ).fetchone()
        return row[0] if row is not None and isinstance(row[0], bytes) else None

    # ------------------------------------------------------------------ reads

    def records_after(self, after_seq: int, limit: int) -> list[UsageRecord]:
        """Closed records with ``seq`` greater than ``after_seq``, in ``seq`` order.

        Open intervals are not returned; each appears once it closes, with a ``seq``
        above every record returned before. Pass the last ``seq`` you received as
        ``after_seq`` to get the next page; an empty list means you have them all.

        Args:
            after_seq: 0 for everything, or the highest ``seq`` already collected.
            limit: Most records to return, 1 to ``MAX_USAGE_BATCH``.

        Returns:
            Up to ``limit`` records.

        Raises:
            ValueError: ``after_seq`` is negative or ``limit`` is out of range.
            UsageLogError: The file cannot be read.
        """
        if after_seq < 0:
            raise ValueError(f"after_seq must be >= 0, got {after_seq}")
        if not 1 <= limit <= MAX_USAGE_BATCH:
            raise ValueError(f"limit must be between 1 and {MAX_USAGE_BATCH}, got {limit}")
        with self._guard("read records"):
            rows = self._db.execute(
                f"SELECT {_RECORD_COLUMNS} FROM plays WHERE seq > ? ORDER BY seq LIMIT ?",
                [after_seq, limit],
            ).fetchall()
        return [usage_record(row) for row in rows]

    def last_seq(self) -> int:
        """The highest ``seq`` handed out so far (0 before the first close).

        Returns:
            The value of the collection counter.

        Raises:
            UsageLogError: The file cannot be read.
        """
        with self._guard("read the last seq"):
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", [_LAST_SEQ]).fetchone()
        return int(row[0])

    def open_count(self) -> int:
        """How many intervals are open, including any an earlier run left open.

        Returns:
            The number of rows without an end.

        Raises:
            UsageLogError: The file cannot be read.
        """
        with self._guard("count open intervals"):
            row = self._db.execute("SELECT count(*) FROM plays WHERE ended_at IS NULL").fetchone()
        return int(row[0])

    def close_db(self) -> None:
        """Close the file; open intervals stay open for the next run's :meth:`recover`.

        Close open intervals first (reason ``shutdown``) on an orderly stop. Calling this
        twice is harmless; any other call afterwards raises :class:`UsageLogError`.
        """
        with self._lock:
            self._db.close()
