"""Clock-offset math: whether a kiosk can vouch for the offset a ``cast`` claims.

A controller measures how far the kiosk's wall clock is ahead of its own with
``time_ping`` (NTP's estimate ``kiosk_ms - (t0 + t1) / 2``, from the sample with the
shortest round trip) and sends it in ``cast.clock_offset_ms``. The kiosk stores it in
the usage records of that lesson, and the school database moves the records by it. So
a kiosk does not take the number on trust:

- the codec rejects an offset beyond ``limits.MAX_CLOCK_OFFSET_MS`` either way;
- ``0`` is always accepted: no correction, the records keep the kiosk's own time;
- any other offset must match what the kiosk itself saw on the same connection: each
  ``time_ping`` it answered gives ``kiosk_ms - controller_ms``, which is the offset
  plus the ping's one-way delay. An honest claim is within half a round trip of one
  of them, so a claim further than ``limits.CLOCK_OFFSET_TOLERANCE_MS`` from every one
  is refused (:func:`check_clock_offset`).

A controller that also lies in its ``time_ping`` can still shift its own records, but
never further than ``MAX_CLOCK_OFFSET_MS``. Sans-I/O: pure computation.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final

from protocol import limits
from protocol.errors import UnexpectedMessageError

CLOCK_SAMPLES_KEPT: Final = 8
"""``time_ping`` samples a kiosk keeps per connection (a ``cast`` is preceded by 3)."""


@dataclass(frozen=True, slots=True)
class ClockSample:
    """One ``time_ping`` as the kiosk received it."""

    controller_ms: int
    """The controller's wall clock when it sent the ping, as the ping says."""
    kiosk_ms: int
    """The kiosk's wall clock when it received the ping."""

    @property
    def one_way_ms(self) -> int:
        """The kiosk's clock minus the controller's: the offset plus the one-way delay."""
        return self.kiosk_ms - self.controller_ms


def check_clock_offset(claimed_ms: int, samples: Sequence[ClockSample]) -> int | None:
    """Check a ``cast.clock_offset_ms`` against the connection's ``time_ping`` samples.

    Call it when a ``cast`` arrives, before receiving its media; store the claimed
    offset only if it returns.

    Args:
        claimed_ms: The offset the ``cast`` carries.
        samples: The connection's latest samples, oldest first.

    Returns:
        What the kiosk measured itself: the one-way estimate nearest to the claim, or
        None when there are no samples. The caller may log it when it is beyond
        ``MAX_CLOCK_OFFSET_MS`` (the kiosk's clock is far off).

    Raises:
        UnexpectedMessageError: code ``clock_offset``: the offset is out of bounds, comes
            without a ``time_ping`` on this connection, or differs from every sample by
            more than ``CLOCK_OFFSET_TOLERANCE_MS`` (the controller's fault).
    """
    measured = (
        min((s.one_way_ms for s in samples), key=lambda m: abs(m - claimed_ms)) if samples else None
    )
    if claimed_ms == 0:
        return measured
    if abs(claimed_ms) > limits.MAX_CLOCK_OFFSET_MS:
        raise UnexpectedMessageError(
            f"clock_offset_ms {claimed_ms} is beyond ±{limits.MAX_CLOCK_OFFSET_MS} ms; "
            "send 0 to keep the panel's own time",
            code="clock_offset",
        )
    if measured is None:
        raise UnexpectedMessageError(
            f"clock_offset_ms {claimed_ms} comes without a time_ping on this connection; "
            "measure the panel's clock with time_ping first (or send 0)",
            code="clock_offset",
        )
    if abs(claimed_ms - measured) > limits.CLOCK_OFFSET_TOLERANCE_MS:
        raise UnexpectedMessageError(
            f"clock_offset_ms {claimed_ms} does not match this panel's clock: measured "
            f"{measured} ms with the time_ping of this connection (tolerance "
            f"{limits.CLOCK_OFFSET_TOLERANCE_MS} ms); measure again and cast",
            code="clock_offset",
        )
    return measured


# --------------------------------------------------------------------------- times as text

_HOUR_MS: Final = 3_600_000
_DAY_MS: Final = 86_400_000
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


def iso_utc_ms(ms: int) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC with milliseconds and ``Z``: the one
    form every time of the usage log is written in (``"2026-11-23T08:30:00.250Z"``)."""
    day, rest = divmod(ms, _DAY_MS)
    hour, rest = divmod(rest, _HOUR_MS)
    minute, rest = divmod(rest, 60_000)
    second, milli = divmod(rest, 1000)
    return f"{_utc_day(day)}T{hour:02d}:{minute:02d}:{second:02d}.{milli:03d}Z"


def iso_utc(moment: datetime) -> str:
    """``moment`` (timezone-aware) in the form of :func:`iso_utc_ms`, to the millisecond
    below."""
    delta = moment.astimezone(UTC) - _EPOCH
    return iso_utc_ms(delta.days * _DAY_MS + delta.seconds * 1000 + delta.microseconds // 1000)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@functools.lru_cache(maxsize=4096)
def _utc_day(day: int) -> str:
    """``YYYY-MM-DD`` of day ``day`` since the epoch."""
    return date.fromordinal(day + _EPOCH_ORDINAL).isoformat()
