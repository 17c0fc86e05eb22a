"""Finding kiosks over mDNS: the ``Discovery`` protocol and its zeroconf adapter.

zeroconf types stop here: every ``ServiceStateChange`` becomes a
:class:`~protocol.discovery.KioskFound` or :class:`~protocol.discovery.KioskLost` at
once. Two ways to use :class:`ZeroconfDiscovery`::

    # one-shot, e.g. `classcast panels --wait 2`
    kiosks = await ZeroconfDiscovery(interfaces).browse(2.0)
    # "find panel X quickly": return as soon as it is there
    kiosks = await ZeroconfDiscovery(interfaces).browse(
        5.0, stop_when=lambda ks: any(k.room == "Каб. 12" for k in ks)
    )

    # long-lived, e.g. `classcast status --watch`
    async with ZeroconfDiscovery(interfaces, on_change=print) as discovery:
        kiosk = await discovery.wait_for_kiosk(lambda k: k.kiosk_id == wanted, timeout_s=5)
        ...  # discovery.found stays current until the block ends

Queries are QM (multicast replies): on loopback, unicast-reply (QU) queries do not
reach a second process sharing port 5353 (DESIGN §7). Bind to ``["127.0.0.1"]`` in
tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self

from zeroconf import DNSQuestionType, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from protocol.constants import SERVICE_TYPE
from protocol.discovery import KioskFound, KioskLost, parse_txt
from protocol.errors import MalformedMessageError

logger = logging.getLogger(__name__)

DiscoveryEvent = KioskFound | KioskLost
"""What ``on_change`` receives."""

RESOLVE_TIMEOUT_S = 3.0
"""How long to ask for a service's SRV/TXT/A records before giving up on it."""


class Discovery(Protocol):
    """Something that lists the kiosks on the network."""

    async def browse(
        self, wait_s: float, *, stop_when: Callable[[list[KioskFound]], bool] | None = None
    ) -> list[KioskFound]:
        """Look for kiosks for ``wait_s`` seconds, or until ``stop_when(found)`` holds."""
        ...


def _sorted(kiosks: list[KioskFound]) -> list[KioskFound]:
    return sorted(kiosks, key=lambda k: (k.room.casefold(), k.name, k.address))


class ZeroconfDiscovery:
    """Browses ``_classcast._tcp.local.`` with python-zeroconf.

    Use :meth:`browse` for one look, or ``async with`` to keep :attr:`found` current
    (keyed by mDNS instance name) for as long as the block runs.

    Args:
        interfaces: IPv4 addresses to bind mDNS to (``["127.0.0.1"]`` in tests), or
            ``None`` for every interface; read it with
            :func:`protocol.discovery.mdns_interfaces`.
        on_change: called on the event loop with each ``KioskFound`` (new or updated)
            and ``KioskLost``; its exceptions are logged, never raised.
        resolve_timeout_s: how long to wait for a service's records.
    """

    def __init__(
        self,
        interfaces: list[str] | None,
        *,
        on_change: Callable[[DiscoveryEvent], None] | None = None,
        resolve_timeout_s: float = RESOLVE_TIMEOUT_S,
    ) -> None:
        self.interfaces = interfaces
        self.on_change = on_change
        self.resolve_timeout_s = resolve_timeout_s
        self.found: dict[str, KioskFound] = {}
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._resolving: dict[str, asyncio.Task[None]] = {}
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ lifetime

    async def __aenter__(self) -> Self:
        """Open the mDNS sockets and start browsing."""
        if self._zc is not None:
            raise RuntimeError("ZeroconfDiscovery already running")
        self.found = {}
        self._changed = asyncio.Event()
        if self.interfaces is None:
            self._zc = AsyncZeroconf()
        else:
            self._zc = AsyncZeroconf(interfaces=self.interfaces, ip_version=IPVersion.V4Only)
        try:
            self._browser = AsyncServiceBrowser(
                self._zc.zeroconf,
                SERVICE_TYPE,
                handlers=[self._on_service_state_change],
                question_type=DNSQuestionType.QM,
            )
        except BaseException:
            await self._zc.async_close()
            self._zc = None
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop browsing and close the sockets; :attr:`found` keeps its last contents."""
        zc, browser = self._zc, self._browser
        self._zc = self._browser = None
        tasks = list(self._resolving.values())
        self._resolving.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if browser is not None:
            await browser.async_cancel()
        if zc is not None:
            await zc.async_close()

    # ------------------------------------------------------------------ queries

    async def browse(
        self, wait_s: float, *, stop_when: Callable[[list[KioskFound]], bool] | None = None
    ) -> list[KioskFound]:
        """Return the kiosks found within ``wait_s`` seconds, sorted by room.

        Inside ``async with`` this waits on the running browser; otherwise it opens and
        closes one around the wait.

        Args:
            wait_s: how long to look.
            stop_when: return as soon as ``stop_when(kiosks_so_far)`` is true (e.g. "the
                panel I want is there"), without waiting out ``wait_s``.
        """
        if self._zc is None:
            async with self:
                return await self.browse(wait_s, stop_when=stop_when)
        deadline = time.monotonic() + wait_s
        while True:
            kiosks = _sorted(list(self.found.values()))
            if stop_when is not None and stop_when(kiosks):
                return kiosks
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return kiosks
            await self._wait_for_change(remaining)

    async def wait_for_kiosk(
        self, predicate: Callable[[KioskFound], bool], timeout_s: float
    ) -> KioskFound:
        """Wait until a kiosk matching ``predicate`` is in :attr:`found` and return it.

        Call inside ``async with``. Checks the kiosks already found first, then every
        new or updated one (so it can also wait for a state change).

        Raises:
            TimeoutError: none matched within ``timeout_s`` seconds.
            RuntimeError: the browser is not running.
        """
        if self._zc is None:
            raise RuntimeError("use ZeroconfDiscovery inside `async with` to wait for kiosks")
        deadline = time.monotonic() + timeout_s
        while True:
            for kiosk in _sorted(list(self.found.values())):
                if predicate(kiosk):
                    return kiosk
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching kiosk found within {timeout_s:g} s")
            await self._wait_for_change(remaining)

    wait_for = wait_for_kiosk
    """Alias of :meth:`wait_for_kiosk`."""

    async def _wait_for_change(self, timeout_s: float) -> None:
        event = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await event.wait()

    # ------------------------------------------------------------------ zeroconf boundary

    def _on_service_state_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        """zeroconf's browser callback (on the event loop): resolve or forget ``name``."""
        old = self._resolving.pop(name, None)
        if old is not None:
            old.cancel()
        if state_change is ServiceStateChange.Removed:
            if self.found.pop(name, None) is not None:
                self._emit(KioskLost(name))
            return
        # Added or Updated: read SRV/TXT/A (from the cache when the update brought them).
        task = asyncio.get_running_loop().create_task(self._resolve(zeroconf, name))
        self._resolving[name] = task
        task.add_done_callback(self._resolve_done)

    async def _resolve(self, zeroconf: Zeroconf, name: str) -> None:
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        timeout_ms = self.resolve_timeout_s * 1000
        if not await info.async_request(zeroconf, timeout_ms, question_type=DNSQuestionType.QM):
            logger.info(
                "mDNS: %r did not answer within %g s; skipped", name, self.resolve_timeout_s
            )
            return
        hosts = info.parsed_addresses(IPVersion.V4Only) or info.parsed_addresses()
        if info.port is None or not hosts:
            logger.warning("mDNS: %r has no port or address; skipped", name)
            return
        try:
            kiosk = parse_txt(name, hosts[0], info.port, info.properties)
        except MalformedMessageError as exc:
            logger.warning("mDNS: skipped a service that is not a ClassCast kiosk: %s", exc)
            if self.found.pop(name, None) is not None:
                self._emit(KioskLost(name))
            return
        if self.found.get(name) != kiosk:
            self.found[name] = kiosk
            self._emit(kiosk)

    def _resolve_done(self, task: asyncio.Task[None]) -> None:
        for name, running in list(self._resolving.items()):
            if running is task:
                del self._resolving[name]
        if not task.cancelled() and task.exception() is not None:
            logger.error("mDNS: resolving a kiosk failed", exc_info=task.exception())

    def _emit(self, event: DiscoveryEvent) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
        if self.on_change is None:
            return
        try:
            self.on_change(event)
        except Exception:  # the one broad catch: a caller's callback must not stop discovery
            logger.exception("mDNS: on_change callback failed for %r", event)
