"""The district's usage database: every school's records in PostgreSQL (DESIGN §6).

A district pushes each school's database here (:func:`push`), or a large school collects
straight into it (:class:`DistrictSchool` is a :class:`~controller.schooldb.UsageStore`,
as :class:`~controller.schooldb.SchoolDb` is); both go through the one set of rules,
:func:`controller.schooldb.plan_ingest`: every record is checked again on arrival (its
hash, its link to the record before, the panel's signature with the key pinned for that
panel in the district), so a school file edited after collection is refused at the
record that was changed, and named. The reports of :mod:`controller.reports` run on each
school here unchanged (:meth:`DistrictSchool.query`), with days and weeks in that
school's own time zone; :func:`district_report` and :func:`district_compliance` add the
``school`` dimension.

Schema (:data:`_SCHEMA`), for 50 schools × 40 panels × 8 lessons × 10 items a day, kept
for years (about 60 million records a year):

``plays``
    One row per record, keyed by (``school``, ``kiosk_id``, ``seq``): the signed columns,
    the derived ones of :data:`controller.schooldb.DERIVED_COLUMNS` (``day`` a ``date``;
    NULL for a quarantined record) and ``school``, the district's id of the school.
    Partitioned by ``day`` (the corrected start's local day in the school's time zone),
    one partition per ISO week (``plays_2026_w48``, created when the first record of the
    week arrives) plus ``plays_quarantined`` (the default partition: no day). One
    index, the uniqueness of (school, panel, seq, day): a weekly report reads one
    school's rows of one partition through it and sorts them. Records
    arrive by ``COPY`` straight into ``plays``; should one of them be stored already
    (two pushes of one school at the same time) the COPY is undone and the rows go by a
    temporary table and ``INSERT … ON CONFLICT DO NOTHING``: a record is stored once.
``schools``, ``kiosks``, ``retired_keys``, ``held``
    Each school's time zone and content libraries; each panel's pinned key and chain end;
    keys a school's admin forgot (a reinstalled panel); the record each panel's chain
    stops at.
``teachers``, ``teacher_bindings``, ``device_names``
    Each school's roster (:mod:`controller.roster`), carried by every push.

Errors: :class:`DistrictError` (a :class:`protocol.errors.UsageLogError`) for a database
that cannot be reached, read or written, or is not ours; the tamper errors of
:mod:`controller.schooldb` for records that cannot be trusted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from controller.collect import CollectionResult, CollectProblem, PanelCollection, note_ingest
from controller.libraries import (
    DEFAULT_LIBRARIES,
    Library,
    LibraryMatcher,
    libraries_from_json,
    libraries_to_json,
)
from controller.reports import (
    DEFAULT_GAP_MINUTES,
    ComplianceRow,
    Group,
    ReportRow,
    compliance,
    usage_report,
)
from controller.roster import RosterView, roster_view
from controller.schooldb import (
    DERIVED_COLUMNS,
    RECORD_COLUMNS,
    ChainError,
    IngestResult,
    KioskInfo,
    SchoolDb,
    derive_columns,
    plan_ingest,
    week_days,
)
from protocol.errors import UsageLogError
from protocol.messages import UsageBatch, UsageRecord, usage_record
from protocol.text import school_id_problem
from protocol.usage_chain import ChainProblem

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "DISTRICT_SCHEMA_VERSION",
    "MAX_PUSH_BATCHES",
    "PUSH_BATCH",
    "RANDOM_PAGE_COST",
    "DistrictDb",
    "DistrictError",
    "DistrictSchool",
    "SchoolInfo",
    "district_compliance",
    "district_report",
    "is_district_url",
    "push",
    "shown_url",
]

DISTRICT_SCHEMA_VERSION: Final = 2
"""Stored in ``classcast_district`` (key ``schema``); another version is refused."""
PUSH_BATCH: Final = 5_000
"""Records pushed per transaction: large enough for COPY to pay, small enough that an
interrupted push loses little work (everything committed before stays)."""
MAX_PUSH_BATCHES: Final = 100_000
"""Batches one push sends for one panel (500 million records); a panel with more is named
(``pull_limit``) and the next push goes on from where this one stopped."""
_URL_SCHEMES: Final = ("postgresql://", "postgres://")
RANDOM_PAGE_COST: Final = 1.1
"""This connection's ``random_page_cost``: a page read out of order costs about as much as
one in order (SSD storage), so the planner reads a school's rows through the index."""

_COLUMNS: Final = ("school", *RECORD_COLUMNS, *DERIVED_COLUMNS)
"""The columns of ``plays``, in the order rows are copied."""
_DAY_AT: Final = _COLUMNS.index("day")
_COPY_PLAYS: Final = f"COPY plays ({', '.join(_COLUMNS)}) FROM STDIN"

_SCHEMA: Final = """
CREATE TABLE classcast_district (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE schools (
    school text PRIMARY KEY,
    name text NOT NULL DEFAULT '',
    tz text NOT NULL,
    libraries text,
    pushed_at timestamptz
);
CREATE TABLE kiosks (
    school text NOT NULL REFERENCES schools,
    kiosk_id text NOT NULL,
    room text NOT NULL DEFAULT '',
    school_name text NOT NULL DEFAULT '',
    public_key text NOT NULL,
    last_seq bigint NOT NULL DEFAULT 0,
    last_hash text NOT NULL,
    last_collected_at text,
    address text,
    PRIMARY KEY (school, kiosk_id)
);
CREATE TABLE retired_keys (
    school text NOT NULL,
    kiosk_id text NOT NULL,
    public_key text NOT NULL,
    up_to_seq bigint NOT NULL,
    PRIMARY KEY (school, kiosk_id, up_to_seq)
);
CREATE TABLE held (
    school text NOT NULL,
    kiosk_id text NOT NULL,
    seq bigint NOT NULL,
    cause text NOT NULL,
    detail text NOT NULL,
    record text NOT NULL,
    found_at text NOT NULL,
    PRIMARY KEY (school, kiosk_id)
);
CREATE TABLE teachers (
    school text NOT NULL,
    teacher_id text NOT NULL,
    name text NOT NULL,
    left_at text,
    merged_into text,
    PRIMARY KEY (school, teacher_id)
);
CREATE TABLE teacher_bindings (
    school text NOT NULL,
    device_id text NOT NULL,
    teacher_id text NOT NULL,
    PRIMARY KEY (school, device_id)
);
CREATE TABLE device_names (
    school text NOT NULL,
    device_id text NOT NULL,
    name text NOT NULL,
    PRIMARY KEY (school, device_id, name)
);
CREATE TABLE plays (
    school text COLLATE "C" NOT NULL,
    uuid text NOT NULL,
    seq bigint NOT NULL,
    kiosk_id text COLLATE "C" NOT NULL,
    room text NOT NULL,
    lesson_id text COLLATE "C" NOT NULL,
    lesson_title text NOT NULL,
    item_index bigint NOT NULL,
    kind text NOT NULL,
    content_hash text,
    content_title text NOT NULL,
    content_source text,
    teacher_id text COLLATE "C" NOT NULL,
    teacher_name text NOT NULL,
    started_at text NOT NULL,
    ended_at text,
    duration_ms bigint NOT NULL,
    end_reason text,
    clock_offset_ms bigint NOT NULL,
    prev_hash text NOT NULL,
    record_hash text NOT NULL,
    signature text NOT NULL,
    hidden text NOT NULL,
    school_id text NOT NULL,
    start_utc text NOT NULL,
    start_ms bigint NOT NULL,
    end_utc text,
    day date,
    iso_week text NOT NULL,
    library text NOT NULL,
    invalid text,
    UNIQUE NULLS NOT DISTINCT (school, kiosk_id, seq, day)
) PARTITION BY RANGE (day);
CREATE TABLE plays_quarantined PARTITION OF plays DEFAULT
"""
"""One index per partition, the uniqueness of (school, kiosk, seq, day): it makes a record
pushed twice one row, answers a push's check of the records already stored, and gives a
report one school's rows of a week (a week's partition holds exactly the week's days;
another range of days is a filter on ``day``), in panel and ``seq`` order, which is
nearly the order a push wrote them in; the reports' own order (panel, teacher, lesson,
start) is then a sort of one school's week in memory. A second index in the reports'
order, covering or not, costs every push more than it spares a report (measured in
``bench/README.md``: a district's weekly compliance takes as long without it, its time
being the rows' transfer and counting). The ids compare as bytes (``COLLATE "C"``), not
by the server's language, which keeps the index and the sort cheap; ids are only ever
compared for equality."""

_UPGRADE_FROM_1: Final = (
    "DROP INDEX IF EXISTS plays_report",
    "ALTER TABLE plays DROP CONSTRAINT plays_kiosk_id_school_seq_day_key",
    'ALTER TABLE plays ALTER COLUMN school TYPE text COLLATE "C", '
    'ALTER COLUMN kiosk_id TYPE text COLLATE "C", ALTER COLUMN lesson_id TYPE text COLLATE "C", '
    'ALTER COLUMN teacher_id TYPE text COLLATE "C"',
    "ALTER TABLE plays ADD UNIQUE NULLS NOT DISTINCT (school, kiosk_id, seq, day)",
)
"""Schema 1 to 2 (opening a database of schema 1): the covering report index goes, the
uniqueness leads with the school, the ids compare as bytes."""

_SQLITE_FROM: Final = re.compile(
    r"FROM plays INDEXED BY plays_report\s+WHERE day BETWEEN :first_day AND :last_day"
)
_PG_FROM: Final = (
    "FROM plays WHERE school = %(school)s "
    "AND day BETWEEN %(first_day)s::date AND %(last_day)s::date"
)


class DistrictError(UsageLogError):
    """The district database cannot be reached, read or written, or is not ours."""

    code = "district"


def is_district_url(text: str) -> bool:
    """Whether ``--db``/``--to`` names a PostgreSQL database (``postgresql://…``)."""
    return text.startswith(_URL_SCHEMES)


def shown_url(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DistrictError(f"unknown timezone {name!r} (expected e.g. Europe/Moscow)") from None


@dataclass(frozen=True, slots=True)
class SchoolInfo:
    """One school in the district database."""

    school_id: str
    name: str
    tz: str
    panels: int
    records: int
    pushed_at: datetime | None


class DistrictDb:
    """The district database; open with a ``postgresql://`` URL, :meth:`close` when done.

    Get one school's store with :meth:`school` (to collect into, push into, or report on),
    or the list with :meth:`schools`.
    """

    def __init__(self, url: str, *, connect_timeout_s: float = 10.0) -> None:
        """Connect, and create the schema in an empty database.

        Raises:
            DistrictError: No PostgreSQL there, it refused us, or the database holds
                another program's tables or another version of ours.
        """
        try:
            import psycopg
        except ImportError:
            raise DistrictError(
                "the district database needs psycopg: pip install 'classcast[district]'"
            ) from None
        self.url = shown_url(url)
        self._psycopg = psycopg
        try:
            # Autocommit: each read stands alone, each write is one explicit transaction.
            self.conn: psycopg.Connection[tuple[Any, ...]] = psycopg.connect(
                url, connect_timeout=max(1, round(connect_timeout_s)), autocommit=True
            )
        except psycopg.Error as exc:
            raise DistrictError(
                f"cannot connect to the district database {self.url}: {exc}"
            ) from None
        try:
            with self._guard("prepare the district database"):
                self._prepare()
                # The planner's default (4) prices reads off spinning disks: a weekly
                # report would then scan the whole partition rather than read one
                # school's rows by the index; database servers read from SSDs today.
                self.conn.execute(f"SET random_page_cost = {RANDOM_PAGE_COST}")
                # Where copy_rows stages its rows; emptied at each commit.
                self.conn.execute("CREATE TEMP TABLE plays_in (LIKE plays) ON COMMIT DELETE ROWS")
        except BaseException:
            self.conn.close()
            raise
        self._partitions: set[str] = set()

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn PostgreSQL failures into :class:`DistrictError`; the transaction of
        ``action`` was rolled back, so nothing of it is half-written."""
        try:
            yield
        except self._psycopg.Error as exc:
            raise DistrictError(f"district database {self.url}: cannot {action}: {exc}") from exc

    def _prepare(self) -> None:
        with self.conn.transaction():
            # Two programs creating the schema at once: the second waits, then finds it.
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtext('classcast-district'))")
            found = self.conn.execute(
                "SELECT to_regclass('classcast_district') IS NOT NULL, "
                "(SELECT count(*) FROM pg_tables WHERE schemaname = current_schema())"
            ).fetchone()
            assert found is not None
            ours, tables = bool(found[0]), int(found[1])
            if not ours:
                if tables:
                    raise DistrictError(
                        f"{self.url} is not a ClassCast district database (it has {tables} "
                        "other tables): give an empty database"
                    )
                for statement in _SCHEMA.strip().split(";\n"):
                    self.conn.execute(statement.encode())
                self.conn.execute(
                    "INSERT INTO classcast_district VALUES ('schema', %s)",
                    [str(DISTRICT_SCHEMA_VERSION)],
                )
                return
            row = self.conn.execute(
                "SELECT value FROM classcast_district WHERE key = 'schema'"
            ).fetchone()
            if row is not None and row[0] == "1":
                for statement in _UPGRADE_FROM_1:
                    self.conn.execute(statement.encode())
                self.conn.execute(
                    "UPDATE classcast_district SET value = %s WHERE key = 'schema'",
                    [str(DISTRICT_SCHEMA_VERSION)],
                )
                return
            if row is None or row[0] != str(DISTRICT_SCHEMA_VERSION):
                raise DistrictError(
                    f"{self.url} has district schema version {row[0] if row else '?'}; "
                    f"this program understands version {DISTRICT_SCHEMA_VERSION}"
                )

    def close(self) -> None:
        """Close the connection; the object cannot be used afterwards."""
        self.conn.close()

    def __enter__(self) -> DistrictDb:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def school(
        self,
        school_id: str,
        *,
        name: str | None = None,
        tz: str | None = None,
        libraries: Sequence[Library] | None = None,
    ) -> DistrictSchool:
        """The school ``school_id``; registers it, or changes its settings, when ``tz`` is
        given (then ``name`` and ``libraries`` too: ``None`` keeps the stored ones).

        A new time zone recomputes the days of the school's records (and moves them to
        their weeks' partitions); new libraries re-mark them.

        Raises:
            ValueError: ``school_id`` is not a school id.
            DistrictError: The school is not in the district (and no ``tz`` was given), or
                the database cannot be read or written.
        """
        problem = school_id_problem(school_id)
        if problem is not None:
            raise ValueError(f"{school_id!r}: {problem}")
        with self._guard("read schools"):
            row = self.conn.execute(
                "SELECT name, tz, libraries FROM schools WHERE school = %s", [school_id]
            ).fetchone()
        if row is None and tz is None:
            raise DistrictError(f"no school {school_id} in the district database {self.url}")
        stored_name, stored_tz, stored_libraries = row if row is not None else ("", None, None)
        libraries_text = (
            stored_libraries
            if libraries is None
            else (None if tuple(libraries) == DEFAULT_LIBRARIES else libraries_to_json(libraries))
        )
        new_tz = tz or stored_tz
        assert new_tz is not None
        _zone(new_tz)
        store = DistrictSchool(self, school_id, new_tz, _libraries(libraries_text))
        changed = row is None or (new_tz, libraries_text) != (stored_tz, stored_libraries)
        if row is None or changed or (name is not None and name != stored_name):
            with self._guard(f"register school {school_id}"), self.conn.transaction():
                self.conn.execute(
                    "INSERT INTO schools (school, name, tz, libraries) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (school) DO UPDATE SET name = EXCLUDED.name, tz = EXCLUDED.tz, "
                    "libraries = EXCLUDED.libraries",
                    [school_id, name if name is not None else stored_name, new_tz, libraries_text],
                )
                if row is not None and changed:
                    store._rederive()
        return store

    def schools(self) -> list[SchoolInfo]:
        """Every school in the district, by id, with its panels and records.

        Raises:
            DistrictError: The database cannot be read.
        """
        with self._guard("read schools"):
            rows = self.conn.execute(
                "SELECT s.school, s.name, s.tz, "
                "(SELECT count(*) FROM kiosks k WHERE k.school = s.school), "
                "(SELECT coalesce(sum(k.last_seq), 0) FROM kiosks k WHERE k.school = s.school), "
                "s.pushed_at FROM schools s ORDER BY s.school"
            ).fetchall()
        return [SchoolInfo(str(a), str(b), str(c), int(d), int(e), f) for a, b, c, d, e, f in rows]

    def record_count(self, school_id: str | None = None) -> int:
        """How many records the district holds (or one school).

        Raises:
            DistrictError: The database cannot be read.
        """
        with self._guard("count records"):
            row = self.conn.execute(
                "SELECT count(*) FROM plays WHERE %(s)s::text IS NULL OR school = %(s)s",
                {"s": school_id},
            ).fetchone()
        assert row is not None
        return int(row[0])

    def weeks(self) -> list[str]:
        """The ISO weeks (``YYYY-Www``) that hold records, newest first: the names of the
        weekly partitions of ``plays`` (read from the catalogue: no record is scanned).

        Raises:
            DistrictError: The database cannot be read.
        """
        with self._guard("list the weeks"):
            names = self.conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'plays'::regclass"
            ).fetchall()
        found = (_PARTITION.match(str(name)) for (name,) in names)
        return sorted((f"{m[1]}-W{m[2]}" for m in found if m is not None), reverse=True)

    # ------------------------------------------------------------------ writing

    def _ensure_partitions(self, days: set[date]) -> None:
        """Create the weekly partitions that ``days`` fall in (inside the caller's
        transaction; serialised with every other writer)."""
        weeks = {day - timedelta(days=day.weekday()) for day in days}
        missing = {
            monday: _partition_name(monday)
            for monday in weeks
            if _partition_name(monday) not in self._partitions
        }
        if not missing:
            return
        self.conn.execute("SELECT pg_advisory_xact_lock(hashtext('classcast-partitions'))")
        for monday, name in sorted(missing.items()):
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF plays "
                f"FOR VALUES FROM ('{monday.isoformat()}') "
                f"TO ('{(monday + timedelta(days=7)).isoformat()}')".encode()
            )
            self._partitions.add(name)

    def copy_rows(self, rows: Sequence[Sequence[Any]]) -> int:
        """Store ``rows`` (``plays`` columns in ``_COLUMNS`` order; ``day`` a date, its
        ISO text, or None) inside the caller's transaction, each row once: a row already
        stored is skipped.

        Returns:
            Rows inserted (a row already stored is skipped).
        """
        if not rows:
            return 0
        days = {row[_DAY_AT] for row in rows} - {None}
        self._ensure_partitions({d if isinstance(d, date) else date.fromisoformat(d) for d in days})
        unique = self._psycopg.errors.UniqueViolation
        with self.conn.cursor() as cursor:
            # Nearly always none of the rows is stored yet (a push starts after the
            # district's chain end): straight into plays. A row stored meanwhile (another
            # push of the same school) undoes that, and the rows go the long way.
            try:
                with self.conn.transaction(), cursor.copy(_COPY_PLAYS) as copy:
                    for row in rows:
                        copy.write_row(row)
                return len(rows)
            except unique:
                pass
            with cursor.copy(_COPY_PLAYS.replace("plays", "plays_in", 1)) as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute("INSERT INTO plays SELECT * FROM plays_in ON CONFLICT DO NOTHING")
            return cursor.rowcount


_PARTITION: Final = re.compile(r"^plays_([0-9]{4})_w([0-9]{2})$")
"""A weekly partition's name (:func:`_partition_name`): its year and week."""


def _partition_name(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"plays_{year}_w{week:02d}"


def _libraries(text: str | None) -> tuple[Library, ...]:
    if text is None:
        return DEFAULT_LIBRARIES
    try:
        return libraries_from_json(text)
    except ValueError as exc:
        raise DistrictError(f"a school's content libraries setting is damaged: {exc}") from None


def _day(text: str) -> date | None:
    return date.fromisoformat(text) if text else None


class DistrictSchool:
    """One school in the district database: a :class:`~controller.schooldb.UsageStore`
    (collect or push into it) and a :class:`~controller.reports.ReportSource` (report on
    it). Get it from :meth:`DistrictDb.school`."""

    def __init__(
        self, district: DistrictDb, school_id: str, tz: str, libraries: Sequence[Library]
    ) -> None:
        self.district = district
        self.school_id = school_id
        self.tz_name = tz
        self._zone = _zone(tz)
        self._matcher = LibraryMatcher(libraries)

    @property
    def _conn(self) -> psycopg.Connection[tuple[Any, ...]]:
        return self.district.conn

    # ------------------------------------------------------------------ collection

    def derive(self, record: UsageRecord) -> tuple[str, int, str | None, str, str, str, str | None]:
        """:meth:`SchoolDb.derive` in this school's time zone and with its libraries."""
        return derive_columns(record, self._zone, self._matcher)

    def kiosk(self, kiosk_id: str) -> KioskInfo | None:
        """The school's panel ``kiosk_id``, or None.

        Raises:
            DistrictError: The database cannot be read.
        """
        with self.district._guard("read panels"):
            row = self._conn.execute(
                "SELECT kiosk_id, room, school_name, public_key, last_seq, last_hash, "
                "last_collected_at, address FROM kiosks WHERE school = %s AND kiosk_id = %s",
                [self.school_id, kiosk_id],
            ).fetchone()
        return None if row is None else KioskInfo(*row)

    def after_seq(self, kiosk_id: str) -> int:
        """Where to resume panel ``kiosk_id``: its last stored ``seq`` (0 for a new one).

        Raises:
            DistrictError: The database cannot be read.
        """
        info = self.kiosk(kiosk_id)
        return 0 if info is None else info.last_seq

    def _stored_seqs(self, kiosk_id: str, low: int, high: int) -> dict[int, tuple[str, str]]:
        rows = self._conn.execute(
            "SELECT seq, uuid, record_hash FROM plays "
            "WHERE school = %s AND kiosk_id = %s AND seq BETWEEN %s AND %s",
            [self.school_id, kiosk_id, low, high],
        ).fetchall()
        return {int(seq): (str(uuid), str(digest)) for seq, uuid, digest in rows}

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
        """Check one batch of panel ``kiosk_id`` and store what can be trusted, as
        :meth:`SchoolDb.ingest` does, in one transaction.

        Besides, a record signed with another school's id than this school's is another
        school's: it is refused (``foreign``) with the records after it.

        Raises:
            KeyChangedError, ChainError, TamperError: As :meth:`SchoolDb.ingest`.
            DistrictError: The database cannot be read or written; nothing was stored.
        """
        records = original = list(batch.records)
        foreign = next(
            (
                r
                for r in records
                if r.school_id not in ("", self.school_id) and r.kiosk_id == kiosk_id
            ),
            None,
        )
        if foreign is not None:
            records = [r for r in records if r.seq < foreign.seq]
            batch = replace(batch, records=records)
        with self.district._guard(f"store records of panel {kiosk_id}"):
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
            result, held = plan.result, plan.held
            if foreign is not None and result.refused is None and foreign.seq > result.last_seq:
                problem = ChainProblem(
                    kiosk_id,
                    foreign.seq,
                    "foreign",
                    f"a record of school {foreign.school_id}, not {self.school_id} (foreign)",
                )
                result = replace(
                    result,
                    refused=problem,
                    not_stored=sum(1 for r in original if r.seq > result.last_seq),
                )
            rows = [
                (self.school_id, *row)
                if row[_DAY_AT - 1]
                else (self.school_id, *row[: _DAY_AT - 1], None, *row[_DAY_AT:])
                for row in plan.rows
            ]
            with self._conn.transaction():
                inserted = self.district.copy_rows(rows)
                # Rows another push stored meanwhile (or before the chain end was known)
                # were skipped by the uniqueness of (school, kiosk, seq): not added twice.
                result = replace(
                    result,
                    added=inserted,
                    duplicates=result.duplicates + len(rows) - inserted,
                )
                panel = plan.panel
                self._conn.execute(
                    "INSERT INTO kiosks (school, kiosk_id, room, school_name, public_key, "
                    "last_seq, last_hash, last_collected_at, address) "
                    "VALUES (%s, %s, coalesce(%s, ''), coalesce(%s, ''), %s, %s, %s, %s, %s) "
                    "ON CONFLICT (school, kiosk_id) DO UPDATE SET "
                    "room = coalesce(%s, kiosks.room), "
                    "school_name = coalesce(%s, kiosks.school_name), "
                    "public_key = EXCLUDED.public_key, last_seq = EXCLUDED.last_seq, "
                    "last_hash = EXCLUDED.last_hash, "
                    "last_collected_at = EXCLUDED.last_collected_at, "
                    "address = coalesce(EXCLUDED.address, kiosks.address)",
                    [
                        self.school_id,
                        kiosk_id,
                        panel.get("room"),
                        panel.get("school"),
                        panel["public_key"],
                        panel["last_seq"],
                        panel["last_hash"],
                        panel["last_collected_at"],
                        panel.get("address"),
                        panel.get("room"),
                        panel.get("school"),
                    ],
                )
                self._conn.execute(
                    "DELETE FROM held WHERE school = %s AND kiosk_id = %s",
                    [self.school_id, kiosk_id],
                )
                if held is not None:
                    self._conn.execute(
                        "INSERT INTO held VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        [self.school_id, *held],
                    )
        return result

    def retire_key(self, kiosk_id: str) -> None:
        """Forget the key pinned for panel ``kiosk_id`` as the school's admin did (a
        reinstalled panel): it keeps verifying the records up to the chain end, and the
        next batch's key is pinned.

        Raises:
            DistrictError: The database cannot be written.
        """
        guard = self.district._guard(f"forget the key of panel {kiosk_id}")
        with guard, self._conn.transaction():
            self._conn.execute(
                "INSERT INTO retired_keys SELECT school, kiosk_id, public_key, last_seq "
                "FROM kiosks WHERE school = %s AND kiosk_id = %s AND public_key <> '' "
                "ON CONFLICT DO NOTHING",
                [self.school_id, kiosk_id],
            )
            self._conn.execute(
                "UPDATE kiosks SET public_key = '' WHERE school = %s AND kiosk_id = %s",
                [self.school_id, kiosk_id],
            )

    def _rederive(self) -> None:
        """Recompute the derived columns of every usable record (inside the caller's
        transaction): the school's time zone or libraries changed."""
        columns = ", ".join(RECORD_COLUMNS)
        rows = self._conn.execute(
            f"SELECT {columns} FROM plays WHERE school = %s AND invalid IS NULL",
            [self.school_id],
        ).fetchall()
        fresh = []
        for row in rows:
            record = usage_record(row)
            derived = self.derive(record)
            fresh.append((self.school_id, *row, *derived[:3], _day(derived[3]), *derived[4:]))
        self._conn.execute(
            "DELETE FROM plays WHERE school = %s AND invalid IS NULL", [self.school_id]
        )
        self.district.copy_rows(fresh)

    def replace_roster(self, source: SchoolDb) -> None:
        """Make this school's roster in the district the one in ``source``.

        Raises:
            UsageLogError: ``source`` cannot be read.
            DistrictError: The district database cannot be written.
        """
        teachers = source.query(
            "SELECT teacher_id, name, left_at, merged_into FROM teachers", [], action="roster"
        )
        bindings = source.query(
            "SELECT device_id, teacher_id FROM teacher_bindings", [], action="roster"
        )
        names = source.query("SELECT device_id, name FROM device_names", [], action="roster")
        with self.district._guard("store the school's roster"), self._conn.transaction():
            for table in ("teachers", "teacher_bindings", "device_names"):
                self._conn.execute(f"DELETE FROM {table} WHERE school = %s", [self.school_id])
            with self._conn.cursor() as cursor:
                for table, rows in (
                    ("teachers", teachers),
                    ("teacher_bindings", bindings),
                    ("device_names", names),
                ):
                    with cursor.copy(f"COPY {table} FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row((self.school_id, *row))
            self._conn.execute(
                "UPDATE schools SET pushed_at = now() WHERE school = %s", [self.school_id]
            )

    # ------------------------------------------------------------------ reports

    def query(
        self, sql: str, params: dict[str, Any] | Sequence[Any], *, action: str
    ) -> list[tuple[Any, ...]]:
        """Run one of :mod:`controller.reports`' queries on this school's records.

        The reports' SQL reads ``plays`` by a range of days; here the same query reads
        this school's rows of those days (by the index, one weekly partition per week).

        Raises:
            ValueError: ``sql`` is not a report query.
            DistrictError: The database cannot be read.
        """
        translated, count = _SQLITE_FROM.subn(_PG_FROM, sql)
        if count != 1 or not isinstance(params, dict):
            raise ValueError("not a report query over a range of days")
        with self.district._guard(action):
            rows = self._conn.execute(
                translated.encode(), {**params, "school": self.school_id}, binary=True
            ).fetchall()
        return rows

    def roster(self) -> RosterView:
        """The school's roster as pushed (:func:`controller.roster.roster_view`).

        Raises:
            DistrictError: The database cannot be read.
        """
        with self.district._guard("read the roster"):
            params = [self.school_id]
            view = roster_view(
                self._conn.execute(
                    "SELECT teacher_id, name, left_at, merged_into FROM teachers WHERE school = %s",
                    params,
                ).fetchall(),
                self._conn.execute(
                    "SELECT device_id, teacher_id FROM teacher_bindings WHERE school = %s", params
                ).fetchall(),
                self._conn.execute(
                    "SELECT device_id, name FROM device_names WHERE school = %s", params
                ).fetchall(),
            )
        return view


# --------------------------------------------------------------------------- push


def push(
    school: SchoolDb,
    district: DistrictDb,
    *,
    school_id: str | None = None,
    name: str | None = None,
    batch_size: int = PUSH_BATCH,
    max_batches: int = MAX_PUSH_BATCHES,
    progress: Callable[[PanelCollection], None] | None = None,
) -> tuple[str, CollectionResult]:
    """Send the school database's records to the district; never stores one twice.

    Each panel's records go after the last one the district holds for it, in batches of
    ``batch_size`` (one transaction each), checked again on arrival as a collection
    checks a panel's (:func:`controller.schooldb.plan_ingest`), with the key the school
    pinned for it; keys the school's admin forgot (a reinstalled panel) are carried in
    order, each for its records. A panel whose chain breaks (a school file edited after
    collection, a record an admin accepted) stops at that record, which is named; the
    others go on. Run it again after an interruption: it goes on from where it stopped.
    The school's roster, time zone and content libraries go along.

    Args:
        school: The school database.
        district: The district database.
        school_id: The school's id in the district; by default the one its records are
            signed with.
        name: The school's name; by default the one its panels show.
        batch_size: Records per transaction.
        max_batches: Batches per panel in this run.
        progress: Called with the panel's tally after each batch is committed.

    Returns:
        The school's id, and per panel what was pushed (``address`` is the panel's
        address as last collected, ``problems`` what was refused).

    Raises:
        ValueError: No school id given or signed, two different ones signed, or
            ``school_id`` is not a school id.
        UsageLogError: The school database cannot be read.
        DistrictError: The district database cannot be reached, read or written.
    """
    signed = sorted(
        str(row[0])
        for row in school.query(
            "SELECT DISTINCT school_id FROM plays WHERE school_id <> ''", [], action="read"
        )
    )
    if school_id is None:
        if len(signed) != 1:
            raise ValueError(
                "the school's records carry no school id"
                if not signed
                else f"the school's records carry several school ids: {', '.join(signed)}"
            )
        school_id = signed[0]
    panels = school.kiosks()
    if name is None:
        names = sorted({k.school for k in panels if k.school})
        name = names[0] if len(names) == 1 else ""
    target = district.school(
        school_id,
        name=name,
        tz=school.tz_name,
        libraries=school.libraries if school.libraries_chosen else DEFAULT_LIBRARIES,
    )
    result = CollectionResult()
    for info in panels:
        panel = PanelCollection(info.address or "", room=info.room, kiosk_id=info.kiosk_id)
        result.panels.append(panel)
        _push_panel(
            school,
            target,
            info,
            panel,
            batch_size=batch_size,
            max_batches=max_batches,
            progress=progress,
        )
    target.replace_roster(school)
    return school_id, result


def _push_panel(
    school: SchoolDb,
    target: DistrictSchool,
    info: KioskInfo,
    panel: PanelCollection,
    *,
    batch_size: int,
    max_batches: int,
    progress: Callable[[PanelCollection], None] | None,
) -> None:
    retired = school.retired_keys(info.kiosk_id)
    # Each key with the last record it signed; the pinned key signs the rest.
    segments = [*retired, (info.last_seq, info.public_key)]
    after = panel.last_seq = target.after_seq(info.kiosk_id)
    while after < info.last_seq:
        if panel.pulls >= max_batches:
            panel.problems.append(
                CollectProblem(
                    "pull_limit",
                    after,
                    f"still sending after {max_batches} batches; the next push goes on "
                    f"after #{after}",
                )
            )
            return
        up_to, key = next((s for s in segments if s[0] > after), segments[-1])
        pinned = target.kiosk(info.kiosk_id)
        if (
            pinned is not None
            and pinned.public_key not in ("", key)
            and (pinned.last_seq, pinned.public_key) in retired
        ):
            target.retire_key(info.kiosk_id)  # the school's admin forgot this key here
        records = school.records(info.kiosk_id, after, min(batch_size, max(1, up_to - after)))
        panel.pulls += 1
        if not records:
            panel.problems.append(
                CollectProblem(
                    "no_progress",
                    after,
                    f"the school database holds no record after #{after} "
                    f"of the {info.last_seq} collected",
                    cause="deleted",
                )
            )
            return
        batch = UsageBatch(0, info.kiosk_id, records, records[-1].seq, True, key)
        try:
            stored = target.ingest(
                info.kiosk_id,
                batch,
                room=info.room,
                school=info.school,
                address=info.address,
            )
        except ChainError as exc:
            panel.error = exc
            return
        stop = note_ingest(panel, stored)
        if progress is not None:
            progress(panel)
        if stop:
            return
        if stored.last_seq <= after:
            panel.problems.append(
                CollectProblem("no_progress", after, f"no record after #{after} was stored")
            )
            return
        after = stored.last_seq


# --------------------------------------------------------------------------- reports


def _schools(district: DistrictDb, school_id: str | None) -> list[DistrictSchool]:
    ids = [s.school_id for s in district.schools()]
    if school_id is not None:
        if school_id not in ids:
            raise DistrictError(f"no school {school_id} in the district database {district.url}")
        ids = [school_id]
    return [district.school(i) for i in ids]


def district_report(
    district: DistrictDb,
    *,
    start: date,
    end: date,
    by: Group,
    school: str | None = None,
    gap_minutes: float = DEFAULT_GAP_MINUTES,
) -> list[ReportRow]:
    """:func:`controller.reports.usage_report` of every school (or one), each in its own
    time zone and with its own roster; rows carry ``school``, so two schools' «Каб. 12»
    are two rows. ``by="school"`` gives one row per school.

    Raises:
        ValueError: As :func:`~controller.reports.usage_report`.
        DistrictError: No such school, or the database cannot be read.
    """
    rows: list[ReportRow] = []
    for store in _schools(district, school):
        found = usage_report(
            store, start=start, end=end, by=by, gap_minutes=gap_minutes, roster=store.roster()
        )
        if by == "school":  # one row per school, named by the district's id
            found = [
                replace(r, key=store.school_id, label=store.school_id)
                for r in _one_school_row(found)
            ]
        rows += [replace(r, school=store.school_id) for r in found]
    if by in ("day", "week"):
        rows.sort(key=lambda r: (r.key, r.school))
    else:
        rows.sort(key=lambda r: (-r.display_ms, r.school, r.key))
    return rows


def _one_school_row(rows: list[ReportRow]) -> list[ReportRow]:
    """A by-school report of one school: its rows by signed school id (``''`` for records
    logged before panels had one) are one school here."""
    if len(rows) <= 1:
        return rows
    return [
        replace(
            rows[0],
            lessons=sum(r.lessons for r in rows),
            display_ms=sum(r.display_ms for r in rows),
            items=sum(r.items for r in rows),
            first_start_utc=min(r.first_start_utc for r in rows if r.first_start_utc),
            last_end_utc=max(r.last_end_utc for r in rows),
            library_ms=sum(r.library_ms for r in rows),
            hidden_ms=sum(r.hidden_ms for r in rows),
            library_share=_share(sum(r.library_ms for r in rows), sum(r.display_ms for r in rows)),
        )
    ]


def _share(part: int, whole: int) -> float:
    return round(part / whole, 3) if whole > 0 else 0.0


def district_compliance(
    district: DistrictDb,
    *,
    week: str,
    school: str | None = None,
    min_lessons: int = 3,
    min_minutes: float = 10.0,
    require_source: bool = True,
    gap_minutes: float = DEFAULT_GAP_MINUTES,
) -> list[ComplianceRow]:
    """:func:`controller.reports.compliance` of every school (or one) for ``week``, each
    school's week in its own time zone, teachers by its own roster; rows by school.

    Raises:
        ValueError: As :func:`~controller.reports.compliance`.
        DistrictError: No such school, or the database cannot be read.
    """
    week_days(week)
    rows: list[ComplianceRow] = []
    for store in _schools(district, school):
        rows += [
            replace(r, school=store.school_id)
            for r in compliance(
                store,
                week=week,
                min_lessons=min_lessons,
                min_minutes=min_minutes,
                require_source=require_source,
                gap_minutes=gap_minutes,
                roster=store.roster(),
            )
        ]
    return rows
