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
from datetime import date
from typing import Final

from controller.i18n import N_
from controller.i18n import language as current_language
from controller.reports import (
    DEFAULT_GAP_MINUTES,
    USAGE_HEADINGS,
    ComplianceRow,
    ReportRow,
    days_of,
    duration_text,
    local_time_text,
    usage_report,
)
from controller.reports import (
    report_text as _t,
)
from controller.schooldb import SchoolDb
from protocol.text import clean_name

__all__ = ["bar_chart", "compliance_rule_text", "report_html"]

_CSS: Final = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em; color: #1a202c; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.6em; }
p.meta { color: #4a5568; margin: 0.2em 0; }
table { border-collapse: collapse; margin-top: 0.5em; }
th, td { border-bottom: 1px solid #e2e8f0; padding: 0.25em 0.8em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #edf2f7; }
svg.chart { display: block; margin-top: 0.5em; }
svg.chart text { font-size: 12px; fill: #1a202c; }
rect.bar { fill: #2b6cb0; }
.met { color: #276749; font-weight: bold; }
.unmet { color: #c53030; font-weight: bold; }
"""


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


def _usage_table(rows: Sequence[ReportRow], heading: str, lang: str, tz: str) -> str:
    heads = [heading, *USAGE_HEADINGS]
    out = ["<table><tr>", *(f"<th>{_h(_t(h, lang))}</th>" for h in heads), "</tr>"]
    for r in rows:
        out.append(
            f"<tr><td>{_h(r.label)}</td><td class='n'>{r.lessons}</td>"
            f"<td class='n'>{_h(duration_text(r.display_ms, lang))}</td>"
            f"<td class='n'>{_h(duration_text(r.hidden_ms, lang))}</td>"
            f"<td class='n'>{r.items}</td>"
            f"<td>{local_time_text(r.first_start_utc, tz)}</td>"
            f"<td>{local_time_text(r.last_end_utc, tz)}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _compliance_table(rows: Sequence[ComplianceRow], lang: str) -> str:
    heads = [
        N_("Teacher"),
        N_("Lessons"),
        N_("Goal met"),
        N_("Days"),
        N_("Sessions"),
        N_("Too short"),
        N_("Without source"),
        N_("Not visible"),
    ]
    out = ["<table><tr>", *(f"<th>{_h(_t(h, lang))}</th>" for h in heads), "</tr>"]
    for r in rows:
        mark = "met" if r.met else "unmet"
        out.append(
            f"<tr><td>{_h(r.teacher_name)}</td><td class='n'>{r.lessons}</td>"
            f"<td class='{mark}'>{_t('yes', lang) if r.met else _t('no', lang)}</td>"
            f"<td>{', '.join(d[5:] for d in r.days)}</td><td class='n'>{r.sessions}</td>"
            f"<td class='n'>{r.too_short}</td><td class='n'>{r.without_source}</td>"
            f"<td class='n'>{_h(duration_text(r.hidden_ms, lang))}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def report_html(
    db: SchoolDb,
    *,
    start: date,
    end: date,
    lang: str | None = None,
    top: int = 10,
    gap_minutes: float = DEFAULT_GAP_MINUTES,
    compliance_rows: Sequence[ComplianceRow] | None = None,
    compliance_note: str | None = None,
) -> str:
    """The usage report from ``start`` to ``end`` as a self-contained HTML page.

    Shows totals, three bar charts (display time per day, the ``top`` content items,
    display time per room), tables per room and per teacher, and, when given, a
    compliance table. Write the result to a ``.html`` file.

    Args:
        db: The school database.
        start: The first day (school timezone), included.
        end: The last day, included.
        lang: ``ru`` or ``en``; the current language by default.
        top: How many content items the "top content" chart shows.
        gap_minutes: A pause this long or longer starts a new lesson session.
        compliance_rows: Rows of :func:`controller.reports.compliance` to include.
        compliance_note: The rule the compliance rows were counted with, shown above
            them (see :func:`compliance_rule_text`).

    Returns:
        The page (UTF-8 text).

    Raises:
        ValueError: ``end`` precedes ``start``.
        UsageLogError: The database cannot be read.
    """
    language = lang or current_language()
    tz = db.tz_name
    by_day = {
        r.key: r for r in usage_report(db, start=start, end=end, by="day", gap_minutes=gap_minutes)
    }
    rooms = usage_report(db, start=start, end=end, by="room", gap_minutes=gap_minutes)
    teachers = usage_report(db, start=start, end=end, by="teacher", gap_minutes=gap_minutes)
    content = usage_report(db, start=start, end=end, by="content", gap_minutes=gap_minutes)
    weeks = usage_report(db, start=start, end=end, by="week", gap_minutes=gap_minutes)
    span = days_of(start, end)
    day_keys = [d.isoformat() for d in span] if len(span) <= 93 else sorted(by_day)
    minutes = _t("minutes", language)

    def bar(label: str, ms: int) -> tuple[str, float, str]:
        return label, ms / 60_000, duration_text(ms, language)

    day_bars = [bar(k, by_day[k].display_ms if k in by_day else 0) for k in day_keys]
    total_ms = sum(r.display_ms for r in weeks)
    lessons = sum(r.lessons for r in weeks)
    title = _t("Digital content usage report", language)
    period = _t("Period: {start} – {end}", language, start=start, end=end)
    body = [
        f"<h1>{_h(title)}</h1>",
        f"<p class='meta'>{_h(period)}</p>",
        f"<p class='meta'>{_h(_t('Timezone: {tz}', language, tz=tz))}</p>",
        "<p class='meta'>"
        + _h(
            _t(
                "Lessons {lessons} · display time {time} · panels {panels}",
                language,
                lessons=lessons,
                time=duration_text(total_ms, language),
                panels=len(rooms),
            )
        )
        + "</p>",
    ]
    if not by_day:
        body.append(f"<p>{_h(_t('No data', language))}</p>")
    charts = [
        (N_("Display time per day"), day_bars),
        (N_("Top content"), [bar(r.label, r.display_ms) for r in content[:top]]),
        (N_("Display time per room"), [bar(r.label, r.display_ms) for r in rooms]),
    ]
    for heading, bars in charts:
        text = _t(heading, language)
        body.append(f"<h2>{_h(text)}</h2>")
        body.append(bar_chart(f"{text} ({minutes})", bars))
    body.append(f"<h2>{_h(_t('By room', language))}</h2>")
    body.append(_usage_table(rooms, N_("Room"), language, tz))
    body.append(f"<h2>{_h(_t('By teacher', language))}</h2>")
    body.append(_usage_table(teachers, N_("Teacher"), language, tz))
    if compliance_rows:
        week = compliance_rows[0].week
        body.append(f"<h2>{_h(_t('Compliance, week {week}', language, week=week))}</h2>")
        if compliance_note:
            body.append(f"<p class='meta'>{_h(compliance_note)}</p>")
        body.append(_compliance_table(compliance_rows, language))
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
        _t("at least one item from a content library", lang)
        if require_source
        else _t("any content", lang)
    )
    return _t(
        "A lesson counts with at least {minutes} min of display time"
        " and {source}; the goal is {lessons} lessons a week.",
        lang,
        minutes=f"{min_minutes:g}",
        source=source,
        lessons=min_lessons,
    )
