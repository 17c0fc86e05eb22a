"""Hostile clients for tests, in a child process: ``python -m tests.hostile ADDRESS COUNT``.

Keeps COUNT connections to the kiosk at ADDRESS open, a third of each kind, and opens
a new one whenever one is closed, until stdin closes:

- idle: TLS and the websocket opening handshake, then silence;
- slow: TLS, then an HTTP request trickled a byte a second;
- half-open: TCP only.

Prints ``opened N`` when done. Plain ``ssl``/``socket``/``websockets``, not our client.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading

from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from protocol.constants import SUBPROTOCOL
from tests.helpers import tls_client_context


async def _hold(kind: int, address: str, opened: list[int]) -> None:
    host, port = address.rsplit(":", 1)
    ctx = tls_client_context()
    while True:
        with contextlib.suppress(Exception):
            if kind == 0:
                ws = await connect(
                    f"wss://{address}/v1",
                    ssl=ctx,
                    subprotocols=[Subprotocol(SUBPROTOCOL)],
                    proxy=None,
                    ping_interval=None,
                )
                opened[0] += 1
                await ws.wait_closed()
            elif kind == 1:
                reader, writer = await asyncio.open_connection(host, int(port), ssl=ctx)
                opened[0] += 1
                for byte in b"GET /v1 HTTP/1.1\r\nHost: kiosk\r\n":
                    writer.write(bytes([byte]))
                    await asyncio.sleep(1)
                await reader.read()
            else:
                reader, writer = await asyncio.open_connection(host, int(port))
                opened[0] += 1
                await reader.read()
        await asyncio.sleep(0.001)


async def main(address: str, count: int) -> None:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    threading.Thread(
        target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(done.set)), daemon=True
    ).start()
    opened = [0]
    tasks = [asyncio.create_task(_hold(n % 3, address, opened)) for n in range(count)]
    print("started", flush=True)
    await done.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(f"opened {opened[0]}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
