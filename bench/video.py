"""CPU cost of video playback through ``VlcVideo``, 720p and 1080p: frame callbacks and
the embedded X11 output.

Test videos (``testsrc``, 30 fps, H.264, 6 s) are generated with ffmpeg into a temp
dir at run time; both sizes are skipped with a message if ffmpeg is missing. Each run
plays one video for a fixed wall time and measures process CPU time / wall time
(libVLC's threads are ours, so ``time.process_time`` counts them). Per size the modes
alternate, 3 rounds (quick: 1), and the medians are shown. The first three run here, in
one libVLC instance with ``--aout=dummy --vout=dummy``:

* baseline: ``VlcVideo(decode_only=True)``: decoding into VLC's dummy video output, no
  conversion to RV32, no callbacks;
* frames: frame callbacks (RV32 conversion into our buffers, ``on_frame``), nobody
  reading the frames;
* frames+read: as frames, plus a consumer thread calling ``latest_frame()`` for every
  new frame (the copy the window makes before its texture upload);
* embedded: ``VlcVideo(xwindow=...)``, VLC's own X11 output drawing into an X11 window
  of the video's size, as on real panels. It runs in a child process
  (``python -m bench.video --embedded-child PATH SECONDS WIDTH HEIGHT``) with
  ``DISPLAY`` set to a private Xvfb and the kiosk's libVLC arguments plus
  ``--aout=dummy --stats`` (not the headless ones), so the child's process CPU is that
  one player's alone. Measured: the child's CPU (decoding, I420→RV32 conversion,
  shared-memory ``PutImage``) and, over the same interval, the Xvfb process's CPU
  (``/proc``), because with this output the copy of every picture to the screen moves
  to the X server. Xvfb is a software X server (no GPU; it copies each picture with the
  CPU), so the X-server share is an upper bound for a real panel's GPU-backed Xorg.
  Also reported: VLC's video output module (``xcb_x11`` here) and pictures displayed
  per second. Skipped with a message without Xvfb, libX11 or VLC's X11 outputs (Debian
  ``xvfb``, ``libx11-6``, ``vlc-plugin-video-output``).

``--weak``: the embedded child, a panel's player, is held to a third of one core
(``bench._common.weak_panel``); what to read then is its pictures displayed and lost.
The first three modes run in this process and stay at full speed.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import (
    REPO_ROOT,
    Xvfb,
    add_weak_option,
    figure,
    heading,
    hold_kiosk,
    proc_cpu_s,
    result_line,
    weak_panel,
    xvfb,
)
from kiosk.video import (
    HEADLESS_VLC_ARGS,
    VlcVideo,
    configure_vlc,
    load_libvlc,
    shared_instance,
)
from media.probe import mp4_picture_size

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
SOURCE_FPS = 30
SOURCE_S = 6
MODES = ("baseline", "frames", "frames+read")
WARM_UP_S = 0.5
EMBEDDED_VLC_ARGS = ("--aout=dummy", "--stats")
"""The embedded child's additions to ``KIOSK_VLC_ARGS``: no sound card; picture counters
(``--stats``, for the displayed frame rate). ``set_xwindow`` itself selects the X11
outputs (and resets ``--avcodec-hw``: hardware decoding is probed, as on a panel)."""
XVFB_SCREEN = (1920, 1080)
CHILD_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


def make_video(directory: Path, name: str, width: int, height: int) -> Path:
    path = directory / f"{name}.mp4"
    subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-y", "-f", "lavfi"),
            *("-i", f"testsrc=size={width}x{height}:rate={SOURCE_FPS}"),
            *("-t", str(SOURCE_S), "-pix_fmt", "yuv420p", str(path)),
        ],
        check=True,
    )
    return path


class Consumer:
    """Reads every new frame, as the window would before uploading it."""

    def __init__(self, video: VlcVideo) -> None:
        self.video = video
        self.cond = threading.Condition()
        self.delivered = 0
        self.first_s = self.last_s = 0.0
        self.read = 0
        self.bytes_read = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="bench-consumer")

    def on_frame(self) -> None:
        now = time.perf_counter()
        with self.cond:
            if self.delivered == 0:
                self.first_s = now
            self.last_s = now
            self.delivered += 1
            self.cond.notify()

    def _run(self) -> None:
        seen = 0

        def wake() -> bool:
            return self.stopping or self.delivered > seen

        while True:
            with self.cond:
                self.cond.wait_for(wake)
                if self.stopping:
                    return
                seen = self.delivered
            frame = self.video.latest_frame()
            if frame is not None:
                self.read += 1
                self.bytes_read += len(frame.data)


def play(path: Path, mode: str, seconds: float) -> tuple[float, float]:
    """Play ``path`` for ``seconds``; return (CPU share of one core, frames per second).

    The CPU share counts from ``play()`` (opening included); frames per second from
    the first frame to the last.
    """
    # As the kiosk's video loader does: frames of the file's own size (see
    # media.probe.mp4_picture_size), not the decoder's 1920x1088.
    size = mp4_picture_size(path)
    video = VlcVideo(decode_only=mode == "baseline", size=size)
    consumer = Consumer(video)
    counting = mode != "baseline"
    if counting:
        video.on_frame = consumer.on_frame
    if mode == "frames+read":
        consumer.thread.start()
    error = threading.Event()
    video.on_error = lambda _e: error.set()
    try:
        video.load(path)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        video.play()
        error.wait(seconds)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if error.is_set():
            raise RuntimeError(f"libVLC could not play {path}")
        frames = consumer.delivered
        frame_span_s = consumer.last_s - consumer.first_s
    finally:
        video.close()
        if consumer.thread.is_alive():
            with consumer.cond:
                consumer.stopping = True
                consumer.cond.notify()
            consumer.thread.join()
    if not counting:
        return cpu / wall, float("nan")
    return cpu / wall, (frames - 1) / frame_span_s if frames > 1 else 0.0


# ------------------------------------------------------------------ embedded output


def vlc_x11_output() -> Path | None:
    """VLC's X11 video output plugin (``vlc-plugin-video-output``), if installed."""
    for plugin in Path("/usr/lib").glob("*/vlc/plugins/video_output/libxcb_x11_plugin.so"):
        return plugin
    return None


def embedded_skip_reason() -> str | None:
    """Why the embedded output cannot be measured here, or ``None`` if it can."""
    if shutil.which("Xvfb") is None:
        return "Xvfb not found (apt-get install xvfb)"
    if ctypes.util.find_library("X11") is None:
        return "libX11 not found (apt-get install libx11-6)"
    if vlc_x11_output() is None:
        return "VLC's X11 output not found (apt-get install vlc-plugin-video-output)"
    return None


@dataclass(frozen=True)
class EmbeddedRun:
    kiosk_share: float  # the child's CPU / wall
    xserver_share: float  # Xvfb's CPU / wall over the same interval
    displayed_fps: float  # pictures displayed per second of playback
    lost: int  # pictures the output dropped
    vout: str  # VLC's video output module, e.g. xcb_x11
    decoder: str  # "software" or the hardware decoder module

    @property
    def total_share(self) -> float:
        return self.kiosk_share + self.xserver_share


def _read_line(proc: subprocess.Popen[bytes], timeout_s: float) -> str:
    """The child's next line, or "" after ``timeout_s`` (its stdout must be unbuffered:
    a buffered reader could hold the next line while ``select`` waits for more)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    return proc.stdout.readline().decode() if ready else ""


def run_embedded(server: Xvfb, path: Path, seconds: float, width: int, height: int) -> EmbeddedRun:
    """Play ``path`` embedded in a child on ``server``; CPU of the child and of Xvfb.

    The child prints ``START`` as its measured interval begins and ``STOP`` as it ends,
    then one JSON line; Xvfb's CPU is read at both marks.

    Raises:
        RuntimeError: the child failed, or the video did not play (stderr attached).
    """
    env = {**os.environ, "DISPLAY": server.display, "PYTHONUNBUFFERED": "1"}
    env.pop("WAYLAND_DISPLAY", None)
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "bench.video", "--embedded-child", str(path)),
                *(str(seconds), str(width), str(height)),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            bufsize=0,
        )
        try:
            hold_kiosk(proc.pid)  # --weak: the panel's player on a third of a core
            marks: dict[str, tuple[float, float]] = {}
            for mark in ("START", "STOP"):
                line = _read_line(proc, CHILD_TIMEOUT_S)
                marks[mark] = time.perf_counter(), proc_cpu_s(server.pid)
                if line.strip() != mark:
                    raise RuntimeError(f"expected {mark}, got {line!r}")
            report: dict[str, Any] = json.loads(_read_line(proc, CHILD_TIMEOUT_S) or "null")
            if proc.wait(CHILD_TIMEOUT_S) != 0 or not report:
                raise RuntimeError(f"exit status {proc.returncode}")
            if not report["played"]:
                raise RuntimeError(f"the video did not play: {report}")
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
            stderr.seek(0)
            raise RuntimeError(f"embedded child on {path.name}: {e}\n{stderr.read()}") from e
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    (wall0, x0), (wall1, x1) = marks["START"], marks["STOP"]
    return EmbeddedRun(
        kiosk_share=report["cpu_s"] / report["wall_s"],
        xserver_share=(x1 - x0) / (wall1 - wall0),
        displayed_fps=report["displayed_fps"],
        lost=report["lost"],
        vout=report["vout"],
        decoder=report["decoder"],
    )


class X11Window:
    """A plain mapped X11 window on ``$DISPLAY`` (Xlib through ctypes); close it after."""

    def __init__(self, width: int, height: int) -> None:
        x11 = ctypes.CDLL(ctypes.util.find_library("X11"))
        int_, uint, ulong, ptr = ctypes.c_int, ctypes.c_uint, ctypes.c_ulong, ctypes.c_void_p
        x11.XOpenDisplay.restype = ptr
        x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x11.XDefaultRootWindow.restype = ulong
        x11.XDefaultRootWindow.argtypes = [ptr]
        x11.XCreateSimpleWindow.restype = ulong
        x11.XCreateSimpleWindow.argtypes = [ptr, ulong, int_, int_, uint, uint, uint, ulong, ulong]
        x11.XMapWindow.argtypes = [ptr, ulong]
        x11.XSync.argtypes = [ptr, int_]
        x11.XGetImage.restype = ptr
        x11.XGetImage.argtypes = [ptr, ulong, int_, int_, uint, uint, ulong, int_]
        x11.XGetPixel.restype = ulong
        x11.XGetPixel.argtypes = [ptr, int_, int_]
        x11.XDestroyImage.argtypes = [ptr]
        x11.XCloseDisplay.argtypes = [ptr]
        self.x11, self.width, self.height = x11, width, height
        self.dpy = x11.XOpenDisplay(None)
        if not self.dpy:
            raise RuntimeError(f"cannot open display {os.environ.get('DISPLAY')!r}")
        root = x11.XDefaultRootWindow(self.dpy)
        self.xid: int = x11.XCreateSimpleWindow(self.dpy, root, 0, 0, width, height, 0, 0, 0)
        x11.XMapWindow(self.dpy, self.xid)
        x11.XSync(self.dpy, 0)

    def colours_across(self) -> int:
        """Distinct colours on the middle row (``testsrc`` shows several bars there)."""
        x11 = self.x11
        image = x11.XGetImage(self.dpy, self.xid, 0, self.height // 2, self.width, 1, ~0, 2)
        if not image:
            return 0
        try:
            step = max(1, self.width // 32)
            return len({x11.XGetPixel(image, x, 0) & 0xFFFFFF for x in range(0, self.width, step)})
        finally:
            x11.XDestroyImage(image)

    def close(self) -> None:
        self.x11.XCloseDisplay(self.dpy)  # destroys the window


class VlcModules:
    """Which modules libVLC reports ``using ...`` (its log), e.g. the video output."""

    def __init__(self, log_cb_type: Any) -> None:
        """``log_cb_type``: python-vlc's ``CallbackDecorators.LogCb``."""
        self.using: dict[str, str] = {}
        libc = ctypes.CDLL(None)
        self._vsnprintf = libc.vsnprintf
        self._vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
        self._vsnprintf.argtypes += [ctypes.c_void_p]
        self.callback = log_cb_type(self._log)

    def _log(self, data: Any, level: int, ctx: Any, fmt: bytes | None, args: Any) -> None:
        if not fmt or not fmt.startswith(b"using %s module"):
            return
        text = ctypes.create_string_buffer(256)
        self._vsnprintf(text, len(text), fmt, args)
        # using vout display module "xcb_x11"
        kind, _, name = text.value.decode(errors="replace")[len("using ") :].partition(" module ")
        self.using[kind] = name.strip('"')


def embedded_child(path: Path, seconds: float, width: int, height: int) -> None:
    """The child of :func:`run_embedded`: play ``path`` embedded for ``seconds``.

    Plays into a new ``width`` x ``height`` window on ``$DISPLAY``: a warm-up (plugins
    loaded, libVLC's log read for the modules it chose) first, then the measured play;
    prints ``START``, ``STOP`` and one JSON line.
    """
    configure_vlc(EMBEDDED_VLC_ARGS)
    instance = shared_instance()
    # libVLC's log and counters, which VlcVideo does not expose: a benchmark's look
    import vlc

    modules = VlcModules(vlc.CallbackDecorators.LogCb)
    window = X11Window(width, height)
    try:
        instance.log_set(modules.callback, None)
        try:
            with VlcVideo(xwindow=window.xid) as video:
                video.load(path)
                video.play()
                time.sleep(WARM_UP_S)
        finally:
            instance.log_unset()
        video = VlcVideo(xwindow=window.xid)
        error = threading.Event()
        started = threading.Event()
        video.on_error = lambda _e: error.set()
        video.on_started = started.set
        try:
            video.load(path)
            print("START", flush=True)
            wall0, cpu0 = time.perf_counter(), time.process_time()
            video.play()
            error.wait(seconds)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            print("STOP", flush=True)
            position_ms = video.position_ms()
            stats = vlc.MediaStats()
            video._player.get_media().get_stats(stats)
            colours = window.colours_across()
        finally:
            video.close()
    finally:
        window.close()
    played = not error.is_set() and started.is_set() and position_ms > seconds * 500
    played_s = position_ms / 1000
    report = {
        "cpu_s": cpu,
        "wall_s": wall,
        "position_ms": position_ms,
        "displayed_fps": stats.displayed_pictures / played_s if played_s > 0 else 0.0,
        "lost": stats.lost_pictures,
        "colours": colours,
        "played": played and colours >= 4,
        "vout": modules.using.get("vout display", "?"),
        "decoder": modules.using.get("hw decoder", "software"),
    }
    print(json.dumps(report), flush=True)


# ----------------------------------------------------------------------------- main


def start_up() -> dict[str, float | int | str]:
    configure_vlc(HEADLESS_VLC_ARGS)
    started = time.perf_counter()
    load_libvlc()
    import_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    shared_instance()
    instance_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    VlcVideo().close()
    player_ms = (time.perf_counter() - started) * 1000
    heading("libVLC start-up")
    figure("import vlc (loads libvlc.so)", import_ms, "ms")
    figure("vlc.Instance() (first, plugin cache)", instance_ms, "ms")
    figure("VlcVideo() + close()", player_ms, "ms")
    return {"import_ms": import_ms, "instance_ms": instance_ms}


def measure_size(
    name: str, path: Path, size: tuple[int, int], seconds: float, runs: int, server: Xvfb | None
) -> dict[str, float | int | str]:
    """Alternate the modes ``runs`` times on one video; print the medians."""
    width, height = size
    heading(
        f"{name}: {width}x{height} H.264 {SOURCE_FPS} fps, {seconds:g} s per run, median of {runs}"
    )
    share: dict[str, list[float]] = {mode: [] for mode in MODES}
    fps: dict[str, list[float]] = {mode: [] for mode in MODES}
    embedded: list[EmbeddedRun] = []
    play(path, "baseline", WARM_UP_S)  # warm-up: file cache, decoder code
    for _ in range(runs):
        for mode in MODES:
            cpu, rate = play(path, mode, seconds)
            share[mode].append(cpu)
            fps[mode].append(rate)
        if server is not None:
            embedded.append(run_embedded(server, path, seconds, width, height))
    median = statistics.median
    base = median(share["baseline"])
    figure("baseline CPU (decode, dummy vout)", base * 100, "% of a core")
    for mode in ("frames", "frames+read"):
        figure(f"{mode} CPU", median(share[mode]) * 100, "% of a core")
        figure(f"{mode} CPU ratio", median(share[mode]) / base, "x baseline")
        figure(f"{mode} frames delivered", median(fps[mode]), "fps", f"source {SOURCE_FPS} fps")
    results: dict[str, float | int | str] = {
        f"cpu_base_{name}": base * 100,
        f"cpu_frames_{name}": median(share["frames+read"]) * 100,
        f"ratio_{name}": median(share["frames+read"]) / base,
        f"fps_{name}": median(fps["frames+read"]),
    }
    if embedded:
        kiosk = median(run.kiosk_share for run in embedded)
        xserver = median(run.xserver_share for run in embedded)
        total = median(run.total_share for run in embedded)
        outputs = ", ".join(sorted({f"{run.vout}, {run.decoder} decoding" for run in embedded}))
        figure("embedded CPU, kiosk process", kiosk * 100, "% of a core", outputs)
        figure("embedded CPU, X server (Xvfb)", xserver * 100, "% of a core", "upper bound")
        figure("embedded CPU, kiosk + X server", total * 100, "% of a core")
        figure("embedded CPU ratio, kiosk process", kiosk / base, "x baseline")
        figure("embedded CPU ratio, kiosk + X server", total / base, "x baseline")
        lost = max(run.lost for run in embedded)
        figure(
            "embedded frames displayed",
            median(run.displayed_fps for run in embedded),
            "fps",
            f"source {SOURCE_FPS} fps; most pictures lost in a run: {lost}",
        )
        results |= {
            f"cpu_embedded_{name}": kiosk * 100,
            f"cpu_xserver_{name}": xserver * 100,
            f"cpu_embedded_total_{name}": total * 100,
            f"ratio_embedded_{name}": kiosk / base,
            f"ratio_embedded_total_{name}": total / base,
            f"fps_embedded_{name}": median(run.displayed_fps for run in embedded),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.video", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 s per run, 1 round (a smoke run)")
    parser.add_argument("--seconds", type=float, help="wall time per run (default 5)")
    parser.add_argument("--runs", type=int, help="rounds of all modes per size (default 3)")
    parser.add_argument("--embedded-child", nargs=4, help=argparse.SUPPRESS)
    add_weak_option(parser)
    args = parser.parse_args()
    if args.embedded_child:
        path, seconds, width, height = args.embedded_child
        embedded_child(Path(path), float(seconds), int(width), int(height))
        return
    # SIGTERM as an exception, so that the Xvfb and a child are stopped on the way out
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(128 + signal.SIGTERM))
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    seconds = min(seconds, SOURCE_S - 0.5)  # stay inside the video
    runs = args.runs or (1 if args.quick else 3)

    results = start_up()
    if shutil.which("ffmpeg") is None:
        print("\nffmpeg not found: skipping 720p and 1080p (apt-get install ffmpeg)")
        result_line("video", results)
        return
    skip = embedded_skip_reason()
    if skip is not None:
        print(f"\n{skip}: skipping the embedded output (VLC drawing into an X11 window)")
    else:
        print(
            "\nembedded output: on a private Xvfb, a software X server (no GPU: it copies"
            " every picture with the CPU), so its X-server share is an upper bound for a"
            " panel's GPU-backed Xorg"
        )
    with (
        weak_panel(args.weak),
        tempfile.TemporaryDirectory(prefix="classcast-bench-video-") as tmp,
        xvfb(XVFB_SCREEN) if skip is None else nullcontext(None) as server,
    ):
        for name, (width, height) in SIZES.items():
            path = make_video(Path(tmp), name, width, height)
            results |= measure_size(name, path, (width, height), seconds, runs, server)
    result_line("video", results)


if __name__ == "__main__":
    main()
