"""The websocket adapter of the kiosk: frames in, :class:`KioskService` calls, frames out.

Runs on an asyncio loop (the kiosk's network thread). Each connection gets a session
in the service and a writer task with its own queue, so a slow controller never holds
up the others. Blob chunks are hashed and written on a worker thread while the loop
goes on decrypting and parsing the next frames (hashing and file writes release the
GIL, so a transfer uses both cores); a lock keeps every call into the service one at a
time. Limits: ``max_size`` is ``MAX_FRAME_BYTES`` (a larger frame closes the
connection with 1009), compression is off (media does not compress), the path must be
``/v1`` and the subprotocol ``classcast.v1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import ssl as ssl_module
import threading

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from kiosk.service import CaptureScreen, CloseSession, ComputeOffer, KioskService, Outgoing
from protocol import limits
from protocol.codec import Chunk, decode, decode_chunk, encode, request_id
from protocol.constants import SUBPROTOCOL, WS_PATH
from protocol.errors import MalformedMessageError
from protocol.messages import Message
from protocol.pairing import OfferKeys

logger = logging.getLogger(__name__)

_SEND_QUEUE_LIMIT = 1000
"""Messages queued for one slow connection before it is dropped."""


class _Peer:
    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[Message | CloseSession] = asyncio.Queue()

    async def write(self) -> None:
        while True:
            item = await self.queue.get()
            if isinstance(item, CloseSession):
                await self.ws.close(item.code, item.reason)
                return
            await self.ws.send(encode(item))


class WebsocketServer:
    """Serves :class:`KioskService` over websockets on ``host``:``port`` (0 = any free port).

    Call :meth:`start`, then read :attr:`port`; call :meth:`stop` to close every
    connection and the listening socket.
    """

    def __init__(
        self,
        service: KioskService,
        host: str,
        port: int,
        *,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self.service = service
        self._ssl = ssl
        self.host = host
        self.port = port
        self._server: Server | None = None
        self._peers: dict[int, _Peer] = {}
        self._wake = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        self._writers: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._timer_deadline = float("-inf")
        self.lock = threading.Lock()
        """Held for every call into the service (the loop's, and chunks' on a worker)."""

    async def start(self) -> None:
        """Listen; afterwards :attr:`port` is the bound port."""
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            compression=None,
            max_size=limits.MAX_FRAME_BYTES,
            process_request=self._check_path,
            ssl=self._ssl,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self._timer = asyncio.create_task(self._run_timer(), name="kiosk-timer")
        self._timer.add_done_callback(_log_failure)
        logger.info("listening on ws://%s:%d%s", self.host, self.port, WS_PATH)

    async def stop(self) -> None:
        """Close all connections and stop listening."""
        if self._timer is not None:
            # A flag, not only cancel(): wait_for may swallow a cancel that races the wake.
            self._stopping = True
            self._wake.set()
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for writer in list(self._writers):
            writer.cancel()
        await asyncio.gather(*self._writers, return_exceptions=True)

    def poke(self) -> None:
        """Flush the service's outbox and wake the timer if its deadline moved earlier.

        Call on the loop after every call into the service.
        """
        self._flush()
        with self.lock:
            deadline = self.service.next_deadline_s()
        if deadline < self._timer_deadline:
            self._wake.set()

    # ----------------------------------------------------------------- internals

    @staticmethod
    def _check_path(connection: ServerConnection, request: Request) -> Response | None:
        if request.path != WS_PATH:
            return connection.respond(http.HTTPStatus.NOT_FOUND, f"use {WS_PATH}\n")
        if SUBPROTOCOL not in request.headers.get("Sec-WebSocket-Protocol", ""):
            return connection.respond(
                http.HTTPStatus.BAD_REQUEST, f"subprotocol {SUBPROTOCOL} required\n"
            )
        return None

    def _chunk(self, sid: int, chunk: Chunk) -> None:
        with self.lock:
            self.service.handle_chunk(sid, chunk)

    async def _handle(self, ws: ServerConnection) -> None:
        service = self.service
        remote = ws.remote_address
        address = str(remote[0]) if remote else ""
        with self.lock:
            sid = service.open_session(address)
        peer = _Peer(ws)
        self._peers[sid] = peer
        writer = asyncio.create_task(peer.write(), name=f"kiosk-writer-{sid}")
        self._writers.add(writer)
        writer.add_done_callback(self._writers.discard)
        try:
            async for frame in ws:
                try:
                    if isinstance(frame, str):
                        try:
                            msg = decode(frame)
                        except MalformedMessageError as exc:
                            with self.lock:
                                service.handle_malformed(sid, request_id(frame), exc)
                        else:
                            with self.lock:
                                service.handle(sid, msg)
                    else:
                        try:
                            chunk = decode_chunk(frame)
                        except MalformedMessageError as exc:
                            with self.lock:
                                service.handle_malformed(sid, None, exc)
                        else:
                            await asyncio.to_thread(self._chunk, sid, chunk)
                except Exception:  # the one broad catch: one bad frame must not stop the kiosk
                    logger.exception("session %d: failed to handle a frame", sid)
                    with self.lock:
                        service.handle_failure(
                            sid, request_id(frame) if isinstance(frame, str) else None
                        )
                self.poke()
        except ConnectionClosed:
            pass
        finally:
            with self.lock:
                service.close_session(sid)
            self._peers.pop(sid, None)
            writer.cancel()
            self.poke()

    def _flush(self) -> None:
        with self.lock:
            outgoing = self.service.drain()
            greeted = [p for s, p in self._peers.items() if self.service.is_greeted(s)]
        for out in outgoing:
            if isinstance(out, CaptureScreen):
                task = asyncio.create_task(self._capture(out), name="screenshot")
                self._writers.add(task)
                task.add_done_callback(self._writers.discard)
                continue
            if isinstance(out, ComputeOffer):
                task = asyncio.create_task(self._compute_offer(out), name="pairing")
                self._writers.add(task)
                task.add_done_callback(self._writers.discard)
                continue
            if isinstance(out, Outgoing) and out.sid is None:
                targets = greeted
            else:
                peer = self._peers.get(out.sid) if out.sid is not None else None
                targets = [peer] if peer is not None else []
            item = out.message if isinstance(out, Outgoing) else out
            for peer in targets:
                if peer.queue.qsize() >= _SEND_QUEUE_LIMIT:
                    logger.warning("dropping a controller that does not read its messages")
                    peer.queue.put_nowait(CloseSession(0, 1008, "not reading"))
                    continue
                peer.queue.put_nowait(item)

    async def _capture(self, request: CaptureScreen) -> None:
        """Read the screen on a worker thread (it waits for the render thread), then reply."""
        try:
            png = await asyncio.to_thread(self.service.display.screenshot_png, request.max_width)
        except Exception:  # the one broad catch of the display adapter: the panel stays up
            logger.exception("screenshot failed")
            png = None
        with self.lock:
            self.service.screenshot_taken(request.sid, request.re, png)
        self.poke()

    async def _compute_offer(self, request: ComputeOffer) -> None:
        """Run a ``pair_start``'s SPAKE2 on the pairing worker, off the loop and the lock."""
        result: OfferKeys | Exception
        try:
            result = await asyncio.to_thread(self.service.pairing_worker.compute, request.offer.job)
        except Exception as exc:  # a bad SPAKE2 message, or a failed worker: the service answers
            result = exc
        with self.lock:
            self.service.offer_computed(request, result)
        self.poke()

    async def _run_timer(self) -> None:
        service = self.service
        while not self._stopping:
            self._wake.clear()
            with self.lock:
                self._timer_deadline = service.next_deadline_s()
                delay = self._timer_deadline - service.clock.monotonic()
            if self._stopping:
                return
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
            try:
                with self.lock:
                    service.tick()
            except Exception:  # the one broad catch of the timer loop
                logger.exception("kiosk tick failed")
            self._flush()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("kiosk task %s failed", task.get_name(), exc_info=task.exception())
