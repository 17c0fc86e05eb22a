"""Video playback: libVLC behind the small :class:`VideoOut` protocol.

The window owns one :class:`VideoOut` per video item and carries out the player's
``VideoCommand`` effects on it (``pause``, ``play``, ``seek``)::

    video = VlcVideo()                       # frame callbacks (headless, tests, textures)
    video = VlcVideo(xwindow=window_xid)     # VLC draws into a native X11 window
    video.on_frame = wake_main_loop          # VLC thread: a new frame is ready
    video.on_end = lambda: post(service.video_ended, index)    # VLC thread!
    video.on_error = lambda error: post(show_fallback, error)  # VLC thread!
    video.load(path)
    video.play()
    ...
    frame = video.latest_frame()             # main thread: upload ``frame.data`` as a texture
    reading = video.position_reading()       # where it was, and when (keeping it on time)
    video.close()                            # always: releases the player and its threads

Two outputs sit behind the same interface (DESIGN §3):

* **frame callbacks** (the default): libVLC decodes and converts every picture to
  ``RV32`` into one of two buffers of ours (``libvlc_video_set_callbacks`` with a
  format callback, so the picture keeps the video's own size unless ``size`` is
  given); :meth:`VlcVideo.latest_frame` returns the newest complete picture. Works
  without any display.
* **embedded output** (``xwindow=``): VLC's own video output draws into an X11
  window (``libvlc_media_player_set_xwindow``); fastest, used on real panels. Needs
  an X server and VLC's X11 outputs (Debian ``vlc-plugin-video-output``);
  :meth:`VlcVideo.latest_frame` is always ``None``.

Threads: every method is meant to be called from one thread (the pyglet main
thread). ``on_frame``, ``on_end`` and ``on_error`` are called from libVLC's own
threads: they must return quickly, must not call back into the ``VideoOut`` (libVLC
deadlocks when a player is stopped from its own event thread) and must hand the news
to the main thread, e.g. with ``pyglet.app.platform_event_loop.post_event``.

python-vlc (untyped) comes from :func:`media.libvlc.vlc_module` (its one import in
ClassCast), lazily, so importing this module for :class:`VideoOut` or
:class:`VideoFrame` needs no libVLC.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from media.libvlc import vlc_module
from protocol.errors import CorruptContentError

logger = logging.getLogger(__name__)

KIOSK_VLC_ARGS: Final = (
    "--quiet",
    "--no-xlib",  # pyglet uses Xlib itself; VLC's X11 outputs (xcb) do not need it
    "--no-video-title-show",  # no file name painted over the first seconds
    "--no-osd",
    "--no-snapshot-preview",
    "--no-sub-autodetect-file",
    "--no-disable-screensaver",  # the kiosk session manages the screen itself
    "--no-lua",
    "--no-stats",
)
"""Arguments of the process-wide ``vlc.Instance`` on every kiosk."""

HEADLESS_VLC_ARGS: Final = ("--aout=dummy", "--vout=dummy", "--avcodec-hw=none")
"""Extra arguments for tests and benchmarks (DESIGN §9): no sound card, no display.

``--avcodec-hw=none``: no probing for VA-API/VDPAU (which complains on stderr without
a display or ``XDG_RUNTIME_DIR``), and the same software decoding on every machine.
``--vout=dummy`` only applies to players with neither frame callbacks nor a window
(frame callbacks select VLC's ``vmem`` output, ``set_xwindow`` its X11 outputs).
Not ``--no-video``: a video-only file never reaches *Playing* with it.
"""

CHROMA: Final = "RV32"
BYTES_PER_PIXEL: Final = 4
_ALIGN: Final = 32  # libVLC wants planes, pitches and line counts aligned to 32
FRAME_COPIES: Final = 3
"""Buffers :meth:`VlcVideo.latest_frame` copies frames into, in turn: a frame's
``data`` is overwritten once this many newer frames were read. Reused rather than
allocated for every frame: a 720p frame is 3.7 MB, 30 times a second."""


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """One complete decoded picture in ``RV32``.

    Rows run top to bottom, ``pitch`` bytes apart (``pitch >= width * 4``); each pixel
    is 4 bytes in memory order B, G, R, X (pyglet: ``ImageData(width, height, "BGRA",
    data, pitch=-pitch)``, the negative pitch because pyglet's rows run bottom up).
    ``number`` grows by one with every picture a :class:`VlcVideo` delivers, across
    :meth:`VideoOut.load` calls, so a consumer can tell a new frame from the last one.
    """

    width: int
    height: int
    pitch: int
    data: ctypes.Array[ctypes.c_char]
    """The pixels; reused for a later frame once :data:`FRAME_COPIES` newer frames were
    read (upload them at once, or keep ``bytes(data)``)."""
    number: int


@dataclass(frozen=True, slots=True)
class PositionReading:
    """Where the video was, and when: the position the video library last published and
    the monotonic time (``time.monotonic()``) it published it at.

    libVLC publishes its position every 250 ms and holds it in between: a position
    read without its time is up to that old (see :mod:`kiosk.drift`).
    """

    at_s: float
    position_ms: int


class VideoOut(Protocol):
    """What the window needs from a video player (implemented by :class:`VlcVideo`).

    The callbacks are called from a thread of the video library, never the caller's:
    hand the news to the main thread and return (see the module docstring).
    """

    on_frame: Callable[[], None] | None
    """A new frame is ready for :meth:`latest_frame` (frame-callback output only)."""
    on_started: Callable[[], None] | None
    """The first picture after :meth:`load` is ready: with frame callbacks its frame
    was decoded; with the embedded output VLC opened its window, where it draws it."""
    on_end: Callable[[], None] | None
    """The media played to its end (report it with ``KioskService.video_ended``)."""
    on_error: Callable[[CorruptContentError], None] | None
    """The media cannot be played: unreadable, corrupt, truncated or without video."""

    @property
    def embedded(self) -> bool:
        """Whether the video library draws the pictures itself (no :meth:`latest_frame`)."""
        ...

    def load(self, path: Path) -> None:
        """Stop what plays and prepare ``path``; call :meth:`play` to start it.

        Raises:
            CorruptContentError: ``path`` is not a readable file. A file that exists
                but cannot be decoded is reported later through ``on_error``.
        """
        ...

    def play(self) -> None:
        """Start the loaded media, or resume it after :meth:`pause`."""
        ...

    def pause(self) -> None:
        """Pause; the last frame stays shown. Idempotent."""
        ...

    def seek(self, position_ms: int) -> None:
        """Jump to ``position_ms`` from the start (playing or paused)."""
        ...

    def set_volume(self, percent: int) -> None:
        """Set the volume, 0–100 (clamped)."""
        ...

    def set_rate(self, rate: float) -> None:
        """Play at ``rate`` times the normal speed (1.0: normal), keeping the pitch."""
        ...

    def stop(self) -> None:
        """Stop playback; :meth:`play` starts again from the beginning."""
        ...

    def position_ms(self) -> int:
        """Return the playback position (0 before playback started)."""
        ...

    def duration_ms(self) -> int | None:
        """Return the media's length, or ``None`` while it is not known yet."""
        ...

    def position_reading(self) -> PositionReading | None:
        """Return the last position published since playback started or moved (a load,
        a seek), with the time it was true at; ``None`` before the first."""
        ...

    def latest_frame(self) -> VideoFrame | None:
        """Return the newest complete frame, or ``None`` (none yet, or embedded output)."""
        ...

    def close(self) -> None:
        """Stop and release everything; the object is unusable afterwards. Idempotent."""
        ...


# --------------------------------------------------------------------------- libVLC


_instance_lock = threading.Lock()
_instance: Any = None
_instance_args: tuple[str, ...] = ()
_extra_args: tuple[str, ...] = ()


def configure_vlc(extra_args: Sequence[str]) -> None:
    """Add ``extra_args`` (e.g. :data:`HEADLESS_VLC_ARGS`) to the shared ``vlc.Instance``.

    Call before the first :class:`VlcVideo` of the process; calling again with the
    same arguments is harmless.

    Raises:
        RuntimeError: the instance already exists with other arguments.
    """
    global _extra_args
    with _instance_lock:
        wanted = tuple(extra_args)
        if _instance is not None and wanted != _extra_args:
            raise RuntimeError(f"vlc.Instance already created with {_instance_args}")
        _extra_args = wanted


def _vlc() -> Any:
    return vlc_module()


def load_libvlc() -> None:
    """Import python-vlc and load ``libvlc.so`` now (~35 ms) rather than at the first video.

    Raises:
        OSError: libVLC is not installed (Debian ``libvlc5``).
    """
    _vlc()


def shared_instance() -> Any:
    """Return the process-wide ``vlc.Instance``, creating it on first use.

    Creating it takes ~5 ms with the plugin cache of Debian's ``libvlc-bin``
    (``plugins.dat``), ~130 ms without; importing python-vlc first takes ~35 ms more.
    """
    global _instance, _instance_args
    with _instance_lock:
        if _instance is None:
            args = (*KIOSK_VLC_ARGS, *_extra_args)
            instance = _vlc().Instance(list(args))
            if instance is None:  # libvlc_new failed: bad argument or no plugins
                raise RuntimeError(f"libVLC cannot start with {args}")
            _instance, _instance_args = instance, args
        return _instance


def _align(value: int) -> int:
    return (value + _ALIGN - 1) // _ALIGN * _ALIGN


_FormatCb = ctypes.CFUNCTYPE(
    ctypes.c_uint,
    ctypes.POINTER(ctypes.c_void_p),
    ctypes.c_void_p,  # char *chroma, written in place (python-vlc declares it read-only)
    ctypes.POINTER(ctypes.c_uint),
    ctypes.POINTER(ctypes.c_uint),
    ctypes.POINTER(ctypes.c_uint),
    ctypes.POINTER(ctypes.c_uint),
)
_CleanupCb = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_memcmp = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)(
    ("memcmp", ctypes.CDLL(None))
)


class _FrameSink:
    """Three RV32 buffers libVLC decodes into: the newest complete one, the one a
    reader is copying, and the one being written.

    libVLC (``vmem`` with one picture) calls, on its video output thread, ``setup``
    once per format, then for every picture ``lock`` (where to write) → ``unlock`` →
    ``display`` (the picture is due now). ``lock`` hands out a buffer that is neither
    the newest complete one nor being read, so a frame is never read half written.
    The reader copies outside ``_mutex``: with only two buffers, ``display`` would
    wait for a reader's 8 MB copy of a 1080p frame and libVLC would drop late
    pictures (20 instead of 30 fps in ``bench.video``). Nothing here may raise into
    libVLC: a ctypes callback that raises returns garbage.

    While paused, libVLC (3.0) still renders and displays the paused picture again
    about every 60 ms; with ``paused`` set, a picture equal to the newest one is
    dropped (no new number, no ``on_frame``), so a paused video costs the window
    nothing. A seek while paused that shows a new picture still counts.
    """

    def __init__(self, size: tuple[int, int] | None, on_frame: Callable[[], None]) -> None:
        self._size = size
        self._on_frame = on_frame
        self._mutex = threading.Lock()
        self._buffers: list[ctypes.Array[ctypes.c_char]] = []
        self._offsets: list[int] = []  # to the first 32-byte aligned address
        self._width = self._height = self._pitch = 0
        self._ready = -1
        self._reading = -1
        self._number = 0
        self._cached: VideoFrame | None = None
        self._copies: list[ctypes.Array[ctypes.c_char]] = []
        self._next_copy = 0
        self.frames_since_load = 0
        self._pinned_size: tuple[int, int] | None = None
        self.paused = False
        vlc = _vlc()
        self.c_setup = _FormatCb(self._setup)
        self.c_cleanup = _CleanupCb(self._cleanup)
        self.c_lock = vlc.CallbackDecorators.VideoLockCb(self._lock)
        self.c_unlock = vlc.CallbackDecorators.VideoUnlockCb(self._unlock)
        self.c_display = vlc.CallbackDecorators.VideoDisplayCb(self._display)

    def reset_for_load(self) -> None:
        """A new file: forget its predecessor's size; frame numbers go on growing."""
        with self._mutex:
            self.frames_since_load = 0
            self._pinned_size = None
            self.paused = False

    def attach(self, player: Any) -> None:
        vlc = _vlc()
        player.video_set_callbacks(self.c_lock, self.c_unlock, self.c_display, None)
        # python-vlc types ``chroma`` as c_char_p, which a callback cannot write to:
        # call the C function through our own prototype instead.
        set_format_callbacks = ctypes.CFUNCTYPE(None, ctypes.c_void_p, _FormatCb, _CleanupCb)(
            ("libvlc_video_set_format_callbacks", vlc.dll)
        )
        set_format_callbacks(player._as_parameter_, self.c_setup, self.c_cleanup)

    def _setup(
        self,
        opaque: Any,
        chroma: int | None,
        width: Any,
        height: Any,
        pitches: Any,
        lines: Any,
    ) -> int:
        try:
            if chroma is None:
                return 0
            # libVLC (3.0) may set the output up several times per file and, after the
            # first time, offer a size that is off by the aspect ratio (320x258 for a
            # 320x240 video): keep the size first offered for the whole file.
            if self._pinned_size is None:
                self._pinned_size = self._size or (int(width[0]), int(height[0]))
            w, h = self._pinned_size
            width[0], height[0] = w, h
            if w <= 0 or h <= 0:
                return 0
            ctypes.memmove(chroma, CHROMA.encode(), 4)
            pitch, rows = _align(w * BYTES_PER_PIXEL), _align(h)
            pitches[0], lines[0] = pitch, rows
            buffers = [ctypes.create_string_buffer(pitch * rows + _ALIGN) for _ in range(3)]
            offsets = [-ctypes.addressof(b) % _ALIGN for b in buffers]
            with self._mutex:
                self._buffers, self._offsets = buffers, offsets
                self._width, self._height, self._pitch = w, h, pitch
                self._ready, self._reading, self._cached = -1, -1, None
            return 1  # one picture: lock, unlock and display strictly alternate
        except Exception:
            return 0  # libVLC gives up on this video output; on_end sees no frames

    def release(self) -> None:
        """Free the buffers and the last frame, and forget ``on_frame``, at once.

        Call once libVLC no longer calls back (its player stopped and released). The
        sink refers to itself through its C callbacks, so without this its buffers
        (three frames: 11 MB at 720p, 25 MB at 1080p) would wait for the cyclic garbage
        collector after every video shown.
        """
        with self._mutex:
            self._buffers, self._offsets, self._copies = [], [], []
            self._ready, self._reading, self._cached = -1, -1, None
        self._on_frame = _nothing

    def _cleanup(self, opaque: Any) -> None:
        """The video output closed; keep the last frame for whoever still shows it."""

    def _lock(self, opaque: Any, planes: Any) -> int:
        with self._mutex:
            index = next(i for i in range(3) if i not in (self._ready, self._reading))
            planes[0] = ctypes.addressof(self._buffers[index]) + self._offsets[index]
        return index + 1  # the picture id handed to display; must not be NULL

    def _unlock(self, opaque: Any, picture: Any, planes: Any) -> None:
        pass

    def _display(self, opaque: Any, picture: int | None) -> None:
        with self._mutex:
            index = (picture or 1) - 1
            if self.paused and self._ready >= 0 and index != self._ready:
                size = self._pitch * self._height
                new = ctypes.addressof(self._buffers[index]) + self._offsets[index]
                old = ctypes.addressof(self._buffers[self._ready]) + self._offsets[self._ready]
                if _memcmp(new, old, size) == 0:
                    return  # the paused picture shown again
            self._ready = index
            self._number += 1
            self.frames_since_load += 1
        self._on_frame()

    def latest(self) -> VideoFrame | None:
        with self._mutex:
            cached = self._cached
            if self._ready < 0 or (cached is not None and cached.number == self._number):
                return cached
            index = self._reading = self._ready
            buffer, number = self._buffers[index], self._number
            width, height, pitch = self._width, self._height, self._pitch
            address = ctypes.addressof(buffer) + self._offsets[index]
            size = pitch * height
            if not self._copies or len(self._copies[0]) != size:
                self._copies = [ctypes.create_string_buffer(size) for _ in range(FRAME_COPIES)]
            data = self._copies[self._next_copy]
            self._next_copy = (self._next_copy + 1) % FRAME_COPIES
        try:
            ctypes.memmove(data, address, size)  # one copy, lock not held
        finally:
            with self._mutex:
                self._reading = -1
        frame = VideoFrame(width, height, pitch, data, number)
        with self._mutex:
            if self._cached is None or self._cached.number < number:
                self._cached = frame
        return frame


class VlcVideo:
    """A :class:`VideoOut` on libVLC: one ``MediaPlayer`` of the shared instance.

    Args:
        xwindow: draw with VLC's own output into this X11 window id (embedded output);
            ``None`` decodes into frames for :meth:`latest_frame` (frame callbacks).
        size: with frame callbacks, scale pictures to ``(width, height)``; ``None``
            keeps each video's own size.
        decode_only: neither frames nor a window: the instance's ``--vout`` shows the
            video (``dummy`` with :data:`HEADLESS_VLC_ARGS`); the benchmarks' baseline.

    Raises:
        RuntimeError: libVLC cannot start (see :func:`shared_instance`).
    """

    def __init__(
        self,
        *,
        xwindow: int | None = None,
        size: tuple[int, int] | None = None,
        decode_only: bool = False,
    ) -> None:
        self.on_frame: Callable[[], None] | None = None
        self.on_started: Callable[[], None] | None = None
        self._started = False
        self.on_end: Callable[[], None] | None = None
        self.on_error: Callable[[CorruptContentError], None] | None = None
        vlc = _vlc()
        self._event = vlc.EventType
        self._player: Any = shared_instance().media_player_new()
        self._media: Any = None
        self._path: Path | None = None
        self._vouts_seen = 0
        self._reading: PositionReading | None = None
        self._volume_percent = 100
        self._sink: _FrameSink | None = None
        if decode_only:
            pass
        elif xwindow is None:
            self._sink = _FrameSink(size, self._frame_ready)
            self._sink.attach(self._player)
        else:
            self._player.set_xwindow(xwindow)
            self._player.video_set_key_input(False)  # keys and clicks go to the window
            self._player.video_set_mouse_input(False)
        events = self._player.event_manager()
        self._events = events
        self._attached = (
            self._event.MediaPlayerEndReached,
            self._event.MediaPlayerEncounteredError,
            self._event.MediaPlayerVout,
            self._event.MediaPlayerTimeChanged,
        )
        events.event_attach(self._event.MediaPlayerEndReached, self._vlc_end)
        events.event_attach(self._event.MediaPlayerEncounteredError, self._vlc_error)
        events.event_attach(self._event.MediaPlayerVout, self._vlc_vout)
        events.event_attach(self._event.MediaPlayerTimeChanged, self._vlc_time)

    @property
    def embedded(self) -> bool:
        """Whether VLC shows the video itself (no frames for :meth:`latest_frame`)."""
        return self._sink is None

    # ----------------------------------------------------------------- VideoOut

    def load(self, path: Path) -> None:
        """Stop what plays and prepare ``path``; call :meth:`play` to start it.

        Raises:
            CorruptContentError: ``path`` is not a readable file.
        """
        player = self._live()
        if not path.is_file():
            raise CorruptContentError(f"video file not found: {path}", path=str(path))
        player.stop()
        if self._media is not None:
            self._media.release()
        self._media = shared_instance().media_new_path(str(path))
        if self._media is None:
            raise CorruptContentError(f"libVLC cannot open {path}", path=str(path))
        player.set_media(self._media)
        self._path = path
        self._vouts_seen = 0
        self._reading = None
        self._started = False
        if self._sink is not None:
            self._sink.reset_for_load()

    def play(self) -> None:
        """Start the loaded media, or resume it after :meth:`pause`."""
        player = self._player
        if player is None or self._media is None:
            return
        self._set_paused(False)
        if player.get_state() == _vlc().State.Paused:
            player.set_pause(0)
        else:
            player.play()
            player.audio_set_volume(self._volume_percent)

    def pause(self) -> None:
        """Pause; the last frame stays shown. Idempotent."""
        if self._player is not None:
            self._set_paused(True)
            self._player.set_pause(1)

    def seek(self, position_ms: int) -> None:
        """Jump to ``position_ms`` from the start.

        Takes effect once playback has started (libVLC ignores a seek while opening).
        """
        if self._player is not None:
            self._reading = None
            self._player.set_time(max(0, position_ms))

    def set_volume(self, percent: int) -> None:
        """Set the volume, 0–100 (clamped); kept for later :meth:`play` calls too."""
        self._volume_percent = max(0, min(100, percent))
        if self._player is not None:
            self._player.audio_set_volume(self._volume_percent)

    def set_rate(self, rate: float) -> None:
        """Play at ``rate`` times the normal speed (libVLC keeps the pitch)."""
        if self._player is not None:
            self._player.set_rate(rate)

    def stop(self) -> None:
        """Stop playback (waits for libVLC's threads); :meth:`play` starts over."""
        if self._player is not None:
            self._player.stop()
            self._reading = None
            self._set_paused(False)

    def position_ms(self) -> int:
        """Return the playback position (0 before playback started)."""
        if self._player is None:
            return 0
        return max(0, int(self._player.get_time()))

    def duration_ms(self) -> int | None:
        """Return the media's length, or ``None`` while it is not known yet."""
        if self._player is None:
            return None
        length = int(self._player.get_length())
        return length if length > 0 else None

    def position_reading(self) -> PositionReading | None:
        """Return the position libVLC published last (every 250 ms while playing) and
        the monotonic time it did; ``None`` before the first since :meth:`load` or
        :meth:`seek`."""
        return self._reading

    def latest_frame(self) -> VideoFrame | None:
        """Return the newest complete frame (the same object until a new one arrives).

        ``None`` before the first frame and always with the embedded output.
        """
        return None if self._sink is None else self._sink.latest()

    def close(self) -> None:
        """Stop and release the player; the object is unusable afterwards. Idempotent.

        Must not be called from ``on_end``/``on_error``/``on_frame`` (libVLC threads).
        """
        player, self._player = self._player, None
        if player is None:
            return
        try:
            player.stop()  # synchronous: the input and video output threads are joined
            for event_type in self._attached:
                self._events.event_detach(event_type)
        finally:
            player.release()
            if self._media is not None:
                self._media.release()
                self._media = None
            if self._sink is not None:
                self._sink.release()
        # No reference cycle left through the callbacks (the scene's refer to this
        # object): the object and its frames go as soon as the caller drops it.
        self.on_frame = self.on_started = self.on_end = self.on_error = None
        # The ctypes callbacks in ``_sink`` stay referenced until this object goes:
        # libVLC no longer calls them after ``release``.

    def __enter__(self) -> VlcVideo:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------ libVLC threads

    def _set_paused(self, paused: bool) -> None:
        if self._sink is not None:
            self._sink.paused = paused

    def _live(self) -> Any:
        if self._player is None:
            raise RuntimeError("VlcVideo is closed")
        return self._player

    def _frame_ready(self) -> None:
        self._start()
        callback = self.on_frame
        if callback is not None:
            _call_safely(callback)

    def _start(self) -> None:
        if not self._started:
            self._started = True
            callback = self.on_started
            if callback is not None:
                _call_safely(callback)

    def _vlc_vout(self, event: Any) -> None:
        self._vouts_seen += 1
        if self._sink is None and self._player is not None and self._player.has_vout():
            self._start()

    def _vlc_time(self, event: Any) -> None:
        # Stamped here, as libVLC publishes it: read later, its age would be unknown.
        self._reading = PositionReading(time.monotonic(), max(0, int(event.u.new_time)))

    def _vlc_end(self, event: Any) -> None:
        # libVLC ends a file it could not decode like a good one ("EndReached"); a
        # video that never produced a picture (or, embedded, a video output) failed.
        if self._sink is not None:
            played = self._sink.frames_since_load > 0
        else:
            played = self._vouts_seen > 0
        if played:
            if self.on_end is not None:
                _call_safely(self.on_end)
        else:
            self._report_error("no picture could be decoded")

    def _vlc_error(self, event: Any) -> None:
        self._report_error("libVLC could not play it")

    def _report_error(self, reason: str) -> None:
        callback = self.on_error
        if callback is not None:
            path = str(self._path)
            _call_safely(
                lambda: callback(CorruptContentError(f"video {path}: {reason}", path=path))
            )


def _nothing() -> None:
    pass


def _call_safely(callback: Callable[[], None]) -> None:
    """Run a user callback on a libVLC thread; an exception must not reach libVLC."""
    try:
        callback()
    except Exception:
        logger.exception("video callback failed")
