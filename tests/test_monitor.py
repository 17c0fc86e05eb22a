"""The live monitor against real kiosks: online, what shows, offline after a stop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from controller import monitor as monitor_module
from controller.client import KioskClient
from controller.monitor import Monitor, PanelState, render
from protocol.messages import StatusSnapshot
from tests.conftest import TEACHER
from tests.helpers import pair, text_lesson
from tests.kiosks import KioskThread


async def wait_until(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.02)


@pytest.mark.slow
async def test_monitor_follows_panels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitor_module, "RECONNECT_S", 0.1)
    a = KioskThread(tmp_path / "a", room="Каб. 1").__enter__()
    with KioskThread(tmp_path / "b", room="Каб. 2") as b:
        creds = {
            a.address: await pair(a.address, a.pin(), TEACHER),
            b.address: await pair(b.address, b.pin(), TEACHER),
        }
        watcher = Monitor([a.address, b.address, "127.0.0.1:9"], TEACHER, creds.get)
        async with watcher:
            await wait_until(lambda: watcher.panels[a.address].online)
            await wait_until(lambda: watcher.panels[b.address].online)
            status = watcher.panels[b.address].status
            assert status is not None
            assert status.cache_quota_bytes > 0
            # The same teacher casts with the same pairing (pairing again would replace
            # the monitor's token, and a connection with a replaced token gets no events).
            async with await KioskClient.connect(
                b.address, TEACHER, credentials=creds[b.address]
            ) as client:
                await client.cast(text_lesson("Один", "Два"))
                await client.control("next")
            try:
                await wait_until(
                    lambda: (s := watcher.panels[b.address].status) is not None and s.index == 1
                )
            except TimeoutError:
                raise AssertionError(watcher.panels[b.address]) from None
            table = render(watcher.snapshot(), time.time())
            assert "Кабинет" in table
            assert "Текстовый урок: 2/2" in table
            assert TEACHER.name in table
            await asyncio.to_thread(a.__exit__, None, None, None)
            await wait_until(lambda: not watcher.panels[a.address].online)
            assert not watcher.panels["127.0.0.1:9"].online
            rows = {p.address: p.as_json() for p in watcher.snapshot()}
            assert rows[a.address]["online"] is False
            assert rows[b.address]["status"]["lesson_title"] == "Текстовый урок"


def test_the_monitor_says_when_a_panels_page_did_not_open() -> None:
    status = StatusSnapshot(
        kiosk_id="k",
        room="Каб. 12",
        school="Школа",
        state="playing",
        blanked=False,
        lesson_id="l",
        lesson_title="Опыты",
        index=0,
        count=2,
        item_kind="web",
        item_title="Игра",
        position_ms=0,
        presenter="Анна",
        version="1",
        item_failure="no_network",
    )
    table = render([PanelState("127.0.0.1:1", status=status, online=True)], time.time())
    assert "Опыты: 1/2 (страница не открылась)" in table
