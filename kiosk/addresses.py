"""The addresses a kiosk listening on every interface is reached at.

Apart from :mod:`kiosk.advertise` so that a kiosk without mDNS (``mdns = false``)
never imports python-zeroconf (several megabytes of a small panel's memory), yet shows
its LAN address on the panel.
"""

from __future__ import annotations

import ipaddress

import ifaddr


def default_addresses(interfaces: list[str] | None) -> list[str]:
    """The IPv4 addresses to advertise: the bound ``interfaces`` themselves, or else
    every non-loopback IPv4 address of this machine (loopback if there is none).
    """
    if interfaces is not None:
        return list(interfaces)
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            address = ip.ip
            if (
                isinstance(address, str)
                and not ipaddress.IPv4Address(address).is_loopback
                and address not in found
            ):
                found.append(address)
    return found or ["127.0.0.1"]
