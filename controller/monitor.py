"""Live monitor of every panel: online or offline, what it shows, who presents.

:class:`Monitor` keeps one connection per panel open, takes the status events each
kiosk pushes, asks for the full status (with cache use) now and then, and reconnects to
panels that went away. :func:`render` turns its snapshot into the table that
``classcast status --watch`` redraws.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from controller.client import ControllerIdentity, Credentials, KioskClient
from controller.i18n import number_text, size_text, t, text_table
from protocol.errors import ClassCastError, ConnectionFailedError
from protocol.messages import StatusSnapshot
from protocol.text import clean_name

RECONNECT_S = 5.0
"""How often an offline panel is tried again."""

REFRESH_S = 10.0
"""How often the full status (cache use) is asked for; pushed events come at once."""


@dataclass(slots=True)
class PanelState:
    """What the monitor knows of one panel."""

    address: str
    room: str | None = None
    status: StatusSnapshot | None = None
    online: bool = False
    last_seen_s: float | None = None
    """Wall-clock time of the last message from the panel."""
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "room": self.status.room if self.status else self.room,
            "online": self.online,
            "last_seen": self.last_seen_s,
            "status": dataclasses.asdict(self.status) if self.status else None,
            "error": self.error,
        }


class Monitor:
    """Watches ``addresses``; use ``async with`` and read :attr:`panels`."""

    def __init__(
        self,
        addresses: Sequence[str],
        identity: ControllerIdentity,
        credentials: Callable[[str], Credentials | None],
        *,
        timeout_s: float = 5.0,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.panels = {a: PanelState(a) for a in addresses}
        self._identity = identity
        self._credentials = credentials
        self._timeout_s = timeout_s
        self.on_change = on_change
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Monitor:
        self._tasks = [
            asyncio.create_task(self._watch(state), name=f"monitor {state.address}")
            for state in self.panels.values()
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def snapshot(self) -> list[PanelState]:
        """The panels, sorted by room."""
        return sorted(self.panels.values(), key=lambda p: ((p.room or "").casefold(), p.address))

    async def _watch(self, state: PanelState) -> None:
        while True:
            try:
                async with await KioskClient.connect(
                    state.address,
                    self._identity,
                    credentials=self._credentials(state.address),
                    timeout_s=self._timeout_s,
                ) as client:
                    state.room = client.name
                    client.on_status = lambda s: self._seen(state, s, full=False)
                    while True:
                        self._seen(state, await client.status(), full=True)
                        if await client.wait_closed(REFRESH_S):
                            raise ConnectionFailedError(f"{state.address} closed the connection")
            except ClassCastError as exc:
                was_online = state.online
                state.online, state.error = False, str(exc)
                if was_online or state.last_seen_s is None:
                    self._changed()
            await asyncio.sleep(RECONNECT_S)

    def _seen(self, state: PanelState, status: StatusSnapshot, *, full: bool) -> None:
        if not full and state.status is not None:
            # Pushed events carry no cache figures: keep the last ones known.
            status = dataclasses.replace(
                status,
                cache_used_bytes=state.status.cache_used_bytes,
                cache_quota_bytes=state.status.cache_quota_bytes,
            )
        state.status, state.online, state.error = status, True, None
        state.last_seen_s = time.time()
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            with contextlib.suppress(Exception):
                self.on_change()


def render(panels: Sequence[PanelState], now_s: float) -> str:
    """The monitor table, in the output language.

    What the panels report (room, lesson, presenter, version) is cleaned of control
    characters and escape sequences (:func:`protocol.text.clean_name`) before layout.
    """
    header = (
        t("Room"),
        t("Online"),
        t("Showing"),
        t("Presenter"),
        t("Last seen"),
        t("Cache"),
        t("Version"),
        t("Address"),
    )
    rows = [header]
    for p in panels:
        s = p.status
        if s is None or s.lesson_title is None:
            showing = t(s.state) if s is not None else "—"
        else:
            showing = f"{clean_name(s.lesson_title)}: {s.index + 1}/{s.count}"
            if s.blanked:
                showing += f" ({t('Blanked')})"
            elif s.state == "paused":
                showing += f" ({t('paused')})"
            if s.item_failure is not None:
                showing += f" ({t('the page did not open')})"
        seen = (
            t("{seconds} s ago", seconds=number_text(now_s - p.last_seen_s, 0))
            if p.last_seen_s is not None
            else "—"
        )
        cache = (
            f"{size_text(s.cache_used_bytes)} / {size_text(s.cache_quota_bytes)}"
            if s is not None and s.cache_quota_bytes
            else "—"
        )
        rows.append(
            (
                clean_name((s.room if s else p.room) or "?"),
                t("yes") if p.online else t("no"),
                showing,
                clean_name((s.presenter if s else None) or "—"),
                seen,
                cache,
                clean_name(s.version) if s else "—",
                p.address,
            )
        )
    return text_table(rows)
