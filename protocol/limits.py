"""Every size and count limit of protocol v1, in one place.

A message over a limit is rejected by the codec with ``MalformedMessageError``; a
connection that sends a frame over ``MAX_FRAME_BYTES`` is closed by the websocket layer
with code 1009 (message too big).
"""

from __future__ import annotations

from typing import Final

from protocol.constants import CHUNK_HEADER_BYTES, STREAM_HEADER_BYTES

MAX_TEXT_FRAME_BYTES: Final = 1 * 1024 * 1024
"""Largest JSON text frame (a lesson manifest of MAX_ITEMS_PER_LESSON items fits)."""

CHUNK_SIZE_BYTES: Final = 1 * 1024 * 1024
"""Most payload bytes of one chunk frame: the receiver accepts chunks up to this."""

SEND_CHUNK_BYTES: Final = 256 * 1024
"""Payload bytes a sender puts in one chunk frame (at most ``CHUNK_SIZE_BYTES``).

A quarter of what a kiosk accepts, so that every block the receiving side allocates
per frame (the websocket layer's copy of the frame and its unmasked copy) stays under
the panel's fixed mmap threshold (``kiosk.memory.MMAP_THRESHOLD_BYTES``, 512 KiB) and is
reused from the heap. A mebibyte chunk is mapped and unmapped anew for every copy: the
kiosk then touches about a thousand fresh pages per MB received and spends twice the
CPU (``bench.transfer``: about 1,000 against 120-200 page faults per MB)."""

MAX_CHUNK_FRAME_BYTES: Final = CHUNK_HEADER_BYTES + CHUNK_SIZE_BYTES
"""Largest binary frame: header plus one chunk."""

MAX_STREAM_FRAME_BYTES: Final = 1 * 1024 * 1024
"""Largest payload of one stream frame (one encoded picture of a screen share).

A 1080p keyframe of a dense page of text is 100–400 KB at the sender's settings; a
larger frame is refused by the sender's encoder check and by the kiosk's codec."""

MAX_STREAM_WIRE_BYTES: Final = STREAM_HEADER_BYTES + MAX_STREAM_FRAME_BYTES
"""Largest binary stream frame: header plus one picture."""

MAX_FRAME_BYTES: Final = max(MAX_TEXT_FRAME_BYTES, MAX_CHUNK_FRAME_BYTES, MAX_STREAM_WIRE_BYTES)
"""``max_size`` given to the websocket layer on both sides."""

MAX_ITEMS_PER_LESSON: Final = 500
"""Items in one lesson (a PDF contributes one item per page)."""

MAX_BLOB_BYTES: Final = 2 * 1024 * 1024 * 1024
"""Largest single media file (2 GiB)."""

MAX_PICTURE_PIXELS: Final = 40_000_000
"""Most pixels a panel decodes for one image (40 megapixels, e.g. 8000×5000).

Checked from the image's header before decoding, by the controller when a lesson is
loaded and by the kiosk before it shows the image (which then shows an error slide
saying so). Decoding costs 4 bytes a pixel and a few copies: 40 MP keeps a panel within
a few hundred MB, where Pillow's own limit (89 MP, refused only from 179 MP) let a
194 KB PNG of 13000×13000 take it to 1.8 GB. A JPEG counts at the reduced scale it is
decoded at (down to 1/8 per side, so a 108 MP phone photo shows); Pillow's own limit
still refuses any image of more than 179 MP."""

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

MAX_CLOCK_OFFSET_MS: Final = 3600 * 1000
"""Largest ``cast.clock_offset_ms`` either way (one hour); the codec rejects more.

The offset moves a lesson's usage records in the school's reports, so it is bounded
to what a real clock ever drifts (a PC clock without time sync drifts a few minutes a
year) and kept far below what could move a lesson to another day. A controller that
measures a panel further off sends 0: the records keep the panel's own time."""

CLOCK_OFFSET_TOLERANCE_MS: Final = 60 * 1000
"""How far a nonzero ``cast.clock_offset_ms`` may be from what the kiosk measured with
the ``time_ping`` messages of the same connection (half a round trip, with room to spare)."""

MAX_INSTANT_AHEAD_MS: Final = 10_000
"""Furthest ahead of the kiosk's clock a ``cast.start_at_ms`` or ``control.at_ms`` may
be (10 s): a synchronised start or a group control is scheduled a short lead ahead
(measured round trips plus the panels' preparation, well under a second on a school
network); an instant further off means a wrong clock or offset, and would leave the
panel waiting. The kiosk refuses it with code ``bad_instant``; an instant already past
is applied at once and reported in the ``ok`` (``late_ms``)."""

MAX_ANNOUNCEMENT_S: Final = 24 * 3600
"""Longest ``announce.duration_s`` (one day)."""

MAX_MESSAGES_PER_SECOND: Final = 200
"""Messages one paired controller may send per second on average, all its connections
together, before the connection that goes past it is closed (1008).

Text frames count, and binary frames that are not a valid chunk of a blob the
connection announced. The budget is the token's, not the connection's: a device does
not get more by opening more connections, and a new connection does not refill it."""

MESSAGE_BURST: Final = 400
"""Messages a paired controller may send at once before the rate limit applies."""

MAX_UNAUTHENTICATED_MESSAGES_PER_SECOND: Final = 4
"""The same before the connection is authenticated (paired, or ``hello`` with a valid
token). Until then it may only send ``hello``, ``pair_start`` and ``pair_confirm``: a
client needs a handful, and a flood of them is closed (1008) after
:data:`UNAUTHENTICATED_MESSAGE_BURST` instead of :data:`MESSAGE_BURST`, so that it costs
the small computer inside a board little."""

UNAUTHENTICATED_MESSAGE_BURST: Final = 16
"""Messages an unauthenticated connection may send at once; once it is authenticated its
messages count against its paired controller's budget (:data:`MESSAGE_BURST`)."""

MAX_STREAM_FRAMES_PER_SECOND: Final = 60
"""Stream frames one connection may send per second on average while it shares its
screen (the sender sends at most 30); more closes the connection (1008)."""

STREAM_FRAME_BURST: Final = 120
"""Stream frames a connection may send at once before that rate applies: four seconds of
a 30 fps share, which a network stall may deliver at once."""

MAX_SHARE_WIDTH: Final = 1920
"""Widest picture a screen share may carry (``share_start.width``, and every decoded
picture); a larger screen is scaled down by the sender."""

MAX_SHARE_HEIGHT: Final = 1080
"""Tallest picture a screen share may carry."""

MIN_SHARE_SIDE: Final = 16
"""Smallest width or height of a shared picture."""

KEYFRAME_REQUEST_INTERVAL_S: Final = 0.5
"""A kiosk asks for a keyframe at most this often while it waits for one."""

SHARE_KEEPALIVE_S: Final = 1.0
"""A sender whose screen did not change sends a picture (a few bytes: "nothing moved")
at least this often, so that the panel tells a still screen from a lost one."""

STREAM_STALL_S: Final = 3.0
"""A share that sent no picture for this long shows the panel's "screen sharing paused"
card (the connection stays; the next picture replaces the card)."""

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

SEND_BUFFER_BYTES: Final = 256 * 1024
"""The kernel's send buffer of each accepted connection (``SO_SNDBUF``; Linux keeps
twice this). Frames are written straight to the socket while it takes them, and queue
(within the two limits above) only once it is full: this bounds what a paired
connection that stops reading holds in the kernel, and how soon it is found out. Half a
MiB in flight still fills a LAN."""

CLOSE_TIMEOUT_S: Final = 0.5
"""A connection the kiosk closes (1008) is aborted if not gone after this long: a flooder
is cut off within a second of crossing its limit (it is no longer read meanwhile)."""

MAX_SCHOOL_ID_CHARS: Final = 64
"""Longest school id (``kiosk.toml`` ``school_id``, ``classcast usage push --school``):
lower-case Latin letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit
(:func:`protocol.text.school_id_problem`)."""
