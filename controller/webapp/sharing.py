"""«Показать мой экран» in the teacher's app: the screen of the computer the app runs on,
shared to the panels chosen on the page, until the teacher stops it (or every panel did).

The same :class:`~controller.share.ScreenShare` as ``classcast share``, over the
connections the app keeps to its panels (:class:`~controller.webapp.live.Hub`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from controller.client import KioskClient
from controller.i18n import t
from controller.webapp.backend import AppError, error_text
from controller.webapp.live import Hub

if TYPE_CHECKING:  # PyAV loads when a share starts, not with the app
    from controller.share import Capture, ScreenShare

logger = logging.getLogger(__name__)


class TeacherShare:
    """The app's screen share: at most one at a time.

    Call :meth:`start` with the chosen panels, :meth:`stop` to end it; :attr:`rooms`
    names the panels showing it (empty when nothing is shared). The page is told of
    every change through ``hub.changed()``.
    """

    def __init__(
        self, hub: Hub, timeout_s: float, capture: Callable[[], Capture] | None = None
    ) -> None:
        self.hub = hub
        self.timeout_s = timeout_s
        self._capture = capture
        self._share: ScreenShare | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.ended: list[str] = []
        """Rooms where the last share was stopped on the panel (the page says so)."""

    @property
    def active(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def rooms(self) -> list[str]:
        share = self._share
        if share is None or not self.active:
            return []
        return [client.name for client in share.panels]

    async def start(self, targets: list[str]) -> list[str]:
        """Share this computer's screen to ``targets`` (addresses of paired panels).

        Returns:
            A line for each panel that refused or cannot be reached (the others show
            the screen).

        Raises:
            AppError: nothing could be shared (the message says why and what to do).
        """
        if self.active:
            raise AppError(t("Your screen is already shown: stop it first."))
        from controller.share import MssCapture, ScreenShare

        try:
            capture = await asyncio.to_thread(self._capture or MssCapture)
        except OSError as exc:
            raise AppError(
                t(
                    "Cannot capture this computer's screen ({reason}). Sharing works in an "
                    "X11 (Xorg) session or on Windows.",
                    reason=str(exc),
                )
            ) from None
        await self.hub.wait_for_links(targets, self.timeout_s)
        clients: list[KioskClient] = []
        lines = []
        for address in targets:
            link = self.hub.links.get(address)
            if link is None or link.client is None:
                why = link.error if link is not None and link.error else None
                room = (link.room if link is not None else None) or address
                lines.append(
                    t("{target}: error: {message}", target=room, message=why)
                    if why
                    else t(
                        "This computer is not paired with the panel: run `classcast pair {panel}`.",
                        panel=room,
                    )
                )
                continue
            clients.append(link.client)
        if not clients:
            capture.close()
            raise AppError("\n".join(lines) or t("No panel shows your screen."))
        share = ScreenShare(capture, clients, title=t("Screen"))
        for client, error in await share.start():
            lines.append(
                t("{target}: error: {message}", target=client.name, message=error_text(error))
            )
        if not share.panels:
            await share.stop()
            raise AppError("\n".join(lines))
        self._share, self.ended = share, []
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(share), name="app screen share")
        self.hub.changed()
        return lines

    async def stop(self) -> None:
        """End the share (nothing happens when none runs)."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._task)

    async def _run(self, share: ScreenShare) -> None:
        try:
            await share.run(self._stop)
        except Exception:  # the one broad catch of a share: the page says it ended
            logger.exception("screen share failed")
        finally:
            self.ended = [client.name for client, _ in share.stopped_panels()]
            await share.stop()
            self.hub.changed()
