"""What the screen shows while a panel switches between a picture, a video and a web page, on X11.

``classcast-kiosk --windowed`` runs on a private Xvfb; a teacher's client casts the
sample lesson and switches (``goto``) between every pair of kinds: a picture, the
video and the web page (shown in a Chromium window over the panel). This process
reads the screen in the middle of the window (XGetImage on the root window, as fast as
it can, about every 1–3 ms) from each ``goto`` until the next item is on screen (and a
little after), and sorts every reading: the old item, the new one, black (at least
90 % of the sampled points near black), or anything else (a card, a blank browser
window, a half-drawn mix).

Both video outputs are measured in the same run: ``embedded`` (VLC's own output in a
child window, real panels) and ``frames`` (decoded into a GL texture). The promise is
0 black readings on every pair, and no "other" reading (the previous item stays until
the next one has its first picture). Xvfb is a software X server: timings are for this
machine, not a panel's GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import itertools
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench._common import (
    KIOSK_CLI,
    LOOPBACK,
    add_weak_option,
    child_env,
    figure,
    heading,
    hold_kiosk,
    kiosk_address,
    p50_p99,
    result_line,
    stop_process,
    weak_panel,
    xvfb,
)
from tests.xvfb import xlib

SCREEN = (1280, 720)
KINDS = {"picture": 1, "video": 5, "web": 6}
"""Sample lesson items: 02-hloroplast.png (blue, nothing black in its middle), the
video (test-pattern bars), 06-proverka.html (a cream page)."""
PAGE = (0xFF, 0xFD, 0xE7)
AFTER_S = 0.3
"""How long the screen is still read once the next item is there (a late flicker)."""
SWITCH_TIMEOUT_S = 15.0
ADMIN_SECRET = "bench-admin-secret"

Pixels = list[tuple[int, int, int]]


class Screen:
    """Reads a grid of points in the middle of the screen, with plain Xlib."""

    def __init__(self, display: str) -> None:
        x11 = xlib()
        self.x11 = x11
        self.dpy = x11.XOpenDisplay(display.encode())
        assert self.dpy, display
        self.root = x11.XDefaultRootWindow(self.dpy)
        # The 4:3 video's area on a 16:9 screen, inset: points every 40 px.
        self.box = (SCREEN[0] // 2 - 400, SCREEN[1] // 2 - 300, 800, 600)
        self.points = [(x, y) for x in range(0, 800, 40) for y in range(0, 600, 40)]

    def read(self) -> list[tuple[int, int, int]]:
        x, y, w, h = self.box
        image = self.x11.XGetImage(self.dpy, self.root, x, y, w, h, 0xFFFFFFFF, 2)
        try:
            values = [self.x11.XGetPixel(image, px, py) for px, py in self.points]
        finally:
            self.x11.XDestroyImage(image)
        return [((v >> 16) & 255, (v >> 8) & 255, v & 255) for v in values]

    def close(self) -> None:
        self.x11.XCloseDisplay(self.dpy)


def near(a: tuple[int, int, int], b: tuple[int, int, int], tolerance: int = 24) -> bool:
    return all(abs(p - q) <= tolerance for p, q in zip(a, b, strict=True))


def share(pixels: Pixels, test: object) -> float:
    assert callable(test)
    return sum(bool(test(p)) for p in pixels) / len(pixels)


def black(pixels: Pixels) -> bool:
    return share(pixels, lambda p: max(p) < 24) >= 0.9


def like(pixels: Pixels, reference: Pixels) -> bool:
    return sum(near(p, q) for p, q in zip(pixels, reference, strict=True)) >= 0.9 * len(pixels)


def is_kind(kind: str, pixels: Pixels, refs: dict[str, Pixels]) -> bool:
    """Whether ``pixels`` show the item of ``kind`` (its picture, not a card)."""
    if kind == "video":
        colourful = share(pixels, lambda p: max(p) - min(p) > 120) >= 0.5
        return colourful and not like(pixels, refs["picture"])
    return like(pixels, refs[kind])


def classify(pixels: Pixels, before: str, after: str, refs: dict[str, Pixels]) -> str:
    """``black``, ``new`` (the next item), ``old`` (the previous one) or ``other``."""
    if black(pixels):
        return "black"
    if is_kind(after, pixels, refs):
        return "new"
    if is_kind(before, pixels, refs):
        return "old"
    return "other"


@dataclass
class Found:
    """Screen readings by kind, black stretches and goto → next item times (ms)."""

    counts: dict[str, int] = field(
        default_factory=lambda: {"old": 0, "new": 0, "black": 0, "other": 0}
    )
    black_runs_ms: list[float] = field(default_factory=list)
    to_next_ms: list[float] = field(default_factory=list)


def measure(display: str, output: str, switches: int) -> dict[tuple[str, str], Found]:
    """Run a windowed kiosk with ``video_output = output``; time ``switches`` switches
    for every ordered pair of kinds."""
    tmp = Path(tempfile.mkdtemp(prefix="classcast-bench-x11-"))
    config = tmp / "kiosk.toml"
    config.write_text(
        f'admin_secret = "{ADMIN_SECRET}"\nmdns = false\nvideo_output = "{output}"\n',
        encoding="utf-8",
    )
    env = child_env(DISPLAY=display, PYTHONUNBUFFERED="1")
    env.pop("PYGLET_HEADLESS", None)
    proc = subprocess.Popen(
        [
            *KIOSK_CLI,
            "--windowed",
            *("--host", LOOPBACK, "--port", "0", "--state-dir", str(tmp / "state")),
            *("--config", str(config)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    hold_kiosk(proc.pid)
    screen = Screen(display)
    try:
        assert proc.stdout is not None
        address = kiosk_address(proc.stdout.readline())
        return asyncio.run(switch(address, screen, switches))
    finally:
        screen.close()
        stop_process(proc, terminate=True)
        shutil.rmtree(tmp, ignore_errors=True)


async def wait_for_screen(screen: Screen, check: object, what: str) -> Pixels:
    assert callable(check)
    deadline = time.perf_counter() + SWITCH_TIMEOUT_S
    while time.perf_counter() < deadline:
        pixels = screen.read()
        if check(pixels):
            return pixels
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{what} did not show in {SWITCH_TIMEOUT_S:g} s")


async def switch(address: str, screen: Screen, switches: int) -> dict[tuple[str, str], Found]:
    """Switch between every ordered pair of kinds ``switches`` times, reading the screen."""
    from controller.client import ControllerIdentity, KioskClient
    from media.lesson import load_lesson, sample_lesson_path

    results: dict[tuple[str, str], Found] = {}
    teacher = ControllerIdentity("c-bench", "Бенчмарк")
    async with await KioskClient.connect(address, teacher) as client:
        await client.pair(ADMIN_SECRET, role="admin")
        await client.cast(load_lesson(sample_lesson_path()), start_index=KINDS["picture"])
        await asyncio.sleep(1.5)
        refs = {"picture": screen.read()}
        await client.control("goto", index=KINDS["web"])
        refs["web"] = await wait_for_screen(
            screen, lambda p: share(p, lambda q: near(q, PAGE)) >= 0.5, "the web page"
        )
        await asyncio.sleep(0.5)
        refs["web"] = screen.read()
        for before, after in itertools.permutations(KINDS, 2):
            found = results.setdefault((before, after), Found())
            for _ in range(switches):
                await client.control("goto", index=KINDS[before])
                await wait_for_screen(
                    screen, lambda p, k=before: is_kind(k, p, refs), f"the {before}"
                )
                await asyncio.sleep(0.5)
                await one_switch(client, screen, KINDS[after], before, after, refs, found)
    return results


async def one_switch(
    client: object,
    screen: Screen,
    index: int,
    before: str,
    after: str,
    refs: dict[str, Pixels],
    found: Found,
) -> None:
    sent = time.perf_counter()
    task = asyncio.ensure_future(client.control("goto", index=index))  # type: ignore[attr-defined]
    black_since: float | None = None
    arrived: float | None = None
    while True:
        kind = classify(screen.read(), before, after, refs)
        now = time.perf_counter()
        found.counts[kind] += 1
        if kind == "black" and black_since is None:
            black_since = now
        elif kind != "black" and black_since is not None:
            found.black_runs_ms.append((now - black_since) * 1000)
            black_since = None
        if kind == "new" and arrived is None:
            arrived = now
            found.to_next_ms.append((now - sent) * 1000)
        if arrived is not None and now - arrived > AFTER_S:
            break
        if now - sent > SWITCH_TIMEOUT_S:
            raise RuntimeError(f"the {after} did not show in {SWITCH_TIMEOUT_S:g} s")
        await asyncio.sleep(0)  # let the control's reply through
    if black_since is not None:
        found.black_runs_ms.append((time.perf_counter() - black_since) * 1000)
    await task


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.x11_switch", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 switch per pair and output")
    parser.add_argument("--switches", type=int, help="switches per pair and output (default 3)")
    add_weak_option(parser)
    args = parser.parse_args()
    switches = args.switches or (1 if args.quick else 3)
    if shutil.which("Xvfb") is None or ctypes.util.find_library("X11") is None:
        print("no Xvfb or libX11: skipped (apt-get install xvfb)")
        return
    results: dict[str, float | int | str] = {}
    with weak_panel(args.weak), xvfb(SCREEN) as server:
        display = server.display
        for output in ("frames", "embedded"):
            by_pair = measure(display, output, switches)
            heading(
                f"{output}: every pair of kinds, {switches} switches each, screen read every ~ms"
            )
            for (before, after), found in by_pair.items():
                readings = sum(found.counts.values())
                pair = f"{before} → {after}"
                figure(f"{pair}: black readings", float(found.counts["black"]), f"of {readings}")
                figure(f"{pair}: other readings", float(found.counts["other"]), f"of {readings}")
                figure(f"{pair}: longest black", max(found.black_runs_ms, default=0.0), "ms")
                p50, _ = p50_p99(found.to_next_ms)
                figure(f"{pair}: goto → on screen p50", p50, "ms")
                key = f"{output}_{before}_{after}"
                results |= {
                    f"{key}_black": found.counts["black"],
                    f"{key}_other": found.counts["other"],
                    f"{key}_readings": readings,
                }
            every = [ms for found in by_pair.values() for ms in found.to_next_ms]
            p50, p99 = p50_p99(every)
            figure("every pair: goto → on screen p50", p50, "ms")
            figure("every pair: goto → on screen p99", p99, "ms")
            results |= {f"{output}_switch_p50_ms": p50, f"{output}_switch_p99_ms": p99}
    result_line("x11_switch", results)


if __name__ == "__main__":
    main()
