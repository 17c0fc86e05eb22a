"""The kiosk under cage, the Wayland kiosk compositor (``docs/deploy.md`` §5b), headless.

cage starts Xwayland and the kiosk opens its fullscreen window there, as on a panel. A
teacher casts the sample lesson and asks for screenshots. Under (rootless) Xwayland
the X server composes no screen, so :func:`kiosk.x11.capture` reads the panel window
itself (the slides, and VLC's video in a child window) and lays the window cage shows
on top (the focused one: Chromium's) over it.

What this cannot check: the picture cage finally puts on its output. With the pixman
renderer on the headless backend, cage 0.1.4 (wlroots 0.15) does not reliably present
its clients' new frames (it logs ``Basic output test failed for HEADLESS-1``, and a
wlr-screencopy grab stays black or stale), so the test looks at what the X server
holds, which is what Xwayland hands to cage.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from controller.client import KioskClient
from protocol.messages import StatusSnapshot
from tests import panel_screen
from tests.cage import active_window, cage_kiosk, window_pixel
from tests.conftest import TEACHER
from tests.helpers import untimed_sample_lesson
from tests.kiosks import ADMIN_SECRET
from tests.panel_screen import (
    PAGE,
    VIDEO_INDEX,
    WEB_INDEX,
    centre,
    first_picture,
    near,
    video_letterboxed,
)
from tests.xvfb import XK_PRIOR, XWindow, press_key, vlc_has_x11_output, window_tree

pytestmark = pytest.mark.slow

SCREEN = (1280, 720)  # the output of wlroots' headless backend
TIMEOUT_S = 15.0
FAILED_PNG = Path("/tmp") / "classcast-cage-failed.png"


async def screen_until(
    client: KioskClient, check: Callable[[Image.Image], bool], what: str
) -> Image.Image:
    return await panel_screen.screen_until(
        client, check, what, timeout_s=TIMEOUT_S, failed_png=FAILED_PNG
    )


async def until(check: Callable[[], bool], what: str) -> None:
    await panel_screen.until(check, what, TIMEOUT_S)


async def until_status(
    client: KioskClient, check: Callable[[StatusSnapshot], bool], what: str
) -> None:
    await panel_screen.status_until(client, check, what, TIMEOUT_S)


def panel_window(display: str) -> XWindow:
    found = [w for w in window_tree(display).children if w.name == "ClassCast" and w.mapped]
    assert len(found) == 1, "no ClassCast window on Xwayland"
    return found[0]


def video_surface(display: str) -> XWindow | None:
    return panel_screen.video_surface(panel_window(display))


def other_windows(display: str) -> list[XWindow]:
    """Mapped top-level windows (about) as large as the screen, other than the panel's."""
    return [
        w
        for w in window_tree(display).children
        if w.mapped and w.name != "ClassCast" and w.width * w.height > 0.9 * SCREEN[0] * SCREEN[1]
    ]


def browser_on_top(display: str, panel: int) -> bool:
    """A Chromium window covers the screen, holds the page and has cage's focus (which
    under cage means it is shown over the panel window)."""
    top = active_window(display)
    if top is None or top == panel or top not in {w.xid for w in other_windows(display)}:
        return False
    colour = window_pixel(display, top, SCREEN[0] // 2, SCREEN[1] // 2)
    return colour is not None and near(colour, PAGE)


async def test_the_kiosk_under_cage_casts_pictures_videos_and_pages(tmp_path: Path) -> None:
    if not vlc_has_x11_output():
        pytest.skip("no X11 output in libVLC (apt-get install vlc-plugin-video-output)")
    with cage_kiosk(tmp_path / "state") as cage:
        async with await KioskClient.connect(cage.address, TEACHER) as client:
            await client.pair(ADMIN_SECRET, role="admin")
            await client.cast(untimed_sample_lesson())
            await screen_until(client, first_picture, "the first picture")
            panel = panel_window(cage.display)
            assert (panel.x, panel.y, panel.width, panel.height) == (0, 0, *SCREEN)
            assert video_surface(cage.display) is None

            # VLC's own output, in a child window of the panel window, is in the picture.
            await client.control("goto", index=VIDEO_INDEX)
            await screen_until(client, video_letterboxed, "the video between black bars")
            surface = video_surface(cage.display)
            assert surface is not None, "the video is not drawn by VLC's embedded output"

            # A web page: Chromium (on Xwayland too), shown over the panel window.
            if shutil.which("chromium") is not None:
                await client.control("goto", index=WEB_INDEX)
                await until(lambda: browser_on_top(cage.display, panel.xid), "the web page")
                # The screenshot lays Chromium's window over the panel's, as cage shows it.
                await screen_until(client, lambda im: near(centre(im), PAGE), "the page")
                # A presenter remote's PageUp reaches the kiosk, not the page.
                press_key(cage.display, XK_PRIOR)
                await until_status(client, lambda s: s.index == VIDEO_INDEX, "PageUp → prev")
                await client.control("goto", index=WEB_INDEX)

            # Back to the picture: the browser is gone and the panel window on top again.
            await client.control("goto", index=0)
            await screen_until(client, first_picture, "the picture again")
            await until(
                lambda: (
                    not other_windows(cage.display) and active_window(cage.display) == panel.xid
                ),
                "the panel window focused again",
            )
            assert video_surface(cage.display) is None
        assert cage.stop() == 0
