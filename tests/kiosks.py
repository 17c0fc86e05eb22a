"""Real kiosks for tests: in a thread with its own event loop, or as a child process."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from controller.client import ControllerIdentity, KioskClient
from kiosk.app import KioskApp
from kiosk.config import KioskConfig
from kiosk.headless import HeadlessDisplay
from tests.processes import stop_process

ADMIN_SECRET = "admin-secret-for-tests"


class ManualClock:
    """A kiosk's clocks that move only when a test says so (:meth:`advance`).

    They start at the real time unless told otherwise, so that a controller's clock and
    the kiosk's agree.
    """

    def __init__(self, *, mono_s: float | None = None, wall_s: float | None = None) -> None:
        self.mono_s = time.monotonic() if mono_s is None else mono_s
        self.wall_s = time.time() if wall_s is None else wall_s

    def monotonic(self) -> float:
        return self.mono_s

    def time(self) -> float:
        return self.wall_s

    def advance(self, seconds: float) -> None:
        self.mono_s += seconds
        self.wall_s += seconds


class KioskThread:
    """A real kiosk (websockets server, blob store, SQLite log) on 127.0.0.1:0.

    Runs on its own event loop in a daemon thread, like the kiosk's network thread, so
    tests may drive it from pytest-asyncio or from click's CliRunner alike. With a
    ``clock`` (:class:`ManualClock`) the kiosk's time moves only when the test moves it
    and then calls :meth:`tick`.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        room: str = "Каб. 12",
        clock: ManualClock | None = None,
        **config: Any,
    ) -> None:
        self.clock = clock
        settings: dict[str, Any] = {
            "room": room,
            "school": "Школа № 1",
            "host": "127.0.0.1",
            "port": 0,
            "state_dir": state_dir,
            "mode": "headless",
            "admin_secret": ADMIN_SECRET,
            "mdns": False,
        }
        self.config = KioskConfig(**{**settings, **config})
        self.display = HeadlessDisplay()
        self.loop = asyncio.new_event_loop()
        self.app: KioskApp | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> KioskThread:
        self._thread.start()
        self.app = self.call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.app is not None:
                self.call(self.app.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.loop.close()

    async def _start(self) -> KioskApp:
        app = KioskApp(self.config, display=self.display, clock=self.clock)
        await app.start()
        return app

    def call(self, coro: Any) -> Any:
        """Run ``coro`` on the kiosk's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def sync(self, fn: Any) -> Any:
        """Run plain ``fn()`` on the kiosk's loop (to read its state safely)."""

        async def wrapper() -> Any:
            return fn()

        return self.call(wrapper())

    def tick(self) -> None:
        """Let the kiosk act on its clock now (after the test moved it), as its timer does."""
        assert self.app is not None
        app = self.app

        def tick() -> None:
            with app.server.lock:
                app.service.tick()
            app.server.poke()

        self.sync(tick)

    @property
    def port(self) -> int:
        assert self.app is not None
        return self.app.server.port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def pin(self) -> str:
        """The PIN the panel shows now."""
        assert self.app is not None
        app = self.app
        return str(self.sync(app.pin))


@contextmanager
def kiosk_process(
    state_dir: Path,
    *extra: str,
    config: str = "",
    window: str = "--headless",
    env: dict[str, str] | None = None,
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run ``classcast-kiosk --headless`` (or ``window``) as a child process; yields
    (process, address). ``env`` is added to this process's environment."""
    args = [
        sys.executable,
        "-c",
        "from kiosk.cli import main; main()",
        window,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--state-dir",
        str(state_dir),
        "--room",
        "Каб. 7",
        *extra,
    ]
    config = f'admin_secret = "{ADMIN_SECRET}"\nmdns = false\n' + config
    path = state_dir.parent / f"{state_dir.name}.toml"
    path.write_text(config, encoding="utf-8")
    args += ["--config", str(path)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("ready "):
            proc.kill()
            raise RuntimeError(
                f"kiosk did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}"
            )
        url = line.split()[1]
        address = url.removeprefix("wss://").removesuffix("/v1")
        yield proc, address
    finally:
        stop_process(proc)


async def teacher(kiosk: KioskThread, identity: ControllerIdentity | None = None) -> KioskClient:
    """A connection paired as a teacher with the PIN the kiosk shows (real SPAKE2)."""
    from tests.conftest import TEACHER

    client = await KioskClient.connect(kiosk.address, identity or TEACHER)
    await client.pair(kiosk.pin())
    return client


async def admin(kiosk: KioskThread, identity: ControllerIdentity | None = None) -> KioskClient:
    """A connection paired as admin with the kiosk's admin secret."""
    client = await KioskClient.connect(
        kiosk.address, identity or ControllerIdentity("c-test-admin", "Админ")
    )
    await client.pair(ADMIN_SECRET, role="admin")
    return client


def open_play(state: Path, item_index: int) -> tuple[float, str | None, float | None] | None:
    """The open interval of ``item_index`` in the kiosk's usage log file: its start and
    last heartbeat (wall, monotonic), read as the file stands."""
    with closing(sqlite3.connect(state / "usage.sqlite")) as db:
        row = db.execute(
            "SELECT start_mono_s, last_seen_at, last_seen_mono_s FROM plays "
            "WHERE ended_at IS NULL AND item_index = ?",
            [item_index],
        ).fetchone()
    return None if row is None else (float(row[0]), row[1], row[2])


async def wait_for_heartbeats(state: Path, item_index: int, count: int) -> None:
    """Wait until the open interval of ``item_index`` in the kiosk's usage log has seen
    ``count`` heartbeats after its start."""
    seen: set[float] = set()
    async with asyncio.timeout(20):
        while True:
            play = open_play(state, item_index)
            if play is not None and play[2] is not None and play[2] > play[0]:
                seen.add(play[2])
                if len(seen) >= count:
                    return
            await asyncio.sleep(0.01)
