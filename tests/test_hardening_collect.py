"""Usage data against a lying teacher and a misbehaving panel.

- A ``cast`` cannot move a lesson's usage records by an offset the kiosk did not measure
  or beyond ``MAX_CLOCK_OFFSET_MS`` (codec, :mod:`protocol.clock`, a real kiosk).
- The school database stores what it can trust of a batch: the records before a broken
  link, and a signed record with unusable values quarantined so the chain goes on.
- Collection ends when a batch brings nothing new, stops at ``max_pulls``, and reports
  every problem by panel and record number, in Russian, without a traceback.

Panels that misbehave are :class:`FakeKiosk`: a plain websockets server on 127.0.0.1
that answers ``hello`` and ``usage_pull`` however the test wants.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.typing import Subprotocol

from controller.cli import cli
from controller.client import ControllerIdentity, KioskClient
from controller.collect import collect
from controller.reports import compliance, usage_report
from controller.schooldb import (
    DERIVED_COLUMNS,
    MAX_RECORD_DURATION_MS,
    RECORD_COLUMNS,
    SCHEMA_VERSION,
    SchoolDb,
)
from kiosk.tls import ensure_identity
from protocol import limits
from protocol.clock import CLOCK_SAMPLES_KEPT, ClockSample, check_clock_offset
from protocol.codec import decode, encode
from protocol.constants import PROTOCOL_VERSION, SUBPROTOCOL
from protocol.errors import MalformedMessageError, UnexpectedMessageError
from protocol.messages import (
    Cast,
    Error,
    Hello,
    Need,
    Ok,
    StatusSnapshot,
    TimePing,
    TimePong,
    UsageBatch,
    UsagePull,
    UsageRecord,
    Welcome,
)
from protocol.usage_chain import GENESIS_HASH, seal
from tests.helpers import RAW, pair, raw_connect, recv_json, text_lesson
from tests.kiosks import KioskThread, admin
from tests.test_schooldb import Panel, downgrade_to_3, stored_seqs

HOUR_MS = limits.MAX_CLOCK_OFFSET_MS
ADMIN = ControllerIdentity("c-collector", "Сборщик")


# --------------------------------------------------------------------------- the offset bound


def cast_frame(offset_ms: int) -> str:
    frame = json.loads(encode(Cast(id=2, lesson=text_lesson("Один").manifest())))
    frame["clock_offset_ms"] = offset_ms
    return json.dumps(frame, ensure_ascii=False)


@pytest.mark.parametrize("offset_ms", [0, HOUR_MS, -HOUR_MS, 1234])
def test_the_codec_accepts_a_clock_offset_within_the_bound(offset_ms: int) -> None:
    msg = decode(cast_frame(offset_ms))
    assert isinstance(msg, Cast)
    assert msg.clock_offset_ms == offset_ms


@pytest.mark.parametrize("offset_ms", [HOUR_MS + 1, -HOUR_MS - 1, -86_400_000, 2**62])
def test_the_codec_rejects_a_clock_offset_beyond_the_bound(offset_ms: int) -> None:
    with pytest.raises(MalformedMessageError, match="clock_offset_ms"):
        decode(cast_frame(offset_ms))


def test_a_kiosk_vouches_only_for_the_offset_it_measured() -> None:
    tolerance = limits.CLOCK_OFFSET_TOLERANCE_MS
    # Pings saw the kiosk 5 s ahead, plus 40 ms and 10 ms of one-way delay.
    samples = [ClockSample(1_000, 6_040), ClockSample(2_000, 7_010)]
    assert check_clock_offset(5_000, samples) == 5_010  # the honest claim
    assert check_clock_offset(0, samples) == 5_010  # 0: keep the kiosk's own time
    assert check_clock_offset(0, []) is None
    assert check_clock_offset(5_040 + tolerance, samples) == 5_040  # nearest sample
    assert check_clock_offset(5_010 - tolerance, samples) == 5_010
    for claimed in (5_040 + tolerance + 1, 5_010 - tolerance - 1, -HOUR_MS):
        with pytest.raises(UnexpectedMessageError, match="measured 50") as info:
            check_clock_offset(claimed, samples)
        assert info.value.code == "clock_offset"
    with pytest.raises(UnexpectedMessageError, match="without a time_ping"):
        check_clock_offset(5_000, [])
    far = [ClockSample(0, HOUR_MS + 10)]
    with pytest.raises(UnexpectedMessageError, match="beyond"):
        check_clock_offset(HOUR_MS + 10, far)


async def test_a_real_kiosk_refuses_a_cast_with_an_offset_it_did_not_measure(
    kiosk: KioskThread,
) -> None:
    creds = await pair(kiosk.address, kiosk.pin(), RAW)
    ws = await raw_connect(kiosk.address, token=creds.token)
    try:
        # −1 day, as in the attack that made one lesson three: the codec refuses it.
        await ws.send(cast_frame(-86_400_000))
        reply = await recv_json(ws)
        assert (reply["type"], reply["code"]) == ("error", "malformed")
        assert "clock_offset_ms" in reply["message"]

        # −30 min with no time_ping on this connection.
        await ws.send(cast_frame(-1_800_000))
        reply = await recv_json(ws)
        assert (reply["type"], reply["code"]) == ("error", "clock_offset")
        assert "time_ping" in reply["message"]

        # −30 min after a time_ping that found the clocks equal.
        sent_ms = round(time.time() * 1000)
        await ws.send(json.dumps({"type": "time_ping", "id": 3, "controller_ms": sent_ms}))
        pong = await recv_json(ws)
        assert pong["type"] == "time_pong"
        await ws.send(cast_frame(-1_800_000))
        reply = await recv_json(ws)
        assert (reply["type"], reply["code"]) == ("error", "clock_offset")
        assert "does not match" in reply["message"]
        await ws.send(json.dumps({"type": "get_status", "id": 4}))
        assert (await recv_json(ws))["status"]["state"] == "idle"  # nothing was shown

        # The offset the kiosk measured itself is accepted and logged with the lesson.
        measured = pong["kiosk_ms"] - sent_ms
        await ws.send(cast_frame(measured))
        assert (await recv_json(ws))["type"] == "need"
        assert (await recv_json(ws))["type"] == "ok"
        await ws.send(json.dumps({"type": "control", "id": 5, "action": "stop"}))
        assert (await recv_json(ws))["type"] == "ok"
    finally:
        await ws.close()
    async with await admin(kiosk) as client:
        batch = await client.usage_pull(0)
    assert [r.clock_offset_ms for r in batch.records] == [measured]


@pytest.mark.parametrize(
    ("honest_pings", "accepted"), [(CLOCK_SAMPLES_KEPT - 1, True), (CLOCK_SAMPLES_KEPT, False)]
)
async def test_a_kiosk_keeps_the_last_time_pings_of_a_connection(
    kiosk: KioskThread, honest_pings: int, accepted: bool
) -> None:
    creds = await pair(kiosk.address, kiosk.pin(), RAW)
    ws = await raw_connect(kiosk.address, token=creds.token)
    try:
        # One ping claiming to be sent 30 min ago, then honest ones.
        pings = [round(time.time() * 1000) - 1_800_000]
        pings += [round(time.time() * 1000)] * honest_pings
        for i, controller_ms in enumerate(pings):
            ping = {"type": "time_ping", "id": 10 + i, "controller_ms": controller_ms}
            await ws.send(json.dumps(ping))
            assert (await recv_json(ws))["type"] == "time_pong"
        await ws.send(cast_frame(1_800_000))
        reply = await recv_json(ws)
    finally:
        await ws.close()
    assert reply["type"] == ("need" if accepted else "error")


# --------------------------------------------------------------------------- the school database


@pytest.fixture
def db() -> Any:
    school = SchoolDb(None)
    yield school
    school.close()


def bad_panel(bad: dict[str, Any], *, at: int = 3, count: int = 5) -> Panel:
    """``count`` sealed records, number ``at`` with the fields ``bad``, signed all the same."""
    panel = Panel()
    panel.many(count)
    records = panel.records
    for i in range(at - 1, count):
        record = records[i]
        if i == at - 1:
            record = dataclasses.replace(record, **bad)
        prev = records[i - 1].record_hash if i else GENESIS_HASH
        records[i] = seal(record, prev, panel.key)
    return panel


BAD_VALUES = [
    ({"clock_offset_ms": 2**62}, "clock_offset_ms", "out_of_range"),
    ({"clock_offset_ms": -2 * 86_400_000}, "clock_offset_ms", "out_of_range"),
    ({"clock_offset_ms": HOUR_MS + 1}, "clock_offset_ms", "out_of_range"),
    ({"duration_ms": -1}, "duration_ms", "negative"),
    ({"duration_ms": MAX_RECORD_DURATION_MS + 1}, "duration_ms", "out_of_range"),
    ({"started_at": "вчера"}, "started_at", "not_a_time"),
    ({"started_at": "9999-12-31T23:59:59.000Z"}, "started_at", "out_of_range"),
    ({"ended_at": "0001-01-01T00:00:00.000Z"}, "ended_at", "out_of_range"),
]


@pytest.mark.parametrize(("bad", "field", "reason"), BAD_VALUES)
def test_a_signed_record_with_unusable_values_is_quarantined_and_the_chain_goes_on(
    db: SchoolDb, bad: dict[str, Any], field: str, reason: str
) -> None:
    panel = bad_panel(bad)
    result = db.ingest(panel.kiosk_id, panel.batch())
    assert (result.added, result.last_seq, result.refused) == (5, 5, None)
    assert [(q.seq, q.field, q.reason) for q in result.quarantined] == [(3, field, reason)]
    row = db.db.execute("SELECT day, start_ms, invalid FROM plays WHERE seq = 3").fetchone()
    assert row[:2] == ("", 0)
    assert row[2].startswith(f"{field} = ")
    assert db.verify() == []
    # Nothing is stuck: the next collection goes on after #5.
    panel.many(1, start="2026-11-24 08:00")
    assert db.ingest(panel.kiosk_id, panel.batch(after_seq=5)).added == 1
    assert db.verify() == []


@pytest.mark.parametrize(
    "good",
    [
        {"clock_offset_ms": HOUR_MS},
        {"clock_offset_ms": -HOUR_MS},
        {"duration_ms": 0},
        {"duration_ms": MAX_RECORD_DURATION_MS},
        {"ended_at": None},
    ],
)
def test_values_at_the_bounds_are_counted(db: SchoolDb, good: dict[str, Any]) -> None:
    panel = bad_panel(good)
    result = db.ingest(panel.kiosk_id, panel.batch())
    assert (result.added, result.quarantined) == (5, ())
    assert db.db.execute("SELECT count(*) FROM plays WHERE invalid IS NULL").fetchone() == (5,)


def test_quarantined_records_are_left_out_of_reports(db: SchoolDb) -> None:
    # Three 10-minute lessons on Monday 2026-11-23, one moved to Sunday by a day: the
    # teacher must not get a lesson on another day out of it.
    panel = Panel()
    panel.play("2026-11-23 06:00", 10)
    panel.play("2026-11-23 07:00", 10, offset_ms=86_400_000, lesson=("L-2", "Снова"))
    panel.play("2026-11-23 08:00", 10, offset_ms=-HOUR_MS, lesson=("L-3", "Ещё"))
    result = db.ingest(panel.kiosk_id, panel.batch())
    assert [q.seq for q in result.quarantined] == [2]
    rows = usage_report(db, start=date(2000, 1, 1), end=date(2100, 1, 1), by="day")
    assert [(r.label, r.lessons) for r in rows] == [("2026-11-23", 2)]
    (teacher,) = compliance(db, week="2026-W48", min_lessons=1)
    assert teacher.lessons == 2


def test_a_forged_record_keeps_the_records_before_it(db: SchoolDb) -> None:
    panel = Panel()
    panel.many(5)
    # Someone re-seals #4 (longer) and #5 after it with a key of their own.
    attacker = Ed25519PrivateKey.generate()
    forged4 = seal(
        dataclasses.replace(panel.records[3], duration_ms=3_600_000),
        panel.records[2].record_hash,
        attacker,
    )
    forged5 = seal(panel.records[4], forged4.record_hash, attacker)
    records = [*panel.records[:3], forged4, forged5]
    result = db.ingest(panel.kiosk_id, panel.batch(records=records))
    assert result.refused is not None
    assert (result.refused.seq, result.refused.kind) == (4, "bad_signature")
    assert (result.added, result.not_stored) == (3, 2)
    assert stored_seqs(db, panel.kiosk_id) == [1, 2, 3]
    assert db.verify() == []


def test_verify_notices_a_record_hidden_by_marking_it_invalid(db: SchoolDb) -> None:
    panel = Panel()
    panel.many(3)
    db.ingest(panel.kiosk_id, panel.batch())
    db.db.execute("UPDATE plays SET day = '', invalid = 'hidden' WHERE seq = 2")
    assert [(p.seq, p.kind) for p in db.verify()] == [(2, "edited")]


def test_a_schema_1_file_is_upgraded_and_its_out_of_bound_offsets_quarantined(
    tmp_path: Path,
) -> None:
    path = tmp_path / "school.sqlite"
    panel = Panel()
    panel.play("2026-11-23 08:00", 10)
    panel.play("2026-11-23 09:00", 10, offset_ms=-2 * 86_400_000)  # stored by version 1
    school = SchoolDb(path)
    school.ingest(panel.kiosk_id, panel.batch(limit=1))
    # What version 1 stored for record 2: its days moved by the offset.
    old = dataclasses.replace(panel.records[1], clock_offset_ms=0)
    derived = school.derive(old)[:5]
    moved = ("2026-11-25T09:00:00.000Z", derived[1] + 2 * 86_400_000)
    # ``hidden`` and ``school_id`` are added by versions 5 and 7.
    signed = tuple(c for c in RECORD_COLUMNS if c not in ("hidden", "school_id"))
    columns = signed + DERIVED_COLUMNS[:5]
    values = (*[getattr(panel.records[1], c) for c in signed], *moved, *derived[2:])
    school.close()
    conn = sqlite3.connect(path)
    downgrade_to_3(conn)
    conn.execute("ALTER TABLE plays DROP COLUMN invalid")
    conn.execute(
        f"INSERT INTO plays ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        values,
    )
    conn.execute("UPDATE kiosks SET last_seq = 2, last_hash = ?", [panel.records[1].record_hash])
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()

    school = SchoolDb(path)
    try:
        assert school.db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        rows = school.db.execute("SELECT seq, day, invalid IS NOT NULL FROM plays ORDER BY seq")
        assert list(rows) == [(1, "2026-11-23", 0), (2, "", 1)]
        assert school.verify() == []
    finally:
        school.close()


# --------------------------------------------------------------------------- a fake kiosk


Answer = Callable[[UsagePull], UsageBatch]


def idle_status(kiosk_id: str, room: str) -> StatusSnapshot:
    return StatusSnapshot(
        kiosk_id=kiosk_id,
        room=room,
        school="Школа № 1",
        state="idle",
        blanked=False,
        lesson_id=None,
        lesson_title=None,
        index=0,
        count=0,
        item_kind=None,
        item_title=None,
        position_ms=0,
        presenter=None,
        version="0",
    )


class FakeKiosk:
    """A plain TLS websockets server on 127.0.0.1:0 in its own thread and event loop.

    Answers ``hello`` with ``welcome`` (role admin, whatever the token), each
    ``usage_pull`` with ``answer(pull)`` (recorded in ``pulls``), ``time_ping`` with its
    clock ``skew_ms`` ahead, and ``cast`` with an empty ``need`` and ``ok`` (recorded in
    ``casts``).
    """

    def __init__(
        self, tmp: Path, answer: Answer, *, kiosk_id: str, room: str, skew_ms: int = 0
    ) -> None:
        self.answer = answer
        self.kiosk_id, self.room, self.skew_ms = kiosk_id, room, skew_ms
        self.tls = ensure_identity(tmp / "fake-tls", kiosk_id)
        self.pulls: list[UsagePull] = []
        self.casts: list[Cast] = []
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: Server | None = None

    def __enter__(self) -> FakeKiosk:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        server = self._server
        if server is not None:
            server.close()
            asyncio.run_coroutine_threadsafe(server.wait_closed(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()

    async def _serve(self) -> Server:
        return await serve(
            self._handle,
            "127.0.0.1",
            0,
            ssl=self.tls.server_context(),
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            max_size=limits.MAX_FRAME_BYTES,
        )

    @property
    def address(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _handle(self, ws: ServerConnection) -> None:
        async for frame in ws:
            msg = decode(frame)
            match msg:
                case Hello():
                    reply: Welcome | UsageBatch | TimePong | Ok | Error = Welcome(
                        re=msg.id,
                        protocol_version=PROTOCOL_VERSION,
                        kiosk_id=self.kiosk_id,
                        room=self.room,
                        school="Школа № 1",
                        status=idle_status(self.kiosk_id, self.room),
                        role="admin",
                    )
                case UsagePull():
                    self.pulls.append(msg)
                    reply = dataclasses.replace(self.answer(msg), re=msg.id)
                case TimePing():
                    kiosk_ms = round(time.time() * 1000) + self.skew_ms
                    reply = TimePong(re=msg.id, controller_ms=msg.controller_ms, kiosk_ms=kiosk_ms)
                case Cast():
                    self.casts.append(msg)
                    await ws.send(encode(Need(re=msg.id)))
                    reply = Ok(re=msg.id)
                case _:
                    reply = Error(re=None, code="unexpected", message=msg.TYPE)
            await ws.send(encode(reply))


def serves(panel: Panel) -> Answer:
    """A well-behaved kiosk's answer: the records after ``after_seq``, ``limit`` at most."""

    def answer(pull: UsagePull) -> UsageBatch:
        after = [r for r in panel.records if r.seq > pull.after_seq]
        chosen = after[: pull.limit]
        return dataclasses.replace(
            panel.batch(records=chosen) if chosen else panel.batch(after_seq=pull.after_seq),
            more=len(after) > len(chosen),
        )

    return answer


def fake(tmp_path: Path, panel: Panel, answer: Answer | None = None, room: str = "Каб. 7") -> Any:
    return FakeKiosk(tmp_path, answer or serves(panel), kiosk_id=panel.kiosk_id, room=room)


@pytest.mark.parametrize(
    ("skew_ms", "sent"), [(-1_800_000, "measured"), (3 * HOUR_MS, 0), (-2 * 86_400_000, 0)]
)
async def test_a_teacher_still_casts_to_a_panel_whose_clock_is_far_off(
    tmp_path: Path, skew_ms: int, sent: int | str
) -> None:
    """The controller sends the offset it measured, or 0 beyond the bound (never one the
    codec refuses); a synchronised start still uses the measured offset."""
    with FakeKiosk(
        tmp_path, serves(Panel()), kiosk_id="k-far", room="Каб. 8", skew_ms=skew_ms
    ) as k:
        async with await KioskClient.connect(k.address, ADMIN) as client:
            await client.cast(text_lesson("Один"), start_at_ms=1_000_000)
    (cast,) = k.casts
    decode(encode(cast))  # within what any kiosk accepts
    assert cast.start_at_ms is not None
    measured = cast.start_at_ms - 1_000_000
    assert abs(measured - skew_ms) < 1_000
    assert cast.clock_offset_ms == (measured if sent == "measured" else sent)


# --------------------------------------------------------------------------- collection


async def test_collection_ends_when_a_batch_brings_nothing_new(tmp_path: Path) -> None:
    panel = Panel()
    panel.many(3)

    def says_more_forever(pull: UsagePull) -> UsageBatch:
        # Every stored record again, always "more"; gives up after 50 pulls, so that a
        # collector without the rule still ends (with 50 pulls, failing the test).
        return dataclasses.replace(panel.batch(), more=len(kiosk.pulls) < 50)

    db = SchoolDb(None)
    with fake(tmp_path, panel, says_more_forever) as kiosk:
        result = await collect(db, [kiosk.address], ADMIN, lambda _: None)
    (collected,) = result.panels
    assert len(kiosk.pulls) == 2
    assert (collected.added, collected.last_seq) == (3, 3)
    assert [(p.kind, p.seq) for p in collected.problems] == [("no_progress", 3)]
    assert collected.room == "Каб. 7"
    assert result.failed == [collected]
    db.close()


@pytest.mark.parametrize(("max_pulls", "problems"), [(4, []), (3, [("pull_limit", 6)])])
async def test_collection_stops_at_the_pull_limit_and_says_where(
    tmp_path: Path, max_pulls: int, problems: list[tuple[str, int]]
) -> None:
    panel = Panel()
    panel.many(8)  # 4 batches of 2
    db = SchoolDb(None)
    with fake(tmp_path, panel) as kiosk:
        result = await collect(
            db, [kiosk.address], ADMIN, lambda _: None, batch_size=2, max_pulls=max_pulls
        )
        (collected,) = result.panels
        assert [(p.kind, p.seq) for p in collected.problems] == problems
        assert len(kiosk.pulls) == collected.pulls == max_pulls
        assert collected.added == 2 * max_pulls
        again = await collect(db, [kiosk.address], ADMIN, lambda _: None, batch_size=2)
    assert (again.panels[0].added, again.panels[0].problems) == (8 - 2 * max_pulls, [])
    assert db.record_count() == 8
    assert db.verify() == []
    db.close()


def run_cli(*args: str) -> Result:
    """The real CLI; exceptions are caught as a user would see them (exit code, output)."""
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def no_mdns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Collect only the saved panels: no other panel on this test's network."""
    monkeypatch.setattr("controller.cli.Ctx.discover_all", lambda self, wait_s=1.5: [])


@pytest.mark.usefixtures("no_mdns")
def test_collect_stores_a_bad_record_quarantined_and_says_so_in_russian(tmp_path: Path) -> None:
    db_path = str(tmp_path / "school.sqlite")
    panel = bad_panel({"clock_offset_ms": 2**62})
    with fake(tmp_path, panel) as kiosk:
        assert run_cli("panels", "add", kiosk.address).exit_code == 0
        first = run_cli("usage", "collect", "--db", db_path)
        assert first.exception is None or isinstance(first.exception, SystemExit)
        assert "Traceback" not in first.output
        assert first.exit_code == 1
        assert "Каб. 7: новых записей — 5" in first.output
        assert (
            f"Каб. 7: запись №3 сохранена, но не входит в отчёты: "
            f"clock_offset_ms = {2**62} — вне допустимых пределов."
        ) in first.output
        assert "Неполадки с записями на 1 из 1 панелей" in first.output

        # The chain went on after the quarantined record: the next run is clean.
        panel.many(2, start="2026-11-24 08:00")
        second = run_cli("usage", "collect", "--db", db_path)
        assert second.exit_code == 0, second.output
        assert "Каб. 7: новых записей — 2" in second.output
        # The collection itself gathered the names typed on the panel's records.
        school = SchoolDb(db_path)
        typed = school.db.execute("SELECT DISTINCT teacher_id, teacher_name FROM plays")
        gathered = school.db.execute("SELECT device_id, name FROM device_names")
        assert set(gathered.fetchall()) == set(typed.fetchall()) != set()
        school.close()

        panel.records[6] = seal(
            dataclasses.replace(panel.records[6], duration_ms=-5),
            panel.records[5].record_hash,
            panel.key,
        )
        panel.many(1, start="2026-11-25 08:00")  # #8, linked to the new #7
        panel.records[7] = seal(panel.records[7], panel.records[6].record_hash, panel.key)
        school = SchoolDb(db_path)
        school.db.execute("DELETE FROM plays WHERE seq >= 6")
        school.db.execute(
            "UPDATE kiosks SET last_seq = 5, last_hash = ?", [panel.records[4].record_hash]
        )
        school.db.conn.commit()
        school.close()
        as_json = run_cli("usage", "collect", "--db", db_path, "--json")
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    (entry,) = report["panels"]
    assert (entry["room"], entry["added"], entry["quarantined"], entry["ok"]) == (
        "Каб. 7",
        3,
        1,
        False,
    )
    (problem,) = entry["problems"]
    assert {k: problem[k] for k in ("kind", "seq", "field", "value", "reason")} == {
        "kind": "invalid",
        "seq": 7,
        "field": "duration_ms",
        "value": "-5",
        "reason": "negative",
    }
    assert problem["message"] == (
        "запись №7 сохранена, но не входит в отчёты: duration_ms = -5 — отрицательное значение."
    )


@pytest.mark.usefixtures("no_mdns")
def test_collect_names_a_refused_record_and_stops_there_each_time(tmp_path: Path) -> None:
    db_path = str(tmp_path / "school.sqlite")
    panel = Panel()
    panel.many(5)
    edited = [*panel.records]
    edited[2] = dataclasses.replace(edited[2], teacher_name="Кто-то другой")
    tampered = Panel(panel.kiosk_id)
    tampered.key, tampered.records = panel.key, edited
    with fake(tmp_path, tampered) as kiosk:
        assert run_cli("panels", "add", kiosk.address).exit_code == 0
        for _ in range(2):
            result = run_cli("usage", "collect", "--db", db_path)
            assert result.exit_code == 1
            assert "Traceback" not in result.output
            assert (
                "Каб. 7: запись №3 не сохранена: её содержимое не совпадает с подписанным "
                "панелью (запись изменена). Не сохранено записей — 3"
            ) in result.output
    school = SchoolDb(db_path)
    try:
        assert stored_seqs(school, panel.kiosk_id) == [1, 2]
    finally:
        school.close()


def test_an_edited_record_no_longer_withholds_the_good_ones(db: SchoolDb) -> None:
    """Before: one bad record refused the whole batch; now its good prefix is stored."""
    panel = Panel()
    panel.many(4)
    records: list[UsageRecord] = [*panel.records]
    records[3] = dataclasses.replace(records[3], duration_ms=10**9)
    result = db.ingest(panel.kiosk_id, panel.batch(records=records))
    assert (result.added, result.not_stored) == (3, 1)
    assert db.after_seq(panel.kiosk_id) == 3


@pytest.mark.usefixtures("no_mdns")
def test_collect_explains_a_changed_key_in_russian(tmp_path: Path) -> None:
    db_path = str(tmp_path / "school.sqlite")
    panel = Panel()
    panel.many(2)
    impostor = Panel(panel.kiosk_id)
    impostor.many(3)
    with fake(tmp_path, panel) as kiosk:
        assert run_cli("panels", "add", kiosk.address).exit_code == 0
        assert run_cli("usage", "collect", "--db", db_path).exit_code == 0
        kiosk.answer = serves(impostor)
        result = run_cli("usage", "collect", "--db", db_path)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "Каб. 7: ошибка: панель подписывает журнал другим ключом" in result.output


def test_the_teacher_reads_a_refused_clock_offset_in_russian() -> None:
    from controller.texts import error_text
    from protocol.errors import remote_error

    text = error_text(remote_error("clock_offset", "Каб. 12: clock_offset_ms 5 does not match"))
    assert "Повторите" in text or "повторите" in text


@pytest.mark.usefixtures("no_mdns")
def test_an_admin_decides_on_a_refused_record_and_collection_goes_on(tmp_path: Path) -> None:
    db_path = str(tmp_path / "school.sqlite")
    panel = Panel()
    panel.many(5)
    edited = [*panel.records]
    edited[2] = dataclasses.replace(edited[2], teacher_name="Кто-то другой")
    tampered = Panel(panel.kiosk_id)
    tampered.key, tampered.records = panel.key, edited
    with fake(tmp_path, tampered) as kiosk:
        assert run_cli("panels", "add", kiosk.address).exit_code == 0
        first = run_cli("usage", "collect", "--db", db_path)
        assert first.exit_code == 1
        assert "пока администратор не решит" in first.output

        listed = run_cli("usage", "problems", "--db", db_path)
        assert listed.exit_code == 0, listed.output
        assert f"Каб. 7 ({panel.kiosk_id}): запись №3: её содержимое не совпадает" in listed.output
        assert "classcast usage accept ПАНЕЛЬ НОМЕР" in listed.output

        wrong = run_cli("usage", "accept", "Каб. 7", "4", "--db", db_path)
        assert wrong.exit_code == 1
        assert "нет записи №4" in wrong.output
        unknown = run_cli("usage", "accept", "Каб. 99", "3", "--db", db_path)
        assert unknown.exit_code == 1
        assert "нет панели Каб. 99" in unknown.output

        decided = run_cli("--teacher", "Завуч", "usage", "accept", "Каб. 7", "3", "--db", db_path)
        assert decided.exit_code == 0, decided.output
        assert "Каб. 7: запись №3 принята; сбор продолжится после неё." in decided.output
        assert "Нерешённых неполадок нет" in run_cli("usage", "problems", "--db", db_path).output

        again = run_cli("usage", "collect", "--db", db_path)
        assert again.exit_code == 0, again.output
        assert "Каб. 7: новых записей — 2" in again.output

    verified = run_cli("usage", "verify", "--db", db_path)
    assert verified.exit_code == 0, verified.output
    assert "Каб. 7: запись №3 принята (Завуч (" in verified.output
    assert "Все записи проверены (5)" in verified.output
    school = SchoolDb(db_path)
    try:
        assert stored_seqs(school, panel.kiosk_id) == [1, 2, 3, 4, 5]
    finally:
        school.close()


@pytest.mark.usefixtures("no_mdns")
def test_an_admin_forgets_a_reinstalled_panels_key_and_collection_goes_on(
    tmp_path: Path,
) -> None:
    db_path = str(tmp_path / "school.sqlite")
    panel = Panel()
    panel.many(2)
    with fake(tmp_path, panel) as kiosk:
        assert run_cli("panels", "add", kiosk.address).exit_code == 0
        assert run_cli("usage", "collect", "--db", db_path).exit_code == 0
        panel.key = Ed25519PrivateKey.generate()  # reinstalled: a new key, the log kept
        panel.many(3, start="2026-11-24 08:00")
        kiosk.answer = serves(panel)
        refused = run_cli("usage", "collect", "--db", db_path)
        assert refused.exit_code == 1
        assert "classcast usage forget-key ПАНЕЛЬ" in refused.output

        forgot = run_cli("--teacher", "Завуч", "usage", "forget-key", "Каб. 7", "--db", db_path)
        assert forgot.exit_code == 0, forgot.output
        assert "Каб. 7: старый ключ подписи забыт (записи до №2" in forgot.output

        again = run_cli("usage", "collect", "--db", db_path)
        assert again.exit_code == 0, again.output
        assert "Каб. 7: новых записей — 3" in again.output

    verified = run_cli("usage", "verify", "--db", db_path)
    assert verified.exit_code == 0, verified.output
    assert "Каб. 7: ключ подписи забыт (Завуч (" in verified.output
    assert "Все записи проверены (5)" in verified.output
