"""Usage collection from three real kiosks on loopback, through the real CLI."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from controller.cli import cli
from controller.schooldb import SchoolDb
from protocol.discovery import KioskFound
from tests.helpers import text_lesson
from tests.kiosks import ADMIN_SECRET, KioskThread, teacher

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _only_saved_panels(monkeypatch: pytest.MonkeyPatch) -> None:
    """These kiosks do not advertise (mdns = false): collect the saved panels only, and
    never panels that other programs on this machine advertise on loopback."""
    monkeypatch.setattr("controller.cli.Ctx.discover_all", lambda self, wait_s=1.5: [])


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def pair_admin(k: KioskThread) -> None:
    assert run("panels", "add", k.address).exit_code == 0
    result = run("pair", k.address, "--admin", input=ADMIN_SECRET + "\n")
    assert result.exit_code == 0, result.output


def show(k: KioskThread, *texts: str) -> None:
    async def go() -> None:
        async with await teacher(k) as client:
            await client.cast(text_lesson(*texts))
            for _ in texts[1:]:
                await client.control("next")
            await client.control("stop")

    asyncio.run(go())


def test_collect_from_three_kiosks_with_one_offline_then_back(tmp_path: Path) -> None:
    db_path = tmp_path / "school.sqlite"
    with (
        KioskThread(tmp_path / "a", room="Каб. 1") as a,
        KioskThread(tmp_path / "b", room="Каб. 2") as b,
    ):
        c = KioskThread(tmp_path / "c", room="Каб. 3").__enter__()
        for k in (a, b, c):
            pair_admin(k)
        show(a, "1", "2", "3")
        show(b, "1", "2")
        show(c, "1")

        first = run("usage", "collect", "--db", str(db_path))
        assert first.exit_code == 0, first.output
        assert "Каб. 1: новых записей — 3" in first.output
        assert "Каб. 2: новых записей — 2" in first.output
        assert "Каб. 3: новых записей — 1" in first.output

        again = run("usage", "collect", "--db", str(db_path))
        assert again.exit_code == 0
        assert "новых записей — 0" in again.output

        # Panel C goes offline; A shows more. Collection reports C and still gets A.
        c_state, c_port = c.config.state_dir, c.port
        c.__exit__(None, None, None)
        show(a, "4")
        partial = CliRunner().invoke(
            cli, ["--timeout", "2", "usage", "collect", "--db", str(db_path)]
        )
        assert partial.exit_code == 1
        assert "Каб. 1: новых записей — 1" in partial.output
        assert "Не выполнено на 1 из 3 панелей" in partial.output

        # C comes back on the same port with its log; nothing is lost or doubled.
        with KioskThread(c_state, room="Каб. 3", port=c_port) as c2:
            show(c2, "5", "6")
            back = run("usage", "collect", "--db", str(db_path))
            assert back.exit_code == 0, back.output
            assert "Каб. 3: новых записей — 2" in back.output

    db = SchoolDb(db_path)
    try:
        assert db.record_count() == 3 + 2 + 1 + 1 + 2
        assert db.verify() == []
    finally:
        db.close()
    verified = run("usage", "verify", "--db", str(db_path))
    assert verified.exit_code == 0
    assert "Все записи проверены (9)" in verified.output

    report = run(
        "usage",
        "report",
        "--db",
        str(db_path),
        "--by",
        "room",
        "--format",
        "json",
        "--from",
        "2000-01-01",
        "--to",
        "2100-01-01",
    )
    assert report.exit_code == 0, report.output
    rows = {r["label"]: r for r in json.loads(report.output)}
    assert set(rows) == {"Каб. 1", "Каб. 2", "Каб. 3"}
    assert rows["Каб. 1"]["items"] == 3  # text slides are told apart by title

    html_path = tmp_path / "report.html"
    made = run(
        "usage",
        "report",
        "--db",
        str(db_path),
        "--format",
        "html",
        "-o",
        str(html_path),
        "--from",
        "2000-01-01",
        "--to",
        "2100-01-01",
    )
    assert made.exit_code == 0
    assert "<svg" in html_path.read_text(encoding="utf-8")

    # Someone edits the school database: verify names the record.
    conn = sqlite3.connect(db_path)
    conn.execute(
        "UPDATE plays SET teacher_name = 'Кто-то другой' WHERE seq = 2 AND room = 'Каб. 1'"
    )
    conn.commit()
    conn.close()
    tampered = CliRunner().invoke(cli, ["usage", "verify", "--db", str(db_path)])
    assert tampered.exit_code == 1
    assert "запись №2" in tampered.output
    assert "запись изменена" in tampered.output
    assert "Восстановите её из резервной копии" in tampered.output


def test_collect_without_admin_pairing_names_the_panel(tmp_path: Path) -> None:
    with KioskThread(tmp_path / "a", room="Каб. 9") as a:
        assert run("panels", "add", a.address).exit_code == 0
        result = CliRunner().invoke(cli, ["usage", "collect", "--db", str(tmp_path / "s.db")])
    assert result.exit_code == 1
    assert "Каб. 9" in result.output
    assert "не сопряжён" in result.output


def test_a_file_that_is_not_a_school_database_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_bytes(b"this is not sqlite" * 100)
    result = CliRunner().invoke(cli, ["usage", "verify", "--db", str(bad)])
    assert result.exit_code == 1
    assert "notes.txt" in result.output


def advertised(k: KioskThread) -> KioskFound:
    """What mDNS would say of ``k`` (these kiosks do not advertise)."""
    assert k.app is not None
    return KioskFound(
        name=f"{k.config.room}._classcast._tcp.local.",
        kiosk_id=k.app.identity.kiosk_id,
        room=k.config.room,
        school=k.config.school,
        host="127.0.0.1",
        port=k.port,
        fingerprint="ab" * 32,
        state="idle",
        proto=1,
    )


def test_collect_names_the_panels_to_collect(tmp_path: Path) -> None:
    db_path = tmp_path / "school.sqlite"
    with (
        KioskThread(tmp_path / "a", room="Каб. 1") as a,
        KioskThread(tmp_path / "b", room="Каб. 2") as b,
    ):
        for k in (a, b):
            pair_admin(k)
        show(a, "1", "2")
        show(b, "1")

        one = run("usage", "collect", "Каб. 2", "--db", str(db_path))
        assert one.exit_code == 0, one.output
        assert "Каб. 2: новых записей — 1" in one.output
        assert "Каб. 1" not in one.output

        by_address = run("usage", "collect", a.address, "Каб. 1", "--db", str(db_path))
        assert by_address.exit_code == 0, by_address.output
        assert by_address.output.count("Каб. 1: новых записей — 2") == 1  # once, not twice
        assert "Каб. 2" not in by_address.output

        unknown = CliRunner().invoke(cli, ["usage", "collect", "Каб. 99", "--db", str(db_path)])
        assert unknown.exit_code == 1
        assert "Каб. 99" in unknown.output

    db = SchoolDb(db_path)
    try:
        assert db.record_count() == 3
    finally:
        db.close()


def test_a_panel_only_seen_on_the_network_is_a_warning_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path = tmp_path / "school.sqlite"
    with (
        KioskThread(tmp_path / "a", room="Каб. 1") as a,
        KioskThread(tmp_path / "v", room="Каб. 7") as visible,
    ):
        pair_admin(a)
        show(a, "1")
        show(visible, "1")
        monkeypatch.setattr(
            "controller.cli.Ctx.discover_all", lambda self, wait_s=1.5: [advertised(visible)]
        )

        result = CliRunner().invoke(cli, ["usage", "collect", "--db", str(db_path)])
        assert result.exit_code == 0, result.output
        assert "Каб. 1: новых записей — 1" in result.output
        assert f"Каб. 7 ({visible.address}): панель видна в сети" in result.output
        assert f"classcast pair {visible.address} --admin" in result.output

        as_json = CliRunner().invoke(cli, ["usage", "collect", "--json", "--db", str(db_path)])
        assert as_json.exit_code == 0, as_json.output
        summary = json.loads(as_json.stdout)
        assert [p["room"] for p in summary["panels"]] == ["Каб. 1"]
        assert summary["not_paired"] == [
            {"address": visible.address, "room": "Каб. 7", "kiosk_id": advertised(visible).kiosk_id}
        ]

        # Named, the same panel is a failure: the admin asked for it.
        named = CliRunner().invoke(cli, ["usage", "collect", visible.address, "--db", str(db_path)])
        assert named.exit_code == 1
        assert "не сопряжён" in named.output

        # A paired panel that fails still fails the run, beside the warning.
    offline = CliRunner().invoke(cli, ["--timeout", "2", "usage", "collect", "--db", str(db_path)])
    assert offline.exit_code == 1
    assert "Не выполнено на 1 из 1 панелей" in offline.output
