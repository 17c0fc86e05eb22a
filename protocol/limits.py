"""Every size and count limit of protocol v1, in one place.

A message over a limit is rejected by the codec with ``MalformedMessageError``; a
connection that sends a frame over ``MAX_FRAME_BYTES`` is closed by the websocket layer
with code 1009 (message too big).
"""

from __future__ import annotations

from typing import Final

from protocol.constants import CHUNK_HEADER_BYTES

MAX_TEXT_FRAME_BYTES: Final = 1 * 1024 * 1024
"""Largest JSON text frame (a lesson manifest of MAX_ITEMS_PER_LESSON items fits)."""

CHUNK_SIZE_BYTES: Final = 1 * 1024 * 1024
"""Payload bytes a sender puts in one chunk frame; the receiver accepts up to this."""

MAX_CHUNK_FRAME_BYTES: Final = CHUNK_HEADER_BYTES + CHUNK_SIZE_BYTES
"""Largest binary frame: header plus one chunk."""

MAX_FRAME_BYTES: Final = max(MAX_TEXT_FRAME_BYTES, MAX_CHUNK_FRAME_BYTES)
"""``max_size`` given to the websocket layer on both sides."""

MAX_ITEMS_PER_LESSON: Final = 500
"""Items in one lesson (a PDF contributes one item per page)."""

MAX_BLOB_BYTES: Final = 2 * 1024 * 1024 * 1024
"""Largest single media file (2 GiB)."""

MAX_LESSON_BYTES: Final = 8 * 1024 * 1024 * 1024
"""Largest sum of distinct blob sizes in one lesson (8 GiB)."""

MAX_TEXT_ITEM_CHARS: Final = 20_000
"""Longest text slide."""

MAX_STRING_CHARS: Final = 1_000
"""Longest title, name, identifier or URL in a message."""

MAX_USAGE_BATCH: Final = 1_000
"""Most usage records in one ``usage_batch`` (and the largest ``limit`` of ``usage_pull``)."""

MAX_DURATION_MS: Final = 24 * 3600 * 1000
"""Longest item duration and seek position (one day)."""

MAX_VOLUME_PERCENT: Final = 100
"""Highest ``control`` ``volume`` (libVLC's 100 % is the file's own level, no boost)."""

MAX_SCREENSHOT_BYTES: Final = 512 * 1024
"""Largest PNG thumbnail in ``screenshot`` (its base64 must fit one text frame)."""

MAX_SCREENSHOT_B64_CHARS: Final = (MAX_SCREENSHOT_BYTES + 2) // 3 * 4

MAX_SCREENSHOT_WIDTH: Final = 1920
"""Widest thumbnail ``take_screenshot`` may ask for."""

MIN_SCREENSHOT_WIDTH: Final = 16
"""Narrowest thumbnail ``take_screenshot`` may ask for."""

MAX_ANNOUNCEMENT_S: Final = 24 * 3600
"""Longest ``announce.duration_s`` (one day)."""

MAX_MESSAGES_PER_SECOND: Final = 200
"""Messages one connection may send per second on average before it is closed (1008).

Text frames count, and binary frames that are not a valid chunk of a blob this
connection announced."""

MESSAGE_BURST: Final = 400
"""Messages a connection may send at once before the rate limit applies."""

# Connections (enforced by the kiosk: kiosk/connections.py, kiosk/server.py; see
# docs/security.md, "Connections").

MAX_CONNECTIONS: Final = 256
"""Connections a kiosk holds at once, counted from the TCP accept (handshakes included).

A new connection over the cap evicts an unauthenticated one; it is refused only when
every other connection is authenticated."""

MAX_UNAUTHENTICATED_PER_ADDRESS: Final = 128
"""Connections from one IP address that have not proved a token; one more evicts one of them."""

HANDSHAKE_TIMEOUT_S: Final = 5.0
"""Time for the TLS handshake, and then again for the websocket opening handshake."""

UNAUTHENTICATED_TIMEOUT_S: Final = 10.0
"""Time from the TCP accept to proving a token (``hello``) or pairing; then 1008."""

PAIRING_TIMEOUT_S: Final = 60.0
"""The same while a pairing is under way (``pair_start`` answered): room for a
confirmation on the panel. ``classcast pair`` asks for the PIN before it connects."""

MAX_UNAUTHENTICATED_FRAME_BYTES: Final = 64 * 1024
"""Largest frame before the connection is authenticated (a ``hello`` is a few KiB); 1009."""

UNAUTHENTICATED_BYTES_PER_SECOND: Final = 16 * 1024
"""Bytes an unauthenticated connection may send per second on average; then 1008."""

UNAUTHENTICATED_BYTE_BURST: Final = 2 * MAX_UNAUTHENTICATED_FRAME_BYTES
"""Bytes an unauthenticated connection may send at once."""

MAX_SEND_BACKLOG_MESSAGES: Final = 1000
"""Messages waiting for a connection that does not read them; one more aborts it."""

MAX_SEND_BACKLOG_BYTES: Final = 8 * 1024 * 1024
"""Bytes waiting for a connection that does not read them; more aborts it."""

CLOSE_TIMEOUT_S: Final = 1.0
"""A connection the kiosk closes (1008) is aborted if not gone after this long."""
