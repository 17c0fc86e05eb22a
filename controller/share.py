"""Screen sharing from the teacher's computer: capture, encode once, send to many panels.

Usage::

    share = ScreenShare(MssCapture(), [client_a, client_b], title="Экран")
    await share.start()          # share_start to every panel (moderation applies)
    await share.run(stop_event)  # until stop_event is set, or every panel stopped it
    await share.stop()           # share_stop to every panel still showing it

One capture and one H.264 encoder feed every panel. Each picture goes to each panel
only if that panel's connection has sent the previous one (newest frame only): a
slow panel misses pictures instead of building a queue, and the next picture it gets
is a keyframe (the panel would ask for one anyway, :mod:`protocol.stream`). An
unchanged screen is not encoded (its bytes are compared with the last picture's, a
memcmp); every ``SHARE_KEEPALIVE_S`` one tiny "nothing moved" picture is sent so that
panels tell a still screen from a lost one.

Capture and encoding run on a worker thread; the event loop only sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import fractions
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import av
import av.video.frame

from controller.client import KioskClient
from controller.x11 import WindowPlace, X11Windows
from protocol import limits
from protocol.codec import encode_stream_frame
from protocol.errors import ClassCastError, ConnectionFailedError, MalformedMessageError
from protocol.messages import StatusSnapshot

logger = logging.getLogger(__name__)

ENCODERS: Final = ("h264_nvenc", "h264_qsv", "libx264")
"""H.264 encoders tried in this order: hardware first, where the machine has it."""

SHARE_FPS: Final = 30
"""Pictures per second a share captures at most."""

X264_OPTIONS: Final = {
    "preset": "veryfast",
    "tune": "zerolatency",  # no lookahead, no frame delay: one picture in, one out
    "crf": "20",  # text stays sharp; a still screen costs nearly nothing anyway
    "x264-params": "vbv-maxrate=12000:vbv-bufsize=2000:rc-lookahead=0:sync-lookahead=0",
}
"""libx264 settings for slides and documents rather than film."""

FAST_PRESET_ABOVE_PIXELS: Final = 1280 * 720
"""Larger pictures are encoded with the ``superfast`` preset: 1080p costs 10 ms a picture
instead of 16, and a text slide keeps the same SSIM (bench/share.py)."""

HARDWARE_OPTIONS: Final = {
    "preset": "p1",
    "tune": "ull",
    "zerolatency": "1",
    "bf": "0",
    "forced-idr": "1",  # a keyframe asked for is an IDR a joining panel can start from
}
"""Options of the NVENC / QSV encoders (unknown options are ignored)."""

UNSENT_BYTES: Final = 64 * 1024
"""Bytes of a panel's connection that may wait unacknowledged (``KioskClient.unsent_bytes``;
the kernel is also told to hold no more unsent, ``limit_unsent_bytes``): more, and the
next picture for that panel is skipped."""

KEYFRAME_MIN_INTERVAL_S: Final = 0.25
"""Keyframes asked for by panels (or after a skipped picture) come at most this often."""

GOP_S: Final = 10
"""A keyframe at least this often even if nobody asks (a lost one repairs itself)."""


# --------------------------------------------------------------------------- capture


@dataclass(frozen=True, slots=True)
class Picture:
    """One captured screen: ``bgra`` rows top to bottom, ``width * 4`` bytes each."""

    width: int
    height: int
    bgra: bytes | bytearray


class Capture(Protocol):
    """A source of screen pictures (:class:`MssCapture`, or a test's own)."""

    @property
    def size(self) -> tuple[int, int]:
        """Width and height of every picture."""
        ...

    def grab(self) -> Picture:
        """The screen now (worker thread)."""
        ...

    def changed(self) -> bool:
        """Whether the screen may have changed since the last call (True when unknown);
        a False lets the share skip the grab."""
        ...

    def close(self) -> None: ...


class X11Damage:
    """Whether anything was drawn on an X screen, or the pointer moved, since the last look.

    The X server's Damage extension reports drawing on the root window (windows above
    it included) as one event until it is reset: a still screen costs one round trip
    per look, no capture. Everything runs on the caller's thread (the worker).

    Raises:
        OSError: no libX11 / libXdamage, the display does not open, or it has no Damage.
    """

    _REPORT_NON_EMPTY = 3
    _DAMAGE_NOTIFY = 0

    def __init__(self, display: str | None) -> None:
        x11_name, damage_name = ctypes.util.find_library("X11"), ctypes.util.find_library("Xdamage")
        if not x11_name or not damage_name:
            raise OSError("libX11 or libXdamage is missing")
        x11, xd = ctypes.CDLL(x11_name), ctypes.CDLL(damage_name)
        vp, ul, ci = ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int
        x11.XOpenDisplay.restype, x11.XOpenDisplay.argtypes = vp, [ctypes.c_char_p]
        x11.XDefaultRootWindow.restype, x11.XDefaultRootWindow.argtypes = ul, [vp]
        x11.XPending.argtypes = [vp]
        x11.XNextEvent.argtypes = [vp, vp]
        x11.XQueryPointer.argtypes = [vp, ul, *[vp] * 7]
        x11.XFlush.argtypes = [vp]
        x11.XCloseDisplay.argtypes = [vp]
        xd.XDamageQueryExtension.argtypes = [vp, vp, vp]
        xd.XDamageCreate.restype, xd.XDamageCreate.argtypes = ul, [vp, ul, ci]
        xd.XDamageSubtract.argtypes = [vp, ul, ul, ul]
        xd.XDamageDestroy.argtypes = [vp, ul]
        self._x11, self._xd = x11, xd
        name = (display or os.environ.get("DISPLAY", "")).encode()
        self._dpy = x11.XOpenDisplay(name or None)
        if not self._dpy:
            raise OSError(f"cannot open the X display {display!r}")
        event_base, error_base = ctypes.c_int(), ctypes.c_int()
        if not xd.XDamageQueryExtension(
            self._dpy, ctypes.byref(event_base), ctypes.byref(error_base)
        ):
            x11.XCloseDisplay(self._dpy)
            raise OSError("the X server has no Damage extension")
        self._notify = event_base.value + self._DAMAGE_NOTIFY
        self._root = x11.XDefaultRootWindow(self._dpy)
        self._damage = xd.XDamageCreate(self._dpy, self._root, self._REPORT_NON_EMPTY)
        self._event = (ctypes.c_long * 24)()
        self._pointer: tuple[int, int] | None = None

    def changed(self) -> bool:
        damaged = False
        while self._x11.XPending(self._dpy):
            self._x11.XNextEvent(self._dpy, self._event)
            if ctypes.cast(self._event, ctypes.POINTER(ctypes.c_int))[0] == self._notify:
                damaged = True
        if damaged:  # report the next drawing again
            self._xd.XDamageSubtract(self._dpy, self._damage, 0, 0)
            self._x11.XFlush(self._dpy)
        return self._pointer_moved() or damaged

    def _pointer_moved(self) -> bool:
        windows = [ctypes.c_ulong() for _ in range(2)]  # root, child
        coords = [ctypes.c_int() for _ in range(4)]  # root x, y; window x, y
        mask = ctypes.c_uint()
        self._x11.XQueryPointer(
            self._dpy,
            self._root,
            *(ctypes.byref(w) for w in windows),
            *(ctypes.byref(c) for c in coords),
            ctypes.byref(mask),
        )
        where = (coords[0].value, coords[1].value)
        moved, self._pointer = where != self._pointer, where
        return moved

    def close(self) -> None:
        if self._dpy:
            self._xd.XDamageDestroy(self._dpy, self._damage)
            self._x11.XCloseDisplay(self._dpy)
            self._dpy = None


class WindowNotFoundError(LookupError):
    """No shown window has the title asked for (``MssCapture(window=...)``)."""


class MssCapture:
    """The whole screen (or one monitor, or one window) through mss: XShm on X11,
    GDI on Windows.

    Args:
        display: the X display (``":0"``); None: ``$DISPLAY``.
        monitor: mss's monitor number (1 = the first screen; 0 = all of them).
        window: a window's title (or part of it, any case; X11 only): only that window
            is captured, where it is at each picture. Windows over it show too (this is
            the screen's content at its place); while it is minimised the last picture
            stays, and its size at the start is the size sent.

    Raises:
        OSError: no screen can be captured (no X server, or Wayland without XWayland).
        WindowNotFoundError: no shown window has that title.
    """

    def __init__(
        self, display: str | None = None, monitor: int = 1, *, window: str | None = None
    ) -> None:
        import mss

        try:
            if sys.platform.startswith("linux"):  # the pointer too: teachers point with it
                self._mss = mss.MSS(display=display, with_cursor=True)
            else:
                self._mss = mss.MSS()
            monitors = self._mss.monitors
            self._monitor = monitors[monitor if monitor < len(monitors) else 0]
        except mss.exception.ScreenShotError as exc:
            raise OSError(f"cannot capture the screen: {exc}") from None
        self._size = (int(self._monitor["width"]), int(self._monitor["height"]))
        self._windows: X11Windows | None = None
        self._window = 0
        self._last: Picture | None = None
        if window is not None:
            self._find_window(display, window)
        self._damage: X11Damage | None = None
        if sys.platform.startswith("linux"):
            try:
                self._damage = X11Damage(display)
            except OSError as exc:
                logger.info("every picture is captured to see what changed: %s", exc)

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def grab(self) -> Picture:
        region = self._monitor
        if self._windows is not None:
            place = self._windows.place(self._window)
            if place is None:  # minimised or closed: keep the last picture
                if self._last is not None:
                    return self._last
                raise OSError("the window to share is not shown")
            region = _clip(place, self._monitor)
        shot = self._mss.grab(region)
        self._last = Picture(shot.width, shot.height, shot.raw)
        return self._last

    def _find_window(self, display: str | None, title: str) -> None:
        windows = X11Windows(display)
        found = windows.find(title)
        place = windows.place(found) if found is not None else None
        if found is None or place is None:
            windows.close()
            raise WindowNotFoundError(title)
        self._windows, self._window = windows, found
        clipped = _clip(place, self._monitor)
        self._size = (int(clipped["width"]), int(clipped["height"]))

    def changed(self) -> bool:
        return self._damage is None or self._damage.changed()

    def close(self) -> None:
        if self._damage is not None:
            self._damage.close()
        if self._windows is not None:
            self._windows.close()
        self._mss.close()


def _clip(place: WindowPlace, screen: Mapping[str, Any]) -> dict[str, int]:
    """``place`` cut to the part on ``screen`` (an mss monitor), at least 16×16."""
    left = max(place.left, int(screen["left"]))
    top = max(place.top, int(screen["top"]))
    right = min(place.left + place.width, int(screen["left"]) + int(screen["width"]))
    bottom = min(place.top + place.height, int(screen["top"]) + int(screen["height"]))
    side = limits.MIN_SHARE_SIDE
    return {
        "left": left,
        "top": top,
        "width": max(side, right - left),
        "height": max(side, bottom - top),
    }


# --------------------------------------------------------------------------- encoding


def encoded_size(width: int, height: int) -> tuple[int, int]:
    """The size a screen of ``width``×``height`` is sent at: scaled down to fit
    ``MAX_SHARE_WIDTH``×``MAX_SHARE_HEIGHT`` (aspect kept), even sides (H.264 4:2:0)."""
    scale = min(1.0, limits.MAX_SHARE_WIDTH / width, limits.MAX_SHARE_HEIGHT / height)
    w = max(limits.MIN_SHARE_SIDE, int(width * scale) // 2 * 2)
    h = max(limits.MIN_SHARE_SIDE, int(height * scale) // 2 * 2)
    return w, h


@dataclass(frozen=True, slots=True)
class Encoded:
    """One encoded picture: H.264 Annex B, and whether it decodes on its own."""

    data: bytes
    keyframe: bool
    capture_us: int


class H264Encoder:
    """One H.264 encoder for pictures of one size (the first of :data:`ENCODERS` that opens).

    Raises:
        OSError: no H.264 encoder opens on this machine.
    """

    def __init__(self, width: int, height: int, *, fps: int = SHARE_FPS) -> None:
        self.width, self.height = width, height
        self._last_pts = -1
        self._started = time.monotonic()
        errors = []
        for name in ENCODERS:
            if name not in av.codecs_available:
                continue
            try:
                self.ctx = _open_encoder(name, width, height, fps)
            except (av.FFmpegError, ValueError) as exc:
                errors.append(f"{name}: {exc}")
                continue
            self.name = name
            logger.info("encoding the screen with %s at %d×%d", name, width, height)
            break
        else:
            raise OSError("no H.264 encoder works here: " + "; ".join(errors))

    def encode(self, picture: Picture, *, keyframe: bool, capture_us: int) -> list[Encoded]:
        """Encode ``picture`` (scaled to the encoder's size); ``keyframe`` forces an IDR."""
        frame = av.VideoFrame(picture.width, picture.height, "bgra")
        plane = frame.planes[0]
        row = picture.width * 4
        view = memoryview(plane)
        if plane.line_size == row:
            view[: len(picture.bgra)] = picture.bgra
        else:  # the frame's rows are padded: copy row by row
            for y in range(picture.height):
                start = y * plane.line_size
                view[start : start + row] = picture.bgra[y * row : (y + 1) * row]
        yuv = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        yuv.pts = round((time.monotonic() - self._started) * 1000)
        if yuv.pts <= self._last_pts:
            yuv.pts = self._last_pts + 1
        self._last_pts = yuv.pts
        if keyframe:
            yuv.pict_type = av.video.frame.PictureType.I
        return [
            Encoded(bytes(packet), packet.is_keyframe, capture_us)
            for packet in self.ctx.encode(yuv)
        ]

    def close(self) -> None:
        with contextlib.suppress(av.FFmpegError):
            self.ctx.encode(None)


def _open_encoder(name: str, width: int, height: int, fps: int) -> av.VideoCodecContext:
    ctx = av.CodecContext.create(name, "w")
    assert isinstance(ctx, av.VideoCodecContext)
    ctx.width, ctx.height = width, height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = fractions.Fraction(1, 1000)
    ctx.framerate = fractions.Fraction(fps, 1)
    ctx.gop_size = GOP_S * fps
    ctx.max_b_frames = 0
    options = dict(X264_OPTIONS if name == "libx264" else HARDWARE_OPTIONS)
    if name == "libx264" and width * height > FAST_PRESET_ABOVE_PIXELS:
        options["preset"] = "superfast"
    ctx.options = options
    ctx.open()
    return ctx


# --------------------------------------------------------------------------- pacing


@dataclass(slots=True)
class SharePacer:
    """When to capture, and whether a captured picture must be encoded (pure; takes ``now``).

    Call :meth:`next_capture_s` to know when to capture, then :meth:`decide` with
    whether the picture changed; :meth:`want_keyframe` when a panel asks for one or
    missed a picture.
    """

    fps: int = SHARE_FPS
    _last_capture_s: float = float("-inf")
    _last_sent_s: float = float("-inf")
    _keyframe_wanted: bool = True
    _last_keyframe_s: float = float("-inf")

    def next_capture_s(self) -> float:
        return self._last_capture_s + 1 / self.fps

    def want_keyframe(self) -> None:
        self._keyframe_wanted = True

    def decide(self, *, changed: bool, now: float) -> tuple[bool, bool]:
        """For a picture captured at ``now``: (encode it, as a keyframe)."""
        self._last_capture_s = now
        keyframe = self._keyframe_wanted and now >= self._last_keyframe_s + KEYFRAME_MIN_INTERVAL_S
        send = changed or keyframe or now >= self._last_sent_s + limits.SHARE_KEEPALIVE_S
        if not send:
            return False, False
        self._last_sent_s = now
        if keyframe:
            self._keyframe_wanted = False
            self._last_keyframe_s = now
        return True, keyframe


# --------------------------------------------------------------------------- fan-out


@dataclass(slots=True)
class _Panel:
    client: KioskClient
    sending: asyncio.Task[None] | None = None
    status_listener: Callable[[StatusSnapshot], None] | None = None
    watched: bool = False
    showing: bool = True
    sent: int = 0
    skipped: int = 0
    why_stopped: str | None = None


@dataclass(slots=True)
class ShareStats:
    """What a share did: pictures captured, encoded, and sent / skipped per panel."""

    encoder: str = ""
    captured: int = 0
    encoded: int = 0
    keyframes: int = 0
    bytes_encoded: int = 0
    sent: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)


class ScreenShare:
    """One screen shared to the panels of ``clients`` (each a greeted, paired connection).

    Call :meth:`start`, then :meth:`run` until it returns, then :meth:`stop`.
    """

    def __init__(self, capture: Capture, clients: Sequence[KioskClient], *, title: str) -> None:
        self.capture = capture
        self.title = title
        self.stream_id = secrets.randbelow(2**32)
        self.width, self.height = encoded_size(*capture.size)
        self._panels = [_Panel(c) for c in clients]
        self._pacer = SharePacer()
        self._encoder: H264Encoder | None = None
        self._seq = 0
        self._previous: Picture | None = None
        self.stats = ShareStats()
        self._all_stopped = asyncio.Event()

    @property
    def panels(self) -> list[KioskClient]:
        """The panels still showing this share."""
        return [p.client for p in self._panels if p.showing]

    def stopped_panels(self) -> list[tuple[KioskClient, str]]:
        """Panels that stopped showing the share, and why (for the teacher)."""
        return [(p.client, p.why_stopped or "") for p in self._panels if not p.showing]

    async def start(self) -> list[tuple[KioskClient, ClassCastError]]:
        """Ask every panel to show the share (``share_start``).

        Returns:
            The panels that refused (``BusyError`` and the like) with their errors;
            they are left out of the share. Raise or stop if none accepted.
        """
        self._encoder = await asyncio.to_thread(H264Encoder, self.width, self.height)
        self.stats.encoder = self._encoder.name
        results = await asyncio.gather(
            *(
                p.client.share_start(self.stream_id, self.width, self.height, self.title)
                for p in self._panels
            ),
            return_exceptions=True,
        )
        refused: list[tuple[KioskClient, ClassCastError]] = []
        for panel, result in zip(self._panels, results, strict=True):
            if isinstance(result, ClassCastError):
                panel.showing = False
                panel.why_stopped = str(result)
                refused.append((panel.client, result))
            elif isinstance(result, BaseException):
                raise result
            else:
                panel.client.limit_unsent_bytes(UNSENT_BYTES)
                self._watch(panel)
        return refused

    async def run(self, stop: asyncio.Event) -> None:
        """Capture, encode and send until ``stop`` is set or no panel shows the share."""
        loop = asyncio.get_running_loop()
        while not stop.is_set() and any(p.showing for p in self._panels):
            delay = self._pacer.next_capture_s() - loop.time()
            if delay > 0:
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({stopper}, timeout=delay)
                stopper.cancel()
                if stop.is_set():
                    break
            pictures = await asyncio.to_thread(self._capture_and_encode, loop.time())
            for encoded in pictures:
                self._send(encoded)

    async def stop(self) -> None:
        """Tell every panel still showing the share that it ended (``share_stop``)."""
        for panel in self._panels:
            if panel.sending is not None:
                panel.sending.cancel()
        showing = [p for p in self._panels if p.showing]
        await asyncio.gather(
            *(p.client.share_stop(self.stream_id) for p in showing), return_exceptions=True
        )
        for panel in showing:
            panel.showing = False
            panel.why_stopped = "stopped"
        for panel in self._panels:
            panel.client.limit_unsent_bytes(None)
            if panel.watched:
                self._unwatch(panel)
        if self._encoder is not None:
            self._encoder.close()
        self.capture.close()

    # ----------------------------------------------------------------- worker thread

    def _capture_and_encode(self, now: float) -> list[Encoded]:
        capture_us = time.time_ns() // 1000
        previous = self._previous
        changed = False
        if previous is None or self.capture.changed():
            picture = self.capture.grab()
            self.stats.captured += 1
            changed = previous is None or picture.bgra != previous.bgra
            self._previous = picture
        else:
            picture = previous  # nothing was drawn: no capture at all
        encode, keyframe = self._pacer.decide(changed=changed, now=now)
        if not encode:
            return []
        assert self._encoder is not None
        out = self._encoder.encode(picture, keyframe=keyframe, capture_us=capture_us)
        for e in out:
            self.stats.encoded += 1
            self.stats.keyframes += e.keyframe
            self.stats.bytes_encoded += len(e.data)
        return out

    # ----------------------------------------------------------------- event loop

    def _send(self, encoded: Encoded) -> None:
        seq, self._seq = self._seq, self._seq + 1
        try:
            frame = encode_stream_frame(
                self.stream_id,
                seq,
                encoded.data,
                keyframe=encoded.keyframe,
                capture_us=encoded.capture_us,
            )
        except MalformedMessageError as exc:  # a picture over MAX_STREAM_FRAME_BYTES
            logger.warning("picture %d not sent: %s", seq, exc)
            self._pacer.want_keyframe()
            return
        for panel in self._panels:
            if not panel.showing:
                continue
            name = panel.client.name
            busy = panel.sending is not None and not panel.sending.done()
            if busy or panel.client.unsent_bytes() > UNSENT_BYTES:
                panel.skipped += 1
                self.stats.skipped[name] = panel.skipped
                self._pacer.want_keyframe()  # it missed this one: it needs a keyframe
                continue
            panel.sending = asyncio.ensure_future(self._send_to(panel, frame))
            panel.sent += 1
            self.stats.sent[name] = panel.sent

    async def _send_to(self, panel: _Panel, frame: bytes) -> None:
        try:
            await panel.client.send_stream_frame(frame)
        except ConnectionFailedError as exc:
            self._stopped(panel, str(exc))
        except Exception as exc:  # the one broad catch of a send: that panel stops, not all
            logger.exception("sending a picture to %s failed", panel.client.name)
            self._stopped(panel, str(exc))

    def _watch(self, panel: _Panel) -> None:
        """Listen to the panel's events; whoever listened to its status still hears it."""
        client = panel.client
        client.on_keyframe_request = lambda stream_id: self._keyframe_asked(stream_id)
        before = client.on_status
        panel.status_listener, panel.watched = before, True

        def on_status(status: StatusSnapshot) -> None:
            if status.state == "idle" or status.item_kind != "screen":
                self._stopped(panel, "stopped on the panel")
            if before is not None:
                before(status)

        def on_share_error(message: str) -> None:
            self._stopped(panel, message)

        client.on_status = on_status
        client.on_share_error = on_share_error

    @staticmethod
    def _unwatch(panel: _Panel) -> None:
        client = panel.client
        client.on_keyframe_request = None
        client.on_share_error = None
        client.on_status = panel.status_listener
        panel.watched = False

    def _keyframe_asked(self, stream_id: int) -> None:
        if stream_id == self.stream_id:
            self._pacer.want_keyframe()

    def _stopped(self, panel: _Panel, why: str) -> None:
        if panel.showing:
            logger.info("%s stopped showing the screen: %s", panel.client.name, why)
            panel.showing = False
            panel.why_stopped = why
