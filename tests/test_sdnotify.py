"""The sd_notify client against a real AF_UNIX datagram socket the test binds itself."""

from __future__ import annotations

import itertools
import logging
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk.sdnotify import SystemdNotifier, notify_address, ping_due, watchdog_interval_s
from tests.kiosks import ADMIN_SECRET

ROOT = Path(__file__).resolve().parent.parent
WIRED = any(
    "SystemdNotifier" in (ROOT / "kiosk" / name).read_text(encoding="utf-8")
    for name in ("app.py", "cli.py")
)
"""True once the kiosk itself notifies systemd (kiosk/app.py or kiosk/cli.py uses it)."""

needs_unix = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no AF_UNIX sockets")
pytestmark = needs_unix

_UCRED = struct.Struct("3i")  # pid, uid, gid


def receive(sock: socket.socket, timeout: float = 5.0) -> str:
    """The next datagram on ``sock`` as text."""
    ready, _, _ = select.select([sock], [], [], timeout)
    assert ready, "no notification arrived"
    return sock.recv(4096).decode("utf-8")


def receive_with_pid(sock: socket.socket, timeout: float) -> tuple[str, int | None]:
    """The next datagram and the sender's pid (SO_PASSCRED), as systemd sees them."""
    ready, _, _ = select.select([sock], [], [], timeout)
    if not ready:
        raise TimeoutError("no notification arrived")
    data, ancdata, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(_UCRED.size))
    pid = None
    for level, kind, value in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = _UCRED.unpack(value[: _UCRED.size])[0]
    return data.decode("utf-8"), pid


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket standing in for systemd's, and its path."""
    directory = tmp_path
    short: tempfile.TemporaryDirectory[str] | None = None
    if len(str(tmp_path / "notify.sock")) > 100:  # sun_path holds 108 bytes
        short = tempfile.TemporaryDirectory(prefix="sdn")
        directory = Path(short.name)
    path = str(directory / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    try:
        yield sock, path
    finally:
        sock.close()
        if short is not None:
            short.cleanup()


@pytest.fixture
def no_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)


def test_every_message_arrives(
    notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch, no_systemd: None
) -> None:
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    notifier = SystemdNotifier()
    assert notifier.enabled
    assert notifier.ready()
    assert receive(sock) == "READY=1"
    assert notifier.watchdog()
    assert receive(sock) == "WATCHDOG=1"
    assert notifier.status("Каб. 12: урок «Фотосинтез»")
    assert receive(sock) == "STATUS=Каб. 12: урок «Фотосинтез»"
    assert notifier.stopping()
    assert receive(sock) == "STOPPING=1"
    notifier.close()


def test_ready_with_status_is_one_datagram_and_status_is_one_line(
    notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch, no_systemd: None
) -> None:
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    notifier = SystemdNotifier()
    notifier.ready("wss://0.0.0.0:47810/v1\nREADY=0")
    assert receive(sock) == "READY=1\nSTATUS=wss://0.0.0.0:47810/v1 READY=0"
    notifier.close()


def test_abstract_socket_name(monkeypatch: pytest.MonkeyPatch, no_systemd: None) -> None:
    name = f"classcast-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        notifier = SystemdNotifier()
        assert notifier.ready()
        assert receive(sock) == "READY=1"
        notifier.close()


def test_addresses() -> None:
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify_address("@abc") == "\0abc"
    for value in (None, "", "@", "relative/path", "vsock:2:1234"):
        assert notify_address(value) is None


def test_without_notify_socket_everything_is_a_no_op(no_systemd: None) -> None:
    notifier = SystemdNotifier()
    assert not notifier.enabled
    assert notifier.watchdog_interval_s() is None
    for send in (notifier.ready, notifier.watchdog, notifier.stopping):
        assert send() is False
    assert notifier.status("x") is False
    assert notifier.maybe_ping(0.0) is False
    notifier.close()


def test_watchdog_alone_without_socket_is_off() -> None:
    assert SystemdNotifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval_s() is None


def test_missing_socket_never_raises_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    with caplog.at_level(logging.DEBUG, logger="kiosk.sdnotify"):
        assert notifier.ready() is False
        assert notifier.watchdog() is False
        assert notifier.stopping() is False
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "gone.sock" in warnings[0].getMessage()
    notifier.close()


def test_full_receiver_does_not_block(notify_socket: tuple[socket.socket, str]) -> None:
    _, path = notify_socket  # never read: the queue fills up
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    started = time.monotonic()
    results = [notifier.watchdog() for _ in range(2000)]
    assert time.monotonic() - started < 2.0
    assert results[0] is True
    assert results[-1] is False  # EAGAIN, swallowed
    notifier.close()


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, 42) == 15.0
    assert (
        watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    )


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"WATCHDOG_USEC": ""},
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "-5"},
        {"WATCHDOG_USEC": "thirty"},
        {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "41"},
        {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "pid"},
    ],
)
def test_watchdog_off(env: dict[str, str]) -> None:
    assert watchdog_interval_s(env, 42) is None


def test_watchdog_pid_mismatch_disables_pings(
    notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch, no_systemd: None
) -> None:
    _, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    notifier = SystemdNotifier()
    assert notifier.enabled
    assert notifier.watchdog_interval_s() is None
    assert notifier.maybe_ping(100.0) is False
    notifier.close()


def test_ping_due() -> None:
    assert ping_due(None, 5.0, None) is False
    assert ping_due(1.0, 100.0, None) is False
    assert ping_due(None, 5.0, 15.0) is True
    assert ping_due(5.0, 19.9, 15.0) is False
    assert ping_due(5.0, 20.0, 15.0) is True
    assert ping_due(5.0, 4.0, 15.0) is True  # the clock went backwards


def test_maybe_ping_sends_once_per_period(
    notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch, no_systemd: None
) -> None:
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    notifier = SystemdNotifier()
    assert notifier.watchdog_interval_s() == 15.0
    frames = [100.0 + i / 60 for i in range(60 * 40)]  # 40 s of frames at 60 fps
    sent = [now for now in frames if notifier.maybe_ping(now)]
    assert len(sent) == 3
    assert sent[0] == 100.0
    assert all(b - a >= 15.0 for a, b in itertools.pairwise(sent))
    assert [receive(sock) for _ in sent] == ["WATCHDOG=1"] * 3
    notifier.close()


def kiosk_command(tmp_path: Path) -> list[str]:
    config = tmp_path / "kiosk.toml"
    config.write_text(f'mdns = false\nadmin_secret = "{ADMIN_SECRET}"\n', encoding="utf-8")
    script = Path(sys.executable).parent / "classcast-kiosk"
    command = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from kiosk.cli import main; main()"]
    )
    return [
        *command,
        "--headless",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--state-dir",
        str(tmp_path / "state"),
        "--config",
        str(config),
    ]


def collect(sock: socket.socket, proc: subprocess.Popen[str], wanted: str, timeout: float) -> int:
    """Wait for a datagram containing the line ``wanted``; returns its sender's pid."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            message, pid = receive_with_pid(sock, 0.2)
        except TimeoutError:
            # Messages sent before an exit are still queued: give up only when none are.
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"{wanted} did not arrive (exit code {proc.poll()})") from None
            continue
        if wanted in message.splitlines():
            assert pid is not None
            return pid


@pytest.mark.slow
@pytest.mark.skipif(not WIRED, reason="kiosk/app.py or kiosk/cli.py does not use SystemdNotifier")
def test_kiosk_process_reports_ready_watchdog_and_stopping(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, path = notify_socket
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "NOTIFY_SOCKET": path,
        "WATCHDOG_USEC": "400000",  # a ping every 0.2 s
    }
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        kiosk_command(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        # NotifyAccess=main: systemd only accepts messages from the main process.
        assert collect(sock, proc, "READY=1", timeout=30) == proc.pid
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready wss://127.0.0.1:"), line
        # The server listens by the time READY=1 is sent.
        port = int(line.split()[1].removeprefix("wss://127.0.0.1:").removesuffix("/v1"))
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        assert collect(sock, proc, "WATCHDOG=1", timeout=5) == proc.pid
        assert collect(sock, proc, "WATCHDOG=1", timeout=5) == proc.pid
        proc.send_signal(signal.SIGTERM)
        assert collect(sock, proc, "STOPPING=1", timeout=10) == proc.pid
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
