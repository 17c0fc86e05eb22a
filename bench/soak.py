"""Soak: a kiosk driven as a busy classroom for minutes on end; does its memory grow?

One ``classcast-kiosk --headless`` child process (its real offscreen EGL window) shows a
lesson of every kind of item: two pictures, a many-page PDF (made here, one item per
page), a Cyrillic text slide, a 720p H.264 + AAC video (a minute long, made with
libVLC's transcoder from the sample lesson's clip) and a web page (the sample
lesson's HTML quiz). A controller paired as admin walks through the lesson, one
``next`` per second to the end and ``prev`` back to the start, and between steps:

* re-casts the same lesson every ~97 s (nothing to send; the lesson starts again),
* takes a 320-px screenshot every ~31 s,
* shows and clears an announcement every ~47 s (info and alert in turn),
* collects the usage records into a school database every ~127 s (a new TLS connection
  each time, as ``classcast collect`` does).

The kiosk's RSS (``VmRSS``), open files (``/proc/PID/fd``) and threads are sampled every
``--sample-s`` seconds and printed per minute. At the end every record is collected
and the database verified. ``--kinds pdf,video`` keeps only those kinds (one kind at a
time shows which one grows); ``--pace 4`` runs every interval four times as fast.
``--x11`` runs the kiosk in a fullscreen window on a private Xvfb instead (videos
through VLC's own X11 output, web pages in a Chromium window, as on a real panel).
``--tracemalloc FILE`` starts the kiosk under :mod:`tracemalloc` and appends, every
minute, the top Python allocation sites that grew since minute 1 to ``FILE``.

Run: ``.venv/bin/python -m bench.soak [--minutes M] [--kinds K,...] [--pace P]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from bench._common import (
    BENCH_ADMIN_SECRET,
    LOOPBACK,
    READY_TIMEOUT_S,
    REPO_ROOT,
    STOP_TIMEOUT_S,
    cancel_on_sigterm,
    figure,
    heading,
    result_line,
    xvfb,
)
from bench._video720 import make_video_720p
from controller.client import ControllerIdentity, Credentials, KioskClient
from controller.collect import collect
from controller.schooldb import SchoolDb
from media.lesson import Lesson, LessonItem, load_lesson, make_lesson, sample_lesson_path
from protocol.messages import AnnouncementLevel

DRIVER = ControllerIdentity("c-bench-soak", "Учитель (бенчмарк)")
KINDS = ("image", "pdf", "text", "video", "web")
PDF_PAGES = 36
STEP_S = 1.0
RECAST_S = 97.0
SCREENSHOT_S = 31.0
ANNOUNCE_S = 47.0
COLLECT_S = 127.0
X11_SIZE = (1280, 720)
WARM_MINUTE = 3
"""Growth is counted from this minute on (caches and allocator pools are warm)."""

TEXT_SLIDE = """# Фотосинтез: итоги

Растения превращают **солнечный свет** в энергию химических связей.

- Световая фаза идёт в гранах хлоропласта
- Темновая фаза — в строме: цикл Кальвина
- Побочный продукт — **кислород**

Съешь же ещё этих мягких французских булок, да выпей чаю.
"""


# --------------------------------------------------------------------------- media


def make_pdf(path: Path, pages: int) -> None:
    """A ``pages``-page A4 PDF of text and shapes (what a manual looks like)."""
    font_path = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    try:
        font: Any = ImageFont.truetype(font_path, 28)
    except OSError:
        font = ImageFont.load_default()
    images = []
    for n in range(pages):
        page = Image.new("RGB", (1240, 1754), (255, 255, 255))
        draw = ImageDraw.Draw(page)
        draw.text((100, 100), f"Руководство, страница {n + 1}", fill=(0, 0, 0), font=font)
        for line in range(30):
            draw.text(
                (100, 180 + line * 48),
                f"Строка {line + 1}: " + "текст " * 8,
                fill=(40,) * 3,
                font=font,
            )
        draw.rectangle((800, 1500, 1100, 1650), outline=(200, 30, 30), width=6)
        images.append(page)
    images[0].save(path, save_all=True, append_images=images[1:], resolution=150)


def soak_lesson(root: Path, kinds: set[str]) -> Lesson:
    """The lesson of the kinds asked for: files from the sample lesson and made here."""
    sample = load_lesson(sample_lesson_path())
    by_kind: dict[str, list[LessonItem]] = {}
    for item in sample.items:
        by_kind.setdefault(item.kind, []).append(item)
    items: list[LessonItem] = []
    if "image" in kinds:
        items += [_timeless(i) for i in by_kind["image"][:2]]
    if "pdf" in kinds:
        pdf = root / "manual.pdf"
        make_pdf(pdf, PDF_PAGES)
        items += [_timeless(i) for i in load_lesson(pdf).items]
    if "text" in kinds:
        items.append(LessonItem("text", "Итоги", text=TEXT_SLIDE))
    if "video" in kinds:
        video = make_video_720p(root / "opyt-720p.mp4")
        items += [_timeless(i) for i in load_lesson(video).items]
    if "web" in kinds:
        items += [_timeless(i) for i in by_kind["web"]]
    if len(items) == 1:  # one kind of one item: show it twice, to have somewhere to go
        items.append(replace(items[0], title=items[0].title + " (2)"))
    return make_lesson("Долгий урок", items)


def _timeless(item: LessonItem) -> LessonItem:
    """The item without its duration: only the driver moves the lesson on."""
    return replace(item, duration_ms=None)


# --------------------------------------------------------------------------- kiosk


def proc_sample(pid: int) -> tuple[float, int, int]:
    """RSS (MB), open files and threads of process ``pid``."""
    rss_kib = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss_kib / 1024, len(os.listdir(f"/proc/{pid}/fd")), threads


class Kiosk:
    """The kiosk child process (``--tracemalloc``: under :mod:`tracemalloc`)."""

    def __init__(self, root: Path, trace: Path | None, display: str | None = None) -> None:
        self.root = root
        self.trace = trace
        self.display = display
        self.config = root / "kiosk.toml"
        self.config.write_text(
            f'admin_secret = "{BENCH_ADMIN_SECRET}"\nmdns = false\n', encoding="utf-8"
        )
        self.journal = root / "journal.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> str:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env["CLASSCAST_MDNS_INTERFACES"] = LOOPBACK
        env["PYTHONUNBUFFERED"] = "1"
        window = "--headless"
        if self.display is not None:  # a real X11 window: videos through VLC's own output
            env["DISPLAY"] = self.display
            env.pop("PYGLET_HEADLESS", None)
            window = "--fullscreen"
        child = ["-m", "bench.soak", "--kiosk-child"]
        if self.trace is not None:
            child += ["--tracemalloc", str(self.trace)]
        with self.journal.open("ab") as journal:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *child,
                "--",
                *(window, "--host", LOOPBACK, "--port", "0"),
                *("--state-dir", str(self.root / "state"), "--config", str(self.config)),
                *("--room", "Каб. 17"),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=journal,
                cwd=REPO_ROOT,
                env=env,
            )
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), READY_TIMEOUT_S)).decode()
        if not line.startswith("ready "):
            raise RuntimeError(f"the kiosk did not start: {line!r}; see {self.journal}")
        return line.split()[1].removeprefix("wss://").removesuffix("/v1")

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def kiosk_child(trace: str | None, kiosk_args: list[str]) -> None:
    """Run the kiosk CLI in this process; with ``trace``, dump tracemalloc diffs there."""
    if trace is not None:
        import tracemalloc

        tracemalloc.start(8)

        def dump() -> None:
            time.sleep(60)
            base = tracemalloc.take_snapshot()
            minute = 1
            while True:
                time.sleep(60)
                minute += 1
                snap = tracemalloc.take_snapshot()
                stats = snap.compare_to(base, "traceback")[:12]
                with open(trace, "a", encoding="utf-8") as out:
                    total = sum(s.size_diff for s in snap.compare_to(base, "filename"))
                    out.write(f"=== minute {minute}: traced {total / 1e6:+.2f} MB since minute 1\n")
                    for stat in stats:
                        out.write(
                            f"{stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+6d} blocks\n"
                        )
                        for frame in stat.traceback.format()[-8:]:
                            out.write(f"    {frame}\n")

        threading.Thread(target=dump, daemon=True).start()
    from kiosk.cli import main

    sys.argv = ["classcast-kiosk", *kiosk_args]
    main()


# --------------------------------------------------------------------------- driver


class Counters:
    def __init__(self) -> None:
        self.steps = self.casts = self.shots = self.announcements = self.collections = 0
        self.collected = 0
        self.errors: list[str] = []


async def drive(
    client: KioskClient,
    lesson: Lesson,
    address: str,
    creds: Credentials,
    db: SchoolDb,
    until: float,
    pace: float,
    counters: Counters,
) -> None:
    """Walk the lesson forth and back, with re-casts, screenshots, announcements and
    collections at their intervals, until the monotonic time ``until``."""
    start = time.monotonic()
    due = {
        "cast": start + RECAST_S / pace,
        "shot": start + SCREENSHOT_S / pace,
        "announce": start + ANNOUNCE_S / pace,
        "collect": start + COLLECT_S / pace,
    }
    index, direction = 0, 1
    announced = False
    last = len(lesson.items) - 1
    while (now := time.monotonic()) < until:
        try:
            if now >= due["cast"]:
                due["cast"] = now + RECAST_S / pace
                await client.cast(lesson)
                counters.casts += 1
                index, direction = 0, 1
            elif now >= due["shot"]:
                due["shot"] = now + SCREENSHOT_S / pace
                png = await client.screenshot(320)
                Image.open(io.BytesIO(png)).verify()
                counters.shots += 1
            elif now >= due["announce"]:
                due["announce"] = now + ANNOUNCE_S / pace
                if announced:
                    await client.clear_announcement()
                else:
                    level: AnnouncementLevel = "alert" if counters.announcements % 2 else "info"
                    await client.announce("Внимание: звонок через 5 минут", level=level)
                    counters.announcements += 1
                announced = not announced
            elif now >= due["collect"]:
                due["collect"] = now + COLLECT_S / pace
                result = await collect(db, [address], DRIVER, lambda a: creds)
                if result.failed:
                    counters.errors.append(f"collect: {result.failed[0]}")
                counters.collected += result.added
                counters.collections += 1
            if index + direction > last or index + direction < 0:
                direction = -direction
            await client.control("next" if direction > 0 else "prev")
            index += direction
            counters.steps += 1
        except Exception as exc:  # a soak reports failures, it does not stop on them
            counters.errors.append(f"{type(exc).__name__}: {exc}")
            if len(counters.errors) > 50:
                raise
        await asyncio.sleep(max(0.0, STEP_S / pace - (time.monotonic() - now)))


async def sampler(pid: int, period_s: float, samples: list[tuple[float, float, int, int]]) -> None:
    """Sample ``pid`` every ``period_s`` into ``samples``; print one line a minute."""
    start = time.monotonic()
    printed = -1
    while True:
        with contextlib.suppress(OSError):
            t = time.monotonic() - start
            samples.append((t, *proc_sample(pid)))
            if int(t // 60) > printed:
                printed = int(t // 60)
                _, rss, fds, threads = samples[-1]
                print(
                    f"  {t / 60:5.1f} min: {rss:.1f} MB, {fds} files, {threads} threads", flush=True
                )
        await asyncio.sleep(period_s)


def per_minute(
    samples: list[tuple[float, float, int, int]], minutes: int
) -> list[tuple[int, float, int, int]]:
    """The sample nearest each whole minute."""
    rows = []
    for minute in range(minutes + 1):
        t, rss, fds, threads = min(samples, key=lambda s: abs(s[0] - minute * 60))
        if abs(t - minute * 60) <= 30:
            rows.append((minute, rss, fds, threads))
    return rows


def slope_mb_per_h(samples: list[tuple[float, float, int, int]], from_s: float) -> float:
    """Least-squares slope of RSS over the samples from ``from_s`` on, in MB per hour."""
    pts = [(t, rss) for t, rss, _, _ in samples if t >= from_s]
    if len(pts) < 2:
        return 0.0
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mr = sum(r for _, r in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    return 0.0 if var == 0 else sum((t - mt) * (r - mr) for t, r in pts) / var * 3600


async def run(args: argparse.Namespace) -> None:
    cancel_on_sigterm()
    kinds = set(args.kinds.split(","))
    if unknown := kinds - set(KINDS):
        raise SystemExit(f"unknown kinds: {sorted(unknown)}; known: {', '.join(KINDS)}")
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        root = Path(tmp)
        lesson = soak_lesson(root, kinds)
        trace = Path(args.tracemalloc) if args.tracemalloc else None
        screen = contextlib.ExitStack()
        display = screen.enter_context(xvfb(X11_SIZE)).display if args.x11 else None
        kiosk = Kiosk(root, trace, display)
        heading(
            f"soak {args.minutes} min, kinds {','.join(sorted(kinds))}, "
            f"{len(lesson.items)} items, pace ×{args.pace:g}, "
            + (f"X11 window on Xvfb {display}" if display else "headless (EGL)")
        )
        address = await kiosk.start()
        assert kiosk.proc is not None
        samples: list[tuple[float, float, int, int]] = []
        sampling = asyncio.create_task(sampler(kiosk.proc.pid, args.sample_s, samples))
        counters = Counters()
        db = SchoolDb(root / "school.db")
        try:
            client = await KioskClient.connect(address, DRIVER)
            creds = await client.pair(BENCH_ADMIN_SECRET, role="admin")
            try:
                await client.cast(lesson)
                counters.casts += 1
                until = time.monotonic() + args.minutes * 60
                await drive(client, lesson, address, creds, db, until, args.pace, counters)
                await client.control("stop")
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.close(), 2)
            result = await collect(db, [address], DRIVER, lambda a: creds)
            counters.collected += result.added
            problems = db.verify()
        finally:
            sampling.cancel()
            db.close()
            await kiosk.stop()
            screen.close()
        rows = per_minute(samples, args.minutes)
        print("minute  RSS(MB)  files  threads")
        for minute, rss, fds, threads in rows:
            print(f"{minute:6d}  {rss:7.1f}  {fds:5d}  {threads:7d}", flush=True)
        warm = next((r for r in rows if r[0] == WARM_MINUTE), rows[0])
        end = rows[-1]
        growth = end[1] - warm[1]
        slope = slope_mb_per_h(samples, WARM_MINUTE * 60)
        figure(f"RSS growth, minute {warm[0]} → {end[0]}", growth, "MB")
        figure("RSS slope after warm-up", slope, "MB/h")
        figure("open files, min → max", max(r[2] for r in rows) - min(r[2] for r in rows), "")
        figure("threads, min → max", max(r[3] for r in rows) - min(r[3] for r in rows), "")
        print(
            f"steps {counters.steps}, casts {counters.casts}, screenshots {counters.shots}, "
            f"announcements {counters.announcements}, collections {counters.collections}, "
            f"records {counters.collected}, chain problems {len(problems)}, "
            f"errors {len(counters.errors)}"
        )
        for error in counters.errors[:10]:
            print(f"  error: {error}")
        result_line(
            "soak",
            {
                "kinds": ",".join(sorted(kinds)),
                "minutes": args.minutes,
                "pace": args.pace,
                "rss_start_mb": round(rows[0][1], 1),
                "rss_warm_mb": round(warm[1], 1),
                "rss_end_mb": round(end[1], 1),
                "growth_mb": round(growth, 1),
                "slope_mb_h": round(slope, 1),
                "records": counters.collected,
                "problems": len(problems),
                "errors": len(counters.errors),
            },
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=20, help="how long to drive the kiosk")
    parser.add_argument("--kinds", default=",".join(KINDS), help="item kinds in the lesson")
    parser.add_argument("--pace", type=float, default=1.0, help="run every interval P× as fast")
    parser.add_argument("--sample-s", type=float, default=10.0, help="sampling period, seconds")
    parser.add_argument("--tracemalloc", metavar="FILE", help="dump the kiosk's growth there")
    parser.add_argument(
        "--x11", action="store_true", help="a fullscreen X11 window on a private Xvfb"
    )
    parser.add_argument("--kiosk-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("kiosk_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kiosk_child:
        kiosk_child(args.tracemalloc, args.kiosk_args)
        return
    if args.tracemalloc:
        args.tracemalloc = os.path.abspath(args.tracemalloc)  # the kiosk runs elsewhere
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
