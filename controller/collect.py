"""Usage collection: pull new records from every panel into the school database.

For each panel (saved ones and those found by mDNS), connect with this controller's
admin credentials, ask for the records after the last ``seq`` the school database holds
for that kiosk, verify and insert them, and repeat while the kiosk says ``more``. A
panel that is offline, unpaired, or sends a batch that does not verify is reported and
skipped; the others are still collected. Because the database inserts by uuid and
resumes by ``seq``, running collection again, or after an interruption, loses nothing
and duplicates nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from controller.client import ControllerIdentity, Credentials, KioskClient
from controller.schooldb import SchoolDb
from protocol import limits
from protocol.errors import ClassCastError

CredentialsFor = Callable[[str], Credentials | None]


@dataclass(slots=True)
class PanelCollection:
    """What collection did for one panel."""

    address: str
    room: str | None = None
    kiosk_id: str | None = None
    added: int = 0
    duplicates: int = 0
    last_seq: int = 0
    error: ClassCastError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class CollectionResult:
    panels: list[PanelCollection] = field(default_factory=list)

    @property
    def added(self) -> int:
        return sum(p.added for p in self.panels)

    @property
    def failed(self) -> list[PanelCollection]:
        return [p for p in self.panels if not p.ok]


async def collect(
    db: SchoolDb,
    addresses: Sequence[str],
    identity: ControllerIdentity,
    credentials: CredentialsFor,
    *,
    batch_size: int = limits.MAX_USAGE_BATCH,
    timeout_s: float = 10.0,
    concurrency: int = 8,
) -> CollectionResult:
    """Collect from every address; never raises for one panel's failure.

    Panels are contacted concurrently (at most ``concurrency`` at once); inserts into
    ``db`` happen one batch at a time on this thread, each in its own transaction, so
    an interruption keeps every batch already stored.
    """
    result = CollectionResult([PanelCollection(a) for a in addresses])
    gate = asyncio.Semaphore(concurrency)

    async def one(panel: PanelCollection) -> None:
        async with gate:
            try:
                await _collect_one(
                    db, panel, identity, credentials(panel.address), batch_size, timeout_s
                )
            except ClassCastError as exc:
                panel.error = exc

    await asyncio.gather(*(one(p) for p in result.panels))
    return result


async def _collect_one(
    db: SchoolDb,
    panel: PanelCollection,
    identity: ControllerIdentity,
    creds: Credentials | None,
    batch_size: int,
    timeout_s: float,
) -> None:
    async with await KioskClient.connect(
        panel.address, identity, credentials=creds, timeout_s=timeout_s
    ) as client:
        welcome = client.welcome
        assert welcome is not None
        panel.room, panel.kiosk_id = welcome.room, welcome.kiosk_id
        after = db.after_seq(welcome.kiosk_id)
        while True:
            batch = await client.usage_pull(after, batch_size)
            if batch.kiosk_id != welcome.kiosk_id:
                raise ClassCastError(
                    f"{welcome.room}: the batch names kiosk {batch.kiosk_id}, "
                    f"not {welcome.kiosk_id}",
                    code="bad_batch",
                )
            stored = db.ingest(
                welcome.kiosk_id,
                batch,
                room=welcome.room,
                school=welcome.school,
                address=panel.address,
            )
            panel.added += stored.added
            panel.duplicates += stored.duplicates
            panel.last_seq = stored.last_seq
            after = max(after, batch.last_seq)
            if not batch.more or not batch.records:
                return
