"""Every message of protocol v1 as a frozen dataclass.

Text frames carry one JSON object: ``{"type": <TYPE>, ...fields}``. Requests from the
controller carry an ``id`` chosen by the controller; the kiosk answers each request with
one reply whose ``re`` is that id: a typed reply (``welcome``, ``need``, ``status``,
``usage_batch``), ``ok``, or ``error``. The kiosk also pushes events with ``re`` = null
(``status``, ``blob_stored``).

Names follow the house rule: commands sent by the controller are imperatives
(``Cast``, ``Control``), reports sent by the kiosk are in the past tense or nouns
(``BlobStored``, ``Status``). Binary frames (blob chunks) are not messages; see
:mod:`protocol.codec`.

``docs/protocol.md`` documents every class here; a test checks that it does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Final, Literal

ItemKind = Literal["image", "pdf", "video", "web", "text", "screen"]
"""What an item is, decided by probing its content. ``screen`` is a teacher's shared
screen (``share_start``): never part of a cast lesson, but logged like an item."""

ControlAction = Literal[
    "next", "prev", "goto", "pause", "play", "seek", "volume", "blank", "unblank", "stop"
]
"""Everything ``control`` can ask of a playing lesson."""

PlayerState = Literal["idle", "loading", "playing", "paused"]
"""What a kiosk is doing; ``blanked`` is a separate flag."""

EndReason = Literal[
    "next",
    "prev",
    "goto",
    "auto",
    "blank",
    "stop",
    "replaced",
    "end",
    "power_loss",
    "shutdown",
    "error",
    "failed",
    "alert",
    "shown",
]
"""Why a display interval ended. ``failed``: the item could not be shown at all (a web
page that did not open); such a record's ``duration_ms`` is 0, it was never on screen.
``blank``/``alert``: the screen was blanked, or a full-screen alert covered the lesson.
``shown``: a hidden interval ended because the item became visible again (unblanked, the
alert removed)."""

HiddenReason = Literal["", "alert", "blank", "failed"]
"""Why an item was on the panel but not visible during a display interval (see
:attr:`UsageRecord.hidden`): ``""`` it was visible; ``alert`` a full-screen alert covered
it; ``blank`` the screen was blanked; ``failed`` it could not be shown and the panel showed
why instead (a web page that did not open)."""

ItemFailure = Literal["no_network", "unreachable", "not_allowed", "panel", "http_error", "timeout"]
"""Why the current item (a web page) could not be opened: its host's name does not
resolve (no network, or no such host); the host does not answer; the host is outside the
panel's ``web_allow``; it is the panel itself; it answered with an HTTP error status; it
took too long."""

Role = Literal["teacher", "admin"]


# --------------------------------------------------------------------------- parts


@dataclass(frozen=True, slots=True)
class ManifestItem:
    """One item of a lesson as the controller announces it.

    Media items name their file by ``sha256`` (hex) and ``size_bytes``; a PDF page also
    has ``page`` (0-based). Web items have either ``url`` (http or https) or a blob (an
    HTML file); text items carry ``text``. ``duration_ms`` advances the lesson
    automatically; a video without one advances when it ends.
    """

    kind: ItemKind
    title: str
    sha256: str | None = None
    size_bytes: int = 0
    page: int | None = None
    url: str | None = None
    text: str | None = None
    duration_ms: int | None = None
    source_url: str | None = None


@dataclass(frozen=True, slots=True)
class LessonManifest:
    """A lesson as sent in ``cast``: identity, descriptive fields and its items."""

    lesson_id: str
    title: str
    items: list[ManifestItem]
    subject: str | None = None
    source_url: str | None = None


@dataclass(frozen=True, slots=True)
class BlobNeed:
    """A blob the kiosk lacks, from ``have_bytes`` on (0 = all of it)."""

    sha256: str
    have_bytes: int
    size_bytes: int


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """What a kiosk is showing now.

    ``index`` is 0-based; ``count`` is the number of items (0 when idle).
    ``position_ms`` is the time spent on the current item, paused time excluded.
    """

    kiosk_id: str
    room: str
    school: str
    state: PlayerState
    blanked: bool
    lesson_id: str | None
    lesson_title: str | None
    index: int
    count: int
    item_kind: ItemKind | None
    item_title: str | None
    position_ms: int
    presenter: str | None
    version: str
    cache_used_bytes: int = 0
    cache_quota_bytes: int = 0
    """Media cache use; filled in ``get_status`` replies (0 in pushed events)."""
    volume: int = 100
    """Sound level of videos, percent (``control`` ``volume``)."""
    item_failure: ItemFailure | None = None
    """Set when the current item could not be shown (the panel shows why)."""
    item_failure_status: int | None = None
    """The HTTP status of an ``http_error`` failure."""
    item_opened: bool = False
    """Set once the current item, a web page, was checked and opened on screen; a
    controller that cast it waits for this or ``item_failure``."""


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One display interval from a kiosk's usage log (DESIGN §6).

    Times are ISO 8601 UTC strings of the kiosk's clock; ``clock_offset_ms`` is how far
    that clock was ahead of the casting controller's (measured with ``time_ping``), so
    the corrected start is ``started_at - clock_offset_ms``. ``duration_ms`` comes from
    the kiosk's monotonic clock.

    Tamper evidence (:mod:`protocol.usage_chain`): ``prev_hash`` is the ``record_hash``
    of the kiosk's record with the previous ``seq``; ``record_hash`` is the sha256 of
    this record's canonical form; ``signature`` is the kiosk's Ed25519 signature of it.

    ``hidden`` says why the item was not visible during this interval (``""``: it was):
    the lesson stayed on the panel, its clock stood still, and the time is logged but is
    not display time. It is signed, and left out of the canonical form when empty, so
    records logged before the field existed keep their hashes.

    ``school_id`` is the stable id of the panel's school (``kiosk.toml`` ``school_id``,
    :func:`protocol.text.school_id_problem`; ``""`` when not set): district reports keep
    each school's rooms and teachers apart by it. Signed, and left out of the canonical
    form when empty, like ``hidden``.
    """

    uuid: str
    seq: int
    kiosk_id: str
    room: str
    lesson_id: str
    lesson_title: str
    item_index: int
    kind: ItemKind
    content_hash: str | None
    content_title: str
    content_source: str | None
    teacher_id: str
    teacher_name: str
    started_at: str
    ended_at: str | None
    duration_ms: int
    end_reason: EndReason | None
    clock_offset_ms: int = 0
    prev_hash: str = ""
    record_hash: str = ""
    signature: str = ""
    hidden: HiddenReason = ""
    school_id: str = ""


USAGE_RECORD_FIELDS: Final[tuple[str, ...]] = tuple(f.name for f in fields(UsageRecord))
"""A usage record's fields in declaration order: the columns every usage table (the
panel's log, the school's and the district's databases) is read and written by."""

_TEXT_DEFAULTS: Final = frozenset(
    f.name for f in fields(UsageRecord) if f.default == "" and f.default is not MISSING
)
_TEXT_DEFAULT_AT: Final = tuple(
    at for at, name in enumerate(USAGE_RECORD_FIELDS) if name in _TEXT_DEFAULTS
)
"""Where the fields of :data:`_TEXT_DEFAULTS` are in a row of :data:`USAGE_RECORD_FIELDS`."""


def usage_record(values: Mapping[str, object] | Sequence[object]) -> UsageRecord:
    """A usage record from stored values, field by field name.

    Args:
        values: A mapping of field names, or a row of :data:`USAGE_RECORD_FIELDS` in that
            order (a row stored before later fields existed may stop short: they take
            their defaults). A NULL (``None``) where a text field defaults to ``""`` (a
            record not sealed yet) reads as ``""``.

    Returns:
        The record. Values are not checked here: the codec checks what arrives, and
        the chain's hash checks what was stored.

    Raises:
        TypeError: a name that is no field, a row longer than the fields, or a required
            field missing.
    """
    if not isinstance(values, Mapping):
        if len(values) == len(USAGE_RECORD_FIELDS):  # a whole row: by position, faster
            row: list[Any] = list(values)
            for at in _TEXT_DEFAULT_AT:
                if row[at] is None:
                    row[at] = ""
            return UsageRecord(*row)
        if len(values) > len(USAGE_RECORD_FIELDS):
            raise TypeError(f"a usage record has {len(USAGE_RECORD_FIELDS)} fields")
        values = dict(zip(USAGE_RECORD_FIELDS, values, strict=False))
    named: dict[str, Any] = {
        name: "" if value is None and name in _TEXT_DEFAULTS else value
        for name, value in values.items()
    }
    return UsageRecord(**named)


# --------------------------------------------------------------------------- controller → kiosk


@dataclass(frozen=True, slots=True)
class Hello:
    """First message on every connection: who the controller is.

    The kiosk answers with ``Welcome``. Any other request before ``hello`` is refused
    with ``error`` code ``unexpected``.
    """

    TYPE: ClassVar[str] = "hello"
    id: int
    protocol_version: int
    controller_id: str
    controller_name: str
    token: str | None = None


@dataclass(frozen=True, slots=True)
class Cast:
    """Show a lesson, replacing what is shown.

    The kiosk answers with ``Need`` listing the blobs it lacks, receives their chunks,
    sends ``BlobStored`` for each, then starts the lesson at ``start_index`` and sends
    ``ok``. ``start_at_ms`` (kiosk wall clock, ms since the epoch) delays the start for
    a synchronised group start. ``clock_offset_ms`` is how far the kiosk's clock is
    ahead of the controller's (from ``time_ping``); the kiosk stores it in the usage
    records of this lesson. It is at most ``limits.MAX_CLOCK_OFFSET_MS`` either way,
    and a nonzero one must match the ``time_ping`` of the same connection
    (:mod:`protocol.clock`); 0 keeps the kiosk's own time.
    """

    TYPE: ClassVar[str] = "cast"
    id: int
    lesson: LessonManifest
    start_index: int = 0
    start_at_ms: int | None = None
    clock_offset_ms: int = 0


@dataclass(frozen=True, slots=True)
class PairStart:
    """Begin pairing: the controller's SPAKE2 message (base64) for ``role``.

    A teacher pairs with the PIN shown on the panel; an admin with the kiosk's admin
    secret. Answered with ``PairOffer`` or ``error`` (``try_later``, ``locked``,
    ``not_enabled``).
    """

    TYPE: ClassVar[str] = "pair_start"
    id: int
    role: Role
    spake: str


@dataclass(frozen=True, slots=True)
class PairConfirm:
    """Second pairing step: the controller's key confirmation (base64 HMAC).

    Answered with ``Paired``, or ``error`` ``bad_pin`` (a wrong PIN counts for the
    sender's address and for everybody) or ``locked``; while pairing is under a guessing
    attack, only once the panel's user answered (``refused`` if they did not allow it).
    """

    TYPE: ClassVar[str] = "pair_confirm"
    id: int
    confirm: str


@dataclass(frozen=True, slots=True)
class Unpair:
    """Revoke the token this connection said hello with; answered with ``ok``."""

    TYPE: ClassVar[str] = "unpair"
    id: int


@dataclass(frozen=True, slots=True)
class Prepare:
    """Store a lesson's media without showing it (for a synchronised start or ahead of class).

    Answered like ``cast``: ``Need``, then ``BlobStored`` for each blob, then ``ok``
    once every blob is present. What the panel shows does not change.
    """

    TYPE: ClassVar[str] = "prepare"
    id: int
    lesson: LessonManifest


@dataclass(frozen=True, slots=True)
class Control:
    """Change what a playing lesson shows.

    ``goto`` needs ``index`` (0-based); ``seek`` needs ``position_ms``; ``volume``
    needs ``volume`` (percent, 0–100: the panel's sound level for videos, kept across
    items and lessons; also accepted while no lesson is shown). Answered with ``ok``
    once the player applied it, or ``error`` (for example ``no_lesson``).

    ``at_ms`` (kiosk wall clock, ms since the epoch, as ``cast.start_at_ms``) applies the
    control at that instant, so that a group of panels changes together: the kiosk
    answers ``ok`` at once, prepares what it will show and applies the control then.
    At most ``limits.MAX_INSTANT_AHEAD_MS`` ahead (else ``error`` ``bad_instant``); an
    instant already past is applied at once and the ``ok`` says how late (``late_ms``).
    """

    TYPE: ClassVar[str] = "control"
    id: int
    action: ControlAction
    index: int | None = None
    position_ms: int | None = None
    volume: int | None = None
    at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class GetStatus:
    """Ask for the current ``Status``; answered with ``status`` whose ``re`` is this id."""

    TYPE: ClassVar[str] = "get_status"
    id: int


AnnouncementLevel = Literal["info", "alert"]


@dataclass(frozen=True, slots=True)
class Announce:
    """Show an announcement over whatever the panel shows.

    ``info`` is a banner at the bottom; ``alert`` takes the whole screen (an evacuation
    notice, say). It disappears after ``duration_s`` seconds, or on ``clear_announcement``.
    Teachers may announce on their panel; announcing while another teacher presents
    needs the admin role.
    """

    TYPE: ClassVar[str] = "announce"
    id: int
    text: str
    level: AnnouncementLevel = "info"
    duration_s: int | None = None


@dataclass(frozen=True, slots=True)
class ClearAnnouncement:
    """Remove the announcement shown, if any; answered with ``ok``."""

    TYPE: ClassVar[str] = "clear_announcement"
    id: int


@dataclass(frozen=True, slots=True)
class TakeScreenshot:
    """Ask for a PNG thumbnail of what the panel shows, at most ``max_width`` pixels wide.

    Answered with ``Screenshot``, or ``error`` ``no_screen`` when the kiosk runs without
    a window.
    """

    TYPE: ClassVar[str] = "take_screenshot"
    id: int
    max_width: int = 480


@dataclass(frozen=True, slots=True)
class TimePing:
    """Measure the kiosk's clock: answered with ``TimePong`` carrying the kiosk's time.

    ``controller_ms`` is the controller's wall clock (ms since the epoch) when sent.
    """

    TYPE: ClassVar[str] = "time_ping"
    id: int
    controller_ms: int


@dataclass(frozen=True, slots=True)
class UsagePull:
    """Ask for usage records with ``seq`` greater than ``after_seq``.

    Answered with ``UsageBatch`` of at most ``limit`` records in ``seq`` order.
    """

    TYPE: ClassVar[str] = "usage_pull"
    id: int
    after_seq: int
    limit: int


@dataclass(frozen=True, slots=True)
class ShareStart:
    """Show this controller's screen, live, replacing what is shown (a presentation like
    a lesson: the same moderation, controls and usage log, kind ``screen``).

    ``stream_id`` names the stream in the header of every stream frame that follows;
    ``width`` and ``height`` are the pictures' size (at most ``MAX_SHARE_WIDTH`` ×
    ``MAX_SHARE_HEIGHT``); ``title`` is what the usage log records (a window's title, or
    "Screen"). Answered with ``ok``; then send stream frames, starting with a keyframe.
    """

    TYPE: ClassVar[str] = "share_start"
    id: int
    stream_id: int
    width: int
    height: int
    title: str


@dataclass(frozen=True, slots=True)
class ShareStop:
    """End the screen share ``stream_id``; answered with ``ok`` (the panel goes idle)."""

    TYPE: ClassVar[str] = "share_stop"
    id: int
    stream_id: int


# --------------------------------------------------------------------------- kiosk → controller


@dataclass(frozen=True, slots=True)
class Welcome:
    """Reply to ``hello``: who the kiosk is, what it shows, and what this controller may do.

    ``role`` is the role of the token sent in ``hello``, or null when there was none or
    it is not valid (then only pairing is allowed).
    """

    TYPE: ClassVar[str] = "welcome"
    re: int
    protocol_version: int
    kiosk_id: str
    room: str
    school: str
    status: StatusSnapshot
    role: Role | None = None


@dataclass(frozen=True, slots=True)
class PairOffer:
    """Reply to ``pair_start``: the kiosk's SPAKE2 message (base64)."""

    TYPE: ClassVar[str] = "pair_offer"
    re: int
    spake: str


@dataclass(frozen=True, slots=True)
class Paired:
    """Reply to ``pair_confirm``: the kiosk's key confirmation and the new token.

    The controller checks ``confirm`` before it trusts the token and pins the
    certificate it saw. Send ``token`` in every later ``hello``.
    """

    TYPE: ClassVar[str] = "paired"
    re: int
    confirm: str
    token: str
    role: Role


@dataclass(frozen=True, slots=True)
class Need:
    """Reply to ``cast`` or ``prepare``: the blobs (or tails) the kiosk lacks; may be empty."""

    TYPE: ClassVar[str] = "need"
    re: int
    blobs: list[BlobNeed] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BlobStored:
    """Event: a blob arrived whole and its sha256 verified."""

    TYPE: ClassVar[str] = "blob_stored"
    sha256: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class Status:
    """What the kiosk shows: a reply to ``get_status`` or (``re`` null) a pushed event."""

    TYPE: ClassVar[str] = "status"
    status: StatusSnapshot
    re: int | None = None


@dataclass(frozen=True, slots=True)
class UsageBatch:
    """Reply to ``usage_pull``: records in ``seq`` order; ``more`` if others follow."""

    TYPE: ClassVar[str] = "usage_batch"
    re: int
    kiosk_id: str
    records: list[UsageRecord]
    last_seq: int
    more: bool
    public_key: str = ""
    """The kiosk's Ed25519 public key (base64 of the 32 raw bytes) that signs records."""


@dataclass(frozen=True, slots=True)
class Screenshot:
    """Reply to ``take_screenshot``: ``png`` is the base64 of a PNG image."""

    TYPE: ClassVar[str] = "screenshot"
    re: int
    png: str


@dataclass(frozen=True, slots=True)
class TimePong:
    """Reply to ``time_ping``: the kiosk's wall clock (ms since the epoch) on receipt.

    With the send time ``t0`` and receive time ``t1`` on the controller, the kiosk's
    clock is ``kiosk_ms - (t0 + t1) / 2`` ms ahead (NTP's estimate).
    """

    TYPE: ClassVar[str] = "time_pong"
    re: int
    controller_ms: int
    kiosk_ms: int


@dataclass(frozen=True, slots=True)
class Ok:
    """A request succeeded.

    ``late_ms``, for a ``cast`` with ``start_at_ms`` or a ``control`` with ``at_ms``:
    the instant had already passed when the kiosk got it, by that many ms; the kiosk
    applied it at once (null: on time, or no instant).
    """

    TYPE: ClassVar[str] = "ok"
    re: int
    late_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Error:
    """A request failed, or (``re`` null) the connection broke a rule.

    ``code`` is one of the codes listed in ``docs/protocol.md``; ``message`` explains
    it to a person. ``presenter``, only with code ``busy``: the name of the teacher
    presenting on the panel (as their controller sent it in ``hello``; clean it with
    :func:`protocol.text.clean_name` before showing it).
    """

    TYPE: ClassVar[str] = "error"
    re: int | None
    code: str
    message: str
    presenter: str | None = None


@dataclass(frozen=True, slots=True)
class KeyframeRequest:
    """Event to the sharing connection: the kiosk cannot decode stream ``stream_id`` from
    here on (it joined late, or a frame went missing). Send a keyframe next; until it
    arrives the panel keeps its last picture. Sent at most every
    ``KEYFRAME_REQUEST_INTERVAL_S``."""

    TYPE: ClassVar[str] = "keyframe_request"
    stream_id: int


Request = (
    Hello
    | PairStart
    | PairConfirm
    | Unpair
    | Cast
    | Prepare
    | Control
    | GetStatus
    | Announce
    | ClearAnnouncement
    | TakeScreenshot
    | TimePing
    | UsagePull
    | ShareStart
    | ShareStop
)
"""Messages a controller sends."""

Reply = (
    Welcome
    | PairOffer
    | Paired
    | Need
    | BlobStored
    | Status
    | Screenshot
    | TimePong
    | UsageBatch
    | KeyframeRequest
    | Ok
    | Error
)
"""Messages a kiosk sends."""

Message = Request | Reply

MESSAGE_TYPES: tuple[type[Message], ...] = (
    Hello,
    PairStart,
    PairConfirm,
    Unpair,
    Cast,
    Prepare,
    Control,
    GetStatus,
    Announce,
    ClearAnnouncement,
    TakeScreenshot,
    TimePing,
    UsagePull,
    ShareStart,
    ShareStop,
    Welcome,
    PairOffer,
    Paired,
    Need,
    BlobStored,
    Status,
    Screenshot,
    TimePong,
    UsageBatch,
    KeyframeRequest,
    Ok,
    Error,
)
"""Every message class, in documentation order."""
