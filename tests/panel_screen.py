"""What the panel tests on a real display (Xvfb, cage) look for, and how they wait for it.

The sample lesson's colours, checks of a screenshot, the video surface in the X window
tree, and polling a kiosk until its screen or status shows something. Nothing here
imports pyglet: these tests run the kiosk in a child process, and pyglet in this
process would be loaded before the headless tests ask for ``PYGLET_HEADLESS``.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from controller.client import KioskClient
from protocol.messages import StatusSnapshot
from tests.xvfb import XWindow

GREEN = (0x2E, 0x7D, 0x32)  # 01-list.png: the green ground ...
LEAF = (0x66, 0xBB, 0x6A)  # ... and the leaf in the middle
PAGE = (0xFF, 0xFD, 0xE7)  # 06-proverka.html's background
ALERT_RED = (183, 28, 28)  # kiosk.scenes.ALERT_RED (not imported: see above)
VIDEO_INDEX = 5
WEB_INDEX = 6


def near(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=False))


def pixel(image: Image.Image, x: int, y: int) -> tuple[int, ...]:
    return tuple(image.getpixel((x, y)))  # type: ignore[arg-type]


def centre(image: Image.Image) -> tuple[int, ...]:
    return pixel(image, image.width // 2, image.height // 2)


def first_picture(image: Image.Image) -> bool:
    """01-list.png: a light-green leaf on a green ground."""
    return near(pixel(image, image.width // 2, image.height // 20), GREEN) and near(
        centre(image), LEAF
    )


def video_colours(image: Image.Image) -> set[tuple[int, ...]]:
    """Saturated colours along a row (the sample video's test-pattern bars)."""
    row = image.height // 3
    found: set[tuple[int, ...]] = set()
    for x in range(image.width // 4, image.width * 3 // 4, 8):
        r, g, b = pixel(image, x, row)[:3]
        if max(r, g, b) - min(r, g, b) > 120:
            found.add((r // 64, g // 64, b // 64))
    return found


def video_letterboxed(image: Image.Image) -> bool:
    """The sample video's test pattern, between black bars (4:3 on a 16:9 panel)."""
    return len(video_colours(image)) >= 3 and near(pixel(image, 4, image.height // 2), (0, 0, 0))


def video_surface(panel: XWindow) -> XWindow | None:
    """The video surface, mapped, with VLC's window mapped in it: a window inside the
    panel window's view (pyglet's drawing window) with a mapped window of its own."""
    for view in panel.children:
        for child in view.children:
            if child.mapped and any(c.mapped for c in child.children):
                return child
    return None


async def until(check: Callable[[], bool], what: str, timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"never: {what}")
        await asyncio.sleep(0.1)


async def screen_until(
    client: KioskClient,
    check: Callable[[Image.Image], bool],
    what: str,
    *,
    timeout_s: float,
    failed_png: Path,
) -> Image.Image:
    """Screenshots until one passes ``check``; the last one is saved if none does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        image = Image.open(io.BytesIO(await client.screenshot(max_width=640))).convert("RGB")
        if check(image):
            return image
        if loop.time() > deadline:
            image.save(failed_png)
            raise AssertionError(f"the screen never showed {what}")
        await asyncio.sleep(0.1)


async def status_until(
    client: KioskClient, check: Callable[[StatusSnapshot], bool], what: str, timeout_s: float
) -> StatusSnapshot:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check(status := await client.status()):
        if loop.time() > deadline:
            raise AssertionError(f"the panel never reached {what}: {status}")
        await asyncio.sleep(0.05)
    return status
