"""A paired teacher's controls while unpaired connections flood pairing or guess PINs.

Run: ``.venv/bin/python -m bench.pairing_flood [--quick] [--n N] [--kiosk-path DIR]``

Three processes: the kiosk (``python -m bench.pairing_flood kiosk``: a headless
``KioskApp`` that also answers ``pin`` and ``allow`` on its stdin, standing in for the
person at the panel), the attackers (``... attack``: plain websockets clients bound to
127.0.0.2, 127.0.0.3, ..., niced so that on a small machine they take less of the
kiosk's CPU than of their own), and the measuring teacher here, paired with the PIN
from 127.0.0.1, who casts a 2-slide lesson and sends ``control next/prev`` paced at
100/s, each timed until its ``ok``.

Phases, each with the same number of controls: quiet (the baseline of this run);
``pair_start`` flood (4 connections from 2 addresses, 190 ``pair_start`` a second
each, as in the report of the attack: over the 4 a second a connection may send before
it is authenticated, so each is closed after a few answers and opens again); PIN
guessing (4 connections from 2 other addresses, ``pair_start`` then a wrong
``pair_confirm``, 5 ms apart). Then, while the guessing goes on, a second teacher pairs
with the PIN the panel shows (allowing it on the panel if the panel asks) and an admin
pairs with the admin secret. ``--kiosk-path`` runs the kiosk from another checkout (to compare with
an older version).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The children (kiosk, attack) run with --kiosk-path's checkout first on the path, whose
# bench._common may be older: this module imports from it at the top only what every
# version has, and the parent's newer helpers where it uses them.
from bench._common import BENCH_ADMIN_SECRET, LOOPBACK, figure, heading, p50_p99, result_line
from controller.client import ControllerIdentity, KioskClient
from media.lesson import LessonItem, make_lesson
from protocol import limits
from protocol.constants import PROTOCOL_VERSION, SUBPROTOCOL

PACE_PER_S = 100.0
FLOOD_PER_S = 190.0
"""``pair_start`` per second per flooding connection (the issue's figure)."""
ATTACK_CONNECTIONS = 4
ATTACK_SOURCES = {"flood": ("127.0.0.2", "127.0.0.3"), "guess": ("127.0.0.4", "127.0.0.5")}
"""Each attack from addresses of its own (so the flood's budgets do not hold the guessing)."""
TEACHER = ControllerIdentity("c-bench-teacher", "Петрова Анна Сергеевна")
LATE = ControllerIdentity("c-bench-late", "Иванов Пётр")
ADMIN = ControllerIdentity("c-bench-admin", "Админ")


# --------------------------------------------------------------------------- the kiosk


async def run_kiosk(state_dir: Path) -> None:
    from kiosk.app import KioskApp
    from kiosk.config import KioskConfig

    app = KioskApp(
        KioskConfig(
            room="Bench",
            school="Bench",
            host=LOOPBACK,
            port=0,
            state_dir=state_dir,
            mode="headless",
            admin_secret=BENCH_ADMIN_SECRET,
            mdns=False,
        )
    )
    await app.start()
    loop = asyncio.get_running_loop()
    print(json.dumps({"port": app.server.port, "pid": os.getpid()}), flush=True)
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command = line.strip()
            if command == "pin":
                print(json.dumps({"pin": app.pin()}), flush=True)
            elif command == "allow":
                answer = getattr(app, "panel_answer_pairing", None)
                asked = getattr(app.display, "question", None) is not None
                if answer is not None:
                    answer(True)
                print(json.dumps({"asked": asked}), flush=True)
    finally:
        await app.stop()


# --------------------------------------------------------------------------- the attackers


async def attacker(
    port: int, source: str, n: int, mode: str, stop: asyncio.Event, seen: dict[str, int]
) -> None:
    """Attack over one connection; when the kiosk closes it, open another, as a real
    attacker would."""
    from websockets.exceptions import ConnectionClosed

    while not stop.is_set():
        try:
            await attack_once(port, source, n, mode, stop, seen)
        except (ConnectionClosed, OSError) as exc:
            key = f"closed: {exc}"[:60]
            seen[key] = seen.get(key, 0) + 1


async def attack_once(
    port: int, source: str, n: int, mode: str, stop: asyncio.Event, seen: dict[str, int]
) -> None:
    from protocol.pairing import ControllerPairing

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    cid = f"c-attack-{source}-{n}"
    async with connect(
        f"wss://{LOOPBACK}:{port}/v1",
        ssl=ctx,
        subprotocols=[Subprotocol(SUBPROTOCOL)],
        compression=None,
        max_size=limits.MAX_FRAME_BYTES,
        proxy=None,
        local_addr=(source, 0),
    ) as ws:

        async def reply() -> dict[str, Any]:
            while True:
                msg: dict[str, Any] = json.loads(await ws.recv())
                if msg["type"] != "status" or msg.get("re") is not None:
                    return msg

        hello = {
            "type": "hello",
            "id": 1,
            "protocol_version": PROTOCOL_VERSION,
            "controller_id": cid,
            "controller_name": "Attacker",
            "token": None,
        }
        await ws.send(json.dumps(hello))
        welcome = await reply()

        exchange = ControllerPairing(
            "000000", controller_id=cid, kiosk_id=welcome["kiosk_id"], fingerprint="x"
        )
        msg_a = base64.b64encode(exchange.start()).decode()
        start = json.dumps({"type": "pair_start", "id": 2, "role": "teacher", "spake": msg_a})
        interval = 1 / FLOOD_PER_S
        next_at = time.monotonic()
        while not stop.is_set():
            if mode == "flood":
                await ws.send(start)
                got = await reply()
                key = got.get("code", got["type"])
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    next_at = time.monotonic()
            else:
                # A wrong guess needs no SPAKE2 here: any confirmation but the right one
                # is one (and the attacker's own CPU stays out of the figures).
                await ws.send(start)
                offer = await reply()
                if offer["type"] == "pair_offer":
                    confirm = os.urandom(32)
                    await ws.send(
                        json.dumps(
                            {
                                "type": "pair_confirm",
                                "id": 3,
                                "confirm": base64.b64encode(confirm).decode(),
                            }
                        )
                    )
                    got = await reply()
                else:
                    got = offer
                key = got.get("code", got["type"])
                await asyncio.sleep(0.005)
            seen[key] = seen.get(key, 0) + 1


async def run_attack(port: int, mode: str) -> None:
    with contextlib.suppress(OSError):
        os.nice(10)
    stop = asyncio.Event()
    seen: dict[str, int] = {}
    loop = asyncio.get_running_loop()
    tasks = [
        asyncio.create_task(attacker(port, ATTACK_SOURCES[mode][i % 2], i, mode, stop, seen))
        for i in range(ATTACK_CONNECTIONS)
    ]
    print(json.dumps({"ready": True}), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    print(json.dumps({"seen": seen, "errors": errors}), flush=True)


# --------------------------------------------------------------------------- measuring


class Child:
    """A child process of this script that talks JSON lines on stdin/stdout."""

    def __init__(self, *args: str, path: str | None = None) -> None:
        from bench._common import child_env

        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(*([path] if path else [])),
        )

    async def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.to_thread(self.proc.stdout.readline)
        if not line:
            raise RuntimeError(f"child {self.proc.args!r} exited with {self.proc.wait()}")
        result: dict[str, Any] = json.loads(line)
        return result

    async def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return await self.read()

    def close(self) -> None:
        from bench._common import stop_process

        stop_process(self.proc)


async def controls(client: KioskClient, n: int) -> list[float]:
    samples = []
    next_at = time.perf_counter()
    for i in range(n):
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        t0 = time.perf_counter()
        await client.control("next" if i % 2 == 0 else "prev")
        samples.append(time.perf_counter() - t0)
        next_at = t0 + 1 / PACE_PER_S
    return samples


async def under_attack(port: int, mode: str, path: str | None) -> Child:
    child = Child("attack", "--port", str(port), "--mode", mode, path=path)
    await child.read()
    await asyncio.sleep(1.0)  # let the attack reach its pace
    return child


async def stop_attack(child: Child) -> dict[str, Any]:
    assert child.proc.stdin is not None
    child.proc.stdin.write("stop\n")
    child.proc.stdin.flush()
    result = await child.read()
    child.close()
    return result


async def pair_with_panel(kiosk: Child, address: str) -> tuple[bool, bool, float]:
    """A teacher pairs with the PIN the panel shows; the panel allows it if it asks.

    Returns (paired, asked on the panel, seconds).
    """
    pin = (await kiosk.ask("pin"))["pin"]
    t0 = time.perf_counter()
    async with await KioskClient.connect(address, LATE) as client:
        pairing = asyncio.create_task(client.pair(pin))
        done, _ = await asyncio.wait({pairing}, timeout=0.5)
        asked = False
        if not done:
            asked = bool((await kiosk.ask("allow"))["asked"])
        try:
            await pairing
        except Exception as exc:
            print(f"  second teacher could not pair: {exc}")
            return False, asked, time.perf_counter() - t0
    return True, asked, time.perf_counter() - t0


async def main_async(n: int, kiosk_path: str | None) -> None:
    from bench._common import pair_as_admin

    state = Path(tempfile.mkdtemp(prefix="bench-pairing-flood-"))
    kiosk = Child("kiosk", "--state-dir", str(state), path=kiosk_path)
    try:
        info = await kiosk.read()
        address = f"{LOOPBACK}:{info['port']}"
        pin = (await kiosk.ask("pin"))["pin"]
        client = await KioskClient.connect(address, TEACHER)
        await client.pair(pin)
        lesson = make_lesson(
            "Bench", [LessonItem("text", "A", text="A"), LessonItem("text", "B", text="B")]
        )
        await client.cast(lesson)
        await controls(client, 50)  # warm-up
        print(f"pairing flood: {n} controls per phase at {PACE_PER_S:.0f}/s; kiosk {address}")
        quiet = await controls(client, n)
        flood = await under_attack(info["port"], "flood", kiosk_path)
        flooded = await controls(client, n)
        flood_seen = await stop_attack(flood)
        guessers = await under_attack(info["port"], "guess", kiosk_path)
        guessed = await controls(client, n)
        paired, asked, pair_s = await pair_with_panel(kiosk, address)
        try:
            await pair_as_admin(address, ADMIN)
            admin_paired = True
        except Exception as exc:
            print(f"  admin could not pair: {exc}")
            admin_paired = False
        guess_seen = await stop_attack(guessers)
        await client.close()
    finally:
        kiosk.close()
        shutil.rmtree(state, ignore_errors=True)
    q50, q99 = p50_p99(quiet)
    heading("teacher's control round trip, quiet (baseline)")
    figure("p50", q50 * 1000, "ms")
    figure("p99", q99 * 1000, "ms")
    f50, f99 = p50_p99(flooded)
    heading(
        f"during a pair_start flood ({ATTACK_CONNECTIONS} connections, "
        f"{FLOOD_PER_S:.0f}/s each): answers {flood_seen['seen']}"
    )
    figure("p50", f50 * 1000, "ms", f"{f50 / q50:.2f}x quiet")
    figure("p99", f99 * 1000, "ms", f"{f99 / q99:.2f}x quiet")
    g50, g99 = p50_p99(guessed)
    heading(f"during PIN guessing ({ATTACK_CONNECTIONS} connections): answers {guess_seen['seen']}")
    figure("p50", g50 * 1000, "ms", f"{g50 / q50:.2f}x quiet")
    figure("p99", g99 * 1000, "ms", f"{g99 / q99:.2f}x quiet")
    heading("pairing during the guessing")
    print(f"  second teacher paired: {paired} (asked on the panel: {asked}, {pair_s:.2f} s)")
    print(f"  admin paired: {admin_paired}")
    for name, seen in (("flood", flood_seen), ("guess", guess_seen)):
        if seen["errors"]:
            print(f"  {name} connections ended: {seen['errors'][:2]}")
    result_line(
        "pairing_flood",
        {
            "n": n,
            "quiet_p50_ms": q50 * 1000,
            "quiet_p99_ms": q99 * 1000,
            "flood_p50_ms": f50 * 1000,
            "flood_p99_ms": f99 * 1000,
            "guess_p50_ms": g50 * 1000,
            "guess_p99_ms": g99 * 1000,
            "teacher_paired": int(paired),
            "admin_paired": int(admin_paired),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pairing_flood", description=__doc__)
    sub = parser.add_subparsers(dest="role")
    kiosk = sub.add_parser("kiosk")
    kiosk.add_argument("--state-dir", type=Path, required=True)
    attack = sub.add_parser("attack")
    attack.add_argument("--port", type=int, required=True)
    attack.add_argument("--mode", choices=["flood", "guess"], required=True)
    parser.add_argument("--quick", action="store_true", help="300 controls a phase")
    parser.add_argument("--n", type=int, help="controls per phase (default 1000)")
    parser.add_argument("--kiosk-path", help="run the kiosk from this checkout")
    args = parser.parse_args()
    if args.role == "kiosk":
        asyncio.run(run_kiosk(args.state_dir))
    elif args.role == "attack":
        asyncio.run(run_attack(args.port, args.mode))
    else:
        asyncio.run(main_async(args.n or (300 if args.quick else 1000), args.kiosk_path))


if __name__ == "__main__":
    main()
