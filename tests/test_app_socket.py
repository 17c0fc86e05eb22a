"""The controls' WebSocket of the teacher's app (``/control/socket``): the same gate as
every request (Host, Origin, the secret), a bounded message, the same answers as
``POST /control``; and the app stops at once with its pages' streams open."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from socket import IPPROTO_TCP, TCP_NODELAY

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from controller.webapp.live import TeacherCast
from controller.webapp.security import COOKIE, MAX_SOCKET_MESSAGE_BYTES
from tests.app_server import RunningApp, running_app
from tests.kiosks import KioskThread, teacher

NOTHING_SHOWN = "Пока ничего не показывается"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[RunningApp]:
    with running_app(tmp_path / "home") as running:
        yield running


def socket(app: RunningApp, **headers: str) -> ClientConnection:
    """A plain WebSocket client to the app; ``headers`` replace the page's own."""
    sent = {"Origin": app.base, "Cookie": f"{COOKIE}={app.config.secret}", **headers}
    url = app.base.replace("http://", "ws://") + "/control/socket"
    return connect(url, additional_headers={k: v for k, v in sent.items() if v}, open_timeout=5)


@pytest.mark.parametrize(
    "headers",
    [
        {"Cookie": ""},
        {"Cookie": f"{COOKIE}=wrong"},
        {"Origin": ""},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
    ],
    ids=["no secret", "wrong secret", "no origin", "another site", "null origin"],
)
def test_the_socket_opens_only_for_the_apps_own_page(
    app: RunningApp, headers: dict[str, str]
) -> None:
    with pytest.raises(InvalidStatus) as info:
        socket(app, **headers)
    assert info.value.response.status_code == 403


def test_a_rebound_name_cannot_open_the_socket(app: RunningApp) -> None:
    port = app.base.rsplit(":", 1)[1]
    url = f"ws://127.0.0.1:{port}/control/socket"
    with pytest.raises(InvalidStatus):
        connect(
            url,
            additional_headers={
                "Host": f"evil.example:{port}",
                "Origin": f"http://evil.example:{port}",
                "Cookie": f"{COOKIE}={app.config.secret}",
            },
            open_timeout=5,
        )


def test_a_control_over_the_socket_answers_as_a_post(app: RunningApp) -> None:
    with socket(app) as ws:
        ws.send("action=next")
        answer = str(ws.recv(timeout=5))
        assert "msg error" in answer
        assert NOTHING_SHOWN in answer
        ws.send("action=explode")  # never sent by the page: refused, the socket stays
        assert "Запрос не понят" in str(ws.recv(timeout=5))
        ws.send("action=goto&number=0")
        assert "Номера материалов начинаются с 1" in str(ws.recv(timeout=5))


def test_a_message_is_bounded(app: RunningApp) -> None:
    padding = "&x=" + "y" * (MAX_SOCKET_MESSAGE_BYTES - len("action=next&x="))
    largest = "action=next" + padding
    assert len(largest) == MAX_SOCKET_MESSAGE_BYTES
    with socket(app) as ws:
        ws.send(largest)
        assert NOTHING_SHOWN in str(ws.recv(timeout=5))
        ws.send(largest + "y")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1009


def test_a_binary_message_closes_the_socket(app: RunningApp) -> None:
    with socket(app) as ws:
        ws.send(b"action=next")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1003


def test_a_bug_behind_the_socket_is_one_sentence_and_a_log_entry(
    app: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> list[str]:
        raise RuntimeError("boom behind the socket")

    monkeypatch.setattr(TeacherCast, "control", broken)
    with socket(app) as ws:
        ws.send("action=next")
        answer = str(ws.recv(timeout=5))
        assert "ошибки в программе" in answer
        assert "boom" not in answer
        ws.send("action=prev")  # still open
        assert "ошибки в программе" in str(ws.recv(timeout=5))
    [log] = (app.config.home.root / "logs").glob("classcast-*.log")
    assert log.read_text("utf-8").count("RuntimeError: boom behind the socket") == 2


@pytest.mark.slow
def test_the_app_stops_at_once_with_a_page_open(tmp_path: Path) -> None:
    """SIGTERM with the page's event stream open: the stream ends when the server begins
    to shut down (not cancelled after the grace), so nothing is logged as an error."""
    home = tmp_path / "home"
    env = {**os.environ, "CLASSCAST_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from controller.cli import main; main()", "app", "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        base = url.split("/?")[0]
        with httpx.Client(timeout=10) as browser:
            assert browser.get(url).status_code == 303  # the cookie, as the page gets it
            with browser.stream("GET", base + "/events") as events:
                lines = events.iter_lines()
                assert "event: cast" in lines  # reads up to the page's second fragment
                assert "" in lines  # and its end: the stream waits for a change now
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(10) == -signal.SIGTERM  # uvicorn ends by its signal
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    assert proc.stderr.read() == ""
    assert not (home / "logs").exists()


async def test_a_panel_connection_sends_at_once(kiosk: KioskThread) -> None:
    """The connection the app keeps to each panel (``KioskClient``) has Nagle's algorithm
    off, so a control is not held back waiting for the previous frame's ACK."""
    async with await teacher(kiosk) as client:
        raw = client._ws.transport.get_extra_info("socket")
        assert raw.getsockopt(IPPROTO_TCP, TCP_NODELAY) != 0
