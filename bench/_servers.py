"""Server side of the benchmarks, run in a child process: ``python -m bench._servers KIND``.

Kinds:

``echo --count N``
    N websockets echo servers (asyncio ``serve``, ``compression=None``, the kiosk's
    ``max_size``) on one event loop.
``wire --count N``
    The kiosk's wire shape with none of its work: N servers like ``echo`` that decode
    each text message with the protocol's codec and answer it as a kiosk answers a
    ``control``, a pushed ``status`` (a 2-item text lesson's, encoded anew) and an
    ``ok``, both frames in one TLS write. No service, player, display or bookkeeping.
``kiosk --count N --state-dir DIR [--quota-bytes Q] [--no-bookkeeping] [--panel-allocator]``
    N headless :class:`kiosk.app.KioskApp` on one event loop, state in ``DIR/kNNN``.
    ``--panel-allocator``: glibc's heap set up as ``classcast-kiosk`` sets it
    (:func:`kiosk.memory.tune_allocator`: big blocks mapped and unmapped one by one).
    ``--no-bookkeeping`` (a diagnostic, not a panel): the kiosks neither log usage nor
    save the presentation they show, to show what those writes cost per control.
``tcpsink --dir DIR [--hash] [--tls]``
    A raw TCP receiver: for each ``>Q`` size header it receives that many bytes into a
    new file in ``DIR`` (optionally hashing them with sha256), fsyncs it, renames it
    into place, fsyncs the folder and answers one byte (or the 32-byte digest).
    A size of 0 ends the connection. ``--tls``: each connection is TLS with a
    certificate like the kiosk's (blocking ``ssl`` sockets, no websockets).

Prints ``READY {"ports": [...]}`` once listening; exits when stdin reaches EOF.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import json
import logging
import os
import signal
import socket
import struct
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from websockets.asyncio.server import Server, ServerConnection, serve

from bench._common import LOOPBACK, kiosk_config
from protocol import limits

if TYPE_CHECKING:
    from kiosk.usage import DisplayStart
    from protocol.messages import EndReason, Status, UsageRecord

RECV_BYTES = 1024 * 1024
SIZE_HEADER = struct.Struct(">Q")


def _ready(ports: list[int], **extra: object) -> None:
    sys.stdout.write("READY " + json.dumps({"ports": ports, "pid": os.getpid(), **extra}) + "\n")
    sys.stdout.flush()


def _stdin_closed_event(loop: asyncio.AbstractEventLoop) -> asyncio.Event:
    """An event set when stdin reaches EOF (the parent is done) or on SIGTERM."""
    done = asyncio.Event()

    def wait_eof() -> None:
        with contextlib.suppress(OSError, ValueError):
            sys.stdin.buffer.read()
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=wait_eof, daemon=True).start()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, done.set)
    return done


async def _echo(ws: ServerConnection) -> None:
    with contextlib.suppress(Exception):
        async for message in ws:
            await ws.send(message)


def _wire_status() -> Status:
    from protocol.messages import Status, StatusSnapshot

    return Status(
        StatusSnapshot(
            kiosk_id="k-bench-000",
            room="Каб. 101",
            school="Школа №1",
            state="playing",
            blanked=False,
            lesson_id="0" * 32,
            lesson_title="Бенчмарк",
            index=1,
            count=2,
            item_kind="text",
            item_title="Второй",
            position_ms=0,
            presenter="Bench Teacher",
            version="0",
        )
    )


async def _wire(ws: ServerConnection) -> None:
    """Answer each message as a kiosk answers a control: status, then ok, one write."""
    import dataclasses

    from protocol.codec import decode, encode
    from protocol.messages import Ok, Status

    status = _wire_status()
    with contextlib.suppress(Exception):
        async for message in ws:
            request = decode(message if isinstance(message, str) else message.decode())
            snapshot = dataclasses.replace(status.status, index=getattr(request, "id", 0) % 2)
            for frame in (encode(Status(snapshot)), encode(Ok(re=getattr(request, "id", 0)))):
                ws.protocol.send_text(frame.encode())
            ws.transport.writelines(ws.protocol.data_to_send())


async def run_echo(
    count: int, handler: Callable[[ServerConnection], Awaitable[None]] = _echo
) -> None:
    import tempfile

    from kiosk.tls import ensure_identity

    done = _stdin_closed_event(asyncio.get_running_loop())
    servers: list[Server] = []
    # TLS like the kiosk's, so that the baseline pays the same transport costs.
    tls = ensure_identity(Path(tempfile.mkdtemp(prefix="bench-echo-tls-")), "echo")
    ctx = tls.server_context()
    try:
        for _ in range(count):
            servers.append(
                await serve(
                    handler,
                    LOOPBACK,
                    0,
                    compression=None,
                    max_size=limits.MAX_FRAME_BYTES,
                    ssl=ctx,
                )
            )
        ports = [next(iter(s.sockets)).getsockname()[1] for s in servers]
        _ready(ports)
        await done.wait()
    finally:
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()


class _NoUsage:
    """A usage sink that keeps nothing (``--no-bookkeeping``)."""

    def __init__(self, public_key: str) -> None:
        self.public_key = public_key

    def recover(self) -> int:
        return 0

    def open(
        self, start: DisplayStart, *, wall_s: float, mono_s: float, clock_offset_ms: int = 0
    ) -> str:
        return "not-logged"

    def close(self, uuid: str, *, wall_s: float, mono_s: float, reason: EndReason) -> None:
        pass

    def heartbeat(self, *, wall_s: float, mono_s: float) -> None:
        pass

    def records_after(self, after_seq: int, limit: int) -> list[UsageRecord]:
        return []

    def last_seq(self) -> int:
        return 0

    def batch(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


async def run_kiosks(
    count: int, state_dir: Path, quota_bytes: int, *, bookkeeping: bool = True
) -> None:
    from kiosk.app import KioskApp

    done = _stdin_closed_event(asyncio.get_running_loop())
    apps: list[KioskApp] = []
    try:
        for n in range(count):
            app = KioskApp(
                kiosk_config(state_dir / f"k{n:03d}", room=f"Room {n:03d}", quota_bytes=quota_bytes)
            )
            if not bookkeeping:
                app.service.usage = _NoUsage(app.usage.public_key)
                app.service.presentation = None
            apps.append(app)
        gc.freeze()  # as classcast-kiosk does once its app is made
        for app in apps:
            await app.start()
        _ready([app.server.port for app in apps])
        await done.wait()
    finally:
        for app in apps:
            with contextlib.suppress(Exception):
                await app.stop()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recv_exactly(conn: socket.socket, size: int) -> bytes:
    """Receive ``size`` bytes, fewer only if the peer closed (TLS sockets refuse
    ``MSG_WAITALL``)."""
    data = b""
    while len(data) < size:
        more = conn.recv(size - len(data))
        if not more:
            break
        data += more
    return data


def _sink_connection(
    conn: socket.socket, folder: Path, hash_bytes: bool, fill: bool = False
) -> None:
    """Receive files (see ``tcpsink``); ``fill``: gather up to ``RECV_BYTES`` before each
    write and hash (a TLS socket returns one 16 KiB record per call)."""
    buf = bytearray(RECV_BYTES)
    view = memoryview(buf)
    n = 0
    with conn:
        while True:
            header = recv_exactly(conn, SIZE_HEADER.size)
            if len(header) < SIZE_HEADER.size:
                return
            (size,) = SIZE_HEADER.unpack(header)
            if size == 0:
                return
            n += 1
            part = folder / f"recv-{os.getpid()}-{n}.part"
            hasher = hashlib.sha256() if hash_bytes else None
            left = size
            with part.open("wb", buffering=0) as f:
                while left:
                    want = min(left, RECV_BYTES)
                    got = conn.recv_into(view, want)
                    while fill and 0 < got < want:
                        more = conn.recv_into(view[got:], want - got)
                        if more == 0:
                            break
                        got += more
                    if got == 0:
                        raise ConnectionError("sender went away")
                    f.write(view[:got])
                    if hasher is not None:
                        hasher.update(view[:got])
                    left -= got
                os.fsync(f.fileno())
            os.replace(part, part.with_suffix(".blob"))
            _fsync_dir(folder)
            conn.sendall(hasher.digest() if hasher is not None else b"\x01")


def run_tcpsink(folder: Path, hash_bytes: bool, tls: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    listener = socket.create_server((LOOPBACK, 0))
    ctx = None
    if tls:
        import tempfile

        from kiosk.tls import ensure_identity

        identity = ensure_identity(Path(tempfile.mkdtemp(prefix="bench-sink-tls-")), "sink")
        ctx = identity.server_context()

    def serve(conn: socket.socket) -> None:
        if ctx is not None:
            conn = ctx.wrap_socket(conn, server_side=True)
        _sink_connection(conn, folder, hash_bytes, fill=ctx is not None)

    def accept_loop() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    _ready([listener.getsockname()[1]])
    with contextlib.suppress(OSError, ValueError):
        sys.stdin.buffer.read()
    listener.close()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    parser = argparse.ArgumentParser(prog="python -m bench._servers")
    parser.add_argument("kind", choices=["echo", "wire", "kiosk", "tcpsink"])
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--state-dir", type=Path)
    parser.add_argument("--quota-bytes", type=int, default=4 * 1024**3)
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--hash", action="store_true")
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--no-bookkeeping", action="store_true")
    parser.add_argument("--panel-allocator", action="store_true")
    args = parser.parse_args()
    if args.panel_allocator:
        from kiosk.memory import tune_allocator

        tune_allocator()  # as classcast-kiosk does, before any thread starts
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C and stops us
    if args.kind == "echo":
        asyncio.run(run_echo(args.count))
    elif args.kind == "wire":
        asyncio.run(run_echo(args.count, _wire))
    elif args.kind == "kiosk":
        if args.state_dir is None:
            parser.error("kiosk needs --state-dir")
        asyncio.run(
            run_kiosks(
                args.count, args.state_dir, args.quota_bytes, bookkeeping=not args.no_bookkeeping
            )
        )
    else:
        if args.dir is None:
            parser.error("tcpsink needs --dir")
        run_tcpsink(args.dir, args.hash, args.tls)


if __name__ == "__main__":
    main()
