"""Time that does not count: a lesson under a full-screen alert, on a blanked screen, or
an item that failed to show.

A real kiosk service (its real SQLite usage log, a headless display) runs with an
injected clock; its records go through a real school database into the reports. The
covered time is logged as hidden, with its reason, and counts in no report's display
time. An old record (signed before ``hidden`` existed) still verifies; old kiosk logs
and school databases are upgraded. Over the wire, a presenting teacher cannot remove
an administrator's alert.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.reports import COMPLIANCE_QUERY, compliance, usage_query, usage_report
from controller.schooldb import SCHEMA_VERSION, SchoolDb
from kiosk.access import Access
from kiosk.headless import HeadlessDisplay
from kiosk.pairing_worker import InlinePairingWorker
from kiosk.player import Identity
from kiosk.service import KioskService
from kiosk.tokens import TokenStore
from kiosk.usage import DisplayStart, UsageLog
from media.store import BlobStore
from protocol.codec import encode
from protocol.messages import (
    Announce,
    Cast,
    ClearAnnouncement,
    Control,
    Error,
    LessonManifest,
    ManifestItem,
    Ok,
    UsageBatch,
    UsageRecord,
)
from protocol.usage_chain import GENESIS_HASH, load_public_key, record_hash, seal, verify_chain
from tests.conftest import TEACHER
from tests.helpers import hello_json, pair, raw_connect, recv_json, text_lesson
from tests.kiosks import ADMIN_SECRET, KioskThread, admin
from tests.test_hardening_pairing import ManualClock, Panel

MIN = 60.0
SOURCE = "https://lib.myschool.edu.ru/bio/7"
LESSON = LessonManifest(
    "bio-7",
    "Клетка",
    [
        ManifestItem("text", "Слайд 1", text="Клетка", duration_ms=5 * 60_000),
        ManifestItem("text", "Слайд 2", text="Ядро"),
    ],
    source_url=SOURCE,
)


@pytest.fixture
def panel(tmp_path: Path) -> Iterator[Panel]:
    """A kiosk service with an injected clock and its usage log in a file."""
    clock = ManualClock()
    display = HeadlessDisplay()
    usage = UsageLog(tmp_path / "usage.sqlite", kiosk_id="k-test", room="Каб. 1")
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
        heartbeat_s=3600.0,
        pairing_worker=InlinePairingWorker(),
    )
    service.tick()
    yield Panel(service, clock, display)
    usage.close_db()


def later(panel: Panel, seconds: float) -> None:
    """Let ``seconds`` pass on the panel's clock, ticking at every deadline on the way."""
    end = panel.clock.mono + seconds
    while (deadline := panel.service.next_deadline_s()) <= end:
        panel.clock.mono = max(panel.clock.mono, deadline)
        panel.service.tick()
        panel.run()
    panel.clock.mono = end
    panel.service.tick()
    panel.run()


def ask(panel: Panel, sid: int, msg: Cast | Control | Announce | ClearAnnouncement) -> object:
    panel.service.handle(sid, msg)
    panel.run()
    replies = [m for m in panel.replies(sid) if not hasattr(m, "status")]
    return replies[-1]  # a cast's ``ok`` follows its ``need``


def teacher_and_admin(panel: Panel) -> tuple[int, int]:
    teacher = panel.connect("10.0.0.2", "Анна Петровна", "c-anna")
    panel.pair(teacher, "c-anna", panel.pin())
    head = panel.connect("10.0.0.3", "Завуч", "c-head")
    panel.pair(head, "c-head", ADMIN_SECRET, "admin")
    return teacher, head


def school_of(panel: Panel, tmp_path: Path) -> SchoolDb:
    """The panel's records collected into a new school database."""
    usage = panel.service.usage
    records = usage.records_after(0, 1000)
    school = SchoolDb(tmp_path / "school.sqlite")
    batch = UsageBatch(1, "k-test", records, records[-1].seq, False, usage.public_key)
    result = school.ingest("k-test", batch)
    assert result.refused is None
    return school


def week_of(school: SchoolDb) -> str:
    [(week,)] = school.query("SELECT DISTINCT iso_week FROM plays", [], action="test")
    return str(week)


def logged(panel: Panel) -> list[tuple[int, str | None, str, int]]:
    return [
        (r.item_index, r.end_reason, r.hidden, r.duration_ms)
        for r in panel.service.usage.records_after(0, 1000)
    ]


FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 1, 1)


# --------------------------------------------------------------------------- alert


def test_an_alert_freezes_the_lesson_and_its_time_is_hidden_in_every_report(
    panel: Panel, tmp_path: Path
) -> None:
    teacher, head = teacher_and_admin(panel)
    assert isinstance(ask(panel, teacher, Cast(4, LESSON)), Ok)
    later(panel, 2 * MIN)
    assert isinstance(ask(panel, head, Announce(5, "Эвакуация", level="alert")), Ok)
    later(panel, 15 * MIN)  # the 5-minute slide would have ended long ago
    player = panel.service.player
    assert (player.index, player.position_ms(panel.clock.mono)) == (0, 120_000)
    assert isinstance(ask(panel, head, ClearAnnouncement(6)), Ok)
    assert panel.display.announcement is None
    later(panel, 3 * MIN)  # the slide's last 3 minutes: then the next slide
    assert panel.service.player.index == 1
    later(panel, 4 * MIN)
    ask(panel, teacher, Control(7, "stop"))
    assert logged(panel) == [
        (0, "alert", "", 120_000),
        (0, "shown", "alert", 900_000),
        (0, "auto", "", 180_000),
        (1, "stop", "", 240_000),
    ]

    school = school_of(panel, tmp_path)
    [row] = usage_report(school, by="teacher", start=FIRST_DAY, end=LAST_DAY)
    assert (row.display_ms, row.hidden_ms, row.lessons) == (540_000, 900_000, 1)
    # 9 minutes shown: under the 10 a lesson needs, though 24 passed on the panel.
    [comp] = compliance(school, week=week_of(school), min_lessons=1)
    assert (comp.display_ms, comp.hidden_ms) == (540_000, 900_000)
    assert (comp.sessions, comp.too_short, comp.lessons, comp.met) == (1, 1, 0, False)
    assert compliance(school, week=week_of(school), min_minutes=9)[0].lessons == 1
    school.close()


def test_an_alert_ends_by_itself_at_its_time(panel: Panel) -> None:
    teacher, head = teacher_and_admin(panel)
    ask(panel, teacher, Cast(4, LESSON))
    later(panel, 1 * MIN)
    ask(panel, head, Announce(5, "Учебная тревога", level="alert", duration_s=600))
    later(panel, 10 * MIN + 4 * MIN)
    assert panel.display.announcement is None
    assert panel.service.player.index == 1
    assert logged(panel)[:3] == [
        (0, "alert", "", 60_000),
        (0, "shown", "alert", 600_000),
        (0, "auto", "", 240_000),
    ]


def test_a_teacher_cannot_remove_an_administrators_alert(panel: Panel) -> None:
    teacher, head = teacher_and_admin(panel)
    ask(panel, teacher, Cast(4, LESSON))
    ask(panel, head, Announce(5, "Эвакуация", level="alert"))
    for msg in (ClearAnnouncement(6), Announce(7, "Продолжаем урок")):
        reply = ask(panel, teacher, msg)
        assert isinstance(reply, Error)
        assert reply.code == "forbidden"
    assert panel.display.announcement is not None
    assert panel.service.player.alerted
    # The teacher's own alert is the teacher's to remove.
    assert isinstance(ask(panel, head, ClearAnnouncement(8)), Ok)
    assert isinstance(ask(panel, teacher, Announce(9, "Тихо", level="alert")), Ok)
    assert isinstance(ask(panel, teacher, ClearAnnouncement(10)), Ok)
    assert not panel.service.player.alerted


async def test_a_teacher_cannot_clear_an_administrators_alert_over_the_wire(
    kiosk: KioskThread,
) -> None:
    """A plain websocket client, paired as the presenting teacher, sends the frames."""
    creds = await pair(kiosk.address, kiosk.pin(), TEACHER)
    ws = await raw_connect(kiosk.address, hello=False)
    try:
        await ws.send(hello_json(TEACHER, creds.token))
        assert (await recv_json(ws))["type"] == "welcome"
        await ws.send(encode(Cast(2, text_lesson("Слайд").manifest())))
        assert (await recv_json(ws))["type"] == "need"
        assert (await recv_json(ws))["type"] == "ok"
        async with await admin(kiosk) as head:
            await head.announce("Эвакуация", level="alert")
        for frame in (
            {"type": "clear_announcement", "id": 3},
            {"type": "announce", "id": 4, "text": "Всё спокойно", "level": "info"},
            {"type": "announce", "id": 5, "text": "Моё", "level": "alert"},
        ):
            await ws.send(json.dumps(frame))
            reply = await recv_json(ws)
            assert (reply["type"], reply["code"], reply["re"]) == (
                "error",
                "forbidden",
                frame["id"],
            )
        shown = kiosk.sync(lambda: kiosk.display.announcement)
        assert shown is not None
        assert (shown.text, shown.level) == ("Эвакуация", "alert")
        async with await admin(kiosk) as head:
            await head.clear_announcement()
        assert kiosk.sync(lambda: kiosk.display.announcement) is None
    finally:
        await ws.close()


# --------------------------------------------------------------------------- blank, failure


def test_a_blanked_screen_freezes_the_lesson_and_its_time_is_hidden(
    panel: Panel, tmp_path: Path
) -> None:
    teacher, _ = teacher_and_admin(panel)
    ask(panel, teacher, Cast(4, LESSON))
    later(panel, 1 * MIN)
    ask(panel, teacher, Control(5, "blank"))
    later(panel, 20 * MIN)
    assert panel.service.player.index == 0
    ask(panel, teacher, Control(6, "unblank"))
    later(panel, 4 * MIN)
    ask(panel, teacher, Control(7, "stop"))
    assert logged(panel) == [
        (0, "blank", "", 60_000),
        (0, "shown", "blank", 1_200_000),
        (0, "auto", "", 240_000),
        (1, "stop", "", 0),
    ]
    school = school_of(panel, tmp_path)
    [row] = usage_report(school, by="content", start=FIRST_DAY, end=LAST_DAY)[:1]
    assert (row.label, row.display_ms, row.hidden_ms) == ("Слайд 1", 300_000, 1_200_000)
    [comp] = compliance(school, week=week_of(school))
    assert (comp.display_ms, comp.hidden_ms, comp.too_short) == (300_000, 1_200_000, 1)
    school.close()


def test_the_failure_card_of_a_page_is_hidden_time(panel: Panel, tmp_path: Path) -> None:
    lesson = LessonManifest(
        "web-1",
        "Сайты",
        [ManifestItem("web", "Страница", url=SOURCE), ManifestItem("text", "Итоги", text="…")],
    )
    teacher, _ = teacher_and_admin(panel)
    ask(panel, teacher, Cast(4, lesson))
    later(panel, 5.0)
    panel.service.player.item_failed(0, "unreachable", now=panel.clock.mono)
    later(panel, 11 * MIN)
    ask(panel, teacher, Control(5, "next"))
    later(panel, 2 * MIN)
    ask(panel, teacher, Control(6, "stop"))
    assert logged(panel) == [
        (0, "failed", "", 0),
        (0, "next", "failed", 665_000),  # the card, from the page's start
        (1, "stop", "", 120_000),
    ]
    school = school_of(panel, tmp_path)
    [comp] = compliance(school, week=week_of(school), require_source=False)
    assert (comp.display_ms, comp.hidden_ms, comp.too_short) == (120_000, 665_000, 1)
    # Long enough, but the page with the library source never showed: no source.
    [comp] = compliance(school, week=week_of(school), min_minutes=1)
    assert (comp.lessons, comp.without_source) == (0, 1)
    school.close()


# --------------------------------------------------------------------------- records


def old_canonical_hash(record: UsageRecord) -> str:
    """``record_hash`` as kiosks computed it before ``hidden`` existed."""
    fields = {
        f.name: getattr(record, f.name)
        for f in dataclasses.fields(UsageRecord)
        if f.name not in ("record_hash", "signature", "hidden", "school_id")
    }
    text = json.dumps(dict(sorted(fields.items())), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def a_record(**changes: object) -> UsageRecord:
    base = UsageRecord(
        uuid="u-1",
        seq=1,
        kiosk_id="k-1",
        room="Каб. 1",
        lesson_id="bio-7",
        lesson_title="Клетка",
        item_index=0,
        kind="text",
        content_hash=None,
        content_title="Слайд",
        content_source=SOURCE,
        teacher_id="c-anna",
        teacher_name="Анна Петровна",
        started_at="2026-11-23T05:00:00.000Z",
        ended_at="2026-11-23T05:10:00.000Z",
        duration_ms=600_000,
        end_reason="next",
        prev_hash=GENESIS_HASH,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_record_signed_before_hidden_existed_still_verifies() -> None:
    key = Ed25519PrivateKey.generate()
    record = a_record()
    digest = old_canonical_hash(record)
    signed = dataclasses.replace(
        record,
        record_hash=digest,
        signature=base64.b64encode(key.sign(bytes.fromhex(digest))).decode(),
    )
    assert record_hash(signed) == digest
    public = load_public_key(base64.b64encode(key.public_key().public_bytes_raw()).decode())
    assert verify_chain([signed], public) == []


def test_hidden_is_signed() -> None:
    key = Ed25519PrivateKey.generate()
    assert record_hash(a_record(hidden="alert")) != record_hash(a_record())
    assert record_hash(a_record(hidden="alert")) != record_hash(a_record(hidden="blank"))
    sealed = seal(a_record(hidden="alert"), GENESIS_HASH, key)
    public = load_public_key(base64.b64encode(key.public_key().public_bytes_raw()).decode())
    assert verify_chain([sealed], public) == []
    shown = dataclasses.replace(sealed, hidden="")  # passing hidden time off as shown
    assert [p.kind for p in verify_chain([shown], public)] == ["edited"]


START = DisplayStart("bio-7", "Клетка", 0, "text", None, "Слайд", SOURCE, "c-anna", "Анна")


def test_a_kiosk_log_of_schema_2_is_upgraded_and_keeps_its_chain(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite"
    key = Ed25519PrivateKey.generate()
    log = UsageLog(path, kiosk_id="k-1", room="Каб. 1", signing_key=key)
    log.close(
        log.open(START, wall_s=1.7e9, mono_s=1.0), wall_s=1.7e9 + 9, mono_s=10.0, reason="next"
    )
    log.close_db()
    conn = sqlite3.connect(path)  # the file as version 2 wrote it
    conn.execute("ALTER TABLE plays DROP COLUMN hidden")
    conn.execute("ALTER TABLE plays DROP COLUMN school_id")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()

    log = UsageLog(path, kiosk_id="k-1", room="Каб. 1", signing_key=key)
    hidden = dataclasses.replace(START, hidden="blank")
    log.close(
        log.open(hidden, wall_s=1.7e9 + 9, mono_s=10.0),
        wall_s=1.7e9 + 20,
        mono_s=21.0,
        reason="shown",
    )
    records = log.records_after(0, 10)
    log.close_db()
    assert [(r.seq, r.hidden, r.duration_ms) for r in records] == [
        (1, "", 9000),
        (2, "blank", 11000),
    ]
    assert verify_chain(records, load_public_key(log.public_key)) == []
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone() == (4,)


def test_a_hidden_reason_the_log_does_not_know_is_refused() -> None:
    log = UsageLog(None, kiosk_id="k-1", room="Каб. 1")
    bogus = dataclasses.replace(START, hidden="asleep")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown hidden reason 'asleep'"):
        log.open(bogus, wall_s=1.7e9, mono_s=1.0)
    assert log.open_count() == 0


# --------------------------------------------------------------------------- school database


def downgrade_to_4(conn: sqlite3.Connection) -> None:
    """Make a school database file look as schema version 4 left it (no ``hidden``)."""
    conn.execute("DROP INDEX plays_report")
    conn.execute("ALTER TABLE plays DROP COLUMN school_id")
    conn.execute("ALTER TABLE plays DROP COLUMN hidden")
    conn.execute(
        "CREATE INDEX plays_report ON plays (day, kiosk_id, teacher_id, lesson_id, start_ms, "
        "duration_ms, room, teacher_name, content_hash, content_title, content_source, "
        "iso_week, library)"
    )
    conn.execute("PRAGMA user_version = 4")


def test_a_school_database_of_schema_4_is_upgraded(panel: Panel, tmp_path: Path) -> None:
    teacher, _ = teacher_and_admin(panel)
    ask(panel, teacher, Cast(4, LESSON))
    later(panel, 12 * MIN)
    ask(panel, teacher, Control(5, "blank"))
    later(panel, 1 * MIN)
    ask(panel, teacher, Control(6, "stop"))
    records = panel.service.usage.records_after(0, 100)
    old, new = records[:2], records[2:]  # collected before the upgrade, and after
    assert [r.hidden for r in old] == ["", ""]
    path = tmp_path / "school.sqlite"
    school = SchoolDb(path)
    key = panel.service.usage.public_key
    school.ingest("k-test", UsageBatch(1, "k-test", old, old[-1].seq, False, key))
    school.close()
    conn = sqlite3.connect(path)
    downgrade_to_4(conn)
    conn.commit()
    conn.close()

    school = SchoolDb(path)
    assert school.db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    result = school.ingest("k-test", UsageBatch(2, "k-test", new, new[-1].seq, False, key))
    assert (result.refused, result.added) == (None, 1)
    [row] = usage_report(school, by="room", start=FIRST_DAY, end=LAST_DAY)
    assert (row.display_ms, row.hidden_ms) == (12 * 60_000, 60_000)
    params = {"first_day": "2000-01-01", "last_day": "2100-01-01"}
    for sql in (usage_query("content"), COMPLIANCE_QUERY):
        plan = " | ".join(str(r[3]) for r in school.db.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert "USING COVERING INDEX plays_report" in plan, plan
    school.close()
