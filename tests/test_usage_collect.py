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
