"""Who may do what on a kiosk: tokens, roles, pairing, and the one presenting teacher.

Roles (``docs/security.md``):

=============  ==========================================================
no token       ``hello``, ``pair_start``, ``pair_confirm``
teacher        also ``cast``, ``prepare``, ``control``, ``get_status``, ``unpair``
admin          also ``usage_pull``, and overriding another teacher's presentation
=============  ==========================================================

A teacher pairs with the PIN shown on the panel; an admin with the ``admin_secret``
from the kiosk's own configuration, so only whoever configures the panel can make
admins. One teacher presents at a time (:class:`Moderation`).
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
from protocol.messages import PairConfirm, Paired, PairOffer, PairStart, Role
from protocol.pairing import KioskPairing, PairingError, PairingGuard, new_token

logger = logging.getLogger(__name__)

PRESENTER_GRACE_S = 120.0
"""How long a presenting teacher may be disconnected before another teacher may take over."""

MIN_ADMIN_SECRET_CHARS = 12


@dataclass(slots=True)
class PairingAttempt:
    """A pairing in progress on one connection."""

    exchange: KioskPairing
    role: Role
    generation: int
    """The guard's PIN generation when the attempt began."""


class Access:
    """Tokens, roles and pairing for one kiosk; ``now`` is always passed in."""

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

    def pair_start(
        self, controller_id: str, msg: PairStart, now: float
    ) -> tuple[PairingAttempt, PairOffer]:
        """Answer ``pair_start``.

        Raises:
            PairingLockedError: too many wrong tries.
            UnexpectedMessageError: admin pairing is not enabled on this kiosk.
            MalformedMessageError: ``spake`` is not base64.
        """
        self.guard.check_allowed(now)
        if msg.role == "admin":
            if self._admin_secret is None:
                raise UnexpectedMessageError(
                    "admin pairing is not enabled on this panel (admin_secret in kiosk.toml)",
                    code="not_enabled",
                )
            secret = self._admin_secret
        else:
            secret = self.guard.pin(now)
        exchange = KioskPairing(
            secret,
            controller_id=controller_id,
            kiosk_id=self.kiosk_id,
            fingerprint=self.fingerprint,
        )
        offer = exchange.respond(_b64(msg.spake, "pair_start.spake"))
        return PairingAttempt(exchange, msg.role, self.guard.generation), PairOffer(
            re=msg.id, spake=base64.b64encode(offer).decode()
        )

    def pair_confirm(
        self,
        attempt: PairingAttempt,
        msg: PairConfirm,
        *,
        controller_id: str,
        name: str,
        now: float,
        wall_s: float,
    ) -> tuple[Grant, Paired]:
        """Answer ``pair_confirm``: a new token, or a counted failure.

        Raises:
            PairingLockedError: pairing locked since this attempt began.
            PairingError: wrong PIN (or secret), counted towards the lockout; or the
                PIN changed since this attempt began (after a lock, a pairing or its
                10 minutes), so that attempts started in parallel cannot outlast a lock.
        """
        self.guard.check_allowed(now)
        if attempt.role == "teacher" and attempt.generation != self.guard.generation:
            raise PairingError("the PIN changed while pairing: read the new PIN and try again")
        try:
            confirm = attempt.exchange.verify_controller(_b64(msg.confirm, "pair_confirm.confirm"))
        except PairingError:
            self.guard.failed(now)
            logger.warning("pairing failed for %s (%s): wrong PIN", name, controller_id)
            raise
        token = new_token()
        grant = self.tokens.add(token, controller_id, name, attempt.role, wall_s)
        self.guard.succeeded(now)
        logger.info("paired %s (%s) as %s", name, controller_id, attempt.role)
        return grant, Paired(
            re=msg.id,
            confirm=base64.b64encode(confirm).decode(),
            token=token,
            role=attempt.role,
        )

    def unpair(self, grant: Grant) -> None:
        self.tokens.revoke_hash(grant.token_hash)


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
        if self._left_at is not None and now - self._left_at >= self.grace_s:
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
