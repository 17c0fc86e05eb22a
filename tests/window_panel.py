"""One headless panel window for the tests of the window and its scenes.

A :class:`PanelWindow` is a real :class:`kiosk.window.PygletWindow` drawing offscreen
(EGL), with the sample lesson in its store and every frame it draws kept in
``frames``. Each test module subclasses it with what it needs (keys, a video loader,
items made of bytes) and makes one for the module. The test module sets
``PYGLET_HEADLESS`` before its first import of pyglet, as this module does.
"""

from __future__ import annotations

import os
import time

os.environ["PYGLET_HEADLESS"] = "true"  # before pyglet's first import

from collections.abc import Callable
from pathlib import Path

import pyglet

from kiosk.scenes import IdleInfo
from kiosk.window import Frame, PygletWindow
from media.lesson import load_lesson, sample_lesson_path
from media.store import BlobStore

IDLE_INFO = IdleInfo("Школа № 5", "Каб. 12")
"""What the idle screen of a test panel names."""


class PanelWindow:
    """A headless window of ``size`` with the sample lesson in its store (``root``).

    ``control`` and ``item_ended`` are handed to the window; ``clock`` is its clock
    (``time.monotonic`` when None). Call ``window.close()`` when done.
    """

    def __init__(
        self,
        root: Path,
        size: tuple[int, int],
        *,
        control: Callable[[str], None] | None = None,
        item_ended: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = BlobStore(root, 10**9)
        lesson = load_lesson(sample_lesson_path())
        for path in lesson.blob_paths().values():
            self.store.put_bytes(path.read_bytes())
        self.lesson = lesson.manifest()
        self.window = PygletWindow(
            self.store,
            IDLE_INFO,
            mode="headless",
            size=size,
            control=control,
            item_ended=item_ended,
            clock=clock,
        )
        self.frames: list[Frame] = []
        self.window.frame_hooks.append(lambda: self.frames.append(self.window.read_pixels()))
        self.window.run_pending()


def run_window(
    window: PygletWindow, seconds: float, until: Callable[[], bool] | None = None
) -> float:
    """Run ``window``'s real loop for ``seconds`` or until ``until()``; the time taken."""
    started = time.monotonic()

    def check(dt: float) -> None:
        if until is not None and until():
            pyglet.app.exit()

    def stop(dt: float) -> None:
        pyglet.app.exit()

    pyglet.clock.schedule_once(stop, seconds)
    pyglet.clock.schedule_interval(check, 0.01)
    try:
        window.run()
    finally:
        pyglet.clock.unschedule(stop)
        pyglet.clock.unschedule(check)
    return time.monotonic() - started
