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

STREAM_MAGIC: Final = b"\x89CCSTREAM\r\n\x1a\n\x00\x00\x01"
"""First 16 bytes of every stream frame (a binary frame of a screen share).

A chunk frame starts with the sha256 of a blob the connection announced: a blob whose
hash starts with these 16 bytes would take 2**128 tries to find, so a frame that starts
with them is a stream frame and nothing else."""

STREAM_HEADER_BYTES: Final = len(STREAM_MAGIC) + 4 + 4 + 1 + 8
"""Magic, stream id (uint32), frame sequence number (uint32), flags (uint8), capture
time (uint64, µs of the sender's wall clock); all big-endian."""

STREAM_FLAG_KEYFRAME: Final = 0x01
"""Set in a stream frame's flags when the frame decodes on its own (an H.264 IDR)."""
