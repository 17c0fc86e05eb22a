"""The connection table's rules with an explicit ``now``: caps, victims, timeouts, budgets."""

from __future__ import annotations

import pytest

from kiosk.connections import (
    FD_RESERVE,
    Cause,
    ConnectionLimits,
    ConnectionTable,
    Stage,
    fit_to_open_files,
)
from protocol import limits
from protocol.sources import LogLimiter, source_of

SMALL = ConnectionLimits(
    max_connections=6,
    max_unauthenticated_per_address=3,
    handshake_timeout_s=5.0,
    unauthenticated_timeout_s=10.0,
    pairing_timeout_s=60.0,
    unauthenticated_bytes_per_s=100.0,
    unauthenticated_byte_burst=1000,
)
A = "10.0.0.1"
B = "10.0.0.2"


def opened(table: ConnectionTable, key: int, address: str, now: float) -> None:
    """Admit ``key`` and open its websocket at ``now`` (it must not evict anyone)."""
    assert table.admit(key, address, now) == []
    table.advance(key, Stage.SECURED, now)
    table.advance(key, Stage.OPEN, now)


def test_defaults_are_the_protocol_limits() -> None:
    lim = ConnectionLimits()
    assert lim.max_connections == limits.MAX_CONNECTIONS
    assert lim.max_unauthenticated_per_address == limits.MAX_UNAUTHENTICATED_PER_ADDRESS
    assert lim.unauthenticated_timeout_s == limits.UNAUTHENTICATED_TIMEOUT_S
    assert lim.pairing_timeout_s == limits.PAIRING_TIMEOUT_S
    assert lim.max_unauthenticated_per_address <= lim.max_connections


def test_per_address_cap_at_both_ends() -> None:
    table = ConnectionTable(SMALL)
    for key in range(3):
        opened(table, key, A, now=float(key))
    assert table.unauthenticated(A) == 3
    # One more from A evicts the one that progressed least recently: the first.
    assert table.admit(3, A, now=10.0) == [(0, Cause.EVICTED)]
    assert table.unauthenticated(A) == 3
    assert table.live == 3
    assert len(table) == 4  # the evicted one holds its socket until it is forgotten
    table.forget(0)
    assert len(table) == 3


def test_the_victim_is_the_one_that_progressed_least_recently() -> None:
    table = ConnectionTable(SMALL)
    for key in range(3):
        opened(table, key, A, now=float(key))
    table.advance(0, Stage.GREETED, now=5.0)  # the oldest said hello since: it is fresh
    assert table.admit(3, A, now=6.0) == [(1, Cause.EVICTED)]


def test_a_connection_that_sent_nothing_goes_first() -> None:
    table = ConnectionTable(SMALL)
    opened(table, 0, A, now=0.0)
    opened(table, 1, A, now=1.0)
    assert table.admit(2, A, now=2.0, silent=True) == []
    # The silent one is the newest, but a real client sends its TLS hello at once.
    assert table.admit(3, A, now=3.0) == [(2, Cause.EVICTED)]
    # Once TLS is done it is an ordinary connection again.
    assert table.admit(4, A, now=4.0, silent=True) == [(0, Cause.EVICTED)]
    table.advance(4, Stage.SECURED, now=5.0)
    assert table.admit(5, A, now=6.0) == [(1, Cause.EVICTED)]


def test_authenticated_connections_are_never_evicted() -> None:
    table = ConnectionTable(SMALL)
    opened(table, 0, A, now=0.0)
    table.advance(0, Stage.AUTHENTICATED, now=0.5)
    for key in range(1, 4):
        opened(table, key, A, now=float(key))
    assert table.unauthenticated(A) == 3
    victims = [table.admit(key, A, now=float(key)) for key in range(4, 20)]
    assert all(v and v[0][0] != 0 for v in victims)
    assert table.stage(0) == Stage.AUTHENTICATED


def test_total_cap_evicts_from_the_address_with_the_most() -> None:
    table = ConnectionTable(SMALL)
    for key in range(3):
        opened(table, key, A, now=float(key))
    for key in range(3, 6):
        opened(table, key, B, now=float(key))
    table.advance(5, Stage.AUTHENTICATED, now=6.0)  # B: 2 unauthenticated, A: 3
    assert table.live == 6
    # A newcomer from a third address: room is made at A, which holds the most.
    assert table.admit(6, "10.0.0.3", now=7.0) == [(0, Cause.EVICTED)]
    assert table.live == 6


def test_newcomer_is_refused_only_when_everyone_else_is_authenticated() -> None:
    table = ConnectionTable(SMALL)
    for key in range(6):
        opened(table, key, f"10.0.1.{key}", now=0.0)
        table.advance(key, Stage.AUTHENTICATED, now=0.0)
    assert table.admit(6, A, now=1.0) == [(6, Cause.REFUSED)]
    assert table.live == 6
    table.forget(6)
    table.forget(0)
    assert table.admit(7, A, now=2.0) == []


def test_unauthenticated_timeout_at_both_ends() -> None:
    table = ConnectionTable(SMALL)
    opened(table, 0, A, now=0.0)
    table.advance(0, Stage.GREETED, now=1.0)  # progress does not extend the allowance
    assert table.next_deadline() == 10.0
    assert table.expired(now=9.999) == []
    assert table.expired(now=10.0) == [(0, Cause.UNAUTHENTICATED_TIMEOUT)]
    assert table.expired(now=11.0) == []  # reported once
    assert table.live == 0


def test_pairing_gets_the_longer_allowance() -> None:
    table = ConnectionTable(SMALL)
    opened(table, 0, A, now=0.0)
    table.advance(0, Stage.PAIRING, now=2.0)
    assert table.deadline(0) == 60.0
    assert table.expired(now=59.9) == []
    assert table.expired(now=60.0) == [(0, Cause.UNAUTHENTICATED_TIMEOUT)]


def test_a_failed_pairing_falls_back_to_the_short_allowance() -> None:
    table = ConnectionTable(SMALL)
    opened(table, 0, A, now=0.0)
    table.advance(0, Stage.PAIRING, now=2.0)
    table.advance(0, Stage.GREETED, now=20.0)
    assert table.expired(now=20.0) == [(0, Cause.UNAUTHENTICATED_TIMEOUT)]


def test_authenticated_never_times_out_and_unpairing_restarts_the_clock() -> None:
    table = ConnectionTable(SMALL)
    opened(table, 0, A, now=0.0)
    table.advance(0, Stage.AUTHENTICATED, now=1.0)
    assert table.deadline(0) == float("inf")
    assert table.expired(now=1e9) == []
    assert table.unauthenticated(A) == 0
    table.advance(0, Stage.GREETED, now=100.0)  # unpaired
    assert table.unauthenticated(A) == 1
    assert table.deadline(0) == 110.0


def test_handshake_stage_times_out_as_a_safety_net() -> None:
    lim = SMALL
    table = ConnectionTable(lim)
    assert table.admit(0, A, now=0.0) == []
    # TLS and the opening handshake time out by themselves; the table only catches a
    # connection lost without a close, after the unauthenticated allowance at most.
    assert table.deadline(0) == min(
        2 * lim.handshake_timeout_s + lim.close_timeout_s, lim.unauthenticated_timeout_s
    )
    assert table.expired(now=table.deadline(0)) == [(0, Cause.HANDSHAKE_TIMEOUT)]


def test_byte_budget_at_both_ends() -> None:
    table = ConnectionTable(SMALL)
    opened(table, 0, A, now=0.0)
    assert table.charge(0, 1000, now=0.0)  # the whole burst at once
    assert not table.charge(0, 1, now=0.0)
    assert table.charge(0, 100, now=1.0)  # 100 bytes per second come back
    assert not table.charge(0, 1, now=1.0)
    table.advance(0, Stage.AUTHENTICATED, now=1.0)
    assert table.charge(0, 10**9, now=1.0)  # authenticated connections are not charged


def test_ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() -> None:
    assert source_of("2001:db8:1:2:aaaa::1") == source_of("2001:db8:1:2:bbbb::2")
    assert source_of("2001:db8:1:2::1") != source_of("2001:db8:1:3::1")
    assert source_of("::ffff:10.0.0.1") == "10.0.0.1"
    assert source_of("10.0.0.1") == "10.0.0.1"
    assert source_of("") == ""
    table = ConnectionTable(SMALL)
    for key in range(3):
        opened(table, key, f"2001:db8::{key + 1}", now=float(key))
    assert table.admit(3, "2001:db8::99", now=5.0) == [(0, Cause.EVICTED)]


def test_connection_cap_fits_the_open_file_limit() -> None:
    lim = ConnectionLimits(max_connections=128)
    assert fit_to_open_files(lim, FD_RESERVE + 2 * 128) is lim
    assert fit_to_open_files(lim, FD_RESERVE + 2 * 128 - 2).max_connections == 127
    assert fit_to_open_files(lim, 10).max_connections == 1
    assert fit_to_open_files(ConnectionLimits(), 1024).max_connections <= (1024 - 256) // 2


@pytest.mark.parametrize("interval", [10.0, 60.0])
def test_log_limiter_logs_each_cause_once_per_interval(interval: float) -> None:
    log = LogLimiter(interval)
    assert log.allow("evicted", now=0.0) == 0
    assert log.allow("evicted", now=1.0) is None
    assert log.allow("evicted", now=interval - 0.001) is None
    assert log.allow("timeout", now=1.0) == 0  # another cause has its own line
    assert log.next_due() == interval
    assert log.overdue(now=interval - 0.001) == []
    assert log.allow("evicted", now=interval) == 2  # the count of the suppressed
    assert log.allow("evicted", now=interval + 1) is None
    assert log.overdue(now=2 * interval) == [("evicted", 1)]
    assert log.overdue(now=3 * interval) == []
    assert log.next_due() == float("inf")
