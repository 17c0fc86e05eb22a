"""``classcast demo``: the whole path on one machine, on loopback.

Starts a headless kiosk on 127.0.0.1 in a temporary folder, pairs with it as a teacher
using the PIN the panel shows, casts the bundled sample lesson (images, a PDF, a text
slide, a video and a web page), steps through it with the same control commands the
CLI sends, casts it a second time to show that nothing is sent twice, stops, and prints
the panel's usage log as the school's admin (paired with the panel's admin secret)
collects it. The panel's clock, its log and the reports all show the school's time zone
(``tz``, Europe/Moscow unless given), named in the output.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from controller.client import ControllerIdentity, KioskClient
from controller.collect import collect
from controller.discovery import ZeroconfDiscovery
from controller.i18n import number_text, size_text, t, text_table
from controller.reports import Group, format_table, usage_report
from controller.roster import Roster, RosterEntry
from controller.schooldb import DEFAULT_TZ, SchoolDb
from kiosk.app import KioskApp
from kiosk.config import KioskConfig
from media.lesson import load_lesson, sample_lesson_path
from protocol.discovery import KioskFound
from protocol.messages import ControlAction, StatusSnapshot, UsageRecord

DEMO_ROOM = "Каб. 12"
DEMO_SCHOOL = "Школа № 1"
DEMO_TEACHER = ControllerIdentity("c-demo-teacher", "Иванова Мария Петровна")
DEMO_ADMIN = ControllerIdentity("c-demo-admin", "Завуч Петров П. П.")
DEMO_ROSTER = (
    RosterEntry("0001", "Иванова Мария Петровна"),
    RosterEntry("0002", "Сидоров Иван Кузьмич"),
)
"""The school's roster in the demo: one teacher casts, the other has not used a panel."""
LOOPBACK = ("127.0.0.1",)
"""The demo advertises and browses on loopback only: it never multicasts on the network."""
STEP_S = 0.4
"""How long the demo lets each item stand before the next command."""


async def run_demo(keep: Path | None = None, tz: str = DEFAULT_TZ) -> None:
    """Run the demo, printing each step; the kiosk's files go to ``keep`` or a temp dir.

    ``tz`` (an IANA timezone name) is the panel's and the school's time zone: the log and
    the reports are printed in it.
    """
    with tempfile.TemporaryDirectory(prefix="classcast-demo-") as tmp:
        state_dir = keep if keep is not None else Path(tmp)
        config = KioskConfig(
            room=DEMO_ROOM,
            school=DEMO_SCHOOL,
            host="127.0.0.1",
            port=0,
            state_dir=state_dir,
            mode="headless",
            admin_secret=secrets.token_urlsafe(16),
            mdns=True,
            mdns_interfaces=LOOPBACK,
            timezone=tz,
        )
        app = KioskApp(config)
        started = time.monotonic()
        await app.start()
        try:
            click.echo(
                t(
                    "Starting a kiosk on {url} (state in {state_dir})",
                    url=app.url,
                    state_dir=state_dir,
                )
            )
            found = await _discover(started)
            address = found.address
            pin = app.pin()
            click.echo(t("The panel {room} shows the pairing PIN {pin}.", room=DEMO_ROOM, pin=pin))
            async with await KioskClient.connect(
                address, DEMO_TEACHER, fingerprint=found.fingerprint
            ) as kiosk:
                creds = await kiosk.pair(pin)
            click.echo(t("Paired with {room} as {role}.", room=DEMO_ROOM, role=t(creds.role)))
            async with await KioskClient.connect(address, DEMO_TEACHER, credentials=creds) as kiosk:
                await _lesson(kiosk)
            assert config.admin_secret is not None
            async with await KioskClient.connect(address, DEMO_ADMIN) as admin:
                admin_creds = await admin.pair(config.admin_secret, role="admin")
                records = await _all_records(admin)
            # The school's admin collects the panel's log into the school database.
            db = SchoolDb(state_dir / "school.sqlite", tz=tz)
            try:
                # The school's list of teachers: the demo teacher is on it by name.
                Roster(db).import_entries(DEMO_ROSTER, DEMO_ADMIN.name, datetime.now(UTC))
                collected = await collect(db, [address], DEMO_ADMIN, lambda _: admin_creds)
                _print_records(records, tz)
                _print_report(db, collected.added)
            finally:
                db.close()
        finally:
            await app.stop()
        click.echo(t("Demo finished."))


async def _discover(started: float) -> KioskFound:
    """Find the demo panel by mDNS; ``started`` is when the kiosk began to start."""
    kiosks = await ZeroconfDiscovery(list(LOOPBACK)).browse(
        10.0, stop_when=lambda ks: any(k.room == DEMO_ROOM for k in ks)
    )
    found = next(k for k in kiosks if k.room == DEMO_ROOM)
    click.echo(
        t(
            "Found the panel {room} by mDNS at {address}, {seconds} s after the kiosk started.",
            room=found.room,
            address=found.address,
            seconds=number_text(time.monotonic() - started),
        )
    )
    return found


async def _lesson(kiosk: KioskClient) -> None:
    lesson = load_lesson(sample_lesson_path())
    click.echo(
        t(
            "Casting the sample lesson «{title}» ({items} items, {size})...",
            title=lesson.title,
            items=len(lesson.items),
            size=size_text(lesson.total_bytes),
        )
    )
    result = await kiosk.cast(lesson)
    status = await kiosk.status()
    click.echo(
        t(
            "Sent {sent} of {total}; the panel shows item {index} of {count}: {title}",
            sent=size_text(result.bytes_sent),
            total=size_text(result.bytes_total),
            index=status.index + 1,
            count=status.count,
            title=status.item_title,
        )
    )
    await asyncio.sleep(STEP_S)
    for _ in range(len(lesson.items) - 1):
        await _step(kiosk, "next")
    await _step(kiosk, "prev")
    await _step(kiosk, "blank")
    await _step(kiosk, "unblank")
    await _step(kiosk, "goto", index=0)
    await _step(kiosk, "stop")
    again = await kiosk.cast(lesson)
    click.echo(
        t(
            "Casting again: sent {sent} (the panel keeps its copy).",
            sent=size_text(again.bytes_sent),
        )
    )
    await asyncio.sleep(STEP_S)
    await kiosk.control("stop")
    click.echo(t("Stopped; the panel shows its idle screen."))


async def _step(kiosk: KioskClient, action: ControlAction, *, index: int | None = None) -> None:
    await kiosk.control(action, index=index)
    s = await kiosk.status()
    click.echo(_describe(action, s))
    await asyncio.sleep(STEP_S)


def _describe(action: ControlAction, s: StatusSnapshot) -> str:
    if s.state == "idle":
        return f"→ {t(action)}"
    if s.blanked:
        return f"→ {t(action)}"
    return t(
        "→ {action}: item {index} of {count}: {kind} «{title}»",
        action=t(action),
        index=s.index + 1,
        count=s.count,
        kind=t(s.item_kind or ""),
        title=s.item_title,
    )


async def _all_records(kiosk: KioskClient) -> list[UsageRecord]:
    records: list[UsageRecord] = []
    after = 0
    while True:
        batch = await kiosk.usage_pull(after)
        records += batch.records
        after = batch.last_seq
        if not batch.more:
            return records


def _print_records(records: list[UsageRecord], tz: str) -> None:
    zone = ZoneInfo(tz)
    click.echo()
    click.echo(t("Usage log of the panel ({n} records):", n=len(records)))
    header = (
        t("#"),
        t("Start ({tz})", tz=tz),
        t("Duration, s"),
        t("Kind"),
        t("Content"),
        t("Teacher"),
        t("End"),
    )
    rows = [
        (
            str(r.seq),
            datetime.fromisoformat(r.started_at).astimezone(zone).strftime("%H:%M:%S.%f")[:-3],
            f"{r.duration_ms / 1000:.1f}",
            t(r.kind),
            _clip(r.content_title, 28),
            r.teacher_name,
            t(r.end_reason or ""),
        )
        for r in records
    ]
    click.echo(text_table([header, *rows]))


def _print_report(db: SchoolDb, added: int) -> None:
    problems = db.verify()
    click.echo()
    click.echo(
        t(
            "Collected {n} records into the school database; signatures and chain: {result}.",
            n=added,
            result=t("intact") if not problems else t("broken"),
        )
    )
    click.echo(t("Timezone: {tz}", tz=db.tz_name))
    today = datetime.now(ZoneInfo(db.tz_name)).date()
    groups: tuple[tuple[Group, str], ...] = (
        ("teacher", t("Report by teacher:")),
        ("content", t("Report by content:")),
    )
    for by, title in groups:
        click.echo()
        click.echo(title)
        rows = usage_report(
            db, start=today - timedelta(days=1), end=today + timedelta(days=1), by=by
        )
        click.echo(format_table(rows, tz=db.tz_name))


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
