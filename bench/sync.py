"""Synchronised start and group ``next``: skew of the panels' actual flips.

Run: ``.venv/bin/python -m bench.sync [--quick] [--kiosks N,...] [--rounds R] [--no-pinned]
[--video SECONDS]``

Each kiosk is a whole ``classcast-kiosk --headless`` process (its pyglet window renders
offscreen with EGL) whose wall clock is set off with libfaketime (offsets spread evenly
over -2 s ... +2 s; the monotonic clock is left alone, ``FAKETIME_DONT_FAKE_MONOTONIC``,
so it is one clock shared by every process). The controller here (``Group``) casts a
3-slide text lesson to all of them (a synchronised start), then sends ``next`` to the
group; each round uses a new lesson.

What is measured is each panel's own frame timing: the window logs, for every flip at
an instant, the monotonic time right after the frame was flipped and how long after
its instant that was. From these, per event:

- **skew**: the spread (max - min) of the flip times over the panels, what a class sees;
- **instant spread**: the spread of the instants each panel computed (flip time minus
  its delay): the error of the clock offsets measured with ``time_ping``;
- **flip delay**: how long after its own instant each panel flipped: timer wake-up,
  drawing and the flip, i.e. this machine's scheduling noise (2 cores shared by N
  kiosks, the controller and whatever else runs).

The same with 2 kiosks pinned to separate cores (``taskset``) isolates the floor.
Kiosks that did not flip on their own timer (the instant came late, or the item was not
ready) are counted, not timed. Requires libfaketime (``apt-get install faketime``).

``--video SECONDS``: 2 kiosks (pinned) get a lesson whose
second item is a 320x180 video that long (looped from the sample clip with libVLC's
transcoder), moved to together with a group ``next``: the video is opened ahead and
paused at its first picture, flipped to at the instant, then kept on time. Each kiosk
logs (``--verbose``) every position libVLC reports against the time played on its
monotonic clock since the instant: the drift, and the rate nudges and seeks made.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench._common import (
    BENCH_ADMIN_SECRET,
    KIOSK_CLI,
    REPO_ROOT,
    cancel_on_sigterm,
    child_env,
    figure,
    heading,
    kiosk_address,
    p50_p99,
    pair_as_admin,
    result_line,
    stop_process,
)
from bench._video720 import make_video_720p
from controller.client import ControllerIdentity
from controller.group import SYNC_PREPARE_MS, Group
from media.lesson import Lesson, LessonItem, load_lesson, make_lesson

FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
MAX_OFFSET_S = 2.0
FLIP_WAIT_S = 10.0
IDENTITY = ControllerIdentity("c-bench-sync", "Bench Teacher")
DRIFT = re.compile(r"video .* drift (-?[\d.]+) ms")
FLIP = re.compile(
    r"flipped to item (\d+) at monotonic ([\d.]+) wall ([\d.]+), (-?[\d.]+) ms after its "
    r"instant \(woke (-?[\d.]+) ms after it"
)


@dataclass(frozen=True, slots=True)
class Flip:
    item: int
    """1-based, as the log line says."""
    mono_s: float
    wall_s: float
    delay_ms: float
    """From the instant to the flip (the frame drawn and flipped)."""
    woke_ms: float
    """From the instant to the timer's call: the scheduling part of ``delay_ms``."""


@dataclass
class Kiosk:
    """One ``classcast-kiosk --headless`` child with a skewed wall clock."""

    root: Path
    offset_s: float
    cpu: int | None = None
    realtime: bool = False
    verbose: bool = False
    proc: subprocess.Popen[str] | None = None
    address: str = ""
    flips: list[Flip] = field(default_factory=list)
    unprepared: int = 0
    drifts: list[tuple[float, float]] = field(default_factory=list)
    """(monotonic time read, drift ms) of each video position reading."""
    rates: int = 0
    seeks: int = 0
    tail: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.root.mkdir(parents=True)
        config = self.root / "kiosk.toml"
        config.write_text(f'admin_secret = "{BENCH_ADMIN_SECRET}"\nmdns = false\n', "utf-8")
        pin = ["taskset", "-c", str(self.cpu)] if self.cpu is not None else []
        if self.realtime:  # SCHED_FIFO: the kernel still keeps 5 % of each core for others
            pin = ["chrt", "-f", "1", *pin]
        self.proc = subprocess.Popen(
            [
                *pin,
                *KIOSK_CLI,
                *("--headless", "--host", "127.0.0.1", "--port", "0"),
                *("--state-dir", str(self.root / "state"), "--config", str(config)),
                *("--room", f"Bench {self.offset_s:+.2f}"),
                *(["--verbose"] if self.verbose else []),
            ],
            cwd=REPO_ROOT,
            env=child_env(
                PYTHONUNBUFFERED="1",
                LD_PRELOAD=str(FAKETIME_LIB),
                FAKETIME=f"{self.offset_s:+.3f}",
                FAKETIME_DONT_FAKE_MONOTONIC="1",
            ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read_log, daemon=True).start()

    def wait_ready(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.address = kiosk_address(line, f"; its log ends: {self.tail[-5:]}")

    def _read_log(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if m := FLIP.search(line):
                self.flips.append(
                    Flip(int(m[1]), float(m[2]), float(m[3]), float(m[4]), float(m[5]))
                )
            elif "was not prepared by its instant" in line:
                self.unprepared += 1
            elif m := DRIFT.search(line):
                self.drifts.append((time.monotonic(), float(m[1])))
            elif ": rate " in line and "kiosk.video_scene" in line:
                self.rates += 1
            elif "ms off: moved to" in line:
                self.seeks += 1
            self.tail = [*self.tail[-200:], line.rstrip()]

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, terminate=True, close_pipes=False)
            self.proc = None


@dataclass
class Event:
    """One synchronised change over the group, as the panels flipped it."""

    def __str__(self) -> str:
        worst = max(self.delays_ms, default=float("nan"))
        return (
            f"skew {self.skew_ms:.2f} ms, instants {self.instant_spread_ms:.3f} ms apart, "
            f"slowest flip {worst:.2f} ms after its instant, {self.missing} missing, "
            f"{self.late} late"
        )

    skew_ms: float
    instant_spread_ms: float
    delays_ms: list[float]
    woke_ms: list[float]
    missing: int
    late: int


@dataclass
class Run:
    starts: list[Event] = field(default_factory=list)
    nexts: list[Event] = field(default_factory=list)
    leads_ms: list[int] = field(default_factory=list)
    unprepared: int = 0
    """Flips whose item was not built by the instant (shown late, once built)."""


def offsets(n: int) -> list[float]:
    if n == 1:
        return [0.0]
    return [-MAX_OFFSET_S + 2 * MAX_OFFSET_S * k / (n - 1) for k in range(n)]


def lesson(round_: int) -> Lesson:
    return make_lesson(
        f"Bench sync {round_}",
        [LessonItem("text", f"Слайд {i}", text=f"Раунд {round_}, слайд {i}") for i in range(3)],
    )


async def wait_flips(kiosks: list[Kiosk], counts: list[int], item: int) -> list[Flip | None]:
    """Each kiosk's first flip to ``item`` after its first ``counts[k]`` flips."""
    deadline = time.monotonic() + FLIP_WAIT_S
    while True:
        found = [
            next((f for f in k.flips[c:] if f.item == item), None)
            for k, c in zip(kiosks, counts, strict=True)
        ]
        if all(found) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


def event(flips: list[Flip | None], late: int) -> Event:
    seen = [f for f in flips if f is not None]
    monos = [f.mono_s for f in seen]
    instants = [f.mono_s - f.delay_ms / 1000 for f in seen]
    return Event(
        skew_ms=(max(monos) - min(monos)) * 1000 if seen else float("nan"),
        instant_spread_ms=(max(instants) - min(instants)) * 1000 if seen else float("nan"),
        delays_ms=[f.delay_ms for f in seen],
        woke_ms=[f.woke_ms for f in seen],
        missing=len(flips) - len(seen),
        late=late,
    )


async def measure(
    n: int, rounds: int, tmp: Path, *, pinned: bool = False, realtime: bool = False
) -> Run:
    cpus = os.cpu_count() or 1
    kiosks = [
        Kiosk(tmp / f"k{k}", off, cpu=(k % cpus) if pinned else None, realtime=realtime)
        for k, off in enumerate(offsets(n))
    ]
    run = Run()
    try:
        for k in kiosks:
            k.start()
        for k in kiosks:
            await asyncio.to_thread(k.wait_ready)
        creds = {k.address: await pair_as_admin(k.address, IDENTITY) for k in kiosks}
        group = await Group.connect(list(creds), IDENTITY, credentials=creds.get)
        try:
            await group.cast(lesson(-1))  # warm-up: fonts, scenes, connections
            await group.control("next")
            await asyncio.sleep(0.3)
            for r in range(rounds):
                run.leads_ms.append(await group.lead_ms(SYNC_PREPARE_MS["text"]))
                counts = [len(k.flips) for k in kiosks]
                outcomes = await group.cast(lesson(r))
                late = sum(1 for o in outcomes if o.value is not None and o.value.late_ms)
                run.starts.append(event(await wait_flips(kiosks, counts, 1), late))
                print(f"  round {r} start: {run.starts[-1]}", flush=True)
                counts = [len(k.flips) for k in kiosks]
                acks = await group.control("next")
                late = sum(1 for o in acks if o.value)
                run.nexts.append(event(await wait_flips(kiosks, counts, 2), late))
                print(f"  round {r} next:  {run.nexts[-1]}", flush=True)
                await asyncio.sleep(0.2)
        finally:
            await group.close()
    finally:
        for k in kiosks:
            k.stop()
    run.unprepared = sum(k.unprepared for k in kiosks)
    return run


def report(name: str, run: Run, values: dict[str, float | int | str]) -> None:
    for what, events in (("start", run.starts), ("next", run.nexts)):
        skew = [e.skew_ms for e in events]
        spread = [e.instant_spread_ms for e in events]
        delays = [d for e in events for d in e.delays_ms]
        missing = sum(e.missing for e in events)
        late = sum(e.late for e in events)
        s50, s99 = p50_p99(skew)
        i50, i99 = p50_p99(spread)
        d50, d99 = p50_p99(delays)
        figure(f"{name} {what} skew p50", s50, "ms")
        figure(f"{name} {what} skew p99", s99, "ms", f"max {max(skew):.2f} ms")
        figure(f"{name} {what} instant spread p99", i99, "ms", f"p50 {i50:.2f} (clock offsets)")
        w50, w99 = p50_p99([w for e in events for w in e.woke_ms])
        figure(f"{name} {what} flip delay p99", d99, "ms", f"p50 {d50:.2f} (instant to flip)")
        figure(f"{name} {what} timer wake-up p99", w99, "ms", f"p50 {w50:.2f} (scheduling)")
        figure(f"{name} {what} not flipped on time", missing + late, "", f"of {len(events)} x N")
        values[f"{name}_{what}_skew_p99_ms"] = s99
        values[f"{name}_{what}_spread_p99_ms"] = i99
        values[f"{name}_{what}_delay_p99_ms"] = d99
        values[f"{name}_{what}_woke_p99_ms"] = w99
        values[f"{name}_{what}_missed"] = missing + late
    l50, l99 = p50_p99([float(x) for x in run.leads_ms])
    figure(f"{name} lead chosen", l50, "ms", f"p99 {l99:.0f} ms")
    figure(f"{name} items not built by their instant", run.unprepared, "")


async def measure_video(seconds: float, tmp: Path) -> list[Kiosk]:
    """Two pinned kiosks play one video from one instant for ``seconds``."""
    await asyncio.to_thread(tmp.mkdir, parents=True)
    video = await asyncio.to_thread(
        make_video_720p, tmp / "long.mp4", repeat=math.ceil(seconds / 2) + 2, size=(320, 180)
    )
    [item] = load_lesson(video).items
    film = make_lesson(
        "Bench sync video",
        [LessonItem("text", "Перед фильмом", text="Сейчас начнётся фильм"), item],
    )
    cpus = os.cpu_count() or 1
    kiosks = [
        Kiosk(tmp / f"k{k}", off, cpu=k % cpus, verbose=True) for k, off in enumerate(offsets(2))
    ]
    try:
        for k in kiosks:
            k.start()
        for k in kiosks:
            await asyncio.to_thread(k.wait_ready)
        creds = {k.address: await pair_as_admin(k.address, IDENTITY) for k in kiosks}
        group = await Group.connect(list(creds), IDENTITY, credentials=creds.get)
        try:
            await group.cast(film)
            counts = [len(k.flips) for k in kiosks]
            await group.control("next")
            flips = await wait_flips(kiosks, counts, 2)
            print(f"  flip to the video: {event(flips, 0)}", flush=True)
            await asyncio.sleep(seconds)
            await group.control("stop")
        finally:
            await group.close()
    finally:
        for k in kiosks:
            k.stop()
    return kiosks


def report_video(kiosks: list[Kiosk], seconds: float, values: dict[str, float | int | str]) -> None:
    for n, k in enumerate(kiosks):
        drifts = [d for _, d in k.drifts]
        if not drifts:
            figure(f"video kiosk {n} drift readings", 0, "", "none (no video played?)")
            continue
        later = [abs(d) for t, d in k.drifts if t >= k.drifts[-1][0] - seconds / 2]
        _, d99 = p50_p99([abs(d) for d in drifts])
        _, l99 = p50_p99(later)
        median = sorted(drifts)[len(drifts) // 2]
        figure(f"video kiosk {n} drift median", median, "ms", "libVLC's position lags a little")
        figure(f"video kiosk {n} |drift| p99", d99, "ms", f"max {max(map(abs, drifts)):.1f} ms")
        figure(f"video kiosk {n} |drift| p99, second half", l99, "ms")
        figure(f"video kiosk {n} last drift", drifts[-1], "ms", f"{len(drifts)} readings")
        figure(f"video kiosk {n} corrections", k.rates + k.seeks, "", f"{k.seeks} seeks")
        values[f"video{n}_drift_p99_ms"] = d99
        values[f"video{n}_drift_last_ms"] = drifts[-1]
        values[f"video{n}_seeks"] = k.seeks
    if all(k.drifts for k in kiosks):
        # Both drifts are against the one monotonic clock: their difference is the skew.
        a, b = kiosks[0].drifts, kiosks[1].drifts
        pairs = [
            abs(da - next(db for tb, db in reversed(b) if tb <= ta))
            for ta, da in a
            if ta >= b[0][0]
        ]
        if pairs:
            _, p99 = p50_p99(pairs)
            figure("video skew between the kiosks p99", p99, "ms", "from their drift readings")
            values["video_skew_p99_ms"] = p99


def uptime() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


async def main_async(sizes: list[int], rounds: int, pinned: bool, video_s: float | None) -> None:
    cancel_on_sigterm()
    if not FAKETIME_LIB.exists():  # noqa: ASYNC240 (before anything starts)
        raise SystemExit(f"libfaketime is missing ({FAKETIME_LIB}): apt-get install faketime")
    print(
        f"sync: kiosks as processes, wall clocks -{MAX_OFFSET_S:g} ... +{MAX_OFFSET_S:g} s "
        f"(libfaketime), {rounds} rounds of start + next; {os.cpu_count()} CPUs; "
        f"load average {uptime()}"
    )
    values: dict[str, float | int | str] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    try:
        for n in sizes:
            heading(f"{n} kiosks")
            run = await measure(n, rounds, tmp / f"n{n}")
            report(f"n{n}", run, values)
            print(f"load average after: {uptime()}")
        if pinned and shutil.which("taskset"):
            heading("2 kiosks pinned to separate cores (taskset)")
            run = await measure(2, rounds, tmp / "pinned", pinned=True)
            report("pinned2", run, values)
            print(f"load average after: {uptime()}")
            if os.geteuid() == 0 and shutil.which("chrt"):
                heading("the same at real-time priority (chrt -f 1): the machine's load removed")
                run = await measure(2, rounds, tmp / "rt", pinned=True, realtime=True)
                report("rt2", run, values)
                print(f"load average after: {uptime()}")
        if video_s:
            # Not at real-time priority: a decoding kiosk at SCHED_FIFO starves its own
            # threads on one core (and the machine's other work).
            heading(f"a video over {video_s:g} s on 2 pinned kiosks")
            kiosks = await measure_video(video_s, tmp / "video")
            report_video(kiosks, video_s, values)
            print(f"load average after: {uptime()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result_line("sync", values)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sync", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 rounds, 6 kiosks")
    parser.add_argument(
        "--kiosks", help="comma-separated group sizes (default 6,20; 0: none, with --video)"
    )
    parser.add_argument("--rounds", type=int, help="rounds of start + next (default 20)")
    parser.add_argument("--no-pinned", action="store_true", help="skip the 2 pinned kiosks")
    parser.add_argument("--video", type=float, help="also play a video this many seconds")
    args = parser.parse_args()
    default = "6" if args.quick else "6,20"
    chosen = default if args.kiosks is None else args.kiosks
    sizes = [int(x) for x in chosen.split(",") if x and int(x) > 0]
    rounds = args.rounds or (5 if args.quick else 20)
    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(main_async(sizes, rounds, not args.no_pinned, args.video))
        except asyncio.CancelledError:  # SIGTERM: children stopped, temp dir removed
            raise SystemExit(143) from None


if __name__ == "__main__":
    main()
