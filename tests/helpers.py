"""Small builders shared by tests."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import ssl
import struct
import zlib
from pathlib import Path
from typing import Any

from PIL import Image
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from controller.client import ControllerIdentity, Credentials, KioskClient
from media.lesson import Lesson, LessonItem, load_lesson, make_lesson, sample_lesson_path
from protocol import limits
from protocol.constants import PROTOCOL_VERSION, SUBPROTOCOL
from protocol.messages import Role


def blob_lesson(tmp: Path, sizes: list[int], *, title: str = "Большой урок") -> Lesson:
    """A lesson of random (incompressible) video blobs of the given sizes."""
    items = []
    for i, size in enumerate(sizes):
        path = tmp / f"blob{i}.bin"
        data = os.urandom(size)
        path.write_bytes(data)
        items.append(
            LessonItem(
                kind="video",
                title=f"Видео {i + 1}",
                path=path,
                sha256=hashlib.sha256(data).hexdigest(),
                size_bytes=size,
            )
        )
    return make_lesson(title, items)


def text_lesson(*texts: str, title: str = "Текстовый урок") -> Lesson:
    """A lesson of text slides (no media)."""
    return make_lesson(
        title,
        [LessonItem(kind="text", title=f"Слайд {i + 1}", text=t) for i, t in enumerate(texts)],
    )


def png_bytes(width: int, height: int, *, decodable: bool = True) -> bytes:
    """A black 1-bit greyscale PNG of ``width``×``height``: a few KB whatever its size.

    All-zero rows compress about 1000:1, so a 13000×13000 picture (169 megapixels)
    takes ~20 KB. With ``decodable=False`` the pixel data is cut short: a decoder that
    gets that far fails with its own error, so an error about the size proves that no
    pixel was decoded (and no memory for them allocated).
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    if decodable:
        packer = zlib.compressobj(9)
        row = bytes(1 + (width + 7) // 8)  # filter byte 0, then 8 pixels a byte
        idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    else:
        idat = zlib.compress(bytes(16))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def jpeg_of_size(width: int, height: int) -> bytes:
    """A 16×16 JPEG whose frame header says ``width``×``height``: it opens with that
    size, and decoding it fails (its data is for 16×16)."""
    out = io.BytesIO()
    Image.new("RGB", (16, 16), "white").save(out, "JPEG")
    data = bytearray(out.getvalue())
    sof = data.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


RAW = ControllerIdentity("c-raw", "Raw")


def tls_client_context() -> ssl.SSLContext:
    """A TLS client context that checks no certificate (kiosks sign their own), as a
    plain client uses."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def hello_json(identity: ControllerIdentity = RAW, token: str | None = None) -> str:
    """A ``hello`` text frame (request id 1) written by hand, as a plain client sends it."""
    return json.dumps(
        {
            "type": "hello",
            "id": 1,
            "protocol_version": PROTOCOL_VERSION,
            "controller_id": identity.controller_id,
            "controller_name": identity.name,
            "token": token,
        }
    )


async def raw_connect(
    address: str, *, hello: bool = True, token: str | None = None, source: str | None = None
) -> ClientConnection:
    """A bare websocket to a kiosk, optionally after hello, for sending hostile frames.

    ``source``: the local address to connect from (any 127.x.y.z reaches a kiosk on
    127.0.0.1), to stand for another device.
    """
    ws = await connect(
        f"wss://{address}/v1",
        ssl=tls_client_context(),
        subprotocols=[Subprotocol(SUBPROTOCOL)],
        compression=None,
        max_size=limits.MAX_FRAME_BYTES,
        proxy=None,
        local_addr=None if source is None else (source, 0),
    )
    if hello:
        await ws.send(hello_json(RAW, token))
        reply = await recv_json(ws)
        assert reply["type"] == "welcome", reply
    return ws


async def recv_json(ws: ClientConnection, *, skip_events: bool = True) -> dict[str, Any]:
    """The next text message, skipping pushed status events."""
    while True:
        frame = await ws.recv()
        assert isinstance(frame, str)
        msg: dict[str, Any] = json.loads(frame)
        if skip_events and msg["type"] == "status" and msg.get("re") is None:
            continue
        return msg


async def pair(
    address: str, secret: str, identity: ControllerIdentity, *, role: Role = "teacher"
) -> Credentials:
    """Pair ``identity`` with the kiosk at ``address`` through the real protocol."""
    async with await KioskClient.connect(address, identity) as client:
        return await client.pair(secret, role=role)


def untimed_sample_lesson() -> Lesson:
    """The sample lesson without its slides' durations: nothing advances by itself."""
    lesson = load_lesson(sample_lesson_path())
    items = [dataclasses.replace(item, duration_ms=None) for item in lesson.items]
    return make_lesson(lesson.title, items)
