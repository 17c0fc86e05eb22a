"""Benchmark: the panel's disk fills up during a lesson; no display interval may be lost.

Needs root: each run mounts a small tmpfs (``--disk-mb``, 32 MiB) of its own and runs a
kiosk in a child process (``python -m bench.diskfull --child STATE_DIR``: a headless
``KioskApp`` whose display writes one journal line per item shown) with its state
directory there. A controller pairs as admin and casts a lesson of timed text slides
(150 slides of 100 ms; quick: 60), which the panel steps through by itself.

- **baseline**: the lesson runs to its end on a disk with room;
- **disk full**: ``--fill-at`` seconds into the lesson a filler file takes every free
  byte of the tmpfs, so the usage log's writes fail (``SQLITE_FULL``); ``--hold`` seconds
  later the filler is deleted.

When the panel is idle again, ``controller.collect.collect`` pulls its records into a
fresh school database, repeated until every interval shown has arrived (or
``--collect-timeout`` passes): the writer retries with a growing delay, so the records
come some seconds after the space is freed. Printed per run: intervals shown (the
panel's journal lines), intervals collected, lost, duplicated, problems found by
``SchoolDb.verify`` (chain and signatures), the usage log's error lines in the journal,
and the time from freeing the space to the last record collected. Aim: 0 lost, 0
duplicated, chain intact, one error line (the failure is logged once).

Run: ``sudo .venv/bin/python -m bench.diskfull [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench._common import (
    BENCH_ADMIN_SECRET,
    REPO_ROOT,
    cancel_on_sigterm,
    child_env,
    figure,
    heading,
    kiosk_config,
    log_like_kiosk,
    result_line,
    stop_process,
    wait_ready,
)
from controller.client import ControllerIdentity, Credentials, KioskClient
from controller.collect import collect
from controller.schooldb import SchoolDb
from media.lesson import LessonItem, make_lesson

IDENTITY = ControllerIdentity("c-bench-diskfull", "Bench")
SHOWING = re.compile(r"showing \d+/\d+ ")
"""What the headless display writes to the journal for each item it shows."""
JOURNAL_LINES = 6
"""The usage log's journal lines (warnings and errors) printed per run, at most."""


@dataclass(frozen=True, slots=True)
class Run:
    """What one run measured."""

    shown: int
    collected: int
    duplicated: int
    problems: int
    log_errors: int
    shown_while_failing: int
    fill_s: float | None
    free_to_collected_s: float | None
    journal: list[str]

    @property
    def lost(self) -> int:
        return max(0, self.shown - (self.collected - self.duplicated))


# --------------------------------------------------------------------------- the disk


@contextmanager
def small_disk(path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` MiB at ``path``, unmounted afterwards."""
    path.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path)],
        check=True,
        capture_output=True,
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill(path: Path) -> None:
    """Write ``path`` until its filesystem has not one byte left."""
    block = b"\0" * (256 * 1024)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    return
                block = block[: len(block) // 2]
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- the kiosk child


def child(state_dir: Path) -> None:
    """Run a headless kiosk on loopback until stdin closes (the parent is done)."""
    from kiosk.app import KioskApp
    from kiosk.headless import HeadlessDisplay

    log_like_kiosk()

    async def main() -> None:
        config = kiosk_config(state_dir, room="Каб. диск")
        app = KioskApp(config, display=HeadlessDisplay())
        await app.start()
        print("READY " + json.dumps({"address": app.address}), flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
        await app.stop()

    asyncio.run(main())


@contextmanager
def kiosk_child(state_dir: Path, journal: Path) -> Iterator[str]:
    """Start the kiosk child; yields its address; stops it (stdin closed) afterwards."""
    with journal.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.diskfull", "--child", str(state_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=REPO_ROOT,
            env=child_env(),
        )
        try:
            assert proc.stdout is not None
            yield str(wait_ready(proc.stdout, f"the kiosk (see {journal})")["address"])
        finally:
            stop_process(proc)


# --------------------------------------------------------------------------- one run


async def run(args: argparse.Namespace, *, full: bool) -> Run:
    slides = args.slides
    lesson = make_lesson(
        "Заполненный диск",
        [
            LessonItem(
                kind="text", title=f"Слайд {i + 1}", text=f"{i + 1}", duration_ms=args.slide_ms
            )
            for i in range(slides)
        ],
    )
    with tempfile.TemporaryDirectory(prefix="bench-diskfull-") as tmp:
        root = Path(tmp)
        journal = root / "journal.log"
        with (
            small_disk(root / "disk", args.disk_mb) as disk,
            kiosk_child(disk / "kiosk", journal) as address,
        ):
            async with await KioskClient.connect(address, IDENTITY) as client:
                creds: Credentials = await client.pair(BENCH_ADMIN_SECRET, role="admin")
                await client.cast(lesson)
                cast_at = time.monotonic()
                fill_s = freed_at = None
                if full:
                    await asyncio.sleep(args.fill_at)
                    started = time.monotonic()
                    await asyncio.to_thread(fill, disk / "filler")
                    fill_s = time.monotonic() - started
                    await asyncio.sleep(args.hold)
                    (disk / "filler").unlink()
                    freed_at = time.monotonic()
                end = cast_at + slides * args.slide_ms / 1000 + 30
                while (await client.status()).state != "idle":
                    if time.monotonic() > end:
                        raise RuntimeError("the lesson did not end")
                    await asyncio.sleep(0.2)
            shown = sum(1 for line in journal.read_text().splitlines() if SHOWING.search(line))
            db = SchoolDb(root / "school.sqlite")
            try:
                deadline = time.monotonic() + args.collect_timeout
                while True:
                    result = await collect(db, [address], IDENTITY, lambda _a: creds)
                    if result.failed:
                        raise RuntimeError(f"collection failed: {result.failed[0].error}")
                    collected = db.record_count()
                    if collected >= shown or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.5)
                collected_at = time.monotonic()
                rows = db.db.execute("SELECT item_index FROM plays").fetchall()
                counts = Counter(int(row[0]) for row in rows)
                duplicated = sum(n - 1 for n in counts.values())
                problems = len(db.verify())
            finally:
                db.close()
        lines = journal.read_text().splitlines()
    usage_lines = [line for line in lines if "usage" in line and not line.startswith("INFO")]
    failing, shown_while_failing = False, 0
    for line in lines:
        if "usage_writer" in line and "cannot write" in line:
            failing = True
        elif "usage_writer" in line and "written again" in line:
            failing = False
        elif failing and SHOWING.search(line):
            shown_while_failing += 1
    return Run(
        shown=shown,
        collected=collected,
        duplicated=duplicated,
        problems=problems,
        log_errors=sum(1 for line in usage_lines if line.startswith("ERROR")),
        shown_while_failing=shown_while_failing,
        fill_s=fill_s,
        free_to_collected_s=None if freed_at is None else collected_at - freed_at,
        journal=usage_lines,
    )


def report(name: str, result: Run) -> None:
    heading(name)
    figure("intervals shown", result.shown, "")
    figure("of which shown while usage writes failed", result.shown_while_failing, "")
    figure("intervals collected", result.collected, "")
    figure("lost", result.lost, "")
    figure("duplicated", result.duplicated, "")
    figure("chain/signature problems (SchoolDb.verify)", result.problems, "")
    figure("usage log ERROR lines in the journal", result.log_errors, "")
    if result.fill_s is not None:
        figure("filling the disk took", result.fill_s, "s")
    if result.free_to_collected_s is not None:
        figure(
            "space freed -> every record collected",
            result.free_to_collected_s,
            "s",
            "includes the rest of the lesson",
        )
    for line in result.journal[:JOURNAL_LINES]:
        print(f"    journal: {line[:150]}")
    if len(result.journal) > JOURNAL_LINES:
        print(f"    journal: ... {len(result.journal) - JOURNAL_LINES} more lines")


async def main(args: argparse.Namespace) -> None:
    cancel_on_sigterm()
    base = await run(args, full=False)
    report("baseline: the same lesson, disk with room", base)
    full = await run(args, full=True)
    report(
        f"disk full: filled {args.fill_at:g} s into the lesson, freed {args.hold:g} s later",
        full,
    )
    result_line(
        "diskfull",
        {
            "shown": full.shown,
            "shown_while_failing": full.shown_while_failing,
            "collected": full.collected,
            "lost": full.lost,
            "duplicated": full.duplicated,
            "problems": full.problems,
            "log_errors": full.log_errors,
            "baseline_lost": base.lost,
        },
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smoke run (~25 s)")
    parser.add_argument("--slides", type=int, default=None, help="slides in the lesson")
    parser.add_argument("--slide-ms", type=int, default=100, help="each slide's duration")
    parser.add_argument("--disk-mb", type=int, default=32, help="size of the kiosk's tmpfs")
    parser.add_argument("--fill-at", type=float, default=None, help="seconds before filling")
    parser.add_argument("--hold", type=float, default=None, help="seconds the disk stays full")
    parser.add_argument("--collect-timeout", type=float, default=60.0)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.slides = args.slides or (60 if args.quick else 150)
    args.fill_at = args.fill_at if args.fill_at is not None else (1.0 if args.quick else 3.0)
    args.hold = args.hold if args.hold is not None else (3.0 if args.quick else 8.0)
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.child is not None:
        child(arguments.child)
    elif os.geteuid() != 0:
        sys.exit("bench.diskfull mounts a small tmpfs: run it as root")
    else:
        asyncio.run(main(arguments))
