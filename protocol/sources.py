"""Who is asking, and how often to say so: pure helpers for every listener's caps.

Both programs' listeners (the kiosk's websocket server, the teacher's phone-remote
listener) count clients per *source* (:func:`source_of`: an IPv4 address, or an IPv6
/64) and log each cause of trouble once per interval (:class:`LogLimiter`). No I/O:
time is passed in.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

__all__ = ["LOG_INTERVAL_S", "LogLimiter", "source_of"]


def source_of(address: str) -> str:
    """The source that per-address caps count: the IPv4 address, or the IPv6 /64.

    A phone may use many IPv6 addresses of its network's /64 (privacy addresses).
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


LOG_INTERVAL_S = 10.0
"""How often one cause of trouble may be logged (the rest is counted)."""


@dataclass(slots=True)
class LogLimiter:
    """One log line per cause per ``interval_s``; lines in between are only counted."""

    interval_s: float = LOG_INTERVAL_S
    _last: dict[str, float] = field(default_factory=dict)
    _suppressed: dict[str, int] = field(default_factory=dict)

    def allow(self, cause: str, now: float) -> int | None:
        """May ``cause`` be logged at ``now``?

        Returns None (do not log; counted), or how many lines of ``cause`` were
        suppressed before this one (log it, with that count when it is not 0).
        """
        last = self._last.get(cause)
        if last is not None and now - last < self.interval_s:
            self._suppressed[cause] = self._suppressed.get(cause, 0) + 1
            return None
        self._last[cause] = now
        return self._suppressed.pop(cause, 0)

    def overdue(self, now: float) -> list[tuple[str, int]]:
        """Causes with suppressed lines whose interval is over, and their counts.

        The caller logs one summary line for each; they count as that cause's line.
        """
        due = [
            (cause, count)
            for cause, count in self._suppressed.items()
            if now - self._last[cause] >= self.interval_s
        ]
        for cause, _ in due:
            del self._suppressed[cause]
            self._last[cause] = now
        return due

    def next_due(self) -> float:
        """When :meth:`overdue` may next return something (``inf``: nothing pending)."""
        return min(
            (self._last[cause] + self.interval_s for cause in self._suppressed),
            default=float("inf"),
        )
