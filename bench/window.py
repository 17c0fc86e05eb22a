"""The panel window (``PygletWindow``): switch latency, CPU of a still slide, memory.

Every figure is measured in child processes (``python -m bench.window --child MODE``),
each with its own headless (EGL, offscreen) pyglet window of 1280×720, against a bare
pyglet window measured the same way in the same run:

* switch: command → flipped frame for an image switch. A thread of the child calls
  ``apply(Show)`` (as the network thread does) and the time runs until the frame is
  flipped (``glFinish``, then ``flip``). "preloaded" is the normal case (the player
  preloads the next item); "cold" loads the image on demand. Baseline: a bare window
  whose thread posts an event that swaps a sprite's pre-uploaded texture, draws and
  flips.
* still CPU: CPU seconds / wall seconds over 5 s while a slide stands (the pyglet
  loop running: ``pyglet.app.run(None)``). Baseline: a bare window showing one sprite.
* idle RSS: the kiosk window on its idle screen and on an image slide, against the bare
  window with one sprite (the same 1280×720 image). Diagnostics: the bare window with a
  sprite and one text label (what drawing any text costs: fontconfig, FreeType, the
  text shader), and a whole ``classcast-kiosk --headless`` process (websockets,
  SQLite added), also after a pairing (with any child processes).
* growth: RSS after N item switches (images, PDF pages, text, placeholders, each
  switch a fresh load) minus RSS after a warm-up of 200.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench._common import (
    BENCH_ADMIN_SECRET,
    KIOSK_CLI,
    REPO_ROOT,
    child_env,
    figure,
    heading,
    kiosk_address,
    p50_p99,
    proc_cpu_s,
    result_line,
    rss_kib,
    stop_process,
)

SIZE = (1280, 720)
STILL_S = 5.0
CHILD_ENV = {"PYGLET_HEADLESS": "true", "PYTHONUNBUFFERED": "1"}
"""What the window children run with, besides :func:`bench._common.child_env`."""


def emit(**values: Any) -> None:
    print(json.dumps(values), flush=True)


# --------------------------------------------------------------------------- children


def _exit_on_stdin_close(exit_loop: Any) -> None:
    def wait() -> None:
        sys.stdin.read()
        exit_loop()

    threading.Thread(target=wait, daemon=True).start()


def _kiosk(tmp: Path) -> tuple[Any, Any]:
    from kiosk.scenes import IdleInfo
    from kiosk.window import PygletWindow
    from media.lesson import load_lesson, sample_lesson_path
    from media.store import BlobStore

    store = BlobStore(tmp, 10**9)
    lesson = load_lesson(sample_lesson_path())
    for path in lesson.blob_paths().values():
        store.put_bytes(path.read_bytes())
    window = PygletWindow(store, IdleInfo("Школа № 5", "Каб. 12"), mode="headless", size=SIZE)
    window.set_address("wss://192.168.1.5:8765")
    window.run_pending()
    return window, lesson.manifest()


def child_kiosk_still(tmp: Path) -> None:
    from kiosk.effects import PinChanged
    from kiosk.player import Show

    window, lesson = _kiosk(tmp)
    window.apply(PinChanged("123456"))
    window.run_pending()
    gc.collect()
    idle_rss = rss_kib()
    window.apply(Show(lesson, 1, lesson.items[1]))
    window.run_pending()
    gc.collect()
    emit(idle_rss_kib=idle_rss, slide_rss_kib=rss_kib(), frames=window.frames)
    _exit_on_stdin_close(window.exit)
    window.run()
    emit(frames=window.frames)


def child_bare_still(tmp: Path, with_label: bool = False) -> None:
    import pyglet

    from media.lesson import sample_lesson_path

    window = pyglet.window.Window(*SIZE)
    image = pyglet.image.load(str(sample_lesson_path() / "02-hloroplast.png"))
    batch = pyglet.graphics.Batch()
    sprite = pyglet.sprite.Sprite(image, batch=batch)
    assert sprite.visible
    if with_label:
        label = pyglet.text.Label(
            "Каб. 12", font_name="DejaVu Sans", font_size=40, x=20, y=20, batch=batch
        )
        assert label.text
    frames = 0

    def on_draw() -> None:
        window.clear()
        batch.draw()

    window.switch_to()
    on_draw()
    window.flip()
    frames += 1
    gc.collect()
    emit(idle_rss_kib=rss_kib(), slide_rss_kib=rss_kib(), frames=frames)

    def on_close() -> bool:
        pyglet.app.exit()
        return True

    window.push_handlers(on_draw=on_draw, on_close=on_close)
    _exit_on_stdin_close(lambda: pyglet.app.platform_event_loop.post_event(window, "on_close"))
    pyglet.app.run(None)
    emit(frames=frames)


def child_kiosk_switch(tmp: Path, n: int) -> None:
    from pyglet import gl

    from kiosk.player import Preload, Show

    window, lesson = _kiosk(tmp)
    items = lesson.items[:2]
    flipped = threading.Event()
    original_flip = window.window.flip

    def flip() -> None:
        gl.glFinish()
        original_flip()
        flipped.set()

    window.window.flip = flip
    results: dict[str, list[float]] = {}

    def drive() -> None:
        try:
            for mode in ("preloaded", "cold"):
                samples = []
                for k in range(n):
                    index = k + (0 if mode == "preloaded" else 100_000)
                    item = items[k % 2]
                    if mode == "preloaded":
                        window.apply(Preload(lesson, index, item))
                        time.sleep(0.06)  # the previous item stands; the next one loads
                    else:
                        time.sleep(0.01)
                    flipped.clear()
                    t0 = time.perf_counter()
                    window.apply(Show(lesson, index, item))
                    if not flipped.wait(5):
                        raise TimeoutError("no frame")
                    samples.append(time.perf_counter() - t0)
                results[mode] = samples
        finally:
            window.exit()

    thread = threading.Thread(target=drive)
    thread.start()
    window.run()
    thread.join()
    emit(**results)


def child_bare_switch(tmp: Path, n: int) -> None:
    import pyglet
    from pyglet import gl

    from media.lesson import sample_lesson_path

    window = pyglet.window.Window(*SIZE)
    folder = sample_lesson_path()
    textures = [
        pyglet.image.load(str(folder / name)).get_texture()
        for name in ("01-list.png", "02-hloroplast.png")
    ]
    sprite = pyglet.sprite.Sprite(textures[0])
    flipped = threading.Event()

    class Bridge(pyglet.event.EventDispatcher):
        def on_swap(self, k: int) -> None:
            sprite.image = textures[k % 2]
            window.switch_to()
            window.clear()
            sprite.draw()
            gl.glFinish()
            window.flip()
            flipped.set()

    Bridge.register_event_type("on_swap")
    bridge = Bridge()
    results: list[float] = []

    def drive() -> None:
        try:
            for k in range(n):
                time.sleep(0.01)
                flipped.clear()
                t0 = time.perf_counter()
                pyglet.app.platform_event_loop.post_event(bridge, "on_swap", k)
                if not flipped.wait(5):
                    raise TimeoutError("no frame")
                results.append(time.perf_counter() - t0)
        finally:
            pyglet.app.platform_event_loop.post_event(bridge, "on_exit_loop")

    Bridge.register_event_type("on_exit_loop")
    bridge.push_handlers(on_exit_loop=lambda: pyglet.app.exit())
    thread = threading.Thread(target=drive)
    thread.start()
    pyglet.app.run(None)
    thread.join()
    emit(bare=results)


def child_kiosk_growth(tmp: Path, n: int) -> None:
    from kiosk.player import Preload, Show

    window, lesson = _kiosk(tmp)
    items = lesson.items
    warmup = 200
    samples = []
    t0 = time.perf_counter()
    for k in range(warmup + n):
        item = items[k % len(items)]
        window.apply(Show(lesson, k, item))
        nxt = items[(k + 1) % len(items)]
        window.apply(Preload(lesson, k + 1, nxt))
        window.run_pending()
        if k + 1 == warmup:
            gc.collect()
            base = rss_kib()
            t0 = time.perf_counter()
        elif k >= warmup and (k - warmup + 1) % max(1, n // 5) == 0:
            gc.collect()
            samples.append(rss_kib() - base)
    elapsed = time.perf_counter() - t0
    emit(base_kib=base, growth_kib=samples, seconds=elapsed, frames=window.frames)
    window.close()


# --------------------------------------------------------------------------- parent


def child_command(mode: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bench.window", "--child", mode, *extra]


def run_child(mode: str, *extra: str, timeout_s: float = 900) -> dict[str, Any]:
    """Run a child that prints one JSON line and exits."""
    out = subprocess.run(
        child_command(mode, *extra),
        cwd=REPO_ROOT,
        env=child_env(**CHILD_ENV),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"child {mode} failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def still_child(mode: str) -> dict[str, Any]:
    """Start a still child, measure its CPU over STILL_S, stop it."""
    proc = subprocess.Popen(
        child_command(mode),
        cwd=REPO_ROOT,
        env=child_env(**CHILD_ENV),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdin is not None
        first = json.loads(proc.stdout.readline())
        time.sleep(0.5)  # the loop has started
        cpu0, t0 = proc_cpu_s(proc.pid), time.monotonic()
        time.sleep(STILL_S)
        cpu1, t1 = proc_cpu_s(proc.pid), time.monotonic()
        proc.stdin.close()
        last = json.loads(proc.stdout.readline())
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return {
        **first,
        "cpu_share": (cpu1 - cpu0) / (t1 - t0),
        "frames_during": last["frames"] - first["frames"],
    }


def whole_kiosk_rss(tmp: Path, *, paired: bool = False) -> int:
    """RSS of a ``classcast-kiosk --headless`` process at rest, started on the state
    ``tmp`` holds (a first start in a new ``tmp``: it makes its TLS identity and keys).
    ``paired``: an admin pairs first (the real exchange), and the RSS of any child
    processes the kiosk then has is added."""
    config = tmp / "kiosk.toml"
    config.write_text(f"mdns = false\nadmin_secret = {BENCH_ADMIN_SECRET!r}\n", encoding="utf-8")
    proc = subprocess.Popen(
        [
            *KIOSK_CLI,
            *("--headless", "--host", "127.0.0.1", "--port", "0"),
            *("--state-dir", str(tmp / "state"), "--config", str(config)),
        ],
        cwd=REPO_ROOT,
        env=child_env(PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        address = kiosk_address(proc.stdout.readline())  # raises unless it listens
        if paired:
            import asyncio  # here: the window children measured above run this module too

            asyncio.run(_pair_admin(address))
        time.sleep(1.0)
        return rss_kib(proc.pid) + sum(rss_kib(child) for child in _children(proc.pid))
    finally:
        stop_process(proc, terminate=True)


async def _pair_admin(address: str) -> None:
    from controller.client import ControllerIdentity, KioskClient

    identity = ControllerIdentity("c-bench-window", "Админ")
    async with await KioskClient.connect(address, identity) as client:
        await client.pair(BENCH_ADMIN_SECRET, role="admin")


def _children(pid: int) -> list[int]:
    """The pids of ``pid``'s child processes (``/proc/PID/task/*/children``)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def idle_rss() -> dict[str, float]:
    """The idle RSS figures alone: the bare window with one sprite (the baseline), the
    kiosk window on its idle screen, the whole ``classcast-kiosk --headless`` process."""
    heading("idle RSS")
    b_rss = still_child("bare-still")["slide_rss_kib"] / 1024
    k_idle = still_child("kiosk-still")["idle_rss_kib"] / 1024
    with tempfile.TemporaryDirectory(prefix="bench-window-") as tmp:
        first = whole_kiosk_rss(Path(tmp)) / 1024
        whole = whole_kiosk_rss(Path(tmp)) / 1024
        paired = whole_kiosk_rss(Path(tmp), paired=True) / 1024
    figure("baseline: bare window + one sprite, RSS", b_rss, "MB")
    figure("kiosk window, idle screen, RSS", k_idle, "MB", f"{k_idle / b_rss:.3f}× baseline")
    figure("classcast-kiosk --headless, RSS", whole, "MB", f"{whole / b_rss:.3f}× baseline")
    figure("  the same, its very first start", first, "MB", f"{first / b_rss:.3f}× baseline")
    figure("  the same, after a pairing (with children)", paired, "MB", f"{paired / b_rss:.3f}×")
    values = {"bare_rss_mb": b_rss, "idle_rss_ratio": k_idle / b_rss, "whole_rss_mb": whole}
    values |= {"whole_rss_ratio": whole / b_rss, "first_start_rss_mb": first}
    values |= {"paired_rss_mb": paired}
    result_line("window_rss", values)
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (fewer switches)")
    parser.add_argument("--n", type=int, help="switches timed per mode")
    parser.add_argument("--switches", type=int, help="switches of the memory growth run")
    parser.add_argument(
        "--rss-only", action="store_true", help="only the idle RSS figures (about 20 s)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("child_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory(prefix="bench-window-") as tmp:
            os.environ["PYGLET_HEADLESS"] = "true"
            extra = [int(a) for a in args.child_args]
            match args.child:
                case "kiosk-still":
                    child_kiosk_still(Path(tmp))
                case "bare-still":
                    child_bare_still(Path(tmp))
                case "bare-label-still":
                    child_bare_still(Path(tmp), with_label=True)
                case "kiosk-switch":
                    child_kiosk_switch(Path(tmp), *extra)
                case "bare-switch":
                    child_bare_switch(Path(tmp), *extra)
                case "kiosk-growth":
                    child_kiosk_growth(Path(tmp), *extra)
                case _:
                    raise SystemExit(f"unknown child {args.child}")
        return

    n = args.n or (30 if args.quick else 200)
    switches = args.switches or (1000 if args.quick else 10_000)
    if args.rss_only:
        idle_rss()
        return

    heading(f"switch: command → flipped frame, {n} image switches each")
    kiosk = run_child("kiosk-switch", str(n))
    bare = run_child("bare-switch", str(n))
    pre50, pre99 = p50_p99(kiosk["preloaded"])
    cold50, cold99 = p50_p99(kiosk["cold"])
    bare50, bare99 = p50_p99(bare["bare"])
    figure("baseline: bare window, texture swap p50", bare50 * 1000, "ms")
    figure("baseline: bare window, texture swap p99", bare99 * 1000, "ms")
    figure("kiosk, preloaded item p50", pre50 * 1000, "ms", f"{pre50 / bare50:.2f}× baseline")
    figure("kiosk, preloaded item p99", pre99 * 1000, "ms", f"{pre99 / bare99:.2f}× baseline")
    figure("kiosk, cold load (decode on demand) p50", cold50 * 1000, "ms")
    figure("kiosk, cold load (decode on demand) p99", cold99 * 1000, "ms")

    heading(f"still slide: CPU over {STILL_S:.0f} s, and RSS")
    k_still = still_child("kiosk-still")
    b_still = still_child("bare-still")
    figure("baseline: bare window + one sprite, CPU", b_still["cpu_share"] * 100, "% of a core")
    figure("kiosk window, image slide, CPU", k_still["cpu_share"] * 100, "% of a core")
    figure("kiosk frames drawn while the slide stood", k_still["frames_during"], "frames")
    b_rss = b_still["slide_rss_kib"] / 1024
    k_idle = k_still["idle_rss_kib"] / 1024
    k_slide = k_still["slide_rss_kib"] / 1024
    figure("baseline: bare window + one sprite, RSS", b_rss, "MB")
    figure("kiosk window, idle screen, RSS", k_idle, "MB", f"{k_idle / b_rss:.3f}× baseline")
    figure("kiosk window, image slide, RSS", k_slide, "MB", f"{k_slide / b_rss:.3f}× baseline")
    label_rss = still_child("bare-label-still")["slide_rss_kib"] / 1024
    figure("diagnostic: bare window + sprite + one label, RSS", label_rss, "MB", "text's floor")
    with tempfile.TemporaryDirectory(prefix="bench-window-") as tmp:
        whole_kiosk_rss(Path(tmp))  # the first start makes the state a panel restarts with
        whole = whole_kiosk_rss(Path(tmp)) / 1024
    figure("diagnostic: classcast-kiosk --headless, RSS", whole, "MB", f"{whole / b_rss:.3f}×")

    heading(f"growth: RSS over {switches} item switches (after 200 of warm-up)")
    growth = run_child("kiosk-growth", str(switches))
    for i, g in enumerate(growth["growth_kib"], 1):
        figure(f"after {i * switches // len(growth['growth_kib'])} switches", g / 1024, "MB")
    figure("switches per second (load, build, draw)", switches / growth["seconds"], "/s")
    final_growth = growth["growth_kib"][-1] / 1024

    result_line(
        "window",
        {
            "switch_p50_ms": pre50 * 1000,
            "switch_p99_ms": pre99 * 1000,
            "switch_p50_ratio": pre50 / bare50,
            "cold_p50_ms": cold50 * 1000,
            "still_cpu_pct": k_still["cpu_share"] * 100,
            "bare_cpu_pct": b_still["cpu_share"] * 100,
            "idle_rss_ratio": k_idle / b_rss,
            "idle_rss_vs_label_ratio": k_idle / label_rss,
            "slide_rss_ratio": k_slide / b_rss,
            "growth_mb": final_growth,
            "switches": switches,
        },
    )


if __name__ == "__main__":
    main()
