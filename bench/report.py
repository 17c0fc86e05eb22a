"""Benchmark: weekly reports over a large school database.

Generates 10 million synthetic rows (``--quick``: 1 million) straight into a school
database file with SQL (unsigned rows: the reports do not read signatures): 100 panels,
80 teachers (on a roster of 85, bound to their computers by name), a year of school
days, 8 lessons a day of 8 items each (one record in 20 hidden under an alert). The
report index is built after the rows are in, as a bulk load would. Then, for the
busiest ISO week,
times ``usage_report`` by room, teacher and content and ``compliance`` (median of 3,
after one warm-up run each).

Baselines in the same run: ``SELECT count(*) FROM plays WHERE iso_week = ?`` (the
brief's baseline; ``iso_week`` has no index of its own, so this is a full scan) and
the same count over the week's day range, which touches exactly the index entries the
reports read.

Run: ``.venv/bin/python -m bench.report [--quick] [--rows N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench._common import figure, heading, result_line, timed
from controller.reports import compliance, usage_report
from controller.roster import Roster, RosterEntry
from controller.schooldb import _PLAYS_REPORT_INDEX, SchoolDb, week_days

PANELS = 100
TEACHERS = 80
ITEMS_PER_LESSON = 8
LESSONS_PER_DAY = 8
FIRST_DAY = date(2025, 9, 1)


def generate(db: SchoolDb, rows: int) -> None:
    """Fill ``plays`` with ``rows`` synthetic records, panel by panel in seq order."""
    per_panel = rows // PANELS
    per_day = ITEMS_PER_LESSON * LESSONS_PER_DAY
    days_needed = per_panel // per_day + 1
    conn = db.db.conn
    conn.execute("DROP INDEX plays_report")
    conn.execute(
        "CREATE TEMP TABLE days (d INTEGER PRIMARY KEY, day TEXT, iso_week TEXT, ms INTEGER)"
    )
    school_days: list[tuple[int, str, str, int]] = []
    current = FIRST_DAY
    while len(school_days) < days_needed:
        if current.weekday() < 5:
            year, week, _ = current.isocalendar()
            midnight_utc_ms = (current - date(1970, 1, 1)).days * 86_400_000 - 3 * 3_600_000
            school_days.append(
                (len(school_days), current.isoformat(), f"{year}-W{week:02d}", midnight_utc_ms)
            )
        current += timedelta(days=1)
    conn.executemany("INSERT INTO days VALUES (?, ?, ?, ?)", school_days)
    conn.execute(
        "INSERT INTO kiosks (kiosk_id, room, public_key) "
        "WITH RECURSIVE p(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM p WHERE k < ?) "
        "SELECT printf('k-%03d', k), printf('Кабинет %d', 100 + k), '' FROM p",
        [PANELS - 1],
    )
    sql = f"""
    INSERT INTO plays (uuid, seq, kiosk_id, room, lesson_id, lesson_title, item_index, kind,
        content_hash, content_title, content_source, teacher_id, teacher_name, started_at,
        start_utc, start_ms, ended_at, end_utc, duration_ms, end_reason, clock_offset_ms,
        prev_hash, record_hash, signature, day, iso_week, hidden)
    WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < :last),
    g AS (
        SELECT x, x / {per_day} AS d, (x % {per_day}) / {ITEMS_PER_LESSON} AS slot,
            x % {ITEMS_PER_LESSON} AS item FROM n
    ),
    h AS (
        SELECT g.x, g.slot, g.item, days.day, days.iso_week,
            days.ms + 8 * 3600000 + slot * 3000000 + item * 300000 AS s,
            180000 + (x * 7919) % 110000 AS dur,
            (:k * 7 + slot * 3 + g.d % 2) % {TEACHERS} AS t,
            (:k * 31 + x * 17) % 3000 AS c
        FROM g JOIN days ON days.d = g.d
    )
    SELECT printf('k-%03d-%09d', :k, x + 1), x + 1, printf('k-%03d', :k),
        printf('Кабинет %d', 100 + :k), printf('L-%d-%d', t, slot), 'Урок',
        item, 'image', printf('%064d', c), printf('Материал %d', c),
        CASE WHEN c % 5 = 0 THEN NULL ELSE printf('https://library.example/%d', c) END,
        printf('t-%02d', t), printf('Учитель %d', t), '', '', s, '', '', dur, 'next', 0,
        '', '', '', day, iso_week, CASE WHEN x % 20 = 7 THEN 'alert' ELSE '' END
    FROM h
    """
    with db.db.atomic():
        for k in range(PANELS):
            conn.execute(sql, {"last": per_panel - 1, "k": k})
    conn.execute(_PLAYS_REPORT_INDEX)
    conn.execute("ANALYZE")
    conn.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 million rows")
    parser.add_argument("--rows", type=int, default=None, help="rows (default 10 million)")
    args = parser.parse_args()
    rows = args.rows or (1_000_000 if args.quick else 10_000_000)

    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        db = SchoolDb(Path(tmp) / "school.db")
        heading(f"generating {rows:,} rows into a school database")
        t0 = time.perf_counter()
        generate(db, rows)
        figure("generation (SQL insert + index build)", time.perf_counter() - t0, "s")
        total = db.record_count()
        size_mb = sum(f.stat().st_size for f in Path(tmp).iterdir()) / 1e6
        figure("rows", total, "")
        figure("file size", size_mb, "MB")
        week, week_rows = db.db.execute(
            "SELECT iso_week, count(*) FROM plays GROUP BY iso_week ORDER BY 2 DESC LIMIT 1"
        ).fetchone()
        monday, sunday = week_days(week)
        figure(f"rows in the busiest week {week}", week_rows, "")
        # A roster: every generated teacher (bound by the name typed) and 5 who never
        # cast; the names typed per computer are gathered once, as after a collection.
        roster = Roster(db)
        entries = [RosterEntry(f"R-{n:03d}", f"Учитель {n}") for n in range(TEACHERS + 5)]
        t0 = time.perf_counter()
        roster.import_entries(entries, "bench", datetime.now(UTC))
        figure("roster import, names gathered from all rows", time.perf_counter() - t0, "s")

        heading("baselines")
        conn = db.db.conn
        base_week = timed(
            lambda: conn.execute("SELECT count(*) FROM plays WHERE iso_week = ?", [week]).fetchone()
        )
        figure("count(*) WHERE iso_week = ? (full scan)", base_week[1] * 1000, "ms")
        base_days = timed(
            lambda: conn.execute(
                "SELECT count(*) FROM plays WHERE day BETWEEN ? AND ?",
                [monday.isoformat(), sunday.isoformat()],
            ).fetchone()
        )
        figure("count(*) WHERE day BETWEEN (covering index)", base_days[1] * 1000, "ms")

        heading(f"reports for {week} (first run / median of 3)")
        results: dict[str, float] = {}
        for by in ("room", "teacher", "content"):
            first, median = timed(
                lambda by=by: usage_report(db, start=monday, end=sunday, by=by)  # type: ignore[misc]
            )
            results[by] = median
            figure(f"usage_report by={by}", median * 1000, "ms", f"first {first * 1000:.0f} ms")
        first, median = timed(lambda: compliance(db, week=week))
        results["compliance"] = median
        figure("compliance", median * 1000, "ms", f"first {first * 1000:.0f} ms")
        db.close()

    heading("ratios")
    worst = max(results.values())
    figure("slowest report / full-scan baseline", worst / base_week[1], "x")
    figure("slowest report / index-range count", worst / base_days[1], "x")
    result_line(
        "report",
        {
            "rows": total,
            "week_rows": int(week_rows),
            "room_ms": results["room"] * 1000,
            "teacher_ms": results["teacher"] * 1000,
            "content_ms": results["content"] * 1000,
            "compliance_ms": results["compliance"] * 1000,
            "baseline_iso_week_ms": base_week[1] * 1000,
            "baseline_day_range_ms": base_days[1] * 1000,
            "aim_met": "yes" if worst <= 1.0 else "no",
        },
    )


if __name__ == "__main__":
    main()
