"""The lesson player: a pure state machine that decides what a panel shows.

The player takes commands together with ``now`` (seconds of a monotonic clock) and
queues effects; it never reads a clock, draws, plays or writes anything itself. The
caller carries the effects out and asks :meth:`LessonPlayer.next_deadline_s` when to
call :meth:`LessonPlayer.tick` next::

    player.load(manifest, presenter, start_index=0, now=0.0)
    player.control("next", now=12.5)
    for effect in player.drain():        # Show, Preload, ShowIdle, SetBlank, VideoCommand,
        adapter.apply(effect)            # IntervalStarted, IntervalEnded, StatusChanged

A lesson's whole life (``blanked`` is a flag beside the state, see below). The next
state of each input is data, :data:`TRANSITIONS`, which the code reads (refusals
included) and ``tests/test_player.py`` checks entry by entry against what a real player
then shows; this table adds what each input does besides::

    state     input                  next state   effects
    --------  ---------------------  -----------  ----------------------------------------
    any       load (start now)       playing      [end interval "replaced"] Show Preload
                                                  IntervalStarted
    any       load (start later)     loading      Show at the start instant (the display
                                                  builds the item now and keeps what it
                                                  shows until then)
    loading   tick at start time     playing      [end interval "replaced"] Show Preload
                                                  IntervalStarted (times: the instant)
    playing+  control at a later     unchanged    [Show at the instant: a move's target]
              instant                             (kept; applied by the tick at it)
    any       tick at a control's    as the       as the control, at the instant
              instant                control
    playing   next / prev / goto     playing      end interval, Show, Preload, IntervalStarted
    paused    next / prev / goto     playing      (as above; a new item starts playing)
    playing   tick at item's end     playing      end interval "auto", Show next ...
    playing   video_ended            playing      (as above)
    playing+  item_failed            unchanged    end interval "failed" (0 ms: closed at
                                                  its start), IntervalStarted hidden
                                                  "failed" (from that start: the panel
                                                  shows why), StatusChanged with
                                                  item_failure
    playing+  item_opened            unchanged    StatusChanged with item_opened (a web
                                                  page checked and opened)
    playing   next on the last item  idle         end interval "end", ShowIdle
    playing   pause                  paused       VideoCommand pause
    paused    play                   playing      VideoCommand play
    playing   seek / paused seek     unchanged    VideoCommand seek
    any       volume                 unchanged    VideoCommand volume (idle too: kept
                                                  for the next videos)
    playing+  blank                  unchanged    end interval "blank", IntervalStarted
                                                  hidden "blank", [VideoCommand pause]
                                                  SetBlank on
    playing+  unblank                unchanged    end interval "shown", IntervalStarted,
                                                  [VideoCommand play] SetBlank off
    any       alert (full screen)    unchanged    as blank, reason and hidden "alert";
                                                  no SetBlank (the service shows it)
    any       clear_alert / tick at  unchanged    as unblank, no SetBlank; refused with
              the alert's end                     ForbiddenError when a teacher clears
                                                  an administrator's alert
    loading+  stop                   idle         end interval "stop", ShowIdle
    idle      any control            idle         raises UnexpectedMessageError (no_lesson)
    any       resume (at start)      playing or   [end interval "replaced"] [VideoCommand
                                     paused       volume] [SetBlank] Show Preload
                                                  [VideoCommand seek, pause]
                                                  IntervalStarted

``playing+`` means playing or paused. Every change also queues one ``StatusChanged``.

Instants: a ``load`` with ``start_at_s`` and a ``control`` with ``at_s`` (same clock as
``now``) take effect at that instant, so that many panels switch together. Until then
the panel keeps showing what it showed (never the idle screen): the ``Show`` carries
``at_s`` so that the display prepares the item at once and flips to it at the instant
on its own timer, not behind the network. An instant that has already passed when it
arrives is applied at once and reported: ``load`` and ``control`` return how many ms
late (None: on time). An instant more than ``limits.MAX_INSTANT_AHEAD_MS`` ahead is
refused (code ``bad_instant``). A new lesson, ``stop`` or the lesson's end drops the
controls still waiting for their instant.
While blanked, under a full-screen alert, or paused the item's clock stands still and a
video is paused, so nothing advances behind a blank screen or an alert (an alert is an
emergency: the class resumes where it stopped). Every moment an item is on the panel
lies in exactly one display interval; one during which the item could not be seen
carries why in ``hidden`` (``blank``, ``alert``, or ``failed`` when the panel shows why
the item could not be shown; precedence in that order from the right): reports log that
time but do not count it as display time. A lesson cast while the screen is blanked is
loaded behind the blank, in a hidden interval.

``resume`` brings back what a previous run of the kiosk showed when it stopped
unexpectedly (:mod:`kiosk.resume` saves it): the same item, paused and blanked as it
was, in a new display interval. A video continues from the saved position; any other
item starts afresh, so a timed slide is shown for its whole duration again (a still
picture loses nothing by that, and what the class missed during the restart is shown).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from protocol import limits
from protocol.errors import ForbiddenError, UnexpectedMessageError
from protocol.messages import (
    ControlAction,
    EndReason,
    HiddenReason,
    ItemFailure,
    LessonManifest,
    ManifestItem,
    PlayerState,
    StatusSnapshot,
)

# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Presenter:
    """The teacher who cast the lesson."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the kiosk is, for status snapshots."""

    kiosk_id: str
    room: str
    school: str
    version: str


# --------------------------------------------------------------------------- effects


@dataclass(frozen=True, slots=True)
class Show:
    """Show item ``index`` of ``lesson`` (a video starts playing).

    With ``at_s`` (same clock as the player's ``now``) still to come, prepare the item
    now and flip to it at that instant, showing what is on screen until then; a later
    ``Show`` or ``ShowIdle`` cancels that flip. An ``at_s`` already past: at once.
    """

    lesson: LessonManifest
    index: int
    item: ManifestItem
    at_s: float | None = None


@dataclass(frozen=True, slots=True)
class Preload:
    """Prepare item ``index`` so that showing it later needs no loading."""

    lesson: LessonManifest
    index: int
    item: ManifestItem


@dataclass(frozen=True, slots=True)
class ShowIdle:
    """Show the idle screen (no lesson)."""


@dataclass(frozen=True, slots=True)
class SetBlank:
    """Blank the screen (``on``) or show the lesson again."""

    on: bool


@dataclass(frozen=True, slots=True)
class VideoCommand:
    """Pause, resume or seek the video of the current item, or set the panel's volume
    (``volume``: percent, for this and every later video)."""

    action: Literal["pause", "play", "seek", "volume"]
    position_ms: int = 0
    volume: int = 100


@dataclass(frozen=True, slots=True)
class IntervalStarted:
    """An item came on the panel, or its visibility changed, at ``now_s``: open a usage
    record (``hidden``: why the item cannot be seen in it, ``""`` when it can)."""

    lesson: LessonManifest
    index: int
    item: ManifestItem
    presenter: Presenter
    now_s: float
    hidden: HiddenReason = ""


@dataclass(frozen=True, slots=True)
class IntervalEnded:
    """The open display interval ended at ``now_s`` for ``reason``: close its record."""

    reason: EndReason
    now_s: float


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """What the kiosk shows changed; tell the controllers."""

    status: StatusSnapshot


Effect = (
    Show
    | Preload
    | ShowIdle
    | SetBlank
    | VideoCommand
    | IntervalStarted
    | IntervalEnded
    | StatusChanged
)


# --------------------------------------------------------------------------- the machine


@dataclass(frozen=True, slots=True)
class _Scheduled:
    """A control waiting for its instant ``at_s``."""

    at_s: float
    action: ControlAction
    index: int | None
    position_ms: int | None
    volume: int | None


def late_ms(at_s: float | None, now: float) -> int | None:
    """How many ms past the instant ``at_s`` ``now`` is (at least 1), or None when
    there is no instant or it has not passed."""
    if at_s is None or now <= at_s:
        return None
    return max(1, round((now - at_s) * 1000))


@dataclass(frozen=True, slots=True)
class _Alert:
    """A full-screen alert: until when (None: until removed), and whether an
    administrator showed it (then only an administrator may remove it)."""

    until_s: float | None
    by_admin: bool


Input = Literal[
    "load",
    "load_later",
    "start",
    "resume",
    "resume_paused",
    "next",
    "next_past_end",
    "prev",
    "prev_at_first",
    "goto",
    "auto",
    "auto_past_end",
    "pause",
    "play",
    "seek",
    "volume",
    "blank",
    "unblank",
    "stop",
]
"""What moves the player, as :data:`TRANSITIONS` names it: the control actions, plus the
cases the state depends on (``next`` on the last item is ``next_past_end``, ``prev`` on
the first is ``prev_at_first``; ``auto`` is a timed item's end or a video's end)."""

Refusal = Literal["no_lesson", "not_started"]
"""An input refused in a state: the code of the ``UnexpectedMessageError`` raised."""

_ALL: Final[tuple[PlayerState, ...]] = ("idle", "loading", "playing", "paused")
_SHOWING: Final[tuple[PlayerState, ...]] = ("playing", "paused")


def _transitions() -> dict[tuple[PlayerState, Input], PlayerState | Refusal]:
    """:data:`TRANSITIONS`, written as rows: (states, inputs, next state or refusal)."""
    moves: tuple[tuple[tuple[PlayerState, ...], tuple[Input, ...], PlayerState | Refusal], ...] = (
        (_ALL, ("load", "resume"), "playing"),
        (_ALL, ("load_later",), "loading"),
        (_ALL, ("resume_paused",), "paused"),
        (("loading",), ("start",), "playing"),
        (_SHOWING, ("next", "prev", "goto", "play"), "playing"),
        (_SHOWING, ("pause",), "paused"),
        (_SHOWING, ("next_past_end", "stop"), "idle"),
        # A paused item's clock stands still: only a playing one ends by itself.
        (("playing",), ("auto",), "playing"),
        (("playing",), ("auto_past_end",), "idle"),
        (("loading",), ("stop",), "idle"),
    )
    keeps: tuple[tuple[tuple[PlayerState, ...], tuple[Input, ...]], ...] = (
        (_SHOWING, ("prev_at_first", "seek", "blank", "unblank")),
        (_ALL, ("volume",)),
    )
    table: dict[tuple[PlayerState, Input], PlayerState | Refusal] = {}
    for states, inputs, target in moves:
        table.update({(state, name): target for state in states for name in inputs})
    for states, inputs in keeps:
        table.update({(state, name): state for state in states for name in inputs})
    refused: tuple[Input, ...] = (
        "next", "next_past_end", "prev", "prev_at_first", "goto", "pause", "play", "seek",
        "blank", "unblank", "stop",
    )  # fmt: skip
    for name in refused:
        table.setdefault(("idle", name), "no_lesson")
        table.setdefault(("loading", name), "not_started")
    return table


TRANSITIONS: Final[Mapping[tuple[PlayerState, Input], PlayerState | Refusal]] = _transitions()
"""The player's states as data: for each (state, input), the next state, or the code an
input is refused with in that state. :class:`LessonPlayer` reads it for every input it
takes (``_enter``); an input missing for a state cannot happen there (``auto`` and
``start`` come only from the player's own clock). What each move does besides (display
effects, intervals) is the table in this module's docstring; ``tests/test_player.py``
drives a real player through every entry."""


class LessonPlayer:
    """Decides what the panel shows; see the module docstring for the table."""

    def __init__(self, identity: Identity) -> None:
        self._identity = identity
        self._state: PlayerState = "idle"
        self._blanked = False
        self._lesson: LessonManifest | None = None
        self._presenter: Presenter | None = None
        self._index = 0
        self._start_at_s: float | None = None
        # Item clock: position = (now or frozen_at) - item_origin_s.
        self._item_origin_s = 0.0
        self._frozen_at_s: float | None = None
        self._interval_open = False
        self._interval_start_s = 0.0
        self._interval_hidden: HiddenReason = ""
        self._alert: _Alert | None = None
        """The full-screen alert that covers the panel, if any."""
        self._failure: tuple[ItemFailure, int | None] | None = None
        """Why the current item could not be shown (its interval is closed)."""
        self._opened = False
        """The current item, a web page, was checked and opened."""
        self._volume = 100
        self._scheduled: list[_Scheduled] = []
        """Controls waiting for their instant, earliest first."""
        self._effects: list[Effect] = []

    # ----------------------------------------------------------------- queries

    @property
    def state(self) -> PlayerState:
        return self._state

    @property
    def blanked(self) -> bool:
        return self._blanked

    @property
    def alerted(self) -> bool:
        """A full-screen alert covers the panel."""
        return self._alert is not None

    @property
    def lesson(self) -> LessonManifest | None:
        return self._lesson

    @property
    def index(self) -> int:
        return self._index

    @property
    def presenter(self) -> Presenter | None:
        return self._presenter

    @property
    def volume(self) -> int:
        """Sound level of videos, percent."""
        return self._volume

    def position_ms(self, now: float) -> int:
        """Time spent on the current item, paused and blanked time excluded."""
        if self._state not in ("playing", "paused"):
            return 0
        at = self._frozen_at_s if self._frozen_at_s is not None else now
        return max(0, round((at - self._item_origin_s) * 1000))

    def snapshot(self, now: float) -> StatusSnapshot:
        """Return what the kiosk shows at ``now``."""
        ident = self._identity
        lesson = self._lesson
        item = self._current_item() if self._state in ("playing", "paused") else None
        return StatusSnapshot(
            kiosk_id=ident.kiosk_id,
            room=ident.room,
            school=ident.school,
            state=self._state,
            blanked=self._blanked,
            lesson_id=lesson.lesson_id if lesson else None,
            lesson_title=lesson.title if lesson else None,
            index=self._index if lesson else 0,
            count=len(lesson.items) if lesson else 0,
            item_kind=item.kind if item else None,
            item_title=item.title if item else None,
            position_ms=self.position_ms(now),
            presenter=self._presenter.name if self._presenter else None,
            version=ident.version,
            volume=self._volume,
            item_failure=self._failure[0] if item and self._failure else None,
            item_failure_status=self._failure[1] if item and self._failure else None,
            item_opened=bool(item) and self._opened,
        )

    def next_deadline_s(self) -> float | None:
        """When :meth:`tick` must be called next, or None if nothing is timed."""
        deadlines: list[float] = []
        if self._alert is not None and self._alert.until_s is not None:
            deadlines.append(self._alert.until_s)
        if self._scheduled:
            deadlines.append(self._scheduled[0].at_s)
        if self._state == "loading" and self._start_at_s is not None:
            deadlines.append(self._start_at_s)
        elif self._state == "playing" and self._frozen_at_s is None:
            duration = self._current_item().duration_ms
            if duration is not None:
                deadlines.append(self._item_origin_s + duration / 1000)
        return min(deadlines, default=None)

    def drain(self) -> list[Effect]:
        """Return and forget the effects queued since the last call."""
        effects, self._effects = self._effects, []
        return effects

    # ----------------------------------------------------------------- inputs

    def load(
        self,
        lesson: LessonManifest,
        presenter: Presenter,
        *,
        start_index: int,
        now: float,
        start_at_s: float | None = None,
    ) -> int | None:
        """Replace whatever is shown with ``lesson``.

        Starts at once, or at ``start_at_s`` (same clock as ``now``) when that is later,
        so that several panels start together; until then the panel keeps what it shows
        and prepares the first item (state ``loading``).

        Returns:
            How many ms past ``start_at_s`` this came (the lesson started at once, late):
            tell the controller; None when on time.

        Raises:
            UnexpectedMessageError: ``start_index`` is outside the lesson (code
                ``bad_index``), or ``start_at_s`` is further ahead than
                ``limits.MAX_INSTANT_AHEAD_MS`` (code ``bad_instant``).
        """
        if not 0 <= start_index < len(lesson.items):
            raise UnexpectedMessageError(
                f"start index {start_index} is outside the lesson's {len(lesson.items)} items",
                code="bad_index",
            )
        check_instant(start_at_s, now)
        self._scheduled.clear()
        self._failure = None
        self._opened = False
        self._lesson = lesson
        self._presenter = presenter
        self._index = start_index
        if start_at_s is not None and start_at_s > now:
            # What is shown stays (its interval too) until the instant.
            self._state = self._enter("load_later", "load")
            self._start_at_s = start_at_s
            self._effects.append(
                Show(lesson, start_index, lesson.items[start_index], at_s=start_at_s)
            )
            self._status(now)
            return None
        target = self._enter("load", "load")
        self._end_interval("replaced", now)
        self._start_item(start_index, now)
        self._state = target
        return late_ms(start_at_s, now)

    def resume(
        self,
        lesson: LessonManifest,
        presenter: Presenter,
        *,
        index: int,
        now: float,
        paused: bool = False,
        blanked: bool = False,
        position_ms: int = 0,
        volume: int = 100,
    ) -> None:
        """Show item ``index`` of ``lesson`` again, as a previous run of the kiosk left it.

        Call once at start, before any other input, with what the kiosk saved while it
        showed the lesson. The item is shown at once and, unless ``blanked``, a new display
        interval opens for it at ``now``: the interval the previous run left open was
        closed by the usage log's recovery, so the log goes on without a double count.
        A video continues from ``position_ms`` (paused if ``paused`` or ``blanked``); any
        other item starts afresh, so a timed slide runs its whole duration again.

        Raises:
            UnexpectedMessageError: ``index`` is outside the lesson (code ``bad_index``).
        """
        if not 0 <= index < len(lesson.items):
            raise UnexpectedMessageError(
                f"item {index} is outside the lesson's {len(lesson.items)} items",
                code="bad_index",
            )
        self._end_interval("replaced", now)
        self._scheduled.clear()
        self._failure = None
        self._opened = False
        item = lesson.items[index]
        self._lesson = lesson
        self._presenter = presenter
        self._index = index
        self._start_at_s = None
        self._state = self._enter("resume_paused" if paused else "resume", "resume")
        percent = max(0, min(100, volume))
        if percent != self._volume:
            self._volume = percent
            self._effects.append(VideoCommand("volume", volume=percent))
        if blanked != self._blanked:
            self._blanked = blanked
            self._effects.append(SetBlank(blanked))
        position_ms = max(0, position_ms) if item.kind == "video" else 0
        if item.duration_ms is not None:
            position_ms = min(position_ms, item.duration_ms)
        self._item_origin_s = now - position_ms / 1000
        self._frozen_at_s = None if self._running() else now
        self._effects.append(Show(lesson, index, item))
        if index + 1 < len(lesson.items):
            self._effects.append(Preload(lesson, index + 1, lesson.items[index + 1]))
        if item.kind == "video":
            if position_ms:
                self._effects.append(VideoCommand("seek", position_ms))
            if not self._running():
                self._effects.append(VideoCommand("pause"))
        self._open_interval(now)
        self._status(now)

    def control(
        self,
        action: ControlAction,
        *,
        now: float,
        index: int | None = None,
        position_ms: int | None = None,
        volume: int | None = None,
        at_s: float | None = None,
    ) -> int | None:
        """Apply a teacher's (or the panel's own) control command, at once or at the
        instant ``at_s`` (same clock as ``now``) when that is later.

        A control for a later instant is checked now (the errors below come at once),
        kept, and applied by :meth:`tick` at its instant; a move (``next``, ``prev``,
        ``goto``) queues a ``Show`` with that instant so that the display flips on
        time. One that no longer applies at its instant is dropped.

        Returns:
            How many ms past ``at_s`` this came (applied at once, late): tell the
            controller; None when on time or without an instant.

        Raises:
            UnexpectedMessageError: no lesson is loaded (code ``no_lesson``), the
                lesson starts later than ``at_s`` (code ``not_started``), ``goto``
                names an item the lesson does not have (code ``bad_index``), or
                ``at_s`` is further ahead than ``limits.MAX_INSTANT_AHEAD_MS`` (code
                ``bad_instant``).
        """
        check_instant(at_s, now)
        if at_s is not None and at_s > now:
            self._check_control(action, index, at_s)
            self._scheduled.append(_Scheduled(at_s, action, index, position_ms, volume))
            self._scheduled.sort(key=lambda s: s.at_s)
            self._preview(now)
            return None
        self._apply_control(action, now, index, position_ms, volume)
        return late_ms(at_s, now)

    def _check_control(self, action: ControlAction, index: int | None, at_s: float) -> None:
        """Refuse now a control that cannot apply at ``at_s``."""
        if action == "volume":
            return
        if self._state == "idle" or self._lesson is None:
            raise UnexpectedMessageError(f"cannot {action}: no lesson is shown", code="no_lesson")
        start = self._start_at_s if self._state == "loading" else None
        if start is not None and at_s < start and action != "stop":
            raise UnexpectedMessageError(
                f"cannot {action}: the lesson has not started yet", code="not_started"
            )
        count = len(self._lesson.items)
        if action == "goto" and (index is None or not 0 <= index < count):
            raise UnexpectedMessageError(
                f"item {index} does not exist; the lesson has {count} items", code="bad_index"
            )

    def _preview(self, now: float) -> None:
        """Let the display prepare the item the earliest waiting control moves to, and
        flip at its instant (only when that control is the one waiting, and no start
        is: the display keeps one flip pending)."""
        if len(self._scheduled) != 1 or self._lesson is None or self._state == "loading":
            return
        s = self._scheduled[0]
        count = len(self._lesson.items)
        start = self._index
        target = {"next": start + 1, "prev": max(0, start - 1), "goto": s.index}.get(s.action)
        if target is None or target == start or not 0 <= target < count:
            return
        self._effects.append(Show(self._lesson, target, self._lesson.items[target], at_s=s.at_s))

    def _apply_control(
        self,
        action: ControlAction,
        now: float,
        index: int | None,
        position_ms: int | None,
        volume: int | None,
    ) -> None:
        if action == "volume":  # a setting of the panel: no lesson needed
            percent = max(0, min(100, 100 if volume is None else volume))
            if percent != self._volume:
                self._volume = percent
                self._effects.append(VideoCommand("volume", volume=percent))
                self._status(now)
            return
        count = len(self._lesson.items) if self._lesson is not None else 0
        target = self._enter(self._input(action, count), action)
        assert self._lesson is not None  # the table refuses every control without one
        match action:
            case "next":
                if self._index + 1 >= count:
                    self._finish("end", now)
                else:
                    self._move(self._index + 1, "next", now)
            case "prev":
                if self._index > 0:
                    self._move(self._index - 1, "prev", now)
            case "goto":
                if index is None or not 0 <= index < count:
                    raise UnexpectedMessageError(
                        f"item {index} does not exist; the lesson has {count} items",
                        code="bad_index",
                    )
                self._move(index, "goto", now)
            case "pause" | "play":
                if self._state != target:
                    running = self._running()
                    self._state = target
                    self._apply_clock(running, now)
                    self._status(now)
            case "seek":
                pos = max(0, position_ms or 0)
                duration = self._current_item().duration_ms
                if duration is not None:
                    pos = min(pos, duration)
                at = self._frozen_at_s if self._frozen_at_s is not None else now
                self._item_origin_s = at - pos / 1000
                if self._current_item().kind == "video":
                    self._effects.append(VideoCommand("seek", pos))
                self._status(now)
            case "blank":
                if not self._blanked:
                    running = self._running()
                    self._blanked = True
                    self._sync_interval("blank", now)
                    self._apply_clock(running, now)
                    self._effects.append(SetBlank(True))
                    self._status(now)
            case "unblank":
                if self._blanked:
                    running = self._running()
                    self._blanked = False
                    self._sync_interval("shown", now)
                    self._apply_clock(running, now)
                    self._effects.append(SetBlank(False))
                    self._status(now)
            case "stop":
                self._finish("stop", now)
        self._state = target

    def _input(self, action: ControlAction, count: int) -> Input:
        """The :data:`TRANSITIONS` input a control is in this state."""
        if action == "next" and self._index + 1 >= count:
            return "next_past_end"
        if action == "prev" and self._index == 0:
            return "prev_at_first"
        return action

    def _enter(self, name: Input, action: str) -> PlayerState:
        """The state input ``name`` leads to from this one (:data:`TRANSITIONS`).

        Raises:
            UnexpectedMessageError: the table refuses ``name`` here (code ``no_lesson``
                or ``not_started``); ``action`` names it in the message.
        """
        # An input the table does not list for this state (an action the codec would not
        # let through) changes nothing.
        target = TRANSITIONS.get((self._state, name), self._state)
        if target == "no_lesson":
            raise UnexpectedMessageError(f"cannot {action}: no lesson is shown", code="no_lesson")
        if target == "not_started":
            raise UnexpectedMessageError(
                f"cannot {action}: the lesson has not started yet", code="not_started"
            )
        return target

    def video_ended(self, index: int, *, now: float) -> None:
        """The video of item ``index`` played to its end: advance like a timed item.

        A report for an item that is no longer current, or that arrives while the
        video is paused or blanked, is ignored.
        """
        if (
            self._state == "playing"
            and self._frozen_at_s is None  # a video paused behind a blank cannot have ended
            and self._lesson is not None
            and index == self._index
            and self._current_item().kind == "video"
        ):
            self._advance_auto(now)

    def item_failed(
        self, index: int, failure: ItemFailure, *, now: float, status: int | None = None
    ) -> None:
        """Item ``index`` could not be shown (a web page that did not open).

        Its display interval is closed with reason ``failed`` at its start (0 ms: it
        was never on screen) and a hidden interval (``hidden="failed"``) opens from that
        same start: the time the panel shows why is logged, but is not display time.
        The status says why (``status``: the HTTP status of an ``http_error``). A report
        for an item that is no longer current is ignored; the lesson goes on as usual.
        """
        if (
            self._state in ("playing", "paused")
            and self._lesson is not None
            and index == self._index
            and self._failure is None
        ):
            self._failure = (failure, status)
            start_s = self._interval_start_s if self._interval_open else now
            self._end_interval("failed", start_s)
            self._open_interval(start_s)
            self._status(now)

    def alert(self, *, now: float, until_s: float | None, by_admin: bool) -> None:
        """A full-screen alert now covers the panel, until ``until_s`` (same clock as
        ``now``; None: until :meth:`clear_alert`).

        The item on the panel stands still (a timed slide does not advance, a video
        pauses) and its time is logged as hidden (``alert``) until the alert goes. A new
        alert replaces the one shown: its end and its author count from then on.

        Raises:
            ForbiddenError: a teacher (``by_admin`` False) would replace an
                administrator's alert; tell them to ask an administrator.
        """
        self._check_alert_author(by_admin, "replace")
        running = self._running()
        self._alert = _Alert(until_s, by_admin)
        self._sync_interval("alert", now)
        self._apply_clock(running, now)
        if self._state in ("playing", "paused"):
            self._status(now)

    def clear_alert(self, *, now: float, by_admin: bool) -> None:
        """Remove the full-screen alert, if any; the lesson goes on where it stood.

        Raises:
            ForbiddenError: a teacher (``by_admin`` False) would remove an
                administrator's alert; tell them to ask an administrator.
        """
        if self._alert is None:
            return
        self._check_alert_author(by_admin, "remove")
        running = self._running()
        self._alert = None
        self._sync_interval("shown", now)
        self._apply_clock(running, now)
        if self._state in ("playing", "paused"):
            self._status(now)

    def item_opened(self, index: int, *, now: float) -> None:
        """Item ``index``, a web page, was checked and opened on screen.

        The status says so (``item_opened``), once per showing, so that the controller
        that cast it knows the page opened without waiting out the page check. A report
        for an item that is no longer current, or that failed, is ignored.
        """
        if (
            self._state in ("playing", "paused")
            and self._lesson is not None
            and index == self._index
            and self._failure is None
            and not self._opened
        ):
            self._opened = True
            self._status(now)

    def tick(self, *, now: float) -> None:
        """Advance time: end an alert whose time is up, start a scheduled lesson, apply
        the controls whose instant came (each at its instant), or leave an item whose
        time is up."""
        alert = self._alert
        if alert is not None and alert.until_s is not None and now >= alert.until_s:
            # Ended at its own time, not this late tick's: the item's clock restarts then.
            self.clear_alert(now=alert.until_s, by_admin=True)
        while True:  # the start and the waiting controls, in the order of their instants
            start_s = self._start_at_s if self._state == "loading" else None
            due = self._scheduled[0] if self._scheduled and self._scheduled[0].at_s <= now else None
            if start_s is not None and start_s <= now and (due is None or start_s <= due.at_s):
                # The display flipped at the instant on its own timer: the lesson starts then.
                self._start_at_s = None
                target = self._enter("start", "start")
                self._end_interval("replaced", start_s)
                self._start_item(self._index, start_s)
                self._state = target
            elif due is not None:
                self._scheduled.pop(0)
                with contextlib.suppress(UnexpectedMessageError):  # no longer applies: dropped
                    self._apply_control(
                        due.action, due.at_s, due.index, due.position_ms, due.volume
                    )
            else:
                break
        deadline = self.next_deadline_s()
        if deadline is None or now < deadline or self._state != "playing":
            return
        self._advance_auto(now)

    def shutdown(self, *, now: float) -> None:
        """The kiosk is stopping: close the open interval with reason ``shutdown``."""
        self._end_interval("shutdown", now)

    # ----------------------------------------------------------------- internals

    def _current_item(self) -> ManifestItem:
        assert self._lesson is not None
        return self._lesson.items[self._index]

    def _advance_auto(self, now: float) -> None:
        assert self._lesson is not None
        past_end = self._index + 1 >= len(self._lesson.items)
        target = self._enter("auto_past_end" if past_end else "auto", "advance")
        if past_end:
            self._finish("end", now)
        else:
            self._move(self._index + 1, "auto", now)
        self._state = target

    def _move(self, index: int, reason: EndReason, now: float) -> None:
        self._end_interval(reason, now)
        self._start_item(index, now)

    def _start_item(self, index: int, now: float) -> None:
        lesson = self._lesson
        assert lesson is not None
        self._state = "playing"
        self._index = index
        self._failure = None
        self._opened = False
        self._item_origin_s = now
        self._frozen_at_s = None if self._running() else now
        item = lesson.items[index]
        self._effects.append(Show(lesson, index, item))
        if not self._running() and item.kind == "video":  # shown behind a blank or an alert
            self._effects.append(VideoCommand("pause"))
        if index + 1 < len(lesson.items):
            self._effects.append(Preload(lesson, index + 1, lesson.items[index + 1]))
        self._open_interval(now)
        self._status(now)

    def _finish(self, reason: EndReason, now: float) -> None:
        self._end_interval(reason, now)
        self._scheduled.clear()
        self._failure = None
        self._opened = False
        self._state = "idle"
        self._lesson = None
        self._presenter = None
        self._index = 0
        self._start_at_s = None
        self._frozen_at_s = None
        if self._blanked:
            self._blanked = False
            self._effects.append(SetBlank(False))
        self._effects.append(ShowIdle())
        self._status(now)

    def _open_interval(self, now: float) -> None:
        if self._state not in ("playing", "paused") or self._interval_open:
            return
        assert self._lesson is not None
        assert self._presenter is not None
        self._interval_open = True
        self._interval_start_s = now
        self._interval_hidden = self._hidden_reason()
        self._effects.append(
            IntervalStarted(
                self._lesson,
                self._index,
                self._current_item(),
                self._presenter,
                now,
                self._interval_hidden,
            )
        )

    def _hidden_reason(self) -> HiddenReason:
        """Why the current item cannot be seen now (``""``: it can)."""
        if self._failure is not None:
            return "failed"
        if self._alert is not None:
            return "alert"
        if self._blanked:
            return "blank"
        return ""

    def _sync_interval(self, reason: EndReason, now: float) -> None:
        """The item's visibility may have changed: if the open interval no longer says
        what is seen, close it with ``reason`` and open one that does."""
        if self._interval_open and self._interval_hidden == self._hidden_reason():
            return
        self._end_interval(reason, now)
        self._open_interval(now)

    def _running(self) -> bool:
        """The item's clock runs: playing, neither blanked nor under an alert."""
        return self._state == "playing" and not self._blanked and self._alert is None

    def _apply_clock(self, was_running: bool, now: float) -> None:
        """Freeze or restart the item's clock (and its video) if :meth:`_running` changed."""
        running = self._running()
        if running == was_running or self._state not in ("playing", "paused"):
            return
        if running:
            self._thaw(now)
        else:
            self._freeze(now)
        if self._current_item().kind == "video":
            self._effects.append(VideoCommand("play" if running else "pause"))

    def _check_alert_author(self, by_admin: bool, what: str) -> None:
        if self._alert is not None and self._alert.by_admin and not by_admin:
            raise ForbiddenError(
                f"an administrator's alert is shown; only an administrator can {what} it"
            )

    def _end_interval(self, reason: EndReason, now: float) -> None:
        if self._interval_open:
            self._interval_open = False
            self._effects.append(IntervalEnded(reason, now))

    def _freeze(self, now: float) -> None:
        if self._frozen_at_s is None:
            self._frozen_at_s = now

    def _thaw(self, now: float) -> None:
        if self._frozen_at_s is not None:
            self._item_origin_s += now - self._frozen_at_s
            self._frozen_at_s = None

    def _status(self, now: float) -> None:
        self._effects.append(StatusChanged(self.snapshot(now)))


def check_instant(at_s: float | None, now: float) -> None:
    """Refuse an instant further ahead than ``limits.MAX_INSTANT_AHEAD_MS`` (the
    controller's fault: its clock or its offset is wrong).

    Raises:
        UnexpectedMessageError: code ``bad_instant``; answer the request with it.
    """
    if at_s is not None and (at_s - now) * 1000 > limits.MAX_INSTANT_AHEAD_MS:
        raise UnexpectedMessageError(
            f"the instant is {round((at_s - now) * 1000)} ms ahead, more than "
            f"{limits.MAX_INSTANT_AHEAD_MS} ms: check the controller's clock",
            code="bad_instant",
        )
