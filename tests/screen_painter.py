"""Paint rectangles straight onto an X display's root window (a teacher's Xvfb screen).

Plain Xlib through ctypes, no toolkit: what the share test and ``bench/share.py`` show
on the "teacher's" screen. Colours are 0xRRGGBB (Xvfb's 24-bit TrueColor visual).
"""

from __future__ import annotations

import ctypes
import ctypes.util


class ScreenPainter:
    """An open connection to ``display`` that fills rectangles of its root window."""

    def __init__(self, display: str) -> None:
        lib = ctypes.util.find_library("X11")
        assert lib, "libX11 is missing"
        x11 = ctypes.CDLL(lib)
        x11.XOpenDisplay.restype = ctypes.c_void_p
        x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x11.XDefaultRootWindow.restype = ctypes.c_ulong
        x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        x11.XCreateGC.restype = ctypes.c_void_p
        x11.XCreateGC.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_void_p]
        x11.XSetForeground.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulong]
        x11.XFillRectangle.argtypes = [
            ctypes.c_void_p,
            ctypes.c_ulong,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
        ]
        x11.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
        x11.XFreeGC.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        x11.XCreateSimpleWindow.restype = ctypes.c_ulong
        x11.XCreateSimpleWindow.argtypes = [
            ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_ulong, ctypes.c_ulong,
        ]  # fmt: skip
        x11.XInternAtom.restype = ctypes.c_ulong
        x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        x11.XChangeProperty.argtypes = [
            ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_int,
            ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
        ]  # fmt: skip
        x11.XMapWindow.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
        x11.XDestroyWindow.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
        self._x11 = x11
        self._dpy = x11.XOpenDisplay(display.encode())
        assert self._dpy, f"cannot open {display}"
        self._root = x11.XDefaultRootWindow(self._dpy)
        self._gc = x11.XCreateGC(self._dpy, self._root, 0, None)

    def fill(self, x: int, y: int, width: int, height: int, rgb: int) -> None:
        """Fill a rectangle (not yet on screen: call :meth:`sync`)."""
        self._x11.XSetForeground(self._dpy, self._gc, rgb)
        self._x11.XFillRectangle(self._dpy, self._root, self._gc, x, y, width, height)

    def window(self, x: int, y: int, width: int, height: int, rgb: int, title: str) -> int:
        """Open a window of one colour titled ``title`` (``_NET_WM_NAME``, UTF-8); its id."""
        x11 = self._x11
        window = x11.XCreateSimpleWindow(self._dpy, self._root, x, y, width, height, 0, 0, rgb)
        name = title.encode()
        atom = x11.XInternAtom(self._dpy, b"_NET_WM_NAME", 0)
        utf8 = x11.XInternAtom(self._dpy, b"UTF8_STRING", 0)
        x11.XChangeProperty(self._dpy, window, atom, utf8, 8, 0, name, len(name))
        x11.XMapWindow(self._dpy, window)
        self.sync()
        return int(window)

    def close_window(self, window: int) -> None:
        self._x11.XDestroyWindow(self._dpy, window)
        self.sync()

    def sync(self) -> None:
        """Wait until the X server drew everything filled so far."""
        self._x11.XSync(self._dpy, 0)

    def close(self) -> None:
        self._x11.XFreeGC(self._dpy, self._gc)
        self._x11.XCloseDisplay(self._dpy)
