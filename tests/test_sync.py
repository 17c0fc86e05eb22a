"""Broadcast precision: a start and a group control take effect at one instant.

Kiosk services run on injected clocks, each panel with its own monotonic clock and a
wall clock seconds off the controller's; the controller measures the offsets with
``time_ping`` as ``KioskClient`` does and sends one instant, converted to each panel's
clock. The check is made on the player clocks: every panel applies the control at the
same true instant, however late its tick comes; a panel that gets the instant late
says by how much; the panel keeps its picture during the lead. Then the same through
``Group`` over real kiosks on 127.0.0.1 whose wall clocks are skewed.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from controller.client import CLOCK_OFFSET_FRESH_S, KioskClient
from controller.group import SYNC_MAX_LEAD_MS, SYNC_MIN_LEAD_MS, Group
from controller.texts import error_text, late_text
from kiosk.access import Access
from kiosk.effects import DisplayEffect
from kiosk.headless import HeadlessDisplay
from kiosk.pairing_worker import InlinePairingWorker
from kiosk.player import Identity, Show
from kiosk.service import KioskService
from kiosk.tokens import TokenStore
from kiosk.usage import UsageLog
from media.store import BlobStore
from protocol import limits
from protocol.errors import remote_error
from protocol.messages import (
    Cast,
    Control,
    Error,
    LessonManifest,
    ManifestItem,
    Message,
    Need,
    Ok,
    TimePing,
    TimePong,
)
from tests.conftest import TEACHER
from tests.helpers import pair, text_lesson
from tests.kiosks import KioskThread
from tests.test_hardening_pairing import ManualClock, Panel

EPOCH_S = 1.7e9
"""The controller's wall clock at true time 0."""

TEXTS = LessonManifest(
    "sync-1",
    "Синхронно",
    [ManifestItem("text", f"Слайд {n}", text=f"Текст {n}") for n in range(3)],
)
OTHER = LessonManifest(
    "sync-2", "Другой", [ManifestItem("text", f"Другой {n}", text=f"{n}") for n in range(2)]
)


@dataclasses.dataclass
class TrueTime:
    """The one real time every clock of a test derives from."""

    t: float = 0.0


class SkewedClock(ManualClock):
    """A panel's clocks: its own monotonic origin, and a wall clock ``wall_offset_s``
    ahead of the controller's."""

    def __init__(self, true: TrueTime, mono_base_s: float, wall_offset_s: float) -> None:
        super().__init__()
        self.true = true
        self.mono_base_s = mono_base_s
        self.wall_offset_s = wall_offset_s

    def monotonic(self) -> float:
        return self.true.t + self.mono_base_s

    def time(self) -> float:
        return EPOCH_S + self.true.t + self.wall_offset_s


def make_panel(root: Path, true: TrueTime, mono_base_s: float, wall_offset_s: float) -> Panel:
    clock = SkewedClock(true, mono_base_s, wall_offset_s)
    display = HeadlessDisplay()
    service = KioskService(
        Identity(f"k-{root.name}", root.name, "Школа", "0"),
        store=BlobStore(root / "media", 10**8),
        usage=UsageLog(None, kiosk_id=f"k-{root.name}", room=root.name),
        display=display,
        access=Access(
            TokenStore(root / "tokens.json"),
            kiosk_id="k-test",
            fingerprint="ab" * 32,
            admin_secret=None,
            now=clock.monotonic(),
        ),
        clock=clock,
        heartbeat_s=3600.0,
        pairing_worker=InlinePairingWorker(),
    )
    service.tick()
    panel = Panel(service, clock, display)
    sid = panel.connect("10.0.0.2", TEACHER.name, TEACHER.controller_id)
    panel.pair(sid, TEACHER.controller_id, panel.pin())
    return panel


SKEWS = [(100.0, -2.0), (5_000.0, 1.2), (7.0, 0.35)]
"""(monotonic origin, wall clock offset) of each panel, in seconds."""


@pytest.fixture
def class_of_panels(tmp_path: Path) -> Iterator[tuple[TrueTime, list[Panel]]]:
    true = TrueTime()
    panels = [
        make_panel(tmp_path / f"p{n}", true, mono, wall) for n, (mono, wall) in enumerate(SKEWS)
    ]
    yield true, panels
    for panel in panels:
        panel.service.usage.close_db()  # type: ignore[attr-defined]


SID = 1
"""Each panel's one connection (the teacher's)."""


def controller_ms(true: TrueTime) -> int:
    return round((EPOCH_S + true.t) * 1000)


def ask(panel: Panel, msg: Message) -> Message:
    panel.service.handle(SID, msg)
    panel.run()
    return [m for m in panel.replies(SID) if not hasattr(m, "status")][-1]


def measure_offset(panel: Panel, true: TrueTime) -> int:
    """``time_ping`` as KioskClient does (no network delay here: the offset is exact)."""
    sent = controller_ms(true)
    pong = ask(panel, TimePing(id=10, controller_ms=sent))
    assert isinstance(pong, TimePong)
    return pong.kiosk_ms - sent


def tick_at(panel: Panel, true: TrueTime, t: float) -> None:
    true.t = t
    panel.service.tick()
    panel.run()


def cast_now(panel: Panel, lesson: LessonManifest = TEXTS) -> None:
    assert isinstance(ask(panel, Cast(id=20, lesson=lesson)), Ok)


# --------------------------------------------------------------------------- one instant


def test_a_group_control_is_applied_at_one_instant_on_every_player_clock(
    class_of_panels: tuple[TrueTime, list[Panel]],
) -> None:
    true, panels = class_of_panels
    for panel in panels:
        cast_now(panel)
    offsets = [measure_offset(panel, true) for panel in panels]
    assert offsets == [-2000, 1200, 350]
    instant_ms = controller_ms(true) + 300
    for n, (panel, offset) in enumerate(zip(panels, offsets, strict=True)):
        true.t = 0.010 * n  # the controller reaches the panels one after another
        reply = ask(panel, Control(id=30, action="next", at_ms=instant_ms + offset))
        assert reply == Ok(30, late_ms=None)
    # During the lead every panel keeps its slide and has the next one prepared.
    for panel in panels:
        assert panel.display.index == 0
        assert panel.display.preloaded[-1] == 1
        assert panel.service.player.index == 0
    # Ticks come late, and each panel's at another moment.
    for n, panel in enumerate(panels):
        tick_at(panel, true, 0.300 + 0.005 + 0.040 * n)
        assert panel.service.player.index == 1
        assert panel.display.index == 1
    # On every player clock, item 2 started at the instant: 100 ms later, it has run 100 ms.
    true.t = 0.400
    assert [p.service.player.position_ms(p.clock.monotonic()) for p in panels] == [100] * 3
    # The usage records say so too: corrected by the offset, item 1 ended at one instant.
    ends = set()
    for panel in panels:
        [first] = panel.service.usage.records_after(0, 10)
        assert (first.item_index, first.end_reason) == (0, "next")
        assert first.ended_at is not None
        wall_ms = datetime.fromisoformat(first.ended_at).timestamp() * 1000
        ends.add(round(wall_ms - panel.clock.wall_offset_s * 1000))  # type: ignore[attr-defined]
    assert ends == {instant_ms}


def test_a_synchronised_start_keeps_the_previous_picture_until_the_instant(
    class_of_panels: tuple[TrueTime, list[Panel]],
) -> None:
    """During the lead the panel shows what it showed (never the idle screen and its
    PIN), its display interval included; the new lesson starts at the instant."""
    true, panels = class_of_panels
    panel = panels[1]
    cast_now(panel, OTHER)
    assert isinstance(ask(panel, Control(id=21, action="next")), Ok)
    offset = measure_offset(panel, true)
    shown_before = list(panel.display.shown)
    start_ms = controller_ms(true) + 250
    reply = ask(panel, Cast(id=22, lesson=TEXTS, start_at_ms=start_ms + offset))
    assert reply == Ok(22, late_ms=None)
    assert panel.service.player.state == "loading"
    assert panel.display.current == OTHER.items[1]  # not the idle screen
    assert panel.display.shown == shown_before
    assert panel.display.preloaded[-1] == 0  # the first item, prepared ahead
    tick_at(panel, true, 0.249)
    assert panel.display.current == OTHER.items[1]
    tick_at(panel, true, 0.262)  # a late tick: the start is still the instant's
    assert panel.display.current == TEXTS.items[0]
    assert panel.service.player.position_ms(panel.clock.monotonic()) == 12
    records = panel.service.usage.records_after(0, 10)
    assert [(r.lesson_id, r.item_index, r.end_reason) for r in records] == [
        ("sync-2", 0, "next"),
        ("sync-2", 1, "replaced"),
    ]
    assert records[1].duration_ms == 250  # shown until the instant


# --------------------------------------------------------------------------- late, too far


@pytest.mark.parametrize("late_ms", [1, 250, 5_000])
def test_a_late_control_is_applied_at_once_and_reported(
    class_of_panels: tuple[TrueTime, list[Panel]], late_ms: int
) -> None:
    _, panels = class_of_panels
    panel = panels[0]
    cast_now(panel)
    kiosk_ms = round(panel.clock.time() * 1000)
    reply = ask(panel, Control(id=31, action="next", at_ms=kiosk_ms - late_ms))
    assert reply == Ok(31, late_ms=late_ms)
    assert panel.display.index == 1  # applied at once


def test_a_late_start_starts_at_once_and_is_reported(
    class_of_panels: tuple[TrueTime, list[Panel]],
) -> None:
    _, panels = class_of_panels
    panel = panels[2]
    kiosk_ms = round(panel.clock.time() * 1000)
    assert ask(panel, Cast(id=32, lesson=TEXTS, start_at_ms=kiosk_ms - 40)) == Ok(32, late_ms=40)
    assert panel.service.player.state == "playing"
    assert panel.display.index == 0


@pytest.mark.parametrize("beyond_ms", [0, 1])
def test_an_instant_may_be_the_limit_ahead_and_no_further(
    class_of_panels: tuple[TrueTime, list[Panel]], beyond_ms: int
) -> None:
    _, panels = class_of_panels
    panel = panels[1]
    cast_now(panel)
    at_ms = round(panel.clock.time() * 1000) + limits.MAX_INSTANT_AHEAD_MS + beyond_ms
    control = ask(panel, Control(id=33, action="next", at_ms=at_ms))
    start = ask(panel, Cast(id=34, lesson=OTHER, start_at_ms=at_ms))
    if beyond_ms:
        for reply, re in ((control, 33), (start, 34)):
            assert isinstance(reply, Error)
            assert (reply.re, reply.code) == (re, "bad_instant")
        assert panel.service.player.state == "playing"  # nothing changed, nothing scheduled
        assert panel.service.player.lesson == TEXTS
        assert panel.service.player.next_deadline_s() is None
    else:
        assert control == Ok(33)
        assert start == Ok(34)  # replaces the lesson (and drops its waiting control)
        assert panel.service.player.state == "loading"
        assert panel.service.player.next_deadline_s() == panel.clock.monotonic() + 10.0


def test_a_cast_too_far_ahead_is_refused_before_its_media_is_sent(
    class_of_panels: tuple[TrueTime, list[Panel]],
) -> None:
    _, panels = class_of_panels
    panel = panels[0]
    image = ManifestItem("image", "x", sha256="a" * 64, size_bytes=9)
    panel.service.handle(
        SID,
        Cast(
            id=35,
            lesson=LessonManifest("v", "V", [image]),
            start_at_ms=round(panel.clock.time() * 1000) + limits.MAX_INSTANT_AHEAD_MS + 1,
        ),
    )
    panel.run()
    replies = panel.replies(SID)
    assert not any(isinstance(m, Need) for m in replies)
    assert [m.code for m in replies if isinstance(m, Error)] == ["bad_instant"]


# --------------------------------------------------------------------------- Group, for real


class ShowLog(HeadlessDisplay):
    """A headless display that also keeps every ``Show``, with its instant."""

    def __init__(self) -> None:
        super().__init__()
        self.shows: list[Show] = []

    def apply(self, effect: DisplayEffect) -> None:
        if isinstance(effect, Show):
            self.shows.append(effect)
        super().apply(effect)


class OffsetWallClock:
    """The real monotonic clock, and a wall clock ``offset_s`` ahead (as libfaketime)."""

    def __init__(self, offset_s: float) -> None:
        self.offset_s = offset_s

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time() + self.offset_s


async def test_group_start_and_next_share_one_instant_across_skewed_clocks(
    tmp_path: Path,
) -> None:
    """Three real kiosks, wall clocks −2 s, +1.2 s and +0.35 s off: ``Group.cast`` and
    ``Group.control`` give each the same instant on the one monotonic clock they share,
    within the error of the offsets measured (half a round trip each)."""
    kiosks = [KioskThread(tmp_path / f"k{n}", room=f"Каб. {n}") for n in range(3)]
    for k in kiosks:
        k.display = ShowLog()
    with kiosks[0] as a, kiosks[1] as b, kiosks[2] as c:
        for kiosk, (_, offset_s) in zip((a, b, c), SKEWS, strict=True):
            assert kiosk.app is not None
            kiosk.app.service.clock = OffsetWallClock(offset_s)
        creds = {k.address: await pair(k.address, k.pin(), TEACHER) for k in (a, b, c)}
        group = await Group.connect(list(creds), TEACHER, credentials=creds.get)
        try:

            def spread_error_s() -> float:
                """The most two kiosks' instants may differ by: half of each one's round
                trip when its offset was measured, plus ms rounding."""
                rtts = sorted(cl.round_trip_ms or 0.0 for cl in group.clients.values())
                return (rtts[-1] + rtts[-2]) / 2000 + 0.003

            cast = await group.cast(text_lesson("Один", "Два", "Три"))
            assert all(o.ok for o in cast), cast
            late = [{o.target for o in cast if o.value and o.value.late_ms is not None}]
            bounds = [spread_error_s()]
            acks = await group.control("next")
            assert all(o.ok for o in acks), acks
            late.append({o.target for o in acks if o.value is not None})
            bounds.append(spread_error_s())
            for index in (0, 1):  # the start, then the next
                instants = [
                    next((s.at_s for s in k.display.shows if s.index == index and s.at_s), None)  # type: ignore[attr-defined]
                    for k in (a, b, c)
                ]
                # A kiosk that got the instant too late (a loaded machine) said so.
                for k, at in zip((a, b, c), instants, strict=True):
                    assert at is not None or k.address in late[index]
                on_time = [at for at in instants if at is not None]
                assert len(on_time) >= 2
                assert max(on_time) - min(on_time) <= bounds[index]
            moved = await group.each(lambda cl: cl.wait_for_status(lambda s: s.index == 1))
            assert all(o.ok for o in moved), moved
        finally:
            await group.close()


async def test_group_lead_covers_its_round_trips_within_bounds(tmp_path: Path) -> None:
    with KioskThread(tmp_path / "a") as a, KioskThread(tmp_path / "b") as b:
        creds = {k.address: await pair(k.address, k.pin(), TEACHER) for k in (a, b)}
        group = await Group.connect(list(creds), TEACHER, credentials=creds.get)
        try:
            assert await group.lead_ms(0) >= SYNC_MIN_LEAD_MS
            assert await group.lead_ms(10**6) == SYNC_MAX_LEAD_MS
            lead = await group.lead_ms(400)
            assert 400 <= lead <= SYNC_MAX_LEAD_MS
            assert all(cl.clock_offset_ms is not None for cl in group.clients.values())
        finally:
            await group.close()


def test_the_teacher_reads_a_late_panel_and_a_refused_instant_in_russian(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLASSCAST_LANG", "ru")
    assert late_text("Каб. 12", 250) == (
        "Каб. 12: команда пришла на 250 мс позже общего момента, поэтому эта панель "
        "переключилась с опозданием. Если это повторяется, проверьте её сеть."
    )
    refused = error_text(remote_error("bad_instant", "the instant is 20000 ms ahead"), "Каб. 12")
    assert refused.startswith("Панель Каб. 12 не приняла общий момент переключения")


async def test_a_measured_clock_offset_is_reused_while_fresh(tmp_path: Path) -> None:
    with KioskThread(tmp_path / "a") as kiosk:
        creds = await pair(kiosk.address, kiosk.pin(), TEACHER)
        async with await KioskClient.connect(kiosk.address, TEACHER, credentials=creds) as client:
            assert client.clock_offset_ms is None
            pings = kiosk_pings(kiosk)
            offset = await client.clock_offset()  # never measured: measured now
            assert kiosk_pings(kiosk) == pings + 3
            assert await client.clock_offset() == offset  # fresh: no ping
            assert kiosk_pings(kiosk) == pings + 3
            client._offset_at_s -= CLOCK_OFFSET_FRESH_S + 0.001  # as if a minute passed
            await client.clock_offset()
            assert kiosk_pings(kiosk) == pings + 6


def kiosk_pings(kiosk: KioskThread) -> int:
    """``time_ping`` requests the kiosk answered on its connections (it keeps 8 each)."""
    assert kiosk.app is not None
    service = kiosk.app.service
    return int(kiosk.sync(lambda: sum(len(s.clock_samples) for s in service._sessions.values())))
