"""The kiosk service: routes decoded messages to the player, the blob store and the log.

``KioskService`` is driven by the websocket adapter (:mod:`kiosk.server`) and knows
nothing of sockets: the adapter opens a session per connection, feeds it decoded
messages and chunks with the current time, and sends what :meth:`KioskService.drain`
returns. Effects of the :class:`~kiosk.player.LessonPlayer` go to a :class:`Display`
(the pyglet window, or the headless display) and to the usage log.

Errors a peer causes (``ProtocolError``, ``MediaError``) become ``error`` replies; they
never change what is shown and never touch the usage log. A failing usage log is
logged and the lesson goes on.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol, assert_never

from kiosk.access import Access, Moderation, OfferRequest, PairingAttempt
from kiosk.config import HEARTBEAT_INTERVAL_S
from kiosk.effects import (
    ControllerPaired,
    Display,
    DisplayEffect,
    HideAnnouncement,
    PairingQuestionClosed,
    PairingRequested,
    PinChanged,
    ShowAnnouncement,
)
from kiosk.pairing_worker import InlinePairingWorker, PairingWorker
from kiosk.player import (
    Effect,
    Identity,
    IntervalEnded,
    IntervalStarted,
    LessonPlayer,
    Preload,
    Presenter,
    SetBlank,
    Show,
    ShowIdle,
    StatusChanged,
    VideoCommand,
    check_instant,
)
from kiosk.resume import PresentationSink, SavedPresentation, refusal
from kiosk.share import (
    SHARE_IGNORES,
    NoScreen,
    ScreenSink,
    ShareGate,
    is_share,
    share_lesson,
    share_lesson_id,
)
from kiosk.tokens import Grant
from kiosk.usage import DisplayStart
from media.chunks import AppendBytes, AssemblerEvent, BlobVerified, ChunkAssembler, plan_needs
from media.store import BlobStore
from protocol import limits
from protocol.clock import CLOCK_SAMPLES_KEPT, ClockSample, check_clock_offset
from protocol.codec import Chunk, StreamFrame, encode
from protocol.constants import PROTOCOL_VERSION
from protocol.errors import (
    BusyError,
    ChecksumMismatchError,
    ClassCastError,
    MediaError,
    ProtocolError,
    UnexpectedMessageError,
    UsageLogError,
)
from protocol.messages import (
    Announce,
    BlobNeed,
    BlobStored,
    Cast,
    ClearAnnouncement,
    Control,
    EndReason,
    Error,
    GetStatus,
    Hello,
    ItemFailure,
    KeyframeRequest,
    LessonManifest,
    Message,
    Need,
    Ok,
    PairConfirm,
    Paired,
    PairOffer,
    PairStart,
    Prepare,
    Role,
    Screenshot,
    ShareStart,
    ShareStop,
    Status,
    StatusSnapshot,
    TakeScreenshot,
    TimePing,
    TimePong,
    Unpair,
    UsageBatch,
    UsagePull,
    UsageRecord,
    Welcome,
)
from protocol.pairing import (
    PANEL_CONFIRM_S,
    OfferKeys,
    PairingError,
    PairingRefusedError,
    PairingThrottledError,
    TokenBucket,
)
from protocol.sources import LogLimiter, source_of

logger = logging.getLogger(__name__)


_REQUIRED_ROLE: dict[str, Role | None] = {
    "hello": None,
    "pair_start": None,
    "pair_confirm": None,
    "unpair": "teacher",
    "cast": "teacher",
    "prepare": "teacher",
    "control": "teacher",
    "get_status": "teacher",
    "time_ping": "teacher",
    "take_screenshot": "teacher",
    "announce": "teacher",
    "clear_announcement": "teacher",
    "usage_pull": "admin",
    "share_start": "teacher",
    "share_stop": "teacher",
}
"""The role each request needs (None: allowed before pairing). See kiosk.access."""


class UsageSink(Protocol):
    """The usage log as the service uses it: :class:`~kiosk.usage.UsageLog`, or
    :class:`~kiosk.usage_writer.UsageWriter` which keeps fsync off the network loop."""

    @property
    def public_key(self) -> str: ...

    def recover(self) -> int: ...

    def open(
        self, start: DisplayStart, *, wall_s: float, mono_s: float, clock_offset_ms: int = 0
    ) -> str: ...

    def close(self, uuid: str, *, wall_s: float, mono_s: float, reason: EndReason) -> None: ...

    def heartbeat(self, *, wall_s: float, mono_s: float) -> None: ...

    def records_after(self, after_seq: int, limit: int) -> list[UsageRecord]: ...

    def last_seq(self) -> int: ...

    def batch(self) -> AbstractContextManager[None]:
        """Writes inside the block are committed together (a switch: close, then open)."""
        ...


class Clock(Protocol):
    """Monotonic and wall clocks, injectable for tests."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...


class SystemClock:
    """The real clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


@dataclass(slots=True)
class _Transfer:
    """A ``cast`` or ``prepare`` waiting for its blobs."""

    request: Cast | Prepare
    missing: set[str]


@dataclass(slots=True)
class Session:
    """One controller connection."""

    sid: int
    address: str = ""
    """The peer's IP address, as the transport saw it ("" when unknown)."""
    controller_id: str | None = None
    controller_name: str | None = None
    grant: Grant | None = None
    pairing: PairingAttempt | None = None
    transfer: _Transfer | None = None
    budget: TokenBucket = field(
        default_factory=lambda: TokenBucket.full(
            limits.UNAUTHENTICATED_MESSAGE_BURST,
            limits.MAX_UNAUTHENTICATED_MESSAGES_PER_SECOND,
            0.0,
        )
    )
    """The message budget until the session has a grant (then its grant's counts)."""
    blobs: set[str] = field(default_factory=set)
    clock_samples: list[ClockSample] = field(default_factory=list)
    """The latest ``time_ping`` samples, which a ``cast``'s clock offset must match."""

    @property
    def greeted(self) -> bool:
        return self.controller_id is not None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message for one session (``sid``) or, with ``sid`` None, for every authenticated one."""

    sid: int | None
    message: Message


@dataclass(frozen=True, slots=True)
class CloseSession:
    """Close session ``sid`` with a websocket close ``code`` and ``reason``."""

    sid: int
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class CaptureScreen:
    """Capture the screen for request ``re`` of session ``sid``, away from the network loop.

    The adapter calls ``display.screenshot_png(max_width)`` on a worker thread (it waits
    for the render thread), then :meth:`KioskService.screenshot_taken`.
    """

    sid: int
    re: int
    max_width: int


@dataclass(frozen=True, slots=True)
class ComputeOffer:
    """Compute the SPAKE2 offer for ``pair_start`` ``re`` of session ``sid``, away from
    the network loop and outside the service lock.

    The adapter calls ``service.pairing_worker.compute(offer.job)`` on a worker thread,
    then :meth:`KioskService.offer_computed` with the keys or the exception.
    """

    sid: int
    re: int
    offer: OfferRequest


@dataclass(slots=True)
class _PanelQuestion:
    """A right PIN under attack, waiting for the panel's user to allow it."""

    sid: int
    re: int
    attempt: PairingAttempt
    confirm: bytes
    deadline_s: float


POLICY_VIOLATION = 1008


class KioskService:
    """The kiosk's behaviour, independent of transport and display.

    Call every method from one thread (the network loop). After each call, send what
    :meth:`drain` returns and call :meth:`tick` again by :meth:`next_deadline_s`.
    """

    def __init__(
        self,
        identity: Identity,
        *,
        store: BlobStore,
        usage: UsageSink,
        display: Display,
        access: Access,
        moderation: Moderation | None = None,
        clock: Clock | None = None,
        heartbeat_s: float = HEARTBEAT_INTERVAL_S,
        presentation: PresentationSink | None = None,
        pairing_worker: PairingWorker | None = None,
    ) -> None:
        self.identity = identity
        self.player = LessonPlayer(identity)
        self.store = store
        self.usage = usage
        self.display = display
        self.clock = clock or SystemClock()
        self.access = access
        self.moderation = moderation or Moderation()
        self.pairing_worker: PairingWorker = pairing_worker or InlinePairingWorker()
        """Where ``pair_start``'s SPAKE2 runs (the adapter calls it, see ComputeOffer)."""
        self._question: _PanelQuestion | None = None
        self._offering: set[int] = set()
        """Sessions whose ``pair_start`` offer is being computed."""
        self._shown_pin: str | None = None
        self._clock_offset_ms = 0
        """The presenter's measured clock offset, stored with each usage record."""
        self.on_status: Callable[[StatusSnapshot], None] | None = None
        """Called with every status change (the mDNS TXT follows the state); must not block."""
        self._assembler = ChunkAssembler()
        self._sessions: dict[int, Session] = {}
        self._next_sid = 1
        self._out: list[Outgoing | CloseSession | CaptureScreen | ComputeOffer] = []
        self._replies: list[Outgoing | CloseSession | CaptureScreen | ComputeOffer] = []
        self._open_uuid: str | None = None
        self._last_heartbeat_s = float("-inf")
        self._heartbeat_s = heartbeat_s
        self._refusals_log = LogLimiter()
        self._grant_buckets: dict[str, TokenBucket] = {}
        """Each paired controller's message budget (by token hash), shared by its
        connections: see :meth:`_take_token`."""
        self.presentation = presentation
        """Keeps what is shown for the next run (kiosk.resume); None: not kept."""
        self.share = ShareGate()
        """The screen share on this panel, if any (kiosk.share)."""
        self.screen: ScreenSink = NoScreen()
        """Where a share's pictures go: the wiring sets the window's decoder."""
        recovered = self.usage.recover()
        if recovered:
            logger.warning("closed %d display interval(s) left open by a power loss", recovered)

    # ----------------------------------------------------------------- sessions

    def open_session(self, address: str = "") -> int:
        """Register a new connection from IP ``address``; returns its session id."""
        sid = self._next_sid
        self._next_sid += 1
        budget = TokenBucket.full(
            limits.UNAUTHENTICATED_MESSAGE_BURST,
            limits.MAX_UNAUTHENTICATED_MESSAGES_PER_SECOND,
            self.clock.monotonic(),
        )
        self._sessions[sid] = Session(sid, address=address, budget=budget)
        return sid

    def close_session(self, sid: int) -> None:
        """Forget a connection; blobs it was sending stay as resumable partials.

        Their reserved room is released (the partials may be evicted once stale).
        """
        session = self._sessions.pop(sid, None)
        if session is None:
            return
        self._end_transfer(session)
        self._offering.discard(sid)
        active = self.share.active
        if active is not None and active.sid == sid:  # a share ends with its connection
            self._end_share()
            if is_share(self.player.lesson) and self.player.state != "idle":
                self.player.control("stop", now=self.clock.monotonic())
                self._apply_player_effects()
        if self._question is not None and self._question.sid == sid:
            self._close_question(self.clock.monotonic())
        presenter = self.player.presenter
        if (
            presenter is not None
            and session.controller_id == presenter.id
            and not any(s.controller_id == presenter.id for s in self._sessions.values())
        ):
            self.moderation.presenter_left(self.clock.monotonic())

    def is_greeted(self, sid: int) -> bool:
        """Whether session ``sid`` said hello."""
        session = self._sessions.get(sid)
        return session is not None and session.greeted

    def is_authenticated(self, sid: int) -> bool:
        """Whether session ``sid`` holds a valid grant (proved a token, or paired), as of
        the last message handled or :meth:`refresh_grants`.

        Only such sessions receive pushed events; the adapter never drops them to make
        room and does not time them out.
        """
        session = self._sessions.get(sid)
        return (
            session is not None
            and session.grant is not None
            and self.access.tokens.is_valid(session.grant)
        )

    def refresh_grants(self) -> None:
        """Take in revocations made by another process (``classcast-kiosk tokens
        revoke``); call before pushing events. A damaged file keeps the grants known."""
        try:
            self.access.tokens.refresh()
        except ClassCastError as exc:
            if self._refusals_log.allow(exc.code, self.clock.monotonic()) is not None:
                logger.warning("cannot re-read the paired controllers: %s", exc)

    def is_pairing(self, sid: int) -> bool:
        """Whether session ``sid`` is pairing: its ``pair_start`` was let through (its offer
        is being computed, or was sent), or the panel is asked about it."""
        session = self._sessions.get(sid)
        if session is None:
            return False
        question = self._question
        return (
            session.pairing is not None
            or sid in self._offering
            or (question is not None and question.sid == sid)
        )

    def drain(self) -> list[Outgoing | CloseSession | CaptureScreen | ComputeOffer]:
        """Return and forget what must be sent since the last call.

        Pushed events come before replies, so that when a controller gets the ``ok`` of
        a command, the ``status`` it caused has already arrived.
        """
        out, self._out, self._replies = self._out + self._replies, [], []
        return out

    def status(self) -> StatusSnapshot:
        return self.player.snapshot(self.clock.monotonic())

    # ----------------------------------------------------------------- input

    def handle(self, sid: int, msg: Message) -> None:
        """Act on one decoded message from session ``sid``."""
        session = self._sessions[sid]
        if not self._take_token(session):
            return
        req_id = getattr(msg, "id", None)
        try:
            self.access.tokens.refresh()  # a revocation by another process counts now
            self._dispatch(session, msg)
        except ClassCastError as exc:
            self._log_refusal(sid, msg.TYPE, exc)
            self._reply(sid, _error(req_id, exc))
        self._apply_player_effects()

    def handle_malformed(self, sid: int, req_id: int | None, exc: ProtocolError) -> None:
        """Answer a frame that did not decode; the connection stays open."""
        session = self._sessions[sid]
        if not self._take_token(session):
            return
        self._log_refusal(sid, "malformed message", exc)
        self._reply(sid, Error(re=req_id, code=exc.code, message=str(exc)))

    def handle_failure(self, sid: int, req_id: int | None) -> None:
        """Answer a request whose handling failed unexpectedly (the kiosk's fault)."""
        if sid in self._sessions:
            self._reply(
                sid, Error(re=req_id, code="internal", message="the kiosk failed; see its journal")
            )

    def handle_chunk(self, sid: int, chunk: Chunk) -> None:
        """Store one received chunk; finishes the transfer when its last blob arrives."""
        session = self._sessions[sid]
        transfer = session.transfer
        try:
            if not session.greeted:
                raise UnexpectedMessageError("send hello first")
            if chunk.sha256 not in session.blobs:
                raise UnexpectedMessageError(
                    f"chunk for blob {chunk.sha256} that this connection did not announce"
                )
            self._store_events(session, self._assembler.feed(chunk))
        except (ProtocolError, MediaError) as exc:
            sha = getattr(exc, "sha256", None)
            if sha is not None:
                # A blob that failed verification, or that the disk cannot hold, is
                # worthless: drop it, and end the transfer (releasing its reservations).
                self.store.discard(sha)
                self._end_transfer(session)
            re = transfer.request.id if transfer is not None and sha is not None else None
            # A refused chunk costs a message token, so a flood of them is closed.
            if not self._take_token(session):
                return
            self._log_refusal(sid, "chunk refused", exc)
            self._reply(sid, Error(re=re, code=exc.code, message=str(exc)))
            return
        if transfer is not None and not transfer.missing:
            session.transfer = None
            self._complete(session, transfer.request)
            self._apply_player_effects()

    def handle_stream(self, sid: int, frame: StreamFrame) -> None:
        """Pass one stream frame of session ``sid`` to the decoder, if the share's rules
        allow; a refused frame gets ``error`` (and costs a message token), a flood is
        closed (1008)."""
        session = self._sessions[sid]
        now = self.clock.monotonic()
        try:
            self.access.tokens.refresh()
            if not session.greeted:
                raise UnexpectedMessageError("send hello first")
            self._sync_share()
            verdict = self.share.frame(sid, frame, now=now)
        except ProtocolError as exc:
            if not self._take_token(session):
                return
            self._log_refusal(sid, "stream frame refused", exc)
            self._reply(sid, Error(re=None, code=exc.code, message=str(exc)))
            return
        if verdict is None:
            reason = f"more than {limits.MAX_STREAM_FRAMES_PER_SECOND} stream frames per second"
            self._out.append(CloseSession(sid, POLICY_VIOLATION, reason))
            return
        ask = verdict.ask_keyframe
        if verdict.decode and not self.screen.feed(frame):
            ask = self.share.decoder_failed(now=now)
        if ask:
            self._reply(sid, KeyframeRequest(frame.stream_id))

    def tick(self) -> None:
        """Advance the player's clock and keep the usage log's heartbeat."""
        now = self.clock.monotonic()
        alerted = self.player.alerted
        self.player.tick(now=now)
        if alerted and not self.player.alerted:  # the alert's time is up
            self._display(HideAnnouncement())
        self._apply_player_effects()
        question = self._question
        if question is not None and now >= question.deadline_s:
            self._refuse_question(
                question,
                now,
                "nobody allowed the pairing on the panel in time: refused",
                "nobody allowed this pairing on the panel in time: pair again and "
                "allow it on the panel, with the new PIN it shows",
            )
        self._show_pin(now)
        if now >= self._last_heartbeat_s + self._heartbeat_s:
            self._last_heartbeat_s = now
            with self.usage.batch():  # one wake-up of the writer thread
                try:
                    self.usage.heartbeat(wall_s=self.clock.time(), mono_s=now)
                except UsageLogError:
                    logger.exception("usage log heartbeat failed")
                if self.player.state in ("playing", "paused"):
                    self._save_presentation()  # its age and the video's position

    def next_deadline_s(self) -> float:
        """Monotonic time at which :meth:`tick` must run next."""
        deadline = min(
            self._last_heartbeat_s + self._heartbeat_s, self.access.guard.pin_expires_at()
        )
        player_deadline = self.player.next_deadline_s()
        if player_deadline is not None:
            deadline = min(deadline, player_deadline)
        if self._question is not None:
            deadline = min(deadline, self._question.deadline_s)
        return deadline

    def panel_control(self, action: str) -> None:
        """A control from the panel itself (touch, keys); never refused for moderation."""
        if self._share_ignores(action):
            return
        try:
            self.player.control(action, now=self.clock.monotonic())  # type: ignore[arg-type]
        except ProtocolError as exc:
            logger.info("panel control %s ignored: %s", action, exc)
        self._apply_player_effects()

    def panel_answer_pairing(self, allow: bool) -> None:
        """The panel's user answered the question of :class:`PairingRequested` (a tap or a
        key on the panel): pair the controller that asked, or refuse it."""
        question = self._question
        if question is None:
            return
        now = self.clock.monotonic()
        session = self._sessions.get(question.sid)
        if not allow or session is None:
            self._refuse_question(
                question,
                now,
                "the pairing was refused on the panel",
                "the pairing was refused on the panel: ask the teacher at the panel",
            )
            return
        self._question = None
        self._display(PairingQuestionClosed())
        self._finish_pairing(session, question.attempt, question.re, question.confirm, now)

    def offer_computed(self, request: ComputeOffer, result: OfferKeys | Exception) -> None:
        """The offer of :class:`ComputeOffer` ``request`` is computed (``result``: the
        keys, or the exception the computation raised): answer the ``pair_start``."""
        self.access.offer_computed(request.offer)
        self._offering.discard(request.sid)
        session = self._sessions.get(request.sid)
        if session is None:
            return
        if isinstance(result, OfferKeys):
            offer = request.offer
            session.pairing = PairingAttempt(result, offer.role, offer.generation)
            self._reply(
                session.sid,
                PairOffer(re=request.re, spake=base64.b64encode(result.msg_b).decode()),
            )
        elif isinstance(result, PairingError):
            logger.info("session %d: %s", session.sid, result)
            self._reply(session.sid, _error(request.re, result))
        else:
            logger.error("computing a pairing offer failed", exc_info=result)
            self.handle_failure(session.sid, request.re)

    def video_ended(self, index: int) -> None:
        """The video output reports that the video of item ``index`` ended."""
        self.player.video_ended(index, now=self.clock.monotonic())
        self._apply_player_effects()

    def item_failed(self, index: int, failure: ItemFailure, status: int | None = None) -> None:
        """The display reports that item ``index`` could not be shown (a web page that
        did not open): its usage record ends ``failed`` with no display time, and the
        pushed status says why."""
        self.player.item_failed(index, failure, now=self.clock.monotonic(), status=status)
        self._apply_player_effects()

    def item_opened(self, index: int) -> None:
        """The display reports that item ``index``, a web page, was checked and opened:
        the pushed status says so (``item_opened``)."""
        self.player.item_opened(index, now=self.clock.monotonic())
        self._apply_player_effects()

    def resume(self, saved: SavedPresentation) -> bool:
        """Show again what a previous run showed when it stopped (kiosk.resume).

        Call once at start, before the first connection; the usage log's recovery (in
        the constructor) has closed the interval that run left open, and the resumed item
        opens a new one. The presenter keeps the panel as if they had just disconnected:
        other teachers may take over once the presenter's grace has run out.

        Returns:
            Whether the presentation is shown; if not, the reason is logged, the saved
            presentation is dropped and the panel stays idle.
        """
        now = self.clock.monotonic()
        reason = refusal(saved, wall_s=self.clock.time(), has_blob=self.store.has)
        if reason is None:
            try:
                self.player.resume(
                    saved.lesson,
                    saved.presenter,
                    index=saved.index,
                    now=now,
                    paused=saved.paused,
                    blanked=saved.blanked,
                    position_ms=saved.position_ms,
                    volume=saved.volume,
                )
            except ProtocolError as exc:
                reason = str(exc)
        if reason is not None:
            logger.warning("not resuming the lesson %r: %s", saved.lesson.title, reason)
            self._save_presentation()
            return False
        logger.info(
            "resumed the lesson %r at item %d after a restart", saved.lesson.title, saved.index + 1
        )
        self.store.pin(_blob_set(saved.lesson))
        self._clock_offset_ms = saved.clock_offset_ms
        self.moderation.presenter_left(now)
        self._apply_player_effects()
        return True

    def shutdown(self) -> None:
        """Close the open display interval (reason ``shutdown``) before exiting."""
        self.player.shutdown(now=self.clock.monotonic())
        self._apply_player_effects()

    # ----------------------------------------------------------------- dispatch

    def _dispatch(self, session: Session, msg: Message) -> None:
        if not isinstance(msg, Hello) and not session.greeted:
            raise UnexpectedMessageError(f"send hello before {msg.TYPE}")
        role = _REQUIRED_ROLE.get(msg.TYPE)
        if role is not None:
            session.grant = self.access.require(session.grant, role, msg.TYPE)
        now = self.clock.monotonic()
        match msg:
            case Hello():
                self._hello(session, msg)
            case PairStart():
                self._pair_start(session, msg, now)
            case PairConfirm():
                self._pair_confirm(session, msg, now)
            case Unpair():
                self._unpair(session, msg)
            case Cast() | Prepare():
                if isinstance(msg, Cast):
                    self._check_presenter(session, now)
                    self._check_clock_offset(session, msg)
                    check_instant(self._instant(msg.start_at_ms, now), now)
                self._start_transfer(session, msg)
            case Control():
                self._control(session, msg, now)
            case GetStatus():
                self._get_status(session, msg)
            case TakeScreenshot():
                self._screenshot(session, msg)
            case Announce():
                self._announce(session, msg, now)
            case ClearAnnouncement():
                self._clear_announcement(session, msg, now)
            case TimePing():
                self._time_ping(session, msg)
            case UsagePull():
                self._usage_pull(session, msg)
            case ShareStart():
                self._share_start(session, msg, now)
            case ShareStop():
                self.share.owned_by(session.sid, msg.stream_id)
                self.player.control("stop", now=now)
                self._reply(session.sid, Ok(msg.id))
            case (
                Welcome()
                | PairOffer()
                | Paired()
                | Need()
                | BlobStored()
                | Status()
                | Screenshot()
                | TimePong()
                | UsageBatch()
                | KeyframeRequest()
                | Ok()
                | Error()
            ):
                raise UnexpectedMessageError(f"a kiosk does not accept {msg.TYPE}")
            case _:
                assert_never(msg)

    def _unpair(self, session: Session, msg: Unpair) -> None:
        assert session.grant is not None
        self.access.unpair(session.grant)
        session.grant = None
        self._reply(session.sid, Ok(msg.id))

    def _control(self, session: Session, msg: Control, now: float) -> None:
        """A presenter's control, at once or at its instant; a late one is said so."""
        self._check_presenter(session, now)
        if self._share_ignores(msg.action):
            self._reply(session.sid, Ok(msg.id))
            return
        late = self.player.control(
            msg.action,
            now=now,
            index=msg.index,
            position_ms=msg.position_ms,
            volume=msg.volume,
            at_s=self._instant(msg.at_ms, now),
        )
        self._log_late(msg.action, late)
        self._reply(session.sid, Ok(msg.id, late_ms=late))

    def _get_status(self, session: Session, msg: GetStatus) -> None:
        snapshot = dataclasses.replace(
            self.status(),
            cache_used_bytes=self.store.used_bytes(),
            cache_quota_bytes=self.store.quota_bytes,
        )
        self._reply(session.sid, Status(snapshot, re=msg.id))

    def _announce(self, session: Session, msg: Announce, now: float) -> None:
        """Show an announcement; a full-screen alert freezes the lesson under it (logged
        hidden), a banner replaces an alert shown."""
        self._check_presenter(session, now)
        assert session.grant is not None
        by_admin = session.grant.role == "admin"
        if msg.level == "alert":
            until_s = None if msg.duration_s is None else now + msg.duration_s
            self.player.alert(now=now, until_s=until_s, by_admin=by_admin)
        else:
            self.player.clear_alert(now=now, by_admin=by_admin)
        logger.info("announcement (%s) from %s", msg.level, session.controller_name)
        self._display(ShowAnnouncement(msg.text, msg.level, msg.duration_s))
        self._apply_player_effects()
        self._reply(session.sid, Ok(msg.id))

    def _clear_announcement(self, session: Session, msg: ClearAnnouncement, now: float) -> None:
        self._check_presenter(session, now)
        assert session.grant is not None
        self.player.clear_alert(now=now, by_admin=session.grant.role == "admin")
        self._display(HideAnnouncement())
        self._apply_player_effects()
        self._reply(session.sid, Ok(msg.id))

    def _time_ping(self, session: Session, msg: TimePing) -> None:
        """Answer with this panel's wall clock, and keep the sample to bound the offset a
        cast may later claim."""
        kiosk_ms = round(self.clock.time() * 1000)
        session.clock_samples.append(ClockSample(msg.controller_ms, kiosk_ms))
        del session.clock_samples[:-CLOCK_SAMPLES_KEPT]
        self._reply(
            session.sid, TimePong(re=msg.id, controller_ms=msg.controller_ms, kiosk_ms=kiosk_ms)
        )

    def _share_start(self, session: Session, msg: ShareStart, now: float) -> None:
        """Show the session's screen: a one-item lesson of kind ``screen``."""
        self._check_presenter(session, now)
        controller_id = session.controller_id or ""
        presenter = Presenter(controller_id, session.controller_name or "")
        self.moderation.presenter_back()
        self._clock_offset_ms = 0
        self.share.start(session.sid, controller_id, msg, now=now)
        self.screen.start(msg.stream_id, msg.width, msg.height)
        self.player.load(share_lesson(controller_id, msg), presenter, start_index=0, now=now)
        logger.info("screen share %d from %s", msg.stream_id, session.controller_name)
        self._reply(session.sid, Ok(msg.id))

    def _sync_share(self) -> None:
        """End the gate's share once the player no longer shows it (stopped on the
        panel, by ``control``, or replaced by an admin's cast)."""
        if self.share.active is None:
            return
        lesson = self.player.lesson
        if self.player.state == "idle" or not is_share(lesson):
            self._end_share()
        elif lesson is not None:
            active = self.share.active
            if lesson.lesson_id != share_lesson_id(active.controller_id, active.stream_id):
                self._end_share()

    def _share_ignores(self, action: str) -> bool:
        """Whether ``action`` does nothing to the share on screen (kiosk.share.SHARE_IGNORES)."""
        return action in SHARE_IGNORES and is_share(self.player.lesson)

    def _end_share(self) -> None:
        if self.share.end() is not None:
            self.screen.stop()

    def _hello(self, session: Session, msg: Hello) -> None:
        if msg.protocol_version != PROTOCOL_VERSION:
            raise UnexpectedMessageError(
                f"protocol version {msg.protocol_version} is not supported; "
                f"this kiosk speaks {PROTOCOL_VERSION}",
                code="version",
            )
        if session.greeted:
            raise UnexpectedMessageError("hello was already sent on this connection")
        session.controller_id = msg.controller_id
        session.controller_name = msg.controller_name
        session.grant = self.access.authenticate(msg.token)
        if session.grant is not None and session.grant.controller_id != msg.controller_id:
            session.grant = None  # a token is bound to the controller it was issued to
        presenter = self.player.presenter
        if presenter is not None and presenter.id == msg.controller_id and session.grant:
            self.moderation.presenter_back()
        ident = self.identity
        self._reply(
            session.sid,
            Welcome(
                re=msg.id,
                protocol_version=PROTOCOL_VERSION,
                kiosk_id=ident.kiosk_id,
                room=ident.room,
                school=ident.school,
                status=self.status() if session.grant else _public(self.status()),
                role=session.grant.role if session.grant else None,
            ),
        )

    def _pair_start(self, session: Session, msg: PairStart, now: float) -> None:
        try:
            offer = self.access.begin_pairing(
                session.controller_id or "", source_of(session.address), msg, now
            )
        except PairingError as exc:  # refused at once; the access logs it, rate-limited
            self._reply(session.sid, _error(msg.id, exc))
            return
        self._offering.add(session.sid)
        self._replies.append(ComputeOffer(session.sid, msg.id, offer))

    def _pair_confirm(self, session: Session, msg: PairConfirm, now: float) -> None:
        attempt, session.pairing = session.pairing, None
        if attempt is None:
            raise UnexpectedMessageError("send pair_start before pair_confirm")
        try:
            confirm = self.access.check_confirm(
                attempt,
                msg,
                source=source_of(session.address),
                name=session.controller_name or "",
                now=now,
            )
        except PairingError as exc:  # the access logs wrong PINs, rate-limited
            self._reply(session.sid, _error(msg.id, exc))
            return
        if not self.access.needs_panel(attempt.role, now):
            self._finish_pairing(session, attempt, msg.id, confirm, now)
            return
        if self._question is not None:
            wait_s = self._question.deadline_s - now
            busy = PairingThrottledError("another pairing waits for an answer on the panel", wait_s)
            self._reply(session.sid, _error(msg.id, busy))
            return
        logger.warning(
            "pairing is under attack: asking the panel to allow %r (%s) from %s",
            session.controller_name,
            attempt.role,
            session.address,
        )
        self._question = _PanelQuestion(
            session.sid, msg.id, attempt, confirm, now + PANEL_CONFIRM_S
        )
        self._display(
            PairingRequested(session.controller_name or "", attempt.role, PANEL_CONFIRM_S)
        )

    def _finish_pairing(
        self, session: Session, attempt: PairingAttempt, re: int, confirm: bytes, now: float
    ) -> None:
        name = session.controller_name or ""
        session.grant, paired = self.access.grant(
            attempt,
            re=re,
            confirm=confirm,
            controller_id=session.controller_id or "",
            name=name,
            source=source_of(session.address),
            now=now,
            wall_s=self.clock.time(),
        )
        self._reply(session.sid, paired)
        self._display(ControllerPaired(name, attempt.role))
        self._show_pin(now)

    def _refuse_question(
        self, question: _PanelQuestion, now: float, log_line: str, message: str
    ) -> None:
        """Refuse the pairing asked about on the panel: ``log_line`` goes to the journal,
        ``message`` (saying what to do next) to the controller; the question closes."""
        logger.warning(log_line)
        self._close_question(now)
        self._reply(question.sid, _error(question.re, PairingRefusedError(message)))

    def _close_question(self, now: float) -> None:
        """Forget the question on the panel; its PIN is known to whoever sent it: renew it."""
        self._question = None
        self._display(PairingQuestionClosed())
        self.access.refused_on_panel(now)
        self._show_pin(now)

    def _check_clock_offset(self, session: Session, msg: Cast) -> None:
        """Refuse a clock offset this panel cannot vouch for (see protocol.clock)."""
        measured = check_clock_offset(msg.clock_offset_ms, session.clock_samples)
        if measured is not None and abs(measured) > limits.MAX_CLOCK_OFFSET_MS:
            logger.warning(
                "this panel's clock is %d s off the clock of %s's computer; its usage "
                "records keep the panel's own time: set the panel's clock (NTP)",
                measured // 1000,
                session.controller_name,
            )

    def _screenshot(self, session: Session, msg: TakeScreenshot) -> None:
        self._replies.append(CaptureScreen(session.sid, msg.id, msg.max_width))

    def screenshot_taken(self, sid: int, re: int, png: bytes | None) -> None:
        """Answer request ``re`` with the captured ``png`` (None: there is no screen)."""
        if sid not in self._sessions:
            return
        if png is None:
            error = Error(re=re, code="no_screen", message="this panel has no screen to capture")
            self._reply(sid, error)
        elif len(png) > limits.MAX_SCREENSHOT_BYTES:
            message = (
                f"the screenshot is {len(png)} bytes, over {limits.MAX_SCREENSHOT_BYTES}; "
                "ask for a narrower one"
            )
            self._reply(sid, Error(re=re, code="too_large", message=message))
        else:
            self._reply(sid, Screenshot(re=re, png=base64.b64encode(png).decode()))

    def _check_presenter(self, session: Session, now: float) -> None:
        presenter = self.player.presenter if self.player.state != "idle" else None
        assert session.grant is not None
        self.moderation.check(
            controller_id=session.controller_id or "",
            role=session.grant.role,
            presenter_id=presenter.id if presenter else None,
            presenter_name=presenter.name if presenter else None,
            now=now,
        )

    def _show_pin(self, now: float) -> None:
        pin = self.access.pin(now)
        if pin != self._shown_pin:
            self._shown_pin = pin
            logger.info("pairing PIN: %s", pin)
            self._display(PinChanged(pin))

    def _start_transfer(self, session: Session, msg: Cast | Prepare) -> None:
        if session.transfer is not None:
            raise UnexpectedMessageError(
                "a cast or prepare is still receiving its media on this connection", code="busy"
            )
        lesson = msg.lesson
        if isinstance(msg, Cast) and not 0 <= msg.start_index < len(lesson.items):
            raise UnexpectedMessageError("start index outside the lesson", code="bad_index")
        needs = plan_needs(lesson, self.store.has, self.store.partial_bytes)
        for need in needs:
            if need.sha256 in self._assembler.pending():
                raise UnexpectedMessageError(
                    f"blob {need.sha256} is being received from another connection",
                    code="busy",
                )
        # Reserve the whole of every missing blob before asking for it, never evicting
        # the lesson being shown, this one, or one another connection is receiving.
        # All or nothing: a refusal (QuotaExceededError, DiskFullError) changes nothing.
        self.store.pin(self._keep(lesson))
        self.store.reserve({n.sha256: n.size_bytes for n in needs})
        try:
            needs = self._expect(session, needs)
        except BaseException:
            for need in needs:
                self.store.unreserve(need.sha256)
            self._end_transfer(session)
            raise
        self._reply(session.sid, Need(re=msg.id, blobs=needs))
        for sha in _blob_set(lesson):
            if self.store.has(sha):
                self.store.touch(sha)
        if needs:
            session.transfer = _Transfer(msg, {n.sha256 for n in needs})
        else:
            self._complete(session, msg)

    def _expect(self, session: Session, needs: list[BlobNeed]) -> list[BlobNeed]:
        """Register each needed blob with the assembler; returns what must still be sent."""
        result = []
        for need in needs:
            try:
                events = self._assembler.expect(
                    need.sha256,
                    need.size_bytes,
                    need.have_bytes,
                    self.store.partial_hasher(need.sha256),
                )
            except ChecksumMismatchError:
                # A partial left complete but damaged by a crash: start that blob afresh.
                self.store.discard(need.sha256)
                self.store.reserve({need.sha256: need.size_bytes})
                need = BlobNeed(need.sha256, 0, need.size_bytes)
                events = self._assembler.expect(
                    need.sha256, need.size_bytes, 0, self.store.partial_hasher(need.sha256)
                )
            if events:  # the partial was already whole: a transfer cut off before its commit
                self._store_events(session, events)
                continue
            session.blobs.add(need.sha256)
            result.append(need)
        return result

    def _end_transfer(self, session: Session) -> None:
        """Stop receiving on ``session`` (it failed or closed): forget its blobs and
        release their reserved room; their partials stay, resumable until stale."""
        for sha in session.blobs:
            self._assembler.forget(sha)
            self.store.unreserve(sha)
        session.blobs.clear()
        session.transfer = None

    def _keep(self, lesson: LessonManifest | None = None) -> set[str]:
        """The blobs no eviction may touch: ``lesson``'s, the lesson on screen, and
        those of every lesson still being received."""
        keep = _blob_set(lesson) if lesson is not None else set()
        current = self.player.lesson
        if current is not None:
            keep |= _blob_set(current)
        for other in self._sessions.values():
            if other.transfer is not None:
                keep |= _blob_set(other.transfer.request.lesson)
        return keep

    def _store_events(self, session: Session, events: list[AssemblerEvent]) -> None:
        for event in events:
            match event:
                case AppendBytes():
                    self.store.append(event.sha256, event.offset_bytes, event.data)
                case BlobVerified():
                    self.store.commit(event.sha256, event.size_bytes)
                    session.blobs.discard(event.sha256)
                    self._reply(session.sid, BlobStored(event.sha256, event.size_bytes))
                    if session.transfer is not None:
                        session.transfer.missing.discard(event.sha256)
                case _:
                    assert_never(event)

    def _complete(self, session: Session, msg: Cast | Prepare) -> None:
        if isinstance(msg, Cast):
            now = self.clock.monotonic()
            start_at_s = self._instant(msg.start_at_ms, now)
            presenter = Presenter(session.controller_id or "", session.controller_name or "")
            self.moderation.presenter_back()  # a new presentation: its presenter is here
            self.store.pin(self._keep(msg.lesson))
            self._clock_offset_ms = msg.clock_offset_ms
            late = self.player.load(
                msg.lesson, presenter, start_index=msg.start_index, now=now, start_at_s=start_at_s
            )
            self._log_late("start", late)
            self._reply(session.sid, Ok(msg.id, late_ms=late))
            return
        self._reply(session.sid, Ok(msg.id))

    def _instant(self, at_ms: int | None, now: float) -> float | None:
        """An instant of the kiosk's wall clock (ms since the epoch) on the monotonic
        clock the player runs on (None stays None)."""
        if at_ms is None:
            return None
        return now + (at_ms / 1000 - self.clock.time())

    def _log_late(self, what: str, late: int | None) -> None:
        if late is not None:
            logger.warning(
                "%s came %d ms after its instant: applied at once, late; the controller is told",
                what,
                late,
            )

    def _usage_pull(self, session: Session, msg: UsagePull) -> None:
        records = self.usage.records_after(msg.after_seq, msg.limit)
        more = bool(records) and self.usage.last_seq() > records[-1].seq
        while True:
            batch = UsageBatch(
                re=msg.id,
                kiosk_id=self.identity.kiosk_id,
                records=records,
                last_seq=records[-1].seq if records else msg.after_seq,
                more=more,
                public_key=self.usage.public_key,
            )
            # Long titles can make a full batch larger than a frame: send fewer records.
            if len(records) <= 1 or len(encode(batch).encode()) <= limits.MAX_TEXT_FRAME_BYTES:
                break
            records = records[: len(records) // 2]
            more = True
        self._reply(session.sid, batch)

    # ----------------------------------------------------------------- effects

    def _apply_player_effects(self) -> None:
        effects = self.player.drain()
        changed = any(isinstance(effect, StatusChanged) for effect in effects)
        # A switch's close and open are committed together, and the presentation's flush
        # goes with them: one wake-up of the writer thread per control.
        with self.usage.batch():
            for effect in effects:
                self._apply(effect)
            if changed:
                self._save_presentation()
        if changed:
            self._sync_share()

    def _save_presentation(self) -> None:
        """Hand what is shown now to the presentation sink (None when no item shows)."""
        if self.presentation is None:
            return
        player = self.player
        lesson, presenter = player.lesson, player.presenter
        saved = None
        if player.state in ("playing", "paused") and lesson is not None and presenter is not None:
            saved = SavedPresentation(
                lesson=lesson,
                index=player.index,
                presenter=presenter,
                saved_at_s=self.clock.time(),
                paused=player.state == "paused",
                blanked=player.blanked,
                position_ms=min(player.position_ms(self.clock.monotonic()), limits.MAX_DURATION_MS),
                clock_offset_ms=self._clock_offset_ms,
                volume=player.volume,
            )
        self.presentation.save(saved)

    def _apply(self, effect: Effect) -> None:
        match effect:
            case Show() | Preload() | ShowIdle() | SetBlank() | VideoCommand():
                self._display(effect)
            case IntervalStarted():
                self._interval_started(effect)
            case IntervalEnded():
                self._interval_ended(effect)
            case StatusChanged():
                self._out.append(Outgoing(None, Status(effect.status)))
                if self.on_status is not None:
                    self.on_status(effect.status)
            case _:
                assert_never(effect)

    def _display(self, effect: DisplayEffect) -> None:
        try:
            self.display.apply(effect)
        except Exception:  # the one broad catch: the panel must stay up
            logger.exception("display failed to apply %s", type(effect).__name__)

    def _interval_started(self, effect: IntervalStarted) -> None:
        item = effect.item
        start = DisplayStart(
            lesson_id=effect.lesson.lesson_id,
            lesson_title=effect.lesson.title,
            item_index=effect.index,
            kind=item.kind,
            content_hash=item.sha256,
            content_title=item.title,
            # A web page's source is the address the panel opened, whatever was declared:
            # reports recognise library content by it (controller.libraries).
            content_source=(
                item.url if item.kind == "web" else item.source_url or effect.lesson.source_url
            ),
            teacher_id=effect.presenter.id,
            teacher_name=effect.presenter.name,
            hidden=effect.hidden,
        )
        wall = self.clock.time() - (self.clock.monotonic() - effect.now_s)
        try:
            self._open_uuid = self.usage.open(
                start, wall_s=wall, mono_s=effect.now_s, clock_offset_ms=self._clock_offset_ms
            )
        except UsageLogError:
            self._open_uuid = None
            logger.exception("usage log could not open a display interval")

    def _interval_ended(self, effect: IntervalEnded) -> None:
        uuid, self._open_uuid = self._open_uuid, None
        if uuid is None:
            return
        wall = self.clock.time() - (self.clock.monotonic() - effect.now_s)
        try:
            self.usage.close(uuid, wall_s=wall, mono_s=effect.now_s, reason=effect.reason)
        except UsageLogError:
            logger.exception("usage log could not close display interval %s", uuid)

    # ----------------------------------------------------------------- helpers

    def _reply(self, sid: int, msg: Message) -> None:
        self._replies.append(Outgoing(sid, msg))

    def _log_refusal(self, sid: int, what: str, exc: ClassCastError) -> None:
        """Log a refused request, once per error code per interval (floods stay one line)."""
        suppressed = self._refusals_log.allow(exc.code, self.clock.monotonic())
        if suppressed is None:
            return
        more = f" ({suppressed} more {exc.code} since the last such line)" if suppressed else ""
        logger.info("session %d: %s: %s (%s)%s", sid, what, exc, exc.code, more)

    def _take_token(self, session: Session) -> bool:
        """Charge one message to its budget; False (and the session told to close) when
        the budget is spent.

        A paired controller has one budget, shared by all its connections
        (``MESSAGE_BURST`` at once, ``MAX_MESSAGES_PER_SECOND`` sustained), so opening
        more connections does not let it send more; it is kept across reconnections. A
        connection without a grant has its own, small one
        (``UNAUTHENTICATED_MESSAGE_BURST``, ``MAX_UNAUTHENTICATED_MESSAGES_PER_SECOND``:
        it may only say hello and pair).
        """
        now = self.clock.monotonic()
        grant = session.grant
        if grant is None:
            bucket = session.budget
        else:
            bucket = self._grant_buckets.get(grant.token_hash) or self._new_grant_bucket(
                grant.token_hash, now
            )
        if bucket.take(now):
            return True
        if grant is None:
            rate = limits.MAX_UNAUTHENTICATED_MESSAGES_PER_SECOND
            reason = f"more than {rate} messages per second before pairing"
        else:
            rate = limits.MAX_MESSAGES_PER_SECOND
            reason = f"more than {rate} messages per second from this paired controller"
            if any(
                s.grant is not None and s.grant.token_hash == grant.token_hash and s is not session
                for s in self._sessions.values()
            ):
                reason += " (all its connections together)"
        self._out.append(CloseSession(session.sid, POLICY_VIOLATION, reason))
        return False

    def _new_grant_bucket(self, token_hash: str, now: float) -> TokenBucket:
        """A full budget for the grant ``token_hash``; budgets full again are forgotten
        first (a full one is what a new one would be), so only those of controllers that
        sent messages in the last ``MESSAGE_BURST / MAX_MESSAGES_PER_SECOND`` seconds
        are kept."""
        for key in [k for k, b in self._grant_buckets.items() if b.at_rest(now)]:
            del self._grant_buckets[key]
        bucket = TokenBucket.full(limits.MESSAGE_BURST, limits.MAX_MESSAGES_PER_SECOND, now)
        self._grant_buckets[token_hash] = bucket
        return bucket


def _error(re: int | None, exc: ClassCastError) -> Error:
    """The ``error`` reply for ``exc`` (a ``busy`` one names the presenting teacher)."""
    presenter = exc.presenter if isinstance(exc, BusyError) else None
    return Error(re=re, code=exc.code, message=str(exc), presenter=presenter)


def _public(status: StatusSnapshot) -> StatusSnapshot:
    """What an unpaired connection may see: the panel and its state, no lesson or names."""
    return dataclasses.replace(
        status,
        lesson_id=None,
        lesson_title=None,
        index=0,
        count=0,
        item_kind=None,
        item_title=None,
        position_ms=0,
        presenter=None,
    )


def _blob_set(lesson: LessonManifest) -> set[str]:
    return {item.sha256 for item in lesson.items if item.sha256 is not None}
