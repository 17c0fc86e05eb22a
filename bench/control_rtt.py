"""Control round trip: ``control next/prev`` to a kiosk until its ``ok``, vs a websocket echo.

Run: ``.venv/bin/python -m bench.control_rtt [--quick] [--n N] [--no-breakdown]
[--compare CHECKOUT] [--weak]``

Servers run in child processes (their own event loop, as a real kiosk runs its network
loop apart from the controller); the measuring client runs here. Requests are
sequential and paced at ``PACE_PER_S`` starts per second for every target alike,
because a kiosk closes a connection that sends more than
``protocol.limits.MAX_MESSAGES_PER_SECOND`` (200) text messages a second on average.

The targets are set up first and their requests interleaved (request i of each, then
request i + 1, the order reversed every other time), so a change of load during the
run falls on all alike. ``--compare CHECKOUT`` adds the same kiosk run from another
checkout (a ``git worktree`` of an earlier commit): a before/after in one run.

Figures:

- baseline: websockets ``serve`` echo, same client library and options as
  ``KioskClient``, a text frame the size of a ``control`` message;
- kiosk: ``KioskClient.control`` on a 2-item text lesson, alternating next/prev
  (the player moves, the usage log closes one interval and opens the next, ``ok``);
- breakdown: a server with the kiosk's wire shape and none of its work
  (``bench._servers wire``: each message decoded with the protocol's codec and answered
  with a pushed status and an ok, encoded anew, in one TLS write), what any server
  speaking this protocol this way pays; the same kiosk driven by a bare websockets
  client (no ``KioskClient``),
  the kiosk with its state directory on tmpfs (``/dev/shm``, where fsync costs
  nothing) to show what the usage log's durable writes cost, and a kiosk that neither
  logs usage nor saves the presentation (``bench._servers kiosk --no-bookkeeping``, a
  diagnostic, not a panel) to show what the control path costs without them;
- CPU per request on each side, from ``/proc/PID/stat`` and ``time.process_time``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
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
class Target:
    """One target: its request, the child process serving it, its figures."""

    label: str
    op: Callable[[int], Awaitable[None]]
    server_pid: int
    after: Callable[[int], Awaitable[None]] | None = None
    """Runs untimed after each request (reads an event that may follow the reply)."""
    samples_s: list[float] = field(default_factory=list)
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0

    @property
    def n(self) -> int:
        return len(self.samples_s)


async def recv(ws: ClientConnection) -> str | bytes:
    """One frame, or TimeoutError rather than a hang."""
    return await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S)


def action_for(i: int) -> ControlAction:
    return "next" if i % 2 == 0 else "prev"


async def interleaved(targets: list[Target], n: int, warmup: int) -> None:
    """Request i of every target, then request i + 1, ... (the order reversed every
    other time), each alone on the machine; every target paced at ``PACE_PER_S``.

    A change of load during the run falls on every target alike. A target's server
    CPU is read over the whole run (its process serves nothing else); the client's is
    read around its requests.
    """
    interval = 1.0 / PACE_PER_S
    cpu_at: dict[str, float] = {}
    next_at = time.perf_counter()
    for i in range(warmup + n):
        if i == warmup:
            cpu_at = {t.label: proc_cpu_s(t.server_pid) for t in targets}
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        next_at = time.perf_counter() + interval
        for target in targets if i % 2 == 0 else targets[::-1]:
            c0 = time.process_time()
            t0 = time.perf_counter()
            await target.op(i)
            t1 = time.perf_counter()
            if target.after is not None:
                await target.after(i)
            if i >= warmup:
                target.samples_s.append(t1 - t0)
                target.client_cpu_s += time.process_time() - c0
    await asyncio.sleep(0.05)  # let the last pushed status arrive before reading CPU
    for target in targets:
        target.server_cpu_s = proc_cpu_s(target.server_pid) - cpu_at[target.label]


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


@contextlib.asynccontextmanager
async def echo_target() -> AsyncIterator[Target]:
    with ServerProcess("echo", "--count", "1") as server:
        ws = await ws_connect(server.info["ports"][0], subprotocol=False)
        try:

            async def op(i: int) -> None:
                await ws.send(encode(Control(id=i + 2, action=action_for(i))))
                await recv(ws)

            yield Target("echo", op, server.info["pid"])
        finally:
            await ws.close()


@contextlib.asynccontextmanager
async def wire_target() -> AsyncIterator[Target]:
    """A server with the kiosk's wire shape and none of its work (``bench._servers wire``)."""
    with ServerProcess("wire", "--count", "1") as server:
        ws = await ws_connect(server.info["ports"][0], subprotocol=False)
        try:

            async def op(i: int) -> None:
                await ws.send(encode(Control(id=i + 2, action=action_for(i))))
                await recv(ws)  # the status
                await recv(ws)  # the ok

            yield Target("kiosk's wire shape only", op, server.info["pid"])
        finally:
            await ws.close()


@contextlib.asynccontextmanager
async def kiosk_target(
    label: str, state_root: Path, checkout: str | None = None, *, bookkeeping: bool = True
) -> AsyncIterator[Target]:
    state = Path(tempfile.mkdtemp(prefix="bench-rtt-", dir=state_root))
    try:
        with ServerProcess(
            "kiosk",
            "--count",
            "1",
            "--state-dir",
            str(state),
            *([] if bookkeeping else ["--no-bookkeeping"]),
            checkout=checkout,
        ) as server:
            client = await KioskClient.connect(f"{LOOPBACK}:{server.info['ports'][0]}", IDENTITY)
            await client.pair(BENCH_ADMIN_SECRET, role="admin")
            try:
                await client.cast(two_text_lesson())

                async def op(i: int) -> None:
                    await client.control(action_for(i))

                yield Target(label, op, server.info["pid"])
            finally:
                await client.close()
    finally:
        shutil.rmtree(state, ignore_errors=True)


@contextlib.asynccontextmanager
async def bare_kiosk_target(state_root: Path) -> AsyncIterator[Target]:
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

                yield Target("kiosk, bare ws client", op, server.info["pid"], drain_status)
            finally:
                await ws.close()
    finally:
        shutil.rmtree(state, ignore_errors=True)


def report(run: Target, base_p50: float, base_p99: float) -> tuple[float, float]:
    p50, p99 = p50_p99(run.samples_s)
    figure(f"{run.label}: p50", p50 * 1e3, "ms", f"{p50 / base_p50:.2f}x baseline")
    figure(f"{run.label}: p99", p99 * 1e3, "ms", f"{p99 / base_p99:.2f}x baseline")
    figure(f"{run.label}: server CPU per request", run.server_cpu_s / run.n * 1e6, "us")
    figure(f"{run.label}: client CPU per request", run.client_cpu_s / run.n * 1e6, "us")
    return p50, p99


async def main_async(n: int, warmup: int, breakdown: bool, checkout: str | None) -> None:
    cancel_on_sigterm()
    disk_root = Path(tempfile.gettempdir())
    print(
        f"control round trip: {n} sequential requests (+{warmup} warm-up) per target, "
        f"paced at {PACE_PER_S:.0f}/s, the targets' requests interleaved; servers in child "
        f"processes, client here; {os.cpu_count()} CPUs"
    )
    print(f"kiosk state on {disk_root} (usage log: SQLite WAL, synchronous=FULL)")
    shm = tmpfs_dir() if breakdown else None
    async with contextlib.AsyncExitStack() as stack:
        echo = await stack.enter_async_context(echo_target())
        kiosk = await stack.enter_async_context(kiosk_target("kiosk", disk_root))
        targets = [echo, kiosk]
        other = bare = tmpfs = unkept = wire = None
        if checkout is not None:
            label = f"kiosk from {checkout}"
            other = await stack.enter_async_context(kiosk_target(label, disk_root, checkout))
            targets.append(other)
        if breakdown:
            wire = await stack.enter_async_context(wire_target())
            targets.append(wire)
            bare = await stack.enter_async_context(bare_kiosk_target(disk_root))
            targets.append(bare)
            if shm is not None:
                tmpfs = await stack.enter_async_context(kiosk_target("kiosk, state on tmpfs", shm))
                targets.append(tmpfs)
            unkept = await stack.enter_async_context(
                kiosk_target("kiosk without bookkeeping", disk_root, bookkeeping=False)
            )
            targets.append(unkept)
        await interleaved(targets, n, warmup)

    heading("baseline: websockets echo server (compression=None)")
    b50, b99 = p50_p99(echo.samples_s)
    report(echo, b50, b99)

    heading("kiosk: KioskClient.control next/prev on a 2-item text lesson")
    k50, k99 = report(kiosk, b50, b99)

    values: dict[str, float | int | str] = {
        "n": n,
        "echo_p50_ms": b50 * 1e3,
        "echo_p99_ms": b99 * 1e3,
        "kiosk_p50_ms": k50 * 1e3,
        "kiosk_p99_ms": k99 * 1e3,
        "ratio_p50": k50 / b50,
        "ratio_p99": k99 / b99,
        "kiosk_cpu_us": kiosk.server_cpu_s / kiosk.n * 1e6,
        "echo_cpu_us": echo.server_cpu_s / echo.n * 1e6,
    }
    if other is not None:
        heading(f"the same kiosk run from {checkout}")
        o50, o99 = report(other, b50, b99)
        values["other_ratio_p50"] = o50 / b50
        values["other_ratio_p99"] = o99 / b99
        values["other_cpu_us"] = other.server_cpu_s / other.n * 1e6
    if bare is not None:
        heading("breakdown: where the kiosk's time goes")
        if wire is not None:
            w50, w99 = report(wire, b50, b99)
            values["wire_ratio_p50"] = w50 / b50
            values["wire_ratio_p99"] = w99 / b99
            values["wire_cpu_us"] = wire.server_cpu_s / wire.n * 1e6
        r50, _ = report(bare, b50, b99)
        if tmpfs is not None:
            t50, _ = report(tmpfs, b50, b99)
            values["tmpfs_ratio_p50"] = t50 / b50
            figure("usage-log fsync share of kiosk p50", (k50 - t50) * 1e3, "ms")
        values["bare_ratio_p50"] = r50 / b50
        figure("KioskClient share of kiosk p50", (k50 - r50) * 1e3, "ms")
        if unkept is not None:
            u50, u99 = report(unkept, b50, b99)
            values["unkept_ratio_p50"] = u50 / b50
            values["unkept_ratio_p99"] = u99 / b99
            values["unkept_cpu_us"] = unkept.server_cpu_s / unkept.n * 1e6
            figure(
                "bookkeeping share of kiosk CPU per control",
                (kiosk.server_cpu_s / kiosk.n - unkept.server_cpu_s / unkept.n) * 1e6,
                "us",
            )

    heading("summary")
    figure("ratio p50 kiosk/echo", k50 / b50, "x", "aim <= 1.5")
    figure("ratio p99 kiosk/echo", k99 / b99, "x", "aim <= 1.5")
    figure("kiosk CPU per control", kiosk.server_cpu_s / kiosk.n * 1e3, "ms", "aim <= 0.5")
    result_line("control_rtt", values)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.control_rtt", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200 requests (a smoke run)")
    parser.add_argument("--n", type=int, help="requests per target (default 2000)")
    parser.add_argument("--no-breakdown", action="store_true", help="skip diagnostic runs")
    parser.add_argument(
        "--compare",
        metavar="CHECKOUT",
        help="also run the kiosk from another checkout (a git worktree), requests interleaved",
    )
    add_weak_option(parser)
    args = parser.parse_args()
    n = args.n or (200 if args.quick else 2000)
    warmup = 20 if args.quick else 100
    try:
        with weak_panel(args.weak):
            asyncio.run(main_async(n, warmup, not args.no_breakdown, args.compare))
    except asyncio.CancelledError:  # SIGTERM: children stopped, temp dirs removed
        raise SystemExit(143) from None


if __name__ == "__main__":
    main()
