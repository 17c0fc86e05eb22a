"""Counting this process's threads, to check that what a test started has ended."""

from __future__ import annotations

import os
import threading


def native_threads() -> int:
    """Every thread of this process, libVLC's included."""
    return len(os.listdir("/proc/self/task"))


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
