"""A paired teacher's control round trip while a kiosk is attacked over the network.

Run: ``.venv/bin/python -m bench.attack [--quick] [--connections N] [--seconds S] ... [--weak]``
(``--weak``: the kiosk held to a third of one core, as a board's small computer;
``bench._common.weak_panel``. The attackers and the teacher stay at full speed.)

Three kinds of process, all on loopback:

- the kiosk: ``python -m bench.attack --kiosk-child DIR``, a headless
  :class:`kiosk.app.KioskApp` run by :func:`kiosk.app.run_until_signal` with the kiosk's
  own log format on stderr, which this process reads (lines and bytes per attack). It
  answers ``pin`` on stdin with the PIN its panel shows (a teacher reading the screen),
  and where the kiosk asks on its panel whether a controller may pair, a teacher at the
  panel answers (:class:`PanelUser`);
- the attackers: ``python -m bench.attack --attacker SPEC``, one process per attack,
  with plain clients only (asyncio streams with ``ssl``, websockets' sans-I/O
  ``ClientProtocol`` or its asyncio client), every connection to ``127.0.0.1`` from
  source addresses ``127.0.0.2`` and up (a classroom of phones);
- this process: a paired teacher (:class:`controller.client.KioskClient`, the project's
  client) who cast a 2-item text lesson switches between its slides (``control goto``)
  at ``TEACHER_PACE_PER_S``, for ``--seconds`` quiet and under each attack, plus two
  probes of each kind: a new teacher's connect + hello, and a new teacher pairing with
  the PIN the panel shows.

Each phase: the kiosk's RSS before; the attacker ramps up (at most ``RAMP_TIMEOUT_S``),
then for ``--seconds`` the teacher's switches and the probes run while RSS and open
files are sampled (peak); the attacker stops and closes every connection; the teacher
retries until a switch works again ("recovered", at most ``RECOVER_TIMEOUT_S``);
``SETTLE_S`` later the kiosk's RSS "after" and the end of the phase's log. A switch
that gets no ``ok`` within ``REQUEST_TIMEOUT_S`` (or whose connection the kiosk
closed) counts as lost: p50/p99 read "timeout" when the lost requests reach that
percentile. Ratios are against the quiet phase of the same run.
``--repeat N`` runs the attacks N times over on the same kiosk (does RSS after a phase keep
growing, or is it a high-water mark?).
Attacks (``--attacks``, in this order; PIN guessing last because it may lock pairing):

- ``pairing``: ``--flooders`` connections each sending ``pair_start`` as soon as the
  previous one is answered;
- ``idle``: ``--connections`` TLS connections that open the websocket and then send
  nothing (they answer pings, as a real client would);
- ``halfopen``: ``--connections`` TCP connections that never finish the TLS handshake:
  half send nothing, half send the first half of a ClientHello;
- ``textflood``: ``--flooders`` connections (every other one paired as a teacher) that
  say hello, then send ``get_status`` as fast as the socket takes them and never read;
- ``paced``: ``--paced`` connections of one paired controller (one token), each sending
  ``get_status`` at ``PACED_PER_S``, under the rate limit of one connection, and reading
  the replies: a paired device that opens many connections to multiply its budget;
- ``binflood``: ``--flooders`` connections sending binary frames of junk chunks (a
  random blob hash, offset 0, ``JUNK_CHUNK_BYTES`` of bytes) as fast as they can, reading
  the replies;
- ``guess``: ``--guessers`` sources running the whole SPAKE2 exchange with random wrong
  PINs, one guess after another.

An attacker whose connection the kiosk closes (or refuses) opens it again after
``RECONNECT_MIN_S``, doubling up to ``RECONNECT_MAX_S`` while the kiosk keeps closing
it within ``LONG_LIVED_S``. Both this process's and the kiosk's soft limit on open files
are raised to the hard limit first (``--kiosk-nofile`` sets the kiosk's: 1024 shows a
kiosk under a unit without ``LimitNOFILE``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import queue
import random
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import (
    LOOPBACK,
    REPO_ROOT,
    add_weak_option,
    cancel_on_sigterm,
    child_env,
    heading,
    hold_kiosk,
    kiosk_config,
    log_like_kiosk,
    percentile,
    raise_nofile,
    result_line,
    rss_mb,
    stop_process,
    tls_client_context,
    two_text_lesson,
    weak_panel,
)

TEACHER_PACE_PER_S = 50.0
"""Control requests the teacher starts per second (sequential, one at a time)."""
REQUEST_TIMEOUT_S = 2.0
"""A control without ``ok`` by then is lost (counted as "timeout")."""
CONNECT_TIMEOUT_S = 5.0
"""How long a new teacher's connect + hello may take before it counts as "timeout"."""
PAIR_TIMEOUT_S = 10.0
"""How long a new teacher's pairing (connect, hello, SPAKE2, token) may take."""
PIN_TIMEOUT_S = 10.0
"""How long the kiosk child may take to say its PIN."""
PANEL_TAP_S = 1.0
"""When the kiosk asks on the panel whether a controller may pair, the teacher standing
there answers this much later (see :class:`PanelUser`)."""
LATE_TEACHER = "Опоздавший учитель"
"""The name of the new teacher who pairs during each phase (the one the panel user allows)."""
RAMP_TIMEOUT_S = 30.0
"""Longest wait for an attacker to have tried every connection once."""
RECOVER_TIMEOUT_S = 60.0
"""After an attack stops, how long the teacher retries until a switch succeeds again."""
SETTLE_S = 3.0
"""After that: wait this long, then read the kiosk's RSS "after" and end the log slice."""
SAMPLE_EVERY_S = 0.25
"""RSS and open-files sampling period during an attack."""
OPEN_TIMEOUT_S = 10.0
"""An attacker's connection (TCP, TLS, websocket handshake) must open within this."""
OPEN_CONCURRENCY = 64
"""Connections an attacker opens at the same time."""
REPLY_TIMEOUT_S = 10.0
"""An attacker waiting for a reply (pairing flood, guessing) gives up after this."""
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 8.0
LONG_LIVED_S = 5.0
"""A connection that lived this long resets its slot's reconnect delay."""
TEXT_BATCH = 50
"""Text frames a non-reading flooder writes before waiting for the socket."""
BINARY_BATCH = 20
PACED_PER_S = 180.0
"""Messages a second each ``paced`` connection sends (one connection may send 200)."""
JUNK_CHUNK_BYTES = 1024
READ_BYTES = 65536
ATTACK_SOURCES_FROM = 2
"""Attack connections come from 127.0.0.2, 127.0.0.3, ...; the teacher from 127.0.0.1."""

ATTACKS = ("pairing", "idle", "halfopen", "textflood", "paced", "binflood", "guess")
DISPLAY_LOG = "INFO kiosk.headless: "
"""The headless display's journal lines (one per item shown: the teacher's controls)."""
LEVELS = ("DEBUG ", "INFO ", "WARNING ", "ERROR ", "CRITICAL ")
"""A kiosk log record starts with its level (``%(levelname)s %(name)s: %(message)s``)."""


def attack_sources(count: int) -> list[str]:
    return [f"127.0.0.{ATTACK_SOURCES_FROM + n}" for n in range(count)]


# =========================================================================== kiosk child


class PanelUser:
    """The kiosk's display, with a teacher standing at the panel.

    A kiosk that asks on its panel whether a controller may pair (a ``PairingRequested``
    display effect, answered through ``KioskApp.panel_answer_pairing``, where the kiosk
    has them) gets its answer ``PANEL_TAP_S`` later: allow for ``LATE_TEACHER``, the
    teacher who is pairing, refuse for any other name. Everything else goes to the
    kiosk's own display.
    """

    def __init__(self, app: Any, inner: Any) -> None:
        self.app = app
        self.inner = inner
        self.loop: asyncio.AbstractEventLoop | None = None
        """Set once the kiosk runs (its network loop)."""

    def apply(self, effect: Any) -> None:
        self.inner.apply(effect)
        answer = getattr(self.app, "panel_answer_pairing", None)
        if type(effect).__name__ != "PairingRequested" or answer is None or self.loop is None:
            return
        allow = getattr(effect, "name", None) == LATE_TEACHER
        self.loop.call_soon_threadsafe(self.loop.call_later, PANEL_TAP_S, answer, allow)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def kiosk_child(state_dir: Path) -> None:
    """The kiosk under attack; prints ``READY {json}``, answers ``pin`` lines on stdin."""
    from kiosk.app import KioskApp, run_until_signal

    log_like_kiosk()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C and stops us
    app = KioskApp(kiosk_config(state_dir))

    panel = PanelUser(app, app.display)
    app.use_display(panel)

    def serve_commands() -> None:
        for line in sys.stdin:
            if line.strip() == "pin":
                sys.stdout.write(f"PIN {app.pin()}\n")
                sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGTERM)  # stdin closed: the parent is done

    def ready(app: KioskApp) -> None:
        panel.loop = asyncio.get_running_loop()
        info = {"port": app.server.port, "pid": os.getpid()}
        sys.stdout.write("READY " + json.dumps(info) + "\n")
        sys.stdout.flush()
        threading.Thread(target=serve_commands, daemon=True).start()

    asyncio.run(run_until_signal(app, ready))


class LogTap:
    """Reads a child's stderr on a thread: per line its size, and its kind (:func:`cause`)
    if it starts a log record (None for continuation lines such as tracebacks)."""

    def __init__(self, stream: Any) -> None:
        self._lock = threading.Lock()
        self._lines: list[tuple[int, str | None]] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for raw in iter(stream.readline, b""):
            text = raw.decode("utf-8", "replace")
            key = cause(text) if text.startswith(LEVELS) else None
            with self._lock:
                self._lines.append((len(raw), key))

    def mark(self) -> int:
        with self._lock:
            return len(self._lines)

    def since(self, mark: int) -> list[tuple[int, str | None]]:
        with self._lock:
            return self._lines[mark:]


def cause(line: str) -> str:
    """A log record's first line with hashes and numbers blanked: one key per kind."""
    return re.sub(r"\d+", "N", re.sub(r"[0-9a-f]{8,}", "H", line.strip()))[:110]


class KioskChild:
    """The kiosk child process; use as a context manager."""

    def __init__(self, state_dir: Path, nofile: int | None) -> None:
        self.state_dir = state_dir
        self.nofile = nofile
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.pid = 0
        self.log: LogTap | None = None
        self._stdout: queue.Queue[str] = queue.Queue()

    def __enter__(self) -> KioskChild:
        nofile = self.nofile

        def limits() -> None:
            raise_nofile(nofile)

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.attack", "--kiosk-child", str(self.state_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO_ROOT,
            env=child_env(PYTHONUNBUFFERED="1"),
            preexec_fn=limits,
        )
        hold_kiosk(self.proc.pid)  # --weak: the panel on a third of a core
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self.log = LogTap(self.proc.stderr)
        threading.Thread(target=self._read_stdout, args=(self.proc.stdout,), daemon=True).start()
        try:
            line = self._stdout.get(timeout=60)
            if not line.startswith("READY "):
                raise RuntimeError(f"kiosk did not start: {line!r}")
        except queue.Empty:
            self.stop()
            raise RuntimeError("kiosk did not start in 60 s") from None
        except BaseException:
            self.stop()
            raise
        info = json.loads(line[len("READY ") :])
        self.port, self.pid = info["port"], info["pid"]
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _read_stdout(self, stream: Any) -> None:
        for raw in iter(stream.readline, b""):
            self._stdout.put(raw.decode().strip())
        self._stdout.put("EOF")

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def pin(self) -> str | None:
        """The PIN the panel shows now (blocking), or None if the kiosk does not say."""
        assert self.proc is not None
        assert self.proc.stdin is not None
        while not self._stdout.empty():
            self._stdout.get_nowait()
        try:
            self.proc.stdin.write(b"pin\n")
            self.proc.stdin.flush()
            line = self._stdout.get(timeout=PIN_TIMEOUT_S)
        except (OSError, queue.Empty):
            return None
        return line.removeprefix("PIN ") if line.startswith("PIN ") else None

    def rss_mb(self) -> float:
        """VmRSS of the kiosk in MiB (``/proc/PID/status``); nan once it is gone."""
        try:
            return rss_mb(self.pid)
        except (OSError, RuntimeError):
            return math.nan

    def open_files(self) -> int:
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return -1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc, close_pipes=False)  # LogTap and _read_stdout read to EOF


# =========================================================================== attackers


@dataclass
class AttackStats:
    """What one attacker process did; printed as JSON when it stops."""

    attempts: int = 0
    opened: int = 0
    open_failures: Counter[str] = field(default_factory=Counter)
    closed_by_kiosk: int = 0
    ends: Counter[str] = field(default_factory=Counter)
    lifetimes_s: list[float] = field(default_factory=list)
    open_now: int = 0
    peak_open: int = 0
    frames_sent: int = 0
    replies: Counter[str] = field(default_factory=Counter)
    guessed: int = 0
    slots: int = 0
    settled: int = 0
    """Slots whose first connection opened or failed (the ramp is over when all have)."""
    ramped: asyncio.Event = field(default_factory=asyncio.Event)

    def summary(self) -> dict[str, Any]:
        lifetimes = sorted(self.lifetimes_s)
        return {
            "attempts": self.attempts,
            "opened": self.opened,
            "open_failures": dict(self.open_failures.most_common(4)),
            "closed_by_kiosk": self.closed_by_kiosk,
            "ends": dict(self.ends.most_common(4)),
            "lifetime_p50_s": percentile(lifetimes, 0.5) if lifetimes else None,
            "lifetime_max_s": lifetimes[-1] if lifetimes else None,
            "peak_open": self.peak_open,
            "open_at_stop": self.open_now,
            "frames_sent": self.frames_sent,
            "replies": dict(self.replies.most_common(6)),
            "guessed": self.guessed,
        }


class Slot:
    """One attack connection, re-opened whenever the kiosk closes it."""

    def __init__(
        self,
        index: int,
        source: str,
        spec: dict[str, Any],
        stats: AttackStats,
        stop: asyncio.Event,
    ) -> None:
        self.index = index
        self.stop = stop
        self.source = source
        self.spec = spec
        self.stats = stats
        self.opened_at: float | None = None
        self.settled = False

    def settle(self) -> None:
        if not self.settled:
            self.settled = True
            self.stats.settled += 1
            if self.stats.settled >= self.stats.slots:
                self.stats.ramped.set()

    @property
    def running(self) -> bool:
        """False once the attack is over (loops check it: cancellation alone may be lost)."""
        return not self.stop.is_set()

    @property
    def port(self) -> int:
        return int(self.spec["port"])

    def opened(self) -> None:
        self.opened_at = time.monotonic()
        self.settle()
        self.stats.opened += 1
        self.stats.open_now += 1
        self.stats.peak_open = max(self.stats.peak_open, self.stats.open_now)

    def reply(self, msg: dict[str, Any]) -> None:
        kind = str(msg.get("type"))
        if kind == "error":
            kind += ":" + str(msg.get("code"))
        self.stats.replies[kind] += 1


AttackFn = Callable[[Slot, asyncio.Semaphore], Awaitable[None]]


async def ws_open(
    slot: Slot, opening: asyncio.Semaphore
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Any]:
    """TLS + websocket handshake with websockets' sans-I/O client; nothing read after it."""
    from websockets.client import ClientProtocol
    from websockets.protocol import State
    from websockets.typing import Subprotocol
    from websockets.uri import parse_uri

    from protocol import limits
    from protocol.constants import SUBPROTOCOL, WS_PATH

    # asyncio.timeout, not wait_for: on 3.11 wait_for may swallow a cancellation.
    async with opening, asyncio.timeout(OPEN_TIMEOUT_S):
        reader, writer = await asyncio.open_connection(
            LOOPBACK,
            slot.port,
            ssl=tls_client_context(),
            local_addr=(slot.source, 0),
            ssl_handshake_timeout=OPEN_TIMEOUT_S,
        )
        try:
            proto = ClientProtocol(
                parse_uri(f"wss://{LOOPBACK}:{slot.port}{WS_PATH}"),
                subprotocols=[Subprotocol(SUBPROTOCOL)],
                max_size=limits.MAX_FRAME_BYTES,
            )
            proto.send_request(proto.connect())
            writer.write(b"".join(proto.data_to_send()))
            while proto.state is State.CONNECTING:
                data = await reader.read(READ_BYTES)
                if not data:
                    raise ConnectionError("closed during the websocket handshake")
                proto.receive_data(data)
            if proto.handshake_exc is not None:
                raise proto.handshake_exc
            proto.events_received()
        except BaseException:
            writer.transport.abort()
            raise
    slot.opened()
    return reader, writer, proto


def hello_json(controller_id: str, token: str | None) -> str:
    from protocol.constants import PROTOCOL_VERSION

    return json.dumps(
        {
            "type": "hello",
            "id": 1,
            "protocol_version": PROTOCOL_VERSION,
            "controller_id": controller_id,
            "controller_name": "Ученик",
            "token": token,
        }
    )


def pair_start_json(req_id: int, spake: bytes) -> str:
    """A teacher's ``pair_start`` carrying the SPAKE2 message ``spake``."""
    return json.dumps(
        {
            "type": "pair_start",
            "id": req_id,
            "role": "teacher",
            "spake": base64.b64encode(spake).decode(),
        }
    )


async def attack_idle(slot: Slot, opening: asyncio.Semaphore) -> None:
    """Open the websocket, then send nothing; answer pings; return when the kiosk closes."""
    reader, writer, proto = await ws_open(slot, opening)
    try:
        while True:
            data = await reader.read(READ_BYTES)
            if not data:
                return
            proto.receive_data(data)
            proto.events_received()
            out = b"".join(proto.data_to_send())
            if out:
                writer.write(out)
    finally:
        writer.transport.abort()


HALF_HELLO = b""


def client_hello_half() -> bytes:
    """The first half of a real TLS ClientHello."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = tls_client_context().wrap_bio(incoming, outgoing)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    return hello[: len(hello) // 2]


async def attack_halfopen(slot: Slot, opening: asyncio.Semaphore) -> None:
    """A TCP connection that never completes TLS (odd slots send half a ClientHello)."""
    async with opening, asyncio.timeout(OPEN_TIMEOUT_S):
        reader, writer = await asyncio.open_connection(
            LOOPBACK, slot.port, local_addr=(slot.source, 0)
        )
    slot.opened()
    try:
        if slot.index % 2:
            writer.write(HALF_HELLO)
        while await reader.read(READ_BYTES):
            pass
    finally:
        writer.transport.abort()


async def attack_textflood(slot: Slot, opening: asyncio.Semaphore) -> None:
    """Say hello (every other slot with a teacher's token), then flood get_status unread."""
    paired = slot.index % 2 == 0 and slot.spec.get("token")
    _, writer, proto = await ws_open(slot, opening)
    try:
        controller_id = str(slot.spec["controller_id"]) if paired else f"c-bench-flood-{slot.index}"
        proto.send_text(hello_json(controller_id, slot.spec["token"] if paired else None).encode())
        req_id = 2
        while slot.running and not writer.transport.is_closing():
            for _ in range(TEXT_BATCH):
                proto.send_text(json.dumps({"type": "get_status", "id": req_id}).encode())
                req_id += 1
            writer.write(b"".join(proto.data_to_send()))
            slot.stats.frames_sent += TEXT_BATCH
            await writer.drain()
            await asyncio.sleep(0)  # drain() does not yield while the socket takes it all
    finally:
        writer.transport.abort()


async def read_replies(
    slot: Slot, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, proto: Any
) -> None:
    """Read the kiosk's frames on an attacker's connection, counting the text replies
    (and answering pings and the close through ``proto``), until the connection ends."""
    while data := await reader.read(READ_BYTES):
        proto.receive_data(data)
        for frame in proto.events_received():
            if frame.opcode.name == "TEXT":
                with contextlib.suppress(ValueError):
                    slot.reply(json.loads(frame.data))
        out = b"".join(proto.data_to_send())
        if out and not writer.transport.is_closing():
            writer.write(out)


async def attack_paced(slot: Slot, opening: asyncio.Semaphore) -> None:
    """Say hello with the paired controller's token, then send get_status at
    ``PACED_PER_S``, reading the replies."""
    reader, writer, proto = await ws_open(slot, opening)

    replies = asyncio.create_task(read_replies(slot, reader, writer, proto))
    try:
        token = str(slot.spec["token"])
        proto.send_text(hello_json(str(slot.spec["controller_id"]), token).encode())
        req_id = 2
        next_at = time.monotonic()
        while slot.running and not replies.done() and not writer.transport.is_closing():
            proto.send_text(json.dumps({"type": "get_status", "id": req_id}).encode())
            req_id += 1
            writer.write(b"".join(proto.data_to_send()))
            slot.stats.frames_sent += 1
            next_at += 1 / PACED_PER_S
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        replies.cancel()
        writer.transport.abort()
        with contextlib.suppress(BaseException):
            await replies


async def attack_binflood(slot: Slot, opening: asyncio.Semaphore) -> None:
    """Say hello, then send junk chunk frames as fast as possible, reading the replies."""
    reader, writer, proto = await ws_open(slot, opening)
    junk = os.urandom(JUNK_CHUNK_BYTES)

    replies = asyncio.create_task(read_replies(slot, reader, writer, proto))
    try:
        proto.send_text(hello_json(f"c-bench-junk-{slot.index}", None).encode())
        while slot.running and not replies.done() and not writer.transport.is_closing():
            for _ in range(BINARY_BATCH):
                proto.send_binary(os.urandom(32) + bytes(8) + junk)
            writer.write(b"".join(proto.data_to_send()))
            slot.stats.frames_sent += BINARY_BATCH
            await writer.drain()
            await asyncio.sleep(0)
    finally:
        replies.cancel()
        writer.transport.abort()
        with contextlib.suppress(BaseException):
            await replies


async def ws_client(slot: Slot, opening: asyncio.Semaphore) -> Any:
    """A plain websockets client connection from the slot's source address."""
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    from protocol import limits
    from protocol.constants import SUBPROTOCOL, WS_PATH

    async with opening:
        ws = await connect(
            f"wss://{LOOPBACK}:{slot.port}{WS_PATH}",
            ssl=tls_client_context(),
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            compression=None,
            max_size=limits.MAX_FRAME_BYTES,
            open_timeout=OPEN_TIMEOUT_S,
            proxy=None,
            local_addr=(slot.source, 0),
        )
    slot.opened()
    return ws


async def reply_to(ws: Any, req_id: int) -> dict[str, Any]:
    """The reply to request ``req_id`` (pushed statuses are skipped)."""
    while True:
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            msg: dict[str, Any] = json.loads(await ws.recv())
        if msg.get("re") == req_id or (msg.get("type") == "error" and msg.get("re") is None):
            return msg


async def attack_pairing(slot: Slot, opening: asyncio.Semaphore) -> None:
    """Send pair_start as soon as the previous one is answered."""
    from protocol.pairing import ControllerPairing

    ws = await ws_client(slot, opening)
    try:
        controller_id = f"c-bench-pairflood-{slot.index}"
        await ws.send(hello_json(controller_id, None))
        await reply_to(ws, 1)
        start = ControllerPairing(
            "000000", controller_id=controller_id, kiosk_id="k", fingerprint="f"
        )
        spake = start.start()
        req_id = 2
        while slot.running:
            await ws.send(pair_start_json(req_id, spake))
            slot.stats.frames_sent += 1
            slot.reply(await reply_to(ws, req_id))
            req_id += 1
    finally:
        ws.transport.abort()


async def attack_guess(slot: Slot, opening: asyncio.Semaphore) -> None:
    """Run the whole pairing exchange with random PINs, one guess after another."""
    from protocol.pairing import ControllerPairing, cert_fingerprint

    ws = await ws_client(slot, opening)
    try:
        der = ws.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
        fingerprint = cert_fingerprint(der)
        controller_id = f"c-bench-guess-{slot.index}"
        await ws.send(hello_json(controller_id, None))
        kiosk_id = str((await reply_to(ws, 1))["kiosk_id"])
        req_id = 2
        while slot.running:
            pin = f"{random.randrange(1_000_000):06d}"
            exchange = ControllerPairing(
                pin, controller_id=controller_id, kiosk_id=kiosk_id, fingerprint=fingerprint
            )
            await ws.send(pair_start_json(req_id, exchange.start()))
            slot.stats.frames_sent += 1
            offer = await reply_to(ws, req_id)
            req_id += 1
            if offer.get("type") != "pair_offer":
                slot.reply(offer)
                continue
            confirm = exchange.finish(base64.b64decode(offer["spake"]))
            await ws.send(
                json.dumps(
                    {
                        "type": "pair_confirm",
                        "id": req_id,
                        "confirm": base64.b64encode(confirm).decode(),
                    }
                )
            )
            slot.stats.frames_sent += 1
            outcome = await reply_to(ws, req_id)
            req_id += 1
            slot.reply(outcome)
            if outcome.get("type") == "paired":
                slot.stats.guessed += 1
    finally:
        ws.transport.abort()


ATTACK_FNS: dict[str, AttackFn] = {
    "pairing": attack_pairing,
    "idle": attack_idle,
    "halfopen": attack_halfopen,
    "textflood": attack_textflood,
    "paced": attack_paced,
    "binflood": attack_binflood,
    "guess": attack_guess,
}


async def run_slot(slot: Slot, attack: AttackFn, opening: asyncio.Semaphore) -> None:
    delay = RECONNECT_MIN_S
    stats = slot.stats
    while slot.running:
        slot.opened_at = None
        stats.attempts += 1
        reason = "eof"
        try:
            await attack(slot, opening)
        except asyncio.CancelledError:
            if slot.opened_at is not None:
                stats.open_now -= 1
            raise
        except Exception as exc:
            reason = type(exc).__name__
        slot.settle()
        if not slot.running:  # ended by the attack's end, not by the kiosk
            if slot.opened_at is not None:
                stats.open_now -= 1
            return
        if slot.opened_at is None:
            stats.open_failures[reason] += 1
            lived = 0.0
        else:
            stats.open_now -= 1
            stats.closed_by_kiosk += 1
            stats.ends[reason] += 1
            lived = time.monotonic() - slot.opened_at
            stats.lifetimes_s.append(lived)
            slot.opened_at = None
        if lived >= LONG_LIVED_S:
            delay = RECONNECT_MIN_S
        await asyncio.sleep(delay)
        delay = min(delay * 2, RECONNECT_MAX_S)


async def run_attacker(spec: dict[str, Any]) -> None:
    """Attack until stdin says ``stop`` (or closes); print ``ACTIVE`` and ``DONE`` lines."""
    global HALF_HELLO
    HALF_HELLO = client_hello_half()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def wait_stop() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_stop, daemon=True).start()
    count = int(spec["slots"])
    stats = AttackStats(slots=count)
    opening = asyncio.Semaphore(OPEN_CONCURRENCY)
    sources: list[str] = spec["sources"]
    attack = ATTACK_FNS[spec["kind"]]
    all_slots = [Slot(n, sources[n % len(sources)], spec, stats, stop) for n in range(count)]
    slots = [asyncio.create_task(run_slot(slot, attack, opening)) for slot in all_slots]
    started = time.monotonic()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stats.ramped.wait(), RAMP_TIMEOUT_S)
    ramp_s = time.monotonic() - started
    print("ACTIVE " + json.dumps({"ramp_s": ramp_s, "open": stats.open_now}), flush=True)
    await stop.wait()
    open_at_stop = stats.open_now
    now = time.monotonic()
    ages = [now - s.opened_at for s in all_slots if s.opened_at is not None]
    pending = set(slots)
    while pending:  # cancel again if a cancellation got lost in a race
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1)
    summary = stats.summary()
    summary["open_at_stop"] = open_at_stop
    summary["oldest_open_s"] = max(ages, default=None)
    print("DONE " + json.dumps(summary), flush=True)


def attacker_child(spec_json: str) -> None:
    import logging

    logging.basicConfig(level=logging.CRITICAL)  # refused TLS handshakes are expected
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_nofile()
    asyncio.run(run_attacker(json.loads(spec_json)))


class AttackerProcess:
    """One attacker child; :meth:`start` waits until it ramped up, :meth:`stop` for stats."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.proc: subprocess.Popen[bytes] | None = None
        self._lines: queue.Queue[str] = queue.Queue()
        self._errors: list[str] = []

    def start(self) -> dict[str, Any]:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.attack", "--attacker", json.dumps(self.spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO_ROOT,
            env=child_env(PYTHONFAULTHANDLER="1"),
        )
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        threading.Thread(target=self._pump, args=(self.proc.stdout, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, False), daemon=True).start()
        return self._expect("ACTIVE ", RAMP_TIMEOUT_S + 30)

    def _pump(self, stream: Any, is_stdout: bool) -> None:
        for raw in iter(stream.readline, b""):
            text = raw.decode("utf-8", "replace").rstrip()
            if is_stdout:
                self._lines.put(text)
            else:
                self._errors = [*self._errors[-20:], text]
        if is_stdout:
            self._lines.put("EOF")

    def _expect(self, prefix: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                if self.proc is not None:  # faulthandler prints where it is stuck
                    self.proc.send_signal(signal.SIGABRT)
                    time.sleep(1)
                tail = "\n".join(self._errors[-40:])
                what = prefix.strip()
                raise RuntimeError(f"attacker gave no {what} in {timeout_s:g} s\n{tail}") from None
            if line.startswith(prefix):
                info: dict[str, Any] = json.loads(line[len(prefix) :])
                return info
            if line == "EOF":
                tail = "\n".join(self._errors[-10:])
                raise RuntimeError(f"attacker {self.spec['kind']} exited:\n{tail}")

    def stop(self) -> dict[str, Any]:
        proc = self.proc
        if proc is None:
            return {}
        try:
            assert proc.stdin is not None
            proc.stdin.write(b"stop\n")
            proc.stdin.flush()
            return self._expect("DONE ", 60)
        finally:
            self.kill()

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc, close_pipes=False)  # _pump reads to EOF


# =========================================================================== measuring side


@dataclass
class Probe:
    """One new teacher's attempt: seconds taken, or why it failed."""

    seconds: float | None
    outcome: str

    def text(self) -> str:
        return f"{self.seconds * 1000:.0f} ms" if self.seconds is not None else self.outcome


def failure_name(exc: BaseException) -> str:
    from protocol.errors import RemoteError

    if isinstance(exc, RemoteError):
        return exc.code
    if isinstance(exc, TimeoutError):
        return "timeout"
    text = str(exc)
    if "did not answer" in text or "timed out" in text or "TimeoutError" in text:
        return "timeout"
    if "closed the connection" in text:
        return "closed"
    return "failed"


class Teacher:
    """The paired, presenting teacher: switches between the two slides of the lesson.

    Each switch is ``control goto`` to the other slide (an index, not next/prev, so a
    lost request cannot walk off the lesson's end). A dropped connection is reopened
    with the teacher's token; a lesson that is no longer shown is cast again.
    """

    def __init__(self, address: str, identity: Any, credentials: Any) -> None:
        self.address = address
        self.identity = identity
        self.credentials = credentials
        self.client: Any = None
        self.reconnects = 0
        self.recasts = 0
        self._index = 1

    async def connect(self) -> None:
        from controller.client import KioskClient

        self.client = await asyncio.wait_for(
            KioskClient.connect(
                self.address,
                self.identity,
                credentials=self.credentials,
                timeout_s=REQUEST_TIMEOUT_S,
            ),
            CONNECT_TIMEOUT_S,
        )

    async def drop(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 2)

    async def switch(self) -> tuple[float | None, str]:
        """One control round trip in seconds, or (None, why it was lost)."""
        if self.client is None:
            try:
                await self.connect()
                self.reconnects += 1
            except Exception as exc:
                return None, "reconnect " + failure_name(exc)
        start = time.perf_counter()
        try:
            await asyncio.wait_for(
                self.client.control("goto", index=self._index), REQUEST_TIMEOUT_S + 0.5
            )
        except Exception as exc:
            why = failure_name(exc)
            if why in ("closed", "failed"):
                await self.drop()
            elif why == "no_lesson":
                await self.cast()
            return None, why
        self._index = 1 - self._index
        return time.perf_counter() - start, "ok"

    async def cast(self) -> None:
        """Cast the lesson again (as at the start); failures are left to the next switch."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.cast(two_text_lesson()), PAIR_TIMEOUT_S)
            self.recasts += 1
            self._index = 1


async def probe_connect(address: str, n: int) -> Probe:
    """A new teacher's TLS connect + hello."""
    from controller.client import ControllerIdentity, KioskClient

    identity = ControllerIdentity(f"c-bench-newcomer-{n}", "Новый учитель")
    start = time.perf_counter()
    try:
        client = await asyncio.wait_for(
            KioskClient.connect(address, identity, timeout_s=CONNECT_TIMEOUT_S),
            CONNECT_TIMEOUT_S,
        )
    except Exception as exc:
        return Probe(None, failure_name(exc))
    elapsed = time.perf_counter() - start
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(), 2)
    return Probe(elapsed, "ok")


async def probe_pair(kiosk: KioskChild, n: int) -> Probe:
    """A new teacher reads the PIN off the panel, connects and pairs with it."""
    from controller.client import ControllerIdentity, KioskClient

    pin = await asyncio.to_thread(kiosk.pin)
    if pin is None:
        return Probe(None, "no PIN")
    identity = ControllerIdentity(f"c-bench-late-teacher-{n}", LATE_TEACHER)
    start = time.perf_counter()

    async def pair() -> None:
        client = await KioskClient.connect(kiosk.address, identity, timeout_s=PAIR_TIMEOUT_S)
        try:
            await client.pair(pin)
        finally:
            await client.close()

    try:
        await asyncio.wait_for(pair(), PAIR_TIMEOUT_S)
    except Exception as exc:
        return Probe(None, failure_name(exc))
    return Probe(time.perf_counter() - start, "ok")


@dataclass
class Phase:
    name: str
    label: str
    rtts: list[float] = field(default_factory=list)
    """Seconds per control; ``inf`` for a lost one."""
    lost: Counter[str] = field(default_factory=Counter)
    connects: list[Probe] = field(default_factory=list)
    pairs: list[Probe] = field(default_factory=list)
    rss_before: float = math.nan
    rss_peak: float = math.nan
    rss_after: float = math.nan
    files_before: int = 0
    files_peak: int = 0
    files_after: int = 0
    log_lines: int = 0
    """Lines of kiosk log in the phase (from the attack's start to "after"), without the
    display's lines (DISPLAY_LOG), which follow the teacher's controls."""
    log_bytes: int = 0
    display_lines: int = 0
    causes: Counter[str] = field(default_factory=Counter)
    attacker: dict[str, Any] = field(default_factory=dict)
    ramp_s: float = 0.0
    reconnects: int = 0
    recovered_s: float | None = 0.0
    """From the attack's end until the teacher's switches succeed again."""
    kiosk_died: bool = False

    def p(self, q: float) -> float:
        return percentile(sorted(self.rtts), q) if self.rtts else math.inf


async def teacher_controls(teacher: Teacher, seconds: float, phase: Phase) -> None:
    interval = 1.0 / TEACHER_PACE_PER_S
    deadline = time.perf_counter() + seconds
    next_at = time.perf_counter()
    while time.perf_counter() < deadline:
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        started = time.perf_counter()
        rtt, why = await teacher.switch()
        if rtt is None:
            phase.rtts.append(math.inf)
            phase.lost[why] += 1
        else:
            phase.rtts.append(rtt)
        next_at = started + interval


async def wait_recovered(teacher: Teacher, timeout_s: float) -> float | None:
    """Seconds until the teacher's switches succeed again (None: not within ``timeout_s``)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        rtt, _ = await teacher.switch()
        if rtt is not None:
            return time.perf_counter() - start
        await asyncio.sleep(0.1)
    return None


async def sample_kiosk(kiosk: KioskChild, phase: Phase, stop: asyncio.Event) -> None:
    while not stop.is_set():
        phase.rss_peak = max(phase.rss_peak, kiosk.rss_mb()) if kiosk.alive() else phase.rss_peak
        phase.files_peak = max(phase.files_peak, kiosk.open_files())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_EVERY_S)


async def after(delay_s: float, coro: Awaitable[Probe]) -> Probe:
    await asyncio.sleep(delay_s)
    return await coro


async def run_phase(
    phase: Phase,
    kiosk: KioskChild,
    teacher: Teacher,
    seconds: float,
    spec: dict[str, Any] | None,
    probe_no: list[int],
) -> None:
    """Measure one phase (``spec`` None: quiet) into ``phase``."""
    assert kiosk.log is not None
    heading(phase.label)
    phase.rss_before = phase.rss_peak = kiosk.rss_mb()
    phase.files_before = phase.files_peak = kiosk.open_files()
    reconnects = teacher.reconnects
    mark = kiosk.log.mark()
    attacker = AttackerProcess(spec) if spec is not None else None
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(sample_kiosk(kiosk, phase, stop_sampling))
    try:
        if attacker is not None:
            active = await asyncio.to_thread(attacker.start)
            phase.ramp_s = float(active["ramp_s"])
            print(
                f"  attacker ramped up in {phase.ramp_s:.1f} s, {active['open']} open", flush=True
            )
        probe_no[0] += 1
        n = probe_no[0]
        probes = [
            asyncio.create_task(after(seconds * 0.2, probe_connect(kiosk.address, 2 * n))),
            asyncio.create_task(after(seconds * 0.6, probe_connect(kiosk.address, 2 * n + 1))),
        ]
        pairs = [
            asyncio.create_task(after(seconds * 0.4, probe_pair(kiosk, 2 * n))),
            asyncio.create_task(after(seconds * 0.8, probe_pair(kiosk, 2 * n + 1))),
        ]
        await teacher_controls(teacher, seconds, phase)
        phase.connects = list(await asyncio.gather(*probes))
        phase.pairs = list(await asyncio.gather(*pairs))
        if attacker is not None:
            phase.attacker = await asyncio.to_thread(attacker.stop)
            phase.recovered_s = await wait_recovered(teacher, RECOVER_TIMEOUT_S)
    finally:
        if attacker is not None:
            await asyncio.to_thread(attacker.kill)
        stop_sampling.set()
        await sampler
    await asyncio.sleep(SETTLE_S)
    phase.rss_after = kiosk.rss_mb()
    phase.files_after = kiosk.open_files()
    phase.kiosk_died = not kiosk.alive()
    phase.reconnects = teacher.reconnects - reconnects
    for size, key in kiosk.log.since(mark):
        if key is not None and key.startswith(DISPLAY_LOG):
            phase.display_lines += 1
            continue
        phase.log_lines += 1
        phase.log_bytes += size
        if key is not None:
            phase.causes[key] += 1
    print_phase(phase)


def ms(seconds: float) -> str:
    return "timeout" if math.isinf(seconds) else f"{seconds * 1000:.1f}"


def with_ms(seconds: float) -> str:
    return "timeout" if math.isinf(seconds) else f"{seconds * 1000:.1f} ms"


def recovery(phase: Phase) -> str:
    if phase.recovered_s is None:
        return f"not in {RECOVER_TIMEOUT_S:g} s"
    return f"{phase.recovered_s:.1f} s"


def print_phase(phase: Phase) -> None:
    total = len(phase.rtts)
    lost = sum(phase.lost.values())
    print(
        f"  control: {total} requests, p50 {with_ms(phase.p(0.5))}, "
        f"p99 {with_ms(phase.p(0.99))}, lost {lost}"
        + (f" ({dict(phase.lost)})" if lost else "")
        + (f", teacher reconnected {phase.reconnects}x" if phase.reconnects else ""),
        flush=True,
    )
    if phase.attacker:
        print(f"  after the attack the teacher's switches worked again in {recovery(phase)}")
    print(f"  new teacher connect+hello: {', '.join(p.text() for p in phase.connects)}")
    print(f"  new teacher pairs with the PIN: {', '.join(p.text() for p in phase.pairs)}")
    print(
        f"  kiosk RSS {phase.rss_before:.0f} -> peak {phase.rss_peak:.0f} -> "
        f"{phase.rss_after:.0f} MiB after {SETTLE_S:g} s; open files {phase.files_before} -> "
        f"peak {phase.files_peak} -> {phase.files_after}"
        + ("; THE KIOSK EXITED" if phase.kiosk_died else "")
    )
    print(
        f"  kiosk log: {phase.log_lines} lines, {phase.log_bytes} bytes, "
        f"{sum(phase.causes.values())} records of {len(phase.causes)} kinds "
        f"(and {phase.display_lines} lines of the display showing the teacher's slides)"
    )
    for key, count in phase.causes.most_common(4):
        print(f"    {count:>7} x {key}")
    if phase.attacker:
        a = phase.attacker
        life = a.get("lifetime_p50_s")
        print(
            f"  attacker: {a['attempts']} attempts, {a['opened']} opened, peak {a['peak_open']} "
            f"open, {a['open_at_stop']} open at the end"
            + (f" (the oldest for {a['oldest_open_s']:.1f} s)" if a.get("oldest_open_s") else "")
            + f"; closed by the kiosk {a['closed_by_kiosk']}"
            + (
                f" after p50 {life:.2f} s (max {a['lifetime_max_s']:.2f} s)"
                if life is not None
                else ""
            )
        )
        if a["open_failures"] or a["ends"]:
            print(f"    failed opens {a['open_failures']}; ends {a['ends']}")
        if a["frames_sent"] or a["replies"]:
            print(f"    frames sent {a['frames_sent']}; replies {a['replies']}")
        if a.get("guessed"):
            print(f"    PINs guessed: {a['guessed']}")
    sys.stdout.flush()


def ratio(value: float, base: float) -> str:
    if math.isinf(value):
        return "-"
    return f"{value / base:.2f}x" if base > 0 else "-"


def probes_text(probes: list[Probe]) -> str:
    if not probes:
        return "-"
    return " / ".join(p.text() for p in probes)


def print_table(phases: list[Phase]) -> None:
    quiet = phases[0]
    q50, q99 = quiet.p(0.5), quiet.p(0.99)
    heading(
        "summary: the paired teacher's control round trip (ratio to quiet; lost: no ok in "
        f"{REQUEST_TIMEOUT_S:g} s or dropped), a new teacher's connect+hello and pairing "
        "with the right PIN (two tries each)"
    )
    header = (
        f"{'attack':<32} {'p50 ms':>8} {'ratio':>7} {'p99 ms':>8} {'ratio':>7} {'lost':>9} "
        f"{'recovered':>10}  {'new teacher':<19} {'pairs with PIN':<19}"
    )
    print(header)
    print("-" * len(header))
    for ph in phases:
        p50, p99 = ph.p(0.5), ph.p(0.99)
        lost = f"{sum(ph.lost.values())}/{len(ph.rtts)}"
        recovered = recovery(ph) if ph.attacker else "-"
        print(
            f"{ph.label:<32} {ms(p50):>8} {ratio(p50, q50):>7} {ms(p99):>8} {ratio(p99, q99):>7} "
            f"{lost:>9} {recovered:>10}  {probes_text(ph.connects):<19} "
            f"{probes_text(ph.pairs):<19}"
        )
    heading(
        "summary: the kiosk (RSS MiB from /proc; log: its stderr from the attack's start to "
        f"{SETTLE_S:g} s after recovery, without the display's lines)"
    )
    header = (
        f"{'attack':<32} {'RSS before':>10} {'peak':>7} {'after':>7} {'files peak':>10} "
        f"{'log lines':>10} {'log bytes':>11} {'kinds':>6}"
    )
    print(header)
    print("-" * len(header))
    for ph in phases:
        print(
            f"{ph.label:<32} {ph.rss_before:>10.0f} {ph.rss_peak:>7.0f} {ph.rss_after:>7.0f} "
            f"{ph.files_peak:>10} {ph.log_lines:>10} {ph.log_bytes:>11} {len(ph.causes):>6}"
            + ("  (the kiosk exited)" if ph.kiosk_died else "")
        )
    sys.stdout.flush()


async def pair_with_pin(kiosk: KioskChild, identity: Any) -> tuple[Any, Any]:
    """Connect and pair as a teacher with the PIN the panel shows; (client, credentials)."""
    from controller.client import KioskClient

    pin = await asyncio.to_thread(kiosk.pin)
    if pin is None:
        raise RuntimeError("the kiosk did not say its PIN")
    client = await KioskClient.connect(kiosk.address, identity, timeout_s=REQUEST_TIMEOUT_S * 5)
    creds = await client.pair(pin)
    return client, creds


async def main_async(args: argparse.Namespace) -> list[Phase]:
    from controller.client import ControllerIdentity

    cancel_on_sigterm()
    mine, hard = raise_nofile()
    kiosk_nofile = min(args.kiosk_nofile or hard, hard)
    if mine < args.connections + 256:
        raise SystemExit(
            f"the open-files hard limit is {hard}: too low for {args.connections} connections"
        )
    sources = attack_sources(args.sources)
    attacks = [a for a in args.attacks.split(",") if a]
    for name in attacks:
        if name not in ATTACKS:
            raise SystemExit(f"unknown attack {name!r}; choose from {', '.join(ATTACKS)}")
    attacks = [a for a in ATTACKS if a in attacks] * args.repeat  # guessing always last
    print(
        f"attack: {args.seconds:g} s per phase, teacher at {TEACHER_PACE_PER_S:g} controls/s; "
        f"{args.connections} connections, {args.flooders} flooders, {args.guessers} guessers, "
        f"from {len(sources)} source addresses ({sources[0]}..{sources[-1]}) to {LOOPBACK}; "
        f"open files: kiosk {kiosk_nofile}, attackers {mine}",
        flush=True,
    )
    state = Path(tempfile.mkdtemp(prefix="bench-attack-"))
    phases: list[Phase] = []
    try:
        with KioskChild(state / "kiosk", args.kiosk_nofile) as kiosk:
            identity = ControllerIdentity("c-bench-teacher", "Учитель")
            client, creds = await pair_with_pin(kiosk, identity)
            await client.cast(two_text_lesson())
            await client.close()
            flooder_id = ControllerIdentity("c-bench-paired-flooder", "Ученик с токеном")
            flooder, flooder_creds = await pair_with_pin(kiosk, flooder_id)
            await flooder.close()
            teacher = Teacher(kiosk.address, identity, creds)
            await teacher.connect()
            for _ in range(50):  # warm-up
                await teacher.switch()
            labels = {
                "pairing": f"pairing flood ({args.flooders} conns)",
                "idle": f"{args.connections} idle TLS",
                "halfopen": f"{args.connections} half-open handshakes",
                "textflood": f"text flood, unread ({args.flooders})",
                "paced": f"one paired device, {args.paced} conns at {PACED_PER_S:g}/s",
                "binflood": f"binary flood ({args.flooders})",
                "guess": f"PIN guessing ({args.guessers} sources)",
            }
            slots = {
                "pairing": args.flooders,
                "idle": args.connections,
                "halfopen": args.connections,
                "textflood": args.flooders,
                "paced": args.paced,
                "binflood": args.flooders,
                "guess": args.guessers,
            }
            probe_no = [0]
            quiet = Phase("quiet", "quiet")
            phases.append(quiet)
            await run_phase(quiet, kiosk, teacher, args.seconds, None, probe_no)
            for name in attacks:
                if not kiosk.alive():
                    print(f"\nthe kiosk exited: {name} and later attacks not run", flush=True)
                    break
                spec = {
                    "kind": name,
                    "port": kiosk.port,
                    "slots": slots[name],
                    "sources": sources,
                    "token": flooder_creds.token,
                    "controller_id": flooder_id.controller_id,
                }
                phase = Phase(name, labels[name])
                phases.append(phase)
                await run_phase(phase, kiosk, teacher, args.seconds, spec, probe_no)
            await teacher.drop()
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return phases


def report(phases: list[Phase]) -> None:
    print_table(phases)
    quiet = phases[0]
    values: dict[str, float | int | str] = {
        "quiet_p50_ms": quiet.p(0.5) * 1000,
        "quiet_p99_ms": quiet.p(0.99) * 1000,
    }
    for ph in phases[1:]:
        p99 = ph.p(0.99)
        values[f"{ph.name}_p99"] = "timeout" if math.isinf(p99) else f"{p99 / quiet.p(0.99):.2f}x"
        values[f"{ph.name}_lost"] = sum(ph.lost.values())
        values[f"{ph.name}_rss_peak_mb"] = round(ph.rss_peak)
        values[f"{ph.name}_log_bytes"] = ph.log_bytes
        values[f"{ph.name}_pairs"] = sum(p.seconds is not None for p in ph.pairs)
    result_line("attack", values)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.attack", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run (300 connections, 3 s)")
    parser.add_argument("--connections", type=int, help="idle / half-open connections (2000)")
    parser.add_argument("--seconds", type=float, help="length of each phase (8)")
    parser.add_argument("--sources", type=int, default=16, help="attack source addresses (16)")
    parser.add_argument("--flooders", type=int, help="pairing/text/binary flood connections (4)")
    parser.add_argument("--guessers", type=int, help="PIN-guessing sources (8)")
    parser.add_argument(
        "--paced", type=int, default=8, help="connections of the one paired device (8)"
    )
    parser.add_argument(
        "--attacks", default=",".join(ATTACKS), help=f"comma-separated subset of {ATTACKS}"
    )
    parser.add_argument(
        "--kiosk-nofile", type=int, help="the kiosk's soft open-files limit (default: hard limit)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the attacks N times over (memory high-water)"
    )
    parser.add_argument("--kiosk-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--attacker", help=argparse.SUPPRESS)
    add_weak_option(parser)
    args = parser.parse_args()
    if args.kiosk_child is not None:
        kiosk_child(args.kiosk_child)
        return
    if args.attacker is not None:
        attacker_child(args.attacker)
        return
    quick = args.quick
    args.connections = args.connections or (300 if quick else 2000)
    args.seconds = args.seconds or (3.0 if quick else 8.0)
    args.flooders = args.flooders or (2 if quick else 4)
    args.guessers = args.guessers or (4 if quick else 8)
    if not 1 <= args.sources <= 250:
        parser.error("--sources must be 1..250")
    started = time.monotonic()
    with weak_panel(args.weak):
        phases = asyncio.run(main_async(args))
    if phases:
        report(phases)
    print(f"\n(whole run: {time.monotonic() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
