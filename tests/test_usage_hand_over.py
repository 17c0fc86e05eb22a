"""A control's usage writes reach the writer thread after its replies are sent."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kiosk import server as kiosk_server
from tests.helpers import text_lesson
from tests.kiosks import KioskThread, teacher

pytestmark = pytest.mark.asyncio


@pytest.fixture
def kiosk(tmp_path: Path) -> Iterator[KioskThread]:
    with KioskThread(tmp_path / "kiosk") as running:
        yield running


async def control_noting_order(
    kiosk: KioskThread, monkeypatch: pytest.MonkeyPatch, *, write_now: bool = True
) -> list[str]:
    """Cast, then send one ``next`` while noting, in order, each write to the client's
    socket ("sent") and the hand-over of the usage writes to the writer ("hand-over").

    ``write_now=False``: the kiosk's replies wait for the peer's writer task, as when
    frames are queued before them."""
    app = kiosk.app
    assert app is not None
    events: list[str] = []
    handed = threading.Event()

    def defer(hand_over: Callable[[], None]) -> None:
        def run() -> None:
            events.append("hand-over")
            hand_over()
            handed.set()

        app.server.after_replies(run)

    async with await teacher(kiosk) as client:
        await client.cast(text_lesson("Один", "Два"))
        sockets = kiosk.sync(lambda: list(app.server._sockets.values()))
        assert len(sockets) == 1  # the kiosk's side of this client's connection
        kiosk_socket = type(sockets[0])
        send = kiosk_socket.send

        def noting_send(self: socket.socket, data: Any, *args: Any) -> int:
            events.append("sent")
            return int(send(self, data, *args))

        kiosk.sync(lambda: app.usage.hand_over_through(defer))
        if not write_now:
            monkeypatch.setattr(kiosk_server._Peer, "write_now", lambda self, frames: False)
        monkeypatch.setattr(kiosk_socket, "send", noting_send)
        events.clear()
        await client.control("next")
        assert handed.wait(5)
        noted = list(events)
    # It came by itself, with no read through the writer; the switch is stored.
    app.usage.flush()
    assert [r.item_index for r in app.usage.records_after(0, 10)] == [0]
    return noted


async def test_a_controls_writes_are_handed_over_once_its_replies_are_written(
    kiosk: KioskThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The status and the ok left in one write, then the writes were handed over.
    assert await control_noting_order(kiosk, monkeypatch) == ["sent", "hand-over"]


async def test_writes_wait_for_replies_that_wait_for_their_writer_task(
    kiosk: KioskThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply that cannot be written at once (behind frames queued before it) goes out
    from the peer's writer task at the loop's next turn; the hand-over comes after it."""
    order = await control_noting_order(kiosk, monkeypatch, write_now=False)
    # The writer task wrote the status and the ok, one write each; then the hand-over.
    assert order == ["sent", "sent", "hand-over"]
