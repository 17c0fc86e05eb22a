"""Control round trip: ``control next/prev`` to a kiosk until its ``ok``, vs a websocket echo.

Run: ``.venv/bin/python -m bench.control_rtt [--quick] [--n N]``

Servers run in child processes (their own event loop, as a real kiosk runs its network
loop apart from the controller); the measuring client runs here. Requests are
sequential and paced at ``PACE_PER_S`` starts per second for every target alike,
because a kiosk closes a connection that sends more than
``protocol.limits.MAX_MESSAGES_PER_SECOND`` (200) text messages a second on average.

Figures:

- baseline: websockets ``serve`` echo, same client library and options as
  ``KioskClient``, a text frame the size of a ``control`` message;
- kiosk: ``KioskClient.control`` on a 2-item text lesson, alternating next/prev
  (the player moves, the usage log closes one interval and opens the next, ``ok``);
- breakdown: the same kiosk driven by a bare websockets client (no ``KioskClient``),
  and the kiosk with its state directory on tmpfs (``/dev/shm``, where fsync costs
  nothing) to show what the usage log's durable writes cost;
- CPU per request on each side, from ``/proc/PID/stat`` and ``time.process_time``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from bench._common import (
    BENCH_ADMIN_SECRET,
    LOOPBACK,
    ServerProcess,
    add_weak_option,
    cancel_on_sigterm,
    figure,
    heading,
    p50_p99,
    proc_cpu_s,
    result_line,
    tmpfs_dir,
    two_text_lesson,
    weak_panel,
)
from controller.client import ControllerIdentity, KioskClient, client_ssl_context
from protocol import limits
from protocol.codec import decode, encode
from protocol.constants import PROTOCOL_VERSION, SUBPROTOCOL, WS_PATH
from protocol.messages import Cast, Control, ControlAction, Hello, Need, Ok, Status

PACE_PER_S = 190.0
"""Request starts per second (below the kiosk's 200/s rate limit)."""

RECV_TIMEOUT_S = 10.0
IDENTITY = ControllerIdentity("c-bench", "Bench Teacher")


@dataclass
class Run:
    label: str
    samples_s: list[float]
    server_cpu_s: float
    client_cpu_s: float

    @property
    def n(self) -> int:
        return len(self.samples_s)


async def recv(ws: ClientConnection) -> str | bytes:
    """One frame, or TimeoutError rather than a hang."""
    return await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S)


def action_for(i: int) -> ControlAction:
    return "next" if i % 2 == 0 else "prev"


async def paced(
    n: int,
    warmup: int,
    op: Callable[[int], Awaitable[None]],
    server_pid: int,
    label: str,
    after: Callable[[int], Awaitable[None]] | None = None,
) -> Run:
    """Run ``op(i)`` sequentially, ``1/PACE_PER_S`` apart; time the last ``n`` calls.

    ``after(i)``, if given, runs untimed after each ``op(i)``.
    """
    interval = 1.0 / PACE_PER_S
    samples: list[float] = []
    next_at = time.perf_counter()
    cpu_server = cpu_client = 0.0
    for i in range(warmup + n):
        if i == warmup:
            cpu_server = proc_cpu_s(server_pid)
            cpu_client = time.process_time()
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        t0 = time.perf_counter()
        await op(i)
        t1 = time.perf_counter()
        if after is not None:
            await after(i)
        next_at = t0 + interval
        if i >= warmup:
            samples.append(t1 - t0)
    await asyncio.sleep(0.05)  # let the last pushed status arrive before reading CPU
    return Run(
        label,
        samples,
        proc_cpu_s(server_pid) - cpu_server,
        time.process_time() - cpu_client,
    )


async def ws_connect(port: int, subprotocol: bool) -> ClientConnection:
    """Connect with the options ``KioskClient.connect`` uses."""
    return await connect(
        f"wss://{LOOPBACK}:{port}{WS_PATH}",
        ssl=client_ssl_context(),
        subprotocols=[Subprotocol(SUBPROTOCOL)] if subprotocol else None,
        compression=None,
        max_size=limits.MAX_FRAME_BYTES,
        proxy=None,
        write_limit=4 * limits.MAX_CHUNK_FRAME_BYTES,
    )


async def measure_echo(n: int, warmup: int) -> Run:
    with ServerProcess("echo", "--count", "1") as server:
        ws = await ws_connect(server.info["ports"][0], subprotocol=False)
        try:

            async def op(i: int) -> None:
                await ws.send(encode(Control(id=i + 2, action=action_for(i))))
                await recv(ws)

            return await paced(n, warmup, op, server.info["pid"], "echo")
        finally:
            await ws.close()


async def measure_kiosk(n: int, warmup: int, state_root: Path, label: str) -> Run:
    state = Path(tempfile.mkdtemp(prefix="bench-rtt-", dir=state_root))
    try:
        with ServerProcess("kiosk", "--count", "1", "--state-dir", str(state)) as server:
            client = await KioskClient.connect(f"{LOOPBACK}:{server.info['ports'][0]}", IDENTITY)
            await client.pair(BENCH_ADMIN_SECRET, role="admin")
            try:
                await client.cast(two_text_lesson())

                async def op(i: int) -> None:
                    await client.control(action_for(i))

                return await paced(n, warmup, op, server.info["pid"], label)
            finally:
                await client.close()
    finally:
        shutil.rmtree(state, ignore_errors=True)


async def measure_kiosk_bare(n: int, warmup: int, state_root: Path) -> Run:
    """The kiosk driven by a bare websockets client: hello, cast, then control/ok."""
    state = Path(tempfile.mkdtemp(prefix="bench-rtt-", dir=state_root))
    try:
        with ServerProcess("kiosk", "--count", "1", "--state-dir", str(state)) as server:
            address = f"{LOOPBACK}:{server.info['ports'][0]}"
            async with await KioskClient.connect(address, IDENTITY) as pairing:
                creds = await pairing.pair(BENCH_ADMIN_SECRET, role="admin")
            ws = await ws_connect(server.info["ports"][0], subprotocol=True)
            try:
                hello = Hello(
                    1, PROTOCOL_VERSION, IDENTITY.controller_id, IDENTITY.name, creds.token
                )
                await ws.send(encode(hello))
                await recv(ws)  # welcome
                await ws.send(encode(Cast(id=2, lesson=two_text_lesson().manifest())))
                statuses = 0
                while True:
                    reply = decode(await recv(ws))
                    if isinstance(reply, Need):
                        assert not reply.blobs
                    elif isinstance(reply, Status):
                        statuses += 1
                    elif isinstance(reply, Ok):
                        break
                if not statuses:
                    await recv(ws)  # the status pushed when the lesson started
                # Each control makes the kiosk push one status (before or after its ok,
                # depending on the kiosk version); read it untimed if it comes after,
                # as KioskClient's reader task does between requests.
                status_seen = [False]

                async def op(i: int) -> None:
                    req_id = i + 10
                    status_seen[0] = False
                    await ws.send(encode(Control(id=req_id, action=action_for(i))))
                    while True:
                        reply = decode(await recv(ws))
                        if isinstance(reply, Ok) and reply.re == req_id:
                            return
                        if not isinstance(reply, Status):
                            raise RuntimeError(f"unexpected reply {reply}")
                        status_seen[0] = True

                async def drain_status(i: int) -> None:
                    if not status_seen[0] and not isinstance(decode(await recv(ws)), Status):
                        raise RuntimeError("expected the pushed status")

                return await paced(
                    n, warmup, op, server.info["pid"], "kiosk, bare ws client", drain_status
                )
            finally:
                await ws.close()
    finally:
        shutil.rmtree(state, ignore_errors=True)


def report(run: Run, base_p50: float, base_p99: float) -> tuple[float, float]:
    p50, p99 = p50_p99(run.samples_s)
    figure(f"{run.label}: p50", p50 * 1e3, "ms", f"{p50 / base_p50:.2f}x baseline")
    figure(f"{run.label}: p99", p99 * 1e3, "ms", f"{p99 / base_p99:.2f}x baseline")
    figure(f"{run.label}: server CPU per request", run.server_cpu_s / run.n * 1e6, "us")
    figure(f"{run.label}: client CPU per request", run.client_cpu_s / run.n * 1e6, "us")
    return p50, p99


async def main_async(n: int, warmup: int, breakdown: bool) -> None:
    cancel_on_sigterm()
    disk_root = Path(tempfile.gettempdir())
    print(
        f"control round trip: {n} sequential requests (+{warmup} warm-up), paced at "
        f"{PACE_PER_S:.0f}/s; servers in child processes, client here; {os.cpu_count()} CPUs"
    )
    print(f"kiosk state on {disk_root} (usage log: SQLite WAL, synchronous=FULL)")

    heading("baseline: websockets echo server (compression=None)")
    echo = await measure_echo(n, warmup)
    b50, b99 = p50_p99(echo.samples_s)
    report(echo, b50, b99)

    heading("kiosk: KioskClient.control next/prev on a 2-item text lesson")
    kiosk = await measure_kiosk(n, warmup, disk_root, "kiosk")
    k50, k99 = report(kiosk, b50, b99)

    values: dict[str, float | int | str] = {
        "n": n,
        "echo_p50_ms": b50 * 1e3,
        "echo_p99_ms": b99 * 1e3,
        "kiosk_p50_ms": k50 * 1e3,
        "kiosk_p99_ms": k99 * 1e3,
        "ratio_p50": k50 / b50,
        "ratio_p99": k99 / b99,
    }
    if breakdown:
        heading("breakdown: where the kiosk's time goes")
        bare = await measure_kiosk_bare(n, warmup, disk_root)
        r50, _ = report(bare, b50, b99)
        shm = tmpfs_dir()
        if shm is not None:
            tmpfs = await measure_kiosk(n, warmup, shm, "kiosk, state on tmpfs")
            t50, _ = report(tmpfs, b50, b99)
            values["tmpfs_ratio_p50"] = t50 / b50
            figure("usage-log fsync share of kiosk p50", (k50 - t50) * 1e3, "ms")
        values["bare_ratio_p50"] = r50 / b50
        figure("KioskClient share of kiosk p50", (k50 - r50) * 1e3, "ms")

    heading("summary")
    figure("ratio p50 kiosk/echo", k50 / b50, "x", "aim <= 1.5")
    figure("ratio p99 kiosk/echo", k99 / b99, "x", "aim <= 1.5")
    result_line("control_rtt", values)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.control_rtt", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200 requests (a smoke run)")
    parser.add_argument("--n", type=int, help="requests per target (default 2000)")
    parser.add_argument("--no-breakdown", action="store_true", help="skip diagnostic runs")
    add_weak_option(parser)
    args = parser.parse_args()
    n = args.n or (200 if args.quick else 2000)
    warmup = 20 if args.quick else 100
    try:
        with weak_panel(args.weak):
            asyncio.run(main_async(n, warmup, breakdown=not args.no_breakdown))
    except asyncio.CancelledError:  # SIGTERM: children stopped, temp dirs removed
        raise SystemExit(143) from None


if __name__ == "__main__":
    main()
