"""The admin's pages over a district: an :class:`~controller.webapp.admin.AdminSource`
that reads the district's PostgreSQL database (``classcast app --db postgresql://…``).

The figures are those of :func:`controller.district.district_report` and
:func:`controller.district.district_compliance`, each school's days and weeks in its own
time zone, so that the page and its CSV downloads say what ``classcast usage report
--db postgresql://…`` and ``usage compliance`` print. Times are shown in UTC (a district
has several time zones; the page says so). Collection problems stay in each school's
database: the district shows each school's last push.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from controller.district import (
    DistrictDb,
    district_compliance,
    district_report,
    shown_url,
)
from controller.i18n import t
from controller.reports import Group, ReportRow, Rows
from controller.schooldb import week_days
from controller.webapp.admin import (
    MAX_WEEKS_LISTED,
    MIN_LESSONS,
    MIN_MINUTES,
    PanelCollection,
    School,
    SchoolPush,
    WeekReport,
)
from protocol.errors import ClassCastError

DISTRICT_TZ: Final = "UTC"
"""The timezone a district's page shows times in (as the district's command-line reports):
each school's days and weeks are still its own."""


class DistrictSource:
    """An :class:`~controller.webapp.admin.AdminSource` over the district database at
    ``url``: every school in it, chosen by the page's school selector.

    The database is connected for each call (in the caller's thread) and closed after;
    each call raises :class:`~controller.district.DistrictError` when it cannot be read.
    """

    def __init__(self, url: str) -> None:
        self.url = url

    @contextmanager
    def _open(self) -> Iterator[DistrictDb]:
        with DistrictDb(self.url) as district:
            yield district

    def schools(self) -> tuple[School, ...]:
        with self._open() as district:
            return tuple(School(s.school_id, s.name or s.school_id) for s in district.schools())

    def timezone(self) -> str:
        return DISTRICT_TZ

    def weeks(self, current: str) -> list[str]:
        with self._open() as district:
            found = district.weeks()
        return sorted({current, *found}, reverse=True)[:MAX_WEEKS_LISTED]

    def week_report(self, week: str, school: str | None) -> WeekReport:
        monday, sunday = week_days(week)
        with self._open() as district:

            def report(by: Group) -> list[ReportRow]:
                return district_report(district, start=monday, end=sunday, by=by, school=school)

            norm = district_compliance(
                district,
                week=week,
                school=school,
                min_lessons=MIN_LESSONS,
                min_minutes=MIN_MINUTES,
            )
            return WeekReport(
                week,
                monday,
                sunday,
                DISTRICT_TZ,
                norm,
                report("room"),
                report("teacher"),
                report("day"),
                school_zones=True,
            )

    def rows(self, week: str, school: str | None, what: str) -> Rows:
        """As ``classcast usage compliance --db URL --week W`` (``norm``) or ``usage
        report --db URL --week W --by WHAT`` read them, so that the CSV is the command's."""
        monday, sunday = week_days(week)
        with self._open() as district:
            if what == "norm":
                return district_compliance(
                    district,
                    week=week,
                    school=school,
                    min_lessons=MIN_LESSONS,
                    min_minutes=MIN_MINUTES,
                )
            return district_report(
                district,
                start=monday,
                end=sunday,
                by=what,  # type: ignore[arg-type]
                school=school,
            )

    def collection(self) -> list[PanelCollection]:
        return []  # collection, and its problems, live in each school's database

    def pushes(self) -> list[SchoolPush]:
        with self._open() as district:
            return [
                SchoolPush(s.school_id, s.name or s.school_id, s.pushed_at, s.panels, s.records)
                for s in district.schools()
            ]

    def error_text(self, exc: ClassCastError) -> str:
        return t(
            "The district database {url} cannot be read ({reason}). Check the address, the "
            "user's rights and that PostgreSQL runs there, then reload the page.",
            url=shown_url(self.url),
            reason=str(exc),
        )


__all__ = ["DISTRICT_TZ", "DistrictSource"]
