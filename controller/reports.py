"""Usage reports over the school database: pure queries and text formats.

:func:`usage_report` sums use per room, teacher, content item, day or ISO week over a
range of days; :func:`compliance` tells, per teacher and ISO week, whether the teacher
gave enough lessons with digital content. Both read only the covering index
``plays_report`` of :mod:`controller.schooldb`. :func:`format_table`,
:func:`format_csv` and :func:`format_json` turn their rows into text; the HTML page
is :func:`controller.report_html.report_html`.

Definitions (``docs/admin.md`` explains them for admins)
---------------------------------------------------------
*Times* are the panels' times corrected by their measured clock offset
(``start_utc``); *days* and *weeks* are those of the corrected start in the school's
timezone (``SchoolDb.tz_name``). A record belongs to the day its display started.

A *lesson session* is a maximal run of records of one panel, one teacher and one
lesson id, ordered by start, in which each record starts less than ``gap_minutes``
(10) after the end of the run so far. Showing another lesson in between does not
split a session; a pause of ``gap_minutes`` or more does. Sessions are formed from the
records selected for the report (the day range or the week).

A *lesson* is a session, except that sessions of one teacher and one lesson id on
several panels whose times (first start to last end) overlap are one lesson: one cast
to several panels at once. Room reports count sessions (once per room); every other
report, and compliance, counts lessons. *Display time* is panel time everywhere
(10 minutes on three panels are 30 minutes); a lesson's own length, for
``min_minutes``, is that of its longest session.

*Display time* sums the ``duration_ms`` of records with no ``hidden`` reason. A record
with one (``alert``: a full-screen alert covered the lesson; ``blank``: the screen was
blanked; ``failed``: the panel showed why an item could not be shown) adds to
``hidden_ms`` instead: the lesson was on the panel but could not be seen. Hidden records
still belong to their lesson session (an alert in the middle of a lesson does not split
it) and to the first and last times a group was on a panel.

A *lesson with digital content* is a lesson whose length is at least ``min_minutes``
(10) and which showed library content (``plays.library`` set, see
:mod:`controller.libraries`) for more than 0 ms of display time, unless
``require_source`` is false. An item that could not be shown (end reason ``failed``,
logged with 0 ms, then its card as hidden ``failed``) adds no display time and no
library content. Every such lesson counts, several a day
included; a teacher meets the week's goal with at least ``min_lessons`` (3) of them.

*Items* are counted per content and title: each page of a PDF and each title a picture
was shown under is an item of its own, as the lesson showed them.

Text is Russian unless ``CLASSCAST_LANG=en`` or ``lang="en"``; the Russian texts are in
the controller's catalogue (``controller/locale/ru/LC_MESSAGES/classcast.po``).

Names (rooms, teachers, lessons, items) come from the panels' usage records, signed as
the panels wrote them. The table and CSV, read by people (a terminal, a spreadsheet),
show them cleaned of control characters and escape sequences
(:func:`protocol.text.clean_name`); JSON is data and keeps the exact signed values,
written by :func:`protocol.text.json_text` so that none of those characters is raw.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from typing import Any, Final, Literal, Protocol, get_args
from zoneinfo import ZoneInfo

from controller.i18n import MESSAGES, N_, language
from controller.libraries import library_label
from controller.roster import Roster, RosterView, name_key
from controller.schooldb import SchoolDb, iso_utc_ms, week_days
from protocol.text import clean_name, json_text

__all__ = [
    "COMPLIANCE_HEADINGS",
    "CSV_BOM",
    "CSV_DELIMITER",
    "DEFAULT_GAP_MINUTES",
    "DEVICE_KEY",
    "USAGE_HEADINGS",
    "ComplianceRow",
    "Group",
    "ReportRow",
    "compliance",
    "csv_cell",
    "duration_text",
    "format_csv",
    "format_json",
    "format_table",
    "library_text",
    "percent_text",
    "report_text",
    "share",
    "table_cells",
    "usage_report",
]

Group = Literal["room", "teacher", "content", "day", "week", "library", "school"]
"""What :func:`usage_report` groups by."""
GROUPS: Final[tuple[str, ...]] = get_args(Group)

DEFAULT_GAP_MINUTES: Final = 10.0
"""A pause this long (or longer) between records starts a new lesson session."""
DEVICE_KEY: Final = "device:"
"""Starts the ``key`` of a by-teacher row of a controller bound to nobody on the roster
(then the rest is the controller's id and the label the name typed on it)."""


def report_text(msgid: str, lang: str | None = None, /, **values: object) -> str:
    """``msgid`` in ``lang`` (the current language by default), with ``values`` filled in.

    Args:
        msgid: The English text, a msgid of the controller's catalogue.
        lang: ``ru`` or ``en``; :func:`controller.i18n.language` by default.
        **values: Filled into the text with :meth:`str.format`.

    Returns:
        The text; English when the Russian catalogue lacks it.
    """
    return MESSAGES.tr(lang or language(), msgid, **values)


_t = report_text


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One group of :func:`usage_report`; the JSON and CSV keys are these field names.

    ``key`` identifies the group (room name, the teacher's roster id or
    :data:`DEVICE_KEY` + controller id for one not on the roster, the item: content
    hash and title joined by ``/``, ``YYYY-MM-DD``, ``YYYY-Www``, library id, school
    id); ``label`` is what people read (room, teacher name, content title, day, week,
    library id, school id). A roster teacher with no use in the range has 0 everywhere and empty
    times. ``lessons`` counts lessons that showed anything in the group (in a room
    report: lesson sessions of the room's panel), ``display_ms`` sums display time,
    ``items`` counts distinct items (content and title); ``first_start_utc`` and
    ``last_end_utc`` are corrected UTC times. ``library_ms`` is the display time of
    library content (:mod:`controller.libraries`) and ``library_share`` its share of
    ``display_ms`` (0 to 1, three decimals); ``library`` is, in a content report, the
    id of the library the item came from (``''``: none). ``hidden_ms`` sums the time
    items of the group were on a panel but could not be seen (under an alert, a
    blanked screen, a failure card): not display time. ``school`` is the school's id in
    a district report (:mod:`controller.district`), ``''`` in a school's own.
    """

    group: str
    key: str
    label: str
    lessons: int
    display_ms: int
    items: int
    first_start_utc: str
    last_end_utc: str
    library_ms: int = 0
    library_share: float = 0.0
    library: str = ""
    hidden_ms: int = 0
    school: str = ""


@dataclass(frozen=True, slots=True)
class ComplianceRow:
    """One teacher in :func:`compliance`; the JSON and CSV keys are these field names.

    ``lessons`` counts the week's lessons with digital content and ``met`` says
    whether it reaches ``min_lessons``; ``days`` lists the days (``YYYY-MM-DD``) they
    were given on. ``sessions`` counts all the teacher's lessons (one cast to several
    panels at once is one), of which ``too_short`` fell under ``min_minutes`` and
    ``without_source`` (long enough) showed no library content. ``display_ms`` is all
    display time (on every panel), ``library_ms`` that of library content and
    ``library_share`` its share (0 to 1); ``hidden_ms`` the time the teacher's lessons
    were on a panel but could not be seen (under an alert, a blanked screen, a failure
    card), counted in no lesson's length.

    ``teacher_id`` is the school's roster id when ``on_roster``; otherwise the row is one
    controller bound to nobody on the roster (its id, and the name typed on it).
    ``school`` is the school's id in a district report, ``''`` in a school's own: roster
    ids are the school's, so a teacher is a school and an id.
    """

    week: str
    teacher_id: str
    teacher_name: str
    lessons: int
    met: bool
    days: tuple[str, ...]
    sessions: int
    too_short: int
    without_source: int
    display_ms: int
    library_ms: int = 0
    library_share: float = 0.0
    hidden_ms: int = 0
    on_roster: bool = False
    school: str = ""


# --------------------------------------------------------------------------- queries


class ReportSource(Protocol):
    """What the reports read records from: a school's database (:class:`SchoolDb`) or one
    school in the district's (:class:`controller.district.DistrictSchool`), which runs
    the same queries in its own SQL."""

    def query(
        self, sql: str, params: dict[str, Any] | Sequence[Any], *, action: str
    ) -> list[tuple[Any, ...]]:
        """All rows of one read-only query (see :meth:`SchoolDb.query`)."""
        ...


def _roster_of(db: ReportSource, roster: RosterView | None) -> RosterView:
    """``roster``, else the roster of the school database ``db``.

    Raises:
        TypeError: ``roster`` is None and ``db`` is not a school database.
    """
    if roster is not None:
        return roster
    if isinstance(db, SchoolDb):
        return Roster(db).view()
    raise TypeError("a report over another source than a school database needs its roster")


_SELECT: Final = """
SELECT kiosk_id, teacher_id, lesson_id, start_ms, duration_ms, hidden != '', {columns}
FROM plays INDEXED BY plays_report
WHERE day BETWEEN :first_day AND :last_day
ORDER BY kiosk_id, teacher_id, lesson_id, start_ms
"""
"""Records of a day range in session order: grouped by (panel, teacher, lesson), by start.

The rows come from the covering index ``plays_report``; only the ORDER BY needs a sort
of the selected rows (the index is ordered by day first)."""

_ITEM: Final = "COALESCE(content_hash, '') || '/' || content_title"
"""One item of content as reports count it: its content and its title (a PDF's pages
and one picture shown under two titles are separate items)."""

_GROUP_COLUMNS: Final[Mapping[str, tuple[str, str]]] = {
    "room": ("room", "room"),
    "teacher": ("teacher_id", "teacher_name"),
    "content": (_ITEM, "content_title"),
    "day": ("day", "day"),
    "week": ("iso_week", "iso_week"),
    "library": ("library", "library"),
    "school": ("school_id", "school_id"),
}


def usage_query(by: Group) -> str:
    """The SQL of :func:`usage_report` (exposed for ``EXPLAIN QUERY PLAN`` and benchmarks).

    Sessions are numbered in Python from its rows, which are in session order.

    Args:
        by: What to group by.

    Returns:
        SQL with parameters ``:first_day`` and ``:last_day``.

    Raises:
        ValueError: ``by`` is not a :data:`Group`.
    """
    if by not in _GROUP_COLUMNS:
        raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(GROUPS)}")
    key, label = _GROUP_COLUMNS[by]
    return _SELECT.format(columns=f"{key}, {label}, {_ITEM}, library")


COMPLIANCE_QUERY: Final = _SELECT.format(columns="teacher_name, library, day")
"""The SQL of :func:`compliance`, with the week's day range as parameters."""


class _Sessions:
    """Numbers lesson sessions while rows in session order stream past.

    Feed every row's ``(kiosk_id, teacher_id, lesson_id)``, start and duration to
    :meth:`number`, in the order of :data:`_SELECT`; it returns the row's session
    number. A new session begins with a new (panel, teacher, lesson) or when a record
    starts ``gap_ms`` or more after the latest end of the session so far.

    :meth:`lessons` then tells which sessions are one lesson: sessions of one teacher
    and one lesson on several panels whose times overlap (one cast to several panels).
    """

    def __init__(self, gap_ms: int) -> None:
        self.gap_ms = gap_ms
        self.count = 0
        self._part: tuple[str, str, str] | None = None
        self._end_ms = 0
        # Per session (index = number - 1): teacher and lesson, first start, last end.
        self._spans: list[list[Any]] = []

    def number(self, part: tuple[str, str, str], start_ms: int, duration_ms: int) -> int:
        end_ms = start_ms + duration_ms
        if part != self._part or start_ms - self._end_ms >= self.gap_ms:
            self.count += 1
            self._part = part
            self._end_ms = end_ms
            self._spans.append([part[1:], start_ms, end_ms])
        elif end_ms > self._end_ms:
            self._end_ms = end_ms
            self._spans[-1][2] = end_ms
        return self.count

    def lessons(self) -> list[int]:
        """Per session number (index ``number - 1``), the number of the lesson it is part of.

        Sessions of one (teacher, lesson) are one lesson while their spans (first start
        to last end) overlap; a lesson is numbered by its earliest session. The same
        lesson given to two classes one after the other stays two lessons.
        """
        lesson_of = list(range(1, self.count + 1))
        by_lesson: dict[tuple[str, str], list[int]] = {}
        for index, (key, _, _) in enumerate(self._spans):
            by_lesson.setdefault(key, []).append(index)
        for indexes in by_lesson.values():
            if len(indexes) < 2:
                continue
            indexes.sort(key=lambda i: self._spans[i][1])
            current, current_end = indexes[0], self._spans[indexes[0]][2]
            for index in indexes[1:]:
                _, start_ms, end_ms = self._spans[index]
                if start_ms < current_end:
                    lesson_of[index] = current + 1
                    current_end = max(current_end, end_ms)
                else:
                    current, current_end = index, end_ms
        return lesson_of


@dataclass(slots=True)
class _Group:
    """One group's running figures in :func:`usage_report`."""

    label: str
    sessions: set[int] = field(default_factory=set)
    display_ms: int = 0
    hidden_ms: int = 0
    library_ms: int = 0
    items: set[str] = field(default_factory=set)
    libraries: set[str] = field(default_factory=set)
    first_ms: int = 2**62
    last_ms: int = -(2**62)


def share(part_ms: int, whole_ms: int) -> float:
    """``part_ms / whole_ms`` rounded to three decimals (0 when ``whole_ms`` is 0)."""
    return round(part_ms / whole_ms, 3) if whole_ms > 0 else 0.0


def usage_report(
    db: ReportSource,
    *,
    start: date,
    end: date,
    by: Group,
    gap_minutes: float = DEFAULT_GAP_MINUTES,
    roster: RosterView | None = None,
) -> list[ReportRow]:
    """Use per room, teacher, content item, day, week or library, from ``start`` to ``end``.

    By teacher, rows are people of the roster: a teacher's controllers are one row, and
    every current roster teacher is listed (with 0 when they did not use a panel); a
    controller bound to nobody is its own row (key :data:`DEVICE_KEY` + its id).

    Args:
        db: The school database.
        start: The first day (school timezone), included.
        end: The last day, included.
        by: What to group by.
        gap_minutes: A pause this long or longer starts a new lesson session.
        roster: The roster (:meth:`controller.roster.Roster.view`); read from ``db``
            when None.

    Returns:
        One row per group; days and weeks in order, the others by display time, most
        first. Empty when nothing was shown.

    Raises:
        ValueError: ``by`` is unknown, ``end`` precedes ``start`` or ``gap_minutes`` is
            not positive.
        UsageLogError: The database cannot be read.
    """
    if end < start:
        raise ValueError(f"the report ends ({end}) before it starts ({start})")
    if not gap_minutes > 0:
        raise ValueError(f"gap_minutes must be positive, got {gap_minutes!r}")
    sql = usage_query(by)
    params = {"first_day": start.isoformat(), "last_day": end.isoformat()}
    rows = db.query(sql, params, action="build the usage report")
    sessions = _Sessions(round(gap_minutes * 60_000))
    groups: dict[str, _Group] = {}
    keyed: list[tuple[_Group, int]] = []
    people: _People | None = None
    if by == "teacher":
        people = _People(_roster_of(db, roster), set(map(itemgetter(1, 7), rows)))
        for person, name in people.view.people.items():
            groups[person] = _Group(name)
    for row in rows:
        kiosk_id, teacher_id, lesson_id, start_ms, duration_ms, hidden, key, label, item, lib = row
        session = sessions.number((kiosk_id, teacher_id, lesson_id), start_ms, duration_ms)
        if people is not None:
            key, label = people.key(teacher_id)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(str(label))
        keyed.append((group, session))
        if hidden:
            group.hidden_ms += duration_ms
        else:
            group.display_ms += duration_ms
            if lib:
                group.library_ms += duration_ms
                group.libraries.add(lib)
        group.items.add(item)
        group.first_ms = min(group.first_ms, start_ms)
        group.last_ms = max(group.last_ms, start_ms + duration_ms)
    # A room counts its panel's sessions; every other report counts a lesson cast to
    # several panels at once as one lesson.
    lesson_of = None if by == "room" else sessions.lessons()
    for group, session in keyed:
        group.sessions.add(session if lesson_of is None else lesson_of[session - 1])
    result = [
        ReportRow(
            group=by,
            key=str(key),
            label=g.label,
            lessons=len(g.sessions),
            display_ms=g.display_ms,
            items=len(g.items),
            first_start_utc=iso_utc_ms(g.first_ms) if g.sessions else "",
            last_end_utc=iso_utc_ms(g.last_ms) if g.sessions else "",
            library_ms=g.library_ms,
            library_share=share(g.library_ms, g.display_ms),
            library=min(g.libraries) if by == "content" and g.libraries else "",
            hidden_ms=g.hidden_ms,
        )
        for key, g in groups.items()
    ]
    if by in ("day", "week"):
        result.sort(key=lambda row: row.key)
    else:
        result.sort(key=lambda row: (-row.display_ms, row.key))
    return result


def compliance(
    db: ReportSource,
    *,
    week: str,
    min_lessons: int = 3,
    min_minutes: float = 10.0,
    require_source: bool = True,
    gap_minutes: float = DEFAULT_GAP_MINUTES,
    roster: RosterView | None = None,
) -> list[ComplianceRow]:
    """Whether each teacher gave ``min_lessons`` lessons with digital content in ``week``.

    Teachers are people of the school's roster: the lessons given from all the
    controllers a teacher is bound to count together, and every current roster teacher
    has a row (0 lessons when they did not use a panel). Each controller bound to nobody
    is a row of its own, not ``on_roster``, named as typed on it.

    Args:
        db: The school database.
        week: An ISO week such as ``"2026-W48"`` (school timezone, Monday to Sunday).
        min_lessons: Lessons with digital content a teacher should give in the week.
        min_minutes: Display time a lesson needs to count (on its longest panel).
        require_source: Count only lessons that showed library content.
        gap_minutes: A pause this long or longer starts a new lesson session.
        roster: The roster (:meth:`controller.roster.Roster.view`); read from ``db``
            when None.

    Returns:
        One row per teacher, by name.

    Raises:
        ValueError: ``week`` is not an ISO week, or a parameter is out of range.
        UsageLogError: The database cannot be read.
    """
    monday, sunday = week_days(week)
    if min_lessons < 0 or min_minutes < 0 or not gap_minutes > 0:
        raise ValueError("min_lessons and min_minutes must not be negative, gap_minutes positive")
    params = {"first_day": monday.isoformat(), "last_day": sunday.isoformat()}
    min_ms = min_minutes * 60_000
    rows = db.query(COMPLIANCE_QUERY, params, action="build the compliance report")
    people = _People(_roster_of(db, roster), set(map(itemgetter(1, 6), rows)))
    teachers = {person: _Tally(name, True) for person, name in people.view.people.items()}
    sessions = _Sessions(round(gap_minutes * 60_000))
    # Per session: teacher id, teacher name, display ms, library ms, first day, hidden ms.
    per_session: dict[int, list[Any]] = {}
    for kiosk_id, teacher_id, lesson_id, start_ms, duration_ms, hidden, name, lib, day in rows:
        number = sessions.number((kiosk_id, teacher_id, lesson_id), start_ms, duration_ms)
        entry = per_session.get(number)
        # Hidden time (an alert, a blank, a failure card) is neither display time nor
        # library content.
        shown_ms, hidden_ms = (0, duration_ms) if hidden else (duration_ms, 0)
        library_ms = shown_ms if lib else 0
        if entry is None:
            per_session[number] = [teacher_id, name, shown_ms, library_ms, day, hidden_ms]
        else:
            entry[2] += shown_ms
            entry[3] += library_ms
            entry[5] += hidden_ms
    # Sessions of one lesson on several panels at once: the lesson's time is that of
    # its longest session, its library time likewise, its day that of its first.
    per_lesson: dict[int, list[Any]] = {}
    for number, lesson in enumerate(sessions.lessons(), start=1):
        device_id, _name, display_ms, library_ms, day, hidden_ms = per_session[number]
        key, label = people.key(device_id)
        tally = teachers.get(key)
        if tally is None:
            tally = teachers[key] = _Tally(label, not key.startswith(DEVICE_KEY))
        tally.display_ms += int(display_ms)
        tally.library_ms += int(library_ms)
        tally.hidden_ms += int(hidden_ms)
        entry = per_lesson.get(lesson)
        if entry is None:
            per_lesson[lesson] = [tally, display_ms, library_ms, day]
        else:
            entry[1] = max(entry[1], display_ms)
            entry[2] = max(entry[2], library_ms)
            entry[3] = min(entry[3], day)
    for tally, display_ms, library_ms, day in per_lesson.values():
        tally.sessions += 1
        if display_ms < min_ms:
            tally.too_short += 1
        elif require_source and not library_ms:
            tally.without_source += 1
        else:
            tally.lessons += 1
            tally.days.add(str(day))
    result = [
        ComplianceRow(
            week=week,
            teacher_id=teacher_id.removeprefix(DEVICE_KEY),
            teacher_name=t.name,
            lessons=t.lessons,
            met=t.lessons >= min_lessons,
            days=tuple(sorted(t.days)),
            sessions=t.sessions,
            too_short=t.too_short,
            without_source=t.without_source,
            display_ms=t.display_ms,
            library_ms=t.library_ms,
            library_share=share(t.library_ms, t.display_ms),
            hidden_ms=t.hidden_ms,
            on_roster=t.on_roster,
        )
        for teacher_id, t in teachers.items()
    ]
    result.sort(key=lambda row: (not row.on_roster, name_key(row.teacher_name), row.teacher_id))
    return result


class _People:
    """Whom each controller in a report's rows counts as (:class:`RosterView`), with the
    names typed on it in those rows."""

    def __init__(self, view: RosterView, typed: Iterable[tuple[Any, ...]]) -> None:
        self.view = view
        self.typed: dict[str, set[str]] = {}
        for device_id, name in typed:
            self.typed.setdefault(device_id, set()).add(name)
        self._keys: dict[str, tuple[str, str]] = {}

    def key(self, device_id: str) -> tuple[str, str]:
        """The row key and label of controller ``device_id``: its roster person, else
        :data:`DEVICE_KEY` + its id and the names typed on it."""
        found = self._keys.get(device_id)
        if found is None:
            names = self.typed.get(device_id, set())
            person = self.view.person(device_id, names)
            if person is not None:
                found = (person, self.view.names.get(person, person))
            else:
                found = (DEVICE_KEY + device_id, " / ".join(sorted(names)) or device_id)
            self._keys[device_id] = found
        return found


@dataclass(slots=True)
class _Tally:
    """One teacher's counts while :func:`compliance` walks the lessons."""

    name: str
    on_roster: bool
    lessons: int = 0
    days: set[str] = field(default_factory=set)
    sessions: int = 0
    too_short: int = 0
    without_source: int = 0
    display_ms: int = 0
    library_ms: int = 0
    hidden_ms: int = 0


# --------------------------------------------------------------------------- formats

Rows = Sequence[ReportRow] | Sequence[ComplianceRow]

USAGE_HEADINGS: Final = (
    N_("Lessons"),
    N_("Display time"),
    N_("Not visible"),
    N_("Library share"),
    N_("Items"),
    N_("First shown"),
    N_("Last shown"),
)
"""Headings of a usage report's columns after the first (what the rows are grouped by)."""

COMPLIANCE_HEADINGS: Final = (
    N_("Teacher"),
    N_("Lessons counted"),
    N_("Goal met"),
    N_("Days"),
    N_("All lessons"),
    N_("Too short"),
    N_("Without library content"),
    N_("Library share"),
    N_("Not visible"),
)
"""Headings of a compliance report's columns."""

_HEADINGS: Final[Mapping[str, str]] = {
    "room": N_("Room"),
    "teacher": N_("Teacher"),
    "content": N_("Content"),
    "day": N_("Day"),
    "week": N_("Week"),
    "library": N_("Library"),
    "school": N_("School"),
}


def duration_text(ms: int, lang: str | None = None) -> str:
    """Display time for people: ``"1 ч 05 мин"``, ``"12 мин"`` (``"1 h 05 min"`` in English).

    Args:
        ms: Milliseconds.
        lang: ``ru`` or ``en``; the current language by default.

    Returns:
        Hours and whole minutes (rounded half up: 56.5 minutes are 57); whole seconds
        under a minute, tenths of a second (``"0,4 с"``) under ten seconds.
    """
    if 0 < ms < 10_000:  # tenths: a demo's or a skipped item's few seconds
        tenths = (ms + 50) // 100
        text = f"{tenths // 10}.{tenths % 10}"
        return _t("{seconds} s", lang, seconds=text.replace(".", ",") if _ru(lang) else text)
    if 0 < ms < 60_000:
        return _t("{seconds} s", lang, seconds=(ms + 500) // 1000)
    total = (ms + 30_000) // 60_000  # half a minute rounds up, as people round
    hours, minutes = divmod(total, 60)
    if hours:
        return _t("{hours} h {minutes:02d} min", lang, hours=hours, minutes=minutes)
    return _t("{minutes} min", lang, minutes=minutes)


def _ru(lang: str | None) -> bool:
    return (lang or language()) == "ru"


def percent_text(fraction: float) -> str:
    """A share for people: ``"88 %"``."""
    return f"{int(fraction * 100 + 0.5)} %"


def local_time_text(utc: str, tz: str) -> str:
    """``"2026-11-23 08:30"`` in ``tz`` for a corrected UTC time such as ``start_utc``
    (``""`` for no time: a roster teacher with no use)."""
    if not utc:
        return ""
    moment = datetime.fromisoformat(utc).astimezone(ZoneInfo(tz))
    return moment.strftime("%Y-%m-%d %H:%M")


def library_text(library_id: str, lang: str | None = None) -> str:
    """The library ``library_id`` for people (``"«Моя школа» (ЦОК)"``, ``"не из библиотеки"``)."""
    label = library_label(library_id)
    return library_id if label == library_id else _t(label, lang)


def _off_roster(row: ReportRow) -> bool:
    """Whether a by-teacher row is a controller bound to nobody on the roster."""
    return row.group == "teacher" and row.key.startswith(DEVICE_KEY)


def table_cells(
    rows: Rows, lang: str | None, tz: str
) -> tuple[list[str], list[list[str]], list[bool]]:
    """What people read of ``rows``: translated headings, cell texts, and which columns
    are numbers (right-aligned). The text table and the HTML page both show these.
    A district report's rows (``school`` set) get a «School» column first.

    A usage report's rows get a «Library» column after the first in a content report;
    names are cleaned (:func:`protocol.text.clean_name`) but not escaped.
    """
    heads, cells, numeric = _cells(rows, lang, tz)
    schools = [row.school for row in _rows(rows)]
    if any(schools):
        heads.insert(0, _t(N_("School"), lang))
        numeric.insert(0, False)
        for school, cell in zip(schools, cells, strict=True):
            cell.insert(0, clean_name(school))
    return heads, cells, numeric


def _rows(rows: Rows) -> list[ReportRow | ComplianceRow]:
    return list(rows)


def _cells(rows: Rows, lang: str | None, tz: str) -> tuple[list[str], list[list[str]], list[bool]]:
    """:func:`table_cells` without the «School» column of a district report."""
    if rows and isinstance(rows[0], ComplianceRow):
        heads = list(COMPLIANCE_HEADINGS)
        numeric = [False, True, False, False, True, True, True, True, True]
        cells = [
            [
                clean_name(r.teacher_name)
                + ("" if r.on_roster else " " + _t("(not on the roster)", lang)),
                str(r.lessons),
                _t("yes", lang) if r.met else _t("no", lang),
                ", ".join(d[5:] for d in r.days),
                str(r.sessions),
                str(r.too_short),
                str(r.without_source),
                percent_text(r.library_share),
                duration_text(r.hidden_ms, lang),
            ]
            for r in rows
            if isinstance(r, ComplianceRow)
        ]
        return [_t(h, lang) for h in heads], cells, numeric
    group = rows[0].group if rows and isinstance(rows[0], ReportRow) else "room"
    heads = [_HEADINGS[group], *USAGE_HEADINGS]
    numeric = [False, True, True, True, True, True, False, False]
    cells = []
    for r in rows:
        if not isinstance(r, ReportRow):
            continue
        label = library_text(r.label, lang) if group == "library" else clean_name(r.label)
        cells.append(
            [
                label + (" " + _t("(not on the roster)", lang) if _off_roster(r) else ""),
                str(r.lessons),
                duration_text(r.display_ms, lang),
                duration_text(r.hidden_ms, lang),
                percent_text(r.library_share),
                str(r.items),
                local_time_text(r.first_start_utc, tz),
                local_time_text(r.last_end_utc, tz),
            ]
        )
    if group == "content":
        heads.insert(1, N_("Library"))
        numeric.insert(1, False)
        content = [r for r in rows if isinstance(r, ReportRow)]
        for row, cell in zip(content, cells, strict=True):
            cell.insert(1, library_text(row.library, lang))
    return [_t(h, lang) for h in heads], cells, numeric


def format_table(rows: Rows, lang: str | None = None, *, tz: str = "Europe/Moscow") -> str:
    """Rows as an aligned text table for the terminal, headings in ``lang``.

    Args:
        rows: From :func:`usage_report` or :func:`compliance`.
        lang: ``ru`` or ``en``; the current language by default.
        tz: The timezone to show times in (the school's).

    Returns:
        The table, one line per row under a heading line; "no data" when empty.
    """
    if not rows:
        return _t("No data", lang) + "\n"
    heads, cells, numeric = table_cells(rows, lang, tz)
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(heads), "  ".join("-" * w for w in widths)]
    out += [line(c) for c in cells]
    return "\n".join(out) + "\n"


def _plain(row: ReportRow | ComplianceRow) -> dict[str, object]:
    data = asdict(row)
    if isinstance(row, ComplianceRow):
        data["days"] = list(row.days)
    return data


def format_json(rows: Rows) -> str:
    """Rows as a JSON array of objects whose keys are the row's field names, in order.

    Args:
        rows: From :func:`usage_report` or :func:`compliance`.

    Returns:
        Indented UTF-8 JSON (Cyrillic kept as is, control, bidi and zero-width characters
        as ``\\u`` escapes: :func:`protocol.text.json_text`), ending in a newline.
    """
    return json_text([_plain(r) for r in rows], indent=2) + "\n"


CSV_DELIMITER: Final = ";"
"""The CSV field separator: the list separator of a Russian locale, which Excel and
LibreOffice expect when they open a ``.csv`` there (the comma is the decimal mark)."""
CSV_BOM: Final = "\ufeff"
"""Starts the CSV text so that Excel reads it as UTF-8 (Cyrillic) rather than the ANSI page."""


def csv_cell(value: object) -> object:
    """One CSV cell: text cleaned (:func:`protocol.text.clean_name`), ``true``/``false``
    for a yes-or-no value, a number with decimals written with a decimal comma (``1,5``)
    as a Russian locale reads it, other values as they are."""
    if isinstance(value, str):
        return clean_name(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value).replace(".", ",")
    return value


def format_csv(rows: Rows, *, compliance_rows: bool | None = None) -> str:
    """Rows as CSV for spreadsheets: a header of the row's field names (stable keys),
    then one line per row.

    The text starts with a byte order mark (:data:`CSV_BOM`) and separates fields with
    :data:`CSV_DELIMITER` (``;``), so that Excel and LibreOffice in a Russian locale open
    it with Cyrillic intact and one value per column; write it to a file as UTF-8 as is.
    A program reading it should skip the BOM (Python: ``encoding="utf-8-sig"``) and use
    ``;``.

    Args:
        rows: From :func:`usage_report` or :func:`compliance`.
        compliance_rows: Which header to write for an empty ``rows``; guessed from the
            rows otherwise.

    Returns:
        CSV text; ``days`` of a compliance row are joined with spaces, ``met`` is
        ``true``/``false``; cells as :func:`csv_cell` writes them.
    """
    is_compliance = isinstance(rows[0], ComplianceRow) if rows else bool(compliance_rows)
    names = [f.name for f in fields(ComplianceRow if is_compliance else ReportRow)]
    buffer = io.StringIO()
    buffer.write(CSV_BOM)
    writer = csv.writer(buffer, delimiter=CSV_DELIMITER, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        data = asdict(row)
        if isinstance(row, ComplianceRow):
            data["days"] = " ".join(row.days)
        writer.writerow([csv_cell(data[n]) for n in names])
    return buffer.getvalue()


def days_of(start: date, end: date) -> list[date]:
    """Every day from ``start`` to ``end``, both included."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def now_week(now: datetime | None = None, tz: str = "Europe/Moscow") -> str:
    """The ISO week (``YYYY-Www``) of ``now`` (the current time by default) in ``tz``."""
    moment = (now or datetime.now(UTC)).astimezone(ZoneInfo(tz))
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"
