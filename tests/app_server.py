"""The teacher's app on 127.0.0.1 for tests: a real uvicorn server in a thread, and
kiosks whose screenshots show what they display (a colour per item, black when blank,
a white square while a video is paused, grey when idle)."""

from __future__ import annotations

import asyncio
import io
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from controller.home import Home
from controller.webapp.app import AppConfig, bind, serve
from kiosk.headless import HeadlessDisplay
from media.lesson import sample_lesson_path

COLOURS = ["#c62828", "#2e7d32", "#1565c0", "#f9a825", "#6a1b9a", "#00838f", "#ef6c00"]


class PaintingDisplay(HeadlessDisplay):
    """A headless display whose screenshot paints the state it records."""

    def screenshot_png(self, max_width: int) -> bytes | None:
        width = min(max_width, 320)
        if self.blanked:
            colour = "#000000"
        elif self.index is None:
            colour = "#808080"
        else:
            colour = COLOURS[self.index % len(COLOURS)]
        image = Image.new("RGB", (width, width * 9 // 16), colour)
        paused = bool(self.video_commands) and self.video_commands[-1].action == "pause"
        if paused and not self.blanked and self.index is not None:
            ImageDraw.Draw(image).rectangle((10, 10, 60, 60), fill="#ffffff")
        out = io.BytesIO()
        image.save(out, "PNG")
        return out.getvalue()


@dataclass
class RunningApp:
    url: str
    """The launch URL, with the one-time token."""
    base: str
    config: AppConfig
    loop: asyncio.AbstractEventLoop


@contextmanager
def running_app(
    home: Path, *, teacher: str | None = "Петрова Анна Сергеевна", remote_host: str | None = None
) -> Iterator[RunningApp]:
    """``classcast app`` on 127.0.0.1:0 in a thread; yields its launch URL.

    ``remote_host``: ``--remote-host`` (else the phone remote listens on
    ``$CLASSCAST_REMOTE_HOST``, 127.0.0.1 in tests).
    """
    config = AppConfig(home=Home(home), teacher=teacher, timeout_s=5.0, remote_host=remote_host)
    sock = bind("127.0.0.1", 0)
    ready = threading.Event()
    urls: list[str] = []
    loop = asyncio.new_event_loop()
    stop: list[asyncio.Event] = []

    def main() -> None:
        asyncio.set_event_loop(loop)

        async def run() -> None:
            stop.append(asyncio.Event())

            def on_ready(url: str) -> None:
                urls.append(url)
                ready.set()

            await serve(config, sock, on_ready=on_ready, stop=stop[0])

        loop.run_until_complete(run())
        loop.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the app did not start")
    port = sock.getsockname()[1]
    try:
        yield RunningApp(urls[0], f"http://127.0.0.1:{port}", config, loop)
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(10)


def lesson_folder(parent: Path, name: str = "Фотосинтез") -> Path:
    """The sample lesson's media as a plain folder (no lesson.toml: nothing advances by
    itself): 01 image, 02 image, 03 PDF page, 04 text, 05 video, 06 web page."""
    folder = parent / name
    folder.mkdir(parents=True)
    for path in sample_lesson_path().iterdir():
        if path.name[:2].isdigit():
            shutil.copy(path, folder / path.name)
    return folder
