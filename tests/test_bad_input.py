"""Hostile and malformed input against a real kiosk: clear errors, nothing lost.

Each test first casts a lesson with a real client, then sends bad frames on a bare
websocket, and finally checks that the panel still shows the same item and that the
usage log still holds every record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from controller.client import KioskClient
from protocol import limits
from protocol.codec import encode, encode_chunk
from protocol.messages import Cast, LessonManifest, ManifestItem
from tests.helpers import RAW, pair, raw_connect, recv_json, text_lesson, tls_client_context
from tests.kiosks import ADMIN_SECRET, KioskThread, admin, teacher


@dataclass
class Showing:
    """A kiosk showing item 2 of a text lesson, with one closed usage record."""

    kiosk: KioskThread
    client: KioskClient
    raw_token: str


@pytest.fixture
async def showing(kiosk: KioskThread) -> AsyncIterator[Showing]:
    # The bare connection is an admin's, so that its casts pass moderation and reach
    # the checks under test.
    raw = await pair(kiosk.address, ADMIN_SECRET, RAW, role="admin")
    async with await teacher(kiosk) as client:
        await client.cast(text_lesson("Первый", "Второй", "Третий"))
        await client.control("next")
        yield Showing(kiosk, client, raw.token)


async def assert_unharmed(showing: Showing) -> None:
    status = await showing.client.status()
    assert status.state == "playing"
    assert status.index == 1
    assert status.item_title == "Слайд 2"
    async with await admin(showing.kiosk) as client:
        batch = await client.usage_pull(0)
    assert [(r.seq, r.item_index, r.end_reason) for r in batch.records] == [(1, 0, "next")]


async def error_for(showing: Showing, frame: str | bytes, *, hello: bool = True) -> dict[str, Any]:
    ws = await raw_connect(showing.kiosk.address, hello=hello, token=showing.raw_token)
    try:
        await ws.send(frame)
        reply = await recv_json(ws)
        assert reply["type"] == "error", reply
        # The connection stays usable after an error reply.
        await ws.send(json.dumps({"type": "get_status", "id": 99}))
        if hello:
            assert (await recv_json(ws))["type"] == "status"
        return reply
    finally:
        await ws.close()


@pytest.mark.parametrize(
    ("frame", "code", "text"),
    [
        ("{not json", "malformed", "not valid JSON"),
        ("[1, 2]", "malformed", "not a JSON object"),
        ('{"id": 5}', "malformed", "no string field 'type'"),
        ('{"type": "launch_missiles", "id": 5}', "malformed", "unknown message type"),
        ('{"type": "control", "id": 5}', "malformed", "missing field 'action'"),
        ('{"type": "control", "id": "5", "action": "next"}', "malformed", "must be an integer"),
        ('{"type": "control", "id": 5, "action": "explode"}', "malformed", "is not one of"),
        ('{"type": "control", "id": 5, "action": "next", "x": 1}', "malformed", "unknown field"),
        ('{"type": "control", "id": 5, "action": "goto"}', "malformed", "goto needs"),
        ('{"type": "usage_pull", "id": 5, "after_seq": -1, "limit": 5}', "malformed", "after_seq"),
        (
            '{"type": "welcome", "re": 1, "protocol_version": 1, "kiosk_id": "k", "room": "r", '
            '"school": "s", "status": {}}',
            "malformed",
            "missing field",
        ),
        ('{"type": "ok", "re": 5}', "unexpected", "does not accept ok"),
    ],
)
async def test_malformed_messages_get_an_error_reply(
    kiosk: KioskThread, showing: Showing, frame: str, code: str, text: str
) -> None:
    reply = await error_for(showing, frame)
    assert reply["code"] == code
    assert text in reply["message"]
    if '"id": 5' in frame:
        assert reply["re"] == 5
    await assert_unharmed(showing)


async def test_requests_before_hello_are_refused(kiosk: KioskThread, showing: Showing) -> None:
    reply = await error_for(showing, '{"type": "control", "id": 4, "action": "stop"}', hello=False)
    assert reply["code"] == "unexpected"
    assert "hello" in reply["message"]
    assert reply["re"] == 4
    await assert_unharmed(showing)


async def test_wrong_protocol_version_is_refused(kiosk: KioskThread, showing: Showing) -> None:
    frame = json.dumps(
        {
            "type": "hello",
            "id": 1,
            "protocol_version": 99,
            "controller_id": "c",
            "controller_name": "n",
        }
    )
    reply = await error_for(showing, frame, hello=False)
    assert reply["code"] == "version"


async def test_chunk_for_an_unannounced_blob_is_refused(
    kiosk: KioskThread, showing: Showing
) -> None:
    reply = await error_for(showing, encode_chunk("ab" * 32, 0, b"hello"))
    assert reply["code"] == "unexpected"
    assert "did not announce" in reply["message"]
    await assert_unharmed(showing)


async def test_binary_frame_too_short_is_refused(kiosk: KioskThread, showing: Showing) -> None:
    reply = await error_for(showing, b"\x00" * 10)
    assert reply["code"] == "malformed"
    await assert_unharmed(showing)


async def test_chunk_whose_bytes_do_not_match_the_hash(
    kiosk: KioskThread, showing: Showing
) -> None:
    real = b"real video bytes" * 100
    sha = hashlib.sha256(real).hexdigest()
    manifest = LessonManifest(
        lesson_id="evil",
        title="Подмена",
        items=[ManifestItem(kind="video", title="v", sha256=sha, size_bytes=len(real))],
    )
    ws = await raw_connect(kiosk.address, token=showing.raw_token)
    try:
        await ws.send(encode(Cast(id=7, lesson=manifest)))
        need = await recv_json(ws)
        assert need["type"] == "need"
        await ws.send(encode_chunk(sha, 0, b"X" * len(real)))
        reply = await recv_json(ws)
        assert reply == {
            "type": "error",
            "re": 7,
            "code": "checksum_mismatch",
            "message": reply["message"],
        }
        assert sha in reply["message"]
    finally:
        await ws.close()
    assert kiosk.app is not None
    assert not kiosk.app.store.has(sha)
    assert kiosk.app.store.partial_bytes(sha) == 0
    await assert_unharmed(showing)


async def test_chunk_past_the_announced_size_is_refused(
    kiosk: KioskThread, showing: Showing
) -> None:
    real = b"0123456789"
    sha = hashlib.sha256(real).hexdigest()
    manifest = LessonManifest(
        lesson_id="big",
        title="Лишнее",
        items=[ManifestItem(kind="image", title="i", sha256=sha, size_bytes=len(real))],
    )
    ws = await raw_connect(kiosk.address, token=showing.raw_token)
    try:
        await ws.send(encode(Cast(id=8, lesson=manifest)))
        assert (await recv_json(ws))["type"] == "need"
        await ws.send(encode_chunk(sha, 0, real + b"more"))
        reply = await recv_json(ws)
        assert reply["code"] == "too_large"
        assert reply["re"] == 8
    finally:
        await ws.close()
    await assert_unharmed(showing)


async def test_oversized_frame_closes_with_1009(kiosk: KioskThread, showing: Showing) -> None:
    ws = await raw_connect(kiosk.address, token=showing.raw_token)
    await ws.send("x" * (limits.MAX_FRAME_BYTES + 1))
    with pytest.raises(ConnectionClosed) as info:
        await recv_json(ws)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1009
    await assert_unharmed(showing)


async def test_text_frame_over_the_text_limit_is_an_error(
    kiosk: KioskThread, showing: Showing
) -> None:
    reply = await error_for(showing, " " * (limits.MAX_TEXT_FRAME_BYTES + 1))
    assert reply["code"] == "malformed"
    assert "over the limit" in reply["message"]
    await assert_unharmed(showing)


async def test_message_flood_is_closed_with_a_reason(kiosk: KioskThread, showing: Showing) -> None:
    ws = await raw_connect(kiosk.address, token=showing.raw_token)
    frame = json.dumps({"type": "get_status", "id": 1})

    async def flood() -> None:
        for _ in range(limits.MESSAGE_BURST * 3):
            await ws.send(frame)
        while True:
            await ws.recv()

    with pytest.raises(ConnectionClosed) as info:
        await flood()
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1008
    assert "messages per second" in info.value.rcvd.reason
    await assert_unharmed(showing)


async def test_wrong_path_and_missing_subprotocol_are_refused(kiosk: KioskThread) -> None:
    from websockets.asyncio.client import connect

    ctx = tls_client_context()
    with pytest.raises(InvalidStatus) as info:
        await connect(f"wss://{kiosk.address}/admin", ssl=ctx, proxy=None)
    assert info.value.response.status_code == 404
    with pytest.raises(InvalidStatus) as info:
        await connect(f"wss://{kiosk.address}/v1", ssl=ctx, proxy=None)
    assert info.value.response.status_code == 400


async def test_plain_websocket_without_tls_is_refused(kiosk: KioskThread) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidMessage

    with pytest.raises((InvalidMessage, OSError)):
        await connect(f"ws://{kiosk.address}/v1", proxy=None, open_timeout=5)


async def test_bad_lesson_manifest_in_cast_is_refused(kiosk: KioskThread, showing: Showing) -> None:
    frame = json.dumps(
        {
            "type": "cast",
            "id": 11,
            "lesson": {
                "lesson_id": "x",
                "title": "x",
                "items": [{"kind": "image", "title": "../../etc/passwd", "sha256": "../../etc"}],
            },
        }
    )
    reply = await error_for(showing, frame)
    assert reply["code"] == "malformed"
    assert reply["re"] == 11
    await assert_unharmed(showing)


async def test_kiosk_survives_a_client_that_vanishes_mid_transfer(
    kiosk: KioskThread, showing: Showing, tmp_path: Path
) -> None:
    data = b"v" * (limits.CHUNK_SIZE_BYTES + 10)
    sha = hashlib.sha256(data).hexdigest()
    manifest = LessonManifest(
        lesson_id="gone",
        title="Обрыв",
        items=[ManifestItem(kind="video", title="v", sha256=sha, size_bytes=len(data))],
    )
    ws = await raw_connect(kiosk.address, token=showing.raw_token)
    await ws.send(encode(Cast(id=3, lesson=manifest)))
    await recv_json(ws)
    await ws.send(encode_chunk(sha, 0, data[: limits.CHUNK_SIZE_BYTES]))
    await ws.close()
    await assert_unharmed(showing)
