"""PIN pairing: the SPAKE2 exchange and the kiosk's guard against guessing. Sans-I/O.

A teacher proves they can see the panel by typing the 6-digit PIN it shows. The PIN
never travels: both sides run SPAKE2 (package ``spake2``) with the PIN as password, so
a listener learns nothing and a relay cannot test PINs offline: each guess costs one
online try, and the kiosk allows five before it locks pairing with a growing delay.

Both SPAKE2 identities are bound into the key: the controller's id, and the kiosk's id
*with the fingerprint of the TLS certificate each side sees*. A relay that presents its
own certificate to the controller makes the two sides use different identities, so
their keys differ, the confirmation MACs fail, and the controller learns that the
connection is not to the panel. After success the controller pins that fingerprint.

Admin pairing uses the same exchange with the kiosk's admin secret (from its own
configuration) as the password instead of the PIN.

Flow (messages in :mod:`protocol.messages`)::

    controller: PairStart(spake=A.start())             kiosk: guard.check_allowed(now)
    kiosk:      PairOffer(spake=B.start())
    controller: PairConfirm(confirm=A.finish(offer))   kiosk: B.verify(confirm) or guard.failed
    kiosk:      Paired(confirm=B.confirm(), token)     controller: A.verify_kiosk(confirm)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Final

from spake2 import SPAKE2_A, SPAKE2_B  # type: ignore[import-untyped]

from protocol.errors import ProtocolError

PIN_DIGITS: Final = 6
PIN_LIFETIME_S: Final = 600.0
"""A PIN is renewed after this long (and after each successful pairing)."""

FREE_TRIES: Final = 5
"""Wrong PINs allowed before pairing locks."""

LOCKOUT_BASE_S: Final = 30.0
"""First lockout; each further wrong try while locked out doubles it."""

LOCKOUT_MAX_S: Final = 3600.0

TOKEN_BYTES: Final = 32

_CONTROLLER_LABEL: Final = b"classcast-pair-v1 controller"
_KIOSK_LABEL: Final = b"classcast-pair-v1 kiosk"


class PairingError(ProtocolError):
    """Pairing failed: wrong PIN, or a relay in the middle (the peer's side)."""

    code = "bad_pin"


class PairingLockedError(PairingError):
    """Too many wrong tries: pairing is refused until ``retry_after_s`` has passed."""

    code = "locked"

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(
            f"too many wrong PINs: pairing is locked for {retry_after_s:.0f} more seconds"
        )
        self.retry_after_s = retry_after_s


def new_pin(randbelow: Callable[[int], int] = secrets.randbelow) -> str:
    """A fresh 6-digit PIN (leading zeros kept)."""
    return f"{randbelow(10**PIN_DIGITS):0{PIN_DIGITS}d}"


def new_token() -> str:
    """A fresh bearer token (hex of 32 random bytes)."""
    return secrets.token_hex(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """What the kiosk stores instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


# --------------------------------------------------------------------------- guard


class PairingGuard:
    """The kiosk's PIN and its defence against guessing; pure, ``now`` is passed in.

    Call :meth:`pin` to show the PIN, :meth:`check_allowed` before an exchange, then
    :meth:`failed` or :meth:`succeeded`.
    """

    def __init__(self, now: float, *, make_pin: Callable[[], str] = new_pin) -> None:
        self._make_pin = make_pin
        self._pin = make_pin()
        self._issued_at = now
        self._failures = 0
        self._locked_until = float("-inf")
        self._lockout_s = 0.0
        self._generation = 0

    @property
    def generation(self) -> int:
        """Counts PIN changes; an exchange begun under an older PIN must not finish."""
        return self._generation

    def pin(self, now: float) -> str:
        """The PIN to show now; renewed once it is PIN_LIFETIME_S old."""
        if now - self._issued_at >= PIN_LIFETIME_S:
            self._renew(now)
        return self._pin

    def pin_expires_at(self) -> float:
        return self._issued_at + PIN_LIFETIME_S

    @property
    def failures(self) -> int:
        return self._failures

    def check_allowed(self, now: float) -> None:
        """Raise PairingLockedError while pairing is locked."""
        if now < self._locked_until:
            raise PairingLockedError(self._locked_until - now)

    def failed(self, now: float) -> None:
        """Count a wrong PIN; from the FREE_TRIES-th on, lock with a doubling delay."""
        self._failures += 1
        if self._failures >= FREE_TRIES:
            self._lockout_s = (
                LOCKOUT_BASE_S if self._lockout_s == 0 else min(self._lockout_s * 2, LOCKOUT_MAX_S)
            )
            self._locked_until = now + self._lockout_s
            # A new PIN too, so that guesses made so far are worthless.
            self._renew(now)

    def succeeded(self, now: float) -> None:
        """A controller paired: forget failures and show a new PIN."""
        self._failures = 0
        self._lockout_s = 0.0
        self._locked_until = float("-inf")
        self._renew(now)

    def _renew(self, now: float) -> None:
        self._pin = self._make_pin()
        self._issued_at = now
        self._generation += 1


# --------------------------------------------------------------------------- exchange


def _ids(controller_id: str, kiosk_id: str, fingerprint: str) -> tuple[bytes, bytes]:
    return controller_id.encode(), f"{kiosk_id}|{fingerprint}".encode()


def _mac(key: bytes, label: bytes, transcript: bytes) -> bytes:
    return hmac.new(key, label + transcript, hashlib.sha256).digest()


class ControllerPairing:
    """The controller's side (SPAKE2 side A).

    ``fingerprint`` is the sha256 of the certificate the controller sees on this
    connection.
    """

    def __init__(self, secret: str, *, controller_id: str, kiosk_id: str, fingerprint: str):
        id_a, id_b = _ids(controller_id, kiosk_id, fingerprint)
        self._spake = SPAKE2_A(secret.encode(), idA=id_a, idB=id_b)
        self._ids = id_a + b"|" + id_b
        self._msg_a = b""
        self._key = b""
        self._transcript = b""

    def start(self) -> bytes:
        """The first SPAKE2 message, for ``PairStart``."""
        self._msg_a = bytes(self._spake.start())
        return self._msg_a

    def finish(self, msg_b: bytes) -> bytes:
        """Take the kiosk's ``PairOffer``; returns the confirmation for ``PairConfirm``.

        Raises:
            PairingError: the kiosk's message is not a valid SPAKE2 message.
        """
        try:
            self._key = bytes(self._spake.finish(msg_b))
        except Exception as exc:  # spake2 raises several unrelated types on bad input
            raise PairingError(f"invalid pairing message from the kiosk: {exc}") from None
        self._transcript = self._ids + self._msg_a + msg_b
        return _mac(self._key, _CONTROLLER_LABEL, self._transcript)

    def verify_kiosk(self, confirm: bytes) -> None:
        """Check the kiosk's confirmation in ``Paired``.

        Raises:
            PairingError: the kiosk does not share the key: a relay is in the middle.
        """
        expected = _mac(self._key, _KIOSK_LABEL, self._transcript)
        if not self._key or not hmac.compare_digest(expected, confirm):
            raise PairingError(
                "the panel could not prove it knows the PIN: the connection may be "
                "intercepted; pair again in the classroom"
            )


class KioskPairing:
    """The kiosk's side (SPAKE2 side B), for one pairing attempt."""

    def __init__(self, secret: str, *, controller_id: str, kiosk_id: str, fingerprint: str):
        id_a, id_b = _ids(controller_id, kiosk_id, fingerprint)
        self._spake = SPAKE2_B(secret.encode(), idA=id_a, idB=id_b)
        self._ids = id_a + b"|" + id_b
        self._key = b""
        self._transcript = b""

    def respond(self, msg_a: bytes) -> bytes:
        """Take the controller's ``PairStart``; returns the message for ``PairOffer``.

        Raises:
            PairingError: the controller's message is not a valid SPAKE2 message.
        """
        msg_b = bytes(self._spake.start())
        try:
            self._key = bytes(self._spake.finish(msg_a))
        except Exception as exc:  # spake2 raises several unrelated types on bad input
            raise PairingError(f"invalid pairing message: {exc}") from None
        self._transcript = self._ids + msg_a + msg_b
        return msg_b

    def verify_controller(self, confirm: bytes) -> bytes:
        """Check ``PairConfirm``; returns the kiosk's confirmation for ``Paired``.

        Raises:
            PairingError: wrong PIN (or a relay): count it with ``PairingGuard.failed``.
        """
        expected = _mac(self._key, _CONTROLLER_LABEL, self._transcript)
        if not self._key or not hmac.compare_digest(expected, confirm):
            raise PairingError("wrong PIN")
        return _mac(self._key, _KIOSK_LABEL, self._transcript)


def cert_fingerprint(der: bytes) -> str:
    """The fingerprint of a certificate: sha256 of its DER bytes, lowercase hex."""
    return hashlib.sha256(der).hexdigest()
