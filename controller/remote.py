"""Phone remote grants: which phone may press Next on the teacher's current cast.

The teacher's app shows a QR code; the teacher's phone scans it and gets a remote page
served by the app over the school's Wi-Fi. The phone never holds pairing credentials:
it holds a *grant*, and :class:`GrantBook` is the whole of its rules. It is a pure
state machine: no clock, no sockets; callers pass ``now`` (seconds of a monotonic
clock) to every method, and the web adapter (``controller/webapp/remote.py``) turns its
exceptions into pages.

The life of a grant, in one table (``_TRANSITIONS``)::

    state      event                                   next state
    ---------  --------------------------------------  -------------------------------
    waiting    redeem(code)                            connected  (code dead; cookie issued)
    waiting    CODE_TTL_S passes without a redeem      ended: code_expired
    connected  redeem(same code) again                 connected  (CodeUsedError; noted)
    waiting,   GRANT_TTL_S after issue                 ended: expired
    connected  revoke / revoke_all                     ended: revoked
               a cast to other panels is observed      ended: recast
    ended      ENDED_KEEP_S pass                       forgotten  (its cookie is then unknown)

Decisions, and why:

* **Scope = the cast's panels, not its lesson.** A grant controls the panels of the
  cast it was issued for. A new lesson on the same panels keeps the phone working (a
  lesson period holds several lessons; a QR code each time would be friction); a cast to
  any other set of panels ends the grant, so a phone given power over room 12 never
  gets power over room 14. While nothing is cast the grant waits (the teacher may cast
  again).
* **Actions:** ``next``, ``prev``, ``goto``, ``pause``, ``play``, ``blank``,
  ``unblank`` (:data:`ALLOWED_ACTIONS`). Not ``stop``: ending a cast is the app's job
  (restarting it needs the app anyway), and a stolen grant then cannot end a lesson.
  Never casting, pairing, announcing, seeking, volume or anything of an admin.
* **One phone per QR code.** Redeeming the code kills it; the second redeem (a student
  who photographed the QR) fails, counts as a failure of its address, and is shown to
  the teacher in the list of remotes (:attr:`GrantInfo.reused_from`).
* **Failures per address.** An unknown code or session counts against its source
  (:data:`MAX_FAILURES_PER_SOURCE` per :data:`FAILURE_WINDOW_S`); past it that source
  is refused until the window passes. A phone with a valid session is never locked
  out, so a student cannot lock out the teacher by failing from the teacher's address.
  With 128-bit secrets guessing is hopeless anyway; the budget keeps a flood cheap.
* **Controls per remote** are a token bucket (:data:`CONTROL_BURST` at once,
  :data:`CONTROLS_PER_SECOND` on average).
* Only sha256 digests of codes and session secrets are kept.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from controller.i18n import t
from protocol.errors import ClassCastError
from protocol.messages import ControlAction

__all__ = [
    "ALLOWED_ACTIONS",
    "CODE_TTL_S",
    "CONTROLS_PER_SECOND",
    "CONTROL_BURST",
    "ENDED_KEEP_S",
    "FAILURE_WINDOW_S",
    "GRANT_TTL_S",
    "MAX_FAILURES_PER_SOURCE",
    "MAX_GRANTS",
    "MAX_TRACKED_SOURCES",
    "SECRET_BYTES",
    "CastScope",
    "CodeUsedError",
    "ControlNotAllowedError",
    "ControlRateError",
    "GrantBook",
    "GrantClosedError",
    "GrantInfo",
    "GrantLimitError",
    "IssuedGrant",
    "PhoneRemoteError",
    "PhoneSession",
    "SourceLockedError",
    "phone_error_text",
    "phone_texts",
    "teacher_texts",
]

GRANT_TTL_S: Final = 90 * 60.0
"""A grant lives 90 minutes from its QR code (a double lesson period), unless revoked."""

CODE_TTL_S: Final = 5 * 60.0
"""A QR code nobody scanned is dead after 5 minutes (a QR left on screen stays harmless)."""

ENDED_KEEP_S: Final = 15 * 60.0
"""An ended grant is remembered this long, so its phone is told "closed" (not counted as
a guess) and the teacher's list can say why it ended."""

MAX_GRANTS: Final = 8
"""Grants held at once (live ones and remembered ended ones): more is GrantLimitError."""

MAX_FAILURES_PER_SOURCE: Final = 10
"""Unknown codes or sessions one source may present per FAILURE_WINDOW_S."""

FAILURE_WINDOW_S: Final = 10 * 60.0
"""The window of MAX_FAILURES_PER_SOURCE; a locked source is refused until it passes."""

MAX_TRACKED_SOURCES: Final = 1024
"""Sources whose failures are counted at once; past it the least recent is forgotten."""

CONTROLS_PER_SECOND: Final = 4.0
"""Average controls per second one remote may send (a presenter clicks far slower)."""

CONTROL_BURST: Final = 8
"""Controls one remote may send at once (a quick run of Next)."""

SECRET_BYTES: Final = 16
"""Entropy of codes, session secrets and CSRF tokens: 128 bits (token_urlsafe)."""

ALLOWED_ACTIONS: Final[frozenset[ControlAction]] = frozenset(
    {"next", "prev", "goto", "pause", "play", "blank", "unblank"}
)
"""What a phone remote may ask of the cast; everything else is ControlNotAllowedError."""


# ------------------------------------------------------------------------ errors
#
#     ClassCastError (protocol.errors)
#     └── PhoneRemoteError          the phone remote refused a request           (peer)
#         ├── GrantClosedError      unknown, expired or revoked grant; the cast moved (peer)
#         ├── CodeUsedError         a QR code redeemed a second time             (peer)
#         ├── SourceLockedError     too many failed attempts from one address    (peer)
#         ├── ControlRateError      controls faster than a remote's budget       (peer)
#         ├── ControlNotAllowedError an action a phone may not ask; a bad CSRF token (peer)
#         └── GrantLimitError       too many phone remotes open at once          (user)
#
# None crosses the protocol: they are answered with pages (phone_error_text).
class PhoneRemoteError(ClassCastError):
    """The phone remote refused a request; no panel was touched.

    The phone's side, except :class:`GrantLimitError` (the teacher's). The web adapter
    answers each subclass with a page in the teacher's language.
    """

    code = "phone_remote"


class GrantClosedError(PhoneRemoteError):
    """The phone holds no valid grant (the phone's side; it needs a new QR code).

    ``reason``: ``unknown`` (no such code or session), ``code_expired`` (the QR code was
    not scanned in time), ``expired``, ``revoked`` (by the teacher), ``recast`` (the
    teacher's cast moved to other panels).
    """

    code = "grant_closed"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class CodeUsedError(PhoneRemoteError):
    """A QR code that a phone already redeemed was presented again (the peer's).

    Someone else scanned or photographed the QR code; the grant keeps working for the
    phone that redeemed it first, and the teacher's list of remotes says so.
    """

    code = "code_used"


class SourceLockedError(PhoneRemoteError):
    """Too many failed attempts from one address (the peer's): wait ``retry_after_s``."""

    code = "source_locked"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ControlRateError(PhoneRemoteError):
    """Controls pressed faster than a remote's budget (the peer's): wait ``retry_after_s``."""

    code = "control_rate"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ControlNotAllowedError(PhoneRemoteError):
    """An action outside a phone remote's scope, or a bad CSRF token (the peer's)."""

    code = "control_not_allowed"


class GrantLimitError(PhoneRemoteError):
    """The teacher has as many phone remotes open as allowed (the user's: revoke one)."""

    code = "grant_limit"


EndReason = Literal["code_expired", "expired", "revoked", "recast"]


@dataclass(frozen=True, slots=True)
class CastScope:
    """What a grant may control: the panels (kiosk ids) of the cast it was issued for."""

    panel_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class IssuedGrant:
    """A new grant: put ``code`` in the QR code's link (``/p/<code>``) and show it."""

    grant_id: str
    code: str
    code_expires_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class PhoneSession:
    """A redeemed grant: set ``secret`` as the phone's cookie and put ``csrf_token`` in
    its page; every control must carry both."""

    grant_id: str
    secret: str
    csrf_token: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class GrantInfo:
    """One row of the teacher's list of phone remotes."""

    grant_id: str
    label: str
    state: Literal["waiting", "connected"]
    issued_at: float
    expires_at: float
    phone_source: str | None
    """The address that redeemed the code (None while waiting)."""
    last_used_at: float | None
    other_sources: tuple[str, ...]
    """Addresses other than the phone's that used its session: a sign of a stolen cookie."""
    reused_from: tuple[str, ...]
    """Addresses that presented the already used QR code: someone else scanned it."""


@dataclass(slots=True)
class _Grant:
    grant_id: str
    scope: CastScope
    label: str
    issued_at: float
    expires_at: float
    code_digest: str | None
    code_expires_at: float
    session_digest: str | None = None
    csrf_token: str | None = None
    phone_source: str | None = None
    last_used_at: float | None = None
    other_sources: list[str] = field(default_factory=list)
    reused_from: list[str] = field(default_factory=list)
    tokens: float = float(CONTROL_BURST)
    tokens_at: float = 0.0
    ended: EndReason | None = None
    ended_at: float = 0.0


# The transitions of the table in the module docstring: which event ends a live grant,
# and with which reason. Checked in one place, :meth:`GrantBook._end_if_due`.
_TRANSITIONS: Final[Mapping[str, EndReason]] = {
    "code_ttl": "code_expired",
    "grant_ttl": "expired",
    "revoke": "revoked",
    "other_panels": "recast",
}

_MAX_NOTED_SOURCES = 8  # addresses remembered per grant in other_sources / reused_from


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


class GrantBook:
    """Every phone remote grant of one teacher's app; pure, ``now`` passed in.

    Usage: :meth:`issue` when the teacher asks for a QR code; :meth:`redeem` when a
    phone opens it; :meth:`authorize` before showing the phone the cast's state;
    :meth:`authorize_control` before carrying out a phone's control; :meth:`revoke`
    from the teacher's list (:meth:`grants`). Each check also ends grants whose time
    is up or whose cast moved to other panels.
    """

    def __init__(self) -> None:
        self._grants: dict[str, _Grant] = {}
        self._by_code: dict[str, str] = {}  # code digest -> grant id (kept after redeem)
        self._by_session: dict[str, str] = {}  # session digest -> grant id
        self._failures: dict[str, list[float]] = {}  # source -> failure times, oldest first

    # ------------------------------------------------------------------ teacher

    def issue(
        self, scope: CastScope, now: float, *, label: str = "", ttl_s: float = GRANT_TTL_S
    ) -> IssuedGrant:
        """Start a grant for ``scope``; show the returned code as a QR code.

        Args:
            scope: the panels of the teacher's current cast.
            label: what the teacher's list calls it (the rooms and lesson title).
            ttl_s: the grant's life from now.

        Raises:
            GrantLimitError: MAX_GRANTS grants are held; the teacher must revoke one.
        """
        self.sweep(now)
        if len(self._grants) >= MAX_GRANTS:
            raise GrantLimitError(f"{MAX_GRANTS} phone remotes are open already")
        code = _secret()
        grant = _Grant(
            grant_id=_secret(),
            scope=scope,
            label=label,
            issued_at=now,
            expires_at=now + ttl_s,
            code_digest=_digest(code),
            code_expires_at=now + min(CODE_TTL_S, ttl_s),
        )
        self._grants[grant.grant_id] = grant
        self._by_code[_digest(code)] = grant.grant_id
        return IssuedGrant(grant.grant_id, code, grant.code_expires_at, grant.expires_at)

    def revoke(self, grant_id: str, now: float) -> bool:
        """End one grant at once; its phone's next request gets the closed page.

        Returns:
            False when there is no live grant of that id (already ended or forgotten).
        """
        grant = self._grants.get(grant_id)
        if grant is None or grant.ended is not None:
            return False
        self._end(grant, "revoke", now)
        return True

    def revoke_all(self, now: float) -> int:
        """End every live grant; returns how many were live."""
        return sum(self.revoke(grant_id, now) for grant_id in list(self._grants))

    def observe_cast(self, scope: CastScope | None, now: float) -> None:
        """Tell the book what the teacher casts now: grants of other panels end.

        ``None`` (nothing cast) ends nothing: a grant waits for the next cast.
        """
        if scope is None:
            return
        for grant in self._grants.values():
            if grant.ended is None and grant.scope != scope:
                self._end(grant, "other_panels", now)

    def grants(self, now: float) -> list[GrantInfo]:
        """The live grants, oldest first, for the teacher's list."""
        self.sweep(now)
        return [
            GrantInfo(
                grant_id=g.grant_id,
                label=g.label,
                state="waiting" if g.session_digest is None else "connected",
                issued_at=g.issued_at,
                expires_at=g.expires_at,
                phone_source=g.phone_source,
                last_used_at=g.last_used_at,
                other_sources=tuple(g.other_sources),
                reused_from=tuple(g.reused_from),
            )
            for g in self._grants.values()
            if g.ended is None
        ]

    def held(self, now: float) -> int:
        """Grants held, live or remembered after their end (0: the LAN port may close)."""
        self.sweep(now)
        return len(self._grants)

    def csrf_token(self, grant_id: str) -> str:
        """The CSRF token to put in the page of a redeemed grant ("" if none)."""
        grant = self._grants.get(grant_id)
        return "" if grant is None or grant.csrf_token is None else grant.csrf_token

    def ended_reason(self, grant_id: str) -> EndReason | None:
        """Why a remembered grant ended (None: live or unknown)."""
        grant = self._grants.get(grant_id)
        return None if grant is None else grant.ended

    # -------------------------------------------------------------------- phone

    def redeem(self, code: str, *, source: str, now: float) -> PhoneSession:
        """Turn a QR code into the phone's session; the code then never works again.

        Args:
            code: the code from the QR code's link.
            source: the phone's address (its IPv6 /64), for the failure budget.

        Returns:
            The session: set its secret as the phone's cookie, its CSRF token in the page.

        Raises:
            SourceLockedError: ``source`` failed too often; nothing else was checked.
            GrantClosedError: no such code (counted as a failure), or its grant ended.
            CodeUsedError: the code was redeemed before (counted; noted for the teacher).
        """
        self.sweep(now)
        self._check_not_locked(source, now)
        grant = self._grants.get(self._by_code.get(_digest(code), ""))
        if grant is None:
            raise self._failure(source, now, GrantClosedError("unknown code", reason="unknown"))
        if grant.ended is not None:
            raise GrantClosedError(f"grant ended: {grant.ended}", reason=grant.ended)
        if grant.code_digest is None:
            if source not in grant.reused_from and len(grant.reused_from) < _MAX_NOTED_SOURCES:
                grant.reused_from.append(source)
            raise self._failure(source, now, CodeUsedError("QR code already used"))
        secret, csrf = _secret(), _secret()
        grant.code_digest = None
        grant.session_digest = _digest(secret)
        grant.csrf_token = csrf
        grant.phone_source = source
        grant.last_used_at = now
        grant.tokens_at = now
        self._by_session[grant.session_digest] = grant.grant_id
        return PhoneSession(grant.grant_id, secret, csrf, grant.expires_at)

    def authorize(self, secret: str, *, source: str, now: float, scope: CastScope | None) -> str:
        """Check a phone's session cookie before showing it the cast's state.

        Args:
            secret: the phone's cookie.
            source: the phone's address.
            scope: the teacher's current cast (None: nothing cast).

        Returns:
            The grant's id.

        Raises:
            SourceLockedError: an unknown session from a source that failed too often.
            GrantClosedError: unknown session (counted as a failure), or its grant ended
                (expired, revoked, recast: not counted; the phone needs a new QR code).
        """
        return self._session(secret, source=source, now=now, scope=scope).grant_id

    def authorize_control(
        self,
        secret: str,
        action: ControlAction,
        *,
        csrf_token: str,
        source: str,
        now: float,
        scope: CastScope | None,
    ) -> str:
        """Check a phone's control before carrying it out; charges the remote's budget.

        Returns:
            The grant's id: carry out ``action`` on the current cast.

        Raises:
            SourceLockedError, GrantClosedError: as :meth:`authorize`.
            ControlNotAllowedError: a wrong CSRF token, or an action outside
                ALLOWED_ACTIONS (neither counts against the source: a forged request
                comes from the teacher's own phone).
            ControlRateError: the remote's budget is spent; retry after ``retry_after_s``.
        """
        grant = self._session(secret, source=source, now=now, scope=scope)
        assert grant.csrf_token is not None
        if not hmac.compare_digest(csrf_token.encode(), grant.csrf_token.encode()):
            raise ControlNotAllowedError("missing or wrong CSRF token")
        if action not in ALLOWED_ACTIONS:
            raise ControlNotAllowedError(f"a phone remote may not {action}")
        grant.tokens = min(
            float(CONTROL_BURST), grant.tokens + (now - grant.tokens_at) * CONTROLS_PER_SECOND
        )
        grant.tokens_at = now
        if grant.tokens < 1.0:
            wait_s = (1.0 - grant.tokens) / CONTROLS_PER_SECOND
            raise ControlRateError("controls too fast", retry_after_s=wait_s)
        grant.tokens -= 1.0
        return grant.grant_id

    # ---------------------------------------------------------------- upkeep

    def sweep(self, now: float) -> None:
        """End grants whose time is up; forget old ended grants and old failures.

        Every other method calls it; call it yourself only to free memory early.
        """
        for grant in list(self._grants.values()):
            self._end_if_due(grant, now)
            if grant.ended is not None and now - grant.ended_at >= ENDED_KEEP_S:
                self._forget(grant)
        for source, times in list(self._failures.items()):
            while times and now - times[0] >= FAILURE_WINDOW_S:
                times.pop(0)
            if not times:
                del self._failures[source]

    # ------------------------------------------------------------- internals

    def _session(self, secret: str, *, source: str, now: float, scope: CastScope | None) -> _Grant:
        self.sweep(now)
        grant = self._grants.get(self._by_session.get(_digest(secret), ""))
        if grant is None:
            self._check_not_locked(source, now)
            raise self._failure(source, now, GrantClosedError("unknown session", reason="unknown"))
        self.observe_cast(scope, now)
        if grant.ended is not None:
            raise GrantClosedError(f"grant ended: {grant.ended}", reason=grant.ended)
        noted = source == grant.phone_source or source in grant.other_sources
        if not noted and len(grant.other_sources) < _MAX_NOTED_SOURCES:
            grant.other_sources.append(source)
        grant.last_used_at = now
        return grant

    def _end_if_due(self, grant: _Grant, now: float) -> None:
        if grant.ended is not None:
            return
        if grant.session_digest is None and now >= grant.code_expires_at:
            self._end(grant, "code_ttl", now)
        elif now >= grant.expires_at:
            self._end(grant, "grant_ttl", now)

    def _end(self, grant: _Grant, event: str, now: float) -> None:
        grant.ended = _TRANSITIONS[event]
        grant.ended_at = now

    def _forget(self, grant: _Grant) -> None:
        del self._grants[grant.grant_id]
        self._by_code = {k: v for k, v in self._by_code.items() if v != grant.grant_id}
        if grant.session_digest is not None:
            self._by_session.pop(grant.session_digest, None)

    def _check_not_locked(self, source: str, now: float) -> None:
        times = self._failures.get(source, [])
        if len(times) >= MAX_FAILURES_PER_SOURCE:
            raise SourceLockedError(
                f"too many failures from {source}",
                retry_after_s=times[0] + FAILURE_WINDOW_S - now,
            )

    def _failure(self, source: str, now: float, error: PhoneRemoteError) -> PhoneRemoteError:
        """Count a failure of ``source``; returns ``error`` for the caller to raise."""
        times = self._failures.pop(source, [])
        times.append(now)
        self._failures[source] = times[-MAX_FAILURES_PER_SOURCE:]  # most recent last
        if len(self._failures) > MAX_TRACKED_SOURCES:
            del self._failures[next(iter(self._failures))]
        return error


# ------------------------------------------------------------------------- texts
#
# What the phone's pages say, written here so that the catalogue check finds every
# msgid (controller/*.py is what it reads).


def phone_texts() -> dict[str, str]:
    """The words of the phone's remote page, in the current language."""
    return {
        "title": t("ClassCast remote"),
        "prev": t("Back"),
        "next": t("Next"),
        "pause": t("Pause"),
        "play": t("Play"),
        "blank": t("Black screen"),
        "unblank": t("Show the screen"),
        "items": t("All items"),
        "paused": t("Paused"),
        "blanked": t("The screen is black"),
        "nothing": t("Nothing is cast now: cast a lesson from the teacher's app."),
        "open": t("Open the remote"),
        "opening": t("Opening the remote…"),
        "no_script": t("Tap the button to open the remote."),
        "item_of": t("Item {index} of {count}"),
        "wrong_address": t("Wrong address"),
        "not_allowed": t("Not allowed"),
        "from_qr": t("Open the remote from the teacher's QR code."),
        "too_large": t("The request is too large: reload the page."),
        "too_slow": t("The request was too slow."),
        "nothing_here": t("Nothing here"),
        "went_wrong": t("Something went wrong"),
        "reload": t("Reload the page. If it happens again, ask the teacher for a new QR code."),
        "no_item": t("There is no such item."),
        "no_answer": t("The panel did not answer in time: press again."),
        "failed": t("The panel did not do it: {reason}"),
    }


def teacher_texts() -> dict[str, str]:
    """The words of the phone remote's part of the teacher's app, in the current language."""
    return {
        "heading": t("Phone remote"),
        "scan": t(
            "Scan this QR code with your phone (on the school's Wi-Fi). It opens the "
            "remote on one phone only and is valid for {minutes} min."
        ),
        "new": t("Show a QR code for the phone"),
        "none": t("No phone remote is open."),
        "nothing_cast": t("Nothing is cast: cast a lesson first, then show the QR code."),
        "waiting": t("Waiting for the phone to scan the QR code"),
        "connected": t("Phone connected ({source})"),
        "left": t("{minutes} min left"),
        "revoke": t("Close this remote"),
        "revoke_all": t("Close every phone remote"),
        "reused": t(
            "Warning: the QR code was scanned again from {sources}. If that was not you, "
            "close this remote and show a new QR code."
        ),
        "other_sources": t(
            "Warning: this remote was also used from {sources}. If that was not your "
            "phone, close it."
        ),
        "no_lan": t(
            "The phone remote is off: the teacher's app found no Wi-Fi or network address."
        ),
    }


def phone_error_text(error: PhoneRemoteError) -> tuple[str, str]:
    """The heading and the text of the page a phone sees for ``error``."""
    closed = t("Access to the remote is closed")
    again = t("Ask the teacher to show a new QR code.")
    match error:
        case GrantClosedError(reason="code_expired"):
            return closed, t("This QR code was not scanned in time.") + " " + again
        case GrantClosedError(reason="expired"):
            return closed, t("The remote's time is over.") + " " + again
        case GrantClosedError(reason="revoked"):
            return closed, t("The teacher closed this remote.") + " " + again
        case GrantClosedError(reason="recast"):
            return closed, t("The teacher now casts to other panels.") + " " + again
        case GrantClosedError():
            return closed, again
        case CodeUsedError():
            return t("This QR code has been used already"), t(
                "A QR code opens the remote on one phone only. If that was not your "
                "phone, tell the teacher."
            ) + " " + again
        case SourceLockedError():
            minutes = max(1, round(error.retry_after_s / 60))
            return t("Too many attempts"), t("Wait {minutes} min and try again.", minutes=minutes)
        case ControlRateError():
            return t("Too many presses"), t("Wait a second and press again.")
        case ControlNotAllowedError():
            return t("The page is out of date"), t("Reload the page and press again.")
        case GrantLimitError():
            return t("Too many phone remotes"), t(
                "Close a phone remote you no longer use, then show a new QR code."
            )
        case _:
            return closed, again
