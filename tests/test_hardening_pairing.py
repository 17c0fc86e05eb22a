"""Pairing that a classroom of phones cannot turn against the panel.

The guard's budgets with an injected clock (per source, per role, global, with decay;
the PIN renewed only by its lifetime, a pairing or a refused right PIN); the pairing
worker, in the kiosk's own process; the service's question on the panel under attack
(with an injected clock); real kiosks on loopback attacked by plain websockets clients from other
loopback addresses (127.0.0.2, ...), while a teacher on 127.0.0.1 controls, pairs or
an admin pairs; and the panel showing who paired, headless and in a real window.
"""

from __future__ import annotations

import os

os.environ["PYGLET_HEADLESS"] = "true"  # before pyglet's first import (the window tests)

import asyncio
import base64
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from controller.client import ControllerIdentity, KioskClient
from kiosk.access import Access
from kiosk.effects import (
    PAIRED_NOTICE_S,
    ControllerPaired,
    PairingQuestionClosed,
    PairingRequested,
    paired_notice_text,
    pairing_question_text,
    screen_name,
)
from kiosk.headless import HeadlessDisplay
from kiosk.pairing_worker import InlinePairingWorker
from kiosk.player import Identity
from kiosk.service import CloseSession, ComputeOffer, KioskService, Outgoing
from kiosk.tokens import TokenStore
from kiosk.usage import UsageLog
from media.store import BlobStore
from protocol import limits
from protocol.constants import PROTOCOL_VERSION
from protocol.messages import (
    Error,
    GetStatus,
    Hello,
    Message,
    PairConfirm,
    Paired,
    PairOffer,
    PairStart,
    Role,
    Status,
    Welcome,
)
from protocol.pairing import (
    CONFIRM_AFTER_FAILURES,
    GLOBAL_FAILURE_DECAY_S,
    GLOBAL_STARTS_BURST,
    GLOBAL_STARTS_PER_S,
    IN_FLIGHT_RETRY_S,
    MAX_EXCHANGES_IN_FLIGHT,
    MAX_TRACKED_SOURCES,
    PANEL_CONFIRM_S,
    PIN_LIFETIME_S,
    SOURCE_FAILURE_DECAY_S,
    SOURCE_FAILURE_LIMIT,
    SOURCE_STARTS_BURST,
    SOURCE_STARTS_PER_S,
    ControllerPairing,
    OfferJob,
    PairingError,
    PairingGuard,
    PairingLockedError,
    PairingThrottledError,
    compute_offer,
)
from tests.conftest import TEACHER
from tests.helpers import hello_json, raw_connect, recv_json, text_lesson
from tests.kiosks import ADMIN_SECRET, KioskThread, teacher

T0 = 1000.0
A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"


def make_guard(now: float = T0) -> PairingGuard:
    pins = iter(f"{n:06d}" for n in range(1, 10_000))
    return PairingGuard(now, make_pin=lambda: next(pins))


def admit_and_compute(guard: PairingGuard, role: Role, source: str, now: float) -> None:
    guard.admit(role, source, now)
    guard.computed(role)


# --------------------------------------------------------------------------- guard: starts


def test_a_source_may_start_its_burst_then_is_refused_at_once() -> None:
    guard = make_guard()
    for _ in range(SOURCE_STARTS_BURST):
        admit_and_compute(guard, "teacher", A, T0)
    with pytest.raises(PairingThrottledError) as info:
        guard.admit("teacher", A, T0)
    assert info.value.code == "try_later"
    assert info.value.retry_after_s == pytest.approx(1 / SOURCE_STARTS_PER_S)
    assert "from this computer" in str(info.value)
    # Other sources are not held back by it.
    admit_and_compute(guard, "teacher", B, T0)


def test_a_source_budget_refills_with_time() -> None:
    guard = make_guard()
    for _ in range(SOURCE_STARTS_BURST):
        admit_and_compute(guard, "teacher", A, T0)
    one_token_s = 1 / SOURCE_STARTS_PER_S
    with pytest.raises(PairingThrottledError):
        guard.admit("teacher", A, T0 + one_token_s * 0.99)
    admit_and_compute(guard, "teacher", A, T0 + one_token_s * 1.01)
    with pytest.raises(PairingThrottledError):
        guard.admit("teacher", A, T0 + one_token_s * 1.01)
    # Quiet long enough, the whole burst is back, and no more.
    later = T0 + one_token_s * (SOURCE_STARTS_BURST + 10)
    for _ in range(SOURCE_STARTS_BURST):
        admit_and_compute(guard, "teacher", A, later)
    with pytest.raises(PairingThrottledError):
        guard.admit("teacher", A, later)


def test_refused_starts_count_against_their_source() -> None:
    """A flooding source keeps its own bucket empty: its refusals are not free."""
    guard = make_guard()
    for _ in range(SOURCE_STARTS_BURST):
        admit_and_compute(guard, "teacher", A, T0)
    one_token_s = 1 / SOURCE_STARTS_PER_S
    # Asking again and again does not bring the next token any sooner...
    for i in range(100):
        with pytest.raises(PairingThrottledError):
            guard.admit("teacher", A, T0 + i * one_token_s / 200)
    # ...and a token that came while another computed is spent by the refused ask.
    guard.admit("teacher", B, T0 + one_token_s)
    with pytest.raises(PairingThrottledError, match="busy"):
        guard.admit("teacher", A, T0 + one_token_s)
    guard.computed("teacher")
    with pytest.raises(PairingThrottledError, match="from this computer"):
        guard.admit("teacher", A, T0 + one_token_s)


def test_everybody_together_has_a_global_budget() -> None:
    guard = make_guard()
    sources = [f"10.1.0.{i}" for i in range(GLOBAL_STARTS_BURST + 1)]
    for source in sources[:GLOBAL_STARTS_BURST]:
        admit_and_compute(guard, "teacher", source, T0)
    with pytest.raises(PairingThrottledError) as info:
        guard.admit("teacher", sources[-1], T0)
    assert "on this panel" in str(info.value)
    assert info.value.retry_after_s == pytest.approx(1 / GLOBAL_STARTS_PER_S)
    admit_and_compute(guard, "teacher", sources[-1], T0 + 1 / GLOBAL_STARTS_PER_S)


def test_a_flooding_source_takes_no_more_of_the_global_budget_than_its_own() -> None:
    guard = make_guard()
    for i in range(10_000):
        with contextlib.suppress(PairingThrottledError):
            admit_and_compute(guard, "teacher", A, T0 + i / 1000)
    # Ten seconds of flooding at 1000/s took its burst (plus a token's worth of refill
    # at most) from the global budget: the rest is there for everyone else.
    now = T0 + 10.0
    left = GLOBAL_STARTS_BURST - (SOURCE_STARTS_BURST + 1)
    for i in range(left):
        admit_and_compute(guard, "teacher", f"10.2.0.{i}", now)


def test_one_exchange_at_a_time_per_role_refused_not_queued() -> None:
    assert MAX_EXCHANGES_IN_FLIGHT == 1
    guard = make_guard()
    guard.admit("teacher", A, T0)
    assert guard.in_flight("teacher") == 1
    with pytest.raises(PairingThrottledError, match="busy with another pairing") as info:
        guard.admit("teacher", B, T0)
    assert info.value.retry_after_s == IN_FLIGHT_RETRY_S
    # The admin secret has its own worker slot.
    guard.admit("admin", B, T0)
    guard.computed("teacher")
    guard.computed("teacher")  # never below zero
    assert guard.in_flight("teacher") == 0
    guard.admit("teacher", C, T0)


def test_a_pairing_gives_its_start_tokens_back() -> None:
    """Honest pairings (which succeed) never use the budgets up, however many."""
    guard = make_guard()
    for i in range(GLOBAL_STARTS_BURST * 10):
        admit_and_compute(guard, "teacher", A, T0 + i * 0.001)
        guard.succeeded("teacher", A, T0 + i * 0.001)


# --------------------------------------------------------------------------- guard: guesses


def test_wrong_tries_lock_out_their_source_only() -> None:
    guard = make_guard()
    for _ in range(SOURCE_FAILURE_LIMIT - 1):
        guard.failed("teacher", A, T0)
    guard.check_source("teacher", A, T0)  # one below the limit: still allowed
    admit_and_compute(guard, "teacher", A, T0)
    guard.failed("teacher", A, T0)
    with pytest.raises(PairingLockedError) as info:
        guard.admit("teacher", A, T0)
    assert info.value.retry_after_s == pytest.approx(SOURCE_FAILURE_DECAY_S)
    with pytest.raises(PairingLockedError):
        guard.check_source("teacher", A, T0 + SOURCE_FAILURE_DECAY_S - 0.01)
    # Another computer pairs as usual.
    admit_and_compute(guard, "teacher", B, T0)
    guard.check_source("teacher", B, T0)
    # Once a try is forgiven, the locked source may try once more.
    guard.check_source("teacher", A, T0 + SOURCE_FAILURE_DECAY_S)
    admit_and_compute(guard, "teacher", A, T0 + SOURCE_FAILURE_DECAY_S)
    guard.failed("teacher", A, T0 + SOURCE_FAILURE_DECAY_S)
    with pytest.raises(PairingLockedError):
        guard.check_source("teacher", A, T0 + SOURCE_FAILURE_DECAY_S + 1)


def test_wrong_tries_from_all_sources_put_pairing_under_attack_for_a_while() -> None:
    guard = make_guard()
    sources = [A, B, C]
    for source in sources[: CONFIRM_AFTER_FAILURES - 1]:
        guard.failed("teacher", source, T0)
    assert not guard.needs_panel("teacher", T0)
    guard.failed("teacher", sources[CONFIRM_AFTER_FAILURES - 1], T0)
    assert guard.needs_panel("teacher", T0)
    assert guard.failures("teacher", None, T0) == CONFIRM_AFTER_FAILURES
    # Many more wrong tries do not make the attack last longer than one decay.
    for i in range(1000):
        guard.failed("teacher", f"10.3.{i // 250}.{i % 250}", T0 + 1)
    assert guard.needs_panel("teacher", T0 + GLOBAL_FAILURE_DECAY_S)
    assert not guard.needs_panel("teacher", T0 + 1 + GLOBAL_FAILURE_DECAY_S)
    assert guard.failures("teacher", None, T0 + 1 + GLOBAL_FAILURE_DECAY_S) == pytest.approx(
        CONFIRM_AFTER_FAILURES - 1
    )


def test_unconfirmed_guesses_per_day_are_bounded() -> None:
    """The bound docs/security.md gives: the first CONFIRM_AFTER_FAILURES guesses, then
    one per GLOBAL_FAILURE_DECAY_S, are the only ones a right PIN would pair without
    the panel's user."""
    guard = make_guard()
    unconfirmed = 0
    now = T0
    day_end = T0 + 86_400
    while now < day_end:
        if not guard.needs_panel("teacher", now):
            unconfirmed += 1
            guard.failed("teacher", f"10.4.{unconfirmed // 250}.{unconfirmed % 250}", now)
        now += 1.0
    expected = CONFIRM_AFTER_FAILURES + math.floor(86_400 / GLOBAL_FAILURE_DECAY_S)
    assert expected - 1 <= unconfirmed <= expected


def test_the_admin_secret_and_the_pin_have_budgets_of_their_own() -> None:
    guard = make_guard()
    # PIN guessing from everywhere: teachers must confirm on the panel...
    for i in range(SOURCE_FAILURE_LIMIT):
        guard.failed("teacher", A, T0)
        guard.failed("teacher", f"10.5.0.{i}", T0)
    for _ in range(SOURCE_STARTS_BURST * 3):
        with contextlib.suppress(PairingError):
            admit_and_compute(guard, "teacher", A, T0)
    assert guard.needs_panel("teacher", T0)
    # ...while an admin, even from the same computer, pairs as usual.
    assert not guard.needs_panel("admin", T0)
    admit_and_compute(guard, "admin", A, T0)
    guard.check_source("admin", A, T0)
    # And the other way round.
    other = make_guard()
    for i in range(SOURCE_FAILURE_LIMIT):
        other.failed("admin", B, T0)
        other.failed("admin", f"10.6.0.{i}", T0)
    assert other.needs_panel("admin", T0)
    assert not other.needs_panel("teacher", T0)
    admit_and_compute(other, "teacher", B, T0)
    other.check_source("teacher", B, T0)


def test_pin_renewals_are_bounded_whatever_attackers_do() -> None:
    """The PIN changes only at its lifetime, a pairing or a right PIN refused on the
    panel: any number of wrong tries, refusals and throttling leave it readable."""
    guard = make_guard()
    pin = guard.pin(T0)
    now = T0
    for i in range(5000):
        now = T0 + i * (PIN_LIFETIME_S - 1) / 5000
        source = f"10.7.{i % 7}.{i % 200}"
        try:
            admit_and_compute(guard, "teacher", source, now)
            guard.failed("teacher", source, now)
        except PairingError:
            pass
    assert guard.pin(now) == pin
    assert guard.generation == 0
    assert guard.pin(T0 + PIN_LIFETIME_S) != pin
    assert guard.generation == 1


def test_sources_remembered_are_bounded_and_those_at_rest_forgotten_first() -> None:
    guard = make_guard()
    budget = guard._roles["teacher"]
    sources = [f"10.8.{i // 250}.{i % 250}" for i in range(MAX_TRACKED_SOURCES * 2)]
    for source in sources:
        guard.failed("teacher", source, T0)
    assert MAX_TRACKED_SOURCES * 3 // 4 < len(budget.sources) <= MAX_TRACKED_SOURCES
    assert sources[0] not in budget.sources  # the least recently seen went
    assert sources[-1] in budget.sources
    # A full memory of sources with something to remember (wrong tries), A locked...
    guard = make_guard()
    budget = guard._roles["teacher"]
    for i in range(MAX_TRACKED_SOURCES - 1):
        guard.failed("teacher", f"10.9.{i // 250}.{i % 250}", T0)
    for _ in range(SOURCE_FAILURE_LIMIT):
        guard.failed("teacher", A, T0)
    # ...then honest computers come and go: they are forgotten first, A stays locked.
    for i in range(10):
        source = f"10.10.0.{i}"
        admit_and_compute(guard, "teacher", source, T0 + 0.5)
        guard.succeeded("teacher", source, T0 + 0.5)
    assert len(budget.sources) <= MAX_TRACKED_SOURCES
    with pytest.raises(PairingLockedError):
        guard.check_source("teacher", A, T0 + 1)


# --------------------------------------------------------------------------- the worker


def test_the_worker_computes_what_the_exchange_needs() -> None:
    controller = ControllerPairing("123456", controller_id="c", kiosk_id="k", fingerprint="f")
    job = OfferJob("123456", "c", "k", "f", controller.start())
    worker = InlinePairingWorker()
    keys = worker.compute(job)
    keys.verify_controller(controller.finish(keys.msg_b))
    assert "123456" not in repr(job)  # never in a log line
    with pytest.raises(PairingError, match="invalid pairing message"):
        worker.compute(OfferJob("123456", "c", "k", "f", b"Anot a point"))


def _children() -> dict[int, str]:
    """This process's child processes: pid → command line."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # it exited meanwhile
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
            found[int(entry.name)] = cmdline
    return found


async def test_a_kiosk_pairs_without_a_child_process(kiosk: KioskThread) -> None:
    """The exchange runs on a worker thread of the kiosk's own process: a panel keeps no
    second Python process (~20 MB) from its first pairing on."""
    before = _children()
    async with await teacher(kiosk):
        pass
    async with await KioskClient.connect(
        kiosk.address, ControllerIdentity("c-a", "Админ")
    ) as client:
        await client.pair(ADMIN_SECRET, role="admin")
    started = {pid: cmd for pid, cmd in _children().items() if pid not in before}
    assert started == {}
    assert not [cmd for cmd in _children().values() if "pairing_worker" in cmd]


# --------------------------------------------------------------------------- the service


class ManualClock:
    def __init__(self) -> None:
        self.mono = T0

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return 1.7e9 + self.mono


@dataclass
class Panel:
    """A KioskService with an injected clock, a headless display and inline SPAKE2."""

    service: KioskService
    clock: ManualClock
    display: HeadlessDisplay
    outbox: list[Outgoing] = field(default_factory=list)

    def run(self) -> None:
        """Carry out what the service asks, computing offers inline, as the adapter would."""
        while out := self.service.drain():
            for item in out:
                if isinstance(item, ComputeOffer):
                    try:
                        result: Any = compute_offer(item.offer.job)
                    except PairingError as exc:
                        result = exc
                    self.service.offer_computed(item, result)
                elif isinstance(item, Outgoing):
                    self.outbox.append(item)

    def replies(self, sid: int) -> list[Message]:
        mine = [o.message for o in self.outbox if o.sid == sid]
        self.outbox = [o for o in self.outbox if o.sid != sid]
        return mine

    def connect(self, source: str, name: str, cid: str) -> int:
        sid = self.service.open_session(source)
        self.service.handle(sid, Hello(1, PROTOCOL_VERSION, cid, name))
        self.run()
        self.replies(sid)
        return sid

    def start(self, sid: int, cid: str, secret: str, role: Role = "teacher") -> Any:
        """pair_start with ``secret``; returns (exchange, reply)."""
        exchange = ControllerPairing(
            secret, controller_id=cid, kiosk_id="k-test", fingerprint="ab" * 32
        )
        self.service.handle(sid, PairStart(2, role, base64.b64encode(exchange.start()).decode()))
        self.run()
        [reply] = self.replies(sid)
        return exchange, reply

    def pair(self, sid: int, cid: str, secret: str, role: Role = "teacher") -> list[Message]:
        exchange, offer = self.start(sid, cid, secret, role)
        assert isinstance(offer, PairOffer), offer
        confirm = exchange.finish(base64.b64decode(offer.spake))
        self.service.handle(sid, PairConfirm(3, base64.b64encode(confirm).decode()))
        self.run()
        return self.replies(sid)

    def pin(self) -> str:
        return self.service.access.pin(self.clock.monotonic())


@pytest.fixture
def panel(tmp_path: Path) -> Iterator[Panel]:
    clock = ManualClock()
    display = HeadlessDisplay()
    usage = UsageLog(None, kiosk_id="k-test", room="Каб. 1")
    access = Access(
        TokenStore(tmp_path / "tokens.json"),
        kiosk_id="k-test",
        fingerprint="ab" * 32,
        admin_secret=ADMIN_SECRET,
        now=clock.monotonic(),
    )
    service = KioskService(
        Identity("k-test", "Каб. 1", "Школа", "0"),
        store=BlobStore(tmp_path / "media", 10**8),
        usage=usage,
        display=display,
        access=access,
        clock=clock,
        heartbeat_s=3600.0,  # so that the question's deadline is the next one
        pairing_worker=InlinePairingWorker(),
    )
    service.tick()
    yield Panel(service, clock, display)
    usage.close_db()


def put_under_attack(panel: Panel, source: str = "10.9.9.9", role: Role = "teacher") -> None:
    sid = panel.connect(source, "Guesser", "c-guesser")
    secret = "x" * 12 if role == "admin" else f"{(int(panel.pin()) + 1) % 10**6:06d}"
    for _ in range(CONFIRM_AFTER_FAILURES):
        [reply] = panel.pair(sid, "c-guesser", secret, role)
        assert isinstance(reply, Error)
        assert reply.code == "bad_pin"
    assert panel.service.access.needs_panel(role, panel.clock.monotonic())


def test_pair_start_is_computed_away_from_the_service(panel: Panel) -> None:
    sid = panel.connect(A, TEACHER.name, TEACHER.controller_id)
    exchange = ControllerPairing(
        panel.pin(), controller_id=TEACHER.controller_id, kiosk_id="k-test", fingerprint="ab" * 32
    )
    panel.service.handle(sid, PairStart(2, "teacher", base64.b64encode(exchange.start()).decode()))
    # No offer yet: the service asks its adapter to compute it elsewhere.
    [compute] = panel.service.drain()
    assert isinstance(compute, ComputeOffer)
    assert (compute.sid, compute.re, compute.offer.role) == (sid, 2, "teacher")
    assert panel.service.access.guard.in_flight("teacher") == 1
    panel.service.offer_computed(compute, compute_offer(compute.offer.job))
    assert panel.service.access.guard.in_flight("teacher") == 0
    [offer] = [o.message for o in panel.service.drain() if isinstance(o, Outgoing)]
    assert isinstance(offer, PairOffer)
    assert offer.re == 2


def test_offer_for_a_closed_session_or_a_failed_worker(panel: Panel) -> None:
    sid = panel.connect(A, "X", "c-x")
    exchange = ControllerPairing("1", controller_id="c-x", kiosk_id="k-test", fingerprint="f")
    start = PairStart(2, "teacher", base64.b64encode(exchange.start()).decode())
    panel.service.handle(sid, start)
    [compute] = panel.service.drain()
    assert isinstance(compute, ComputeOffer)
    panel.service.close_session(sid)
    panel.service.offer_computed(compute, RuntimeError("worker died"))
    assert panel.service.access.guard.in_flight("teacher") == 0
    assert panel.service.drain() == []
    other = panel.connect(B, "Y", "c-y")
    panel.service.handle(other, start)
    [compute] = panel.service.drain()
    assert isinstance(compute, ComputeOffer)
    panel.service.offer_computed(compute, RuntimeError("worker died"))
    [error] = panel.service.drain()
    assert isinstance(error, Outgoing)
    assert isinstance(error.message, Error)
    assert error.message.code == "internal"


def test_a_right_pin_pairs_at_once_and_the_panel_shows_who(panel: Panel) -> None:
    sid = panel.connect(A, TEACHER.name, TEACHER.controller_id)
    [paired] = panel.pair(sid, TEACHER.controller_id, panel.pin())
    assert isinstance(paired, Paired)
    assert panel.display.question is None
    assert panel.display.notice == "Подключился: «Петрова Анна Сергеевна» (учитель)"


def test_under_attack_a_right_pin_waits_for_the_panel_and_allow_pairs(panel: Panel) -> None:
    pin = panel.pin()
    put_under_attack(panel)
    assert panel.pin() == pin  # the PIN the teacher read is still good
    sid = panel.connect(A, TEACHER.name, TEACHER.controller_id)
    assert panel.pair(sid, TEACHER.controller_id, pin) == []  # no answer yet
    assert panel.display.question == (
        "Разрешить «Петрова Анна Сергеевна» (учитель) управлять панелью?\n"
        "Кто-то подбирал код этой панели. Разрешайте, только если подключаетесь "
        "сами прямо сейчас."
    )
    assert panel.display.notice is None
    panel.service.panel_answer_pairing(True)
    panel.run()
    [paired] = panel.replies(sid)
    assert isinstance(paired, Paired)
    assert paired.role == "teacher"
    assert panel.display.question is None
    assert panel.display.notice == "Подключился: «Петрова Анна Сергеевна» (учитель)"
    assert panel.pin() != pin


def test_under_attack_refused_on_the_panel_or_unanswered_and_the_pin_changes(
    panel: Panel,
) -> None:
    put_under_attack(panel)
    pin = panel.pin()
    sid = panel.connect(B, "Ученик", "c-student")
    assert panel.pair(sid, "c-student", pin) == []
    assert panel.service.next_deadline_s() == pytest.approx(T0 + PANEL_CONFIRM_S)
    panel.service.panel_answer_pairing(False)
    panel.run()
    [refused] = panel.replies(sid)
    assert isinstance(refused, Error)
    assert refused.code == "refused"
    assert "refused on the panel" in refused.message
    assert panel.display.question is None
    assert panel.service.access.tokens.grants() == []
    # Whoever sent it knows the PIN: a new one shows.
    second = panel.pin()
    assert second != pin
    assert panel.display.pin == second
    # Unanswered: refused once PANEL_CONFIRM_S has passed, and the PIN changes.
    assert panel.pair(sid, "c-student", second) == []
    panel.clock.mono += PANEL_CONFIRM_S - 0.01
    panel.service.tick()
    panel.run()
    assert panel.replies(sid) == []
    panel.clock.mono += 0.01
    panel.service.tick()
    panel.run()
    [late] = panel.replies(sid)
    assert isinstance(late, Error)
    assert late.code == "refused"
    assert "in time" in late.message
    assert panel.display.question is None
    assert panel.pin() not in (pin, second)
    # An answer with no question asked does nothing.
    panel.service.panel_answer_pairing(True)
    assert panel.service.drain() == []


def test_under_attack_one_question_at_a_time_and_a_closed_connection_withdraws_it(
    panel: Panel,
) -> None:
    put_under_attack(panel)
    pin = panel.pin()
    first = panel.connect(A, TEACHER.name, TEACHER.controller_id)
    second = panel.connect(B, "Другой", "c-other")
    assert panel.pair(first, TEACHER.controller_id, pin) == []
    [busy] = panel.pair(second, "c-other", pin)
    assert isinstance(busy, Error)
    assert busy.code == "try_later"
    assert "waits for an answer on the panel" in busy.message
    panel.service.close_session(first)
    assert panel.display.question is None
    assert panel.pin() != pin


def test_under_attack_admins_pair_as_usual_and_vice_versa(panel: Panel) -> None:
    put_under_attack(panel, role="teacher")
    sid = panel.connect(A, "Админ", "c-admin")
    [paired] = panel.pair(sid, "c-admin", ADMIN_SECRET, "admin")
    assert isinstance(paired, Paired)
    assert panel.display.question is None
    assert panel.display.notice == "Подключился: «Админ» (администратор)"
    panel.clock.mono += GLOBAL_FAILURE_DECAY_S  # the PIN guessing is over by now
    put_under_attack(panel, source="10.9.9.8", role="admin")
    sid = panel.connect(B, TEACHER.name, TEACHER.controller_id)
    [paired] = panel.pair(sid, TEACHER.controller_id, panel.pin())
    assert isinstance(paired, Paired)
    assert panel.display.question is None
    # The admin secret, guessed, needs the panel now.
    sid = panel.connect(C, "Админ 2", "c-admin-2")
    assert panel.pair(sid, "c-admin-2", ADMIN_SECRET, "admin") == []
    assert panel.display.question is not None
    assert "(администратор)" in panel.display.question


def test_throttled_pair_start_is_answered_at_once(panel: Panel) -> None:
    sid = panel.connect(A, "X", "c-x")
    for _ in range(SOURCE_STARTS_BURST):
        _, offer = panel.start(sid, "c-x", "000000")
        assert isinstance(offer, PairOffer)
    _, refused = panel.start(sid, "c-x", "000000")
    assert isinstance(refused, Error)
    assert (refused.code, refused.re) == ("try_later", 2)
    assert "try again in 12 seconds" in refused.message


def test_notice_and_question_texts() -> None:
    assert screen_name("Иван\x1b[2J\x07 Петров\u202e") == "Иван Петров"
    long = screen_name("Я" * 500)
    assert len(long) == 80
    assert long.endswith("…")
    assert (
        paired_notice_text(ControllerPaired("Анна", "teacher"), "en")
        == "Connected: «Анна» (teacher)"
    )
    question = pairing_question_text(PairingRequested("Анна", "admin", 8.0), "en")
    assert question.startswith("Allow «Анна» (admin) to control this panel?\n")


def test_headless_display_logs_the_question_and_its_end() -> None:
    display = HeadlessDisplay(lang="en")
    display.apply(PairingRequested("Анна", "teacher", 8.0))
    assert display.question is not None
    assert display.question.startswith("Allow «Анна» (teacher)")
    display.apply(PairingQuestionClosed())
    assert display.question is None
    display.apply(ControllerPaired("Анна", "teacher"))
    assert display.notice == "Connected: «Анна» (teacher)"


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("locked", "с этого компьютера: подождите минуту"),
        ("try_later", "попробуйте снова через несколько секунд"),
        ("refused", "нажмите «Разрешить» на панели"),
    ],
)
def test_the_teacher_reads_each_refusal_in_russian(code: str, words: str) -> None:
    from controller.texts import error_text
    from protocol.errors import remote_error

    assert words in error_text(remote_error(code, "Каб. 12: in English"))


# --------------------------------------------------------------------------- real kiosks


@dataclass
class Attacker:
    """A plain client from one loopback address, pairing by hand."""

    ws: ClientConnection
    cid: str
    kiosk_id: str
    fingerprint: str

    @classmethod
    async def open(cls, kiosk: KioskThread, source: str, cid: str) -> Attacker:
        assert kiosk.app is not None
        ws = await raw_connect(kiosk.address, hello=False, source=source)
        await ws.send(hello_json(ControllerIdentity(cid, f"Attacker {cid}")))
        welcome = await recv_json(ws)
        assert welcome["type"] == "welcome", welcome
        return cls(ws, cid, welcome["kiosk_id"], kiosk.app.tls.fingerprint)

    def exchange(self, secret: str) -> ControllerPairing:
        return ControllerPairing(
            secret, controller_id=self.cid, kiosk_id=self.kiosk_id, fingerprint=self.fingerprint
        )

    async def start(self, msg_a: bytes, role: Role = "teacher") -> dict[str, Any]:
        """Send ``pair_start`` with the SPAKE2 message ``msg_a``; returns the reply."""
        spake = base64.b64encode(msg_a).decode()
        await self.ws.send(
            json.dumps({"type": "pair_start", "id": 2, "role": role, "spake": spake})
        )
        return await recv_json(self.ws)

    async def guess(self, secret: str, role: Role = "teacher") -> str:
        """One whole try; returns the reply's code (or its type)."""
        exchange = self.exchange(secret)
        offer = await self.start(exchange.start(), role)
        if offer["type"] != "pair_offer":
            return str(offer["code"])
        confirm = exchange.finish(base64.b64decode(offer["spake"]))
        await self.ws.send(
            json.dumps(
                {"type": "pair_confirm", "id": 3, "confirm": base64.b64encode(confirm).decode()}
            )
        )
        reply = await recv_json(self.ws)
        return str(reply.get("code", reply["type"]))


@pytest.fixture
async def attackers(kiosk: KioskThread) -> AsyncIterator[Callable[..., Any]]:
    opened: list[Attacker] = []

    async def open_(source: str, cid: str) -> Attacker:
        attacker = await Attacker.open(kiosk, source, cid)
        opened.append(attacker)
        return attacker

    yield open_
    for attacker in opened:
        await attacker.ws.close()


def wrong(pin: str) -> str:
    return f"{(int(pin) + 1) % 10**6:06d}"


async def wait_for(kiosk: KioskThread, what: Callable[[], object]) -> None:
    """Wait until ``what()`` (read on the kiosk's loop) is true; fail after 10 s."""
    for _ in range(1000):
        if kiosk.sync(what):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the kiosk never got there")


async def test_pair_start_flood_is_refused_while_a_paired_teacher_controls(
    kiosk: KioskThread, attackers: Callable[..., Any]
) -> None:
    """Several connections from two addresses flood ``pair_start``: the kiosk computes
    only their budgets' worth, refuses the rest at once, and the paired teacher's
    controls are answered while the flood goes on."""
    async with await teacher(kiosk) as client:
        await client.cast(text_lesson("Первый", "Второй"))
        flooders = [await attackers(f"127.0.0.{2 + i % 2}", f"c-flood-{i}") for i in range(4)]
        codes: list[dict[str, int]] = [{} for _ in flooders]
        stop = asyncio.Event()
        under_way = asyncio.Event()

        async def flood(attacker: Attacker, seen: dict[str, int]) -> None:
            msg_a = attacker.exchange("000000").start()
            while not stop.is_set():
                reply = await attacker.start(msg_a)
                key = reply.get("code", reply["type"])
                seen[key] = seen.get(key, 0) + 1
                if replies() >= 2 * SOURCE_STARTS_BURST:
                    under_way.set()
                await asyncio.sleep(0.008)  # under the per-connection message rate

        def replies() -> int:
            return sum(sum(c.values()) for c in codes)

        started = time.monotonic()
        tasks = [asyncio.create_task(flood(a, c)) for a, c in zip(flooders, codes, strict=True)]
        try:
            await under_way.wait()
            before = replies()
            for i in range(20):
                await client.control("next" if i % 2 == 0 else "prev")
                assert not any(t.done() for t in tasks)
            assert replies() > before  # the flood went on while the teacher worked
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        elapsed_s = time.monotonic() - started
    offers = sum(c.get("pair_offer", 0) for c in codes)
    refused = sum(c.get("try_later", 0) for c in codes)
    assert set().union(*codes) <= {"pair_offer", "try_later"}
    assert refused > offers
    # What was computed fits the two sources' budgets.
    per_source = SOURCE_STARTS_BURST + math.ceil(elapsed_s * SOURCE_STARTS_PER_S)
    assert offers <= 2 * per_source


async def test_teacher_with_the_right_pin_pairs_while_another_source_keeps_guessing(
    kiosk: KioskThread, attackers: Callable[..., Any]
) -> None:
    assert kiosk.app is not None
    app = kiosk.app
    pin = kiosk.pin()  # read off the panel before the guessing starts
    guesser = await attackers("127.0.0.2", "c-guesser")
    codes = [await guesser.guess(wrong(pin)) for _ in range(SOURCE_FAILURE_LIMIT)]
    assert codes == ["bad_pin"] * SOURCE_FAILURE_LIMIT
    stop = asyncio.Event()

    async def keep_guessing() -> list[str]:
        more = []
        while not stop.is_set():
            more.append(await guesser.guess(wrong(pin)))
            await asyncio.sleep(0.01)
        return more

    task = asyncio.create_task(keep_guessing())
    try:
        async with await KioskClient.connect(kiosk.address, TEACHER) as client:
            pairing = asyncio.create_task(client.pair(pin))
            # Pairing is under attack: the panel asks; the teacher taps Allow.
            await wait_for(kiosk, lambda: kiosk.display.question is not None)
            assert TEACHER.name in (kiosk.sync(lambda: kiosk.display.question) or "")
            kiosk.sync(lambda: app.panel_answer_pairing(True))
            creds = await pairing
            assert creds.role == "teacher"
            assert (await client.status()).state == "idle"
    finally:
        stop.set()
        more = await task
    assert more
    assert set(more) == {"locked"}  # the guesser's own address stays locked out
    assert [g.controller_id for g in app.tokens.grants()] == [TEACHER.controller_id]
    assert kiosk.sync(lambda: kiosk.display.notice) == (
        "Подключился: «Петрова Анна Сергеевна» (учитель)"
    )


async def test_admin_pairs_while_pins_are_being_guessed(
    kiosk: KioskThread, attackers: Callable[..., Any]
) -> None:
    assert kiosk.app is not None
    app = kiosk.app
    pin = kiosk.pin()
    for i in range(2):
        guesser = await attackers(f"127.0.0.{2 + i}", f"c-guesser-{i}")
        for _ in range(SOURCE_FAILURE_LIMIT):
            assert await guesser.guess(wrong(pin)) == "bad_pin"
        assert await guesser.guess(pin) == "locked"
    assert kiosk.sync(lambda: app.access.needs_panel("teacher", time.monotonic()))
    async with await KioskClient.connect(kiosk.address, ControllerIdentity("c-a", "Админ")) as c:
        creds = await c.pair(ADMIN_SECRET, role="admin")
    assert creds.role == "admin"
    assert kiosk.sync(lambda: kiosk.display.question) is None
    assert kiosk.sync(lambda: kiosk.display.notice) == "Подключился: «Админ» (администратор)"


async def test_a_paired_teacher_is_shown_on_the_panel(kiosk: KioskThread) -> None:
    async with await teacher(kiosk):
        pass
    assert kiosk.sync(lambda: kiosk.display.notice) == (
        "Подключился: «Петрова Анна Сергеевна» (учитель)"
    )


async def test_refused_pairings_are_logged_once_per_interval(
    kiosk: KioskThread, attackers: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    # Five pair_starts a connection, within its message budget before pairing.
    flooders = [await attackers("127.0.0.2", f"c-flood-{i}") for i in range(11)]
    msg_a = flooders[0].exchange("000000").start()
    caplog.set_level("INFO")
    replies = [await flooder.start(msg_a) for flooder in flooders for _ in range(5)]
    assert len(replies) == SOURCE_STARTS_BURST + 50
    assert sum(r["type"] == "error" for r in replies) == 50
    refusals = [r for r in caplog.records if "pairing refused" in r.getMessage()]
    assert len(refusals) == 1


# --------------------------------------------------------------------------- the window


@pytest.mark.display
def test_window_shows_who_paired_and_asks_to_allow(tmp_path: Path) -> None:
    from pyglet.window import key

    from kiosk.scenes import NOTICE_TEAL, QUESTION_PURPLE, IdleInfo
    from kiosk.window import Frame, PygletWindow

    answers: list[bool] = []
    controls: list[str] = []
    window = PygletWindow(
        BlobStore(tmp_path / "media", 10**8),
        IdleInfo("Школа", "Каб. 1"),
        mode="headless",
        size=(640, 480),
        control=controls.append,
        answer_pairing=answers.append,
    )
    frames: list[Frame] = []
    window.frame_hooks.append(lambda: frames.append(window.read_pixels()))
    try:
        window.run_pending()
        idle = frames[-1]

        def apply(effect: Any) -> Frame:
            window.apply(effect)
            window.run_pending()
            return frames[-1]

        notice = apply(ControllerPaired("Петрова Анна Сергеевна", "teacher"))
        # A box in the top right corner, clear of the middle of the top edge.
        assert window._notice is not None
        x, y, _, h = window._notice.box  # bottom left origin
        assert x > 640 // 2
        assert y + h < 480
        r, g, _ = notice.pixel(x + 3, 480 - (y + h) + 3)
        assert abs(r - NOTICE_TEAL[0]) < 20
        assert abs(g - NOTICE_TEAL[1]) < 30
        assert notice.pixel(3, 3) == idle.pixel(3, 3)
        assert notice.pixel(640 // 2, 3) == idle.pixel(640 // 2, 3)
        assert notice.pixel(3, 477) == idle.pixel(3, 477)
        assert not window._covered()  # a web page under it would not stop for it

        question = apply(PairingRequested("Петрова Анна Сергеевна", "teacher", 8.0))
        assert question.pixel(3, 240) == QUESTION_PURPLE[:3]  # the whole screen
        # Presenter keys and taps outside the buttons do nothing while it asks.
        for symbol in (key.RIGHT, key.SPACE, key.B):
            window.window.dispatch_event("on_key_press", symbol, 0)
        window.window.dispatch_event("on_mouse_press", 630, 400, 1, 0)
        window.run_pending()
        assert (answers, controls) == ([], [])
        # Tap on Allow.
        ax, ay, aw, ah = window._question.allow_box  # type: ignore[union-attr]
        window.window.dispatch_event("on_mouse_press", ax + aw // 2, ay + ah // 2, 1, 0)
        window.run_pending()
        assert answers == [True]
        assert frames[-1].pixel(3, 240) != QUESTION_PURPLE[:3]
        # Asked again: Esc refuses (and does not start the Esc-Esc stop).
        apply(PairingRequested("Ученик", "teacher", 8.0))
        window.window.dispatch_event("on_key_press", key.ESCAPE, 0)
        apply(PairingRequested("Ученик", "teacher", 8.0))
        window.window.dispatch_event("on_key_press", key.RETURN, 0)
        apply(PairingRequested("Ученик", "teacher", 8.0))
        rx, ry, *_ = window._question.refuse_box  # type: ignore[union-attr]
        window.window.dispatch_event("on_mouse_press", rx + 1, ry + 1, 1, 0)
        window.run_pending()
        assert answers == [True, False, True, False]
        assert controls == []
        closed = apply(PairingQuestionClosed())
        assert closed.pixel(3, 240) != QUESTION_PURPLE[:3]
        # The notice goes away by itself, after PAIRED_NOTICE_S.
        window._hide_notice()
        window.run_pending()
        assert frames[-1].pixel(x + 3, 480 - (y + h) + 3) == idle.pixel(x + 3, 480 - (y + h) + 3)
        assert PAIRED_NOTICE_S > 0
    finally:
        window.close()


# ----------------------------------------------------------------- message budgets


def connect_with_token(panel: Panel, token: str, cid: str, source: str = B) -> int:
    """A new connection that says hello with ``token``; returns its session id."""
    sid = panel.service.open_session(source)
    panel.service.handle(sid, Hello(1, PROTOCOL_VERSION, cid, "Админ", token=token))
    [welcome] = [
        o.message for o in panel.service.drain() if isinstance(o, Outgoing) and o.sid == sid
    ]
    assert isinstance(welcome, Welcome)
    assert welcome.role == "admin"
    return sid


def ask_status(
    panel: Panel, sid: int, count: int, answer: type[Message] = Status
) -> tuple[int, list[CloseSession]]:
    """Send up to ``count`` get_status on session ``sid``, stopping when the service closes
    it (as its adapter would); returns how many were answered (with ``answer``) and the
    closes."""
    answered, closes = 0, []
    for i in range(count):
        panel.service.handle(sid, GetStatus(100 + i))
        for out in panel.service.drain():
            if isinstance(out, CloseSession):
                closes.append(out)
            elif isinstance(out, Outgoing) and out.sid == sid:
                assert isinstance(out.message, answer)
                answered += 1
        if closes:
            break
    return answered, closes


def test_a_paired_controllers_connections_share_one_message_budget(panel: Panel) -> None:
    """Opening more connections, or reconnecting, does not let a paired controller send
    more: its connections share one budget (``MESSAGE_BURST`` at once, then
    ``MAX_MESSAGES_PER_SECOND``), which outlives them. Another controller has its own."""
    service, clock = panel.service, panel.clock
    pairing = panel.connect(A, "Админ", "c-admin")
    [paired] = panel.pair(pairing, "c-admin", ADMIN_SECRET, "admin")
    assert isinstance(paired, Paired)
    service.close_session(pairing)
    first, second, third = (connect_with_token(panel, paired.token, "c-admin") for _ in range(3))
    half = limits.MESSAGE_BURST // 2
    assert ask_status(panel, first, half) == (half, [])
    assert ask_status(panel, second, half) == (half, [])
    answered, [close] = ask_status(panel, third, 1)
    assert answered == 0
    assert close.sid == third
    assert close.code == 1008
    assert close.reason == (
        f"more than {limits.MAX_MESSAGES_PER_SECOND} messages per second from this paired "
        "controller (all its connections together)"
    )
    # Another paired controller is not held back by the first one's budget.
    other = panel.connect(C, "Другой админ", "c-other")
    [other_paired] = panel.pair(other, "c-other", ADMIN_SECRET, "admin")
    assert isinstance(other_paired, Paired)
    assert ask_status(panel, other, limits.MESSAGE_BURST) == (limits.MESSAGE_BURST, [])
    # Reconnecting does not refill the budget: only time does.
    for sid in (first, second, third):
        service.close_session(sid)
    again = connect_with_token(panel, paired.token, "c-admin")
    answered, [close] = ask_status(panel, again, 1)
    assert answered == 0
    assert close.reason.endswith("from this paired controller")  # its only connection
    service.close_session(again)
    clock.mono += 1.0
    again = connect_with_token(panel, paired.token, "c-admin")
    answered, [close] = ask_status(panel, again, limits.MESSAGE_BURST)
    assert answered == limits.MAX_MESSAGES_PER_SECOND
    # Before pairing, each connection has its own small budget, as before.
    stranger = panel.connect(A, "Ученик", "c-student")
    answered, [close] = ask_status(panel, stranger, limits.MESSAGE_BURST, Error)
    assert answered == limits.UNAUTHENTICATED_MESSAGE_BURST - 1  # its hello took one
    assert close.reason.endswith("messages per second before pairing")
