"""A tiny, dependency-free ``sd_notify`` client: readiness, status and watchdog pings.

Under systemd (``Type=notify``) the service manager passes a datagram socket in
``$NOTIFY_SOCKET``; the kiosk tells it when it is ready (``READY=1``), what it is doing
(``STATUS=...``), that it is still alive (``WATCHDOG=1``) and that it is stopping
(``STOPPING=1``). Outside systemd every call is a no-op, so callers never check.

Sending never blocks (a non-blocking socket and ``MSG_DONTWAIT``) and never raises: a
failure is logged once at WARNING, later ones at DEBUG. The render loop can therefore
call :meth:`SystemdNotifier.maybe_ping` on every frame.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

logger = logging.getLogger(__name__)

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"

_SEND_FLAGS = getattr(socket, "MSG_DONTWAIT", 0) | getattr(socket, "MSG_NOSIGNAL", 0)


def notify_address(value: str | None) -> str | None:
    """The ``AF_UNIX`` address named by a ``NOTIFY_SOCKET`` value, or None.

    An absolute path is used as is; ``@name`` is the abstract socket ``\\0name``. Anything
    else (unset, empty, relative, or another transport such as ``vsock:``) gives None.
    """
    if not value:
        return None
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


def watchdog_interval_s(
    environ: Mapping[str, str] | None = None, pid: int | None = None
) -> float | None:
    """How often to ping the watchdog: half of ``$WATCHDOG_USEC``, in seconds, or None.

    None when the watchdog is off: ``WATCHDOG_USEC`` unset, not a positive integer, or
    ``WATCHDOG_PID`` set to a process other than ``pid`` (default: this process).
    """
    env = os.environ if environ is None else environ
    raw = env.get(WATCHDOG_USEC_ENV)
    if not raw:
        return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec <= 0:
        return None
    owner = env.get(WATCHDOG_PID_ENV)
    if owner:
        try:
            owner_pid = int(owner)
        except ValueError:
            return None
        if owner_pid != (os.getpid() if pid is None else pid):
            return None
    return usec / 1_000_000 / 2


def ping_due(last_ping: float | None, now: float, period_s: float | None) -> bool:
    """Whether a watchdog ping is due at ``now``.

    Args:
        last_ping: when the last ping was sent (same clock as ``now``), None if never.
        now: the current time, e.g. ``time.monotonic()``.
        period_s: the ping period (:func:`watchdog_interval_s`); None = no watchdog.

    Returns:
        False without a watchdog; True on the first call, once ``period_s`` has passed
        since ``last_ping``, or if the clock went backwards.
    """
    if period_s is None:
        return False
    if last_ping is None:
        return True
    elapsed = now - last_ping
    return elapsed >= period_s or elapsed < 0


def _one_line(text: str) -> str:
    # A newline would start another assignment in the datagram.
    return " ".join(text.splitlines())


class SystemdNotifier:
    """Notifications to systemd; every method is a cheap no-op when not under systemd.

    Create one at start-up (it reads the environment then), call :meth:`ready` once the
    window and the server are up, :meth:`maybe_ping` from the render loop, and
    :meth:`stopping` when shutting down. Safe to call from any thread.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, pid: int | None = None) -> None:
        """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``.

        Args:
            environ: the environment to read (default ``os.environ``).
            pid: this process's id for the ``WATCHDOG_PID`` check (default ``os.getpid()``).
        """
        env = os.environ if environ is None else environ
        raw = env.get(NOTIFY_SOCKET_ENV)
        self._address = notify_address(raw)
        if raw and self._address is None:
            logger.warning("unsupported %s=%r; not notifying systemd", NOTIFY_SOCKET_ENV, raw)
        self._period = watchdog_interval_s(env, pid) if self._address is not None else None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._warned = False
        self._last_ping: float | None = None

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a notify socket."""
        return self._address is not None

    def watchdog_interval_s(self) -> float | None:
        """The recommended ping period (half of ``WatchdogSec=``), or None without one."""
        return self._period

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one datagram.

        Returns:
            True if sent; False when not under systemd or when sending failed (logged).
        """
        if self._address is None or not assignments:
            return False
        payload = "\n".join(assignments).encode("utf-8")
        try:
            with self._lock:
                if self._sock is None:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    sock.setblocking(False)
                    self._sock = sock
                self._sock.sendto(payload, _SEND_FLAGS, self._address)
        except (OSError, AttributeError, ValueError) as exc:
            # AttributeError: no AF_UNIX on this platform; ValueError: embedded NUL in path.
            if not self._warned:
                self._warned = True
                logger.warning("cannot notify systemd at %r: %s", self._address, exc)
            else:
                logger.debug("cannot notify systemd: %s", exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd the kiosk is up (``READY=1``), optionally with a status line."""
        if status is None:
            return self.notify("READY=1")
        return self.notify("READY=1", f"STATUS={_one_line(status)}")

    def status(self, text: str) -> bool:
        """Set the line ``systemctl status`` shows (``STATUS=...``)."""
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        """Ping the watchdog now (``WATCHDOG=1``)."""
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        """Tell systemd the kiosk is shutting down (``STOPPING=1``)."""
        return self.notify("STOPPING=1")

    def maybe_ping(self, now: float) -> bool:
        """Ping the watchdog if a ping is due at ``now`` (see :func:`ping_due`).

        Cheap enough for every frame: without a watchdog it only compares with None.

        Args:
            now: the current time on a monotonic clock, e.g. ``time.monotonic()``.

        Returns:
            True if a ping was sent.
        """
        if not ping_due(self._last_ping, now, self._period):
            return False
        self._last_ping = now
        return self.watchdog()

    def close(self) -> None:
        """Close the socket (a later call opens it again)."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
