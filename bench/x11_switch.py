"""What the screen shows while a panel switches from a picture to a video, on X11.

``classcast-kiosk --windowed`` runs on a private Xvfb; a teacher's client casts the
sample lesson and alternates ``goto`` between the first picture and the video. This
process reads the screen in the middle of the window (XGetImage on the root window,
as fast as it can, about every 1–3 ms) from each ``goto`` until the video's picture is
there, and sorts every reading: the old picture, the video, black (at least 90 % of
the sampled points near black), or anything else (a half-drawn mix).

Both video outputs are measured in the same run: ``embedded`` (VLC's own output in a
child window, real panels) and ``frames`` (decoded into a GL texture). The baseline
is the ``frames`` path, which the window draws itself and which has no black frame by
construction (the previous scene stays until the first frame). Xvfb is a software X
server: timings are for this machine, not a panel's GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench._common import (
    KIOSK_CLI,
    LOOPBACK,
    child_env,
    figure,
    heading,
    kiosk_address,
    p50_p99,
    result_line,
    stop_process,
    xvfb,
)

SCREEN = (1280, 720)
VIDEO_INDEX = 5
PICTURE_INDEX = 1  # 02-hloroplast.png: a blue picture, nothing black in its middle
ADMIN_SECRET = "bench-admin-secret"


class Screen:
    """Reads a grid of points in the middle of the screen, with plain Xlib."""

    def __init__(self, display: str) -> None:
        x11 = ctypes.CDLL(ctypes.util.find_library("X11"))
        x11.XOpenDisplay.restype = ctypes.c_void_p
        x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x11.XDefaultRootWindow.restype = ctypes.c_ulong
        x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        int_, uint, ulong = ctypes.c_int, ctypes.c_uint, ctypes.c_ulong
        x11.XGetImage.restype = ctypes.c_void_p
        x11.XGetImage.argtypes = [ctypes.c_void_p, ulong, int_, int_, uint, uint, ulong, int_]
        x11.XGetPixel.restype = ctypes.c_ulong
        x11.XGetPixel.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        x11.XDestroyImage.argtypes = [ctypes.c_void_p]
        x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
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


def classify(pixels: list[tuple[int, int, int]], picture: list[tuple[int, int, int]]) -> str:
    black = sum(max(p) < 24 for p in pixels)
    if black >= 0.9 * len(pixels):
        return "black"
    same = sum(near(p, q) for p, q in zip(pixels, picture, strict=True))
    if same >= 0.9 * len(pixels):
        return "picture"
    colourful = sum(max(p) - min(p) > 120 for p in pixels)
    if colourful >= 0.5 * len(pixels) and same < 0.2 * len(pixels):
        return "video"
    return "mixed"


@dataclass
class Found:
    """Screen readings by kind, black stretches and goto → video times (ms)."""

    counts: dict[str, int] = field(
        default_factory=lambda: {"picture": 0, "video": 0, "black": 0, "mixed": 0}
    )
    black_runs_ms: list[float] = field(default_factory=list)
    to_video_ms: list[float] = field(default_factory=list)


def measure(display: str, output: str, switches: int) -> Found:
    """Run a windowed kiosk with ``video_output = output`` and time ``switches`` switches."""
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
    screen = Screen(display)
    try:
        assert proc.stdout is not None
        address = kiosk_address(proc.stdout.readline())
        return asyncio.run(switch(address, screen, switches))
    finally:
        screen.close()
        stop_process(proc, terminate=True)
        shutil.rmtree(tmp, ignore_errors=True)


async def switch(address: str, screen: Screen, switches: int) -> Found:
    """Alternate picture → video ``switches`` times, reading the screen meanwhile."""
    from controller.client import ControllerIdentity, KioskClient
    from media.lesson import load_lesson, sample_lesson_path

    found = Found()
    teacher = ControllerIdentity("c-bench", "Бенчмарк")
    async with await KioskClient.connect(address, teacher) as client:
        await client.pair(ADMIN_SECRET, role="admin")
        await client.cast(load_lesson(sample_lesson_path()), start_index=PICTURE_INDEX)
        await asyncio.sleep(1.0)
        for _ in range(switches):
            await client.control("goto", index=PICTURE_INDEX)
            await asyncio.sleep(0.6)
            picture = screen.read()
            sent = time.perf_counter()
            task = asyncio.ensure_future(client.control("goto", index=VIDEO_INDEX))
            black_since: float | None = None
            while True:
                kind = classify(screen.read(), picture)
                now = time.perf_counter()
                found.counts[kind] += 1
                if kind == "black" and black_since is None:
                    black_since = now
                elif kind != "black" and black_since is not None:
                    found.black_runs_ms.append((now - black_since) * 1000)
                    black_since = None
                if kind == "video":
                    found.to_video_ms.append((now - sent) * 1000)
                    break
                if now - sent > 10:
                    raise RuntimeError("the video did not show in 10 s")
                await asyncio.sleep(0)  # let the control's reply through
            await task
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.x11_switch", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 switches per output")
    parser.add_argument("--switches", type=int, help="switches per output (default 15)")
    args = parser.parse_args()
    switches = args.switches or (3 if args.quick else 15)
    if shutil.which("Xvfb") is None or ctypes.util.find_library("X11") is None:
        print("no Xvfb or libX11: skipped (apt-get install xvfb)")
        return
    results: dict[str, float | int | str] = {}
    with xvfb(SCREEN) as server:
        display = server.display
        for output in ("frames", "embedded"):
            found = measure(display, output, switches)
            heading(f"{output}: picture → video, {switches} switches, screen read every ~ms")
            readings = sum(found.counts.values())
            for kind in ("picture", "black", "mixed"):
                figure(f"readings showing {kind}", float(found.counts[kind]), f"of {readings}")
            figure("longest black stretch", max(found.black_runs_ms, default=0.0), "ms")
            p50, p99 = p50_p99(found.to_video_ms)
            figure("goto → video on screen p50", p50, "ms")
            figure("goto → video on screen p99", p99, "ms")
            results |= {
                f"{output}_black": found.counts["black"],
                f"{output}_mixed": found.counts["mixed"],
                f"{output}_readings": readings,
                f"{output}_to_video_p50_ms": p50,
            }
    result_line("x11_switch", results)


if __name__ == "__main__":
    main()
