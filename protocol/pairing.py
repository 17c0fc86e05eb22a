"""PIN pairing: the SPAKE2 exchange and the kiosk's guard against guessing. Sans-I/O.

A teacher proves they can see the panel by typing the 6-digit PIN it shows. The PIN
never travels: both sides run SPAKE2 (:mod:`protocol.spake`) with the PIN as password, so
a listener learns nothing and a relay cannot test PINs offline: each guess costs one
online try, and the kiosk's :class:`PairingGuard` rations tries.

Both SPAKE2 identities are bound into the key: the controller's id, and the kiosk's id
*with the fingerprint of the TLS certificate each side sees*. A relay that presents its
own certificate to the controller makes the two sides use different identities, so
their keys differ, the confirmation MACs fail, and the controller learns that the
connection is not to the panel. After success the controller pins that fingerprint.

Admin pairing uses the same exchange with the kiosk's admin secret (from its own
configuration) as the password instead of the PIN.

Flow (messages in :mod:`protocol.messages`)::

    controller: PairStart(spake=A.start())       kiosk: guard.admit(role, source, now)
                                                 kiosk: compute_offer(job) — off the loop
    kiosk:      PairOffer(spake=keys.msg_b)      kiosk: guard.computed(role)
    controller: PairConfirm(confirm=A.finish(offer))
                                                 kiosk: keys.verify_controller(confirm),
                                                        else guard.failed(role, source, now)
                                                 kiosk: guard.needs_panel(role, now)?
                                                        then the panel's user must allow it
    kiosk:      Paired(confirm=..., token)       kiosk: guard.succeeded(role, source, now)
    controller: A.verify_kiosk(confirm)

The guard's rules (``docs/security.md`` works out the odds they leave):

* **Compute.** SPAKE2 costs the kiosk under a millisecond of libsodium arithmetic per
  ``pair_start``. Every ``pair_start`` takes a token from its source's bucket
  (:data:`SOURCE_STARTS_BURST`, refilled at :data:`SOURCE_STARTS_PER_S`), then from the
  role's global bucket (:data:`GLOBAL_STARTS_BURST`, :data:`GLOBAL_STARTS_PER_S`), and at
  most :data:`MAX_EXCHANGES_IN_FLIGHT` per role are computed at once; anything more is
  refused at once with :class:`PairingThrottledError` (``try_later``), never queued. A
  successful pairing gives its tokens back, so honest pairings never use the budget up.
* **Guessing.** A wrong PIN counts against its source (:data:`SOURCE_FAILURE_LIMIT`, one
  forgiven every :data:`SOURCE_FAILURE_DECAY_S`): a source over it gets
  :class:`PairingLockedError` (``locked``), other sources do not. Wrong PINs also count
  globally (:data:`CONFIRM_AFTER_FAILURES`, one forgiven every
  :data:`GLOBAL_FAILURE_DECAY_S`): while the global count is reached, pairing is *under
  attack* and a right PIN pairs only once someone at the panel allows it. Nobody is
  ever locked out globally.
* **Roles apart.** The PIN (teachers) and the admin secret (admins) have separate
  budgets and counts: guessing one never hinders the other.
* **The PIN stays readable.** Wrong PINs never renew it: only its lifetime
  (:data:`PIN_LIFETIME_S`), a pairing, or a right PIN that the panel's user refused (or
  left unanswered) do. Renewing after failures would not lower the odds (each guess of
  a fresh random PIN is 1 in 10**6 either way) and would make the PIN a teacher just
  read go stale.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from protocol.errors import ProtocolError
from protocol.messages import Role

PIN_DIGITS: Final = 6
PIN_LIFETIME_S: Final = 600.0
"""A PIN is renewed after this long (and after each successful pairing)."""

SOURCE_STARTS_BURST: Final = 5
"""``pair_start`` one source (IP address) may send at once, per role."""

SOURCE_STARTS_PER_S: Final = 1 / 12
"""``pair_start`` one source may send per second on average, per role (5 a minute)."""

GLOBAL_STARTS_BURST: Final = 10
"""``pair_start`` all sources together may send at once, per role."""

GLOBAL_STARTS_PER_S: Final = 2.0
"""``pair_start`` all sources together may send per second on average, per role: the
SPAKE2 work stays at a few milliseconds a second per role, on the pairing worker."""

MAX_EXCHANGES_IN_FLIGHT: Final = 1
"""SPAKE2 computations per role at once; a ``pair_start`` beyond is refused, not queued."""

IN_FLIGHT_RETRY_S: Final = 1.0
"""The ``retry_after_s`` given to a ``pair_start`` refused because another computes."""

SOURCE_FAILURE_LIMIT: Final = 5
"""Wrong PINs (or admin secrets) from one source before that source is locked out."""

SOURCE_FAILURE_DECAY_S: Final = 60.0
"""One wrong try of a source is forgiven after this long: once locked, a source may
try once a minute."""

CONFIRM_AFTER_FAILURES: Final = 3
"""Wrong tries from all sources together (per role) that put pairing under attack: from
then on a right PIN needs the panel's user to allow it."""

GLOBAL_FAILURE_DECAY_S: Final = 3600.0
"""One wrong try of all sources is forgiven after this long: an attack ends an hour
after its last wrong try, and an attacker gets at most one unconfirmed guess an hour."""

PANEL_CONFIRM_S: Final = 8.0
"""How long the panel asks its user to allow a pairing (under attack) before refusing
it; less than the controller's 10 s request timeout, so the answer arrives in time."""

MAX_TRACKED_SOURCES: Final = 1024
"""Sources remembered per role; when full, those at rest are forgotten, then the least
recently seen, down to three quarters. A forgotten source starts afresh (the global
budgets still hold)."""

TOKEN_BYTES: Final = 32

_CONTROLLER_LABEL: Final = b"classcast-pair-v1 controller"
_KIOSK_LABEL: Final = b"classcast-pair-v1 kiosk"

ROLES: Final[tuple[Role, ...]] = ("teacher", "admin")


class PairingError(ProtocolError):
    """Pairing failed: wrong PIN, or a relay in the middle (the peer's side)."""

    code = "bad_pin"


class PairingLockedError(PairingError):
    """Too many wrong tries from this source: refused until ``retry_after_s`` has passed."""

    code = "locked"

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(
            f"too many wrong tries from this computer: try again in {_seconds(retry_after_s)}"
        )
        self.retry_after_s = retry_after_s


class PairingThrottledError(PairingError):
    """Too many pairing attempts right now (from this source, or from all): refused at
    once, not queued; try again after ``retry_after_s``."""

    code = "try_later"

    def __init__(self, why: str, retry_after_s: float) -> None:
        super().__init__(f"{why}: try again in {_seconds(retry_after_s)}")
        self.retry_after_s = retry_after_s


class PairingRefusedError(PairingError):
    """The panel's user refused the pairing, or nobody answered in time (under attack)."""

    code = "refused"


def _seconds(duration_s: float) -> str:
    n = max(1, math.ceil(duration_s))
    return f"{n} second" if n == 1 else f"{n} seconds"


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


@dataclass(slots=True)
class TokenBucket:
    """A token bucket: ``burst`` tokens at most, refilled at ``per_s``; pure."""

    burst: float
    per_s: float
    tokens: float
    at: float

    @classmethod
    def full(cls, burst: float, per_s: float, now: float) -> TokenBucket:
        return cls(burst, per_s, burst, now)

    def level(self, now: float) -> float:
        """Tokens available at ``now``."""
        return min(self.burst, self.tokens + max(0.0, now - self.at) * self.per_s)

    def take(self, now: float) -> bool:
        """Take one token if there is one; returns whether it was taken."""
        self.tokens, self.at = self.level(now), max(now, self.at)
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def give_back(self, now: float) -> None:
        """Return one token (a request that turned out honest)."""
        self.tokens, self.at = min(self.burst, self.level(now) + 1), max(now, self.at)

    def wait_s(self, now: float) -> float:
        """Seconds until a token is available (0 if one is)."""
        return max(0.0, (1 - self.level(now)) / self.per_s)

    def at_rest(self, now: float) -> bool:
        """Whether the bucket is full again (nothing to remember)."""
        return self.level(now) >= self.burst


@dataclass(slots=True)
class LeakyCount:
    """A count that forgets one unit every ``decay_s``, capped at ``cap``; pure."""

    cap: float
    decay_s: float
    count: float = 0.0
    at: float = float("-inf")

    def level(self, now: float) -> float:
        if self.count <= 0:
            return 0.0
        return max(0.0, self.count - (now - self.at) / self.decay_s)

    def add(self, now: float) -> None:
        self.count, self.at = min(self.cap, self.level(now) + 1), now

    def reached(self, now: float) -> bool:
        """Whether the count is at its cap: more than ``cap - 1`` units remain."""
        return self.level(now) > self.cap - 1

    def wait_s(self, now: float) -> float:
        """Seconds until the count is below its cap again."""
        return max(0.0, (self.level(now) - (self.cap - 1)) * self.decay_s)


@dataclass(slots=True)
class _Source:
    starts: TokenBucket
    failures: LeakyCount

    def at_rest(self, now: float) -> bool:
        return self.starts.at_rest(now) and self.failures.level(now) == 0


class _RoleBudget:
    """Every budget of one role (the PIN, or the admin secret)."""

    def __init__(self, now: float) -> None:
        self.starts = TokenBucket.full(GLOBAL_STARTS_BURST, GLOBAL_STARTS_PER_S, now)
        self.failures = LeakyCount(CONFIRM_AFTER_FAILURES, GLOBAL_FAILURE_DECAY_S)
        self.in_flight = 0
        self.sources: OrderedDict[str, _Source] = OrderedDict()

    def source(self, address: str, now: float) -> _Source:
        """The budgets of ``address`` (created full, remembered least-recently-used)."""
        found = self.sources.get(address)
        if found is not None:
            self.sources.move_to_end(address)
            return found
        if len(self.sources) >= MAX_TRACKED_SOURCES:
            self._forget(now)
        found = _Source(
            TokenBucket.full(SOURCE_STARTS_BURST, SOURCE_STARTS_PER_S, now),
            LeakyCount(SOURCE_FAILURE_LIMIT, SOURCE_FAILURE_DECAY_S),
        )
        self.sources[address] = found
        return found

    def _forget(self, now: float) -> None:
        """Make room for a quarter of the sources: drop those with nothing to remember,
        then the least recently seen (so the scan runs once per quarter, not per source)."""
        for address in [a for a, s in self.sources.items() if s.at_rest(now)]:
            del self.sources[address]
        while len(self.sources) > MAX_TRACKED_SOURCES * 3 // 4:
            self.sources.popitem(last=False)


class PairingGuard:
    """The kiosk's PIN and its rationing of pairing tries; pure, ``now`` is passed in.

    For each ``pair_start``: :meth:`admit` (raises when refused), compute the offer,
    then :meth:`computed` whatever happened. For each ``pair_confirm``:
    :meth:`check_source`, then :meth:`failed` for a wrong PIN, or for a right one
    :meth:`needs_panel` (ask the panel's user first) and :meth:`succeeded`; a right PIN
    that the panel's user refused (or left unanswered) is :meth:`exposed`. ``source``
    is the peer's IP address. See the module docstring for the rules.
    """

    def __init__(self, now: float, *, make_pin: Callable[[], str] = new_pin) -> None:
        self._make_pin = make_pin
        self._pin = make_pin()
        self._issued_at = now
        self._generation = 0
        self._roles = {role: _RoleBudget(now) for role in ROLES}

    # ----------------------------------------------------------------- the PIN

    @property
    def generation(self) -> int:
        """Counts PIN changes; an exchange begun under an older PIN must not finish."""
        return self._generation

    def pin(self, now: float) -> str:
        """The PIN to show now; renewed once it is PIN_LIFETIME_S old."""
        if now >= self._issued_at + PIN_LIFETIME_S:
            self._renew(now)
        return self._pin

    def pin_expires_at(self) -> float:
        return self._issued_at + PIN_LIFETIME_S

    def _renew(self, now: float) -> None:
        self._pin = self._make_pin()
        self._issued_at = now
        self._generation += 1

    # ----------------------------------------------------------------- pair_start

    def admit(self, role: Role, source: str, now: float) -> None:
        """Count a ``pair_start`` from ``source``; call :meth:`computed` after its SPAKE2.

        Raises:
            PairingLockedError: ``source`` made too many wrong tries for ``role``.
            PairingThrottledError: ``source``'s or everybody's ``pair_start`` budget for
                ``role`` is spent, or another exchange is being computed. Nothing is
                queued: the caller answers at once.
        """
        budget = self._roles[role]
        src = budget.source(source, now)
        if src.failures.reached(now):
            raise PairingLockedError(src.failures.wait_s(now))
        if not src.starts.take(now):
            raise PairingThrottledError(
                "too many pairing attempts from this computer", src.starts.wait_s(now)
            )
        if budget.in_flight >= MAX_EXCHANGES_IN_FLIGHT:
            raise PairingThrottledError("the panel is busy with another pairing", IN_FLIGHT_RETRY_S)
        if not budget.starts.take(now):
            raise PairingThrottledError(
                "too many pairing attempts on this panel", budget.starts.wait_s(now)
            )
        budget.in_flight += 1

    def computed(self, role: Role) -> None:
        """The exchange :meth:`admit` let through was computed (or failed to be)."""
        budget = self._roles[role]
        budget.in_flight = max(0, budget.in_flight - 1)

    def in_flight(self, role: Role) -> int:
        """Exchanges of ``role`` being computed now."""
        return self._roles[role].in_flight

    # ----------------------------------------------------------------- pair_confirm

    def check_source(self, role: Role, source: str, now: float) -> None:
        """Before checking a confirmation: refuse a source locked since its ``pair_start``.

        Raises:
            PairingLockedError: ``source`` made too many wrong tries for ``role``.
        """
        src = self._roles[role].source(source, now)
        if src.failures.reached(now):
            raise PairingLockedError(src.failures.wait_s(now))

    def failed(self, role: Role, source: str, now: float) -> None:
        """Count a wrong PIN (or admin secret) from ``source``, for it and for everybody."""
        budget = self._roles[role]
        budget.source(source, now).failures.add(now)
        budget.failures.add(now)

    def failures(self, role: Role, source: str | None, now: float) -> float:
        """Wrong tries still counted for ``source`` (None: for everybody)."""
        budget = self._roles[role]
        if source is None:
            return budget.failures.level(now)
        return budget.source(source, now).failures.level(now)

    def needs_panel(self, role: Role, now: float) -> bool:
        """Whether pairing as ``role`` is under attack: a right PIN (or secret) pairs
        only once the panel's user allows it."""
        return self._roles[role].failures.reached(now)

    def succeeded(self, role: Role, source: str, now: float) -> None:
        """A controller paired: give back its ``pair_start`` tokens and show a new PIN.

        Wrong tries stay counted: a source that guessed before cannot wash them away by
        pairing once.
        """
        budget = self._roles[role]
        budget.source(source, now).starts.give_back(now)
        budget.starts.give_back(now)
        self._renew(now)

    def exposed(self, now: float) -> None:
        """A right PIN was refused on the panel (or nobody answered): whoever sent it
        knows the PIN, so show a new one."""
        self._renew(now)


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
        from protocol.spake import SpakeA  # imported once needed: libsodium

        self._spake = SpakeA(secret.encode(), id_a=id_a, id_b=id_b)
        self._ids = id_a + b"|" + id_b
        self._msg_a = b""
        self._key = b""
        self._transcript = b""

    def start(self) -> bytes:
        """The first SPAKE2 message, for ``PairStart``."""
        from protocol.spake import SpakeError

        try:
            self._msg_a = self._spake.start()
        except SpakeError as exc:  # odds 2**-252: try again
            raise PairingError(f"pairing could not start: {exc}; try again") from None
        return self._msg_a

    def finish(self, msg_b: bytes) -> bytes:
        """Take the kiosk's ``PairOffer``; returns the confirmation for ``PairConfirm``.

        Raises:
            PairingError: the kiosk's message is not a valid SPAKE2 message.
        """
        from protocol.spake import SpakeError

        try:
            self._key = self._spake.finish(msg_b)
        except SpakeError as exc:
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


@dataclass(frozen=True, slots=True)
class OfferJob:
    """What the kiosk's SPAKE2 work for one ``pair_start`` needs.

    Plain data, so that :func:`compute_offer` may run in another process.
    """

    secret: str = field(repr=False)
    controller_id: str
    kiosk_id: str
    fingerprint: str
    msg_a: bytes


@dataclass(frozen=True, slots=True)
class OfferKeys:
    """The kiosk's side of one exchange once computed: the ``PairOffer`` message and
    the key to check the controller's ``PairConfirm`` with (cheap, on any thread)."""

    msg_b: bytes
    key: bytes = field(repr=False)
    transcript: bytes = field(repr=False)

    def verify_controller(self, confirm: bytes) -> bytes:
        """Check ``PairConfirm``; returns the kiosk's confirmation for ``Paired``.

        Raises:
            PairingError: wrong PIN (or a relay): count it with ``PairingGuard.failed``.
        """
        expected = _mac(self.key, _CONTROLLER_LABEL, self.transcript)
        if not hmac.compare_digest(expected, confirm):
            raise PairingError("wrong PIN")
        return _mac(self.key, _KIOSK_LABEL, self.transcript)


def compute_offer(job: OfferJob) -> OfferKeys:
    """The kiosk's SPAKE2 work for one ``pair_start`` (SPAKE2 side B).

    Pure CPU, under a millisecond (libsodium): the kiosk runs it in
    a worker thread (:mod:`kiosk.pairing_worker`), never on the network loop.

    Raises:
        PairingError: ``job.msg_a`` is not a valid SPAKE2 message.
    """
    id_a, id_b = _ids(job.controller_id, job.kiosk_id, job.fingerprint)
    from protocol.spake import SpakeB, SpakeError  # imported once needed

    spake = SpakeB(job.secret.encode(), id_a=id_a, id_b=id_b)
    try:
        msg_b = spake.start()
        key = spake.finish(job.msg_a)
    except SpakeError as exc:
        raise PairingError(f"invalid pairing message: {exc}") from None
    return OfferKeys(msg_b, key, id_a + b"|" + id_b + job.msg_a + msg_b)


class KioskPairing:
    """The kiosk's side (SPAKE2 side B), for one pairing attempt, in one object.

    The kiosk itself splits it: :func:`compute_offer` off the loop, then
    :meth:`OfferKeys.verify_controller`.
    """

    def __init__(self, secret: str, *, controller_id: str, kiosk_id: str, fingerprint: str):
        self._job = OfferJob(secret, controller_id, kiosk_id, fingerprint, b"")
        self._keys: OfferKeys | None = None

    def respond(self, msg_a: bytes) -> bytes:
        """Take the controller's ``PairStart``; returns the message for ``PairOffer``.

        Raises:
            PairingError: the controller's message is not a valid SPAKE2 message.
        """
        job = self._job
        self._keys = compute_offer(
            OfferJob(job.secret, job.controller_id, job.kiosk_id, job.fingerprint, msg_a)
        )
        return self._keys.msg_b

    def verify_controller(self, confirm: bytes) -> bytes:
        """Check ``PairConfirm``; returns the kiosk's confirmation for ``Paired``.

        Raises:
            PairingError: wrong PIN (or a relay): count it with ``PairingGuard.failed``.
        """
        if self._keys is None:
            raise PairingError("wrong PIN")
        return self._keys.verify_controller(confirm)


def cert_fingerprint(der: bytes) -> str:
    """The fingerprint of a certificate: sha256 of its DER bytes, lowercase hex."""
    return hashlib.sha256(der).hexdigest()
