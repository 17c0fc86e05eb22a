"""Wiring of a kiosk: state directory, blob store, usage log, service, server, display."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

from kiosk.access import Access, Moderation
from kiosk.advertise import ZeroconfAdvertiser
from kiosk.config import KioskConfig, kiosk_id
from kiosk.headless import HeadlessDisplay
from kiosk.player import Identity
from kiosk.server import WebsocketServer
from kiosk.service import Display, KioskService
from kiosk.tls import ensure_identity, ensure_signing_key
from kiosk.tokens import TokenStore
from kiosk.usage import UsageLog
from kiosk.usage_writer import UsageWriter
from media.store import BlobStore
from protocol.discovery import Advertisement
from protocol.messages import StatusSnapshot

logger = logging.getLogger(__name__)


def product_version() -> str:
    """The installed ClassCast version."""
    try:
        return version("classcast")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


class KioskApp:
    """A running kiosk: call :meth:`start` on an asyncio loop, then :meth:`stop`."""

    def __init__(self, config: KioskConfig, display: Display | None = None) -> None:
        self.config = config
        state = config.state_dir
        state.mkdir(parents=True, exist_ok=True)
        self.identity = Identity(
            kiosk_id=kiosk_id(state),
            room=config.room,
            school=config.school,
            version=product_version(),
        )
        self.display = display if display is not None else HeadlessDisplay()
        self.store = BlobStore(state / "media", config.quota_bytes)
        self.usage = UsageWriter(
            UsageLog(
                state / "usage.sqlite",
                kiosk_id=self.identity.kiosk_id,
                room=config.room,
                signing_key=ensure_signing_key(state),
            )
        )
        self.tls = ensure_identity(state, self.identity.kiosk_id)
        self.tokens = TokenStore(state / "tokens.json")
        self.access = Access(
            self.tokens,
            kiosk_id=self.identity.kiosk_id,
            fingerprint=self.tls.fingerprint,
            admin_secret=config.admin_secret,
            now=time.monotonic(),
        )
        self.service = KioskService(
            self.identity,
            store=self.store,
            usage=self.usage,
            display=self.display,
            access=self.access,
            moderation=Moderation(config.presenter_grace_s),
            heartbeat_s=config.heartbeat_s,
        )
        self.server = WebsocketServer(
            self.service, config.host, config.port, ssl=self.tls.server_context()
        )
        self.advertiser: ZeroconfAdvertiser | None = None
        self._advertised_state = "idle"
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host
        return f"wss://{host}:{self.server.port}/v1"

    @property
    def address(self) -> str:
        """``HOST:PORT`` as controllers name this kiosk."""
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host
        return f"{host}:{self.server.port}"

    def pin(self) -> str:
        """The pairing PIN the panel shows now."""
        with self.server.lock:
            return self.access.pin(time.monotonic())

    def advertisement(self, state: str = "idle") -> Advertisement:
        """What this kiosk announces over mDNS (call after :meth:`start`)."""
        return Advertisement(
            kiosk_id=self.identity.kiosk_id,
            room=self.config.room,
            school=self.config.school,
            port=self.server.port,
            fingerprint=self.tls.fingerprint,
            state=state,
        )

    async def start(self) -> None:
        """Listen, then advertise over mDNS (when enabled)."""
        await self.server.start()
        with self.server.lock:
            self.service.tick()
        self.server.poke()
        if self.config.mdns:
            interfaces = list(self.config.mdns_interfaces) if self.config.mdns_interfaces else None
            self.advertiser = ZeroconfAdvertiser(interfaces)
            host = self.config.host
            addresses = [host] if host not in ("0.0.0.0", "") else None
            await self.advertiser.start(self.advertisement(), addresses)
            loop = asyncio.get_running_loop()

            def on_status(status: StatusSnapshot) -> None:
                loop.call_soon_threadsafe(self._status_changed, status.state)

            self.service.on_status = on_status

    def _status_changed(self, state: str) -> None:
        """Publish a new state in the TXT record (on the loop; coalesced)."""
        if state == self._advertised_state or self.advertiser is None:
            return
        self._advertised_state = state
        task = asyncio.create_task(self.advertiser.update(self.advertisement(state)))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("mDNS update failed", exc_info=task.exception())

    async def stop(self) -> None:
        """Say goodbye over mDNS, close the open display interval and every connection."""
        if self.advertiser is not None:
            self.service.on_status = None
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            try:
                await self.advertiser.stop()
            except Exception:  # the kiosk must still stop cleanly
                logger.exception("mDNS goodbye failed")
            self.advertiser = None
        with self.server.lock:
            self.service.shutdown()
        self.server.poke()
        await self.server.stop()
        self.usage.close_db()


async def run_until_signal(app: KioskApp, on_ready: Callable[[KioskApp], None]) -> None:
    """Run ``app`` until SIGTERM or SIGINT, calling ``on_ready`` once it listens."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await app.start()
    on_ready(app)
    try:
        await stop.wait()
    finally:
        logger.info("stopping")
        await app.stop()
