"""``KioskClient``: one controller connection to one kiosk.

Usage::

    async with await KioskClient.connect("127.0.0.1:47810", identity) as kiosk:
        result = await kiosk.cast(load_lesson(Path("lesson")))
        await kiosk.control("next")
        print((await kiosk.status()).item_title)

Every request waits for its reply and raises a :class:`~protocol.errors.RemoteError`
(the subclass :data:`~protocol.errors.REMOTE_ERRORS` names for the kiosk's code, such
as ``BusyError``) when the kiosk answers ``error``, or
:class:`~protocol.errors.ConnectionFailedError` when the kiosk cannot be reached or
goes away. Status events the kiosk pushes update :attr:`KioskClient.last_status` and
are passed to ``on_status``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidMessage, InvalidURI
from websockets.protocol import State
from websockets.typing import Subprotocol

from media.chunks import chunk_ranges
from media.lesson import Lesson
from protocol import limits
from protocol.codec import chunk_header, decode, encode
from protocol.constants import (
    CHUNK_HEADER_BYTES,
    DEFAULT_PORT,
    PROTOCOL_VERSION,
    SUBPROTOCOL,
    WS_PATH,
)
from protocol.errors import (
    CertificateChangedError,
    ClassCastError,
    ConnectionFailedError,
    MalformedMessageError,
    RemoteError,
    UnexpectedMessageError,
    remote_error,
)
from protocol.messages import (
    Announce,
    AnnouncementLevel,
    BlobNeed,
    BlobStored,
    Cast,
    ClearAnnouncement,
    Control,
    ControlAction,
    Error,
    GetStatus,
    Hello,
    KeyframeRequest,
    Message,
    Need,
    Ok,
    PairConfirm,
    Paired,
    PairOffer,
    PairStart,
    Prepare,
    Reply,
    Role,
    Screenshot,
    ShareStart,
    ShareStop,
    Status,
    StatusSnapshot,
    TakeScreenshot,
    TimePing,
    TimePong,
    Unpair,
    UsageBatch,
    UsagePull,
    Welcome,
)
from protocol.pairing import ControllerPairing, cert_fingerprint

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0

CONNECT_ATTEMPTS = 3
"""Tries of the TLS and websocket handshakes when the kiosk drops them half-way: a panel
crowded with unpaired connections makes room by dropping the least active ones, and a
newcomer still in its handshake may be one of them (docs/security.md)."""

CONNECT_RETRY_S = 0.1
"""Pause before the second try; it doubles before each further one."""
"""How long a request waits for its reply (a transfer waits per chunk, not in total)."""

WRITE_LIMIT_BYTES: Final = 4 * limits.SEND_CHUNK_BYTES
"""Bytes a connection holds encrypted and not yet taken by the socket before ``send``
waits (the websocket's write limit; one frame larger than this still goes out whole).

Four chunk frames keep the socket fed. More does not send faster: the TLS layer keeps
what the socket has not taken in one growing buffer, which copies and clears itself
each time it grows, and the bytes come out of it in blocks as big as it got. With 4 MiB
the controller touched 300-420 fresh pages per MB it sent and spent about twice the CPU
per MB (``bench.transfer``: 2.0-2.5 against 0.9-1.25 ms/MB)."""

CLOCK_OFFSET_FRESH_S = 60.0
"""A kiosk's measured clock offset is reused this long (clocks drift by far less than a
millisecond a minute); a ``cast`` or a control at an instant measures it again after."""

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes sent so far, bytes to send in all)."""


@dataclass(frozen=True, slots=True)
class ControllerIdentity:
    """Who this controller is: a stable id and the teacher's display name."""

    controller_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Credentials:
    """What pairing gave this controller for one kiosk: a token and the pinned certificate."""

    token: str
    fingerprint: str
    role: Role


@dataclass(frozen=True, slots=True)
class CastResult:
    """What a ``cast`` or ``prepare`` transferred."""

    blobs_sent: int
    bytes_sent: int
    bytes_total: int
    late_ms: int | None = None
    """For a ``cast`` with ``start_at_ms``: how many ms after that instant the kiosk got
    it (it started at once, late); None when on time."""


def kiosk_url(address: str) -> str:
    """Turn ``HOST``, ``HOST:PORT``, ``[v6]:PORT`` or a ``ws://`` URL into a kiosk URL."""
    if address.startswith("wss://"):
        return address if address.rstrip("/").endswith(WS_PATH) else address.rstrip("/") + WS_PATH
    host, port = split_host_port(address.removeprefix("ws://"))
    if ":" in host:
        host = f"[{host}]"
    return f"wss://{host}:{port}{WS_PATH}"


def client_ssl_context() -> ssl.SSLContext:
    """TLS without CA checks: kiosks have self-signed certificates, pinned at pairing."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def split_host_port(address: str) -> tuple[str, int]:
    """Split ``HOST[:PORT]`` (``[v6][:PORT]`` for IPv6); the port defaults to DEFAULT_PORT.

    Raises:
        ValueError: the port is not a number from 1 to 65535, the host is empty, or an
            IPv6 address's ``[`` is not closed.
    """
    host, port_text = address, ""
    if address.startswith("["):
        host, bracket, rest = address[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"bad IPv6 address in {address!r}")
        port_text = rest.removeprefix(":")
    elif address.count(":") == 1:
        host, _, port_text = address.partition(":")
    if not host:
        raise ValueError(f"no host in {address!r}")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port in {address!r}")
    return host, int(port_text)


def _address_of(url: str) -> str:
    """``HOST:PORT`` of a ``wss://HOST:PORT/v1`` URL (for error messages)."""
    return url.removeprefix("wss://").partition("/")[0]


async def open_connection(url: str, timeout_s: float) -> ClientConnection:
    """Open the TLS websocket to ``url`` with a controller's options (among them
    :data:`WRITE_LIMIT_BYTES`), trying again (up to ``CONNECT_ATTEMPTS``) when
    the kiosk drops the handshake half-way.

    Raises:
        ConnectionFailedError: unreachable, refused, or dropped on every try.
    """
    delay_s = CONNECT_RETRY_S
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        try:
            return await connect(
                url,
                ssl=client_ssl_context(),
                subprotocols=[Subprotocol(SUBPROTOCOL)],
                compression=None,
                max_size=limits.MAX_FRAME_BYTES,
                open_timeout=timeout_s,
                proxy=None,
                write_limit=WRITE_LIMIT_BYTES,
            )
        except (InvalidMessage, ConnectionResetError, BrokenPipeError, ssl.SSLEOFError) as exc:
            if attempt == CONNECT_ATTEMPTS:
                raise ConnectionFailedError(
                    f"cannot connect to {url}: {exc}", address=_address_of(url)
                ) from None
            logger.info("%s dropped the handshake (%s); trying again", url, exc)
            await asyncio.sleep(delay_s)
            delay_s *= 2
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise ConnectionFailedError(
                f"cannot connect to {url}: {exc}",
                address=_address_of(url),
                reason="refused" if isinstance(exc, InvalidHandshake) else "unreachable",
            ) from None
    raise AssertionError("unreachable")


class KioskClient:
    """A greeted connection to one kiosk; create it with :meth:`connect`."""

    def __init__(
        self,
        ws: ClientConnection,
        url: str,
        timeout_s: float,
        identity: ControllerIdentity,
        fingerprint: str,
    ) -> None:
        self._ws = ws
        self.url = url
        self.timeout_s = timeout_s
        self.identity = identity
        self.fingerprint = fingerprint
        """sha256 of the certificate this connection sees."""
        self.welcome: Welcome | None = None
        self.role: Role | None = None
        self._last_status: StatusSnapshot | None = None
        self._pushed_status: str | None = None
        """The latest status push, not decoded until :attr:`last_status` is read."""
        self.on_status: Callable[[StatusSnapshot], None] | None = None
        self.on_keyframe_request: Callable[[int], None] | None = None
        """Called with the stream id when the kiosk asks for a keyframe (screen share)."""
        self.on_share_error: Callable[[str], None] | None = None
        """Called with the message of an ``error`` ``no_share`` pushed for a stream frame."""
        self._next_id = 1
        self._replies: dict[int, asyncio.Queue[Reply]] = {}
        """Requests answered by several messages (a transfer): their replies in order."""
        self._waiting: dict[int, asyncio.Future[Reply]] = {}
        """Requests answered by one message: the future of that reply."""
        self._closed_reason: str | None = None
        self._status_waiters: list[asyncio.Future[None]] = []
        self.clock_offset_ms: int | None = None
        """How far the kiosk's wall clock is ahead of this computer's, as last measured
        (:meth:`measure_clock_offset`); None until then."""
        self.round_trip_ms: float | None = None
        """The shortest round trip of that measurement."""
        self._offset_at_s = float("-inf")
        self._reader = asyncio.create_task(self._read(), name=f"client-reader {url}")

    @classmethod
    async def connect(
        cls,
        address: str,
        identity: ControllerIdentity,
        *,
        credentials: Credentials | None = None,
        fingerprint: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> Self:
        """Connect to the kiosk at ``address`` over TLS and say hello.

        With ``credentials`` (from pairing) the certificate must be the pinned one and
        the token is sent; ``fingerprint`` alone (from mDNS) only checks the
        certificate. Without either, only :meth:`pair` and :meth:`status`-free calls
        are allowed by the kiosk.

        Raises:
            CertificateChangedError: the kiosk's certificate is not the expected one;
                nothing was sent.
            ConnectionFailedError: the kiosk is unreachable, refused the handshake, or
                speaks another protocol version.
        """
        url = kiosk_url(address)
        ws = await open_connection(url, timeout_s)
        ssl_object = ws.transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        seen = cert_fingerprint(der) if der else ""
        expected = credentials.fingerprint if credentials is not None else fingerprint
        if expected is not None and seen != expected:
            await ws.close()
            raise CertificateChangedError(
                f"{url} presented a different certificate than when it was paired "
                f"(expected {expected[:16]}…, got {seen[:16]}…): if the panel was "
                "reinstalled, unpair and pair again; otherwise the connection is intercepted",
                expected=expected,
                got=seen,
            )
        client = cls(ws, url, timeout_s, identity, seen)
        try:
            reply = await client._request(
                Hello(
                    id=client._new_id(),
                    protocol_version=PROTOCOL_VERSION,
                    controller_id=identity.controller_id,
                    controller_name=identity.name,
                    token=credentials.token if credentials is not None else None,
                )
            )
        except RemoteError as exc:
            await client.close()
            raise ConnectionFailedError(
                f"{url} refused hello: {exc}", address=_address_of(url), reason="refused"
            ) from None
        except BaseException:
            await client.close()
            raise
        if not isinstance(reply, Welcome):
            await client.close()
            raise ConnectionFailedError(
                f"{url} answered hello with {reply.TYPE}",
                address=_address_of(url),
                reason="refused",
            )
        client.welcome = reply
        client.role = reply.role
        client.last_status = reply.status
        return client

    async def pair(self, secret: str, *, role: Role = "teacher") -> Credentials:
        """Pair with the PIN shown on the panel (or, for ``admin``, the admin secret).

        Returns the credentials to save; this connection is authorised from now on.

        Raises:
            BadPinError: wrong PIN (or admin secret).
            LockedError: too many wrong tries from this computer.
            TryLaterError: too many pairing attempts right now.
            RefusedError: under a guessing attack, the panel's user did not allow it.
            NotEnabledError: admin pairing is not configured on the panel.
            PairingError: the panel could not prove it knows the PIN (a relay).
        """
        assert self.welcome is not None
        exchange = ControllerPairing(
            secret,
            controller_id=self.identity.controller_id,
            kiosk_id=self.welcome.kiosk_id,
            fingerprint=self.fingerprint,
        )
        start = PairStart(
            id=self._new_id(), role=role, spake=base64.b64encode(exchange.start()).decode()
        )
        offer = await self._request(start)
        if not isinstance(offer, PairOffer):
            raise UnexpectedMessageError(f"kiosk answered pair_start with {offer.TYPE}")
        confirm = exchange.finish(_b64decode(offer.spake))
        paired = await self._request(
            PairConfirm(id=self._new_id(), confirm=base64.b64encode(confirm).decode())
        )
        if not isinstance(paired, Paired):
            raise UnexpectedMessageError(f"kiosk answered pair_confirm with {paired.TYPE}")
        exchange.verify_kiosk(_b64decode(paired.confirm))
        self.role = paired.role
        return Credentials(token=paired.token, fingerprint=self.fingerprint, role=paired.role)

    async def unpair(self) -> None:
        """Revoke this controller's token on the kiosk."""
        reply = await self._request(Unpair(id=self._new_id()))
        if not isinstance(reply, Ok):
            raise UnexpectedMessageError(f"kiosk answered unpair with {reply.TYPE}")
        self.role = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def name(self) -> str:
        """The kiosk's room, or its URL before hello."""
        return self.welcome.room if self.welcome else self.url

    @property
    def last_status(self) -> StatusSnapshot | None:
        """What the kiosk showed at its latest status (pushed, or in ``welcome``).

        A push is decoded when this is read (or at once for ``on_status`` and
        :meth:`wait_for_status`): a group control gets one push from every panel, and
        decoding them is not needed to count the acknowledgements.
        """
        raw, self._pushed_status = self._pushed_status, None
        if raw is not None:
            status = self._decode_status(raw)
            if status is not None:
                self._last_status = status
        return self._last_status

    @last_status.setter
    def last_status(self, status: StatusSnapshot | None) -> None:
        self._pushed_status = None
        self._last_status = status

    async def wait_closed(self, timeout_s: float | None = None) -> bool:
        """Wait until the kiosk closes the connection; False if ``timeout_s`` passed first."""
        done, _ = await asyncio.wait({self._reader}, timeout=timeout_s)
        return bool(done)

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader

    # ----------------------------------------------------------------- requests

    async def cast(
        self,
        lesson: Lesson,
        *,
        start_index: int = 0,
        start_at_ms: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> CastResult:
        """Send ``lesson`` (only the bytes the kiosk lacks) and start showing it.

        Raises:
            RemoteError: the kiosk refused the lesson or a blob, as one of its
                subclasses (for example ``RemoteChecksumError`` when a file changed
                while it was sent, ``NoSpaceError``, ``BusyError``).
        """
        # The kiosk may have no real-time clock: record how far off it is, so that
        # reports can correct the times of this lesson's usage records.
        # A panel further off than the protocol allows keeps its own time in its records
        # (0); the synchronised start still uses the measured offset.
        offset_ms = await self.clock_offset()
        logged_ms = offset_ms if abs(offset_ms) <= limits.MAX_CLOCK_OFFSET_MS else 0
        if logged_ms != offset_ms:
            logger.info("%s: clock %d ms off, beyond the protocol's bound", self.name, offset_ms)
        msg = Cast(
            id=self._new_id(),
            lesson=lesson.manifest(),
            start_index=start_index,
            start_at_ms=start_at_ms + offset_ms if start_at_ms is not None else None,
            clock_offset_ms=logged_ms,
        )
        return await self._transfer(msg, lesson, progress)

    async def prepare(
        self, lesson: Lesson, *, progress: ProgressCallback | None = None
    ) -> CastResult:
        """Send the media of ``lesson`` the kiosk lacks without changing what it shows."""
        msg = Prepare(id=self._new_id(), lesson=lesson.manifest())
        return await self._transfer(msg, lesson, progress)

    async def control(
        self,
        action: ControlAction,
        *,
        index: int | None = None,
        position_ms: int | None = None,
        volume: int | None = None,
        at_ms: int | None = None,
    ) -> int | None:
        """Apply a control command; returns once the kiosk's player applied it, or, with
        ``at_ms`` (this computer's wall clock, ms since the epoch), once the kiosk has
        scheduled it for that instant (converted to the kiosk's clock with
        :meth:`clock_offset`).

        Returns:
            How many ms after ``at_ms`` the kiosk got the command (it applied it at once,
            late): tell the user; None when on time or without ``at_ms``.
        """
        kiosk_at_ms = at_ms + await self.clock_offset() if at_ms is not None else None
        reply = await self._request(
            Control(
                id=self._new_id(),
                action=action,
                index=index,
                position_ms=position_ms,
                volume=volume,
                at_ms=kiosk_at_ms,
            )
        )
        if not isinstance(reply, Ok):
            raise UnexpectedMessageError(f"kiosk answered control with {reply.TYPE}")
        return reply.late_ms

    async def announce(
        self, text: str, *, level: AnnouncementLevel = "info", duration_s: int | None = None
    ) -> None:
        """Show an announcement on the panel (``alert`` covers the whole screen)."""
        reply = await self._request(
            Announce(id=self._new_id(), text=text, level=level, duration_s=duration_s)
        )
        if not isinstance(reply, Ok):
            raise UnexpectedMessageError(f"kiosk answered announce with {reply.TYPE}")

    async def clear_announcement(self) -> None:
        """Remove the announcement shown on the panel."""
        reply = await self._request(ClearAnnouncement(id=self._new_id()))
        if not isinstance(reply, Ok):
            raise UnexpectedMessageError(f"kiosk answered clear_announcement with {reply.TYPE}")

    async def screenshot(self, max_width: int = 480) -> bytes:
        """A PNG thumbnail of what the panel shows.

        Raises:
            NoScreenError: the kiosk runs without a window.
        """
        reply = await self._request(TakeScreenshot(id=self._new_id(), max_width=max_width))
        if not isinstance(reply, Screenshot):
            raise UnexpectedMessageError(f"kiosk answered take_screenshot with {reply.TYPE}")
        return _b64decode(reply.png)

    async def measure_clock_offset(self, samples: int = 3) -> int:
        """How many ms the kiosk's wall clock is ahead of this computer's (NTP-style).

        Takes the sample with the shortest round trip; its error is at most half of it.
        """
        best: tuple[float, int] | None = None
        for _ in range(samples):
            t0 = time.time() * 1000
            reply = await self._request(TimePing(id=self._new_id(), controller_ms=round(t0)))
            t1 = time.time() * 1000
            if not isinstance(reply, TimePong):
                raise UnexpectedMessageError(f"kiosk answered time_ping with {reply.TYPE}")
            offset = round(reply.kiosk_ms - (t0 + t1) / 2)
            if best is None or t1 - t0 < best[0]:
                best = (t1 - t0, offset)
        assert best is not None
        self.round_trip_ms, self.clock_offset_ms = best
        self._offset_at_s = time.monotonic()
        return best[1]

    async def clock_offset(self) -> int:
        """The kiosk's clock offset (:meth:`measure_clock_offset`), measured again when
        the last measurement is older than :data:`CLOCK_OFFSET_FRESH_S`."""
        if (
            self.clock_offset_ms is None
            or time.monotonic() - self._offset_at_s > CLOCK_OFFSET_FRESH_S
        ):
            return await self.measure_clock_offset()
        return self.clock_offset_ms

    async def share_start(self, stream_id: int, width: int, height: int, title: str) -> None:
        """Show this computer's screen on the panel (``share_start``); then send stream
        frames with :meth:`send_stream_frame`, the first a keyframe.

        Raises:
            BusyError: another teacher presents on the panel.
            RemoteError: the kiosk refused for another reason.
        """
        msg = ShareStart(self._new_id(), stream_id, width, height, title)
        reply = await self._request(msg)
        if not isinstance(reply, Ok):
            raise UnexpectedMessageError(f"kiosk answered {msg.TYPE} with {reply.TYPE}")

    async def share_stop(self, stream_id: int) -> None:
        """End the screen share ``stream_id`` on the panel (``share_stop``)."""
        msg = ShareStop(self._new_id(), stream_id)
        reply = await self._request(msg)
        if not isinstance(reply, Ok):
            raise UnexpectedMessageError(f"kiosk answered {msg.TYPE} with {reply.TYPE}")

    def limit_unsent_bytes(self, size_bytes: int | None) -> None:
        """Let the kernel hold at most ``size_bytes`` of this connection's data unsent
        (``TCP_NOTSENT_LOWAT``; None: the system's default, no limit).

        A screen share sets it so that a send returns only once the previous picture has
        nearly left this computer: pictures a slow panel cannot take are then skipped
        here instead of queueing in the kernel. Nothing happens where the option does
        not exist (it does on Linux and macOS).
        """
        sock = self._ws.transport.get_extra_info("socket")
        option = getattr(socket, "TCP_NOTSENT_LOWAT", None)
        if sock is None or option is None:
            return
        with contextlib.suppress(OSError):
            value = struct.pack("=I", size_bytes or _NO_UNSENT_LIMIT)  # an unsigned int
            sock.setsockopt(socket.IPPROTO_TCP, option, value)

    def unsent_bytes(self) -> int:
        """Bytes of this connection not yet acknowledged by the kiosk: what the TLS
        transport holds plus the kernel's send queue (Linux; elsewhere the transport's
        only). A screen share skips a panel's picture while this is over a threshold."""
        transport = self._ws.transport
        queued = transport.get_write_buffer_size()
        sock = transport.get_extra_info("socket")
        if sock is not None and sys.platform.startswith("linux"):
            import fcntl  # Unix only: the teacher's computer may run Windows
            import termios

            with contextlib.suppress(OSError):
                out = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
                queued += int.from_bytes(out, sys.byteorder)
        return queued

    async def send_stream_frame(self, frame: bytes) -> None:
        """Send one stream frame (``protocol.codec.encode_stream_frame``); returns once
        the socket took it. Send the next one only after that (newest frame only).

        Raises:
            ConnectionFailedError: the connection closed.
        """
        await self._send_frame(frame)

    async def status(self) -> StatusSnapshot:
        """Return what the kiosk shows now."""
        reply = await self._request(GetStatus(id=self._new_id()))
        if not isinstance(reply, Status):
            raise UnexpectedMessageError(f"kiosk answered get_status with {reply.TYPE}")
        return reply.status

    async def usage_pull(self, after_seq: int, limit: int = limits.MAX_USAGE_BATCH) -> UsageBatch:
        """Return the kiosk's usage records with ``seq`` greater than ``after_seq``."""
        reply = await self._request(UsagePull(id=self._new_id(), after_seq=after_seq, limit=limit))
        if not isinstance(reply, UsageBatch):
            raise UnexpectedMessageError(f"kiosk answered usage_pull with {reply.TYPE}")
        return reply

    async def wait_for_status(
        self, predicate: Callable[[StatusSnapshot], bool], *, timeout_s: float | None = None
    ) -> StatusSnapshot:
        """Wait until a pushed status satisfies ``predicate``; returns that status.

        Raises:
            TimeoutError: no such status arrived within ``timeout_s`` (default: the
                client's request timeout).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout_s if timeout_s is not None else self.timeout_s)
        while self.last_status is None or not predicate(self.last_status):
            changed: asyncio.Future[None] = loop.create_future()
            self._status_waiters.append(changed)
            try:
                await asyncio.wait_for(changed, max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise TimeoutError("the kiosk did not reach the expected state") from None
        return self.last_status

    # ----------------------------------------------------------------- internals

    async def _transfer(
        self, msg: Cast | Prepare, lesson: Lesson, progress: ProgressCallback | None
    ) -> CastResult:
        queue = self._open(msg.id)
        try:
            await self._send_text(msg)
            need = await self._next_reply(queue, msg.TYPE)
            if not isinstance(need, Need):
                raise UnexpectedMessageError(f"kiosk answered {msg.TYPE} with {need.TYPE}")
            paths = lesson.blob_paths()
            total = sum(n.size_bytes - n.have_bytes for n in need.blobs)
            sent = 0
            if progress is not None:
                progress(0, total)
            for blob in need.blobs:
                path = paths.get(blob.sha256)
                if path is None:
                    raise UnexpectedMessageError(
                        f"kiosk asked for blob {blob.sha256} that is not in the lesson"
                    )
                sent += await self._send_blob(
                    path,
                    blob.sha256,
                    blob.have_bytes,
                    blob.size_bytes,
                    queue,
                    progress,
                    sent,
                    total,
                )
            done = await self._next_reply(queue, msg.TYPE)
            if not isinstance(done, Ok):
                raise UnexpectedMessageError(f"kiosk finished {msg.TYPE} with {done.TYPE}")
            return CastResult(
                blobs_sent=len(need.blobs),
                bytes_sent=sent,
                bytes_total=lesson.total_bytes,
                late_ms=done.late_ms,
            )
        finally:
            self._replies.pop(msg.id, None)

    async def _send_blob(
        self,
        path: Path,
        sha256: str,
        have_bytes: int,
        size_bytes: int,
        queue: asyncio.Queue[Reply],
        progress: ProgressCallback | None,
        sent_before: int,
        total: int,
    ) -> int:
        sent = 0
        # One frame buffer per blob: each chunk is read from the file straight behind its
        # header (no copy to join them), and the buffer is free again once ``send``
        # returns (websockets frames the bytes before it awaits anything).
        frame = bytearray(CHUNK_HEADER_BYTES + min(limits.SEND_CHUNK_BYTES, size_bytes))
        view = memoryview(frame)
        try:
            with path.open("rb", buffering=0) as f:
                f.seek(have_bytes)
                for offset, length in chunk_ranges(
                    BlobNeed(sha256, have_bytes, size_bytes), limits.SEND_CHUNK_BYTES
                ):
                    end = CHUNK_HEADER_BYTES + length
                    view[:CHUNK_HEADER_BYTES] = chunk_header(sha256, offset)
                    if _read_exactly(f, view[CHUNK_HEADER_BYTES:end]) != length:
                        raise UnexpectedMessageError(f"{path} changed while it was being sent")
                    if not queue.empty():
                        # The kiosk refused the transfer early (checksum, quota...).
                        await self._next_reply(queue, "cast")
                    await self._ws.send(view[:end])
                    sent += length
                    if progress is not None:
                        progress(sent_before + sent, total)
        except ConnectionClosed:
            raise self._closed_error() from None
        return sent

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _open(self, req_id: int) -> asyncio.Queue[Reply]:
        queue: asyncio.Queue[Reply] = asyncio.Queue()
        self._replies[req_id] = queue
        return queue

    async def _request(
        self,
        msg: Hello
        | GetStatus
        | UsagePull
        | Control
        | PairStart
        | PairConfirm
        | Unpair
        | TimePing
        | TakeScreenshot
        | Announce
        | ClearAnnouncement
        | ShareStart
        | ShareStop,
    ) -> Reply:
        reply = self._expect_reply(msg.id)
        try:
            await self._send_text(msg)
            await asyncio.wait({reply}, timeout=self.timeout_s)
            return self._reply_of(reply, msg.TYPE)
        finally:
            self._forget_reply(msg.id, reply)

    def _expect_reply(self, req_id: int) -> asyncio.Future[Reply]:
        """Register request ``req_id`` (answered by one message) before sending it.

        Read the outcome with :meth:`_reply_of` once the future is done or the wait
        timed out, then call :meth:`_forget_reply`.
        """
        reply: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        if self._reader.done():
            reply.set_exception(self._closed_error())
        else:
            self._waiting[req_id] = reply
        return reply

    def _reply_of(self, reply: asyncio.Future[Reply], what: str) -> Reply:
        """The reply, after waiting for it.

        Raises:
            RemoteError: the kiosk answered ``error`` (its subclass for the code).
            ConnectionFailedError: the connection closed, or no reply came in time.
        """
        if not reply.done():
            raise ConnectionFailedError(
                f"{self.url} did not answer {what} in {self.timeout_s} s",
                address=_address_of(self.url),
                reason="timeout",
            )
        msg = reply.result()
        if isinstance(msg, Error):
            raise remote_error(msg.code, f"{self.name}: {msg.message}", presenter=msg.presenter)
        return msg

    def _forget_reply(self, req_id: int, reply: asyncio.Future[Reply]) -> None:
        self._waiting.pop(req_id, None)
        if reply.done() and not reply.cancelled():
            reply.exception()  # retrieved: a closed connection is reported once, not logged
        else:
            reply.cancel()

    def _closed_error(self) -> ConnectionFailedError:
        return ConnectionFailedError(
            f"{self.url} closed the connection: {self._closed_reason}",
            address=_address_of(self.url),
            reason="closed",
        )

    async def _send_text(self, msg: Message) -> None:
        await self._send_frame(encode(msg))

    async def _send_frame(self, frame: str | bytes) -> None:
        try:
            await self._ws.send(frame)
        except ConnectionClosed:
            raise self._closed_error() from None

    async def _next_reply(self, queue: asyncio.Queue[Reply], what: str) -> Reply:
        getter = asyncio.ensure_future(queue.get())
        done, _ = await asyncio.wait(
            {getter, self._reader}, timeout=self.timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if getter not in done:
            getter.cancel()
            if self._reader in done:
                raise self._closed_error()
            raise ConnectionFailedError(
                f"{self.url} did not answer {what} in {self.timeout_s} s",
                address=_address_of(self.url),
                reason="timeout",
            )
        reply = getter.result()
        if isinstance(reply, Error):
            raise remote_error(
                reply.code, f"{self.name}: {reply.message}", presenter=reply.presenter
            )
        return reply

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                if isinstance(frame, bytes):
                    logger.warning("%s sent a binary frame; ignored", self.url)
                    continue
                if frame.endswith(_PUSHED_STATUS_END):
                    self._status_pushed(frame)
                    continue
                try:
                    msg = decode(frame)
                except MalformedMessageError as exc:
                    logger.warning("%s sent a malformed message: %s", self.url, exc)
                    continue
                self._route(msg)
        except ConnectionClosed:
            pass
        finally:
            rcvd = self._ws.protocol.close_rcvd
            self._closed_reason = (
                f"code {rcvd.code} {rcvd.reason}".strip() if rcvd is not None else "no close frame"
            )
            waiting, self._waiting = self._waiting, {}
            for reply in waiting.values():
                if not reply.done():
                    reply.set_exception(self._closed_error())

    def _status_pushed(self, frame: str) -> None:
        """Keep a status push (``re`` null) undecoded unless someone waits for it now."""
        if self.on_status is None and not self._status_waiters:
            self._pushed_status = frame
            return
        status = self._decode_status(frame)
        if status is not None:
            self.last_status = status
            self._status_changed(status)

    def _decode_status(self, frame: str) -> StatusSnapshot | None:
        try:
            msg = decode(frame)
        except MalformedMessageError as exc:
            logger.warning("%s sent a malformed message: %s", self.url, exc)
            return None
        if not isinstance(msg, Status) or msg.re is not None:
            logger.warning("%s sent %s where a status push was expected", self.url, msg.TYPE)
            return None
        return msg.status

    def _status_changed(self, status: StatusSnapshot) -> None:
        if self.on_status is not None:
            self.on_status(status)
        waiters, self._status_waiters = self._status_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _route(self, msg: Message) -> None:
        match msg:
            case Status(re=None):
                self.last_status = msg.status
                self._status_changed(msg.status)
                return
            case BlobStored():
                return  # one blob arrived: the transfer waits for its final Ok instead
            case KeyframeRequest():
                if self.on_keyframe_request is not None:
                    self.on_keyframe_request(msg.stream_id)
                return
            case Error(re=None, code="no_share"):
                if self.on_share_error is not None:
                    self.on_share_error(msg.message)
                return
            case Error(re=None):
                logger.warning("%s: %s (%s)", self.name, msg.message, msg.code)
                for pending in self._replies.values():
                    pending.put_nowait(msg)
                for reply in self._waiting.values():
                    if not reply.done():
                        reply.set_result(msg)
                return
            case (
                Welcome()
                | PairOffer()
                | Paired()
                | Need()
                | Status()
                | Screenshot()
                | TimePong()
                | UsageBatch()
                | Ok()
                | Error()
            ):
                if msg.re is None:
                    return
                waiting = self._waiting.get(msg.re)
                if waiting is not None:
                    if not waiting.done():
                        waiting.set_result(msg)
                    return
                queue = self._replies.get(msg.re)
                if queue is not None:
                    queue.put_nowait(msg)
                return
            case _:
                logger.warning("%s sent %s, which a kiosk does not send", self.url, msg.TYPE)


_NO_UNSENT_LIMIT = 0xFFFFFFFF
"""``TCP_NOTSENT_LOWAT`` when not limited (Linux's default)."""


_PUSHED_STATUS_END = ',"re":null,"type":"status"}'
"""How a kiosk's status push ends (``protocol.codec.encode`` writes ``re`` then ``type``
last): the last members of the top-level object, so no string inside can fake it."""


async def control_all(
    clients: Sequence[KioskClient],
    action: ControlAction,
    *,
    index: int | None = None,
    position_ms: int | None = None,
    volume: int | None = None,
    at_ms: int | None = None,
) -> list[ClassCastError | int | None]:
    """Apply one control command on every client; returns when all answered or timed out.

    With ``at_ms`` (this computer's wall clock), every kiosk applies it at that instant,
    converted to its own clock with the offset its client measured last (measure it
    first: :meth:`Group.lead_ms <controller.group.Group.lead_ms>`).

    Returns one entry per client, in order: what :meth:`KioskClient.control` would have
    raised, or what it would have returned: how many ms late the kiosk got ``at_ms``
    (None: applied on time, or no instant). The request is encoded once (once per
    kiosk with ``at_ms``), with an id unused on every connection, and written to each
    connection in turn, without a task per kiosk (a kiosk that does not read its
    connection gets its own task, so it holds up no other). Then all replies are awaited
    together, each up to its client's ``timeout_s`` from the start.
    """
    if not clients:
        return []
    req_id = max(c._next_id for c in clients)
    for c in clients:
        c._next_id = req_id + 1

    def frame_for(c: KioskClient) -> str:
        kiosk_at_ms = at_ms + (c.clock_offset_ms or 0) if at_ms is not None else None
        return encode(
            Control(
                id=req_id,
                action=action,
                index=index,
                position_ms=position_ms,
                volume=volume,
                at_ms=kiosk_at_ms,
            )
        )

    same = frame_for(clients[0]) if at_ms is None else None
    start = asyncio.get_running_loop().time()
    replies = [c._expect_reply(req_id) for c in clients]
    results: list[ClassCastError | int | None] = [None] * len(clients)
    sending: dict[int, asyncio.Task[None]] = {}
    try:
        for n, c in enumerate(clients):
            if replies[n].done():  # already closed
                continue
            frame = same if same is not None else frame_for(c)
            if c._ws.paused or c._ws.state is not State.OPEN:
                sending[n] = asyncio.create_task(c._send_frame(frame))
                continue
            try:
                await c._send_frame(frame)
            except ConnectionFailedError as exc:
                results[n] = exc
        await _until_answered_or_late(clients, replies, sending, start)
        for n, c in enumerate(clients):
            sent = sending.get(n)
            failure = sent.exception() if sent is not None and sent.done() else None
            if failure is not None:
                results[n] = failure if isinstance(failure, ClassCastError) else c._closed_error()
            if results[n] is not None:
                continue
            try:
                answer = c._reply_of(replies[n], Control.TYPE)
                if not isinstance(answer, Ok):
                    raise UnexpectedMessageError(f"kiosk answered control with {answer.TYPE}")
                results[n] = answer.late_ms
            except ClassCastError as exc:
                results[n] = exc
    finally:
        for task in sending.values():
            task.cancel()
        for c, pending in zip(clients, replies, strict=True):
            c._forget_reply(req_id, pending)
    return results


async def _until_answered_or_late(
    clients: Sequence[KioskClient],
    replies: list[asyncio.Future[Reply]],
    sending: dict[int, asyncio.Task[None]],
    start: float,
) -> None:
    """Wait until every client's reply (and send, if it has its own task) is done, or
    ``timeout_s`` of that client passed since ``start``. Usually one wait for all."""
    loop = asyncio.get_running_loop()
    pending = set(range(len(clients)))
    while True:
        now = loop.time()
        pending = {
            n
            for n in pending
            if now < start + clients[n].timeout_s
            and not (replies[n].done() and (n not in sending or sending[n].done()))
        }
        if not pending:
            return
        futures: list[asyncio.Future[Any]] = [replies[n] for n in pending]
        futures += [sending[n] for n in pending if n in sending]
        first_deadline = min(start + clients[n].timeout_s for n in pending)
        await asyncio.wait(futures, timeout=first_deadline - now)


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise MalformedMessageError("kiosk sent invalid base64") from None


def _read_exactly(f: io.RawIOBase, into: memoryview) -> int:
    """Fill ``into`` from ``f`` (a raw file: a read may return less); returns the bytes
    read, fewer only at the end of the file."""
    got = 0
    while got < len(into):
        n = f.readinto(into[got:])
        if not n:
            break
        got += n
    return got
