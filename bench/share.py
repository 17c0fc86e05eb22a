"""Screen sharing: glass-to-glass latency, frame rate, CPU and bitrate, and fan-out cost.

A painter process writes the wall clock (ms, as 24 black/white blocks plus an 8-bit
checksum) onto the teacher's screen (a private Xvfb) every 2 ms. ``ScreenShare`` in
this process captures that screen with mss, encodes it and sends it to a kiosk child
that draws it in a real offscreen window (EGL) of the same size; after each frame is
drawn, the kiosk reads the blocks back from its colour buffer and records
``now - painted``: the time from the teacher's screen to the panel's (before the flip).
Both clocks are this machine's.

Scenes: ``clock`` (only the blocks change: the steady latency), ``video`` (large moving
rectangles too: every picture changes everywhere), ``still`` (nothing changes after a
first paint: what an unchanging slide costs each side). Fan-out: one share to 1 and to
N kiosks without windows (their decoders are not run), sender CPU compared.

Run from the repository root::

    .venv/bin/python -m bench.share [--quick] [--seconds S] [--sizes 720,1080] [--kiosks N] [--weak]

``--weak``: the panel (and the fan-out's kiosks) held to a third of one core, as on a
board's small computer (``bench._common.weak_panel``); the sender stays at full speed.

Baselines: the fan-out ratio compares the sender's CPU for N panels with 1 panel in the
same run; latency has no baseline here (it is compared with the issue's aims and with
the figures of classroom products, which cannot run on this machine).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import ctypes
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench._common import (
    BENCH_ADMIN_SECRET,
    REPO_ROOT,
    ServerProcess,
    add_weak_option,
    child_env,
    figure,
    heading,
    hold_kiosk,
    kiosk_config,
    log_like_kiosk,
    percentile,
    proc_cpu_s,
    result_line,
    stop_process,
    wait_ready,
    weak_panel,
    xvfb,
)

SIZES = {"720": (1280, 720), "1080": (1920, 1080)}
BLOCK = 16
"""Side of one bit's block on the teacher's screen, in pixels (survives H.264 at CRF 20)."""
BITS = 32
"""24 bits of the wall clock in ms (wraps every 4.6 hours) and an 8-bit checksum."""
PAINT_EVERY_S = 0.002
UNITS = {"pct": "% of a core", "fps": "per s", "s": "kbit/s", "ms": "ms", "1s": "(1 = same)"}


SSIM_BLOCK = 8
"""SSIM is computed over non-overlapping 8×8 blocks of the grey picture (C1, C2 as in
Wang et al. 2004, for 8-bit values)."""


def ssim(a: Any, b: Any) -> float:
    """Mean SSIM of two PIL images of the same size (compared in grey)."""
    from PIL import Image, ImageMath

    x, y = a.convert("L").convert("F"), b.convert("L").convert("F")
    small = (x.width // SSIM_BLOCK, x.height // SSIM_BLOCK)

    def mean(img: Any) -> Any:
        return img.resize(small, Image.Resampling.BOX)

    def ev(fn: Any, **images: Any) -> Any:
        return ImageMath.lambda_eval(lambda v: fn(v), **images)

    mx, my = mean(x), mean(y)
    xx = mean(ev(lambda v: v["x"] * v["x"], x=x))
    yy = mean(ev(lambda v: v["y"] * v["y"], y=y))
    xy = mean(ev(lambda v: v["x"] * v["y"], x=x, y=y))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    index = ev(
        lambda v: (
            ((2 * v["mx"] * v["my"] + c1) * (2 * (v["xy"] - v["mx"] * v["my"]) + c2))
            / (
                (v["mx"] * v["mx"] + v["my"] * v["my"] + c1)
                * (v["xx"] - v["mx"] * v["mx"] + v["yy"] - v["my"] * v["my"] + c2)
            )
        ),
        mx=mx,
        my=my,
        xx=xx,
        yy=yy,
        xy=xy,
    )
    values = array.array("f", index.tobytes())  # ImageStat bins an "F" picture into 0..255
    return sum(values) / len(values)


def paint_text_slide(display: str, width: int, height: int) -> None:
    """A slide of dark text on white: DejaVu Sans, 15 lines in Cyrillic (XPutImage of a
    Pillow drawing, through the painter's rectangles: one per run of dark pixels)."""
    from PIL import Image, ImageDraw, ImageFont

    from tests.screen_painter import ScreenPainter

    image = Image.new("L", (width, height), 245)
    draw = ImageDraw.Draw(image)
    font: Any
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", max(14, height // 40))
    except OSError:
        font = ImageFont.load_default()
    line = "Фотосинтез: свет, вода и углекислый газ дают растению сахар и кислород. 123"
    step = max(18, height // 24)
    for i, y in enumerate(range(step, height - step, step)):
        draw.text((width // 20, y), line[: 40 + (i * 7) % 36], fill=20, font=font)
    p = ScreenPainter(display)
    p.fill(0, 0, width, height, 0xF5F5F5)
    pixels = image.tobytes()
    for y in range(height):
        row = pixels[y * width : (y + 1) * width]
        x = 0
        while x < width:
            if row[x] < 128:
                start = x
                while x < width and row[x] < 128:
                    x += 1
                p.fill(start, y, x - start, 1, 0x141414)
            x += 1
    p.sync()
    p.close()


def encode_code(ms: int) -> list[int]:
    value = ms & 0xFFFFFF
    checksum = (value ^ (value >> 8) ^ (value >> 16) ^ 0x5A) & 0xFF
    word = (value << 8) | checksum
    return [(word >> (BITS - 1 - i)) & 1 for i in range(BITS)]


def decode_code(bits: list[int]) -> int | None:
    word = 0
    for bit in bits:
        word = (word << 1) | bit
    value, checksum = word >> 8, word & 0xFF
    if (value ^ (value >> 8) ^ (value >> 16) ^ 0x5A) & 0xFF != checksum:
        return None
    return value


# --------------------------------------------------------------------------- painter child


def run_painter(display: str, width: int, height: int, scene: str) -> None:
    """Paint the clock (and moving rectangles for ``video``) until stdin closes."""
    from tests.screen_painter import ScreenPainter

    painter = ScreenPainter(display)
    painter.fill(0, 0, width, height, 0x202830)
    painter.sync()
    stop = threading.Event()

    def wait_eof() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_eof, daemon=True).start()
    print("READY {}", flush=True)
    rng = random.Random(1)
    n = 0
    while not stop.is_set():
        bits = encode_code(time.time_ns() // 1_000_000)
        for i, bit in enumerate(bits):
            painter.fill(i * BLOCK, 0, BLOCK, BLOCK, 0xFFFFFF if bit else 0x000000)
        if scene == "video" and n % 8 == 0:  # every ~16 ms: a new "video frame"
            for _ in range(6):
                w, h = rng.randrange(100, width // 2), rng.randrange(100, height // 2)
                x, y = rng.randrange(0, width - w), rng.randrange(BLOCK * 2, height - h)
                painter.fill(x, y, w, h, rng.randrange(0, 0xFFFFFF))
        painter.sync()
        n += 1
        time.sleep(PAINT_EVERY_S)
    painter.close()


# --------------------------------------------------------------------------- panel child


def run_panel(width: int, height: int, state_dir: Path) -> None:
    """A kiosk with a headless window of ``width``×``height`` that times what it draws."""
    os.environ["PYGLET_HEADLESS"] = "true"
    log_like_kiosk()
    import pyglet
    from pyglet import gl

    from kiosk.app import KioskApp, run_with_window
    from kiosk.scenes import IdleInfo
    from kiosk.screen_scene import ScreenLoader, ScreenScene, ScreenStream
    from kiosk.window import PygletWindow

    app = KioskApp(kiosk_config(state_dir))
    window = PygletWindow(
        app.store, IdleInfo("Bench", "Bench"), mode="headless", size=(width, height)
    )
    stream = ScreenStream(window.request_redraw)
    window.factory.register("screen", ScreenLoader(stream))
    app.service.screen = stream
    samples: list[float] = []
    shown: list[float] = []
    last_code: list[int | None] = [None]
    strip_w, strip_h = BITS * BLOCK, BLOCK
    buf = (ctypes.c_ubyte * (strip_w * strip_h * 4))()

    def hook() -> None:
        if not isinstance(window.current, ScreenScene):
            return
        now_ms = time.time_ns() // 1_000_000
        gl.glPixelStorei(gl.GL_PACK_ALIGNMENT, 1)
        gl.glReadPixels(0, height - strip_h, strip_w, strip_h, gl.GL_RGBA, gl.GL_UNSIGNED_BYTE, buf)
        row = strip_h // 2
        bits = []
        for i in range(BITS):
            at = (row * strip_w + i * BLOCK + BLOCK // 2) * 4
            bits.append(1 if buf[at] + buf[at + 1] + buf[at + 2] > 3 * 128 else 0)
        code = decode_code(bits)
        if code is None or code == last_code[0]:
            return
        last_code[0] = code
        samples.append(float((now_ms - code) & 0xFFFFFF))
        shown.append(time.monotonic())

    window.frame_hooks.append(hook)
    cpu_at: list[float] = []

    def on_ready(app: KioskApp) -> None:
        print("READY " + json.dumps({"address": app.address}), flush=True)

        def mark() -> None:  # a line on stdin: start counting CPU; EOF: stop
            sys.stdin.readline()
            cpu_at.append(time.process_time())
            samples.clear()
            shown.clear()
            sys.stdin.read()
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=mark, daemon=True).start()

    run_with_window(app, window, on_ready)
    cpu = time.process_time() - cpu_at[0] if cpu_at else 0.0
    span = shown[-1] - shown[0] if len(shown) > 1 else 0.0
    print(
        "STATS "
        + json.dumps({"latency_ms": samples, "cpu_s": cpu, "shown": len(shown), "span_s": span}),
        flush=True,
    )
    del pyglet


# --------------------------------------------------------------------------- orchestrator


class Child:
    """A child of this script (``--paint`` or ``--panel``); stdin closed to stop it."""

    def __init__(self, *args: str, display: str | None = None) -> None:
        extra = {"DISPLAY": display} if display else {}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.share", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env=child_env(**extra),
        )
        assert self.proc.stdout is not None
        try:
            if args[0] == "--panel":
                hold_kiosk(self.proc.pid)  # --weak: the panel on a third of a core
            self.info = wait_ready(self.proc.stdout, f"bench.share {args[0]}")
        except BaseException:
            stop_process(self.proc, terminate=True)
            raise

    def send_line(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self) -> dict[str, Any]:
        """Close stdin, wait, and return the ``STATS`` the child printed (if any)."""
        assert self.proc.stdout is not None
        stop_process(self.proc, close_pipes=False)
        stats: dict[str, Any] = {}
        for line in self.proc.stdout:
            if line.startswith("STATS "):
                stats = json.loads(line[len("STATS ") :])
        self.proc.stdout.close()
        return stats


async def share_for(
    display: str, addresses: list[str], seconds: float, on_started: Any = None
) -> tuple[Any, float, float]:
    """Share ``display`` to ``addresses`` for ``seconds``; (stats, sender CPU s, wall s)."""
    from controller.client import ControllerIdentity, KioskClient
    from controller.share import MssCapture, ScreenShare

    identity = ControllerIdentity("c-bench-share", "Bench")
    clients = []
    for address in addresses:
        client = await KioskClient.connect(address, identity, timeout_s=60)
        await client.pair(BENCH_ADMIN_SECRET, role="admin")
        clients.append(client)
    share = ScreenShare(MssCapture(display), clients, title="Bench")
    refused = await share.start()
    assert not refused, refused
    stop = asyncio.Event()
    runner = asyncio.create_task(share.run(stop))
    await asyncio.sleep(1.0)  # warm up: first keyframe, decoder opened
    if on_started is not None:
        on_started()
    cpu0, t0 = time.process_time(), time.monotonic()
    enc0 = (share.stats.encoded, share.stats.bytes_encoded, share.stats.captured)
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    stats = {
        "encoded": share.stats.encoded - enc0[0],
        "bytes": share.stats.bytes_encoded - enc0[1],
        "captured": share.stats.captured - enc0[2],
        "skipped": dict(share.stats.skipped),
        "encoder": share.stats.encoder,
    }
    stop.set()
    await runner
    stats["stopped"] = [(c.name, why) for c, why in share.stopped_panels()]
    await share.stop()
    for client in clients:
        await client.close()
    return stats, cpu, wall


async def text_ssim(display: str, address: str) -> float:
    """SSIM of the panel's picture against the teacher's screen 1 s after the share began
    (a still text slide: its first keyframe and nothing after)."""
    import io

    from PIL import Image

    from controller.client import ControllerIdentity, KioskClient
    from controller.share import MssCapture, ScreenShare

    client = await KioskClient.connect(address, ControllerIdentity("c-bench-ssim", "Bench"))
    await client.pair(BENCH_ADMIN_SECRET, role="admin")
    capture = MssCapture(display)
    shot = capture.grab()
    source = Image.frombytes("RGB", (shot.width, shot.height), bytes(shot.bgra), "raw", "BGRX")
    share = ScreenShare(capture, [client], title="Bench")
    await share.start()
    stop = asyncio.Event()
    runner = asyncio.create_task(share.run(stop))
    await asyncio.sleep(1.0)
    png = await client.screenshot(max_width=source.width)
    stop.set()
    await runner
    await share.stop()
    await client.close()
    panel = Image.open(io.BytesIO(png)).convert("RGB")
    if panel.size != source.size:
        panel = panel.resize(source.size)
    return ssim(source, panel)


def one_run(size_name: str, scene: str, seconds: float, tmp: Path) -> dict[str, float]:
    width, height = SIZES[size_name]
    with xvfb((width, height)) as screen:
        painter = None
        if scene == "text":
            paint_text_slide(screen.display, width, height)
        elif scene == "still":
            from tests.screen_painter import ScreenPainter

            p = ScreenPainter(screen.display)
            p.fill(0, 0, width, height, 0xF0F0F0)
            for i in range(0, height, 24):  # lines of "text"
                p.fill(80, i + 4, width - 160 - (i * 7) % 300, 10, 0x101010)
            p.sync()
            p.close()
        else:
            painter = Child("--paint", screen.display, str(width), str(height), scene)
        panel = Child("--panel", str(width), str(height), str(tmp / f"panel-{size_name}-{scene}"))
        xvfb_cpu0 = proc_cpu_s(screen.pid)
        try:
            if scene == "text":
                return {"ssim_1s": asyncio.run(text_ssim(screen.display, panel.info["address"]))}
            sender, sender_cpu, wall = asyncio.run(
                share_for(screen.display, [panel.info["address"]], seconds, panel.send_line)
            )
        finally:
            kiosk = panel.finish()
            if painter is not None:
                painter.finish()
        del xvfb_cpu0
    lat = sorted(kiosk.get("latency_ms", []))
    out = {
        "sender_cpu_pct": 100 * sender_cpu / wall,
        "kiosk_cpu_pct": 100 * kiosk["cpu_s"] / wall if kiosk else float("nan"),
        "encoded_fps": sender["encoded"] / wall,
        "captured_fps": sender["captured"] / wall,
        "kbit_s": sender["bytes"] * 8 / 1000 / wall,
    }
    if lat:
        out |= {
            "p50_ms": percentile(lat, 0.5),
            "p95_ms": percentile(lat, 0.95),
            "p99_ms": percentile(lat, 0.99),
            "shown_fps": kiosk["shown"] / kiosk["span_s"] if kiosk["span_s"] else 0.0,
            "samples": float(len(lat)),
        }
    print(f"  ({size_name}p {scene}: encoder {sender['encoder']}, skipped {sender['skipped']})")
    return out


def fanout(kiosks: int, seconds: float, tmp: Path, repeats: int = 3) -> tuple[float, float]:
    """Sender CPU % sharing a changing 1080p screen to 1 and to ``kiosks`` panels: runs
    alternate (1, N, 1, N, ...) and the median of ``repeats`` each is returned."""
    import statistics

    width, height = SIZES["1080"]
    results: dict[int, list[float]] = {1: [], kiosks: []}
    with xvfb((width, height)) as screen:
        painter = Child("--paint", screen.display, str(width), str(height), "clock")
        try:
            servers = {}
            with contextlib.ExitStack() as stack:
                for n in (1, kiosks):
                    args = ("kiosk", "--count", str(n), "--state-dir", str(tmp / f"fan-{n}"))
                    servers[n] = stack.enter_context(ServerProcess(*args))
                for _ in range(repeats):
                    for n in (1, kiosks):
                        addresses = [f"127.0.0.1:{port}" for port in servers[n].info["ports"]]
                        stats, cpu, wall = asyncio.run(
                            share_for(screen.display, addresses, seconds)
                        )
                        results[n].append(100 * cpu / wall)
                        if stats["stopped"]:
                            print(f"  (panels that stopped early: {stats['stopped']})")
        finally:
            painter.finish()
    print(f"  (runs: 1 kiosk {results[1]}, {kiosks} kiosks {results[kiosks]})")
    return statistics.median(results[1]), statistics.median(results[kiosks])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--sizes", default="720,1080")
    parser.add_argument("--kiosks", type=int, default=10)
    parser.add_argument("--paint", nargs=4, metavar=("DISPLAY", "W", "H", "SCENE"))
    parser.add_argument("--panel", nargs=3, metavar=("W", "H", "STATE_DIR"))
    add_weak_option(parser)
    args = parser.parse_args()
    if args.paint:
        display, w, h, scene = args.paint
        run_painter(display, int(w), int(h), scene)
        return
    if args.panel:
        w, h, state = args.panel
        run_panel(int(w), int(h), Path(state))
        return
    seconds = args.seconds or (3.0 if args.quick else 8.0)
    sizes = args.sizes.split(",")
    result: dict[str, float | int | str] = {}
    with weak_panel(args.weak), tempfile.TemporaryDirectory(prefix="bench-share-") as tmp_name:
        tmp = Path(tmp_name)
        for size in sizes:
            for scene in ("clock", "video", "still", "text"):
                heading(f"{size}p, {scene} screen, {seconds:g} s")
                figures = one_run(size, scene, seconds, tmp)
                for key, value in figures.items():
                    figure(key, value, UNITS.get(key.rsplit("_", 1)[-1], ""))
                    result[f"{size}_{scene}_{key}"] = value
        if args.kiosks > 1:
            heading(f"fan-out: one share to 1 and to {args.kiosks} kiosks (1080p, clock screen)")
            one, many = fanout(args.kiosks, seconds, tmp)
            figure("sender CPU, 1 kiosk", one, "%")
            figure(f"sender CPU, {args.kiosks} kiosks", many, "%")
            figure("ratio", many / one, "x", "aim ≤ 1.2")
            result |= {
                "fanout_1_cpu_pct": one,
                "fanout_n_cpu_pct": many,
                "fanout_ratio": many / one,
            }
    with contextlib.suppress(Exception):
        result_line("share", result)


if __name__ == "__main__":
    main()
