"""The usage log's commit as the log grows: time-ordered interval uuids vs random ones.

Run: ``.venv/bin/python -m bench.usage_log [--quick] [--rows N,...] [--bursts B]
[--repeats R]``

A kiosk commits its usage log (``synchronous=FULL``, WAL) once per burst of switches
(``kiosk.usage_writer.COMMIT_INTERVAL_S``). Each switch closes one interval (sealed,
hashed, signed) and inserts the next, whose uuid goes into the table's unique index.
For each log size, two logs are filled alike (100 switches per transaction), one with
the uuids the log makes (time-ordered, RFC 9562 version 7) and one with random
version-4 uuids passed in (what the log made before); then ``--bursts`` bursts of 5
switches are committed on each, alternating, in this thread:

- CPU per burst (``time.thread_time``, the writer thread's cost, WAL checkpoints
  included) and wall time per burst, median of ``--repeats`` alternated runs;
- WAL frames (pages) written per commit, counted from the WAL file with automatic
  checkpoints off;
- baseline: a raw ``sqlite3`` commit of a one-row update with the same pragmas, in the
  same directory (the floor of any durable commit here).
"""

from __future__ import annotations

import argparse
import dataclasses
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench._common import figure, heading, result_line
from kiosk.usage import DisplayStart, UsageLog

START = DisplayStart(
    lesson_id="lesson-1",
    lesson_title="Фотосинтез",
    item_index=0,
    kind="text",
    content_hash=None,
    content_title="Слайд",
    content_source=None,
    teacher_id="t-1",
    teacher_name="Анна Петровна",
)
WALL = 1_788_000_000.0
SLOT = b"s" * 600  # a saved presentation's copy, as each switch keeps one


@dataclasses.dataclass
class Log:
    """One filled usage log and the next switch to make on it."""

    label: str
    log: UsageLog
    make_uuid: Callable[[float], str | None]
    previous: str
    n: int = 0

    def switches(self, count: int) -> None:
        """``count`` switches in one transaction: close, open, keep the presentation."""
        with self.log.transaction():
            for _ in range(count):
                self.n += 1
                at = WALL + self.n
                self.log.close(self.previous, wall_s=at, mono_s=float(self.n), reason="next")
                self.previous = self.log.open(
                    dataclasses.replace(START, item_index=self.n % 30),
                    wall_s=at,
                    mono_s=float(self.n),
                    uuid=self.make_uuid(at),
                )
                self.log.save_presentation(SLOT)


def _random_uuid(_: float) -> str:
    return str(uuid.uuid4())


def _own_uuid(_: float) -> None:
    return None  # the log makes it


def make_log(folder: Path, label: str, rows: int, random_uuids: bool) -> Log:
    log = UsageLog(folder / f"{label}.sqlite", kiosk_id="k-1", room="Каб. 12")
    log.recover()
    make = _random_uuid if random_uuids else _own_uuid
    first = log.open(START, wall_s=WALL, mono_s=0.0, uuid=make(WALL))
    filled = Log(label, log, make, first)
    for _ in range(rows // 100):
        filled.switches(100)
    log._db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return filled


def time_bursts(target: Log, bursts: int) -> tuple[float, float]:
    """CPU and wall seconds per burst of 5 switches, each committed."""
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(bursts):
        target.switches(5)
    return (time.thread_time() - cpu) / bursts, (time.perf_counter() - wall) / bursts


def frames_per_commit(target: Log, bursts: int) -> float:
    conn = target.log._db.conn
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    try:
        for _ in range(bursts):
            target.switches(5)
        wal = Path(target.log.path + "-wal")
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        return float((wal.stat().st_size - 32) / (24 + page_size) / bursts)
    finally:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA wal_autocheckpoint = 1000")


def raw_commit(folder: Path, commits: int) -> tuple[float, float]:
    """CPU and wall seconds per commit of a one-row update, as the log's pragmas."""
    conn = sqlite3.connect(folder / "raw.sqlite", isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS t (v)")
        conn.execute("INSERT INTO t VALUES (0)")
        cpu, wall = time.thread_time(), time.perf_counter()
        for i in range(commits):
            conn.execute("BEGIN")
            conn.execute("UPDATE t SET v = ?", [i])
            conn.execute("COMMIT")
        return (time.thread_time() - cpu) / commits, (time.perf_counter() - wall) / commits
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", default=None, help="log sizes, comma-separated")
    parser.add_argument("--bursts", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    sizes = [
        int(s) for s in (args.rows or ("2000" if args.quick else "2000,20000,100000")).split(",")
    ]
    bursts = args.bursts or (50 if args.quick else 300)
    repeats = args.repeats or (1 if args.quick else 3)
    values: dict[str, float | int | str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-usage-", dir="/var/tmp") as tmp:
        folder = Path(tmp)
        print(
            f"usage log commits: {bursts} bursts of 5 switches per run, {repeats} alternated "
            f"run(s), median; logs in {folder} (synchronous=FULL, WAL)"
        )
        raw = sorted(raw_commit(folder, bursts) for _ in range(repeats))[repeats // 2]
        heading("baseline: raw sqlite3 commit of a one-row update")
        figure("raw commit CPU", raw[0] * 1e3, "ms")
        figure("raw commit wall", raw[1] * 1e3, "ms")
        for rows in sizes:
            ordered = make_log(folder, f"ordered-{rows}", rows, random_uuids=False)
            random_ = make_log(folder, f"random-{rows}", rows, random_uuids=True)
            runs: dict[str, list[tuple[float, float]]] = {"ordered": [], "random": []}
            for r in range(repeats):
                pair = [("ordered", ordered), ("random", random_)]
                for name, target in pair if r % 2 == 0 else pair[::-1]:
                    runs[name].append(time_bursts(target, bursts))
            frames = {
                "ordered": frames_per_commit(ordered, bursts),
                "random": frames_per_commit(random_, bursts),
            }
            heading(f"a log of {rows} intervals")
            for name, label in (("random", "random uuids (before)"), ("ordered", "time-ordered")):
                cpu = statistics.median(c for c, _ in runs[name])
                wall = statistics.median(w for _, w in runs[name])
                figure(
                    f"{label}: CPU per burst", cpu * 1e3, "ms", f"{cpu / raw[0]:.2f}x raw commit"
                )
                figure(
                    f"{label}: wall per burst", wall * 1e3, "ms", f"{wall / raw[1]:.2f}x raw commit"
                )
                figure(f"{label}: WAL frames per commit", frames[name], "pages")
                values[f"{name}_{rows}_cpu_ms"] = cpu * 1e3
                values[f"{name}_{rows}_frames"] = frames[name]
            ratio = statistics.median(c for c, _ in runs["ordered"]) / statistics.median(
                c for c, _ in runs["random"]
            )
            figure("CPU, time-ordered / random", ratio, "x")
            values[f"cpu_ratio_{rows}"] = ratio
            ordered.log.close_db()
            random_.log.close_db()
    values["raw_cpu_ms"] = raw[0] * 1e3
    result_line("usage_log", values)


if __name__ == "__main__":
    main()
