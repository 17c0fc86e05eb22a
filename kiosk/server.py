"""The websocket adapter of the kiosk: frames in, :class:`KioskService` calls, frames out.

Runs on an asyncio loop (the kiosk's network thread). Each connection gets a session
in the service and a writer task with its own queue, so a slow controller never holds
up the others. Blob chunks go to a bounded queue and are hashed and written on one
worker thread while the loop goes on decrypting and parsing the next frames
(:mod:`kiosk.chunk_queue`; hashing and file writes release the GIL, so a transfer uses
both cores); a connection's other frames wait for its queued chunks, so each
connection's frames are handled in order. A lock keeps every call into the service one
at a time. Limits: ``max_size`` is ``MAX_FRAME_BYTES`` (a larger frame closes the
connection with 1009), compression is off (media does not compress), the path must be
``/v1`` and the subprotocol ``classcast.v1``.

Connections (``docs/security.md``): the listening socket hands every accepted TCP
connection to a :class:`~kiosk.connections.ConnectionTable` before TLS costs anything,
and the table says which unauthenticated connection to drop to make room; dropped and
timed-out connections are closed here. A connection that does not read what it is sent
is aborted once its backlog is over the limit. Trouble is logged once per cause per
interval (:class:`~kiosk.connections.LogLimiter`), never once per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
import gc
import http
import logging
import resource
import socket
import ssl as ssl_module
import threading
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

from kiosk.chunk_queue import ChunkQueue
from kiosk.connections import (
    Cause,
    ConnectionLimits,
    ConnectionTable,
    Stage,
    fit_to_open_files,
)
from kiosk.service import CaptureScreen, CloseSession, ComputeOffer, KioskService, Outgoing
from protocol import limits
from protocol.codec import (
    Chunk,
    decode,
    decode_chunk,
    decode_stream_frame,
    encode,
    is_stream_frame,
    request_id,
)
from protocol.constants import SUBPROTOCOL, WS_PATH
from protocol.errors import MalformedMessageError
from protocol.pairing import OfferKeys
from protocol.sources import LogLimiter

logger = logging.getLogger(__name__)

POLICY_VIOLATION = 1008

LISTEN_BACKLOG = 4096
"""Connections the kernel queues for accept (capped by ``net.core.somaxconn``): a flood
waits there, costing the kiosk nothing, and a teacher's connection is not dropped."""

ACCEPTS_PER_TICK = 8
"""Connections accepted per turn of the event loop, so that a flood of new connections
never starves the handshakes, and the teacher's requests, already under way."""

DEFER_ACCEPT_S = 5
"""Linux keeps a connection that sent nothing yet (no TLS hello) in the kernel this long
before handing it over (``TCP_DEFER_ACCEPT``): half-open connections cost nothing."""

COLLECT_EVERY_CLOSES = 128
"""A connection that fails inside asyncio's TLS layer (a handshake cut short, say) leaves
a reference cycle holding its 256 KiB TLS buffer, which only a full garbage collection
frees; so one runs after this many connections have closed."""

MESSAGES_PER_TURN = 8
"""Frames of one connection handled in a row before the loop turns to the others: a
connection whose frames arrive by the hundred (a flood, a burst) cannot hold a teacher's
control back behind more than this many."""

TRIM_AFTER_PEAK = 64
TRIM_BELOW = 8
"""After a crowd of at least TRIM_AFTER_PEAK connections shrinks to TRIM_BELOW, what it
held is collected and given back to the system (:func:`release_free_memory`)."""

_ws_logger = logging.getLogger(f"{__name__}.websockets")
"""websockets logs each connection opened and closed at INFO: keep only its warnings."""
_ws_logger.setLevel(logging.WARNING)


def _run_all(runs: list[Callable[[], None]]) -> None:
    for run in runs:
        run()


class _Peer:
    """One open websocket: its session, its socket's key in the table, its send backlog."""

    def __init__(self, ws: ServerConnection, sid: int, key: int | None) -> None:
        self.ws = ws
        self.sid = sid
        self.key = key
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.backlog_bytes = 0
        self.stage = Stage.SECURED
        self.closing = False
        """Told to close: nothing more is sent or handled."""
        self.writer: asyncio.Task[None] | None = None
        self.sending = False
        """The writer task is in a send (waiting for the socket to take more)."""
        self.closer: asyncio.Task[None] | None = None
        """The close the kiosk began (close frame, then abort if it does not finish)."""

    async def write(self) -> None:
        while True:
            frame = await self.queue.get()
            self.backlog_bytes -= len(frame)
            self.sending = True
            try:
                await self.ws.send(frame)
            finally:
                self.sending = False

    def write_now(self, frames: list[str]) -> bool:
        """Write ``frames`` to the socket now, in one TLS write; False (nothing written)
        when they must wait behind frames queued before them or a socket that takes no
        more, or the connection is not open.

        A control's status push and ``ok`` then cost one encryption and one ``send``
        instead of two, with no hop through the writer task.
        """
        ws = self.ws
        protocol = ws.protocol
        if (
            self.sending
            or not self.queue.empty()
            or ws.paused
            or ws.send_in_progress is not None
            or protocol.state is not State.OPEN
        ):
            return False
        for frame in frames:
            protocol.send_text(frame.encode())
        ws.transport.writelines(protocol.data_to_send())
        return True

    def stop_writing(self) -> None:
        self.closing = True
        if self.writer is not None:
            self.writer.cancel()
        self.queue = asyncio.Queue()
        self.backlog_bytes = 0


class _ConnectionSocket(socket.socket):
    """An accepted socket that reports its closing (asyncio's transport closes it)."""

    key = -1
    on_close: Callable[[int], None] | None = None

    def close(self) -> None:
        on_close, self.on_close = self.on_close, None
        if on_close is not None:
            on_close(self.key)
        super().close()


class _ListeningSocket(socket.socket):
    """The listening socket: each connection asyncio accepts is first put to ``admit``,
    and at most ACCEPTS_PER_TICK are accepted per turn of the event loop."""

    admit: Callable[[_ConnectionSocket, Any], bool] | None = None
    send_buffer_bytes = 0
    """``SO_SNDBUF`` of each accepted connection (0: the kernel's own)."""
    _accepted_this_tick = 0

    def accept(self) -> tuple[socket.socket, Any]:
        while True:
            if self._accepted_this_tick >= ACCEPTS_PER_TICK:
                raise BlockingIOError  # asyncio comes back on the next turn of the loop
            plain, address = super().accept()  # BlockingIOError: nobody is waiting
            if self._accepted_this_tick == 0:
                asyncio.get_running_loop().call_soon(self._new_tick)
            self._accepted_this_tick += 1
            conn = _ConnectionSocket(plain.family, plain.type, plain.proto, fileno=plain.detach())
            conn.key = conn.fileno()
            if self.send_buffer_bytes:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer_bytes)
            if self.admit is None or self.admit(conn, address):
                return conn, address

    def _new_tick(self) -> None:
        self._accepted_this_tick = 0


class WebsocketServer:
    """Serves :class:`KioskService` over websockets on ``host``:``port`` (0 = any free port).

    Call :meth:`start`, then read :attr:`port`; call :meth:`stop` to close every
    connection and the listening socket. ``connection_limits`` defaults to the
    constants of :mod:`protocol.limits` (tests pass smaller ones).
    """

    def __init__(
        self,
        service: KioskService,
        host: str,
        port: int,
        *,
        ssl: ssl_module.SSLContext | None = None,
        connection_limits: ConnectionLimits | None = None,
    ) -> None:
        self.service = service
        self._ssl = ssl
        self.host = host
        self.port = port
        self.connections = ConnectionTable(connection_limits or ConnectionLimits())
        """Every connection from its TCP accept to its close (read it on the loop)."""
        self._server: Server | None = None
        self._peers: dict[int, _Peer] = {}
        self._by_key: dict[int, _Peer] = {}
        self._sockets: dict[int, _ConnectionSocket] = {}
        self._wake = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._sweep_wake = asyncio.Event()
        self._sweep_at = float("inf")
        self._log_limiter = LogLimiter()
        self._writers: set[asyncio.Task[None]] = set()
        self._after_replies: list[Callable[[], None]] = []
        self._stopping = False
        self._timer_deadline = float("-inf")
        self._peak = 0
        self._closed_since_collect = 0
        self._release_at = float("inf")
        self.lock = threading.Lock()
        """Held for every call into the service (the loop's, and chunks' on a worker)."""
        self.chunks = ChunkQueue(self._chunk, self.poke)
        """Received chunks waiting for the worker that hashes and writes them."""

    @property
    def limits(self) -> ConnectionLimits:
        return self.connections.limits

    async def start(self) -> None:
        """Listen; afterwards :attr:`port` is the bound port."""
        self._fit_to_open_file_limit()
        self.chunks.start()
        listener = _listen(self.host, self.port)
        listener.admit = self._admit
        listener.send_buffer_bytes = self.limits.send_buffer_bytes
        ws_logger = _ws_logger
        secured = self._secured

        class Connection(ServerConnection):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                secured(transport)

        self._server = await serve(
            self._handle,
            sock=listener,
            backlog=LISTEN_BACKLOG,
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            compression=None,
            max_size=limits.MAX_FRAME_BYTES,
            process_request=self._check_path,
            ssl=self._ssl,
            open_timeout=self.limits.handshake_timeout_s,
            close_timeout=self.limits.close_timeout_s,
            ssl_handshake_timeout=self.limits.handshake_timeout_s if self._ssl else None,
            logger=ws_logger,
            create_connection=Connection,
        )
        self.port = listener.getsockname()[1]
        self._timer = asyncio.create_task(self._run_timer(), name="kiosk-timer")
        self._timer.add_done_callback(_log_failure)
        self._sweeper = asyncio.create_task(self._run_sweeper(), name="kiosk-connections")
        self._sweeper.add_done_callback(_log_failure)
        logger.info("listening on ws://%s:%d%s", self.host, self.port, WS_PATH)

    async def stop(self) -> None:
        """Close all connections and stop listening."""
        self._stopping = True
        for task in (self._timer, self._sweeper):
            if task is not None:
                # A flag, not only cancel(): wait_for may swallow a cancel that races the wake.
                self._wake.set()
                self._sweep_wake.set()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._server is not None:
            self._server.close()
            try:
                async with asyncio.timeout(self.limits.close_timeout_s * 2):
                    await self._server.wait_closed()
            except TimeoutError:  # peers that do not read cannot be closed politely
                for peer in list(self._peers.values()):
                    peer.ws.transport.abort()
                for sock in list(self._sockets.values()):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                await self._server.wait_closed()
        for writer in list(self._writers):
            writer.cancel()
        await asyncio.gather(*self._writers, return_exceptions=True)
        await self.chunks.stop()

    def poke(self) -> None:
        """Flush the service's outbox and wake the timer if its deadline moved earlier.

        Call on the loop after every call into the service.
        """
        self._flush()
        with self.lock:
            deadline = self.service.next_deadline_s()
        if deadline < self._timer_deadline:
            self._wake.set()

    # ----------------------------------------------------------------- connections

    def _fit_to_open_file_limit(self) -> None:
        """Raise the descriptor limit to its maximum and keep the connection cap under it."""
        soft = raise_open_file_limit()
        fitted = fit_to_open_files(self.limits, soft)
        if fitted != self.limits:
            logger.warning(
                "the open-file limit (%d) allows only %d connections, not %d: raise LimitNOFILE",
                soft,
                fitted.max_connections,
                self.limits.max_connections,
            )
            self.connections = ConnectionTable(fitted)

    def _admit(self, conn: _ConnectionSocket, address: Any) -> bool:
        """A TCP connection was accepted (on the loop): make room for it, or refuse it."""
        now = time.monotonic()
        host = str(address[0]) if isinstance(address, tuple) else ""
        try:
            silent = not conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)  # b"": closed
        except BlockingIOError:
            silent = True
        except OSError:
            conn.close()
            return False
        self._sockets[conn.key] = conn
        conn.on_close = self._socket_closed
        accepted = True
        for key, cause in self.connections.admit(conn.key, host, now, silent=silent):
            if key == conn.key:
                self._log(cause, now, "refused a connection from %s: every slot is paired", host)
                conn.close()
                accepted = False
            else:
                self._drop(key, cause, now)
        self._peak = max(self._peak, len(self.connections))
        self._reschedule(conn.key)
        return accepted

    def _socket_closed(self, key: int) -> None:
        self.connections.forget(key)
        self._sockets.pop(key, None)
        self._closed_since_collect += 1
        if self._peak >= TRIM_AFTER_PEAK and len(self.connections) <= TRIM_BELOW:
            # The crowd has gone: give its memory back once the last of it is closed.
            self._peak = 0
            self._release_at = time.monotonic() + self.limits.close_timeout_s
            self._sweep_wake.set()
        elif self._closed_since_collect >= COLLECT_EVERY_CLOSES:
            self._closed_since_collect = 0
            gc.collect()

    def _drop(self, key: int, cause: Cause, now: float) -> None:
        """Close connection ``key`` for ``cause`` (evicted or timed out)."""
        peer = self._by_key.get(key)
        address = peer.ws.remote_address[0] if peer and peer.ws.remote_address else "?"
        if cause == Cause.UNAUTHENTICATED_TIMEOUT and peer is not None:
            self._log(cause, now, "closed a connection from %s: no token in time", address)
            reason = (
                f"not paired within {self.limits.unauthenticated_timeout_s:g} s "
                f"({self.limits.pairing_timeout_s:g} s while pairing): pair first"
            )
            self._close_peer(peer, POLICY_VIOLATION, reason)
            return
        self._log(cause, now, "dropped a connection (%s)", cause.value)
        if peer is not None:
            peer.stop_writing()
            peer.ws.transport.abort()
        else:
            sock = self._sockets.get(key)
            if sock is not None:  # still in its handshakes: its transport sees EOF and closes
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _secured(self, transport: asyncio.BaseTransport) -> None:
        """TLS is done on a connection (websockets' ``connection_made``)."""
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.fileno() in self.connections:
            self.connections.advance(sock.fileno(), Stage.SECURED, time.monotonic())

    def _advance(self, peer: _Peer, stage: Stage) -> None:
        if peer.stage == stage:
            return
        if stage == Stage.AUTHENTICATED:
            _set_frame_limit(peer.ws, limits.MAX_FRAME_BYTES)
        elif peer.stage in (Stage.AUTHENTICATED, Stage.SECURED):
            _set_frame_limit(peer.ws, self.limits.max_unauthenticated_frame_bytes)
        peer.stage = stage
        if peer.key is not None:
            self.connections.advance(peer.key, stage, time.monotonic())
            self._reschedule(peer.key)

    def _sync_stage(self, peer: _Peer) -> None:
        service, sid = self.service, peer.sid
        with self.lock:
            if service.is_authenticated(sid):
                stage = Stage.AUTHENTICATED
            elif service.is_pairing(sid):
                stage = Stage.PAIRING
            elif service.is_greeted(sid):
                stage = Stage.GREETED
            else:
                stage = Stage.OPEN
        self._advance(peer, stage)

    def _reschedule(self, key: int) -> None:
        if self.connections.deadline(key) < self._sweep_at:
            self._sweep_wake.set()

    async def _run_sweeper(self) -> None:
        """Close connections whose time is up; log what the log limiter held back."""
        while not self._stopping:
            now = time.monotonic()
            for key, cause in self.connections.expired(now):
                self._drop(key, cause, now)
            for what, count in self._log_limiter.overdue(now):
                logger.warning("%d more like the last line (%s)", count, what)
            if now >= self._release_at:
                self._release_at = float("inf")
                self._closed_since_collect = 0
                release_free_memory()
            self._sweep_wake.clear()
            self._sweep_at = min(
                self.connections.next_deadline(), self._log_limiter.next_due(), self._release_at
            )
            delay = self._sweep_at - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._sweep_wake.wait(), min(delay, 3600.0))

    def _log(self, cause: str, now: float, msg: str, *args: object) -> None:
        """Log ``msg`` unless ``cause`` was logged less than an interval ago (then count it)."""
        suppressed = self._log_limiter.allow(cause, now)
        if suppressed is None:
            return
        if suppressed:
            msg += f" ({suppressed} more like it since the last such line)"
        logger.warning(msg, *args)

    def _close_peer(self, peer: _Peer, code: int, reason: str) -> None:
        """Close with ``code`` and ``reason`` at once (what is queued is dropped); abort if
        the peer has not completed the close within the close timeout."""
        if peer.closing:
            return
        peer.stop_writing()
        peer.closer = self._start(
            self._close_politely(peer, code, reason), f"kiosk-close-{peer.sid}"
        )

    async def _close_politely(self, peer: _Peer, code: int, reason: str) -> None:
        """Send the close frame with ``reason``; abort if the close does not finish in time.

        The connection's frames are no longer consumed once it is closing (see
        :meth:`_handle`), so websockets pauses reading after ``max_queue`` frames: a
        flooder that goes on sending costs no parsing while its close runs out.
        """
        try:
            async with asyncio.timeout(self.limits.close_timeout_s):
                await peer.ws.close(code, reason)
        except TimeoutError:
            peer.ws.transport.abort()

    def _abort_not_reading(self, peer: _Peer) -> None:
        peer.stop_writing()
        peer.ws.transport.abort()
        address = peer.ws.remote_address[0] if peer.ws.remote_address else "?"
        self._log(
            "not reading",
            time.monotonic(),
            "aborted session %d from %s: it does not read its messages",
            peer.sid,
            address,
        )

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
        """Hand one chunk to the service (on the chunk worker's thread).

        Before a blob's last chunk its bytes so far are written to disk without the
        lock (``BlobStore.flush``): the commit's fsync under the lock is then short, and
        the loop, which takes the lock for every other frame, does not wait for the disk.
        """
        store = self.service.store
        try:
            # A dict read, safe without the lock: a stale answer costs a flush, no more.
            end = store.reservation(chunk.sha256)
            if end and chunk.offset_bytes + len(chunk.data) == end:
                with contextlib.suppress(OSError):  # the commit fsyncs again, and reports
                    store.flush(chunk.sha256)
            with self.lock:
                self.service.handle_chunk(sid, chunk)
        except Exception:  # one bad chunk must not stop the kiosk (as for any frame)
            if self._log_limiter.allow("frame failed", time.monotonic()) is not None:
                logger.exception("session %d: failed to handle a chunk", sid)
            with self.lock:
                self.service.handle_failure(sid, None)

    def _start(self, coro: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._writers.add(task)
        task.add_done_callback(self._writers.discard)
        return task

    async def _handle(self, ws: ServerConnection) -> None:
        service = self.service
        remote = ws.remote_address
        address = str(remote[0]) if remote else ""
        with self.lock:
            sid = service.open_session(address)
        sock = ws.transport.get_extra_info("socket")
        key = sock.fileno() if sock is not None else None
        peer = _Peer(ws, sid, key if key in self.connections else None)
        self._peers[sid] = peer
        if peer.key is not None:
            self._by_key[peer.key] = peer
        self._advance(peer, Stage.OPEN)
        peer.writer = asyncio.create_task(peer.write(), name=f"kiosk-writer-{sid}")
        self._writers.add(peer.writer)
        peer.writer.add_done_callback(self._writers.discard)
        in_a_row = 0
        try:
            async for frame in ws:
                # A frame already received does not make the loop turn: take the other
                # connections' turn when this one's keep coming without a pause.
                if len(ws.recv_messages.frames):
                    in_a_row += 1
                    if in_a_row >= MESSAGES_PER_TURN:
                        in_a_row = 0
                        await asyncio.sleep(0)
                else:
                    in_a_row = 0
                if peer.closing:
                    # Stop consuming: websockets then pauses reading (its max_queue), so
                    # what a flooder sends after its close costs nothing to parse.
                    break
                if not self._within_budget(peer, frame):
                    continue
                bad_chunk: MalformedMessageError | None = None
                if not isinstance(frame, str) and not is_stream_frame(frame):
                    try:
                        chunk = decode_chunk(frame)
                    except MalformedMessageError as exc:
                        bad_chunk = exc  # answered below, after the chunks before it
                    else:
                        # Hashed and written on the worker, which pokes when done.
                        await self.chunks.put(sid, chunk)
                        continue
                if self.chunks.pending(sid):
                    await self.chunks.settled(sid)
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
                            self._sync_stage(peer)
                    elif is_stream_frame(frame):
                        try:
                            picture = decode_stream_frame(frame)
                        except MalformedMessageError as exc:
                            with self.lock:
                                service.handle_malformed(sid, None, exc)
                        else:
                            with self.lock:
                                service.handle_stream(sid, picture)
                    elif bad_chunk is not None:
                        with self.lock:
                            service.handle_malformed(sid, None, bad_chunk)
                except Exception:  # the one broad catch: one bad frame must not stop the kiosk
                    now = time.monotonic()
                    if self._log_limiter.allow("frame failed", now) is not None:
                        logger.exception("session %d: failed to handle a frame", sid)
                    with self.lock:
                        service.handle_failure(
                            sid, request_id(frame) if isinstance(frame, str) else None
                        )
                self.poke()
        except ConnectionClosed:
            pass
        finally:
            # The session's queued chunks are handled before it ends (their bytes kept,
            # resumable), as if the connection had been read to its end.
            cancelled = False
            if self.chunks.pending(sid):
                try:
                    await asyncio.shield(self.chunks.settled(sid))
                except asyncio.CancelledError:
                    cancelled = True  # end the session all the same, then stop
            with self.lock:
                service.close_session(sid)
            self._peers.pop(sid, None)
            if peer.key is not None:
                self._by_key.pop(peer.key, None)
            peer.stop_writing()
            self.poke()
            if peer.closer is not None:
                # Returning would let websockets close with 1000 before the kiosk's
                # close frame (with its code and reason) is out: wait for that close.
                await asyncio.shield(peer.closer)
            if cancelled:
                raise asyncio.CancelledError

    def _within_budget(self, peer: _Peer, frame: str | bytes) -> bool:
        """Charge an unauthenticated peer's byte budget; closes it when spent."""
        if peer.stage == Stage.AUTHENTICATED or peer.key is None:
            return True
        size = len(frame.encode()) if isinstance(frame, str) else len(frame)
        if self.connections.charge(peer.key, size, time.monotonic()):
            return True
        self._log("byte budget", time.monotonic(), "closing session %d: too many bytes", peer.sid)
        reason = (
            f"more than {self.limits.unauthenticated_bytes_per_s:g} bytes per second before pairing"
        )
        self._close_peer(peer, POLICY_VIOLATION, reason)
        return False

    def after_replies(self, run: Callable[[], None]) -> None:
        """Call ``run`` on the loop once the frames of the message being handled are
        written to their sockets.

        For work that would otherwise compete with sending them (the usage writer's
        hand-over, :meth:`kiosk.usage_writer.UsageWriter.hand_over_through`). Call it on
        the loop, during a call into the service; off the loop, ``run`` runs at once.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            run()  # not on a loop: nothing is being sent from here
            return
        if not self._after_replies:
            loop.call_soon(self._after_this_turn, loop)
        self._after_replies.append(run)

    def _after_this_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        # The peers' writer tasks the turn's poke woke were scheduled after this
        # callback and before the one below; each writes its frames to the socket in
        # its first step (the loop runs callbacks in the order they were scheduled).
        runs, self._after_replies = self._after_replies, []
        loop.call_soon(_run_all, runs)

    def _flush(self) -> None:
        with self.lock:
            outgoing = self.service.drain()
        paired: list[_Peer] | None = None
        frames: dict[_Peer, list[str]] = {}
        for out in outgoing:
            match out:
                case CaptureScreen():
                    self._start(self._capture(out), "screenshot")
                case ComputeOffer():
                    self._start(self._compute_offer(out), "pairing")
                case CloseSession():
                    self._close_session(out)
                case Outgoing(sid=None):
                    if paired is None:
                        paired = self._paired_peers()
                    frame = encode(out.message)
                    for peer in paired:
                        frames.setdefault(peer, []).append(frame)
                case Outgoing(sid=int() as sid):
                    target = self._peers.get(sid)
                    if target is not None:
                        frames.setdefault(target, []).append(encode(out.message))
        # Each peer's frames go out together: a pushed status and the ok after it are
        # one TLS write. A peer told to close meanwhile gets none (as when queued).
        for peer, batch in frames.items():
            if peer.closing or peer.write_now(batch):
                continue
            for frame in batch:
                self._send(peer, frame)

    def _close_session(self, close: CloseSession) -> None:
        peer = self._peers.get(close.sid)
        if peer is None or peer.closing:
            return
        self._log(close.reason, time.monotonic(), "closing session %d: %s", close.sid, close.reason)
        self._close_peer(peer, close.code, close.reason)

    def _paired_peers(self) -> list[_Peer]:
        """Peers that receive pushed events: those with a valid grant."""
        with self.lock:
            self.service.refresh_grants()
            return [p for s, p in self._peers.items() if self.service.is_authenticated(s)]

    def _send(self, peer: _Peer, frame: str) -> None:
        if peer.closing:
            return
        lim = self.limits
        if (
            peer.queue.qsize() >= lim.max_send_backlog_messages
            or peer.backlog_bytes + len(frame) > lim.max_send_backlog_bytes
        ):
            self._abort_not_reading(peer)
            return
        peer.backlog_bytes += len(frame)
        peer.queue.put_nowait(frame)

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


def raise_open_file_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit; returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


def release_free_memory() -> None:
    """Collect garbage and give free heap memory back to the system (glibc ``malloc_trim``).

    Called when a crowd of connections has gone: their TLS buffers are freed into the
    heap, and glibc keeps them otherwise.
    """
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        fn: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return fn


def _listen(host: str, port: int) -> _ListeningSocket:
    """A bound listening socket (host "" or "0.0.0.0": every IPv4 address; "::": all)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or "0.0.0.0", port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = _ListeningSocket(family, kind, proto or socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "TCP_DEFER_ACCEPT"):  # Linux: wake us only once data arrived
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_ACCEPT_S)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def _set_frame_limit(ws: ServerConnection, size_bytes: int) -> None:
    """Largest frame ``ws`` accepts from now on (websockets reads it for each frame)."""
    ws.protocol.max_message_size = size_bytes


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("kiosk task %s failed", task.get_name(), exc_info=task.exception())
