"""mDNS / DNS-SD discovery of kiosks, without I/O: settings, TXT record, instance name.

A kiosk advertises ``_classcast._tcp.local.`` (``SERVICE_TYPE``). Its instance name is
its room, and its TXT record carries::

    id      kiosk id                 (stable, from the kiosk's state dir)
    room    room name, UTF-8         (truncated to fit one TXT string)
    school  school name, UTF-8       (truncated to fit one TXT string)
    proto   PROTOCOL_VERSION         (decimal)
    fp      TLS certificate fingerprint, pinned by the controller at pairing
    state   what the panel is doing  ("idle", "playing", ...)

The zeroconf adapters (``kiosk.advertise``, ``controller.discovery``) build and parse
these records with the functions here and turn them into :class:`KioskFound` /
:class:`KioskLost` at the boundary, so nothing else sees a zeroconf type.

Instance names: DNS-SD allows any UTF-8 in an instance label (RFC 6763 §4.3), dots
included, but python-zeroconf writes a name by splitting it on every ``.``, so
``"Каб. 12"`` would go on the wire as two labels and no other DNS-SD tool would read it
as one instance. :func:`instance_name` therefore replaces ``.`` with ``"․"``
(U+2024 ONE DOT LEADER, which looks the same), cleans it like any name
(:func:`protocol.text.clean_name`) and truncates the label at a UTF-8 boundary to
leave room for zeroconf's ``-2``, ``-3`` ... rename suffix. The real room name always
travels in the TXT record.

This module imports nothing from asyncio, socket or zeroconf.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from protocol.constants import PROTOCOL_VERSION, SERVICE_TYPE
from protocol.errors import MalformedMessageError
from protocol.text import clean_name

MDNS_INTERFACES_ENV: Final = "CLASSCAST_MDNS_INTERFACES"
"""Environment variable naming the IPv4 addresses mDNS binds to (unset: all interfaces)."""

MAX_TXT_STRING_BYTES: Final = 255
"""Longest ``key=value`` string in a TXT record (RFC 6763 §6.1)."""

MAX_INSTANCE_LABEL_BYTES: Final = 63
"""Longest DNS label, hence longest instance name (RFC 6763 §4.1.1)."""

RENAME_RESERVE_BYTES: Final = 4
"""Bytes kept free in the instance label for zeroconf's rename suffix (``-2`` .. ``-999``)."""

DOT_LOOKALIKE: Final = "\u2024"
"""ONE DOT LEADER, put in place of ``.`` in an instance label (see the module docstring)."""

FALLBACK_INSTANCE: Final = "ClassCast"
"""Instance label of a kiosk whose room name is empty."""

TXT_KEYS: Final = ("id", "room", "school", "proto", "fp", "state")
"""Keys every kiosk TXT record carries; a record without one of them is malformed."""


def mdns_interfaces(value: str | None) -> list[str] | None:
    """Parse the ``CLASSCAST_MDNS_INTERFACES`` setting.

    The adapters read the variable named :data:`MDNS_INTERFACES_ENV` from their
    environment, pass its value here, and give the result to zeroconf.

    Args:
        value: unset or blank for every interface (the production default), else one
            IPv4 address or a comma-separated list of them, e.g. ``"127.0.0.1"``.

    Returns:
        ``None`` for "all interfaces", else the addresses in order, without duplicates.

    Raises:
        ValueError: an entry is empty, not an IPv4 address, or unspecified/multicast.
    """
    if value is None or not value.strip():
        return None
    result: list[str] = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            raise ValueError(f"{MDNS_INTERFACES_ENV}={value!r}: empty entry in the list")
        try:
            address = ipaddress.IPv4Address(entry)
        except ValueError:
            raise ValueError(
                f"{MDNS_INTERFACES_ENV}={value!r}: {entry!r} is not an IPv4 address "
                "(expected e.g. 127.0.0.1 or 10.0.0.5,10.0.1.5; unset means all interfaces)"
            ) from None
        if address.is_unspecified or address.is_multicast:
            raise ValueError(
                f"{MDNS_INTERFACES_ENV}={value!r}: {entry} is not an interface address "
                "(unset the variable to use all interfaces)"
            )
        text = str(address)
        if text not in result:
            result.append(text)
    return result


def truncate_utf8(text: str, max_bytes: int) -> str:
    """Return the longest prefix of ``text`` whose UTF-8 encoding fits ``max_bytes``."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    # Cutting inside a multi-byte character leaves an incomplete tail: drop it.
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def instance_label(room: str) -> str:
    """The DNS-SD instance label for ``room``: no dots or control characters, ≤ 59 bytes."""
    cleaned = clean_name(room).replace(".", DOT_LOOKALIKE).strip()
    label = truncate_utf8(cleaned, MAX_INSTANCE_LABEL_BYTES - RENAME_RESERVE_BYTES).rstrip()
    return label or FALLBACK_INSTANCE


def instance_name(room: str) -> str:
    """The full mDNS service name a kiosk in ``room`` registers, e.g.
    ``"Каб 12._classcast._tcp.local."``.

    zeroconf may still rename it (``"Каб 12-2..."``) when another kiosk holds the name.
    """
    return f"{instance_label(room)}.{SERVICE_TYPE}"


def _txt_value(key: str, value: str) -> str:
    return truncate_utf8(value, MAX_TXT_STRING_BYTES - len(key.encode("utf-8")) - 1)


@dataclass(frozen=True, slots=True)
class Advertisement:
    """What a kiosk announces about itself; build one and give it to the advertiser.

    Raises:
        ValueError: ``port`` is not a TCP port, ``kiosk_id`` is empty, or ``kiosk_id``,
            ``fingerprint`` or ``state`` do not fit one TXT string (these are ours and
            are never truncated; ``room`` and ``school`` are).
    """

    kiosk_id: str
    room: str
    school: str
    port: int
    fingerprint: str
    state: str

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is not a TCP port")
        if not self.kiosk_id:
            raise ValueError("kiosk_id is empty")
        for key, value in (("id", self.kiosk_id), ("fp", self.fingerprint), ("state", self.state)):
            if len(f"{key}={value}".encode()) > MAX_TXT_STRING_BYTES:
                raise ValueError(f"TXT {key!r} is longer than {MAX_TXT_STRING_BYTES} bytes")

    def txt(self) -> dict[str, str]:
        """The TXT record as key → value, each ``key=value`` within 255 UTF-8 bytes."""
        return {
            "id": self.kiosk_id,
            "room": _txt_value("room", self.room),
            "school": _txt_value("school", self.school),
            "proto": str(PROTOCOL_VERSION),
            "fp": self.fingerprint,
            "state": self.state,
        }


@dataclass(frozen=True, slots=True)
class KioskFound:
    """A kiosk seen on the network (or its TXT record changed).

    ``name`` is the mDNS instance name (unique on the link); ``host`` an IPv4 address.
    Check ``proto`` against ``PROTOCOL_VERSION`` before connecting.
    """

    name: str
    kiosk_id: str
    room: str
    school: str
    host: str
    port: int
    fingerprint: str
    state: str
    proto: int

    @property
    def address(self) -> str:
        """``host:port`` (``[host]:port`` for an IPv6 host), as the client connects to."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class KioskLost:
    """A kiosk said goodbye or its records expired; ``name`` as in :class:`KioskFound`."""

    name: str


def _text(props: Mapping[bytes, bytes | None], key: str, name: str) -> str:
    raw = props.get(key.encode("ascii"))
    if raw is None:
        raise MalformedMessageError(f"mDNS service {name!r}: TXT has no {key!r} value")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedMessageError(
            f"mDNS service {name!r}: TXT {key!r} is not valid UTF-8"
        ) from None


def parse_txt(name: str, host: str, port: int, props: Mapping[bytes, bytes | None]) -> KioskFound:
    """Turn a resolved service into a :class:`KioskFound`.

    Unknown keys are ignored (later versions may add some). Anyone on the network can
    send a TXT record, so every value is cleaned of control characters and escape
    sequences (:func:`protocol.text.clean_name`) before it goes anywhere; and an
    advert proves nothing about who answers at its address (its ``fp`` is public):
    the controller moves a saved panel only after a TLS connection shows the pinned
    certificate (``controller.home``).

    Args:
        name: the mDNS instance name.
        host: the kiosk's address.
        port: the SRV port.
        props: the TXT record as zeroconf decodes it (``None`` for a key without ``=``).

    Raises:
        MalformedMessageError: a required key is missing, has no value or is not UTF-8,
            ``id`` is empty (or blank once cleaned), ``proto`` is not a decimal number,
            or ``port`` is not a TCP port (the advertiser's fault: skip that service).
    """
    values = {key: clean_name(_text(props, key, name)) for key in TXT_KEYS}
    if not values["id"].strip():
        raise MalformedMessageError(f"mDNS service {name!r}: TXT 'id' is empty")
    proto_text = values["proto"]
    if not (proto_text.isascii() and proto_text.isdigit() and len(proto_text) <= 6):
        raise MalformedMessageError(
            f"mDNS service {name!r}: TXT 'proto' is {proto_text!r}, not a version number"
        )
    if not 0 < port < 65536:
        raise MalformedMessageError(f"mDNS service {name!r}: port {port} is not a TCP port")
    return KioskFound(
        name=name,
        kiosk_id=values["id"],
        room=values["room"],
        school=values["school"],
        host=host,
        port=port,
        fingerprint=values["fp"],
        state=values["state"],
        proto=int(proto_text),
    )
