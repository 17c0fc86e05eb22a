"""Benchmark: the district database in PostgreSQL (ingest, and a weekly compliance).

Starts its own PostgreSQL server in a temporary directory (as the tests do:
``tests/postgres.py``), so nothing is assumed running.

Ingest. ``--records`` real, sealed records of 40 panels in a school database are pushed
to the district (:func:`controller.district.push`: read from SQLite, every hash and link
re-checked, the last signature of each batch verified, derived columns computed, COPY
straight into the weekly partitions with both indexes). Baselines in the same run, on
the same rows: the storing alone
(:meth:`DistrictDb.copy_rows`, already checked rows), and a bare ``COPY`` of them into
an unindexed, unpartitioned table of the same columns.

Weekly compliance. ``--weeks`` weeks of a district of ``--schools`` schools × 40 panels
× 8 lessons × 10 items a school day (5 days a week; unsigned rows: reports read no
signatures) are loaded into the district database and, the same rows, into one SQLite
school database; then :func:`controller.district.district_compliance` for the last week
against :func:`controller.reports.compliance` on SQLite (median of 3 after a warm-up).
A week is one partition, so the district's time depends on the week's rows, not on the
table's: run with ``--weeks 1`` and ``--weeks 3`` to see it.

Run: ``.venv/bin/python -m bench.district [--quick] [--records N] [--schools N] [--weeks N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench._common import figure, heading, result_line, timed
from controller.district import _COLUMNS, DistrictDb, district_compliance, push
from controller.reports import compliance
from controller.schooldb import _INSERT, SchoolDb
from protocol.messages import UsageRecord
from protocol.usage_chain import GENESIS_HASH, public_key_text, seal
from tests.postgres import PostgresServer, postgres_bin

PANELS = 40
LESSONS = 8
ITEMS = 10
SCHOOL_DAYS = 5
FIRST_MONDAY = date(2026, 9, 7)
ZONES = ("Europe/Moscow", "Asia/Yekaterinburg", "Asia/Novosibirsk", "Asia/Vladivostok")


# --------------------------------------------------------------------------- ingest


def sealed_school(path: Path, records: int) -> SchoolDb:
    """A school database holding ``records`` sealed records of ``PANELS`` panels."""
    from protocol.messages import UsageBatch

    school = SchoolDb(path, tz="Europe/Moscow")
    per_panel = records // PANELS
    start = FIRST_MONDAY
    for p in range(PANELS):
        key = Ed25519PrivateKey.generate()
        prev, chain = GENESIS_HASH, []
        for seq in range(1, per_panel + 1):
            day = start + timedelta(days=(seq // (LESSONS * ITEMS)) % SCHOOL_DAYS)
            minute = 8 * 60 + (seq % (LESSONS * ITEMS)) * 4
            begin = f"{day.isoformat()}T{minute // 60 - 3:02d}:{minute % 60:02d}:00.000Z"
            record = UsageRecord(
                uuid=f"u-{p:02d}-{seq:07d}", seq=seq, kiosk_id=f"k-{p:02d}",
                room=f"Каб. {p + 1}", lesson_id=f"L-{seq // ITEMS}", lesson_title="Урок",
                item_index=seq % ITEMS, kind="image", content_hash=f"{seq % 997:064d}",
                content_title=f"Слайд {seq % ITEMS}",
                content_source="https://lib.myschool.edu.ru/content/1",
                teacher_id=f"c-{p % 30:02d}", teacher_name=f"Учитель {p % 30}",
                started_at=begin, ended_at=begin, duration_ms=240_000, end_reason="next",
                school_id="school-1",
            )  # fmt: skip
            sealed = seal(record, prev, key)
            prev = sealed.record_hash
            chain.append(sealed)
        for first in range(0, len(chain), 1000):
            part = chain[first : first + 1000]
            school.ingest(
                f"k-{p:02d}",
                UsageBatch(0, f"k-{p:02d}", part, part[-1].seq, False, public_key_text(key)),
            )
    return school


def ingest(server: PostgresServer, records: int, tmp: Path) -> dict[str, float]:
    heading(f"ingest: {records:,} sealed records of {PANELS} panels")
    t0 = time.perf_counter()
    school = sealed_school(tmp / "ingest.sqlite", records)
    figure("sealing and collecting them into SQLite (setup)", time.perf_counter() - t0, "s")
    total = school.record_count()

    with DistrictDb(server.fresh_url()) as district:
        t0 = time.perf_counter()
        _, result = push(school, district)
        push_s = time.perf_counter() - t0
        assert result.added == total, result
        assert not result.failed, result
        figure("push (check + derive + COPY)", total / push_s, "records/s")
        t0 = time.perf_counter()
        _, again = push(school, district)
        figure("push repeated (nothing new)", (time.perf_counter() - t0) * 1000, "ms")
        assert again.added == 0

        # The same rows, already checked, stored again into a fresh district.
        store = district.school("school-1")
        rows: list[tuple[Any, ...]] = []
        for kiosk in school.kiosks():
            for record in school.records(kiosk.kiosk_id, 0, 10**9):
                derived = store.derive(record)
                day = date.fromisoformat(derived[3]) if derived[3] else None
                fields = tuple(getattr(record, c) for c in _COLUMNS[1:24])
                rows.append(("school-1", *fields, *derived[:3], day, *derived[4:]))
    with DistrictDb(server.fresh_url()) as fresh:
        fresh.school("school-1", tz="Europe/Moscow")
        t0 = time.perf_counter()
        for first in range(0, len(rows), 5000):
            with fresh.conn.transaction():
                fresh.copy_rows(rows[first : first + 5000])
        store_s = time.perf_counter() - t0
        figure("storing alone (copy_rows, checked rows)", total / store_s, "records/s")
        conn = fresh.conn
        conn.execute("CREATE TABLE bare (LIKE plays)")
        t0 = time.perf_counter()
        statement = f"COPY bare ({', '.join(_COLUMNS)}) FROM STDIN"
        with conn.transaction(), conn.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
        bare_s = time.perf_counter() - t0
        figure("bare COPY of the same rows (baseline)", total / bare_s, "records/s")
    school.close()
    figure("push / bare COPY", bare_s / push_s, "x")
    figure("storing alone / bare COPY", bare_s / store_s, "x")
    return {
        "push_per_s": total / push_s,
        "store_per_s": total / store_s,
        "copy_per_s": total / bare_s,
    }


# --------------------------------------------------------------------------- compliance


def district_rows(schools: int, weeks: int) -> Iterator[tuple[Any, ...]]:
    """Unsigned rows of ``schools`` schools for ``weeks`` weeks, in ``_COLUMNS`` order."""
    for s in range(schools):
        school_id = f"school-{s:02d}"
        for p in range(PANELS):
            kiosk, room = f"k-{s:02d}-{p:02d}", f"Каб. {p + 1}"
            seq = 0
            for w in range(weeks):
                for d in range(SCHOOL_DAYS):
                    day = FIRST_MONDAY + timedelta(days=7 * w + d)
                    year, week, _ = day.isocalendar()
                    midnight_ms = (day - date(1970, 1, 1)).days * 86_400_000 - 3 * 3_600_000
                    for lesson in range(LESSONS):
                        teacher = (p * 3 + lesson) % 35
                        for item in range(ITEMS):
                            seq += 1
                            start_ms = midnight_ms + (8 + lesson) * 3_600_000 + item * 240_000
                            source = None if item == 9 else "https://lib.myschool.edu.ru/c"
                            yield (
                                school_id, f"{kiosk}-{seq}", seq, kiosk, room,
                                f"L-{lesson}-{w}-{d}", "Урок", item, "image",
                                f"{(p * 7 + item) % 500:064d}", f"Слайд {item}", source,
                                f"c-{s:02d}-{teacher:02d}", f"Учитель {teacher}", "", "",
                                240_000, "next", 0, "", "", "", "",
                                school_id, "", start_ms, "", day.isoformat(),
                                f"{year}-W{week:02d}", "myschool" if source else "", None,
                            )  # fmt: skip


def weekly(server: PostgresServer, schools: int, weeks: int, tmp: Path) -> dict[str, float]:
    total = schools * PANELS * LESSONS * ITEMS * SCHOOL_DAYS * weeks
    heading(f"weekly compliance: {schools} schools, {weeks} week(s), {total:,} records")
    district = DistrictDb(server.fresh_url())
    for s in range(schools):
        district.school(f"school-{s:02d}", tz=ZONES[s % len(ZONES)])
    sqlite = SchoolDb(tmp / "district.sqlite", tz="Europe/Moscow")
    conn = sqlite.db.conn
    conn.execute("DROP INDEX plays_report")
    t0 = time.perf_counter()
    chunk: list[tuple[Any, ...]] = []

    def flush() -> None:
        with district.conn.transaction(), district.conn.cursor() as cursor:
            district._ensure_partitions(
                {date.fromisoformat(r[_COLUMNS.index("day")]) for r in chunk}
            )
            with cursor.copy(f"COPY plays ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
                for row in chunk:
                    copy.write_row(row)
        conn.executemany(_INSERT, [row[1:] for row in chunk])
        chunk.clear()

    with sqlite.db.atomic():
        for row in district_rows(schools, weeks):
            chunk.append(row)
            if len(chunk) >= 50_000:
                flush()
        if chunk:
            flush()
    from controller.schooldb import _PLAYS_REPORT_INDEX

    conn.execute(_PLAYS_REPORT_INDEX)
    conn.execute("ANALYZE")
    conn.commit()
    district.conn.execute("VACUUM ANALYZE plays")
    figure("loading both (setup)", time.perf_counter() - t0, "s")
    last = FIRST_MONDAY + timedelta(days=7 * (weeks - 1))
    year, number, _ = last.isocalendar()
    week = f"{year}-W{number:02d}"
    week_rows = district.record_count() // weeks
    figure(f"rows in {week}", week_rows, "")
    pg_first, pg = timed(lambda: district_compliance(district, week=week))
    figure("district_compliance (PostgreSQL)", pg * 1000, "ms", f"first {pg_first * 1000:.0f} ms")
    lite_first, lite = timed(lambda: compliance(sqlite, week=week))
    figure("compliance (SQLite, same rows)", lite * 1000, "ms", f"first {lite_first * 1000:.0f} ms")
    rows_pg = district.conn.execute(
        "SELECT count(*) FROM plays WHERE day BETWEEN %s AND %s",
        [last, last + timedelta(days=6)],
    ).fetchone()
    assert rows_pg is not None
    assert rows_pg[0] == week_rows
    _count_first, count = timed(
        lambda: district.conn.execute(
            "SELECT count(*) FROM plays WHERE day BETWEEN %s AND %s",
            [last, last + timedelta(days=6)],
        ).fetchone()
    )
    figure("baseline: count(*) of the week (PostgreSQL)", count * 1000, "ms")
    district.close()
    sqlite.close()
    figure("PostgreSQL / SQLite", pg / lite, "x")
    return {"records": total, "week_rows": week_rows, "pg_ms": pg * 1000, "sqlite_ms": lite * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 records, 5 schools")
    parser.add_argument("--records", type=int, default=None, help="records pushed (100,000)")
    parser.add_argument("--schools", type=int, default=None, help="schools (50)")
    parser.add_argument("--weeks", type=int, default=1, help="weeks loaded for compliance")
    args = parser.parse_args()
    records = args.records or (20_000 if args.quick else 100_000)
    schools = args.schools or (5 if args.quick else 50)
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is not installed: scripts/setup.sh --test")
    server = PostgresServer(bin_dir)
    server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-district-") as tmp:
            ingested = ingest(server, records, Path(tmp))
            week = weekly(server, schools, args.weeks, Path(tmp))
    finally:
        server.stop()
    result_line(
        "district",
        {
            **ingested,
            **week,
            "push_aim_met": "yes"
            if ingested["push_per_s"] >= 100_000
            and ingested["push_per_s"] >= 0.5 * ingested["copy_per_s"]
            else "no",
            "compliance_aim_met": "yes" if week["pg_ms"] <= 1000 else "no",
        },
    )


if __name__ == "__main__":
    main()
