"""Who may do what on a kiosk: tokens, roles, pairing, and the one presenting teacher.

Roles (``docs/security.md``):

=============  ==========================================================
no token       ``hello``, ``pair_start``, ``pair_confirm``
teacher        also ``cast``, ``prepare``, ``control``, ``get_status``, ``unpair``
admin          also ``usage_pull``, and overriding another teacher's presentation
=============  ==========================================================

A teacher pairs with the PIN shown on the panel; an admin with the ``admin_secret``
from the kiosk's own configuration, so only whoever configures the panel can make
admins. Tries are rationed per source address and per role by
:class:`~protocol.pairing.PairingGuard`; under a guessing attack a right PIN pairs only
once the panel's user allows it. One teacher presents at a time (:class:`Moderation`).
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass

from kiosk.tokens import Grant, TokenStore
from protocol.errors import (
    BusyError,
    ForbiddenError,
    MalformedMessageError,
    UnauthorizedError,
    UnexpectedMessageError,
)
from protocol.messages import PairConfirm, Paired, PairStart, Role
from protocol.pairing import OfferJob, OfferKeys, PairingError, PairingGuard, new_token
from protocol.sources import LogLimiter

logger = logging.getLogger(__name__)

PRESENTER_GRACE_S = 120.0
"""How long a presenting teacher may be disconnected before another teacher may take over."""

MIN_ADMIN_SECRET_CHARS = 12


@dataclass(frozen=True, slots=True)
class OfferRequest:
    """A ``pair_start`` let through: the SPAKE2 job, and what its attempt will need."""

    job: OfferJob
    role: Role
    generation: int
    """The guard's PIN generation when the attempt began."""


@dataclass(slots=True)
class PairingAttempt:
    """A pairing in progress on one connection: its offer was sent."""

    keys: OfferKeys
    role: Role
    generation: int


class Access:
    """Tokens, roles and pairing for one kiosk; ``now`` is always passed in.

    Pairing, as the service drives it: :meth:`begin_pairing` for a ``pair_start``
    (raises when refused), compute the offer off the loop, :meth:`offer_computed`;
    then for the ``pair_confirm``, :meth:`check_confirm`, and either :meth:`grant` at
    once or, when :meth:`needs_panel`, after the panel's user allowed it
    (:meth:`refused_on_panel` otherwise).
    """

    def __init__(
        self,
        tokens: TokenStore,
        *,
        kiosk_id: str,
        fingerprint: str,
        admin_secret: str | None,
        now: float,
    ) -> None:
        if admin_secret is not None and len(admin_secret) < MIN_ADMIN_SECRET_CHARS:
            raise ValueError(f"admin_secret must have at least {MIN_ADMIN_SECRET_CHARS} characters")
        self.tokens = tokens
        self.kiosk_id = kiosk_id
        self.fingerprint = fingerprint
        self._admin_secret = admin_secret
        self.guard = PairingGuard(now)
        self._log_limiter = LogLimiter()
        """Refusals and wrong tries are logged once per cause and interval, with a count."""

    def pin(self, now: float) -> str:
        """The PIN the panel shows now."""
        return self.guard.pin(now)

    def authenticate(self, token: str | None) -> Grant | None:
        return self.tokens.lookup(token)

    def require(self, grant: Grant | None, role: Role, what: str) -> Grant:
        """Check that ``grant`` (still valid) allows ``what``.

        Raises:
            UnauthorizedError: no grant, or it was revoked.
            ForbiddenError: ``role`` is admin and the grant is a teacher's.
        """
        if grant is None or not self.tokens.is_valid(grant):
            raise UnauthorizedError(
                f"{what} needs a paired controller: pair with this panel first (classcast pair)"
            )
        if role == "admin" and grant.role != "admin":
            raise ForbiddenError(f"{what} needs the admin role")
        return grant

    def begin_pairing(
        self, controller_id: str, source: str, msg: PairStart, now: float
    ) -> OfferRequest:
        """Let a ``pair_start`` from IP ``source`` through, or refuse it at once.

        The caller computes ``request.job`` off the network loop
        (:func:`protocol.pairing.compute_offer`), then calls :meth:`offer_computed`
        whatever the outcome.

        Raises:
            UnexpectedMessageError: admin pairing is not enabled on this kiosk.
            MalformedMessageError: ``spake`` is not base64.
            PairingLockedError: too many wrong tries from ``source``.
            PairingThrottledError: too many ``pair_start`` (from ``source``, or from
                everybody), or another exchange is being computed.
        """
        if msg.role == "admin":
            if self._admin_secret is None:
                raise UnexpectedMessageError(
                    "admin pairing is not enabled on this panel (admin_secret in kiosk.toml)",
                    code="not_enabled",
                )
            secret = self._admin_secret
        else:
            secret = self.guard.pin(now)
        msg_a = _b64(msg.spake, "pair_start.spake")
        try:
            self.guard.admit(msg.role, source, now)
        except PairingError as exc:
            self._warn(exc.code, now, "pairing refused for %s: %s", source, exc)
            raise
        job = OfferJob(secret, controller_id, self.kiosk_id, self.fingerprint, msg_a)
        return OfferRequest(job, msg.role, self.guard.generation)

    def offer_computed(self, request: OfferRequest) -> None:
        """The job of ``request`` was computed (or failed): the next one may start."""
        self.guard.computed(request.role)

    def check_confirm(
        self, attempt: PairingAttempt, msg: PairConfirm, *, source: str, name: str, now: float
    ) -> bytes:
        """Check a ``pair_confirm``; returns the kiosk's confirmation for ``Paired``.

        A right PIN does not pair yet: call :meth:`needs_panel`, then :meth:`grant`.

        Raises:
            MalformedMessageError: ``confirm`` is not base64.
            PairingLockedError: ``source`` was locked out since its ``pair_start``.
            PairingError: wrong PIN (or secret), counted for ``source`` and for
                everybody; or the PIN changed since this attempt began (after a
                pairing or its 10 minutes): read the new one.
        """
        confirm = _b64(msg.confirm, "pair_confirm.confirm")
        self.guard.check_source(attempt.role, source, now)
        if attempt.role == "teacher" and attempt.generation != self.guard.generation:
            raise PairingError("the PIN changed while pairing: read the new PIN and try again")
        try:
            return attempt.keys.verify_controller(confirm)
        except PairingError:
            self.guard.failed(attempt.role, source, now)
            self._warn(
                f"wrong-{attempt.role}",
                now,
                "pairing as %s failed for %r from %s: wrong %s",
                attempt.role,
                name,
                source,
                "PIN" if attempt.role == "teacher" else "admin secret",
            )
            raise

    def needs_panel(self, role: Role, now: float) -> bool:
        """Whether pairing as ``role`` is under attack: the panel's user must allow it."""
        return self.guard.needs_panel(role, now)

    def grant(
        self,
        attempt: PairingAttempt,
        *,
        re: int,
        confirm: bytes,
        controller_id: str,
        name: str,
        source: str,
        now: float,
        wall_s: float,
    ) -> tuple[Grant, Paired]:
        """Issue a token for a checked ``pair_confirm`` (request ``re``); a new PIN shows."""
        token = new_token()
        grant = self.tokens.add(token, controller_id, name, attempt.role, wall_s)
        self.guard.succeeded(attempt.role, source, now)
        logger.info("paired %s (%s) from %s as %s", name, controller_id, source, attempt.role)
        return grant, Paired(
            re=re,
            confirm=base64.b64encode(confirm).decode(),
            token=token,
            role=attempt.role,
        )

    def refused_on_panel(self, now: float) -> None:
        """A right PIN was refused on the panel, or nobody answered: show a new PIN."""
        self.guard.exposed(now)

    def unpair(self, grant: Grant) -> None:
        self.tokens.revoke_hash(grant.token_hash)

    def _warn(self, cause: str, now: float, msg: str, *args: object) -> None:
        suppressed = self._log_limiter.allow(cause, now)
        if suppressed is None:
            return
        if suppressed:
            logger.warning(
                msg + " (and %d more like it since the last such line)", *args, suppressed
            )
        else:
            logger.warning(msg, *args)


class Moderation:
    """One presenting teacher per panel; pure, ``now`` is passed in.

    The service tells it when the presenter's last connection closes
    (:meth:`presenter_left`) or reconnects (:meth:`presenter_back`).
    """

    def __init__(self, grace_s: float = PRESENTER_GRACE_S) -> None:
        self.grace_s = grace_s
        self._left_at: float | None = None

    def check(
        self,
        *,
        controller_id: str,
        role: Role,
        presenter_id: str | None,
        presenter_name: str | None,
        now: float,
    ) -> None:
        """May ``controller_id`` change what the panel shows?

        Raises:
            BusyError: another teacher presents, is connected (or left less than
                ``grace_s`` ago), and the caller is not an admin.
        """
        if presenter_id is None or presenter_id == controller_id or role == "admin":
            return
        # ``now >= left + grace``, not ``now - left >= grace``: on a monotonic clock hours
        # from its start, the subtraction rounds the very end of the grace below it.
        if self._left_at is not None and now >= self._left_at + self.grace_s:
            return
        raise BusyError(
            f"{presenter_name} is presenting on this panel; ask them to stop, or wait",
            presenter=presenter_name,
        )

    def presenter_left(self, now: float) -> None:
        """The presenter's last connection closed at ``now``."""
        self._left_at = now

    def presenter_back(self) -> None:
        """The presenter reconnected, or a new presentation began: the grace no longer runs."""
        self._left_at = None


def _b64(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedMessageError(f"{where} is not base64") from None
