"""The kiosk's native heap, set up so that a panel running all day keeps its size.

A lesson loop allocates and frees big blocks all day, on many threads: a copy of every
video frame shown (3.7 MB at 720p, 8.3 MB at 1080p, on the main thread), the three
buffers libVLC decodes into (allocated on libVLC's output thread, a new thread for
every video shown), decoded pictures and PDF pages (the loader thread), screenshots.
glibc's malloc serves a block over its mmap threshold (128 KiB at first) with ``mmap``
and gives it back when freed, but it *raises* the threshold to the size of every such
block freed (up to 32 MiB). From then on these blocks come from the heap arenas, up to
eight per core, one picked per thread, where the holes left between blocks of mixed
sizes are rarely given back: ``bench.soak`` measured the kiosk growing by steps of
4–14 MB, about 150 MB an hour, with no Python object left behind (tracemalloc flat).

:func:`tune_allocator` fixes the threshold at :data:`MMAP_THRESHOLD_BYTES` (glibc then
stops moving it), so every big block is mapped on its own and unmapped when freed, and
caps the arenas at :data:`MALLOC_ARENAS`. Fixing the threshold also fixes glibc's trim
threshold, which would otherwise stay at 128 KiB: every freed block of a received media
chunk (256 KiB, and the websocket layer's copies of it) at the top of the heap would
be given back to the system and touched afresh by the next one, page by page. It is
set to :data:`TRIM_THRESHOLD_BYTES`. Call it once, first thing, before any other thread
starts (``classcast-kiosk`` does).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Final

logger = logging.getLogger(__name__)

MMAP_THRESHOLD_BYTES: Final = 512 * 1024
"""Blocks of this size or more are mapped on their own and returned to the system when
freed: frames, pictures, page bitmaps, screenshots, media chunks. Smaller blocks (TLS
records, messages, Python objects) stay in the heap. Fixed, glibc no longer raises it."""

MALLOC_ARENAS: Final = 2
"""Heap arenas at most. glibc's default (8 per core) lets every short-lived libVLC,
loader or executor thread keep a partly used arena of its own; with the big blocks
mapped on their own, two arenas leave little to contend for."""

TRIM_THRESHOLD_BYTES: Final = 4 * 1024 * 1024
"""Free memory kept at the top of each heap arena before the rest is given back. A
transfer's blocks in flight (the TLS read buffer, the websocket layer's copies of a
chunk, the chunk queue) come and go within a few MiB, so they reuse the same pages;
with glibc's 128 KiB, ``bench.transfer`` measured 100-170 fresh pages touched per MB
received (45 with 4 MiB) and 0.3 ms more CPU per MB. At most ``MALLOC_ARENAS`` times
this stays unused after a transfer (``malloc_trim``, which the kiosk calls when a crowd
of connections has gone, gives it back all the same)."""

_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
_M_ARENA_MAX: Final = -8


def tune_allocator() -> bool:
    """Fix glibc's mmap and trim thresholds and cap its arenas (see the module's docstring).

    Returns False, having changed nothing, where the C library is not glibc (no
    ``mallopt``); the kiosk runs the same, only its memory may grow over the day.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    done = bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)) and done
    done = bool(mallopt(_M_ARENA_MAX, MALLOC_ARENAS)) and done
    if not done:
        logger.warning("the C library refused the allocator settings: memory may grow")
    return done
