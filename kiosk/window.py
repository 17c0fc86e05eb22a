"""The panel window: carries display effects out with pyglet (DESIGN §3).

pyglet owns the main thread and runs ``pyglet.app.run(None)``: nothing is drawn on a
timer, only when something changed (an effect, a loaded scene, the idle clock's
minute, an expose), so a still slide costs no CPU. :meth:`PygletWindow.apply` is
called by the network thread under the service lock: it only posts the effect to the
pyglet loop (``platform_event_loop.post_event``, which wakes it at once)::

    network thread             main thread (pyglet)              loader thread
    apply(Show) ──post──▶  _apply: cached? swap : submit ──▶  decode the file
                                  ◀──post── _loaded ◀──────────  (builder)
                           build (GL), swap, draw once, flip

A ``Show`` with an instant still to come (``at_s``, a synchronised start or a group
control) builds its scene at once and flips to it at that instant on the pyglet clock
(``schedule_once``), drawing the frame there and then: the flip waits neither for the
network loop nor for a redraw. Each such flip logs the monotonic and wall time at
which the frame was flipped, and how long after the instant.

Gapless: which scene is on screen is the :class:`~kiosk.stage.Stage`'s (no GL): the
previous scene stays current (and is what any redraw draws) until the next one is
built, and stays on screen until the new one is :attr:`~kiosk.scenes.Scene.ready` (a
video's first picture, a web page's first paint; at most its
``first_picture_wait_s``), so no black or half-drawn frame is ever shown; ``Preload``
builds the next item ahead, so its ``Show`` swaps at once.

:meth:`PygletWindow.on_draw` only draws. A frame (:meth:`PygletWindow._frame`) first
advances the stage and puts the X11 parts in place (the video surface, the presenter
keys: never while drawing), then draws and flips; the scene that left the screen is
left (VLC stopped, Chromium sent SIGTERM: :meth:`~kiosk.scenes.Scene.leave`) on the
next pass of the loop, once the new picture is up. The window and its view have no
X11 background, so what a closing Chromium window or video surface uncovers keeps
its last picture until the window draws over it, never black.

On X11 (not headless) videos are drawn by VLC into a child window, the
:class:`~kiosk.x11.VideoSurface`, mapped while such a video is current and kept clear
of the overlays; screenshots are then read off the screen, not the GL framebuffer.

Input on the panel (keys, taps) becomes ``control(action)``, which the wiring turns
into :meth:`KioskService.panel_control` on the network loop; while the panel asks
whether to allow a pairing (:class:`~kiosk.effects.PairingRequested`), Enter or a tap
on Allow, Esc or a tap on Refuse become ``answer_pairing(allow)``, which the wiring
turns into :meth:`KioskService.panel_answer_pairing`.

For offscreen (EGL) rendering, set ``PYGLET_HEADLESS=true`` before pyglet is first
imported, i.e. before importing this module (the CLI does).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import dataclasses
import io
import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, assert_never

import pyglet
from PIL import Image
from pyglet import gl
from pyglet.window import key

from kiosk import glyphs
from kiosk.effects import (
    PAIRED_NOTICE_S,
    ControllerPaired,
    DisplayEffect,
    HideAnnouncement,
    PairingQuestionClosed,
    PairingRequested,
    PinChanged,
    ShowAnnouncement,
    VideoOutput,
    WindowMode,
    paired_notice_text,
    pairing_question_text,
)
from kiosk.i18n import tr
from kiosk.player import Preload, SetBlank, Show, ShowIdle, VideoCommand
from kiosk.scenes import (
    AnnouncementOverlay,
    HintOverlay,
    IdleInfo,
    IdleScene,
    NoticeOverlay,
    PairingQuestionOverlay,
    Scene,
    SceneContext,
    SceneFactory,
    SceneRequest,
)
from kiosk.stage import IDLE_KEY, Stage
from kiosk.x11 import (
    KeyGrab,
    WindowHold,
    X11Surface,
    capture,
    keep_contents,
    native_window,
)
from media.store import BlobStore
from protocol.messages import ItemFailure

logger = logging.getLogger(__name__)

WINDOWED_SIZE = (1280, 720)
"""Size of ``--windowed`` and ``--headless`` windows."""

ESC_CONFIRM_S = 3.0
"""A second Esc within this time stops the show."""

SCREENSHOT_TIMEOUT_S = 2.0

KEY_POLL_S = 0.05
"""How often grabbed presenter keys are read while a web page has the keyboard."""

SURFACE_FILL_POLL_S = 0.02
"""How often the window looks whether VLC shows its picture yet (embedded output)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """The colour buffer of one frame: RGBA rows, bottom row first (OpenGL's order)."""

    width: int
    height: int
    rgba: bytes

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        """The colour at ``x``, ``y`` counted from the top left corner."""
        i = ((self.height - 1 - y) * self.width + x) * 4
        r, g, b = self.rgba[i : i + 3]
        return r, g, b

    def is_uniform(self, color: tuple[int, int, int] | None = None) -> bool:
        """Whether every pixel has one colour (``color``, if given)."""
        first = self.rgba[0:4] if color is None else bytes((*color, 255))
        return self.rgba == first * (self.width * self.height)

    @classmethod
    def from_image(cls, image: Image.Image) -> Frame:
        """From a Pillow image (top row first)."""
        rgba = image.convert("RGBA").transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        return cls(rgba.width, rgba.height, rgba.tobytes())

    def image(self) -> Image.Image:
        """As a Pillow image (top row first)."""
        return Image.frombytes("RGBA", (self.width, self.height), self.rgba).transpose(
            Image.Transpose.FLIP_TOP_BOTTOM
        )

    def png(self, max_width: int) -> bytes:
        """A PNG thumbnail, at most ``max_width`` pixels wide."""
        image = self.image().convert("RGB")
        if image.width > max_width:
            image = image.resize(
                (max_width, max(1, round(image.height * max_width / image.width))),
                Image.Resampling.BILINEAR,
            )
        out = io.BytesIO()
        image.save(out, "PNG", optimize=False, compress_level=6)
        return out.getvalue()


class _Bridge(pyglet.event.EventDispatcher):
    """Receives calls posted to the main thread."""

    def on_call(self, fn: Callable[[], None]) -> None: ...


_Bridge.register_event_type("on_call")


class PygletWindow:
    """A :class:`~kiosk.service.Display` drawing on a pyglet window.

    Create it on the main thread, then run :meth:`run` there (or, in tests, call
    :meth:`run_pending` after each step). :meth:`apply`, :meth:`call_soon`,
    :meth:`request_redraw` and :meth:`screenshot_png` may be called from any thread;
    everything else belongs to the main thread.

    Args:
        store: where blob files are (``BlobStore.path``).
        info: school and room for the idle screen.
        mode: ``fullscreen``, ``windowed`` or ``headless`` (offscreen: pyglet must
            have been imported with ``PYGLET_HEADLESS=true``).
        lang: language of the text on screen.
        size: window size for ``windowed`` and ``headless`` (default 1280×720).
        control: called with ``next``, ``prev``, ``blank``, ``unblank``, ``stop`` from
            the panel's keys and taps (on the main thread; it must hand off).
        item_ended: called with an item's index when a video ended (any thread).
        item_failed: called with an item's index, why and an HTTP status when the item
            could not be shown (a web page that did not open; any thread).
        item_opened: called with an item's index when a web page was checked and
            opened (any thread).
        on_close: called when the window is asked to close (the system's close button).
        video_output: see :data:`VideoOutput`.
        answer_pairing: called with True (Allow) or False (Refuse) when the panel's
            user answers the question to allow a pairing (on the main thread; it must
            hand off).
        clock: the time the panel's keys are timed by (Esc twice within
            :data:`ESC_CONFIRM_S`); ``time.monotonic`` unless a test moves it.
    """

    def __init__(
        self,
        store: BlobStore,
        info: IdleInfo,
        *,
        mode: WindowMode = "fullscreen",
        lang: str = "ru",
        size: tuple[int, int] = WINDOWED_SIZE,
        control: Callable[[str], None] | None = None,
        item_ended: Callable[[int], None] | None = None,
        item_failed: Callable[[int, ItemFailure, int | None], None] | None = None,
        on_close: Callable[[], None] | None = None,
        item_opened: Callable[[int], None] | None = None,
        video_output: VideoOutput = "auto",
        answer_pairing: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        glyphs.install()  # before the first text: glyphs made at C speed
        self._clock = clock
        self.control = control
        self.answer_pairing = answer_pairing
        self.on_close = on_close
        self._headless = mode == "headless"
        self.item_ended = item_ended
        self.item_failed = item_failed
        self.item_opened = item_opened
        self.lang = lang
        self._main = threading.get_ident()
        self.window = _make_window(mode, size)
        width, height = self.window.get_framebuffer_size()
        self._native = None if self._headless else native_window(self.window)
        self._surface: X11Surface | None = None
        self._hold: WindowHold | None = None
        self._keys: KeyGrab | None = None
        self._attach_x11(video_output, width, height)
        self.ctx = SceneContext(
            store,
            width,
            height,
            lang=lang,
            request_redraw=self.changed,
            item_ended=self._item_ended,
            item_failed=self._item_failed,
            item_opened=self._item_opened,
            video_surface=self._surface,
            window_hold=self._hold,
        )
        self.factory = SceneFactory(self.ctx)
        self._loader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="scene-loader")
        self._bridge = _Bridge()
        self._bridge.push_handlers(on_call=self._on_call)
        self.idle = IdleScene(self.ctx, info)
        self.stage: Stage[Scene] = Stage(self.idle, clock=clock)
        """Which scene is on screen and the switch to the next (tests drive it too)."""
        self._wait_deadline: float | None = None
        self._loading: dict[object, concurrent.futures.Future[object]] = {}
        self._blanked = False
        self._hint: HintOverlay | None = None
        self._announcement: AnnouncementOverlay | None = None
        self._notice: NoticeOverlay | None = None
        self._question: PairingQuestionOverlay | None = None
        self._esc_at = float("-inf")
        self._flip_at: tuple[Hashable, Show] | None = None
        """The scene to flip to at an instant (``Show.at_s``), and its ``Show``."""
        self._draw_scheduled = False
        self._retire_scheduled = False
        self._captures: list[concurrent.futures.Future[Frame | None]] = []
        self._closed = False
        self.frames = 0
        """Frames drawn so far (benchmarks and tests watch it)."""
        self.first_frame = threading.Event()
        """Set once the first frame was drawn and flipped."""
        self.frame_hooks: list[Callable[[], None]] = []
        """Called after each frame is drawn, before it is flipped (tests read pixels)."""
        self.window.push_handlers(
            on_draw=self._on_draw_event,
            on_key_press=self.on_key_press,
            on_mouse_press=self.on_mouse_press,
            on_close=self._on_close,
            on_expose=self.changed,
            on_resize=self._on_resize,
        )
        self._schedule_minute()
        self.request_redraw()

    def _attach_x11(self, video_output: VideoOutput, width: int, height: int) -> None:
        """On an X11 window: keep its contents between frames (no black), the video
        surface (unless videos go to frames), the hold on browser windows, and the
        presenter-key grab. Nothing without one (headless, Wayland)."""
        if self._native is None:
            if video_output == "embedded":
                logger.warning("no X11 window: videos are decoded into frames")
            return
        keep_contents(self._native)
        if video_output != "frames":
            self._surface = X11Surface(self._native.display, self._native.view, width, height)
        self._hold = WindowHold(self._native.window)
        try:
            self._keys = KeyGrab()
        except OSError as exc:
            logger.warning("presenter keys will not reach the kiosk over web pages: %s", exc)

    # ----------------------------------------------------------------- any thread

    def apply(self, effect: DisplayEffect) -> None:
        """Hand ``effect`` to the main thread and wake it; never blocks."""
        self.call_soon(lambda: self._apply(effect))

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the main thread soon (thread-safe; wakes the pyglet loop)."""
        pyglet.app.platform_event_loop.post_event(self._bridge, "on_call", fn)

    def request_redraw(self) -> None:
        """Draw a new frame soon (thread-safe); the stage advances first (a scene that
        became ready comes on screen)."""
        if threading.get_ident() == self._main:
            if not self._draw_scheduled and not self._closed:
                self._draw_scheduled = True
                pyglet.clock.schedule_once(self._frame, 0)
        else:
            self.call_soon(self.request_redraw)

    changed = request_redraw
    """Something changed (a scene got its first picture, an expose): advance, draw."""

    def set_address(self, address: str) -> None:
        """Show ``address`` (``wss://HOST:PORT``) and its QR code on the idle screen."""

        def update() -> None:
            self.idle.info.address = address
            self.idle.refresh()
            if self.stage.current is self.idle:
                self.request_redraw()

        self.call_soon(update)

    def screenshot_png(
        self, max_width: int = 480, timeout_s: float = SCREENSHOT_TIMEOUT_S
    ) -> bytes | None:
        """A PNG thumbnail of what the panel shows, at most ``max_width`` pixels wide;
        ``None`` when the window is not on screen (unmapped, or the screen unreadable).

        From another thread, this asks the main thread for a frame and waits up to
        ``timeout_s``; the PNG is encoded on the calling thread.

        Raises:
            TimeoutError: the main thread did not draw in time.
        """
        if threading.get_ident() == self._main:
            frame = self._frame_now(capture=True)
        else:
            future: concurrent.futures.Future[Frame | None] = concurrent.futures.Future()

            def capture() -> None:
                self._captures.append(future)
                self.request_redraw()

            self.call_soon(capture)
            try:
                frame = future.result(timeout_s)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise TimeoutError("the panel window did not draw a frame in time") from None
        return None if frame is None else frame.png(max_width)

    # ----------------------------------------------------------------- main thread

    @property
    def current(self) -> Scene:
        """The scene the player asked for last, once built (blank aside); the one on
        screen is ``stage.on_screen``."""
        return self.stage.current

    @property
    def blanked(self) -> bool:
        return self._blanked

    @property
    def busy(self) -> bool:
        """Whether a scene is loading, or a frame or leaving a scene is due."""
        return bool(self._loading) or self._draw_scheduled or self._retire_scheduled

    def run(self) -> None:
        """Run the pyglet loop until :meth:`exit` (main thread)."""
        try:
            pyglet.app.run(None)
        finally:
            # pyglet.app.run turns the class-wide event queue off; a window created
            # later (tests) needs it back on while it initialises.
            pyglet.window.Window._enable_event_queue = True

    def exit(self) -> None:
        """Leave :meth:`run` (thread-safe)."""
        self.call_soon(pyglet.app.exit)

    def run_pending(self, timeout_s: float = 5.0) -> None:
        """Process posted effects, finished loads and due frames until nothing is left.

        For tests and benchmarks, which drive the window without :meth:`run`.
        """
        deadline = time.monotonic() + timeout_s
        loop = pyglet.app.platform_event_loop
        while True:
            self.window.dispatch_events()
            loop.dispatch_posted_events()
            pyglet.clock.tick()
            if not self.busy and loop._event_queue.empty():
                return
            if time.monotonic() > deadline:
                raise TimeoutError("the window did not settle")
            loop.step(0.005)

    def read_pixels(self) -> Frame:
        """The colour buffer being drawn (call from a frame hook, before the flip)."""
        width, height = self.window.get_framebuffer_size()
        buf = (ctypes.c_ubyte * (width * height * 4))()
        gl.glPixelStorei(gl.GL_PACK_ALIGNMENT, 1)
        gl.glReadPixels(0, 0, width, height, gl.GL_RGBA, gl.GL_UNSIGNED_BYTE, buf)
        return Frame(width, height, bytes(buf))

    def close(self) -> None:
        """Free scenes, stop the loader, close the window (main thread)."""
        if self._closed:
            return
        self._closed = True
        pyglet.clock.unschedule(self._frame)
        pyglet.clock.unschedule(self._retire)
        pyglet.clock.unschedule(self._flip)
        pyglet.clock.unschedule(self._minute)
        pyglet.clock.unschedule(self._hide_hint)
        pyglet.clock.unschedule(self._hide_notice)
        self._loader.shutdown(wait=True, cancel_futures=True)
        self.factory.close()
        pyglet.clock.unschedule(self._wait_over)
        pyglet.clock.unschedule(self._fill_surface)
        pyglet.clock.unschedule(self._poll_keys)
        if self._keys is not None:
            self._keys.close()
        if self._hold is not None:
            self._hold.close()
        for scene in self.stage.take_leaving():
            scene.leave()
        for scene in self.stage.scenes():
            scene.delete()
        self.idle.delete()
        if self._surface is not None:
            self._surface.close()
        if self._hint is not None:
            self._hint.delete()
        for overlay in (self._announcement, self._notice, self._question):
            if overlay is not None:
                overlay.delete()
        for future in self._captures:
            future.cancel()
        self.window.close()

    # ----------------------------------------------------------------- effects

    def _on_call(self, fn: Callable[[], None]) -> None:
        if self._closed:
            return
        try:
            fn()
        except Exception:  # the one broad catch of the main loop's hand-off
            logger.exception("the panel window failed to carry out a change")

    def _apply(self, effect: DisplayEffect) -> None:
        match effect:
            case Show() if effect.at_s is not None:
                self._schedule_flip(effect)
            case Show():
                key_ = self._key(effect.index, effect)
                if self._flip_at is not None and self._flip_at[0] == key_:  # its instant came
                    self._flip()
                    return
                self._unprime()
                self.stage.want(key_)
                scene = self.stage.cached(key_)
                if scene is not None:
                    self._switch(key_, scene)
                else:
                    self._load(key_, SceneRequest(effect.index, effect.item))
            case Preload():
                key_ = self._key(effect.index, effect)
                if self.stage.cached(key_) is None:
                    self._load(key_, SceneRequest(effect.index, effect.item))
            case ShowIdle():
                self._unprime()
                self.stage.want(IDLE_KEY)
                self.idle.refresh()
                self._switch(IDLE_KEY, self.idle)
            case SetBlank():
                if self._blanked != effect.on:
                    self._blanked = effect.on
                    self.request_redraw()
            case VideoCommand():
                if effect.action == "volume":
                    self.ctx.volume = effect.volume  # for videos shown later
                self.stage.video(effect)
            case ShowAnnouncement():
                self._hide_announcement()
                self._announcement = AnnouncementOverlay(self.ctx, effect.text, effect.level)
                if effect.duration_s is not None:
                    pyglet.clock.schedule_once(self._hide_announcement, effect.duration_s)
                self.request_redraw()
            case HideAnnouncement():
                self._hide_announcement()
            case ControllerPaired():
                self._hide_notice()
                self._notice = NoticeOverlay(self.ctx, paired_notice_text(effect, self.lang))
                pyglet.clock.schedule_once(self._hide_notice, PAIRED_NOTICE_S)
                self.request_redraw()
            case PairingRequested():
                self._hide_question()
                self._question = PairingQuestionOverlay(
                    self.ctx,
                    pairing_question_text(effect, self.lang),
                    tr(self.lang, "Refuse (Esc)"),
                    tr(self.lang, "Allow (Enter)"),
                )
                self.request_redraw()
            case PairingQuestionClosed():
                self._hide_question()
            case PinChanged():
                if self.idle.info.pin != effect.pin:
                    self.idle.info.pin = effect.pin
                    self.idle.refresh()
                    if self.stage.current is self.idle:
                        self.request_redraw()
            case _:
                assert_never(effect)

    def _schedule_flip(self, effect: Show) -> None:
        """Build the scene of ``effect`` now and flip to it at ``effect.at_s``; what is
        on screen stays until then. An instant already past flips at once (late, and
        the flip's log line says by how much)."""
        assert effect.at_s is not None
        key_ = self._key(effect.index, effect)
        if self._flip_at is not None and self._flip_at[0] != key_:
            self._unprime()
        if effect.at_s <= self._clock():
            self._flip_at = (key_, effect)
            self._flip()
            return
        scene = self.stage.cached(key_)
        if scene is None:
            self._load(key_, SceneRequest(effect.index, effect.item))
        elif scene is not self.stage.current:
            scene.prime(effect.at_s)
        self._flip_at = (key_, effect)
        pyglet.clock.unschedule(self._flip)
        clock = pyglet.clock.get_default()
        # schedule_once counts from the clock's last tick when that was under 0.2 s ago
        # (pyglet's Clock._get_nearest_ts), which would flip early: count from there.
        now = clock.time()
        last = clock.last_ts or clock.next_ts
        base = now if now - last > 0.2 else last
        clock.schedule_once(self._flip, max(0.0, effect.at_s - self._clock() + now - base))

    def _unprime(self) -> None:
        """Forget the pending flip; a scene primed for it and not on screen leaves."""
        pending, self._flip_at = self._flip_at, None
        pyglet.clock.unschedule(self._flip)
        if pending is not None:
            scene = self.stage.cached(pending[0])
            if scene is not None and scene is not self.stage.current:
                scene.leave()

    def _flip(self, dt: float = 0.0) -> None:
        """The instant of the pending ``Show`` came: switch to its scene and draw the
        frame now, not on the loop's next pass (a scene still loading comes once built,
        late, and says so)."""
        woke = self._clock()
        pending, self._flip_at = self._flip_at, None
        pyglet.clock.unschedule(self._flip)
        if pending is None:
            return
        key_, effect = pending
        assert effect.at_s is not None
        self._apply(dataclasses.replace(effect, at_s=None))
        if self.stage.current_key != key_:
            logger.warning(
                "item %d was not prepared by its instant: it shows once loaded, late",
                effect.index + 1,
            )
            return
        swapped = self._clock()
        pyglet.clock.unschedule(self._frame)
        self._draw_scheduled = False
        self._frame_now(capture=bool(self._captures))
        mono, wall = self._clock(), time.time()
        logger.info(
            "flipped to item %d at monotonic %.6f wall %.6f, %.3f ms after its instant "
            "(woke %.3f ms after it; swapped in %.3f ms, drew in %.3f ms)%s",
            effect.index + 1,
            mono,
            wall,
            (mono - effect.at_s) * 1000,
            (woke - effect.at_s) * 1000,
            (swapped - woke) * 1000,
            (mono - swapped) * 1000,
            ""
            if self.stage.on_screen is self.stage.current
            else " (its first picture is still to come)",
        )

    @staticmethod
    def _key(index: int, effect: Show | Preload) -> Hashable:
        return (index, effect.item)

    def _load(self, key_: Hashable, request: SceneRequest) -> None:
        if key_ in self._loading:
            return
        future = self._loader.submit(self.factory.load, request)
        self._loading[key_] = future  # type: ignore[assignment]

        def done(f: concurrent.futures.Future[Any]) -> None:
            if not f.cancelled():
                self.call_soon(lambda: self._loaded(key_, request, f))

        future.add_done_callback(done)

    def _loaded(
        self, key_: Hashable, request: SceneRequest, future: concurrent.futures.Future[Any]
    ) -> None:
        self._loading.pop(key_, None)
        builder = future.result()  # SceneFactory.load never raises
        scene: Scene = self.factory.guarded(builder, request.item.title)()
        if self._flip_at is not None and self._flip_at[0] == key_:
            at_s = self._flip_at[1].at_s
            scene.prime(self._clock() if at_s is None else at_s)  # built ahead of it
        if self.stage.keep(key_, scene):
            self._after_switch()
        else:
            for old in self.stage.evict():
                old.delete()

    def _switch(self, key_: Hashable, scene: Scene) -> None:
        """Make ``scene`` current; what is on screen stays until ``scene`` is ready."""
        self.stage.switch(key_, scene)
        self._after_switch()

    def _after_switch(self) -> None:
        for old in self.stage.evict():
            old.delete()
        self.request_redraw()

    def _schedule_wait(self) -> None:
        """A frame when the current scene's wait for its first picture is over."""
        deadline = self.stage.next_deadline()
        if deadline != self._wait_deadline:
            self._wait_deadline = deadline
            pyglet.clock.unschedule(self._wait_over)
            if deadline is not None:
                pyglet.clock.schedule_once(self._wait_over, max(0.0, deadline - self._clock()))

    def _wait_over(self, dt: float = 0.0) -> None:
        """The current scene's wait for its first picture (or flip instant) is over."""
        self._wait_deadline = None
        self.request_redraw()

    def _covered(self) -> bool:
        """Whether the window itself covers the scene: an announcement, the question to
        allow a pairing, or blank. (Not the small "who paired" notice: a web page would
        stop for it.)"""
        return self._announcement is not None or self._question is not None or self._blanked

    def _advance(self) -> None:
        """Before a frame: advance the switch and put the X11 parts in place (the video
        surface, the presenter keys), so that :meth:`on_draw` only draws."""
        self.stage.cover(self._covered())
        self.stage.update()
        self._schedule_wait()
        self._grab_keys(self.stage.current.takes_keyboard)
        self._place_surface()

    def _retire(self, dt: float = 0.0) -> None:
        """Leave the scenes that left the screen (after their successor's frame is up)."""
        self._retire_scheduled = False
        for scene in self.stage.take_leaving():
            scene.leave()
        arrived = self.stage.take_arrived()
        if arrived is not None:
            arrived.shown()
        for old in self.stage.evict():
            old.delete()

    def _item_ended(self, index: int) -> None:
        if self.item_ended is not None:
            self.item_ended(index)

    def _item_failed(self, index: int, failure: ItemFailure, status: int | None) -> None:
        if self.item_failed is not None:
            self.item_failed(index, failure, status)

    def _item_opened(self, index: int) -> None:
        if self.item_opened is not None:
            self.item_opened(index)

    # ----------------------------------------------------------------- drawing

    def _frame(self, dt: float = 0.0) -> None:
        self._draw_scheduled = False
        self._frame_now(capture=bool(self._captures))

    def _frame_now(self, *, capture: bool) -> Frame | None:
        """One frame: advance the stage, draw and flip, then (on the loop's next pass)
        leave what left the screen."""
        if self._closed:
            return None
        try:
            self._advance()
        except Exception:  # a scene failing to switch must not take the window down
            logger.exception("switching scenes failed")
        frame = self._draw_now(capture=capture)
        if not self._retire_scheduled:
            self._retire_scheduled = True
            pyglet.clock.schedule_once(self._retire, 0)
        return frame

    def _draw_now(self, *, capture: bool) -> Frame | None:
        if self._closed:
            return None
        self.window.switch_to()
        frame = None
        try:
            self.on_draw()
            for hook in self.frame_hooks:
                hook()
            if capture and self._native is None:
                frame = self.read_pixels()
        except Exception:  # a scene failing to draw must not take the window down
            logger.exception("drawing a frame failed")
        if self._headless or capture:
            # Swapping a pbuffer does not flush: without this, Mesa keeps every frame's
            # commands and memory grows by ~45 kB a frame.
            gl.glFinish()
        self.window.flip()
        self.frames += 1
        self.first_frame.set()
        if capture:
            if self._native is not None:
                frame = self._read_screen()
            captures, self._captures = self._captures, []
            for future in captures:
                if not future.cancelled():
                    future.set_result(frame)
        return frame

    def _read_screen(self) -> Frame | None:
        """What the screen shows over the window: VLC's picture and Chromium included."""
        assert self._native is not None
        width, height = self.window.get_framebuffer_size()
        try:
            image = capture(self._native.display, self._native.window, width, height)
        except Exception:
            logger.exception("reading the screen failed")
            return None
        return None if image is None else Frame.from_image(image)

    def _on_draw_event(self) -> bool:
        """pyglet's own ``on_draw`` (an expose in ``run`` with an interval): redraw."""
        self.request_redraw()
        return True

    def on_draw(self) -> None:
        """Draw the scene on screen, then the announcement and hint on top (only draws)."""
        if self._blanked:
            gl.glClearColor(0.0, 0.0, 0.0, 1.0)
            self.window.clear()
        else:
            scene = self.stage.on_screen
            r, g, b, a = scene.background
            gl.glClearColor(r / 255, g / 255, b / 255, a / 255)
            self.window.clear()
            scene.draw()
        # An announcement, the notice and the question show even over a blanked screen.
        if self._announcement is not None:
            self._announcement.draw()
        if self._notice is not None:
            self._notice.draw()
        if self._hint is not None and not self._blanked:
            self._hint.draw()
        if self._question is not None:
            self._question.draw()

    def _place_surface(self) -> None:
        """Map the video surface while an embedded video is on screen, clear of overlays."""
        surface = self._surface
        if surface is None:
            return
        announcement = self._announcement
        hint = self._hint if not self._blanked else None
        if (
            not self.stage.on_screen.uses_surface
            or self._blanked
            or self._question is not None
            or (announcement is not None and announcement.covers_screen)
        ):
            surface.hide()
            return
        # Overlays sit at the bottom: the surface ends above the highest one.
        bottom = max(
            announcement.top if announcement is not None else 0,
            hint.top if hint is not None else 0,
        )
        surface.show(0, 0, self.ctx.width, self.ctx.height - bottom)
        pyglet.clock.unschedule(self._fill_surface)
        self._fill_surface()

    def _grab_keys(self, on: bool) -> None:
        """Keep the presenter keys while a web page's window has the keyboard."""
        keys = self._keys
        if keys is None or keys.grabbed == on:
            return
        keys.grab(on)
        pyglet.clock.unschedule(self._poll_keys)
        if on:
            pyglet.clock.schedule_interval(self._poll_keys, KEY_POLL_S)

    def _poll_keys(self, dt: float = 0.0) -> None:
        if self._keys is not None:
            for action in self._keys.poll():
                self._control(action)

    def _fill_surface(self, dt: float = 0.0) -> None:
        """Black letterbox bars around VLC's picture as soon as VLC shows one."""
        surface = self._surface
        if surface is not None and surface.visible and not surface.fill_black():
            pyglet.clock.schedule_once(self._fill_surface, SURFACE_FILL_POLL_S)

    def _hide_announcement(self, dt: float = 0.0) -> None:
        pyglet.clock.unschedule(self._hide_announcement)
        if self._announcement is not None:
            self._announcement.delete()
            self._announcement = None
            self.request_redraw()

    def _hide_notice(self, dt: float = 0.0) -> None:
        pyglet.clock.unschedule(self._hide_notice)
        if self._notice is not None:
            self._notice.delete()
            self._notice = None
            self.request_redraw()

    def _hide_question(self) -> None:
        if self._question is not None:
            self._question.delete()
            self._question = None
            self.request_redraw()

    def _schedule_minute(self) -> None:
        now = time.time()
        pyglet.clock.schedule_once(self._minute, 60.05 - now % 60)

    def _minute(self, dt: float) -> None:
        """The idle screen's clock: one frame a minute (only while it is shown)."""
        if self.stage.current is self.idle:
            self.idle.refresh()
            self.request_redraw()
        self._schedule_minute()

    def _on_resize(self, width: int, height: int) -> None:
        fb_w, fb_h = self.window.get_framebuffer_size()
        if (fb_w, fb_h) != (self.ctx.width, self.ctx.height):
            logger.info("window resized to %dx%d", fb_w, fb_h)
            self.ctx.width, self.ctx.height = fb_w, fb_h
            # Scenes are laid out for a size: rebuild the idle screen, drop the others.
            self.idle = IdleScene(self.ctx, self.idle.info)
            dropped = self.stage.reset(self.idle)
            for scene in self.stage.take_leaving():
                scene.leave()
            for scene in dropped:
                scene.delete()
        self.request_redraw()

    # ----------------------------------------------------------------- input

    def on_key_press(self, symbol: int, modifiers: int) -> bool:
        """Presenter remotes and keyboards: → PageDown Space, ← PageUp, B, Esc Esc.

        While the panel asks whether to allow a pairing, only its answers count:
        Enter (or Y) allows, Esc (or N) refuses; presenter remotes have no Enter, so a
        click meant for the next slide never allows a pairing.
        """
        if self._question is not None:
            if symbol in (key.RETURN, key.ENTER, key.NUM_ENTER, key.Y):
                self._answer_pairing(True)
            elif symbol in (key.ESCAPE, key.N):
                self._answer_pairing(False)
            return True
        if symbol in (key.RIGHT, key.PAGEDOWN, key.SPACE, key.DOWN):
            self._control("next")
        elif symbol in (key.LEFT, key.PAGEUP, key.UP):
            self._control("prev")
        elif symbol == key.B:
            self._control("unblank" if self._blanked else "blank")
        elif symbol == key.ESCAPE:
            now = self._clock()
            if now - self._esc_at <= ESC_CONFIRM_S:
                self._esc_at = float("-inf")
                self._hide_hint()
                self._control("stop")
            else:
                self._esc_at = now
                self._show_hint(tr(self.lang, "Press Esc again to stop the show"))
        return True  # never pyglet's default (Esc would close the window)

    def on_mouse_press(self, x: int, y: int, button: int, modifiers: int) -> bool:
        """A tap (or click) on the right third goes forward, on the left third back;
        while the panel asks whether to allow a pairing, only its buttons count."""
        if self._question is not None:
            scale = self.ctx.width / max(1, self.window.width)  # window → framebuffer pixels
            answer = self._question.answer_at(round(x * scale), round(y * scale))
            if answer is not None:
                self._answer_pairing(answer)
            return True
        width = self.window.width
        if x >= width * 2 / 3:
            self._control("next")
        elif x < width / 3:
            self._control("prev")
        return True

    def _answer_pairing(self, allow: bool) -> None:
        logger.info("panel answer to the pairing question: %s", "allow" if allow else "refuse")
        self._hide_question()
        if self.answer_pairing is not None:
            self.answer_pairing(allow)

    def _control(self, action: str) -> None:
        logger.info("panel control: %s", action)
        if self.control is not None:
            self.control(action)

    def _show_hint(self, text: str) -> None:
        if self._hint is not None:
            self._hint.delete()
        self._hint = HintOverlay(self.ctx, text)
        pyglet.clock.unschedule(self._hide_hint)
        pyglet.clock.schedule_once(self._hide_hint, ESC_CONFIRM_S)
        self.request_redraw()

    def _hide_hint(self, dt: float = 0.0) -> None:
        if self._hint is not None:
            self._hint.delete()
            self._hint = None
            self.request_redraw()

    def _on_close(self) -> bool:
        if self.on_close is not None:
            self.on_close()
        else:
            with contextlib.suppress(Exception):
                pyglet.app.exit()
        return True


def _make_window(mode: WindowMode, size: tuple[int, int]) -> pyglet.window.Window:
    """A window with 8 bits per colour (EGL may offer 16-bit colour first)."""
    configs = [
        gl.Config(  # type: ignore[abstract]  # pyglet picks the platform's subclass
            red_size=8, green_size=8, blue_size=8, alpha_size=8, double_buffer=True
        ),
        None,
    ]
    for i, config in enumerate(configs):
        try:
            if mode == "fullscreen":
                window = pyglet.window.Window(
                    fullscreen=True, caption="ClassCast", vsync=True, config=config
                )
                window.set_mouse_visible(False)
                return window
            width, height = size
            return pyglet.window.Window(
                width, height, caption="ClassCast", vsync=mode != "headless", config=config
            )
        except pyglet.window.NoSuchConfigException:
            if i == len(configs) - 1:
                raise
    raise AssertionError("unreachable")
