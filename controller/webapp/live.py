"""What the teacher's app keeps live: the panels of the school and the teacher's cast.

:class:`Hub` keeps one connection open to every paired panel (as ``classcast status
--watch`` does), takes the status each kiosk pushes, and — only while a page is
looking (:attr:`Hub.viewers` > 0) — a small screenshot now and then, kept only when
its bytes changed. Each change bumps :attr:`Hub.version` and wakes the server-sent
event streams, which send a fragment only when its HTML changed.

:class:`TeacherCast` is the teacher's current cast: its panels, lesson, per-panel
progress and errors; it sends controls over the hub's open connections (no connect
per click). The phone remote drives the same object.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from controller.client import CastResult, KioskClient, ProgressCallback
from controller.discovery import ZeroconfDiscovery
from controller.group import Outcome
from controller.home import PanelRow
from controller.i18n import t
from controller.texts import late_text
from controller.webapp.backend import Backend, error_text
from controller.webapp.remote import RemoteView
from media.lesson import Lesson
from protocol.discovery import KioskFound
from protocol.errors import ClassCastError, NoScreenError
from protocol.messages import ControlAction, StatusSnapshot

logger = logging.getLogger(__name__)

RECONNECT_S: Final = 5.0
"""How often a paired panel that went away is tried again."""

THUMBNAIL_WIDTH: Final = 480
"""Width of the screenshots the app asks for (as ``classcast status --thumbnail``)."""

CAST_SHOT_INTERVAL_S: Final = 1.0
"""How often the picture of a panel the teacher casts to is refreshed while visible."""

PANEL_SHOT_INTERVAL_S: Final = 10.0
"""How often the thumbnail of any other paired panel is refreshed while visible."""

CACHE_REFRESH_S: Final = 10.0
"""How often a panel is asked for its status while a page is visible: its media cache's
use comes only in a ``get_status`` reply (pushed statuses leave it out)."""

ROWS_REFRESH_S: Final = 30.0
"""How often saved panels and mDNS adverts are merged again without a change."""


@dataclass(slots=True)
class PanelLink:
    """One paired panel, as the hub sees it."""

    address: str
    room: str | None = None
    client: KioskClient | None = None
    status: StatusSnapshot | None = None
    online: bool = False
    error: str | None = None
    shot: bytes | None = None
    """The last screenshot (PNG), or ``None``."""
    shot_tag: str = ""
    """A short hash of :attr:`shot`: changes only when the picture does."""
    no_screen: bool = False
    seen_at: float | None = None
    """When the panel was last heard from (wall clock, seconds since the epoch), or
    ``None`` when it never answered since the app started."""
    cache_used_bytes: int = 0
    cache_quota_bytes: int = 0
    """The panel's media cache, from its last ``get_status`` reply (0: not known yet);
    pushed statuses do not carry it, so :attr:`status` never does."""
    cache_asked_s: float = float("-inf")
    """When (monotonic clock) the status with the cache's use was last asked for."""
    task: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    tried: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the first connection attempt is over (connected or failed)."""


class Hub:
    """The panels of the school, kept live; ``await start()``, ``await stop()``."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.rows: list[PanelRow] = []
        self.links: dict[str, PanelLink] = {}
        self.found: list[KioskFound] = []
        self.version = 0
        self.viewers = 0
        self.mdns_error: str | None = None
        self.cast_targets: set[str] = set()
        self.closing = False
        """Set when the server shuts down: event streams end."""
        self._changed = asyncio.Condition()
        self._visible = asyncio.Event()
        self._discovery: ZeroconfDiscovery | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._refresh = asyncio.Event()
        self._rows_lock = asyncio.Lock()
        self.cache_refresh_s = CACHE_REFRESH_S
        """:data:`CACHE_REFRESH_S`; tests shorten it."""

    # ----------------------------------------------------------------- lifetime

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._rows_loop(), name="app rows"))

    async def stop(self) -> None:
        tasks = self._tasks + [link.task for link in self.links.values() if link.task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for link in self.links.values():
            if link.client is not None:
                with contextlib.suppress(Exception):
                    await link.client.close()

    # ----------------------------------------------------------------- changes

    def changed(self) -> None:
        """Something shown changed: wake every event stream."""
        self.version += 1

        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        task = asyncio.ensure_future(notify())
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    async def wait_for_change(self, since: int, timeout_s: float) -> int:
        """Wait until :attr:`version` passes ``since`` (or ``timeout_s``); return it."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.version != since), timeout_s
                )
        return self.version

    def close_streams(self) -> None:
        """End every event stream (the server is shutting down)."""
        self.closing = True
        self.changed()

    def viewer_joined(self) -> None:
        self.viewers += 1
        self._visible.set()
        for link in self.links.values():
            link.wake.set()

    def viewer_left(self) -> None:
        self.viewers = max(0, self.viewers - 1)
        if self.viewers == 0:
            self._visible.clear()

    def refresh_rows(self) -> None:
        """Merge saved panels and adverts again now (after pairing, adding a panel)."""
        self._refresh.set()

    def watch_closely(self, targets: list[str]) -> None:
        """Refresh the pictures of ``targets`` (the cast's panels) often."""
        self.cast_targets = set(targets)
        for address in targets:
            link = self.links.get(address)
            if link is not None:
                link.wake.set()

    # ----------------------------------------------------------------- rows

    async def _rows_loop(self) -> None:
        discovery = self.backend.discovery()
        if discovery is not None:
            discovery.on_change = lambda event: self._refresh.set()
            try:
                await discovery.__aenter__()
                self._discovery = discovery
            except OSError as exc:
                self.mdns_error = str(exc)
        try:
            while True:
                try:
                    await self._update_rows()
                except Exception:  # the one broad catch of this loop: the list stays up
                    logger.exception("could not list the panels")
                self._refresh.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._refresh.wait(), ROWS_REFRESH_S)
                await asyncio.sleep(0.1)  # let a burst of adverts settle
        finally:
            if self._discovery is not None:
                with contextlib.suppress(Exception):
                    await self._discovery.__aexit__(None, None, None)

    async def _update_rows(self) -> None:
        async with self._rows_lock:
            await self._update_rows_locked()

    async def _update_rows_locked(self) -> None:
        found = list(self._discovery.found.values()) if self._discovery is not None else []
        self.found = found
        rows = await self.backend.panel_rows(found)
        wanted = {
            r.address for r in rows if r.usable and self.backend.credentials(r.address) is not None
        }
        for address in list(self.links):
            if address not in wanted:
                link = self.links.pop(address)
                if link.task is not None:
                    link.task.cancel()
        for address in wanted - set(self.links):
            link = PanelLink(address)
            link.task = asyncio.create_task(self._watch(link), name=f"app watch {address}")
            self.links[address] = link
        if rows != self.rows:
            self.rows = rows
            self.changed()

    # ----------------------------------------------------------------- one panel

    async def _watch(self, link: PanelLink) -> None:
        while True:
            try:
                async with await self.backend.connect(link.address) as client:
                    link.client, link.room = client, client.name
                    link.online, link.error = True, None
                    link.status = client.last_status
                    client.on_status = lambda s: self._seen(link, s)
                    self._seen(link, await client.status())
                    link.tried.set()
                    await self._shots(link, client)
            except (ClassCastError, TimeoutError) as exc:
                link.error = error_text(exc, link.room or link.address)
            except Exception:  # one broad catch per watcher: log it and try again
                logger.exception("watching %s failed", link.address)
                link.error = t("The panel is offline.")
            finally:
                link.client = None
                link.tried.set()
            if link.online:
                link.online = False
                self.changed()
            await asyncio.sleep(RECONNECT_S)

    async def wait_for_links(self, addresses: list[str], timeout_s: float) -> None:
        """Wait until the first connection attempt to each of ``addresses`` is over
        (a panel paired a moment ago may still be connecting), at most ``timeout_s``."""
        if any(a not in self.links for a in addresses):
            await self._update_rows()  # paired a moment ago: its watcher starts now
        events = [self.links[a].tried.wait() for a in addresses if a in self.links]
        if events:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*events), timeout_s)

    def _seen(self, link: PanelLink, status: StatusSnapshot) -> None:
        link.seen_at = time.time()
        if status.cache_quota_bytes > 0:  # a get_status reply: the cache's use with it
            if (status.cache_used_bytes, status.cache_quota_bytes) != (
                link.cache_used_bytes,
                link.cache_quota_bytes,
            ):
                link.cache_used_bytes = status.cache_used_bytes
                link.cache_quota_bytes = status.cache_quota_bytes
                self.changed()
            status = dataclasses.replace(status, cache_used_bytes=0, cache_quota_bytes=0)
        if status != link.status:
            link.status = status
            link.wake.set()  # the picture probably changed too
            self.changed()

    async def _shots(self, link: PanelLink, client: KioskClient) -> None:
        """Take screenshots while a page looks; return when the connection closes."""
        while True:
            interval = (
                CAST_SHOT_INTERVAL_S if link.address in self.cast_targets else PANEL_SHOT_INTERVAL_S
            )
            now = time.monotonic()
            if self.viewers > 0 and now - link.cache_asked_s >= self.cache_refresh_s:
                link.cache_asked_s = now
                self._seen(link, await client.status())  # the cache's use comes only so
            if self.viewers > 0 and not link.no_screen:
                try:
                    png = await client.screenshot(max_width=THUMBNAIL_WIDTH)
                except NoScreenError:
                    link.no_screen = True
                    self.changed()
                else:
                    tag = hashlib.sha256(png).hexdigest()[:16]
                    if tag != link.shot_tag:
                        link.shot, link.shot_tag = png, tag
                        self.changed()
            link.wake.clear()
            wait = asyncio.ensure_future(link.wake.wait())
            closed = asyncio.ensure_future(client.wait_closed())
            visible = asyncio.ensure_future(self._visible.wait())
            waits: set[asyncio.Future[Any]] = {wait, closed}
            if self.viewers == 0:
                waits.add(visible)
            try:
                done, _ = await asyncio.wait(
                    waits,
                    timeout=interval if self.viewers else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                for fut in (wait, closed, visible):
                    if not fut.done():
                        fut.cancel()
            if closed in done:
                return
            if wait in done:
                await asyncio.sleep(0.15)  # let the panel draw what it was told to


Phase = Literal["idle", "sending", "showing", "failed"]


class CastControlError(ClassCastError):
    """A control of the current cast failed on some panel, or nothing is cast (the
    teacher's side); ``str(exc)`` is the message, in the teacher's language."""

    code = "cast_control"


@dataclass(slots=True)
class PanelProgress:
    """How a cast is going on one panel."""

    address: str
    room: str
    done_bytes: int = 0
    total_bytes: int = 0
    error: str | None = None
    finished: bool = False

    @property
    def percent(self) -> int:
        if self.total_bytes <= 0:
            return 100 if self.finished else 0
        return min(100, round(100 * self.done_bytes / self.total_bytes))


class TeacherCast:
    """The teacher's current cast: what the page's controls (and the phone) act on."""

    def __init__(self, backend: Backend, hub: Hub) -> None:
        self.backend = backend
        self.hub = hub
        self.targets: list[str] = []
        self.lesson: Lesson | None = None
        self.lesson_key: str | None = None
        self.phase: Phase = "idle"
        self.progress: dict[str, PanelProgress] = {}
        self.messages: list[str] = []
        self._task: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- views

    def room(self, address: str) -> str:
        link = self.hub.links.get(address)
        if link is not None and link.room:
            return link.room
        row = next((r for r in self.hub.rows if r.address == address), None)
        return row.room if row is not None and row.room else address

    def lead_status(self) -> StatusSnapshot | None:
        """The status of the first panel of the cast that answers."""
        for address in self.targets:
            link = self.hub.links.get(address)
            if link is not None and link.status is not None:
                return link.status
        return None

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    # ----------------------------------------------------------------- cast

    def start(self, lesson: Lesson, lesson_key: str, targets: list[str], start_index: int) -> None:
        """Send ``lesson`` to ``targets`` and start it in sync; progress shows live.

        Returns at once; the cast runs in a task the page follows through the hub.
        """
        if self.busy:
            raise RuntimeError("a cast is already being sent")
        self.lesson, self.lesson_key, self.targets = lesson, lesson_key, list(targets)
        self.phase = "sending"
        self.messages = []
        self.progress = {a: PanelProgress(a, self.room(a)) for a in targets}
        self.hub.watch_closely(self.targets)
        self._task = asyncio.create_task(self._cast(lesson, start_index), name="app cast")
        self.hub.changed()

    async def wait(self) -> None:
        """Wait until the cast being sent has started (or failed) everywhere."""
        if self._task is not None:
            await asyncio.shield(self._task)

    def _progress(self, address: str) -> ProgressCallback:
        last = [0.0]

        def update(done: int, total: int) -> None:
            p = self.progress[address]
            p.done_bytes, p.total_bytes = done, total
            now = time.monotonic()
            if done >= total or now - last[0] > 0.1:  # a tenth of a second is smooth enough
                last[0] = now
                self.hub.changed()

        return update

    async def _cast(self, lesson: Lesson, start_index: int) -> None:
        try:
            await self.hub.wait_for_links(self.targets, self.backend.timeout_s)
            group = self.backend.group(self._clients(), self._errors())
            outcomes: list[Outcome[CastResult]] = await group.cast(
                lesson, start_index=start_index, progress=self._progress
            )
            for o in outcomes:
                p = self.progress.setdefault(o.target, PanelProgress(o.target, o.label))
                p.finished = True
                if o.error is not None:
                    p.error = error_text(o.error, o.room or o.target)
                elif o.value is not None:
                    p.done_bytes = p.total_bytes = o.value.bytes_total
            ok = [o.target for o in outcomes if o.ok]
            self.backend.home.set_last_targets(ok or self.targets)
            self.phase = "showing" if ok else "failed"
        except Exception:  # the one broad catch of a cast: the page says so, the log keeps why
            logger.exception("cast failed")
            self.phase = "failed"
            for p in self.progress.values():
                if not p.finished:
                    p.finished, p.error = True, t("Something went wrong; see the log.")
        finally:
            self.hub.changed()

    def _clients(self) -> dict[str, KioskClient | None]:
        return {
            a: (self.hub.links[a].client if a in self.hub.links else None) for a in self.targets
        }

    def _errors(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        for a in self.targets:
            link = self.hub.links.get(a)
            if link is None:
                errors[a] = t(
                    "This computer is not paired with the panel: run `classcast pair {panel}`.",
                    panel=self.room(a),
                )
            elif link.error:
                errors[a] = link.error
        return errors

    # ----------------------------------------------------------------- controls

    async def control(
        self,
        action: ControlAction,
        *,
        index: int | None = None,
        position_ms: int | None = None,
        volume: int | None = None,
    ) -> list[str]:
        """Apply a control on every panel of the cast; returns one error line per panel
        that failed (empty when all applied it)."""
        if not self.targets:
            return [t("Nothing is shown yet: choose a lesson and panels, then press «Show».")]
        group = self.backend.group(self._clients(), self._errors())
        outcomes = await group.control(action, index=index, position_ms=position_ms, volume=volume)
        return self._error_lines(outcomes)

    def _error_lines(self, outcomes: list[Outcome[int | None]]) -> list[str]:
        """One line per panel that failed, or got the common instant late."""
        lines = []
        for o in outcomes:
            if o.error is not None:
                lines.append(
                    t(
                        "{target}: error: {message}",
                        target=o.room or self.room(o.target),
                        message=error_text(o.error, o.room or o.target),
                    )
                )
            elif o.value is not None:
                lines.append(late_text(o.room or self.room(o.target), o.value))
        return lines

    # ----------------------------------------------------------------- the phone remote

    def remote_view(self) -> RemoteView | None:
        """The current cast for a phone remote, or ``None`` when nothing is shown
        (:class:`~controller.webapp.remote.RemoteTarget`)."""
        status = self.lead_status()
        if self.phase != "showing" or status is None or status.lesson_title is None:
            return None
        rooms, ids = [], set()
        for address in self.targets:
            link = self.hub.links.get(address)
            if link is not None and link.status is not None:
                rooms.append(link.status.room)
                ids.add(link.status.kiosk_id)
        titles = tuple(i.title for i in self.lesson.items) if self.lesson is not None else ()
        return RemoteView(
            panels=tuple(rooms),
            lesson_title=status.lesson_title,
            index=status.index,
            count=status.count,
            item_titles=titles,
            paused=status.state == "paused",
            blanked=status.blanked,
            panel_ids=frozenset(ids),
        )

    async def remote_control(self, action: ControlAction, number: int | None = None) -> None:
        """Carry out ``action`` on every panel of the cast (``number``: 1-based, for
        ``goto``), as the page's buttons do (:class:`~controller.webapp.remote.RemoteTarget`).

        Raises:
            CastControlError: nothing is cast, or a panel refused (the message says which
                and why).
        """
        if self.remote_view() is None:
            raise CastControlError(
                t("Nothing is shown yet: choose a lesson and panels, then press «Show».")
            )
        index = number - 1 if action == "goto" and number is not None else None
        lines = await self.control(action, index=index)
        if lines:
            raise CastControlError(" ".join(lines))

    def screen(self) -> PanelLink | None:
        """The panel whose picture the page shows big: the cast's first."""
        for address in self.targets:
            link = self.hub.links.get(address)
            if link is not None:
                return link
        return None
