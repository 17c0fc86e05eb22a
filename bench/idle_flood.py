"""Hostile idle connections against a kiosk: its RSS, and a teacher's connect + hello.

Run: ``.venv/bin/python -m bench.idle_flood [--kind tls|half|slow] [--count N] [--seconds S]``

A kiosk runs in a child process (``KioskApp`` as ``classcast-kiosk --headless`` runs it,
INFO log, no window); an attacker process keeps
``--count`` connections from 127.0.0.1 open and opens a new one whenever one is closed
(so connections keep arriving while the kiosk evicts them):

- ``tls``: TLS and the websocket opening handshake done, then silence;
- ``half``: a TCP connection that never starts TLS;
- ``slow``: TLS done, then an HTTP upgrade request trickled one byte a second.

Figures: the kiosk's RSS (``VmRSS``) before, at its peak during, and 3 s after the
attack; a paired admin's ``KioskClient.connect`` (TLS, certificate check, hello with its
token, welcome) p50/p99/max, quiet and under attack (one every 0.1 s), and how many
failed; the kiosk's CPU share during the attack; its log lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench._common import (
    child_env,
    figure,
    heading,
    kiosk_address,
    kiosk_config,
    log_like_kiosk,
    p50_p99,
    pair_as_admin,
    proc_cpu_s,
    raise_nofile,
    result_line,
    rss_mb,
    stop_process,
    tls_client_context,
)
from controller.client import ControllerIdentity, Credentials, KioskClient
from protocol.errors import ClassCastError

ADMIN = ControllerIdentity("c-bench-flood", "Bench")


# ----------------------------------------------------------------- attacker process


async def _hold(kind: str, address: str, opened: list[int]) -> None:
    host, port = address.rsplit(":", 1)
    ctx = tls_client_context()
    while True:
        writer = None
        try:
            if kind == "half":
                reader, writer = await asyncio.open_connection(host, int(port))
                opened[0] += 1
                await reader.read()
            elif kind == "tls":
                from websockets.asyncio.client import connect
                from websockets.typing import Subprotocol

                ws = await connect(
                    f"wss://{address}/v1",
                    ssl=ctx,
                    subprotocols=[Subprotocol("classcast.v1")],
                    proxy=None,
                    ping_interval=None,
                    open_timeout=30,
                )
                opened[0] += 1
                await ws.wait_closed()
            else:
                reader, writer = await asyncio.open_connection(host, int(port), ssl=ctx)
                opened[0] += 1
                request = b"GET /v1 HTTP/1.1\r\nHost: x\r\n"
                for byte in request:
                    writer.write(bytes([byte]))
                    await asyncio.sleep(1)
                await reader.read()
        except (TimeoutError, OSError, ssl.SSLError, EOFError):
            await asyncio.sleep(0.01)
        except Exception:  # any handshake failure: try again
            await asyncio.sleep(0.01)
        finally:
            if writer is not None:
                writer.close()


async def attack(kind: str, address: str, count: int) -> None:
    opened = [0]
    tasks = [asyncio.create_task(_hold(kind, address, opened)) for _ in range(count)]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    start = time.monotonic()
    await stop.wait()
    print(f"opened {opened[0]} in {time.monotonic() - start:.1f} s", flush=True)
    for task in tasks:
        task.cancel()


# ----------------------------------------------------------------- measuring process


FAILURES: list[str] = []
SLOW_SAMPLE_S = 0.2


async def connect_times(address: str, creds: Credentials, n: int) -> list[float]:
    """``n`` connects with hello; a failed one is recorded in FAILURES and timed as such."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        try:
            client = await KioskClient.connect(address, ADMIN, credentials=creds, timeout_s=30)
        except ClassCastError as exc:
            FAILURES.append(f"{type(exc).__name__}: {exc}")
            times.append(time.perf_counter() - start)
            continue
        times.append(time.perf_counter() - start)
        assert client.role == "admin"
        await client.close()
        await asyncio.sleep(0.05)
    return times


async def main(kind: str, count: int, seconds: float, n: int) -> None:
    raise_nofile()
    state = Path(tempfile.mkdtemp(prefix="bench-flood-"))
    log = state / "kiosk.log"
    try:
        with kiosk_process(state, log) as (pid, address):
            creds = await pair_as_admin(address, ADMIN)
            await asyncio.sleep(1)
            heading(f"{count} {kind} connections for {seconds:g} s")
            before = rss_mb(pid)
            quiet = await connect_times(address, creds, n)
            attacker = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
                [
                    sys.executable,
                    "-m",
                    "bench.idle_flood",
                    "--attacker",
                    kind,
                    address,
                    "--count",
                    str(count),
                ],
                env=child_env(),
                stdout=subprocess.PIPE,
                text=True,
            )
            cpu0, wall0 = proc_cpu_s(pid), time.monotonic()
            try:
                peak = before
                end = time.monotonic() + seconds
                attacked: list[float] = []
                late: list[str] = []
                while time.monotonic() < end:
                    await asyncio.sleep(0.1)
                    peak = max(peak, rss_mb(pid))
                    sample = await connect_times(address, creds, 1)
                    attacked += sample
                    if sample[0] > SLOW_SAMPLE_S:
                        late.append(
                            f"{sample[0] * 1000:.0f} ms at +{time.monotonic() - wall0:.1f} s"
                        )
                    peak = max(peak, rss_mb(pid))
            finally:
                kiosk_cpu = (proc_cpu_s(pid) - cpu0) / (time.monotonic() - wall0)
                attacker.send_signal(signal.SIGTERM)
                out, _ = attacker.communicate(timeout=30)
            print("  attacker:", out.strip(), f"; kiosk CPU during: {kiosk_cpu:.0%}")
            print(f"  connects over {SLOW_SAMPLE_S * 1000:.0f} ms:", ", ".join(late) or "none")
            print(f"  teacher connects failed: {len(FAILURES)}", *FAILURES[:3], sep="\n    ")
            await asyncio.sleep(3)
            after = rss_mb(pid)
            quiet_p50, quiet_p99 = p50_p99(quiet)
            att_p50, att_p99 = p50_p99(attacked)
            figure("kiosk RSS before", before, "MiB")
            figure("kiosk RSS peak during", peak, "MiB")
            figure("kiosk RSS 3 s after", after, "MiB")
            figure("connect+hello quiet p50", quiet_p50 * 1000, "ms", f"p99 {quiet_p99 * 1000:.1f}")
            figure(
                "connect+hello attacked p50",
                att_p50 * 1000,
                "ms",
                f"p99 {att_p99 * 1000:.1f}, max {max(attacked) * 1000:.1f}, n={len(attacked)}",
            )
            result_line(
                f"idle_flood_{kind}",
                {
                    "rss_before_mb": before,
                    "rss_peak_mb": peak,
                    "rss_after_mb": after,
                    "quiet_p50_ms": quiet_p50 * 1000,
                    "attacked_p50_ms": att_p50 * 1000,
                    "attacked_p99_ms": att_p99 * 1000,
                    "attacked_max_ms": max(attacked) * 1000,
                    "teacher_failures": len(FAILURES),
                    "ratio_p50": att_p50 / quiet_p50,
                },
            )
            lines = log.read_text().splitlines()
            tracebacks = sum(line.startswith("Traceback") for line in lines)
            figure("kiosk log lines", len(lines), "", f"{tracebacks} tracebacks")
            for line in lines[:: max(1, len(lines) // 10)][:12]:
                print("   |", line[:160])
    finally:
        shutil.rmtree(state, ignore_errors=True)


@contextlib.contextmanager
def kiosk_process(state: Path, log: Path) -> Iterator[tuple[int, str]]:
    """``classcast-kiosk --headless`` as in production (INFO log to ``log``): (pid, address)."""
    env = child_env(PYTHONUNBUFFERED="1")
    args = [sys.executable, "-m", "bench.idle_flood", "--kiosk", str(state / "kiosk")]
    with log.open("w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    try:
        assert proc.stdout is not None
        yield proc.pid, kiosk_address(proc.stdout.readline())
    finally:
        stop_process(proc, terminate=True)


def run_kiosk(state_dir: Path) -> None:
    """The kiosk's network side as ``classcast-kiosk --headless`` runs it, without a window."""
    from kiosk.app import KioskApp, run_until_signal

    log_like_kiosk()
    config = kiosk_config(state_dir)

    def ready(app: KioskApp) -> None:
        print(f"ready {app.url}", flush=True)

    app = KioskApp(config)
    gc.freeze()  # as classcast-kiosk does: start-up objects are never collected
    asyncio.run(run_until_signal(app, ready))


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_flood")
    parser.add_argument("--kind", choices=["tls", "half", "slow"], default="tls")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--n", type=int, default=50, help="quiet connects")
    parser.add_argument("--attacker", nargs=2, metavar=("KIND", "ADDRESS"))
    parser.add_argument("--kiosk", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kiosk:
        run_kiosk(args.kiosk)
    elif args.attacker:
        raise_nofile()
        asyncio.run(attack(args.attacker[0], args.attacker[1], args.count))
    else:
        asyncio.run(main(args.kind, args.count, args.seconds, args.n))


if __name__ == "__main__":
    cli()
