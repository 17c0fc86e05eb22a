"""A control to a group of real kiosks sent as it comes (`together=False`: the fan-out
itself; at one instant: tests/test_sync.py): one frame for all, one ack each, failures apart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

import controller.client
import protocol.codec
from controller.client import KioskClient
from controller.group import Group
from protocol.errors import ConnectionFailedError
from protocol.messages import Control, Message, Status, StatusSnapshot
from tests.conftest import TEACHER
from tests.helpers import pair, text_lesson
from tests.kiosks import KioskThread


@pytest.fixture
def kiosks(tmp_path: Path) -> Iterator[list[KioskThread]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(KioskThread(tmp_path / f"k{n}", room=f"Каб. {n}")) for n in range(3)
        ]


async def connected(kiosks: list[KioskThread], *, timeout_s: float = 10.0) -> Group:
    """A group paired as a teacher with every kiosk, a 3-slide lesson cast to all."""
    creds = {k.address: await pair(k.address, k.pin(), TEACHER) for k in kiosks}
    group = await Group.connect(
        [k.address for k in kiosks], TEACHER, credentials=creds.get, timeout_s=timeout_s
    )
    outcomes = await group.cast(text_lesson("Один", "Два", "Три"))
    assert all(o.ok for o in outcomes), outcomes
    return group


def shown_index(kiosk: KioskThread) -> int:
    assert kiosk.app is not None
    service = kiosk.app.service
    return int(kiosk.sync(lambda: service.status().index))


async def test_a_group_control_is_encoded_once_and_acked_by_every_kiosk(
    kiosks: list[KioskThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    group = await connected(kiosks)
    try:
        encoded: list[Message] = []
        real_encode = protocol.codec.encode

        def counting_encode(msg: Message) -> str:
            encoded.append(msg)
            return real_encode(msg)

        monkeypatch.setattr(controller.client, "encode", counting_encode)
        outcomes = await group.control("next", together=False)
        assert all(o.ok for o in outcomes), outcomes
        assert sorted(o.label for o in outcomes) == ["Каб. 0", "Каб. 1", "Каб. 2"]
        assert [type(m) for m in encoded] == [Control]
        assert [shown_index(k) for k in kiosks] == [1, 1, 1]
        # The next request on each connection gets an id none of them used yet.
        assert len({c._next_id for c in group.clients.values()}) == 1
        statuses = [await c.status() for c in group.clients.values()]
        assert [s.index for s in statuses] == [1, 1, 1]
    finally:
        await group.close()


async def test_a_kiosk_that_does_not_answer_times_out_and_the_others_are_served(
    kiosks: list[KioskThread],
) -> None:
    group = await connected(kiosks)
    stuck = kiosks[1]
    assert stuck.app is not None
    group.clients[stuck.address].timeout_s = 0.3  # the others keep theirs (10 s)
    try:
        with stuck.app.server.lock:  # its network loop waits: the control gets no answer
            outcomes = await group.control("next", together=False)
        by_target = {o.target: o for o in outcomes}
        error = by_target[stuck.address].error
        assert isinstance(error, ConnectionFailedError)
        assert error.reason == "timeout"
        assert by_target[stuck.address].label == "Каб. 1"
        assert all(by_target[k.address].ok for k in kiosks if k is not stuck)
        assert [shown_index(k) for k in kiosks if k is not stuck] == [1, 1]
    finally:
        await group.close()


async def test_a_connection_backed_up_holds_up_no_other_kiosk(kiosks: list[KioskThread]) -> None:
    group = await connected(kiosks)
    clients = list(group.clients.values())
    backed_up = clients[0]._ws  # first in turn: a plain loop over sends would stop here
    try:
        backed_up.pause_writing()  # as asyncio does when the socket's buffer is full
        control = asyncio.ensure_future(group.control("next", together=False))
        for other in clients[1:]:
            assert (await other.wait_for_status(lambda s: s.index == 1)).index == 1
        assert not control.done()  # still waiting for the backed-up connection to drain
        backed_up.resume_writing()
        outcomes = await control
        assert all(o.ok for o in outcomes), outcomes
        assert [shown_index(k) for k in kiosks] == [1, 1, 1]
    finally:
        if backed_up.paused:
            backed_up.resume_writing()
        await group.close()


async def test_a_kiosk_gone_before_the_control_is_reported_closed_and_the_others_served(
    kiosks: list[KioskThread], tmp_path: Path
) -> None:
    gone = KioskThread(tmp_path / "gone", room="Каб. 9").__enter__()
    group = await connected([*kiosks[:2], gone], timeout_s=30.0)
    try:
        # Stopped from another thread so that this loop can answer its close frame.
        await asyncio.to_thread(gone.__exit__, None, None, None)
        await group.clients[gone.address].wait_closed(10)
        outcomes = await group.control("next", together=False)
        by_target = {o.target: o for o in outcomes}
        error = by_target[gone.address].error
        assert isinstance(error, ConnectionFailedError)
        assert error.reason == "closed"  # at once, not after the 30 s timeout
        assert [shown_index(k) for k in kiosks[:2]] == [1, 1]
        assert all(by_target[k.address].ok for k in kiosks[:2])
    finally:
        await group.close()


async def test_status_pushes_are_decoded_when_read_or_awaited(
    kiosks: list[KioskThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    group = await connected(kiosks)
    try:
        decoded: list[Message] = []
        real_decode = protocol.codec.decode

        def counting_decode(raw: str | bytes) -> Message:
            msg = real_decode(raw)
            decoded.append(msg)
            return msg

        monkeypatch.setattr(controller.client, "decode", counting_decode)
        outcomes = await group.control("next", together=False)
        assert all(o.ok for o in outcomes), outcomes
        # Every kiosk pushed its new status before its ok; none was decoded to count acks.
        assert not [m for m in decoded if isinstance(m, Status)]
        assert all(
            c.last_status is not None and c.last_status.index == 1 for c in group.clients.values()
        )
        assert len([m for m in decoded if isinstance(m, Status)]) == 3

        # A listener and a waiter get each push as it arrives.
        first = group.clients[kiosks[0].address]
        heard: list[StatusSnapshot] = []
        first.on_status = heard.append
        second = group.clients[kiosks[1].address]
        waiting = asyncio.ensure_future(second.wait_for_status(lambda s: s.index == 2))
        await asyncio.sleep(0)
        assert all(o.ok for o in await group.control("next", together=False))
        assert [s.index for s in heard] == [2]
        assert (await waiting).index == 2
    finally:
        await group.close()


async def test_a_malformed_status_push_keeps_the_last_good_status(
    kiosks: list[KioskThread], caplog: pytest.LogCaptureFixture
) -> None:
    group = await connected(kiosks[:1])
    client: KioskClient = next(iter(group.clients.values()))
    try:
        before = client.last_status
        assert before is not None
        bad: Any = '{"status":{"state":"nonsense"},"re":null,"type":"status"}'
        client._status_pushed(bad)
        assert client.last_status == before
        assert "malformed" in caplog.text
    finally:
        await group.close()
