"""``Group``: the same request to many kiosks at once.

Each method runs the request on every kiosk concurrently and returns one outcome per
kiosk (the result, or the exception that kiosk raised), so one offline panel never
stops a broadcast to the others.

A synchronised start (``Group.cast``): first every kiosk receives the lesson's media
with ``prepare``; then every kiosk gets ``cast`` with the same ``start_at_ms`` a short
lead in the future, so all panels switch together however long each transfer took.
A group control (``Group.control`` on more than one kiosk) is sent the same way, with
one ``at_ms``. The lead (:meth:`Group.lead_ms`) comes from the group's round trips,
measured with ``time_ping`` just before (which also gives each kiosk's clock offset),
plus what a panel needs to prepare the item; each kiosk converts the instant to its own
clock, prepares the item while it keeps showing what it shows, and flips at the
instant. A kiosk that got the instant too late says so: ``CastResult.late_ms``, or the
late ms as the value of a control's outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from controller.client import (
    CastResult,
    ControllerIdentity,
    Credentials,
    KioskClient,
    ProgressCallback,
    control_all,
)
from media.lesson import Lesson
from protocol import limits
from protocol.errors import ClassCastError
from protocol.messages import ControlAction, ItemKind, StatusSnapshot

T = TypeVar("T")

SYNC_ROUND_TRIPS = 4
"""The lead covers this many of the group's measured round trips: the ``cast`` or
``control`` reaching the last kiosk (the controller writes to the kiosks one after
another), and room for a slower round than the one measured."""

SYNC_MIN_LEAD_MS = 150
"""The shortest lead, however fast the network: a panel busy drawing or decoding may
take a while to read the command (a teacher does not notice 0.15 s)."""

SYNC_MAX_LEAD_MS = limits.MAX_INSTANT_AHEAD_MS // 2
"""The longest lead: half of what a kiosk accepts, so that a clock offset measured a
little wrong never makes a kiosk refuse the instant."""

SYNC_PREPARE_MS: dict[ItemKind, int] = {
    "text": 200,
    "image": 300,
    "pdf": 400,
    "video": 500,
    "web": 400,
}
"""What a panel needs to prepare the first item of a synchronised start before the
instant (lay out a slide, decode a picture or page; open a video and reach its first
picture), by kind. Measured (bench.sync): a text slide on a busy panel took over
0.1 s for a few panels; a start comes after the media's transfer, so a little more
lead is not noticed."""

SYNC_CONTROL_PREPARE_MS: dict[ControlAction, int] = {"next": 200, "prev": 300, "goto": 300}
"""What a panel needs before a group control's instant: ``next`` goes to the item built
ahead, but a video still has to open and reach its first picture; ``prev`` and ``goto``
may go to an item not built yet; 0 for the others."""


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """The result of a request on one kiosk, or the error it raised."""

    target: str
    value: T | None = None
    error: ClassCastError | TimeoutError | None = None
    room: str | None = None

    @property
    def label(self) -> str:
        """The panel's room when known, else its address."""
        return self.room or self.target

    @property
    def ok(self) -> bool:
        return self.error is None


class Group:
    """Several connected kiosks addressed as one; build it with :meth:`connect`."""

    def __init__(self, clients: dict[str, KioskClient], failed: dict[str, ClassCastError]) -> None:
        self.clients = clients
        self.failed = failed

    @classmethod
    async def connect(
        cls,
        addresses: Sequence[str],
        identity: ControllerIdentity,
        *,
        credentials: Callable[[str], Credentials | None] | None = None,
        timeout_s: float = 10.0,
    ) -> Group:
        """Connect to every address concurrently; unreachable ones land in :attr:`failed`.

        ``credentials`` maps an address to what pairing gave for that kiosk.
        """

        async def one(address: str) -> KioskClient:
            creds = credentials(address) if credentials is not None else None
            return await KioskClient.connect(
                address, identity, credentials=creds, timeout_s=timeout_s
            )

        results = await asyncio.gather(*(one(a) for a in addresses), return_exceptions=True)
        clients: dict[str, KioskClient] = {}
        failed: dict[str, ClassCastError] = {}
        for address, result in zip(addresses, results, strict=True):
            if isinstance(result, KioskClient):
                clients[address] = result
            elif isinstance(result, ClassCastError):
                failed[address] = result
            else:
                raise result
        return cls(clients, failed)

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients.values()))

    async def cast(
        self,
        lesson: Lesson,
        *,
        start_index: int = 0,
        progress: Callable[[str], ProgressCallback | None] | None = None,
    ) -> list[Outcome[CastResult]]:
        """Send ``lesson`` to every kiosk and start it everywhere at the same moment.

        With one kiosk this is a plain ``cast``. ``progress`` maps a target to its
        progress callback.
        """

        def cb(target: str) -> ProgressCallback | None:
            return progress(target) if progress is not None else None

        if len(self.clients) == 1:
            return await self._each(
                lambda t, c: c.cast(lesson, start_index=start_index, progress=cb(t))
            )
        prepared = await self._each(lambda t, c: c.prepare(lesson, progress=cb(t)))
        ready = [o.target for o in prepared if o.ok]
        kind = lesson.items[start_index].kind if 0 <= start_index < len(lesson.items) else "text"
        lead_ms = await self.lead_ms(SYNC_PREPARE_MS[kind], only=ready)
        start_at_ms = int(time.time() * 1000) + lead_ms
        started = await self._each(
            lambda t, c: c.cast(lesson, start_index=start_index, start_at_ms=start_at_ms),
            only=ready,
        )
        # Return once the panels have switched, so that a control right after is not early.
        await self._each(
            lambda t, c: c.wait_for_status(lambda s: s.state != "loading"),
            only=[o.target for o in started if o.ok],
        )
        sent = {o.target: o.value for o in prepared if o.value is not None}
        merged = [
            Outcome(o.target, value=_add(sent[o.target], o.value), room=o.room) if o.value else o
            for o in started
        ]
        return merged + [o for o in prepared if not o.ok]

    async def control(
        self,
        action: ControlAction,
        *,
        index: int | None = None,
        position_ms: int | None = None,
        volume: int | None = None,
        together: bool = True,
    ) -> list[Outcome[int | None]]:
        """Apply one control command on every kiosk, at one instant when there are
        several (unless ``together`` is False: each as soon as it arrives); returns once
        every kiosk applied it.

        The same frame goes to every kiosk (:func:`controller.client.control_all`; with
        an instant, one per kiosk: each in its own clock); a kiosk that fails or does
        not answer in time gets its error, the others their ``ok``.

        Returns:
            One outcome per kiosk; its value is how many ms late that kiosk got the
            instant (it applied the control at once): tell the user; None when on time.
        """
        at_ms = None
        if together and len(self.clients) > 1:
            lead_ms = await self.lead_ms(SYNC_CONTROL_PREPARE_MS.get(action, 0))
            at_ms = int(time.time() * 1000) + lead_ms
        targets = list(self.clients)
        clients = [self.clients[t] for t in targets]
        results = await control_all(
            clients, action, index=index, position_ms=position_ms, volume=volume, at_ms=at_ms
        )
        outcomes: list[Outcome[int | None]] = [
            Outcome(t, error=r, room=c.name)
            if isinstance(r, ClassCastError)
            else Outcome(t, value=r, room=c.name)
            for t, c, r in zip(targets, clients, results, strict=True)
        ]
        if at_ms is not None:
            # Return once applied (each kiosk's instant is within half a round trip of
            # ours), so that a control right after is not early.
            rtt_s = max((c.round_trip_ms or 0.0 for c in clients), default=0.0) / 1000
            await asyncio.sleep(max(0.0, at_ms / 1000 + rtt_s - time.time()))
        return outcomes + [Outcome(t, error=e) for t, e in self.failed.items()]

    async def lead_ms(self, prepare_ms: int, *, only: Sequence[str] | None = None) -> int:
        """How far ahead to schedule an instant for every kiosk (or those in ``only``).

        Measures each kiosk's clock offset (``time_ping``, all at once, kept by each
        :class:`KioskClient` for the ``cast`` or ``control`` that follows) and times the
        whole round, which includes this computer's cost of reaching every kiosk.

        Returns:
            :data:`SYNC_ROUND_TRIPS` group round trips plus ``prepare_ms``, within
            :data:`SYNC_MIN_LEAD_MS` and :data:`SYNC_MAX_LEAD_MS`.
        """
        samples = 3
        started_s = time.monotonic()
        await self._each(lambda t, c: c.measure_clock_offset(samples), only=only)
        round_ms = (time.monotonic() - started_s) * 1000 / samples
        lead = SYNC_ROUND_TRIPS * round_ms + prepare_ms
        return round(min(max(lead, SYNC_MIN_LEAD_MS), SYNC_MAX_LEAD_MS))

    async def each(
        self,
        fn: Callable[[KioskClient], Awaitable[T]],
        *,
        only: Sequence[str] | None = None,
    ) -> list[Outcome[T]]:
        """Run ``fn`` on every kiosk (or those in ``only``) concurrently; one outcome
        per kiosk."""
        return await self._each(lambda t, c: fn(c), only=only)

    async def status(self) -> list[Outcome[StatusSnapshot]]:
        return await self._each(lambda t, c: c.status())

    async def _each(
        self,
        fn: Callable[[str, KioskClient], Awaitable[T]],
        only: Sequence[str] | None = None,
    ) -> list[Outcome[T]]:
        """Run ``fn`` on every kiosk (or those in ``only``) concurrently.

        Kiosks that could not be connected are reported as failed unless ``only`` is given.
        """
        targets = [t for t in self.clients if only is None or t in only]

        async def run(target: str) -> Outcome[T]:
            client = self.clients[target]
            try:
                return Outcome(target, value=await fn(target, client), room=client.name)
            except (ClassCastError, TimeoutError) as exc:
                return Outcome(target, error=exc, room=client.name)

        outcomes = list(await asyncio.gather(*(run(t) for t in targets)))
        if only is None:
            outcomes += [Outcome(t, error=e) for t, e in self.failed.items()]
        return outcomes


def _add(prepared: CastResult, cast: CastResult) -> CastResult:
    """What a prepare and the cast after it sent, together."""
    return CastResult(
        blobs_sent=prepared.blobs_sent + cast.blobs_sent,
        bytes_sent=prepared.bytes_sent + cast.bytes_sent,
        bytes_total=cast.bytes_total,
    )
