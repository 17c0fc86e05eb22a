"""Fan-out: one control command to 100 kiosks until every one acked, vs 100 echo servers.

Run: ``.venv/bin/python -m bench.fanout [--quick] [--kiosks N] [--procs P] [--rounds R]
[--no-diagnostic] [--compare CHECKOUT] [--weak]``

Placement: this machine has few cores, so the 100 kiosks run as ``KioskApp``
instances in ``--procs`` child processes (default 2, one per core), each process
hosting its share on one event loop. A real deployment has one CPU per panel; here
each process serialises the work of 50 kiosks, and their usage logs share one disk,
so the kiosk side is pessimistic. The baseline (100 websockets echo servers) is
hosted exactly the same way, so the ratio compares like with like. The controller
(``controller.group.Group``, 100 ``KioskClient`` connections) runs here.
``--procs 100`` runs each kiosk (and each echo server) in a process of its own, as on
real panels, but all on this machine's cores: the processes are started a few at a time
(one per CPU) on a worker thread, so the connections already open keep answering their
keepalive pings meanwhile.

Each round: ``Group.control(next|prev, together=False)`` (the fan-out itself, without a
common instant's lead) on a 2-item text lesson cast to all, timed
until all 100 ``ok`` replies arrived; rounds are ``GAP_S`` apart (a teacher's clicks
are far apart, and each kiosk pushes a status after every control). Baseline round:
a ``control``-sized text frame sent to each echo server concurrently, until all 100
echoes arrived.

The targets are set up first and their rounds interleaved (round i of each, then
round i + 1, the order reversed every other round), so a change of load during the run
falls on all alike. ``--compare CHECKOUT`` adds the same kiosks run from another
checkout (a ``git worktree`` of an earlier commit): a before/after in one run. The
diagnostics below run as a second set with an echo baseline of their own (idle kiosks
still write a heartbeat every 2 s).

Diagnostics: the same fan-out with the kiosks' state on tmpfs (``/dev/shm``), which
shows the share of the disk; and with kiosks that neither log usage nor save the
presentation they show (``bench._servers kiosk --no-bookkeeping``, not a real panel),
which shows what those two writes per control cost the kiosks; and servers with the
kiosk's wire shape and none of its work (``bench._servers wire``: each answers a control
with a status and an ok, as a kiosk does), which shows what the protocol alone costs in
this layout. The CPU lines separate the controller's share (this process) from the
kiosks' (their processes).
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

from bench._common import (
    BENCH_ADMIN_SECRET,
    LOOPBACK,
    ServerProcess,
    add_weak_option,
    cancel_on_sigterm,
    figure,
    heading,
    p50_p99,
    percentile,
    proc_cpu_s,
    result_line,
    start_servers,
    tmpfs_dir,
    two_text_lesson,
    weak_panel,
)
from controller.client import ControllerIdentity, Credentials, KioskClient, client_ssl_context
from controller.group import Group
from protocol import limits
from protocol.codec import encode
from protocol.messages import Control, ControlAction

GAP_S = 0.02
IDENTITY = ControllerIdentity("c-bench", "Bench Teacher")


@dataclass
class Target:
    """One fan-out target: its round, the child processes serving it, its figures."""

    label: str
    one_round: Callable[[int], Awaitable[None]]
    pids: list[int]
    samples_s: list[float] = field(default_factory=list)
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0

    def report(self, base: Target | None) -> tuple[float, float]:
        p50, p99 = p50_p99(self.samples_s)
        if base is not None:
            b50, b99 = p50_p99(base.samples_s)
            note50, note99 = f"{p50 / b50:.2f}x baseline", f"{p99 / b99:.2f}x baseline"
        else:
            note50 = note99 = ""
        figure(f"{self.label}: p50 of whole fan-out", p50 * 1e3, "ms", note50)
        # Where the slow rounds begin (with 50 kiosks a process: the rounds that meet
        # their usage-log commits, which a group control makes come together).
        p90 = percentile(sorted(self.samples_s), 0.90)
        figure(f"{self.label}: p90 of whole fan-out", p90 * 1e3, "ms")
        figure(f"{self.label}: p99 of whole fan-out", p99 * 1e3, "ms", note99)
        n = len(self.samples_s)
        figure(f"{self.label}: server CPU per round (all procs)", self.server_cpu_s / n * 1e3, "ms")
        figure(f"{self.label}: controller CPU per round", self.client_cpu_s / n * 1e3, "ms")
        return p50, p99


def action_for(i: int) -> ControlAction:
    return "next" if i % 2 == 0 else "prev"


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if n < total % parts else 0) for n in range(parts)]


async def interleaved_rounds(targets: list[Target], rounds: int, warmup: int) -> None:
    """Run round i of every target, then round i + 1, ...: each round of one target
    alone on the machine, the order reversed every other round, so a change of load
    during the run falls on every target alike.

    CPU is read around each round and the gap after it (a kiosk's usage commit lands
    after its round, on its writer thread): the servers' from their processes, the
    controller's from this one.
    """
    for i in range(warmup + rounds):
        for target in targets if i % 2 == 0 else targets[::-1]:
            s0 = sum(proc_cpu_s(p) for p in target.pids)
            c0 = time.process_time()
            t0 = time.perf_counter()
            await target.one_round(i)
            elapsed = time.perf_counter() - t0
            await asyncio.sleep(GAP_S)
            if i >= warmup:
                target.samples_s.append(elapsed)
                target.client_cpu_s += time.process_time() - c0
                target.server_cpu_s += sum(proc_cpu_s(p) for p in target.pids) - s0


@contextlib.asynccontextmanager
async def echo_target(kiosks: int, procs: int, *, wire: bool = False) -> AsyncIterator[Target]:
    """Echo servers laid out as the kiosks; with ``wire``, servers with the kiosk's wire
    shape and none of its work (``bench._servers wire``: a status and an ok a control)."""
    kind, replies = ("wire", 2) if wire else ("echo", 1)
    with contextlib.ExitStack() as stack:
        servers = [ServerProcess(kind, "--count", str(n)) for n in split(kiosks, procs)]
        await start_servers(stack, servers)
        ports = [p for s in servers for p in s.info["ports"]]
        conns: list[ClientConnection] = list(
            await asyncio.gather(
                *(
                    connect(
                        f"wss://{LOOPBACK}:{port}/",
                        ssl=client_ssl_context(),
                        compression=None,
                        max_size=limits.MAX_FRAME_BYTES,
                        proxy=None,
                        write_limit=4 * limits.MAX_CHUNK_FRAME_BYTES,
                    )
                    for port in ports
                )
            )
        )
        try:

            async def one(ws: ClientConnection, frame: str) -> None:
                await ws.send(frame)
                for _ in range(replies):
                    await asyncio.wait_for(ws.recv(), 10.0)

            async def one_round(i: int) -> None:
                frame = encode(Control(id=i + 2, action=action_for(i)))
                await asyncio.gather(*(one(ws, frame) for ws in conns))

            label = "the kiosk's wire shape only" if wire else "echo"
            yield Target(label, one_round, [s.info["pid"] for s in servers])
        finally:
            await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)


async def pair(address: str) -> Credentials:
    """Pair as admin with the benchmark kiosks' admin secret."""
    async with await KioskClient.connect(address, IDENTITY) as client:
        return await client.pair(BENCH_ADMIN_SECRET, role="admin")


@contextlib.asynccontextmanager
async def kiosk_target(
    label: str,
    kiosks: int,
    procs: int,
    state_root: Path,
    *,
    bookkeeping: bool = True,
    checkout: str | None = None,
) -> AsyncIterator[Target]:
    root = Path(tempfile.mkdtemp(prefix="bench-fanout-", dir=state_root))
    try:
        with contextlib.ExitStack() as stack:
            servers = [
                ServerProcess(
                    "kiosk",
                    "--count",
                    str(n),
                    "--state-dir",
                    str(root / f"p{index}"),
                    *([] if bookkeeping else ["--no-bookkeeping"]),
                    checkout=checkout,
                )
                for index, n in enumerate(split(kiosks, procs))
            ]
            await start_servers(stack, servers)
            addresses = [f"{LOOPBACK}:{p}" for s in servers for p in s.info["ports"]]
            creds = dict(
                zip(addresses, await asyncio.gather(*(pair(a) for a in addresses)), strict=True)
            )
            group = await Group.connect(addresses, IDENTITY, credentials=creds.get)
            try:
                if group.failed:
                    raise RuntimeError(f"{len(group.failed)} kiosks did not connect")
                outcomes = await group.cast(two_text_lesson("Bench: fan-out"))
                bad = [o for o in outcomes if not o.ok]
                if bad:
                    raise RuntimeError(f"cast failed on {len(bad)} kiosks: {bad[0].error}")
                await asyncio.gather(
                    *(
                        c.wait_for_status(lambda s: s.state == "playing", timeout_s=10)
                        for c in group.clients.values()
                    )
                )

                async def one_round(i: int) -> None:
                    results = await group.control(action_for(i), together=False)
                    failed = [o for o in results if not o.ok]
                    if failed:
                        raise RuntimeError(f"control failed on {len(failed)}: {failed[0].error}")

                yield Target(label, one_round, [s.info["pid"] for s in servers])
            finally:
                await group.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def main_async(
    kiosks: int,
    procs: int,
    rounds: int,
    warmup: int,
    shm: Path | None,
    checkout: str | None,
) -> None:
    cancel_on_sigterm()
    disk_root = Path(tempfile.gettempdir())
    per = split(kiosks, procs)
    print(
        f"fan-out: {kiosks} targets in {procs} child process(es) ({'+'.join(map(str, per))} "
        f"per event loop), controller here; {os.cpu_count()} CPUs"
    )
    print(
        f"{rounds} rounds (+{warmup} warm-up) per target, {GAP_S * 1e3:.0f} ms apart, the "
        f"targets' rounds interleaved; kiosk state on {disk_root}. Each process serialises "
        "its kiosks' work and all share one disk, so the kiosk side is pessimistic next to "
        "real panels with a CPU each."
    )
    # Kiosks idle between their rounds still beat their hearts (a transaction every
    # 2 s each): the diagnostics run in a second set, with an echo baseline of their own.
    async with contextlib.AsyncExitStack() as stack:
        echo = await stack.enter_async_context(echo_target(kiosks, procs))
        kiosk = await stack.enter_async_context(kiosk_target("kiosks", kiosks, procs, disk_root))
        targets = [echo, kiosk]
        other = tmpfs = bare = wire = None
        if checkout is not None:
            other = await stack.enter_async_context(
                kiosk_target(f"kiosks from {checkout}", kiosks, procs, disk_root, checkout=checkout)
            )
            targets.append(other)
        await interleaved_rounds(targets, rounds, warmup)
    if shm is not None:
        async with contextlib.AsyncExitStack() as stack:
            echo_again = await stack.enter_async_context(echo_target(kiosks, procs))
            wire = await stack.enter_async_context(echo_target(kiosks, procs, wire=True))
            tmpfs = await stack.enter_async_context(
                kiosk_target("kiosks on tmpfs", kiosks, procs, shm)
            )
            bare = await stack.enter_async_context(
                kiosk_target(
                    "kiosks without bookkeeping", kiosks, procs, disk_root, bookkeeping=False
                )
            )
            await interleaved_rounds([echo_again, wire, tmpfs, bare], rounds, warmup)

    heading(f"baseline: {kiosks} websockets echo servers")
    base = echo.report(None)
    heading(f"kiosks: Group.control next/prev to {kiosks} KioskApps")
    k50, k99 = kiosk.report(echo)
    n = len(kiosk.samples_s)
    values: dict[str, float | int | str] = {
        "kiosks": kiosks,
        "echo_p50_ms": base[0] * 1e3,
        "echo_p99_ms": base[1] * 1e3,
        "kiosk_p50_ms": k50 * 1e3,
        "kiosk_p99_ms": k99 * 1e3,
        "ratio_p50": k50 / base[0],
        "ratio_p99": k99 / base[1],
        "controller_cpu_ms": kiosk.client_cpu_s / n * 1e3,
        "kiosks_cpu_ms": kiosk.server_cpu_s / n * 1e3,
    }
    if other is not None:
        heading(f"the same kiosks run from {checkout}")
        o50, o99 = other.report(echo)
        values["other_p50_ms"] = o50 * 1e3
        values["other_p99_ms"] = o99 * 1e3
        values["other_kiosks_cpu_ms"] = other.server_cpu_s / len(other.samples_s) * 1e3
    if tmpfs is not None and bare is not None and wire is not None:
        heading("diagnostics, a second run: its echo baseline")
        echo_again.label = "echo (second run)"
        echo_again.report(None)
        heading("diagnostic: the kiosk's wire shape (a status and an ok), none of its work")
        _, w99 = wire.report(echo_again)
        values["wire_p99_ms"] = w99 * 1e3
        heading("diagnostic: kiosks with state on tmpfs (fsync costs nothing)")
        _, t99 = tmpfs.report(echo_again)
        values["tmpfs_p99_ms"] = t99 * 1e3
        heading("diagnostic: kiosks that neither log usage nor save the presentation")
        _, b99 = bare.report(echo_again)
        values["no_bookkeeping_p99_ms"] = b99 * 1e3

    heading("summary")
    figure("kiosk fan-out p99", k99 * 1e3, "ms", "aim <= 50 ms")
    figure("controller CPU per round", kiosk.client_cpu_s / n * 1e3, "ms")
    figure("kiosks' CPU per round", kiosk.server_cpu_s / n * 1e3, "ms")
    figure("ratio p50 kiosks/echo", k50 / base[0], "x")
    figure("ratio p99 kiosks/echo", k99 / base[1], "x")
    result_line("fanout", values)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20 rounds (a smoke run)")
    parser.add_argument("--kiosks", type=int, default=100)
    parser.add_argument("--procs", type=int, default=2, help="child processes hosting them")
    parser.add_argument("--rounds", type=int, help="timed rounds (default 200)")
    parser.add_argument("--no-diagnostic", action="store_true", help="skip the diagnostic runs")
    parser.add_argument(
        "--compare",
        metavar="CHECKOUT",
        help="also run the kiosks from another checkout (a git worktree), rounds interleaved",
    )
    add_weak_option(parser)
    args = parser.parse_args()
    rounds = args.rounds or (20 if args.quick else 200)
    warmup = 5 if args.quick else 10
    try:
        with weak_panel(args.weak):
            asyncio.run(
                main_async(
                    args.kiosks,
                    args.procs,
                    rounds,
                    warmup,
                    None if args.no_diagnostic else tmpfs_dir(),
                    args.compare,
                )
            )
    except asyncio.CancelledError:  # SIGTERM: children stopped, temp dirs removed
        raise SystemExit(143) from None


if __name__ == "__main__":
    main()
