"""The kiosk's heap gives big blocks back: freed frames, pictures and pages leave no hole.

Each check runs in a fresh interpreter (the allocator settings are per process) and
reads glibc's own counters (``mallinfo2``): ``arena`` is the heap obtained from the
system, ``hblkhd`` the blocks mapped on their own. No clock is involved.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.memory import MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES
from protocol.limits import SEND_CHUNK_BYTES

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    not hasattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), "mallinfo2"),
    reason="glibc's mallinfo2 is needed to read the heap",
)

# The child scripts' start: glibc's heap figures, the heap set up as asked (argv[1]).
_PRELUDE = r"""
import ctypes, json, sys
from kiosk.memory import tune_allocator

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "tuned":
    tune_allocator()
"""

# A block over the threshold, freed, and another one: is the second still mapped?
_THRESHOLD = (
    _PRELUDE
    + r"""
size = int(sys.argv[2])
first = ctypes.create_string_buffer(4 * 1024 * 1024)
del first  # glibc would raise its threshold to 4 MiB here
before = libc.mallinfo2().hblkhd
block = ctypes.create_string_buffer(size)
mapped = libc.mallinfo2().hblkhd - before
del block
print(json.dumps({"mapped": mapped, "after_free": libc.mallinfo2().hblkhd - before}))
"""
)


# Heap blocks freed at the top of the heap: is the heap (``arena``) given back?
_TRIM = (
    _PRELUDE
    + r"""
size, count = int(sys.argv[2]), int(sys.argv[3])
blocks = [ctypes.create_string_buffer(size) for _ in range(count)]
grown = libc.mallinfo2().arena
del blocks
print(json.dumps({"kept": libc.mallinfo2().arena, "grown": grown}))
"""
)


def _run(script: str, *args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_a_big_block_stays_mapped_after_a_bigger_one_was_freed() -> None:
    # Untuned glibc serves the second block from the heap (threshold raised to 4 MiB).
    result = _run(_THRESHOLD, "tuned", str(2 * 1024 * 1024))
    assert result["mapped"] >= 2 * 1024 * 1024  # type: ignore[operator]
    assert result["after_free"] == 0  # unmapped: given back to the system


def test_a_block_at_the_threshold_is_mapped_and_a_smaller_one_is_not() -> None:
    at = _run(_THRESHOLD, "tuned", str(MMAP_THRESHOLD_BYTES))
    below = _run(_THRESHOLD, "tuned", str(MMAP_THRESHOLD_BYTES // 2))
    assert at["mapped"] >= MMAP_THRESHOLD_BYTES  # type: ignore[operator]
    assert below["mapped"] == 0


def test_untuned_glibc_serves_it_from_the_heap() -> None:
    # What the settings change: by default, once a 4 MiB block was freed, a 2 MiB one
    # comes from the heap, where the hole it leaves may never be given back.
    result = _run(_THRESHOLD, "untuned", str(2 * 1024 * 1024))
    assert result["mapped"] == 0


def test_the_kiosk_tunes_its_allocator_before_it_starts() -> None:
    source = (REPO / "kiosk" / "cli.py").read_text(encoding="utf-8")
    tuned, app = source.index("tune_allocator()"), source.index("KioskApp(config)")
    assert tuned < app


def test_a_freed_chunk_keeps_its_pages_for_the_next_one() -> None:
    # A received chunk's blocks, freed at the top of the heap, stay there to be reused,
    # instead of being given back and touched afresh page by page for the next chunk.
    result = _run(_TRIM, "tuned", str(SEND_CHUNK_BYTES), "2")
    assert result["kept"] == result["grown"]


def test_more_free_memory_than_the_trim_threshold_is_given_back() -> None:
    count = TRIM_THRESHOLD_BYTES // SEND_CHUNK_BYTES + 4
    result = _run(_TRIM, "tuned", str(SEND_CHUNK_BYTES), str(count))
    given_back = result["grown"] - result["kept"]  # type: ignore[operator]
    assert given_back >= count * SEND_CHUNK_BYTES - TRIM_THRESHOLD_BYTES
