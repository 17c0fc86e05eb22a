"""Benchmark: ``kill -9`` a kiosk at random moments during lessons, restart it, collect.

One ``classcast-kiosk --headless`` child process (its real offscreen window) on one state
directory, restarted after every kill. A controller paired as admin drives lessons of
solid-colour picture slides, most of them timed (they advance by themselves), with
random controls (next, prev, goto, blank, unblank, pause, play, stop) and new casts when
a lesson ends; at a random moment the kiosk gets SIGKILL and is started again. After each
restart the driver checks that the kiosk reports the item it saw last (status in
``welcome``) and that the screen shows it (screenshots: the slide's colour, black when
blanked). At the end every record is collected into a school database
(:mod:`controller.collect`) and compared with the intervals the driver saw open (from the
kiosk's status events).

Run: ``.venv/bin/python -m bench.crash [--runs N] [--seed S] [--heartbeat-s S]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import io
import itertools
import json
import random
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from PIL import Image

from bench._common import (
    BENCH_ADMIN_SECRET,
    KIOSK_CLI,
    LOOPBACK,
    READY_TIMEOUT_S,
    REPO_ROOT,
    cancel_on_sigterm,
    child_env,
    figure,
    heading,
    kiosk_address,
    percentile,
    result_line,
    stop_async_process,
)
from controller.client import ControllerIdentity, Credentials, KioskClient
from controller.collect import collect
from controller.schooldb import SchoolDb
from kiosk.config import HEARTBEAT_INTERVAL_S
from media.lesson import Lesson, LessonItem, make_lesson
from protocol.errors import ClassCastError
from protocol.messages import ControlAction, StatusSnapshot

DRIVER = ControllerIdentity("c-bench-crash", "Учитель (бенчмарк)")
COLOURS = [(200, 40, 40), (40, 160, 60), (40, 70, 200), (220, 200, 40), (180, 40, 180)]
"""One solid colour per item index: a screenshot tells which item is on screen."""
RUN_S = (0.2, 2.0)
"""How long the driver acts in each run before the kill (uniform, seconds)."""
ACTION_GAP_S = (0.05, 0.5)
SCREEN_WAIT_S = 15.0
"""Longest wait for the resumed item to appear in a screenshot."""
TOLERANCE = 40
"""Per-channel colour tolerance of a screenshot's centre pixel."""
MATCH_WINDOW_S = 5.0
"""A record matches a seen interval if it started at most this long before it was seen."""
ACTIONS: list[tuple[ControlAction, int]] = [
    ("next", 5),
    ("prev", 3),
    ("goto", 3),
    ("blank", 1),
    ("unblank", 2),
    ("pause", 1),
    ("play", 2),
    ("stop", 1),
]


@dataclass(frozen=True, slots=True)
class Seen:
    """A display interval the driver saw open: an item on screen, not blanked."""

    run: int
    lesson_id: str
    index: int
    seen_s: float
    """Wall clock when the status showing it arrived."""


@dataclass(slots=True)
class Driver:
    """Follows the kiosk's status events and counts the intervals they show."""

    seen: list[Seen] = field(default_factory=list)
    last: StatusSnapshot | None = None
    open_key: tuple[str, int] | None = None
    run: int = 0

    def observe(self, status: StatusSnapshot) -> None:
        self.last = status
        key = None
        if status.state in ("playing", "paused") and not status.blanked and status.lesson_id:
            key = (status.lesson_id, status.index)
        if key is not None and key != self.open_key:
            self.seen.append(Seen(self.run, key[0], key[1], time.time()))
        self.open_key = key

    def restarted(self, run: int) -> None:
        """A new process: whatever it shows is a new interval."""
        self.run = run
        self.open_key = None


@dataclass(slots=True)
class Restart:
    run: int
    expected: StatusSnapshot | None
    got: StatusSnapshot
    status_s: float
    screen_s: float | None
    same: bool


def colour_pngs(folder: Path) -> list[LessonItem]:
    items = []
    for index, colour in enumerate(COLOURS):
        path = folder / f"colour{index}.png"
        Image.new("RGB", (160, 90), colour).save(path)
        data = path.read_bytes()
        items.append(
            LessonItem(
                kind="image",
                title=f"Цвет {index + 1}",
                path=path,
                sha256=hashlib.sha256(data).hexdigest(),
                size_bytes=len(data),
            )
        )
    return items


def new_lesson(number: int, slides: list[LessonItem], rng: random.Random) -> Lesson:
    """A lesson of the colour slides, most of them timed, with a title of its own."""
    items = []
    for slide in slides:
        duration = None if rng.random() < 0.25 else rng.randint(300, 1500)
        items.append(dataclasses.replace(slide, duration_ms=duration))
    return make_lesson(f"Урок {number}", items)


class Kiosk:
    """The kiosk child process, restarted on one state directory."""

    def __init__(self, root: Path, heartbeat_s: float) -> None:
        self.state = root / "state"
        self.config = root / "kiosk.toml"
        self.config.write_text(
            f'admin_secret = "{BENCH_ADMIN_SECRET}"\nmdns = false\nheartbeat_s = {heartbeat_s}\n',
            encoding="utf-8",
        )
        self.journal = root / "journal.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> tuple[str, float]:
        """Start the kiosk; returns its address and the monotonic time of the start."""
        with self.journal.open("ab") as journal:
            started = time.monotonic()
            self.proc = await asyncio.create_subprocess_exec(
                *KIOSK_CLI,
                *("--headless", "--host", LOOPBACK, "--port", "0"),
                *("--state-dir", str(self.state), "--config", str(self.config)),
                *("--room", "Каб. 9"),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=journal,
                cwd=REPO_ROOT,
                env=child_env(PYTHONUNBUFFERED="1"),
            )
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), READY_TIMEOUT_S)).decode()
        return kiosk_address(line, f"; see {self.journal}"), started

    def kill(self) -> float:
        """SIGKILL; returns the wall clock of the kill."""
        assert self.proc is not None
        at = time.time()
        self.proc.send_signal(signal.SIGKILL)
        return at

    async def wait(self) -> None:
        if self.proc is not None:
            await self.proc.wait()
            self.proc = None

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            await stop_async_process(proc, terminate=True)


def shows(png: bytes, status: StatusSnapshot) -> bool:
    """Whether the screenshot shows what ``status`` says (the slide's colour, or black)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    pixel = image.getpixel((image.width // 2, image.height // 2))
    assert isinstance(pixel, tuple)
    want = (0, 0, 0) if status.blanked else COLOURS[status.index]
    return all(abs(int(a) - b) <= TOLERANCE for a, b in zip(pixel[:3], want, strict=True))


def same_item(expected: StatusSnapshot | None, got: StatusSnapshot) -> bool:
    """Whether the restarted kiosk shows the item the driver last saw before the kill
    (paused or blanked aside: a pause or blank in flight at the kill may differ)."""
    if expected is None or expected.state in ("idle", "loading"):
        return got.state == "idle"
    return got.state != "idle" and (got.lesson_id, got.index) == (
        expected.lesson_id,
        expected.index,
    )


async def wait_on_screen(
    client: KioskClient, driver: Driver, resumed: StatusSnapshot, started: float
) -> float | None:
    """Seconds from ``started`` until a screenshot shows the ``resumed`` item; None if
    the kiosk moved on (a short timed slide ended) before a screenshot showed it."""
    deadline = time.monotonic() + SCREEN_WAIT_S
    while True:
        png = await client.screenshot(max_width=64)
        now = driver.last
        if now is not None and same_item(resumed, now) and shows(png, resumed):
            return time.monotonic() - started
        if now is None or not same_item(resumed, now):
            return None
        if time.monotonic() > deadline:
            raise TimeoutError("the resumed item did not appear on screen")
        await asyncio.sleep(0.02)


async def act(
    client: KioskClient,
    driver: Driver,
    rng: random.Random,
    make: Callable[[], Lesson],
    killed: asyncio.Event,
) -> None:
    """Random teacher actions until the kiosk is ``killed``.

    A request in flight at the kill ends with the connection (not cancelled: the
    client's reply wait would be left pending).
    """
    while not killed.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(killed.wait(), rng.uniform(*ACTION_GAP_S))
            return
        status = driver.last
        try:
            if status is None or status.state == "idle":
                await client.cast(make())
                continue
            action = rng.choices([a for a, _ in ACTIONS], [w for _, w in ACTIONS])[0]
            if action == "goto" and status.count > 1:
                # Another item: a goto to the item shown restarts it in a new interval,
                # which its status (the same item) cannot show the driver.
                others = [i for i in range(status.count) if i != status.index]
                await client.control("goto", index=rng.choice(others))
            elif action == "goto":
                continue
            else:
                await client.control(action)
        except ClassCastError:
            pass  # the lesson ended meanwhile, or the kiosk is gone


async def run(args: argparse.Namespace) -> None:
    cancel_on_sigterm()
    rng = random.Random(args.seed)
    driver = Driver()
    restarts: list[Restart] = []
    kills: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-crash-") as tmp:
        root = Path(tmp)
        slides = colour_pngs(root)
        kiosk = Kiosk(root, args.heartbeat_s)
        lessons: list[Lesson] = []

        def make() -> Lesson:
            lessons.append(new_lesson(len(lessons) + 1, slides, rng))
            return lessons[-1]

        creds: Credentials | None = None
        heading(f"{args.runs} kills (heartbeat_s = {args.heartbeat_s:g}); state in {kiosk.state}")
        try:
            for number in range(args.runs + 1):
                expected = driver.last
                driver.restarted(number)
                address, started = await kiosk.start()
                client = await KioskClient.connect(address, DRIVER, credentials=creds)
                if creds is None:
                    creds = await client.pair(BENCH_ADMIN_SECRET, role="admin")
                try:
                    assert client.welcome is not None
                    got = client.welcome.status
                    status_s = time.monotonic() - started
                    client.on_status = driver.observe
                    driver.observe(got)
                    screen_s = None
                    if got.state != "idle":
                        screen_s = await wait_on_screen(client, driver, got, started)
                    if number:
                        restarts.append(
                            Restart(
                                number, expected, got, status_s, screen_s, same_item(expected, got)
                            )
                        )
                    if number == args.runs:  # the last start: end the lesson, then collect
                        if got.state != "idle":
                            await client.control("stop")
                        break
                    killed = asyncio.Event()
                    actions = asyncio.create_task(act(client, driver, rng, make, killed))
                    await asyncio.sleep(rng.uniform(*RUN_S))
                    kills.append(kiosk.kill())
                    killed.set()
                    await kiosk.wait()
                    await actions
                finally:
                    with contextlib.suppress(ClassCastError, OSError):
                        await asyncio.wait_for(client.close(), 2)
                if (number + 1) % 20 == 0:
                    print(f"  {number + 1} kills", flush=True)
            db = SchoolDb(root / "school.db")
            collected = await collect(db, [address], DRIVER, lambda a: creds)
            again = await collect(db, [address], DRIVER, lambda a: creds)
            problems = db.verify()
            rows = db.query(
                "SELECT uuid, lesson_id, item_index, started_at, ended_at, end_reason, "
                "duration_ms FROM plays ORDER BY started_at, seq",
                [],
                action="read the records",
            )
            db.close()
        finally:
            await kiosk.stop()
        if collected.failed or again.failed:
            raise RuntimeError(f"collection failed: {collected.failed or again.failed}")
        report(args, driver.seen, rows, kills, restarts, problems == [], again.added)


def count(name: str, value: int, note: str = "") -> None:
    """Print one count on its own line (``figure`` is for measured values)."""
    print(f"  {name:<48} {value:>10d}" + (f"   ({note})" if note else ""), flush=True)


def _wall(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True, slots=True)
class Record:
    """A collected usage record, as far as the comparison needs it."""

    uuid: str
    key: tuple[str, int]
    start_s: float
    end_s: float
    reason: str


def match(seen: list[Seen], records: list[Record]) -> tuple[list[Seen], list[Record]]:
    """Pair each interval the driver saw with the unmatched record of the same item that
    started closest to when it was seen (at most ``MATCH_WINDOW_S`` before, a moment
    after); returns what is left on each side."""
    matched: set[int] = set()
    lost: list[Seen] = []
    for interval in seen:
        key = (interval.lesson_id, interval.index)
        candidates = [
            i
            for i, record in enumerate(records)
            if i not in matched
            and record.key == key
            and interval.seen_s - MATCH_WINDOW_S <= record.start_s <= interval.seen_s + 0.5
        ]
        if candidates:
            matched.add(min(candidates, key=lambda i: abs(interval.seen_s - records[i].start_s)))
        else:
            lost.append(interval)
    return lost, [r for i, r in enumerate(records) if i not in matched]


def report(
    args: argparse.Namespace,
    seen: list[Seen],
    rows: list[tuple[object, ...]],
    kills: list[float],
    restarts: list[Restart],
    chain_ok: bool,
    added_again: int,
) -> None:
    records = [
        Record(
            uuid=str(r[0]),
            key=(str(r[1]), int(str(r[2]))),
            start_s=_wall(str(r[3])),
            end_s=_wall(str(r[4])),
            reason=str(r[5]),
        )
        for r in rows
    ]
    lost, unmatched = match(seen, records)
    if args.dump is not None:
        args.dump.write_text(
            json.dumps(
                {
                    "seen": [dataclasses.astuple(x) for x in seen],
                    "records": [dataclasses.astuple(r) for r in records],
                    "kills": kills,
                    "lost": [dataclasses.astuple(x) for x in lost],
                    "unmatched": [dataclasses.astuple(r) for r in unmatched],
                },
                indent=1,
            )
        )
    # A record nobody saw is explained if it opened just before a kill (its status was
    # still on the way) and the kill closed it.
    unseen_at_kill = [
        r
        for r in unmatched
        if r.reason == "power_loss" and any(0 <= k - r.start_s <= 1.0 for k in kills)
    ]
    unexplained = len(unmatched) - len(unseen_at_kill)
    overlaps = sum(1 for a, b in itertools.pairwise(records) if b.start_s < a.end_s - 0.002)
    twice = len(records) - len({r.uuid for r in records})
    duplicated = unexplained + overlaps + twice + added_again
    # Crash gaps: from the end of the interval a kill closed to the start of the next.
    gaps = []
    before = []
    for a, b in itertools.pairwise(records):
        if a.reason == "power_loss":
            gaps.append(b.start_s - a.end_s)
            kill = min((k for k in kills if k >= a.end_s), default=None)
            if kill is not None:
                before.append(kill - a.end_s)
    same = [r for r in restarts if r.same]
    # A restart on another item is explained if the item last seen ended (by a control
    # or its time) just before the kill: the kiosk had moved on, its status on the way.
    moved_on = [
        r
        for r in restarts
        if not r.same
        and r.expected is not None
        and any(
            rec.key == (r.expected.lesson_id, r.expected.index)
            and rec.reason != "power_loss"
            and 0 <= kills[r.run - 1] - rec.end_s <= 1.0
            for rec in records
        )
    ]
    shown_again = [r for r in same if r.got.state != "idle"]
    status_times = sorted(r.status_s for r in shown_again)
    screen_times = sorted(r.screen_s for r in shown_again if r.screen_s is not None)

    heading("intervals")
    count("kills", len(kills))
    count("intervals shown (seen by the driver)", len(seen))
    count("records collected", len(records))
    count("lost (shown, not collected)", len(lost))
    for interval in lost:
        kill = min((k for k in kills if k >= interval.seen_s), default=None)
        if kill is not None:
            print(f"    seen {1000 * (kill - interval.seen_s):.0f} ms before a kill", flush=True)
    count("duplicated (twice, overlapping, or unexplained)", duplicated)
    count("collected, opened just before a kill, unseen", len(unseen_at_kill))
    count("added by a second collection", added_again)
    print(f"  {'chain verifies':<48} {'yes' if chain_ok else 'NO':>10}", flush=True)
    heading("restarts")
    count("came back as last seen", len(same), f"of {len(restarts)}")
    count("  on an item (the others idle, as before)", len(shown_again))
    count(
        "  timed slide ended before a screenshot showed it",
        sum(1 for r in shown_again if r.screen_s is None),
    )
    count(
        "  paused or blanked otherwise than last seen",
        sum(
            1
            for r in same
            if r.expected is not None
            and (r.expected.state, r.expected.blanked) != (r.got.state, r.got.blanked)
        ),
    )
    count("came back on a change made just before the kill", len(moved_on))
    for r in restarts:
        if not r.same and r not in moved_on:
            exp = r.expected
            print(
                f"  run {r.run}: last seen {exp and (exp.state, exp.index, exp.blanked)}, "
                f"came back {(r.got.state, r.got.index, r.got.blanked)}",
                flush=True,
            )
    if status_times and screen_times:
        for name, values in (
            ("start → same item reported (status)", status_times),
            ("start → same item on screen (screenshot)", screen_times),
        ):
            figure(f"{name} p50", percentile(values, 0.5), "s")
            figure(f"{name} p99", percentile(values, 0.99), "s")
            figure(f"{name} max", values[-1], "s")
    if gaps:
        gaps.sort()
        before.sort()
        figure("gap killed → resumed interval p50", percentile(gaps, 0.5), "s")
        figure("gap killed → resumed interval max", gaps[-1], "s")
        if before:
            figure(
                "  of which last heartbeat → kill, max",
                before[-1],
                "s",
                f"heartbeat_s = {args.heartbeat_s:g}",
            )
    nan = float("nan")
    result_line(
        "crash",
        {
            "kills": len(kills),
            "shown": len(seen),
            "collected": len(records),
            "lost": len(lost),
            "duplicated": duplicated,
            "unseen_at_kill": len(unseen_at_kill),
            "chain": "yes" if chain_ok else "no",
            "same_item": f"{len(same)}/{len(restarts)}",
            "moved_on_at_kill": len(moved_on),
            "screen_p50_s": percentile(screen_times, 0.5) if screen_times else nan,
            "screen_p99_s": percentile(screen_times, 0.99) if screen_times else nan,
            "screen_max_s": screen_times[-1] if screen_times else nan,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="kills (default 200)")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    parser.add_argument(
        "--heartbeat-s",
        type=float,
        default=HEARTBEAT_INTERVAL_S,
        help=f"the kiosk's heartbeat_s (default {HEARTBEAT_INTERVAL_S:g})",
    )
    parser.add_argument("--dump", type=Path, default=None, help="write the raw data here (JSON)")
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
