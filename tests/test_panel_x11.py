"""The kiosk as on a real panel: ``classcast-kiosk --windowed`` on an X server (Xvfb).

A teacher casts the sample lesson over the network and asks for screenshots, which on
X11 are read off the screen: what the class sees, VLC's own video output and the
Chromium window included. The window tree shows which parts drew what.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from controller.client import KioskClient
from protocol.messages import StatusSnapshot
from tests import panel_screen
from tests.conftest import TEACHER
from tests.helpers import untimed_sample_lesson
from tests.kiosks import ADMIN_SECRET, kiosk_process
from tests.panel_screen import (
    ALERT_RED,
    PAGE,
    VIDEO_INDEX,
    WEB_INDEX,
    centre,
    first_picture,
    near,
    video_colours,
    video_letterboxed,
)
from tests.xvfb import (
    XK_PRIOR,
    ScreenSampler,
    XWindow,
    press_key,
    tap,
    vlc_has_x11_output,
    window_tree,
    xvfb,
)

pytestmark = pytest.mark.slow

SCREEN = (1280, 720)
TIMEOUT_S = 20.0
FAILED_PNG = Path("/tmp") / "classcast-x11-failed.png"


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    if not vlc_has_x11_output():
        pytest.skip("no X11 output in libVLC (apt-get install vlc-plugin-video-output)")
    with xvfb(*SCREEN) as name:
        yield name


async def screen_until(
    client: KioskClient, check: Callable[[Image.Image], bool], what: str
) -> Image.Image:
    return await panel_screen.screen_until(
        client, check, what, timeout_s=TIMEOUT_S, failed_png=FAILED_PNG
    )


async def status_until(
    client: KioskClient, check: Callable[[StatusSnapshot], bool], what: str
) -> StatusSnapshot:
    return await panel_screen.status_until(client, check, what, TIMEOUT_S)


def panel_window(tree: XWindow) -> XWindow:
    found = [w for w in tree.walk() if w.name == "ClassCast" and w.mapped]
    assert found, "no ClassCast window on the screen"
    return found[0]


def browser_windows(display: str) -> list[XWindow]:
    """Mapped top-level windows (about) as large as the panel window, other than it."""
    return [
        w
        for w in window_tree(display).children
        if w.mapped and w.name != "ClassCast" and w.width * w.height > 0.9 * SCREEN[0] * SCREEN[1]
    ]


def video_surface(display: str) -> XWindow | None:
    return panel_screen.video_surface(panel_window(window_tree(display)))


async def test_every_kind_reaches_the_x11_screen(tmp_path: Path, display: str) -> None:
    env = {"DISPLAY": display, "PYGLET_HEADLESS": ""}
    with kiosk_process(tmp_path / "state", window="--windowed", env=env) as (_, address):
        async with await KioskClient.connect(address, TEACHER) as client:
            await client.pair(ADMIN_SECRET, role="admin")
            await client.cast(untimed_sample_lesson())
            await screen_until(client, first_picture, "the first picture")
            assert video_surface(display) is None

            # A video: VLC's own output, in a child window of the panel window.
            await client.control("goto", index=VIDEO_INDEX)

            await screen_until(client, video_letterboxed, "the video between black bars")
            surface = video_surface(display)
            assert surface is not None, "the video is not drawn by VLC's embedded output"
            assert (surface.width, surface.height) == SCREEN

            # Paused, the video stays (its two seconds would end meanwhile).
            await client.control("pause")

            # An info banner: the video surface ends above it, the banner shows below.
            await client.announce("Внимание: пожарная тревога — учебная", level="info")

            def banner_and_video(image: Image.Image) -> bool:
                r, _, b = image.getpixel((image.width // 2, image.height - 5))  # type: ignore[misc]
                return b > 120 and r < 60 and len(video_colours(image)) >= 3

            await screen_until(client, banner_and_video, "the banner under the video")
            surface = video_surface(display)
            assert surface is not None
            assert surface.height < SCREEN[1] * 0.9
            # An alert takes the whole screen: the video surface is unmapped under it.
            await client.announce("Эвакуация: выходите к главному входу", level="alert")
            await screen_until(client, lambda im: near(centre(im), ALERT_RED, 40), "the alert")
            assert video_surface(display) is None
            await client.clear_announcement()
            await screen_until(client, lambda im: len(video_colours(im)) >= 3, "the video again")

            # A tap on the video's left third goes back: VLC's window takes no input.
            tap(display, SCREEN[0] // 6, SCREEN[1] // 2)
            await status_until(client, lambda s: s.index == VIDEO_INDEX - 1, "a tap → prev")

            # A web page: a Chromium window over the panel window.
            if shutil.which("chromium") is not None:
                await client.control("goto", index=WEB_INDEX)
                await screen_until(client, lambda im: near(centre(im), PAGE), "the web page")
                assert video_surface(display) is None
                assert browser_windows(display), "no Chromium window over the panel"

                # A banner: Chromium's window would hide it; the page's picture stays.
                await client.announce("Звонок через 5 минут", level="info")

                def banner_over_page(image: Image.Image) -> bool:
                    r, _, b = image.getpixel((image.width // 2, image.height - 5))  # type: ignore[misc]
                    return b > 120 and r < 60 and near(centre(image), PAGE)

                # (Chromium is stopped without waiting: its window goes when it exited.)
                await screen_until(
                    client,
                    lambda im: banner_over_page(im) and not browser_windows(display),
                    "the banner over the page, no Chromium window",
                )
                await client.clear_announcement()
                await screen_until(client, lambda im: bool(browser_windows(display)), "Chromium")

                # Blank: the screen goes black, Chromium's window too, and comes back.
                await client.control("blank")
                await screen_until(
                    client,
                    lambda im: near(centre(im), (0, 0, 0)) and not browser_windows(display),
                    "black, no Chromium window",
                )
                await client.control("unblank")
                await screen_until(client, lambda im: bool(browser_windows(display)), "Chromium")

                # A presenter remote's PageUp goes to the kiosk, not to the page under it.
                await asyncio.sleep(1.0)  # Chromium has drawn and may have the keyboard
                press_key(display, XK_PRIOR)
                await status_until(client, lambda s: s.index == VIDEO_INDEX, "PageUp → prev")

            # Back to the picture: the browser is gone, the video surface unmapped.
            await client.control("goto", index=0)
            await screen_until(client, first_picture, "the picture again")
            assert video_surface(display) is None
            assert browser_windows(display) == []


async def test_frames_output_on_x11_when_configured(tmp_path: Path, display: str) -> None:
    env = {"DISPLAY": display, "PYGLET_HEADLESS": ""}
    config = 'video_output = "frames"\n'
    with kiosk_process(tmp_path / "state", window="--windowed", env=env, config=config) as (
        _,
        address,
    ):
        async with await KioskClient.connect(address, TEACHER) as client:
            await client.pair(ADMIN_SECRET, role="admin")
            await client.cast(untimed_sample_lesson(), start_index=VIDEO_INDEX)
            await screen_until(client, lambda im: len(video_colours(im)) >= 3, "the video")
            assert video_surface(display) is None  # drawn by the window, as a texture


Reading = list[tuple[int, int, int]]


def share_near(reading: Reading, colour: tuple[int, int, int], tolerance: int = 24) -> float:
    return sum(near(p, colour, tolerance) for p in reading) / len(reading)


def kind_of(reading: Reading, picture: Reading) -> str:
    """``black``, ``picture`` (the reference reading), ``page`` (06-proverka.html in
    Chromium's window), or ``other`` (a card, a blank window, a half-drawn mix)."""
    if sum(max(p) < 24 for p in reading) >= 0.9 * len(reading):
        return "black"
    if sum(near(p, q, 24) for p, q in zip(reading, picture, strict=True)) >= 0.9 * len(reading):
        return "picture"
    if share_near(reading, PAGE) >= 0.5:
        return "page"
    return "other"


async def sample_switch(
    client: KioskClient, screen: ScreenSampler, index: int, picture: Reading, target: str
) -> list[str]:
    """Every reading of the screen from ``goto index`` until ``target`` has been read
    ``SETTLED_READINGS`` times in a row."""
    kinds: list[str] = []
    reply = asyncio.ensure_future(client.control("goto", index=index))
    in_a_row = 0
    deadline = asyncio.get_running_loop().time() + TIMEOUT_S
    while in_a_row < SETTLED_READINGS:
        kind = kind_of(screen.read(), picture)
        kinds.append(kind)
        in_a_row = in_a_row + 1 if kind == target else 0
        assert asyncio.get_running_loop().time() < deadline, f"no {target}: {kinds[-20:]}"
        await asyncio.sleep(0)  # the control's reply, meanwhile
    await reply
    return kinds


SETTLED_READINGS = 30
"""Readings in a row that must show the next item before a switch counts as done."""


def runs(kinds: list[str]) -> list[str]:
    """``kinds`` with repeats merged: the order in which things were on screen."""
    return [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]


async def test_switching_to_and_from_a_web_page_never_shows_black(
    tmp_path: Path, display: str
) -> None:
    """Picture → web page → picture, the screen read all along: the picture stays until
    Chromium's window has painted the page (no card, no blank window, no black), and
    the page stays until the picture is drawn over it."""
    if shutil.which("chromium") is None:
        pytest.skip("no Chromium (apt-get install chromium)")
    env = {"DISPLAY": display, "PYGLET_HEADLESS": ""}
    width, height = SCREEN
    screen = ScreenSampler(display, (width // 2 - 400, height // 2 - 300, 800, 600))
    try:
        with kiosk_process(tmp_path / "state", window="--windowed", env=env) as (_, address):
            async with await KioskClient.connect(address, TEACHER) as client:
                await client.pair(ADMIN_SECRET, role="admin")
                await client.cast(untimed_sample_lesson())
                await screen_until(client, first_picture, "the first picture")
                picture = screen.read()
                for _ in range(2):  # the second time, Chromium's files are warm
                    opening = await sample_switch(client, screen, WEB_INDEX, picture, "page")
                    assert runs(opening) == ["picture", "page"], runs(opening)
                    closing = await sample_switch(client, screen, 0, picture, "picture")
                    assert runs(closing) == ["page", "picture"], runs(closing)
    finally:
        screen.close()
