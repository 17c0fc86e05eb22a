"""Time to pair: connect, run the SPAKE2 exchange, receive a token.

A kiosk runs in a child process (``bench._servers kiosk``). Each round opens a new
connection (TLS handshake, ``hello``) and pairs as admin with the kiosk's admin secret —
the same exchange as a teacher's PIN, which the benchmark cannot read off a screen.
Baseline, in the same run: the same connection and ``hello`` without pairing, so the
ratio shows what pairing adds to simply reaching the panel. Also prints the SPAKE2
computation of both sides alone, in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench._common import (
    BENCH_ADMIN_SECRET,
    LOOPBACK,
    ServerProcess,
    add_weak_option,
    figure,
    heading,
    p50_p99,
    result_line,
    weak_panel,
)
from controller.client import ControllerIdentity, KioskClient
from protocol.pairing import ControllerPairing, KioskPairing

IDENTITY = ControllerIdentity("c-bench-pairing", "Bench")


async def connect_only(address: str) -> float:
    start = time.perf_counter()
    client = await KioskClient.connect(address, IDENTITY)
    elapsed = time.perf_counter() - start
    await client.close()
    return elapsed


async def connect_and_pair(address: str) -> float:
    start = time.perf_counter()
    client = await KioskClient.connect(address, IDENTITY)
    await client.pair(BENCH_ADMIN_SECRET, role="admin")
    elapsed = time.perf_counter() - start
    await client.close()
    return elapsed


def spake2_alone() -> float:
    start = time.perf_counter()
    a = ControllerPairing("123456", controller_id="c", kiosk_id="k", fingerprint="f")
    b = KioskPairing("123456", controller_id="c", kiosk_id="k", fingerprint="f")
    offer = b.respond(a.start())
    b.verify_controller(a.finish(offer))
    return time.perf_counter() - start


async def main_async(rounds: int) -> None:
    state = Path(tempfile.mkdtemp(prefix="bench-pairing-"))
    try:
        with ServerProcess("kiosk", "--count", "1", "--state-dir", str(state)) as server:
            address = f"{LOOPBACK}:{server.info['ports'][0]}"
            print(f"pairing: {rounds} rounds each, alternating; kiosk in a child process")
            base: list[float] = []
            paired: list[float] = []
            for _ in range(3):  # warm-up
                await connect_only(address)
                await connect_and_pair(address)
            for _ in range(rounds):
                base.append(await connect_only(address))
                paired.append(await connect_and_pair(address))
    finally:
        shutil.rmtree(state, ignore_errors=True)
    spake = [spake2_alone() for _ in range(rounds)]
    b50, b99 = p50_p99(base)
    p50, p99 = p50_p99(paired)
    heading("baseline: TLS connect + hello")
    figure("p50", b50 * 1000, "ms")
    figure("p99", b99 * 1000, "ms")
    heading("connect + hello + pair (SPAKE2, key confirmation, token)")
    figure("p50", p50 * 1000, "ms", f"{p50 / b50:.2f}x baseline")
    figure("p99", p99 * 1000, "ms", f"{p99 / b99:.2f}x baseline")
    heading("SPAKE2 of both sides, computed here")
    figure("median", statistics.median(spake) * 1000, "ms")
    result_line(
        "pairing",
        {
            "rounds": rounds,
            "connect_p50_ms": b50 * 1000,
            "pair_p50_ms": p50 * 1000,
            "pair_p99_ms": p99 * 1000,
            "ratio_p50": p50 / b50,
            "spake2_ms": statistics.median(spake) * 1000,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pairing", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 rounds (a smoke run)")
    parser.add_argument("--rounds", type=int, help="rounds per target (default 50)")
    add_weak_option(parser)
    args = parser.parse_args()
    with weak_panel(args.weak):
        asyncio.run(main_async(args.rounds or (10 if args.quick else 50)))


if __name__ == "__main__":
    main()
