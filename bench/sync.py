"""Synchronised start and group ``next``: skew of the panels' actual flips.

Run: ``.venv/bin/python -m bench.sync [--quick] [--kiosks N,...] [--rounds R] [--no-pinned]
[--video-minutes M [--video-kiosks N] [--video-late-ms MS] [--video-compare]] [--weak]``

``--weak``: every kiosk held to a third of one core of its own (``bench._common.weak_panel``),
as on the small computers inside boards; the set at real-time priority is left out (a CPU
quota does not hold a real-time process).

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

``--video-minutes M`` (or ``--video SECONDS``): ``--video-kiosks`` kiosks (default 2,
pinned to cores in turn) get a lesson whose second item is a 320x180 25 fps video that
long, each of its pictures showing its own number (:mod:`bench._video_counter`), moved to
together with a group ``next``: the video is opened ahead and paused at its first
picture, flipped to at the instant, then kept on time. The last kiosk resumes its video
``--video-late-ms`` late (default 200, as a slow decoder would); ``--video-compare`` adds
one more kiosk as late whose drift is corrected by seeks only, as before rate
corrections (the same run: before and after side by side). Two readings of the drift:

- **own**: what each kiosk measures and corrects (``--verbose`` log): libVLC's position,
  stamped when published, minus the time played on its monotonic clock since its start;
- **pictures** (independent): the number of the picture libVLC hands to the panel, read
  from the frame buffer as it is handed over: picture ``n`` is due ``n`` x 40 ms after
  the instant (the monotonic clock is one clock for every process here). The skew
  between two kiosks is the difference of their pictures' positions at one time.

The video's kiosks have their wall clocks set off too. libfaketime runs with
``FAKETIME_FORCE_MONOTONIC_FIX=0``: its "monotonic fix", which it turns on by itself with
this glibc, makes timed waits on the monotonic clock return at once, and under it
CPython's interpreter lock spun (a kiosk on one core paired after seconds) and libVLC's
clock went wrong (a video put back on time by a change of rate jumped back by the whole
correction, 0.1-0.6 s, when the rate returned to normal).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import (
    BENCH_ADMIN_SECRET,
    KIOSK_CLI,
    REPO_ROOT,
    add_weak_option,
    cancel_on_sigterm,
    child_env,
    figure,
    heading,
    hold_kiosk,
    kiosk_address,
    p50_p99,
    pair_as_admin,
    result_line,
    stop_process,
    weak_panel,
)
from bench._video_counter import FRAME_MS, make_counter_video
from controller.client import ControllerIdentity
from controller.group import SYNC_PREPARE_MS, Group, Outcome
from media.lesson import Lesson, LessonItem, load_lesson, make_lesson

FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
MAX_OFFSET_S = 2.0
FLIP_WAIT_S = 10.0
IDENTITY = ControllerIdentity("c-bench-sync", "Bench Teacher")
DRIFT = re.compile(r"video .* drift (-?[\d.]+) ms at monotonic ([\d.]+) \(rate ([\d.]+)\)")
PICTURE = re.compile(r"bench picture (\d+) shown at monotonic ([\d.]+)")
PROBED_KIOSK_CLI = (sys.executable, "-c", "from bench._video_counter import run_kiosk; run_kiosk()")
"""``classcast-kiosk`` with the picture probe (and the late start or seeks only)."""
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
    probe: dict[str, str] | None = None
    """Run with :data:`PROBED_KIOSK_CLI` and these extra environment variables."""
    label: str = ""
    proc: subprocess.Popen[str] | None = None
    address: str = ""
    flips: list[Flip] = field(default_factory=list)
    unprepared: int = 0
    drifts: list[tuple[float, float]] = field(default_factory=list)
    """(monotonic time libVLC published the position, drift ms) of each reading."""
    pictures: list[tuple[float, int]] = field(default_factory=list)
    """(monotonic time handed over, number) of every probed picture."""
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
                *(KIOSK_CLI if self.probe is None else PROBED_KIOSK_CLI),
                *("--headless", "--host", "127.0.0.1", "--port", "0"),
                *("--state-dir", str(self.root / "state"), "--config", str(config)),
                *("--room", f"Bench {self.offset_s:+.2f}"),
                *(["--verbose"] if self.verbose else []),
            ],
            cwd=REPO_ROOT,
            env=child_env(
                PYTHONUNBUFFERED="1",
                **self._faketime(),
                **(self.probe or {}),
            ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if not self.realtime:  # --weak: a third of a core (a CFS quota does not hold SCHED_FIFO)
            hold_kiosk(self.proc.pid)
        threading.Thread(target=self._read_log, daemon=True).start()

    def _faketime(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": str(FAKETIME_LIB),
            "FAKETIME": f"{self.offset_s:+.3f}",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            # Its "monotonic fix", on by default with this glibc, makes timed waits on
            # the monotonic clock return at once: CPython's interpreter lock then spins,
            # and a kiosk on one core answered a pairing only after seconds, or never.
            "FAKETIME_FORCE_MONOTONIC_FIX": "0",
        }

    def wait_ready(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.address = kiosk_address(line, f"; its log ends: {self.tail[-5:]}")

    def _read_log(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if m := PICTURE.search(line):
                self.pictures.append((float(m[2]), int(m[1])))
                continue
            if m := FLIP.search(line):
                self.flips.append(
                    Flip(int(m[1]), float(m[2]), float(m[3]), float(m[4]), float(m[5]))
                )
            elif "was not prepared by its instant" in line:
                self.unprepared += 1
            elif m := DRIFT.search(line):
                self.drifts.append((float(m[2]), float(m[1])))
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
                say_failed(f"round {r} start", outcomes)
                late = sum(1 for o in outcomes if o.value is not None and o.value.late_ms)
                run.starts.append(event(await wait_flips(kiosks, counts, 1), late))
                print(f"  round {r} start: {run.starts[-1]}", flush=True)
                counts = [len(k.flips) for k in kiosks]
                acks = await group.control("next")
                say_failed(f"round {r} next", acks)
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


def say_failed(what: str, outcomes: Sequence[Outcome[Any]]) -> None:
    """Print why a kiosk did not take a command (its flip will be missing)."""
    for outcome in outcomes:
        if not outcome.ok:
            print(f"  {what}: {outcome.label} refused or failed: {outcome.error}", flush=True)


def report(name: str, run: Run, values: dict[str, float | int | str]) -> None:
    for what, events in (("start", run.starts), ("next", run.nexts)):
        if not any(e.delays_ms for e in events):
            figure(f"{name} {what} flips seen", 0, "", f"of {len(events)} x N: no figures")
            values[f"{name}_{what}_missed"] = sum(e.missing for e in events)
            continue
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


async def measure_video(
    seconds: float, tmp: Path, n: int, late_ms: float, compare: bool
) -> tuple[list[Kiosk], list[float]]:
    """``n`` kiosks (the last ``late_ms`` late; with ``compare`` one more as late that
    only seeks) play one numbered video from one instant for ``seconds``; the kiosks
    and their instants (monotonic s)."""
    await asyncio.to_thread(tmp.mkdir, parents=True)
    video = await asyncio.to_thread(make_counter_video, tmp / "numbered.mkv", seconds + 30)
    [item] = load_lesson(video).items
    film = make_lesson(
        "Bench sync video",
        [LessonItem("text", "Перед фильмом", text="Сейчас начнётся фильм"), item],
    )
    late = {"BENCH_VIDEO_LATE_MS": f"{late_ms:g}"}
    probes: list[tuple[str, dict[str, str]]] = [("on time", {})] * n
    if n >= 2 and late_ms > 0:
        probes[-1] = (f"{late_ms:g} ms late", late)
    if compare:
        probes.append((f"{late_ms:g} ms late, seeks only", {**late, "BENCH_VIDEO_NO_RATE": "1"}))
    cpus = os.cpu_count() or 1
    kiosks = [
        Kiosk(tmp / f"k{k}", off, k % cpus, verbose=True, probe=env, label=label)
        for k, (off, (label, env)) in enumerate(zip(offsets(len(probes)), probes, strict=True))
    ]
    instants: list[float] = []
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
            instants = [f.mono_s - f.delay_ms / 1000 if f else math.nan for f in flips]
            ends = time.monotonic() + seconds
            while (left := ends - time.monotonic()) > 0:
                await asyncio.sleep(min(60.0, left))
                now = time.monotonic()
                skews = [f"{k.label} {skew_at(k, kiosks[0], now - 1):+.1f} ms" for k in kiosks[1:]]
                print(
                    f"  {now - (ends - seconds):5.0f} s: pictures vs kiosk 0: "
                    + ", ".join(skews)
                    + "; own drift: "
                    + ", ".join(f"{k.drifts[-1][1]:+.1f}" if k.drifts else "-" for k in kiosks),
                    flush=True,
                )
            await group.control("stop")
        finally:
            await group.close()
    finally:
        for k in kiosks:
            k.stop()
    return kiosks, instants


def picture_ms(kiosk: Kiosk, at_s: float) -> float:
    """Where ``kiosk``'s video was at ``at_s`` by its pictures (interpolated; NaN
    outside the probed span)."""
    pictures = kiosk.pictures
    k = bisect.bisect_right(pictures, (at_s, math.inf))
    if k == 0 or k == len(pictures):
        return math.nan
    (t0, n0), (t1, n1) = pictures[k - 1], pictures[k]
    if n1 < n0 or t1 - t0 > 1.0:  # a seek between them, or a gap: no straight line
        return n0 * FRAME_MS + (at_s - t0) * 1000
    return n0 * FRAME_MS + (at_s - t0) / (t1 - t0) * (n1 - n0) * FRAME_MS


def skew_at(kiosk: Kiosk, reference: Kiosk, at_s: float) -> float:
    """How far ``kiosk``'s picture is ahead of ``reference``'s at ``at_s`` (ms)."""
    return picture_ms(kiosk, at_s) - picture_ms(reference, at_s)


def report_video(
    kiosks: list[Kiosk], instants: list[float], seconds: float, values: dict[str, float | int | str]
) -> None:
    """Per kiosk, its own drift and its pictures' against the instant; then each
    kiosk's pictures against kiosk 0's: over the run and over its last minute."""
    if not all(k.pictures for k in kiosks):
        figure("video kiosks with probed pictures", sum(bool(k.pictures) for k in kiosks), "")
        return
    end = min(k.pictures[-1][0] for k in kiosks) - 1.0
    last_from = end - min(60.0, seconds / 5)
    grid = [end - seconds + 5 + 0.2 * i for i in range(int((seconds - 5) / 0.2))]
    late_grid = [t for t in grid if t >= last_from]
    print(f"  (the last minute: the final {end - last_from:.0f} s of the run)")
    for n, (k, instant) in enumerate(zip(kiosks, instants, strict=True)):
        name = f"video kiosk {n} ({k.label})"
        own = [(t, d) for t, d in k.drifts if t <= end]
        own_late = [abs(d) for t, d in own if t >= last_from]
        pictures = [(t, num * FRAME_MS - (t - instant) * 1000) for t, num in k.pictures]
        pic_late = [abs(d) for t, d in pictures if last_from <= t <= end]
        if own:
            figure(f"{name} own drift, last", own[-1][1], "ms", f"{len(own)} readings")
            if own_late:
                figure(f"{name} own |drift| max, last minute", max(own_late), "ms")
        if pic_late:
            last = [d for t, d in pictures if t <= end][-1]
            figure(f"{name} picture drift, last", last, "ms", "picture n due n x 40 ms after")
            figure(f"{name} picture |drift| max, last minute", max(pic_late), "ms")
        # libVLC's position against the picture handed over, at the readings' times.
        offset = [d - (picture_ms(k, t) - (t - instant) * 1000) for t, d in own]
        offset = [o for o in offset if not math.isnan(o)]
        if offset:
            figure(f"{name} libVLC minus picture", sorted(offset)[len(offset) // 2], "ms",
                   "median; constant per file")  # fmt: skip
        figure(f"{name} corrections", k.rates + k.seeks, "", f"{k.seeks} seeks")
        values[f"video{n}_pic_drift_last_minute_max_ms"] = max(pic_late, default=math.nan)
        values[f"video{n}_own_drift_last_minute_max_ms"] = max(own_late, default=math.nan)
        values[f"video{n}_rates"] = k.rates
        values[f"video{n}_seeks"] = k.seeks
    for n, k in enumerate(kiosks[1:], start=1):
        name = f"video skew kiosk {n} ({k.label}) vs kiosk 0"
        skews = [abs(skew_at(k, kiosks[0], t)) for t in grid]
        skews = [x for x in skews if not math.isnan(x)]
        late = [abs(skew_at(k, kiosks[0], t)) for t in late_grid]
        late = [x for x in late if not math.isnan(x)]
        if not skews or not late:
            continue
        p50, p99 = p50_p99(skews)
        l50, l99 = p50_p99(late)
        figure(f"{name} p99", p99, "ms", f"p50 {p50:.1f}, max {max(skews):.1f} ms, by pictures")
        figure(f"{name} p99, last minute", l99, "ms", f"p50 {l50:.1f}, max {max(late):.1f} ms = "
               f"{max(late) / FRAME_MS:.2f} frames")  # fmt: skip
        values[f"video{n}_skew_last_minute_p50_ms"] = l50
        values[f"video{n}_skew_p99_ms"] = p99
        values[f"video{n}_skew_last_minute_max_ms"] = max(late)


def uptime() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


@dataclass(frozen=True, slots=True)
class VideoRun:
    seconds: float
    kiosks: int = 2
    late_ms: float = 200.0
    compare: bool = False


async def main_async(
    sizes: list[int], rounds: int, pinned: bool, video: VideoRun | None, *, weak: bool = False
) -> None:
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
            if os.geteuid() == 0 and shutil.which("chrt") and not weak:
                heading("the same at real-time priority (chrt -f 1): the machine's load removed")
                run = await measure(2, rounds, tmp / "rt", pinned=True, realtime=True)
                report("rt2", run, values)
                print(f"load average after: {uptime()}")
        if video is not None:
            # Not at real-time priority: a decoding kiosk at SCHED_FIFO starves its own
            # threads on one core (and the machine's other work).
            heading(
                f"a video over {video.seconds:g} s on {video.kiosks} pinned kiosks, the last "
                f"{video.late_ms:g} ms late" + (" (+1 seeking only)" if video.compare else "")
            )
            kiosks, instants = await measure_video(
                video.seconds, tmp / "video", video.kiosks, video.late_ms, video.compare
            )
            report_video(kiosks, instants, video.seconds, values)
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
    parser.add_argument("--video-minutes", type=float, help="also play a video this many minutes")
    parser.add_argument("--video-kiosks", type=int, default=2, help="kiosks playing it (2)")
    parser.add_argument(
        "--video-late-ms", type=float, default=200.0, help="the last one resumes this late (200)"
    )
    parser.add_argument(
        "--video-compare", action="store_true", help="one more as late, correcting by seeks only"
    )
    add_weak_option(parser)
    args = parser.parse_args()
    default = "6" if args.quick else "6,20"
    chosen = default if args.kiosks is None else args.kiosks
    sizes = [int(x) for x in chosen.split(",") if x and int(x) > 0]
    rounds = args.rounds or (5 if args.quick else 20)
    video_s = args.video or (args.video_minutes or 0) * 60
    video = (
        VideoRun(video_s, args.video_kiosks, args.video_late_ms, args.video_compare)
        if video_s
        else None
    )
    with contextlib.suppress(KeyboardInterrupt), weak_panel(args.weak):
        try:
            asyncio.run(main_async(sizes, rounds, not args.no_pinned, video, weak=args.weak))
        except asyncio.CancelledError:  # SIGTERM: children stopped, temp dir removed
            raise SystemExit(143) from None


if __name__ == "__main__":
    main()
