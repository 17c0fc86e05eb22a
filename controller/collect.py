"""Usage collection: pull new records from every panel into the school database.

For each panel (saved ones and those found by mDNS), connect with this controller's
admin credentials, ask for the records after the last ``seq`` the school database holds
for that kiosk, verify and store them (:meth:`SchoolDb.ingest`), and repeat while the
kiosk says ``more``. Because the database inserts by uuid and resumes by ``seq``,
running collection again, or after an interruption, loses nothing and duplicates
nothing.

A panel never stops the others, and never stops collection for good:

- a panel that is offline, unpaired, or whose batch cannot be its own (another panel's,
  another signing key) gets an ``error``; nothing of it is stored;
- in a batch, the records that continue the chain are stored up to the first one that
  does not, which is reported (:class:`CollectProblem` ``refused``, naming its ``seq``);
  the next collection stores anything new up to it and stops there again;
- a record the panel signed with unusable values (a time that overflows, a negative
  duration, a clock offset beyond the protocol's bound) is stored quarantined, outside
  the reports, and reported (``invalid``); the chain goes on after it;
- a panel that says ``more`` but sends nothing beyond what is stored (``no_progress``),
  or is still sending after ``MAX_PULLS_PER_PANEL`` batches (``pull_limit``), is named
  and left until the next run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from controller.client import ControllerIdentity, Credentials, KioskClient
from controller.schooldb import IngestResult, InvalidReason, UsageStore
from protocol import limits
from protocol.errors import ClassCastError
from protocol.usage_chain import ProblemKind

__all__ = [
    "MAX_PULLS_PER_PANEL",
    "CollectProblem",
    "CollectionResult",
    "PanelCollection",
    "collect",
    "note_ingest",
]

logger = logging.getLogger(__name__)

CredentialsFor = Callable[[str], Credentials | None]

MAX_PULLS_PER_PANEL: Final = 1_000
"""Batches pulled from one panel in one run: a million records at the full batch size,
far more than a panel logs between two collections. A panel still sending is named
(``pull_limit``); the next run goes on from where this one stopped."""

CollectProblemKind = Literal["refused", "conflict", "invalid", "no_progress", "pull_limit"]


@dataclass(frozen=True, slots=True)
class CollectProblem:
    """Something wrong with one panel's records, found while collecting them.

    ``kind``:

    - ``refused``: record ``seq`` does not continue the stored chain (``cause`` says
      how: edited, deleted, inserted, reordered, bad_signature, foreign); it and
      ``not_stored`` records after it in the batch were not stored;
    - ``conflict``: stored record ``seq`` came back as another record (``cause``
      ``inserted``); nothing was changed;
    - ``invalid``: record ``seq`` was stored quarantined because its ``field`` has the
      unusable ``value`` (``reason``);
    - ``no_progress``: the panel said ``more`` but sent nothing after ``seq``, the
      last record stored;
    - ``pull_limit``: the panel was still sending after ``MAX_PULLS_PER_PANEL``
      batches; ``seq`` is where the next run goes on.

    ``detail`` says it in English, for the log.
    """

    kind: CollectProblemKind
    seq: int
    detail: str
    cause: ProblemKind | None = None
    not_stored: int = 0
    field: str | None = None
    value: str | None = None
    reason: InvalidReason | None = None


@dataclass(slots=True)
class PanelCollection:
    """What collection did for one panel."""

    address: str
    room: str | None = None
    kiosk_id: str | None = None
    added: int = 0
    duplicates: int = 0
    quarantined: int = 0
    pulls: int = 0
    last_seq: int = 0
    error: ClassCastError | None = None
    problems: list[CollectProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether everything went well: no error, no problem."""
        return self.error is None and not self.problems


@dataclass(slots=True)
class CollectionResult:
    panels: list[PanelCollection] = field(default_factory=list)

    @property
    def added(self) -> int:
        return sum(p.added for p in self.panels)

    @property
    def failed(self) -> list[PanelCollection]:
        """Panels with an error or a problem."""
        return [p for p in self.panels if not p.ok]


async def collect(
    db: UsageStore,
    addresses: Sequence[str],
    identity: ControllerIdentity,
    credentials: CredentialsFor,
    *,
    batch_size: int = limits.MAX_USAGE_BATCH,
    timeout_s: float = 10.0,
    concurrency: int = 8,
    max_pulls: int = MAX_PULLS_PER_PANEL,
) -> CollectionResult:
    """Collect from every address; never raises for one panel's failure.

    Panels are contacted concurrently (at most ``concurrency`` at once); inserts into
    ``db`` happen one batch at a time on this thread, each in its own transaction, so
    an interruption keeps every batch already stored. Report each panel's ``error``
    and ``problems`` to the admin.

    Args:
        db: Where to store the records: the school database, or one school in the
            district's database (:class:`controller.district.DistrictSchool`).
        addresses: The panels, as ``HOST:PORT``.
        identity: This controller.
        credentials: The admin credentials for an address (None: not paired).
        batch_size: Records asked for per ``usage_pull``.
        timeout_s: How long to wait for a panel's answer.
        concurrency: Panels contacted at once.
        max_pulls: Batches pulled from one panel in this run.

    Returns:
        One :class:`PanelCollection` per address, in order.
    """
    result = CollectionResult([PanelCollection(a) for a in addresses])
    gate = asyncio.Semaphore(concurrency)

    async def one(panel: PanelCollection) -> None:
        async with gate:
            try:
                await _collect_one(
                    db,
                    panel,
                    identity,
                    credentials(panel.address),
                    batch_size=batch_size,
                    timeout_s=timeout_s,
                    max_pulls=max_pulls,
                )
            except ClassCastError as exc:
                panel.error = exc
            except Exception as exc:  # the one broad catch: one panel never stops the rest
                logger.debug("collecting from %s failed", panel.address, exc_info=True)
                panel.error = ClassCastError(
                    f"collection failed unexpectedly: {type(exc).__name__}: {exc}"
                )

    await asyncio.gather(*(one(p) for p in result.panels))
    return result


async def _collect_one(
    db: UsageStore,
    panel: PanelCollection,
    identity: ControllerIdentity,
    creds: Credentials | None,
    *,
    batch_size: int,
    timeout_s: float,
    max_pulls: int,
) -> None:
    async with await KioskClient.connect(
        panel.address, identity, credentials=creds, timeout_s=timeout_s
    ) as client:
        welcome = client.welcome
        assert welcome is not None
        panel.room, panel.kiosk_id = welcome.room, welcome.kiosk_id
        after = panel.last_seq = db.after_seq(welcome.kiosk_id)
        while panel.pulls < max_pulls:
            batch = await client.usage_pull(after, batch_size)
            panel.pulls += 1
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
            if note_ingest(panel, stored):
                return
            if not batch.more:
                return
            if stored.last_seq <= after:
                panel.problems.append(
                    CollectProblem(
                        "no_progress",
                        after,
                        f"the panel says more records follow #{after} but sent none",
                    )
                )
                return
            after = stored.last_seq
        panel.problems.append(
            CollectProblem(
                "pull_limit",
                after,
                f"still sending after {max_pulls} batches; the next run goes on after #{after}",
            )
        )


def note_ingest(panel: PanelCollection, stored: IngestResult) -> bool:
    """Add what one batch's :meth:`~controller.schooldb.UsageStore.ingest` did to ``panel``
    (counts, chain end, problems); collection and :func:`controller.district.push` both
    keep their tallies this way.

    Returns:
        Whether to stop taking this panel's records: one was refused (its chain stops there).
    """
    panel.added += stored.added
    panel.duplicates += stored.duplicates
    panel.quarantined += len(stored.quarantined)
    panel.last_seq = stored.last_seq
    for invalid in stored.quarantined:
        panel.problems.append(
            CollectProblem(
                "invalid",
                invalid.seq,
                invalid.text,
                field=invalid.field,
                value=invalid.value,
                reason=invalid.reason,
            )
        )
    for conflict in stored.conflicts:
        panel.problems.append(
            CollectProblem("conflict", conflict.seq, conflict.message, cause=conflict.kind)
        )
    if stored.refused is None:
        return False
    refused = stored.refused
    panel.problems.append(
        CollectProblem(
            "refused",
            refused.seq,
            refused.message,
            cause=refused.kind,
            not_stored=stored.not_stored,
        )
    )
    return True
