"""Constants of protocol v1 shared by kiosk and controller."""

from __future__ import annotations

from typing import Final

PROTOCOL_VERSION: Final = 1
"""Version of the message set; ``hello`` and ``welcome`` both carry it."""

SUBPROTOCOL: Final = "classcast.v1"
"""WebSocket subprotocol negotiated on every connection."""

WS_PATH: Final = "/v1"
"""WebSocket path of the kiosk endpoint."""

DEFAULT_PORT: Final = 47_810
"""TCP port a kiosk listens on unless configured otherwise."""

SERVICE_TYPE: Final = "_classcast._tcp.local."
"""DNS-SD service type a kiosk advertises."""

HASH_BYTES: Final = 32
"""Length of a sha256 digest, the name of every blob."""

OFFSET_BYTES: Final = 8
"""Length of the big-endian offset in a chunk frame header."""

CHUNK_HEADER_BYTES: Final = HASH_BYTES + OFFSET_BYTES
