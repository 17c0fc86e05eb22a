"""CPU cost of video playback through ``VlcVideo``'s frame callbacks, 720p and 1080p.

Test videos (``testsrc``, 30 fps, H.264, 6 s) are generated with ffmpeg into a temp
dir at run time; a size is skipped with a message if ffmpeg is missing. Each run plays
one video for a fixed wall time and measures process CPU time / wall time (libVLC's
threads are ours, so ``time.process_time`` counts them). Three runs per size,
alternating, all in one libVLC instance with ``--aout=dummy --vout=dummy``:

* baseline: ``VlcVideo(decode_only=True)``: decoding into VLC's dummy video output, no
  conversion to RV32, no callbacks;
* frames: frame callbacks (RV32 conversion into our buffers, ``on_frame``), nobody
  reading the frames;
* frames+read: as frames, plus a consumer thread calling ``latest_frame()`` for every
  new frame (the copy the window makes before its texture upload).

The embedded output (VLC drawing into an X11 window) needs a display and is not
measured here.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from bench._common import figure, heading, result_line
from kiosk.video import (
    HEADLESS_VLC_ARGS,
    VlcVideo,
    configure_vlc,
    load_libvlc,
    shared_instance,
)

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
SOURCE_FPS = 30
SOURCE_S = 6


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
    video = VlcVideo(decode_only=mode == "baseline")
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.video", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 s per run (a smoke run)")
    parser.add_argument("--seconds", type=float, help="wall time per run (default 5)")
    args = parser.parse_args()
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    seconds = min(seconds, SOURCE_S - 0.5)  # stay inside the video

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

    results: dict[str, float | int | str] = {"import_ms": import_ms, "instance_ms": instance_ms}
    if shutil.which("ffmpeg") is None:
        print("\nffmpeg not found: skipping 720p and 1080p (apt-get install ffmpeg)")
    else:
        with tempfile.TemporaryDirectory(prefix="classcast-bench-video-") as tmp:
            for name, (width, height) in SIZES.items():
                path = make_video(Path(tmp), name, width, height)
                heading(f"{name}: {width}x{height} H.264 {SOURCE_FPS} fps, {seconds:g} s per run")
                share: dict[str, float] = {}
                fps: dict[str, float] = {}
                play(path, "baseline", 0.5)  # warm-up: file cache, decoder code
                for mode in ("baseline", "frames", "frames+read"):
                    share[mode], fps[mode] = play(path, mode, seconds)
                base = share["baseline"]
                figure("baseline CPU (decode, dummy vout)", base * 100, "% of a core")
                for mode in ("frames", "frames+read"):
                    figure(f"{mode} CPU", share[mode] * 100, "% of a core")
                    figure(f"{mode} CPU ratio", share[mode] / base, "x baseline")
                    figure(f"{mode} frames delivered", fps[mode], "fps", f"source {SOURCE_FPS} fps")
                results |= {
                    f"cpu_base_{name}": base * 100,
                    f"cpu_frames_{name}": share["frames+read"] * 100,
                    f"ratio_{name}": share["frames+read"] / base,
                    f"fps_{name}": fps["frames+read"],
                }
    print(
        "\nembedded output (VLC drawing into an X11 window): not measured, needs a display"
        " (run on a panel)"
    )
    result_line("video", results)


if __name__ == "__main__":
    main()
