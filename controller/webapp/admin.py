"""The admin's pages of the teacher's app: every panel live, the week's reports, collection.

``/admin`` shows, for a school's administrator,

* every panel live (the same :class:`~controller.webapp.live.Hub` as the teacher's page:
  thumbnail, what it shows and who presents, last seen, media cache, version), sent
  as server-sent events on ``/admin/events`` while the page is visible;
* the week's reports: the weekly norm (:func:`controller.reports.compliance`) and use
  per room, teacher and day (:func:`controller.reports.usage_report`), as tables
  (:func:`controller.reports.table_cells`) and charts
  (:func:`controller.report_html.bar_chart`), for the week chosen in the filter;
* CSV downloads, ``/admin/report.csv?week=W&what=norm|room|teacher|…``: exactly the
  text ``classcast usage compliance --format csv`` and ``classcast usage report
  --by … --format csv`` print for that week (:func:`controller.reports.format_csv`);
* collection per panel: when it was last collected, and the records waiting for an
  admin's decision (:meth:`controller.schooldb.SchoolDb.problems`); for a district,
  each school's last push instead.

Reports come from an :class:`AdminSource`. :class:`SchoolSource` reads the school's
SQLite database (``CLASSCAST_HOME/school.sqlite``, as the ``usage`` commands);
:class:`controller.webapp.district.DistrictSource` reads the district's PostgreSQL
database (``classcast app --db postgresql://…``). A source that holds several schools
lists them in :meth:`AdminSource.schools`, and the page then shows a school selector
and passes the chosen one back.

Who may open them: the app's gate (:class:`~controller.webapp.security.Guard`: the
launch secret, the app's ``Host``, its own ``Origin`` on changes) and then
:func:`admin_only`: this computer must be paired as admin with a saved panel
(:meth:`~controller.webapp.backend.Backend.is_admin`, the rule of «to every panel»).
A download also refuses a request that says it came from another site
(``Sec-Fetch-Site``, ``Origin``). The phone remote never reaches these pages: its
listener serves five paths of its own, and its cookie is not the app's secret.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol
from zoneinfo import ZoneInfo

from markupsafe import Markup
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from controller.i18n import N_, language, size_text, t
from controller.problems import CHAIN_PROBLEMS
from controller.report_html import bar_chart, compliance_rule_text, iso_weeks
from controller.reports import (
    GROUPS,
    ComplianceRow,
    ReportRow,
    Rows,
    compliance,
    days_of,
    duration_text,
    format_csv,
    now_week,
    percent_text,
    share,
    table_cells,
    usage_report,
)
from controller.reports import report_text as _t
from controller.schooldb import DEFAULT_TZ, SchoolDb, week_days
from protocol.errors import ClassCastError

if TYPE_CHECKING:
    from controller.webapp.app import TeacherApp

MAX_WEEKS_LISTED: Final = 104
"""Weeks the filter offers (two school years, newest first); an older one opens by its
address (``/admin?week=2024-W10``)."""

WEEK_PATTERN: Final = re.compile(r"^[0-9]{4}-W[0-9]{2}$")
"""How a week is written in the filter and the addresses: ``2026-W48``."""

CSV_REPORTS: Final = ("norm", *GROUPS)
"""What ``/admin/report.csv?what=`` may ask for: the weekly norm, or use grouped by one
of :data:`controller.reports.GROUPS`."""

CSV_LABELS: Final[dict[str, str]] = {
    "norm": N_("the weekly norm"),
    "room": N_("by room"),
    "teacher": N_("by teacher"),
    "content": N_("by content"),
    "day": N_("by day"),
    "week": N_("by week"),
    "library": N_("by library"),
    "school": N_("by school"),
}
"""The download buttons' labels (msgids), one per :data:`CSV_REPORTS`; «by school» is
offered only by a source that holds several schools."""

ZONES_TEXT: Final = N_("Each school's days and weeks in its own time zone; times in UTC.")
"""How a district's page counts days and names times (as ``classcast usage report --db
postgresql://…`` says it)."""

MIN_LESSONS: Final = 3
MIN_MINUTES: Final = 10.0
"""The weekly norm the page counts by: the defaults of ``classcast usage compliance``."""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class School:
    """One school a source holds: its stable id and the name shown."""

    school_id: str
    name: str


@dataclass(frozen=True, slots=True)
class WeekReport:
    """The week's figures the page shows (rows of :mod:`controller.reports`)."""

    week: str
    monday: date
    sunday: date
    tz: str
    norm: list[ComplianceRow]
    rooms: list[ReportRow]
    teachers: list[ReportRow]
    days: list[ReportRow]
    school_zones: bool = False
    """Each school's days and weeks are in its own time zone, and times in ``tz`` (a
    district's report: the page says so)."""


@dataclass(frozen=True, slots=True)
class PanelCollection:
    """One panel as collection knows it: when it was last collected (UTC ISO 8601, or
    ``None``), its last record, and the records held for an admin's decision."""

    kiosk_id: str
    room: str
    school: str
    last_collected_at: str | None
    last_seq: int
    problems: tuple[tuple[int, str, str], ...]
    """``(seq, cause, found_at)`` of each held record."""


@dataclass(frozen=True, slots=True)
class SchoolPush:
    """One school as the district knows it: its last push (``None``: never) and the
    panels and records pushed."""

    school_id: str
    name: str
    pushed_at: datetime | None
    panels: int
    records: int


class AdminSource(Protocol):
    """Where the admin's pages read reports and collection from.

    Every method may block (a database): call it in a worker thread. Each raises
    :class:`~protocol.errors.ClassCastError` (a ``UsageLogError``) when its data
    cannot be read; the page shows why.
    """

    def schools(self) -> tuple[School, ...]:
        """The schools to choose between; empty for one school (no selector)."""
        ...

    def weeks(self, current: str) -> list[str]:
        """The weeks to offer, newest first: ``current`` and every week with records."""
        ...

    def week_report(self, week: str, school: str | None) -> WeekReport:
        """The figures of ``week`` (``YYYY-Www``) for ``school`` (``None``: all)."""
        ...

    def rows(self, week: str, school: str | None, what: str) -> Rows:
        """The rows of one CSV download (``what`` in :data:`CSV_REPORTS`)."""
        ...

    def collection(self) -> list[PanelCollection]:
        """Every panel ever collected, with its open problems."""
        ...

    def pushes(self) -> list[SchoolPush] | None:
        """Each school's last push to the district; ``None`` for a school's own database
        (the page then shows :meth:`collection` instead)."""
        ...

    def timezone(self) -> str:
        """The timezone times are shown in (and the current week is found in)."""
        ...

    def error_text(self, exc: ClassCastError) -> str:
        """What the page says when a call raised ``exc``: what failed and what to do."""
        ...


class SchoolSource:
    """A :data:`AdminSource` over the school's SQLite database at ``path``.

    The file is opened for each call (in the caller's thread) and closed after; a file
    that does not exist yet is reported as empty and is not created.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def _open(self) -> SchoolDb | None:
        if not self.path.exists():
            return None
        return SchoolDb(self.path)

    def schools(self) -> tuple[School, ...]:
        return ()  # a school database holds one school

    def pushes(self) -> list[SchoolPush] | None:
        return None  # a school's own database: collection shows its panels

    def error_text(self, exc: ClassCastError) -> str:
        return t(
            "The school database {path} cannot be read ({reason}). Check the file and that "
            "you may read it, then reload the page.",
            path=self.path,
            reason=str(exc),
        )

    def timezone(self) -> str:
        db = self._open()
        if db is None:
            return DEFAULT_TZ
        try:
            return db.tz_name
        finally:
            db.close()

    def weeks(self, current: str) -> list[str]:
        db = self._open()
        if db is None:
            return [current]
        try:
            (first, last), *_ = db.query(
                "SELECT MIN(day), MAX(day) FROM plays", [], action="list the weeks"
            )
        finally:
            db.close()
        found = iso_weeks(date.fromisoformat(first), date.fromisoformat(last)) if first else []
        return sorted({current, *found}, reverse=True)[:MAX_WEEKS_LISTED]

    def week_report(self, week: str, school: str | None) -> WeekReport:
        monday, sunday = week_days(week)
        db = self._open()
        if db is None:
            return WeekReport(week, monday, sunday, DEFAULT_TZ, [], [], [], [])
        try:
            from controller.roster import Roster

            Roster(db).gather_names()
            roster = Roster(db).view()

            def report(by: str) -> list[ReportRow]:
                return usage_report(db, start=monday, end=sunday, by=by, roster=roster)  # type: ignore[arg-type]

            norm = compliance(
                db, week=week, min_lessons=MIN_LESSONS, min_minutes=MIN_MINUTES, roster=roster
            )
            return WeekReport(
                week,
                monday,
                sunday,
                db.tz_name,
                norm,
                report("room"),
                report("teacher"),
                report("day"),
            )
        finally:
            db.close()

    def rows(self, week: str, school: str | None, what: str) -> Rows:
        """As ``classcast usage compliance --week W`` (``norm``) or ``usage report --week
        W --by WHAT`` read them, so that the CSV is the command's."""
        monday, sunday = week_days(week)
        db = self._open()
        if db is None:
            return []
        try:
            from controller.roster import Roster

            Roster(db).gather_names()
            if what == "norm":
                return compliance(db, week=week, min_lessons=MIN_LESSONS, min_minutes=MIN_MINUTES)
            return usage_report(db, start=monday, end=sunday, by=what)  # type: ignore[arg-type]
        finally:
            db.close()

    def collection(self) -> list[PanelCollection]:
        db = self._open()
        if db is None:
            return []
        try:
            held: dict[str, list[tuple[int, str, str]]] = {}
            for problem in db.problems():
                held.setdefault(problem.kiosk_id, []).append(
                    (problem.seq, problem.cause, problem.found_at)
                )
            panels = [
                PanelCollection(
                    k.kiosk_id,
                    k.room,
                    k.school,
                    k.last_collected_at,
                    k.last_seq,
                    tuple(held.get(k.kiosk_id, ())),
                )
                for k in db.kiosks()
            ]
        finally:
            db.close()
        return sorted(panels, key=lambda p: (not p.problems, p.room, p.kiosk_id))


# --------------------------------------------------------------------------- views


def local_text(utc: str | None, tz: str) -> str:
    """A UTC ISO 8601 time as ``DD.MM.YYYY HH:MM`` in ``tz``; ``—`` for none."""
    if not utc:
        return "—"
    moment = datetime.fromisoformat(utc.replace("Z", "+00:00"))
    return moment.astimezone(ZoneInfo(tz)).strftime("%d.%m.%Y %H:%M")


def seen_text(seen_at: float | None, tz: str) -> str:
    """When a panel was last heard from, as :func:`local_text` writes it."""
    if seen_at is None:
        return "—"
    return local_text(datetime.fromtimestamp(seen_at, UTC).isoformat(), tz)


def cache_text(used: int, quota: int) -> str:
    """The media cache's use: ``1,2 ГБ из 20 ГБ (6 %)``; ``—`` while not known."""
    if quota <= 0:
        return "—"
    return t(
        "{used} of {quota} ({share})",
        used=size_text(used),
        quota=size_text(quota),
        share=percent_text(share(used, quota)),
    )


def table(rows: Rows, tz: str) -> dict[str, Any]:
    """``rows`` as the page's table: headings, cells and numeric columns
    (:func:`controller.reports.table_cells`); names are cleaned, the template escapes."""
    heads, cells, numeric = table_cells(rows, language(), tz)
    met = [r.met if isinstance(r, ComplianceRow) else None for r in rows]
    return {"heads": heads, "cells": cells, "numeric": numeric, "met": met}


def charts(report: WeekReport) -> list[tuple[str, Markup]]:
    """The week's charts: the weekly norm per teacher, display time per day and per room.

    Each is :func:`controller.report_html.bar_chart`'s inline SVG, which escapes every
    name itself (so it is marked safe here).
    """
    lang = language()
    by_day: dict[str, int] = {}
    for r in report.days:  # a district's days come once per school
        by_day[r.key] = by_day.get(r.key, 0) + r.display_ms
    days = [d.isoformat() for d in days_of(report.monday, report.sunday)]
    minutes = _t("minutes", lang)
    out: list[tuple[str, Markup]] = []
    norm_title = t("Lessons counted per teacher")
    out.append(
        (
            norm_title,
            Markup(
                bar_chart(
                    norm_title,
                    [
                        (
                            school_label(r.school, r.teacher_name),
                            float(r.lessons),
                            t("{lessons} of {goal}", lessons=r.lessons, goal=MIN_LESSONS),
                        )
                        for r in report.norm
                    ],
                )
            ),
        )
    )
    for heading, bars in (
        (
            _t("Display time per day", lang),
            [(d, by_day.get(d, 0) / 60_000, duration_text(by_day.get(d, 0), lang)) for d in days],
        ),
        (
            _t("Display time per room", lang),
            [
                (
                    school_label(r.school, r.label),
                    r.display_ms / 60_000,
                    duration_text(r.display_ms, lang),
                )
                for r in report.rooms
            ],
        ),
    ):
        out.append((heading, Markup(bar_chart(f"{heading} ({minutes})", bars))))
    return out


def school_label(school: str, name: str) -> str:
    """A chart's bar label: ``name``, after its school's id in a district's report
    (two schools' «Каб. 12» are two bars, told apart)."""
    return f"{school} · {name}" if school else name


def summary(report: WeekReport) -> list[str]:
    """The lines above the tables: lessons and display time, library share, the norm;
    first, for a district, how days and times are counted."""
    lang = language()
    zones = [t(ZONES_TEXT)] if report.school_zones else []
    total_ms = sum(r.display_ms for r in report.days)
    library_ms = sum(r.library_ms for r in report.days)
    lessons = sum(r.lessons for r in report.days)
    return [
        *zones,
        _t(
            "Lessons {lessons} · display time {time} · panels {panels}",
            lang,
            lessons=lessons,
            time=duration_text(total_ms, lang),
            panels=len(report.rooms),
        ),
        _t(
            "Library content: {share} of display time ({time})",
            lang,
            share=percent_text(share(library_ms, total_ms)),
            time=duration_text(library_ms, lang),
        ),
        compliance_rule_text(min_lessons=MIN_LESSONS, min_minutes=MIN_MINUTES, lang=lang),
        _t(
            "Teachers who met it: {met} of {count}",
            lang,
            met=sum(1 for r in report.norm if r.met),
            count=len(report.norm),
        ),
    ]


def problem_text(cause: str) -> str:
    """Why a held record stops collection, in the admin's words."""
    msgid = CHAIN_PROBLEMS.get(cause)
    return t(msgid) if msgid is not None else cause


# --------------------------------------------------------------------------- handlers


@dataclass(frozen=True, slots=True)
class Filter:
    """The week and school the page shows, read from the query."""

    week: str
    school: str | None


def admin_only(
    state: TeacherApp, fn: Callable[[TeacherApp, Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    """``fn`` for an admin's computer only: 403 with a page that says how to become one."""

    async def endpoint(request: Request) -> Response:
        if not await asyncio.to_thread(state.backend.is_admin):
            return state.page("error.html", 403, message=not_admin_text())
        return await fn(state, request)

    return endpoint


def not_admin_text() -> str:
    return t(
        "These pages are a school administrator's: pair this computer with a panel as admin "
        "(the panel's admin secret from its kiosk.toml), then open them again."
    )


async def source_timezone(source: AdminSource) -> str:
    """The source's timezone; Moscow's while it cannot be read (the page says why)."""
    try:
        return await asyncio.to_thread(source.timezone)
    except ClassCastError:
        return DEFAULT_TZ


async def _filter(state: TeacherApp, request: Request) -> tuple[Filter, AdminSource, str]:
    """The filter the query asks for, the source and its timezone.

    Raises:
        HTTPException: 400 for a week not written ``YYYY-Www`` or that does not exist,
            or a school the source does not hold.
    """
    source = state.report_source()
    tz = await source_timezone(source)
    week = request.query_params.get("week") or now_week(tz=tz)
    if not WEEK_PATTERN.match(week):
        raise HTTPException(400)
    try:
        week_days(week)
    except ValueError:
        raise HTTPException(400) from None
    school = request.query_params.get("school") or None
    if school is not None:
        schools = await asyncio.to_thread(source.schools)
        if school not in {s.school_id for s in schools}:
            raise HTTPException(400)
    return Filter(week, school), source, tz


async def _page(state: TeacherApp, request: Request) -> Response:
    chosen, source, tz = await _filter(state, request)
    values = await _report_values(state, source, chosen, tz)
    collection_error: str | None = None
    try:
        collection = await asyncio.to_thread(source.collection)
        pushes = await asyncio.to_thread(source.pushes)
        schools = await asyncio.to_thread(source.schools)
    except ClassCastError as exc:
        collection, pushes, schools = [], None, ()
        collection_error = source.error_text(exc)
    return state.page(
        "admin.html",
        cards=state.panel_cards(),
        collection=collection,
        collection_error=collection_error,
        pushes=pushes,
        schools=schools,
        tz=tz,
        **values,
    )


async def _report_fragment(state: TeacherApp, request: Request) -> Response:
    chosen, source, tz = await _filter(state, request)
    values = await _report_values(state, source, chosen, tz)
    return state.fragment("_admin_report.html", **values)


async def _report_values(
    state: TeacherApp, source: AdminSource, chosen: Filter, tz: str
) -> dict[str, Any]:
    try:
        weeks = await asyncio.to_thread(source.weeks, now_week(tz=tz))
        report = await asyncio.to_thread(source.week_report, chosen.week, chosen.school)
        schools = await asyncio.to_thread(source.schools)
    except ClassCastError as exc:
        return {
            "chosen": chosen,
            "weeks": [chosen.week],
            "report": None,
            "report_error": source.error_text(exc),
        }
    if chosen.week not in weeks:
        weeks = sorted({chosen.week, *weeks}, reverse=True)
    return {
        "chosen": chosen,
        "weeks": weeks,
        "report": report,
        "report_error": None,
        "summary": summary(report),
        "charts": charts(report),
        "norm_table": table(report.norm, report.tz),
        "room_table": table(report.rooms, report.tz),
        "teacher_table": table(report.teachers, report.tz),
        "csv_reports": [
            (what, CSV_LABELS[what]) for what in CSV_REPORTS if what != "school" or schools
        ],
    }


CROSS_SITE: Final = frozenset({"cross-site", "same-site"})
"""``Sec-Fetch-Site`` values of a request another site (or a sibling one) started."""


async def _csv(state: TeacherApp, request: Request) -> Response:
    """One report as CSV, the command line's text, as a download (``attachment``)."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if site in CROSS_SITE or (
        origin is not None and origin not in {f"http://{h}" for h in state.config.hosts}
    ):
        raise HTTPException(403)
    what = request.query_params.get("what", "norm")
    if what not in CSV_REPORTS:
        raise HTTPException(404)
    chosen, source, _tz = await _filter(state, request)
    try:
        rows = await asyncio.to_thread(source.rows, chosen.week, chosen.school, what)
    except ClassCastError as exc:
        return state.page("error.html", 500, message=source.error_text(exc))
    text = format_csv(rows, compliance_rows=what == "norm")
    name = f"classcast-{what}-{chosen.week}.csv"
    return Response(
        text.encode(),
        media_type="text/csv; charset=utf-8",
        headers={
            "content-disposition": f'attachment; filename="{name}"',
            "cache-control": "no-store",
        },
    )


async def _panels_fragment(state: TeacherApp, request: Request) -> Response:
    tz = await source_timezone(state.report_source())
    return state.fragment("_admin_panels.html", cards=state.panel_cards(), tz=tz)


def admin_routes(
    state: TeacherApp, events: Callable[[Request], Awaitable[Response]]
) -> list[BaseRoute]:
    """The admin's routes, each behind :func:`admin_only`; ``events`` is the stream of
    the live panels (built by the app, as its own)."""

    async def live(state: TeacherApp, request: Request) -> Response:
        return await events(request)

    return [
        Route("/admin", admin_only(state, _page)),
        Route("/admin/report", admin_only(state, _report_fragment)),
        Route("/admin/report.csv", admin_only(state, _csv)),
        Route("/admin/panels", admin_only(state, _panels_fragment)),
        Route("/admin/events", admin_only(state, live)),
    ]


def admin_panels_html(state: TeacherApp, tz: str) -> str:
    """The live panels' fragment, as the event stream sends it."""
    return state.render("_admin_panels.html", cards=state.panel_cards(), tz=tz)


__all__ = [
    "CSV_REPORTS",
    "MAX_WEEKS_LISTED",
    "AdminSource",
    "PanelCollection",
    "School",
    "SchoolPush",
    "SchoolSource",
    "WeekReport",
    "admin_routes",
    "cache_text",
    "local_text",
    "seen_text",
]
