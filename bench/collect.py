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

Then the parts of a record's verification, each against a baseline in the same run:
``record_hash`` (canonical form + sha256) against ``hashlib.sha256`` over the same
canonical bytes, and ``SchoolDb.derive`` (corrected times, day and week).

Last, where a collection's time goes outside the school database, over one panel's
records (quick: 2,000; else 5,000) in a kiosk usage log file: ``UsageLog.records_after``
(the panel), ``codec.encode`` of the ``usage_batch`` (the panel encodes it twice: once
to check its size), ``codec.decode`` (the controller) against ``json.loads`` of the same
frame, and ``SchoolDb.ingest``: everything but the network, in one process.

Run: ``.venv/bin/python -m bench.collect [--quick] [--n N]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench._common import figure, heading, result_line
from controller.schooldb import _INSERT, _SCHEMA, DERIVED_COLUMNS, RECORD_COLUMNS, SchoolDb
from kiosk.usage import DisplayStart, UsageLog
from protocol.codec import decode, encode
from protocol.limits import MAX_USAGE_BATCH
from protocol.messages import UsageBatch, UsageRecord
from protocol.usage_chain import (
    GENESIS_HASH,
    canonical_bytes,
    load_public_key,
    public_key_text,
    record_hash,
    seal,
    verify_chain,
)

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


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """The quickest of ``repeats`` runs of ``fn``, in seconds."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def kiosk_log(path: Path, n: int) -> UsageLog:
    """A panel's usage log file holding ``n`` closed, sealed records."""
    log = UsageLog(path, kiosk_id="k-wire", room="Кабинет 1")
    wall, mono = float(BASE_S), 1000.0
    with log.transaction():
        for i in range(n):
            start = DisplayStart(
                f"L-{i // 8 % 50}",
                "Фотосинтез",
                i % 8,
                "image",
                f"{i % 300:064x}",
                f"Материал {i % 300}",
                f"https://library.example/items/{i % 300}",
                f"t-{i // 40 % 30}",
                f"Учитель {i // 40 % 30}",
            )
            uuid = log.open(start, wall_s=wall + i * 180, mono_s=mono + i * 180)
            log.close(uuid, wall_s=wall + i * 180 + 170, mono_s=mono + i * 180 + 170, reason="next")
    return log


def wire_stages(tmp: Path, n: int) -> dict[str, float]:
    """Seconds per stage of collecting ``n`` records of one panel, all in this process."""
    log = kiosk_log(tmp / "kiosk-usage.sqlite", n)
    seconds = dict.fromkeys(("records_after", "encode", "decode", "json_loads", "ingest"), 0.0)
    db = SchoolDb(tmp / "wire.db")
    try:
        after = 0
        while True:
            t0 = time.perf_counter()
            records = log.records_after(after, MAX_USAGE_BATCH)
            t1 = time.perf_counter()
            if not records:
                break
            batch = UsageBatch(
                re=1,
                kiosk_id=log.kiosk_id,
                records=records,
                last_seq=records[-1].seq,
                more=True,
                public_key=log.public_key,
            )
            frame = encode(batch)
            t2 = time.perf_counter()
            message = decode(frame)
            t3 = time.perf_counter()
            json.loads(frame)
            t4 = time.perf_counter()
            assert isinstance(message, UsageBatch)
            result = db.ingest(log.kiosk_id, message)
            t5 = time.perf_counter()
            assert result.refused is None
            after = records[-1].seq
            for stage, spent in zip(
                seconds, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True
            ):
                seconds[stage] += spent
        assert db.record_count() == n
    finally:
        db.close()
        log.close_db()
    return seconds


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

    heading("verification, per record, against a baseline in the same run")
    every = [r for _, records in panels for r in records]
    texts = [canonical_bytes(r) for r in every]
    sha_s = best_of(lambda: [hashlib.sha256(t).hexdigest() for t in texts])
    figure("baseline: sha256 of the canonical bytes", n / sha_s, "records/s")
    hash_s = best_of(lambda: [record_hash(r) for r in every])
    figure("record_hash (canonical form + sha256)", n / hash_s, "records/s")
    scratch = SchoolDb(None)
    derive_s = best_of(lambda: [scratch.derive(r) for r in every])
    scratch.close()
    figure("SchoolDb.derive (times, day, week)", n / derive_s, "records/s")

    wire_n = 2_000 if args.quick else 5_000
    heading(f"collection outside the database: one panel's {wire_n} records, one process")
    with tempfile.TemporaryDirectory(prefix="bench-collect-wire-") as tmp:
        stages = wire_stages(Path(tmp), wire_n)
    figure("panel: UsageLog.records_after", wire_n / stages["records_after"], "records/s")
    figure("panel: codec.encode (done twice)", wire_n / stages["encode"] / 2, "records/s")
    figure("controller: codec.decode", wire_n / stages["decode"], "records/s")
    figure("  baseline: json.loads of the frame", wire_n / stages["json_loads"], "records/s")
    figure("controller: SchoolDb.ingest", wire_n / stages["ingest"], "records/s")
    panel_s = stages["records_after"] + 2 * stages["encode"]
    controller_s = stages["decode"] + stages["ingest"]
    figure("panel side (records_after + 2 encodes)", wire_n / panel_s, "records/s")
    figure("controller side (decode + ingest)", wire_n / controller_s, "records/s")

    heading("ratios")
    figure("ingest / baseline", (n / ingest_s) / (n / baseline_s), "x")
    figure("insert only / baseline", (n / insert_s) / (n / baseline_s), "x")
    figure("verification share of ingest", 100 * verify_s / ingest_s, "%")
    figure("record_hash / sha256 of the same bytes", (n / hash_s) / (n / sha_s), "x")
    figure("decode / json.loads", stages["json_loads"] / stages["decode"], "x")
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
            "hash_rps": round(n / hash_s),
            "sha256_rps": round(n / sha_s),
            "derive_rps": round(n / derive_s),
            "decode_rps": round(wire_n / stages["decode"]),
            "controller_rps": round(wire_n / controller_s),
            "panel_rps": round(wire_n / panel_s),
        },
    )


if __name__ == "__main__":
    main()
