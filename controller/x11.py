"""Finding one window on the teacher's X11 screen by its title, and where it is now.

Plain Xlib through ctypes (libX11 is on every X11 desktop; nothing to install): the
window tree from the root, each window's title (``_NET_WM_NAME`` in UTF-8, else
``WM_NAME``), and its place on the screen. X errors (a window closed meanwhile) are
caught by an error handler of ours instead of Xlib's default, which exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from dataclasses import dataclass
from typing import Any, Final

MAX_WINDOWS: Final = 10_000
"""Windows looked at in one search (a desktop has a few hundred)."""

_IS_VIEWABLE = 2
_ANY_PROPERTY_TYPE = 0


@dataclass(frozen=True, slots=True)
class WindowPlace:
    """Where a window is on the screen (root coordinates, pixels)."""

    left: int
    top: int
    width: int
    height: int


class XWindowAttributes(ctypes.Structure):
    """Xlib's ``XWindowAttributes`` (the fields read here, then room for the rest)."""

    _fields_ = [
        ("x", ctypes.c_int),
        ("y", ctypes.c_int),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("border_width", ctypes.c_int),
        ("depth", ctypes.c_int),
        ("visual", ctypes.c_void_p),
        ("root", ctypes.c_ulong),
        ("c_class", ctypes.c_int),
        ("bit_gravity", ctypes.c_int),
        ("win_gravity", ctypes.c_int),
        ("backing_store", ctypes.c_int),
        ("backing_planes", ctypes.c_ulong),
        ("backing_pixel", ctypes.c_ulong),
        ("save_under", ctypes.c_int),
        ("colormap", ctypes.c_ulong),
        ("map_installed", ctypes.c_int),
        ("map_state", ctypes.c_int),
        ("_rest", ctypes.c_byte * 128),
    ]


_ERROR_HANDLER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_errors = threading.local()


def _count_error(display: Any, event: Any) -> int:
    _errors.count = _error_count() + 1
    return 0


def _error_count() -> int:
    """X errors on this thread since the count was last reset."""
    count: int = getattr(_errors, "count", 0)
    return count


_note_error = _ERROR_HANDLER(_count_error)


class X11Windows:
    """A connection to an X display for finding windows; close it when done.

    Raises:
        OSError: no libX11, or the display does not open.
    """

    def __init__(self, display: str | None = None) -> None:
        name = ctypes.util.find_library("X11")
        if not name:
            raise OSError("libX11 is missing")
        x11 = ctypes.CDLL(name)
        vp, ul, ci = ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int
        x11.XOpenDisplay.restype, x11.XOpenDisplay.argtypes = vp, [ctypes.c_char_p]
        x11.XDefaultRootWindow.restype, x11.XDefaultRootWindow.argtypes = ul, [vp]
        x11.XQueryTree.argtypes = [vp, ul, vp, vp, vp, vp]
        x11.XGetWindowAttributes.argtypes = [vp, ul, vp]
        x11.XTranslateCoordinates.argtypes = [vp, ul, ul, ci, ci, vp, vp, vp]
        x11.XFetchName.argtypes = [vp, ul, vp]
        x11.XInternAtom.restype, x11.XInternAtom.argtypes = ul, [vp, ctypes.c_char_p, ci]
        x11.XGetWindowProperty.argtypes = [vp, ul, ul, ctypes.c_long, ctypes.c_long, ci, ul]
        x11.XGetWindowProperty.argtypes += [vp, vp, vp, vp, vp]
        x11.XFree.argtypes = [vp]
        x11.XSync.argtypes = [vp, ci]
        x11.XCloseDisplay.argtypes = [vp]
        x11.XSetErrorHandler.argtypes = [_ERROR_HANDLER]
        x11.XSetErrorHandler.restype = vp
        x11.XSetErrorHandler(_note_error)
        self._x11 = x11
        wanted = display or os.environ.get("DISPLAY", "")
        self._dpy = x11.XOpenDisplay(wanted.encode() or None)
        if not self._dpy:
            raise OSError(f"cannot open the X display {wanted!r}")
        self.root = x11.XDefaultRootWindow(self._dpy)
        self._net_wm_name = x11.XInternAtom(self._dpy, b"_NET_WM_NAME", 0)
        self._utf8 = x11.XInternAtom(self._dpy, b"UTF8_STRING", 0)

    def find(self, title: str) -> int | None:
        """The first shown window whose title contains ``title`` (any case); None if none.

        The largest of several matches wins (a browser's main window, not its tooltip).
        """
        wanted = title.casefold()
        best: tuple[int, int] | None = None
        pending, seen = [self.root], 0
        while pending and seen < MAX_WINDOWS:
            window = pending.pop()
            seen += 1
            pending.extend(self._children(window))
            if window == self.root or wanted not in self.title(window).casefold():
                continue
            place = self.place(window)
            if place is None:
                continue
            area = place.width * place.height
            if best is None or area > best[1]:
                best = (window, area)
        return best[0] if best is not None else None

    def title(self, window: int) -> str:
        """The window's title ("" when it has none)."""
        value = self._utf8_property(window, self._net_wm_name)
        if value is not None:
            return value
        name = ctypes.c_char_p()
        if self._x11.XFetchName(self._dpy, window, ctypes.byref(name)) and name.value:
            text = name.value.decode("utf-8", "replace")
            self._x11.XFree(name)
            return text
        return ""

    def place(self, window: int) -> WindowPlace | None:
        """Where ``window`` is on the screen; None when it is closed or not shown."""
        _errors.count = 0
        attrs = XWindowAttributes()
        ok = self._x11.XGetWindowAttributes(self._dpy, window, ctypes.byref(attrs))
        if not ok or _error_count() or attrs.map_state != _IS_VIEWABLE:
            return None
        x, y, child = ctypes.c_int(), ctypes.c_int(), ctypes.c_ulong()
        self._x11.XTranslateCoordinates(
            self._dpy, window, self.root, 0, 0, ctypes.byref(x), ctypes.byref(y),
            ctypes.byref(child),
        )  # fmt: skip
        self._x11.XSync(self._dpy, 0)
        if _error_count() or attrs.width <= 0 or attrs.height <= 0:
            return None
        return WindowPlace(x.value, y.value, attrs.width, attrs.height)

    def close(self) -> None:
        if self._dpy:
            self._x11.XCloseDisplay(self._dpy)
            self._dpy = None

    def _children(self, window: int) -> list[int]:
        root, parent = ctypes.c_ulong(), ctypes.c_ulong()
        children = ctypes.POINTER(ctypes.c_ulong)()
        count = ctypes.c_uint()
        _errors.count = 0
        ok = self._x11.XQueryTree(
            self._dpy, window, ctypes.byref(root), ctypes.byref(parent),
            ctypes.byref(children), ctypes.byref(count),
        )  # fmt: skip
        if not ok or not children:
            return []
        found = [children[i] for i in range(count.value)]
        self._x11.XFree(children)
        return found

    def _utf8_property(self, window: int, atom: int) -> str | None:
        actual_type, actual_format = ctypes.c_ulong(), ctypes.c_int()
        items, after = ctypes.c_ulong(), ctypes.c_ulong()
        data = ctypes.POINTER(ctypes.c_ubyte)()
        status = self._x11.XGetWindowProperty(
            self._dpy, window, atom, 0, 1024, 0, self._utf8, ctypes.byref(actual_type),
            ctypes.byref(actual_format), ctypes.byref(items), ctypes.byref(after),
            ctypes.byref(data),
        )  # fmt: skip
        if status != 0 or not data:
            return None
        try:
            if actual_type.value != self._utf8 or actual_format.value != 8:
                return None
            return bytes(data[: items.value]).decode("utf-8", "replace")
        finally:
            self._x11.XFree(data)
