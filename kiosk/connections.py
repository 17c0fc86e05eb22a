"""Which connections a kiosk keeps: caps, eviction, timeouts and a byte budget; pure.

The websocket adapter (:mod:`kiosk.server`) registers every TCP connection when it is
accepted (:meth:`ConnectionTable.admit`), reports its progress (:meth:`advance`), asks
what has timed out (:meth:`expired`) and forgets it once its socket is closed
(:meth:`forget`). Time is always passed in.

The rules (``docs/security.md``, limits in :mod:`protocol.limits`):

* A connection is *authenticated* once it proved a token (``hello``) or paired. An
  authenticated connection is never evicted and never times out.
* At most ``max_unauthenticated_per_address`` unauthenticated connections from one IP
  address (an IPv6 /64) and ``max_connections`` in all. A newcomer is always let in:
  it makes room by evicting an unauthenticated connection, from its own address when
  that address is at its cap, else from the address that holds the most. The victim
  is one that had sent nothing when it was accepted and has not finished TLS since
  (a real client sends its TLS hello at once), else the one that made progress (TLS
  done, websocket open, ``hello``, ``pair_start``) least recently: an idle or slow
  connection goes before one that is getting somewhere, and a teacher's connection,
  which takes a step every round trip until its ``hello`` proves the token, is the
  last to go. Only when every other connection is authenticated is the newcomer
  refused.
* An unauthenticated connection must authenticate within ``unauthenticated_timeout_s``
  of its accept (``pairing_timeout_s`` while a pairing is under way).
* An unauthenticated connection may send ``unauthenticated_byte_burst`` bytes at once
  and ``unauthenticated_bytes_per_s`` on average (:meth:`charge`).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator
from dataclasses import dataclass, field

from protocol import limits
from protocol.sources import source_of


class Stage(enum.IntEnum):
    """How far a connection got; only ever moves forward, except on unpairing."""

    ACCEPTED = 0
    """TCP accepted; the TLS handshake is under way."""
    SECURED = 1
    """TLS done; the websocket opening handshake is under way."""
    OPEN = 2
    """The websocket is open; no ``hello`` yet."""
    GREETED = 3
    """``hello`` without a valid token."""
    PAIRING = 4
    """A pairing is under way (``pair_start`` answered)."""
    AUTHENTICATED = 5
    """Proved a token or paired: never evicted, no timeout."""


class Cause(enum.StrEnum):
    """Why the table wants a connection closed (also the adapter's log causes)."""

    EVICTED = "evicted"
    """Room was needed for a newer connection."""
    REFUSED = "refused"
    """The kiosk is full of authenticated connections."""
    HANDSHAKE_TIMEOUT = "handshake timeout"
    """Still in its handshakes long after they should have timed out."""
    UNAUTHENTICATED_TIMEOUT = "unauthenticated timeout"
    """Did not prove a token, or finish pairing, in time."""


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The numbers the table and the adapter enforce (defaults: :mod:`protocol.limits`)."""

    max_connections: int = limits.MAX_CONNECTIONS
    max_unauthenticated_per_address: int = limits.MAX_UNAUTHENTICATED_PER_ADDRESS
    handshake_timeout_s: float = limits.HANDSHAKE_TIMEOUT_S
    unauthenticated_timeout_s: float = limits.UNAUTHENTICATED_TIMEOUT_S
    pairing_timeout_s: float = limits.PAIRING_TIMEOUT_S
    max_unauthenticated_frame_bytes: int = limits.MAX_UNAUTHENTICATED_FRAME_BYTES
    unauthenticated_bytes_per_s: float = limits.UNAUTHENTICATED_BYTES_PER_SECOND
    unauthenticated_byte_burst: int = limits.UNAUTHENTICATED_BYTE_BURST
    max_send_backlog_messages: int = limits.MAX_SEND_BACKLOG_MESSAGES
    max_send_backlog_bytes: int = limits.MAX_SEND_BACKLOG_BYTES
    send_buffer_bytes: int = limits.SEND_BUFFER_BYTES
    close_timeout_s: float = limits.CLOSE_TIMEOUT_S


@dataclass(slots=True)
class _Entry:
    key: int
    address: str
    accepted_at: float
    progressed_at: float
    unauthenticated_since: float
    silent: bool = False
    """Nothing had arrived when it was accepted (a client sends its TLS hello at once)."""
    stage: Stage = Stage.ACCEPTED
    budget: float = 0.0
    budget_at: float = 0.0
    doomed: bool = False
    """Told to close (evicted or timed out): no longer counted against the caps."""


@dataclass(slots=True)
class ConnectionTable:
    """Every connection of a kiosk by key (the adapter uses the socket's descriptor)."""

    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    _entries: dict[int, _Entry] = field(default_factory=dict)
    _by_address: dict[str, dict[int, _Entry]] = field(default_factory=dict)
    """Live unauthenticated entries per address."""
    _live: int = 0
    """Entries not doomed."""

    def __len__(self) -> int:
        """Connections held, doomed ones included (each holds a socket until it closes)."""
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._entries))

    @property
    def live(self) -> int:
        """Connections counted against the caps (not told to close)."""
        return self._live

    def unauthenticated(self, address: str) -> int:
        """Live unauthenticated connections from ``address`` (its /64 for IPv6)."""
        return len(self._by_address.get(source_of(address), ()))

    def stage(self, key: int) -> Stage | None:
        entry = self._entries.get(key)
        return entry.stage if entry else None

    def admit(
        self, key: int, address: str, now: float, *, silent: bool = False
    ) -> list[tuple[int, Cause]]:
        """Register a connection from IP ``address`` accepted at ``now``.

        ``silent``: no byte had arrived yet (such connections are dropped first).
        Returns the connections to drop: the caller must close each (the newcomer
        itself only with :attr:`Cause.REFUSED`) and, as for every connection, call
        :meth:`forget` once its socket is closed.
        """
        address = source_of(address)
        budget = float(self.limits.unauthenticated_byte_burst)
        entry = _Entry(key, address, now, now, now, silent=silent, budget=budget, budget_at=now)
        self._entries[key] = entry
        self._live += 1
        self._by_address.setdefault(address, {})[key] = entry
        drop: list[tuple[int, Cause]] = []
        if self.unauthenticated(address) > self.limits.max_unauthenticated_per_address:
            victim = self._victim(address, key)
            if victim is not None:
                drop.append((victim.key, Cause.EVICTED))
                self._doom(victim)
        if self._live > self.limits.max_connections:
            victim = self._victim(self._busiest(key), key)
            if victim is None:
                drop.append((key, Cause.REFUSED))
                self._doom(entry)
            else:
                drop.append((victim.key, Cause.EVICTED))
                self._doom(victim)
        return drop

    def advance(self, key: int, stage: Stage, now: float) -> None:
        """Record that connection ``key`` reached ``stage`` at ``now``.

        Moving forward counts as progress; going back from authenticated (unpairing)
        starts the unauthenticated clock again.
        """
        entry = self._entries.get(key)
        if entry is None or entry.stage == stage:
            return
        if entry.stage == Stage.AUTHENTICATED and not entry.doomed:
            entry.unauthenticated_since = now
            entry.budget, entry.budget_at = float(self.limits.unauthenticated_byte_burst), now
            self._by_address.setdefault(entry.address, {})[key] = entry
        if stage > entry.stage:
            entry.progressed_at = now
            entry.silent = False
        entry.stage = stage
        if stage == Stage.AUTHENTICATED:
            self._unlist(entry)

    def forget(self, key: int) -> None:
        """Connection ``key``'s socket is closed."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        if not entry.doomed:
            self._live -= 1
        self._unlist(entry)

    def deadline(self, key: int) -> float:
        """When connection ``key`` times out (``inf``: never, or unknown)."""
        entry = self._entries.get(key)
        return self._deadline(entry) if entry is not None else float("inf")

    def expired(self, now: float) -> list[tuple[int, Cause]]:
        """Connections whose time is up at ``now``; the caller must close each."""
        out = []
        for entry in self._entries.values():
            if not entry.doomed and self._deadline(entry) <= now:
                cause = (
                    Cause.HANDSHAKE_TIMEOUT
                    if entry.stage < Stage.OPEN
                    else Cause.UNAUTHENTICATED_TIMEOUT
                )
                out.append((entry.key, cause))
        for key, _ in out:
            self._doom(self._entries[key])
        return out

    def next_deadline(self) -> float:
        """The earliest time :meth:`expired` may return something (``inf``: never)."""
        return min(
            (self._deadline(e) for e in self._entries.values() if not e.doomed),
            default=float("inf"),
        )

    def charge(self, key: int, size_bytes: int, now: float) -> bool:
        """Take ``size_bytes`` from an unauthenticated connection's byte budget.

        Returns False when the budget is spent: the caller must close the connection.
        Authenticated (and unknown) connections are not charged.
        """
        entry = self._entries.get(key)
        if entry is None or entry.stage == Stage.AUTHENTICATED:
            return True
        entry.budget = min(
            float(self.limits.unauthenticated_byte_burst),
            entry.budget + (now - entry.budget_at) * self.limits.unauthenticated_bytes_per_s,
        )
        entry.budget_at = now
        if size_bytes > entry.budget:
            return False
        entry.budget -= size_bytes
        return True

    # ----------------------------------------------------------------- internals

    def _deadline(self, entry: _Entry) -> float:
        lim = self.limits
        match entry.stage:
            case Stage.AUTHENTICATED:
                return float("inf")
            case Stage.ACCEPTED | Stage.SECURED:
                # TLS and then the opening handshake each time out on their own; this
                # only catches a connection whose socket was lost without a close.
                return min(
                    entry.accepted_at + 2 * lim.handshake_timeout_s + lim.close_timeout_s,
                    entry.unauthenticated_since + lim.unauthenticated_timeout_s,
                )
            case Stage.PAIRING:
                return entry.unauthenticated_since + lim.pairing_timeout_s
            case _:
                return entry.unauthenticated_since + lim.unauthenticated_timeout_s

    def _victim(self, address: str, newcomer: int) -> _Entry | None:
        """Who makes room at ``address``: one that sent nothing, oldest first; else the
        one that made progress least recently."""
        candidates = self._by_address.get(address, {})
        return min(
            (e for e in candidates.values() if e.key != newcomer),
            key=lambda e: (not e.silent, e.accepted_at if e.silent else e.progressed_at),
            default=None,
        )

    def _busiest(self, newcomer: int) -> str:
        """The address with the most live unauthenticated connections besides ``newcomer``."""

        def weight(address: str) -> int:
            entries = self._by_address[address]
            return len(entries) - (newcomer in entries)

        return max(self._by_address, key=weight, default="")

    def _doom(self, entry: _Entry) -> None:
        entry.doomed = True
        self._live -= 1
        self._unlist(entry)

    def _unlist(self, entry: _Entry) -> None:
        listed = self._by_address.get(entry.address)
        if listed is not None and listed.pop(entry.key, None) is not None and not listed:
            del self._by_address[entry.address]


FD_RESERVE = 256
"""Descriptors kept for everything but connections (SQLite, the browser, X11...)."""


def fit_to_open_files(limits: ConnectionLimits, open_files: int) -> ConnectionLimits:
    """``limits`` with ``max_connections`` lowered so that connections never exhaust
    ``open_files`` descriptors: each connection holds one, and as many again may be
    closing; FD_RESERVE stay for the rest of the kiosk."""
    room = max(1, (open_files - FD_RESERVE) // 2)
    if room >= limits.max_connections:
        return limits
    return dataclasses.replace(limits, max_connections=room)
