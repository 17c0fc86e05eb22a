"""SPAKE2 over Ed25519, computed by libsodium (through PyNaCl). Sans-I/O.

The same protocol, group, constants, message format and key derivation as the ``spake2``
package's asymmetric SPAKE2 (its ``SPAKE2_A``/``SPAKE2_B`` with the default Ed25519
parameters), so that an exchange computes the same messages and key byte for byte
(``tests/test_pairing.py`` checks one against that package); only the curve arithmetic
moves from pure Python (10–30 ms a side) to libsodium's constant-time C (well under a
millisecond a side).

With ``G`` the Ed25519 base point, ``L`` its prime order, ``w`` the password scalar,
``M`` and ``N`` the two fixed points below:

* A picks ``x`` at random in ``[0, L)`` and sends ``b"A" + X`` with ``X = x·G + w·M``;
* B picks ``y`` and sends ``b"B" + Y`` with ``Y = y·G + w·N``;
* A computes ``K = x·(Y − w·N)``, B computes ``K = y·(X − w·M)``: both ``x·y·G``;
* the key is ``sha256(sha256(pw) ‖ sha256(idA) ‖ sha256(idB) ‖ X ‖ Y ‖ K)``.

Each side refuses a message that is not a canonical encoding of a point of the prime-
order subgroup (libsodium's ``crypto_core_ed25519_is_valid_point``: on the curve, not of
small order, ``L·P`` the identity), and a message equal to its own (a reflection).
``docs/security.md`` gives the derivation of ``M`` and ``N`` and why this is sound.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Final

from nacl.bindings import (
    crypto_core_ed25519_add,
    crypto_core_ed25519_is_valid_point,
    crypto_core_ed25519_sub,
    crypto_scalarmult_ed25519_base_noclamp,
    crypto_scalarmult_ed25519_noclamp,
)
from nacl.exceptions import RuntimeError as NaclRuntimeError

L: Final = 2**252 + 27742317777372353535851937790883648493
"""The order of the Ed25519 base point (the prime-order subgroup)."""

M: Final = bytes.fromhex("15cfd18e385952982b6a8f8c7854963b58e34388c8e6dae891db756481a02312")
"""The SPAKE2 blinding point of side A: the ``spake2`` package's ``arbitrary_element(b"M")``
(HKDF-SHA256 of the seed ``b"M"``, info ``b"SPAKE2 arbitrary element"``, 48 bytes, read
big-endian mod 2**255 − 19 as a y coordinate, incremented until it is on the curve, the
point times 8). Nobody knows its discrete logarithm."""

N: Final = bytes.fromhex("f04f2e7eb734b2a8f8b472eaf9c3c632576ac64aea650b496a8a20ff00e583c3")
"""The SPAKE2 blinding point of side B: ``arbitrary_element(b"N")``, derived as :data:`M`."""

SIDE_A: Final = b"A"
SIDE_B: Final = b"B"
MESSAGE_BYTES: Final = 33
"""A SPAKE2 message: one side byte, then a compressed Ed25519 point."""


class SpakeError(ValueError):
    """The peer's SPAKE2 message is invalid (wrong side, length, or point)."""


def hkdf_sha256(secret: bytes, *, info: bytes, length: int, salt: bytes = b"") -> bytes:
    """HKDF-SHA256 (RFC 5869): extract with ``salt`` (empty: 32 zero bytes), expand."""
    prk = hmac.digest(salt or bytes(32), secret, "sha256")
    out, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.digest(prk, block + info + bytes([counter]), "sha256")
        out += block
    return out[:length]


def password_scalar(password: bytes) -> int:
    """The password as a scalar mod ``L``: HKDF-SHA256 (no salt, info ``b"SPAKE2 pw"``)
    to 48 bytes, read big-endian, reduced mod ``L`` (as the ``spake2`` package does)."""
    expanded = hkdf_sha256(password, info=b"SPAKE2 pw", length=48)
    return int.from_bytes(expanded, "big") % L


def _scalar(n: int) -> bytes:
    return (n % L).to_bytes(32, "little")


def random_scalar(entropy: Callable[[int], bytes] = secrets.token_bytes) -> int:
    """A uniform scalar in ``[0, L)``: 64 random bytes read big-endian, reduced mod ``L``."""
    return int.from_bytes(entropy(64), "big") % L


class _Side:
    side: bytes = b""
    blinding: bytes = b""
    unblinding: bytes = b""

    def __init__(
        self,
        password: bytes,
        *,
        id_a: bytes,
        id_b: bytes,
        entropy: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self._password = password
        self._w = password_scalar(password)
        self._id_a = id_a
        self._id_b = id_b
        self._entropy = entropy
        self._secret = 0
        self._outbound = b""
        self._finished = False

    def start(self) -> bytes:
        """This side's message (side byte and point); call once."""
        if self._outbound:
            raise SpakeError("start() may be called only once")
        try:
            self._secret = random_scalar(self._entropy)
            mine = crypto_scalarmult_ed25519_base_noclamp(_scalar(self._secret))
            blind = crypto_scalarmult_ed25519_noclamp(_scalar(self._w), self.blinding)
            self._outbound = crypto_core_ed25519_add(mine, blind)
        except NaclRuntimeError as exc:  # the identity: a zero scalar (odds 2**-252)
            raise SpakeError(f"degenerate SPAKE2 value: {exc}") from None
        return self.side + self._outbound

    def finish(self, inbound: bytes) -> bytes:
        """The shared key (32 bytes) from the peer's message; call once, after start.

        Raises:
            SpakeError: the message is not the other side's, or not a valid point.
        """
        if not self._outbound or self._finished:
            raise SpakeError("finish() must follow start() and be called once")
        self._finished = True
        if len(inbound) != MESSAGE_BYTES or inbound[:1] not in (SIDE_A, SIDE_B):
            raise SpakeError("not a SPAKE2 message")
        if inbound[:1] == self.side:
            raise SpakeError("a SPAKE2 message from the same side")
        point = inbound[1:]
        if not crypto_core_ed25519_is_valid_point(point):
            raise SpakeError("not a point of the prime-order group")
        if point == self._outbound:
            raise SpakeError("our own SPAKE2 message reflected")
        try:
            unblind = crypto_scalarmult_ed25519_noclamp(_scalar(self._w), self.unblinding)
            shared = crypto_scalarmult_ed25519_noclamp(
                _scalar(self._secret), crypto_core_ed25519_sub(point, unblind)
            )
        except NaclRuntimeError as exc:  # the identity: Y − w·N chosen to cancel
            raise SpakeError(f"degenerate SPAKE2 value: {exc}") from None
        x_msg, y_msg = (self._outbound, point) if self.side == SIDE_A else (point, self._outbound)
        transcript = b"".join(
            [
                hashlib.sha256(self._password).digest(),
                hashlib.sha256(self._id_a).digest(),
                hashlib.sha256(self._id_b).digest(),
                x_msg,
                y_msg,
                shared,
            ]
        )
        return hashlib.sha256(transcript).digest()


class SpakeA(_Side):
    """Side A (the controller): blinds with ``M``, unblinds the peer's with ``N``."""

    side = SIDE_A
    blinding = M
    unblinding = N


class SpakeB(_Side):
    """Side B (the kiosk): blinds with ``N``, unblinds the peer's with ``M``."""

    side = SIDE_B
    blinding = N
    unblinding = M
