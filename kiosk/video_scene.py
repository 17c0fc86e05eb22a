"""The video scene: an item of kind ``video`` played by libVLC.

Two outputs (see :mod:`kiosk.video`):

* **embedded** (a real panel on X11): VLC's own output draws into the window's
  :class:`~kiosk.x11.VideoSurface`; the scene draws nothing itself, and the window
  maps the surface while the scene is current.
* **frame callbacks** (headless, or no X11): libVLC decodes on its own threads, and
  the scene only hears "a new frame is ready"; it asks the window for a redraw, and
  :meth:`VideoScene.draw` (main thread) uploads
  :meth:`~kiosk.video.VideoOut.latest_frame` into one texture and draws it
  letterboxed, as pictures are.

::

    loader thread   load_video: the blob's path; libVLC loaded and started
    main thread     builder → VideoScene (no player yet: a preload plays nothing)
                    enter: VlcVideo, load, play       leave / delete: close (joins
                    draw: upload the newest frame      libVLC's threads)
    libVLC threads  on_frame → request_redraw;  on_started, on_end, on_error →
                    posted to the main thread, which checks the player is still
                    this scene's

Gapless: the scene is not :attr:`~kiosk.scenes.Scene.ready` until its first picture
(``on_started``), and until then the window keeps showing the previous scene.

Primed (:meth:`VideoScene.prime`, before a synchronised start or a group control's
instant): the player opens the file with the sound off and pauses at its first
picture, which it seeks back to the start; at the instant :meth:`~VideoScene.enter`
only resumes it, so the first picture is on screen with the flip and every panel
starts from the same frame. With the embedded output this happens in the video surface
while it is unmapped (VLC fits its window to it meanwhile), so the surface is mapped
with the flip; not while another video shows on the surface. From then on the scene keeps the
video on time (:mod:`kiosk.drift`): every :data:`DRIFT_CHECK_S` it compares the position
libVLC published last, at the time it published it, with the time played by then on
the monotonic clock the instant was set on; half a frame off, it nudges the playback
rate, a second off, it seeks.

The end of the video reports ``ctx.item_ended(index)`` (the lesson advances). A file
libVLC cannot decode turns the scene into the error slide; a video has no duration
of its own, so after :data:`ERROR_HOLD_S` the scene reports the item ended too and an
unattended lesson goes on. A pause or seek that arrives before the first picture is
kept and carried out at the first picture: libVLC ignores a seek while it opens the
file, and a pause then would leave the screen without any picture.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pyglet

from kiosk.drift import SEEK_MS, DriftAction, DriftCorrector, PlayClock, Seek, SetRate
from kiosk.player import VideoCommand
from kiosk.scenes import (
    BLACK,
    ERROR_BACKGROUND,
    ErrorScene,
    FlippedPicture,
    Scene,
    SceneBuilder,
    SceneContext,
    SceneRequest,
)
from kiosk.video import VideoOut, VlcVideo, shared_instance
from media.probe import mp4_picture_size
from protocol.errors import CorruptContentError, MediaError

logger = logging.getLogger(__name__)

monotonic = time.monotonic
"""The clock of a video's instant, of its drift readings and of the changes it makes
(:func:`time.monotonic`, the clock libVLC's readings are stamped with)."""

EMBEDDED_SETTLE_S = 0.15
"""With the embedded output, how long after VLC opened its window the surface is
mapped. libVLC 3 opens its X11 output at the video's own size, then reopens or
resizes it to the surface's and shows an empty (black) picture for a frame or two
before the first real one (measured here: 40–65 ms). While the surface is unmapped
none of that is seen: the previous item stays on screen, and once mapped, the next
picture VLC draws replaces it (neither window has a background to paint). On a loaded
machine VLC may take longer to fit its window to the surface: the surface then waits
for that too (:meth:`~kiosk.x11.VideoSurface.picture_placed`)."""

PLACED_POLL_S = 0.02
"""How often a video waiting to be shown looks whether VLC's window fits the surface."""

DRIFT_CHECK_S = 0.1
"""How often a video started at an instant looks for a new position (libVLC publishes
one every 250 ms, stamped with its time; looking costs one attribute read)."""

ERROR_HOLD_S = 5.0
"""How long a video that cannot be played shows the error slide before the lesson
advances (as if it had ended)."""

PictureSize = tuple[int, int] | None
VideoMaker = Callable[[SceneContext, PictureSize], VideoOut]


def make_vlc_video(ctx: SceneContext, picture_size: PictureSize) -> VideoOut:
    """A libVLC player: embedded in ``ctx.video_surface`` if there is one, else frames
    of ``picture_size`` (the file's own display size, when known)."""
    surface = ctx.video_surface
    return VlcVideo(size=picture_size) if surface is None else VlcVideo(xwindow=surface.xid)


class _MainThread(pyglet.event.EventDispatcher):
    """Receives calls posted from libVLC's threads to the pyglet main thread."""

    def on_call(self, fn: Callable[[], None]) -> None: ...


_MainThread.register_event_type("on_call")


def _run(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # a posted call must not take the main loop down
        logger.exception("the video scene failed to handle an event")


_main_thread = _MainThread()
_main_thread.push_handlers(on_call=_run)


def _post(fn: Callable[[], None]) -> None:
    """Run ``fn`` on the main thread soon (thread-safe; wakes the pyglet loop)."""
    pyglet.app.platform_event_loop.post_event(_main_thread, "on_call", fn)


class VideoScene(Scene):
    """Plays ``path`` while shown; every method runs on the main thread.

    The player exists only between :meth:`enter` and :meth:`leave`: a preloaded scene
    plays nothing and holds no libVLC thread, and a scene shown again starts over.
    """

    def __init__(
        self,
        ctx: SceneContext,
        request: SceneRequest,
        path: Path,
        make_video: VideoMaker = make_vlc_video,
        picture_size: PictureSize = None,
    ) -> None:
        self.ctx = ctx
        self.index = request.index
        self.title = request.item.title
        self.path = path
        self._make_video = make_video
        self._picture_size = picture_size
        self._video: VideoOut | None = None
        self._started = False
        """The current player delivered its first picture (commands take effect)."""
        self._shows = False
        """The picture may be shown (embedded: :data:`EMBEDDED_SETTLE_S` after it)."""
        self._pending: list[VideoCommand] = []
        """Commands that arrived before the first picture."""
        self._paused = False
        self._redraw_asked = False
        """A redraw was requested for a new frame and not drawn yet (set by libVLC)."""
        self._picture = FlippedPicture()
        self._shown_number = -1
        self._error: ErrorScene | None = None
        self._embedded = False
        """The current player draws into the window's video surface."""
        self._primed = False
        self._instant_s: float | None = None
        """The instant this scene was primed for (monotonic seconds)."""
        """The player was opened ahead of an instant and waits (paused) to be entered."""
        self._clock: PlayClock | None = None
        """How long the video should have played, for a video started at an instant."""
        self._drift = DriftCorrector()
        self._placed_late = False
        """VLC fitted its window to the surface after the first settling wait."""

    @property
    def playing(self) -> bool:
        """Whether a player exists (between :meth:`enter` and :meth:`leave`)."""
        return self._video is not None

    @property
    def ready(self) -> bool:
        return self._shows or self._error is not None or self._video is None

    @property
    def uses_surface(self) -> bool:
        return self._embedded and self._shows and self._video is not None and self._error is None

    @property
    def failed(self) -> bool:
        """Whether the video could not be played (the error slide shows)."""
        return self._error is not None

    # ----------------------------------------------------------------- Scene

    def prime(self, at_s: float) -> None:
        """Open the video now, sound off, and stop at its first picture (rewound to the
        start); :meth:`enter` then resumes it. With the embedded output, VLC does this
        in the video surface while it is unmapped (VLC also fits its window to the
        surface meanwhile); not while the surface shows another video, where its
        pictures would be seen."""
        self._instant_s = at_s
        if self._video is not None or self._error is not None:
            return
        surface = self.ctx.video_surface
        if surface is not None and surface.visible:
            return
        self._start_player()
        if self._video is not None:
            self._primed = True
            self._video.set_volume(0)
            self._video.play()

    def enter(self) -> None:
        video = self._video
        if self._primed and video is not None:
            self._primed = False
            video.set_volume(self.ctx.volume)
            self._clock = PlayClock()
            self._clock.play(self._started_at(monotonic()))
            self._drift = DriftCorrector()
            pyglet.clock.schedule_interval(self._check_drift, DRIFT_CHECK_S)
            if self._started:  # paused on its first picture: show it and play on
                surface = self.ctx.video_surface
                if self._embedded and surface is not None and not surface.picture_placed():
                    self._placed_late = True  # shown once VLC's window fits the surface
                    pyglet.clock.schedule_once(self._settled, PLACED_POLL_S)
                else:
                    self._shows = True
                video.play()
                pending, self._pending = self._pending, []
                for command in pending:
                    self._command(video, command)
            return
        self._start_player()
        if self._video is not None:
            self._video.play()

    def _started_at(self, now: float) -> float:
        """When the video should have started: its instant, so that a panel that came
        late to it (a busy frame) counts the lateness as drift and catches up; now, for
        an instant that is not a recent past one (a clock of another kind)."""
        instant = self._instant_s
        if instant is not None and now - SEEK_MS / 1000 <= instant <= now:
            return instant
        return now

    def _start_player(self) -> None:
        self._stop()
        self._clear_error()
        self._drop_texture()  # no picture left from an earlier showing
        self._redraw_asked = False
        self._started = False
        self._shows = False
        self._placed_late = False
        pyglet.clock.unschedule(self._settled)
        self._pending.clear()
        self._paused = False
        self._shown_number = -1
        video = self._make_video(self.ctx, self._picture_size)
        self._video = video
        self._embedded = video.embedded
        video.on_frame = lambda: self._frame_ready(video)
        video.on_started = lambda: _post(lambda: self._first_frame(video))
        video.on_end = lambda: _post(lambda: self._ended(video))
        video.on_error = lambda error: _post(lambda: self._failed(video, error))
        try:
            video.load(self.path)
        except CorruptContentError as exc:  # the blob vanished since the loader looked
            self._failed(video, exc)
            return
        video.set_volume(self.ctx.volume)

    def leave(self) -> None:
        self._primed = False
        self._clock = None
        pyglet.clock.unschedule(self._check_drift)
        self._stop()
        pyglet.clock.unschedule(self._error_hold_over)
        pyglet.clock.unschedule(self._settled)

    def video(self, command: VideoCommand) -> None:
        if command.action == "volume":
            if self._video is not None:
                self._video.set_volume(command.volume)
            return
        if command.action in ("pause", "play"):
            self._paused = command.action == "pause"
        if self._clock is not None:
            now = monotonic()
            if command.action == "pause":
                self._clock.pause(now)
            elif command.action == "play":
                self._clock.play(now)
            else:
                self._clock.seek(command.position_ms, now)
            stop = self._drift.reset(now)  # a correction under way stops
            if stop is not None and self._video is not None:
                self._video.set_rate(stop.rate)
        if self._error is not None:
            if command.action != "seek":  # the error slide's time stands while paused
                pyglet.clock.unschedule(self._error_hold_over)
                if not self._paused:
                    pyglet.clock.schedule_once(self._error_hold_over, ERROR_HOLD_S)
            return
        if self._video is None:
            return
        if self._started:
            self._command(self._video, command)
        else:
            self._pending.append(command)

    def draw(self) -> None:
        if self._error is not None:
            self._error.draw()
            return
        self._redraw_asked = False  # before reading: a later frame asks again
        if self._video is not None:
            frame = self._video.latest_frame()
            if frame is not None and frame.number != self._shown_number:
                self._picture.upload(frame.width, frame.height, frame.data, frame.pitch)
                self._shown_number = frame.number
        self._picture.draw(self.ctx.width, self.ctx.height)

    def delete(self) -> None:
        self.leave()
        self._clear_error()
        self._drop_texture()

    # ----------------------------------------------------------------- libVLC threads

    def _frame_ready(self, video: VideoOut) -> None:
        if not self._redraw_asked:
            self._redraw_asked = True
            self.ctx.request_redraw()

    # ----------------------------------------------------------------- main thread

    def _first_frame(self, video: VideoOut) -> None:
        if video is not self._video or self._started:
            return
        self._started = True
        if self._primed:  # shown at the instant, from the start: wait there
            video.pause()
            video.seek(0)
            return
        pending, self._pending = self._pending, []
        for command in pending:
            self._command(video, command)
        if self._embedded:
            pyglet.clock.schedule_once(self._settled, EMBEDDED_SETTLE_S)
            return
        self._shows = True
        self.ctx.request_redraw()  # the window shows this scene from now on

    def _check_drift(self, dt: float = 0.0) -> None:
        """Read the position of a video started at an instant; correct it if off."""
        video, clock = self._video, self._clock
        if video is None or clock is None or not self._started or self._paused:
            return
        now = monotonic()
        reading = video.position_reading()
        expected = None if reading is None else clock.position_ms(reading.at_s)
        readings, rate = self._drift.readings, self._drift.rate
        if reading is None or expected is None:
            action: DriftAction | None = self._drift.tick(now)
        else:
            action = self._drift.reading(expected, reading.position_ms, at_s=reading.at_s, now=now)
        if reading is not None and self._drift.readings != readings:
            logger.debug(
                "video %r drift %.1f ms at monotonic %.6f (rate %.2f)",
                self.title,
                self._drift.drift_ms,
                reading.at_s,
                rate,
            )
        match action:
            case SetRate():
                logger.debug("video %r: rate %.2f", self.title, action.rate)
                video.set_rate(action.rate)
            case Seek():
                logger.info(
                    "video %r was %.0f ms off: moved to %d ms",
                    self.title,
                    self._drift.drift_ms or 0,
                    action.position_ms,
                )
                video.set_rate(1.0)
                video.seek(action.position_ms)
            case None:
                pass

    def _settled(self, dt: float = 0.0) -> None:
        if self._video is None or not self._started:
            return
        surface = self.ctx.video_surface
        if surface is not None and not surface.picture_placed():
            # VLC has not fitted its window to the surface yet (a loaded machine): look
            # again, and once it has, wait out its empty picture again. (The window
            # shows the video anyway once its wait for a first picture is over.)
            self._placed_late = True
            pyglet.clock.schedule_once(self._settled, PLACED_POLL_S)
            return
        if self._placed_late:
            self._placed_late = False
            pyglet.clock.schedule_once(self._settled, EMBEDDED_SETTLE_S)
            return
        self._shows = True
        self.ctx.request_redraw()

    def _ended(self, video: VideoOut) -> None:
        if video is self._video:
            logger.info("video %r ended", self.title)
            self.ctx.item_ended(self.index)

    def _failed(self, video: VideoOut, error: MediaError) -> None:
        if video is not self._video:
            return
        logger.warning("cannot play video %d %r: %s", self.index, self.title, error)
        self._stop()
        self._drop_texture()
        self._error = ErrorScene(self.ctx, self.title)
        self.background = ERROR_BACKGROUND
        if not self._paused:
            pyglet.clock.schedule_once(self._error_hold_over, ERROR_HOLD_S)
        self.ctx.request_redraw()

    def _error_hold_over(self, dt: float = 0.0) -> None:
        self.ctx.item_ended(self.index)

    @staticmethod
    def _command(video: VideoOut, command: VideoCommand) -> None:
        if command.action == "pause":
            video.pause()
        elif command.action == "play":
            video.play()
        else:
            video.seek(command.position_ms)

    def _stop(self) -> None:
        video, self._video = self._video, None
        self._pending.clear()
        if video is not None:
            video.close()  # joins libVLC's threads; late callbacks see another player

    def _clear_error(self) -> None:
        if self._error is not None:
            self._error.delete()
            self._error = None
        self.background = BLACK

    def _drop_texture(self) -> None:
        self._picture.delete()
        self._shown_number = -1


def load_video(request: SceneRequest, ctx: SceneContext) -> SceneBuilder:
    """Loader of video items: finds the blob and starts libVLC (loader thread).

    Nothing plays before the scene is shown (:meth:`VideoScene.enter`).

    Raises:
        MediaError: the item names no file, or the blob is not stored.
        OSError: libVLC is not installed.
    """
    if request.item.sha256 is None:
        raise MediaError(f"item {request.item.title!r} names no file")
    path = ctx.store.path(request.item.sha256)
    shared_instance()  # import python-vlc and start libVLC here, not on the main thread
    # libVLC offers frame callbacks the decoder's size (1920x1088 for 1080p H.264) and
    # would stretch every picture to it; the file's track header has the real one.
    size = mp4_picture_size(path)
    return lambda: VideoScene(ctx, request, path, picture_size=size)
