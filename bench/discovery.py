"""Discovery latency: a kiosk starts advertising → it appears in a browser, vs bare zeroconf.

Run: ``.venv/bin/python -m bench.discovery [--quick] [--runs N]``

Everything is bound to ``127.0.0.1`` (IPv4 only): nothing multicasts on the machine's
real interfaces (DESIGN §7). The advertiser runs in a child process (its own event
loop, as on a real panel); the browser runs here and is already running when the
child is told to register, so a run times: the child opening its zeroconf sockets,
probing the name (python-zeroconf 0.154: a random 150-250 ms wait, then 3 probes
500 ms apart, so ≈1.15-1.25 s; RFC 6762 itself allows 250 ms apart), announcing,
and the browser resolving the records and converting them.

Figures, runs alternating between the two targets, a fresh name each run:

- classcast: ``kiosk.advertise.ZeroconfAdvertiser`` in the child →
  ``controller.discovery.ZeroconfDiscovery.wait_for_kiosk`` here (KioskFound);
- baseline: a bare python-zeroconf ``AsyncServiceInfo`` registration in the child →
  a bare ``AsyncServiceBrowser`` (QM) here, timed at its ``Added`` callback;
- breakdown: how long the child's registration call took (probing) for each;
- find: a kiosk already advertising, a fresh browser opened here until it has found
  it (``ZeroconfDiscovery`` vs a bare ``AsyncServiceBrowser``): what ``classcast
  panels`` / "find panel X" costs. Runs are 1.2 s apart: a responder that multicast
  its records in the last second answers only ~1 s later (RFC 6762 §6), so
  back-to-back browsers measure that rate limit instead (≈1.1 s here).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from dataclasses import dataclass

from zeroconf import DNSQuestionType, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from bench._common import (
    LOOPBACK,
    REPO_ROOT,
    cancel_on_sigterm,
    child_env,
    figure,
    heading,
    percentile,
    result_line,
    stop_async_process,
)
from controller.discovery import ZeroconfDiscovery
from kiosk.advertise import ZeroconfAdvertiser
from protocol.constants import SERVICE_TYPE
from protocol.discovery import Advertisement, instance_name

INTERFACES = [LOOPBACK]
APPEAR_TIMEOUT_S = 10.0
AIM_S = 1.0
FIND_PAUSE_S = 1.2
"""Pause before each "find" run, longer than the responders' 1 s multicast rate limit."""
PROBING_FLOOR_S = 1.15
"""python-zeroconf 0.154 probing: a random 150-250 ms wait, then 3 probes 500 ms apart."""
PORT = 47_810


# --------------------------------------------------------------------------- child


async def child_main() -> None:
    """The advertiser child: ``start classcast|bare ID ROOM`` / ``stop`` on stdin.

    Answers ``STARTED <seconds the registration took>`` and ``STOPPED``; exits on EOF.
    """
    loop = asyncio.get_running_loop()
    advertiser: ZeroconfAdvertiser | None = None
    bare: tuple[AsyncZeroconf, AsyncServiceInfo] | None = None

    async def stop() -> None:
        nonlocal advertiser, bare
        if advertiser is not None:
            await advertiser.stop()
            advertiser = None
        if bare is not None:
            zc, info = bare
            await (await zc.async_unregister_service(info))
            await zc.async_close()
            bare = None

    print("READY", flush=True)
    try:
        while True:
            words = (await loop.run_in_executor(None, sys.stdin.readline)).split(maxsplit=3)
            if not words:
                break
            if words[0] == "start":
                _, kind, kiosk_id, room = words
                ad = Advertisement(kiosk_id, room, "Школа № 5", PORT, "ab" * 32, "idle")
                started = time.perf_counter()
                if kind == "classcast":
                    advertiser = ZeroconfAdvertiser(INTERFACES)
                    await advertiser.start(ad)
                else:
                    zc = AsyncZeroconf(interfaces=INTERFACES, ip_version=IPVersion.V4Only)
                    info = AsyncServiceInfo(
                        SERVICE_TYPE,
                        instance_name(room),
                        port=PORT,
                        properties=ad.txt(),
                        parsed_addresses=INTERFACES,
                    )
                    bare = (zc, info)
                    await zc.async_register_service(info)
                print("STARTED", time.perf_counter() - started, flush=True)
            elif words[0] == "stop":
                await stop()
                print("STOPPED", flush=True)
    finally:
        await stop()


# --------------------------------------------------------------------------- parent


class Child:
    """The advertiser child process, driven over its stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def spawn(cls) -> Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.discovery",
            "--child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=REPO_ROOT,
            env=child_env(),
        )
        child = cls(proc)
        try:
            await child.expect("READY")
        except BaseException:
            await child.close()
            raise
        return child

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def expect(self, word: str) -> str:
        assert self.proc.stdout is not None
        async with asyncio.timeout(APPEAR_TIMEOUT_S):
            while True:
                line = (await self.proc.stdout.readline()).decode()
                if not line:
                    raise RuntimeError(f"advertiser child exited with {await self.proc.wait()}")
                if line.startswith(word):
                    return line[len(word) :].strip()

    async def close(self) -> None:
        """Close stdin (the child unregisters and exits); kill it if it lingers."""
        await stop_async_process(self.proc)


@dataclass
class Sample:
    appear_s: float
    register_s: float


async def run_classcast(child: Child, discovery: ZeroconfDiscovery) -> Sample:
    kiosk_id = f"bench-{uuid.uuid4().hex[:10]}"
    started = time.perf_counter()
    await child.send(f"start classcast {kiosk_id} Каб. {kiosk_id}")
    await discovery.wait_for_kiosk(lambda k: k.kiosk_id == kiosk_id, APPEAR_TIMEOUT_S)
    appeared = time.perf_counter() - started
    register_s = float(await child.expect("STARTED"))
    await child.send("stop")
    await child.expect("STOPPED")
    return Sample(appeared, register_s)


class BareBrowser:
    """A bare python-zeroconf browser: records when each name was first ``Added``."""

    def __init__(self) -> None:
        self.added: dict[str, asyncio.Future[float]] = {}

    def future(self, name: str) -> asyncio.Future[float]:
        return self.added.setdefault(name, asyncio.get_running_loop().create_future())

    def handler(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Added:
            future = self.future(name)
            if not future.done():
                future.set_result(time.perf_counter())


async def run_bare(child: Child, browser: BareBrowser) -> Sample:
    kiosk_id = f"bench-{uuid.uuid4().hex[:10]}"
    room = f"Каб. {kiosk_id}"
    added = browser.future(instance_name(room))
    started = time.perf_counter()
    await child.send(f"start bare {kiosk_id} {room}")
    async with asyncio.timeout(APPEAR_TIMEOUT_S):
        appeared = await added - started
    register_s = float(await child.expect("STARTED"))
    await child.send("stop")
    await child.expect("STOPPED")
    return Sample(appeared, register_s)


async def find_classcast(kiosk_id: str) -> float:
    started = time.perf_counter()
    async with ZeroconfDiscovery(INTERFACES) as discovery:
        await discovery.wait_for_kiosk(lambda k: k.kiosk_id == kiosk_id, APPEAR_TIMEOUT_S)
        return time.perf_counter() - started


async def find_bare(name: str) -> float:
    browser = BareBrowser()
    added = browser.future(name)
    started = time.perf_counter()
    async with (
        AsyncZeroconf(interfaces=INTERFACES, ip_version=IPVersion.V4Only) as zc,
        AsyncServiceBrowser(
            zc.zeroconf, SERVICE_TYPE, handlers=[browser.handler], question_type=DNSQuestionType.QM
        ),
        asyncio.timeout(APPEAR_TIMEOUT_S),
    ):
        return await added - started


def report_find(label: str, samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    median, p90 = percentile(ordered, 0.5), percentile(ordered, 0.9)
    figure(f"{label}: found median", median * 1e3, "ms")
    figure(f"{label}: found p90", p90 * 1e3, "ms")
    return median, p90


def report(label: str, samples: list[Sample]) -> tuple[float, float]:
    appear = sorted(s.appear_s for s in samples)
    register = sorted(s.register_s for s in samples)
    median, p90 = percentile(appear, 0.5), percentile(appear, 0.9)
    figure(f"{label}: appear median", median * 1e3, "ms")
    figure(f"{label}: appear p90", p90 * 1e3, "ms")
    figure(f"{label}: appear min / max", appear[0] * 1e3, "ms", f"max {appear[-1] * 1e3:.0f} ms")
    figure(f"{label}: child registration median", percentile(register, 0.5) * 1e3, "ms")
    return median, p90


async def main_async(runs: int) -> None:
    cancel_on_sigterm()
    heading(f"advertiser start → seen by a browser, 127.0.0.1, {runs} runs each (alternating)")
    ours: list[Sample] = []
    base: list[Sample] = []
    bare = BareBrowser()
    child = await Child.spawn()
    try:
        async with (
            ZeroconfDiscovery(INTERFACES) as discovery,
            AsyncZeroconf(interfaces=INTERFACES, ip_version=IPVersion.V4Only) as zc,
            AsyncServiceBrowser(
                zc.zeroconf,
                SERVICE_TYPE,
                handlers=[bare.handler],
                question_type=DNSQuestionType.QM,
            ),
        ):
            for _ in range(runs):
                ours.append(await run_classcast(child, discovery))
                base.append(await run_bare(child, bare))
        # A kiosk already on the air: how long a fresh browser takes to find it.
        kiosk_id = f"bench-{uuid.uuid4().hex[:10]}"
        room = f"Каб. {kiosk_id}"
        await child.send(f"start classcast {kiosk_id} {room}")
        await child.expect("STARTED")
        find_ours: list[float] = []
        find_base: list[float] = []
        for _ in range(runs):
            # A responder that multicast a record in the last second delays its next
            # answer by ~1 s (RFC 6762 §6); pause so each fresh browser is the first to ask.
            await asyncio.sleep(FIND_PAUSE_S)
            find_ours.append(await find_classcast(kiosk_id))
            await asyncio.sleep(FIND_PAUSE_S)
            find_base.append(await find_bare(instance_name(room)))
    finally:
        await child.close()

    heading("baseline: bare python-zeroconf registration → AsyncServiceBrowser (QM) Added")
    b50, b90 = report("baseline", base)
    heading("classcast: ZeroconfAdvertiser → ZeroconfDiscovery.wait_for_kiosk (KioskFound)")
    c50, c90 = report("classcast", ours)

    heading("find a kiosk already advertising: fresh browser opened → found")
    fb50, _ = report_find("baseline AsyncServiceBrowser Added", find_base)
    fc50, fc90 = report_find("classcast ZeroconfDiscovery KioskFound", find_ours)

    heading("summary")
    figure("ratio median classcast/baseline", c50 / b50, "x")
    figure("ratio p90 classcast/baseline", c90 / b90, "x")
    figure("classcast median", c50 * 1e3, "ms", f"aim <= {AIM_S * 1e3:.0f} ms")
    figure(
        "zeroconf probing floor",
        PROBING_FLOOR_S * 1e3,
        "ms",
        "150-250 ms wait + 3 probes 500 ms apart (RFC 6762: 250 ms)",
    )
    figure("find ratio median classcast/baseline", fc50 / fb50, "x")
    result_line(
        "discovery",
        {
            "runs": runs,
            "median_ms": c50 * 1e3,
            "p90_ms": c90 * 1e3,
            "baseline_median_ms": b50 * 1e3,
            "baseline_p90_ms": b90 * 1e3,
            "ratio_median": c50 / b50,
            "ratio_p90": c90 / b90,
            "find_median_ms": fc50 * 1e3,
            "find_p90_ms": fc90 * 1e3,
            "find_baseline_median_ms": fb50 * 1e3,
            "find_ratio_median": fc50 / fb50,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.discovery", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 runs each (a smoke run)")
    parser.add_argument("--runs", type=int, help="runs per target (default 10)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child_main())
        return
    runs = args.runs or (3 if args.quick else 10)
    try:
        asyncio.run(main_async(runs))
    except asyncio.CancelledError:  # SIGTERM: the child is stopped
        raise SystemExit(143) from None


if __name__ == "__main__":
    main()
