"""«Показать мой экран» in the teacher's app: a real app, a real kiosk, an Xvfb screen."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controller.webapp.security import COOKIE
from tests.app_server import RunningApp, running_app
from tests.kiosks import KioskThread
from tests.xvfb import xvfb

pytestmark = pytest.mark.slow


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningApp]:
    with xvfb(320, 240) as display:
        monkeypatch.setenv("DISPLAY", display)  # the teacher's screen
        with running_app(tmp_path / "home") as running:
            yield running


def client(app: RunningApp) -> httpx.Client:
    return httpx.Client(
        base_url=app.base,
        cookies={COOKIE: app.config.secret},
        headers={"origin": app.base},
        timeout=10,
    )


def _run(app: RunningApp, coro: object) -> object:
    return asyncio.run_coroutine_threadsafe(coro, app.loop).result(20)  # type: ignore[arg-type]


def _pair(c: httpx.Client, app: RunningApp, kiosk: KioskThread) -> None:
    state = app.config.state
    assert state is not None
    c.post("/panels/add", data={"address": kiosk.address})

    async def listed() -> None:
        while not any(r.address == kiosk.address for r in state.hub.rows):
            await state.hub.wait_for_change(state.hub.version, 1.0)

    _run(app, listed())
    answer = c.post("/pair", data={"address": kiosk.address, "pin": kiosk.pin()})
    assert "Сопряжено" in answer.text, answer.text


def test_show_my_screen_and_stop_it(app: RunningApp, tmp_path: Path) -> None:
    state = app.config.state
    assert state is not None
    with KioskThread(tmp_path / "k1", room="Каб. 12") as kiosk, client(app) as c:
        _pair(c, app, kiosk)
        page = c.get("/").text
        assert "Показать мой экран" in page
        nothing = c.post("/share", data={})
        assert "Выберите панели, на которых показать ваш экран." in nothing.text
        started = c.post("/share", data={"target": [kiosk.address]})
        assert "msg error" not in started.text, started.text
        fragment = c.get("/fragments/cast").text
        assert "Ваш экран показывается на: Каб. 12." in fragment
        assert "Остановить показ экрана" in fragment
        status = kiosk.sync(lambda: kiosk.app.service.status())  # type: ignore[union-attr]
        assert (status.item_kind, status.presenter) == ("screen", "Петрова Анна Сергеевна")
        again = c.post("/share", data={"target": [kiosk.address]})
        assert "Ваш экран уже показывается" in again.text
        c.post("/share/stop")
        assert kiosk.sync(lambda: kiosk.app.service.status().state) == "idle"  # type: ignore[union-attr]
        assert "Ваш экран показывается" not in c.get("/fragments/cast").text


def test_a_share_stopped_on_the_panel_says_so(app: RunningApp, tmp_path: Path) -> None:
    state = app.config.state
    assert state is not None
    with KioskThread(tmp_path / "k1", room="Каб. 12") as kiosk, client(app) as c:
        _pair(c, app, kiosk)
        c.post("/share", data={"target": [kiosk.address]})
        kiosk.sync(lambda: kiosk.app.panel_control("stop"))  # type: ignore[union-attr]

        async def ended() -> None:
            while state.share.active:
                await state.hub.wait_for_change(state.hub.version, 1.0)

        _run(app, ended())
        assert "Каб. 12: показ экрана остановлен на панели." in c.get("/fragments/cast").text
