"""Web items that fail, through the real command line to a real kiosk process.

The kiosk runs headless (its window renders offscreen) with ``web_allow`` set; a lesson
of three items is cast with ``classcast cast``: a page outside the allowlist, a page on
the panel's own address, and a text slide. The panel shows the card of each failure,
``classcast cast`` (for the page shown first) and ``classcast status`` say in Russian
that the page could not be opened and why, and the usage log records both pages as
``failed`` with no display time, and the time each card was shown as hidden ``failed``.
A page that opens is cast without a word more.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from controller.cli import cli
from controller.client import KioskClient
from kiosk.scenes import ERROR_BACKGROUND
from protocol.errors import RemoteError
from tests.conftest import TEACHER
from tests.kiosks import ADMIN_SECRET, kiosk_process

pytestmark = pytest.mark.slow

CONFIG = 'web_allow = ["lib.myschool.edu.ru", "127.0.0.1"]\n'

LESSON = """title = "Опыты"

[[items]]
url = "http://evil.example/game"
title = "Игра"

[[items]]
url = "http://127.0.0.1:9/"
title = "Своя страница"

[[items]]
text = "Итоги"
title = "Итоги"
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def corner(png: bytes) -> tuple[int, int, int]:
    pixel = Image.open(io.BytesIO(png)).convert("RGB").getpixel((3, 3))
    assert isinstance(pixel, tuple)
    return (int(pixel[0]), int(pixel[1]), int(pixel[2]))


def status_until(text: str) -> str:
    """``classcast status`` until its output holds ``text`` (the kiosk's push is async)."""
    output = ""
    for _ in range(100):
        output = run("status").output
        if text in output:
            return output
    raise AssertionError(output)


async def test_failed_pages_are_shown_told_and_logged_without_display_time(
    tmp_path: Path,
) -> None:
    lesson = tmp_path / "lesson.toml"
    lesson.write_text(LESSON, encoding="utf-8")
    with kiosk_process(tmp_path / "state", config=CONFIG) as (_, address):
        paired = await asyncio.to_thread(run, "pair", address, "--admin", "--pin", ADMIN_SECRET)
        assert paired.exit_code == 0, paired.output
        async with await KioskClient.connect(address, TEACHER) as admin:
            await admin.pair(ADMIN_SECRET, role="admin")
            try:
                await admin.screenshot(max_width=320)
            except RemoteError as exc:
                pytest.skip(f"this machine renders without a window: {exc}")

            cast = await asyncio.to_thread(run, "cast", str(lesson), "--to", address)
            assert cast.exit_code == 1, cast.output  # the teacher is told at once
            assert "Каб. 7: Страница не открылась: сайта нет в списке" in cast.stderr
            shown = await asyncio.to_thread(
                status_until, "Страница не открылась: сайта нет в списке"
            )
            assert (
                "Страница не открылась: сайта нет в списке разрешённых сайтов панели: "
                "попросите администратора школы добавить его." in shown
            )
            assert corner(await admin.screenshot(max_width=320)) == ERROR_BACKGROUND[:3]
            status = json.loads((await asyncio.to_thread(run, "status", "--json")).output)
            assert status[0]["status"]["item_failure"] == "not_allowed"

            assert (await asyncio.to_thread(run, "next")).exit_code == 0
            shown = await asyncio.to_thread(
                status_until, "Страница не открылась: это адрес самой панели."
            )
            assert corner(await admin.screenshot(max_width=320)) == ERROR_BACKGROUND[:3]

            assert (await asyncio.to_thread(run, "next")).exit_code == 0
            await asyncio.sleep(0.3)
            assert (await asyncio.to_thread(run, "stop")).exit_code == 0
            records = (await admin.usage_pull(0)).records
    assert [(r.item_index, r.end_reason, r.hidden) for r in records] == [
        (0, "failed", ""),
        (0, "next", "failed"),
        (1, "failed", ""),
        (1, "next", "failed"),
        (2, "stop", ""),
    ]
    failed_0, card_0, failed_1, card_1, last = records
    assert failed_0.duration_ms == 0
    assert failed_0.ended_at == failed_0.started_at
    assert failed_1.duration_ms == 0
    # The time each failure card was on the panel is logged, as hidden ("failed").
    assert card_0.started_at == failed_0.started_at
    assert card_0.duration_ms > 0
    assert card_1.duration_ms > 0
    assert last.duration_ms > 0


def closed_port() -> int:
    """A port of 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_cast_waits_for_the_panels_verdict_on_the_page_shown_first(
    tmp_path: Path,
) -> None:
    page = tmp_path / "Опыт.html"
    page.write_text("<!doctype html><title>Опыт</title><h1>Опыт</h1>", encoding="utf-8")
    with kiosk_process(tmp_path / "state", config=CONFIG) as (_, address):
        paired = await asyncio.to_thread(run, "pair", address, "--admin", "--pin", ADMIN_SECRET)
        assert paired.exit_code == 0, paired.output
        async with await KioskClient.connect(address, TEACHER) as admin:
            await admin.pair(ADMIN_SECRET, role="admin")
            try:
                await admin.screenshot(max_width=320)
            except RemoteError as exc:
                pytest.skip(f"this machine renders without a window: {exc}")

            # A link to a local port nobody listens on: the cast fails, and says why.
            url = f"http://127.0.0.1:{closed_port()}/"
            failed = await asyncio.to_thread(run, "cast", url, "--to", address)
            assert failed.exit_code == 1, failed.output
            lines = [line for line in failed.stderr.splitlines() if line.strip()]
            assert lines == ["Каб. 7: Страница не открылась: это адрес самой панели."]
            assert failed.stdout.startswith("Урок «127.0.0.1»: элементов — 1,"), failed.stdout
            assert (await admin.status()).item_failure == "panel"

            # A page that opens: the panel says so, and the cast says nothing more.
            opened = await asyncio.to_thread(run, "cast", str(page), url, "--to", address)
            assert opened.exit_code == 0, opened.output
            assert opened.stderr == ""
            status = await admin.status()
            assert (status.index, status.item_opened, status.item_failure) == (0, True, None)

            # The page shown first decides: starting at the link fails again.
            again = await asyncio.to_thread(
                run, "cast", str(page), url, "--to", address, "--start", "2"
            )
            assert again.exit_code == 1, again.output
            assert "это адрес самой панели" in again.stderr
