"""The panel window's native X11 parts: the video surface and screen capture.

On a real panel (an X11 session, or XWayland under a kiosk compositor such as cage)
videos are shown by VLC's own output, drawing straight into an X11 window: no frame
crosses into Python, so 1080p costs what VLC costs. That window is a
:class:`VideoSurface`, a child of the pyglet window made here with Xlib (the library
pyglet itself uses on X11)::

    pyglet window
    └── view (pyglet's child window: GL drawing, scenes, overlays; takes input)
        └── VideoSurface  (no background: shows what was under it until VLC draws)
            └── VLC's own window (made and mapped by libVLC inside the surface)

The surface is mapped while an embedded video is the current scene and is kept clear
of overlays: an info banner shortens it from below, an alert or a blank screen unmaps
it. It selects no input, so taps on a video go up to pyglet's view. It is mapped
:data:`~kiosk.video_scene.EMBEDDED_SETTLE_S` after VLC opened its output, past the
empty picture libVLC 3 shows first.

A screenshot must show what the class sees, VLC's picture and a Chromium window
included, which the GL framebuffer does not hold: :func:`capture` reads the screen
(the root window) over the pyglet window's rectangle. Under rootless Xwayland (cage)
there is no screen to read: it reads the pyglet window itself, VLC's child window
included, and lays the window the compositor shows on top (Chromium's) over it.

Every function runs on the main thread, on pyglet's own display connection.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pyglet
from PIL import Image

logger = logging.getLogger(__name__)

ZPIXMAP = 2
ALL_PLANES = 0xFFFFFFFF
XA_WINDOW = 33


class VideoSurface(Protocol):
    """A native window for VLC's own output, inside the panel window."""

    @property
    def xid(self) -> int:
        """The X11 window id handed to ``libvlc_media_player_set_xwindow``."""
        ...

    @property
    def visible(self) -> bool: ...

    def show(self, x: int, y: int, width: int, height: int) -> None:
        """Map the surface over the given box (window pixels, top left origin)."""

    def picture_placed(self) -> bool:
        """Whether VLC's own window is in the surface at its final size (it fits the
        surface's width or height), mapped: its picture may be shown now."""

    def fill_black(self) -> bool:
        """Paint the surface black where VLC does not draw, once VLC shows a picture.

        Returns whether that is done (``False``: no picture yet, ask again later).
        """

    def hide(self) -> None:
        """Unmap the surface (the pyglet window shows through)."""

    def close(self) -> None:
        """Destroy the native window."""


def _xlib() -> Any:
    from pyglet.libs.x11 import xlib

    return xlib


@dataclass(frozen=True)
class NativeWindow:
    """A pyglet window's X11 side: its display connection, its top-level window, and
    the child window pyglet draws in and takes input from (its "view")."""

    display: Any
    window: int
    view: int


def native_window(window: pyglet.window.Window) -> NativeWindow | None:
    """The X11 side of a pyglet window, or ``None`` (headless)."""
    display = getattr(window, "_x_display", None)
    xid = getattr(window, "_window", None)
    if display is None or not xid:
        return None
    view = getattr(window, "_view", None) or xid
    return NativeWindow(display, int(xid), int(view))


def keep_contents(native: NativeWindow) -> None:
    """Give the pyglet window and its view no background (pyglet makes them black).

    Whatever uncovers part of the window (a Chromium window closing, the video surface
    unmapped) then leaves the last picture there until the window draws its next frame
    (it is told by an expose), instead of the X server painting that part black first.
    """
    xlib = _xlib()
    for xid in {native.window, native.view}:
        xlib.XSetWindowBackgroundPixmap(native.display, xid, 0)  # None
    xlib.XFlush(native.display)


class X11Surface:
    """A :class:`VideoSurface`: a child window of the pyglet window, unmapped at first.

    Its background is ``None``: mapping it does not clear it, so until VLC draws its
    first picture it keeps showing the pyglet window's last frame (the previous item).
    """

    def __init__(self, display: Any, parent: int, width: int, height: int) -> None:
        """``parent`` is the window that takes input (pyglet's view): the surface and
        VLC's window (``video_set_mouse_input(False)``) select no pointer events, so
        a tap on a video goes up to it, as on any other item."""
        xlib = _xlib()
        self._display = display
        attrs = xlib.XSetWindowAttributes()
        attrs.background_pixmap = 0  # None: keep what is on screen
        attrs.border_pixel = 0
        self._xid = int(
            xlib.XCreateWindow(
                display,
                parent,
                0,
                0,
                max(1, width),
                max(1, height),
                0,
                xlib.CopyFromParent,
                xlib.InputOutput,
                None,  # CopyFromParent visual
                xlib.CWBackPixmap | xlib.CWBorderPixel,
                ctypes.byref(attrs),
            )
        )
        xlib.XFlush(display)
        self._size = (max(1, width), max(1, height))
        """The surface's size now, which VLC's window fits once placed."""
        self._visible = False
        self._filled = False
        self._box: tuple[int, int, int, int] | None = None
        self._closed = False

    @property
    def xid(self) -> int:
        return self._xid

    @property
    def visible(self) -> bool:
        return self._visible

    def show(self, x: int, y: int, width: int, height: int) -> None:
        if self._closed:
            return
        xlib = _xlib()
        box = (x, y, max(1, width), max(1, height))
        if box != self._box:
            self._box = box
            self._size = box[2:]
            xlib.XMoveResizeWindow(self._display, self._xid, *box)
        if not self._visible:
            self._visible = True
            self._clear_children_background()
            xlib.XMapRaised(self._display, self._xid)
        xlib.XFlush(self._display)

    def _children(self) -> list[int]:
        xlib = _xlib()
        root, parent = xlib.Window(), xlib.Window()
        children = ctypes.POINTER(xlib.Window)()
        count = ctypes.c_uint()
        if not xlib.XQueryTree(
            self._display,
            self._xid,
            ctypes.byref(root),
            ctypes.byref(parent),
            ctypes.byref(children),
            ctypes.byref(count),
        ):
            return []
        try:
            return [int(children[i]) for i in range(count.value)]
        finally:
            if children:
                xlib.XFree(children)

    def _clear_children_background(self) -> None:
        """No background for VLC's own window either: the X server would paint any
        background when the surface is mapped, before VLC's next picture. Without one,
        the previous item stays until that picture replaces it."""
        xlib = _xlib()
        for child in self._children():
            xlib.XSetWindowBackgroundPixmap(self._display, child, 0)  # None

    def picture_placed(self) -> bool:
        """VLC opens its window at the video's own size first, then reopens or resizes
        it to fit the surface (a new window has VLC's black background): until it
        fits, mapping the surface could show black."""
        if self._closed:
            return False
        xlib = _xlib()
        attrs = xlib.XWindowAttributes()
        width, height = self._size
        for child in self._children():
            got = xlib.XGetWindowAttributes(self._display, child, ctypes.byref(attrs))
            if (
                got
                and attrs.map_state != xlib.IsUnmapped
                and (attrs.width == width or attrs.height == height)
            ):
                return True
        return False

    def _picture_shown(self) -> bool:
        """Whether VLC's window is in the surface, mapped (it holds the picture)."""
        xlib = _xlib()
        attrs = xlib.XWindowAttributes()
        for child in self._children():
            got = xlib.XGetWindowAttributes(self._display, child, ctypes.byref(attrs))
            if got and attrs.map_state != xlib.IsUnmapped:
                return True
        return False

    def fill_black(self) -> bool:
        """Paint what VLC's picture leaves uncovered black (the letterbox bars).

        Until the first picture the surface has no background, so the previous item
        stays visible around and under VLC's window; :meth:`hide` restores that.
        """
        if self._closed or self._filled or not self._visible:
            return True
        if not self._picture_shown():
            return False  # clearing now would blank where the picture is about to be
        xlib = _xlib()
        self._filled = True
        screen = xlib.XDefaultScreen(self._display)
        xlib.XSetWindowBackground(self._display, self._xid, xlib.XBlackPixel(self._display, screen))
        xlib.XClearWindow(self._display, self._xid)
        xlib.XFlush(self._display)
        return True

    def hide(self) -> None:
        if self._visible and not self._closed:
            self._visible = False
            xlib = _xlib()
            xlib.XUnmapWindow(self._display, self._xid)
            if self._filled:
                self._filled = False
                xlib.XSetWindowBackgroundPixmap(self._display, self._xid, 0)  # None
            xlib.XFlush(self._display)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._visible = False
            xlib = _xlib()
            xlib.XDestroyWindow(self._display, self._xid)
            xlib.XFlush(self._display)


def capture(display: Any, window: int, width: int, height: int) -> Image.Image | None:
    """What the screen shows over ``window``: its children, and windows above it.

    On an X server with a screen of its own (Xorg, Xvfb) this is read off the root
    window. Under rootless Xwayland (a Wayland compositor such as cage) the root window
    holds no picture and cannot be read: the window itself is read, with its child
    windows (VLC's video), and when the compositor shows another window over it (the
    focused one, ``_NET_ACTIVE_WINDOW``: a Chromium window) that one is read and laid
    over it. X's own stacking order says nothing there: cage shows the focused window.

    Returns ``None`` when the window is not on screen (unmapped, or off the screen).
    """
    xlib = _xlib()
    root = xlib.XDefaultRootWindow(display)
    x, y = ctypes.c_int(), ctypes.c_int()
    child = xlib.Window()
    if not xlib.XTranslateCoordinates(
        display, window, root, 0, 0, ctypes.byref(x), ctypes.byref(y), ctypes.byref(child)
    ):
        return None
    screen = xlib.XWindowAttributes()
    xlib.XGetWindowAttributes(display, root, ctypes.byref(screen))
    # The part of the window that is on the screen (XGetImage fails outside it).
    left, top = max(0, x.value), max(0, y.value)
    width = min(x.value + width, screen.width) - left
    height = min(y.value + height, screen.height) - top
    if width <= 0 or height <= 0:
        return None
    xlib.XSync(display, False)
    image = _read(display, root, left, top, width, height)
    if image is not None:
        return image
    # Rootless Xwayland answers BadMatch for the root window (pyglet's X error
    # handler ignores it): compose the picture from the windows themselves.
    image = _read(display, window, left - x.value, top - y.value, width, height)
    if image is None:
        return None
    box = (left, top, left + width, top + height)
    above = _active_window(display, root)
    if above is not None and above != window:
        attrs = xlib.XWindowAttributes()
        if (
            xlib.XGetWindowAttributes(display, above, ctypes.byref(attrs))
            and attrs.map_state == xlib.IsViewable
            and getattr(attrs, "class") == xlib.InputOutput
        ):
            x0, y0 = max(box[0], attrs.x), max(box[1], attrs.y)
            x1, y1 = min(box[2], attrs.x + attrs.width), min(box[3], attrs.y + attrs.height)
            if x1 > x0 and y1 > y0:
                part = _read(display, above, x0 - attrs.x, y0 - attrs.y, x1 - x0, y1 - y0)
                if part is not None:
                    image.paste(part, (x0 - left, y0 - top))
    return image


def _active_window(display: Any, root: int) -> int | None:
    """The root window's ``_NET_ACTIVE_WINDOW`` (set by the window manager), or ``None``."""
    xlib = _xlib()
    atom = xlib.XInternAtom(display, b"_NET_ACTIVE_WINDOW", True)
    if not atom:
        return None
    actual_type, actual_format = xlib.Atom(), ctypes.c_int()
    count, after = ctypes.c_ulong(), ctypes.c_ulong()
    data = ctypes.POINTER(ctypes.c_ubyte)()
    status = xlib.XGetWindowProperty(
        display,
        root,
        atom,
        0,
        1,
        False,
        XA_WINDOW,
        ctypes.byref(actual_type),
        ctypes.byref(actual_format),
        ctypes.byref(count),
        ctypes.byref(after),
        ctypes.byref(data),
    )
    try:
        if status != 0 or not count.value or actual_format.value != 32:
            return None
        return int(ctypes.cast(data, ctypes.POINTER(ctypes.c_ulong))[0]) or None
    finally:
        if data:
            xlib.XFree(data)


def _read(
    display: Any, drawable: int, x: int, y: int, width: int, height: int
) -> Image.Image | None:
    """Part of a window as a Pillow image, or ``None`` (X refused, or not 32-bit)."""
    xlib = _xlib()
    image = xlib.XGetImage(display, drawable, x, y, width, height, ALL_PLANES, ZPIXMAP)
    if not image:
        return None
    try:
        ximage = image.contents
        if ximage.bits_per_pixel != 32:
            logger.warning("cannot read a %d-bit screen", ximage.bits_per_pixel)
            return None
        size = ximage.bytes_per_line * ximage.height
        # pyglet declares ``data`` as a C string: read the pointer itself.
        address = ctypes.c_void_p.from_buffer(ximage, type(ximage).data.offset).value
        data = ctypes.string_at(address or 0, size)
        return Image.frombuffer(
            "RGB", (ximage.width, ximage.height), data, "raw", "BGRX", ximage.bytes_per_line, 1
        )
    finally:
        xlib._lib.XDestroyImage(image)


XK_PRIOR = 0xFF55  # PageUp
XK_NEXT = 0xFF56  # PageDown

PRESENTER_KEYS: dict[int, str] = {XK_NEXT: "next", XK_PRIOR: "prev"}
"""The keys of presenter remotes, grabbed while another program has the keyboard."""


class KeyGrab:
    """Presenter-remote keys for the kiosk while another program's window has the keyboard.

    A Chromium window over the panel takes the keyboard (without a window manager the
    keyboard goes to the window under the pointer, and a tap on the page focuses it),
    and a remote's PageDown would scroll the page instead of moving on. While
    :meth:`grab` is in force, PageUp and PageDown go to the kiosk whatever window has
    the focus: they are grabbed on the root window on a connection of this object's
    own, which :meth:`poll` reads. Other keys still reach the page (a quiz's form).

    Args:
        display: the X display name (``None``: ``$DISPLAY``).
    """

    def __init__(self, display: bytes | None = None) -> None:
        xlib = _xlib()
        self._display = xlib.XOpenDisplay(display)
        if not self._display:
            raise OSError("cannot open the X display for the presenter keys")
        self._root = xlib.XDefaultRootWindow(self._display)
        self._codes = {
            int(xlib.XKeysymToKeycode(self._display, keysym)): action
            for keysym, action in PRESENTER_KEYS.items()
        }
        self._codes.pop(0, None)  # a keysym the keyboard map lacks
        self.grabbed = False

    def grab(self, on: bool) -> None:
        """Grab the presenter keys (``on``) or let them go; idempotent."""
        if on == self.grabbed or not self._display:
            return
        xlib = _xlib()
        for code in self._codes:
            if on:
                xlib.XGrabKey(
                    self._display,
                    code,
                    xlib.AnyModifier,
                    self._root,
                    False,
                    xlib.GrabModeAsync,
                    xlib.GrabModeAsync,
                )
            else:
                xlib.XUngrabKey(self._display, code, xlib.AnyModifier, self._root)
        xlib.XFlush(self._display)
        self.grabbed = on

    def poll(self) -> list[str]:
        """The actions (``next``, ``prev``) of the presenter keys pressed since the last call."""
        if not self._display:
            return []
        xlib = _xlib()
        actions = []
        event = xlib.XEvent()
        while xlib.XPending(self._display):
            xlib.XNextEvent(self._display, ctypes.byref(event))
            if event.type == xlib.KeyPress:
                action = self._codes.get(int(event.xkey.keycode))
                if action is not None:
                    actions.append(action)
        return actions

    def close(self) -> None:
        if self._display:
            self.grab(False)
            _xlib().XCloseDisplay(self._display)
            self._display = None


HOLD_OPEN_TRIES = 3
"""Attempts to open the hold's own X connection (a busy server refuses now and then)."""

HOLD_POLL_S = 0.005
"""How often the window hold's thread looks for requests while it holds (it also wakes
at once when told to let go)."""


class WindowHold:
    """Keeps the top-level windows another program maps (Chromium's) under the panel
    window until :meth:`release`, so that a window that has not painted yet is never
    seen: the panel keeps showing the previous item meanwhile.

    While it holds, the kiosk redirects the mapping of top-level windows on the X
    screen (``SubstructureRedirectMask`` on the root window, as a window manager
    does) on a connection of its own, served by a thread: a window asked to be mapped
    is stacked just below ``below`` and mapped there; any other request is granted as
    asked. :meth:`release` raises the windows held and stops redirecting. When
    another program already redirects (a window manager, a Wayland compositor's
    Xwayland), :meth:`hold` returns False and windows open as they always did.

    Args:
        below: the panel window's top-level X window.
        display: the X display name (``None``: ``$DISPLAY``).
    """

    def __init__(self, below: int, display: bytes | None = None) -> None:
        self._below = below
        self._display_name = display
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._release = threading.Event()
        self._raise = True
        self._then: Callable[[], None] = lambda: None
        self.held: list[int] = []
        """The windows held below the panel window (the thread's; read for tests)."""
        self.holding = False
        self.managed_elsewhere = False
        """Another program redirects the mapping of windows: the kiosk never holds."""

    def hold(self) -> bool:
        """Start holding new top-level windows below the panel window (idempotent).

        Returns whether windows are held (False: another program manages them).
        """
        if self.managed_elsewhere:
            return False
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._release.set()  # a previous hold still ending
                self._thread.join(2.0)
            started = threading.Event()
            self._raise, self._then = True, lambda: None
            self._release.clear()
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, args=(started,), name="x11-window-hold", daemon=True
            )
            self._thread.start()
        started.wait(2.0)
        return self.holding

    def release(self, then: Callable[[], None] = lambda: None, *, raise_: bool = True) -> None:
        """Raise the windows held over the panel window (unless not ``raise_``: they
        are closing) and stop holding; returns at once: the thread raises them, then
        calls ``then`` (on its own thread; at once when nothing is held)."""
        with self._lock:
            thread = self._thread
            idle = thread is None or not thread.is_alive() or self._release.is_set()
            if idle or not self.holding:
                then()
                return
            self._raise, self._then = raise_, then
            self._release.set()

    def close(self) -> None:
        """Release and wait for the thread to end."""
        self._release.set()
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(2.0)

    def _run(self, started: threading.Event) -> None:
        xlib = _xlib()
        for _ in range(HOLD_OPEN_TRIES):
            display = xlib.XOpenDisplay(self._display_name)
            if display:
                break
        else:
            logger.warning("cannot open the X display to hold new windows")
            started.set()
            return
        try:
            root = xlib.XDefaultRootWindow(display)
            attrs = xlib.XWindowAttributes()
            xlib.XGetWindowAttributes(display, root, ctypes.byref(attrs))
            # Asking while another program redirects would be an X error (BadAccess),
            # which Xlib's default handler turns into an exit: look first.
            if not attrs.all_event_masks & xlib.SubstructureRedirectMask:
                xlib.XSelectInput(display, root, xlib.SubstructureRedirectMask)
                xlib.XSync(display, False)
                xlib.XGetWindowAttributes(display, root, ctypes.byref(attrs))
            self.holding = bool(attrs.your_event_mask & xlib.SubstructureRedirectMask)
            started.set()
            if not self.holding:
                self.managed_elsewhere = True
                logger.info("another program manages windows: new windows open as they map")
                return
            self._serve(display, root)
        except Exception:  # the one broad catch of this thread: windows then open as usual
            logger.exception("holding new windows failed")
        finally:
            self.holding = False
            started.set()
            xlib.XCloseDisplay(display)  # ends the redirection; windows held stay mapped

    def _serve(self, display: Any, root: int) -> None:
        xlib = _xlib()
        try:
            self._redirect(display)
        finally:  # released, or failed: never leave a window hidden under the panel
            for window in self.held if self._raise else ():
                xlib.XRaiseWindow(display, window)
            self.held = []
            xlib.XSelectInput(display, root, 0)
            xlib.XSync(display, False)
        self._then()

    def _redirect(self, display: Any) -> None:
        """Serve the redirected requests until released."""
        xlib = _xlib()
        event = xlib.XEvent()
        while True:
            while xlib.XPending(display):
                xlib.XNextEvent(display, ctypes.byref(event))
                if event.type == xlib.MapRequest:
                    window = int(event.xmaprequest.window)
                    changes = xlib.XWindowChanges()
                    changes.sibling = self._below
                    changes.stack_mode = xlib.Below
                    xlib.XConfigureWindow(
                        display, window, xlib.CWSibling | xlib.CWStackMode, ctypes.byref(changes)
                    )
                    xlib.XMapWindow(display, window)
                    self.held.append(window)
                elif event.type == xlib.ConfigureRequest:
                    request = event.xconfigurerequest
                    changes = xlib.XWindowChanges()
                    changes.x, changes.y = request.x, request.y
                    changes.width, changes.height = request.width, request.height
                    changes.border_width = request.border_width
                    mask = request.value_mask & ~(xlib.CWSibling | xlib.CWStackMode)
                    xlib.XConfigureWindow(display, request.window, mask, ctypes.byref(changes))
                xlib.XFlush(display)
            if self._release.is_set() or self._stop.is_set():
                break
            self._release.wait(HOLD_POLL_S)
