"""What a controller's connection holds while the kiosk is slower than it
(controller.client.WRITE_LIMIT_BYTES): a bounded amount, and never less than one frame.

The "kiosk" is a plain TLS websockets server on 127.0.0.1 with a certificate like a
kiosk's; the controller's side is its real connection (``controller.client.open_connection``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from controller.client import WRITE_LIMIT_BYTES, kiosk_url, open_connection
from kiosk.tls import ensure_identity
from protocol import limits
from protocol.constants import CHUNK_HEADER_BYTES, SUBPROTOCOL

TLS_RECORD_OVERHEAD = 64
"""Bytes TLS adds per record of at most 16 KiB (header, tag): an upper bound."""


def _encrypted_size(size: int) -> int:
    return size + (size // 16384 + 1) * TLS_RECORD_OVERHEAD


@contextlib.asynccontextmanager
async def kiosk_like(
    handler: Callable[[ServerConnection], Awaitable[None]], tmp_path: Path
) -> AsyncIterator[str]:
    """A plain TLS websockets server with a kiosk's certificate, subprotocol and frame
    limit on 127.0.0.1; yields its ``HOST:PORT``."""
    identity = ensure_identity(tmp_path / "tls", "k-test")
    async with serve(
        handler,
        "127.0.0.1",
        0,
        ssl=identity.server_context(),
        subprotocols=[Subprotocol(SUBPROTOCOL)],
        max_size=limits.MAX_FRAME_BYTES,
    ) as server:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_a_kiosk_that_does_not_read_holds_the_controller_at_its_write_limit(
    tmp_path: Path,
) -> None:
    release = asyncio.Event()

    async def never_reads(ws: ServerConnection) -> None:
        await release.wait()
        ws.transport.abort()

    async with kiosk_like(never_reads, tmp_path) as address:
        ws = await open_connection(kiosk_url(address), 5.0)
        frame = bytes(CHUNK_HEADER_BYTES + limits.SEND_CHUNK_BYTES)
        sent = 0
        most_held = 0

        async def sender() -> None:
            nonlocal sent, most_held
            while True:
                await ws.send(frame)
                sent += 1
                most_held = max(most_held, ws.transport.get_write_buffer_size())

        task = asyncio.create_task(sender())
        try:
            # The sockets' buffers and the kiosk's fill first; then send() stays waiting.
            while True:
                before = sent
                await asyncio.sleep(0.01)
                most_held = max(most_held, ws.transport.get_write_buffer_size())
                if ws.paused and sent == before:
                    break
            assert not task.done()
            # Never more than the limit plus the one frame that crossed it.
            assert ws.transport.get_write_buffer_limits() == (
                WRITE_LIMIT_BYTES // 4,
                WRITE_LIMIT_BYTES,
            )
            assert most_held <= _encrypted_size(WRITE_LIMIT_BYTES + len(frame))
        finally:
            task.cancel()
            release.set()
            ws.transport.abort()


async def test_a_frame_larger_than_the_write_limit_goes_out_whole(tmp_path: Path) -> None:
    sizes: list[int] = []

    async def measures(ws: ServerConnection) -> None:
        message = await ws.recv()
        sizes.append(len(message))
        await ws.send("ok")

    async with kiosk_like(measures, tmp_path) as address:
        ws = await open_connection(kiosk_url(address), 5.0)
        try:
            assert limits.MAX_FRAME_BYTES > WRITE_LIMIT_BYTES
            await ws.send(bytes(limits.MAX_FRAME_BYTES))
            assert await ws.recv() == "ok"
        finally:
            await ws.close()
    assert sizes == [limits.MAX_FRAME_BYTES]
