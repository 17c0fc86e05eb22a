"""A private X server (Xvfb) for tests of the panel on X11, and a little Xlib to look at it."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.x11 import XWindowAttributes


def vlc_has_x11_output() -> bool:
    """Whether libVLC's X11 video output is installed (vlc-plugin-video-output)."""
    plugins = Path("/usr/lib/x86_64-linux-gnu/vlc/plugins/video_output")
    return (plugins / "libxcb_x11_plugin.so").exists()


@contextlib.contextmanager
def xvfb(width: int = 640, height: int = 480) -> Iterator[str]:
    """Run Xvfb on a free display number; yields its ``DISPLAY`` (skips if absent)."""
    if shutil.which("Xvfb") is None or ctypes.util.find_library("X11") is None:
        pytest.skip("no Xvfb or libX11 (apt-get install xvfb)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [
            *("Xvfb", "-displayfd", str(write_fd)),
            *("-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"),
        ],
        pass_fds=(write_fd,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as pipe:
            display = ":" + pipe.readline().strip()
        yield display
    finally:
        proc.terminate()
        proc.wait(5)


@dataclass(frozen=True)
class XWindow:
    xid: int
    name: str
    x: int
    y: int
    width: int
    height: int
    mapped: bool
    children: tuple[XWindow, ...]

    def walk(self) -> Iterator[XWindow]:
        yield self
        for child in self.children:
            yield from child.walk()


def window_tree(display: str) -> XWindow:
    """Every window of ``display``, from the root down."""
    x11 = ctypes.CDLL(ctypes.util.find_library("X11"))
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XDefaultRootWindow.restype = ctypes.c_ulong
    x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    x11.XQueryTree.argtypes = [ctypes.c_void_p, ctypes.c_ulong, *[ctypes.c_void_p] * 4]
    x11.XGetWindowAttributes.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p]
    x11.XFetchName.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p]
    x11.XFree.argtypes = [ctypes.c_void_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    dpy = x11.XOpenDisplay(display.encode())
    assert dpy, f"cannot open {display}"

    def node(xid: int) -> XWindow:
        attrs = XWindowAttributes()
        x11.XGetWindowAttributes(dpy, xid, ctypes.byref(attrs))
        name_p = ctypes.c_char_p()
        x11.XFetchName(dpy, xid, ctypes.byref(name_p))
        name = (name_p.value or b"").decode("utf-8", "replace")
        root, parent = ctypes.c_ulong(), ctypes.c_ulong()
        children = ctypes.POINTER(ctypes.c_ulong)()
        count = ctypes.c_uint()
        x11.XQueryTree(
            dpy, xid, ctypes.byref(root), ctypes.byref(parent), ctypes.byref(children),
            ctypes.byref(count),
        )  # fmt: skip
        ids = [children[i] for i in range(count.value)]
        if children:
            x11.XFree(children)
        return XWindow(
            xid, name, attrs.x, attrs.y, attrs.width, attrs.height,
            attrs.map_state == 2, tuple(node(i) for i in ids),
        )  # fmt: skip

    try:
        return node(x11.XDefaultRootWindow(dpy))
    finally:
        x11.XCloseDisplay(dpy)


XK_PRIOR = 0xFF55  # PageUp


@contextlib.contextmanager
def _xtest(display: str) -> Iterator[tuple[ctypes.CDLL, ctypes.CDLL, int]]:
    """libX11, libXtst and a connection to ``display``, closed afterwards."""
    x11 = ctypes.CDLL(ctypes.util.find_library("X11"))
    xtst_path = ctypes.util.find_library("Xtst")
    if xtst_path is None:
        pytest.skip("no libXtst (apt-get install libxtst6)")
    xtst = ctypes.CDLL(xtst_path)
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XKeysymToKeycode.restype = ctypes.c_ubyte
    x11.XKeysymToKeycode.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
    x11.XFlush.argtypes = [ctypes.c_void_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    xtst.XTestFakeKeyEvent.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_ulong]
    xtst.XTestFakeButtonEvent.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_ulong,
    ]
    xtst.XTestFakeMotionEvent.argtypes = [
        *(ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_ulong)
    ]
    dpy = x11.XOpenDisplay(display.encode())
    assert dpy, f"cannot open {display}"
    try:
        yield x11, xtst, dpy
        x11.XFlush(dpy)
    finally:
        x11.XCloseDisplay(dpy)


def press_key(display: str, keysym: int, pointer: tuple[int, int] = (640, 360)) -> None:
    """Press and release a key on ``display`` as a keyboard would (XTest), with the
    pointer moved to ``pointer`` first (without a window manager the keyboard goes to
    the window under it)."""
    with _xtest(display) as (x11, xtst, dpy):
        xtst.XTestFakeMotionEvent(dpy, -1, *pointer, 0)
        code = x11.XKeysymToKeycode(dpy, keysym)
        xtst.XTestFakeKeyEvent(dpy, code, True, 0)
        xtst.XTestFakeKeyEvent(dpy, code, False, 0)


def tap(display: str, x: int, y: int) -> None:
    """A tap (a left click) at ``x``, ``y`` of the screen, as a touch panel sends it (XTest)."""
    with _xtest(display) as (_, xtst, dpy):
        xtst.XTestFakeMotionEvent(dpy, -1, x, y, 0)
        xtst.XTestFakeButtonEvent(dpy, 1, True, 0)
        xtst.XTestFakeButtonEvent(dpy, 1, False, 0)


def xlib() -> ctypes.CDLL:
    """libX11 with the signatures the X11 tests and benches call: open the display,
    make and map a window, read its pixels."""
    x11 = ctypes.CDLL(ctypes.util.find_library("X11"))
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XDefaultRootWindow.restype = ctypes.c_ulong
    x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    x11.XCreateSimpleWindow.restype = ctypes.c_ulong
    int_, uint, ulong = ctypes.c_int, ctypes.c_uint, ctypes.c_ulong
    x11.XCreateSimpleWindow.argtypes = [
        *(ctypes.c_void_p, ulong, int_, int_, uint, uint, uint, ulong, ulong)
    ]
    x11.XMapWindow.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
    x11.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
    x11.XGetImage.restype = ctypes.c_void_p
    x11.XGetImage.argtypes = [*(ctypes.c_void_p, ulong, int_, int_, uint, uint, ulong, int_)]
    x11.XGetPixel.restype = ctypes.c_ulong
    x11.XGetPixel.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    x11.XDestroyImage.argtypes = [ctypes.c_void_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    return x11


class ScreenSampler:
    """Reads a grid of points off the X screen (the root window), as fast as asked:
    what the class sees, a Chromium window or VLC's picture included.

    Args:
        display: the ``DISPLAY`` to read.
        box: the rectangle sampled (x, y, width, height), every ``step`` pixels.
    """

    def __init__(self, display: str, box: tuple[int, int, int, int], step: int = 40) -> None:
        x11 = xlib()
        self._x11 = x11
        self._dpy = x11.XOpenDisplay(display.encode())
        assert self._dpy, display
        self._root = x11.XDefaultRootWindow(self._dpy)
        self.box = box
        _, _, width, height = box
        self._points = [(x, y) for x in range(0, width, step) for y in range(0, height, step)]

    def read(self) -> list[tuple[int, int, int]]:
        """The colours of the grid's points now."""
        x, y, w, h = self.box
        image = self._x11.XGetImage(self._dpy, self._root, x, y, w, h, 0xFFFFFFFF, 2)
        assert image, "cannot read the screen"
        try:
            values = [self._x11.XGetPixel(image, px, py) for px, py in self._points]
        finally:
            self._x11.XDestroyImage(image)
        return [((v >> 16) & 255, (v >> 8) & 255, v & 255) for v in values]

    def close(self) -> None:
        self._x11.XCloseDisplay(self._dpy)
