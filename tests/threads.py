"""Counting this process's threads, to check that what a test started has ended."""

from __future__ import annotations

import os
import threading
import time


def native_threads() -> set[int]:
    """The id of every thread of this process, libVLC's included."""
    return {int(tid) for tid in os.listdir("/proc/self/task")}


def threads_left(before: set[int], timeout_s: float = 5.0) -> set[int]:
    """The threads not among ``before`` still running once they end, or after
    ``timeout_s``: a library may end a thread a moment after the call that stopped it
    returned. Threads of ``before`` that end meanwhile do not count."""
    deadline = time.monotonic() + timeout_s
    while (left := native_threads() - before) and time.monotonic() < deadline:
        time.sleep(0.01)
    return left


def python_threads() -> list[str]:
    """The names of the threads Python started, sorted.

    A library's own thread that once called into Python (a libVLC event callback that
    logged) stays in :func:`threading.enumerate` as a dummy for the life of the process
    whether or not it still runs; it is left out here: :func:`native_threads` counts it
    while it runs.
    """
    return sorted(
        t.name for t in threading.enumerate() if not isinstance(t, threading._DummyThread)
    )
