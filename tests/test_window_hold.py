"""kiosk.x11.WindowHold on a private X server (Xvfb): a window another program maps
while the kiosk holds stays under the panel window until released, then comes on top;
where another program already manages windows, the kiosk does not hold."""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.xvfb import xvfb

pytestmark = pytest.mark.display

SIZE = (320, 240)
WAIT_S = 5.0
OPEN_TRIES = 5


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    with xvfb(*SIZE) as name:
        yield name


def xlib() -> Any:
    from pyglet.libs.x11 import xlib as module

    return module


class Client:
    """A plain X client with top-level windows of its own."""

    def __init__(self, display: str) -> None:
        self.x = xlib()
        for _ in range(OPEN_TRIES):  # a shared test machine's X servers refuse now and then
            self.dpy = self.x.XOpenDisplay(display.encode())
            if self.dpy:
                break
        assert self.dpy
        self.root = self.x.XDefaultRootWindow(self.dpy)

    def window(self) -> int:
        x = self.x
        screen = x.XDefaultScreen(self.dpy)
        black = x.XBlackPixel(self.dpy, screen)
        xid = int(x.XCreateSimpleWindow(self.dpy, self.root, 0, 0, *SIZE, 0, black, black))
        x.XSync(self.dpy, False)
        return xid

    def map(self, xid: int) -> None:
        self.x.XMapWindow(self.dpy, xid)
        self.x.XSync(self.dpy, False)

    def viewable(self, xid: int) -> bool:
        attrs = self.x.XWindowAttributes()
        self.x.XGetWindowAttributes(self.dpy, xid, ctypes.byref(attrs))
        return bool(attrs.map_state == self.x.IsViewable)

    def stacking(self) -> list[int]:
        """Top-level windows, bottom first."""
        x = self.x
        root, parent = x.Window(), x.Window()
        children = ctypes.POINTER(x.Window)()
        count = ctypes.c_uint()
        x.XQueryTree(
            self.dpy,
            self.root,
            ctypes.byref(root),
            ctypes.byref(parent),
            ctypes.byref(children),
            ctypes.byref(count),
        )
        try:
            return [int(children[i]) for i in range(count.value)]
        finally:
            if children:
                x.XFree(children)

    def wait_viewable(self, xid: int) -> None:
        deadline = time.monotonic() + WAIT_S
        while not self.viewable(xid):
            assert time.monotonic() < deadline, "the window was never mapped"
            time.sleep(0.005)

    def close(self) -> None:
        self.x.XCloseDisplay(self.dpy)


@pytest.fixture
def clients(display: str) -> Iterator[tuple[Client, Client]]:
    panel, browser = Client(display), Client(display)
    yield panel, browser
    panel.close()
    browser.close()


def test_a_window_mapped_while_held_stays_under_the_panel_until_released(
    display: str, clients: tuple[Client, Client]
) -> None:
    from kiosk.x11 import WindowHold

    panel, browser = clients
    panel_window = panel.window()
    panel.map(panel_window)
    hold = WindowHold(panel_window, display.encode())
    try:
        assert hold.hold()
        page = browser.window()
        browser.map(page)  # as Chromium does, on top of everything without a manager
        browser.wait_viewable(page)  # the hold mapped it ...
        order = panel.stacking()
        assert order.index(page) < order.index(panel_window)  # ... under the panel
        raised = threading.Event()
        hold.release(raised.set)
        assert raised.wait(WAIT_S)
        order = panel.stacking()
        assert order.index(page) > order.index(panel_window)
        # Released: the next window maps at once, on top, as it always did.
        other = browser.window()
        browser.map(other)
        assert browser.viewable(other)
        assert panel.stacking()[-1] == other
    finally:
        hold.close()


def test_a_window_of_an_item_left_while_held_is_not_raised(
    display: str, clients: tuple[Client, Client]
) -> None:
    from kiosk.x11 import WindowHold

    panel, browser = clients
    panel_window = panel.window()
    panel.map(panel_window)
    hold = WindowHold(panel_window, display.encode())
    try:
        assert hold.hold()
        page = browser.window()
        browser.map(page)
        browser.wait_viewable(page)
        released = threading.Event()
        hold.release(released.set, raise_=False)  # its Chromium is being stopped
        assert released.wait(WAIT_S)
        order = panel.stacking()
        assert order.index(page) < order.index(panel_window)
    finally:
        hold.close()


def test_no_hold_where_another_program_manages_windows(
    display: str, clients: tuple[Client, Client]
) -> None:
    from kiosk.x11 import WindowHold

    panel, manager = clients
    x = manager.x
    x.XSelectInput(manager.dpy, manager.root, x.SubstructureRedirectMask)  # a window manager
    x.XSync(manager.dpy, False)
    panel_window = panel.window()
    hold = WindowHold(panel_window, display.encode())
    try:
        assert not hold.hold()
        assert hold.managed_elsewhere
        assert not hold.hold()  # not tried again
        done = threading.Event()
        hold.release(done.set)
        assert done.is_set()
    finally:
        hold.close()
        x.XSelectInput(manager.dpy, manager.root, 0)
        x.XSync(manager.dpy, False)
