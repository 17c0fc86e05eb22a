"""The screen-share scene: a teacher's screen, decoded with PyAV, drawn as soon as decoded.

::

    network thread   ScreenStream.start / feed / stop   (kiosk.share.ScreenSink)
    decoder thread   H.264 → BGRA with PyAV (low delay: no frame reordering, slice
                     threads only); keeps the newest picture, asks for a redraw;
                     a picture already superseded by a waiting frame is decoded only
    main thread      ScreenScene.draw: uploads the newest picture into one texture,
                     draws it letterboxed; the "screen sharing paused" card after
                     STREAM_STALL_S without a picture

The decoder never falls behind by more than :data:`DECODE_BACKLOG` pictures: past
that it drops what is queued and the next :meth:`ScreenStream.feed` returns False
(the service then waits for a keyframe and asks the sender for one). A picture the
decoder refuses, or one larger than ``MAX_SHARE_WIDTH``×``MAX_SHARE_HEIGHT``, does
the same.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from kiosk.i18n import tr
from kiosk.scenes import (
    BLACK,
    MUTED_TEXT,
    PLACEHOLDER_BACKGROUND,
    WHITE,
    Card,
    FlippedPicture,
    Scene,
    SceneBuilder,
    SceneContext,
    SceneRequest,
)
from media.markdown import Color
from protocol import limits
from protocol.codec import StreamFrame
from protocol.text import clean_name

if TYPE_CHECKING:
    import av

logger = logging.getLogger(__name__)

DECODE_BACKLOG: Final = 8
"""Pictures waiting for the decoder; one more drops them all (then a keyframe is asked)."""


@dataclass(frozen=True, slots=True)
class DecodedPicture:
    """The newest decoded picture: BGRA rows top to bottom, ``pitch`` bytes apart."""

    width: int
    height: int
    pitch: int
    data: ctypes.Array[ctypes.c_char]
    """The converted picture's own memory (no copy of it), kept alive by this reference."""
    number: int
    capture_us: int


class ScreenStream:
    """The decoder of the share on screen: a :class:`~kiosk.share.ScreenSink`.

    ``request_redraw`` is called (from the decoder thread) after each new picture and
    when the stream stalls (no picture for ``stall_s``). Call :meth:`close` when the
    kiosk stops.
    """

    def __init__(
        self,
        request_redraw: Callable[[], None] = lambda: None,
        *,
        stall_s: float = limits.STREAM_STALL_S,
    ) -> None:
        self._redraw = request_redraw
        self._stall_s = stall_s
        self._lock = threading.Condition()
        self._queue: collections.deque[StreamFrame] = collections.deque()
        self._stream: int | None = None
        self._generation = 0
        self._failed = False
        self._closed = False
        self._latest: DecodedPicture | None = None
        self._stalled = False
        self._number = 0
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- any thread

    def start(self, stream_id: int, width: int, height: int) -> None:
        with self._lock:
            self._stream = stream_id
            self._generation += 1
            self._queue.clear()
            self._failed = False
            self._latest = None
            self._stalled = False
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="screen-decoder", daemon=True
                )
                self._thread.start()
            self._lock.notify()

    def feed(self, frame: StreamFrame) -> bool:
        with self._lock:
            if self._stream is None or frame.stream_id != self._stream:
                return True
            failed, self._failed = self._failed, False
            if len(self._queue) >= DECODE_BACKLOG:
                self._queue.clear()
                failed = True
            if failed and not frame.keyframe:
                return False
            self._queue.append(StreamFrame(*_owned(frame)))
            self._lock.notify()
            return not failed

    def stop(self) -> None:
        with self._lock:
            self._stream = None
            self._generation += 1
            self._queue.clear()
            self._lock.notify()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join(2)

    def latest(self) -> DecodedPicture | None:
        """The newest decoded picture of the current share (None before the first)."""
        with self._lock:
            return self._latest

    @property
    def stalled(self) -> bool:
        """Whether no picture came for ``STREAM_STALL_S``."""
        with self._lock:
            return self._stalled

    # ----------------------------------------------------------------- decoder thread

    def _run(self) -> None:
        decoder: av.VideoCodecContext | None = None
        generation = -1
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    timed_out = not self._lock.wait(self._stall_s)
                    if timed_out and self._stream is not None and not self._stalled:
                        self._stalled = True
                        self._redraw()
                if self._closed:
                    return
                frame = self._queue.popleft()
                if self._generation != generation:
                    generation, decoder = self._generation, None
            if decoder is None:
                decoder = _open_decoder()
            try:
                picture = self._decode(decoder, frame)
            except Exception as exc:  # the one broad catch: a bad picture must not stop it
                logger.info("screen share: a picture did not decode: %s", exc)
                with self._lock:
                    self._failed = True
                decoder = None
                continue
            with self._lock:
                if picture is not None and generation == self._generation:
                    self._latest = picture
                    self._stalled = False
            if picture is not None:
                self._redraw()

    def _decode(self, decoder: av.VideoCodecContext, frame: StreamFrame) -> DecodedPicture | None:
        """Decode ``frame``; its picture in BGRA, or None when it has none to show.

        A picture that a frame already waiting will replace is decoded (the next ones
        refer to it) but neither converted nor copied: on a panel that decodes slower
        than the teacher's screen changes, that is most of a picture's cost, and the
        decoder then catches up instead of dropping its backlog and waiting for a
        keyframe.
        """
        import av  # imported at the first share: PyAV and FFmpeg cost an idle panel ~25 MB

        last = None
        for decoded in decoder.decode(av.Packet(bytes(frame.data))):
            if decoded.width > limits.MAX_SHARE_WIDTH or decoded.height > limits.MAX_SHARE_HEIGHT:
                raise ValueError(
                    f"a picture of {decoded.width}×{decoded.height} is over "
                    f"{limits.MAX_SHARE_WIDTH}×{limits.MAX_SHARE_HEIGHT}"
                )
            last = decoded
        with self._lock:
            superseded = bool(self._queue)
        if last is None or superseded:
            return None
        bgra = last.reformat(format="bgra")  # a new frame, with memory of its own
        plane = bgra.planes[0]
        pixels = (ctypes.c_char * plane.buffer_size).from_buffer(plane)  # no 8 MB copy
        self._number += 1
        return DecodedPicture(
            bgra.width, bgra.height, plane.line_size, pixels, self._number, frame.capture_us
        )


def _owned(frame: StreamFrame) -> tuple[int, int, bool, int, bytes]:
    """The frame's fields with its picture copied out of the received frame."""
    return frame.stream_id, frame.seq, frame.keyframe, frame.capture_us, bytes(frame.data)


def _open_decoder() -> av.VideoCodecContext:
    import av  # imported at the first share (see ScreenStream._decode)
    import av.codec.context

    ctx = av.CodecContext.create("h264", "r")
    assert isinstance(ctx, av.VideoCodecContext)
    ctx.flags |= av.codec.context.Flags.low_delay  # output each picture at once
    ctx.thread_type = "SLICE"  # frame threads would hold pictures back
    ctx.thread_count = 2
    return ctx


# --------------------------------------------------------------------------- scene


class _PausedCard(Card):
    def __init__(self, ctx: SceneContext, title: str) -> None:
        size = ctx.height / 22
        super().__init__(
            ctx,
            [
                (tr(ctx.lang, "Screen sharing paused"), size, WHITE),
                (clean_name(title), size * 0.7, MUTED_TEXT),
                (
                    tr(
                        ctx.lang,
                        "The picture from the teacher's computer stopped coming. It "
                        "returns by itself when the connection does; Esc twice ends it.",
                    ),
                    size * 0.6,
                    MUTED_TEXT,
                ),
            ],
            PLACEHOLDER_BACKGROUND,
        )


class ScreenScene(Scene):
    """The shared screen, letterboxed; the paused card while no picture comes."""

    def __init__(self, ctx: SceneContext, stream: ScreenStream, title: str) -> None:
        self.ctx = ctx
        self._stream = stream
        self.title = title
        self._picture = FlippedPicture()
        self._shown = -1
        self._card: _PausedCard | None = None
        self.frames_shown = 0
        self.last_capture_us = 0
        """Capture time (sender's clock, µs) of the picture drawn last (benchmarks)."""

    @property
    def ready(self) -> bool:
        return self._stream.latest() is not None

    def draw(self) -> None:
        picture = self._stream.latest()
        paused = self._stream.stalled or picture is None
        self._set_background(PLACEHOLDER_BACKGROUND if paused else BLACK)
        if paused:
            if self._card is None:
                self._card = _PausedCard(self.ctx, self.title)
            self._card.draw()
            return
        assert picture is not None
        if picture.number != self._shown:
            self._upload(picture)
        self._picture.draw(self.ctx.width, self.ctx.height)

    def _set_background(self, color: Color) -> None:
        """The window cleared to the old colour before this draw: draw once more."""
        if color != self.background:
            self.background = color
            self.ctx.request_redraw()

    def delete(self) -> None:
        if self._card is not None:
            self._card.delete()
            self._card = None
        self._picture.delete()
        self._shown = -1

    def _upload(self, picture: DecodedPicture) -> None:
        self._picture.upload(picture.width, picture.height, picture.data, picture.pitch)
        self._shown = picture.number
        self.frames_shown += 1
        self.last_capture_us = picture.capture_us


class ScreenLoader:
    """Loader of ``screen`` items: the scene of the share on screen (``SceneFactory.register``)."""

    def __init__(self, stream: ScreenStream) -> None:
        self.stream = stream

    def __call__(self, request: SceneRequest, ctx: SceneContext) -> SceneBuilder:
        return lambda: ScreenScene(ctx, self.stream, request.item.title)
