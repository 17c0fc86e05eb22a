"""The usage report as one self-contained HTML page with bar charts.

:func:`report_html` returns a page that needs nothing but itself: CSS inline, charts
drawn here as inline SVG (one ``<rect class="bar">`` per bar), no scripts, fonts or
links to fetch. Save it and open it in any browser, or mail it. Labels are Russian
unless ``lang="en"`` (or ``CLASSCAST_LANG=en``); texts come from the controller's
catalogue (:func:`controller.reports.report_text`). Names (rooms, teachers, content)
come from the panels' usage records: every text is cleaned of control characters, bidi overrides and
zero-width characters (:func:`protocol.text.clean_name`) and HTML-escaped by :func:`_h`.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Final, Protocol
from zoneinfo import ZoneInfo

from controller.i18n import N_
from controller.i18n import language as current_language
from controller.reports import (
    DEFAULT_GAP_MINUTES,
    ComplianceRow,
    Group,
    ReportRow,
    ReportSource,
    Rows,
    compliance,
    days_of,
    duration_text,
    library_text,
    percent_text,
    share,
    table_cells,
    usage_report,
)
from controller.reports import (
    report_text as _t,
)
from controller.roster import Roster, RosterView
from controller.schooldb import SchoolDb, week_days
from protocol.text import clean_name

__all__ = ["bar_chart", "compliance_rule_text", "district_html", "iso_weeks", "report_html"]


class HtmlSource(ReportSource, Protocol):
    """What :func:`report_html` reads: a report source with its time zone."""

    @property
    def tz_name(self) -> str:
        """The school's IANA time zone."""
        ...


_CSS: Final = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em; color: #1a202c; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.6em; }
p.meta { color: #4a5568; margin: 0.2em 0; }
table { border-collapse: collapse; margin-top: 0.5em; }
th, td { border-bottom: 1px solid #e2e8f0; padding: 0.25em 0.8em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #edf2f7; }
svg.chart { display: block; margin-top: 0.5em; max-width: 100%; height: auto; }
svg.chart text { font-size: 12px; fill: #1a202c; }
rect.bar { fill: #2b6cb0; }
.met { color: #276749; font-weight: bold; }
.unmet { color: #c53030; font-weight: bold; }
p.sign { margin-top: 2.5em; }
@page { size: A4; margin: 15mm 12mm; }
@media print {
  body { margin: 0; font-size: 10pt; }
  th { background: #edf2f7; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  rect.bar { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  table { width: 100%; }
  thead { display: table-header-group; }
  tr, svg.chart { break-inside: avoid; }
  h2 { break-after: avoid; }
  section.compliance { break-before: page; }
}
"""
"""Screen and A4 print: on paper tables span the page width, their heading rows repeat
on every page, no row or chart is cut in two, and the compliance section starts a page."""

TOP_CONTENT_ROWS: Final = 50
"""Content items the «By content» table lists (the most shown first)."""


def _h(text: str) -> str:
    """``text`` as safe HTML: cleaned (:func:`protocol.text.clean_name`), then escaped."""
    return html.escape(clean_name(text))


_LABEL_W: Final = 220
_BAR_W: Final = 420
_ROW_H: Final = 22


def bar_chart(title: str, bars: Sequence[tuple[str, float, str]]) -> str:
    """A horizontal bar chart as inline SVG.

    Args:
        title: What the chart shows (its accessible name).
        bars: ``(label, value, value_text)`` per bar, drawn top to bottom; the longest
            bar is the largest value.

    Returns:
        An ``<svg>`` element with one ``<rect class="bar">`` per bar.
    """
    peak = max((value for _, value, _ in bars), default=0.0) or 1.0
    height = _ROW_H * max(1, len(bars)) + 8
    width = _LABEL_W + _BAR_W + 110
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-label="{_h(title)}">'
    ]
    for i, (label, value, value_text) in enumerate(bars):
        y = 4 + i * _ROW_H
        bar_w = max(1.0, _BAR_W * value / peak) if value > 0 else 0.0
        label = clean_name(label)  # before shortening: count the characters shown
        short = label if len(label) <= 32 else label[:31] + "…"
        parts.append(
            f'<text x="{_LABEL_W - 6}" y="{y + 15}" text-anchor="end">{_h(short)}</text>'
            f'<rect class="bar" x="{_LABEL_W}" y="{y + 3}" '
            f'width="{bar_w:.1f}" height="{_ROW_H - 6}">'
            f"<title>{_h(label)}: {_h(value_text)}</title></rect>"
            f'<text x="{_LABEL_W + bar_w + 6:.1f}" y="{y + 15}">{_h(value_text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(rows: Rows, lang: str, tz: str) -> str:
    """``rows`` as an HTML table with the cells the text table shows
    (:func:`controller.reports.table_cells`); a compliance row's «goal met» is coloured."""
    heads, cells, numeric = table_cells(rows, lang, tz)
    school_column = 1 if any(r.school for r in list[ReportRow | ComplianceRow](rows)) else 0
    met_column = 2 + school_column if rows and isinstance(rows[0], ComplianceRow) else -1
    out = ["<table><thead><tr>", *(f"<th>{_h(h)}</th>" for h in heads), "</tr></thead><tbody>"]
    for row, line in zip(rows, cells, strict=True):
        out.append("<tr>")
        for column, (text, number) in enumerate(zip(line, numeric, strict=True)):
            if column == met_column:
                mark = "met" if isinstance(row, ComplianceRow) and row.met else "unmet"
                out.append(f"<td class='{mark}'>{_h(text)}</td>")
            else:
                out.append(f"<td class='n'>{_h(text)}</td>" if number else f"<td>{_h(text)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def iso_weeks(start: date, end: date) -> list[str]:
    """The ISO weeks (``YYYY-Www``) that have a day from ``start`` to ``end``, in order."""
    weeks: list[str] = []
    for day in days_of(start, end):
        year, number, _ = day.isocalendar()
        week = f"{year}-W{number:02d}"
        if not weeks or weeks[-1] != week:
            weeks.append(week)
    return weeks


def report_html(
    db: HtmlSource,
    *,
    start: date,
    end: date,
    lang: str | None = None,
    top: int = 10,
    gap_minutes: float = DEFAULT_GAP_MINUTES,
    min_lessons: int = 3,
    min_minutes: float = 10.0,
    require_source: bool = True,
    roster: RosterView | None = None,
    now: datetime | None = None,
) -> str:
    """The usage report from ``start`` to ``end`` as a self-contained HTML page.

    Shows totals with the share of library content, four bar charts (display time per
    day, the ``top`` content items, per room, per library), tables per room, per
    teacher and per content item (with its library), and the weekly-norm (compliance)
    table of every ISO week with a day in the period, under the rule it was counted
    by. Prints on A4 (see :data:`_CSS`) with a line to sign. Write it to a ``.html``
    file; open it in a browser and print, or print it to PDF.

    Args:
        db: The school database.
        start: The first day (school timezone), included.
        end: The last day, included.
        lang: ``ru`` or ``en``; the current language by default.
        top: How many content items the "top content" chart shows.
        gap_minutes: A pause this long or longer starts a new lesson session.
        min_lessons: The weekly norm, as for :func:`controller.reports.compliance`.
        min_minutes: Likewise.
        require_source: Likewise.
        roster: The school's roster (read from ``db`` when None): teachers are people,
            listed even without lessons.
        now: When the report is made (shown on it); the current time by default.

    Returns:
        The page (UTF-8 text).

    Raises:
        ValueError: ``end`` precedes ``start``.
        UsageLogError: The database cannot be read.
    """
    language = lang or current_language()
    if roster is None:
        if not isinstance(db, SchoolDb):
            raise TypeError("a report over another source than a school database needs its roster")
        roster = Roster(db).view()
    tz = db.tz_name

    def report(by: Group) -> list[ReportRow]:
        return usage_report(db, start=start, end=end, by=by, gap_minutes=gap_minutes, roster=roster)

    by_day = {r.key: r for r in report("day")}
    rooms, teachers, content = report("room"), report("teacher"), report("content")
    weeks, libraries = report("week"), report("library")
    span = days_of(start, end)
    day_keys = [d.isoformat() for d in span] if len(span) <= 93 else sorted(by_day)
    minutes = _t("minutes", language)

    def bar(label: str, ms: int) -> tuple[str, float, str]:
        return label, ms / 60_000, duration_text(ms, language)

    day_bars = [bar(k, by_day[k].display_ms if k in by_day else 0) for k in day_keys]
    total_ms = sum(r.display_ms for r in weeks)
    library_ms = sum(r.library_ms for r in weeks)
    lessons = sum(r.lessons for r in weeks)
    title = _t("Digital content usage report", language)
    period = _t("Period: {start} – {end}", language, start=start, end=end)
    made = (now or datetime.now(UTC)).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")

    def meta(text: str) -> str:
        return f"<p class='meta'>{_h(text)}</p>"

    body = [
        f"<h1>{_h(title)}</h1>",
        meta(period),
        meta(_t("Timezone: {tz}", language, tz=tz)),
        meta(
            _t(
                "Lessons {lessons} · display time {time} · panels {panels}",
                language,
                lessons=lessons,
                time=duration_text(total_ms, language),
                panels=len(rooms),
            )
        ),
        meta(
            _t(
                "Library content: {share} of display time ({time})",
                language,
                share=percent_text(share(library_ms, total_ms)),
                time=duration_text(library_ms, language),
            )
        ),
    ]
    if not by_day:
        body.append(f"<p>{_h(_t('No data', language))}</p>")
    charts = [
        (N_("Display time per day"), day_bars),
        (N_("Top content"), [bar(r.label, r.display_ms) for r in content[:top]]),
        (N_("Display time per room"), [bar(r.label, r.display_ms) for r in rooms]),
        (
            N_("Display time per library"),
            [bar(library_text(r.key, language), r.display_ms) for r in libraries],
        ),
    ]
    for heading, bars in charts:
        text = _t(heading, language)
        body.append(f"<h2>{_h(text)}</h2>")
        body.append(bar_chart(f"{text} ({minutes})", bars))
    for heading, rows in (
        (N_("By room"), rooms),
        (N_("By teacher"), teachers),
        (N_("By content"), content[:TOP_CONTENT_ROWS]),
    ):
        body.append(f"<h2>{_h(_t(heading, language))}</h2>")
        body.append(_table(rows, language, tz) if rows else meta(_t("No data", language)))
    if len(content) > TOP_CONTENT_ROWS:
        more = len(content) - TOP_CONTENT_ROWS
        body.append(meta(_t("… and {count} more items (CSV lists all).", language, count=more)))
    rule = compliance_rule_text(
        min_lessons=min_lessons,
        min_minutes=min_minutes,
        require_source=require_source,
        lang=language,
    )
    for week in iso_weeks(start, end):
        monday, sunday = week_days(week)
        rows_of_week = compliance(
            db,
            week=week,
            min_lessons=min_lessons,
            min_minutes=min_minutes,
            require_source=require_source,
            gap_minutes=gap_minutes,
            roster=roster,
        )
        heading = _t(
            "Weekly norm, week {week} ({monday} – {sunday})",
            language,
            week=week,
            monday=monday.strftime("%d.%m"),
            sunday=sunday.strftime("%d.%m.%Y"),
        )
        body.append(f"<section class='compliance'><h2>{_h(heading)}</h2>{meta(rule)}")
        met = sum(1 for r in rows_of_week if r.met)
        body.append(
            meta(
                _t(
                    "Teachers who met it: {met} of {count}",
                    language,
                    met=met,
                    count=len(rows_of_week),
                )
            )
        )
        body.append(
            _table(rows_of_week, language, tz) if rows_of_week else meta(_t("No data", language))
        )
        body.append("</section>")
    body.append(
        meta(
            _t(
                "Made on {moment} ({tz}) from the panels' signed usage logs.",
                language,
                moment=made,
                tz=tz,
            )
        )
    )
    sign = _t("Responsible: ____________________  Signature: __________", language)
    body.append(f"<p class='sign'>{_h(sign)}</p>")
    return (
        f'<!DOCTYPE html>\n<html lang="{language}"><head><meta charset="utf-8">'
        f"<title>{_h(title)}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def compliance_rule_text(
    *,
    min_lessons: int = 3,
    min_minutes: float = 10.0,
    require_source: bool = True,
    lang: str | None = None,
) -> str:
    """The compliance rule in words, to show next to its table.

    Args:
        min_lessons: As given to :func:`controller.reports.compliance`.
        min_minutes: Likewise.
        require_source: Likewise.
        lang: ``ru`` or ``en``; the current language by default.

    Returns:
        One sentence.
    """
    source = (
        _t("at least one item from a recognised content library", lang)
        if require_source
        else _t("any content", lang)
    )
    return _t(
        "A lesson counts with at least {minutes} min of display time and {source}; "
        "a lesson cast to several panels at once counts once; "
        "the goal is {lessons} lessons a week.",
        lang,
        minutes=f"{min_minutes:g}",
        source=source,
        lessons=min_lessons,
    )


def district_html(
    schools: Sequence[ReportRow],
    weeks: Sequence[tuple[str, Sequence[ComplianceRow]]],
    *,
    start: date,
    end: date,
    lang: str | None = None,
    min_lessons: int = 3,
    min_minutes: float = 10.0,
    require_source: bool = True,
    now: datetime | None = None,
) -> str:
    """The district's report from ``start`` to ``end`` as a self-contained HTML page.

    Shows display time per school (a chart and the by-school table) and, for each ISO
    week, the weekly norm of every school's teachers (each school's week in its own time
    zone), as :func:`report_html` shows one school's. Times are UTC. Write it to a
    ``.html`` file and open or print it.

    Args:
        schools: :func:`controller.district.district_report` by ``school``.
        weeks: Per ISO week, :func:`controller.district.district_compliance`.
        start: The first day, included.
        end: The last day, included.
        lang: ``ru`` or ``en``; the current language by default.
        min_lessons: The weekly norm the compliance rows were counted by.
        min_minutes: Likewise.
        require_source: Likewise.
        now: When the report is made (shown on it); the current time by default.

    Returns:
        The page (UTF-8 text).
    """
    language = lang or current_language()
    title = _t("District digital content usage report", language)
    total_ms = sum(r.display_ms for r in schools)
    library_ms = sum(r.library_ms for r in schools)

    def meta(text: str) -> str:
        return f"<p class='meta'>{_h(text)}</p>"

    body = [
        f"<h1>{_h(title)}</h1>",
        meta(_t("Period: {start} – {end}", language, start=start, end=end)),
        meta(_t("Timezone: {tz}", language, tz="UTC")),
        meta(
            _t(
                "Library content: {share} of display time ({time})",
                language,
                share=percent_text(share(library_ms, total_ms)),
                time=duration_text(library_ms, language),
            )
        ),
    ]
    heading = _t("Display time per school", language)
    bars = [
        (r.label, r.display_ms / 60_000, duration_text(r.display_ms, language)) for r in schools
    ]
    body.append(f"<h2>{_h(heading)}</h2>")
    body.append(bar_chart(f"{heading} ({_t('minutes', language)})", bars))
    body.append(f"<h2>{_h(_t('By school', language))}</h2>")
    body.append(_table(schools, language, "UTC") if schools else meta(_t("No data", language)))
    rule = compliance_rule_text(
        min_lessons=min_lessons, min_minutes=min_minutes, require_source=require_source,
        lang=language,
    )  # fmt: skip
    for week, rows in weeks:
        monday, sunday = week_days(week)
        heading = _t(
            "Weekly norm, week {week} ({monday} – {sunday})",
            language,
            week=week,
            monday=monday.strftime("%d.%m"),
            sunday=sunday.strftime("%d.%m.%Y"),
        )
        met = sum(1 for r in rows if r.met)
        body.append(f"<section class='compliance'><h2>{_h(heading)}</h2>{meta(rule)}")
        body.append(
            meta(_t("Teachers who met it: {met} of {count}", language, met=met, count=len(rows)))
        )
        body.append(_table(rows, language, "UTC") if rows else meta(_t("No data", language)))
        body.append("</section>")
    made = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M")
    body.append(
        meta(
            _t(
                "Made on {moment} ({tz}) from the panels' signed usage logs.",
                language,
                moment=made,
                tz="UTC",
            )
        )
    )
    return (
        f'<!DOCTYPE html>\n<html lang="{language}"><head><meta charset="utf-8">'
        f"<title>{_h(title)}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
