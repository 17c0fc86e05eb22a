"""Screen shares against a real kiosk, from plain websockets clients: the rules hold.

A teacher shares with hand-written frames (``share_start`` JSON, stream frames built
with the codec); hostile frames follow on the same or another connection. Each is
refused with a clear error or close, and the panel keeps showing the share it showed.
The kiosk here runs without a window: the share's pictures are checked against the
rules, not decoded (tests/test_share_e2e.py decodes and shows them).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from controller.client import ControllerIdentity
from protocol import limits
from protocol.codec import encode_stream_frame, stream_header
from tests.helpers import hello_json, pair, raw_connect, recv_json, text_lesson
from tests.kiosks import ADMIN_SECRET, KioskThread, admin

SHARER = ControllerIdentity("c-sharer", "Иванова Мария")
OTHER = ControllerIdentity("c-other", "Сидоров Пётр")
STREAM = 77


async def connect_as(address: str, identity: ControllerIdentity, token: str) -> ClientConnection:
    """A plain websocket, greeted as ``identity`` with its token (a paired grant)."""
    ws = await raw_connect(address, hello=False)
    await ws.send(hello_json(identity, token))
    welcome = await recv_json(ws)
    assert welcome["type"] == "welcome", welcome
    assert welcome["role"] is not None, welcome
    return ws


def share_start(req_id: int = 2, stream_id: int = STREAM) -> str:
    msg = {"type": "share_start", "id": req_id, "stream_id": stream_id}
    return json.dumps({**msg, "width": 640, "height": 480, "title": "Экран учителя"})


def picture(seq: int, *, keyframe: bool = False, stream_id: int = STREAM) -> bytes:
    return encode_stream_frame(
        stream_id, seq, b"\x00\x00\x00\x01pic", keyframe=keyframe, capture_us=0
    )


async def reply_to(ws: ClientConnection, req_id: int) -> dict[str, Any]:
    while True:
        msg = await recv_json(ws)
        if msg.get("re") == req_id:
            return msg


async def next_error(ws: ClientConnection) -> dict[str, Any]:
    while True:
        msg = await recv_json(ws)
        if msg["type"] == "error":
            return msg


@dataclass
class Sharing:
    kiosk: KioskThread
    ws: ClientConnection
    other_token: str


@pytest.fixture
async def sharing(kiosk: KioskThread) -> AsyncIterator[Sharing]:
    sharer = await pair(kiosk.address, kiosk.pin(), SHARER)
    other = await pair(kiosk.address, kiosk.pin(), OTHER)
    ws = await connect_as(kiosk.address, SHARER, sharer.token)
    await ws.send(share_start())
    assert (await reply_to(ws, 2))["type"] == "ok"
    await ws.send(picture(0, keyframe=True))
    await ws.send(picture(1))
    try:
        yield Sharing(kiosk, ws, other.token)
    finally:
        await ws.close()


async def assert_still_sharing(s: Sharing) -> None:
    async with await admin(s.kiosk) as client:
        status = await client.status()
    assert (status.state, status.item_kind, status.presenter) == ("playing", "screen", SHARER.name)
    share = s.kiosk.sync(lambda: s.kiosk.app.service.share.active)  # type: ignore[union-attr]
    assert share is not None
    assert share.stream_id == STREAM


async def test_a_share_is_shown_and_logged_as_a_screen_interval(sharing: Sharing) -> None:
    await assert_still_sharing(sharing)
    received = sharing.kiosk.sync(
        lambda: sharing.kiosk.app.service.share.active.receiver.decoded  # type: ignore[union-attr]
    )
    assert received == 2
    await sharing.ws.send(json.dumps({"type": "share_stop", "id": 3, "stream_id": STREAM}))
    assert (await reply_to(sharing.ws, 3))["type"] == "ok"
    async with await admin(sharing.kiosk) as client:
        assert (await client.status()).state == "idle"
        batch = await client.usage_pull(0)
    [record] = batch.records
    assert (record.kind, record.teacher_name, record.content_title, record.content_hash) == (
        "screen",
        SHARER.name,
        "Экран учителя",
        None,
    )
    assert record.end_reason == "stop"


async def test_stream_frames_without_share_start_are_refused(sharing: Sharing) -> None:
    ws = await connect_as(sharing.kiosk.address, OTHER, sharing.other_token)
    try:
        await ws.send(picture(0, keyframe=True))
        error = await next_error(ws)
        assert error["code"] == "no_share"
        assert "not sharing" in error["message"]
    finally:
        await ws.close()
    await assert_still_sharing(sharing)


async def test_another_teacher_cannot_start_or_stop_or_feed_the_share(sharing: Sharing) -> None:
    ws = await connect_as(sharing.kiosk.address, OTHER, sharing.other_token)
    try:
        await ws.send(share_start(req_id=5, stream_id=99))
        busy = await reply_to(ws, 5)
        assert (busy["code"], busy["presenter"]) == ("busy", SHARER.name)
        await ws.send(json.dumps({"type": "share_stop", "id": 6, "stream_id": STREAM}))
        assert (await reply_to(ws, 6))["code"] == "no_share"
        await ws.send(picture(2, keyframe=True))  # the sharer's stream id, another connection
        assert (await next_error(ws))["code"] == "no_share"
    finally:
        await ws.close()
    await assert_still_sharing(sharing)


async def test_frames_of_another_stream_are_refused(sharing: Sharing) -> None:
    await sharing.ws.send(picture(2, keyframe=True, stream_id=STREAM + 1))
    error = await next_error(sharing.ws)
    assert error["code"] == "no_share"
    assert f"stream {STREAM + 1}" in error["message"]
    await assert_still_sharing(sharing)


async def test_an_oversized_picture_is_refused(sharing: Sharing) -> None:
    header = stream_header(STREAM, 2, keyframe=True, capture_us=0)
    await sharing.ws.send(header + bytes(limits.MAX_STREAM_FRAME_BYTES + 1))
    error = await next_error(sharing.ws)
    assert (error["code"], "over the limit" in error["message"]) == ("malformed", True)
    await assert_still_sharing(sharing)


async def test_a_frame_over_the_websocket_limit_closes_with_1009(sharing: Sharing) -> None:
    header = stream_header(STREAM, 2, keyframe=True, capture_us=0)
    await sharing.ws.send(header + bytes(limits.MAX_FRAME_BYTES))
    with pytest.raises(ConnectionClosed) as info:
        await next_error(sharing.ws)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1009


async def test_a_flood_of_pictures_is_closed_with_a_reason(sharing: Sharing) -> None:
    async def flood() -> None:
        for seq in range(2, 2 + limits.STREAM_FRAME_BURST * 4):
            await sharing.ws.send(picture(seq))
        while True:
            await sharing.ws.recv()

    with pytest.raises(ConnectionClosed) as info:
        await flood()
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1008
    assert "stream frames per second" in info.value.rcvd.reason
    # the share ended with its connection: the panel went back to idle
    async with await admin(sharing.kiosk) as client:
        assert (await client.status()).state == "idle"


async def test_a_gap_asks_for_a_keyframe(sharing: Sharing) -> None:
    await sharing.ws.send(picture(5))  # 2, 3 and 4 went missing
    msg = await recv_json(sharing.ws)
    assert msg == {"type": "keyframe_request", "stream_id": STREAM}


async def test_stopped_on_the_panel_the_share_refuses_further_pictures(sharing: Sharing) -> None:
    kiosk = sharing.kiosk
    kiosk.sync(lambda: kiosk.app.panel_control("stop"))  # type: ignore[union-attr]
    await sharing.ws.send(picture(2))
    assert (await next_error(sharing.ws))["code"] == "no_share"
    assert kiosk.sync(lambda: kiosk.app.service.share.active) is None  # type: ignore[union-attr]


async def test_a_lesson_cannot_carry_a_screen_item(kiosk: KioskThread) -> None:
    creds = await pair(kiosk.address, ADMIN_SECRET, SHARER, role="admin")
    ws = await connect_as(kiosk.address, SHARER, creds.token)
    try:
        lesson = {"lesson_id": "l", "title": "L", "items": [{"kind": "screen", "title": "x"}]}
        await ws.send(json.dumps({"type": "cast", "id": 4, "lesson": lesson}))
        error = await reply_to(ws, 4)
        assert (error["code"], "share_start" in error["message"]) == ("malformed", True)
    finally:
        await ws.close()


async def test_a_lesson_replaces_a_share_only_for_an_admin(sharing: Sharing) -> None:
    async with await admin(sharing.kiosk) as client:
        await client.cast(text_lesson("Объявление"))
        assert (await client.status()).item_kind == "text"
    await sharing.ws.send(picture(2))
    assert (await next_error(sharing.ws))["code"] == "no_share"


async def test_next_and_pause_leave_the_share_alone_and_blank_and_stop_work(
    sharing: Sharing,
) -> None:
    kiosk = sharing.kiosk
    for action in ("next", "prev", "pause"):
        kiosk.sync(lambda a=action: kiosk.app.panel_control(a))  # type: ignore[union-attr]
    for n, action in enumerate(("next", "play"), start=10):
        await sharing.ws.send(json.dumps({"type": "control", "id": n, "action": action}))
        assert (await reply_to(sharing.ws, n))["type"] == "ok"
    await assert_still_sharing(sharing)
    await sharing.ws.send(json.dumps({"type": "control", "id": 20, "action": "blank"}))
    assert (await reply_to(sharing.ws, 20))["type"] == "ok"
    assert kiosk.sync(lambda: kiosk.app.service.status().blanked)  # type: ignore[union-attr]
    await sharing.ws.send(json.dumps({"type": "control", "id": 21, "action": "stop"}))
    assert (await reply_to(sharing.ws, 21))["type"] == "ok"
    assert kiosk.sync(lambda: kiosk.app.service.share.active) is None  # type: ignore[union-attr]
