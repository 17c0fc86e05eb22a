"""``Group``: the same request to many kiosks at once.

Each method runs the request on every kiosk concurrently and returns one outcome per
kiosk (the result, or the exception that kiosk raised), so one offline panel never
stops a broadcast to the others.

A synchronised start (``Group.cast``): first every kiosk receives the lesson's media
with ``prepare``; then every kiosk gets ``cast`` with the same ``start_at_ms`` a short
lead in the future, so all panels switch together however long each transfer took.
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
from protocol.errors import ClassCastError
from protocol.messages import ControlAction, StatusSnapshot

T = TypeVar("T")

SYNC_LEAD_MS = 300
"""How far ahead a synchronised start is scheduled, after every kiosk has the media."""


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
        start_at_ms = int(time.time() * 1000) + SYNC_LEAD_MS
        started = await self._each(
            lambda t, c: c.cast(lesson, start_index=start_index, start_at_ms=start_at_ms),
            only=[o.target for o in prepared if o.ok],
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
    ) -> list[Outcome[None]]:
        """Apply one control command on every kiosk; returns when all answered.

        The same frame goes to every kiosk (:func:`controller.client.control_all`); a
        kiosk that fails or does not answer in time gets its error, the others their
        ``ok``.
        """
        targets = list(self.clients)
        clients = [self.clients[t] for t in targets]
        errors = await control_all(
            clients, action, index=index, position_ms=position_ms, volume=volume
        )
        outcomes: list[Outcome[None]] = [
            Outcome(t, error=e, room=c.name)
            for t, c, e in zip(targets, clients, errors, strict=True)
        ]
        return outcomes + [Outcome(t, error=e) for t, e in self.failed.items()]

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
