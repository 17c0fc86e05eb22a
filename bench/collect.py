"""Benchmark: storing collected usage records in the school database.

Synthetic records of 4 panels are sealed (hash chain + Ed25519, the kiosk's cost) before
anything is timed. Then, into a fresh school database file each time:

- ``SchoolDb.ingest`` in batches of ``MAX_USAGE_BATCH`` (what ``classcast usage
  collect`` does): everything checked, then inserted;
- ``verify_chain`` alone over the same records: the verification share;
- the insert alone: the same rows (derived columns computed beforehand) with
  ``executemany`` into the school database's own ``plays`` table (same indexes), one
  transaction per batch;
- baseline: plain ``sqlite3`` ``executemany`` of the same rows into an identical table,
  without verification, one transaction per batch.

Diagnostic: sqlite-utils ``insert_all(batch_size=...)`` of the same rows.

Run: ``.venv/bin/python -m bench.collect [--quick] [--n N]``.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench._common import figure, heading, result_line
from controller.schooldb import _INSERT, _SCHEMA, DERIVED_COLUMNS, RECORD_COLUMNS, SchoolDb
from protocol.limits import MAX_USAGE_BATCH
from protocol.messages import UsageBatch, UsageRecord
from protocol.usage_chain import GENESIS_HASH, load_public_key, public_key_text, seal, verify_chain

PANELS = 4
BASE_S = 1_795_000_000  # 2026-11-18


def make_panel(kiosk_id: str, n: int) -> tuple[str, list[UsageRecord]]:
    """Seal ``n`` records of one panel; returns its public key text and the records."""
    key = Ed25519PrivateKey.generate()
    prev = GENESIS_HASH
    records = []
    for i in range(n):
        start_s = BASE_S + i * 180
        record = UsageRecord(
            uuid=f"{kiosk_id}-{i + 1:09d}",
            seq=i + 1,
            kiosk_id=kiosk_id,
            room=f"Кабинет {kiosk_id}",
            lesson_id=f"L-{i // 8 % 50}",
            lesson_title="Фотосинтез",
            item_index=i % 8,
            kind="image",
            content_hash=f"{i % 300:064x}",
            content_title=f"Материал {i % 300}",
            content_source=f"https://library.example/items/{i % 300}",
            teacher_id=f"t-{i // 40 % 30}",
            teacher_name=f"Учитель {i // 40 % 30}",
            started_at=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(start_s)),
            ended_at=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(start_s + 170)),
            duration_ms=170_000,
            end_reason="next",
            clock_offset_ms=1234,
        )
        sealed = seal(record, prev, key)
        prev = sealed.record_hash
        records.append(sealed)
    return public_key_text(key), records


def batches(kiosk_id: str, key: str, records: list[UsageRecord]) -> list[UsageBatch]:
    out = []
    for i in range(0, len(records), MAX_USAGE_BATCH):
        chunk = records[i : i + MAX_USAGE_BATCH]
        out.append(
            UsageBatch(
                re=1,
                kiosk_id=kiosk_id,
                records=chunk,
                last_seq=chunk[-1].seq,
                more=i + MAX_USAGE_BATCH < len(records),
                public_key=key,
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 4,000 records")
    parser.add_argument("--n", type=int, default=None, help="records in all (default 20,000)")
    args = parser.parse_args()
    n = args.n or (4_000 if args.quick else 20_000)
    per_panel = n // PANELS
    n = per_panel * PANELS

    heading(f"sealing {n} records of {PANELS} panels (the kiosks' cost, not timed below)")
    t0 = time.perf_counter()
    panels = [make_panel(f"k-{p:02d}", per_panel) for p in range(PANELS)]
    sealed_s = time.perf_counter() - t0
    figure("seal (hash + Ed25519 sign)", n / sealed_s, "records/s")

    with tempfile.TemporaryDirectory(prefix="bench-collect-") as tmp:
        scratch = SchoolDb(None)
        rows = [
            [
                (*(getattr(r, c) for c in RECORD_COLUMNS), *scratch.derive(r))
                for r in records[i : i + MAX_USAGE_BATCH]
            ]
            for _, records in panels
            for i in range(0, len(records), MAX_USAGE_BATCH)
        ]
        scratch.close()

        heading("ingest (verify + insert), one SchoolDb.ingest per batch of 1000")
        db = SchoolDb(Path(tmp) / "ingest.db")
        t0 = time.perf_counter()
        for index, (key, records) in enumerate(panels):
            for batch in batches(f"k-{index:02d}", key, records):
                db.ingest(batch.kiosk_id, batch)
        ingest_s = time.perf_counter() - t0
        assert db.record_count() == n
        assert db.verify(kiosk_id="k-00") == []
        db.close()
        figure("SchoolDb.ingest", n / ingest_s, "records/s")

        t0 = time.perf_counter()
        for key, records in panels:
            assert verify_chain(records, load_public_key(key)) == []
        verify_s = time.perf_counter() - t0
        figure("  of which verify_chain (hash + Ed25519)", n / verify_s, "records/s")

        heading("insert only (rows prepared), one transaction per 1000")
        db = SchoolDb(Path(tmp) / "insert.db")
        conn = db.db.conn
        t0 = time.perf_counter()
        for chunk in rows:
            with conn:
                conn.executemany(_INSERT, chunk)
        insert_s = time.perf_counter() - t0
        db.close()
        figure("SchoolDb plays executemany", n / insert_s, "records/s")

        db = SchoolDb(Path(tmp) / "insert_all.db")
        t0 = time.perf_counter()
        columns = RECORD_COLUMNS + DERIVED_COLUMNS
        plays = db.db.table("plays")
        for chunk in rows:
            with db.db.atomic():
                plays.insert_all(
                    (dict(zip(columns, row, strict=True)) for row in chunk), batch_size=100
                )
        insert_all_s = time.perf_counter() - t0
        db.close()
        figure(
            "  diagnostic: sqlite-utils insert_all(batch_size=100)", n / insert_all_s, "records/s"
        )

        heading("baseline: plain sqlite3 executemany into an identical table, no checks")
        conn = sqlite3.connect(Path(tmp) / "baseline.db")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA.strip().split(";\n"):
            conn.execute(statement)
        conn.commit()
        t0 = time.perf_counter()
        for chunk in rows:
            with conn:
                conn.executemany(_INSERT, chunk)
        baseline_s = time.perf_counter() - t0
        conn.close()
        figure("sqlite3 executemany", n / baseline_s, "records/s")

    heading("ratios")
    figure("ingest / baseline", (n / ingest_s) / (n / baseline_s), "x")
    figure("insert only / baseline", (n / insert_s) / (n / baseline_s), "x")
    figure("verification share of ingest", 100 * verify_s / ingest_s, "%")
    result_line(
        "collect",
        {
            "records": n,
            "ingest_rps": round(n / ingest_s),
            "verify_rps": round(n / verify_s),
            "insert_rps": round(n / insert_s),
            "insert_all_rps": round(n / insert_all_s),
            "baseline_rps": round(n / baseline_s),
            "ingest_ratio": (n / ingest_s) / (n / baseline_s),
            "insert_ratio": (n / insert_s) / (n / baseline_s),
        },
    )


if __name__ == "__main__":
    main()
