"""Screen shares on the panel: who shares, which of their pictures are decoded.

:class:`ShareGate` is pure (it takes ``now``): the service asks it about every
``share_start``, ``share_stop`` and stream frame. The pictures it lets through go to a
:class:`ScreenSink` (the decoder, :mod:`kiosk.screen_scene`), which runs on its own
thread. A share is shown by the player as a one-item lesson of kind ``screen``
(:func:`share_lesson`): moderation, ``control`` (blank, stop), Esc twice on the panel
and the usage log work as for any lesson.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

from protocol import limits
from protocol.codec import StreamFrame
from protocol.errors import NoShareError
from protocol.messages import LessonManifest, ManifestItem, ShareStart
from protocol.stream import StreamReceiver, Verdict

SHARE_IGNORES: Final = frozenset({"next", "prev", "goto", "seek", "pause", "play"})
"""Controls that do nothing to a screen share (answered ``ok``, or ignored on the panel):
it has one item, and a presenter remote's "next" out of habit must not end it. Blank,
unblank, stop and volume work as for a lesson."""

SHARE_LESSON_PREFIX = "screen:"
"""``lesson_id`` of a share's lesson: this, then the controller's id and the stream id."""


class ScreenSink(Protocol):
    """Where the pictures of the share on screen go (the decoder); thread-safe, never blocks."""

    def start(self, stream_id: int, width: int, height: int) -> None:
        """A share begins: drop any previous stream's pictures."""

    def feed(self, frame: StreamFrame) -> bool:
        """Decode ``frame`` (in order). Returns False when the decoder failed or fell
        behind since the last call: the caller must wait for a keyframe."""

    def stop(self) -> None:
        """The share ended: drop what is queued."""


class NoScreen:
    """A :class:`ScreenSink` for a kiosk without a window: pictures are dropped."""

    def start(self, stream_id: int, width: int, height: int) -> None:
        pass

    def feed(self, frame: StreamFrame) -> bool:
        return True

    def stop(self) -> None:
        pass


@dataclass(slots=True)
class ActiveShare:
    """The share on screen: from session ``sid``, stream ``stream_id``."""

    sid: int
    controller_id: str
    stream_id: int
    receiver: StreamReceiver
    tokens: float
    tokens_at: float


def share_lesson_id(controller_id: str, stream_id: int) -> str:
    """The ``lesson_id`` of the share of ``stream_id`` by ``controller_id``."""
    return f"{SHARE_LESSON_PREFIX}{controller_id}:{stream_id}"


def share_lesson(controller_id: str, msg: ShareStart) -> LessonManifest:
    """The one-item lesson the player shows for ``share_start`` ``msg``."""
    title = msg.title.strip() or "Screen"
    return LessonManifest(
        lesson_id=share_lesson_id(controller_id, msg.stream_id),
        title=title,
        items=[ManifestItem(kind="screen", title=title)],
    )


class ShareGate:
    """The share on this panel, if any, and the rules for its stream frames.

    Call :meth:`start` once the ``share_start`` passed moderation, :meth:`frame` for every
    stream frame (its verdict says whether to decode and whether to ask for a keyframe;
    None: the connection sends too many, close it), and :meth:`end` when the share is
    no longer on screen.
    """

    def __init__(self) -> None:
        self.active: ActiveShare | None = None

    def start(self, sid: int, controller_id: str, msg: ShareStart, *, now: float) -> None:
        """Session ``sid`` shares from now on (replacing any other share)."""
        self.active = ActiveShare(
            sid,
            controller_id,
            msg.stream_id,
            StreamReceiver(msg.stream_id, now=now),
            float(limits.STREAM_FRAME_BURST),
            now,
        )

    def owned_by(self, sid: int, stream_id: int) -> ActiveShare:
        """The active share if session ``sid`` shares stream ``stream_id``.

        Raises:
            NoShareError: it does not (the peer's fault, or the panel stopped the share).
        """
        share = self.active
        if share is None or share.sid != sid:
            raise NoShareError("this connection is not sharing its screen on this panel")
        if share.stream_id != stream_id:
            raise NoShareError(
                f"stream {stream_id} is not the one shared on this panel ({share.stream_id})"
            )
        return share

    def frame(self, sid: int, frame: StreamFrame, *, now: float) -> Verdict | None:
        """Judge one stream frame of session ``sid``.

        Returns:
            What to do with it, or None when the session sends more than
            ``MAX_STREAM_FRAMES_PER_SECOND``: close it (1008).

        Raises:
            NoShareError: the session is not sharing this stream.
        """
        share = self.owned_by(sid, frame.stream_id)
        share.tokens = min(
            float(limits.STREAM_FRAME_BURST),
            share.tokens + (now - share.tokens_at) * limits.MAX_STREAM_FRAMES_PER_SECOND,
        )
        share.tokens_at = now
        if share.tokens < 1:
            return None
        share.tokens -= 1
        return share.receiver.receive(seq=frame.seq, keyframe=frame.keyframe, now=now)

    def decoder_failed(self, *, now: float) -> bool:
        """The decoder dropped or refused a picture; returns whether to ask for a keyframe."""
        return self.active is not None and self.active.receiver.decode_failed(now=now)

    def end(self) -> ActiveShare | None:
        """Forget the share (stopped, replaced, or its connection closed); returns it."""
        share, self.active = self.active, None
        return share


def is_share(lesson: LessonManifest | None) -> bool:
    """Whether ``lesson`` is a share's lesson (:func:`share_lesson`)."""
    return lesson is not None and any(item.kind == "screen" for item in lesson.items)
