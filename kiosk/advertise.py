"""``ZeroconfAdvertiser``: a kiosk announces itself over mDNS (``_classcast._tcp.local.``).

The records come from :class:`protocol.discovery.Advertisement`; this module only
carries them to python-zeroconf. Run it on the kiosk's network event loop::

    advertiser = ZeroconfAdvertiser(mdns_interfaces(os.environ.get(MDNS_INTERFACES_ENV)))
    await advertiser.start(ad)               # probes the name (~0.5-1 s), then announces
    await advertiser.update(replace(ad, state="playing"))
    await advertiser.stop()                  # goodbye packets, sockets closed

Bind to ``["127.0.0.1"]`` in tests and benchmarks: never multicast on a shared
machine's real interfaces (DESIGN §7).
"""

from __future__ import annotations

import asyncio
import logging
import re

from zeroconf import DNSQuestionType, IPVersion
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from kiosk.addresses import default_addresses
from protocol.constants import SERVICE_TYPE
from protocol.discovery import Advertisement, instance_name

logger = logging.getLogger(__name__)

REVISION_KEY = "rev"
"""Extra TXT key: a counter bumped on every update (see :meth:`ZeroconfAdvertiser.update`)."""


def _ignore(**_: object) -> None:
    """Browser handler of the name-conflict check: only the cached records matter."""


def _host_name(kiosk_id: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", kiosk_id.lower()).strip("-")[:50] or "kiosk"
    return f"classcast-{label}.local."


class ZeroconfAdvertiser:
    """Registers one kiosk's service with python-zeroconf; one ``start`` per instance.

    Args:
        interfaces: IPv4 addresses to bind mDNS to (``["127.0.0.1"]`` in tests), or
            ``None`` for every interface (production); read it with
            :func:`protocol.discovery.mdns_interfaces`.
    """

    def __init__(self, interfaces: list[str] | None) -> None:
        self.interfaces = interfaces
        self._zc: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None
        self._addresses: list[str] = []
        self._broadcasts: set[asyncio.Future[object]] = set()
        self._revision = 0

    @property
    def name(self) -> str | None:
        """The registered instance name (zeroconf may have renamed it), once started."""
        return self._info.name if self._info is not None else None

    async def start(self, ad: Advertisement, addresses: list[str] | None = None) -> None:
        """Probe for a unique name, register and start announcing.

        If another service holds the name, zeroconf renames this one (``Room-2``) so
        two panels in the same room both appear. Returns once probing is done; the
        announcements continue in the background.

        Args:
            ad: what to announce.
            addresses: IPv4 addresses in the A records; default: :func:`default_addresses`.

        Raises:
            RuntimeError: already started.
        """
        if self._zc is not None:
            raise RuntimeError("ZeroconfAdvertiser already started")
        if self.interfaces is None:
            self._zc = AsyncZeroconf()
        else:
            self._zc = AsyncZeroconf(interfaces=self.interfaces, ip_version=IPVersion.V4Only)
        self._addresses = addresses if addresses is not None else default_addresses(self.interfaces)
        info = self._service_info(ad, instance_name(ad.room))
        # zeroconf renames on a conflict only if the other kiosk's PTR record is in its
        # cache, and an already registered kiosk answers probes with SRV/TXT only (and on
        # loopback unicast answers to probes may reach another process). Browsing (QM)
        # while probing asks every kiosk for its PTR, which arrives within ~20-120 ms,
        # well inside the ~1.2 s of probing, so "Каб. 12" becomes "Каб. 12-2".
        # Known limits: a kiosk that multicast its records in the last second answers
        # ~1 s later (RFC 6762 §6), which may miss the probing window; and two kiosks
        # probing at the same moment both keep the name (zeroconf has no probe
        # tie-break). Either way one of the two is hidden until a restart.
        browser = AsyncServiceBrowser(
            self._zc.zeroconf, SERVICE_TYPE, handlers=[_ignore], question_type=DNSQuestionType.QM
        )
        try:
            self._track(await self._zc.async_register_service(info, allow_name_change=True))
        except BaseException:
            await browser.async_cancel()
            await self._zc.async_close()
            self._zc = None
            raise
        await browser.async_cancel()
        self._info = info
        logger.info("mDNS: advertising %r on %s port %d", info.name, self._addresses, ad.port)

    async def update(self, ad: Advertisement) -> None:
        """Publish a new TXT record (e.g. a state change) under the registered name.

        The port may change too; the name stays the one zeroconf registered. Each
        update also bumps the ``rev`` TXT key: python-zeroconf browsers ignore a TXT
        record still in their cache, so without it a quick "idle" → "playing" → "idle"
        would leave them showing "playing" (the "idle" record is not new to them).

        Raises:
            RuntimeError: not started.
        """
        if self._zc is None or self._info is None:
            raise RuntimeError("ZeroconfAdvertiser not started")
        self._revision += 1
        info = self._service_info(ad, self._info.name)
        self._track(await self._zc.async_update_service(info))
        self._info = info

    async def stop(self) -> None:
        """Send goodbye packets (the service disappears from browsers at once), then close.

        Safe to call twice or without ``start``.
        """
        zc, info = self._zc, self._info
        self._zc = self._info = None
        if zc is None:
            return
        try:
            for pending in list(self._broadcasts):
                pending.cancel()
            if info is not None:
                await (await zc.async_unregister_service(info))
        finally:
            await zc.async_close()

    def _service_info(self, ad: Advertisement, name: str) -> AsyncServiceInfo:
        return AsyncServiceInfo(
            SERVICE_TYPE,
            name,
            port=ad.port,
            properties={**ad.txt(), REVISION_KEY: str(self._revision)},
            server=_host_name(ad.kiosk_id),
            parsed_addresses=self._addresses,
        )

    def _track(self, awaitable: object) -> None:
        """Keep announcement tasks referenced and log their failures."""
        if not isinstance(awaitable, asyncio.Future):
            return
        future: asyncio.Future[object] = awaitable
        self._broadcasts.add(future)
        future.add_done_callback(self._broadcast_done)

    def _broadcast_done(self, future: asyncio.Future[object]) -> None:
        self._broadcasts.discard(future)
        if not future.cancelled() and future.exception() is not None:
            logger.error("mDNS announcement failed", exc_info=future.exception())
