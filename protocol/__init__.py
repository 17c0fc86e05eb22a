"""ClassCast protocol v1: messages, codec, limits, errors and constants.

Sans-I/O: this package imports no asyncio, websockets, zeroconf, pyglet, vlc or sqlite,
so kiosk and controller share it and its tests need no network.
"""

from protocol.codec import Chunk, decode, decode_chunk, encode, encode_chunk
from protocol.constants import DEFAULT_PORT, PROTOCOL_VERSION, SERVICE_TYPE, SUBPROTOCOL, WS_PATH

__all__ = [
    "DEFAULT_PORT",
    "PROTOCOL_VERSION",
    "SERVICE_TYPE",
    "SUBPROTOCOL",
    "WS_PATH",
    "Chunk",
    "decode",
    "decode_chunk",
    "encode",
    "encode_chunk",
]
