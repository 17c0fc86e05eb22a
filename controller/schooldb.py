"""The school's usage database: every panel's usage records, collected and checked (DESIGN §6).

One SQLite file (through sqlite-utils, WAL) holds two tables:

``kiosks``
    One row per panel: its pinned Ed25519 public key and where its chain ends
    (``last_seq``, ``last_hash``), plus room, school, address and the time of the last
    collection.
``plays``
    One row per display interval, as the panel signed it, plus columns derived from
    it here: ``start_utc``/``end_utc``/``start_ms`` (the panel's times corrected by
    ``clock_offset_ms``) and ``day``/``iso_week`` (the corrected start in the school's
    timezone, ``settings.tz``, Europe/Moscow by default), and ``invalid``.

Besides: ``held``, ``decisions`` and ``retired_keys`` (collection problems and admins'
decisions on them), and the school's roster (schema version 6, :data:`_UPGRADE_6_ROSTER`,
used by :mod:`controller.roster`).

Collection
----------
Call :meth:`SchoolDb.after_seq` to learn what to pull from a panel next, pull
``usage_pull after_seq`` and hand each ``UsageBatch`` to :meth:`SchoolDb.ingest`.
``ingest`` refuses a whole batch only when it cannot be the panel's (another panel's
batch, no key, or another key than the one pinned at the first collection). Otherwise
it stores the longest run of new records that continues the stored chain
(:mod:`protocol.usage_chain`: in ``seq`` order, linked, signed by the pinned key) and
reports the first record that does not, which is where the next collection stops
again. Records already stored (a repeated or interrupted collection) must be the very
same records; any other is reported. Rows and the panel's new chain end are written in
one transaction, so a collection can be repeated or cut off at any point and nothing
is lost or duplicated.

Quarantine
----------
A record the panel signed but whose values cannot be used (a time that is not a time or
overflows, a negative duration, a clock offset beyond ``MAX_CLOCK_OFFSET_MS``) is
stored all the same, so that the chain goes on, with ``invalid`` saying what is wrong
and no day or week (``day = ''``, ``start_ms = 0``): reports select records by day, so
they never count it, and :meth:`SchoolDb.verify` checks that the flag matches the
signed values.

Tamper evidence
---------------
:meth:`SchoolDb.verify` re-checks every stored chain and names each record that was
edited, deleted, inserted, reordered (its ``seq`` changed, or rows stored out of
collection order) or carries a bad signature. See ``docs/admin.md``.

Errors (all :class:`protocol.errors.UsageLogError`, ours or the panel's)::

    UsageLogError                 the file cannot be opened, is not ours, cannot be written
    └── TamperError               a panel's records cannot be trusted (panel or attacker)
        ├── KeyChangedError       the panel signs with another key than the one pinned
        └── ChainError            a batch of another panel; ``problems`` says how
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import operator
import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal, Protocol, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlite_utils import Database
from sqlite_utils.db import Table

from controller.libraries import (
    DEFAULT_LIBRARIES,
    Library,
    LibraryMatcher,
    checked_list,
    libraries_from_json,
    libraries_to_json,
)
from protocol import limits
from protocol.clock import iso_utc, iso_utc_ms
from protocol.errors import UsageLogError
from protocol.messages import USAGE_RECORD_FIELDS, UsageBatch, UsageRecord, usage_record
from protocol.usage_chain import (
    GENESIS_HASH,
    ChainProblem,
    ProblemKind,
    load_public_key,
    record_hash,
    signature_ok,
)

__all__ = [
    "APPLICATION_ID",
    "DEFAULT_TZ",
    "MAX_RECORD_DURATION_MS",
    "QUARANTINED_BY_ADMIN",
    "REPORT_TZ_MARGIN_DAYS",
    "SCHEMA_VERSION",
    "ChainError",
    "Decision",
    "DecisionAction",
    "HeldRecord",
    "IngestPlan",
    "IngestResult",
    "InvalidValue",
    "KeyChangedError",
    "KioskInfo",
    "NoSuchProblemError",
    "SchoolDb",
    "TamperError",
    "UsageStore",
    "derive_columns",
    "iso_utc_ms",
    "plan_ingest",
    "week_days",
]

logger = logging.getLogger(__name__)

APPLICATION_ID: Final = 0x43435344
"""``PRAGMA application_id`` of a school database ("CCSD")."""
SCHEMA_VERSION: Final = 7
"""``PRAGMA user_version`` of the schema below; versions 1 (no ``invalid`` column), 2
(no ``held`` and ``decisions`` tables), 3 (no ``plays.library`` column), 4 (no
``plays.hidden`` column), 5 (no roster) and 6 (no ``plays.school_id`` column) are
upgraded when opened, any other is refused."""
DecisionAction = Literal["accept", "quarantine", "forget_key"]
"""What an admin decided about a record collection stopped at (:meth:`SchoolDb.decide`)."""
QUARANTINED_BY_ADMIN: Final = "quarantined by an admin"
"""``plays.invalid`` of a record an admin quarantined."""
MAX_RECORD_DURATION_MS: Final = 366 * 24 * 3600 * 1000
"""Longest display interval counted (a year): a longer ``duration_ms`` is quarantined,
and no sum of counted durations can overflow SQLite's integers."""
DEFAULT_TZ: Final = "Europe/Moscow"
REPORT_TZ_MARGIN_DAYS: Final = 2
"""Days around a report's range whose records :meth:`SchoolDb.timezone_for_report`
recomputes: timezones lie between UTC-12 and UTC+14, so a record's day moves by at most
two days from one timezone to another."""
_LIBRARIES: Final = "libraries"
"""Settings key: the content libraries an admin chose (:func:`libraries_to_json`)."""
_TZ_CHOSEN: Final = "tz_chosen"
"""Settings key: ``1`` once the school's timezone was chosen (``tz`` is the default before)."""
_MEMORY: Final = ":memory:"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_TIME_MS: Final = (datetime(2, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
_MAX_TIME_MS: Final = (datetime(9998, 12, 31, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
"""The corrected times a record may have: any timezone can turn them into a date."""
_ONE_MS: Final = timedelta(milliseconds=1)
_HOUR_MS: Final = 3_600_000
_DAY_MS: Final = 86_400_000
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
CALENDAR_CACHE_ENTRIES: Final = 65_536
"""Hours (about seven years) and days each timezone's cache of days and weeks keeps
(:func:`_calendar`); it starts afresh when full."""
_OFFSET_VARIES: Final = 1 << 62
"""Cached for an hour in which the timezone's offset changes (no offset is this large)."""

RECORD_COLUMNS: Final = USAGE_RECORD_FIELDS
"""The signed columns of ``plays``: the fields of :class:`UsageRecord`, in their order."""
DERIVED_COLUMNS: Final = (
    "start_utc",
    "start_ms",
    "end_utc",
    "day",
    "iso_week",
    "library",
    "invalid",
)
"""Columns of ``plays`` computed here from the signed ones (see :meth:`SchoolDb.derive`)."""

_INSERT: Final = (
    f"INSERT INTO plays ({', '.join(RECORD_COLUMNS + DERIVED_COLUMNS)}) "
    f"VALUES ({', '.join('?' * (len(RECORD_COLUMNS) + len(DERIVED_COLUMNS)))})"
)

_PLAYS_REPORT_INDEX: Final = """CREATE INDEX plays_report ON plays (
    day, kiosk_id, teacher_id, lesson_id, start_ms, duration_ms,
    room, teacher_name, content_hash, content_title, content_source, iso_week, library, hidden,
    school_id
)"""

_UPGRADE_5_PLAYS: Final = (
    "ALTER TABLE plays ADD COLUMN hidden TEXT NOT NULL DEFAULT ''",
    "DROP INDEX plays_report",
    # The index of version 5 (version 7 adds ``school_id`` to it).
    """CREATE INDEX plays_report ON plays (
    day, kiosk_id, teacher_id, lesson_id, start_ms, duration_ms,
    room, teacher_name, content_hash, content_title, content_source, iso_week, library, hidden
)""",
)
"""Schema version 5, table ``plays``: the signed ``hidden`` column (why an item was not
visible during a record; ``''`` for every record stored before), and ``plays_report``
covering it."""

_UPGRADE_7_SCHOOL: Final = (
    "ALTER TABLE plays ADD COLUMN school_id TEXT NOT NULL DEFAULT ''",
    "DROP INDEX plays_report",
    _PLAYS_REPORT_INDEX,
)
"""Schema version 7, table ``plays``: the signed ``school_id`` column (the panel's school,
``''`` for every record stored before and for panels with no ``school_id`` set), and
``plays_report`` covering it."""

_SCHEMA: Final = f"""
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE kiosks (
    kiosk_id TEXT PRIMARY KEY,
    room TEXT NOT NULL DEFAULT '',
    school TEXT NOT NULL DEFAULT '',
    public_key TEXT NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0,
    last_hash TEXT NOT NULL DEFAULT '{GENESIS_HASH}',
    last_collected_at TEXT,
    address TEXT
);
CREATE TABLE plays (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    seq INTEGER NOT NULL,
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
    start_utc TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    ended_at TEXT,
    end_utc TEXT,
    duration_ms INTEGER NOT NULL,
    end_reason TEXT,
    clock_offset_ms INTEGER NOT NULL,
    prev_hash TEXT NOT NULL,
    record_hash TEXT NOT NULL,
    signature TEXT NOT NULL,
    day TEXT NOT NULL,
    iso_week TEXT NOT NULL,
    library TEXT NOT NULL DEFAULT '',
    invalid TEXT,
    hidden TEXT NOT NULL DEFAULT '',
    school_id TEXT NOT NULL DEFAULT '',
    UNIQUE (kiosk_id, seq)
);
{_PLAYS_REPORT_INDEX};
CREATE TABLE held (
    kiosk_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    cause TEXT NOT NULL,
    detail TEXT NOT NULL,
    record TEXT NOT NULL,
    found_at TEXT NOT NULL
);
CREATE TABLE decisions (
    id INTEGER PRIMARY KEY,
    kiosk_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    action TEXT NOT NULL,
    cause TEXT NOT NULL,
    who TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE retired_keys (
    kiosk_id TEXT NOT NULL,
    public_key TEXT NOT NULL,
    up_to_seq INTEGER NOT NULL
);
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = 3
"""
"""``plays_report`` covers every report query (``controller.reports``): a range of days,
then the session key in session order, then every column a report reads. A quarantined
record (``invalid`` set) has ``day = ''``, which no range of days includes."""

_TABLES: Final = frozenset({"settings", "kiosks", "plays"})
_TABLES_3: Final = frozenset({"held", "decisions", "retired_keys"})
"""Tables added by schema version 3: the record each panel's collection stops at
(``held``), what admins decided (``decisions``), and the signing keys of panels before
they were reinstalled (``retired_keys``: each verifies the records up to ``up_to_seq``)."""
_DERIVED_2: Final = ("start_utc", "start_ms", "end_utc", "day", "iso_week", "invalid")
"""The derived columns of schema version 2, which :meth:`SchoolDb._upgrade_from_1` fills."""
_UPGRADE_4_LIBRARY: Final = (
    "ALTER TABLE plays ADD COLUMN library TEXT NOT NULL DEFAULT ''",
    "DROP INDEX plays_report",
    # The index of version 4 (version 5 adds ``hidden`` to it).
    """CREATE INDEX plays_report ON plays (
    day, kiosk_id, teacher_id, lesson_id, start_ms, duration_ms,
    room, teacher_name, content_hash, content_title, content_source, iso_week, library
)""",
)
"""Schema version 4, for the content libraries: ``plays.library`` (which library a
record's content came from, :mod:`controller.libraries`), covered by ``plays_report``."""

_UPGRADE_6_ROSTER: Final = (
    # The school's list of teachers: its own id and the name, nothing else (152-FZ).
    """CREATE TABLE IF NOT EXISTS teachers (
    teacher_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    left_at TEXT,
    merged_into TEXT
)""",
    # An admin's binding of a controller (``plays.teacher_id``) to a roster entry;
    # ``teacher_id = ''`` is an admin's "bound to nobody".
    """CREATE TABLE IF NOT EXISTS teacher_bindings (
    device_id TEXT PRIMARY KEY,
    teacher_id TEXT NOT NULL,
    who TEXT NOT NULL,
    bound_at TEXT NOT NULL
)""",
    # Every roster decision: import, bind, unbind, merge.
    """CREATE TABLE IF NOT EXISTS roster_log (
    id INTEGER PRIMARY KEY,
    action TEXT NOT NULL,
    device_id TEXT NOT NULL,
    teacher_id TEXT NOT NULL,
    detail TEXT NOT NULL,
    who TEXT NOT NULL,
    decided_at TEXT NOT NULL
)""",
    # The names typed on each controller, gathered from ``plays`` (up to the row id in
    # settings ``device_names_upto``), so that binding by name never scans every record.
    """CREATE TABLE IF NOT EXISTS device_names (
    device_id TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (device_id, name)
) WITHOUT ROWID""",
)
"""Schema version 6, the roster (:mod:`controller.roster`): teachers, admins' bindings
of controllers to them, the log of roster decisions, and the names typed per controller."""
_TABLES_6_ROSTER: Final = frozenset({"teachers", "teacher_bindings", "roster_log", "device_names"})

_UPGRADES: Final[Mapping[int, tuple[str, ...]]] = {
    3: _UPGRADE_4_LIBRARY,
    4: _UPGRADE_5_PLAYS,
    5: _UPGRADE_6_ROSTER,
    6: _UPGRADE_7_SCHOOL,
}
"""What brings a file of each schema version (3 on) to the next (:meth:`SchoolDb._upgrade_step`)."""


# --------------------------------------------------------------------------- errors


class TamperError(UsageLogError):
    """A panel's records cannot be trusted: wrong key, broken chain, edited rows.

    The panel's fault, or an attacker's between the panel and this database.
    ``kiosk_id`` names the panel.
    """

    code = "usage_tamper"

    def __init__(self, message: str, *, kiosk_id: str) -> None:
        super().__init__(message)
        self.kiosk_id = kiosk_id


class KeyChangedError(TamperError):
    """The panel sent another signing key than the one pinned at its first collection.

    Either the panel was reinstalled (an admin must forget the old key on purpose) or
    someone impersonates it. Nothing was stored.
    """

    code = "usage_key_changed"

    def __init__(self, message: str, *, kiosk_id: str, pinned: str, got: str) -> None:
        super().__init__(message, kiosk_id=kiosk_id)
        self.pinned = pinned
        self.got = got


class ChainError(TamperError):
    """A batch cannot be the panel's (it names another panel); nothing was stored.

    ``problems`` says how (see :class:`ChainProblem`). Records that do not continue the
    chain are not errors of the batch: :meth:`SchoolDb.ingest` reports them in its
    result and stores the records before them.
    """

    code = "usage_chain"

    def __init__(self, kiosk_id: str, problems: Sequence[ChainProblem]) -> None:
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(
            f"usage records of panel {kiosk_id} refused: {shown}{more}", kiosk_id=kiosk_id
        )
        self.problems = tuple(problems)


# --------------------------------------------------------------------------- values


InvalidReason = Literal["not_a_time", "out_of_range", "negative"]
"""Why a signed value cannot be used: see :class:`InvalidValue`."""

_REASON_TEXT: Final[dict[InvalidReason, str]] = {
    "not_a_time": "is not an ISO 8601 time",
    "out_of_range": "is out of range",
    "negative": "is negative",
}


@dataclass(frozen=True, slots=True)
class InvalidValue:
    """A record the panel signed whose value ``field`` cannot be used (the panel's fault).

    The record is stored quarantined: the chain goes on, reports leave it out.
    ``value`` is the signed value as text, cut to 40 characters.
    """

    kiosk_id: str
    seq: int
    field: str
    value: str
    reason: InvalidReason

    @property
    def text(self) -> str:
        """What is wrong, as stored in ``plays.invalid``."""
        return f"{self.field} = {self.value} {_REASON_TEXT[self.reason]}"

    def __str__(self) -> str:
        return f"{self.kiosk_id} #{self.seq}: {self.text}"


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What :meth:`SchoolDb.ingest` did with one batch.

    ``last_seq`` is the panel's chain end now: pull after it next. ``added`` counts
    the rows stored, the ``quarantined`` ones among them; ``duplicates`` the records
    already stored. ``refused`` is the first new record that does not continue the
    chain; it and the ``not_stored`` records after it were not stored, and the next
    collection stops at it again. ``conflicts`` are records at or below the chain end
    that differ from the ones stored.
    """

    added: int
    duplicates: int
    last_seq: int
    quarantined: tuple[InvalidValue, ...] = ()
    refused: ChainProblem | None = None
    not_stored: int = 0
    conflicts: tuple[ChainProblem, ...] = ()


@dataclass(frozen=True, slots=True)
class HeldRecord:
    """An open problem: the record collection from panel ``kiosk_id`` stops at.

    ``cause`` is how it fails to continue the chain (a :class:`ChainProblem` kind),
    ``detail`` the same in English; ``found_at`` when collection last met it (UTC,
    ISO 8601). An admin resolves it with :meth:`SchoolDb.decide`.
    """

    kiosk_id: str
    room: str
    seq: int
    cause: ProblemKind
    detail: str
    found_at: str


@dataclass(frozen=True, slots=True)
class Decision:
    """What an admin decided: ``action`` by ``who`` at ``decided_at`` (UTC, ISO 8601).

    For ``accept`` and ``quarantine``, ``seq`` is the held record and ``cause`` the
    problem it had; for ``forget_key``, ``seq`` is the last record verified with the
    forgotten key and ``cause`` is None.
    """

    kiosk_id: str
    room: str
    seq: int
    action: DecisionAction
    cause: ProblemKind | None
    who: str
    decided_at: str


class NoSuchProblemError(UsageLogError):
    """Nothing to decide: no record of that panel and number is held. List the open
    problems (:meth:`SchoolDb.problems`) and give a panel and record number from there."""

    code = "usage_no_problem"

    def __init__(self, kiosk_id: str, seq: int) -> None:
        super().__init__(f"no held record #{seq} of panel {kiosk_id}")
        self.kiosk_id, self.seq = kiosk_id, seq


@dataclass(frozen=True, slots=True)
class KioskInfo:
    """One panel known to the school database."""

    kiosk_id: str
    room: str
    school: str
    public_key: str
    last_seq: int
    last_hash: str
    last_collected_at: str | None
    address: str | None


_CANONICAL_UTC: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z"
)
"""A time in the one form panels write (:func:`protocol.clock.iso_utc_ms`): when not
corrected, it is its own UTC text (:func:`derive_columns` need not write it again)."""


def _epoch_ms(text: str) -> int:
    """Parse an ISO 8601 time (``Z`` or an offset; naive means UTC) to epoch milliseconds.

    Raises:
        ValueError: Not an ISO 8601 time.
    """
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_MS


def week_days(week: str) -> tuple[date, date]:
    """The Monday and Sunday of an ISO week such as ``"2026-W48"``.

    Raises:
        ValueError: ``week`` is not ``YYYY-Www`` or no such week exists.
    """
    try:
        year_text, week_text = week.split("-W")
        monday = date.fromisocalendar(int(year_text), int(week_text), 1)
    except ValueError:
        raise ValueError(f"not an ISO week (expected e.g. 2026-W48): {week!r}") from None
    return monday, monday + timedelta(days=6)


# --------------------------------------------------------------------------- database


class UsageStore(Protocol):
    """Where collection stores what it pulls (:func:`controller.collect.collect`): a
    school's SQLite file (:class:`SchoolDb`) or one school in the district's PostgreSQL
    (:class:`controller.district.DistrictSchool`). Both check batches by
    :func:`plan_ingest`."""

    def after_seq(self, kiosk_id: str) -> int:
        """The ``seq`` to pull panel ``kiosk_id`` after."""
        ...

    def ingest(
        self,
        kiosk_id: str,
        batch: UsageBatch,
        *,
        room: str | None = None,
        school: str | None = None,
        address: str | None = None,
        collected_at: datetime | None = None,
    ) -> IngestResult:
        """Check and store one batch; see :meth:`SchoolDb.ingest`."""
        ...


class SchoolDb:
    """The school's usage database in one SQLite file.

    Open it, :meth:`ingest` what each panel sends, query it with
    :mod:`controller.reports`, check it with :meth:`verify`; call :meth:`close` when done.
    """

    def __init__(self, path: Path | str | None, *, tz: str | None = None) -> None:
        """Open (or create) the database and check that it is ours.

        Args:
            path: The SQLite file; ``None`` keeps it in memory (for tests).
            tz: The school's IANA timezone for days and weeks. ``None`` keeps the stored
                one (``Europe/Moscow`` for a new file); another one than stored
                recomputes ``day`` and ``iso_week`` of every record.

        Raises:
            UsageLogError: The file cannot be opened, is not a SQLite database, belongs
                to another program (tables without our schema), has a schema version
                this code does not know, or ``tz`` is not a known timezone.
        """
        self.path = _MEMORY if path is None else str(path)
        try:
            conn = sqlite3.connect(self.path)
        except sqlite3.Error as exc:
            raise UsageLogError(f"cannot open school database {self.path}: {exc}") from exc
        try:
            self._db = Database(conn, execute_plugins=False)
            self._plays: Table = self._db.table("plays")
            self._kiosks: Table = self._db.table("kiosks")
            self._settings: Table = self._db.table("settings")
            version = self._prepare(file_backed=path is not None)
            stored = self._setting("tz")
            self._tz_name = stored or DEFAULT_TZ
            self._tz = _zone(self._tz_name)
            self._matcher = LibraryMatcher(self._stored_libraries())
            if version == 1:
                self._upgrade_from_1()
            if version in (1, 2):
                self._upgrade_from_2()
            for step in range(max(version, 3), SCHEMA_VERSION):
                self._upgrade_step(step)
            if tz is not None and (tz != self._tz_name or not self.timezone_chosen):
                self.set_timezone(tz)
        except UsageLogError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise UsageLogError(
                f"{self.path} is not a usable ClassCast school database: {exc}"
            ) from exc

    def _prepare(self, *, file_backed: bool) -> int:
        """Create the schema in an empty file, or check the one there.

        Returns:
            The file's schema version: ``SCHEMA_VERSION``, or 1 (call
            :meth:`_upgrade_from_1` once the timezone is known).

        Raises:
            UsageLogError: The file is not ours or has another schema version.
            sqlite3.Error: SQLite refused (for example: the file is not a database).
        """
        if file_backed:
            self._db.execute("PRAGMA journal_mode=WAL")
        # WAL with synchronous=NORMAL survives a crash of this program; a power cut can
        # lose the last collections, which the panels still hold: collect again.
        self._db.execute("PRAGMA synchronous=NORMAL")
        app_id = int(self._db.execute("PRAGMA application_id").fetchone()[0])
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        tables = set(self._db.table_names())
        if app_id == 0 and version == 0 and not tables:
            with self._db.atomic():
                for statement in _SCHEMA.strip().split(";\n"):
                    self._db.execute(statement)
                for statement in _UPGRADE_6_ROSTER:
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                self._settings.insert({"key": "tz", "value": DEFAULT_TZ})
            return SCHEMA_VERSION
        if app_id != APPLICATION_ID:
            listed = ", ".join(sorted(tables)) or "none"
            raise UsageLogError(
                f"{self.path} is not a ClassCast school database (it has tables {listed})"
            )
        if version not in (1, 2, 3, 4, 5, 6, SCHEMA_VERSION):
            raise UsageLogError(
                f"{self.path} has school database schema version {version}; "
                f"this program understands version {SCHEMA_VERSION}"
            )
        needed = _TABLES | (_TABLES_3 if version >= 3 else frozenset())
        needed |= _TABLES_6_ROSTER if version >= 6 else frozenset()
        if not tables >= needed:
            missing = ", ".join(sorted(needed - tables))
            raise UsageLogError(f"{self.path} is a damaged school database (missing {missing})")
        return version

    def _upgrade_from_1(self) -> None:
        """Add the ``invalid`` column and quarantine stored records it applies to.

        Version 1 stored every record that verified, including ones with a clock offset
        beyond ``MAX_CLOCK_OFFSET_MS``; those leave the reports now, as at collection.

        Raises:
            sqlite3.Error: SQLite refused.
        """
        # ``hidden`` and ``school_id`` are added by versions 5 and 7.
        columns = ", ".join(c for c in RECORD_COLUMNS if c not in ("hidden", "school_id"))
        with self._db.atomic():
            self._db.execute("ALTER TABLE plays ADD COLUMN invalid TEXT")
            updates = []
            for row in self._db.execute(f"SELECT id, {columns} FROM plays").fetchall():
                derived = self.derive(usage_record(row[1:]))
                if derived[-1] is not None:
                    updates.append((*derived[:5], derived[-1], row[0]))
            self._db.conn.executemany(
                f"UPDATE plays SET {', '.join(f'{c} = ?' for c in _DERIVED_2)} WHERE id = ?",
                updates,
            )
            self._db.execute("PRAGMA user_version = 2")
        if updates:
            logger.info(
                "%s: %d stored record(s) quarantined by the schema upgrade", self.path, len(updates)
            )

    def _setting(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn SQLite failures into :class:`UsageLogError` naming the file.

        Raises:
            UsageLogError: SQLite failed (disk full, file damaged, database closed, ...).
        """
        try:
            yield
        except sqlite3.Error as exc:
            raise UsageLogError(f"school database {self.path}: cannot {action}: {exc}") from exc

    @property
    def db(self) -> Database:
        """The sqlite-utils database, for read-only queries (:mod:`controller.reports`)."""
        return self._db

    def query(
        self, sql: str, params: dict[str, Any] | Sequence[Any], *, action: str
    ) -> list[tuple[Any, ...]]:
        """Run a read-only query and return all its rows (for :mod:`controller.reports`).

        Args:
            sql: One SELECT statement.
            params: Its parameters.
            action: What the query is for, for the error message.

        Returns:
            The rows.

        Raises:
            UsageLogError: The database cannot be read.
        """
        with self._guard(action):
            return list(self._db.execute(sql, params).fetchall())

    @contextmanager
    def transaction(self, action: str) -> Iterator[Database]:
        """Write inside one transaction (for :mod:`controller.roster`): all or nothing.

        Args:
            action: What the writes are for, for the error message.

        Raises:
            UsageLogError: The database cannot be written; nothing was changed.
        """
        with self._guard(action), self._db.atomic():
            yield self._db

    @property
    def tz_name(self) -> str:
        """The school's IANA timezone, which decides ``day`` and ``iso_week``."""
        return self._tz_name

    @property
    def timezone_chosen(self) -> bool:
        """Whether the school's timezone was chosen (:meth:`set_timezone`), not the default."""
        return self._setting(_TZ_CHOSEN) == "1"

    @contextmanager
    def timezone_for_report(self, tz: str, first_day: date, last_day: date) -> Iterator[None]:
        """Read days and weeks from ``first_day`` to ``last_day`` in ``tz`` within the block.

        Inside the block, queries of that day range (and :attr:`tz_name`) see ``day``
        and ``iso_week`` cut in ``tz`` instead of the school's timezone; when it ends
        (normally or by an exception) the stored values are back: the change is made
        in a savepoint that is rolled back, so nothing is written. Only records within
        ``REPORT_TZ_MARGIN_DAYS`` of the range are recomputed, since no two timezones
        differ by more than that.

        Raises:
            UsageLogError: ``tz`` is unknown, or the file cannot be read or locked.
        """
        zone = _zone(tz)
        if tz == self._tz_name:
            yield
            return
        margin = timedelta(days=REPORT_TZ_MARGIN_DAYS)
        conn = self._db.conn
        saved = self._tz, self._tz_name
        with self._guard("read the report in another timezone"):
            conn.execute("SAVEPOINT report_timezone")
            try:
                rows = conn.execute(
                    "SELECT id, start_ms FROM plays WHERE invalid IS NULL AND day BETWEEN ? AND ?",
                    [(first_day - margin).isoformat(), (last_day + margin).isoformat()],
                ).fetchall()
                conn.executemany(
                    "UPDATE plays SET day = ?, iso_week = ? WHERE id = ?",
                    [(*_day_and_week(start_ms, zone), row_id) for row_id, start_ms in rows],
                )
                self._tz, self._tz_name = zone, tz
                yield
            finally:
                self._tz, self._tz_name = saved
                conn.execute("ROLLBACK TO report_timezone")
                conn.execute("RELEASE report_timezone")

    def close(self) -> None:
        """Close the file; the object cannot be used afterwards."""
        self._db.conn.close()

    # ------------------------------------------------------------------ derived columns

    def _upgrade_from_2(self) -> None:
        """Add the ``held`` and ``decisions`` tables (schema version 3).

        Raises:
            sqlite3.Error: SQLite refused.
        """
        statements = [
            st
            for st in _SCHEMA.strip().split(";\n")
            if st.startswith(
                ("CREATE TABLE held", "CREATE TABLE decisions", "CREATE TABLE retired_keys")
            )
        ]
        with self._db.atomic():
            for statement in statements:
                self._db.execute(statement.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
            self._db.execute("PRAGMA user_version = 3")

    def _upgrade_step(self, version: int) -> None:
        """Bring a file of schema ``version`` (3 or later) to the next one, in one
        transaction: the statements of :data:`_UPGRADES`, then (to version 4) every
        record's library by the libraries in force.

        Raises:
            sqlite3.Error: SQLite refused.
        """
        with self._db.atomic():
            for statement in _UPGRADES[version]:
                self._db.execute(statement)
            if version == 3:
                self._recompute_libraries()
            self._db.execute(f"PRAGMA user_version = {version + 1}")

    def _recompute_libraries(self) -> int:
        """Set every record's ``library`` by the libraries in force; returns rows changed."""
        rows = self._db.execute(
            "SELECT id, content_source, library FROM plays WHERE invalid IS NULL"
        ).fetchall()
        updates = [
            (found, row_id)
            for row_id, source, stored in rows
            if (found := self._matcher.library_of(source)) != stored
        ]
        self._db.conn.executemany("UPDATE plays SET library = ? WHERE id = ?", updates)
        return len(updates)

    def derive(self, record: UsageRecord) -> tuple[str, int, str | None, str, str, str, str | None]:
        """The derived columns of ``record``: corrected times, the school's day and week.

        ``start_utc`` is ``started_at - clock_offset_ms``; ``end_utc`` likewise;
        ``day`` (``YYYY-MM-DD``) and ``iso_week`` (``YYYY-Www``) are those of the
        corrected start in the school's timezone; ``library`` is the id of the library
        the content came from (:mod:`controller.libraries`, by the libraries in force)
        or ``''``. For a record whose values cannot be used (:meth:`invalid_value`) they
        are ``("", 0, None, "", "", "", what is wrong)``.

        Args:
            record: A record as the panel signed it.

        Returns:
            ``(start_utc, start_ms, end_utc, day, iso_week, library, invalid)`` as
            stored in ``plays``; ``invalid`` is None for a usable record.
        """
        return derive_columns(record, self._tz, self._matcher)

    @staticmethod
    def invalid_value(record: UsageRecord) -> InvalidValue | None:
        """The first value of ``record`` that cannot be used, or None.

        A clock offset beyond ``limits.MAX_CLOCK_OFFSET_MS`` either way (no kiosk
        accepts one), a negative ``duration_ms`` or one over ``MAX_RECORD_DURATION_MS``,
        a ``started_at``/``ended_at`` that is not an ISO 8601 time, or one whose
        corrected time is outside the years 2 to 9998 (so every timezone can show it).
        Such a record is stored quarantined: in the chain, out of the reports.

        Args:
            record: A record as the panel signed it.

        Returns:
            What is wrong, or None when the record can be counted.
        """
        times = SchoolDb._times(record)
        return times if isinstance(times, InvalidValue) else None

    @staticmethod
    def _times(record: UsageRecord) -> tuple[int, int | None] | InvalidValue:
        """The corrected start and end (epoch ms) of ``record``, or what is wrong with it.

        See :meth:`invalid_value` for what is checked.
        """

        def bad(name: str, value: object, reason: InvalidReason) -> InvalidValue:
            text = value if isinstance(value, str) else str(value)
            shown = text if len(text) <= 40 else text[:39] + "…"
            return InvalidValue(record.kiosk_id, record.seq, name, shown, reason)

        offset = record.clock_offset_ms
        if abs(offset) > limits.MAX_CLOCK_OFFSET_MS:
            return bad("clock_offset_ms", offset, "out_of_range")
        if record.duration_ms < 0:
            return bad("duration_ms", record.duration_ms, "negative")
        if record.duration_ms > MAX_RECORD_DURATION_MS:
            return bad("duration_ms", record.duration_ms, "out_of_range")
        corrected: list[int | None] = []
        for name, text in (("started_at", record.started_at), ("ended_at", record.ended_at)):
            if text is None:
                corrected.append(None)
                continue
            try:
                moment_ms = _epoch_ms(text) - offset
            except ValueError:
                return bad(name, text, "not_a_time")
            except OverflowError:
                return bad(name, text, "out_of_range")
            if not _MIN_TIME_MS <= moment_ms <= _MAX_TIME_MS:
                return bad(name, text, "out_of_range")
            corrected.append(moment_ms)
        start_ms, end_ms = corrected
        assert start_ms is not None  # started_at is a str: the loop appended a time
        return start_ms, end_ms

    def set_timezone(self, tz: str) -> None:
        """Make ``tz`` the school's timezone and recompute every record's day and week.

        Args:
            tz: An IANA timezone name such as ``Asia/Yekaterinburg``.

        Raises:
            UsageLogError: ``tz`` is unknown, or the file cannot be written.
        """
        zone = _zone(tz)
        self._tz, self._tz_name = zone, tz
        with self._guard("change the timezone"), self._db.atomic():
            self._settings.upsert({"key": "tz", "value": tz}, pk="key")
            self._settings.upsert({"key": _TZ_CHOSEN, "value": "1"}, pk="key")
            rows = self._db.execute(
                "SELECT id, start_ms FROM plays WHERE invalid IS NULL"
            ).fetchall()
            updates = [(*_day_and_week(start_ms, zone), row_id) for row_id, start_ms in rows]
            self._db.conn.executemany(
                "UPDATE plays SET day = ?, iso_week = ? WHERE id = ?", updates
            )

    # ------------------------------------------------------------------ libraries

    def _stored_libraries(self) -> tuple[Library, ...]:
        stored = self._setting(_LIBRARIES)
        if stored is None:
            return DEFAULT_LIBRARIES
        try:
            return libraries_from_json(stored)
        except ValueError as exc:
            raise UsageLogError(
                f"{self.path}: the content libraries setting is damaged ({exc}); "
                "set it again with classcast usage libraries reset"
            ) from None

    @property
    def libraries(self) -> tuple[Library, ...]:
        """The content libraries this database recognises (the defaults until changed)."""
        return self._matcher.libraries

    @property
    def libraries_chosen(self) -> bool:
        """Whether an admin changed the list of libraries (:meth:`set_libraries`)."""
        return self._setting(_LIBRARIES) is not None

    def set_libraries(self, libraries: Sequence[Library] | None) -> int:
        """Recognise ``libraries`` (``None``: the defaults) and re-mark every record by them.

        Args:
            libraries: Checked entries (:func:`controller.libraries.library`).

        Returns:
            How many records changed their library.

        Raises:
            ValueError: two libraries with one id, or over ``MAX_LIBRARIES``.
            UsageLogError: The file cannot be written.
        """
        chosen = DEFAULT_LIBRARIES if libraries is None else checked_list(libraries)
        saved = self._matcher
        self._matcher = LibraryMatcher(chosen)
        try:
            with self._guard("change the content libraries"), self._db.atomic():
                if libraries is None:
                    self._db.execute("DELETE FROM settings WHERE key = ?", [_LIBRARIES])
                else:
                    self._settings.upsert(
                        {"key": _LIBRARIES, "value": libraries_to_json(chosen)}, pk="key"
                    )
                return self._recompute_libraries()
        except BaseException:
            self._matcher = saved
            raise

    # ------------------------------------------------------------------ panels

    def kiosk(self, kiosk_id: str) -> KioskInfo | None:
        """The panel ``kiosk_id``, or ``None`` if it was never collected.

        Raises:
            UsageLogError: The file cannot be read.
        """
        with self._guard("read panels"):
            row = self._db.execute(
                "SELECT kiosk_id, room, school, public_key, last_seq, last_hash, "
                "last_collected_at, address FROM kiosks WHERE kiosk_id = ?",
                [kiosk_id],
            ).fetchone()
        return None if row is None else KioskInfo(*row)

    def kiosks(self) -> list[KioskInfo]:
        """Every panel ever collected, by kiosk id.

        Raises:
            UsageLogError: The file cannot be read.
        """
        with self._guard("read panels"):
            rows = self._db.execute(
                "SELECT kiosk_id, room, school, public_key, last_seq, last_hash, "
                "last_collected_at, address FROM kiosks ORDER BY kiosk_id"
            ).fetchall()
        return [KioskInfo(*row) for row in rows]

    def after_seq(self, kiosk_id: str) -> int:
        """Where to resume collecting panel ``kiosk_id``: send ``usage_pull after_seq=<this>``.

        Returns:
            The ``seq`` of the panel's last stored record, 0 for a new panel.

        Raises:
            UsageLogError: The file cannot be read.
        """
        info = self.kiosk(kiosk_id)
        return 0 if info is None else info.last_seq

    def records(self, kiosk_id: str, after_seq: int, limit: int) -> list[UsageRecord]:
        """Panel ``kiosk_id``'s stored records after ``after_seq``, in ``seq`` order, as the
        panel signed them (for :func:`controller.district.push`, which checks them again).

        Raises:
            UsageLogError: The file cannot be read.
        """
        with self._guard("read records"):
            rows = self._db.execute(
                f"SELECT {', '.join(RECORD_COLUMNS)} FROM plays "
                "WHERE kiosk_id = ? AND seq > ? ORDER BY seq, id LIMIT ?",
                [kiosk_id, after_seq, limit],
            ).fetchall()
        return [usage_record(row) for row in rows]

    def retired_keys(self, kiosk_id: str) -> list[tuple[int, str]]:
        """The keys an admin forgot for panel ``kiosk_id`` (a reinstalled panel), oldest
        first: ``(up_to_seq, public_key)``, each the key of the records up to ``up_to_seq``.

        Raises:
            UsageLogError: The file cannot be read.
        """
        with self._guard("read panels"):
            rows = self._db.execute(
                "SELECT up_to_seq, public_key FROM retired_keys WHERE kiosk_id = ? ORDER BY rowid",
                [kiosk_id],
            ).fetchall()
        return [(int(up_to), str(key)) for up_to, key in rows]

    def record_count(self) -> int:
        """How many records the database holds.

        Raises:
            UsageLogError: The file cannot be read.
        """
        with self._guard("count records"):
            return self._plays.count

    # ------------------------------------------------------------------ collection

    def ingest(
        self,
        kiosk_id: str,
        batch: UsageBatch,
        *,
        room: str | None = None,
        school: str | None = None,
        address: str | None = None,
        collected_at: datetime | None = None,
    ) -> IngestResult:
        """Check one ``usage_batch`` from panel ``kiosk_id`` and store what can be trusted.

        The new records are stored up to the first one that does not continue the
        chain (``result.refused``); records the panel signed with unusable values are
        stored quarantined (``result.quarantined``). Records the database already holds
        (same ``seq`` and uuid and hash) are counted as duplicates and skipped, so
        repeat an interrupted or doubtful collection freely. Then pull again after
        ``result.last_seq`` while ``batch.more``, unless a record was refused (the
        panel's chain stops there) or ``last_seq`` did not move (nothing new came).

        Args:
            kiosk_id: The panel the batch came from (its id from ``welcome``).
            batch: The panel's reply to ``usage_pull``.
            room: The panel's room now (from ``welcome``); kept when ``None``.
            school: The panel's school (from ``welcome``); kept when ``None``.
            address: Where the panel was reached; kept when ``None``.
            collected_at: When the collection happened (now by default).

        Returns:
            Records added, quarantined and skipped, the panel's new chain end, and the
            records at fault: the one refused (edited, deleted, inserted, reordered,
            badly signed, another panel's) and stored ``seq`` numbers that came back
            as other records.

        Raises:
            KeyChangedError: The panel signs with another key than the one pinned;
                nothing was stored.
            ChainError: The batch is another panel's; nothing was stored.
            TamperError: The batch carries no usable signing key; nothing was stored.
            UsageLogError: The file cannot be read or written.
        """
        plan = plan_ingest(
            kiosk_id,
            batch,
            self.kiosk(kiosk_id),
            stored=self._stored_seqs,
            derive=self.derive,
            room=room,
            school=school,
            address=address,
            collected_at=collected_at,
        )
        with self._guard(f"store records of panel {kiosk_id}"), self._db.atomic():
            self._db.conn.executemany(_INSERT, plan.rows)
            self._kiosks.upsert(plan.panel, pk="kiosk_id")
            self._db.execute("DELETE FROM held WHERE kiosk_id = ?", [kiosk_id])
            if plan.held is not None:
                self._db.execute("INSERT INTO held VALUES (?, ?, ?, ?, ?, ?)", plan.held)
        return plan.result

    def _stored_seqs(self, kiosk_id: str, low: int, high: int) -> dict[int, tuple[str, str]]:
        """``seq`` → (uuid, record_hash) of the panel's stored records from ``low`` to ``high``.

        Raises:
            UsageLogError: The file cannot be read.
        """
        with self._guard("read records"):
            return {
                int(seq): (str(uuid), str(digest))
                for seq, uuid, digest in self._db.execute(
                    "SELECT seq, uuid, record_hash FROM plays "
                    "WHERE kiosk_id = ? AND seq BETWEEN ? AND ?",
                    [kiosk_id, low, high],
                )
            }

    # ------------------------------------------------------------------ decisions

    def problems(self) -> list[HeldRecord]:
        """The open problems: per panel, the record its collection stops at.

        Resolve each with :meth:`decide`; one that the panel's real log replaces (the
        next collection stores past it) goes away by itself.

        Raises:
            UsageLogError: The file cannot be read.
        """
        with self._guard("read problems"):
            rows = self._db.execute(
                "SELECT h.kiosk_id, COALESCE(k.room, ''), h.seq, h.cause, h.detail, h.found_at "
                "FROM held h LEFT JOIN kiosks k USING (kiosk_id) ORDER BY k.room, h.kiosk_id"
            ).fetchall()
        return [HeldRecord(*row) for row in rows]

    def decide(
        self, kiosk_id: str, seq: int, action: DecisionAction, who: str, now: datetime
    ) -> Decision:
        """Resolve the held record ``seq`` of panel ``kiosk_id`` and record the decision.

        ``accept`` stores the record as the panel sent it and counts it in reports;
        ``quarantine`` stores it outside the reports (``invalid`` is
        :data:`QUARANTINED_BY_ADMIN`). Either way the chain goes on from it: the next
        collection pulls the records after ``seq``, and :meth:`verify` reports the record
        as decided (:meth:`decisions`), not as a break, while it stays as decided.

        Raises:
            NoSuchProblemError: no record ``seq`` of that panel is held.
            UsageLogError: The file cannot be read or written.
        """
        with self._guard("read problems"):
            row = self._db.execute(
                "SELECT cause, record FROM held WHERE kiosk_id = ? AND seq = ?", [kiosk_id, seq]
            ).fetchone()
        if row is None:
            raise NoSuchProblemError(kiosk_id, seq)
        cause, text = str(row[0]), str(row[1])
        record = usage_record(json.loads(text))
        derived = (
            ("", 0, None, "", "", "", QUARANTINED_BY_ADMIN)
            if action == "quarantine"
            else self.derive(record)
        )
        moment = iso_utc(now)
        with self._guard(f"store the decision on record #{seq}"), self._db.atomic():
            self._db.conn.execute(_INSERT, (*_fields(record), *derived))
            self._db.execute(
                "UPDATE kiosks SET last_seq = ?, last_hash = ? WHERE kiosk_id = ?",
                [seq, record.record_hash, kiosk_id],
            )
            self._db.execute(
                "INSERT INTO decisions (kiosk_id, seq, action, cause, who, decided_at, record) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [kiosk_id, seq, action, cause, who, moment, text],
            )
            self._db.execute("DELETE FROM held WHERE kiosk_id = ?", [kiosk_id])
        info = self.kiosk(kiosk_id)
        return Decision(
            kiosk_id, info.room if info else "", seq, action, cast(ProblemKind, cause), who, moment
        )

    def decisions(self, kiosk_id: str | None = None) -> list[Decision]:
        """Every decision on a held record (or one panel's), oldest first: who decided
        what and when, for an inspector.

        Raises:
            UsageLogError: The file cannot be read.
        """
        with self._guard("read decisions"):
            rows = self._db.execute(
                "SELECT d.kiosk_id, COALESCE(k.room, ''), d.seq, d.action, d.cause, d.who, "
                "d.decided_at FROM decisions d LEFT JOIN kiosks k USING (kiosk_id) "
                "WHERE ? IS NULL OR d.kiosk_id = ? ORDER BY d.id",
                [kiosk_id, kiosk_id],
            ).fetchall()
        return [
            Decision(kid, room, seq, action, cause or None, who, at)
            for kid, room, seq, action, cause, who, at in rows
        ]

    def forget_key(self, kiosk_id: str, who: str, now: datetime) -> Decision:
        """Forget the signing key pinned for panel ``kiosk_id`` (a reinstalled panel).

        The next collection pins the key the panel signs with then and goes on after
        the last stored record; the records stored so far stay, verified with the old
        key. Records the panel signed with its old key but had not sent yet are then
        refused and held (``bad_signature``): decide on them with :meth:`decide`. The
        decision is recorded (:meth:`decisions`, action ``forget_key``).

        Raises:
            NoSuchProblemError: the panel was never collected (``seq`` 0).
            UsageLogError: The file cannot be read or written.
        """
        info = self.kiosk(kiosk_id)
        if info is None:
            raise NoSuchProblemError(kiosk_id, 0)
        moment = iso_utc(now)
        with self._guard(f"forget the key of panel {kiosk_id}"), self._db.atomic():
            if info.public_key:
                self._db.execute(
                    "INSERT INTO retired_keys VALUES (?, ?, ?)",
                    [kiosk_id, info.public_key, info.last_seq],
                )
            self._db.execute("UPDATE kiosks SET public_key = '' WHERE kiosk_id = ?", [kiosk_id])
            self._db.execute(
                "INSERT INTO decisions (kiosk_id, seq, action, cause, who, decided_at, record) "
                "VALUES (?, ?, 'forget_key', '', ?, ?, ?)",
                [kiosk_id, info.last_seq, who, moment, info.public_key],
            )
        return Decision(kiosk_id, info.room, info.last_seq, "forget_key", None, who, moment)

    # ------------------------------------------------------------------ verification

    def verify(self, kiosk_id: str | None = None) -> list[ChainProblem]:
        """Re-check every stored chain (or one panel's) and report each record at fault.

        Run it when the file may have been edited outside ClassCast (``classcast usage
        verify``). Each problem names the panel, the record's ``seq`` and its kind:

        - ``edited``: a signed field (or a column derived from them, such as ``day``)
          no longer matches what the panel signed;
        - ``bad_signature``: the row's hash was recomputed, or the row forged, without
          the panel's key;
        - ``deleted``: records missing inside the chain or after its last stored record
          (``seq`` is the first missing one);
        - ``inserted``: a row the panel never sent (a ``seq`` twice, beyond the chain end
          recorded at collection, or not linking to the record before it; also rows of
          an unknown panel);
        - ``reordered``: a row whose ``seq`` was changed (the message gives the original)
          or rows stored out of collection order.

        Args:
            kiosk_id: Only this panel; every panel when ``None``.

        Returns:
            Every problem found, by panel and ``seq``; empty when the database is intact.

        Raises:
            UsageLogError: The file cannot be read.
        """
        panels = self.kiosks()
        if kiosk_id is not None:
            panels = [p for p in panels if p.kiosk_id == kiosk_id]
        problems: list[ChainProblem] = []
        with self._guard("verify records"):
            for panel in panels:
                problems += self._verify_panel(panel)
            strays = self._db.execute(
                "SELECT kiosk_id, seq FROM plays WHERE kiosk_id NOT IN "
                "(SELECT kiosk_id FROM kiosks) ORDER BY kiosk_id, seq"
            ).fetchall()
            for stray_kiosk, seq in strays:
                if kiosk_id is None or stray_kiosk == kiosk_id:
                    problems.append(
                        ChainProblem(
                            str(stray_kiosk),
                            int(seq),
                            "inserted",
                            "a record of a panel that was never collected (inserted)",
                        )
                    )
        return problems

    def _verify_panel(self, panel: KioskInfo) -> list[ChainProblem]:
        """Problems in the stored chain of one panel; see :meth:`verify`."""
        kid = panel.kiosk_id
        # Keys an admin forgot (a reinstalled panel) verify the records up to their end.
        retired = self._db.execute(
            "SELECT up_to_seq, public_key FROM retired_keys WHERE kiosk_id = ? ORDER BY rowid",
            [kid],
        ).fetchall()
        try:
            keys = _PanelKeys(panel.public_key, retired)
        except ValueError as exc:
            return [ChainProblem(kid, 0, "edited", str(exc))]
        rows = self._db.execute(
            f"SELECT id, {', '.join(RECORD_COLUMNS + DERIVED_COLUMNS)} FROM plays "
            "WHERE kiosk_id = ? ORDER BY seq, id",
            [kid],
        ).fetchall()
        width = len(RECORD_COLUMNS)
        stored = [(int(row[0]), usage_record(row[1 : width + 1]), row[width + 1 :]) for row in rows]
        audit = _ChainAudit(kid, keys, self.derive)
        checked = audit.recover_reordered(stored)
        audit.check_chain(checked, panel.last_seq)
        audit.check_collection_order(checked)
        decided = {
            int(seq): (str(action), json.loads(text))
            for seq, action, text in self._db.execute(
                "SELECT seq, action, record FROM decisions "
                "WHERE kiosk_id = ? AND action IN ('accept', 'quarantine')",
                [kid],
            )
        }
        audit.forgive_decided(stored, decided)
        return audit.found()


class _PanelKeys:
    """The keys that may have signed a panel's records: the one pinned now and those an
    admin retired (a reinstalled panel), each verifying the records up to its end.

    Raises:
        ValueError: a key is damaged, or there is none (the message says which).
    """

    def __init__(self, pinned: str, retired: Sequence[tuple[int, str]]) -> None:
        try:
            self.current = load_public_key(pinned) if pinned else None
            self.retired = [(int(up_to), load_public_key(text)) for up_to, text in retired]
        except ValueError as exc:
            raise ValueError(f"the pinned signing key is damaged: {exc}") from None
        if self.current is None and not self.retired:
            raise ValueError("the pinned signing key is missing")

    def for_seq(self, seq: int) -> list[Ed25519PublicKey]:
        """The keys that may have signed record ``seq``: the retired key whose range holds
        it, else the pinned one or the last retired one (records the panel signed before
        it was reinstalled, collected after)."""
        for up_to, old in self.retired:
            if seq <= up_to:
                return [old]
        last = self.retired[-1][1] if self.retired else None
        return [k for k in (self.current, last) if k is not None]


_Checked = tuple[int, UsageRecord, tuple[Any, ...], bool]
"""A stored row as audited: row id, the record (its original ``seq`` restored when only
that was changed), its derived columns, and whether its hash matches its content."""


class _ChainAudit:
    """The passes of :meth:`SchoolDb.verify` over one panel's stored rows, collecting the
    problems found per row (``-1``: the end of the chain)."""

    def __init__(self, kiosk_id: str, keys: _PanelKeys, derive: Derive) -> None:
        self.kid = kiosk_id
        self.keys = keys
        self.derive = derive
        self.problems: dict[int, list[ChainProblem]] = {}

    def flag(self, row_id: int, seq: int, kind: ProblemKind, message: str) -> None:
        self.problems.setdefault(row_id, []).append(ChainProblem(self.kid, seq, kind, message))

    def found(self) -> list[ChainProblem]:
        """Every problem, by ``seq`` and kind."""
        found = [p for group in self.problems.values() for p in group]
        found.sort(key=lambda p: (p.seq, p.kind))
        return found

    def recover_reordered(
        self, stored: Sequence[tuple[int, UsageRecord, Sequence[Any]]]
    ) -> list[_Checked]:
        """Pass 1: rows whose ``seq`` alone was changed get their original one back (and
        are flagged ``reordered``); returns every row, in the order of the original seqs."""
        seq_by_hash = {rec.record_hash: rec.seq for _, rec, _ in stored}
        seq_by_prev = {rec.prev_hash: rec.seq for _, rec, _ in stored}
        checked: list[_Checked] = []
        for row_id, rec, derived in stored:
            hash_ok = record_hash(rec) == rec.record_hash
            if not hash_ok:
                original = _original_seq(rec, seq_by_hash, seq_by_prev)
                if original is not None:
                    self.flag(
                        row_id,
                        original,
                        "reordered",
                        f"its seq was changed from {original} to {rec.seq} (reordered)",
                    )
                    rec, hash_ok = replace(rec, seq=original), True
            checked.append((row_id, rec, tuple(derived), hash_ok))
        checked.sort(key=lambda item: (item[1].seq, item[0]))
        return checked

    def check_chain(self, checked: Sequence[_Checked], last_collected: int) -> None:
        """Pass 2: the chain in ``seq`` order: gaps, seconds of one seq, records past the
        last collected, edited content, bad signatures, derived columns, broken links."""
        expected_prev: str | None = GENESIS_HASH
        last_seq = 0
        for row_id, rec, derived, hash_ok in checked:
            seq = rec.seq
            if seq <= last_seq:
                self.flag(row_id, seq, "inserted", f"a second record #{seq} (inserted)")
            elif seq > last_seq + 1:
                gap = f"{last_seq + 1}" if seq == last_seq + 2 else f"{last_seq + 1}–{seq - 1}"
                self.flag(row_id, last_seq + 1, "deleted", f"records {gap} are missing (deleted)")
            if seq > last_collected:
                self.flag(
                    row_id,
                    seq,
                    "inserted",
                    f"after the last record collected (#{last_collected}) (inserted)",
                )
            content_ok = hash_ok and self._content_checked(row_id, rec, derived)
            broken_link = expected_prev is not None and rec.prev_hash != expected_prev
            if content_ok and broken_link and row_id not in self.problems:
                self.flag(
                    row_id, seq, "inserted", "does not follow the record before it (inserted)"
                )
            if not hash_ok:
                self.flag(
                    row_id, seq, "edited", "content differs from what the panel signed (edited)"
                )
            # An authentic record anchors the next link even if rows around it are missing.
            expected_prev = rec.record_hash if content_ok else None
            last_seq = max(last_seq, seq)
        if last_seq < last_collected:
            gap = (
                f"{last_collected}"
                if last_seq + 1 == last_collected
                else f"{last_seq + 1}–{last_collected}"
            )
            self.flag(
                -1, last_seq + 1, "deleted", f"records {gap} are missing at the end (deleted)"
            )

    def _content_checked(self, row_id: int, rec: UsageRecord, derived: tuple[Any, ...]) -> bool:
        """Whether a record whose hash matches is signed by the panel and its derived
        columns match; flags what does not. False for a bad signature only: a record with
        edited derived columns still anchors the chain (its signed content is intact)."""
        if not any(signature_ok(rec, key) for key in self.keys.for_seq(rec.seq)):
            self.flag(row_id, rec.seq, "bad_signature", "not signed by this panel's key (forged)")
            return False
        expected = self.derive(rec)
        if expected != derived:
            names = [
                name
                for name, want, got in zip(DERIVED_COLUMNS, expected, derived, strict=True)
                if want != got
            ]
            self.flag(
                row_id,
                rec.seq,
                "edited",
                f"{', '.join(names) or 'derived columns'} do not match the signed times (edited)",
            )
        return True

    def check_collection_order(self, checked: Sequence[_Checked]) -> None:
        """Pass 3: records are inserted in seq order, so row ids must grow with seq; rows
        moved about (deleted and put back) show here."""
        highest = 0
        for row_id, rec, _, _ in sorted(checked, key=lambda item: item[0]):
            if rec.seq < highest and row_id not in self.problems:
                self.flag(row_id, rec.seq, "reordered", f"stored after #{highest} (reordered)")
            highest = max(highest, rec.seq)

    def forgive_decided(
        self,
        stored: Sequence[tuple[int, UsageRecord, Sequence[Any]]],
        decided: dict[int, tuple[str, Any]],
    ) -> None:
        """Records an admin decided on stay as decided: their own break is not reported
        while they are exactly as decided."""
        for row_id, rec, derived in stored:
            if rec.seq not in decided:
                continue
            action, fields = decided[rec.seq]
            as_decided = usage_record(fields)
            expected = (
                ("", 0, None, "", "", "", QUARANTINED_BY_ADMIN)
                if action == "quarantine"
                else self.derive(as_decided)
            )
            # A decision stored before a field was added names fewer fields.
            if _fields(rec) == _fields(as_decided) and tuple(derived) == expected:
                self.problems.pop(row_id, None)


Derive = Callable[[UsageRecord], tuple[Any, ...]]
"""A store's :meth:`SchoolDb.derive`: the derived columns of a record."""
StoredSeqs = Callable[[str, int, int], dict[int, tuple[str, str]]]
"""A store's stored records of a panel from one ``seq`` to another: ``seq`` → (uuid, hash)."""


@dataclass(frozen=True, slots=True)
class IngestPlan:
    """What a store must write for one batch (:func:`plan_ingest`), all in one transaction.

    ``rows``: the new records' signed then derived columns (``RECORD_COLUMNS`` +
    ``DERIVED_COLUMNS``), to insert; ``panel``: the panel's row in ``kiosks`` (upsert);
    ``held``: the record collection stops at (``kiosk_id, seq, cause, detail, record
    JSON, found_at``), replacing the panel's held one, or None to clear it;
    ``result``: what to tell the caller once written.
    """

    rows: list[tuple[Any, ...]]
    panel: dict[str, Any]
    held: tuple[Any, ...] | None
    result: IngestResult


def _batch_key(kiosk_id: str, batch: UsageBatch, info: KioskInfo | None) -> Ed25519PublicKey:
    """The key that signs ``batch``, if the batch may be this panel's at all.

    Raises:
        ChainError: The batch is another panel's.
        TamperError: The batch carries no usable signing key.
        KeyChangedError: The panel signs with another key than the one pinned.
    """
    if batch.kiosk_id != kiosk_id:
        raise ChainError(
            kiosk_id,
            [ChainProblem(kiosk_id, 0, "foreign", f"the batch is from panel {batch.kiosk_id}")],
        )
    try:
        key = load_public_key(batch.public_key)
    except ValueError as exc:
        raise TamperError(
            f"panel {kiosk_id} sent no usable signing key: {exc}", kiosk_id=kiosk_id
        ) from None
    # An empty pinned key was forgotten by an admin: this batch's key is pinned.
    if info is not None and info.public_key not in ("", batch.public_key):
        raise KeyChangedError(
            f"panel {kiosk_id} ({info.room}) now signs its usage log with another key "
            "than the one pinned at its first collection: nothing stored. If the panel "
            "was reinstalled, an admin must forget its old key on purpose.",
            kiosk_id=kiosk_id,
            pinned=info.public_key,
            got=batch.public_key,
        )
    return key


def plan_ingest(
    kiosk_id: str,
    batch: UsageBatch,
    info: KioskInfo | None,
    *,
    stored: StoredSeqs,
    derive: Derive,
    room: str | None = None,
    school: str | None = None,
    address: str | None = None,
    collected_at: datetime | None = None,
) -> IngestPlan:
    """Check one batch of panel ``kiosk_id`` against its stored chain end ``info``: the
    rules of :meth:`SchoolDb.ingest`, for every store (a school's SQLite file, the
    district's PostgreSQL). The store then writes the plan in one transaction.

    Args:
        kiosk_id: The panel the batch came from.
        batch: The panel's records and signing key.
        info: The panel as stored (None: never collected).
        stored: Reads the stored uuid and hash of the panel's records by ``seq``.
        derive: The store's derived columns of a record.
        room: The panel's room now; kept when ``None``.
        school: The panel's school name; kept when ``None``.
        address: Where the panel was reached; kept when ``None``.
        collected_at: When the collection happened (now by default).

    Returns:
        The rows, the panel's row, the held record and the result.

    Raises:
        KeyChangedError: The panel signs with another key than the one pinned.
        ChainError: The batch is another panel's.
        TamperError: The batch carries no usable signing key.
        UsageLogError: ``stored`` cannot read the store.
    """
    key = _batch_key(kiosk_id, batch, info)
    last_seq = 0 if info is None else info.last_seq
    last_hash = GENESIS_HASH if info is None else info.last_hash
    old = [r for r in batch.records if r.seq <= last_seq]
    new = [r for r in batch.records if r.seq > last_seq]
    conflicts = _duplicate_problems(kiosk_id, old, stored)
    accepted, refused = _authentic_prefix(
        kiosk_id, new, key, prev_seq=last_seq, prev_hash=last_hash
    )
    rows = []
    quarantined = []
    for record in accepted:
        derived = derive(record)
        rows.append(_fields(record) + derived)
        if derived[-1] is not None:
            problem = SchoolDb.invalid_value(record)
            if problem is not None:
                quarantined.append(problem)
    if accepted:
        last_seq, last_hash = accepted[-1].seq, accepted[-1].record_hash
    moment = collected_at if collected_at is not None else datetime.now(UTC)
    latest_room = room if room is not None else (accepted[-1].room if accepted else None)
    panel: dict[str, Any] = {
        "kiosk_id": kiosk_id,
        "public_key": batch.public_key,
        "last_seq": last_seq,
        "last_hash": last_hash,
        "last_collected_at": iso_utc(moment),
    }
    for column, value in (("room", latest_room), ("school", school), ("address", address)):
        if value is not None:
            panel[column] = value
    held = None
    if refused is not None:
        culprit = next((r for r in new if r.seq == refused.seq), None)
        # Another panel's record is never this chain's to accept: it is not held.
        if culprit is not None and culprit.kiosk_id == kiosk_id and refused.seq > last_seq:
            held = (
                kiosk_id,
                refused.seq,
                refused.kind,
                refused.message,
                json.dumps(dataclasses.asdict(culprit), ensure_ascii=False),
                panel["last_collected_at"],
            )
    result = IngestResult(
        added=len(rows),
        duplicates=len(old) - len(conflicts),
        last_seq=last_seq,
        quarantined=tuple(quarantined),
        refused=refused,
        not_stored=len(new) - len(accepted),
        conflicts=tuple(conflicts),
    )
    return IngestPlan(rows, panel, held, result)


def derive_columns(
    record: UsageRecord, zone: ZoneInfo, matcher: LibraryMatcher
) -> tuple[str, int, str | None, str, str, str, str | None]:
    """:meth:`SchoolDb.derive` of ``record`` with days and weeks in ``zone`` and libraries
    recognised by ``matcher``: the one rule for every store."""
    times = SchoolDb._times(record)
    if isinstance(times, InvalidValue):
        return ("", 0, None, "", "", "", times.text)
    start_ms, end_ms = times
    day, week = _calendar(zone).day_and_week(start_ms)
    # A time in the panels' own form, not corrected, is its own UTC text.
    exact = not record.clock_offset_ms
    started, ended = record.started_at, record.ended_at
    start_utc = started if exact and _CANONICAL_UTC.fullmatch(started) else iso_utc_ms(start_ms)
    if end_ms is None or ended is None:
        end_utc = None
    else:
        end_utc = ended if exact and _CANONICAL_UTC.fullmatch(ended) else iso_utc_ms(end_ms)
    library = matcher.library_of(record.content_source)
    return (start_utc, start_ms, end_utc, day, week, library, None)


def _duplicate_problems(
    kiosk_id: str, records: Sequence[UsageRecord], stored: StoredSeqs
) -> list[ChainProblem]:
    """Problems with records at or below the stored chain end: each must be stored as is.

    Raises:
        UsageLogError: ``stored`` cannot read the store.
    """
    if not records:
        return []
    found = stored(kiosk_id, min(r.seq for r in records), max(r.seq for r in records))
    return [
        ChainProblem(
            kiosk_id,
            record.seq,
            "inserted",
            f"seq {record.seq} is already stored as another record "
            f"(uuid {record.uuid} differs from the one collected before)",
        )
        for record in records
        if found.get(record.seq) != (record.uuid, record.record_hash)
    ]


def _authentic_prefix(
    kiosk_id: str,
    records: Sequence[UsageRecord],
    key: Ed25519PublicKey,
    *,
    prev_seq: int,
    prev_hash: str,
) -> tuple[list[UsageRecord], ChainProblem | None]:
    """The longest run of ``records`` that continues the chain after ``prev_seq``.

    Each record must be the panel's, have the next ``seq``, match its hash and link to
    the one before it; the run ends before the first that does not, which is returned
    as the problem. Because the chain ties each record to the ones before it, one valid
    signature on the run's last record vouches for the whole run; only when it is not
    valid are the others checked, to find the first record the panel did not sign.

    Returns:
        The records to store, and the first record refused (None when all continue).
    """
    problem: ChainProblem | None = None
    expected_prev, expected_seq = prev_hash, prev_seq + 1
    count = 0
    for record in records:
        seq = record.seq
        if record.kiosk_id != kiosk_id:
            problem = ChainProblem(
                kiosk_id, seq, "foreign", f"a record of panel {record.kiosk_id} (foreign)"
            )
        elif seq > expected_seq:
            gap = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}–{seq - 1}"
            problem = ChainProblem(
                kiosk_id, seq, "deleted", f"record(s) {gap} are missing before it (deleted)"
            )
        elif seq < expected_seq:
            problem = ChainProblem(
                kiosk_id, seq, "reordered", f"sent after #{expected_seq - 1} (reordered)"
            )
        elif record_hash(record) != record.record_hash:
            problem = ChainProblem(
                kiosk_id, seq, "edited", "content differs from what the panel signed (edited)"
            )
        elif record.prev_hash != expected_prev:
            problem = ChainProblem(
                kiosk_id, seq, "inserted", "does not follow the record before it (inserted)"
            )
        if problem is not None:
            break
        expected_prev, expected_seq, count = record.record_hash, expected_seq + 1, count + 1
    run = list(records[:count])
    if run and not signature_ok(run[-1], key):
        for position, record in enumerate(run):
            if not signature_ok(record, key):
                return run[:position], ChainProblem(
                    kiosk_id, record.seq, "bad_signature", "not signed by this panel's key (forged)"
                )
    return run, problem


def _fields(record: UsageRecord) -> tuple[Any, ...]:
    """The signed columns of ``record`` in ``RECORD_COLUMNS`` order."""
    values: tuple[Any, ...] = _record_values(record)
    return values


_record_values = operator.attrgetter(*RECORD_COLUMNS)


def _original_seq(
    record: UsageRecord, seq_by_hash: dict[str, int], seq_by_prev: dict[str, int]
) -> int | None:
    """The ``seq`` ``record`` was signed with, if only its ``seq`` was changed.

    Candidates come from its neighbours in the chain (the record its ``prev_hash``
    names, the record naming it) and from the seqs next to its own.
    """
    candidates: list[int] = []
    if record.prev_hash == GENESIS_HASH:
        candidates.append(1)
    elif record.prev_hash in seq_by_hash:
        candidates.append(seq_by_hash[record.prev_hash] + 1)
    if record.record_hash in seq_by_prev:
        candidates.append(seq_by_prev[record.record_hash] - 1)
    candidates += [record.seq - 1, record.seq + 1]
    for seq in candidates:
        if (
            seq != record.seq
            and seq > 0
            and record_hash(replace(record, seq=seq)) == record.record_hash
        ):
            return seq
    return None


def _day_and_week(start_ms: int, zone: ZoneInfo) -> tuple[str, str]:
    """``day`` and ``iso_week`` of a corrected start in ``zone`` (the exact, slow way)."""
    local = datetime.fromtimestamp(start_ms / 1000, zone)
    year, week, _ = local.isocalendar()
    return local.date().isoformat(), f"{year}-W{week:02d}"


def _zone(name: str) -> ZoneInfo:
    """The timezone ``name``.

    Raises:
        UsageLogError: No such IANA timezone.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageLogError(f"unknown timezone {name!r} (expected e.g. Europe/Moscow)") from None


class _Calendar:
    """``day`` and ``iso_week`` of corrected starts in one timezone, as
    :func:`_day_and_week` computes them, for a fraction of its cost.

    The zone's UTC offset is looked up once per UTC hour (at the hour's first and last
    millisecond), each local day's texts once per day. An hour in which the offset
    changes takes the exact way for every time in it; this relies on no timezone
    changing its offset twice within one hour, which none in the IANA database does.
    """

    def __init__(self, zone: ZoneInfo) -> None:
        self._zone = zone
        self._offsets: dict[int, int] = {}
        self._days: dict[int, tuple[str, str]] = {}

    def _offset_ms(self, hour: int) -> int:
        """The zone's offset in ms throughout UTC hour ``hour``, or ``_OFFSET_VARIES``."""
        first = datetime.fromtimestamp(hour * 3600, self._zone).utcoffset()
        last = datetime.fromtimestamp(hour * 3600 + 3599.999, self._zone).utcoffset()
        if first is None or first != last:
            return _OFFSET_VARIES
        return first // _ONE_MS

    def day_and_week(self, start_ms: int) -> tuple[str, str]:
        """``day`` and ``iso_week`` of the corrected start ``start_ms`` (epoch ms)."""
        hour = start_ms // _HOUR_MS
        offset = self._offsets.get(hour)
        if offset is None:
            if len(self._offsets) >= CALENDAR_CACHE_ENTRIES:
                self._offsets.clear()
            offset = self._offsets[hour] = self._offset_ms(hour)
        if offset == _OFFSET_VARIES:
            return _day_and_week(start_ms, self._zone)
        local_day = (start_ms + offset) // _DAY_MS
        texts = self._days.get(local_day)
        if texts is None:
            if len(self._days) >= CALENDAR_CACHE_ENTRIES:
                self._days.clear()
            when = date.fromordinal(local_day + _EPOCH_ORDINAL)
            year, week, _ = when.isocalendar()
            texts = self._days[local_day] = (when.isoformat(), f"{year}-W{week:02d}")
        return texts


@functools.lru_cache(maxsize=8)
def _calendar(zone: ZoneInfo) -> _Calendar:
    """The (shared) cache of days and weeks in ``zone``."""
    return _Calendar(zone)
