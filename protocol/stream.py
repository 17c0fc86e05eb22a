"""The receiving side of a screen share: which pictures to decode, when to ask for a keyframe.

A screen share is H.264: a picture other than a keyframe only decodes on top of the one
before it. TCP loses nothing, but a sender skips pictures a slow panel cannot take, and
a panel may join a share late; either way the panel must not decode what follows
until a keyframe arrives, and must ask for one. :class:`StreamReceiver` decides that,
from the header of each stream frame and the time ``now`` the caller passes in::

    receiver = StreamReceiver(stream_id=7, now=now)
    verdict = receiver.receive(seq=0, keyframe=True, now=now)
    if verdict.decode: ...            # hand the picture to the decoder
    if verdict.ask_keyframe: ...      # send keyframe_request to the sender

The rules, by state:

============  ==========================  ==========  ============  ============
state         frame                       decode      ask keyframe  next state
============  ==========================  ==========  ============  ============
waiting       keyframe                    yes         no            in_sync
waiting       other                       no          if due [1]_   waiting
in_sync       next seq                    yes         no            in_sync
in_sync       seq already seen            no          no            in_sync
in_sync       gap, keyframe               yes         no            in_sync
in_sync       gap, other                  no          yes           waiting
in_sync       decoder failed              —           yes           waiting
============  ==========================  ==========  ============  ============

.. [1] at most once per ``KEYFRAME_REQUEST_INTERVAL_S``.

This module does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from protocol.limits import KEYFRAME_REQUEST_INTERVAL_S, STREAM_STALL_S

_SEQ_MOD = 2**32
_SEQ_HALF = 2**31

ReceiverState = Literal["waiting", "in_sync"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one received picture: decode it, and/or ask for a keyframe."""

    decode: bool
    ask_keyframe: bool


class StreamReceiver:
    """One panel's view of one stream; see the module's table.

    Call :meth:`receive` for every stream frame of the stream, :meth:`decode_failed`
    when the decoder refuses a picture, and :meth:`stalled` to know whether to show the
    "screen sharing paused" card.
    """

    def __init__(self, stream_id: int, *, now: float) -> None:
        self.stream_id = stream_id
        self.state: ReceiverState = "waiting"
        self._last_seq: int | None = None
        self._asked_at = float("-inf")
        self._last_frame_at = now
        self.decoded = 0
        """Pictures passed to the decoder so far."""
        self.skipped = 0
        """Pictures not decoded (waiting for a keyframe, or seen before)."""

    def receive(self, *, seq: int, keyframe: bool, now: float) -> Verdict:
        """Decide about picture ``seq`` (``keyframe``: it decodes on its own)."""
        self._last_frame_at = now
        if self.state == "waiting":
            if keyframe:
                return self._take(seq)
            return self._skip(now, ask=True)
        assert self._last_seq is not None
        step = (seq - self._last_seq) % _SEQ_MOD
        if step == 1 or (keyframe and 0 < step < _SEQ_HALF):
            return self._take(seq)
        if step == 0 or step >= _SEQ_HALF:  # a picture seen before (or older)
            return self._skip(now, ask=False)
        self.state = "waiting"
        return self._skip(now, ask=True)

    def decode_failed(self, *, now: float) -> bool:
        """The decoder refused a picture: wait for a keyframe. Returns whether to ask now."""
        self.state = "waiting"
        return self._due(now)

    def stalled(self, *, now: float) -> bool:
        """Whether no picture came for ``STREAM_STALL_S`` (show the paused card)."""
        return now >= self._last_frame_at + STREAM_STALL_S

    def stall_deadline_s(self) -> float:
        """When :meth:`stalled` turns true if no picture comes before."""
        return self._last_frame_at + STREAM_STALL_S

    def _take(self, seq: int) -> Verdict:
        self.state = "in_sync"
        self._last_seq = seq
        self.decoded += 1
        return Verdict(decode=True, ask_keyframe=False)

    def _skip(self, now: float, *, ask: bool) -> Verdict:
        self.skipped += 1
        return Verdict(decode=False, ask_keyframe=ask and self._due(now))

    def _due(self, now: float) -> bool:
        if now - self._asked_at < KEYFRAME_REQUEST_INTERVAL_S:
            return False
        self._asked_at = now
        return True
