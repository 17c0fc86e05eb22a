"""Wiring of a kiosk: state directory, blob store, usage log, service, server, display."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from types import FrameType
from typing import TYPE_CHECKING

from kiosk.access import Access, Moderation
from kiosk.addresses import default_addresses
from kiosk.config import KioskConfig, kiosk_id
from kiosk.effects import Display
from kiosk.headless import HeadlessDisplay
from kiosk.player import Identity
from kiosk.resume import FILE_NAME, PresentationFile, PresentationWriter
from kiosk.sdnotify import SystemdNotifier
from kiosk.server import WebsocketServer
from kiosk.service import Clock, KioskService, SystemClock
from kiosk.tls import ensure_identity, ensure_signing_key
from kiosk.tokens import TokenStore
from kiosk.usage import UsageLog
from kiosk.usage_writer import UsageWriter
from media.store import BlobStore, free_disk_bytes
from protocol.discovery import Advertisement
from protocol.messages import ItemFailure, StatusSnapshot

if TYPE_CHECKING:
    from kiosk.advertise import ZeroconfAdvertiser
    from kiosk.window import PygletWindow

logger = logging.getLogger(__name__)

FIRST_FRAME_TIMEOUT_S = 30.0
"""How long the network thread waits for the window's first frame before saying ready."""

NETWORK_JOIN_TIMEOUT_S = 15.0


def product_version() -> str:
    """The installed ClassCast version."""
    try:
        return version("classcast")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


class KioskApp:
    """A running kiosk: call :meth:`start` on an asyncio loop, then :meth:`stop`.

    ``clock`` is the service's clock (the real clocks unless a test moves its own).
    """

    def __init__(
        self, config: KioskConfig, display: Display | None = None, *, clock: Clock | None = None
    ) -> None:
        self.config = config
        clock = clock or SystemClock()
        state = config.state_dir
        state.mkdir(parents=True, exist_ok=True)
        self.identity = Identity(
            kiosk_id=kiosk_id(state),
            room=config.room,
            school=config.school,
            version=product_version(),
        )
        self.display = display if display is not None else HeadlessDisplay(lang=config.lang)
        # The floor is measured where the usage log lives: media never takes its room.
        self.store = BlobStore(
            state / "media",
            config.quota_bytes,
            floor_bytes=config.usage_floor_bytes,
            free_bytes=lambda: free_disk_bytes(state),
        )
        self.usage = UsageWriter(
            UsageLog(
                state / "usage.sqlite",
                kiosk_id=self.identity.kiosk_id,
                room=config.room,
                school_id=config.school_id,
                signing_key=ensure_signing_key(state),
            )
        )
        # Its copy that survives a power loss is committed with the usage records of
        # the same change, on the one writer thread: one flush per control, or per
        # half second of a burst of them (kiosk.usage_writer.COMMIT_INTERVAL_S).
        self.presentation = PresentationWriter(PresentationFile(state / FILE_NAME), log=self.usage)
        self.tls = ensure_identity(state, self.identity.kiosk_id)
        self.tokens = TokenStore(state / "tokens.json")
        self.access = Access(
            self.tokens,
            kiosk_id=self.identity.kiosk_id,
            fingerprint=self.tls.fingerprint,
            admin_secret=config.admin_secret,
            now=clock.monotonic(),
        )
        self.service = KioskService(
            self.identity,
            store=self.store,
            usage=self.usage,
            display=self.display,
            access=self.access,
            moderation=Moderation(config.presenter_grace_s),
            heartbeat_s=config.heartbeat_s,
            presentation=self.presentation,
            clock=clock,
        )
        self.server = WebsocketServer(
            self.service, config.host, config.port, ssl=self.tls.server_context()
        )
        # A control's usage writes go to the writer thread once its replies are sent.
        self.usage.hand_over_through(self.server.after_replies)
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

    @property
    def panel_url(self) -> str:
        """``wss://HOST:PORT`` as the panel shows it: a LAN address when listening on all."""
        host = self.config.host
        if host in ("0.0.0.0", ""):
            interfaces = list(self.config.mdns_interfaces) if self.config.mdns_interfaces else None
            host = default_addresses(interfaces)[0]
        return f"wss://{host}:{self.server.port}"

    def use_display(self, display: Display) -> None:
        """Send display effects to ``display`` from now on (call before :meth:`start`)."""
        self.display = display
        self.service.display = display

    def panel_control(self, action: str) -> None:
        """A control from the panel's keys or touch (call on the loop)."""
        with self.server.lock:
            self.service.panel_control(action)
        self.server.poke()

    def panel_answer_pairing(self, allow: bool) -> None:
        """The panel's user allowed (or refused) the pairing it asked about (call on the loop)."""
        with self.server.lock:
            self.service.panel_answer_pairing(allow)
        self.server.poke()

    def video_ended(self, index: int) -> None:
        """The video of item ``index`` ended (call on the loop)."""
        with self.server.lock:
            self.service.video_ended(index)
        self.server.poke()

    def item_failed(self, index: int, failure: ItemFailure, status: int | None) -> None:
        """Item ``index`` could not be shown (call on the loop): see
        :meth:`KioskService.item_failed`."""
        with self.server.lock:
            self.service.item_failed(index, failure, status)
        self.server.poke()

    def item_opened(self, index: int) -> None:
        """Item ``index``, a web page, opened (call on the loop): see
        :meth:`KioskService.item_opened`."""
        with self.server.lock:
            self.service.item_opened(index)
        self.server.poke()

    def pin(self) -> str:
        """The pairing PIN the panel shows now."""
        with self.server.lock:
            return self.access.pin(self.service.clock.monotonic())

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
        """Show the lesson a previous run left on screen (if any), listen, then advertise
        over mDNS (when enabled)."""
        saved = self.presentation.load()
        if saved is not None:
            with self.server.lock:
                self.service.resume(saved)
        await self.server.start()
        with self.server.lock:
            self.service.tick()
            self._advertised_state = self.service.status().state
        self.server.poke()
        if self.config.mdns:
            from kiosk.advertise import ZeroconfAdvertiser  # zeroconf: only when advertising

            interfaces = list(self.config.mdns_interfaces) if self.config.mdns_interfaces else None
            self.advertiser = ZeroconfAdvertiser(interfaces)
            host = self.config.host
            addresses = [host] if host not in ("0.0.0.0", "") else None
            await self.advertiser.start(self.advertisement(self._advertised_state), addresses)
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
        self.presentation.close()
        self.usage.close_db()


async def run_until_signal(
    app: KioskApp,
    on_ready: Callable[[KioskApp], None],
    notifier: SystemdNotifier | None = None,
) -> None:
    """Run ``app`` without a window until SIGTERM or SIGINT.

    ``on_ready`` is called once it listens; with a ``notifier`` systemd hears READY=1
    then, watchdog pings from this loop, and STOPPING=1 on the way out.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await app.start()
    on_ready(app)
    pinger: asyncio.Task[None] | None = None
    if notifier is not None:
        notifier.ready(f"listening on {app.address}, room {app.config.room}")
        period = notifier.watchdog_interval_s()
        if period is not None:

            async def ping() -> None:
                while True:
                    notifier.maybe_ping(time.monotonic())
                    await asyncio.sleep(period)

            pinger = asyncio.create_task(ping(), name="watchdog")
    try:
        await stop.wait()
    finally:
        logger.info("stopping")
        if notifier is not None:
            notifier.stopping()
        if pinger is not None:
            pinger.cancel()
        await app.stop()


def open_window(app: KioskApp) -> PygletWindow | None:
    """Open the panel window for ``app``'s mode (fullscreen, windowed, headless).

    Headless renders offscreen with EGL; when that is not available this logs one
    warning and returns None (run without a window, as :class:`HeadlessDisplay`).

    Raises:
        Exception: a fullscreen or windowed window cannot be opened (no display).
    """
    mode = app.config.mode
    if mode == "headless":
        os.environ["PYGLET_HEADLESS"] = "true"  # before pyglet's first import
    try:
        from kiosk.scenes import IdleInfo
        from kiosk.screen_scene import ScreenLoader, ScreenStream
        from kiosk.video_scene import load_video
        from kiosk.web import WebLoader
        from kiosk.webguard import HostAllowlist, WebGuard
        from kiosk.window import PygletWindow

        window = PygletWindow(
            app.store,
            IdleInfo(app.config.school, app.config.room, tz=app.config.zone()),
            mode=mode,
            lang=app.config.lang,
            video_output=app.config.video_output,
        )
        window.factory.register("video", load_video)
        # A teacher's shared screen: decoded on its own thread, drawn by its scene.
        screen = ScreenStream(window.request_redraw)
        window.factory.register("screen", ScreenLoader(screen))
        app.service.screen = screen
        # Every page goes through the web guard (proxy, private origin, allowlist);
        # each showing gets a temporary profile under state/chromium.
        guard = WebGuard(HostAllowlist(app.config.web_allow), lang=app.config.lang)
        window.factory.register(
            "web", WebLoader(mode, profiles_dir=app.config.state_dir / "chromium", guard=guard)
        )
        return window
    except Exception as exc:
        if mode != "headless":
            raise
        logger.warning(
            "offscreen rendering (EGL) is not available, running without a window: %s", exc
        )
        return None


def _forward_window_events(
    app: KioskApp, window: PygletWindow, loop: asyncio.AbstractEventLoop
) -> None:
    """Hand what happens on the panel (keys, a video's end, a page's verdict, the
    answer to a pairing question) from the window's thread to ``app`` on ``loop``."""

    def call(fn: Callable[..., None]) -> Callable[..., None]:
        def forward(*args: object) -> None:
            loop.call_soon_threadsafe(fn, *args)

        return forward

    window.control = call(app.panel_control)
    window.item_ended = call(app.video_ended)
    window.item_failed = call(app.item_failed)
    window.item_opened = call(app.item_opened)
    window.answer_pairing = call(app.panel_answer_pairing)


def run_with_window(
    app: KioskApp,
    window: PygletWindow,
    on_ready: Callable[[KioskApp], None],
    notifier: SystemdNotifier | None = None,
) -> None:
    """Run ``app`` with its panel window until SIGTERM, SIGINT or the window closes.

    pyglet owns this (the main) thread; the network loop runs in a second thread.
    ``on_ready`` is called (on the network thread) once the server listens and the
    window drew its first frame; a ``notifier`` then tells systemd READY=1. Watchdog
    pings come from the render loop, so a frozen screen stops them and systemd
    restarts the kiosk.

    Raises:
        Exception: what starting the network side raised (e.g. the port is taken).
    """
    app.use_display(window)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    def request_stop() -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)

    _forward_window_events(app, window, loop)
    window.on_close = request_stop

    async def network() -> None:
        try:
            await app.start()
            window.set_address(app.panel_url)
            await asyncio.to_thread(window.first_frame.wait, FIRST_FRAME_TIMEOUT_S)
            on_ready(app)
            if notifier is not None:
                notifier.ready(f"listening on {app.address}, room {app.config.room}")
            await stop.wait()
            logger.info("stopping")
            if notifier is not None:
                notifier.stopping()
        except BaseException as exc:
            failure.append(exc)
        finally:
            try:
                await app.stop()
            finally:
                window.exit()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        request_stop()

    thread = threading.Thread(
        target=loop.run_until_complete, args=(network(),), name="kiosk-network", daemon=True
    )
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    period = notifier.watchdog_interval_s() if notifier is not None else None
    if notifier is not None and period is not None:
        import pyglet

        pinger = notifier
        pyglet.clock.schedule_interval(lambda dt: pinger.maybe_ping(time.monotonic()), period)
    thread.start()
    try:
        window.run()
    finally:
        request_stop()
        thread.join(NETWORK_JOIN_TIMEOUT_S)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        window.close()
        if not thread.is_alive():
            loop.close()
    if failure:
        raise failure[0]
